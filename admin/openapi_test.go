package admin

// The admin API's contract (openapi.json) against the code: the document
// lists exactly the declared routes, and real answers of the API, over the
// memory store and a real Redis, validate against the document's schema for
// their operation and status. Every status the document lists for an
// operation is produced at least once, and every status produced is listed.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"mime"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/caddy-sessions/caddy-sessions/restrict"
	"github.com/caddy-sessions/caddy-sessions/tracker"
	"github.com/caddy-sessions/caddy-sessions/tracker/store"
)

// oaBase is the URL the document is known by to the schema compiler, so
// that "#/components/schemas/X" resolves inside it. Nothing is fetched.
const oaBase = "https://caddy-sessions.invalid/admin/openapi.json"

// oaMethods are the operation keys of a path item.
var oaMethods = []string{"get", "put", "patch", "delete", "post"}

// oaSpec is the parsed document, its compiled schemas and the
// (operation, status) pairs answers were checked against.
type oaSpec struct {
	raw  []byte
	doc  map[string]any
	c    *jsonschema.Compiler
	mu   sync.Mutex
	sch  map[string]*jsonschema.Schema
	seen map[string]bool // "GET /{realm}/users 200"
}

func oaLoad(t *testing.T) *oaSpec {
	t.Helper()
	raw, err := os.ReadFile("openapi.json")
	if err != nil {
		t.Fatal(err)
	}
	v, err := jsonschema.UnmarshalJSON(bytes.NewReader(raw))
	if err != nil {
		t.Fatalf("openapi.json: %v", err)
	}
	doc, ok := v.(map[string]any)
	if !ok {
		t.Fatal("openapi.json is not a JSON object")
	}
	if doc["openapi"] != "3.1.0" {
		t.Fatalf("openapi %v, want 3.1.0", doc["openapi"])
	}
	c := jsonschema.NewCompiler()
	c.DefaultDraft(jsonschema.Draft2020)
	c.AssertFormat() // date-time, date: checked, not only annotations
	if err := c.AddResource(oaBase, v); err != nil {
		t.Fatal(err)
	}
	return &oaSpec{raw: raw, doc: doc, c: c, sch: map[string]*jsonschema.Schema{}, seen: map[string]bool{}}
}

// oaPointer makes a URL fragment of JSON pointer tokens.
func oaPointer(tokens ...string) string {
	var b strings.Builder
	for _, tok := range tokens {
		tok = strings.ReplaceAll(strings.ReplaceAll(tok, "~", "~0"), "/", "~1")
		b.WriteString("/" + url.PathEscape(tok))
	}
	return b.String()
}

// schema compiles the schema at the JSON pointer of the document.
func (s *oaSpec) schema(t *testing.T, tokens ...string) *jsonschema.Schema {
	t.Helper()
	ptr := oaPointer(tokens...)
	s.mu.Lock()
	defer s.mu.Unlock()
	if sch, ok := s.sch[ptr]; ok {
		return sch
	}
	sch, err := s.c.Compile(oaBase + "#" + ptr)
	if err != nil {
		t.Fatalf("compiling the schema at %s: %v", ptr, err)
	}
	s.sch[ptr] = sch
	return sch
}

func oaMap(v any, keys ...string) map[string]any {
	for _, k := range keys {
		m, _ := v.(map[string]any)
		v = m[k]
	}
	m, _ := v.(map[string]any)
	return m
}

func (s *oaSpec) paths() map[string]any { return oaMap(s.doc, "paths") }

// op is the operation of method on the path template tmpl, or nil.
func (s *oaSpec) op(method, tmpl string) map[string]any {
	return oaMap(s.paths(), tmpl, strings.ToLower(method))
}

// deref follows a local $ref, returning the object and its pointer tokens.
func (s *oaSpec) deref(obj map[string]any, tokens []string) (map[string]any, []string) {
	ref, ok := obj["$ref"].(string)
	if !ok {
		return obj, tokens
	}
	rest, _ := strings.CutPrefix(ref, "#/")
	tokens = strings.Split(rest, "/")
	for i := range tokens {
		tokens[i] = strings.ReplaceAll(strings.ReplaceAll(tokens[i], "~1", "/"), "~0", "~")
	}
	return oaMap(s.doc, tokens...), tokens
}

// parameters are the operation's parameters, those of its path item
// included, each dereferenced.
func (s *oaSpec) parameters(method, tmpl string) []map[string]any {
	var out []map[string]any
	for _, list := range []any{oaMap(s.paths(), tmpl)["parameters"], s.op(method, tmpl)["parameters"]} {
		items, _ := list.([]any)
		for _, it := range items {
			m, _ := it.(map[string]any)
			p, _ := s.deref(m, nil)
			out = append(out, p)
		}
	}
	return out
}

// validate checks a JSON text against the schema at tokens.
func (s *oaSpec) validate(t *testing.T, body []byte, tokens ...string) error {
	t.Helper()
	v, err := jsonschema.UnmarshalJSON(bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("not JSON: %v", err)
	}
	return s.schema(t, tokens...).Validate(v)
}

// checkRequest validates a request body against the operation's
// requestBody schema.
func (s *oaSpec) checkRequest(t *testing.T, method, tmpl, body string) error {
	t.Helper()
	if s.op(method, tmpl)["requestBody"] == nil {
		return fmt.Errorf("%s %s documents no request body", method, tmpl)
	}
	return s.validate(t, []byte(body), "paths", tmpl, strings.ToLower(method), "requestBody", "content", "application/json", "schema")
}

// checkAnswer validates an answer against the response the document gives
// for its operation and status: listed, of a listed media type, JSON bodies
// valid against the schema, documented headers valid.
func (s *oaSpec) checkAnswer(t *testing.T, method, tmpl string, r resp) {
	t.Helper()
	op := s.op(method, tmpl)
	if op == nil {
		t.Errorf("%s %s is not in the document", method, tmpl)
		return
	}
	status := fmt.Sprint(r.Code)
	obj, ok := oaMap(op, "responses")[status].(map[string]any)
	if !ok {
		t.Errorf("%s %s answered %s, which the document does not list for it:\n%s", method, tmpl, status, r.Body)
		return
	}
	s.mu.Lock()
	s.seen[method+" "+tmpl+" "+status] = true
	s.mu.Unlock()
	obj, tokens := s.deref(obj, []string{"paths", tmpl, strings.ToLower(method), "responses", status})
	s.checkResponse(t, fmt.Sprintf("%s %s %s", method, tmpl, status), obj, tokens, r)
}

// checkComponent validates an answer against components/responses/name
// (answers to no operation: 405, unknown endpoints).
func (s *oaSpec) checkComponent(t *testing.T, name string, r resp) {
	t.Helper()
	tokens := []string{"components", "responses", name}
	obj := oaMap(s.doc, tokens...)
	if obj == nil {
		t.Fatalf("components/responses/%s is not in the document", name)
	}
	s.checkResponse(t, name, obj, tokens, r)
}

func (s *oaSpec) checkResponse(t *testing.T, what string, obj map[string]any, tokens []string, r resp) {
	t.Helper()
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil {
		t.Errorf("%s: Content-Type %q: %v", what, r.Header.Get("Content-Type"), err)
		return
	}
	content := oaMap(obj, "content")
	if _, ok := content[mt]; !ok {
		t.Errorf("%s: answered %s; the document lists %v", what, mt, slices.Sorted(maps.Keys(content)))
		return
	}
	if mt == "application/json" {
		at := append(slices.Clip(tokens), "content", mt, "schema")
		if err := s.validate(t, r.Body, at...); err != nil {
			t.Errorf("%s: the answer does not match the document: %v\n%s", what, err, r.Body)
		}
	}
	for name := range oaMap(obj, "headers") {
		got := r.Header.Get(name)
		if got == "" {
			continue
		}
		b, _ := json.Marshal(got)
		at := append(slices.Clip(tokens), "headers", name, "schema")
		if err := s.validate(t, b, at...); err != nil {
			t.Errorf("%s: header %s %q does not match the document: %v", what, name, got, err)
		}
	}
}

// operations lists the document's operations as "METHOD tmpl"; self
// selects the self-service ones (path items with servers of their own)
// rather than the admin API's.
func (s *oaSpec) operations(self bool) []string {
	var out []string
	for tmpl, item := range s.paths() {
		m, _ := item.(map[string]any)
		if _, own := m["servers"]; own != self {
			continue
		}
		for _, meth := range oaMethods {
			if m[meth] != nil {
				out = append(out, strings.ToUpper(meth)+" "+tmpl)
			}
		}
	}
	slices.Sort(out)
	return out
}

// checkCoverage fails for every status the document lists for one of ops
// that no answer was checked against.
func (s *oaSpec) checkCoverage(t *testing.T, ops []string) {
	t.Helper()
	for _, o := range ops {
		method, tmpl, _ := strings.Cut(o, " ")
		for status := range oaMap(s.op(method, tmpl), "responses") {
			if !s.seen[o+" "+status] {
				t.Errorf("%s: no answer with status %s was produced; the document lists it", o, status)
			}
		}
	}
}

// oaRoute turns a declared route pattern into the document's form:
// "GET /sessions/{realm}/settings" or "GET /{realm}/settings" is
// "GET /{realm}/settings", and "GET /sessions/{$}" is "GET /".
func oaRoute(pattern string) string {
	method, p, _ := strings.Cut(pattern, " ")
	if rest, ok := strings.CutPrefix(p, "/sessions/"); ok {
		p = "/" + rest
	}
	return method + " " + strings.TrimSuffix(p, "{$}")
}

var oaTemplateParam = regexp.MustCompile(`\{([^}]*)\}`)

// TestOpenAPIRoutes: the document lists exactly the routes of the API (the
// JSON routes and the document's own), and is well formed.
func TestOpenAPIRoutes(t *testing.T) {
	s := oaLoad(t)
	a := &API{}
	declared := map[string]bool{}
	for _, rt := range append(a.routes(), a.docRoute()) {
		declared[oaRoute(rt.pattern)] = true
	}
	documented := map[string]bool{}
	for _, o := range s.operations(false) {
		documented[o] = true
	}
	for _, r := range slices.Sorted(maps.Keys(declared)) {
		if !documented[r] {
			t.Errorf("route %s is declared in routes.go but missing from openapi.json", r)
		}
	}
	for _, r := range slices.Sorted(maps.Keys(documented)) {
		if !declared[r] {
			t.Errorf("openapi.json lists %s, which routes.go does not declare", r)
		}
	}

	t.Run("well formed", func(t *testing.T) {
		if oaMap(s.doc, "info")["title"] != "caddy-sessions admin API" || oaMap(s.doc, "info")["version"] != "1" {
			t.Errorf("info %v", s.doc["info"])
		}
		for name := range oaMap(s.doc, "components", "schemas") {
			s.schema(t, "components", "schemas", name) // every $ref resolves
		}
		ids := map[string]string{}
		for _, o := range append(s.operations(false), s.operations(true)...) {
			method, tmpl, _ := strings.Cut(o, " ")
			op := s.op(method, tmpl)
			id, _ := op["operationId"].(string)
			if id == "" || ids[id] != "" {
				t.Errorf("%s: operationId %q missing or also used by %s", o, id, ids[id])
			}
			ids[id] = o
			if oaMap(op, "responses", "200") == nil {
				t.Errorf("%s documents no 200 answer", o)
			}
			for status, r := range oaMap(op, "responses") {
				obj, _ := s.deref(r.(map[string]any), nil)
				if obj["description"] == nil {
					t.Errorf("%s %s: a response needs a description", o, status)
				}
			}
			// Each {name} of the path is a required path parameter, and
			// nothing else is.
			want := map[string]bool{}
			for _, m := range oaTemplateParam.FindAllStringSubmatch(tmpl, -1) {
				want[m[1]] = true
			}
			got := map[string]bool{}
			for _, p := range s.parameters(method, tmpl) {
				if p["in"] == "path" {
					got[p["name"].(string)] = true
					if p["required"] != true {
						t.Errorf("%s: path parameter %v not required", o, p["name"])
					}
				}
			}
			if !maps.Equal(want, got) {
				t.Errorf("%s: path parameters %v, the path has %v", o, slices.Sorted(maps.Keys(got)), slices.Sorted(maps.Keys(want)))
			}
			// State-changing operations document the CSRF header and
			// the refusal.
			if method != http.MethodGet {
				var csrf bool
				for _, p := range s.parameters(method, tmpl) {
					csrf = csrf || (p["in"] == "header" && p["name"] == CSRFHeader)
				}
				if !csrf || oaMap(op, "responses", "403") == nil {
					t.Errorf("%s changes state: it must document the %s header and the 403", o, CSRFHeader)
				}
			}
			// Request body examples are valid.
			if op["requestBody"] != nil {
				ex, err := json.Marshal(oaMap(op, "requestBody", "content", "application/json")["example"])
				if err != nil {
					t.Fatal(err)
				}
				if err := s.checkRequest(t, method, tmpl, string(ex)); err != nil {
					t.Errorf("%s: the request example %s does not match the schema: %v", o, ex, err)
				}
			}
		}
	})
}

// errOADown is what the store of an unreachable realm answers.
var errOADown = errors.New("dial tcp 127.0.0.1:6379: connect: connection refused")

// oaDownRealm is a realm whose store does not answer: every query and
// action fails (the switches fall back to the configured ones, as the
// tracker's do).
type oaDownRealm struct{ Realm }

func (oaDownRealm) User(context.Context, string, string) (*store.UserSummary, error) {
	return nil, errOADown
}
func (oaDownRealm) Users(context.Context, store.UsersRequest) ([]*store.UserSummary, int, error) {
	return nil, 0, errOADown
}
func (oaDownRealm) Sessions(context.Context, string, string, string, int, int) ([]*store.Session, int, error) {
	return nil, 0, errOADown
}
func (oaDownRealm) Devices(context.Context, string, string) ([]*store.Device, error) {
	return nil, errOADown
}
func (oaDownRealm) Violations(context.Context, string, string, int, int) ([]*restrict.Violation, int, error) {
	return nil, 0, errOADown
}
func (oaDownRealm) Activity(context.Context, string, string, int, *time.Location) (*tracker.ActivityReport, error) {
	return nil, errOADown
}
func (oaDownRealm) ActivityDay(context.Context, string, string, string, *time.Location) (*tracker.DayReport, error) {
	return nil, errOADown
}
func (oaDownRealm) Export(context.Context, string, string) (*tracker.Export, error) {
	return nil, errOADown
}
func (oaDownRealm) Revoke(context.Context, string, string, string) (*store.Session, error) {
	return nil, errOADown
}
func (oaDownRealm) RevokeAll(context.Context, string, string, string) ([]*store.Session, error) {
	return nil, errOADown
}
func (oaDownRealm) BlockDevice(context.Context, string, string, string, bool) ([]*store.Session, error) {
	return nil, errOADown
}
func (oaDownRealm) MarkViewed(context.Context, string, string, string) (int, error) {
	return 0, errOADown
}
func (oaDownRealm) SetExempt(context.Context, string, string, bool) error { return errOADown }
func (oaDownRealm) SetLimits(context.Context, string, string, restrict.Limits) error {
	return errOADown
}
func (oaDownRealm) SetSettings(context.Context, string, store.Settings) error { return errOADown }
func (oaDownRealm) Erase(context.Context, string, string) (int, error)        { return 0, errOADown }

// oaCall is one request of the tests to the admin API on Caddy's admin
// endpoint.
type oaCall struct {
	method, tmpl string
	params       map[string]string // path parameters, unescaped
	query        string
	body         string
	header       map[string]string
	want         int
}

// target is the request's path and query on Caddy's admin endpoint.
func (c oaCall) target() string { return c.under("/sessions") }

// under is the request's path and query under the server URL base.
func (c oaCall) under(base string) string {
	p := base + oaTemplateParam.ReplaceAllStringFunc(c.tmpl, func(m string) string {
		return url.PathEscape(c.params[m[1:len(m)-1]])
	})
	if c.query != "" {
		p += "?" + c.query
	}
	return p
}

// oaAPI drives the admin API of an env and checks every answer against
// the document.
type oaAPI struct {
	t      *testing.T
	e      *env
	s      *oaSpec
	params map[string]string // defaults for path parameters
}

// do sends c, checks its status and validates the answer (and the
// request's body and query names) against the document.
func (x *oaAPI) do(c oaCall) resp {
	t := x.t
	t.Helper()
	params := maps.Clone(x.params)
	maps.Copy(params, c.params)
	c.params = params
	var body io.Reader
	if c.body != "" {
		body = strings.NewReader(c.body)
	}
	r := httptest.NewRequest(c.method, "http://localhost:2019"+c.target(), body)
	if c.body != "" {
		r.Header.Set("Content-Type", "application/json")
	}
	for k, v := range c.header {
		r.Header.Set(k, v)
	}
	res := x.e.serve(r)
	if res.Code != c.want {
		t.Errorf("%s %s: status %d, want %d:\n%s", c.method, c.target(), res.Code, c.want, res.Body)
	}
	x.s.checkAnswer(t, c.method, c.tmpl, res)
	if res.Code == http.StatusOK {
		// What succeeded is documented: its body and its query names.
		if c.body != "" {
			if err := x.s.checkRequest(t, c.method, c.tmpl, c.body); err != nil {
				t.Errorf("%s %s: the API took the body %s, which the document refuses: %v", c.method, c.tmpl, c.body, err)
			}
		}
		q, _ := url.ParseQuery(c.query)
		for name := range q {
			if !slices.ContainsFunc(x.s.parameters(c.method, c.tmpl), func(p map[string]any) bool {
				return p["in"] == "query" && p["name"] == name
			}) {
				t.Errorf("%s %s: query parameter %q is not documented", c.method, c.tmpl, name)
			}
		}
	}
	return res
}

// bad sends a request the API must refuse with 400; the document's
// request schema must refuse the body too when schemaRefuses.
func (x *oaAPI) bad(c oaCall, schemaRefuses bool) {
	x.t.Helper()
	c.want = http.StatusBadRequest
	x.do(c)
	if c.body != "" && schemaRefuses {
		if err := x.s.checkRequest(x.t, c.method, c.tmpl, c.body); err == nil {
			x.t.Errorf("%s %s: the API refuses the body %s, the document's schema accepts it", c.method, c.tmpl, c.body)
		}
	}
}

// example is the document's request body example of an operation.
func (x *oaAPI) example(method, tmpl string) string {
	b, err := json.Marshal(oaMap(x.s.op(method, tmpl), "requestBody", "content", "application/json")["example"])
	if err != nil {
		x.t.Fatal(err)
	}
	if string(b) == "null" {
		return ""
	}
	return string(b)
}

// TestOpenAPIAnswers runs every route with realistic data and validates
// every answer, errors included, against the document.
func TestOpenAPIAnswers(t *testing.T) {
	cfg := envConfig{geo: true, risk: true, limits: restrict.Limits{IPs: &restrict.Limit{Max: 2, Window: restrict.Duration(24 * time.Hour), Action: restrict.ActionLog}}}
	forStores(t, cfg, func(t *testing.T, e *env) {
		s := oaLoad(t)
		x := &oaAPI{t: t, e: e, s: s, params: map[string]string{"realm": e.realm, "user": "alice"}}
		const (
			root     = "/"
			doc      = "/openapi.json"
			settings = "/{realm}/settings"
			users    = "/{realm}/users"
			user     = "/{realm}/users/{user}"
			sessions = "/{realm}/users/{user}/sessions"
			session  = "/{realm}/users/{user}/sessions/{id}"
			csv      = "/{realm}/users/{user}/sessions.csv"
			export   = "/{realm}/users/{user}/export"
			devices  = "/{realm}/users/{user}/devices"
			device   = "/{realm}/users/{user}/devices/{device}"
			viols    = "/{realm}/users/{user}/violations"
			viol     = "/{realm}/users/{user}/violations/{id}"
			risks    = "/{realm}/users/{user}/risk"
			alerts   = "/{realm}/users/{user}/alerts"
			exempt   = "/{realm}/users/{user}/exempt"
			limits   = "/{realm}/users/{user}/limits"
			activity = "/{realm}/users/{user}/activity"
			day      = "/{realm}/users/{user}/activity/{date}"
		)
		const (
			get, put, patch, del = http.MethodGet, http.MethodPut, http.MethodPatch, http.MethodDelete
			ok                   = http.StatusOK
		)

		// frank: a day of activity across midnight (no IP, no location).
		activityFixture(t, e)
		x.do(oaCall{method: put, tmpl: settings, body: `{"activity_trail": true}`, want: ok})

		// alice: four browsers in three places, the last two past the
		// realm's max_ips 2 (logged); trails on; one logged out.
		laptop, phone, mac := aliceLaptop, alicePhone, aliceMac
		laptop.path, phone.path = "/login", "/account"
		tablet := client{user: "alice", token: "tok-alice-tablet-5e2b77c", ip: "192.0.2.44", device: "devAliceTablet01", path: "/login",
			ua: "Mozilla/5.0 (iPad; CPU OS 17_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.1 Mobile/15E148 Safari/604.1"}
		la := e.login(laptop).SessionID
		e.clock.Advance(time.Minute)
		ph := e.login(phone).SessionID
		e.clock.Advance(time.Minute)
		if res := e.login(mac); res.Refused {
			t.Fatalf("max_ips with action log refused: %+v", res)
		}
		e.clock.Advance(time.Minute)
		tab := e.login(tablet).SessionID
		e.clock.Advance(time.Minute)
		laptop.path = "/orders"
		e.observe(laptop)
		e.clock.Advance(time.Minute)
		e.logout(mac)
		// bob: one session, no violation.
		bob := client{user: "bob", token: "tok-bob-oa-31d7e0", ip: ipLondon, ua: uaFirefox, device: "devBobFirefox0A1", path: "/"}
		e.login(bob)
		e.clock.Advance(time.Minute)
		x.params["id"] = la
		x.params["device"] = alicePhone.device
		x.params["date"] = e.day.Format(time.DateOnly)

		// The realm, its switches and users.
		r := x.do(oaCall{method: get, tmpl: root, want: ok})
		if !strings.Contains(string(r.Body), e.realm) {
			t.Errorf("index does not list %s: %s", e.realm, r.Body)
		}
		if r := x.do(oaCall{method: get, tmpl: doc, want: ok}); !bytes.Equal(r.Body, s.raw) {
			t.Error("GET /sessions/openapi.json does not serve admin/openapi.json")
		}
		x.do(oaCall{method: get, tmpl: settings, want: ok})
		x.do(oaCall{method: patch, tmpl: settings, body: `{"ip_precision": "full", "geolocation": true}`, want: ok})
		x.do(oaCall{method: put, tmpl: limits, body: `{"max_ips": {"max": 5, "window": "7d", "action": "log"}, "max_sessions": {"max": 4, "action": "evict_oldest"}, "max_devices": {"max": 6, "window": 86400000000000}}`, want: ok})
		x.do(oaCall{method: put, tmpl: exempt, body: `{"exempt": true}`, want: ok})
		x.do(oaCall{method: put, tmpl: exempt, params: map[string]string{"user": "bob"}, body: `{"exempt": false}`, want: ok})
		x.do(oaCall{method: get, tmpl: user, want: ok})
		x.do(oaCall{method: get, tmpl: user, params: map[string]string{"user": "frank"}, want: ok})
		x.do(oaCall{method: get, tmpl: users, want: ok})
		x.do(oaCall{method: get, tmpl: users, query: "prefix=al&violations=unviewed&active=true", want: ok})
		x.do(oaCall{method: get, tmpl: users, query: "active=false&limit=1&offset=1", want: ok})

		// Sessions, devices, violations.
		x.do(oaCall{method: get, tmpl: sessions, want: ok})
		x.do(oaCall{method: get, tmpl: sessions, query: "state=all&limit=2", want: ok})
		closed := x.do(oaCall{method: get, tmpl: sessions, query: "state=closed&offset=0", want: ok})
		if !strings.Contains(string(closed.Body), `"end_reason":"logout"`) {
			t.Errorf("closed sessions: %s", closed.Body)
		}
		x.do(oaCall{method: get, tmpl: devices, want: ok})
		var vp violationsPage
		x.do(oaCall{method: get, tmpl: viols, want: ok}).decode(t, &vp)
		if len(vp.Violations) != 2 {
			t.Fatalf("alice has %d violations, want 2", len(vp.Violations))
		}
		x.do(oaCall{method: get, tmpl: viols, query: "limit=1&offset=0", want: ok})
		// London, then Milton (US) a minute later: risk findings, each
		// signal's evidence checked against the schema.
		rr := x.do(oaCall{method: get, tmpl: risks, want: ok})
		for _, sig := range []string{`"signal":"impossible_travel"`, `"signal":"new_device"`, `"distance_km":`} {
			if !strings.Contains(string(rr.Body), sig) {
				t.Errorf("alice's risk findings lack %s: %s", sig, rr.Body)
			}
		}
		x.do(oaCall{method: get, tmpl: risks, query: "limit=1&offset=1", want: ok})
		x.do(oaCall{method: get, tmpl: alerts, want: ok})

		// Activity: frank's days seen from New York, alice's trail.
		x.do(oaCall{method: get, tmpl: activity, params: map[string]string{"user": "frank"}, query: "days=14&tz=America/New_York", want: ok})
		x.do(oaCall{method: get, tmpl: activity, want: ok})
		x.do(oaCall{method: get, tmpl: day, params: map[string]string{"user": "frank"}, query: "tz=America/New_York", want: ok})
		var trails int
		for i := range 3 {
			date := e.day.AddDate(0, 0, i).Format(time.DateOnly)
			r := x.do(oaCall{method: get, tmpl: day, params: map[string]string{"date": date}, query: "tz=UTC", want: ok})
			trails += strings.Count(string(r.Body), `"trail":`)
		}
		if trails == 0 {
			t.Error("no day report of alice shows a trail: the trail schema went unchecked")
		}

		// Exports.
		r = x.do(oaCall{method: get, tmpl: csv, want: ok})
		if !strings.HasPrefix(string(r.Body), "id,realm,user,started_at,") {
			t.Errorf("CSV starts %.60q", r.Body)
		}
		x.do(oaCall{method: get, tmpl: csv, query: "from=" + e.day.Format(time.DateOnly) + "&to=" + e.clock.Now().Format(time.RFC3339), want: ok})
		r = x.do(oaCall{method: get, tmpl: export, want: ok})
		if !strings.Contains(string(r.Body), `"trails":{"`) {
			t.Errorf("alice's export holds no trail: %s", r.Body)
		}
		x.do(oaCall{method: get, tmpl: export, params: map[string]string{"user": "bob"}, want: ok})

		// Changes: block a device, mark violations, revoke, erase. One
		// of them as the dashboard sends it: same-origin, with the header.
		r = x.do(oaCall{method: put, tmpl: device, body: `{"blocked": true}`, want: ok,
			header: map[string]string{"Origin": "http://localhost:2019", "Sec-Fetch-Site": "same-origin", CSRFHeader: "1"}})
		if !strings.Contains(string(r.Body), ph) {
			t.Errorf("blocking the phone did not end its session %s: %s", ph, r.Body)
		}
		x.do(oaCall{method: get, tmpl: devices, want: ok})
		x.do(oaCall{method: put, tmpl: device, params: map[string]string{"device": alicePhone.device}, body: `{"blocked": false}`, want: ok})
		x.do(oaCall{method: patch, tmpl: viol, params: map[string]string{"id": vp.Violations[1].ID}, body: `{"viewed": true}`, want: ok})
		x.do(oaCall{method: patch, tmpl: viols, body: `{"viewed": true}`, want: ok})
		x.do(oaCall{method: del, tmpl: session, params: map[string]string{"id": tab}, want: ok})
		x.do(oaCall{method: del, tmpl: sessions, want: ok})
		x.do(oaCall{method: del, tmpl: sessions, want: ok}) // nothing left to revoke
		x.do(oaCall{method: put, tmpl: limits, body: `{}`, want: ok})
		x.do(oaCall{method: get, tmpl: sessions, query: "state=all", want: ok})
		x.do(oaCall{method: del, tmpl: user, params: map[string]string{"user": "bob"}, want: ok})

		// 400: bad queries and bodies, each named.
		x.bad(oaCall{method: put, tmpl: settings, body: `{"ip_precision": "half"}`}, true)
		x.bad(oaCall{method: patch, tmpl: settings, body: `{"colour": "blue"}`}, true)
		x.bad(oaCall{method: put, tmpl: settings, body: `{"tracking": "off"}`}, true)
		x.bad(oaCall{method: get, tmpl: users, query: "violations=yes"}, false)
		x.bad(oaCall{method: get, tmpl: sessions, query: "state=open"}, false)
		x.bad(oaCall{method: get, tmpl: csv, query: "from=yesterday"}, false)
		x.bad(oaCall{method: put, tmpl: device, body: `{}`}, true)
		x.bad(oaCall{method: put, tmpl: device, body: `{"blocked": "yes"}`}, true)
		x.bad(oaCall{method: put, tmpl: device, body: `{"blocked": true, "until": "tomorrow"}`}, true)
		x.bad(oaCall{method: get, tmpl: viols, query: "limit=501"}, false)
		x.bad(oaCall{method: get, tmpl: risks, query: "offset=-1"}, false)
		x.bad(oaCall{method: patch, tmpl: viols, body: `{"viewed": false}`}, true)
		x.bad(oaCall{method: patch, tmpl: viol, body: `{}`}, true)
		x.bad(oaCall{method: put, tmpl: exempt, body: `{"exempt": 1}`}, true)
		x.bad(oaCall{method: put, tmpl: limits, body: `{"max_cpus": {"max": 1}}`}, true)
		x.bad(oaCall{method: put, tmpl: limits, body: `{"max_ips": {"max": -1, "window": "1h"}}`}, true)
		x.bad(oaCall{method: put, tmpl: limits, body: `{"max_ips": {"max": 3}}`}, false) // a window is needed: beyond the schema
		x.bad(oaCall{method: get, tmpl: activity, query: "days=0"}, false)
		x.bad(oaCall{method: get, tmpl: activity, query: "tz=Mars/Olympus_Mons"}, false)
		x.bad(oaCall{method: get, tmpl: day, params: map[string]string{"date": "2024-13-01"}}, false)

		// 404: unknown users, sessions, devices, violations.
		x.do(oaCall{method: get, tmpl: user, params: map[string]string{"user": "nobody"}, want: http.StatusNotFound})
		x.do(oaCall{method: del, tmpl: session, params: map[string]string{"id": "nosuchsession0000"}, want: http.StatusNotFound})
		x.do(oaCall{method: put, tmpl: device, params: map[string]string{"device": "devNoSuchDevice1"}, body: `{"blocked": true}`, want: http.StatusNotFound})
		x.do(oaCall{method: patch, tmpl: viol, params: map[string]string{"id": "0-0"}, body: `{"viewed": true}`, want: http.StatusNotFound})

		// Every operation: an unknown realm (404), a realm on two stores
		// (409), a store that does not answer (503), a cross-site
		// browser request (403), as far as the document lists them.
		down := "down-" + e.realm
		t.Cleanup(Register(down, envStore, oaDownRealm{e.tr}))
		for _, o := range s.operations(false) {
			method, tmpl, _ := strings.Cut(o, " ")
			responses := oaMap(s.op(method, tmpl), "responses")
			body := x.example(method, tmpl)
			if responses["404"] != nil {
				x.do(oaCall{method: method, tmpl: tmpl, params: map[string]string{"realm": "nosuch.example.org"}, body: body, want: http.StatusNotFound})
			}
			if responses["409"] != nil {
				// A second handler of the realm on another store (a
				// value of its own, so that unregistering removes it).
				unregister := Register(e.realm, "another-store", &oaDownRealm{e.tr})
				x.do(oaCall{method: method, tmpl: tmpl, body: body, want: http.StatusConflict})
				unregister()
			}
			if responses["503"] != nil {
				x.do(oaCall{method: method, tmpl: tmpl, params: map[string]string{"realm": down}, body: body, want: http.StatusServiceUnavailable})
			}
			if responses["403"] != nil {
				x.do(oaCall{method: method, tmpl: tmpl, body: body, want: http.StatusForbidden,
					header: map[string]string{"Origin": "https://evil.example", "Sec-Fetch-Site": "cross-site"}})
				// Same-origin from a browser, but without the header.
				x.do(oaCall{method: method, tmpl: tmpl, body: body, want: http.StatusForbidden,
					header: map[string]string{"Origin": "http://localhost:2019"}})
			}
		}

		// 405 on every path for the methods it does not list, with Allow
		// naming exactly those it does; 404 for a path that is none.
		for tmpl, item := range s.paths() {
			m, _ := item.(map[string]any)
			if _, self := m["servers"]; self {
				continue
			}
			var allowed []string
			for _, meth := range oaMethods {
				if m[meth] != nil {
					allowed = append(allowed, strings.ToUpper(meth))
				}
			}
			for _, meth := range oaMethods {
				if m[meth] != nil {
					continue
				}
				c := oaCall{method: strings.ToUpper(meth), tmpl: tmpl, params: x.params}
				res := e.serve(httptest.NewRequest(c.method, "http://localhost:2019"+c.target(), strings.NewReader("{}")))
				if res.Code != http.StatusMethodNotAllowed {
					t.Errorf("%s %s: status %d, want 405", c.method, tmpl, res.Code)
					continue
				}
				s.checkComponent(t, "MethodNotAllowed", res)
				allow := strings.Split(res.Header.Get("Allow"), ", ")
				slices.Sort(allow)
				if want := slices.Sorted(slices.Values(allowed)); !slices.Equal(allow, want) {
					t.Errorf("%s %s: Allow %v, the document lists %v", c.method, tmpl, allow, want)
				}
			}
		}
		res := e.serve(httptest.NewRequest(get, "http://localhost:2019"+e.realmPath("nothing"), nil))
		if res.Code != http.StatusNotFound {
			t.Errorf("unknown endpoint: status %d", res.Code)
		}
		s.checkComponent(t, "NotFound", res)

		s.checkCoverage(t, s.operations(false))

		t.Run("doctored answers fail", func(t *testing.T) {
			oaDoctored(t, x)
		})
	})
}

// oaDoctored proves the validation has teeth: real answers pass, and the
// same answers with a field the document does not know, or without one
// it requires, or of another type, fail.
func oaDoctored(t *testing.T, x *oaAPI) {
	s := x.s
	pageTokens := []string{"paths", "/{realm}/users/{user}/sessions", "get", "responses", "200", "content", "application/json", "schema"}
	r := x.do(oaCall{method: http.MethodGet, tmpl: "/{realm}/users/{user}/sessions", query: "state=all", want: http.StatusOK})
	if err := s.validate(t, r.Body, pageTokens...); err != nil {
		t.Fatalf("the real answer fails: %v", err)
	}
	userTokens := []string{"components", "schemas", "UserSummary"}
	u := x.do(oaCall{method: http.MethodGet, tmpl: "/{realm}/users/{user}", params: map[string]string{"user": "frank"}, want: http.StatusOK})
	for _, c := range []struct {
		name   string
		body   []byte
		tokens []string
		doctor func(m map[string]any)
	}{
		{"unknown session field", r.Body, pageTokens, func(m map[string]any) {
			m["sessions"].([]any)[0].(map[string]any)["token_hash"] = "3f9a"
		}},
		{"unknown agent field", r.Body, pageTokens, func(m map[string]any) {
			oaMap(m["sessions"].([]any)[0], "agent")["engine"] = "Blink"
		}},
		{"unknown page field", r.Body, pageTokens, func(m map[string]any) { m["cursor"] = "abc" }},
		{"session without ended_at", r.Body, pageTokens, func(m map[string]any) {
			delete(m["sessions"].([]any)[0].(map[string]any), "ended_at")
		}},
		{"page without total", r.Body, pageTokens, func(m map[string]any) { delete(m, "total") }},
		{"total as a string", r.Body, pageTokens, func(m map[string]any) { m["total"] = "7" }},
		{"started_at not a time", r.Body, pageTokens, func(m map[string]any) {
			m["sessions"].([]any)[0].(map[string]any)["started_at"] = "yesterday"
		}},
		{"unknown end reason", r.Body, pageTokens, func(m map[string]any) {
			m["sessions"].([]any)[0].(map[string]any)["end_reason"] = "stolen"
		}},
		{"summary without last_activity", u.Body, userTokens, func(m map[string]any) { delete(m, "last_activity") }},
		{"summary with an unknown field", u.Body, userTokens, func(m map[string]any) { m["email"] = "frank@example.com" }},
	} {
		t.Run(c.name, func(t *testing.T) {
			var m map[string]any
			if err := json.Unmarshal(c.body, &m); err != nil {
				t.Fatal(err)
			}
			c.doctor(m)
			b, err := json.Marshal(m)
			if err != nil {
				t.Fatal(err)
			}
			if err := s.validate(t, b, c.tokens...); err == nil {
				t.Errorf("the doctored answer validates:\n%s", b)
			}
		})
	}
}

// TestOpenAPISelfService validates the self-service answers against the
// document's self-service operations.
func TestOpenAPISelfService(t *testing.T) {
	forStores(t, envConfig{geo: true}, func(t *testing.T, e *env) {
		s := oaLoad(t)
		const (
			list = "/{self_service}"
			one  = "/{self_service}{id}"
			form = "/{self_service}{id}/delete"
		)
		la := e.login(aliceLaptop).SessionID
		e.clock.Advance(time.Minute)
		ph := e.login(alicePhone).SessionID
		e.clock.Advance(time.Minute)
		mac := e.login(aliceMac).SessionID
		e.clock.Advance(time.Minute)
		bob := e.login(client{user: "bob", token: "tok-bob-self-0a9c", ip: ipMilton, ua: uaFirefox, device: "devBobSelfFire01"}).SessionID

		self := Self{Prefix: "/account/sessions/", Realm: e.realm, Tracker: e.tr}
		down := Self{Prefix: "/account/sessions/", Realm: e.realm, Tracker: oaDownRealm{e.tr}}
		csrf := map[string]string{CSRFHeader: "1"}
		for _, c := range []struct {
			self         Self
			method, tmpl string
			target       string
			header       map[string]string
			want         int
		}{
			{self, http.MethodGet, list, "/account/sessions/", nil, http.StatusOK},
			{self, http.MethodGet, list, "/account/sessions/?state=all&limit=2", nil, http.StatusOK},
			{self, http.MethodGet, list, "/account/sessions/?state=bogus", nil, http.StatusBadRequest},
			{down, http.MethodGet, list, "/account/sessions/", nil, http.StatusServiceUnavailable},
			{self, http.MethodDelete, one, "/account/sessions/" + ph, csrf, http.StatusOK},
			{self, http.MethodDelete, one, "/account/sessions/" + la, csrf, http.StatusConflict},
			{self, http.MethodDelete, one, "/account/sessions/" + bob, csrf, http.StatusNotFound},
			{self, http.MethodDelete, one, "/account/sessions/" + mac, map[string]string{"Origin": "https://evil.example", CSRFHeader: "1"}, http.StatusForbidden},
			{self, http.MethodDelete, one, "/account/sessions/" + mac, map[string]string{"Origin": "https://shop.example.com"}, http.StatusForbidden},
			{down, http.MethodDelete, one, "/account/sessions/" + mac, csrf, http.StatusServiceUnavailable},
			{self, http.MethodPost, form, "/account/sessions/" + mac + "/delete", csrf, http.StatusOK},
			{self, http.MethodPost, form, "/account/sessions/" + la + "/delete", csrf, http.StatusConflict},
			{self, http.MethodPost, form, "/account/sessions/nosuchsession0000/delete", csrf, http.StatusNotFound},
			{self, http.MethodPost, form, "/account/sessions/" + mac + "/delete", map[string]string{"Sec-Fetch-Site": "cross-site", CSRFHeader: "1"}, http.StatusForbidden},
			{down, http.MethodPost, form, "/account/sessions/" + mac + "/delete", csrf, http.StatusServiceUnavailable},
			{self, http.MethodGet, list, "/account/sessions/?state=all", nil, http.StatusOK},
		} {
			r := httptest.NewRequest(c.method, "https://shop.example.com"+c.target, nil)
			for k, v := range c.header {
				r.Header.Set(k, v)
			}
			res := e.self(c.self, r, "alice", la)
			if res.Code != c.want {
				t.Errorf("%s %s: status %d, want %d:\n%s", c.method, c.target, res.Code, c.want, res.Body)
			}
			s.checkAnswer(t, c.method, c.tmpl, res)
		}
		// Methods a path does not take.
		for _, c := range []struct{ method, target string }{
			{http.MethodPut, "/account/sessions/"},
			{http.MethodGet, "/account/sessions/" + mac},
			{http.MethodDelete, "/account/sessions/" + mac + "/delete"},
		} {
			res := e.self(self, httptest.NewRequest(c.method, "https://shop.example.com"+c.target, nil), "alice", la)
			if res.Code != http.StatusMethodNotAllowed {
				t.Errorf("%s %s: status %d, want 405", c.method, c.target, res.Code)
			}
			s.checkComponent(t, "MethodNotAllowed", res)
		}
		s.checkCoverage(t, s.operations(true))
	})
}

// TestOpenAPIDashboardHandler: the sessions_admin handler serves the same
// routes under the document's second server, "{prefix}/api" (at the
// variable's default), and requires the CSRF header on every
// state-changing request, browser or not.
func TestOpenAPIDashboardHandler(t *testing.T) {
	e := newEnv(t, envConfig{geo: true})
	s := oaLoad(t)
	servers, _ := s.doc["servers"].([]any)
	if len(servers) != 2 {
		t.Fatalf("servers %v, want Caddy's admin endpoint and the sessions_admin handler", servers)
	}
	if u := oaMap(servers[0])["url"]; u != "/sessions" {
		t.Errorf("first server %v, want /sessions", u)
	}
	prefix, _ := oaMap(servers[1], "variables", "prefix")["default"].(string)
	base := strings.ReplaceAll(oaMap(servers[1])["url"].(string), "{prefix}", prefix)
	if base != prefix+"/api" {
		t.Fatalf("second server %q, want {prefix}/api", oaMap(servers[1])["url"])
	}

	down := "down-" + e.realm
	t.Cleanup(Register(down, envStore, oaDownRealm{e.tr}))
	ctx, cancel := caddy.NewContext(caddy.Context{Context: t.Context()})
	defer cancel()
	h := &Handler{Prefix: prefix, Realms: []string{e.realm, down}}
	if err := h.Provision(ctx); err != nil {
		t.Fatal(err)
	}
	la := e.login(aliceLaptop).SessionID
	e.clock.Advance(time.Minute)
	e.login(alicePhone)
	e.clock.Advance(time.Minute)

	params := map[string]string{"realm": e.realm, "user": "alice", "id": la, "device": alicePhone.device}
	next := caddyhttp.HandlerFunc(func(w http.ResponseWriter, r *http.Request) error {
		t.Errorf("%s %s went past the handler", r.Method, r.URL)
		return nil
	})
	serve := func(c oaCall) resp {
		t.Helper()
		p := maps.Clone(params)
		maps.Copy(p, c.params)
		c.params = p
		r := httptest.NewRequest(c.method, "https://admin.example.com"+c.under(base), strings.NewReader(c.body))
		for k, v := range c.header {
			r.Header.Set(k, v)
		}
		rec := httptest.NewRecorder()
		if err := h.ServeHTTP(rec, r, next); err != nil {
			t.Errorf("%s %s: %v", c.method, r.URL, err)
		}
		e.record(rec.Body.Bytes())
		res := resp{Code: rec.Code, Header: rec.Header(), Body: rec.Body.Bytes()}
		if res.Code != c.want {
			t.Errorf("%s %s: status %d, want %d:\n%s", c.method, r.URL, res.Code, c.want, res.Body)
		}
		if c.want == http.StatusMethodNotAllowed {
			s.checkComponent(t, "MethodNotAllowed", res)
		} else {
			s.checkAnswer(t, c.method, c.tmpl, res)
		}
		return res
	}
	browser := map[string]string{"Origin": "https://admin.example.com", "Sec-Fetch-Site": "same-origin", CSRFHeader: "1"}

	r := serve(oaCall{method: http.MethodGet, tmpl: "/", want: http.StatusOK})
	var idx struct {
		Realms []string `json:"realms"`
	}
	r.decode(t, &idx)
	if want := slices.Sorted(slices.Values([]string{e.realm, down})); !slices.Equal(idx.Realms, want) {
		t.Errorf("realms %v, want only the configured %v", idx.Realms, want)
	}
	if r := serve(oaCall{method: http.MethodGet, tmpl: "/openapi.json", want: http.StatusOK}); !bytes.Equal(r.Body, s.raw) {
		t.Error("the handler does not serve admin/openapi.json")
	}
	serve(oaCall{method: http.MethodGet, tmpl: "/{realm}/users/{user}/sessions", query: "state=all", want: http.StatusOK})
	serve(oaCall{method: http.MethodGet, tmpl: "/{realm}/users", want: http.StatusOK})
	serve(oaCall{method: http.MethodPut, tmpl: "/{realm}/users/{user}/devices/{device}", body: `{"blocked": true}`, header: browser, want: http.StatusOK})
	// The header is needed from any client, not only from browsers.
	serve(oaCall{method: http.MethodPut, tmpl: "/{realm}/users/{user}/devices/{device}", body: `{"blocked": false}`, want: http.StatusForbidden})
	serve(oaCall{method: http.MethodDelete, tmpl: "/{realm}/users/{user}/sessions/{id}", want: http.StatusForbidden})
	serve(oaCall{method: http.MethodDelete, tmpl: "/{realm}/users/{user}/sessions/{id}", header: map[string]string{"Origin": "https://evil.example", CSRFHeader: "1"}, want: http.StatusForbidden})
	serve(oaCall{method: http.MethodDelete, tmpl: "/{realm}/users/{user}/sessions/{id}", header: map[string]string{CSRFHeader: "1"}, want: http.StatusOK})
	serve(oaCall{method: http.MethodPatch, tmpl: "/{realm}/settings", body: `{"tracking": "no"}`, header: browser, want: http.StatusBadRequest})
	// A realm the handler is not configured for is unknown to it.
	other := newEnv(t, envConfig{})
	serve(oaCall{method: http.MethodGet, tmpl: "/{realm}/settings", params: map[string]string{"realm": other.realm}, want: http.StatusNotFound})
	serve(oaCall{method: http.MethodGet, tmpl: "/{realm}/users/{user}", params: map[string]string{"realm": down}, want: http.StatusServiceUnavailable})
	unregister := Register(e.realm, "another-store", &oaDownRealm{e.tr})
	serve(oaCall{method: http.MethodGet, tmpl: "/{realm}/users/{user}/devices", want: http.StatusConflict})
	unregister()
	r = serve(oaCall{method: http.MethodPost, tmpl: "/{realm}/users/{user}/sessions", header: browser, want: http.StatusMethodNotAllowed})
	if allow := r.Header.Get("Allow"); allow != "GET, DELETE" {
		t.Errorf("Allow %q, want GET, DELETE", allow)
	}
}

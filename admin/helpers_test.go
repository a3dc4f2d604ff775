package admin

import (
	"context"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/redis/go-redis/v9"

	"github.com/caddy-sessions/caddy-sessions/internal/redistest"
	"github.com/caddy-sessions/caddy-sessions/restrict"
	"github.com/caddy-sessions/caddy-sessions/tracker"
	"github.com/caddy-sessions/caddy-sessions/tracker/enrich"
	"github.com/caddy-sessions/caddy-sessions/tracker/redisstore"
	"github.com/caddy-sessions/caddy-sessions/tracker/risk"
	"github.com/caddy-sessions/caddy-sessions/tracker/store"
)

// testSecret is the keyring secret of every test tracker (32 bytes). No
// answer of the API may contain it, in any common encoding.
const testSecret = "admin-test-secret-0123456789abcd"

// testPolicy is the policy of the issue: 30m idle, 90d retention, 30s
// refresh, 90d revoke hold. Retention is long compared to the wall-clock
// runtime, so Redis TTLs (real time) expire nothing a test needs.
var testPolicy = store.Policy{
	Idle:       30 * time.Minute,
	Retention:  90 * 24 * time.Hour,
	Refresh:    30 * time.Second,
	RevokeHold: 90 * 24 * time.Hour,
}

const geoDB = "../tracker/testdata/geoip/GeoIP2-City-Test.mmdb"

// IPs of the GeoIP2 City test database.
const (
	ipLondon = "81.2.69.142"   // London, England, GB, Europe/London
	ipMilton = "216.160.83.56" // Milton, Washington, US, America/Los_Angeles
)

// Realistic user agents.
const (
	uaChromeWin = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36"
	uaIPhone    = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.1 Mobile/15E148 Safari/604.1"
	uaFirefox   = "Mozilla/5.0 (Macintosh; Intel Mac OS X 10.15; rv:121.0) Gecko/20100101 Firefox/121.0"
)

// clock is the injected tracker clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
	return c.t
}

func (c *clock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = t
}

// testDay is UTC midnight two days before the real today: the clock of every
// test starts at 10:00 that day, so it can run forward for more than a day
// without passing the real time (Redis TTLs count real time).
func testDay() time.Time {
	return time.Now().UTC().Truncate(24 * time.Hour).Add(-48 * time.Hour)
}

type envConfig struct {
	redis  bool
	geo    bool
	limits restrict.Limits
	// risk turns every risk signal on, action log.
	risk bool
}

// env is one tracker registered as a fresh realm of the admin API.
type env struct {
	t     *testing.T
	realm string
	clock *clock
	day   time.Time // UTC midnight of the clock's first day
	keys  *tracker.Keyring
	tr    *tracker.Tracker
	api   caddy.AdminHandler

	mu      sync.Mutex
	bodies  []string
	secrets map[string]string // needle -> what it is
}

var realmSeq atomic.Int64

// envStore names the store of an env's tracker in the registry.
const envStore = "env-store"

func newEnv(t *testing.T, cfg envConfig) *env {
	t.Helper()
	keys, err := tracker.NewKeyring([]byte(testSecret))
	if err != nil {
		t.Fatal(err)
	}
	day := testDay()
	clk := &clock{t: day.Add(10 * time.Hour)}
	var store store.Store
	if cfg.redis {
		srv := redistest.Start(t)
		rs := redisstore.New(redis.NewClient(&redis.Options{Addr: srv.Addr}))
		// Registered before the tracker's cleanup, so run after it. Stop
		// the server first: Close alone can hang after Subscribe.
		t.Cleanup(func() { srv.Stop(); _ = rs.Close() })
		store = rs
	} else {
		store = redisstore.NewMemory()
	}
	var geo *enrich.Geo
	if cfg.geo {
		if geo, err = enrich.OpenGeo(geoDB); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = geo.Close() })
	}
	var rp *tracker.RiskPolicy
	if cfg.risk {
		rp = &tracker.RiskPolicy{Actions: map[risk.Signal]string{}, Thresholds: risk.DefaultThresholds()}
		for _, s := range risk.Signals {
			rp.Actions[s] = tracker.RiskLog
		}
	}
	tr, err := tracker.New(tracker.Config{
		Store: store, Keys: keys, Policy: testPolicy, Limits: cfg.limits, Geo: geo,
		TimeZone: time.UTC, Now: clk.Now, Risk: rp,
	})
	if err != nil {
		t.Fatal(err)
	}
	tr.Start()
	t.Cleanup(tr.Stop)
	e := &env{
		t: t, realm: fmt.Sprintf("shop%d.example.com", realmSeq.Add(1)), clock: clk, day: day, keys: keys, tr: tr,
		api: (&API{}).Routes()[0].Handler,
		secrets: map[string]string{
			testSecret: "keyring secret",
			base64.StdEncoding.EncodeToString([]byte(testSecret)):    "keyring secret (base64)",
			base64.RawURLEncoding.EncodeToString([]byte(testSecret)): "keyring secret (base64url)",
			hex.EncodeToString([]byte(testSecret)):                   "keyring secret (hex)",
		},
	}
	tr.AddRealm(e.realm)
	t.Cleanup(Register(e.realm, envStore, tr))
	t.Cleanup(e.checkNoSecrets)
	return e
}

// forStores runs f against a memory store and a real Redis.
func forStores(t *testing.T, cfg envConfig, f func(t *testing.T, e *env)) {
	for _, useRedis := range []bool{false, true} {
		name := "memory"
		if useRedis {
			name = "redis"
		}
		t.Run(name, func(t *testing.T) {
			c := cfg
			c.redis = useRedis
			f(t, newEnv(t, c))
		})
	}
}

// checkNoSecrets fails the test if any answer it produced holds a raw token
// or the keyring secret.
func (e *env) checkNoSecrets() {
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, b := range e.bodies {
		for needle, what := range e.secrets {
			if strings.Contains(b, needle) {
				e.t.Errorf("an answer contains the %s %q:\n%s", what, needle, b)
			}
		}
	}
}

func (e *env) record(body []byte) {
	e.mu.Lock()
	e.bodies = append(e.bodies, string(body))
	e.mu.Unlock()
}

// client is one browser of a user: its app session token, device and IP.
type client struct {
	user   string
	token  string
	ip     string
	ua     string
	device string
	path   string
}

func (e *env) req(c client) tracker.Request {
	e.mu.Lock()
	e.secrets[c.token] = "raw token"
	e.secrets[e.tr.TokenHash(c.token)] = "stored token HMAC"
	e.mu.Unlock()
	return tracker.Request{Realm: e.realm, Token: c.token, User: c.user, IP: c.ip, UserAgent: c.ua, DeviceID: c.device,
		Path: c.path, Consent: c.path != ""}
}

// login records an observed login of c.
func (e *env) login(c client) tracker.Result {
	e.t.Helper()
	res, err := e.tr.Login(context.Background(), e.req(c))
	if err != nil {
		e.t.Fatalf("Login(%s): %v", c.token, err)
	}
	return res
}

// observe records one authenticated request of c.
func (e *env) observe(c client) tracker.Result {
	e.t.Helper()
	res, err := e.tr.Observe(context.Background(), e.req(c))
	if err != nil {
		e.t.Fatalf("Observe(%s): %v", c.token, err)
	}
	return res
}

// logout ends c's session as the app's logout would.
func (e *env) logout(c client) {
	e.t.Helper()
	if _, err := e.tr.End(context.Background(), e.realm, c.token, c.user, store.EndLogout, false); err != nil {
		e.t.Fatalf("End(%s): %v", c.token, err)
	}
}

// resp is an answer of the admin API as Caddy's admin server sends it.
type resp struct {
	Code   int
	Header http.Header
	Body   []byte
}

// writeAdminError answers err as Caddy's admin server does
// (adminHandler.handleError): an APIError gives its status and
// {"error": message}; anything else is a 500.
func writeAdminError(w http.ResponseWriter, err error) {
	apiErr, ok := err.(caddy.APIError)
	if !ok {
		apiErr = caddy.APIError{HTTPStatus: http.StatusInternalServerError, Err: err}
	}
	if apiErr.HTTPStatus == 0 {
		apiErr.HTTPStatus = http.StatusInternalServerError
	}
	if apiErr.Message == "" && apiErr.Err != nil {
		apiErr.Message = apiErr.Err.Error()
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(apiErr.HTTPStatus)
	_ = json.NewEncoder(w).Encode(apiErr)
}

// call sends one request to the admin API. path starts with /sessions/
// and must already be escaped.
func (e *env) call(method, path, body string) resp {
	e.t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	r := httptest.NewRequest(method, "http://localhost:2019"+path, rd)
	if body != "" {
		r.Header.Set("Content-Type", "application/json")
	}
	return e.serve(r)
}

func (e *env) serve(r *http.Request) resp {
	e.t.Helper()
	rec := httptest.NewRecorder()
	if err := e.api.ServeHTTP(rec, r); err != nil {
		if rec.Body.Len() > 0 {
			e.t.Errorf("%s %s: handler wrote an answer and returned an error (%v):\n%s", r.Method, r.URL, err, rec.Body)
		}
		writeAdminError(rec, err)
	}
	e.record(rec.Body.Bytes())
	return resp{Code: rec.Code, Header: rec.Header(), Body: rec.Body.Bytes()}
}

// self sends one request to the self-service handler as user, whose
// current session is current.
func (e *env) self(s Self, r *http.Request, user, current string) resp {
	e.t.Helper()
	rec := httptest.NewRecorder()
	s.Serve(rec, r, user, current)
	e.record(rec.Body.Bytes())
	return resp{Code: rec.Code, Header: rec.Header(), Body: rec.Body.Bytes()}
}

// path builds /sessions/{realm}/users/{user}/{rest...}, escaping each
// segment.
func (e *env) path(user string, rest ...string) string {
	p := "/sessions/" + url.PathEscape(e.realm) + "/users/" + url.PathEscape(user)
	for _, s := range rest {
		p += "/" + url.PathEscape(s)
	}
	return p
}

func (e *env) realmPath(rest string) string {
	return "/sessions/" + url.PathEscape(e.realm) + "/" + rest
}

// decode decodes a JSON answer into v.
func (r resp) decode(t *testing.T, v any) {
	t.Helper()
	if err := json.Unmarshal(r.Body, v); err != nil {
		t.Fatalf("answer %d: %v\n%s", r.Code, err, r.Body)
	}
}

// want checks the status code of an answer.
func (r resp) want(t *testing.T, code int) resp {
	t.Helper()
	if r.Code != code {
		t.Fatalf("status %d, want %d; body:\n%s", r.Code, code, r.Body)
	}
	return r
}

// wantErr checks that the answer is a JSON error with status code whose
// message contains every one of names.
func (r resp) wantErr(t *testing.T, code int, names ...string) string {
	t.Helper()
	if r.Code != code {
		t.Errorf("status %d, want %d; body:\n%s", r.Code, code, r.Body)
		return ""
	}
	if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Errorf("error Content-Type %q, want application/json", ct)
	}
	var m map[string]any
	if err := json.Unmarshal(r.Body, &m); err != nil {
		t.Errorf("error answer is not JSON: %v\n%s", err, r.Body)
		return ""
	}
	msg, _ := m["error"].(string)
	if msg == "" {
		t.Errorf("error answer has no \"error\" message: %s", r.Body)
	}
	for _, n := range names {
		if !strings.Contains(msg, n) {
			t.Errorf("error %q does not name %q", msg, n)
		}
	}
	return msg
}

// apiSession is a session as the API answers it.
type apiSession struct {
	ID        string     `json:"id"`
	Realm     string     `json:"realm"`
	User      string     `json:"user"`
	StartedAt time.Time  `json:"started_at"`
	LastSeen  time.Time  `json:"last_seen"`
	EndedAt   *time.Time `json:"ended_at"`
	EndReason string     `json:"end_reason"`
	IP        string     `json:"ip"`
	DeviceID  string     `json:"device_id"`
	Agent     struct {
		Browser        string `json:"browser"`
		BrowserVersion string `json:"browser_version"`
		OS             string `json:"os"`
		DeviceType     string `json:"device_type"`
	} `json:"agent"`
	Location struct {
		City        string   `json:"city"`
		Region      string   `json:"region"`
		Country     string   `json:"country"`
		CountryCode string   `json:"country_code"`
		TimeZone    string   `json:"time_zone"`
		Latitude    *float64 `json:"latitude"`
		Longitude   *float64 `json:"longitude"`
	} `json:"location"`
	Current bool `json:"current"`
}

type sessionPage struct {
	Sessions   []apiSession `json:"sessions"`
	Total      int          `json:"total"`
	Offset     int          `json:"offset"`
	Limit      int          `json:"limit"`
	NextOffset *int         `json:"next_offset"`
	User       string       `json:"user"`
	Current    string       `json:"current"`
}

// sessions lists user's sessions through the API.
func (e *env) sessions(user, query string) sessionPage {
	e.t.Helper()
	p := e.path(user, "sessions")
	if query != "" {
		p += "?" + query
	}
	var pg sessionPage
	e.call(http.MethodGet, p, "").want(e.t, http.StatusOK).decode(e.t, &pg)
	return pg
}

func ids(list []apiSession) []string {
	out := make([]string, len(list))
	for i, s := range list {
		out[i] = s.ID
	}
	return out
}

func findSession(list []apiSession, id string) *apiSession {
	for i := range list {
		if list[i].ID == id {
			return &list[i]
		}
	}
	return nil
}

package admin

import (
	"bytes"
	"encoding/csv"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// FuzzAdminRouter: any method, path and body through the admin API over a
// real (embedded) store: no panic, no 5xx but the store's 503, every error
// a JSON {"error"} answer, and nothing acted on outside the path's realm.
func FuzzAdminRouter(f *testing.F) {
	for _, s := range []struct{ method, path, body string }{
		{"GET", "/sessions/", ""},
		{"GET", "/sessions/shop/users/alice/sessions?state=all&limit=1", ""},
		{"DELETE", "/sessions/shop/users/%2E%2E/sessions", ""},
		{"PUT", "/sessions/shop/users/a%2Fb/devices/d%00", `{"blocked":true}`},
		{"PATCH", "/sessions/shop/users/x/violations/1", `{"viewed":"yes"}`},
		{"GET", "/sessions/shop/users/%ff%fe/activity/2026-13-40?tz=../../etc", ""},
		{"GET", "/sessions/shop/users/u/sessions.csv?from=x&to=", ""},
		{"PUT", "/sessions/shop/settings", `{"ip_precision":"full","tracking":null}`},
		{"POST", "/sessions/ui/assets/..%2F..%2Fgo.mod", ""},
		{"GET", "/sessions/ui/assets/dashboard.js", ""},
		{"GET", "/sessions//shop//users", ""},
	} {
		f.Add(s.method, s.path, s.body)
	}
	f.Fuzz(func(t *testing.T, method, path, body string) {
		if !strings.HasPrefix(path, "/") || strings.ContainsAny(path, " \t\r\n#") || len(path) > 2048 {
			return
		}
		switch method {
		case "GET", "PUT", "PATCH", "DELETE", "POST", "HEAD":
		default:
			return
		}
		e := newEnv(t, envConfig{}) // the embedded store: a fresh one per input
		r := httptest.NewRequest(method, "http://localhost:2019/", strings.NewReader(body))
		r.URL.Path, r.URL.RawPath = "", ""
		u, err := r.URL.Parse(path)
		if err != nil {
			return
		}
		r.URL = u
		res := e.serve(r)
		if res.Code >= 500 && res.Code != http.StatusServiceUnavailable {
			t.Fatalf("%s %s: %d %s", method, path, res.Code, res.Body)
		}
		if res.Code >= 400 && method != "HEAD" && !bytes.Contains(res.Body, []byte(`"error"`)) {
			t.Fatalf("%s %s: %d without a JSON error: %s", method, path, res.Code, res.Body)
		}
	})
}

// FuzzCSVCell: a neutralised cell never starts with what a spreadsheet
// runs as a formula, and a row of such cells reads back as written.
func FuzzCSVCell(f *testing.F) {
	for _, s := range []string{"=1+1", "+SUM(A1)", "-2", "@x", "\tcmd", "\r=x", "plain", "", "'=already", "\"quoted\",comma"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		c := csvCell(s)
		if c != "" && strings.ContainsRune("=+-@\t\r", rune(c[0])) {
			t.Fatalf("csvCell(%q) = %q starts with a formula character", s, c)
		}
		if c != s && c != "'"+s {
			t.Fatalf("csvCell(%q) = %q changes more than a leading quote", s, c)
		}
		var buf bytes.Buffer
		w := csv.NewWriter(&buf)
		if err := w.Write([]string{c, "x"}); err != nil {
			t.Fatal(err)
		}
		w.Flush()
		rec, err := csv.NewReader(&buf).Read()
		// encoding/csv turns \r\n inside a quoted field into \n.
		if err != nil || len(rec) != 2 || rec[0] != strings.ReplaceAll(c, "\r\n", "\n") {
			t.Fatalf("cell %q read back as %q, %v", c, rec, err)
		}
	})
}

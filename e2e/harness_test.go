// Package e2e runs the real Caddy binary (cmd/caddy, built once by
// TestMain) with caddy-sessions in front of the demo shop, against the
// memory store, a real redis-server and a real 3-master Redis Cluster.
// Nothing is mocked: requests go over TCP through Caddy to an upstream in
// this process, and the admin API is asked over HTTP.
package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/caddy-sessions/caddy-sessions/internal/redistest"
	"github.com/caddy-sessions/caddy-sessions/internal/shop"
)

var (
	// caddyBin is the Caddy binary built by TestMain.
	caddyBin string
	// moduleRoot is the directory of go.mod.
	moduleRoot string
	// geoDB is the absolute path of the MaxMind test City database.
	geoDB string
	// geoDBCorrupt is a MaxMind test database with a broken search tree.
	geoDBCorrupt string
)

func TestMain(m *testing.M) {
	os.Exit(runMain(m))
}

func runMain(m *testing.M) int {
	out, err := exec.Command("go", "env", "GOMOD").Output()
	gomod := strings.TrimSpace(string(out))
	if err != nil || gomod == "" || gomod == os.DevNull {
		fmt.Fprintf(os.Stderr, "e2e: cannot find the module root (go env GOMOD = %q): %v\n", gomod, err)
		return 1
	}
	moduleRoot = filepath.Dir(gomod)
	geoDB = filepath.Join(moduleRoot, "tracker", "testdata", "geoip", "GeoIP2-City-Test.mmdb")
	geoDBCorrupt = filepath.Join(moduleRoot, "tracker", "testdata", "geoip", "GeoIP2-City-Test-Invalid-Node-Count.mmdb")
	for _, p := range []string{geoDB, geoDBCorrupt} {
		if _, err := os.Stat(p); err != nil {
			fmt.Fprintf(os.Stderr, "e2e: test database missing: %v\n", err)
			return 1
		}
	}

	dir, err := os.MkdirTemp("", "caddy-sessions-e2e-")
	if err != nil {
		fmt.Fprintf(os.Stderr, "e2e: %v\n", err)
		return 1
	}
	defer os.RemoveAll(dir)
	caddyBin = filepath.Join(dir, "caddy")
	build := exec.Command("go", "build", "-o", caddyBin, "./cmd/caddy")
	build.Dir = moduleRoot
	if out, err := build.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "e2e: FAILED to build the Caddy binary (go build -o %s ./cmd/caddy in %s): %v\n%s\n",
			caddyBin, moduleRoot, err, out)
		return 1
	}
	code := m.Run()
	backgroundStops.Wait()
	return code
}

// ---------------------------------------------------------------------------
// Caddyfile building

const (
	markAdmin = "{{ADMIN_PORT}}"
	markSite  = "{{SITE_PORT}}"
)

// caddyfile is a complete Caddyfile with the global options every test
// needs; the harness fills in the admin and site ports. globalExtra goes
// into the global options block, siteBody into the one site block.
func caddyfile(globalExtra, siteBody string) string {
	return `{
	admin 127.0.0.1:` + markAdmin + `
	auto_https off
	grace_period 2s
	servers {
		trusted_proxies static 127.0.0.0/8
	}
` + indent(globalExtra, "\t") + `
}

http://127.0.0.1:` + markSite + ` {
` + indent(siteBody, "\t") + `
}
`
}

// shopSite is a site body: the named matchers @login (POST and /login) and
// @logout (any /logout), a sessions block (session_cookie shop_session plus
// sessionsBody) and reverse_proxy to upstream with proxyExtra inside.
//
// The shop sets its cookie only at a successful login (rotate mode), so
// its success rule is login_success new_cookie unless sessionsBody says
// otherwise.
func shopSite(upstream, sessionsBody, proxyExtra string) string {
	if !strings.Contains(sessionsBody, "login_success") {
		sessionsBody = "login_success new_cookie\n" + sessionsBody
	}
	return `@login {
	method POST
	path /login
}
@logout path /logout
sessions {
	session_cookie shop_session
` + indent(sessionsBody, "\t") + `
}
reverse_proxy ` + upstream + ` {
` + indent(proxyExtra, "\t") + `
}`
}

func indent(s, prefix string) string {
	var b strings.Builder
	for _, line := range strings.Split(strings.TrimSpace(s), "\n") {
		if strings.TrimSpace(line) == "" {
			continue
		}
		b.WriteString(prefix)
		b.WriteString(strings.TrimRight(line, " \t"))
		b.WriteByte('\n')
	}
	return strings.TrimSuffix(b.String(), "\n")
}

// ---------------------------------------------------------------------------
// Caddy processes

// Caddy is one running `caddy run` process owned by a test.
type Caddy struct {
	t testing.TB

	Site  string // http://127.0.0.1:<port>
	Admin string // http://127.0.0.1:<port>

	sitePort, adminPort int
	dir                 string // home, data and config live below
	cfgPath             string
	logPath             string
	json                bool // cfgPath is JSON, not a Caddyfile

	mu     sync.Mutex
	cmd    *exec.Cmd
	exited chan struct{}
	state  *os.ProcessState
}

// startCaddy starts Caddy with caddyfile (built by caddyfile(); the port
// markers are filled in) in an isolated home/data/config directory and
// waits until the site answers. Caddy is stopped when the test ends. The
// directory is not t.TempDir(): the stop runs in the background (see
// stopInBackground) and removes it once the process is gone.
func startCaddy(t testing.TB, cfg string) *Caddy {
	t.Helper()
	dir, err := os.MkdirTemp("", "e2e-caddy-")
	if err != nil {
		t.Fatal(err)
	}
	c := &Caddy{t: t, dir: dir}
	c.logPath = filepath.Join(c.dir, "caddy.log")
	c.cfgPath = filepath.Join(c.dir, "Caddyfile")
	for _, d := range []string{"home", "data", "config"} {
		if err := os.MkdirAll(filepath.Join(c.dir, d), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("caddy log tail (%s):\n%s", c.logPath, c.LogTail(6000))
		}
	})
	t.Cleanup(c.stopInBackground)
	for attempt := 0; attempt < 3; attempt++ {
		c.sitePort, c.adminPort = redistest.FreePort(t), redistest.FreePort(t)
		c.Site = fmt.Sprintf("http://127.0.0.1:%d", c.sitePort)
		c.Admin = fmt.Sprintf("http://127.0.0.1:%d", c.adminPort)
		if err = os.WriteFile(c.cfgPath, []byte(c.fill(cfg)), 0o600); err != nil {
			t.Fatal(err)
		}
		if err = c.start(); err == nil {
			return c
		}
		if !strings.Contains(c.LogTail(4000), "address already in use") {
			break
		}
	}
	t.Fatalf("starting caddy: %v\n--- Caddyfile ---\n%s\n--- log tail ---\n%s", err, c.fill(cfg), c.LogTail(6000))
	return nil
}

func (c *Caddy) fill(cfg string) string {
	cfg = strings.ReplaceAll(cfg, markAdmin, strconv.Itoa(c.adminPort))
	return strings.ReplaceAll(cfg, markSite, strconv.Itoa(c.sitePort))
}

func (c *Caddy) env() []string {
	return append(os.Environ(),
		"HOME="+filepath.Join(c.dir, "home"),
		"XDG_DATA_HOME="+filepath.Join(c.dir, "data"),
		"XDG_CONFIG_HOME="+filepath.Join(c.dir, "config"),
	)
}

// DataDir is Caddy's data directory (caddy.AppDataDir()).
func (c *Caddy) DataDir() string { return filepath.Join(c.dir, "data", "caddy") }

func (c *Caddy) start() error {
	logf, err := os.OpenFile(c.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	args := []string{"run", "--config", c.cfgPath}
	if !c.json {
		args = append(args, "--adapter", "caddyfile")
	}
	fmt.Fprintf(logf, "### e2e: %s %s\n", caddyBin, strings.Join(args, " "))
	cmd := exec.Command(caddyBin, args...)
	cmd.Dir = c.dir
	cmd.Env = c.env()
	cmd.Stdout, cmd.Stderr = logf, logf
	err = redistest.StartProcess(cmd)
	_ = logf.Close()
	if err != nil {
		return err
	}
	exited := make(chan struct{})
	c.mu.Lock()
	c.cmd, c.exited, c.state = cmd, exited, nil
	c.mu.Unlock()
	go func() {
		_ = cmd.Wait()
		c.mu.Lock()
		c.state = cmd.ProcessState
		c.mu.Unlock()
		close(exited)
	}()

	deadline := time.Now().Add(20 * time.Second)
	hc := &http.Client{Timeout: time.Second}
	for {
		select {
		case <-exited:
			return fmt.Errorf("caddy exited during startup (%v)", cmd.ProcessState)
		default:
		}
		resp, err := hc.Get(c.Site + "/")
		if err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			hc.CloseIdleConnections()
			return nil
		}
		if time.Now().After(deadline) {
			c.kill()
			return fmt.Errorf("site %s did not answer within 20s: %v", c.Site, err)
		}
		time.Sleep(25 * time.Millisecond)
	}
}

// backgroundStops tracks Caddy processes still shutting down after their
// test ended; TestMain waits for them.
var backgroundStops sync.WaitGroup

// stopInBackground is the end-of-test cleanup: graceful stop (SIGINT),
// killed after 3s, without holding up the next test. A hanging graceful
// stop is reported by TestGracefulShutdown, not by every test.
func (c *Caddy) stopInBackground() {
	backgroundStops.Add(1)
	go func() {
		defer backgroundStops.Done()
		c.stopWithin(3*time.Second, false)
		_ = os.RemoveAll(c.dir)
	}()
}

// stopWithin sends SIGINT (graceful: modules are cleaned up, the memory
// store saves its snapshot) and waits up to timeout for the exit. If Caddy
// is still there it is killed (with dump, first SIGABRT so that the Go
// runtime writes every goroutine into the log) and stopWithin returns
// false.
func (c *Caddy) stopWithin(timeout time.Duration, dump bool) bool {
	c.mu.Lock()
	cmd, exited := c.cmd, c.exited
	c.mu.Unlock()
	if cmd == nil {
		return true
	}
	clean := true
	_ = cmd.Process.Signal(os.Interrupt)
	select {
	case <-exited:
	case <-time.After(timeout):
		clean = false
		if dump {
			// Caddy traps SIGINT, SIGTERM and SIGQUIT but not SIGABRT.
			_ = cmd.Process.Signal(syscall.SIGABRT)
			select {
			case <-exited:
			case <-time.After(3 * time.Second):
			}
		}
		_ = cmd.Process.Kill()
		<-exited
	}
	c.mu.Lock()
	c.cmd = nil
	c.mu.Unlock()
	return clean
}

// ExitCode is the exit code of the last process, -1 if killed or running.
func (c *Caddy) ExitCode() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.state == nil {
		return -1
	}
	return c.state.ExitCode()
}

func (c *Caddy) kill() {
	c.mu.Lock()
	cmd, exited := c.cmd, c.exited
	c.cmd = nil
	c.mu.Unlock()
	if cmd != nil {
		_ = cmd.Process.Kill()
		<-exited
	}
}

// Running reports whether the process is still alive.
func (c *Caddy) Running() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.cmd == nil {
		return false
	}
	select {
	case <-c.exited:
		return false
	default:
		return true
	}
}

// Restart stops Caddy (SIGINT) and starts it again with the same ports,
// config and data directory.
func (c *Caddy) Restart(t testing.TB) {
	t.Helper()
	if !c.stopWithin(10*time.Second, true) {
		t.Errorf("caddy did not stop within 10s of SIGINT; killed it. Goroutines of this module:\n%s", c.hangDump())
	}
	if err := c.start(); err != nil {
		t.Fatalf("restarting caddy: %v\n%s", err, c.LogTail(6000))
	}
}

// Reload loads cfg (markers filled in) through the admin endpoint's /load,
// forcing a reload even if the config did not change.
func (c *Caddy) Reload(t testing.TB, cfg string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, c.Admin+"/load", strings.NewReader(c.fill(cfg)))
	req.Header.Set("Content-Type", "text/caddyfile")
	req.Header.Set("Cache-Control", "must-revalidate")
	resp, err := (&http.Client{Timeout: 20 * time.Second}).Do(req)
	if err != nil {
		t.Fatalf("POST /load: %v\n%s", err, c.LogTail(4000))
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("POST /load: %d %s\n%s", resp.StatusCode, body, c.LogTail(4000))
	}
	// A later Restart starts from the config loaded last.
	if err := os.WriteFile(c.cfgPath, []byte(c.fill(cfg)), 0o600); err != nil {
		t.Fatal(err)
	}
}

// hangDump condenses the SIGABRT goroutine dump to the goroutines that run
// this module's code: their header and this module's frames.
func (c *Caddy) hangDump() string {
	log := c.Log()
	i := strings.Index(log, "SIGABRT")
	if i < 0 {
		return "(no goroutine dump)"
	}
	var out []string
	for _, g := range strings.Split(log[i:], "\n\n") {
		if !strings.Contains(g, "caddy-sessions/") {
			continue
		}
		lines := strings.Split(strings.TrimSpace(g), "\n")
		keep := []string{lines[0]}
		for j := 1; j < len(lines); j++ {
			if strings.Contains(lines[j], "caddy-sessions/") && !strings.HasPrefix(strings.TrimSpace(lines[j]), "/") {
				keep = append(keep, "  "+strings.TrimSpace(lines[j]))
				if j+1 < len(lines) {
					f := strings.TrimSpace(lines[j+1])
					if k := strings.Index(f, " +0x"); k > 0 {
						f = f[:k]
					}
					keep = append(keep, "      "+f)
				}
			}
		}
		out = append(out, strings.Join(keep, "\n"))
	}
	return strings.Join(out, "\n")
}

// Log is everything Caddy wrote to stdout and stderr so far.
func (c *Caddy) Log() string {
	b, _ := os.ReadFile(c.logPath)
	return string(b)
}

// LogTail is the last n bytes of the log.
func (c *Caddy) LogTail(n int) string {
	s := c.Log()
	if i := strings.Index(s, "SIGABRT"); i >= 0 {
		s = s[:i] + "SIGABRT (goroutine dump left out)"
	}
	if len(s) > n {
		s = "..." + s[len(s)-n:]
	}
	return s
}

// adminDo sends a request to the admin endpoint and returns status and body.
func (c *Caddy) adminDo(t testing.TB, method, path string) (int, []byte) {
	t.Helper()
	req, _ := http.NewRequest(method, c.Admin+path, nil)
	resp, err := (&http.Client{Timeout: 10 * time.Second}).Do(req)
	if err != nil {
		t.Fatalf("admin %s %s: %v\n%s", method, path, err, c.LogTail(3000))
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

// adminJSON is adminDo that wants status want and decodes the answer.
func (c *Caddy) adminJSON(t testing.TB, method, path string, want int, v any) []byte {
	t.Helper()
	status, b := c.adminDo(t, method, path)
	if status != want {
		t.Fatalf("admin %s %s: status %d, want %d: %s", method, path, status, want, b)
	}
	if v != nil {
		if err := json.Unmarshal(b, v); err != nil {
			t.Fatalf("admin %s %s: decoding %s: %v", method, path, b, err)
		}
	}
	return b
}

// Sessions lists a user's sessions through the admin API (state: active,
// closed or all).
// A user the store holds nothing of is 404 "user not found": returned as
// an empty list.
func (c *Caddy) Sessions(t testing.TB, realm, user, state string) apiList {
	t.Helper()
	var l apiList
	path := "/sessions/" + url.PathEscape(realm) + "/users/" + url.PathEscape(user) + "/sessions?state=" + state
	status, body := c.adminDo(t, http.MethodGet, path)
	switch {
	case status == http.StatusNotFound && strings.Contains(string(body), "user not found"):
		return l
	case status != http.StatusOK:
		t.Fatalf("admin GET %s: status %d, want 200: %s", path, status, body)
	}
	if err := json.Unmarshal(body, &l); err != nil {
		t.Fatalf("admin GET %s: decoding %s: %v", path, body, err)
	}
	return l
}

// Devices lists a user's devices through the admin API.
func (c *Caddy) Devices(t testing.TB, realm, user string) []apiDevice {
	t.Helper()
	var l struct {
		Devices []apiDevice `json:"devices"`
	}
	c.adminJSON(t, http.MethodGet, "/sessions/"+url.PathEscape(realm)+"/users/"+url.PathEscape(user)+"/devices", http.StatusOK, &l)
	return l.Devices
}

// Revoke ends one session through the admin API.
func (c *Caddy) Revoke(t testing.TB, realm, user, id string) apiSession {
	t.Helper()
	var s apiSession
	c.adminJSON(t, http.MethodDelete, "/sessions/"+url.PathEscape(realm)+"/users/"+url.PathEscape(user)+"/sessions/"+url.PathEscape(id), http.StatusOK, &s)
	return s
}

// ---------------------------------------------------------------------------
// Admin API wire format (decoded independently of the tracker package)

type apiAgent struct {
	Browser        string `json:"browser"`
	BrowserVersion string `json:"browser_version"`
	OS             string `json:"os"`
	OSVersion      string `json:"os_version"`
	DeviceFamily   string `json:"device_family"`
	DeviceType     string `json:"device_type"`
}

type apiLocation struct {
	City        string `json:"city"`
	Region      string `json:"region"`
	Country     string `json:"country"`
	CountryCode string `json:"country_code"`
	TimeZone    string `json:"time_zone"`
}

type apiSession struct {
	ID        string      `json:"id"`
	Realm     string      `json:"realm"`
	User      string      `json:"user"`
	StartedAt time.Time   `json:"started_at"`
	LastSeen  time.Time   `json:"last_seen"`
	EndedAt   *time.Time  `json:"ended_at"`
	EndReason string      `json:"end_reason"`
	IP        string      `json:"ip"`
	DeviceID  string      `json:"device_id"`
	Agent     apiAgent    `json:"agent"`
	Location  apiLocation `json:"location"`
	Current   bool        `json:"current"`
	// Where it started.
	LoginIP       string      `json:"login_ip"`
	LoginLocation apiLocation `json:"login_location"`
}

type apiList struct {
	Sessions []apiSession `json:"sessions"`
	Total    int          `json:"total"`
	// Self-service answers only.
	User    string `json:"user"`
	Current string `json:"current"`
}

func (l apiList) byID(id string) *apiSession {
	for i := range l.Sessions {
		if l.Sessions[i].ID == id {
			return &l.Sessions[i]
		}
	}
	return nil
}

type apiDevice struct {
	ID        string    `json:"id"`
	User      string    `json:"user"`
	FirstSeen time.Time `json:"first_seen"`
	LastSeen  time.Time `json:"last_seen"`
	Agent     apiAgent  `json:"agent"`
	LastIP    string    `json:"last_ip"`
	Blocked   bool      `json:"blocked"`
}

// ---------------------------------------------------------------------------
// Browser-like client

const (
	uaChromeWindows = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36"
	uaIPhone        = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1"
	uaFirefoxLinux  = "Mozilla/5.0 (X11; Linux x86_64; rv:125.0) Gecko/20100101 Firefox/125.0"

	ipLondon = "81.2.69.142"   // London, GB in the MaxMind test database
	ipMilton = "216.160.83.56" // Milton, WA, US
	ipOther  = "89.160.20.112" // Linköping, SE
)

// client is one browser: its own cookie jar, user agent and client IP
// (sent as X-Forwarded-For, which Caddy trusts from 127.0.0.0/8). It never
// follows redirects.
type client struct {
	t   testing.TB
	UA  string
	IP  string
	jar *cookiejar.Jar
	hc  *http.Client // with the jar
	raw *http.Client // without it
}

func newClient(t testing.TB, ua, ip string) *client {
	jar, _ := cookiejar.New(nil)
	tr := &http.Transport{MaxIdleConnsPerHost: 32, DisableCompression: true}
	t.Cleanup(tr.CloseIdleConnections)
	noRedirect := func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	return &client{
		t: t, UA: ua, IP: ip, jar: jar,
		hc:  &http.Client{Jar: jar, Transport: tr, CheckRedirect: noRedirect, Timeout: 15 * time.Second},
		raw: &http.Client{Transport: tr, CheckRedirect: noRedirect, Timeout: 15 * time.Second},
	}
}

// reply is a fully read response.
type reply struct {
	Status int
	Header http.Header
	Body   []byte
}

func (r *reply) String() string {
	body := string(r.Body)
	if len(body) > 300 {
		body = body[:300] + "..."
	}
	return fmt.Sprintf("%d %v %q", r.Status, r.Header, body)
}

// setCookie returns the Set-Cookie of name in the answer, or nil.
func (r *reply) setCookie(name string) *http.Cookie {
	var found *http.Cookie
	for _, line := range r.Header.Values("Set-Cookie") {
		ck, err := http.ParseSetCookie(line)
		if err == nil && ck.Name == name {
			found = ck
		}
	}
	return found
}

// expires reports whether the answer tells the browser to drop cookie name.
func (r *reply) expires(name string) bool {
	ck := r.setCookie(name)
	return ck != nil && (ck.MaxAge < 0 || (!ck.Expires.IsZero() && ck.Expires.Before(time.Now())))
}

// send sends a request; mod may adjust it. With useJar=false the cookie jar is
// neither read nor updated.
func (c *client) send(useJar bool, method, u string, body io.Reader, mod func(*http.Request)) (*reply, error) {
	req, err := http.NewRequest(method, u, body)
	if err != nil {
		return nil, err
	}
	if c.UA != "" {
		req.Header.Set("User-Agent", c.UA)
	}
	if c.IP != "" {
		req.Header.Set("X-Forwarded-For", c.IP)
	}
	if mod != nil {
		mod(req)
	}
	hc := c.hc
	if !useJar {
		hc = c.raw
	}
	resp, err := hc.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	return &reply{Status: resp.StatusCode, Header: resp.Header, Body: b}, nil
}

func (c *client) do(method, u string, body io.Reader, mod func(*http.Request)) *reply {
	c.t.Helper()
	r, err := c.send(true, method, u, body, mod)
	if err != nil {
		c.t.Fatalf("%s %s: %v", method, u, err)
	}
	return r
}

func (c *client) get(u string) *reply { c.t.Helper(); return c.do(http.MethodGet, u, nil, nil) }

// form posts an urlencoded form.
func (c *client) form(u string, vals url.Values) *reply {
	c.t.Helper()
	return c.do(http.MethodPost, u, strings.NewReader(vals.Encode()), func(r *http.Request) {
		r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	})
}

// login posts the shop's login form and wants the shop's success answer.
func (c *client) login(site, user, password string) *reply {
	c.t.Helper()
	r := c.form(site+"/login", url.Values{"username": {user}, "password": {password}})
	if r.Status != http.StatusSeeOther || r.Header.Get("Location") != "/account" {
		c.t.Fatalf("login %s: got %s, want 303 to /account", user, r)
	}
	return r
}

// cookie is the value of cookie name the jar holds for site, or "".
func (c *client) cookie(site, name string) string {
	u, _ := url.Parse(site)
	for _, ck := range c.jar.Cookies(u) {
		if ck.Name == name {
			return ck.Value
		}
	}
	return ""
}

// cookieHeader renders the jar's cookies for a URL (a site, or a path of
// it: cookies set on a path go only there) as a Cookie header.
func (c *client) cookieHeader(site string) string {
	u, _ := url.Parse(site)
	var parts []string
	for _, ck := range c.jar.Cookies(u) {
		parts = append(parts, ck.Name+"="+ck.Value)
	}
	return strings.Join(parts, "; ")
}

// ---------------------------------------------------------------------------
// Upstreams

// startShop serves a demo shop on a loopback port and returns it and its
// host:port.
func startShop(t testing.TB, rotate bool) (*shop.Shop, string) {
	s := shop.New(shop.Options{Rotate: rotate})
	return s, serve(t, s)
}

func serve(t testing.TB, h http.Handler) string {
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv.Listener.Addr().String()
}

// recorder records what reached the upstream.
type recorder struct {
	mu   sync.Mutex
	reqs []recorded
}

type recorded struct {
	Method, Path string
	Header       http.Header
	BodyLen      int
}

func (rc *recorder) add(r recorded) {
	rc.mu.Lock()
	rc.reqs = append(rc.reqs, r)
	rc.mu.Unlock()
}

func (rc *recorder) last(method, path string) (recorded, bool) {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	for i := len(rc.reqs) - 1; i >= 0; i-- {
		if rc.reqs[i].Method == method && rc.reqs[i].Path == path {
			return rc.reqs[i], true
		}
	}
	return recorded{}, false
}

// recordingShop is the shop with every request's headers recorded.
func recordingShop(t testing.TB, rotate bool) (*recorder, string) {
	s := shop.New(shop.Options{Rotate: rotate})
	rc := &recorder{}
	addr := serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rc.add(recorded{Method: r.Method, Path: r.URL.Path, Header: r.Header.Clone(), BodyLen: -1})
		s.ServeHTTP(w, r)
	}))
	return rc, addr
}

// ---------------------------------------------------------------------------
// Stores

// storeEnv is one session store to run a suite against.
type storeEnv struct {
	name string
	// fragment goes into the sessions block: store (and secret).
	fragment string
	// scriptCalls sums EVALSHA and EVAL calls over every Redis node
	// (INFO commandstats); nil for the memory store.
	scriptCalls func(t testing.TB) int64
}

const e2eSecret = "e2e-shared-secret-0123456789abcdef"

func memoryStore() storeEnv {
	return storeEnv{name: "memory", fragment: "store memory"}
}

func redisStore(t testing.TB) storeEnv {
	srv := redistest.Start(t)
	cl := srv.Client(t)
	return storeEnv{
		name:        "redis",
		fragment:    "store " + srv.URL() + "\nsecret " + e2eSecret,
		scriptCalls: func(t testing.TB) int64 { return scriptCalls(t, cl) },
	}
}

func clusterStore(t testing.TB) storeEnv {
	cl := redistest.StartCluster(t)
	var nodes []*redis.Client
	for _, n := range cl.Nodes {
		nodes = append(nodes, n.Client(t))
	}
	return storeEnv{
		name:     "cluster",
		fragment: "store {\n\taddrs " + strings.Join(cl.Addrs, " ") + "\n\tcluster\n}\nsecret " + e2eSecret,
		scriptCalls: func(t testing.TB) int64 {
			var sum int64
			for _, n := range nodes {
				sum += scriptCalls(t, n)
			}
			return sum
		},
	}
}

// scriptCalls is calls of EVALSHA plus EVAL on one Redis server.
func scriptCalls(t testing.TB, c *redis.Client) int64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	info, err := c.Info(ctx, "commandstats").Result()
	if err != nil {
		t.Fatalf("INFO commandstats on %s: %v", c.Options().Addr, err)
	}
	var sum int64
	sc := bufio.NewScanner(strings.NewReader(info))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		name, rest, ok := strings.Cut(line, ":")
		if !ok || (name != "cmdstat_evalsha" && name != "cmdstat_eval") {
			continue
		}
		for _, kv := range strings.Split(rest, ",") {
			if k, v, _ := strings.Cut(kv, "="); k == "calls" {
				n, _ := strconv.ParseInt(v, 10, 64)
				sum += n
			}
		}
	}
	return sum
}

// ---------------------------------------------------------------------------
// Small helpers

// eventually polls cond every interval until it holds or timeout passes,
// and returns how long that took. On timeout it fails with cond's last
// message.
func eventually(t testing.TB, timeout, interval time.Duration, cond func() (bool, string)) time.Duration {
	t.Helper()
	start := time.Now()
	var msg string
	for {
		var ok bool
		ok, msg = cond()
		if ok {
			return time.Since(start)
		}
		if time.Since(start) > timeout {
			t.Fatalf("not within %v: %s", timeout, msg)
		}
		time.Sleep(interval)
	}
}

// activeByIP finds the one active session whose IP is ip.
func activeByIP(t testing.TB, l apiList, ip string) apiSession {
	t.Helper()
	var found []apiSession
	for _, s := range l.Sessions {
		if s.IP == ip && s.EndedAt == nil {
			found = append(found, s)
		}
	}
	if len(found) != 1 {
		t.Fatalf("want exactly one active session from %s, got %d in %s", ip, len(found), dump(l))
	}
	return found[0]
}

func dump(v any) string {
	b, _ := json.MarshalIndent(v, "", "  ")
	return string(b)
}

// ---------------------------------------------------------------------------
// Helpers of the restriction, activity and signal tests (issues 3 and 4)

// userPath is the admin API path of one user of a realm, escaped.
func userPath(realm, user string) string {
	return "/sessions/" + url.PathEscape(realm) + "/users/" + url.PathEscape(user)
}

// adminSend sends a request with a body (JSON; "" for none) to the admin
// endpoint and returns status and body.
func (c *Caddy) adminSend(t testing.TB, method, path, body string) (int, []byte) {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, _ := http.NewRequest(method, c.Admin+path, rd)
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := (&http.Client{Timeout: 10 * time.Second}).Do(req)
	if err != nil {
		t.Fatalf("admin %s %s: %v\n%s", method, path, err, c.LogTail(3000))
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

// adminWant is adminSend that wants status want and decodes the answer
// into v (if not nil).
func (c *Caddy) adminWant(t testing.TB, method, path, body string, want int, v any) []byte {
	t.Helper()
	status, b := c.adminSend(t, method, path, body)
	if status != want {
		t.Fatalf("admin %s %s %s: status %d, want %d: %s", method, path, body, status, want, b)
	}
	if v != nil {
		if err := json.Unmarshal(b, v); err != nil {
			t.Fatalf("admin %s %s: decoding %s: %v", method, path, b, err)
		}
	}
	return b
}

// apiViolation is one entry of a user's restriction history.
type apiViolation struct {
	ID       string    `json:"id"`
	Time     time.Time `json:"time"`
	User     string    `json:"user"`
	Policy   string    `json:"policy"`
	Limit    int       `json:"limit"`
	Observed int       `json:"observed"`
	IP       string    `json:"ip"`
	Location string    `json:"location"`
	Device   string    `json:"device_id"`
	Session  string    `json:"session_id"`
	Action   string    `json:"action"`
	Viewed   bool      `json:"viewed"`
}

// Violations lists a user's violations (newest first) through the admin API.
func (c *Caddy) Violations(t testing.TB, realm, user string) []apiViolation {
	t.Helper()
	var l struct {
		Violations []apiViolation `json:"violations"`
		Total      int            `json:"total"`
	}
	c.adminWant(t, http.MethodGet, userPath(realm, user)+"/violations?limit=500", "", http.StatusOK, &l)
	if l.Total != len(l.Violations) {
		t.Fatalf("violations of %s: total %d but %d listed", user, l.Total, len(l.Violations))
	}
	return l.Violations
}

// apiUser is one row of the admin users list.
type apiUser struct {
	User               string          `json:"user"`
	LastActivity       time.Time       `json:"last_activity"`
	ActiveSessions     int             `json:"active_sessions"`
	Devices            int             `json:"devices"`
	UnviewedViolations int             `json:"unviewed_violations"`
	Exempt             bool            `json:"exempt"`
	Limits             json.RawMessage `json:"limits"`
}

// Users lists a realm's users through the admin API; query is appended
// as is ("violations=unviewed", "prefix=al", ...).
func (c *Caddy) Users(t testing.TB, realm, query string) []apiUser {
	t.Helper()
	var l struct {
		Users []apiUser `json:"users"`
	}
	c.adminWant(t, http.MethodGet, "/sessions/"+url.PathEscape(realm)+"/users?limit=500&"+query, "", http.StatusOK, &l)
	return l.Users
}

// findUser is the row of user in list, or nil.
func findUser(list []apiUser, user string) *apiUser {
	for i := range list {
		if list[i].User == user {
			return &list[i]
		}
	}
	return nil
}

// getAt sends GET u from client IP ip (the client keeps ip from now on).
func (c *client) getAt(ip, u string) *reply {
	c.t.Helper()
	c.IP = ip
	return c.get(u)
}

// adaptCaddyfile runs `caddy adapt` on a Caddyfile (markers already
// filled in) and returns the JSON config as a map.
func adaptCaddyfile(t testing.TB, dir, caddyfileText string) map[string]any {
	t.Helper()
	path := filepath.Join(dir, "Caddyfile.adapt")
	if err := os.WriteFile(path, []byte(caddyfileText), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, caddyBin, "adapt", "--config", path, "--adapter", "caddyfile")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "HOME="+dir, "XDG_DATA_HOME="+filepath.Join(dir, "data"), "XDG_CONFIG_HOME="+filepath.Join(dir, "config"))
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("caddy adapt: %v\n%s\n--- Caddyfile ---\n%s", err, stderr.String(), caddyfileText)
	}
	var cfg map[string]any
	if err := json.Unmarshal(out, &cfg); err != nil {
		t.Fatalf("caddy adapt output is not JSON: %v\n%s", err, out)
	}
	return cfg
}

// startCaddyJSON is startCaddy for a JSON config: the Caddyfile (built by
// caddyfile(), markers filled in) is adapted with the binary, edit may
// change the JSON (add apps), and Caddy runs with the JSON file. Restart
// is not supported on such an instance (it would adapt the JSON as a
// Caddyfile).
func startCaddyJSON(t testing.TB, cfg string, edit func(map[string]any)) *Caddy {
	t.Helper()
	dir, err := os.MkdirTemp("", "e2e-caddy-")
	if err != nil {
		t.Fatal(err)
	}
	c := &Caddy{t: t, dir: dir, json: true}
	c.logPath = filepath.Join(c.dir, "caddy.log")
	c.cfgPath = filepath.Join(c.dir, "caddy.json")
	for _, d := range []string{"home", "data", "config"} {
		if err := os.MkdirAll(filepath.Join(c.dir, d), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("caddy log tail (%s):\n%s", c.logPath, c.LogTail(6000))
		}
	})
	t.Cleanup(c.stopInBackground)
	var js []byte
	for attempt := 0; attempt < 3; attempt++ {
		c.sitePort, c.adminPort = redistest.FreePort(t), redistest.FreePort(t)
		c.Site = fmt.Sprintf("http://127.0.0.1:%d", c.sitePort)
		c.Admin = fmt.Sprintf("http://127.0.0.1:%d", c.adminPort)
		m := adaptCaddyfile(t, c.dir, c.fill(cfg))
		if edit != nil {
			edit(m)
		}
		js, _ = json.MarshalIndent(m, "", "\t")
		if err = os.WriteFile(c.cfgPath, js, 0o600); err != nil {
			t.Fatal(err)
		}
		if err = c.start(); err == nil {
			return c
		}
		if !strings.Contains(c.LogTail(4000), "address already in use") {
			break
		}
	}
	t.Fatalf("starting caddy: %v\n--- JSON ---\n%s\n--- log tail ---\n%s", err, js, c.LogTail(6000))
	return nil
}

// redisKeyDump is every key of a Redis (all masters of a cluster) with its
// content rendered as text: string values, hash fields and values, set,
// list and sorted set members.
type redisKeyDump map[string]string

// dumpRedis reads every key through scan (a redistest ScanAll) and c.
func dumpRedis(t testing.TB, scan func(context.Context, string) ([]string, error), c redis.Cmdable) redisKeyDump {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	keys, err := scan(ctx, "*")
	if err != nil {
		t.Fatalf("SCAN: %v", err)
	}
	out := redisKeyDump{}
	for _, k := range keys {
		typ, err := c.Type(ctx, k).Result()
		if err != nil {
			t.Fatalf("TYPE %s: %v", k, err)
		}
		var parts []string
		switch typ {
		case "string":
			v, err := c.Get(ctx, k).Result()
			if err != nil && err != redis.Nil {
				t.Fatalf("GET %s: %v", k, err)
			}
			parts = append(parts, v)
		case "hash":
			m, err := c.HGetAll(ctx, k).Result()
			if err != nil {
				t.Fatalf("HGETALL %s: %v", k, err)
			}
			for f, v := range m {
				parts = append(parts, f, v)
			}
		case "zset":
			v, err := c.ZRange(ctx, k, 0, -1).Result()
			if err != nil {
				t.Fatalf("ZRANGE %s: %v", k, err)
			}
			parts = v
		case "set":
			v, err := c.SMembers(ctx, k).Result()
			if err != nil {
				t.Fatalf("SMEMBERS %s: %v", k, err)
			}
			parts = v
		case "list":
			v, err := c.LRange(ctx, k, 0, -1).Result()
			if err != nil {
				t.Fatalf("LRANGE %s: %v", k, err)
			}
			parts = v
		case "none": // expired between SCAN and TYPE
			continue
		default:
			parts = []string{"<" + typ + ">"}
		}
		out[k] = typ + ": " + strings.Join(parts, " | ")
	}
	return out
}

// containing lists the keys whose name or content contains s.
func (d redisKeyDump) containing(s string) []string {
	var out []string
	for k, v := range d {
		if strings.Contains(k, s) || strings.Contains(v, s) {
			out = append(out, k+" => "+v)
		}
	}
	return out
}

// withCSRF adds the header the pages send with every state-changing
// request; self-service and the dashboard refuse such requests without it.
func withCSRF(q *http.Request) { q.Header.Set("X-Sessions-CSRF", "1") }

package benchkit

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/caddy-sessions/caddy-sessions/internal/redistest"
)

// BuildCaddy builds the repository's cmd/caddy into the run's dir and
// returns the binary.
func BuildCaddy(e *Env) (string, error) {
	Logf("building Caddy with the module (go build ./cmd/caddy)...")
	t0 := time.Now()
	bin := filepath.Join(e.dir, "caddy")
	cmd := exec.Command("go", "build", "-o", bin, "./cmd/caddy")
	cmd.Dir = e.Repo
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build -o %s ./cmd/caddy (in %s): %v\n%s", bin, e.Repo, err, out)
	}
	Logf("  built in %v", time.Since(t0).Round(100*time.Millisecond))
	return bin, nil
}

// Block is a Caddyfile block: head, then lines indented by a tab (a line
// may be a Block itself).
func Block(head string, lines ...string) string {
	var b strings.Builder
	if head != "" {
		b.WriteString(head + " ")
	}
	b.WriteString("{\n")
	for _, l := range lines {
		b.WriteString("\t" + strings.ReplaceAll(l, "\n", "\n\t") + "\n")
	}
	b.WriteString("}")
	return b.String()
}

// Sessions is the sessions directive of the programs: r as the store, a
// new random secret, realm, the user from request header userHeader, the
// session token from the sid cookie, then more subdirectives.
func (r *Redis) Sessions(realm, userHeader string, more ...string) string {
	store := "store redis://" + r.Addrs[0] + "/0"
	if r.Cluster {
		store = Block("store", "addrs "+strings.Join(r.Addrs, " "), "cluster")
	}
	secret := make([]byte, 24)
	_, _ = rand.Read(secret)
	return Block("sessions", append([]string{store, "secret " + hex.EncodeToString(secret), "realm " + realm,
		"user {http.request.header." + userHeader + "}", "session_cookie sid"}, more...)...)
}

// Caddy is one running Caddy.
type Caddy struct {
	*Proc
	Site   string // http://127.0.0.1:port
	Admin  string // http://127.0.0.1:port of the admin endpoint
	Config string // the Caddyfile as written
}

// CaddySpec says how StartCaddy runs one Caddy.
type CaddySpec struct {
	Name string   // process name and dir under the run's temp dir
	Site []string // the directives of the one site (see Block)
	Env  []string // extra environment ("K=V"), after the isolated dirs
	// AnyStatus counts any answer to GET / as ready, not only 200 OK.
	AnyStatus bool
	// Label names the instance in the start failure message, "caddy
	// <Label> did not start"; empty means Name.
	Label string
}

// StartCaddy writes the Caddyfile, one site on a free loopback port with
// the admin endpoint on another, and runs Caddy (bin) with an isolated
// home, config and data dir, waiting until the site answers. It retries
// on other ports when one was taken meanwhile.
func StartCaddy(e *Env, bin string, s CaddySpec) (*Caddy, error) {
	if s.Label == "" {
		s.Label = s.Name
	}
	dir := filepath.Join(e.dir, s.Name)
	for _, d := range []string{"home", "data", "config"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			return nil, err
		}
	}
	var lastErr error
	for range 3 {
		port, err := redistest.Port()
		if err != nil {
			return nil, err
		}
		adminPort, err := redistest.Port()
		if err != nil {
			return nil, err
		}
		cfg := Block("", "admin 127.0.0.1:"+strconv.Itoa(adminPort), "persist_config off", "auto_https off", "grace_period 1s") +
			"\n\n" + Block("http://:"+strconv.Itoa(port), s.Site...) + "\n"
		cfgPath := filepath.Join(dir, "Caddyfile")
		if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
			return nil, err
		}
		cmd := exec.Command(bin, "run", "--config", cfgPath, "--adapter", "caddyfile")
		cmd.Dir = dir
		cmd.Env = append(os.Environ(),
			"HOME="+filepath.Join(dir, "home"),
			"XDG_DATA_HOME="+filepath.Join(dir, "data"),
			"XDG_CONFIG_HOME="+filepath.Join(dir, "config"),
		)
		cmd.Env = append(cmd.Env, s.Env...)
		p, err := e.Start(s.Name, cmd, filepath.Join(dir, "caddy.log"))
		if err != nil {
			return nil, err
		}
		c := &Caddy{Proc: p, Config: cfg, Site: fmt.Sprintf("http://127.0.0.1:%d", port), Admin: fmt.Sprintf("http://127.0.0.1:%d", adminPort)}
		if lastErr = c.waitReady(30*time.Second, s.AnyStatus); lastErr == nil {
			return c, nil
		}
		p.Kill()
		if !strings.Contains(p.LogTail(4000), "address already in use") {
			break
		}
	}
	return nil, fmt.Errorf("caddy %s did not start: %v", s.Label, lastErr)
}

func (c *Caddy) waitReady(timeout time.Duration, anyStatus bool) error {
	client := &http.Client{Timeout: time.Second}
	deadline := time.Now().Add(timeout)
	for {
		if !c.Running() {
			return fmt.Errorf("caddy exited; log %s:\n%s\n--- Caddyfile ---\n%s", c.Log, c.LogTail(4000), c.Config)
		}
		resp, err := client.Get(c.Site + "/")
		if err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK || anyStatus {
				return nil
			}
			err = fmt.Errorf("GET / answered %s", resp.Status)
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("site %s not ready within %v (%v); log %s:\n%s", c.Site, timeout, err, c.Log, c.LogTail(4000))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// AdminGet GETs path from Caddy's admin endpoint and copies the answer to
// w; an answer other than 200 OK is an error.
func (c *Caddy) AdminGet(path string, w io.Writer, timeout time.Duration) error {
	resp, err := (&http.Client{Timeout: timeout}).Get(c.Admin + path)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		return fmt.Errorf("GET %s: %s: %s", path, resp.Status, strings.TrimSpace(string(b)))
	}
	_, err = io.Copy(w, resp.Body)
	return err
}

// AdminJSON GETs path from Caddy's admin endpoint and decodes it into v.
func (c *Caddy) AdminJSON(path string, v any) error {
	var b strings.Builder
	if err := c.AdminGet(path, &b, 5*time.Second); err != nil {
		return err
	}
	return json.Unmarshal([]byte(b.String()), v)
}

// CacheEntries is the size of the module's local cache (cache_entries of
// the admin API's GET /sessions/).
func (c *Caddy) CacheEntries() (int, error) {
	var v struct {
		CacheEntries *int `json:"cache_entries"`
	}
	if err := c.AdminJSON("/sessions/", &v); err != nil {
		return 0, err
	}
	if v.CacheEntries == nil {
		return 0, errors.New("no cache_entries in the answer")
	}
	return *v.CacheEntries, nil
}

// MemStats are Go's memory statistics of Caddy (admin /debug/vars).
func (c *Caddy) MemStats() (runtime.MemStats, error) {
	var v struct {
		MemStats runtime.MemStats `json:"memstats"`
	}
	err := c.AdminJSON("/debug/vars", &v)
	return v.MemStats, err
}

// Profile saves /debug/pprof/query of Caddy's admin endpoint to path.
func (c *Caddy) Profile(path, query string, timeout time.Duration) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := c.AdminGet("/debug/pprof/"+query, f, timeout); err != nil {
		f.Close()
		_ = os.Remove(path)
		return err
	}
	return f.Close()
}

// KeepAliveClient is an HTTP client that keeps up to conns idle
// connections per host and does not follow redirects (a refusal may
// redirect: see it).
func KeepAliveClient(conns int) *http.Client {
	return &http.Client{
		Timeout: 10 * time.Second,
		Transport: &http.Transport{
			MaxIdleConnsPerHost: conns, MaxIdleConns: max(64, conns), IdleConnTimeout: time.Minute,
			DisableCompression: true,
			DialContext:        (&net.Dialer{Timeout: 2 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// Serve serves h on a free loopback port, in this process, until it exits,
// and returns the address.
func Serve(h http.Handler) (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	go func() { _ = (&http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}).Serve(l) }()
	return l.Addr().String(), nil
}

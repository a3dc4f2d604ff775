package main

import (
	"bytes"
	"embed"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"text/template"
	"time"
)

//go:embed caddyfiles/*.tmpl
var caddyfiles embed.FS

// caddyVars fill a scenario's Caddyfile template.
type caddyVars struct {
	AdminPort, Port int
	Upstream        string // host:port
	Auth            string // host:port of the session service (C)
	Store           string // the sessions store line or block (B)
	Secret          string
	Refresh         string
	IdleConns       int
}

// caddyProc is one running Caddy of one scenario.
type caddyProc struct {
	*proc
	scenario string
	site     string // http://127.0.0.1:port
	admin    string // http://127.0.0.1:port
	config   string // the Caddyfile as written
}

// buildCaddy builds cmd/caddy of the repo into dir.
func buildCaddy(repo, dir string) (string, error) {
	bin := filepath.Join(dir, "caddy")
	cmd := exec.Command("go", "build", "-o", bin, "./cmd/caddy")
	cmd.Dir = repo
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build -o %s ./cmd/caddy (in %s): %v\n%s", bin, repo, err, out)
	}
	return bin, nil
}

// startCaddy writes scenario's Caddyfile and runs Caddy with an isolated
// home, config and data dir, waiting until the site answers.
func startCaddy(e *env, bin, scenario string, v caddyVars, gomaxprocs int) (*caddyProc, error) {
	tmpl, err := template.ParseFS(caddyfiles, "caddyfiles/"+strings.ToLower(scenario)+".Caddyfile.tmpl")
	if err != nil {
		return nil, err
	}
	dir := filepath.Join(e.dir, "caddy-"+scenario)
	for _, d := range []string{"home", "data", "config"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			return nil, err
		}
	}
	var lastErr error
	for range 3 {
		if v.Port, err = freePort(); err != nil {
			return nil, err
		}
		if v.AdminPort, err = freePort(); err != nil {
			return nil, err
		}
		var buf bytes.Buffer
		if err := tmpl.Execute(&buf, v); err != nil {
			return nil, err
		}
		cfgPath := filepath.Join(dir, "Caddyfile")
		if err := os.WriteFile(cfgPath, buf.Bytes(), 0o600); err != nil {
			return nil, err
		}
		cmd := exec.Command(bin, "run", "--config", cfgPath, "--adapter", "caddyfile")
		cmd.Dir = dir
		cmd.Env = append(os.Environ(),
			"HOME="+filepath.Join(dir, "home"),
			"XDG_DATA_HOME="+filepath.Join(dir, "data"),
			"XDG_CONFIG_HOME="+filepath.Join(dir, "config"),
		)
		if gomaxprocs > 0 {
			cmd.Env = append(cmd.Env, "GOMAXPROCS="+strconv.Itoa(gomaxprocs))
		}
		logPath := filepath.Join(dir, "caddy.log")
		p, err := e.start("caddy-"+scenario, cmd, logPath)
		if err != nil {
			return nil, err
		}
		c := &caddyProc{
			proc: p, scenario: scenario, config: buf.String(),
			site:  fmt.Sprintf("http://127.0.0.1:%d", v.Port),
			admin: fmt.Sprintf("http://127.0.0.1:%d", v.AdminPort),
		}
		if lastErr = c.waitReady(30 * time.Second); lastErr == nil {
			return c, nil
		}
		p.kill()
		if !strings.Contains(p.logTail(4000), "address already in use") {
			break
		}
	}
	return nil, fmt.Errorf("caddy for scenario %s did not start: %v", scenario, lastErr)
}

func (c *caddyProc) waitReady(timeout time.Duration) error {
	client := &http.Client{Timeout: time.Second}
	deadline := time.Now().Add(timeout)
	for {
		if !c.running() {
			return fmt.Errorf("caddy exited; log %s:\n%s\n--- Caddyfile ---\n%s", c.log, c.logTail(4000), c.config)
		}
		resp, err := client.Get(c.site + "/")
		if err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK || c.scenario == "C" {
				return nil
			}
			err = fmt.Errorf("GET / answered %s", resp.Status)
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("site %s not ready within %v (%v); log %s:\n%s", c.site, timeout, err, c.log, c.logTail(4000))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// adminJSON GETs path from Caddy's admin endpoint and decodes it.
func (c *caddyProc) adminJSON(path string, v any) error {
	client := &http.Client{Timeout: 5 * time.Second}
	resp, err := client.Get(c.admin + path)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s: %s", path, resp.Status, strings.TrimSpace(string(b)))
	}
	return json.Unmarshal(b, v)
}

// cacheSize looks for the module's local cache size in the admin API's
// realm listing (GET /sessions/): any numeric field whose name contains
// "cache", at the top level or one level down. The module does not expose
// it today; then ok is false.
func (c *caddyProc) cacheSize() (n int64, field string, ok bool) {
	var top map[string]any
	if err := c.adminJSON("/sessions/", &top); err != nil {
		return 0, "", false
	}
	var walk func(prefix string, m map[string]any, depth int)
	walk = func(prefix string, m map[string]any, depth int) {
		for k, v := range m {
			switch x := v.(type) {
			case float64:
				if strings.Contains(strings.ToLower(prefix+k), "cache") {
					n += int64(x)
					field, ok = prefix+k, true
				}
			case map[string]any:
				if depth < 2 {
					walk(prefix+k+".", x, depth+1)
				}
			}
		}
	}
	walk("", top, 0)
	return n, field, ok
}

// cpuProfile saves a CPU profile of d from Caddy's admin endpoint.
func (c *caddyProc) cpuProfile(path string, d time.Duration) error {
	secs := max(1, int(d.Seconds()))
	client := &http.Client{Timeout: time.Duration(secs+30) * time.Second}
	resp, err := client.Get(fmt.Sprintf("%s/debug/pprof/profile?seconds=%d", c.admin, secs))
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		return fmt.Errorf("GET /debug/pprof/profile: %s: %s", resp.Status, strings.TrimSpace(string(b)))
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, resp.Body); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

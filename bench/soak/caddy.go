package main

// Caddy helpers, adapted from bench/caddy.go.

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"text/template"
	"time"
)

// caddyfile: the module on Redis with a bounded cache, in front of the
// upstream.
var caddyfile = template.Must(template.New("Caddyfile").Parse(`{
	admin 127.0.0.1:{{.AdminPort}}
	persist_config off
	auto_https off
	grace_period 1s
}

http://:{{.Port}} {
	sessions {
		{{.Store}}
		secret {{.Secret}}
		realm {{.Realm}}
		user {http.request.header.X-User}
		session_cookie sid
		cache_size {{.CacheSize}}
	}
	reverse_proxy {{.Upstream}} {
		transport http {
			keepalive_idle_conns_per_host 128
		}
	}
}
`))

type caddyVars struct {
	AdminPort, Port int
	Upstream        string
	Store           string
	Secret          string
	Realm           string
	CacheSize       int
}

type caddyProc struct {
	*proc
	name   string
	site   string
	admin  string
	config string
}

func buildCaddy(repo, dir string) (string, error) {
	bin := filepath.Join(dir, "caddy")
	cmd := exec.Command("go", "build", "-o", bin, "./cmd/caddy")
	cmd.Dir = repo
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build -o %s ./cmd/caddy (in %s): %v\n%s", bin, repo, err, out)
	}
	return bin, nil
}

// startCaddy runs Caddy with an isolated home, config and data dir,
// waiting until the site answers.
func startCaddy(e *env, bin, name string, v caddyVars) (*caddyProc, error) {
	dir := filepath.Join(e.dir, name)
	for _, d := range []string{"home", "data", "config"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			return nil, err
		}
	}
	var lastErr error
	for range 3 {
		var err error
		if v.Port, err = freePort(); err != nil {
			return nil, err
		}
		if v.AdminPort, err = freePort(); err != nil {
			return nil, err
		}
		var buf bytes.Buffer
		if err := caddyfile.Execute(&buf, v); err != nil {
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
		p, err := e.start(name, cmd, filepath.Join(dir, "caddy.log"))
		if err != nil {
			return nil, err
		}
		c := &caddyProc{proc: p, name: name, config: buf.String(),
			site:  fmt.Sprintf("http://127.0.0.1:%d", v.Port),
			admin: fmt.Sprintf("http://127.0.0.1:%d", v.AdminPort)}
		if lastErr = c.waitReady(30 * time.Second); lastErr == nil {
			return c, nil
		}
		p.kill()
		if !strings.Contains(p.logTail(4000), "address already in use") {
			break
		}
	}
	return nil, fmt.Errorf("caddy %s did not start: %v", name, lastErr)
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
			if resp.StatusCode == http.StatusOK {
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

package benchkit

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// Caddy is one running Caddy.
type Caddy struct {
	*Proc
	Site   string // http://127.0.0.1:port
	Admin  string // http://127.0.0.1:port of the admin endpoint
	Config string // the Caddyfile as written

	anyStatus bool
}

// CaddySpec says how StartCaddy runs one Caddy.
type CaddySpec struct {
	Name string // process name and dir under the run's temp dir
	// Config renders the Caddyfile for the site and admin ports.
	Config func(port, adminPort int) ([]byte, error)
	Env    []string // extra environment ("K=V"), after the isolated dirs
	// AnyStatus counts any answer to GET / as ready, not only 200 OK.
	AnyStatus bool
	// Label names the instance in the start failure message, "caddy
	// <Label> did not start"; empty means Name.
	Label string
}

// BuildCaddy builds cmd/caddy of the repo into dir and returns the binary.
func BuildCaddy(repo, dir string) (string, error) {
	bin := filepath.Join(dir, "caddy")
	cmd := exec.Command("go", "build", "-o", bin, "./cmd/caddy")
	cmd.Dir = repo
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build -o %s ./cmd/caddy (in %s): %v\n%s", bin, repo, err, out)
	}
	return bin, nil
}

// StartCaddy writes the Caddyfile and runs Caddy (bin) with an isolated
// home, config and data dir on free loopback ports, waiting until the site
// answers. It retries on other ports when one was taken meanwhile.
func StartCaddy(e *Env, bin string, s CaddySpec) (*Caddy, error) {
	label := s.Label
	if label == "" {
		label = s.Name
	}
	dir := filepath.Join(e.dir, s.Name)
	for _, d := range []string{"home", "data", "config"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			return nil, err
		}
	}
	var lastErr error
	for range 3 {
		port, err := FreePort()
		if err != nil {
			return nil, err
		}
		adminPort, err := FreePort()
		if err != nil {
			return nil, err
		}
		cfg, err := s.Config(port, adminPort)
		if err != nil {
			return nil, err
		}
		cfgPath := filepath.Join(dir, "Caddyfile")
		if err := os.WriteFile(cfgPath, cfg, 0o600); err != nil {
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
		c := &Caddy{
			Proc: p, Config: string(cfg), anyStatus: s.AnyStatus,
			Site:  fmt.Sprintf("http://127.0.0.1:%d", port),
			Admin: fmt.Sprintf("http://127.0.0.1:%d", adminPort),
		}
		if lastErr = c.waitReady(30 * time.Second); lastErr == nil {
			return c, nil
		}
		p.Kill()
		if !strings.Contains(p.LogTail(4000), "address already in use") {
			break
		}
	}
	return nil, fmt.Errorf("caddy %s did not start: %v", label, lastErr)
}

func (c *Caddy) waitReady(timeout time.Duration) error {
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
			if resp.StatusCode == http.StatusOK || c.anyStatus {
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

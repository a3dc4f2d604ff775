package main

import (
	"bytes"
	"embed"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"text/template"
	"time"

	"github.com/caddy-sessions/caddy-sessions/bench/internal/benchkit"
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
	*benchkit.Caddy
}

// startCaddy writes scenario's Caddyfile and runs Caddy with an isolated
// home, config and data dir, waiting until the site answers.
func startCaddy(e *benchkit.Env, bin, scenario string, v caddyVars, gomaxprocs int) (*caddyProc, error) {
	tmpl, err := template.ParseFS(caddyfiles, "caddyfiles/"+strings.ToLower(scenario)+".Caddyfile.tmpl")
	if err != nil {
		return nil, err
	}
	spec := benchkit.CaddySpec{
		Name: "caddy-" + scenario,
		Config: func(port, adminPort int) ([]byte, error) {
			v.Port, v.AdminPort = port, adminPort
			var buf bytes.Buffer
			err := tmpl.Execute(&buf, v)
			return buf.Bytes(), err
		},
		AnyStatus: scenario == "C",
		Label:     "for scenario " + scenario,
	}
	if gomaxprocs > 0 {
		spec.Env = []string{"GOMAXPROCS=" + strconv.Itoa(gomaxprocs)}
	}
	c, err := benchkit.StartCaddy(e, bin, spec)
	if err != nil {
		return nil, err
	}
	return &caddyProc{c}, nil
}

// adminJSON GETs path from Caddy's admin endpoint and decodes it.
func (c *caddyProc) adminJSON(path string, v any) error {
	client := &http.Client{Timeout: 5 * time.Second}
	resp, err := client.Get(c.Admin + path)
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
	return c.saveProfile(path, fmt.Sprintf("profile?seconds=%d", secs), time.Duration(secs+30)*time.Second)
}

// heapProfile saves Caddy's live heap, after a GC, from its admin endpoint.
func (c *caddyProc) heapProfile(path string) error {
	return c.saveProfile(path, "heap?gc=1", 30*time.Second)
}

func (c *caddyProc) saveProfile(path, query string, timeout time.Duration) error {
	client := &http.Client{Timeout: timeout}
	resp, err := client.Get(c.Admin + "/debug/pprof/" + query)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		return fmt.Errorf("GET /debug/pprof/%s: %s: %s", query, resp.Status, strings.TrimSpace(string(b)))
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

// goMem is the part of Caddy's runtime.MemStats (admin /debug/vars) the
// bench compares between scenarios.
type goMem struct {
	Mallocs    uint64 `json:"Mallocs"`
	TotalAlloc uint64 `json:"TotalAlloc"`
	NumGC      uint32 `json:"NumGC"`
	NextGC     uint64 `json:"NextGC"`
	HeapAlloc  uint64 `json:"HeapAlloc"`
}

// goMemStats reads Caddy's Go memory statistics.
func (c *caddyProc) goMemStats() (goMem, error) {
	var v struct {
		MemStats goMem `json:"memstats"`
	}
	err := c.adminJSON("/debug/vars", &v)
	return v.MemStats, err
}

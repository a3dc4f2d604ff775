// Command demo runs the demo shop behind Caddy with caddy-sessions on the
// memory store, and prints the URLs to open:
//
//	go run ./examples/demo
package main

import (
	_ "embed"
	"flag"
	"fmt"
	"log"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
	_ "github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	_ "github.com/caddyserver/caddy/v2/modules/standard"

	_ "github.com/caddy-sessions/caddy-sessions"
	"github.com/caddy-sessions/caddy-sessions/internal/shop"
)

//go:embed Caddyfile
var caddyfile []byte

func main() {
	addr := flag.String("addr", "localhost:8080", "address the demo site listens on")
	adminAddr := flag.String("admin", "localhost:2019", "Caddy admin endpoint (admin API under /sessions/)")
	geoip := flag.String("geoip", defaultGeoIP(), "MaxMind City database (empty: no locations)")
	flag.Parse()

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	go func() { log.Fatal(http.Serve(ln, shop.New(shop.Options{Rotate: true}))) }()

	for k, v := range map[string]string{"DEMO_ADDR": *addr, "DEMO_ADMIN": *adminAddr, "DEMO_SHOP": ln.Addr().String(), "DEMO_GEOIP": *geoip} {
		os.Setenv(k, v)
	}
	body := caddyfile
	if *geoip == "" {
		body = []byte(removeLine(string(body), "geoip"))
	}
	cfg, warnings, err := caddyconfig.GetAdapter("caddyfile").Adapt(body, map[string]any{"filename": "examples/demo/Caddyfile"})
	if err != nil {
		log.Fatalf("adapting the demo Caddyfile: %v", err)
	}
	for _, w := range warnings {
		log.Printf("caddyfile: %s", w.String())
	}
	if err := caddy.Load(cfg, true); err != nil {
		log.Fatalf("starting caddy: %v", err)
	}

	fmt.Printf(`
caddy-sessions demo is running.

  Shop (log in as alice/alice, bob/bob or carol/carol):  http://%[1]s/
  Your sessions (after logging in):                    http://%[1]s/sessions/
  Admin dashboard (admin / demo-admin):                http://%[1]s/admin/sessions/
  Admin API, e.g. alice's active sessions:             http://%[2]s/sessions/%[3]s/users/alice/sessions
  Revoke all of alice's sessions:                      curl -X DELETE http://%[2]s/sessions/%[3]s/users/alice/sessions

Log in from two browsers (or a private window) to see two sessions.
Stop with Ctrl-C.
`, *addr, *adminAddr, "default") // the Caddyfile names no realm

	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	<-sig
	_ = caddy.Stop()
}

// defaultGeoIP is MaxMind's test database shipped with the tests: it knows
// a few addresses only (81.2.69.142 is London), enough to try X-Forwarded-For.
func defaultGeoIP() string {
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		return ""
	}
	p := filepath.Join(filepath.Dir(file), "..", "..", "tracker", "testdata", "geoip", "GeoIP2-City-Test.mmdb")
	if _, err := os.Stat(p); err != nil {
		return ""
	}
	return p
}

func removeLine(s, prefix string) string {
	var out []string
	for _, line := range strings.Split(s, "\n") {
		if !strings.HasPrefix(strings.TrimSpace(line), prefix) {
			out = append(out, line)
		}
	}
	return strings.Join(out, "\n")
}

package main

import (
	"fmt"
	"strconv"

	"github.com/caddy-sessions/caddy-sessions/bench/internal/benchkit"
)

// startCaddies starts one Caddy per scenario of the run, each with the
// same upstream, load and reverse_proxy: A plain reverse_proxy (the
// baseline); B caddy-sessions on Redis, the user from a request header and
// the session token from the sid cookie, so the first request of each
// session opens it (first authenticated sight); C the peer approach,
// forward_auth to a session service that looks the sid cookie up in Redis
// on every request. upstream and auth are host:port.
func (b *bench) startCaddies(bin, upstream, auth string) error {
	idle := benchkit.Block("transport http", fmt.Sprintf("keepalive_idle_conns_per_host %d", max(32, 2*b.o.connections)))
	proxy := benchkit.Block("reverse_proxy "+upstream, idle)
	sites := map[string][]string{
		"A": {proxy},
		"B": {b.rs.Sessions("bench", "X-Bench-User", "refresh_interval "+b.o.refresh.String()), proxy},
		"C": {benchkit.Block("forward_auth "+auth, "uri /auth", "copy_headers X-Bench-User", idle), proxy},
	}
	for _, sc := range []string{"A", "B", "C"} {
		if !b.o.has(sc) {
			continue
		}
		spec := benchkit.CaddySpec{Name: "caddy-" + sc, Site: sites[sc], AnyStatus: sc == "C", Label: "for scenario " + sc}
		if b.o.caddyProcs > 0 {
			spec.Env = []string{"GOMAXPROCS=" + strconv.Itoa(b.o.caddyProcs)}
		}
		c, err := benchkit.StartCaddy(b.e, bin, spec)
		if err != nil {
			return err
		}
		b.caddies[sc] = c
		logf("  caddy %s (%s) at %s, pid %d", sc, title(sc), c.Site, c.PID())
	}
	return nil
}

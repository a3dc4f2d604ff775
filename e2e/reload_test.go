package e2e

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/caddy-sessions/caddy-sessions/internal/redistest"
)

// Reloading with a changed config under load, many times: afterwards the
// process is back to its goroutines, Redis connections and file
// descriptors (Cleanup undoes what Provision did). The site answers
// itself (respond), so what is counted is the module's, not a reverse
// proxy's connections to its upstream; the baseline is taken after a few
// reloads under load, once the Redis client's pool has grown to what the
// load needs (it is bounded, and keeps idle connections).
func TestReloadsUnderLoadLeaveNothing(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	site := func(n int) string {
		return caddyfile("", "sessions {\n\tstore "+srv.URL()+"\n\tsecret "+e2eSecret+"\n\trealm reloads\n\tuser {http.request.header.X-User}\n}\n"+
			fmt.Sprintf("respond \"reload %d\"", n))
	}
	c := startCaddy(t, site(0))
	admin := srv.Client(t)
	browsers := []*client{newClient(t, uaChromeWindows, ipLondon), newClient(t, uaIPhone, ipMilton)}
	measure := func() (g, conns, fds int) {
		g = goroutines(t, c)
		list, err := admin.ClientList(context.Background()).Result()
		if err != nil {
			t.Fatal(err)
		}
		conns = strings.Count(strings.TrimSpace(list), "\n") // not counting the test's own
		ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", c.cmd.Process.Pid))
		if err != nil {
			t.Fatal(err)
		}
		return g, conns, len(ents)
	}
	var errs sync.Map
	load := func(reloads, from int) {
		stop := make(chan struct{})
		var wg sync.WaitGroup
		for i, b := range browsers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for {
					select {
					case <-stop:
						return
					default:
					}
					r, err := b.send(true, http.MethodGet, c.Site+"/", nil, func(q *http.Request) { q.Header.Set("X-User", []string{"alice", "bob"}[i]) })
					if err == nil && r.Status >= 500 {
						errs.Store(r.String(), true)
					}
				}
			}()
		}
		for i := range reloads {
			c.Reload(t, site(from+i))
		}
		close(stop)
		wg.Wait()
		for _, b := range browsers {
			b.raw.Transport.(*http.Transport).CloseIdleConnections()
		}
	}
	load(3, 1)
	g0, c0, f0 := measure()
	const reloads = 15
	load(reloads, 10)
	errs.Range(func(k, _ any) bool { t.Errorf("5xx during reloads: %v", k); return true })
	var g, conns, fds int
	deadline := time.Now().Add(15 * time.Second)
	for {
		g, conns, fds = measure()
		if g <= g0+5 && conns <= c0+2 && fds <= f0+2 {
			break
		}
		if time.Now().After(deadline) {
			_, body := c.adminDo(t, http.MethodGet, "/debug/pprof/goroutine?debug=1")
			t.Errorf("%d reloads later: %d goroutines (%d before), %d Redis connections (%d), %d descriptors (%d); goroutines:\n%s",
				reloads, g, g0, conns, c0, fds, f0, body)
			break
		}
		time.Sleep(100 * time.Millisecond) // polling the counts, not waiting blind
	}
	t.Logf("%d reloads under load: %d goroutines (%d before), %d Redis connections (%d), %d descriptors (%d)", reloads, g, g0, conns, c0, fds, f0)
}

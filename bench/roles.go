package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/caddy-sessions/caddy-sessions/bench/internal/benchkit"
	"github.com/redis/go-redis/v9"
)

// The upstream and the forward_auth session service run as child processes
// of the bench binary itself (-role), so their CPU time and memory are
// accounted apart from the bench and from Caddy.

// upstreamBody is what the upstream answers to every request.
var upstreamBody = []byte("hello from the upstream\n")

// authKeyPrefix prefixes the session keys of the forward_auth service.
const authKeyPrefix = "bench:fa:"

// runRole runs a child role until killed, or returns why it cannot. It
// prints "LISTEN <addr>" on stdout once it accepts connections.
func runRole(role, redisAddrs string, cluster bool) error {
	var h http.Handler
	switch role {
	case "upstream":
		h = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/plain; charset=utf-8")
			_, _ = w.Write(upstreamBody)
		})
	case "auth":
		var err error
		if h, err = newAuthService(strings.Split(redisAddrs, ","), cluster); err != nil {
			return err
		}
	default:
		return fmt.Errorf("unknown role %q", role)
	}
	addr, err := benchkit.Serve(h)
	if err != nil {
		return err
	}
	fmt.Printf("LISTEN %s\n", addr)
	select {} // until killed
}

// newAuthService is the peer approach of scenario C: a session service
// behind forward_auth that looks the session cookie up in Redis on every
// request (one GET), answering 200 with the user in X-Bench-User, or 401.
func newAuthService(addrs []string, cluster bool) (http.Handler, error) {
	var rdb redis.UniversalClient
	if cluster {
		rdb = redis.NewClusterClient(&redis.ClusterOptions{Addrs: addrs, PoolSize: 256})
	} else {
		rdb = redis.NewClient(&redis.Options{Addr: addrs[0], PoolSize: 256})
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := rdb.Ping(ctx).Err(); err != nil {
		return nil, fmt.Errorf("auth service: redis: %w", err)
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := r.Cookie("sid")
		if err != nil || c.Value == "" {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		user, err := rdb.Get(r.Context(), authKeyPrefix+c.Value).Result()
		switch {
		case errors.Is(err, redis.Nil):
			w.WriteHeader(http.StatusUnauthorized)
		case err != nil:
			w.WriteHeader(http.StatusBadGateway)
		default:
			w.Header().Set("X-Bench-User", user)
			w.WriteHeader(http.StatusOK)
		}
	}), nil
}

// startRole starts the bench binary as a child in role and returns its
// process and listen address.
func startRole(e *benchkit.Env, role string, extra ...string) (*benchkit.Proc, string, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, "", err
	}
	cmd := exec.Command(self, append([]string{"-role", role}, extra...)...)
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, "", err
	}
	logPath := filepath.Join(e.Dir(), role+".log")
	p, err := e.Start(role, cmd, logPath)
	if err != nil {
		return nil, "", err
	}
	type res struct {
		line string
		err  error
	}
	ch := make(chan res, 1)
	go func() {
		line, err := bufio.NewReader(out).ReadString('\n')
		ch <- res{line, err}
	}()
	select {
	case r := <-ch:
		addr, ok := strings.CutPrefix(strings.TrimSpace(r.line), "LISTEN ")
		if r.err != nil || !ok {
			p.Kill()
			return nil, "", fmt.Errorf("%s did not start (%v); log:\n%s", role, r.err, p.LogTail(3000))
		}
		return p, addr, nil
	case <-time.After(15 * time.Second):
		p.Kill()
		return nil, "", fmt.Errorf("%s did not start within 15s; log:\n%s", role, p.LogTail(3000))
	}
}

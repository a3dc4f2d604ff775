// Package redistest starts real, throw-away redis-server processes for tests
// and benchmarks, and reads their statistics (stats.go).
//
// Every server is bound to 127.0.0.1 on a free port, keeps no data on disk
// (--save "" --appendonly no) and logs into a directory of its own: for a
// test (Start, StartCluster, StartClusterWithReplicas) its own
// tb.TempDir(), and it is killed by
// tb.Cleanup; for a program (Launch, LaunchCluster) one under Options.Dir,
// and the program stops it (Close). The helpers only ever talk to servers
// they started themselves, so they never touch a developer's or CI's own
// Redis.
//
// redis-server and redis-cli must be on PATH; run scripts/install-deps.sh.
// A missing binary is a test failure, never a skip: a skipped Redis test
// would silently hide broken session handling.
package redistest

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

const (
	readyTimeout        = 10 * time.Second
	clusterReadyTimeout = 20 * time.Second
	// startAttempts bounds retries when another process grabs the port
	// between FreePort closing it and redis-server binding it.
	startAttempts = 5
	clusterSlots  = 16384
	// clusterMasters is the number of masters of every test cluster.
	clusterMasters = 3
	// clusterBusOffset is the fixed distance between a node's client port and
	// its cluster bus port (Redis default when cluster-port is not set).
	clusterBusOffset = 10000
	logTailBytes     = 4096
)

const installHint = "run scripts/install-deps.sh (installs the Debian packages redis-server and redis-tools)"

// Server is one standalone (or cluster-node) redis-server process owned by a
// test or a program.
type Server struct {
	// Addr is host:port, e.g. "127.0.0.1:41234".
	Addr string

	port    int
	bin     string
	dir     string
	logPath string
	args    []string              // full argument list, reused verbatim by Restart
	spawn   func(*exec.Cmd) error // starts the process (Options.Spawn)

	mu     sync.Mutex
	cmd    *exec.Cmd
	exited chan struct{} // closed once cmd has been reaped

	// admin backs ScanAll; go-redis reconnects by itself after Restart.
	admin *redis.Client
}

// Start starts a standalone redis-server on a free loopback port and waits
// until it answers PING. The process is killed when the test ends.
func Start(tb testing.TB) *Server {
	tb.Helper()
	s, err := testLauncher(tb).server(false)
	if err != nil {
		tb.Fatalf("redistest: %v", err)
	}
	tb.Cleanup(s.Close)
	return s
}

// Options say how Launch and LaunchCluster start servers for a program
// that is not a test (the benchmarks).
type Options struct {
	// Dir is where each server gets a directory of its own ("redis-*")
	// for its log and, on a cluster node, its nodes.conf.
	Dir string
	// Args are extra redis-server arguments.
	Args []string
	// Spawn starts each redis-server process; nil means StartProcess.
	// A replacement should start it with StartProcess too.
	Spawn func(*exec.Cmd) error
}

// Launch starts a standalone server as Start does, for a program: the
// caller stops it with Close.
func Launch(o Options) (*Server, error) { return o.launcher().server(false) }

// LaunchCluster starts a cluster as StartCluster does, for a program: the
// caller stops it with Close.
func LaunchCluster(o Options) (*Cluster, error) { return o.launcher().cluster(true, false) }

// launcher starts servers, each in a new directory from dir.
type launcher struct {
	dir   func() (string, error)
	args  []string
	spawn func(*exec.Cmd) error
}

func testLauncher(tb testing.TB) launcher {
	return launcher{dir: func() (string, error) { return tb.TempDir(), nil }, spawn: StartProcess}
}

func (o Options) launcher() launcher {
	l := launcher{args: o.Args, spawn: o.Spawn, dir: func() (string, error) { return os.MkdirTemp(o.Dir, "redis-") }}
	if l.spawn == nil {
		l.spawn = StartProcess
	}
	return l
}

// Close stops the server and closes its admin client.
func (s *Server) Close() {
	s.Stop()
	_ = s.admin.Close()
}

// URL returns a redis:// URL for database 0 of s.
func (s *Server) URL() string { return "redis://" + s.Addr + "/0" }

// Client returns a new go-redis client for s, closed when the test ends.
func (s *Server) Client(tb testing.TB) *redis.Client {
	tb.Helper()
	c := redis.NewClient(&redis.Options{Addr: s.Addr})
	tb.Cleanup(func() { _ = c.Close() })
	return c
}

// Stop kills the server (SIGKILL, like a crash) and waits for it to exit.
// It is meant for "Redis is down" tests and is safe to call repeatedly.
func (s *Server) Stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stopLocked()
}

func (s *Server) stopLocked() {
	if s.cmd == nil {
		return
	}
	_ = s.cmd.Process.Kill()
	<-s.exited
	s.cmd, s.exited = nil, nil
}

// Restart starts the server again on the same port (after Stop) so tests can
// check behaviour when Redis comes back. Data is not preserved; cluster nodes
// keep their nodes.conf and rejoin their cluster. If the server is still
// running it is killed first.
func (s *Server) Restart(tb testing.TB) {
	tb.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stopLocked()
	var err error
	// The port is ours, but a random outgoing connection elsewhere on the
	// machine can briefly hold it; retry a little before giving up.
	for attempt := 0; attempt < startAttempts; attempt++ {
		if err = s.spawnLocked(); err == nil {
			return
		}
		if !errors.Is(err, errAddrInUse) {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	tb.Fatalf("redistest: restarting redis-server on %s: %v", s.Addr, err)
}

// ScanAll returns all keys matching pattern (SCAN MATCH), sorted.
func (s *Server) ScanAll(ctx context.Context, pattern string) ([]string, error) {
	keys, err := scanAll(ctx, s.admin, pattern)
	sort.Strings(keys)
	return keys, err
}

// FreePort returns a loopback TCP port that was free a moment ago and has
// not been handed out before by this process.
func FreePort(tb testing.TB) int {
	tb.Helper()
	p, err := freePort()
	if err != nil {
		tb.Fatalf("redistest: finding a free port: %v", err)
	}
	return p
}

// Port is FreePort for a program.
func Port() (int, error) { return freePort() }

var (
	portsMu   sync.Mutex
	usedPorts = map[int]bool{} // never hand out a port twice, e.g. to two cluster nodes
)

func claimPort(p int) bool {
	portsMu.Lock()
	defer portsMu.Unlock()
	if usedPorts[p] {
		return false
	}
	usedPorts[p] = true
	return true
}

func freePort() (int, error) {
	for i := 0; i < 50; i++ {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return 0, err
		}
		p := l.Addr().(*net.TCPAddr).Port
		_ = l.Close()
		if claimPort(p) {
			return p, nil
		}
	}
	return 0, errors.New("no unused port after 50 attempts")
}

func portFree(p int) bool {
	l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(p)))
	if err != nil {
		return false
	}
	_ = l.Close()
	return true
}

var errAddrInUse = errors.New("address already in use")

// server picks a port, starts redis-server with the common flags (and a
// cluster node's) plus l.args and waits for PING, retrying with a new port
// on bind conflicts.
func (l launcher) server(cluster bool) (*Server, error) {
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		return nil, fmt.Errorf("redis-server not found on PATH (%v); %s", err, installHint)
	}
	dir, err := l.dir()
	if err != nil {
		return nil, err
	}
	s := &Server{bin: bin, dir: dir, logPath: filepath.Join(dir, "redis.log"), spawn: l.spawn}
	extra := l.args
	if cluster {
		extra = append([]string{
			"--cluster-enabled", "yes",
			"--cluster-config-file", filepath.Join(dir, "nodes.conf"),
			"--cluster-node-timeout", "2000",
		}, extra...)
	}
	for attempt := 1; ; attempt++ {
		pick := freePort
		if cluster {
			pick = clusterPort
		}
		if s.port, err = pick(); err != nil {
			return nil, err
		}
		s.Addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(s.port))
		s.args = append([]string{
			"--port", strconv.Itoa(s.port),
			"--bind", "127.0.0.1",
			"--save", "",
			"--appendonly", "no",
			"--dir", dir,
			"--daemonize", "no",
			"--logfile", "", // log to stdout, i.e. our log file
		}, extra...)
		s.mu.Lock()
		err = s.spawnLocked()
		s.mu.Unlock()
		if err == nil {
			// No CLIENT SETINFO: Redis before 7.2 counts it as an error.
			s.admin = redis.NewClient(&redis.Options{Addr: s.Addr, DisableIdentity: true})
			return s, nil
		}
		if !errors.Is(err, errAddrInUse) || attempt >= startAttempts {
			return nil, fmt.Errorf("starting redis-server: %w", err)
		}
	}
}

// spawnLocked starts the process with s.args and waits until it answers
// PING. On failure the process is gone and the error carries the log tail.
func (s *Server) spawnLocked() error {
	logf, err := os.OpenFile(s.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	shown := make([]string, len(s.args))
	for i, a := range s.args {
		if shown[i] = a; a == "" {
			shown[i] = `""`
		}
	}
	fmt.Fprintf(logf, "### redistest: %s %s\n", s.bin, strings.Join(shown, " "))
	cmd := exec.Command(s.bin, s.args...)
	cmd.Dir = s.dir
	cmd.Stdout, cmd.Stderr = logf, logf
	err = s.spawn(cmd)
	_ = logf.Close() // the child holds its own copy of the fd
	if err != nil {
		return fmt.Errorf("exec %s: %w", s.bin, err)
	}
	exited := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(exited)
	}()
	s.cmd, s.exited = cmd, exited

	deadline := time.Now().Add(readyTimeout)
	for {
		select {
		case <-exited:
			s.cmd, s.exited = nil, nil
			tail := s.logTail()
			if strings.Contains(tail, "Address already in use") {
				return fmt.Errorf("%w on %s; log %s:\n%s", errAddrInUse, s.Addr, s.logPath, tail)
			}
			return fmt.Errorf("redis-server exited during startup (%v); log %s:\n%s", cmd.ProcessState, s.logPath, tail)
		default:
		}
		if pingRaw(s.Addr) == nil {
			return nil
		}
		if time.Now().After(deadline) {
			s.stopLocked()
			return fmt.Errorf("redis-server on %s did not answer PING within %v; log %s:\n%s",
				s.Addr, readyTimeout, s.logPath, s.logTail())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (s *Server) logTail() string {
	b, err := os.ReadFile(s.logPath)
	if err != nil {
		return fmt.Sprintf("(cannot read log: %v)", err)
	}
	if len(b) > logTailBytes {
		b = b[len(b)-logTailBytes:]
	}
	return string(b)
}

// pingRaw speaks RESP directly so readiness checks need no client pool and
// cannot be confused by client-side retries.
func pingRaw(addr string) error {
	conn, err := net.DialTimeout("tcp", addr, 250*time.Millisecond)
	if err != nil {
		return err
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(time.Second))
	if _, err := conn.Write([]byte("*1\r\n$4\r\nPING\r\n")); err != nil {
		return err
	}
	line, err := bufio.NewReader(conn).ReadString('\n')
	if err != nil {
		return err
	}
	if strings.TrimSpace(line) != "+PONG" { // e.g. -LOADING
		return fmt.Errorf("PING answered %q", strings.TrimSpace(line))
	}
	return nil
}

func parseInfo(info string) map[string]string {
	m := map[string]string{}
	for _, line := range strings.Split(info, "\n") {
		if k, v, ok := strings.Cut(strings.TrimSpace(line), ":"); ok {
			m[k] = v
		}
	}
	return m
}

func scanAll(ctx context.Context, c *redis.Client, pattern string) ([]string, error) {
	var keys []string
	iter := c.Scan(ctx, 0, pattern, 1000).Iterator()
	for iter.Next(ctx) {
		keys = append(keys, iter.Val())
	}
	return keys, iter.Err()
}

package main

// Process and port helpers, copied (trimmed) from bench/procs.go: package
// main cannot be imported.

import (
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"runtime"
	"strconv"
	"sync"
	"syscall"
	"time"
)

// env owns the temp dir and every child process of one run. All children
// are killed and the dir removed by cleanup, which runs on normal exit, on
// error and on SIGINT/SIGTERM. Children also get PDEATHSIG, so a crash of
// this process (panic, SIGKILL) takes them down too.
type env struct {
	dir  string
	keep bool

	mu      sync.Mutex
	procs   []*proc
	cleaned bool
}

// proc is one child process.
type proc struct {
	name   string
	cmd    *exec.Cmd
	log    string
	exited chan struct{}
}

func newEnv(keep bool) (*env, error) {
	dir, err := os.MkdirTemp("", "caddy-sessions-"+progName+"-")
	if err != nil {
		return nil, err
	}
	e := &env{dir: dir, keep: keep}
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM, syscall.SIGHUP)
	go func() {
		s := <-sig
		fmt.Fprintf(os.Stderr, "\n%s: %v: stopping all processes\n", progName, s)
		e.cleanup()
		os.Exit(130)
	}()
	return e, nil
}

// cleanup kills every child and removes the temp dir. Safe to call twice.
func (e *env) cleanup() {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.cleaned {
		return
	}
	e.cleaned = true
	for i := len(e.procs) - 1; i >= 0; i-- {
		e.procs[i].kill()
	}
	if e.keep {
		fmt.Fprintf(os.Stderr, "%s: kept %s\n", progName, e.dir)
		return
	}
	_ = os.RemoveAll(e.dir)
}

// start starts cmd as a child of the run, logging to logPath unless cmd
// already has Stdout/Stderr set.
func (e *env) start(name string, cmd *exec.Cmd, logPath string) (*proc, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.cleaned {
		return nil, errors.New("shutting down")
	}
	var logf *os.File
	if logPath != "" {
		f, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
		if err != nil {
			return nil, err
		}
		logf = f
		if cmd.Stdout == nil {
			cmd.Stdout = f
		}
		if cmd.Stderr == nil {
			cmd.Stderr = f
		}
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	err := spawn(cmd)
	if logf != nil {
		_ = logf.Close()
	}
	if err != nil {
		return nil, fmt.Errorf("starting %s (%s): %w", name, cmd.Path, err)
	}
	p := &proc{name: name, cmd: cmd, log: logPath, exited: make(chan struct{})}
	go func() {
		_ = cmd.Wait()
		close(p.exited)
	}()
	e.procs = append(e.procs, p)
	return p, nil
}

func (p *proc) pid() int { return p.cmd.Process.Pid }

func (p *proc) running() bool {
	select {
	case <-p.exited:
		return false
	default:
		return true
	}
}

func (p *proc) kill() {
	if !p.running() {
		return
	}
	_ = p.cmd.Process.Kill()
	select {
	case <-p.exited:
	case <-time.After(5 * time.Second):
	}
}

func (p *proc) logTail(n int) string {
	if p.log == "" {
		return "(no log)"
	}
	b, err := os.ReadFile(p.log)
	if err != nil {
		return fmt.Sprintf("(cannot read %s: %v)", p.log, err)
	}
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return string(b)
}

// spawn forks every child from one goroutine locked to a thread that lives
// as long as the process: PDEATHSIG fires when the forking thread exits.
func spawn(cmd *exec.Cmd) error {
	spawnOnce.Do(func() {
		spawnCh = make(chan spawnReq)
		go func() {
			runtime.LockOSThread() // never unlocked
			for r := range spawnCh {
				r.done <- r.cmd.Start()
			}
		}()
	})
	r := spawnReq{cmd: cmd, done: make(chan error, 1)}
	spawnCh <- r
	return <-r.done
}

type spawnReq struct {
	cmd  *exec.Cmd
	done chan error
}

var (
	spawnOnce sync.Once
	spawnCh   chan spawnReq
)

// freePort is a loopback TCP port that was free a moment ago and that this
// process has not handed out before.
func freePort() (int, error) {
	for range 50 {
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
	return 0, errors.New("no unused loopback port after 50 attempts")
}

var (
	portsMu   sync.Mutex
	usedPorts = map[int]bool{}
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

func portFree(p int) bool {
	l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(p)))
	if err != nil {
		return false
	}
	_ = l.Close()
	return true
}

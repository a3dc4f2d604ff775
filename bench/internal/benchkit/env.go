// Package benchkit holds what the bench programs (bench, bench/memory,
// bench/propagation, bench/soak) share: child processes that never outlive
// the run, free loopback ports, a redis-server or 3-master cluster of their
// own, a Caddy built from the repository, and small formatting helpers.
package benchkit

import (
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/caddy-sessions/caddy-sessions/internal/redistest"
)

// Env owns the temp dir and every child process of one run. All children
// are killed and the dir removed by Cleanup, which runs on normal exit, on
// error and on SIGINT/SIGTERM. Children also get PDEATHSIG, so a crash of
// this process (panic, SIGKILL) takes them down too.
type Env struct {
	prog string
	dir  string
	keep bool

	mu      sync.Mutex
	procs   []*Proc
	cleaned bool
}

// Proc is one child process.
type Proc struct {
	Name   string
	Cmd    *exec.Cmd
	Log    string // log file path; "" when the caller set Stdout/Stderr
	exited chan struct{}
}

// NewEnv creates the run's temp dir and stops everything on a signal. prog
// names the program in the temp dir's name and in messages; keep keeps the
// dir after Cleanup.
func NewEnv(prog string, keep bool) (*Env, error) {
	dir, err := os.MkdirTemp("", "caddy-sessions-"+prog+"-")
	if err != nil {
		return nil, err
	}
	e := &Env{prog: prog, dir: dir, keep: keep}
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM, syscall.SIGHUP)
	go func() {
		s := <-sig
		fmt.Fprintf(os.Stderr, "\n%s: %v: stopping all processes\n", prog, s)
		e.Cleanup()
		os.Exit(130)
	}()
	return e, nil
}

// Dir is the run's temp dir.
func (e *Env) Dir() string { return e.dir }

// Cleanup kills every child (SIGKILL: nothing they hold is worth keeping)
// and removes the temp dir. Safe to call more than once.
func (e *Env) Cleanup() {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.cleaned {
		return
	}
	e.cleaned = true
	for i := len(e.procs) - 1; i >= 0; i-- {
		e.procs[i].Kill()
	}
	if e.keep {
		fmt.Fprintf(os.Stderr, "%s: kept %s\n", e.prog, e.dir)
		return
	}
	_ = os.RemoveAll(e.dir)
}

// Start starts cmd as a child of the run, logging to logPath unless cmd
// already has Stdout/Stderr set.
func (e *Env) Start(name string, cmd *exec.Cmd, logPath string) (*Proc, error) {
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
	// Own process group: a ^C in the terminal reaches only this process,
	// which then stops everything in order.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	err := redistest.StartProcess(cmd) // with the parent-death signal
	if logf != nil {
		_ = logf.Close() // the child holds its own copy
	}
	if err != nil {
		return nil, fmt.Errorf("starting %s (%s): %w", name, cmd.Path, err)
	}
	p := &Proc{Name: name, Cmd: cmd, Log: logPath, exited: make(chan struct{})}
	go func() {
		_ = cmd.Wait()
		close(p.exited)
	}()
	e.procs = append(e.procs, p)
	return p, nil
}

// PID is the process id.
func (p *Proc) PID() int { return p.Cmd.Process.Pid }

// Exited is closed once the process has exited and been waited for.
func (p *Proc) Exited() <-chan struct{} { return p.exited }

// Running tells whether the process has not exited yet.
func (p *Proc) Running() bool {
	select {
	case <-p.exited:
		return false
	default:
		return true
	}
}

// Kill sends SIGKILL and waits up to 5s for the process to exit.
func (p *Proc) Kill() {
	if !p.Running() {
		return
	}
	_ = p.Cmd.Process.Kill()
	select {
	case <-p.exited:
	case <-time.After(5 * time.Second):
	}
}

// LogTail is the last n bytes of the process log, for error messages.
func (p *Proc) LogTail(n int) string {
	if p.Log == "" {
		return "(no log)"
	}
	return fileTail(p.Log, n)
}

// fileTail is the last n bytes of the file at path, or a note saying why it
// cannot be read.
func fileTail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Sprintf("(cannot read %s: %v)", path, err)
	}
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return string(b)
}

// FreePort is a loopback TCP port that was free a moment ago and that this
// process has not handed out before.
func FreePort() (int, error) {
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

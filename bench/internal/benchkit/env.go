// Package benchkit is what the bench programs (bench, bench/memory,
// bench/propagation, bench/soak) share: Main and the run's Env (temp dir,
// child processes that never outlive the run), Redis started with
// internal/redistest as the tests start it, Caddy built from the
// repository with a generated Caddyfile, and small formatting helpers.
package benchkit

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/caddy-sessions/caddy-sessions/internal/redistest"
)

// prog names the program in Logf and in messages; Main sets it.
var prog = "bench"

// Logf prints a progress line on stderr.
func Logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, prog+": "+format+"\n", args...)
}

// Main runs the program name from the repository root: it creates the
// run's Env (keep keeps its temp dir), calls run and cleans up. It exits 2
// when not run from the repository, 1 with "name: FAILED: <error>" when run
// fails, else with run's code.
func Main(name string, keep bool, run func(*Env) (int, error)) {
	prog = name
	repo, err := repoRoot()
	if err != nil {
		fmt.Fprintf(os.Stderr, "%s: %v\n", name, err)
		os.Exit(2)
	}
	e, err := newEnv(repo, keep)
	if err != nil {
		fmt.Fprintf(os.Stderr, "%s: %v\n", name, err)
		os.Exit(1)
	}
	code, err := run(e)
	e.Cleanup()
	if err != nil {
		fmt.Fprintf(os.Stderr, "\n%s: FAILED: %v\n", name, err)
		os.Exit(1)
	}
	os.Exit(code)
}

// repoRoot is the caddy-sessions checkout the program runs from (go env
// GOMOD).
func repoRoot() (string, error) {
	out, err := exec.Command("go", "env", "GOMOD").Output()
	gomod := strings.TrimSpace(string(out))
	if err != nil || gomod == "" || gomod == os.DevNull {
		return "", fmt.Errorf("run from the repository root: go env GOMOD = %q (%v)", gomod, err)
	}
	dir := filepath.Dir(gomod)
	if _, err := os.Stat(filepath.Join(dir, "cmd", "caddy", "main.go")); err != nil {
		return "", fmt.Errorf("%s does not look like the caddy-sessions repository: %v", dir, err)
	}
	return dir, nil
}

// Env owns the temp dir and every child process of one run. Cleanup kills
// the children and removes the dir; it runs on normal exit, on error and on
// SIGINT/SIGTERM. Children also get PDEATHSIG, so a crash of this process
// (panic, SIGKILL) takes them down too.
type Env struct {
	Repo string // the repository's root directory

	dir  string
	keep bool

	mu      sync.Mutex
	stops   []func() // run in reverse order by Cleanup
	cleaned bool
}

// Proc is one child process.
type Proc struct {
	Name   string
	Cmd    *exec.Cmd
	Log    string // log file path; "" when the caller set Stdout/Stderr
	exited chan struct{}
}

func newEnv(repo string, keep bool) (*Env, error) {
	dir, err := os.MkdirTemp("", "caddy-sessions-"+prog+"-")
	if err != nil {
		return nil, err
	}
	e := &Env{Repo: repo, dir: dir, keep: keep}
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

// Cleanup stops every child, the last started first (SIGKILL: nothing
// they hold is worth keeping), and removes the temp dir. Safe to call more
// than once.
func (e *Env) Cleanup() {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.cleaned {
		return
	}
	e.cleaned = true
	for i := len(e.stops) - 1; i >= 0; i-- {
		e.stops[i]()
	}
	if e.keep {
		fmt.Fprintf(os.Stderr, "%s: kept %s\n", prog, e.dir)
		return
	}
	_ = os.RemoveAll(e.dir)
}

// spawn starts cmd, unless the run is shutting down, in a process group of
// its own (a ^C in the terminal reaches only this program, which then stops
// everything in order) and with the parent-death signal.
func (e *Env) spawn(cmd *exec.Cmd) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.cleaned {
		return errors.New("shutting down")
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	return redistest.StartProcess(cmd)
}

// onCleanup makes Cleanup call stop, before what was registered earlier.
func (e *Env) onCleanup(stop func()) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.stops = append(e.stops, stop)
}

// Start starts cmd as a child of the run, logging to logPath unless cmd
// already has Stdout/Stderr set.
func (e *Env) Start(name string, cmd *exec.Cmd, logPath string) (*Proc, error) {
	if logPath != "" {
		f, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
		if err != nil {
			return nil, err
		}
		defer f.Close() // the child holds its own copy
		if cmd.Stdout == nil {
			cmd.Stdout = f
		}
		if cmd.Stderr == nil {
			cmd.Stderr = f
		}
	}
	if err := e.spawn(cmd); err != nil {
		return nil, fmt.Errorf("starting %s (%s): %w", name, cmd.Path, err)
	}
	p := &Proc{Name: name, Cmd: cmd, Log: logPath, exited: make(chan struct{})}
	go func() {
		_ = cmd.Wait()
		close(p.exited)
	}()
	e.onCleanup(p.Kill)
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
	b, err := os.ReadFile(p.Log)
	if err != nil {
		return fmt.Sprintf("(cannot read %s: %v)", p.Log, err)
	}
	return string(b[max(0, len(b)-n):])
}

package main

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// env owns the temp dir and every child process of one bench run. All
// children are killed and the dir removed by cleanup, which runs on normal
// exit, on error and on SIGINT/SIGTERM. Children also get PDEATHSIG, so a
// crash of the bench process (panic, SIGKILL) takes them down too.
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
	dir, err := os.MkdirTemp("", "caddy-sessions-bench-")
	if err != nil {
		return nil, err
	}
	e := &env{dir: dir, keep: keep}
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM, syscall.SIGHUP)
	go func() {
		s := <-sig
		fmt.Fprintf(os.Stderr, "\nbench: %v: stopping all processes\n", s)
		e.cleanup()
		os.Exit(130)
	}()
	return e, nil
}

// cleanup kills every child (SIGKILL: nothing they hold is worth keeping)
// and removes the temp dir. Safe to call more than once.
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
		fmt.Fprintf(os.Stderr, "bench: kept %s\n", e.dir)
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
	// Own process group: a ^C in the terminal reaches only the bench,
	// which then stops everything in order.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	err := spawn(cmd)
	if logf != nil {
		_ = logf.Close() // the child holds its own copy
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

// logTail is the end of the process log, for error messages.
func (p *proc) logTail(n int) string {
	if p.log == "" {
		return "(no log)"
	}
	return fileTail(p.log, n)
}

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

// spawn forks every child from one goroutine locked to a thread that lives
// as long as the process: PDEATHSIG fires when the forking *thread* exits,
// and the Go runtime may retire threads.
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

// ---------------------------------------------------------------------------
// /proc readers

// clockTicks is USER_HZ; 100 on every Linux platform Go supports.
const clockTicks = 100

// cpuTime is user+system CPU time of pid so far.
func cpuTime(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, fmt.Errorf("/proc/%d/stat: unexpected format", pid)
	}
	f := strings.Fields(s[i+1:])
	// After the comm: state(3) ... utime(14) stime(15); f[0] is field 3.
	if len(f) < 13 {
		return 0, fmt.Errorf("/proc/%d/stat: too few fields", pid)
	}
	ut, err1 := strconv.ParseInt(f[11], 10, 64)
	st, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("/proc/%d/stat: bad utime/stime", pid)
	}
	return time.Duration(ut+st) * time.Second / clockTicks, nil
}

// memStatus returns VmHWM (peak RSS) and VmRSS of pid, in bytes.
func memStatus(pid int) (hwm, rss int64, err error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		var dst *int64
		switch k {
		case "VmHWM":
			dst = &hwm
		case "VmRSS":
			dst = &rss
		default:
			continue
		}
		fs := strings.Fields(v) // "123456 kB"
		if len(fs) >= 1 {
			n, _ := strconv.ParseInt(fs[0], 10, 64)
			*dst = n * 1024
		}
	}
	return hwm, rss, sc.Err()
}

// sysCPU is the machine-wide CPU accounting of /proc/stat, in ticks.
type sysCPU struct {
	busy, steal, total int64
}

func readSysCPU() (sysCPU, error) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return sysCPU{}, err
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)
	if len(f) < 9 || f[0] != "cpu" {
		return sysCPU{}, fmt.Errorf("/proc/stat: unexpected first line %q", line)
	}
	var v [8]int64 // user nice system idle iowait irq softirq steal
	for i := range v {
		v[i], _ = strconv.ParseInt(f[i+1], 10, 64)
	}
	var s sysCPU
	for _, x := range v {
		s.total += x
	}
	s.steal = v[7]
	s.busy = s.total - v[3] - v[4] - v[7]
	return s, nil
}

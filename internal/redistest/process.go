package redistest

import (
	"os/exec"
	"reflect"
	"runtime"
	"sync"
	"syscall"
	"testing"
)

// Child processes of tests: started so they die with the test binary, and
// paused or resumed to play a hanging server.

// PID is the server's process id, 0 while it is stopped.
func (s *Server) PID() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil {
		return 0
	}
	return s.cmd.Process.Pid
}

// Pause stops the server's process (SIGSTOP): connections stay open and
// nothing answers, as when Redis hangs. Resume continues it.
func (s *Server) Pause(tb testing.TB) {
	tb.Helper()
	s.signal(tb, syscall.SIGSTOP)
}

// Resume continues a paused server (SIGCONT).
func (s *Server) Resume(tb testing.TB) {
	tb.Helper()
	s.signal(tb, syscall.SIGCONT)
}

func (s *Server) signal(tb testing.TB, sig syscall.Signal) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil {
		tb.Fatalf("redistest: signal %v: the server is not running", sig)
	}
	if err := s.cmd.Process.Signal(sig); err != nil {
		tb.Fatalf("redistest: signal %v: %v", sig, err)
	}
}

// StartProcess starts cmd so that, where the OS supports it (Linux
// PDEATHSIG), the child (redis-server, or any other a test starts) is
// SIGKILLed when the test binary dies even if
// tb.Cleanup never runs (panic, -timeout, ^C). The kernel sends that signal
// when the *thread* that forked the child exits, and the Go runtime may retire
// threads, so all children are forked from one goroutine locked to a thread
// that lives as long as the process. SysProcAttr the caller set (a process
// group, say) is kept.
func StartProcess(cmd *exec.Cmd) error {
	attr := cmd.SysProcAttr
	if attr == nil {
		attr = &syscall.SysProcAttr{}
	}
	// Pdeathsig only exists on some platforms; setting it via reflection
	// keeps this package a single portable file.
	f := reflect.ValueOf(attr).Elem().FieldByName("Pdeathsig")
	if !f.IsValid() {
		return cmd.Start()
	}
	f.Set(reflect.ValueOf(syscall.SIGKILL))
	cmd.SysProcAttr = attr
	spawnOnce.Do(func() {
		spawnCh = make(chan spawnReq)
		go func() {
			runtime.LockOSThread() // never unlocked: keeps the thread alive
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

//go:build linux

package realapps

import (
	"os/exec"
	"runtime"
	"sync"
	"syscall"
)

// startInGroup starts cmd in a new process group with SIGKILL as parent
// death signal, so a crashed or killed test binary leaves no server behind.
// Pdeathsig fires when the forking OS thread exits, so every fork happens
// on one goroutine locked to a thread that never exits.
func startInGroup(cmd *exec.Cmd) error {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
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

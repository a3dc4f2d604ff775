//go:build !linux

package realapps

import (
	"os/exec"
	"syscall"
)

// startInGroup starts cmd in a new process group (the apps are Debian
// packages; off Linux this only keeps the package compiling).
func startInGroup(cmd *exec.Cmd) error {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	return cmd.Start()
}

package main

import (
	"os/exec"
	"syscall"
)

// tie has the child killed when the benchmark dies.
func tie(cmd *exec.Cmd) { cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL} }

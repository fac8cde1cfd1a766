package testenv

import (
	"os/exec"
	"runtime"
	"sync"
	"syscall"
)

// Linux kills a child with its parent-death signal when the thread that
// started it ends, not the process. Go ends a thread only when a goroutine
// locked to it returns, but to be sure every server is started from one
// goroutine that locks its thread and never returns: the thread lives exactly
// as long as the test binary, so a redis-server dies with the binary, even
// one killed by SIGKILL or a test timeout, and not before.
var spawner struct {
	once sync.Once
	jobs chan spawnJob
}

type spawnJob struct {
	cmd  *exec.Cmd
	done chan error
}

// startTied starts cmd so that the kernel kills it when the test binary dies.
func startTied(cmd *exec.Cmd) error {
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Pdeathsig = syscall.SIGKILL
	spawner.once.Do(func() {
		spawner.jobs = make(chan spawnJob)
		go func() {
			runtime.LockOSThread() // never unlocked, and the goroutine never returns
			for j := range spawner.jobs {
				j.done <- j.cmd.Start()
			}
		}()
	})
	j := spawnJob{cmd: cmd, done: make(chan error, 1)}
	spawner.jobs <- j
	return <-j.done
}

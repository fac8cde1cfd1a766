//go:build !linux

package testenv

import "os/exec"

// startTied starts cmd. Outside Linux there is no parent-death signal: a
// server outlives a test binary killed before Main or the test's cleanup
// could stop it.
func startTied(cmd *exec.Cmd) error { return cmd.Start() }

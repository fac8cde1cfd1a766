package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// proc is a process the benchmark started: scriptgen or redis-server.
type proc struct {
	name string
	cmd  *exec.Cmd
	done chan struct{}
	log  string
	URL  string // serve's
}

// start runs bin with args and env (added to this process's environment,
// without a REDIS_URL it may hold), its output in dir/name.log.
func start(dir, name, bin string, env []string, args ...string) (*proc, error) {
	p := &proc{name: name, log: filepath.Join(dir, name+".log"), done: make(chan struct{})}
	f, err := os.OpenFile(p.log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	p.cmd = exec.Command(bin, args...)
	p.cmd.Env = append(append(os.Environ(), "REDIS_URL="), env...)
	p.cmd.Stdout, p.cmd.Stderr = f, f
	tie(p.cmd)
	if err := p.cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	go func() { p.cmd.Wait(); close(p.done) }()
	for _, e := range env { // the last LISTEN_ADDR wins, as in the process
		if addr, ok := strings.CutPrefix(e, "LISTEN_ADDR="); ok {
			p.URL = ""
			if addr != "" {
				p.URL = "http://" + addr
			}
		}
	}
	if p.URL != "" {
		if err := p.waitHealthy(60 * time.Second); err != nil {
			p.kill()
			return nil, err
		}
	}
	return p, nil
}

func (p *proc) waitHealthy(limit time.Duration) error {
	deadline := time.Now().Add(limit)
	for time.Now().Before(deadline) {
		if resp, err := http.Get(p.URL + "/health"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return nil
			}
		}
		select {
		case <-p.done:
			return fmt.Errorf("%s exited before it was healthy:\n%s", p.name, p.tail(20))
		case <-time.After(50 * time.Millisecond):
		}
	}
	return fmt.Errorf("%s not healthy within %s:\n%s", p.name, limit, p.tail(20))
}

func (p *proc) pid() int { return p.cmd.Process.Pid }

// kill sends SIGKILL and waits for the exit.
func (p *proc) kill() {
	p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.done
}

// term sends SIGTERM and waits up to limit, then kills.
func (p *proc) term(limit time.Duration) {
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(limit):
		p.kill()
	}
}

func (p *proc) tail(n int) string {
	b, _ := os.ReadFile(p.log)
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	return strings.Join(lines[max(len(lines)-n, 0):], "\n")
}

// rssKB reads a process's resident set in KiB.
func rssKB(pid int) int {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for line := range strings.Lines(string(b)) {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			n, _ := strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(v), " kB"))
			return n
		}
	}
	return 0
}

// memory is serve's peak RSS and, from the /metrics sample nearest to it,
// what Go's runtime held then.
type memory struct {
	peakKB  int
	atPeak  map[string]float64 // go_memstats_* at the sample with the highest RSS
	rssThen int
}

func (m memory) String() string {
	mib := func(name string) float64 { return m.atPeak[name] / (1 << 20) }
	return fmt.Sprintf("peak RSS %.1f MiB; at the sample of %.1f MiB: Go heap in use %.1f MiB (next GC at %.1f), stacks %.1f MiB, all the runtime took from the OS %.1f MiB, %.0f goroutines",
		float64(m.peakKB)/1024, float64(m.rssThen)/1024, mib("go_memstats_heap_inuse_bytes"), mib("go_memstats_next_gc_bytes"),
		mib("go_memstats_stack_inuse_bytes"), mib("go_memstats_sys_bytes"), m.atPeak["go_goroutines"])
}

// sampleMemory records pid's highest RSS every 100 ms and its runtime's
// figures (GET base/metrics) every 500 ms until ctx ends.
func sampleMemory(ctx context.Context, pid int, base, token string) func() memory {
	out := make(chan memory, 1)
	go func() {
		var m memory
		t := time.NewTicker(100 * time.Millisecond)
		defer t.Stop()
		for n := 0; ; n++ {
			rss := rssKB(pid)
			m.peakKB = max(m.peakKB, rss)
			if n%5 == 0 && rss > m.rssThen {
				if figures := goFigures(base, token); figures != nil {
					m.atPeak, m.rssThen = figures, rss
				}
			}
			select {
			case <-ctx.Done():
				out <- m
				return
			case <-t.C:
			}
		}
	}()
	return func() memory { return <-out }
}

// goFigures reads the go_* gauges of a Prometheus scrape.
func goFigures(base, token string) map[string]float64 {
	req, _ := http.NewRequest("GET", base+"/metrics", nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	out := map[string]float64{}
	for line := range strings.Lines(string(b)) {
		f := strings.Fields(line)
		if len(f) == 2 && strings.HasPrefix(f[0], "go_") {
			v, _ := strconv.ParseFloat(f[1], 64)
			out[f[0]] = v
		}
	}
	return out
}

func freePort() int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// cpuOf is the CPU time (user and system) a process has used, from
// /proc/PID/stat (in clock ticks of 10 ms).
func cpuOf(pid int) time.Duration {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// The fields after the command's name, which ends with the last ')'.
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(f) < 13 {
		return 0
	}
	utime, _ := strconv.ParseInt(f[11], 10, 64)
	stime, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(utime+stime) * 10 * time.Millisecond
}

// selfCPU is this process's CPU time.
func selfCPU() time.Duration { return cpuOf(os.Getpid()) }

// loadavg is the machine's load average line.
func loadavg() string {
	b, _ := os.ReadFile("/proc/loadavg")
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}

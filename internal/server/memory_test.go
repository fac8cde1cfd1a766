package server

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/scriptgen/scriptgen/internal/sysmem"
)

// hogEnv makes the test binary a memory hog (see TestMain): a process
// beside this one that holds that many MiB, like the load generator of
// issue 17.
const hogEnv = "SCRIPTGEN_TEST_MEMORY_HOG_MIB"

// TestMain runs the tests, or with hogEnv set makes this binary the memory
// hog of TestMemoryTriggerReadsThisProcess.
func TestMain(m *testing.M) {
	if v := os.Getenv(hogEnv); v != "" {
		mib, err := strconv.Atoi(v)
		if err != nil {
			fmt.Fprintln(os.Stderr, hogEnv, "must be a number of MiB")
			os.Exit(2)
		}
		holdMemory(mib)
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// holdMemory holds mib MiB, says "ready" and waits to be killed.
func holdMemory(mib int) {
	hog := make([]byte, mib<<20)
	for i := 0; i < len(hog); i += 4096 {
		hog[i] = 1
	}
	fmt.Println("ready")
	time.Sleep(time.Minute)
	runtime.KeepAlive(hog)
}

// TestMemoryTriggerReadsThisProcess: the memory trigger reads this process's
// share of its limit, so it rises with what this process holds and does not
// move when another process on the host takes memory. It read the host's
// memory in use, and a flood that made the load generator eat the host's
// memory rolled the service back.
func TestMemoryTriggerReadsThisProcess(t *testing.T) {
	s := &Server{}
	u, err := sysmem.ProcessUsage()
	if err != nil {
		t.Fatal(err)
	}
	limit := float64(u.Limit)
	// read is the trigger's reading. Under a cgroup memory limit the
	// reading is the higher of this process's share and the cgroup's, and
	// the hog below (a child, in the same cgroup) moves the cgroup's share
	// by design; then the test follows this process's share, and checks
	// that the reading is that higher of the two.
	read := func() float64 {
		t.Helper()
		p, err := s.MemoryPercent()
		if err != nil {
			t.Fatal(err)
		}
		if u.CgroupLimit == 0 {
			return p
		}
		now, err := sysmem.ProcessUsage()
		if err != nil {
			t.Fatal(err)
		}
		own := 100 * float64(now.RSS) / float64(now.Limit)
		if p < own-0.01 {
			t.Fatalf("the trigger reads %.3f%%, below this process's own share %.3f%%", p, own)
		}
		return own
	}

	// Another process takes 200 MiB: the reading does not move.
	const hogMiB = 200
	before := read()
	hostBefore, _ := sysmem.SystemUsedPercent()
	cmd := exec.Command(os.Args[0], "-test.run=^$", "-test.count=1")
	cmd.Env = append(os.Environ(), hogEnv+"="+strconv.Itoa(hogMiB))
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	sc := bufio.NewScanner(out)
	for sc.Scan() && !strings.Contains(sc.Text(), "ready") {
	}
	hogRSS, err := sysmem.ProcessRSS(cmd.Process.Pid)
	if err != nil || hogRSS < hogMiB<<20 {
		t.Fatalf("the hog holds %d bytes (err %v), want at least %d MiB", hogRSS, err, hogMiB)
	}
	during := read()
	hostDuring, _ := sysmem.SystemUsedPercent()
	hogShare := 100 * float64(hogRSS) / limit
	t.Logf("another process holds %d MiB: the trigger reads %.3f%% → %.3f%%, the host's memory in use %.2f%% → %.2f%%",
		hogRSS>>20, before, during, hostBefore, hostDuring)
	if during-before > hogShare/4 {
		t.Fatalf("the trigger's reading rose from %.3f%% to %.3f%% while another process took %.3f%% of the limit", before, during, hogShare)
	}

	// This process takes 50 MiB: the reading rises by 50 MiB of the limit.
	const mine = 50 << 20
	rssBefore, _ := sysmem.ProcessRSS(0)
	before = read()
	held := make([]byte, mine)
	for i := 0; i < len(held); i += 4096 {
		held[i] = 1
	}
	after := read()
	rssAfter, _ := sysmem.ProcessRSS(0)
	runtime.KeepAlive(held)
	want := 100 * mine / limit
	t.Logf("this process takes 50 MiB (RSS +%d MiB): the trigger reads %.3f%% → %.3f%% (+%.3f, 50 MiB of the limit is %.3f)",
		(rssAfter-rssBefore)>>20, before, after, after-before, want)
	if rise := after - before; rise < 0.8*want || rise > 100*float64(rssAfter-rssBefore)/limit+0.2*want {
		t.Fatalf("the trigger's reading rose by %.3f points when this process took 50 MiB (%.3f of its limit; RSS rose %d MiB)",
			rise, want, (rssAfter-rssBefore)>>20)
	}
}

package e2e

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/scriptgen/scriptgen/internal/testenv"
)

// TestServeSurvivesKill9 kills the serving process mid-job and starts it again:
// the expired leases are found, the jobs run again, and every episode exists once.
func TestServeSurvivesKill9(t *testing.T) {
	for _, db := range []string{"sqlite", "postgres"} {
		t.Run(db, func(t *testing.T) {
			var extra []string
			if db == "postgres" {
				extra = append(extra, "DATABASE_URL="+testenv.PostgresURL(t))
			}
			srv := startProc(t, "serve", serveEnv(t, extra...), "serve")
			var jobs []submitted
			for i := range 24 {
				jobs = append(jobs, submit(t, srv.URL, "kill9", i))
			}
			waitRunning(t, srv.URL, 2)
			srv.kill()
			srv.restart()
			for i := 24; i < 30; i++ {
				jobs = append(jobs, submit(t, srv.URL, "kill9", i))
			}
			waitAllSucceeded(t, srv.URL, jobs, 90*time.Second)
			checkExactlyOnce(t, srv.URL, jobs)
			if !strings.Contains(srv.log.String(), "Lease expired") {
				t.Fatal("no lease expired after kill -9: the test did not kill a running job")
			}
		})
	}
}

// TestServeSIGTERMDrainsAndReleases: SIGTERM lets running jobs finish within the
// drain timeout and releases the rest; nothing is lost across the restart.
func TestServeSIGTERMDrainsAndReleases(t *testing.T) {
	env := serveEnv(t, "DRAIN_TIMEOUT=300ms", "GENERATOR_STEP_DELAY=400ms")
	srv := startProc(t, "serve", env, "serve")
	var jobs []submitted
	for i := range 12 {
		jobs = append(jobs, submit(t, srv.URL, "term", i))
	}
	waitRunning(t, srv.URL, 2)
	took := srv.stop(15 * time.Second)
	if !strings.Contains(srv.log.String(), "Released job on shutdown") {
		t.Fatalf("no job was released on SIGTERM (stopped in %s)", took)
	}
	if took > 8*time.Second {
		t.Fatalf("SIGTERM took %s with a 300ms drain timeout", took)
	}
	srv.restart()
	waitAllSucceeded(t, srv.URL, jobs, 90*time.Second)
	checkExactlyOnce(t, srv.URL, jobs)
}

// TestServeSIGTERMFinishesShortJobs: running jobs that finish within the drain
// timeout are completed, not released.
func TestServeSIGTERMFinishesShortJobs(t *testing.T) {
	srv := startProc(t, "serve", serveEnv(t, "DRAIN_TIMEOUT=20s", "GENERATOR_STEP_DELAY=100ms", "MAX_WORKERS=2"), "serve")
	jobs := []submitted{submit(t, srv.URL, "drain", 0), submit(t, srv.URL, "drain", 1)}
	waitRunning(t, srv.URL, 2)
	srv.stop(20 * time.Second)
	if strings.Contains(srv.log.String(), "Released job on shutdown") {
		t.Fatal("a job that could finish within the drain timeout was released")
	}
	srv.restart()
	for _, j := range jobs {
		code, got := request(t, "GET", srv.URL+"/api/generation/"+j.ID, nil)
		if code != 200 || got["status"] != "succeeded" || got["attempt"] != float64(1) {
			t.Fatalf("job %s after drain: %v", j.ID, got)
		}
	}
	checkExactlyOnce(t, srv.URL, jobs)
}

func waitRunning(t *testing.T, base string, n int) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		_, list := request(t, "GET", base+"/api/generation?status=running", nil)
		if items, _ := list["items"].([]any); len(items) >= n {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatal(fmt.Sprintf("fewer than %d jobs ever ran", n))
}

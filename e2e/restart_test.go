package e2e

import (
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/scriptgen/scriptgen/internal/testenv"
	"github.com/scriptgen/scriptgen/internal/testenv/contract"
)

// TestGracefulRestartZeroDowntime restarts the serving process through the
// admin API while clients hammer it and jobs run: no request is refused, the
// new process has another pid, and every job finishes exactly once.
func TestGracefulRestartZeroDowntime(t *testing.T) {
	srv := startProc(t, "serve", serveEnv(t, "ADMIN_TOKEN="+adminToken, "GENERATOR_STEP_DELAY=150ms", "DRAIN_TIMEOUT=1s"), "serve")
	_, h := request(t, "GET", srv.URL+"/health", nil, "Authorization", "Bearer "+adminToken)
	oldPID := int(h["process"].(map[string]any)["pid"].(float64))
	var jobs []submitted
	for i := range 10 {
		jobs = append(jobs, submit(t, srv.URL, "restart", i))
	}
	waitRunning(t, srv.URL, 2)

	var refused, failed, served atomic.Int64
	var mu sync.Mutex
	var firstErr string
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// A client of its own, as a user's would be: no idle connections
			// left over from the test's other calls.
			client := &http.Client{Timeout: 10 * time.Second, Transport: contract.New(t).Transport(&http.Transport{})}
			for {
				select {
				case <-stop:
					return
				default:
				}
				resp, err := client.Get(srv.URL + "/api/generation?limit=5")
				if err != nil && strings.Contains(err.Error(), "refused") {
					refused.Add(1)
				}
				if err != nil || resp.StatusCode != 200 {
					failed.Add(1)
					mu.Lock()
					if firstErr == "" && err != nil {
						firstErr = time.Now().Format("15:04:05.000") + " " + err.Error()
					}
					mu.Unlock()
				} else {
					served.Add(1)
				}
				if resp != nil {
					resp.Body.Close()
				}
			}
		}()
	}
	testenv.Eventually(t, 10*time.Second, func() bool { return served.Load() >= 20 }, "the clients were never served")
	code, body := request(t, "POST", srv.URL+"/api/admin/graceful-restart", nil, "Authorization", "Bearer "+adminToken)
	if code != http.StatusAccepted {
		t.Fatalf("graceful restart: %d %v", code, body)
	}
	select {
	case <-srv.done:
	case <-time.After(20 * time.Second):
		t.Fatal("the old process did not exit after handing over")
	}
	var newPID int
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if _, h := request(t, "GET", srv.URL+"/health", nil, "Authorization", "Bearer "+adminToken); h["process"] != nil {
			newPID = int(h["process"].(map[string]any)["pid"].(float64))
			if newPID != oldPID {
				break
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Cleanup(func() {
		if p, err := os.FindProcess(newPID); err == nil && newPID > 0 {
			p.Signal(syscall.SIGKILL)
		}
	})
	// The new process serves the clients for a while before they stop.
	mark := served.Load()
	testenv.Eventually(t, 10*time.Second, func() bool { return served.Load() >= mark+50 }, "the new process served no clients")
	close(stop)
	wg.Wait()
	if newPID == oldPID || newPID == 0 {
		t.Fatalf("pid %d after the restart (was %d)", newPID, oldPID)
	}
	// No connection is refused. A request racing the close of an idle
	// keep-alive connection can still see EOF (HTTP/1.1 has no way to tell the
	// client first; browsers retry such requests): allow under 1 %, the runbook's failure budget.
	total := failed.Load() + served.Load()
	if refused.Load() > 0 || failed.Load()*100 >= total {
		t.Fatalf("%d refused, %d of %d failed during the restart (first: %s)", refused.Load(), failed.Load(), total, firstErr)
	}
	waitAllSucceeded(t, srv.URL, jobs, 60*time.Second)
	checkExactlyOnce(t, srv.URL, jobs)
	if !strings.Contains(srv.log.String(), "draining this one") {
		t.Fatal("the old process did not drain")
	}
	t.Logf("%d requests served across the restart, none refused, %d lost to keep-alive races; pid %d → %d", served.Load(), failed.Load(), oldPID, newPID)
}

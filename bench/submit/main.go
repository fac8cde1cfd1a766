// Command submit measures scriptgen's submission path and end-to-end
// throughput against a running server: p50/p99 latency of POST
// /api/generation and accepted jobs per second at C concurrent clients, then
// how long the server takes to finish every accepted job. It also samples the
// server's resident memory (VmRSS of --pid) while it runs.
package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

func main() {
	base := flag.String("url", "http://127.0.0.1:8002", "scriptgen base URL")
	clients := flag.Int("c", 50, "concurrent clients")
	total := flag.Int("n", 10000, "jobs to submit")
	project := flag.String("project", fmt.Sprintf("bench-%d", time.Now().UnixNano()), "project id")
	pid := flag.Int("pid", 0, "pid of the server, to sample its RSS (with its child processes')")
	workerPIDs := flag.String("worker-pids", "", "comma-separated pids of worker processes, to sample their RSS (with their children's) too")
	wait := flag.Duration("wait", 5*time.Minute, "how long to wait for all jobs to finish")
	label := flag.String("label", "", "label printed with the figures")
	projects := flag.Int("projects", 1, "spread the jobs over this many projects (episode numbering is serial within a project)")
	warmup := flag.Int("warmup", 1000, "submissions sent, and finished, before the measured run")
	rate := flag.Float64("rate", 0, "offer this many submissions per second (open loop) instead of as many as the clients can send; "+
		"latency then counts from each submission's planned time, so a stalled server cannot hide its queue")
	flag.Parse()

	tr := &http.Transport{MaxIdleConns: *clients * 2, MaxIdleConnsPerHost: *clients * 2}
	client := &http.Client{Transport: tr, Timeout: 30 * time.Second}
	var maxRSS, maxWorkerRSS atomic.Int64
	stopRSS := make(chan struct{})
	if *pid > 0 {
		go sampleRSS([]int{*pid}, &maxRSS, stopRSS)
	}
	if pids := parsePIDs(*workerPIDs); len(pids) > 0 {
		go sampleRSS(pids, &maxWorkerRSS, stopRSS)
	}

	// Warm up (connections, statement caches, the runtime) and let the warm-up
	// jobs finish, so that the measured run starts from a steady server.
	if *warmup > 0 {
		run := submission{base: *base, project: *project + "-warmup", projects: 1, clients: *clients}
		if _, _, failed := run.submit(client, *warmup); failed > 0 {
			fmt.Fprintf(os.Stderr, "warm-up: %d submissions failed\n", failed)
			os.Exit(1)
		}
		run.waitDone(client, *warmup, time.Now().Add(*wait))
	}

	run := submission{base: *base, project: *project, projects: *projects, clients: *clients, rate: *rate}
	start := time.Now()
	lat, submitTook, failed := run.submit(client, *total)
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	pct := func(p float64) time.Duration { return lat[int(float64(len(lat)-1)*p)] }
	if failed == 0 {
		run.waitDone(client, *total, start.Add(*wait))
	}
	e2e := time.Since(start)
	close(stopRSS)
	done := 0
	for k := range *projects {
		done += countSucceeded(client, *base, projectName(*project, k, *projects))
	}

	offered := "as fast as the clients go"
	if *rate > 0 {
		offered = fmt.Sprintf("%.0f/s", *rate)
	}
	fmt.Printf("label=%s clients=%d jobs=%d projects=%d offered=%s failed=%d\n", *label, *clients, *total, *projects, offered, failed)
	fmt.Printf("submit: p50=%s p99=%s max=%s accepted/s=%.0f\n", pct(0.50).Round(10*time.Microsecond),
		pct(0.99).Round(10*time.Microsecond), lat[len(lat)-1].Round(10*time.Microsecond), float64(*total)/submitTook.Seconds())
	fmt.Printf("end-to-end: %d jobs succeeded in %s = %.0f jobs/s\n", done, e2e.Round(time.Millisecond), float64(done)/e2e.Seconds())
	if *pid > 0 {
		fmt.Printf("server max RSS: %.1f MB\n", float64(maxRSS.Load())/1024)
	}
	if *workerPIDs != "" {
		fmt.Printf("workers max RSS: %.1f MB\n", float64(maxWorkerRSS.Load())/1024)
	}
	if done < *total || failed > 0 {
		os.Exit(1)
	}
}

// submission is one run of submissions from concurrent clients.
type submission struct {
	base, project     string
	projects, clients int
	rate              float64 // per second, open loop; 0: as fast as the clients go
}

// submit posts n jobs and returns each one's latency (from its planned time
// when a rate is set), how long the run took and how many failed.
func (s submission) submit(client *http.Client, n int) ([]time.Duration, time.Duration, int64) {
	// The bodies are made before the clock starts: the load generator shares
	// the server's cores, and what it spends is taken from the server.
	bodies, keys := make([][]byte, n), make([]string, n)
	for i := range n {
		bodies[i], _ = json.Marshal(map[string]any{"project_id": projectName(s.project, i%s.projects, s.projects),
			"episode_data": map[string]any{"title": fmt.Sprintf("Episode %d", i), "synopsis": "bench", "characters": []string{"A", "B"}}})
		keys[i] = fmt.Sprintf("%s-%d", s.project, i)
	}
	lat := make([]time.Duration, n)
	var next, failed atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	for range s.clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= n {
					return
				}
				planned := time.Now()
				if s.rate > 0 {
					planned = start.Add(time.Duration(float64(i) / s.rate * float64(time.Second)))
					time.Sleep(time.Until(planned))
				}
				req, _ := http.NewRequest("POST", s.base+"/api/generation", bytes.NewReader(bodies[i]))
				req.Header.Set("Content-Type", "application/json")
				req.Header.Set("Idempotency-Key", keys[i])
				if s.rate == 0 {
					planned = time.Now()
				}
				resp, err := client.Do(req)
				lat[i] = time.Since(planned)
				if err != nil {
					failed.Add(1)
					continue
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusAccepted {
					failed.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	return lat, time.Since(start), failed.Load()
}

// waitDone waits until each project has its last episode. Episodes are
// numbered 1..n once per job, so episode n of a project exists exactly when
// its n jobs have succeeded — a primary-key lookup, where counting the jobs
// would load the database the benchmark measures.
func (s submission) waitDone(client *http.Client, n int, deadline time.Time) {
	want := make([]int, s.projects)
	for i := range n {
		want[i%s.projects]++
	}
	for k := 0; k < s.projects; {
		if hasEpisode(client, s.base, projectName(s.project, k, s.projects), want[k]) {
			k++
			continue
		}
		if time.Now().After(deadline) {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func projectName(prefix string, k, projects int) string {
	if projects > 1 {
		return fmt.Sprintf("%s-%d", prefix, k)
	}
	return prefix
}

func hasEpisode(c *http.Client, base, project string, number int) bool {
	resp, err := c.Get(fmt.Sprintf("%s/api/projects/%s/episodes/%d", base, project, number))
	if err != nil {
		return false
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

func countSucceeded(c *http.Client, base, project string) int {
	resp, err := c.Get(base + "/api/projects/" + project)
	if err == nil && resp.StatusCode == 200 {
		var out struct {
			Jobs map[string]int `json:"jobs"`
		}
		json.NewDecoder(resp.Body).Decode(&out)
		resp.Body.Close()
		return out.Jobs["succeeded"]
	}
	if resp != nil {
		resp.Body.Close()
	}
	return 0
}

func parsePIDs(list string) []int {
	var pids []int
	for _, f := range strings.Split(list, ",") {
		if n, err := strconv.Atoi(strings.TrimSpace(f)); err == nil && n > 0 {
			pids = append(pids, n)
		}
	}
	return pids
}

// sampleRSS keeps the peak of the summed VmRSS of pids and all their
// descendants: a uvicorn with workers, or an RQ worker and its work horse,
// is several processes.
func sampleRSS(pids []int, maxKB *atomic.Int64, stop chan struct{}) {
	for {
		select {
		case <-stop:
			return
		case <-time.After(100 * time.Millisecond):
		}
		var sum int64
		for _, p := range pids {
			sum += treeRSS(p)
		}
		if sum > maxKB.Load() {
			maxKB.Store(sum)
		}
	}
}

// treeRSS is the VmRSS in kB of a process and its descendants (0 when gone).
func treeRSS(pid int) int64 {
	kb := rssKB(pid)
	tasks, _ := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
	for _, t := range tasks {
		b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/task/%s/children", pid, t.Name()))
		for _, c := range strings.Fields(string(b)) {
			if n, err := strconv.Atoi(c); err == nil {
				kb += treeRSS(n)
			}
		}
	}
	return kb
}

func rssKB(pid int) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "VmRSS:" {
			kb, _ := strconv.ParseInt(f[1], 10, 64)
			return kb
		}
	}
	return 0
}

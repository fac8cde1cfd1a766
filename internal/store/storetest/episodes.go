package storetest

import (
	"encoding/json"
	"errors"
	"fmt"
	"sync"

	"github.com/scriptgen/scriptgen/internal/job"
)

// episodeTests: a completion saves its episode once, numbered in its
// project, however many complete at once.
var episodeTests = []test{
	{"CompleteSavesEpisodeOnce", testCompleteSavesEpisode},
	{"FiftyEpisodesNumberedOnce", testFiftyEpisodes},
	{"GroupedClaimsAndCompletions", testConcurrentDispatchesAndCompletions},
}

func testCompleteSavesEpisode(f *fixture) {
	f.create("p1", "", job.BackendBackgroundTasks)
	j := f.claim(job.BackendBackgroundTasks, "w")
	done, err := f.s.Complete(f.ctx, j.Lease(), f.episode(j))
	if err != nil {
		f.t.Fatal(err)
	}
	var res map[string]any
	if err := json.Unmarshal(done.Result, &res); err != nil || res["episode_number"] != float64(1) || res["scenes"] != float64(3) {
		f.t.Fatalf("result %s (%v): want episode_number 1 beside the generator's fields", done.Result, err)
	}
	if done.Status != job.StatusSucceeded || done.Progress != 100 || done.FinishedAt.IsZero() || done.LeaseOwner != "" {
		f.t.Fatalf("completed job: %+v", done)
	}
	if _, err := f.s.Complete(f.ctx, j.Lease(), f.episode(j)); !errors.Is(err, job.ErrStaleLease) {
		f.t.Fatalf("second completion: %v, want ErrStaleLease", err)
	}
	eps, err := f.s.ListEpisodes(f.ctx, "p1", 0, 0)
	if err != nil || len(eps) != 1 || eps[0].Number != 1 || eps[0].JobID != j.ID {
		f.t.Fatalf("episodes: %+v %v", eps, err)
	}
	ep, err := f.s.GetEpisode(f.ctx, "p1", 1)
	if err != nil || ep.Script != "INT. ROOM - DAY" {
		f.t.Fatalf("episode 1: %+v %v", ep, err)
	}
	if _, err := f.s.GetEpisode(f.ctx, "p1", 2); !errors.Is(err, job.ErrNotFound) {
		f.t.Fatalf("episode 2: %v, want ErrNotFound", err)
	}
	evs := f.events(j.ID)
	if last := evs[len(evs)-1]; last.Type != job.EventResult || last.Status != job.StatusSucceeded {
		f.t.Fatalf("last event %+v, want the result", last)
	}
}

func testFiftyEpisodes(f *fixture) {
	const n = 50
	for range n {
		f.create("p1", "", job.BackendBackgroundTasks)
	}
	f.create("p2", "", job.BackendBackgroundTasks)
	var wg sync.WaitGroup
	for range 10 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				j, err := f.s.ClaimNext(f.ctx, job.BackendBackgroundTasks, "w", lease)
				if errors.Is(err, job.ErrNotFound) {
					return
				}
				if err == nil {
					_, err = f.s.Complete(f.ctx, j.Lease(), f.episode(j))
				}
				if err != nil {
					f.t.Errorf("claim/complete: %v", err)
					return
				}
			}
		}()
	}
	wg.Wait()
	eps, err := f.s.ListEpisodes(f.ctx, "p1", 0, 100)
	if err != nil || len(eps) != n {
		f.t.Fatalf("%d episodes of p1 (%v), want %d", len(eps), err, n)
	}
	jobs := map[string]bool{}
	for i, e := range eps {
		if e.Number != i+1 || jobs[e.JobID] {
			f.t.Fatalf("episode %d: number %d job %s (numbers must be 1..%d, one per job)", i, e.Number, e.JobID, n)
		}
		jobs[e.JobID] = true
	}
	if p2, _ := f.s.ListEpisodes(f.ctx, "p2", 0, 0); len(p2) != 1 || p2[0].Number != 1 {
		f.t.Fatalf("p2 episodes %+v: each project counts on its own", p2)
	}
	page, _ := f.s.ListEpisodes(f.ctx, "p1", 48, 10)
	if len(page) != 2 || page[0].Number != 49 {
		f.t.Fatalf("page after 48: %+v", page)
	}
}

// testConcurrentDispatchesAndCompletions drives the grouped claims and
// completions: many at once, mixed with stale and duplicate requests, over
// several projects. Each job is claimed once, completed once, and numbered
// once in its project; a stale request changes nothing.
func testConcurrentDispatchesAndCompletions(f *fixture) {
	const perProject, projects = 20, 3
	var jobs []job.Job
	for p := range projects {
		for range perProject {
			jobs = append(jobs, f.create(fmt.Sprintf("p%d", p), "", job.BackendDurable))
		}
	}
	var mu sync.Mutex
	var wg sync.WaitGroup
	claimed := map[string][]job.Job{}
	for _, j := range jobs {
		// The same dispatch twice, by two workers, and a stale one.
		for n, d := range []job.Dispatch{{JobID: j.ID, Epoch: j.DispatchEpoch}, {JobID: j.ID, Epoch: j.DispatchEpoch}, {JobID: j.ID, Epoch: j.DispatchEpoch - 1}} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				got, err := f.s.ClaimDispatch(f.ctx, d, fmt.Sprintf("w%d", n%2), lease)
				if err != nil && !errors.Is(err, job.ErrStaleLease) {
					f.t.Errorf("claim %+v: %v", d, err)
				}
				if err == nil {
					if d.Epoch != j.DispatchEpoch || got.ID != j.ID || got.Status != job.StatusRunning {
						f.t.Errorf("claim %+v gave %+v", d, got)
					}
					mu.Lock()
					claimed[j.ID] = append(claimed[j.ID], got)
					mu.Unlock()
				}
			}()
		}
	}
	wg.Wait()
	for _, j := range jobs {
		if len(claimed[j.ID]) != 1 {
			f.t.Fatalf("job %s claimed %d times, want once", j.ID, len(claimed[j.ID]))
		}
	}

	completed := map[string]int{}
	for _, j := range jobs {
		c := claimed[j.ID][0]
		for _, l := range []job.Lease{c.Lease(), {Dispatch: c.Lease().Dispatch, Owner: "other"}} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				done, err := f.s.Complete(f.ctx, l, f.episode(c))
				if l.Owner == "other" {
					if !errors.Is(err, job.ErrStaleLease) {
						f.t.Errorf("completion by a stale holder: %v, want ErrStaleLease", err)
					}
					return
				}
				var res struct {
					Number int `json:"episode_number"`
				}
				if err != nil || done.Status != job.StatusSucceeded || json.Unmarshal(done.Result, &res) != nil || res.Number < 1 {
					f.t.Errorf("complete %s: %+v %v", c.ID, done, err)
					return
				}
				mu.Lock()
				completed[c.ID] = res.Number
				mu.Unlock()
			}()
		}
	}
	wg.Wait()
	for p := range projects {
		project := fmt.Sprintf("p%d", p)
		eps, err := f.s.ListEpisodes(f.ctx, project, 0, 100)
		if err != nil || len(eps) != perProject {
			f.t.Fatalf("%d episodes of %s (%v), want %d", len(eps), project, err, perProject)
		}
		for i, e := range eps {
			if e.Number != i+1 || completed[e.JobID] != e.Number {
				f.t.Fatalf("%s episode %d: number %d of job %s, whose result says %d", project, i, e.Number, e.JobID, completed[e.JobID])
			}
		}
	}
	for _, j := range jobs {
		evs := f.events(j.ID)
		if len(evs) != 3 || evs[1].Status != job.StatusRunning || evs[2].Type != job.EventResult {
			f.t.Fatalf("events of %s: %+v, want created, running, result", j.ID, evs)
		}
	}
}

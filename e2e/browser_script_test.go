package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/browser"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"

	"github.com/scriptgen/scriptgen/internal/generate"
	"github.com/scriptgen/scriptgen/internal/httpx/response"
	"github.com/scriptgen/scriptgen/internal/job"
	"github.com/scriptgen/scriptgen/internal/testenv/contract"
	"github.com/scriptgen/scriptgen/internal/web"
)

// The writer's page shows the script as it is written (issue 18): it appends
// each script event's text at its offset, stops after the final event or a
// 204, and offers the finished episode as a copy, a .txt and a .fountain.

// scriptState is what the writer's page tells about the script it shows.
type scriptState struct {
	Done            bool      `json:"done"`
	Final           bool      `json:"final"`
	Connects        int       `json:"connects"`
	Script          string    `json:"script"`
	ScriptSeqs      []int64   `json:"scriptSeqs"`
	ScriptRepeats   []int64   `json:"scriptRepeats"`
	ScriptGaps      [][]int64 `json:"scriptGaps"`
	Refetches       int       `json:"refetches"`
	StreamedMatches *bool     `json:"streamedMatches"`
	Shown           string    `json:"shown"`
	ActionsShown    bool      `json:"actionsShown"`
}

const readScriptState = `Object.assign({}, window.scriptgenWriter, {shown: document.getElementById('script').textContent,
	actionsShown: getComputedStyle(document.getElementById('script-actions')).display !== 'none'})`

func readScript(t *testing.T, ctx context.Context) scriptState {
	t.Helper()
	return get(t, ctx, 10*time.Second, "read the page's script", chromedp.Evaluate[scriptState](readScriptState))
}

// eventRequests counts the page's requests to a job's events URL.
type eventRequests struct {
	mu   sync.Mutex
	urls []string
}

func (e *eventRequests) count() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return len(e.urls)
}

func listenEventRequests(t *testing.T, ctx context.Context) *eventRequests {
	t.Helper()
	reqs := &eventRequests{}
	if err := chromedp.Listen(ctx, func(ev any) {
		if r, ok := ev.(*network.EventRequestWillBeSent); ok && strings.Contains(r.Request.URL, "/events") {
			reqs.mu.Lock()
			reqs.urls = append(reqs.urls, r.Request.URL)
			reqs.mu.Unlock()
		}
	}); err != nil {
		t.Fatal(err)
	}
	return reqs
}

// downloadFrom clicks a download button and returns the file's name and
// content.
func downloadFrom(t *testing.T, ctx context.Context, button string) (string, string) {
	t.Helper()
	dir := t.TempDir()
	dctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	begun := chromedp.Events(dctx, browser.DownloadWillBegin)
	progress := chromedp.Events(dctx, browser.DownloadProgress)
	yes := true
	run(t, ctx, 10*time.Second, "click "+button,
		chromedp.Func(func(ctx context.Context, _ *chromedp.Target) error {
			_, err := chromedp.Call(ctx, browser.SetDownloadBehavior, browser.SetDownloadBehaviorParams{
				Behavior: browser.SetDownloadBehaviorBehaviorAllowAndName, DownloadPath: dir, EventsEnabled: &yes})
			return err
		}),
		chromedp.Click(chromedp.CSS(button)))
	var name string
	for ev, err := range begun {
		if err != nil {
			t.Fatalf("%s: no download began: %v", button, err)
		}
		name = ev.SuggestedFilename
		break
	}
	for ev, err := range progress {
		if err != nil {
			t.Fatalf("%s: download did not complete: %v", button, err)
		}
		if ev.State == browser.DownloadProgressStateCanceled {
			t.Fatalf("%s: download cancelled", button)
		}
		if ev.State != browser.DownloadProgressStateCompleted {
			continue
		}
		b, err := os.ReadFile(filepath.Join(dir, ev.GUID))
		if err != nil {
			t.Fatal(err)
		}
		return name, string(b)
	}
	t.Fatalf("%s: download did not complete", button)
	return "", ""
}

// TestBrowserScriptGrows runs a real serve with the template generator
// slowed down: the page's script grows while the job runs, ends as the saved
// episode, the page asks for no more events once the final one came, and the
// episode downloads as .txt and .fountain.
func TestBrowserScriptGrows(t *testing.T) {
	ctx := newBrowser(t)
	srv := startProc(t, "serve", serveEnv(t, "GENERATOR=template", "GENERATOR_STEP_DELAY=200ms"), "serve")
	reqs := listenEventRequests(t, ctx)
	submitOnPage(t, ctx, contract.Proxy(t, srv.URL), "browser-script")

	// Watch the script area until the job ends: it must grow, visibly.
	var lengths []int
	var s scriptState
	shot := false
	deadline := time.Now().Add(90 * time.Second)
	for {
		s = readScript(t, ctx)
		if s.Done {
			break
		}
		if s.ActionsShown {
			t.Fatal("Copy and Download are offered while the script is being written")
		}
		if n := len([]rune(s.Shown)); n > 0 && (len(lengths) == 0 || n != lengths[len(lengths)-1]) {
			if len(lengths) > 0 && n < lengths[len(lengths)-1] {
				t.Fatalf("the script shrank from %d to %d characters", lengths[len(lengths)-1], n)
			}
			lengths = append(lengths, n)
			if len(lengths) == 3 && !shot { // mid-way: the title page and a scene or two
				screenshot(t, ctx, "screenshot-writer.png")
				shot = true
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("job not done on the page within 90s; lengths seen %v", lengths)
		}
		time.Sleep(30 * time.Millisecond)
	}
	if len(lengths) < 3 {
		t.Fatalf("the script grew over %d observations before the job ended (%v), want at least 3", len(lengths), lengths)
	}
	doneRequests := reqs.count()

	run(t, ctx, 20*time.Second, "wait for the saved episode",
		waitFor(`window.scriptgenWriter.episode !== null && !document.getElementById('script-actions').hidden`, 20*time.Second))
	s = readScript(t, ctx)
	w := readWriter(t, ctx)
	checkPageSeqs(t, ctx, w)
	code, ep := request(t, "GET", srv.URL+"/api/projects/browser-script/episodes/1", nil)
	if code != 200 || ep["job_id"] != w.JobID {
		t.Fatalf("episode 1: %d %v, want the page's job %s", code, ep, w.JobID)
	}
	want := ep["script"].(string)
	if s.Shown != want || s.Script != want || s.StreamedMatches == nil || !*s.StreamedMatches {
		t.Fatalf("the page streamed %d characters and shows %d; episode 1 has %d (streamed matches: %v)",
			len([]rune(s.Script)), len([]rune(s.Shown)), len([]rune(want)), s.StreamedMatches)
	}
	if !s.ActionsShown {
		t.Fatal("Copy and Download are not offered for the finished episode")
	}
	if !s.Final || len(s.ScriptSeqs) < 3 || len(s.ScriptRepeats) > 0 || len(s.ScriptGaps) > 0 || s.Refetches > 0 {
		t.Fatalf("final %v, %d script events (%d repeated, gaps %v, %d refetches): want a final event and a clean stream",
			s.Final, len(s.ScriptSeqs), len(s.ScriptRepeats), s.ScriptGaps, s.Refetches)
	}

	// After the final event: no request to the events URL.
	time.Sleep(3 * time.Second)
	if n := reqs.count(); n != doneRequests || n != s.Connects {
		reqs.mu.Lock()
		t.Fatalf("%d requests to the events URL (%d when the job ended, %d connects): %v", n, doneRequests, s.Connects, reqs.urls)
	}

	name, fountain := downloadFrom(t, ctx, "#download-fountain")
	if name != "browser-script-ep1.fountain" || !strings.HasPrefix(fountain, "Title:") {
		t.Fatalf("Download .fountain gave %q starting %q, want browser-script-ep1.fountain starting with Title:", name, head(fountain))
	}
	for _, part := range []string{"\nCredit: Written by\n", "\nAuthor: scriptgen", "#1#\n", "\n> FADE IN:\n", "\n> THE END <\n"} {
		if !strings.Contains(fountain, part) {
			t.Errorf(".fountain lacks %q:\n%s", part, fountain)
		}
	}
	name, txt := downloadFrom(t, ctx, "#download-txt")
	if name != "browser-script-ep1.txt" || txt != want {
		t.Fatalf("Download .txt gave %q with %d characters, want browser-script-ep1.txt with episode 1's script", name, len([]rune(txt)))
	}
	t.Logf("script grew over %d observations %v; %d script events, %d event requests", len(lengths), lengths, len(s.ScriptSeqs), reqs.count())
	checkExactlyOnce(t, srv.URL, []submitted{{ID: w.JobID, Project: "browser-script"}})
}

func head(s string) string {
	if r := []rune(s); len(r) > 40 {
		return string(r[:40])
	}
	return s
}

// fakeJob is a stand-in for the API of one job, whose event stream serves
// each connection from a script of its own, and 204 after them all; the page's
// logic is under test, the server's answers are the progress package's tests'.
type fakeJob struct {
	mu       sync.Mutex
	conns    []func(w http.ResponseWriter, lastID string)
	requests []string // last_event_id of each events request
	status   string
	soFar    string // ?include=script
	episode  string
	refetch  int
}

// server starts the stand-in and returns the URL the browser opens: a
// proxy that holds the page's requests against api/openapi.yaml (the
// stand-in's answers are the test's own).
func (f *fakeJob) server(t *testing.T) string {
	mux := http.NewServeMux()
	pages := web.NewPages()
	mux.HandleFunc("GET /{$}", pages.Writer)
	mux.HandleFunc("GET /static/", pages.Static)
	mux.HandleFunc("POST /api/generation", func(w http.ResponseWriter, r *http.Request) {
		response.JSON(w, http.StatusAccepted, map[string]any{"id": "job-1", "status": "queued", "backend": "background_tasks"})
	})
	mux.HandleFunc("GET /api/generation/{id}", func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		defer f.mu.Unlock()
		out := map[string]any{"id": "job-1", "status": f.status, "progress": 100, "stage": "done", "backend": "background_tasks"}
		if f.status == "succeeded" {
			out["result"] = map[string]any{"episode_number": 1}
		}
		if r.URL.Query().Get("include") == "script" {
			f.refetch++
			out["script"] = f.soFar
		}
		response.JSON(w, http.StatusOK, out)
	})
	mux.HandleFunc("GET /api/generation/{id}/events", func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		n := len(f.requests)
		f.requests = append(f.requests, r.URL.Query().Get("last_event_id"))
		var conn func(http.ResponseWriter, string)
		if n < len(f.conns) {
			conn = f.conns[n]
		}
		f.mu.Unlock()
		if conn == nil {
			w.WriteHeader(http.StatusNoContent)
			return
		}
		w.Header().Set("Content-Type", "text/event-stream")
		fmt.Fprint(w, "retry: 1000\n\n")
		conn(w, r.URL.Query().Get("last_event_id"))
	})
	mux.HandleFunc("GET /api/projects/{p}/episodes/{n}", func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		defer f.mu.Unlock()
		response.JSON(w, http.StatusOK, map[string]any{"project_id": r.PathValue("p"), "number": 1, "title": "가짜 · Fake",
			"script": f.episode, "job_id": "job-1", "created_at": time.Now()})
	})
	mux.HandleFunc("GET /api/projects/{p}/episodes", func(w http.ResponseWriter, r *http.Request) {
		response.JSON(w, http.StatusOK, map[string]any{"items": []any{map[string]any{"number": 1, "title": "가짜 · Fake"}}})
	})
	mux.HandleFunc("GET /api/generation/system-info", func(w http.ResponseWriter, r *http.Request) {
		response.JSON(w, http.StatusOK, map[string]any{"worker_system": map[string]any{"type": "background_tasks"}})
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return contract.ProxyRequests(t, srv.URL)
}

func (f *fakeJob) eventRequests() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.requests...)
}

// sse writes events and flushes.
func sse(w http.ResponseWriter, events ...string) {
	for _, e := range events {
		fmt.Fprint(w, e)
		w.(http.Flusher).Flush()
		time.Sleep(20 * time.Millisecond)
	}
}

func scriptEvent(seq, offset int, text string) string {
	data, _ := json.Marshal(map[string]any{"seq": seq, "offset": offset, "text": text})
	return fmt.Sprintf("id: %d\nevent: script\ndata: %s\n\n", seq, data)
}

// TestBrowserScriptRepeatsGapsAndReconnect: the page ignores a script event
// it holds already, fills a gap from ?include=script, keeps its text across a
// broken stream (resuming with last_event_id), counts offsets in characters
// (an emoji is two UTF-16 units, one character), and after the final event
// asks for no more events.
func TestBrowserScriptRepeatsGapsAndReconnect(t *testing.T) {
	ctx := newBrowser(t)
	const soFar = "🎬 Hello world, 지수!\n" // 19 characters
	const full = soFar + "END"
	f := &fakeJob{status: "running", soFar: soFar, episode: full}
	f.conns = []func(http.ResponseWriter, string){
		func(w http.ResponseWriter, _ string) {
			sse(w, "id: 1\nevent: status\ndata: {\"seq\":1,\"type\":\"status\",\"status\":\"running\",\"progress\":5,\"stage\":\"started\"}\n\n",
				scriptEvent(2, 0, "🎬 Hello "),
				scriptEvent(3, 0, "🎬 Hello "), // held already
				scriptEvent(4, 8, "wor"))
			// the stream breaks here
		},
		func(w http.ResponseWriter, _ string) {
			sse(w, scriptEvent(5, 15, "지수!\n"), // after a gap: "ld, " is missing
				scriptEvent(6, 17, "!\nEND")) // partly held
			time.Sleep(300 * time.Millisecond) // the refetch is answered
			f.mu.Lock()
			f.status = "succeeded"
			f.mu.Unlock()
			sse(w, "id: 7\nevent: result\ndata: {\"seq\":7,\"type\":\"result\",\"status\":\"succeeded\",\"progress\":100,\"stage\":\"done\",\"data\":{\"episode_number\":1},\"final\":true}\n\n")
		},
	}
	srv := f.server(t)
	submitOnPage(t, ctx, srv, "fake")
	run(t, ctx, 30*time.Second, "wait for the episode",
		waitFor(`window.scriptgenWriter.done && window.scriptgenWriter.episode !== null`, 30*time.Second))
	s := readScript(t, ctx)
	if s.Script != full || s.Shown != full || s.StreamedMatches == nil || !*s.StreamedMatches {
		t.Fatalf("page streamed %q and shows %q, want %q", s.Script, s.Shown, full)
	}
	if len(s.ScriptRepeats) == 0 || s.ScriptRepeats[0] != 3 || len(s.ScriptGaps) == 0 || s.ScriptGaps[0][0] != 11 || s.ScriptGaps[0][1] != 15 || s.Refetches < 1 {
		t.Fatalf("repeats %v, gaps %v, refetches %d: want event 3 repeated, a gap from 11 to 15 and a refetch", s.ScriptRepeats, s.ScriptGaps, s.Refetches)
	}
	if !s.Final || s.Connects != 2 {
		t.Fatalf("final %v after %d connections, want the final event on the second", s.Final, s.Connects)
	}
	w := readWriter(t, ctx)
	checkPageSeqs(t, ctx, w)
	time.Sleep(3 * time.Second)
	if got := f.eventRequests(); len(got) != 2 || got[0] != "" || got[1] != "4" {
		t.Fatalf("events requests with last_event_id %q, want two: none, then 4", got)
	}
}

// TestBrowserScriptStopsOn204: a page whose reconnect is answered 204 No
// Content (the job finished and the page has its last event) stops: it asks
// for no more events, ends from the job's state and shows the episode, with
// the text it streamed kept until then.
func TestBrowserScriptStopsOn204(t *testing.T) {
	ctx := newBrowser(t)
	const text = "TITLE: 가짜\n"
	f := &fakeJob{status: "running", soFar: text, episode: text}
	f.conns = []func(http.ResponseWriter, string){
		func(w http.ResponseWriter, _ string) {
			sse(w, "id: 1\nevent: status\ndata: {\"seq\":1,\"type\":\"status\",\"status\":\"running\",\"progress\":5,\"stage\":\"started\"}\n\n",
				scriptEvent(2, 0, text))
			f.mu.Lock()
			f.status = "succeeded"
			f.mu.Unlock()
		},
		// then 204
	}
	srv := f.server(t)
	submitOnPage(t, ctx, srv, "fake")
	run(t, ctx, 30*time.Second, "wait for the episode",
		waitFor(`window.scriptgenWriter.done && window.scriptgenWriter.episode !== null`, 30*time.Second))
	s := readScript(t, ctx)
	if s.Script != text || s.Shown != text || s.Final {
		t.Fatalf("page streamed %q, shows %q, final %v", s.Script, s.Shown, s.Final)
	}
	time.Sleep(3 * time.Second)
	if got := f.eventRequests(); len(got) != 2 || got[1] != "2" {
		t.Fatalf("events requests with last_event_id %q, want two (the second after 2, answered 204) and no more", got)
	}
}

// TestBrowserFailedEventName: a failed job's end comes as an event named
// "failed", which the page shows; EventSource's own "error" is not a job's.
func TestBrowserFailedEventName(t *testing.T) {
	ctx := newBrowser(t)
	f := &fakeJob{status: "running"}
	f.conns = []func(http.ResponseWriter, string){
		func(w http.ResponseWriter, _ string) {
			sse(w, "id: 1\nevent: status\ndata: {\"seq\":1,\"type\":\"status\",\"status\":\"running\",\"progress\":5,\"stage\":\"started\"}\n\n",
				scriptEvent(2, 0, "TITLE: 반쯤\n"))
			f.mu.Lock()
			f.status = "failed"
			f.mu.Unlock()
			sse(w, "id: 3\nevent: failed\ndata: {\"seq\":3,\"type\":\"failed\",\"status\":\"failed\",\"progress\":40,\"stage\":\"failed\",\"message\":\"the model refused\",\"final\":true}\n\n")
		},
	}
	srv := f.server(t)
	submitOnPage(t, ctx, srv, "fake")
	run(t, ctx, 30*time.Second, "wait for the failure",
		waitFor(`window.scriptgenWriter.done`, 30*time.Second))
	s := readScript(t, ctx)
	stage := get(t, ctx, 5*time.Second, "read the stage", chromedp.Text(chromedp.CSS("#stage")))
	title := get(t, ctx, 5*time.Second, "read the title", chromedp.Text(chromedp.CSS("#script-title")))
	if !s.Final || !strings.Contains(stage, "the model refused") || s.Shown != "TITLE: 반쯤\n" || !strings.Contains(title, "Unfinished") {
		t.Fatalf("final %v, stage %q, script %q under %q: want the failure shown and the text so far kept", s.Final, stage, s.Shown, title)
	}
	time.Sleep(2 * time.Second)
	if got := f.eventRequests(); len(got) != 1 {
		t.Fatalf("%d events requests after a failed job's final event, want 1", len(got))
	}
}

// TestBrowserFountain converts the template generator's scripts with the
// page's converter (fountain.js) and checks the Fountain it maps them to:
// the title page, each scene heading with its number, each cue (forced with
// @ when its name has no Latin capital), transitions alone between blank
// lines, emphasis escaped, and nothing else changed.
func TestBrowserFountain(t *testing.T) {
	ctx := newBrowser(t)
	mux := http.NewServeMux()
	pages := web.NewPages()
	mux.HandleFunc("GET /{$}", pages.Writer)
	mux.HandleFunc("GET /static/", pages.Static)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	run(t, ctx, 20*time.Second, "open the page", chromedp.Navigate(contract.ProxyRequests(t, srv.URL)+"/"), waitFor(`typeof sgFountain === 'object'`, 10*time.Second))

	gen := generate.NewTemplate(generate.TemplateConfig{})
	for _, tc := range []struct {
		name string
		req  generate.Request
	}{
		{"two characters and notes", generate.Request{Episode: job.EpisodeData{Title: "첫 만남 · The *first* meeting",
			Synopsis:   "지수는 마감 전날 민호를 만난다. Jisu meets Minho *the night* before_the deadline. INT. nothing happens.",
			Characters: []job.Character{{Name: "지수", Description: "막내 작가"}, {Name: "Minho"}}},
			Context: []generate.ContextChunk{{DocumentID: "bible", ChunkID: 3, Text: "지수는 커피를 싫어한다."}}}},
		{"one character", generate.Request{Episode: job.EpisodeData{Title: "Solo", Synopsis: "ALL CAPS SENTENCE. Then more.",
			Characters: []job.Character{{Name: "지수"}}}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sc, err := gen.Generate(context.Background(), tc.req, nil)
			if err != nil {
				t.Fatal(err)
			}
			arg, _ := json.Marshal(sc.Script)
			title, _ := json.Marshal(sc.Title)
			out := get(t, ctx, 10*time.Second, "convert", chromedp.Evaluate[string](fmt.Sprintf(`sgFountain.toFountain(%s, %s)`, arg, title)))
			lines := strings.Split(out, "\n")
			if !strings.HasPrefix(out, "Title: "+strings.ReplaceAll(tc.req.Episode.Title, "*", `\*`)+"\nCredit: Written by\nAuthor: scriptgen (template-v1)\n") {
				t.Fatalf("title page:\n%s", out)
			}
			// Every element of the body, in order, is one of the script's.
			at := slicesIndex(lines, "> FADE IN:")
			if at < 0 || lines[at-1] != "" {
				t.Fatalf("no FADE IN: after the title page:\n%s", out)
			}
			var want []string
			_, body, _ := strings.Cut(sc.Script, "\nFADE IN:\n")
			for _, l := range strings.Split(body, "\n") {
				trimmed := strings.TrimSpace(l)
				switch {
				case trimmed == "":
					continue
				case strings.HasPrefix(l, strings.Repeat(" ", 40)):
					want = append(want, trimmed) // CUT TO:
				case strings.HasPrefix(l, strings.Repeat(" ", 20)):
					if strings.Contains(trimmed, "MINHO") {
						want = append(want, trimmed)
					} else {
						want = append(want, "@"+trimmed)
					}
				case len(l) > 3 && l[0] >= '1' && l[0] <= '9' && strings.Contains(l, ". "):
					num, heading, _ := strings.Cut(l, ". ")
					want = append(want, heading+" #"+num+"#")
				default:
					want = append(want, strings.NewReplacer("*", `\*`, "_", `\_`).Replace(trimmed))
				}
			}
			var got []string
			for _, l := range lines[at:] {
				if l != "" {
					got = append(got, strings.TrimPrefix(l, "!"))
				}
			}
			got = got[1:] // FADE IN:
			if len(got) == 0 || got[len(got)-1] != "> THE END <" || got[len(got)-2] != "> FADE OUT." {
				t.Fatalf("the body does not end with FADE OUT. and THE END:\n%s", out)
			}
			want = append(want[:len(want)-2], "> FADE OUT.", "> THE END <")
			if strings.Join(got, "\n") != strings.Join(want, "\n") {
				t.Fatalf("body:\n%s\nwant the elements:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
			}
			for i, l := range lines[at:] {
				i += at
				isHeading := strings.HasSuffix(l, "#") && (strings.HasPrefix(l, "INT.") || strings.HasPrefix(l, "EXT."))
				if (isHeading || l == "CUT TO:" || strings.HasPrefix(l, "@") || l == "MINHO" || strings.HasPrefix(l, "MINHO (")) && lines[i-1] != "" {
					t.Fatalf("line %d %q does not follow a blank line:\n%s", i+1, l, out)
				}
				if (isHeading || l == "CUT TO:") && lines[i+1] != "" {
					t.Fatalf("line %d %q is not followed by a blank line:\n%s", i+1, l, out)
				}
				if strings.HasPrefix(l, " ") || strings.HasPrefix(l, "\t") {
					t.Fatalf("line %d %q is indented", i+1, l)
				}
			}
		})
	}
}

func slicesIndex(s []string, v string) int {
	for i, x := range s {
		if x == v {
			return i
		}
	}
	return -1
}

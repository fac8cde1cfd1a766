package e2e

import (
	"context"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/scriptgen/scriptgen/bench/livescript/scriptkit"
	"github.com/scriptgen/scriptgen/internal/generate"
	"github.com/scriptgen/scriptgen/internal/job"
)

// startFakeModel serves a fake OpenAI-compatible model (scriptkit.Fake) on
// a port of this test process; its base URL ends in /v1, as
// OPENAI_BASE_URL would.
func startFakeModel(t *testing.T, cfg scriptkit.FakeConfig) (*scriptkit.Fake, string) {
	t.Helper()
	fake := scriptkit.NewFake(cfg)
	srv := httptest.NewServer(fake)
	t.Cleanup(srv.Close)
	return fake, srv.URL + "/v1"
}

func fakeGenerator(t *testing.T, baseURL string) *generate.OpenAI {
	t.Helper()
	g, err := generate.NewOpenAI(generate.OpenAIConfig{BaseURL: baseURL, Model: "fake", Backoff: time.Millisecond, IdleTimeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	return g
}

func noProgress(context.Context, generate.Progress) error { return nil }

// TestLiveScriptFakeModel checks the fake model against the real
// OpenAI-compatible generator: a whole answer comes out byte for byte, with
// the usage the fake reports; a generation resumed from any token's end
// asks for, and is served, only the rest, and still ends as the whole
// answer; a cut stream is counted as far as it went.
func TestLiveScriptFakeModel(t *testing.T) {
	const tokens = 150
	fake, url := startFakeModel(t, scriptkit.FakeConfig{Tokens: tokens})
	g := fakeGenerator(t, url)
	ctx := context.Background()
	ep := job.EpisodeData{Title: "에피소드 7", Synopsis: "A writer meets a deadline."}
	a := fake.Answer(ep.Title)
	if len(a.Tokens) != tokens || strings.TrimSpace(a.Text) != strings.TrimRight(a.Text, "\n") || !strings.HasSuffix(a.Text, "OUT.\n") {
		t.Fatalf("answer of %d tokens, ends %q", len(a.Tokens), a.Text[len(a.Text)-20:])
	}
	if other := fake.Answer("에피소드 8"); other.Text == a.Text {
		t.Fatal("two titles got the same answer")
	}

	var told strings.Builder
	s, err := g.Generate(ctx, generate.Request{Episode: ep, Text: func(_ context.Context, d string) error {
		told.WriteString(d)
		return nil
	}}, noProgress)
	if err != nil {
		t.Fatal(err)
	}
	if s.Script != a.Text || told.String() != a.Text {
		t.Fatalf("uninterrupted: script equal %v, told equal %v", s.Script == a.Text, told.String() == a.Text)
	}
	if s.Usage.CompletionTokens != tokens || fake.ServedFor(ep.Title) != tokens || fake.Served() != tokens {
		t.Fatalf("usage %+v, served %d of the title, %d in all; want %d", s.Usage, fake.ServedFor(ep.Title), fake.Served(), tokens)
	}

	// Resumed from the end of every token: only the rest is served.
	for k := range tokens - 1 {
		before := fake.ServedFor(ep.Title)
		resume := a.Text[:a.ByteEnds[k]]
		told.Reset()
		s, err := g.Generate(ctx, generate.Request{Episode: ep, Resume: resume, Text: func(_ context.Context, d string) error {
			told.WriteString(d)
			return nil
		}}, noProgress)
		if err != nil {
			t.Fatal(err)
		}
		if s.Script != a.Text || resume+told.String() != a.Text {
			t.Fatalf("resumed after token %d: the script is not the answer:\n%q\nwant\n%q", k, s.Script, a.Text)
		}
		if got, want := fake.ServedFor(ep.Title)-before, tokens-k-1; got != want {
			t.Fatalf("resumed after token %d: %d tokens served, want %d", k, got, want)
		}
	}
	if fake.Mismatches() != 0 {
		t.Fatalf("%d partial answers were not the answer's start", fake.Mismatches())
	}

	// A stream the client gives up on is counted as far as it went.
	slow, slowURL := startFakeModel(t, scriptkit.FakeConfig{Tokens: tokens, Every: 2 * time.Millisecond})
	cut, cancel := context.WithCancel(ctx)
	go func() {
		<-slow.WhenServed(ep.Title, 50)
		cancel()
	}()
	if _, err := fakeGenerator(t, slowURL).Generate(cut, generate.Request{Episode: ep}, noProgress); err == nil {
		t.Fatal("a cancelled generation succeeded")
	}
	time.Sleep(50 * time.Millisecond)
	if n := slow.ServedFor(ep.Title); n < 50 || n > 55 { // the one in flight, and a margin
		t.Fatalf("%d tokens counted for a stream cut after 50", n)
	}
}

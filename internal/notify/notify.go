// Package notify tells a chat or paging system what the rollback machinery
// did: rollbacks, roll-forwards and the controller's trigger state changes,
// posted as JSON to NOTIFY_WEBHOOK_URL with a Slack-compatible "text" field
// (Slack, Mattermost and Rocket.Chat incoming webhooks show it as is).
//
// Sending never blocks the caller: a notification is queued and posted by one
// goroutine, retried with exponential backoff while the receiver fails or
// cannot be reached. The retry loop is a few lines of its own, so the module
// gains no dependency for it.
package notify

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"sync"
	"time"
)

// Message is one notification's body.
type Message struct {
	// Text is what a chat shows (Slack's incoming-webhook field).
	Text string `json:"text"`
	// Event is rollback, rollforward or trigger.
	Event string    `json:"event"`
	At    time.Time `json:"at"`
	// Source names the process that sent it (its controller's holder id).
	Source string `json:"source,omitempty"`
	// Data is the event's record or trigger state.
	Data any `json:"data,omitempty"`
}

// Config tunes the sender; zero fields take the defaults.
type Config struct {
	URL string
	// Attempts per message (5), the first retry after Backoff (1s), doubled
	// each time up to MaxBackoff (30s).
	Attempts   int
	Backoff    time.Duration
	MaxBackoff time.Duration
	// Timeout of one POST (5s).
	Timeout time.Duration
	// StopGrace is how long Stop lets queued messages be retried (5s): long
	// enough for a command that ends right after its rollback to get its
	// notification through a receiver's passing failure, short enough not to
	// hold a stopping server for the whole backoff.
	StopGrace time.Duration
	Source    string
}

// Webhook posts messages to one URL, in order, one at a time.
type Webhook struct {
	cfg    Config
	client *http.Client
	log    *slog.Logger
	queue  chan Message

	startOnce, stopOnce, abortOnce sync.Once
	// stop: Stop was called, send what is queued and end; abort: Stop's
	// time is up, give up on what is left at once.
	stop, abort chan struct{}
	done        chan struct{}
}

// queueSize bounds the messages waiting to be sent; past it the newest is
// dropped with a warning, since a receiver down for long must not make the
// process hold an ever longer backlog.
const queueSize = 256

// New builds a sender for cfg.URL; Start begins sending.
func New(cfg Config, log *slog.Logger) *Webhook {
	if cfg.Attempts <= 0 {
		cfg.Attempts = 5
	}
	if cfg.Backoff <= 0 {
		cfg.Backoff = time.Second
	}
	if cfg.MaxBackoff <= 0 {
		cfg.MaxBackoff = 30 * time.Second
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 5 * time.Second
	}
	if cfg.StopGrace <= 0 {
		cfg.StopGrace = 5 * time.Second
	}
	return &Webhook{
		cfg:    cfg,
		client: &http.Client{Timeout: cfg.Timeout},
		log:    log.With("component", "notify"),
		queue:  make(chan Message, queueSize),
		stop:   make(chan struct{}),
		abort:  make(chan struct{}),
		done:   make(chan struct{}),
	}
}

// Send queues a message; it never blocks.
func (w *Webhook) Send(m Message) {
	if m.At.IsZero() {
		m.At = time.Now().UTC()
	}
	if m.Source == "" {
		m.Source = w.cfg.Source
	}
	select {
	case w.queue <- m:
	default:
		w.log.Warn("Notification dropped: the webhook's queue is full", "event", m.Event, "text", m.Text)
	}
}

// Start sends queued messages until Stop.
func (w *Webhook) Start(context.Context) error {
	w.startOnce.Do(func() { go w.run() })
	return nil
}

// Stop sends what is queued, retries included, within ctx's time and
// StopGrace, then stops; what is left then is given up (and logged).
func (w *Webhook) Stop(ctx context.Context) error {
	w.startOnce.Do(func() { close(w.done) }) // never started: nothing to wait for
	w.stopOnce.Do(func() { close(w.stop) })
	grace := time.NewTimer(w.cfg.StopGrace)
	defer grace.Stop()
	select {
	case <-w.done:
		return nil
	case <-ctx.Done():
	case <-grace.C:
	}
	w.abortOnce.Do(func() { close(w.abort) })
	<-w.done // at once: every post and every wait watches abort
	return errors.New("notifications left unsent: Stop's time ran out")
}

func (w *Webhook) run() {
	defer close(w.done)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		select {
		case <-w.abort:
			cancel()
		case <-ctx.Done():
		}
	}()
	for {
		select {
		case m := <-w.queue:
			w.deliver(ctx, m)
		case <-w.stop:
			// A command stops right after its rollback: what is queued
			// still gets its retries, until Stop gives up.
			for {
				select {
				case m := <-w.queue:
					w.deliver(ctx, m)
				default:
					return
				}
			}
		}
	}
}

// deliver posts m, retrying with backoff until it is accepted, its attempts
// are used up or ctx ends (Stop gave up).
func (w *Webhook) deliver(ctx context.Context, m Message) {
	delay := w.cfg.Backoff
	for attempt := 1; ; attempt++ {
		err := w.post(ctx, m)
		if err == nil {
			return
		}
		if attempt >= w.cfg.Attempts || ctx.Err() != nil {
			w.log.Error("Notification not delivered", "event", m.Event, "attempts", attempt, "err", err)
			return
		}
		w.log.Warn("Notification failed; retrying", "event", m.Event, "attempt", attempt, "in", delay, "err", err)
		select {
		case <-time.After(delay):
		case <-ctx.Done():
			w.log.Error("Notification not delivered", "event", m.Event, "attempts", attempt, "err", ctx.Err())
			return
		}
		delay = min(2*delay, w.cfg.MaxBackoff)
	}
}

// post sends m once; any answer but 2xx is a failure.
func (w *Webhook) post(ctx context.Context, m Message) error {
	body, err := json.Marshal(m)
	if err != nil {
		return fmt.Errorf("encode notification: %w", err)
	}
	req, err := http.NewRequestWithContext(ctx, "POST", w.cfg.URL, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := w.client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<16))
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("webhook answered HTTP %d", resp.StatusCode)
	}
	return nil
}

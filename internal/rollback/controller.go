package rollback

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/scriptgen/scriptgen/internal/clock"
	"github.com/scriptgen/scriptgen/internal/loop"
	"github.com/scriptgen/scriptgen/internal/store"
)

// Probe measures what the triggers watch.
type Probe interface {
	// RedisUp reports whether the durable side's Redis answers.
	RedisUp(ctx context.Context) bool
	// WorkerCrashes counts worker processes that went silent without a clean
	// stop within the window.
	WorkerCrashes(ctx context.Context, window time.Duration) (int, error)
	// QueueDelay is how long the oldest queued durable job has waited.
	QueueDelay(ctx context.Context) (time.Duration, error)
	// MemoryPercent is this process's share of the memory it may have (its
	// own and its cgroup's, never the host's: sysmem.Usage.Percent).
	MemoryPercent() (float64, error)
	// WorkersUp counts the durable worker processes alive now.
	WorkersUp(ctx context.Context) (int, error)
	// DurableEnabled reports whether new jobs go to the durable worker now.
	DurableEnabled() bool
}

// ControllerConfig holds the triggers' thresholds and windows; the defaults
// are the runbook's.
type ControllerConfig struct {
	RedisDownFor time.Duration // Redis unreachable for longer than this (5m)
	MaxCrashes   int           // more than this many worker crashes… (3)
	CrashWindow  time.Duration // …within this window (10m)…
	// …counted so for this long (10s): a database that stalls every
	// worker's heartbeat for a few seconds makes them all look crashed until
	// their next beat.
	CrashesFor    time.Duration
	MaxQueueDelay time.Duration // oldest queued durable job older than this (10m)
	QueueDelayFor time.Duration // …continuously for this long (1m)
	MemoryPercent float64       // the process's memory above this percent of its limit (90)
	MemoryFor     time.Duration // …continuously for this long (1m)
	// WorkersMissingFor: no durable worker alive for this long (1m) while
	// the durable worker is on (the runbook's RQWorkerDown).
	WorkersMissingFor time.Duration
	Interval          time.Duration // how often the leader evaluates (5s)
	HolderID          string
	// Clock tells the time of the triggers' windows (clock.Real{} when nil).
	Clock clock.Clock
}

// DefaultControllerConfig is the runbook's: Redis down > 5 min, > 3 worker
// crashes in 10 min, queue delay > 10 min, the process's memory > 90 % of its
// limit, no durable worker alive for 1 min.
func DefaultControllerConfig() ControllerConfig {
	return ControllerConfig{
		RedisDownFor:  5 * time.Minute,
		MaxCrashes:    3,
		CrashWindow:   10 * time.Minute,
		CrashesFor:    10 * time.Second,
		MaxQueueDelay: 10 * time.Minute,
		QueueDelayFor: time.Minute,
		MemoryPercent: 90,
		MemoryFor:     time.Minute,
		Interval:      5 * time.Second,

		WorkersMissingFor: time.Minute,
	}
}

// Leadership elects one controller among replicas through the database.
// AcquireLease reports the term's epoch, the fencing token every write of
// the leader's rollback carries (store.Fence).
type Leadership interface {
	AcquireLease(ctx context.Context, name, holder string, ttl time.Duration) (epoch int64, ok bool, err error)
	ReleaseLeadership(ctx context.Context, name, holder string) error
}

// leadership is the name under which the controllers elect their leader.
const leadership = "rollback-controller"

// TriggerState is one trigger as the stats and the evidence show it.
type TriggerState struct {
	Name string `json:"name"`
	// ok | pending | firing | inconclusive: its measurement failed (a
	// metric that could not be read), which never counts toward a rollback.
	State     string    `json:"state"`
	Since     time.Time `json:"since,omitzero"`
	Value     string    `json:"value"`
	Threshold string    `json:"threshold"`
	Window    string    `json:"window"`
}

// Controller rolls back automatically when a trigger holds for its window. It
// acts only while the durable worker is on, so it rolls back once per incident,
// and it never rolls forward: an operator does.
type Controller struct {
	svc    *Service
	probe  Probe
	leader Leadership
	cfg    ControllerConfig
	log    *slog.Logger
	// OnRollback hears about every automatic rollback (metrics).
	OnRollback func(trigger string, err error)
	// OnTriggerChange hears about every trigger whose state changed since
	// this leader's previous tick (webhook notifications); from is "" at a
	// leader's first tick, which is not reported.
	OnTriggerChange func(t TriggerState, from string)

	mu       sync.Mutex
	since    map[string]time.Time
	states   []TriggerState
	isLeader bool
	epoch    int64 // the term this controller leads in, while isLeader
	// The durable worker as this leader last saw it, and when it saw it
	// switched on: crashes from before that led to the decision already
	// taken (its own rollback, or an operator's roll-forward since).
	flagSeen, wasEnabled bool
	enabledAt            time.Time

	loop loop.Loop
}

// NewController builds the controller.
func NewController(svc *Service, probe Probe, leader Leadership, cfg ControllerConfig, log *slog.Logger) *Controller {
	if cfg.Clock == nil {
		cfg.Clock = clock.Real{}
	}
	if cfg.Interval <= 0 {
		cfg.Interval = 5 * time.Second
	}
	return &Controller{
		svc:    svc,
		probe:  probe,
		leader: leader,
		cfg:    cfg,
		log:    log.With("component", "rollback-controller"),
		since:  map[string]time.Time{},
	}
}

// Triggers returns the triggers' current state.
func (c *Controller) Triggers() []TriggerState {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]TriggerState(nil), c.states...)
}

// Start evaluates the triggers every interval until Stop.
func (c *Controller) Start(ctx context.Context) error {
	c.loop.Start(ctx, c.cfg.Interval, false, c.Tick)
	return nil
}

// Stop stops the controller and gives up its leadership, if it has it, so that
// another replica's controller takes over at its next tick (a graceful restart
// left the triggers unwatched until the lease expired).
func (c *Controller) Stop(ctx context.Context) error {
	c.loop.Stop()
	c.mu.Lock()
	leader := c.isLeader
	c.isLeader = false
	c.mu.Unlock()
	if !leader {
		return nil
	}
	// A stop's context may have been spent on draining jobs; the release is
	// one short statement.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
	defer cancel()
	return c.leader.ReleaseLeadership(ctx, leadership, c.cfg.HolderID)
}

type reading struct {
	name, value, threshold, window string
	cond                           bool
	known                          bool
	hold                           time.Duration
}

// StateInconclusive is a trigger whose measurement failed. Redis not
// answering is not one: that is the redis_unreachable trigger's condition.
const StateInconclusive = "inconclusive"

// Tick evaluates the triggers once; the leader rolls back if one fires.
func (c *Controller) Tick(ctx context.Context) {
	if !c.lead(ctx) {
		return
	}
	enabled := c.probe.DurableEnabled()
	now := c.cfg.Clock.Now()
	readings := c.read(ctx, c.crashWindow(enabled, now))
	before := c.Triggers()
	fired, evidence := c.evaluate(readings, enabled, now)
	c.reportChanges(before, evidence)
	if fired != nil {
		c.fire(ctx, fired, evidence, now)
	}
	if !enabled {
		c.noteUnclean(ctx, readings)
	}
}

// reportChanges tells OnTriggerChange of each trigger whose state differs
// from the previous tick's; a leader's first tick has nothing to differ from.
func (c *Controller) reportChanges(before, after []TriggerState) {
	if c.OnTriggerChange == nil || len(before) == 0 {
		return
	}
	prev := map[string]string{}
	for _, st := range before {
		prev[st.Name] = st.State
	}
	for _, st := range after {
		if from := prev[st.Name]; from != "" && from != st.State {
			c.OnTriggerChange(st, from)
		}
	}
}

// noteUnclean records, in rollback mode, a tick whose readings were not
// clean — a trigger's condition held, or its measurement failed — so that a
// roll-forward waits for clean windows after it (Service.checkCleanWindows).
// No worker being up is what rollback mode expects, so workers_missing does
// not count.
func (c *Controller) noteUnclean(ctx context.Context, readings []reading) {
	var bad []string
	for _, r := range readings {
		switch {
		case r.name == "workers_missing":
		case !r.known:
			bad = append(bad, r.name+" inconclusive")
		case r.cond:
			bad = append(bad, r.name+" "+r.value)
		}
	}
	if len(bad) == 0 {
		return
	}
	if err := c.svc.MarkUnclean(ctx, c.fence(), strings.Join(bad, ", ")); err != nil {
		c.log.Warn("Could not note unclean readings", "err", err)
	}
}

// lead takes or renews the leadership, and reports whether this controller
// has it. A controller that gains or loses it starts its windows afresh.
func (c *Controller) lead(ctx context.Context) bool {
	epoch, leader, err := c.leader.AcquireLease(ctx, leadership, c.cfg.HolderID, c.leaseTTL())
	if err != nil {
		c.log.Warn("Leader election failed", "err", err)
		return false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if leader != c.isLeader || epoch != c.epoch {
		c.since = map[string]time.Time{}
		c.flagSeen, c.enabledAt = false, time.Time{}
	}
	c.isLeader, c.epoch = leader, epoch
	return leader
}

// leaseTTL is how long a term lasts without renewal: three ticks.
func (c *Controller) leaseTTL() time.Duration { return 3 * c.cfg.Interval }

// fence is the term this controller leads in now.
func (c *Controller) fence() store.Fence {
	c.mu.Lock()
	defer c.mu.Unlock()
	return store.Fence{Name: leadership, Holder: c.cfg.HolderID, Epoch: c.epoch}
}

// renewWhile keeps the lease of the term fence names alive until done is
// closed: a rollback may outlast the lease, and a leader that stops renewing
// while it acts would be deposed halfway by a replica that did nothing wrong.
// A renewal that finds another term has started stops; the store then refuses
// the rest of this leader's steps.
func (c *Controller) renewWhile(ctx context.Context, f store.Fence, done <-chan struct{}) {
	t := time.NewTicker(c.cfg.Interval)
	defer t.Stop()
	for {
		select {
		case <-done:
			return
		case <-ctx.Done():
			return
		case <-t.C:
		}
		epoch, ok, err := c.leader.AcquireLease(ctx, leadership, c.cfg.HolderID, c.leaseTTL())
		if err == nil && (!ok || epoch != f.Epoch) {
			c.log.Warn("Deposed while rolling back: the store refuses the remaining steps", "term", f.Epoch)
			return
		}
	}
}

// crashWindow notes when this leader saw the durable worker switched on, and
// returns the window worker crashes are counted over: the configured one, or
// the time since that switch-on when it is shorter.
func (c *Controller) crashWindow(enabled bool, now time.Time) time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.flagSeen && enabled && !c.wasEnabled {
		c.enabledAt = now
	}
	c.flagSeen, c.wasEnabled = true, enabled
	window := c.cfg.CrashWindow
	if !c.enabledAt.IsZero() {
		window = max(min(window, now.Sub(c.enabledAt)), 0)
	}
	return window
}

// evaluate updates each trigger's state from its reading: a condition that
// holds while the durable worker is on is pending from the first tick that
// saw it, and firing once it has held for its window. It returns the first
// trigger firing, if any, and the states as evidence.
func (c *Controller) evaluate(readings []reading, enabled bool, now time.Time) (*reading, []TriggerState) {
	var fired *reading
	c.mu.Lock()
	defer c.mu.Unlock()
	c.states = c.states[:0]
	for i := range readings {
		r := &readings[i]
		st := TriggerState{
			Name:      r.name,
			State:     "ok",
			Value:     r.value,
			Threshold: r.threshold,
			Window:    r.window,
		}
		switch {
		case !r.known:
			st.State = StateInconclusive
			delete(c.since, r.name)
		case r.cond && enabled:
			since, ok := c.since[r.name]
			if !ok {
				since = now
				c.since[r.name] = now
			}
			st.Since, st.State = since, "pending"
			if now.Sub(since) >= r.hold {
				st.State = "firing"
				if fired == nil {
					fired = r
				}
			}
		default:
			delete(c.since, r.name)
		}
		c.states = append(c.states, st)
	}
	return fired, append([]TriggerState(nil), c.states...)
}

// fire rolls back for the trigger that fired, with the triggers' states as
// evidence; the windows start afresh after it.
func (c *Controller) fire(ctx context.Context, fired *reading, evidence []TriggerState, now time.Time) {
	ev, _ := json.Marshal(map[string]any{"fired": fired.name, "triggers": evidence, "at": now.UTC()})
	reason := fmt.Sprintf("automatic: %s (%s, threshold %s, held %s)", fired.name, fired.value, fired.threshold, fired.window)
	c.log.Error("Trigger fired: rolling back", "trigger", fired.name, "value", fired.value, "threshold", fired.threshold)
	fence := c.fence()
	req := Request{
		Reason:   reason,
		Actor:    "controller@" + c.cfg.HolderID,
		Trigger:  fired.name,
		Evidence: ev,
		Fence:    &fence,
	}
	done := make(chan struct{})
	go c.renewWhile(ctx, fence, done)
	_, err := c.svc.Rollback(ctx, req, func(s Step) {
		c.log.Info("Rollback step", "step", s.Name, "ok", s.OK, "detail", s.Detail, "leader_epoch", s.LeaderEpoch)
	})
	close(done)
	if c.OnRollback != nil {
		c.OnRollback(fired.name, err)
	}
	c.mu.Lock()
	c.since = map[string]time.Time{}
	c.wasEnabled = false // switched off by this rollback: the next switch-on starts a new count
	c.mu.Unlock()
	if err != nil {
		c.log.Error("Automatic rollback failed", "err", err)
	}
}

// read takes the triggers' readings; worker crashes are counted over
// crashWindow, the configured window or less.
func (c *Controller) read(ctx context.Context, crashWindow time.Duration) []reading {
	cfg := c.cfg
	redisUp := c.probe.RedisUp(ctx)
	crashes, crashErr := c.probe.WorkerCrashes(ctx, crashWindow)
	delay, delayErr := c.probe.QueueDelay(ctx)
	mem, memErr := c.probe.MemoryPercent()
	up, upErr := c.probe.WorkersUp(ctx)
	crashValue := fmt.Sprintf("%d crashes", crashes)
	if crashWindow < cfg.CrashWindow {
		// Counted since the durable worker was switched on: the threshold
		// stays the configured window, the value says what it covers.
		crashValue += " since the durable worker was switched on " + crashWindow.Round(time.Second).String() + " ago"
	}
	return []reading{
		{
			name:      "redis_unreachable",
			known:     true,
			cond:      !redisUp,
			hold:      cfg.RedisDownFor,
			value:     map[bool]string{true: "up", false: "down"}[redisUp],
			threshold: "unreachable",
			window:    cfg.RedisDownFor.String(),
		},
		{
			name:      "worker_crashes",
			known:     crashErr == nil,
			cond:      crashes > cfg.MaxCrashes,
			hold:      cfg.CrashesFor,
			value:     crashValue,
			threshold: fmt.Sprintf("> %d in %s", cfg.MaxCrashes, cfg.CrashWindow),
			window:    cfg.CrashesFor.String(),
		},
		{
			name:      "queue_delay",
			known:     delayErr == nil,
			cond:      delay > cfg.MaxQueueDelay,
			hold:      cfg.QueueDelayFor,
			value:     delay.Round(time.Millisecond).String(),
			threshold: "> " + cfg.MaxQueueDelay.String(),
			window:    cfg.QueueDelayFor.String(),
		},
		{
			name:      "system_memory",
			known:     memErr == nil,
			cond:      mem > cfg.MemoryPercent,
			hold:      cfg.MemoryFor,
			value:     fmt.Sprintf("%.1f%%", mem),
			threshold: fmt.Sprintf("> %.0f%%", cfg.MemoryPercent),
			window:    cfg.MemoryFor.String(),
		},
		{
			name:      "workers_missing",
			known:     upErr == nil,
			cond:      up == 0,
			hold:      cfg.WorkersMissingFor,
			value:     fmt.Sprintf("%d workers up", up),
			threshold: "0 workers up",
			window:    cfg.WorkersMissingFor.String(),
		},
	}
}

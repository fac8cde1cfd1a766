package progress

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
)

// Listener wakes the broker's readers from PostgreSQL's LISTEN/NOTIFY: every
// appended event is announced on a channel with its job id, so a reader sees
// an event that another process wrote within a round trip. It holds one
// dedicated connection, and only while a job is watched here: each
// notification costs the database a send and this process a read, for every
// event of every job. While it is connected the broker's watcher looks at the
// watched jobs only once a second, in case a notification is lost; while it
// is not, every 50 ms.
type Listener struct {
	url     string
	channel string
	broker  *Broker
	log     *slog.Logger
	retry   time.Duration
	// Idle is how long the connection stays open once no job is watched
	// (default 30s), so that a client's reconnect finds it still there.
	Idle time.Duration

	cancel context.CancelFunc
	done   chan struct{}
	once   sync.Once
}

// NewListener listens on channel of the database at url for broker.
func NewListener(url, channel string, broker *Broker, log *slog.Logger) *Listener {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Listener{url: url, channel: channel, broker: broker, log: log, retry: time.Second, Idle: 30 * time.Second}
}

// Start connects in the background; it never fails, since the broker's
// watcher covers for a listener that cannot connect.
func (l *Listener) Start(ctx context.Context) error {
	ctx, l.cancel = context.WithCancel(context.WithoutCancel(ctx))
	l.done = make(chan struct{})
	go l.run(ctx)
	return nil
}

// Stop closes the connection.
func (l *Listener) Stop(ctx context.Context) error {
	if l.cancel == nil {
		return nil
	}
	l.once.Do(l.cancel)
	select {
	case <-l.done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (l *Listener) run(ctx context.Context) {
	defer close(l.done)
	defer l.broker.SetLive(false)
	for ctx.Err() == nil {
		for l.broker.Feeds() == 0 {
			select {
			case <-ctx.Done():
				return
			case <-l.broker.Watched():
			}
		}
		lctx, stop := context.WithCancel(ctx)
		go l.stopWhenIdle(lctx, stop)
		err := l.listen(lctx)
		idle := lctx.Err() != nil
		stop()
		l.broker.SetLive(false)
		if ctx.Err() != nil {
			return
		}
		if idle {
			l.log.Debug("No job watched; stopped listening for job events", "channel", l.channel)
			continue
		}
		l.log.Warn("LISTEN for job events lost; polling until it is back", "channel", l.channel, "err", err)
		select {
		case <-ctx.Done():
			return
		case <-time.After(l.retry):
		}
	}
}

// stopWhenIdle calls stop once no job has been watched for l.Idle.
func (l *Listener) stopWhenIdle(ctx context.Context, stop context.CancelFunc) {
	t := time.NewTicker(max(l.Idle/4, time.Millisecond))
	defer t.Stop()
	watched := time.Now()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			if l.broker.Feeds() > 0 {
				watched = now
			} else if now.Sub(watched) >= l.Idle {
				stop()
				return
			}
		}
	}
}

func (l *Listener) listen(ctx context.Context) error {
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	conn, err := pgx.Connect(cctx, l.url)
	cancel()
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	if _, err := conn.Exec(ctx, "LISTEN "+pgx.Identifier{l.channel}.Sanitize()); err != nil {
		return err
	}
	l.broker.SetLive(true)
	l.log.Debug("Listening for job events", "channel", l.channel)
	for {
		n, err := conn.WaitForNotification(ctx)
		if err != nil {
			return err
		}
		l.broker.Wake(n.Payload)
	}
}

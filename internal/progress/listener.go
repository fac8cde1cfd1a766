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
// dedicated connection; while that is down the broker falls back to polling.
type Listener struct {
	url     string
	channel string
	broker  *Broker
	log     *slog.Logger
	retry   time.Duration

	cancel context.CancelFunc
	done   chan struct{}
	once   sync.Once
}

// NewListener listens on channel of the database at url for broker.
func NewListener(url, channel string, broker *Broker, log *slog.Logger) *Listener {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Listener{url: url, channel: channel, broker: broker, log: log, retry: time.Second}
}

// Start connects in the background; it never fails, since polling covers
// for a listener that cannot connect.
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
		err := l.listen(ctx)
		l.broker.SetLive(false)
		if ctx.Err() != nil {
			return
		}
		l.log.Warn("LISTEN for job events lost; polling until it is back", "channel", l.channel, "err", err)
		select {
		case <-ctx.Done():
			return
		case <-time.After(l.retry):
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

package limits

import (
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// Listener caps the connections open at once. A connection over the cap is
// accepted, answered "503, try again" and closed at once, so that it neither
// waits in the kernel's backlog (where /health would queue behind it) nor
// holds a file descriptor.
type Listener struct {
	net.Listener
	max  int64
	open atomic.Int64
	// refused counts connections answered 503 for being over the cap.
	refused atomic.Int64
}

// LimitListener wraps l; max <= 0 means no cap.
func LimitListener(l net.Listener, max int) *Listener {
	return &Listener{Listener: l, max: int64(max)}
}

// overCapAnswer is a whole HTTP/1.1 response: a client over the cap learns
// why and when to come back, without a goroutine or a buffer of ours.
const overCapAnswer = "HTTP/1.1 503 Service Unavailable\r\n" +
	"Content-Type: application/json; charset=utf-8\r\n" +
	"Retry-After: 1\r\n" +
	"Connection: close\r\n" +
	"Content-Length: 95\r\n" +
	"\r\n" +
	`{"error":{"code":"too_many_connections","message":"the server has too many open connections"}}` + "\n"

// Accept returns the next connection under the cap.
func (l *Listener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		if l.max > 0 && l.open.Load() >= l.max {
			l.refused.Add(1)
			c.SetWriteDeadline(time.Now().Add(100 * time.Millisecond))
			c.Write([]byte(overCapAnswer))
			c.Close()
			continue
		}
		l.open.Add(1)
		return &countedConn{Conn: c, l: l}, nil
	}
}

// Open is the number of connections open now.
func (l *Listener) Open() int64 { return l.open.Load() }

// Refused is the number of connections refused for being over the cap.
func (l *Listener) Refused() int64 { return l.refused.Load() }

type countedConn struct {
	net.Conn
	l    *Listener
	once sync.Once
}

func (c *countedConn) Close() error {
	c.once.Do(func() { c.l.open.Add(-1) })
	return c.Conn.Close()
}

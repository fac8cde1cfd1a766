package limits

import (
	"bufio"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"time"
)

// Listener caps the connections open at once. A connection over the cap is
// not left in the kernel's backlog (where /health would queue behind it):
// it is accepted and answers one request at once, /health by the Overflow
// handler, anything else 503 with Retry-After, and is closed. A bounded
// number of such answers run at a time; past that a connection gets the 503
// without its request being read.
type Listener struct {
	net.Listener
	max  int64
	open atomic.Int64
	// Overflow, when set, answers a GET /health that arrives over the cap,
	// so that a load balancer's probe gets its answer while a flood holds
	// every connection. Set it before the first Accept.
	Overflow http.Handler
	// refused counts connections answered 503 for being over the cap.
	refused atomic.Int64
	// overflowing counts the over-cap answers running now.
	overflowing atomic.Int64
}

// LimitListener wraps l; max <= 0 means no cap. overflow, when not nil,
// answers GET /health over the cap.
func LimitListener(l net.Listener, max int, overflow http.Handler) *Listener {
	return &Listener{Listener: l, max: int64(max), Overflow: overflow}
}

// maxOverflow bounds the over-cap answers running at once.
const maxOverflow = 256

// overCapAnswer is a whole HTTP/1.1 response: a client over the cap learns
// why and when to come back.
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
			if l.Overflow != nil && l.overflowing.Add(1) <= maxOverflow {
				go l.overflow(c)
				continue
			}
			if l.Overflow != nil {
				l.overflowing.Add(-1)
			}
			c.SetWriteDeadline(time.Now().Add(100 * time.Millisecond))
			c.Write([]byte(overCapAnswer))
			c.Close()
			continue
		}
		l.open.Add(1)
		return &countedConn{Conn: c, l: l}, nil
	}
}

// overflow answers one request of a connection over the cap and closes it.
func (l *Listener) overflow(c net.Conn) {
	defer l.overflowing.Add(-1)
	defer c.Close()
	c.SetDeadline(time.Now().Add(2 * time.Second))
	req, err := http.ReadRequest(bufio.NewReader(c))
	if err != nil || req.Method != http.MethodGet || req.URL.Path != "/health" {
		c.Write([]byte(overCapAnswer))
		return
	}
	rec := httptest.NewRecorder()
	l.Overflow.ServeHTTP(rec, req)
	resp := rec.Result()
	resp.Close = true
	resp.Write(c)
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

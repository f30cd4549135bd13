package serve

import (
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// capListener accepts at most max open connections; one past the cap is
// answered 503 with a JSON error and closed. (fasthttp's own cap,
// Server.Concurrency, answers in plain text.)
type capListener struct {
	net.Listener
	max  int64
	open atomic.Int64
}

const refusalBody = `{"error":{"message":"too many open connections: retry later","type":"server_error","param":null,"code":"too_many_connections"}}`

var refusal = []byte(fmt.Sprintf("HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\nContent-Type: application/json\r\nRetry-After: 1\r\nContent-Length: %d\r\n\r\n%s", len(refusalBody), refusalBody))

func (l *capListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		if l.open.Add(1) > l.max {
			l.open.Add(-1)
			c.SetWriteDeadline(time.Now().Add(time.Second)) // a small write to a fresh socket
			c.Write(refusal)
			c.Close()
			continue
		}
		return &capConn{Conn: c, l: l}, nil
	}
}

// capConn gives its slot back when closed.
type capConn struct {
	net.Conn
	l    *capListener
	once sync.Once
}

func (c *capConn) Close() error {
	c.once.Do(func() { c.l.open.Add(-1) })
	return c.Conn.Close()
}

// NetConn is the connection underneath, for peerGone.
func (c *capConn) NetConn() net.Conn { return c.Conn }

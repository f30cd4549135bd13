//go:build linux || darwin || freebsd || netbsd || openbsd

package serve

import (
	"net"
	"syscall"
)

// peerGone reports whether the client closed its connection, by peeking at the
// socket without consuming anything: a 0-byte peek means end of stream. A
// request that is waiting for its whole answer is otherwise invisible to
// fasthttp until the answer is written.
func peerGone(c net.Conn) bool {
	if u, ok := c.(interface{ NetConn() net.Conn }); ok {
		c = u.NetConn() // under capListener's wrapper
	}
	tc, ok := c.(*net.TCPConn)
	if !ok {
		return false
	}
	raw, err := tc.SyscallConn()
	if err != nil {
		return false
	}
	gone := false
	var buf [1]byte
	raw.Read(func(fd uintptr) bool {
		n, _, err := syscall.Recvfrom(int(fd), buf[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		gone = (n == 0 && err == nil) || err == syscall.ECONNRESET
		return true // never wait: this is a poll
	})
	return gone
}

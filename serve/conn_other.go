//go:build !(linux || darwin || freebsd || netbsd || openbsd)

package serve

import "net"

// peerGone cannot tell on this platform; non-streaming requests then run to the end.
func peerGone(net.Conn) bool { return false }

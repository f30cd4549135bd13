//go:build linux || darwin || freebsd || netbsd || openbsd

package serve

import (
	"context"
	"net"
	"roe/internal/testmodel"
	"testing"
	"time"
)

// peerGone sees a closed client without consuming pending bytes, and a watched
// job stops at the next step once it reports the client gone.
func TestPeerGone(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	client, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	server, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer server.Close()
	if peerGone(server) {
		t.Fatal("an open, idle connection reported gone")
	}
	client.Write([]byte("x"))
	time.Sleep(20 * time.Millisecond)
	if peerGone(server) {
		t.Fatal("a connection with pending data reported gone")
	}
	buf := make([]byte, 1)
	if n, _ := server.Read(buf); n != 1 || buf[0] != 'x' {
		t.Fatal("the peek consumed the pending byte")
	}
	client.Close()
	time.Sleep(20 * time.Millisecond)
	if !peerGone(server) {
		t.Fatal("a closed connection was not noticed")
	}
	if !peerGone(&capConn{Conn: server, l: &capListener{}}) {
		t.Fatal("a closed connection under capListener was not noticed")
	}

	m, tok := testmodel.Stories260K(t)
	s := NewScheduler(m, 2, 2, NewMetrics())
	defer s.Close(context.Background())
	seq, _ := m.NewSequence([]int{1}, tok.NewStreamDecoder(true), modelOptions(400))
	calls := 0
	j, err := s.SubmitWatched(context.Background(), seq, func() bool { calls++; return calls < 5 })
	if err != nil {
		t.Fatal(err)
	}
	j.Wait(context.Background())
	if got := len(seq.Tokens); got > 5 || seq.FinishReason != "cancelled" {
		t.Errorf("a job whose client left ran %d tokens (%q)", got, seq.FinishReason)
	}
}

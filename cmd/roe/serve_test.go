package main

import (
	"bytes"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// startServe builds roe and runs `roe serve` with args on a free loopback
// port until the test ends, returning its base URL once /readyz answers 200.
// The server's log is shown when the test fails.
func startServe(t *testing.T, args ...string) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "roe")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	srv := exec.Command(bin, append([]string{"serve", "--addr", addr}, args...)...)
	var logs bytes.Buffer
	srv.Stderr = &logs
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		srv.Process.Signal(os.Interrupt)
		srv.Wait()
		if t.Failed() {
			t.Logf("roe serve's log:\n%s", logs.String())
		}
	})
	base := "http://" + addr
	for i := 0; ; i++ {
		if r, err := http.Get(base + "/readyz"); err == nil {
			r.Body.Close()
			if r.StatusCode == http.StatusOK {
				return base
			}
		}
		if i > 600 {
			t.Fatalf("roe serve did not start:\n%s", logs.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

package serve

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// listen serves f on a real loopback listener (app.Test cannot show what
// happens on the wire: early answers, unread bodies, timeouts, connections).
func listen(t testing.TB, f *fixture) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go f.srv.Serve(ln) // stopped by the fixture's Shutdown
	return ln.Addr().String()
}

// dirBytes is the size of every file under dir.
func dirBytes(dir string) int64 {
	var n int64
	filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			if fi, err := d.Info(); err == nil {
				n += fi.Size()
			}
		}
		return nil
	})
	return n
}

// A multipart body from a client without a key is never written to disk,
// whatever the route: the answer comes before the body is read, and the
// connection is closed rather than parsing the rest as a request.
func TestUnauthenticatedMultipartNotOnDisk(t *testing.T) {
	tmp := t.TempDir()
	t.Setenv("TMPDIR", tmp) // os.TempDir, where mime/multipart spills files
	f := newFixture(t, "sekret")
	addr := listen(t, f)
	const sent, declared = 24 << 20, 48 << 20
	for _, c := range []struct {
		method, path string
		code         int
	}{{"GET", "/healthz", 200}, {"POST", "/nowhere", 404}, {"POST", "/v1/experts", 401}} {
		conn, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		// Headers, a file part and 24 of the 48 MiB declared: the body never ends.
		go func() {
			fmt.Fprintf(conn, "%s %s HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; boundary=B\r\nContent-Length: %d\r\n\r\n", c.method, c.path, declared)
			fmt.Fprintf(conn, "--B\r\nContent-Disposition: form-data; name=\"adapter_model.safetensors\"; filename=\"a\"\r\n\r\n")
			chunk := bytes.Repeat([]byte{'x'}, 1<<20)
			for i := 0; i < sent>>20; i++ {
				if _, err := conn.Write(chunk); err != nil {
					return
				}
			}
		}()
		got := make(chan *http.Response, 1)
		go func() {
			conn.SetReadDeadline(time.Now().Add(5 * time.Second))
			resp, _ := http.ReadResponse(bufio.NewReader(conn), nil)
			got <- resp
		}()
		var resp *http.Response
	wait:
		for {
			select {
			case resp = <-got:
				if resp == nil {
					t.Errorf("%s %s: no answer", c.method, c.path)
				}
				break wait
			case <-time.After(10 * time.Millisecond):
				if n := dirBytes(tmp); n > 0 {
					t.Errorf("%s %s without a key: %d bytes written to %s before any answer", c.method, c.path, n, tmp)
					conn.Close()
					<-got
					break wait
				}
			}
		}
		if resp != nil {
			b, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != c.code || !json.Valid(b) {
				t.Errorf("%s %s: %d %s, want %d", c.method, c.path, resp.StatusCode, b, c.code)
			}
			if !resp.Close {
				t.Errorf("%s %s: the connection stays open with %d body bytes unread", c.method, c.path, declared)
			}
		}
		conn.Close()
		if n := dirBytes(tmp); n > 0 {
			t.Errorf("%s %s: %d bytes in %s", c.method, c.path, n, tmp)
		}
	}
}

// A body without a length (chunked) is read up to the route's limit, not to
// its end; a compressed body is refused rather than inflated without bound.
func TestBodyLimitsOnTheWire(t *testing.T) {
	f := newFixture(t, "", func(c *Config) { c.UploadLimit = 1000 })
	addr := listen(t, f)
	// Raw TCP: the server answers and closes while the body still comes,
	// which net/http's client reports as a write error, not the answer.
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	go func() {
		fmt.Fprint(conn, "POST /v1/experts HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; boundary=B\r\nTransfer-Encoding: chunked\r\n\r\n")
		chunk := fmt.Sprintf("%x\r\n%s\r\n", 1<<16, bytes.Repeat([]byte{'x'}, 1<<16))
		for {
			if _, err := io.WriteString(conn, chunk); err != nil {
				return
			}
		}
	}()
	conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("an endless chunked upload got no answer: %v", err)
	}
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 413 || !strings.Contains(string(b), "limit of 1000 bytes") || !resp.Close {
		t.Errorf("endless chunked upload: %d close=%v %s", resp.StatusCode, resp.Close, b)
	}

	var gz bytes.Buffer
	w := gzip.NewWriter(&gz)
	w.Write([]byte(`{"model":"stories260K","prompt":"Once","max_tokens":1}`))
	w.Close()
	req, _ := http.NewRequest("POST", "http://"+addr+"/v1/completions", &gz)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Content-Encoding", "gzip")
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 415 || !strings.Contains(string(b), "Content-Encoding") {
		t.Errorf("gzip body: %d %s", resp.StatusCode, b)
	}
}

// Bad bodies are explained in the client's terms: JSON paths and JSON
// types, never Go identifiers.
func TestDecodeErrorsSpeakJSON(t *testing.T) {
	f := newFixture(t, "")
	goName := regexp.MustCompile(`Request|serve\.|commonRequest|\bu?int(8|16|32|64)?\b|\bfloat(32|64)\b|\*|json\.|RawMessage|Go value`)
	cases := []struct {
		path, body, param, mention string
	}{
		{"/v1/completions", `{"model":"stories260K","prompt":"x","max_tokens":"ten"}`, "max_tokens", "integer"},
		{"/v1/completions", `{"model":"stories260K","prompt":"x","max_tokens":1.5}`, "max_tokens", "integer"},
		{"/v1/completions", `{"model":"stories260K","prompt":"x","temperature":true}`, "temperature", "boolean"},
		{"/v1/completions", `{"model":["a"],"prompt":"x"}`, "model", "string"},
		{"/v1/route", `{"prompt":"x","routing":{"top_k":"two"}}`, "routing.top_k", "integer"},
		{"/v1/route", `{"prompt":"x","routing":[1]}`, "routing", "object"},
		{"/v1/chat/completions", `{"model":"stories260K","messages":[{"role":5,"content":"x"}]}`, "messages.role", "string"},
		{"/v1/embeddings", `{"model":5,"input":"x"}`, "model", "string"},
		{"/v1/experts/merge", `{"name":"m","experts":["a"],"rank":"r"}`, "rank", "integer"},
		{"/v1/completions", `[]`, "", "JSON object"},
		{"/v1/completions", `3`, "", "JSON object"},
		{"/v1/chat/completions", `"hello"`, "", "JSON object"},
		{"/v1/completions", `{"model":`, "", "malformed JSON"},
	}
	for _, c := range cases {
		code, out, _ := do(t, f.srv, "POST", c.path, c.body, "")
		e := errorOf(t, c.body, out)
		msg, _ := e["message"].(string)
		param, _ := e["param"].(string)
		if code != 400 || param != c.param || (c.param == "" && e["param"] != nil) || !strings.Contains(msg, c.mention) {
			t.Errorf("%s %s: %d %v (want 400, param %q, naming %q)", c.path, c.body, code, e, c.param, c.mention)
		}
		if goName.MatchString(msg) || goName.MatchString(param) {
			t.Errorf("%s %s: Go names leak: param %q, message %q", c.path, c.body, param, msg)
		}
	}
}

// get sends GET /healthz on conn and reads the answer.
func get(t *testing.T, conn net.Conn, br *bufio.Reader) (*http.Response, error) {
	t.Helper()
	conn.SetDeadline(time.Now().Add(3 * time.Second))
	if _, err := io.WriteString(conn, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
		return nil, err
	}
	resp, err := http.ReadResponse(br, nil)
	if err == nil {
		io.ReadAll(resp.Body)
	}
	return resp, err
}

// Idle keep-alive connections and stalled headers are closed after their
// timeouts, not after minutes.
func TestConnectionTimeouts(t *testing.T) {
	f := newFixture(t, "", func(c *Config) { c.IdleTimeout, c.HeaderTimeout = 150*time.Millisecond, 150*time.Millisecond })
	addr := listen(t, f)
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	br := bufio.NewReader(conn)
	if resp, err := get(t, conn, br); err != nil || resp.StatusCode != 200 {
		t.Fatalf("healthz: %v %v", resp, err)
	}
	t0 := time.Now()
	conn.SetReadDeadline(time.Now().Add(3 * time.Second))
	if _, err := br.ReadByte(); err != io.EOF {
		t.Errorf("an idle keep-alive connection: %v after %v, want it closed (EOF)", err, time.Since(t0))
	}

	slow, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer slow.Close()
	io.WriteString(slow, "GET /healthz HTTP/1.1\r\nHost: x\r\n") // and never the blank line
	slow.SetReadDeadline(time.Now().Add(3 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(slow), nil)
	if err == nil {
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != 408 || !json.Valid(b) {
			t.Errorf("stalled headers: %d %s, want 408 JSON", resp.StatusCode, b)
		}
	} else if ne, ok := err.(net.Error); ok && ne.Timeout() {
		t.Errorf("stalled headers kept the connection open: %v", err)
	}
}

// Past MaxConns a connection is answered 503 with a JSON error and closed;
// a freed slot serves again.
func TestMaxConns(t *testing.T) {
	f := newFixture(t, "", func(c *Config) { c.MaxConns = 2 })
	addr := listen(t, f)
	var held []net.Conn
	for i := range 2 {
		conn, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		if resp, err := get(t, conn, bufio.NewReader(conn)); err != nil || resp.StatusCode != 200 {
			t.Fatalf("connection %d: %v %v", i+1, resp, err)
		}
		held = append(held, conn)
	}
	third, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer third.Close()
	third.SetReadDeadline(time.Now().Add(3 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(third), nil)
	if err != nil {
		t.Fatalf("the third connection got no answer: %v", err)
	}
	b, _ := io.ReadAll(resp.Body)
	var e errorBody
	if resp.StatusCode != 503 || json.Unmarshal(b, &e) != nil || e.Error.Code == nil || *e.Error.Code != "too_many_connections" {
		t.Errorf("the third connection: %d %s", resp.StatusCode, b)
	}
	held[0].Close()
	deadline := time.Now().Add(3 * time.Second)
	for {
		conn, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		resp, err := get(t, conn, bufio.NewReader(conn))
		conn.Close()
		if err == nil && resp.StatusCode == 200 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("a freed slot does not serve: %v %v", resp, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// A method fiber does not know is refused with a JSON error like any other.
func TestUnknownMethodIsJSON(t *testing.T) {
	f := newFixture(t, "")
	for _, c := range []struct{ method, path string }{{"BREW", "/v1/models"}, {"PROPFIND", "/"}} {
		code, out, hdr := do(t, f.srv, c.method, c.path, "", "")
		e := errorOf(t, c.method, out)
		if code != 501 || !strings.HasPrefix(hdr.Get("Content-Type"), "application/json") || !strings.Contains(fmt.Sprint(e["message"]), c.method) {
			t.Errorf("%s %s: %d %s %v", c.method, c.path, code, hdr.Get("Content-Type"), out)
		}
	}
}

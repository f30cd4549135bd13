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

package s3sync

// The multi-replica test on loopback: a real S3 server and several `roe
// serve` processes sharing one bucket. The server is Versity's versitygw (an
// S3 gateway over a posix folder, with conditional writes; `make
// test-cluster` builds it from its Go module in about a minute), named by
// $ROE_VERSITYGW, or SeaweedFS's weed, named by $ROE_WEED. Skipped unless
// one is set.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"mime/multipart"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"

	"roe/internal/loadtest"
)

const (
	clusterKey    = "roe-test"
	clusterSecret = "roe-test-secret"
	clusterBucket = "roe"
)

// s3server is a running S3 server on loopback ports.
type s3server struct {
	kind     string // "versitygw" or "weed"
	bin, dir string
	ports    []int // weed: master, volume, filer, s3; versitygw: s3
	cmd      *exec.Cmd
	log      *bytes.Buffer
}

// freePort returns a loopback port that is free, as is port+10000 (weed's gRPC).
func freePort(t *testing.T) int {
	for range 100 {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		p := ln.Addr().(*net.TCPAddr).Port
		ln.Close()
		if p+10000 > 65535 {
			continue
		}
		if ln2, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", p+10000)); err == nil {
			ln2.Close()
			return p
		}
	}
	t.Fatal("no free port pair")
	return 0
}

func (s *s3server) endpoint() string { return fmt.Sprintf("127.0.0.1:%d", s.ports[len(s.ports)-1]) }

func (s *s3server) start(t *testing.T) {
	t.Helper()
	s.log = &bytes.Buffer{}
	p := s.ports
	if s.kind == "versitygw" {
		s.cmd = exec.Command(s.bin, "--access", clusterKey, "--secret", clusterSecret, "--quiet",
			"--port", fmt.Sprintf("127.0.0.1:%d", p[0]), "posix", s.dir)
	} else {
		s.cmd = exec.Command(s.bin, "server", "-dir", s.dir, "-ip", "127.0.0.1", "-ip.bind", "127.0.0.1",
			fmt.Sprintf("-master.port=%d", p[0]), fmt.Sprintf("-volume.port=%d", p[1]),
			"-filer", fmt.Sprintf("-filer.port=%d", p[2]), "-s3", fmt.Sprintf("-s3.port=%d", p[3]),
			"-master.volumeSizeLimitMB=64", "-volume.max=16")
	}
	s.cmd.Env = append(os.Environ(), "AWS_ACCESS_KEY_ID="+clusterKey, "AWS_SECRET_ACCESS_KEY="+clusterSecret)
	s.cmd.Stdout, s.cmd.Stderr = s.log, s.log
	s.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := s.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	c := s.client(t)
	deadline := time.Now().Add(90 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		err := c.MakeBucket(ctx, clusterBucket, minio.MakeBucketOptions{})
		if err != nil {
			if code := minio.ToErrorResponse(err).Code; code == "BucketAlreadyOwnedByYou" || code == "BucketAlreadyExists" {
				err = nil
			}
		}
		if err == nil {
			// The bucket answers a PUT once the volume server is up.
			_, err = c.PutObject(ctx, clusterBucket, "probe", strings.NewReader("x"), 1, minio.PutObjectOptions{})
		}
		cancel()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s did not serve S3 in 90 s: %v\n%s", s.kind, err, tail(s.log.String()))
		}
		time.Sleep(300 * time.Millisecond)
	}
}

func (s *s3server) stop() {
	if s.cmd != nil && s.cmd.Process != nil {
		syscall.Kill(-s.cmd.Process.Pid, syscall.SIGKILL)
		s.cmd.Wait()
		s.cmd = nil
	}
}

func (s *s3server) client(t *testing.T) *minio.Client {
	c, err := minio.New(s.endpoint(), &minio.Options{Creds: credentials.NewStaticV4(clusterKey, clusterSecret, ""),
		Region: "us-east-1", BucketLookup: minio.BucketLookupPath, MaxRetries: 1})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func tail(s string) string {
	if len(s) > 4000 {
		return s[len(s)-4000:]
	}
	return s
}

// replica is one roe serve process.
type replica struct {
	name, home, addr string
	cmd              *exec.Cmd
	log              *bytes.Buffer
	mu               sync.Mutex
}

type cluster struct {
	t      *testing.T
	roe    string
	s3     *s3server
	url    string
	lora   [2][]byte // adapter_config.json, adapter_model.safetensors
	client *http.Client
}

func (c *cluster) env(home string) []string {
	return append(os.Environ(), "ROE_HOME="+home, "AWS_ACCESS_KEY_ID="+clusterKey, "AWS_SECRET_ACCESS_KEY="+clusterSecret,
		"AWS_ENDPOINT_URL=http://"+c.s3.endpoint(), "AWS_REGION=us-east-1", "ROE_API_KEY=")
}

// start launches a replica and waits for its address (not for readiness).
func (c *cluster) start(r *replica) {
	t := c.t
	t.Helper()
	r.log = &bytes.Buffer{}
	r.cmd = exec.Command(c.roe, "serve", "--addr", "127.0.0.1:0", "--starter=false", "--library", c.url, "--s3-path-style", "--library-cache", filepath.Join(r.home, "cache"))
	r.cmd.Env = c.env(r.home)
	r.cmd.Stderr = &lockedWriter{w: r.log, mu: &r.mu}
	out, err := r.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := r.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	addr := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			line := sc.Text()
			if i := strings.Index(line, "http://"); i >= 0 {
				f := strings.Fields(line[i+len("http://"):])
				addr <- f[0]
			}
		}
		close(addr)
	}()
	select {
	case a, ok := <-addr:
		if !ok {
			r.mu.Lock()
			defer r.mu.Unlock()
			t.Fatalf("replica %s exited:\n%s", r.name, tail(r.log.String()))
		}
		r.addr = a
	case <-time.After(120 * time.Second):
		t.Fatalf("replica %s did not start", r.name)
	}
}

func (c *cluster) kill(r *replica) {
	r.cmd.Process.Signal(syscall.SIGKILL)
	r.cmd.Wait()
}

type lockedWriter struct {
	w  io.Writer
	mu *sync.Mutex
}

func (l *lockedWriter) Write(b []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(b)
}

func (c *cluster) get(r *replica, path string, out any) int {
	resp, err := c.client.Get("http://" + r.addr + path)
	if err != nil {
		return 0
	}
	defer resp.Body.Close()
	if out != nil {
		json.NewDecoder(resp.Body).Decode(out)
	} else {
		io.Copy(io.Discard, resp.Body)
	}
	return resp.StatusCode
}

// upload posts an expert with two instances; 0 when the request failed.
func (c *cluster) upload(r *replica, name string) int {
	var buf bytes.Buffer
	w := multipart.NewWriter(&buf)
	w.WriteField("name", name)
	w.WriteField("kind", "dataset")
	for i, fn := range []string{"adapter_config.json", "adapter_model.safetensors"} {
		fw, _ := w.CreateFormFile(fn, fn)
		fw.Write(c.lora[i])
	}
	fw, _ := w.CreateFormFile("instances.jsonl", "instances.jsonl")
	fmt.Fprintf(fw, "{\"input\":\"Is %s entailed? yes or no\"}\n{\"input\":\"Premise about %s; hypothesis follows.\"}\n", name, name)
	w.Close()
	req, _ := http.NewRequest("POST", "http://"+r.addr+"/v1/experts", &buf)
	req.Header.Set("Content-Type", w.FormDataContentType())
	resp, err := c.client.Do(req)
	if err != nil {
		return 0
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

// names lists the experts a replica serves (its catalog, /v1/models).
func (c *cluster) names(r *replica) ([]string, bool) {
	var out struct {
		Data []struct {
			ID   string `json:"id"`
			Kind string `json:"roe_kind"`
		} `json:"data"`
	}
	if c.get(r, "/v1/models", &out) != 200 {
		return nil, false
	}
	var ns []string
	for _, m := range out.Data {
		if strings.HasPrefix(m.Kind, "expert:") {
			ns = append(ns, m.ID)
		}
	}
	sort.Strings(ns)
	return ns, true
}

func (c *cluster) serves(r *replica, name string) bool {
	return c.get(r, "/v1/models/"+name, nil) == 200
}

// waitReady waits for /readyz 200.
func (c *cluster) waitReady(r *replica, d time.Duration) {
	c.t.Helper()
	deadline := time.Now().Add(d)
	for c.get(r, "/readyz", nil) != 200 {
		if time.Now().After(deadline) {
			r.mu.Lock()
			defer r.mu.Unlock()
			c.t.Fatalf("replica %s not ready after %v:\n%s", r.name, d, tail(r.log.String()))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// bucketNames reads the bucket's index and checks every object it names.
func (c *cluster) bucketNames() []string {
	c.t.Helper()
	st, err := New(Config{URL: c.url, Endpoint: "http://" + c.s3.endpoint(), PathStyle: true})
	if err != nil {
		c.t.Fatal(err)
	}
	idx, _, _, err := st.readIndex(context.Background(), "")
	if err != nil {
		c.t.Fatal(err)
	}
	var ns []string
	for n, ent := range idx.Experts {
		if _, err := st.download(context.Background(), n, ent); err != nil {
			c.t.Errorf("bucket: %v", err)
		}
		ns = append(ns, n)
	}
	sort.Strings(ns)
	return ns
}

// converge waits until every replica serves exactly the bucket's experts.
func (c *cluster) converge(rs []*replica, d time.Duration) []string {
	c.t.Helper()
	want := c.bucketNames()
	deadline := time.Now().Add(d)
	for _, r := range rs {
		for {
			got, ok := c.names(r)
			if ok && strings.Join(got, ",") == strings.Join(want, ",") {
				break
			}
			if time.Now().After(deadline) {
				c.t.Fatalf("replica %s serves %d experts %v, the bucket has %d %v", r.name, len(got), got, len(want), want)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	return want
}

func percentile(ds []time.Duration, p float64) time.Duration {
	s := append([]time.Duration(nil), ds...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	i := int(p*float64(len(s))+0.999999) - 1
	return s[max(0, min(i, len(s)-1))]
}

func TestCluster(t *testing.T) {
	s3 := &s3server{kind: "versitygw", bin: os.Getenv("ROE_VERSITYGW")}
	if s3.bin == "" {
		s3.kind, s3.bin = "weed", os.Getenv("ROE_WEED")
	}
	if s3.bin == "" {
		t.Skip("set ROE_VERSITYGW to a versitygw binary (make test-cluster builds one) or ROE_WEED to a SeaweedFS weed binary")
	}
	tmp := t.TempDir()
	// The checks read the bucket with the replicas' credentials.
	t.Setenv("AWS_ACCESS_KEY_ID", clusterKey)
	t.Setenv("AWS_SECRET_ACCESS_KEY", clusterSecret)
	roe := os.Getenv("ROE_BIN")
	if roe == "" {
		roe = filepath.Join(tmp, "roe")
		if out, err := exec.Command("go", "build", "-o", roe, "../../cmd/roe").CombinedOutput(); err != nil {
			t.Fatalf("go build roe: %v\n%s", err, out)
		}
	}
	s3.dir = filepath.Join(tmp, s3.kind)
	os.MkdirAll(s3.dir, 0o755)
	for range map[string]int{"versitygw": 1, "weed": 4}[s3.kind] {
		s3.ports = append(s3.ports, freePort(t))
	}
	t0 := time.Now()
	s3.start(t)
	t.Cleanup(s3.stop)
	t.Logf("%s serving S3 on %s after %v", s3.kind, s3.endpoint(), time.Since(t0).Round(time.Millisecond))

	c := &cluster{t: t, roe: roe, s3: s3, url: "s3://" + clusterBucket + "/lib", client: &http.Client{Timeout: 60 * time.Second}}
	var err error
	for i, fn := range []string{"adapter_config.json", "adapter_model.safetensors"} {
		if c.lora[i], err = os.ReadFile(filepath.Join("../../models/experts/rte", fn)); err != nil {
			t.Fatal(err)
		}
	}
	var rs []*replica
	for i := range 3 {
		r := &replica{name: string(rune('A' + i)), home: filepath.Join(tmp, fmt.Sprintf("r%d", i))}
		c.start(r)
		rs = append(rs, r)
		t.Cleanup(func() { c.kill(r) })
	}
	for _, r := range rs {
		c.waitReady(r, 120*time.Second)
	}
	t.Logf("3 replicas ready after %v", time.Since(t0).Round(time.Millisecond))
	a, b, cc := rs[0], rs[1], rs[2]
	// run runs a subtest with the cluster's helpers failing it, not the parent.
	run := func(name string, fn func(t *testing.T)) {
		t.Run(name, func(st *testing.T) {
			c.t = st
			defer func() { c.t = t }()
			fn(st)
		})
	}

	run("propagation", func(t *testing.T) {
		var lat []time.Duration
		for i := range 15 {
			w := rs[i%3]
			name := fmt.Sprintf("prop/e%02d", i)
			if code := c.upload(w, name); code != 201 {
				t.Fatalf("upload %s through %s: %d", name, w.name, code)
			}
			up := time.Now()
			if !c.serves(w, name) {
				t.Fatalf("%s does not serve its own write %s at once", w.name, name)
			}
			for _, r := range rs {
				if r == w {
					continue
				}
				for !c.serves(r, name) {
					if time.Since(up) > 10*time.Second {
						t.Fatalf("%s does not serve %s 10 s after the upload", r.name, name)
					}
					time.Sleep(20 * time.Millisecond)
				}
				lat = append(lat, time.Since(up))
			}
		}
		p50, p99 := percentile(lat, 0.5), percentile(lat, 0.99)
		t.Logf("propagation to other replicas: %d samples, p50 %v, p99 %v, max %v", len(lat), p50.Round(time.Millisecond), p99.Round(time.Millisecond), percentile(lat, 1).Round(time.Millisecond))
		if p99 > 5*time.Second {
			t.Errorf("p99 propagation %v over 5 s", p99)
		}
	})

	run("concurrent", func(t *testing.T) {
		var wg sync.WaitGroup
		codes := make(chan string, 100)
		for i, r := range rs {
			for j := range 6 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					name := fmt.Sprintf("conc/r%d-%d", i, j)
					if code := c.upload(r, name); code != 201 {
						codes <- fmt.Sprintf("%s via %s: %d", name, r.name, code)
					}
				}()
			}
		}
		wg.Wait()
		close(codes)
		for s := range codes {
			t.Error(s)
		}
		names := c.converge(rs, 15*time.Second)
		n := 0
		for _, x := range names {
			if strings.HasPrefix(x, "conc/") {
				n++
			}
		}
		if n != 18 {
			t.Errorf("bucket has %d of the 18 concurrent uploads", n)
		}
	})

	run("same-name", func(t *testing.T) {
		for round := range 5 {
			name := fmt.Sprintf("race/x%d", round)
			var wg sync.WaitGroup
			got := make([]int, 2)
			for i, r := range []*replica{a, b} {
				wg.Add(1)
				go func() { defer wg.Done(); got[i] = c.upload(r, name) }()
			}
			wg.Wait()
			sort.Ints(got)
			if got[0] != 201 || got[1] != 409 {
				t.Errorf("round %d: codes %v, want one 201 and one 409", round, got)
			}
		}
		c.converge(rs, 15*time.Second)
	})

	run("fresh-replica", func(t *testing.T) {
		d := &replica{name: "D", home: filepath.Join(tmp, "fresh")}
		t1 := time.Now()
		c.start(d)
		defer c.kill(d)
		c.waitReady(d, 120*time.Second)
		got, _ := c.names(d)
		want := c.bucketNames()
		if strings.Join(got, ",") != strings.Join(want, ",") {
			t.Fatalf("fresh replica serves %d experts when ready, the bucket has %d", len(got), len(want))
		}
		t.Logf("fresh replica ready with all %d experts after %v", len(got), time.Since(t1).Round(time.Millisecond))
	})

	// The load test's mix across the replicas, round-robin, with experts
	// uploaded and removed through A: nothing fails, and every upload is
	// routable on every replica within the sync interval (2 s) plus 1 s to
	// fetch, apply and index it.
	run("load", func(t *testing.T) {
		res, err := loadtest.Run(context.Background(), loadtest.Options{
			BaseURL: "http://" + a.addr, Replicas: []string{"http://" + b.addr, "http://" + cc.addr},
			Clients: 6, Duration: 20 * time.Second, MaxTokens: 16,
			Prompts:    []string{"Once upon a time", "The cat sat on the mat.", "Is the premise entailed? yes or no"},
			AdapterDir: "../../models/experts/rte", Instances: []string{"Zebras graze quietly on the savanna grass.", "A zebra has black and white stripes."},
			ChurnEvery: time.Second, RoutableWithin: 3 * time.Second,
		})
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("load across 3 replicas: %d requests, %d failed, %.0f tokens/s, TTFT p50 %.1f ms p99 %.1f ms; %d experts added, %d removed through A; routable on A after ≤ %.0f ms, on B and C after ≤ %.0f ms",
			res.Requests, res.Failed, res.TokensPerSecond, res.TTFTp50ms, res.TTFTp99ms, res.ExpertsAdded, res.ExpertsRemoved, res.RoutableMaxMS, res.ReplicaRoutableMaxMS)
		if res.Failed > 0 || res.NotRoutable > 0 || res.ExpertsAdded == 0 {
			t.Errorf("%d failed requests (%v), %d uploads not routable on some replica within 3 s", res.Failed, res.Errors, res.NotRoutable)
		}
		c.converge(rs, 15*time.Second)
	})

	run("sigkill", func(t *testing.T) {
		kills := 30
		if s := os.Getenv("ROE_CLUSTER_KILLS"); s != "" {
			fmt.Sscan(s, &kills)
		}
		acked := map[string]bool{}
		rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 7))
		for k := range kills {
			stop := make(chan struct{})
			done := make(chan []string)
			go func() {
				var ok []string
				for i := 0; ; i++ {
					select {
					case <-stop:
						done <- ok
						return
					default:
					}
					name := fmt.Sprintf("kill/k%02d-%03d", k, i)
					if c.upload(cc, name) == 201 {
						ok = append(ok, name)
					}
				}
			}()
			time.Sleep(time.Duration(100+rng.IntN(1500)) * time.Millisecond)
			c.kill(cc)
			close(stop)
			for _, n := range <-done {
				acked[n] = true
			}
			c.start(cc)
			c.waitReady(cc, 120*time.Second)
		}
		names := c.converge(rs, 20*time.Second)
		have := map[string]bool{}
		for _, n := range names {
			have[n] = true
		}
		for n := range acked {
			if !have[n] {
				t.Errorf("acknowledged upload %s lost", n)
			}
		}
		t.Logf("%d kills, %d acknowledged uploads kept, bucket and all replicas agree on %d experts", kills, len(acked), len(names))
		// Writes killed between their object and the index left objects no
		// index names; Collect deletes them and nothing else.
		st, err := New(Config{URL: c.url, Endpoint: "http://" + s3.endpoint(), PathStyle: true})
		if err != nil {
			t.Fatal(err)
		}
		objects := func() int {
			n := 0
			for o := range s3.client(t).ListObjects(context.Background(), clusterBucket, minio.ListObjectsOptions{Prefix: "lib/experts/", Recursive: true}) {
				if o.Err == nil {
					n++
				}
			}
			return n
		}
		before := objects()
		n, err := st.Collect(context.Background(), 0)
		if err != nil {
			t.Fatal(err)
		}
		if after := objects(); after != len(names) || before-n != after {
			t.Errorf("objects: %d before, %d collected, %d after, want %d (the index's)", before, n, after, len(names))
		}
		t.Logf("%d orphaned objects of killed writes collected; %d remain, one per expert", n, len(names))
		c.converge(rs, 15*time.Second)
	})

	run("s3-down", func(t *testing.T) {
		s3.stop()
		down := time.Now()
		deadline := time.Now().Add(6 * time.Second)
		for {
			var ready struct {
				Library struct {
					Reachable bool `json:"bucket_reachable"`
				} `json:"library"`
			}
			c.get(a, "/readyz", &ready)
			if !ready.Library.Reachable {
				break
			}
			if time.Now().After(deadline) {
				t.Fatal("/readyz still says the bucket is reachable 6 s after it stopped")
			}
			time.Sleep(100 * time.Millisecond)
		}
		t.Logf("/readyz says the bucket is unreachable %v after it stopped", time.Since(down).Round(time.Millisecond))
		t2 := time.Now()
		if code := c.upload(a, "down/x"); code != 503 {
			t.Errorf("upload while S3 is down: %d, want 503", code)
		}
		t.Logf("upload refused in %v", time.Since(t2).Round(time.Millisecond))
		for _, r := range rs {
			if ns, ok := c.names(r); !ok || len(ns) == 0 {
				t.Errorf("%s stopped serving its experts while S3 is down", r.name)
			}
			body := strings.NewReader(`{"model":"prop/e00","prompt":"Hello","max_tokens":4}`)
			resp, err := c.client.Post("http://"+r.addr+"/v1/completions", "application/json", body)
			if err != nil || resp.StatusCode != 200 {
				t.Errorf("%s: completion while S3 is down: %v %v", r.name, err, resp)
			}
			if resp != nil {
				resp.Body.Close()
			}
		}
		t.Logf("experts and completions served on every replica %v after the stop", time.Since(down).Round(time.Millisecond))
		time.Sleep(time.Until(down.Add(10 * time.Second)))
		t3 := time.Now()
		s3.start(t)
		t.Logf("%s restarted in %v (%v after the stop)", s3.kind, time.Since(t3).Round(time.Millisecond), time.Since(down).Round(time.Millisecond))
		deadline = time.Now().Add(30 * time.Second)
		for c.upload(b, "down/after") != 201 {
			if time.Now().After(deadline) {
				t.Fatal("uploads still fail 30 s after S3 came back")
			}
			time.Sleep(200 * time.Millisecond)
		}
		c.converge(rs, 15*time.Second)
	})
}

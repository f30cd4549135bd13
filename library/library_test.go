package library

import (
	"archive/zip"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"roe/internal/testenv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"

	"roe/adapters"
	"roe/model"
	"roe/model/safetensors"
)

func TestAddGetListRemove(t *testing.T) {
	dir := t.TempDir()
	l := openDir(t, dir)
	names := []string{"rte/gpt3", "anli/r1", "copa.v2_x-y"}
	want := map[string]*Expert{}
	for _, n := range names {
		e := synth(n, small)
		m, err := l.Add(e)
		if err != nil {
			t.Fatal(err)
		}
		if len(m.ID) != 32 || m.Created.IsZero() || m.NumInstances != small.inst || m.Dim != small.dim ||
			m.NumTensors != 4*small.layers || m.AdapterBytes != int64(4*small.layers*small.rank*small.hidden*4) {
			t.Fatalf("manifest %+v", m)
		}
		if e.ID != "" {
			t.Fatal("Add modified its argument")
		}
		e.Manifest = m
		want[n] = e
	}
	check := func(l *Library) {
		for n, w := range want {
			g, err := l.Get(n)
			if err != nil {
				t.Fatal(err)
			}
			sameExpert(t, g, w, true)
			ins, err := l.Instances(n)
			if err != nil || !reflect.DeepEqual(ins, w.Instances) {
				t.Fatalf("Instances(%s): %v", n, err)
			}
			emb, m, err := l.Embeddings(n)
			if err != nil || len(emb) != m.NumInstances*m.Dim || emb[m.Dim] != w.Instances[1].Embedding[0] {
				t.Fatalf("Embeddings(%s): %v", n, err)
			}
			if m, err := l.Manifest(n); err != nil || !reflect.DeepEqual(m, w.Manifest) {
				t.Fatalf("Manifest(%s): %v", n, err)
			}
		}
		ms, err := l.List()
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, m := range ms {
			got = append(got, m.Name)
		}
		var exp []string
		for _, n := range []string{"anli/r1", "copa.v2_x-y", "rte/gpt3"} {
			if want[n] != nil {
				exp = append(exp, n)
			}
		}
		if !reflect.DeepEqual(got, exp) {
			t.Fatalf("List: %v, want %v", got, exp)
		}
	}
	check(l)
	id := want["anli/r1"].ID
	if err := l.Remove("anli/r1"); err != nil {
		t.Fatal(err)
	}
	delete(want, "anli/r1")
	if _, err := l.Get("anli/r1"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Get after Remove: %v", err)
	}
	if err := l.Remove("anli/r1"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("second Remove: %v", err)
	}
	if ids := dataIDs(t, l); ids[id] != 0 || len(ids) != 2 {
		t.Fatalf("data left after Remove: %v", ids)
	}
	check(l)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := l.List(); !errors.Is(err, ErrClosed) {
		t.Fatalf("List after Close: %v", err)
	}
	l = openDir(t, dir)
	defer l.Close()
	check(l)
	// The name is free again.
	if _, err := l.Add(synth("anli/r1", small)); err != nil {
		t.Fatal(err)
	}
}

func TestLoRARoundTrip(t *testing.T) {
	s := shape{layers: 3, hidden: 32, rank: 4}
	base := baseConfig(t, s)
	lo := adapters.New(base, adapters.Config{R: 4, Alpha: 8, TargetModules: []string{"q_proj", "k_proj", "down_proj"}})
	e0 := synth("x", s)
	i := 0
	for layer := 0; layer < s.layers; layer++ {
		for _, p := range []model.Proj{model.ProjQ, model.ProjK, model.ProjDown} {
			out, in := base.ProjShape(p)
			a, b := make([]float32, 4*in), make([]float32, out*4)
			for j := range a {
				a[j] = float32(math.Sin(float64(i*7 + j)))
			}
			for j := range b {
				b[j] = float32(math.Cos(float64(i*3 + j)))
			}
			i++
			lo.SetPair(layer, p, &adapters.Pair{A: a, B: b, Rank: 4, In: in, Out: out, Alpha: 8})
		}
	}
	cfg, ts, err := ExpertFromLoRA(lo)
	if err != nil {
		t.Fatal(err)
	}
	l := openMem(t)
	e := &Expert{Manifest: Manifest{Name: "lora", Kind: KindMerged, BaseFingerprint: "fp", Embedder: "e"}, AdapterConfig: cfg, Tensors: ts, Instances: e0.Instances}
	if _, err := l.Add(e); err != nil {
		t.Fatal(err)
	}
	g, err := l.Get("lora")
	if err != nil {
		t.Fatal(err)
	}
	back, err := g.LoRA(base)
	if err != nil {
		t.Fatal(err)
	}
	for layer := 0; layer < s.layers; layer++ {
		for p := model.Proj(0); p < model.NumProj; p++ {
			a, b := lo.Pair(layer, p), back.Pair(layer, p)
			if (a == nil) != (b == nil) {
				t.Fatalf("layer %d %v: presence differs", layer, p)
			}
			if a != nil && (!reflect.DeepEqual(a.A, b.A) || !reflect.DeepEqual(a.B, b.B) || a.Scale != b.Scale) {
				t.Fatalf("layer %d %v: values differ", layer, p)
			}
		}
	}
	// A base model the adapter does not fit is refused by name.
	if _, err := g.LoRA(baseConfig(t, shape{layers: 3, hidden: 64})); !errors.Is(err, adapters.ErrShape) {
		t.Fatalf("LoRA on the wrong base: %v", err)
	}
}

func TestGoldenAdapter(t *testing.T) {
	const base, dir = "../../shared/golden/tiny-llama", "../../shared/golden/tiny-llama/lora"
	if _, err := os.Stat(dir); err != nil {
		testenv.SkipOrFail(t, "%v", err)
	}
	cfg, err := model.LoadConfig(base)
	if err != nil {
		t.Fatal(err)
	}
	want, err := adapters.Load(dir, cfg)
	if err != nil {
		t.Fatal(err)
	}
	e, err := ImportDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if e.Name != "lora" || e.Kind != KindImported || len(e.Instances) != 0 {
		t.Fatalf("imported %q %q with %d instances", e.Name, e.Kind, len(e.Instances))
	}
	e.Name, e.BaseFingerprint = "golden/tiny-llama", "golden"
	l := openMem(t)
	if _, err := l.Add(e); err != nil {
		t.Fatal(err)
	}
	g, err := l.Get("golden/tiny-llama")
	if err != nil {
		t.Fatal(err)
	}
	got, err := g.LoRA(cfg)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for layer := range want.Layers {
		for p := model.Proj(0); p < model.NumProj; p++ {
			a, b := want.Pair(layer, p), got.Pair(layer, p)
			if (a == nil) != (b == nil) || a != nil && (!reflect.DeepEqual(a.A, b.A) || !reflect.DeepEqual(a.B, b.B) || a.Scale != b.Scale) {
				t.Fatalf("layer %d %v differs", layer, p)
			}
			if a != nil {
				n++
			}
		}
	}
	if n == 0 {
		t.Fatal("golden adapter has no pairs")
	}
}

func TestSampling(t *testing.T) {
	s := small
	s.inst = 250
	e := synth("many", s)
	add := func(seed uint64) []Instance {
		l := openMem(t, func(o Options) Options { return o.WithSeed(seed) })
		m, err := l.Add(e)
		if err != nil {
			t.Fatal(err)
		}
		if m.NumInstances != 100 || m.SampledFrom != 250 {
			t.Fatalf("NumInstances %d SampledFrom %d", m.NumInstances, m.SampledFrom)
		}
		ins, err := l.Instances("many")
		if err != nil {
			t.Fatal(err)
		}
		return ins
	}
	a, b, c := add(7), add(7), add(8)
	if !reflect.DeepEqual(a, b) {
		t.Fatal("same seed, different sample")
	}
	if reflect.DeepEqual(a, c) {
		t.Fatal("different seeds, same sample")
	}
	// The sample is a subset, in the original order.
	j := 0
	for _, in := range a {
		for j < len(e.Instances) && e.Instances[j].Text != in.Text {
			j++
		}
		if j == len(e.Instances) || !reflect.DeepEqual(e.Instances[j], in) {
			t.Fatalf("sampled instance %q not in order or altered", in.Text)
		}
	}
	if len(e.Instances) != 250 {
		t.Fatal("Add modified its argument's instances")
	}
	// S ≤ 0 keeps everything; fewer than S are kept as they are.
	l := openMem(t, func(o Options) Options { return o.WithSampleSize(0) })
	if m, err := l.Add(e); err != nil || m.NumInstances != 250 || m.SampledFrom != 0 {
		t.Fatalf("S=0: %+v %v", m, err)
	}
}

func TestFingerprint(t *testing.T) {
	l := openMem(t, func(o Options) Options { return o.WithFingerprint("live-base") })
	e := synth("x", small)
	_, err := l.Add(e)
	if !errors.Is(err, ErrFingerprint) || !strings.Contains(err.Error(), "live-base") || !strings.Contains(err.Error(), "fp-test") {
		t.Fatalf("want ErrFingerprint naming both, got %v", err)
	}
	e.BaseFingerprint = "live-base"
	if _, err := l.Add(e); err != nil {
		t.Fatal(err)
	}
}

func TestNameCollision(t *testing.T) {
	l := openMem(t)
	if _, err := l.Add(synth("dup", small)); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Add(synth("dup", small)); !errors.Is(err, ErrExists) {
		t.Fatalf("second Add: %v", err)
	}
	// Concurrent adds of one name: exactly one wins, the losers leave no data.
	var wg sync.WaitGroup
	errs := make([]error, 6)
	for i := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, errs[i] = l.Add(synth("race", small))
		}()
	}
	wg.Wait()
	ok := 0
	for _, err := range errs {
		switch {
		case err == nil:
			ok++
		case !errors.Is(err, ErrExists):
			t.Fatal(err)
		}
	}
	if ok != 1 {
		t.Fatalf("%d concurrent adds of one name succeeded", ok)
	}
	if ids := dataIDs(t, l); len(ids) != 2 {
		t.Fatalf("data of %d experts stored, want 2", len(ids))
	}
}

func TestInvalid(t *testing.T) {
	l := openMem(t)
	cases := []struct {
		name string
		mod  func(e *Expert)
		want string
	}{
		{"empty name", func(e *Expert) { e.Name = "" }, "empty name"},
		{"bad char", func(e *Expert) { e.Name = "a b" }, `character ' '`},
		{"too long", func(e *Expert) { e.Name = strings.Repeat("a", 129) }, "at most 128"},
		{"dotdot", func(e *Expert) { e.Name = "a/../b" }, "segment"},
		{"kind", func(e *Expert) { e.Kind = "lora" }, `kind "lora"`},
		{"config", func(e *Expert) { e.AdapterConfig = []byte(`{"peft_type":"IA3","r":4}`) }, "IA3"},
		{"config json", func(e *Expert) { e.AdapterConfig = []byte(`{`) }, "not valid JSON"},
		{"no tensors", func(e *Expert) { e.Tensors = nil }, "no adapter tensors"},
		{"dup tensor", func(e *Expert) { e.Tensors[1].Name = e.Tensors[0].Name }, "appears twice"},
		{"dtype", func(e *Expert) { e.Tensors[0].DType = safetensors.BF16 }, "BF16"},
		{"short data", func(e *Expert) { e.Tensors[0].Data = e.Tensors[0].Data[4:] }, "needs"},
		{"nan tensor", func(e *Expert) {
			copy(e.Tensors[2].Data[8:], safetensors.F32Tensor("", []int{1}, []float32{float32(math.NaN())}).Data)
		}, "element 2 is NaN"},
		{"no embedding", func(e *Expert) { e.Instances[3].Embedding = nil }, "instance 3 has no embedding"},
		{"dims", func(e *Expert) { e.Instances[4].Embedding = e.Instances[4].Embedding[:3] }, "instance 4 has a 3-dim"},
		{"inf embedding", func(e *Expert) { e.Instances[0].Embedding[1] = float32(math.Inf(1)) }, "+Inf"},
		{"no text", func(e *Expert) { e.Instances[2].Text = "" }, "instance 2 has no text"},
		{"no embedder", func(e *Expert) { e.Embedder = "" }, "Embedder"},
		{"nan metric", func(e *Expert) { e.Training.Metrics["acc"] = math.NaN() }, `metric "acc"`},
	}
	for _, c := range cases {
		e := synth("ok", small)
		c.mod(e)
		_, err := l.Add(e)
		if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: got %v, want ErrInvalid containing %q", c.name, err, c.want)
		}
	}
	if ids := dataIDs(t, l); len(ids) != 0 {
		t.Fatalf("rejected experts left data: %v", ids)
	}
	if _, err := l.Add(synth("ok", small)); err != nil {
		t.Fatal(err)
	}
}

// corrupt rewrites one stored value through Badger, as bit rot would.
func corrupt(t *testing.T, l *Library, key []byte, f func([]byte) []byte) {
	t.Helper()
	err := l.db.Update(func(txn *badger.Txn) error {
		item, err := txn.Get(key)
		if err != nil {
			return err
		}
		v, err := item.ValueCopy(nil)
		if err != nil {
			return err
		}
		if v = f(v); v == nil {
			return txn.Delete(key)
		}
		return txn.Set(key, v)
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestCorruptChunk(t *testing.T) {
	l := openMem(t)
	for _, n := range []string{"a", "b", "c", "d"} {
		if _, err := l.Add(synth(n, small)); err != nil {
			t.Fatal(err)
		}
	}
	id := func(n string) string {
		m, err := l.Manifest(n)
		if err != nil {
			t.Fatal(err)
		}
		return m.ID
	}
	flip := func(v []byte) []byte { v[len(v)/2] ^= 0x10; return v }

	key := chunkKey(id("a"), streamTensors, 0)
	corrupt(t, l, key, flip)
	if _, err := l.Get("a"); !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), string(key)) {
		t.Fatalf("flipped tensor chunk: %v", err)
	}
	if _, err := l.Instances("a"); err != nil { // tensors are not read
		t.Fatalf("Instances read tensor chunks: %v", err)
	}

	key = chunkKey(id("b"), streamEmbeddings, 0)
	corrupt(t, l, key, flip)
	if _, err := l.Instances("b"); !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), string(key)) {
		t.Fatalf("flipped embedding chunk: %v", err)
	}

	key = chunkKey(id("c"), streamInstances, 0)
	corrupt(t, l, key, func([]byte) []byte { return nil })
	if _, err := l.Get("c"); !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "missing") {
		t.Fatalf("deleted chunk: %v", err)
	}

	key = metaKey(id("d"))
	corrupt(t, l, key, flip)
	if _, err := l.Get("d"); !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), string(key)) {
		t.Fatalf("flipped meta: %v", err)
	}
	// A corrupt expert can still be removed.
	if err := l.Remove("d"); err != nil {
		t.Fatal(err)
	}
}

func TestChangeFeed(t *testing.T) {
	l := openMem(t)
	if _, err := l.Add(synth("before", small)); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	listed := make(chan []Manifest, 1)
	changes := make(chan Change, 10)
	done := make(chan error, 1)
	go func() {
		done <- l.SubscribeList(ctx, func(ms []Manifest) { listed <- ms }, func(c Change) { changes <- c })
	}()
	plain := make(chan Change, 100)
	go l.Subscribe(ctx, func(c Change) { plain <- c })
	// Subscribe has no ready signal: add experts until the feed shows one.
	for i := 0; ; i++ {
		name := fmt.Sprintf("warm%d", i)
		if _, err := l.Add(synth(name, small)); err != nil {
			t.Fatal(err)
		}
		select {
		case c := <-plain:
			if !strings.HasPrefix(c.Name, "warm") || c.Op != "add" {
				t.Fatalf("unexpected %+v", c)
			}
		case <-time.After(20 * time.Millisecond):
			continue
		}
		break
	}
	ms := <-listed
	if len(ms) == 0 || ms[0].Name != "before" { // and maybe some warm experts
		t.Fatalf("listed %v", ms)
	}
	m, err := l.Add(synth("x/y", small))
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Remove("x/y"); err != nil {
		t.Fatal(err)
	}
	for _, ch := range []chan Change{changes, plain} {
		next := func() Change {
			for {
				select {
				case c := <-ch:
					if strings.HasPrefix(c.Name, "warm") {
						continue
					}
					return c
				case <-time.After(10 * time.Second):
					t.Fatal("no change")
				}
			}
		}
		if c := next(); c.Op != "add" || c.Name != "x/y" || c.ID != m.ID || c.Manifest == nil || !reflect.DeepEqual(*c.Manifest, m) {
			t.Fatalf("first change %+v", c)
		}
		if c := next(); c.Op != "remove" || c.Name != "x/y" || c.ID != m.ID {
			t.Fatalf("second change %+v", c)
		}
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("SubscribeList returned %v", err)
	}
	// Subscribe returns when the library closes.
	done2 := make(chan error, 1)
	go func() { done2 <- l.Subscribe(context.Background(), func(Change) {}) }()
	time.Sleep(50 * time.Millisecond)
	l.Close()
	select {
	case <-done2:
	case <-time.After(10 * time.Second):
		t.Fatal("Subscribe did not return after Close")
	}
}

func TestBackupRestore(t *testing.T) {
	src := openDir(t, t.TempDir())
	defer src.Close()
	var want []*Expert
	for i := 0; i < 4; i++ {
		s := small
		if i == 3 { // full-size chunks must restore into memory mode too
			s = shape{layers: 4, hidden: 1024, rank: 32, inst: 100, dim: 64}
		}
		e := synth(fmt.Sprintf("e%d", i), s)
		m, err := src.Add(e)
		if err != nil {
			t.Fatal(err)
		}
		e.Manifest = m
		want = append(want, e)
	}
	if err := src.Remove("e2"); err != nil {
		t.Fatal(err)
	}
	want = append(want[:2], want[3])
	var buf bytes.Buffer
	if err := src.Backup(&buf); err != nil {
		t.Fatal(err)
	}
	backup := buf.Bytes()
	for _, mem := range []bool{false, true} {
		var dst *Library
		if mem {
			dst = openMem(t)
		} else {
			dst = openDir(t, t.TempDir())
		}
		if err := dst.Restore(bytes.NewReader(backup)); err != nil {
			t.Fatal(err)
		}
		ms, err := dst.List()
		if err != nil || len(ms) != len(want) {
			t.Fatalf("restored %d experts (%v), want %d", len(ms), err, len(want))
		}
		for _, w := range want {
			g, err := dst.Get(w.Name)
			if err != nil {
				t.Fatal(err)
			}
			sameExpert(t, g, w, true)
		}
		if _, err := dst.Get("e2"); !errors.Is(err, ErrNotFound) {
			t.Fatalf("removed expert restored: %v", err)
		}
		if err := dst.Restore(bytes.NewReader(backup)); !errors.Is(err, ErrNotEmpty) {
			t.Fatalf("restore into a full library: %v", err)
		}
		// The restored library works as a library.
		if _, err := dst.Add(synth("new", small)); err != nil {
			t.Fatal(err)
		}
		if err := dst.Remove("e0"); err != nil {
			t.Fatal(err)
		}
		dst.Close()
	}
	// A backup that breaks off leaves the library empty, and usable.
	for _, mem := range []bool{false, true} {
		dir := t.TempDir()
		var dst *Library
		if mem {
			dst = openMem(t)
		} else {
			dst = openDir(t, dir)
		}
		if err := dst.Restore(bytes.NewReader(backup[:len(backup)*2/3])); err == nil {
			t.Fatal("truncated backup restored")
		}
		if ms, err := dst.List(); err != nil || len(ms) != 0 {
			t.Fatalf("after failed restore: %d experts, %v", len(ms), err)
		}
		if ids := dataIDs(t, dst); len(ids) != 0 {
			t.Fatalf("after failed restore: data %v", ids)
		}
		if err := dst.Restore(bytes.NewReader(backup)); err != nil {
			t.Fatal(err)
		}
		if ms, err := dst.List(); err != nil || len(ms) != len(want) {
			t.Fatalf("restore after a failed one: %d experts, %v", len(ms), err)
		}
		dst.Close()
		if !mem { // and it persists
			dst = openDir(t, dir)
			if _, err := dst.Get("e3"); err != nil {
				t.Fatal(err)
			}
			dst.Close()
		}
	}
}

func TestLargeInMemory(t *testing.T) {
	// ~8 MiB of tensors: several 1 MiB chunks, and more than one Badger
	// transaction (4.8 MiB with a 32 MiB memtable) in memory mode.
	s := shape{layers: 16, hidden: 1024, rank: 32, inst: 100, dim: 384}
	e := synth("big", s)
	l := openMem(t)
	m, err := l.Add(e)
	if err != nil {
		t.Fatal(err)
	}
	if m.AdapterBytes < 8<<20 {
		t.Fatalf("adapter of %d bytes", m.AdapterBytes)
	}
	g, err := l.Get("big")
	if err != nil {
		t.Fatal(err)
	}
	e.Manifest = m
	sameExpert(t, g, e, true)
	chunks := dataIDs(t, l)[m.ID]
	if chunks < 9 {
		t.Fatalf("%d keys for an 8 MiB expert", chunks)
	}
	if _, err := g.LoRA(baseConfig(t, s)); err != nil {
		t.Fatal(err)
	}
	if err := l.Remove("big"); err != nil {
		t.Fatal(err)
	}
	if ids := dataIDs(t, l); len(ids) != 0 {
		t.Fatalf("left %v", ids)
	}
	// A small memtable forces many transactions per Add.
	l2 := openMem(t, func(o Options) Options { return o.WithMemTableSize(16 << 20).WithChunkSize(256 << 10) })
	if _, err := l2.Add(e); err != nil {
		t.Fatal(err)
	}
	if g, err := l2.Get("big"); err != nil {
		t.Fatal(err)
	} else {
		sameExpert(t, g, e, false)
	}
}

func TestExportImport(t *testing.T) {
	l := openMem(t)
	e := synth("rte/exp", small)
	e.Instances[5].AnswerChoices = nil
	m, err := l.Add(e)
	if err != nil {
		t.Fatal(err)
	}
	e.Manifest = m
	dir := filepath.Join(t.TempDir(), "out")
	if err := l.Export("rte/exp", dir); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{FileAdapterConfig, FileAdapterModel, FileInstances, FileExpert} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			t.Fatal(err)
		}
	}
	// The PEFT half loads with the adapters package.
	if _, err := adapters.Load(dir, baseConfig(t, small)); err != nil {
		t.Fatal(err)
	}
	back, err := ImportDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	sameExpert(t, back, e, true)
	// The same folder inside an fs.FS (as the embedded starter experts are).
	fsBack, err := ImportFS(os.DirFS(filepath.Dir(dir)), filepath.Base(dir))
	if err != nil {
		t.Fatal(err)
	}
	sameExpert(t, fsBack, e, true)
	if _, err := ImportFS(os.DirFS(filepath.Dir(dir)), "missing"); !errors.Is(err, ErrInvalid) {
		t.Fatalf("ImportFS of a missing folder: %v", err)
	}

	// Re-adding an import under a new name gives the same data.
	back.Name = "rte/exp2"
	if _, err := l.Add(back); err != nil {
		t.Fatal(err)
	}
	g, _ := l.Get("rte/exp2")
	sameExpert(t, g, e, false)

	// A plain PEFT folder with instances lacking embeddings.
	plain := filepath.Join(t.TempDir(), "my-adapter")
	os.MkdirAll(plain, 0o755)
	for _, f := range []string{FileAdapterConfig, FileAdapterModel} {
		b, _ := os.ReadFile(filepath.Join(dir, f))
		os.WriteFile(filepath.Join(plain, f), b, 0o644)
	}
	os.WriteFile(filepath.Join(plain, FileInstances), []byte(`{"input":"a","answer_choices":["x","y"],"target":"x"}`+"\n\n"+`{"input":"b","embedding":[1,2]}`+"\n"), 0o644)
	p, err := ImportDir(plain)
	if err != nil {
		t.Fatal(err)
	}
	if p.Name != "my-adapter" || p.Kind != KindImported || len(p.Instances) != 2 || p.Instances[0].Embedding != nil ||
		!reflect.DeepEqual(p.Instances[1].Embedding, []float32{1, 2}) || p.Instances[0].Target != "x" {
		t.Fatalf("plain import: %+v", p)
	}
	if _, err := l.Add(p); !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "instance 0 has no embedding") {
		t.Fatalf("Add without embeddings: %v", err)
	}
	// Broken files are named.
	os.WriteFile(filepath.Join(plain, FileInstances), []byte("{\"input\":\"a\"}\n{oops\n"), 0o644)
	if _, err := ImportDir(plain); !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "instances.jsonl:2") {
		t.Fatalf("bad jsonl: %v", err)
	}
	os.Remove(filepath.Join(plain, FileAdapterModel))
	if _, err := ImportDir(plain); !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), FileAdapterModel) {
		t.Fatalf("missing safetensors: %v", err)
	}
}

func TestOrphansRemovedAtOpen(t *testing.T) {
	dir := t.TempDir()
	l := openDir(t, dir)
	if _, err := l.Add(synth("keep", small)); err != nil {
		t.Fatal(err)
	}
	// Data written by an Add that died before its manifest.
	x, err := l.encode(func() *Expert { c, _ := l.prepare(synth("lost", small)); c.ID = newID(); return c }())
	if err != nil {
		t.Fatal(err)
	}
	if err := l.writeBatched(x.entries(), setEntry); err != nil {
		t.Fatal(err)
	}
	if n := len(dataIDs(t, l)); n != 2 {
		t.Fatalf("%d ids", n)
	}
	l.Close()
	l = openDir(t, dir)
	defer l.Close()
	if n := len(dataIDs(t, l)); n != 1 {
		t.Fatalf("%d ids after Open, want 1", n)
	}
	if _, err := l.Get("keep"); err != nil {
		t.Fatal(err)
	}
}

func TestGC(t *testing.T) {
	l, err := Open(DefaultOptions(t.TempDir()).WithGCInterval(time.Millisecond).WithValueLogFileSize(1 << 20))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	for i := 0; i < 5; i++ {
		if _, err := l.Add(synth(fmt.Sprint(i), shape{layers: 2, hidden: 256, rank: 16, inst: 5, dim: 4})); err != nil {
			t.Fatal(err)
		}
		if i%2 == 0 {
			if err := l.Remove(fmt.Sprint(i)); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := l.GC(); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Get("3"); err != nil {
		t.Fatal(err)
	}
}

func TestOptions(t *testing.T) {
	if _, err := Open(DefaultOptions("")); !errors.Is(err, ErrInvalid) {
		t.Fatalf("no dir: %v", err)
	}
	if _, err := Open(DefaultOptions("x").WithInMemory(true).WithDir("x")); !errors.Is(err, ErrInvalid) {
		t.Fatalf("dir in memory: %v", err)
	}
	if _, err := Open(DefaultOptions("").WithInMemory(true).WithMemTableSize(4 << 20)); !errors.Is(err, ErrInvalid) {
		t.Fatalf("tiny memtable: %v", err)
	}
}

func TestManifestTask(t *testing.T) {
	for _, c := range []struct {
		m    Manifest
		want string
	}{
		{Manifest{Name: "sst2"}, "sst2"},
		{Manifest{Name: "sst2/review"}, "sst2"},
		{Manifest{Name: "my-sentiment", Dataset: "mr"}, "mr"},
		{Manifest{Name: "merged/nli", Kind: KindMerged}, "merged"},
		{Manifest{Name: "/odd"}, "/odd"},
	} {
		if got := c.m.Task(); got != c.want {
			t.Errorf("%+v: Task() = %q, want %q", c.m, got, c.want)
		}
	}
}

// WriteZip holds the files Export writes, byte for byte, in a folder named
// after the expert.
func TestWriteZip(t *testing.T) {
	l := openMem(t)
	if _, err := l.Add(synth("rte/zip", small)); err != nil {
		t.Fatal(err)
	}
	e, err := l.Get("rte/zip")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := WriteDir(e, dir); err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	if err := WriteZip(e, &b); err != nil {
		t.Fatal(err)
	}
	zr, err := zip.NewReader(bytes.NewReader(b.Bytes()), int64(b.Len()))
	if err != nil {
		t.Fatal(err)
	}
	if len(zr.File) != 4 {
		t.Fatalf("%d files", len(zr.File))
	}
	for _, zf := range zr.File {
		name, ok := strings.CutPrefix(zf.Name, "rte-zip/")
		if !ok {
			t.Fatalf("%s is not in rte-zip/", zf.Name)
		}
		r, err := zf.Open()
		if err != nil {
			t.Fatal(err)
		}
		got, _ := io.ReadAll(r)
		want, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil || !bytes.Equal(got, want) {
			t.Errorf("%s differs from the exported file (%v)", name, err)
		}
	}
}

func TestAdapterConfig(t *testing.T) {
	l := openMem(t)
	e := synth("rte/cfg", small)
	if _, err := l.Add(e); err != nil {
		t.Fatal(err)
	}
	got, man, err := l.AdapterConfig("rte/cfg")
	if err != nil || !bytes.Equal(got, e.AdapterConfig) || man.Name != "rte/cfg" || man.ID == "" {
		t.Errorf("AdapterConfig: %q, %+v, %v; want %q", got, man, err, e.AdapterConfig)
	}
	if _, _, err := l.AdapterConfig("nobody"); !errors.Is(err, ErrNotFound) {
		t.Errorf("a missing expert: %v", err)
	}
}

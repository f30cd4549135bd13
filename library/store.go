package library

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"math"
	mrand "math/rand/v2"
	"slices"
	"sort"
	"strings"

	"github.com/dgraph-io/badger/v4"

	"roe/adapters"
	"roe/model/safetensors"
)

// Key layout (see doc.go):
//
//	m/<name>             record: the Manifest as JSON (+ format, removed)
//	d/<id>/meta          crc32c (4 bytes LE) + JSON meta: adapter config,
//	                     tensor table, per-stream sizes and chunk checksums
//	d/<id>/t/<%08x>      chunk of the adapter tensors' bytes, concatenated
//	d/<id>/i/<%08x>      chunk of the instances (JSON lines, no embeddings)
//	d/<id>/e/<%08x>      chunk of the embeddings, float32 LE, [n, dim]
//	s/<key>              a setting of the library (settings.go)
//	x/restoring          present while Restore runs
//	x/probe/<n>          expired at birth; tells Subscribe it is registered
const (
	prefixManifest = "m/"
	prefixData     = "d/"
	keyRestoring   = "x/restoring"
	prefixProbe    = "x/probe/"
	formatVersion  = 1
	maxNameLen     = 128
)

// Stream names inside d/<id>/.
const (
	streamTensors    = "t"
	streamInstances  = "i"
	streamEmbeddings = "e"
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

func crc(b []byte) uint32 { return crc32.Checksum(b, castagnoli) }

// record is the value under m/<name>.
type record struct {
	Manifest
	Format  int  `json:"format"`
	Removed bool `json:"removed,omitempty"` // a tombstone written by Remove, expired at birth
}

// meta is the value under d/<id>/meta (after its 4-byte checksum).
type meta struct {
	Format        int                   `json:"format"`
	ID            string                `json:"id"`
	Name          string                `json:"name"`
	AdapterConfig json.RawMessage       `json:"adapter_config"`
	Tensors       []tensorMeta          `json:"tensors"`
	Streams       map[string]streamMeta `json:"streams"`
}

type tensorMeta struct {
	Name   string            `json:"name"`
	DType  safetensors.DType `json:"dtype"`
	Shape  []int             `json:"shape"`
	Offset int64             `json:"offset"`
	Size   int64             `json:"size"`
}

type streamMeta struct {
	Size  int64    `json:"size"`
	Chunk int      `json:"chunk"` // chunk size; the last chunk may be shorter
	CRC   []uint32 `json:"crc32c"`
}

func manifestKey(name string) []byte { return []byte(prefixManifest + name) }
func dataPrefix(id string) []byte    { return []byte(prefixData + id + "/") }
func metaKey(id string) []byte       { return []byte(prefixData + id + "/meta") }
func chunkKey(id, stream string, i int) []byte {
	return fmt.Appendf(nil, "%s%s/%s/%08x", prefixData, id, stream, i)
}

func newID() string {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(err) // crypto/rand does not fail on supported platforms
	}
	return hex.EncodeToString(b[:])
}

// checkName validates an expert name.
func checkName(name string) error {
	if name == "" {
		return fmt.Errorf("%w: empty name", ErrInvalid)
	}
	if len(name) > maxNameLen {
		return fmt.Errorf("%w: name %.20q... is %d bytes, at most %d", ErrInvalid, name, len(name), maxNameLen)
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '.' || c == '_' || c == '/' || c == '-') {
			return fmt.Errorf("%w: name %q: character %q at byte %d (allowed: a-z A-Z 0-9 . _ / -)", ErrInvalid, name, rune(c), i)
		}
	}
	for _, seg := range strings.Split(name, "/") {
		if seg == "" || seg == "." || seg == ".." {
			return fmt.Errorf("%w: name %q: empty, \".\" or \"..\" path segment", ErrInvalid, name)
		}
	}
	return nil
}

// prepare validates e and returns a copy ready to store: instances sampled
// down to S, derived manifest fields filled in.
func (l *Library) prepare(e *Expert) (*Expert, error) {
	if e == nil {
		return nil, fmt.Errorf("%w: nil expert", ErrInvalid)
	}
	if err := checkName(e.Name); err != nil {
		return nil, err
	}
	name := e.Name
	if !e.Kind.Valid() {
		return nil, fmt.Errorf("%w: expert %s: kind %q (want prompt, dataset, merged or imported)", ErrInvalid, name, e.Kind)
	}
	if fp := l.opts.Fingerprint; fp != "" && e.BaseFingerprint != fp {
		return nil, fmt.Errorf("%w: expert %s was trained on base %q, the library serves base %q", ErrFingerprint, name, e.BaseFingerprint, fp)
	}
	if !json.Valid(e.AdapterConfig) {
		return nil, fmt.Errorf("%w: expert %s: adapter_config.json is not valid JSON", ErrInvalid, name)
	}
	if _, err := adapters.ParseConfig(e.AdapterConfig); err != nil {
		return nil, fmt.Errorf("%w: expert %s: adapter_config.json: %w", ErrInvalid, name, err)
	}
	if len(e.Tensors) == 0 {
		return nil, fmt.Errorf("%w: expert %s has no adapter tensors", ErrInvalid, name)
	}
	seen := map[string]bool{}
	var total int64
	for i, t := range e.Tensors {
		if t.Name == "" {
			return nil, fmt.Errorf("%w: expert %s: tensor %d has no name", ErrInvalid, name, i)
		}
		if seen[t.Name] {
			return nil, fmt.Errorf("%w: expert %s: tensor %q appears twice", ErrInvalid, name, t.Name)
		}
		seen[t.Name] = true
		if t.DType != safetensors.F32 {
			return nil, fmt.Errorf("%w: expert %s: tensor %q is %s, the library stores F32", ErrInvalid, name, t.Name, t.DType)
		}
		n := int64(1)
		for _, d := range t.Shape {
			if d < 0 || (d > 0 && n > math.MaxInt64/4/int64(d)) {
				return nil, fmt.Errorf("%w: expert %s: tensor %q has invalid shape %v", ErrInvalid, name, t.Name, t.Shape)
			}
			n *= int64(d)
		}
		if 4*n != int64(len(t.Data)) {
			return nil, fmt.Errorf("%w: expert %s: tensor %q: shape %v needs %d bytes, data has %d", ErrInvalid, name, t.Name, t.Shape, 4*n, len(t.Data))
		}
		for j := 0; j < len(t.Data); j += 4 {
			v := math.Float32frombits(binary.LittleEndian.Uint32(t.Data[j:]))
			if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
				return nil, fmt.Errorf("%w: expert %s: tensor %q: element %d is %v", ErrInvalid, name, t.Name, j/4, v)
			}
		}
		total += int64(len(t.Data))
	}
	dim := 0
	for i, in := range e.Instances {
		if in.Text == "" {
			return nil, fmt.Errorf("%w: expert %s: instance %d has no text", ErrInvalid, name, i)
		}
		if len(in.Embedding) == 0 {
			return nil, fmt.Errorf("%w: expert %s: instance %d has no embedding", ErrInvalid, name, i)
		}
		if i == 0 {
			dim = len(in.Embedding)
		} else if len(in.Embedding) != dim {
			return nil, fmt.Errorf("%w: expert %s: instance %d has a %d-dim embedding, instance 0 has %d", ErrInvalid, name, i, len(in.Embedding), dim)
		}
		if err := checkEmbedding(in.Embedding); err != nil {
			return nil, fmt.Errorf("%w: expert %s: instance %d: %w", ErrInvalid, name, i, err)
		}
	}
	if len(e.Instances) > 0 && e.Embedder == "" {
		return nil, fmt.Errorf("%w: expert %s has embeddings but no Embedder id", ErrInvalid, name)
	}
	if id := l.opts.Embedder; id != "" && e.Embedder == id && len(e.Instances) > 0 && dim != l.opts.EmbedderDim {
		return nil, fmt.Errorf("%w: expert %s has %d-dim embeddings, but embedder %s makes %d-dim ones", ErrInvalid, name, dim, id, l.opts.EmbedderDim)
	}
	for k, v := range e.Training.Metrics {
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return nil, fmt.Errorf("%w: expert %s: metric %q is %v", ErrInvalid, name, k, v)
		}
	}
	c := *e
	// Empty and nil read back the same (nil); normalise so Get equals Add.
	c.Instances = make([]Instance, len(e.Instances))
	for i, in := range e.Instances {
		if len(in.AnswerChoices) == 0 {
			in.AnswerChoices = nil
		}
		c.Instances[i] = in
	}
	if len(c.Training.Seeds) == 0 {
		c.Training.Seeds = nil
	}
	if len(c.Training.Metrics) == 0 {
		c.Training.Metrics = nil
	}
	c.SampledFrom = 0
	if s := l.opts.SampleSize; s > 0 && len(e.Instances) > s {
		c.Instances = sample(c.Instances, s, l.opts.Seed)
		c.SampledFrom = len(e.Instances)
	}
	c.NumInstances, c.Dim = len(c.Instances), dim
	c.NumTensors, c.AdapterBytes = len(e.Tensors), total
	return &c, nil
}

// Bounds on a stored embedding. Embeddings are mean-pooled hidden states:
// elements are O(0.01–10) (the starter experts' largest is 6.7, norms 7–12)
// and even the rare "massive activations" of large models stay below ~1e3.
// The index centres and L2-normalises them in float32, so a value of 3e38
// overflows the squared norm to +Inf and zeroes every score. Within these
// bounds a squared norm is at most 1e8·65536 ≈ 7e12, far from float32's
// 3.4e38, and above 1e-12, far from its underflow.
const (
	maxEmbeddingDim   = 1 << 16
	maxEmbeddingValue = 1e4
	minEmbeddingNorm  = 1e-6
)

// checkEmbedding says why v cannot be a stored embedding, or returns nil.
func checkEmbedding(v []float32) error {
	if len(v) > maxEmbeddingDim {
		return fmt.Errorf("embedding has %d dimensions, over %d", len(v), maxEmbeddingDim)
	}
	var sq float64
	for j, x := range v {
		f := float64(x)
		if math.IsNaN(f) || math.IsInf(f, 0) {
			return fmt.Errorf("embedding element %d is %v", j, x)
		}
		if math.Abs(f) > maxEmbeddingValue {
			return fmt.Errorf("embedding element %d is %g, outside ±%g (mean-pooled hidden states are far smaller)", j, x, float64(maxEmbeddingValue))
		}
		sq += f * f
	}
	if n := math.Sqrt(sq); n == 0 {
		return errors.New("embedding is all zeros")
	} else if n < minEmbeddingNorm {
		return fmt.Errorf("embedding has norm %.3g, under %g", n, minEmbeddingNorm)
	}
	return nil
}

// sample returns s of the instances, chosen by a permutation seeded with
// seed, in their original order.
func sample(in []Instance, s int, seed uint64) []Instance {
	r := mrand.New(mrand.NewPCG(seed, 0x726f652d6c6962)) // "roe-lib"
	idx := r.Perm(len(in))[:s]
	sort.Ints(idx)
	out := make([]Instance, s)
	for i, j := range idx {
		out[i] = in[j]
	}
	return out
}

// encoded is an expert turned into stored values.
type encoded struct {
	rec     record
	meta    []byte            // value of d/<id>/meta
	streams map[string][]byte // stream name → bytes
	m       meta
}

func (l *Library) encode(e *Expert) (*encoded, error) {
	m := meta{Format: formatVersion, ID: e.ID, Name: e.Name, AdapterConfig: json.RawMessage(e.AdapterConfig), Streams: map[string]streamMeta{}}
	var t bytes.Buffer
	t.Grow(int(e.AdapterBytes))
	for _, x := range e.Tensors {
		m.Tensors = append(m.Tensors, tensorMeta{Name: x.Name, DType: x.DType, Shape: x.Shape, Offset: int64(t.Len()), Size: int64(len(x.Data))})
		t.Write(x.Data)
	}
	var ins bytes.Buffer
	emb := make([]byte, 0, 4*e.Dim*len(e.Instances))
	enc := json.NewEncoder(&ins)
	enc.SetEscapeHTML(false)
	for _, in := range e.Instances {
		c := in
		c.Embedding = nil
		if err := enc.Encode(c); err != nil {
			return nil, fmt.Errorf("%w: expert %s: %w", ErrInvalid, e.Name, err)
		}
		emb = encodeF32(emb, in.Embedding)
	}
	streams := map[string][]byte{streamTensors: t.Bytes(), streamInstances: ins.Bytes(), streamEmbeddings: emb}
	cs := l.opts.ChunkSize
	for s, b := range streams {
		sm := streamMeta{Size: int64(len(b)), Chunk: cs, CRC: []uint32{}}
		for off := 0; off < len(b); off += cs {
			sm.CRC = append(sm.CRC, crc(b[off:min(off+cs, len(b))]))
		}
		m.Streams[s] = sm
	}
	mj, err := json.Marshal(m)
	if err != nil {
		return nil, fmt.Errorf("%w: expert %s: %w", ErrInvalid, e.Name, err)
	}
	mv := binary.LittleEndian.AppendUint32(make([]byte, 0, 4+len(mj)), crc(mj))
	mv = append(mv, mj...)
	if len(mv) >= maxValue {
		return nil, fmt.Errorf("%w: expert %s: its tensor table is %d bytes, over the %d-byte value limit", ErrInvalid, e.Name, len(mv), maxValue)
	}
	return &encoded{rec: record{Manifest: e.Manifest, Format: formatVersion}, meta: mv, streams: streams, m: m}, nil
}

// entries lists the data values of an encoded expert: chunks, then meta.
func (x *encoded) entries() []*badger.Entry {
	var es []*badger.Entry
	for _, s := range []string{streamTensors, streamInstances, streamEmbeddings} {
		b, sm := x.streams[s], x.m.Streams[s]
		for i := range sm.CRC {
			off := i * sm.Chunk
			es = append(es, badger.NewEntry(chunkKey(x.m.ID, s, i), b[off:min(off+sm.Chunk, len(b))]))
		}
	}
	return append(es, badger.NewEntry(metaKey(x.m.ID), x.meta))
}

// writeBatched writes entries in as few transactions as Badger allows,
// starting a new one on ErrTxnTooBig. Callers make the data reachable only
// afterwards (by writing the manifest), so a crash or error in between leaves
// unreferenced keys, which Open removes.
func (l *Library) writeBatched(es []*badger.Entry, set func(*badger.Txn, *badger.Entry) error) error {
	txn := l.db.NewTransaction(true)
	defer func() { txn.Discard() }()
	for _, e := range es {
		err := set(txn, e)
		if errors.Is(err, badger.ErrTxnTooBig) {
			if err = txn.Commit(); err != nil {
				return err
			}
			txn = l.db.NewTransaction(true)
			err = set(txn, e)
		}
		if err != nil {
			return fmt.Errorf("write %s: %w", e.Key, err)
		}
	}
	return txn.Commit()
}

func setEntry(txn *badger.Txn, e *badger.Entry) error    { return txn.SetEntry(e) }
func deleteEntry(txn *badger.Txn, e *badger.Entry) error { return txn.Delete(e.Key) }

// deleteData removes every key under d/<id>/ in batches.
func (l *Library) deleteData(ids ...string) error {
	var es []*badger.Entry
	err := l.db.View(func(txn *badger.Txn) error {
		for _, id := range ids {
			keys, err := keysWithPrefix(txn, dataPrefix(id))
			if err != nil {
				return err
			}
			for _, k := range keys {
				es = append(es, &badger.Entry{Key: k})
			}
		}
		return nil
	})
	if err != nil || len(es) == 0 {
		return err
	}
	return l.writeBatched(es, deleteEntry)
}

func keysWithPrefix(txn *badger.Txn, prefix []byte) ([][]byte, error) {
	it := txn.NewIterator(badger.IteratorOptions{Prefix: prefix})
	defer it.Close()
	var keys [][]byte
	for it.Rewind(); it.Valid(); it.Next() {
		keys = append(keys, it.Item().KeyCopy(nil))
	}
	return keys, nil
}

// getRecord reads m/<name>.
func getRecord(txn *badger.Txn, name string) (record, error) {
	item, err := txn.Get(manifestKey(name))
	if errors.Is(err, badger.ErrKeyNotFound) {
		return record{}, fmt.Errorf("%w: %s", ErrNotFound, name)
	}
	if err != nil {
		return record{}, fmt.Errorf("expert %s: %w", name, err)
	}
	var r record
	err = item.Value(func(v []byte) error { return decodeRecord(name, v, &r) })
	if err == nil && r.Removed {
		return record{}, fmt.Errorf("%w: %s", ErrNotFound, name)
	}
	return r, err
}

func decodeRecord(name string, v []byte, r *record) error {
	if err := json.Unmarshal(v, r); err != nil {
		return fmt.Errorf("%w: key %s%s: %v", ErrCorrupt, prefixManifest, name, err)
	}
	if r.Name != name || r.Format != formatVersion || len(r.ID) != 32 {
		return fmt.Errorf("%w: key %s%s: manifest names %q, format %d, id %q", ErrCorrupt, prefixManifest, name, r.Name, r.Format, r.ID)
	}
	return nil
}

// getMeta reads and verifies d/<id>/meta for record r.
func getMeta(txn *badger.Txn, r record) (meta, error) {
	key := metaKey(r.ID)
	item, err := txn.Get(key)
	if errors.Is(err, badger.ErrKeyNotFound) {
		return meta{}, fmt.Errorf("%w: expert %s: key %s missing", ErrCorrupt, r.Name, key)
	}
	if err != nil {
		return meta{}, fmt.Errorf("expert %s: %w", r.Name, err)
	}
	var m meta
	err = item.Value(func(v []byte) error {
		if len(v) < 4 || binary.LittleEndian.Uint32(v) != crc(v[4:]) {
			return fmt.Errorf("%w: expert %s: key %s: checksum mismatch", ErrCorrupt, r.Name, key)
		}
		if err := json.Unmarshal(v[4:], &m); err != nil {
			return fmt.Errorf("%w: expert %s: key %s: %v", ErrCorrupt, r.Name, key, err)
		}
		return nil
	})
	if err != nil {
		return meta{}, err
	}
	if m.ID != r.ID || m.Name != r.Name || m.Format != formatVersion {
		return meta{}, fmt.Errorf("%w: expert %s: key %s belongs to %q (id %s)", ErrCorrupt, r.Name, key, m.Name, m.ID)
	}
	for _, s := range []string{streamTensors, streamInstances, streamEmbeddings} {
		sm, ok := m.Streams[s]
		if !ok || sm.Chunk <= 0 || sm.Size < 0 || int64(len(sm.CRC)) != (sm.Size+int64(sm.Chunk)-1)/int64(sm.Chunk) {
			return meta{}, fmt.Errorf("%w: expert %s: key %s: bad table for stream %q", ErrCorrupt, r.Name, key, s)
		}
	}
	return m, nil
}

// readStream reads and verifies every chunk of one stream.
func readStream(txn *badger.Txn, r record, m meta, s string) ([]byte, error) {
	sm := m.Streams[s]
	buf := make([]byte, sm.Size)
	for i, want := range sm.CRC {
		key := chunkKey(m.ID, s, i)
		off := int64(i) * int64(sm.Chunk)
		part := buf[off:min(off+int64(sm.Chunk), sm.Size)]
		item, err := txn.Get(key)
		if errors.Is(err, badger.ErrKeyNotFound) {
			return nil, fmt.Errorf("%w: expert %s: chunk %s missing", ErrCorrupt, r.Name, key)
		}
		if err != nil {
			return nil, fmt.Errorf("expert %s: chunk %s: %w", r.Name, key, err)
		}
		err = item.Value(func(v []byte) error {
			if len(v) != len(part) {
				return fmt.Errorf("%w: expert %s: chunk %s is %d bytes, want %d", ErrCorrupt, r.Name, key, len(v), len(part))
			}
			if got := crc(v); got != want {
				return fmt.Errorf("%w: expert %s: chunk %s: crc32c %08x, want %08x", ErrCorrupt, r.Name, key, got, want)
			}
			copy(part, v)
			return nil
		})
		if err != nil {
			return nil, err
		}
	}
	return buf, nil
}

// readTensors rebuilds the adapter tensors from the t stream.
func readTensors(txn *badger.Txn, r record, m meta) ([]safetensors.Tensor, error) {
	b, err := readStream(txn, r, m, streamTensors)
	if err != nil {
		return nil, err
	}
	ts := make([]safetensors.Tensor, len(m.Tensors))
	for i, t := range m.Tensors {
		if t.Offset < 0 || t.Size < 0 || t.Offset+t.Size > int64(len(b)) {
			return nil, fmt.Errorf("%w: expert %s: tensor %q: range [%d,%d) outside %d stored bytes", ErrCorrupt, r.Name, t.Name, t.Offset, t.Offset+t.Size, len(b))
		}
		end := t.Offset + t.Size
		ts[i] = safetensors.Tensor{Name: t.Name, DType: t.DType, Shape: slices.Clone(t.Shape), Data: b[t.Offset:end:end]}
	}
	if len(ts) != r.NumTensors {
		return nil, fmt.Errorf("%w: expert %s: %d tensors stored, manifest says %d", ErrCorrupt, r.Name, len(ts), r.NumTensors)
	}
	return ts, nil
}

// readEmbeddings returns the embedding matrix [NumInstances, Dim].
func readEmbeddings(txn *badger.Txn, r record, m meta) ([]float32, error) {
	b, err := readStream(txn, r, m, streamEmbeddings)
	if err != nil {
		return nil, err
	}
	if len(b) != 4*r.NumInstances*r.Dim {
		return nil, fmt.Errorf("%w: expert %s: %d embedding bytes, want %d×%d float32", ErrCorrupt, r.Name, len(b), r.NumInstances, r.Dim)
	}
	return decodeF32(b), nil
}

// readInstances reads the instances with their embeddings.
func readInstances(txn *badger.Txn, r record, m meta) ([]Instance, error) {
	b, err := readStream(txn, r, m, streamInstances)
	if err != nil {
		return nil, err
	}
	emb, err := readEmbeddings(txn, r, m)
	if err != nil {
		return nil, err
	}
	out := make([]Instance, 0, r.NumInstances)
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(nil, len(b)+1)
	for sc.Scan() {
		var in Instance
		if err := json.Unmarshal(sc.Bytes(), &in); err != nil {
			return nil, fmt.Errorf("%w: expert %s: instance %d: %v", ErrCorrupt, r.Name, len(out), err)
		}
		out = append(out, in)
	}
	if len(out) != r.NumInstances {
		return nil, fmt.Errorf("%w: expert %s: %d instances stored, manifest says %d", ErrCorrupt, r.Name, len(out), r.NumInstances)
	}
	for i := range out {
		out[i].Embedding = emb[i*r.Dim : (i+1)*r.Dim : (i+1)*r.Dim]
	}
	return out, nil
}

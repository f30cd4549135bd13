package library

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/dgraph-io/badger/v4/options"
)

// Options configures a Library. Start from DefaultOptions and change it with
// the With* methods. The Badger memory settings are sized for a small machine
// (a 2-core, few-GiB box that also holds the base model): about 100 MiB of
// Badger memory in the worst case instead of Badger's ~1 GiB defaults.
type Options struct {
	// Dir is the Badger directory; it must be empty when InMemory is set.
	Dir string
	// InMemory keeps everything in memory (tests, throw-away libraries);
	// nothing survives Close.
	InMemory bool
	// SampleSize is S, how many training instances an expert keeps; Add
	// samples more than S down to S. Zero or less keeps all. Default 100.
	SampleSize int
	// Seed seeds the sampling of instances, so the same expert added twice
	// keeps the same instances. Default 0.
	Seed uint64
	// Fingerprint is the live base model's fingerprint
	// (model.(*Model).Fingerprint()); when set, Add refuses experts trained
	// on another base. Empty disables the check.
	Fingerprint string
	// Embedder and EmbedderDim are the live embedder's id and dimension;
	// when set, Add refuses an expert that claims that embedder but whose
	// embeddings have another dimension. Empty disables the check.
	Embedder    string
	EmbedderDim int
	// Logger receives Badger's log lines (errors and warnings at their
	// levels, Badger's info and debug lines at Debug) and the library's own
	// notes (orphan cleanup). Nil discards them.
	Logger *slog.Logger
	// ChunkSize is the size of one stored chunk of adapter tensors,
	// instances or embeddings. Default and maximum 1 MiB − 4 KiB (values
	// must stay below Badger's 1 MiB threshold in memory mode, and a backup
	// must restore into either mode).
	ChunkSize int
	// GCInterval is how often a background goroutine runs Badger's value
	// log garbage collection (space left by removed experts). Zero disables
	// it; GC can also be called directly. Default 10 minutes. Ignored in
	// memory mode.
	GCInterval time.Duration

	// MemTableSize is Badger's memtable size. Default 32 MiB (Badger: 64
	// MiB). One transaction may hold at most 15% of it, which is why Add
	// writes big data in several transactions (see doc.go).
	MemTableSize int64
	// NumMemtables is how many memtables Badger keeps before stalling
	// writes. Default 2 (Badger: 5).
	NumMemtables int
	// BlockCacheSize is Badger's block cache. Default 32 MiB (Badger: 256 MiB).
	BlockCacheSize int64
	// IndexCacheSize bounds the memory for table indexes and bloom filters.
	// Default 16 MiB (Badger: 0, meaning all indexes stay in memory).
	IndexCacheSize int64
	// ValueLogFileSize is the size of one value log file. Default 64 MiB
	// (Badger: 1 GiB); smaller files let GC reclaim space sooner.
	ValueLogFileSize int64
	// ValueThreshold: values of at least this size go to the value log on
	// disk, smaller ones into the LSM tree. Default 4 KiB on disk, so
	// manifests live in the LSM tree and chunks in the value log; in memory
	// mode it is the largest value Badger accepts, so it is 1 MiB there.
	ValueThreshold int64
	// NumCompactors is Badger's compaction goroutines. Default 2 (Badger: 4;
	// 1 is not allowed).
	NumCompactors int
	// Remote, when set, is a store shared with other libraries (replicas)
	// that Add, Replace and Remove write through first: only what it took
	// is then applied here. See Remote.
	Remote Remote
	// Tune, when set, gets the final badger.Options and may change them
	// (for experiments); SyncWrites must stay on for the durability promise.
	Tune func(badger.Options) badger.Options
}

// DefaultOptions returns the options for a library in dir, sized for a
// small machine (see the field comments for each value and Badger's default).
func DefaultOptions(dir string) Options {
	return Options{
		Dir:              dir,
		SampleSize:       100,
		ChunkSize:        maxChunk,
		GCInterval:       10 * time.Minute,
		MemTableSize:     32 << 20,
		NumMemtables:     2,
		BlockCacheSize:   32 << 20,
		IndexCacheSize:   16 << 20,
		ValueLogFileSize: 64 << 20,
		ValueThreshold:   4 << 10,
		NumCompactors:    2,
	}
}

// WithDir returns o with Dir set.
func (o Options) WithDir(dir string) Options { o.Dir = dir; return o }

// WithInMemory returns o with InMemory set (and Dir cleared when on).
func (o Options) WithInMemory(b bool) Options {
	o.InMemory = b
	if b {
		o.Dir = ""
	}
	return o
}

// WithSampleSize returns o with SampleSize (S) set.
func (o Options) WithSampleSize(n int) Options { o.SampleSize = n; return o }

// WithSeed returns o with the sampling seed set.
func (o Options) WithSeed(seed uint64) Options { o.Seed = seed; return o }

// WithFingerprint returns o with the live base model's fingerprint set.
func (o Options) WithFingerprint(fp string) Options { o.Fingerprint = fp; return o }

// WithEmbedder returns o with the live embedder's id and dimension set.
func (o Options) WithEmbedder(id string, dim int) Options {
	o.Embedder, o.EmbedderDim = id, dim
	return o
}

// WithLogger returns o with Logger set.
func (o Options) WithLogger(l *slog.Logger) Options { o.Logger = l; return o }

// WithChunkSize returns o with ChunkSize set.
func (o Options) WithChunkSize(n int) Options { o.ChunkSize = n; return o }

// WithGCInterval returns o with GCInterval set.
func (o Options) WithGCInterval(d time.Duration) Options { o.GCInterval = d; return o }

// WithMemTableSize returns o with MemTableSize set.
func (o Options) WithMemTableSize(n int64) Options { o.MemTableSize = n; return o }

// WithNumMemtables returns o with NumMemtables set.
func (o Options) WithNumMemtables(n int) Options { o.NumMemtables = n; return o }

// WithBlockCacheSize returns o with BlockCacheSize set.
func (o Options) WithBlockCacheSize(n int64) Options { o.BlockCacheSize = n; return o }

// WithIndexCacheSize returns o with IndexCacheSize set.
func (o Options) WithIndexCacheSize(n int64) Options { o.IndexCacheSize = n; return o }

// WithValueLogFileSize returns o with ValueLogFileSize set.
func (o Options) WithValueLogFileSize(n int64) Options { o.ValueLogFileSize = n; return o }

// WithValueThreshold returns o with ValueThreshold set.
func (o Options) WithValueThreshold(n int64) Options { o.ValueThreshold = n; return o }

// WithNumCompactors returns o with NumCompactors set.
func (o Options) WithNumCompactors(n int) Options { o.NumCompactors = n; return o }

// WithTune returns o with Tune set.
func (o Options) WithTune(f func(badger.Options) badger.Options) Options { o.Tune = f; return o }

// maxValue is Badger's hard limit on ValueThreshold (and so on a value in
// memory mode).
const maxValue = 1 << 20

// maxChunk is the largest chunk: in memory mode Badger keeps only values
// strictly below its threshold (a value of exactly 1 MiB passes its size
// check, then panics), and a backup must restore into either mode.
const maxChunk = maxValue - 4<<10

// check validates o and fills zero sizes with the defaults.
func (o *Options) check() error {
	d := DefaultOptions(o.Dir)
	if o.InMemory && o.Dir != "" {
		return fmt.Errorf("%w: options: Dir %q set in memory mode", ErrInvalid, o.Dir)
	}
	if !o.InMemory && o.Dir == "" {
		return fmt.Errorf("%w: options: no Dir (and not in memory mode)", ErrInvalid)
	}
	if o.Embedder != "" && (o.EmbedderDim <= 0 || o.EmbedderDim > maxEmbeddingDim) {
		return fmt.Errorf("%w: options: embedder %s with dimension %d", ErrInvalid, o.Embedder, o.EmbedderDim)
	}
	if o.MemTableSize <= 0 {
		o.MemTableSize = d.MemTableSize
	}
	if o.NumMemtables <= 0 {
		o.NumMemtables = d.NumMemtables
	}
	if o.BlockCacheSize < 0 {
		o.BlockCacheSize = 0
	}
	if o.IndexCacheSize < 0 {
		o.IndexCacheSize = 0
	}
	if o.ValueLogFileSize <= 0 {
		o.ValueLogFileSize = d.ValueLogFileSize
	}
	if o.NumCompactors <= 0 {
		o.NumCompactors = d.NumCompactors
	}
	if o.ValueThreshold <= 0 {
		o.ValueThreshold = d.ValueThreshold
	}
	if o.InMemory {
		o.ValueThreshold = maxValue
	}
	if o.ValueThreshold > maxValue {
		return fmt.Errorf("%w: options: ValueThreshold %d over Badger's limit %d", ErrInvalid, o.ValueThreshold, maxValue)
	}
	if o.ChunkSize <= 0 {
		o.ChunkSize = d.ChunkSize
	}
	if o.ChunkSize > maxChunk {
		o.ChunkSize = maxChunk
	}
	// A transaction holds at most 15% of a memtable; a chunk (plus its key)
	// must fit in one with room to spare.
	if batch := o.MemTableSize * 15 / 100; int64(o.ChunkSize) > batch/2 {
		return fmt.Errorf("%w: options: ChunkSize %d too large for MemTableSize %d (at most %d)", ErrInvalid, o.ChunkSize, o.MemTableSize, batch/2)
	}
	return nil
}

// badger converts o (checked) to Badger's options.
func (o Options) badger() badger.Options {
	bo := badger.DefaultOptions(o.Dir).
		WithInMemory(o.InMemory).
		WithSyncWrites(!o.InMemory). // Add and Remove are on disk when they return
		WithMemTableSize(o.MemTableSize).
		WithNumMemtables(o.NumMemtables).
		WithBlockCacheSize(o.BlockCacheSize).
		WithIndexCacheSize(o.IndexCacheSize).
		WithValueLogFileSize(o.ValueLogFileSize).
		WithValueThreshold(o.ValueThreshold).
		WithNumCompactors(o.NumCompactors).
		WithNumLevelZeroTables(3).
		WithNumLevelZeroTablesStall(8).
		WithNumGoroutines(2).          // stream (backup) workers
		WithCompression(options.None). // float tensors do not compress; saves CPU
		WithMetricsEnabled(false).
		WithDetectConflicts(true). // name uniqueness under concurrent Add
		WithLogger(slogAdapter{o.Logger})
	if o.InMemory {
		bo.Dir, bo.ValueDir = "", ""
	}
	if o.Tune != nil {
		bo = o.Tune(bo)
	}
	return bo
}

// slogAdapter implements badger.Logger over an optional *slog.Logger.
type slogAdapter struct{ l *slog.Logger }

func (a slogAdapter) log(level slog.Level, format string, args ...any) {
	if a.l == nil || !a.l.Enabled(context.Background(), level) {
		return
	}
	a.l.Log(context.Background(), level, strings.TrimSpace(fmt.Sprintf(format, args...)), "component", "badger")
}

func (a slogAdapter) Errorf(f string, v ...any)   { a.log(slog.LevelError, f, v...) }
func (a slogAdapter) Warningf(f string, v ...any) { a.log(slog.LevelWarn, f, v...) }
func (a slogAdapter) Infof(f string, v ...any)    { a.log(slog.LevelDebug, f, v...) }
func (a slogAdapter) Debugf(f string, v ...any)   { a.log(slog.LevelDebug-4, f, v...) }

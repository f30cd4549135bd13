/*
Package library is roe's expert library: LoRA adapters with their manifest,
S sampled training instances and those instances' embeddings, stored in an
embedded Badger database (github.com/dgraph-io/badger/v4).

# Usage

	lib, err := library.Open(library.DefaultOptions(dir).WithFingerprint(base.Fingerprint()))
	...
	defer lib.Close()
	man, err := lib.Add(&library.Expert{Manifest: library.Manifest{Name: "rte/gpt3-style", Kind: library.KindPrompt, ...},
		AdapterConfig: cfg, Tensors: tensors, Instances: instances})
	e, err := lib.Get("rte/gpt3-style")
	lora, err := e.LoRA(base.Config)

Add validates the expert (name of [a-zA-Z0-9._/-] characters, at most 128
bytes, with no empty, "." or ".." segment between slashes; a known kind; an
adapter config that adapters.ParseConfig accepts; unique, finite F32 tensors
whose data matches their shapes; instances with text and embeddings of one
dimension, every element finite and within ±1e4, none all zeros or of norm
under 1e-6, and an Embedder id; with Options.Embedder set, that embedder's
dimension; finite metrics). Errors wrap ErrInvalid,
ErrExists or ErrFingerprint and name the problem. More than S instances
(Options.SampleSize, default 100) are sampled down to S by a permutation
seeded with Options.Seed, keeping their order; Manifest.SampledFrom records
how many there were.

# Storage layout

	m/<name>             the manifest (JSON); the only keys the change feed watches
	d/<id>/meta          adapter_config.json, the tensor table, and per stream
	                     its size and each chunk's CRC-32C; with its own CRC-32C
	d/<id>/t/<%08x>      the adapter tensors' bytes, concatenated, in chunks
	d/<id>/i/<%08x>      the instances as JSON lines (no embeddings), in chunks
	d/<id>/e/<%08x>      the embeddings, float32 little-endian [n, dim], in chunks
	s/<key>              a setting of the library as a whole (Setting, SetSetting)

Chunks are Options.ChunkSize (1 MiB − 4 KiB) long. Every chunk's checksum is checked
when it is read; a mismatch, a missing chunk or a chunk of the wrong length is
ErrCorrupt naming the key. Instances and Embeddings read only the i and e
chunks, so the retriever can load every expert's embeddings without touching
adapter tensors.

# Atomicity and durability

A Badger transaction may hold at most 15% of a memtable (ErrTxnTooBig), and in
memory mode every value counts in full, so an adapter cannot always go in one
transaction. Add therefore writes the data under a fresh random id (32 hex
digits from crypto/rand) in as few transactions as Badger allows, then writes
m/<name> in one last transaction, which also checks that the name is still
free. Until that transaction commits nothing points to the data; if Add
fails it deletes its data, and if the process dies Open deletes every d/<id>/
that no manifest names. Read-write transactions that lose a race to a
concurrent Add or Remove of the same name (Badger's ErrConflict) are rerun,
so the loser sees the winner's commit: ErrExists for an Add, ErrNotFound for
a Remove; callers never see a conflict. SyncWrites is on, so an Add or Remove that returned is
on disk. Readers see an expert entirely or not at all.

Remove overwrites m/<name> with a tombstone that has already expired (readers
see no key; the change feed gets the removed id) and deletes d/<id>/ in the
same transaction; only if that is too big for one transaction does the
tombstone commit first and the data follow in batches (the same Open cleanup
covers a crash in between).

Restore writes a marker key first and deletes it last; Open wipes a library
that still has the marker (it was empty before the Restore).

# Change feed

Subscribe and SubscribeList watch only the m/ prefix (Badger copies every
value it publishes, so tensor chunks must not go through it) and report
Change{Op: "add"|"remove", Name, ID}. SubscribeList also lists the library
after the feed is registered, so an index built from the list plus the feed
misses nothing.

# Memory

DefaultOptions sizes Badger for a small machine that also holds a model:

	MemTableSize      32 MiB  (Badger 64 MiB; a transaction may hold 4.8 MiB)
	NumMemtables      2       (Badger 5)
	BlockCacheSize    32 MiB  (Badger 256 MiB)
	IndexCacheSize    16 MiB  (Badger 0 = every table index kept in memory)
	ValueLogFileSize  64 MiB  (Badger 1 GiB; smaller files let GC reclaim sooner)
	ValueThreshold    4 KiB on disk (manifests in the LSM tree, chunks in the
	                  value log); 1 MiB in memory mode, Badger's limit there
	NumCompactors     2       (Badger 4; 1 is not allowed)
	NumLevelZeroTables 3, stall at 8; Compression none (floats do not
	compress); metrics off; 2 stream goroutines for Backup

Badger's memory is then roughly 3 memtables (~40 MiB each with arena slack)
plus the two caches, about 150 MiB at peak; mostly far less.
Removed experts leave garbage in the value log; a background goroutine runs
Badger's value log GC every Options.GCInterval (10 minutes), and GC runs it
at once.
*/
package library

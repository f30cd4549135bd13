package s3sync

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	mrand "math/rand/v2"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
	"github.com/minio/minio-go/v7/pkg/s3utils"

	"roe/library"
)

// DefaultInterval is how often Run polls the index.
const DefaultInterval = 2 * time.Second

// DefaultOrphanAge is Config.OrphanAge's default: far longer than any
// write's upload-to-index window (seconds), so only objects of writes that
// died in between are collected.
const DefaultOrphanAge = time.Hour

// collectEvery is how often Run looks for orphaned objects.
const collectEvery = 10 * time.Minute

// Config says where the library lives and how to reach it.
type Config struct {
	// URL is s3://BUCKET or s3://BUCKET/PREFIX.
	URL string
	// Endpoint is the S3 server, host[:port] or http(s)://host[:port];
	// empty: $AWS_ENDPOINT_URL_S3, $AWS_ENDPOINT_URL, else AWS S3.
	Endpoint string
	// Region; empty: $AWS_REGION, $AWS_DEFAULT_REGION, else us-east-1
	// when an endpoint is given (S3-compatible servers rarely care).
	Region string
	// PathStyle puts the bucket in the URL path instead of the host name.
	PathStyle bool
	// Interval between polls of the index; default DefaultInterval.
	Interval time.Duration
	// Timeout bounds one request for the index (default 5 s); object
	// transfers get 30 times as long.
	Timeout time.Duration
	// OrphanAge is how old an expert object no index names must be before
	// Run deletes it (Collect); younger ones may belong to a write in flight
	// [DefaultOrphanAge; negative: never collect].
	OrphanAge time.Duration
	// Logger; nil discards.
	Logger *slog.Logger
}

// Status is what a replica knows about its sync with the bucket.
type Status struct {
	Ready     bool      // the first full sync is done
	Reachable bool      // the last request to the bucket got an answer
	LastSync  time.Time // the last poll that brought the cache up to date
	LastError string    // the last poll's error, "" after a good one
	Seq       uint64    // the index sequence number the cache reflects
	Experts   int       // experts in that index
	Skipped   int       // index entries this replica cannot serve (e.g. another base)
}

// Store is a library.Remote on an S3 bucket plus the sync of a library
// from it. Its methods are safe for concurrent use.
type Store struct {
	client         *minio.Client
	bucket, prefix string
	interval       time.Duration
	timeout        time.Duration
	orphanAge      time.Duration
	log            *slog.Logger

	mu      sync.Mutex        // orders sync's applies against this replica's writes
	written map[string]uint64 // name → index seq of this replica's last write of it
	lib     *library.Library  // set by Run or Sync

	stMu      sync.Mutex
	st        Status
	etag      string // ETag of the index the cache fully reflects
	failed    map[string]string
	onChanged func(Status)
}

// index is PREFIX/index.json.
type index struct {
	Seq     uint64           `json:"seq"`
	Experts map[string]entry `json:"experts"`
}

type entry struct {
	ID     string `json:"id"`
	SHA256 string `json:"sha256"`
	Size   int64  `json:"size"`
}

// ParseURL splits s3://BUCKET/PREFIX.
func ParseURL(s string) (bucket, prefix string, err error) {
	rest, ok := strings.CutPrefix(s, "s3://")
	if !ok {
		return "", "", fmt.Errorf("%w: library URL %q does not start with s3://", library.ErrInvalid, s)
	}
	bucket, prefix, _ = strings.Cut(rest, "/")
	if bucket == "" {
		return "", "", fmt.Errorf("%w: library URL %q names no bucket", library.ErrInvalid, s)
	}
	return bucket, strings.Trim(prefix, "/"), nil
}

// IsURL reports whether a --library value names a bucket.
func IsURL(s string) bool { return strings.HasPrefix(s, "s3://") }

// New returns a Store for cfg. It does not contact the bucket.
func New(cfg Config) (*Store, error) {
	bucket, prefix, err := ParseURL(cfg.URL)
	if err != nil {
		return nil, err
	}
	ep := cfg.Endpoint
	for _, k := range []string{"AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL"} {
		if ep == "" {
			ep = os.Getenv(k)
		}
	}
	if err := s3utils.CheckValidBucketName(bucket); err != nil {
		return nil, fmt.Errorf("%w: library URL %q: %w", library.ErrInvalid, cfg.URL, err)
	}
	secure := true
	switch {
	case ep == "":
		ep = "s3.amazonaws.com"
	case strings.Contains(ep, "://"):
		u, err := url.Parse(ep)
		if err != nil || u.Host == "" {
			return nil, fmt.Errorf("%w: S3 endpoint %q", library.ErrInvalid, ep)
		}
		secure, ep = u.Scheme == "https", u.Host
	}
	region := cfg.Region
	for _, k := range []string{"AWS_REGION", "AWS_DEFAULT_REGION"} {
		if region == "" {
			region = os.Getenv(k)
		}
	}
	if region == "" && ep != "s3.amazonaws.com" {
		region = "us-east-1"
	}
	home, _ := os.UserHomeDir()
	credFile := os.Getenv("AWS_SHARED_CREDENTIALS_FILE")
	if credFile == "" && home != "" {
		credFile = filepath.Join(home, ".aws", "credentials")
	}
	creds := credentials.NewChainCredentials([]credentials.Provider{
		&credentials.EnvAWS{},
		&credentials.FileAWSCredentials{Filename: credFile, Profile: os.Getenv("AWS_PROFILE")},
		&credentials.IAM{Client: &http.Client{Transport: http.DefaultTransport}},
	})
	lookup := minio.BucketLookupAuto
	if cfg.PathStyle {
		lookup = minio.BucketLookupPath
	}
	client, err := minio.New(ep, &minio.Options{Creds: creds, Secure: secure, Region: region, BucketLookup: lookup,
		MaxRetries: 2}) // the poll retries anyway; an outage must fail writes fast
	if err != nil {
		return nil, fmt.Errorf("%w: S3 client: %w", library.ErrInvalid, err)
	}
	s := &Store{client: client, bucket: bucket, prefix: prefix, log: cfg.Logger,
		interval: cfg.Interval, timeout: cfg.Timeout, orphanAge: cfg.OrphanAge, written: map[string]uint64{}, failed: map[string]string{}}
	if s.interval <= 0 {
		s.interval = DefaultInterval
	}
	if s.timeout <= 0 {
		s.timeout = 5 * time.Second
	}
	if s.orphanAge == 0 {
		s.orphanAge = DefaultOrphanAge
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	return s, nil
}

// String names the store as s3://BUCKET/PREFIX.
func (s *Store) String() string { return "s3://" + s.bucket + "/" + s.prefix }

func (s *Store) key(k string) string {
	if s.prefix == "" {
		return k
	}
	return s.prefix + "/" + k
}

func (s *Store) objectKey(id string) string { return s.key("experts/" + id + ".roe") }

// Status returns the sync's state.
func (s *Store) Status() Status {
	s.stMu.Lock()
	defer s.stMu.Unlock()
	return s.st
}

// OnStatus sets a function called after every poll with the new status
// (metrics); call it before Run.
func (s *Store) OnStatus(fn func(Status)) { s.onChanged = fn }

// unavailable wraps an error of the bucket as library.ErrUnavailable.
func unavailable(op string, err error) error {
	return fmt.Errorf("%w: %s: %w", library.ErrUnavailable, op, err)
}

func statusOf(err error) int { return minio.ToErrorResponse(err).StatusCode }

// readIndex fetches the index; ifNot is an ETag to skip (then changed is
// false on 304). A missing index is an empty one with etag "".
func (s *Store) readIndex(ctx context.Context, ifNot string) (idx index, etag string, changed bool, err error) {
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	opts := minio.GetObjectOptions{}
	if ifNot != "" {
		opts.SetMatchETagExcept(ifNot)
	}
	obj, err := s.client.GetObject(ctx, s.bucket, s.key("index.json"), opts)
	var b []byte
	if err == nil {
		defer obj.Close()
		b, err = io.ReadAll(obj)
	}
	if err != nil {
		switch code := statusOf(err); {
		case code == http.StatusNotModified:
			return index{}, ifNot, false, nil
		case code == http.StatusNotFound && minio.ToErrorResponse(err).Code == "NoSuchKey":
			return index{Experts: map[string]entry{}}, "", ifNot != "", nil
		}
		return index{}, "", false, unavailable("read index", err)
	}
	info, err := obj.Stat()
	if err != nil {
		return index{}, "", false, unavailable("read index", err)
	}
	if err := json.Unmarshal(b, &idx); err != nil {
		return index{}, "", false, fmt.Errorf("%w: %s: %w", library.ErrCorrupt, s.key("index.json"), err)
	}
	if idx.Experts == nil {
		idx.Experts = map[string]entry{}
	}
	return idx, strings.Trim(info.ETag, `"`), true, nil
}

// errConflict is a conditional PUT of the index that lost a race.
var errConflict = errors.New("index changed")

// writeIndex replaces the index if it still has etag ("" : if there is none).
func (s *Store) writeIndex(ctx context.Context, idx index, etag string) error {
	b, err := json.Marshal(idx)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	opts := minio.PutObjectOptions{ContentType: "application/json", DisableMultipart: true}
	if etag == "" {
		opts.SetMatchETagExcept("*")
	} else {
		opts.SetMatchETag(etag)
	}
	_, err = s.client.PutObject(ctx, s.bucket, s.key("index.json"), bytes.NewReader(b), int64(len(b)), opts)
	switch code := statusOf(err); {
	case err == nil:
		return nil
	case code == http.StatusPreconditionFailed, code == http.StatusConflict:
		return errConflict // 409: a conditional write raced another in flight
	}
	return unavailable("write index", err)
}

// update applies change to the index until a conditional PUT lands and
// returns the new index's seq. change returns done to stop without writing.
func (s *Store) update(ctx context.Context, change func(*index) (done bool, err error)) (uint64, error) {
	for try := 0; ; try++ {
		idx, etag, _, err := s.readIndex(ctx, "")
		if err != nil {
			return 0, err
		}
		done, err := change(&idx)
		if err != nil || done {
			return idx.Seq, err
		}
		idx.Seq++
		err = s.writeIndex(ctx, idx, etag)
		if !errors.Is(err, errConflict) {
			return idx.Seq, err
		}
		if try == 100 {
			return 0, unavailable("write index", fmt.Errorf("lost 100 races in a row"))
		}
		time.Sleep(time.Duration(mrand.IntN(20<<min(try, 5))) * time.Millisecond)
	}
}

// Put stores e in the bucket (library.Remote).
func (s *Store) Put(e *library.Expert, replace bool) error {
	b, err := encodeExpert(e)
	if err != nil {
		return err
	}
	sum := sha256.Sum256(b)
	ent := entry{ID: e.ID, SHA256: hex.EncodeToString(sum[:]), Size: int64(len(b))}
	ctx := context.Background()
	// A name already taken is refused before the upload, and again when the
	// index is written.
	if idx, _, _, err := s.readIndex(ctx, ""); err != nil {
		return err
	} else if _, ok := idx.Experts[e.Name]; ok != replace {
		return nameErr(e.Name, replace)
	}
	octx, cancel := context.WithTimeout(ctx, 30*s.timeout)
	_, err = s.client.PutObject(octx, s.bucket, s.objectKey(e.ID), bytes.NewReader(b), int64(len(b)),
		minio.PutObjectOptions{ContentType: "application/octet-stream"})
	cancel()
	if err != nil {
		return unavailable("upload "+e.Name, err)
	}
	var old string
	// Hold mu from the index write until written is set, so a sync of an
	// older index cannot apply in between.
	s.mu.Lock()
	defer s.mu.Unlock()
	seq, err := s.update(ctx, func(idx *index) (bool, error) {
		cur, ok := idx.Experts[e.Name]
		if ok && cur.ID == e.ID {
			return true, nil // an earlier try landed though its answer was lost
		}
		if ok != replace {
			return false, nameErr(e.Name, replace)
		}
		old = cur.ID
		idx.Experts[e.Name] = ent
		return false, nil
	})
	if err != nil {
		s.removeObject(e.ID)
		return err
	}
	s.written[e.Name] = seq
	if old != "" {
		go s.removeObject(old)
	}
	return nil
}

func nameErr(name string, replace bool) error {
	if replace {
		return fmt.Errorf("%w: %s", library.ErrNotFound, name)
	}
	return fmt.Errorf("%w: %s", library.ErrExists, name)
}

// Delete removes the expert name from the index (library.Remote).
func (s *Store) Delete(name string) error {
	var old string
	s.mu.Lock()
	defer s.mu.Unlock()
	seq, err := s.update(context.Background(), func(idx *index) (bool, error) {
		cur, ok := idx.Experts[name]
		if !ok {
			return false, fmt.Errorf("%w: %s", library.ErrNotFound, name)
		}
		old = cur.ID
		delete(idx.Experts, name)
		return false, nil
	})
	if err != nil {
		return err
	}
	s.written[name] = seq
	go s.removeObject(old)
	return nil
}

// removeObject deletes an object no index names (best effort: what is left
// is invisible).
func (s *Store) removeObject(id string) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*s.timeout)
	defer cancel()
	if err := s.client.RemoveObject(ctx, s.bucket, s.objectKey(id), minio.RemoveObjectOptions{}); err != nil {
		s.log.Warn("s3sync: object left in the bucket", "id", id, "err", err)
	}
}

// Collect deletes the expert objects that no index names and that are older
// than age: those of writes killed between uploading the object and updating
// the index. The index is read after the listing, so an object written and
// indexed meanwhile is kept; age protects writes still in flight. It returns
// how many objects it deleted.
func (s *Store) Collect(ctx context.Context, age time.Duration) (int, error) {
	type obj struct {
		id  string
		key string
	}
	var old []obj
	pre := s.key("experts/")
	lctx, cancel := context.WithTimeout(ctx, 30*s.timeout)
	defer cancel()
	for o := range s.client.ListObjects(lctx, s.bucket, minio.ListObjectsOptions{Prefix: pre, Recursive: true}) {
		if o.Err != nil {
			return 0, unavailable("list expert objects", o.Err)
		}
		id, ok := strings.CutSuffix(strings.TrimPrefix(o.Key, pre), ".roe")
		if ok && !strings.Contains(id, "/") && time.Since(o.LastModified) > age {
			old = append(old, obj{id, o.Key})
		}
	}
	if len(old) == 0 {
		return 0, nil
	}
	idx, _, _, err := s.readIndex(ctx, "")
	if err != nil {
		return 0, err
	}
	named := map[string]bool{}
	for _, e := range idx.Experts {
		named[e.ID] = true
	}
	n := 0
	for _, o := range old {
		if named[o.id] {
			continue
		}
		if err := s.client.RemoveObject(lctx, s.bucket, o.key, minio.RemoveObjectOptions{}); err != nil {
			return n, unavailable("delete orphaned object", err)
		}
		n++
	}
	return n, nil
}

// Run syncs lib from the bucket every interval until ctx is done. The first
// pass runs at once.
func (s *Store) Run(ctx context.Context, lib *library.Library) {
	t := time.NewTimer(0)
	defer t.Stop()
	failing := false // log changes of state, not every failed poll
	var collected time.Time
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		err := s.Sync(ctx, lib)
		switch {
		case ctx.Err() != nil:
			return
		case err != nil && !failing:
			s.log.Warn("s3sync: sync failed; serving from the cache", "library", s.String(), "err", err)
		case err == nil && failing:
			s.log.Info("s3sync: sync resumed", "library", s.String())
		}
		failing = err != nil
		if err == nil && s.orphanAge > 0 && time.Since(collected) > collectEvery {
			collected = time.Now()
			if n, err := s.Collect(ctx, s.orphanAge); err != nil {
				s.log.Warn("s3sync: collecting orphaned objects failed", "library", s.String(), "err", err)
			} else if n > 0 {
				s.log.Info("s3sync: deleted orphaned expert objects", "library", s.String(), "objects", n)
			}
		}
		t.Reset(s.interval)
	}
}

// Sync brings lib up to date with the bucket once.
func (s *Store) Sync(ctx context.Context, lib *library.Library) error {
	s.stMu.Lock()
	etag := s.etag
	s.stMu.Unlock()
	idx, newTag, changed, err := s.readIndex(ctx, etag)
	if err == nil && changed {
		var skipped int
		skipped, err = s.apply(ctx, lib, idx)
		s.stMu.Lock()
		if err == nil {
			s.etag = newTag
			s.st.Seq, s.st.Experts, s.st.Skipped = idx.Seq, len(idx.Experts), skipped
		}
		s.stMu.Unlock()
	}
	s.stMu.Lock()
	s.st.Reachable = err == nil || !errors.Is(err, library.ErrUnavailable)
	if err == nil {
		s.st.Ready, s.st.LastSync, s.st.LastError = true, time.Now(), ""
	} else {
		s.st.LastError = err.Error()
	}
	st, fn := s.st, s.onChanged
	s.stMu.Unlock()
	if fn != nil {
		fn(st)
	}
	return err
}

// apply makes lib match idx, except for names this replica wrote at a
// later seq. An expert this replica cannot store (another base model, a
// corrupt object) is skipped and logged once, and does not fail the sync.
func (s *Store) apply(ctx context.Context, lib *library.Library, idx index) (skipped int, err error) {
	ms, err := lib.List()
	if err != nil {
		return 0, err
	}
	have := make(map[string]string, len(ms))
	for _, m := range ms {
		have[m.Name] = m.ID
	}
	for name, ent := range idx.Experts {
		if have[name] == ent.ID {
			continue
		}
		e, err := s.download(ctx, name, ent)
		if err != nil && !skippable(err) {
			return skipped, err
		}
		if err == nil {
			s.mu.Lock()
			if s.written[name] <= idx.Seq {
				err = lib.Apply(e)
			}
			s.mu.Unlock()
		}
		if err != nil && !skippable(err) {
			return skipped, err
		}
		if err != nil {
			skipped++
			s.stMu.Lock()
			if s.failed[ent.ID] == "" {
				s.log.Warn("s3sync: expert not applied", "expert", name, "id", ent.ID, "err", err)
			}
			s.failed[ent.ID] = err.Error()
			s.stMu.Unlock()
		}
	}
	for name, id := range have {
		if _, ok := idx.Experts[name]; ok {
			continue
		}
		s.mu.Lock()
		if s.written[name] <= idx.Seq {
			err = lib.Drop(name, id)
		}
		s.mu.Unlock()
		if err != nil {
			return skipped, err
		}
	}
	return skipped, nil
}

// skippable reports errors that another try would repeat: an expert this
// replica cannot store as it is in the bucket.
func skippable(err error) bool {
	return errors.Is(err, library.ErrCorrupt) || errors.Is(err, library.ErrInvalid) || errors.Is(err, library.ErrFingerprint)
}

// download fetches and checks one expert object.
func (s *Store) download(ctx context.Context, name string, ent entry) (*library.Expert, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*s.timeout)
	defer cancel()
	key := s.objectKey(ent.ID)
	obj, err := s.client.GetObject(ctx, s.bucket, key, minio.GetObjectOptions{})
	var b []byte
	if err == nil {
		b, err = io.ReadAll(io.LimitReader(obj, ent.Size+1))
		obj.Close()
	}
	if err != nil {
		if statusOf(err) == http.StatusNotFound {
			return nil, fmt.Errorf("%w: %s: object %s missing", library.ErrCorrupt, name, key)
		}
		return nil, unavailable("download "+name, err)
	}
	if sum := sha256.Sum256(b); int64(len(b)) != ent.Size || hex.EncodeToString(sum[:]) != ent.SHA256 {
		return nil, fmt.Errorf("%w: %s: object %s does not match its index entry", library.ErrCorrupt, name, key)
	}
	e, err := decodeExpert(key, b)
	if err != nil {
		return nil, err
	}
	if e.Name != name || e.ID != ent.ID {
		return nil, fmt.Errorf("%w: object %s holds %s/%s, the index says %s/%s", library.ErrCorrupt, key, e.Name, e.ID, name, ent.ID)
	}
	return e, nil
}

package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"roe/experts"
	"roe/library"
	"roe/library/s3sync"
	"roe/model"
	"roe/retriever"
)

// sharedFlags configure a library kept in a bucket (--library s3://...).
type sharedFlags struct {
	pathStyle *bool
	interval  *time.Duration
	cache     *string
}

func addSharedFlags(fs *flag.FlagSet) *sharedFlags {
	return &sharedFlags{
		pathStyle: fs.Bool("s3-path-style", os.Getenv("ROE_S3_PATH_STYLE") == "true", "with --library s3://...: address the bucket in the URL path, as most S3-compatible servers need (also $ROE_S3_PATH_STYLE=true)"),
		interval:  fs.Duration("sync-interval", s3sync.DefaultInterval, "with --library s3://...: how often to poll the bucket for other replicas' writes"),
		cache:     fs.String("library-cache", "", "with --library s3://...: the local cache of the bucket's library (default $ROE_HOME/cache/BUCKET/PREFIX)"),
	}
}

// openShared opens the local cache of the bucket library url with the
// bucket as its Remote, and syncs it once (a failure is logged: the cache
// serves, /readyz says not ready). Run store.Run to keep it in sync.
func openShared(url string, f *sharedFlags, fingerprint string, log *slog.Logger) (*library.Library, *s3sync.Store, string, error) {
	bucket, prefix, err := s3sync.ParseURL(url)
	if err != nil {
		return nil, nil, "", usagef("--library: %v", err)
	}
	store, err := s3sync.New(s3sync.Config{URL: url, PathStyle: *f.pathStyle, Interval: *f.interval, Logger: log})
	if err != nil {
		return nil, nil, "", fmt.Errorf("--library: %w", err)
	}
	dir := *f.cache
	if dir == "" {
		dir = filepath.Join(filepath.Dir(defaultLibraryDir()), "cache", bucket, filepath.FromSlash(strings.ReplaceAll(prefix, "..", "_")))
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, nil, "", err
	}
	opts := library.DefaultOptions(dir).WithFingerprint(fingerprint).WithLogger(log)
	opts.Remote = store
	lib, err := library.Open(opts)
	if err != nil {
		return nil, nil, "", err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := store.Sync(ctx, lib); err != nil {
		log.Warn("first sync from the bucket failed; serving from the cache", "library", url, "err", err)
	}
	return lib, store, dir, nil
}

// importSharedStarter imports the starter experts into a bucket that has
// never held an expert; replicas starting together race per expert and the
// losers' experts arrive by sync.
func importSharedStarter(lib *library.Library, store *s3sync.Store, m *model.Model, emb retriever.Embedder, log *slog.Logger) {
	if st := store.Status(); !st.Ready || st.Seq > 0 {
		return
	}
	n, err := importStarter(lib, m, emb)
	switch {
	case errors.Is(err, library.ErrExists):
		log.Info("starter experts: another replica is importing them")
	case errors.Is(err, experts.ErrOtherBase):
		log.Warn("starter experts not imported", "reason", err.Error())
	case err != nil:
		log.Warn("starter experts not imported", "err", err)
	case n > 0:
		log.Info("imported the starter experts into the bucket", "experts", n)
	}
}

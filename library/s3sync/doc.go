/*
Package s3sync keeps an expert library in S3-compatible object storage (AWS
S3, MinIO, SeaweedFS, Ceph, R2, GCS's interoperability API) so that many roe
replicas serve one library. The bucket is the source of truth; each
replica's Badger library (package library) is a cache of it.

# Bucket layout

	PREFIX/index.json            {"seq": N, "experts": {name: {id, sha256, size}}}
	PREFIX/experts/<id>.roe      one expert version, immutable (object.go)

An expert object holds the manifest, adapter_config.json, the F32 adapter
tensors, the sampled instances and their embeddings; the index names each
object's SHA-256, checked on every download (library.ErrCorrupt).

# Writes

Store is a library.Remote: Add, Replace and Remove of a library opened with
it come here first. Put uploads the expert object under its fresh id, then
updates index.json with a conditional PUT (If-Match on the ETag it read, or
If-None-Match: * for the first index): two replicas that write at once both
read index N, one PUT wins, the other gets 412 Precondition Failed, rereads
and retries, so no add is ever lost, and of two adds of one name exactly one
wins (the other sees the name taken: library.ErrExists, 409 in the API).
Only then does the library apply the write locally: read-your-writes on the
replica written to. An unreachable bucket fails the write with
library.ErrUnavailable (503) and changes nothing. A process killed between
the object and the index leaves an object no index names (invisible; Run
deletes such objects once they are Config.OrphanAge old, see Collect); killed
after the index, the next sync applies the write.

# Sync

Run polls index.json every Config.Interval (default 2 s) with If-None-Match
on the last ETag (a 304 costs one round trip), downloads the objects of
names whose id differs from the cache's, applies them with library.Apply
and drops names the index no longer has (library.Drop). The library's change
feed carries them to the expert catalog as it carries local writes. A write
made on this replica at index seq N is never undone by a sync of an older
index (seq < N). Status says whether the first full sync is done (Ready)
and whether the bucket answered the last poll.

# Configuration

The endpoint, region and credentials come from the standard AWS settings:
AWS_ENDPOINT_URL_S3 or AWS_ENDPOINT_URL (default s3.amazonaws.com over
HTTPS), AWS_REGION or AWS_DEFAULT_REGION, AWS_ACCESS_KEY_ID,
AWS_SECRET_ACCESS_KEY and AWS_SESSION_TOKEN, else the shared credentials
file (AWS_SHARED_CREDENTIALS_FILE, AWS_PROFILE), else the instance or
web-identity role. Config.PathStyle addresses the bucket in the path
(http://host/bucket/key), as most S3-compatible servers need.
*/
package s3sync

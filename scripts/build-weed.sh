#!/usr/bin/env bash
# Builds SeaweedFS's weed (an S3-compatible server) from its Go module, for
# the multi-replica test (make test-cluster). Usage: build-weed.sh VERSION OUT.
# The module has replace directives, so `go install pkg@version` refuses it:
# build inside the downloaded module instead.
set -euo pipefail
version=$1 out=$2
dir=$(go mod download -json "github.com/seaweedfs/seaweedfs@$version" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
test -n "$dir" || { echo "build-weed: seaweedfs $version did not download" >&2; exit 1; }
mkdir -p "$(dirname "$out")"
cd "$dir"
start=$SECONDS
GOFLAGS="-mod=readonly -buildvcs=false" go build -o "$out.tmp" ./weed
mv "$out.tmp" "$out"
echo "build-weed: $out in $((SECONDS - start))s"

#!/usr/bin/env bash
# Builds the roe image and runs it as a user would (`run -p HOST:8080 IMAGE`,
# no arguments), then checks from outside the container that it serves:
# /healthz, /v1/models and a completion answer, it runs as the non-root user
# 65532 and keeps its library in the /data volume. `make container-test`.
#
# Engines: docker with a running daemon, else podman and buildah (Debian:
# apt-get install podman buildah runc). The image is the Dockerfile's when
# its base images can be pulled; when no registry is reachable it is built
# FROM scratch with the same runtime configuration (user, ENV, VOLUME,
# EXPOSE, ENTRYPOINT, CMD) around the static binary built here. The script
# says which it did. podman and buildah use a storage of their own under a
# temporary folder, removed at the end, so nothing is left behind.
set -euo pipefail
cd "$(dirname "$0")/.."
GO=${GO:-go}
VERSION=${VERSION:-$(git describe --tags --always --dirty 2>/dev/null || echo dev)}
IMAGE=localhost/roe:container-test
NAME=roe-container-test-$$
work=$(mktemp -d "${TMPDIR:-/tmp}/roe-container.XXXXXX")
log() { echo "container-test: $*"; }
command -v curl >/dev/null || { log "curl is needed"; exit 1; }

# --- engine ---
if command -v docker >/dev/null && docker info >/dev/null 2>&1; then
	engine=docker
	B=() # docker builds itself
	P=(docker)
elif command -v podman >/dev/null && command -v buildah >/dev/null; then
	engine=podman
	store=(--root "$work/storage" --runroot "$work/run" --storage-driver vfs)
	B=(buildah "${store[@]}")
	P=(podman "${store[@]}")
else
	log "no container engine: docker with a running daemon, or podman and buildah, are needed"
	exit 1
fi
run_opts=()
cleanup() {
	"${P[@]}" rm -f "$NAME" >/dev/null 2>&1 || true
	"${P[@]}" rmi -f "$IMAGE" >/dev/null 2>&1 || true
	if [ "$engine" = podman ]; then
		"${B[@]}" rm --all >/dev/null 2>&1 || true
		"${P[@]}" system reset -f >/dev/null 2>&1 || true
	fi
	rm -rf "$work" 2>/dev/null || true
}
trap cleanup EXIT

# --- image ---
base=docker.io/library/golang:1.26
how=""
if [ "$engine" = docker ]; then
	if timeout 120 docker pull -q "$base" >/dev/null 2>&1 &&
		docker build -q --build-arg ROE_VERSION="$VERSION" -t "$IMAGE" . >/dev/null; then
		how="the Dockerfile (docker build)"
	fi
elif timeout 120 "${B[@]}" pull -q "$base" >/dev/null 2>&1 &&
	"${B[@]}" bud --isolation chroot --build-arg ROE_VERSION="$VERSION" -t "$IMAGE" . >/dev/null; then
	how="the Dockerfile (buildah bud)"
fi
if [ -z "$how" ]; then
	log "no base image could be pulled ($base): building FROM scratch around the static binary"
	CGO_ENABLED=0 "$GO" build -trimpath -ldflags "-s -w -X main.version=$VERSION" -o "$work/rootfs/usr/local/bin/roe" ./cmd/roe
	mkdir -p "$work/rootfs/data" "$work/rootfs/tmp"
	chmod 1777 "$work/rootfs/tmp"
	# The Dockerfile's runtime stage, as configuration.
	cfg=(--user 65532:65532 --env ROE_ADDR=0.0.0.0:8080 --env ROE_HOME=/data --workingdir /data
		--volume /data --port 8080 --entrypoint '["/usr/local/bin/roe"]' --cmd serve)
	if [ "$engine" = docker ]; then
		# docker import of a root filesystem tarball, with the same configuration.
		tar -C "$work/rootfs" --owner=0 --group=0 -cf "$work/rootfs.tar" usr tmp
		tar -C "$work/rootfs" --owner=65532 --group=65532 -rf "$work/rootfs.tar" data
		docker import -q -c 'USER 65532:65532' -c 'ENV ROE_ADDR=0.0.0.0:8080 ROE_HOME=/data' -c 'WORKDIR /data' \
			-c 'VOLUME ["/data"]' -c 'EXPOSE 8080' -c 'ENTRYPOINT ["/usr/local/bin/roe"]' -c 'CMD ["serve"]' \
			"$work/rootfs.tar" "$IMAGE" >/dev/null
		how="FROM scratch (docker import of the static binary)"
	else
		c=$("${B[@]}" from scratch)
		"${B[@]}" copy --chown 0:0 "$c" "$work/rootfs/usr" /usr >/dev/null
		"${B[@]}" copy --chown 0:0 "$c" "$work/rootfs/tmp" /tmp >/dev/null
		"${B[@]}" copy --chown 65532:65532 "$c" "$work/rootfs/data" /data >/dev/null
		"${B[@]}" config "${cfg[@]}" --label org.opencontainers.image.version="$VERSION" "$c"
		"${B[@]}" commit -q "$c" "$IMAGE" >/dev/null
		"${B[@]}" rm "$c" >/dev/null
		how="FROM scratch (buildah, the static binary)"
	fi
fi
log "image built from $how with $engine"

# --- run ---
# podman's defaults may not start in a sandboxed machine (crun refusing
# hybrid cgroups, setrlimit not permitted): then runc and no rlimits.
if ! "${P[@]}" run --rm "$IMAGE" --version >"$work/version" 2>"$work/err"; then
	if [ "$engine" = podman ] && command -v runc >/dev/null; then
		log "podman's default runtime failed ($(tail -1 "$work/err")): retrying with runc and no rlimits"
		printf '[containers]\ndefault_ulimits = []\n' >"$work/containers.conf"
		export CONTAINERS_CONF="$work/containers.conf"
		P+=(--runtime "$(command -v runc)")
		run_opts=(--ulimit host)
		"${P[@]}" run --rm "${run_opts[@]}" "$IMAGE" --version >"$work/version"
	else
		cat "$work/err" >&2
		exit 1
	fi
fi
log "$(cat "$work/version")"
"${P[@]}" run -d --name "$NAME" "${run_opts[@]}" -p 127.0.0.1::8080 "$IMAGE" >/dev/null
port=$("${P[@]}" port "$NAME" 8080 | head -1 | sed 's/.*://')
url=http://127.0.0.1:$port
fail() {
	log "FAIL: $*"
	"${P[@]}" logs "$NAME" 2>&1 | tail -20 >&2
	exit 1
}
# The first start imports the starter experts into /data before serving.
for i in $(seq 1 240); do
	curl -sf -m 2 "$url/healthz" >"$work/health" 2>/dev/null && break
	[ "$("${P[@]}" inspect -f '{{.State.Running}}' "$NAME")" = true ] || fail "the container stopped"
	[ "$i" = 240 ] && fail "no answer on $url/healthz after 240 s"
	sleep 1
done
grep -q '"ok"' "$work/health" || fail "/healthz answered $(cat "$work/health")"
log "/healthz on $url (container port 8080): $(cat "$work/health")"
curl -sf -m 10 "$url/v1/models" >"$work/models" || fail "/v1/models"
grep -q '"roe-base"' "$work/models" || fail "/v1/models lacks the base model: $(head -c 300 "$work/models")"
log "/v1/models: $(grep -o '"id"' "$work/models" | wc -l) models"
curl -sf -m 60 "$url/v1/completions" -H 'Content-Type: application/json' \
	-d '{"model":"roe-base","prompt":"Once upon a time","max_tokens":8,"temperature":0}' >"$work/completion" ||
	fail "POST /v1/completions"
grep -q '"text_completion"' "$work/completion" || fail "completion: $(cat "$work/completion")"
log "completion: $(grep -o '"text":"[^"]*"' "$work/completion" | head -1)"
user=$("${P[@]}" inspect -f '{{.Config.User}}' "$NAME")
[ "$user" = 65532:65532 ] || fail "runs as user '$user', not 65532:65532"
mounts=$("${P[@]}" inspect -f '{{range .Mounts}}{{.Destination}} {{end}}' "$NAME")
case " $mounts " in *" /data "*) ;; *) fail "no volume on /data (mounts: $mounts)" ;; esac
log "runs as $user, library in the /data volume"
log "PASS ($engine, $how)"

# roe in a container: `docker run -p 8080:8080 IMAGE` (or podman) serves the
# OpenAI-compatible API on 0.0.0.0:8080 with the embedded model, keeping its
# expert library in the /data volume. Build: `make container`, or
#   docker build --build-arg ROE_VERSION=$(git describe --always --dirty) -t roe .
# Base images are named in full (podman and buildah refuse short names).
FROM docker.io/library/golang:1.26 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
# .git is not copied (.dockerignore): the version comes from the build argument.
ARG ROE_VERSION=""
RUN CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X main.version=${ROE_VERSION}" -o /out/roe ./cmd/roe \
	&& /out/roe --version \
	&& mkdir -p /out/data

# A minimal runtime: the static binary, CA certificates, a non-root user.
FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/roe /usr/local/bin/roe
COPY --from=build --chown=65532:65532 /out/data /data
# ROE_ADDR is serve's default --addr; ROE_HOME holds the library (/data/library).
# --adapter-root for POST /v1/load_lora_adapter: mount a folder and pass it,
# e.g. `-v ./adapters:/adapters:ro IMAGE serve --adapter-root /adapters`.
ENV ROE_ADDR=0.0.0.0:8080 ROE_HOME=/data
WORKDIR /data
VOLUME ["/data"]
EXPOSE 8080
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/roe"]
CMD ["serve"]

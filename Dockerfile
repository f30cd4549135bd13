# Build a static roe binary, then run it as a non-root user on a minimal image.
FROM golang:1.26 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o /out/roe ./cmd/roe

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/roe /usr/local/bin/roe
USER nonroot:nonroot
ENTRYPOINT ["/usr/local/bin/roe"]
CMD ["generate", "--prompt", "Once upon a time", "--max-tokens", "200"]

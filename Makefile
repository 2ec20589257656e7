# Foresight: the two commands a newcomer needs are `make run` and `make test`.

GO          ?= go
STATICCHECK ?= honnef.co/go/tools/cmd/staticcheck@v0.8.2
BIN         := bin/foresight
# The full suite: unit, real-Prometheus integration and process-level tests.
TEST_TIMEOUT ?= 30m
# Container image: DOCKER=podman works too (both take the same build flags).
DOCKER      ?= docker
IMAGE       ?= ghcr.io/foresightscale/foresight:dev

# Fuzzing: `make fuzz` runs every fuzz target for FUZZTIME; `make test` runs
# each for FUZZ_SMOKE_TIME, so every build fuzzes every target briefly.
FUZZTIME        ?= 10m
FUZZ_SMOKE_TIME ?= 3s

.PHONY: run build test unit lint fmt bench fuzz fuzz-smoke models dashboards prometheus chromium helm prometheus-adapter kube-binaries image clean screenshots

## run: the embedded demo (synthetic workload, built-in model; no cluster or Prometheus needed)
run: build
	./$(BIN) serve

## build: build bin/foresight
build:
	$(GO) build -o $(BIN) ./cmd/foresight

## test: the whole test suite, with the real Prometheus, Kubernetes control plane and browser it needs
## (installed or built when absent; the first control-plane build takes about 30 minutes)
test: prometheus chromium helm kube-binaries lint fuzz-smoke
	FORESIGHT_REQUIRE_PROMETHEUS=1 FORESIGHT_REQUIRE_KUBE=1 FORESIGHT_REQUIRE_CHROMIUM=1 FORESIGHT_REQUIRE_HELM=1 $(GO) test -count=1 -timeout $(TEST_TIMEOUT) ./...

## unit: the tests that need nothing installed (the Prometheus and control-plane ones skip)
unit:
	$(GO) test -short ./...

## lint: gofmt, go vet and staticcheck
lint:
	@unformatted="$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go'))"; \
	if [ -n "$$unformatted" ]; then echo "gofmt needed on:"; echo "$$unformatted"; exit 1; fi
	$(GO) vet ./...
	$(GO) run $(STATICCHECK) ./...

fmt:
	gofmt -w $$(git ls-files '*.go')

## fuzz: run every fuzz target (each `func Fuzz...` in a *_test.go) for FUZZTIME (default 10m) each; FUZZTIME=1h make fuzz
fuzz:
	FUZZTIME=$(FUZZTIME) GO=$(GO) hack/fuzz.sh

## fuzz-smoke: every fuzz target for FUZZ_SMOKE_TIME (3s) each; part of `make test`
fuzz-smoke:
	FUZZTIME=$(FUZZ_SMOKE_TIME) GO=$(GO) hack/fuzz.sh

## bench: inference at 10/50/200 services, a full cycle, one round of 5 apps x 50 services, an external metric GET, an hour of simulation per policy, training at 10/50/200 services (one run each, in process and as its own process with its peak memory), serve's memory, cycle p99 while a training process runs (as serve's nice-19 child too), serve's and its child's memory while serve retrains, serve's memory and API throughput against prometheus-adapter's at 10 and 500 services
bench: prometheus kube-binaries prometheus-adapter
	$(GO) test -run '^$$' -bench . -skip '^BenchmarkTrain$$' -benchmem -count 1 ./forecaster/... ./adapter/... ./models/...
	$(GO) test -run '^$$' -bench '^BenchmarkTrain$$' -benchtime 1x -count 1 ./models/training
	$(GO) test -run '^$$' -bench ServeMemory -benchtime 500x -count 1 ./cmd/foresight
	$(GO) test -run '^$$' -bench TrainProcess -benchtime 1x -count 1 ./cmd/foresight
	$(GO) test -run '^$$' -bench CycleWhileTraining -benchtime 1000x -count 1 ./cmd/foresight
	$(GO) test -run '^$$' -bench ServeWhileRetraining -benchtime 1x -count 1 ./cmd/foresight
	$(GO) test -run '^$$' -bench ResolveDirStore -count 1 ./cmd/foresight
	FORESIGHT_REQUIRE_PEER=1 FORESIGHT_REQUIRE_KUBE=1 $(GO) test -run '^$$' -bench Footprint -benchtime 1x -count 1 -timeout 30m ./cmd/foresight

## models: retrain the shipped demo model on the synthetic workload (byte for byte reproducible)
models:
	$(GO) run ./cmd/foresight train --synthetic --out models/demo

## dashboards: regenerate the Grafana dashboards (dashboards/*.json) and their ConfigMap component from package dashboards
dashboards:
	$(GO) run ./dashboards/gen

## prometheus: make sure prometheus and promtool are installed (Debian package)
prometheus:
	hack/prometheus.sh ensure

## chromium: make sure a headless Chromium is installed (Debian package), for the status page's browser test
chromium:
	hack/chromium.sh ensure

## helm: build helm v4 into ~/.cache/foresight/tools, for the chart's tests (about 2 minutes once)
helm:
	hack/helm.sh

## screenshots: retake docs/images/status-page.png from the demo in headless Chromium
screenshots: chromium
	FORESIGHT_SCREENSHOTS=$(CURDIR)/docs/images FORESIGHT_REQUIRE_CHROMIUM=1 $(GO) test -count=1 -run TestStatusPageInChromium ./cmd/foresight

## prometheus-adapter: build prometheus-adapter v0.12.0 into ~/.cache/foresight/tools, the peer `make bench` compares with (about 2 minutes once)
prometheus-adapter:
	hack/prometheus-adapter.sh

## kube-binaries: build etcd, kube-apiserver, kube-controller-manager, kubectl into ~/.cache/foresight/kube
kube-binaries:
	hack/kube-binaries.sh

## image: build the container image $(IMAGE) from the Dockerfile (needs Docker with BuildKit, or podman)
image:
	$(DOCKER) build -t $(IMAGE) .

clean:
	rm -rf bin

#!/usr/bin/env bash
# Builds prometheus-adapter (the peer `make bench` compares serve's memory
# and API throughput with) from the Go module proxy into the tool cache,
# next to helm and the kube binaries, outside the repository.
#
#   hack/prometheus-adapter.sh          build it when missing, print its path
#   hack/prometheus-adapter.sh --print  only print its path
#
# Idempotent; a cold build takes about 2 minutes on 2 cores. Built as
# releaseBinary builds foresight (static, -trimpath, -s -w), so the two
# binaries compare like for like.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

ADAPTER_VERSION=${PROMETHEUS_ADAPTER_VERSION:-v0.12.0}
# `go install pkg@version` asks the proxy for the module's version list
# (for deprecations), which the proxy refuses for this module; a throw-away
# module that requires the exact version builds it with the versions its
# go.mod names.
build() {
	cat >go.mod <<MOD
module foresight.local/prometheus-adapter-build

go 1.22

require sigs.k8s.io/prometheus-adapter $ADAPTER_VERSION
MOD
	GOFLAGS=-mod=mod CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o "$1" sigs.k8s.io/prometheus-adapter/cmd/adapter
}

cached_tool "$TOOLS_CACHE/prometheus-adapter-$ADAPTER_VERSION/adapter" "prometheus-adapter $ADAPTER_VERSION" build "$@"

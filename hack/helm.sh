#!/usr/bin/env bash
# Builds helm (v4, from the Go module proxy) into the tool cache for the
# chart's tests (charts/), next to the kube binaries and outside the
# repository.
#
#   hack/helm.sh          build it when missing, print its path
#   hack/helm.sh --print  only print its path
#
# Idempotent; a cold build takes about 2 minutes on 2 cores.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

HELM_VERSION=${HELM_VERSION:-v4.3.2}
# Outside the repository's module, so helm's dependencies stay out of
# go.mod.
build() {
	GOFLAGS=-mod=mod GOBIN="$PWD/bin" go install -trimpath -ldflags "-s -w" "helm.sh/helm/v4/cmd/helm@$HELM_VERSION"
	mv bin/helm "$1"
}

cached_tool "$TOOLS_CACHE/helm-$HELM_VERSION/helm" "helm $HELM_VERSION" build "$@"

#!/usr/bin/env bash
# Builds the real Kubernetes control plane for the end-to-end tests from the Go
# module proxy (no Docker here, so no kind/k3d): etcd, kube-apiserver,
# kube-controller-manager and kubectl, into a cache keyed by version, outside
# the repository.
#
#   hack/kube-binaries.sh          build what is missing, print the bin directory
#   hack/kube-binaries.sh --print  only print the bin directory
#
# Idempotent: a binary already in the cache is not rebuilt. A cold build takes
# about 30 minutes on 2 cores (kube-apiserver alone ~22 min, 2.4 GB peak), so
# the binaries are built one at a time.
set -euo pipefail

K8S_VERSION=${K8S_VERSION:-v1.37.2}
ETCD_VERSION=${ETCD_VERSION:-v3.6.16}
STAGING_VERSION="v0${K8S_VERSION#v1}" # k8s.io/* staging modules: v1.37.2 -> v0.37.2
CACHE=${FORESIGHT_KUBE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/foresight/kube}
BIN="$CACHE/k8s-$K8S_VERSION-etcd-$ETCD_VERSION/bin"

if [ "${1:-}" = "--print" ]; then
	echo "$BIN"
	exit 0
fi
mkdir -p "$BIN"
log() { echo "kube-binaries: $*" >&2; }

build_etcd() {
	[ -x "$BIN/etcd" ] && return
	local work
	work=$(mktemp -d)
	trap 'rm -rf "$work"' RETURN
	log "building etcd $ETCD_VERSION (about 3.5 min)"
	(
		cd "$work"
		go mod init foresight.local/etcdbuild >/dev/null 2>&1
		cat >tools.go <<GO
//go:build tools

package tools

import _ "go.etcd.io/etcd/server/v3"
GO
		go get "go.etcd.io/etcd/server/v3@$ETCD_VERSION" >get.log 2>&1 || { cat get.log >&2; exit 1; }
		go build -trimpath -ldflags "-s -w" -o "$BIN/etcd.tmp" go.etcd.io/etcd/server/v3
	)
	mv "$BIN/etcd.tmp" "$BIN/etcd"
}

build_kube() {
	local missing=()
	for b in kube-apiserver kube-controller-manager kubectl; do
		[ -x "$BIN/$b" ] || missing+=("$b")
	done
	[ ${#missing[@]} -eq 0 ] && return
	local work
	work=$(mktemp -d)
	trap 'rm -rf "$work"' RETURN
	log "preparing a module for k8s.io/kubernetes $K8S_VERSION"
	(
		cd "$work"
		go mod init foresight.local/kubebuild >/dev/null 2>&1
		go mod download -json "k8s.io/kubernetes@$K8S_VERSION" >download.json
		local kdir
		kdir=$(sed -n 's/^\t"Dir": "\(.*\)",$/\1/p' download.json)
		# k8s.io/kubernetes replaces its staging modules with local paths; point
		# every one of them at its published version instead.
		{
			echo "require k8s.io/kubernetes $K8S_VERSION"
			sed -n 's#^[[:space:]]*\(k8s.io/[a-z0-9.-]*\) => ./staging/.*#replace \1 => \1 '"$STAGING_VERSION"'#p' "$kdir/go.mod"
		} >>go.mod
		cat >tools.go <<GO
//go:build tools

package tools

import (
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kube-controller-manager"
	_ "k8s.io/kubernetes/cmd/kubectl"
)
GO
		go mod tidy >/dev/null 2>&1 || go mod tidy
		local ldflags="-s -w -X k8s.io/component-base/version.gitVersion=$K8S_VERSION -X k8s.io/client-go/pkg/version.gitVersion=$K8S_VERSION"
		for b in "${missing[@]}"; do
			log "building $b $K8S_VERSION$([ "$b" = kube-apiserver ] && echo ' (about 22 min cold)')"
			go build -trimpath -ldflags "$ldflags" -o "$BIN/$b.tmp" "k8s.io/kubernetes/cmd/$b"
			mv "$BIN/$b.tmp" "$BIN/$b"
		done
	)
}

build_etcd
build_kube
for b in etcd kube-apiserver kube-controller-manager; do
	log "$b: $("$BIN/$b" --version 2>/dev/null | head -n1)"
done
log "kubectl: $("$BIN/kubectl" version --client 2>/dev/null | head -n1)"
echo "$BIN"

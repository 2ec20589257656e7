#!/bin/sh
# Regenerates models/onnxpb/onnx.pb.go from models/onnxpb/onnx.proto.
# Needs protoc (Debian: protobuf-compiler) and protoc-gen-go at the version of
# google.golang.org/protobuf in go.mod; the generated file is committed so
# builds and CI need neither.
set -eu

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

version=$(go list -m -f '{{.Version}}' google.golang.org/protobuf)
gobin=$(go env GOPATH)/bin
if ! "$gobin/protoc-gen-go" --version 2>/dev/null | grep -q " $version\$"; then
	echo "installing protoc-gen-go $version" >&2
	go install "google.golang.org/protobuf/cmd/protoc-gen-go@$version"
fi

protoc \
	--plugin=protoc-gen-go="$gobin/protoc-gen-go" \
	--proto_path=models/onnxpb \
	--go_out=models/onnxpb \
	--go_opt=paths=source_relative \
	models/onnxpb/onnx.proto
gofmt -l models/onnxpb

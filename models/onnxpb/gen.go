// Package onnxpb holds Go types for ONNX model files, generated from a reduced
// onnx.proto under the protobuf package foresight.onnx so they can be linked
// next to onnx-go (which registers its own onnx.* types) without a clash.
package onnxpb

//go:generate sh ../../hack/gen-onnxpb.sh

package model

import (
	"strings"
	"testing"
)

// onnx-go panics on some graphs (a 1-D operand broadcast over a square
// matrix, for one); the engine turns that into an error.
func TestEngineTurnsPanicsIntoErrors(t *testing.T) {
	c := opCase{name: "square broadcast", op: "Add", operands: []operandSpec{in(5, 5), w(5)},
		ref: func(in []nd) nd { return bcast(in[0], in[1], add) }}
	onnxBytes, inShape := buildCase(c, Shape{5, 5})
	_, err := newEngine(onnxBytes, "x", inShape, []string{"y"}, []int{25})
	if err == nil || !strings.Contains(err.Error(), "panicked") {
		t.Fatalf("newEngine: got %v, want a recovered panic", err)
	}
}

package model

import (
	"os"
	"runtime"
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

// gorgonia links go4.org/unsafe/assume-no-moving-gc, whose old versions panic
// at start-up under Go releases they do not know ("hasn't been updated ...").
// This test binary started, so the check passed; make sure it passed because
// go.mod pins the fixed version, not because the escape-hatch variable is set.
func TestStartsWithoutTheMovingGCOverride(t *testing.T) {
	if v, set := os.LookupEnv("ASSUME_NO_MOVING_GC_UNSAFE_RISK_IT_WITH"); set {
		t.Fatalf("ASSUME_NO_MOVING_GC_UNSAFE_RISK_IT_WITH=%q is set; unset it to check the binary starts under %s without it", v, runtime.Version())
	}
}

package onnxbuild_test

import (
	"bytes"
	"encoding/json"
	"math"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/foresightscale/foresight/forecaster/model"
	"github.com/foresightscale/foresight/forecaster/source"
	"github.com/foresightscale/foresight/models/onnxbuild"
	"github.com/foresightscale/foresight/models/onnxpb"
	"google.golang.org/protobuf/proto"
)

func ones(n int) []float32 {
	out := make([]float32, n)
	for i := range out {
		out[i] = 1
	}
	return out
}

func TestBuilderRefuses(t *testing.T) {
	tests := []struct {
		name  string
		build func(b *onnxbuild.Builder)
		want  string
	}{
		{"Slice", func(b *onnxbuild.Builder) {
			b.Op("Slice", nil, b.Input("x", []int{4, 3}))
		}, "node 0 (Slice): op outside the verified set"},
		{"1-D bias over a square matrix", func(b *onnxbuild.Builder) {
			b.Add(b.Input("x", []int{5, 5}), b.Initializer("b", []int{5}, ones(5)))
		}, "node 0 (Add): shapes [5 5] and [5]: gorgonnx cannot broadcast a 1-D operand over a square matrix"},
		{"3-D broadcast", func(b *onnxbuild.Builder) {
			b.Sub(b.Input("x", []int{2, 3, 4}), b.Initializer("b", []int{2, 1, 4}, ones(8)))
		}, "broadcast not verified"},
		{"3-D MatMul", func(b *onnxbuild.Builder) {
			b.MatMul(b.Input("x", []int{2, 3, 4}), b.Initializer("w", []int{4, 2}, ones(8)))
		}, "node 0 (MatMul): input 0 has rank 3"},
		{"MatMul shapes", func(b *onnxbuild.Builder) {
			b.MatMul(b.Input("x", []int{2, 3}), b.Initializer("w", []int{2, 3}, ones(6)))
		}, "inner dimensions differ"},
		{"Gemm with a full C", func(b *onnxbuild.Builder) {
			b.Gemm(b.Input("x", []int{2, 3}), b.Initializer("w", []int{3, 2}, ones(6)), b.Initializer("c", []int{2, 2}, ones(4)))
		}, "node 0 (Gemm): input C [2 2]"},
		{"Softmax axis 0", func(b *onnxbuild.Builder) {
			b.Softmax(b.Input("x", []int{2, 3}), 0)
		}, "node 0 (Softmax): axis 0: only axis 1 or -1"},
		{"Concat axis -1", func(b *onnxbuild.Builder) {
			x := b.Input("x", []int{2, 3})
			b.Concat(-1, x, b.Relu(x))
		}, "negative axes fail"},
		{"Transpose perm", func(b *onnxbuild.Builder) {
			b.Transpose(b.Input("x", []int{2, 3}), 0, 0)
		}, "not a permutation"},
		{"Reshape count", func(b *onnxbuild.Builder) {
			b.Reshape(b.Input("x", []int{2, 3}), 4, 2)
		}, "element counts differ"},
		{"Reshape two -1", func(b *onnxbuild.Builder) {
			b.Reshape(b.Input("x", []int{2, 3}), -1, -1)
		}, "more than one -1"},
		{"unknown attribute", func(b *onnxbuild.Builder) {
			b.Op("Relu", map[string]any{"alpha": float32(0.1)}, b.Input("x", []int{2}))
		}, `attribute "alpha" is not verified for Relu`},
		{"duplicate name", func(b *onnxbuild.Builder) {
			b.Input("x", []int{2})
			b.Initializer("x", []int{2}, ones(2))
		}, `initializer name "x" is already used`},
		{"output name taken", func(b *onnxbuild.Builder) {
			x := b.Input("x", []int{2})
			b.Output(b.Relu(x), "x")
		}, `output name "x" is already used`},
		{"empty name", func(b *onnxbuild.Builder) { b.Input("", []int{2}) }, "input name must not be empty"},
		{"scalar input", func(b *onnxbuild.Builder) { b.Input("x", nil) }, "rank 1 or more"},
		{"zero dimension", func(b *onnxbuild.Builder) { b.Input("x", []int{0, 2}) }, "at least 1"},
		{"rank 5", func(b *onnxbuild.Builder) { b.Initializer("w", []int{1, 1, 1, 1, 2}, ones(2)) }, "rank 5 exceeds 4"},
		{"data length", func(b *onnxbuild.Builder) { b.Initializer("w", []int{2, 3}, ones(5)) }, "needs 6 values, got 5"},
		{"NaN weight", func(b *onnxbuild.Builder) {
			b.Initializer("w", []int{2}, []float32{1, float32(math.NaN())})
		}, `initializer "w": value 1 is NaN`},
		{"value of another graph", func(b *onnxbuild.Builder) {
			other := onnxbuild.New("other").Input("y", []int{2})
			b.Relu(other)
		}, "input 0 is not a value of this graph"},
		{"zero value", func(b *onnxbuild.Builder) { b.Output(onnxbuild.Value{}, "y") }, "not a value of this graph"},
		{"no output", func(b *onnxbuild.Builder) { b.Relu(b.Input("x", []int{2})) }, "needs at least one input and one output"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := onnxbuild.New("refused")
			tt.build(b)
			out, err := b.Marshal()
			if err == nil {
				t.Fatalf("Marshal wrote %d bytes, want an error containing %q", len(out), tt.want)
			}
			if !strings.Contains(err.Error(), tt.want) || !strings.HasPrefix(err.Error(), "onnxbuild refused: ") {
				t.Fatalf("Marshal error %q, want it to contain %q", err, tt.want)
			}
		})
	}
}

func TestBuilderKeepsTheFirstError(t *testing.T) {
	b := onnxbuild.New("g")
	x := b.Input("x", []int{2, 3})
	bad := b.MatMul(x, x) // [2,3]·[2,3]
	first := b.Err()
	if first == nil || bad.Name() != "" {
		t.Fatalf("MatMul of mismatched shapes: value %q, error %v", bad.Name(), first)
	}
	b.Output(b.Tanh(bad), "y")
	b.Softmax(x, 0)
	if b.Err() != first {
		t.Fatalf("the first error was replaced: %v", b.Err())
	}
}

func TestMarshalWritesONNX(t *testing.T) {
	build := func() []byte {
		b := onnxbuild.New("tiny")
		x := b.Input("x", []int{3, 2})
		h := b.Tanh(b.MatMul(b.Initializer("w", []int{2, 3}, []float32{1, 2, 3, 4, 5, 6}), x))
		b.Output(b.Mul(h, h), "y")
		b.Output(b.Reshape(h, -1), "flat")
		out, err := b.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	raw := build()
	if !bytes.Equal(raw, build()) {
		t.Error("two builds of one graph wrote different bytes")
	}
	var mp onnxpb.ModelProto
	if err := proto.Unmarshal(raw, &mp); err != nil {
		t.Fatal(err)
	}
	if mp.GetIrVersion() != 7 || mp.GetProducerName() != "foresight" || len(mp.GetOpsetImport()) != 1 ||
		mp.GetOpsetImport()[0].GetVersion() != 11 || mp.GetOpsetImport()[0].GetDomain() != "" {
		t.Errorf("model header: ir %d producer %q opsets %v", mp.GetIrVersion(), mp.GetProducerName(), mp.GetOpsetImport())
	}
	g := mp.GetGraph()
	if g.GetName() != "tiny" || len(g.GetInput()) != 1 || g.GetInput()[0].GetName() != "x" {
		t.Fatalf("graph %q inputs %v", g.GetName(), g.GetInput())
	}
	var outs []string
	for _, o := range g.GetOutput() {
		outs = append(outs, o.GetName())
	}
	if !slices.Equal(outs, []string{"y", "flat"}) {
		t.Errorf("outputs %v", outs)
	}
	var ops []string
	for _, n := range g.GetNode() {
		ops = append(ops, n.GetOpType())
		for _, a := range n.GetAttribute() {
			if a.Type == nil {
				t.Errorf("node %s attribute %s has no type (onnx-go dispatches on it)", n.GetName(), a.GetName())
			}
		}
		seen := map[string]bool{}
		for _, in := range n.GetInput() {
			if seen[in] {
				t.Errorf("node %s reads %q twice", n.GetName(), in)
			}
			seen[in] = true
		}
	}
	// Mul(h, h) reads h's twin through an Identity, and its first operand
	// (read by that Identity too) through a copy, since Mul computes in place;
	// every output is an Identity.
	want := []string{"MatMul", "Tanh", "Identity", "MatMul", "Mul", "Identity", "Reshape", "Identity"}
	if !slices.Equal(ops, want) {
		t.Errorf("ops %v, want %v", ops, want)
	}
	// Reshape's target is written resolved: gorgonnx mis-resolves -1.
	for _, init := range g.GetInitializer() {
		if init.GetDataType() == int32(onnxpb.TensorProto_INT64) && !bytes.Equal(init.GetRawData(), []byte{4, 0, 0, 0, 0, 0, 0, 0}) {
			t.Errorf("Reshape target %v, want [4]", init.GetRawData())
		}
	}
}

// mat is a plain-Go row-major matrix for reference forward passes.
type mat struct {
	r, c int
	d    []float64
}

func newMat(r, c int, f []float32) mat {
	m := mat{r: r, c: c, d: make([]float64, len(f))}
	for i, v := range f {
		m.d[i] = float64(v)
	}
	return m
}

func (a mat) at(i, j int) float64 { return a.d[i*a.c+j] }

func (a mat) dot(b mat) mat {
	out := mat{r: a.r, c: b.c, d: make([]float64, a.r*b.c)}
	for i := range a.r {
		for j := range b.c {
			for k := range a.c {
				out.d[i*b.c+j] += a.at(i, k) * b.at(k, j)
			}
		}
	}
	return out
}

func (a mat) t() mat {
	out := mat{r: a.c, c: a.r, d: make([]float64, len(a.d))}
	for i := range a.r {
		for j := range a.c {
			out.d[j*a.r+i] = a.at(i, j)
		}
	}
	return out
}

// zip combines a with b element-wise; b may be [r,c], [1,c] or [r,1].
func (a mat) zip(b mat, f func(x, y float64) float64) mat {
	out := mat{r: a.r, c: a.c, d: make([]float64, len(a.d))}
	for i := range a.r {
		for j := range a.c {
			out.d[i*a.c+j] = f(a.at(i, j), b.at(min(i, b.r-1), min(j, b.c-1)))
		}
	}
	return out
}

func (a mat) apply(f func(float64) float64) mat {
	out := mat{r: a.r, c: a.c, d: make([]float64, len(a.d))}
	for i, v := range a.d {
		out.d[i] = f(v)
	}
	return out
}

func (a mat) softmaxRows() mat {
	out := mat{r: a.r, c: a.c, d: make([]float64, len(a.d))}
	for i := range a.r {
		row := a.d[i*a.c : (i+1)*a.c]
		mx, sum := slices.Max(row), 0.0
		for j, v := range row {
			out.d[i*a.c+j] = math.Exp(v - mx)
			sum += out.d[i*a.c+j]
		}
		for j := range row {
			out.d[i*a.c+j] /= sum
		}
	}
	return out
}

func weights(n int, seed float64) []float32 {
	w := make([]float32, n)
	for i := range w {
		w[i] = float32(0.5 * math.Sin(seed+0.9*float64(i)))
	}
	return w
}

// TestBuiltModelComputesTheReference builds a graph that uses every typed
// builder method, loads it through the runtime's checks and compares it with
// a plain-Go forward pass, golden values included.
func TestBuiltModelComputesTheReference(t *testing.T) {
	const (
		window, horizon, services = 4, 2, 3
		ft                        = 2 * window // features requests and cpu
	)
	var (
		w1, w2, w3 = weights(horizon*ft, 1), weights(horizon*ft, 2), weights(ft*horizon, 3)
		w4         = weights(horizon*2*horizon, 4)
		gemmBias   = weights(services, 5)
		rowBias    = weights(services, 6)
		colBias    = weights(horizon, 7)
	)

	b := onnxbuild.New("everything")
	x := b.Input("x", []int{ft, services})
	gate := b.Mul(
		b.Tanh(b.MatMul(b.Initializer("w1", []int{horizon, ft}, w1), x)),
		b.Sigmoid(b.MatMul(b.Initializer("w2", []int{horizon, ft}, w2), b.Mul(x, x))),
	)
	attention := b.Softmax(gate, 1)
	u := b.MatMul(b.Transpose(x, 1, 0), b.Initializer("w3", []int{ft, horizon}, w3))   // [N,H]
	v := b.Reshape(b.Reshape(b.Transpose(u, 1, 0), 1, horizon*services), -1, services) // [H,N]
	mixed := b.Gemm(b.Initializer("w4", []int{horizon, 2 * horizon}, w4), b.Concat(0, attention, v), b.Initializer("gemm_bias", []int{services}, gemmBias))
	requests := b.Add(mixed, b.Initializer("row_bias", []int{services}, rowBias))
	one := b.Initializer("one", []int{1}, []float32{1})
	cpu := b.Add(
		b.Div(b.Softplus(requests), b.Add(b.Exp(b.Neg(b.Abs(requests))), one)),
		b.Relu(b.Sub(requests, b.Initializer("col_bias", []int{horizon, 1}, colBias))),
	)
	cpu = b.Identity(b.Sqrt(b.Exp(b.Log(b.Add(cpu, one)))))
	b.Output(requests, "requests")
	b.Output(cpu, "cpu")
	onnxBytes, err := b.Marshal()
	if err != nil {
		t.Fatal(err)
	}

	forward := func(input []float64) map[string][]float64 {
		xf := make([]float32, len(input))
		for i, v := range input {
			xf[i] = float32(v)
		}
		x := newMat(ft, services, xf)
		mul := func(a, b float64) float64 { return a * b }
		add := func(a, b float64) float64 { return a + b }
		gate := newMat(horizon, ft, w1).dot(x).apply(math.Tanh).
			zip(newMat(horizon, ft, w2).dot(x.zip(x, mul)).apply(func(v float64) float64 { return 1 / (1 + math.Exp(-v)) }), mul)
		attention := gate.softmaxRows()
		v := x.t().dot(newMat(ft, horizon, w3)).t()
		stacked := mat{r: 2 * horizon, c: services, d: append(slices.Clone(attention.d), v.d...)}
		requests := newMat(horizon, 2*horizon, w4).dot(stacked).
			zip(newMat(1, services, gemmBias), add).zip(newMat(1, services, rowBias), add)
		softplus := requests.apply(func(v float64) float64 { return math.Log1p(math.Exp(v)) })
		denom := requests.apply(func(v float64) float64 { return math.Exp(-math.Abs(v)) + 1 })
		relu := requests.zip(newMat(horizon, 1, colBias), func(a, b float64) float64 { return max(a-b, 0) })
		cpu := softplus.zip(denom, func(a, b float64) float64 { return a / b }).zip(relu, add).apply(func(v float64) float64 { return math.Sqrt(v + 1) })
		return map[string][]float64{"requests": requests.d, "cpu": cpu.d}
	}

	man := model.Manifest{
		Format: model.ManifestFormat, Name: "everything", Version: "test",
		Services: []string{"frontend", "cart", "redis"},
		Features: []source.Feature{source.Requests, source.CPU},
		Window:   window, Horizon: horizon, Step: model.Duration(30 * time.Second),
		Input: model.Tensor{Name: "x", Shape: []int{ft, services}},
		Outputs: []model.Output{
			{Tensor: model.Tensor{Name: "requests", Shape: []int{horizon, services}}, Feature: source.Requests, Quantile: 0.5},
			{Tensor: model.Tensor{Name: "cpu", Shape: []int{horizon, services}}, Feature: source.CPU, Quantile: 0.5},
		},
		Normalization: map[source.Feature]model.Stats{
			source.Requests: {Mean: []float64{0, 0, 0}, Std: []float64{1, 1, 1}},
			source.CPU:      {Mean: []float64{0, 0, 0}, Std: []float64{1, 1, 1}},
		},
	}
	for i := range ft * services {
		man.Golden.Input = append(man.Golden.Input, math.Cos(0.3*float64(i)))
	}

	fromRuntime, err := model.ComputeGolden(onnxBytes, &man)
	if err != nil {
		t.Fatal(err)
	}
	man.Golden.Outputs = forward(man.Golden.Input)
	for name, want := range man.Golden.Outputs {
		for i, w := range want {
			if got := fromRuntime[name][i]; math.Abs(got-w) > 1e-5 {
				t.Errorf("%s[%d]: runtime %v, reference %v", name, i, got, w)
			}
		}
	}
	manJSON, err := json.Marshal(man)
	if err != nil {
		t.Fatal(err)
	}
	loaded, err := model.Parse(onnxBytes, manJSON)
	if err != nil {
		t.Fatalf("Parse with reference golden outputs: %v", err)
	}
	s, err := loaded.NewSession()
	if err != nil {
		t.Fatal(err)
	}
	other := make([]float64, ft*services)
	for i := range other {
		other[i] = math.Sin(1.7 * float64(i))
	}
	got, err := s.Predict(other)
	if err != nil {
		t.Fatal(err)
	}
	for name, want := range forward(other) {
		for i, w := range want {
			if math.Abs(got[name][i]-w) > 1e-5 {
				t.Errorf("second input %s[%d]: runtime %v, reference %v", name, i, got[name][i], w)
			}
		}
	}
}

// TestInPlaceOperandsAreIsolated reproduces the onnx-go trap the writer
// guards against: Add computes into its first operand, so an output p next
// to Add(p, c) came out as p+c. With the writer's copy both are right, run
// after run.
func TestInPlaceOperandsAreIsolated(t *testing.T) {
	b := onnxbuild.New("inplace")
	x := b.Input("x", []int{2, 2})
	p := b.Mul(x, b.Initializer("two", []int{2, 2}, []float32{2, 2, 2, 2}))
	b.Output(p, "p")
	b.Output(b.Add(p, b.Initializer("ten", []int{2, 2}, []float32{10, 10, 10, 10})), "q")
	onnxBytes, err := b.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	man := model.Manifest{
		Format: model.ManifestFormat, Name: "inplace", Services: []string{"a", "b"},
		Features: []source.Feature{source.Requests, source.CPU}, Window: 1, Horizon: 2,
		Step: model.Duration(30 * time.Second), Input: model.Tensor{Name: "x", Shape: []int{2, 2}},
		Outputs: []model.Output{
			{Tensor: model.Tensor{Name: "p", Shape: []int{2, 2}}, Feature: source.Requests, Quantile: 0.5},
			{Tensor: model.Tensor{Name: "q", Shape: []int{2, 2}}, Feature: source.CPU, Quantile: 0.5},
		},
		Normalization: map[source.Feature]model.Stats{
			source.Requests: {Mean: []float64{0, 0}, Std: []float64{1, 1}},
			source.CPU:      {Mean: []float64{0, 0}, Std: []float64{1, 1}},
		},
	}
	reference := func(x []float64) map[string][]float64 {
		out := map[string][]float64{}
		for _, v := range x {
			out["p"] = append(out["p"], 2*v)
			out["q"] = append(out["q"], 2*v+10)
		}
		return out
	}
	man.Golden.Input = []float64{1, 2, 3, 4}
	man.Golden.Outputs = reference(man.Golden.Input)
	manifestJSON, err := json.Marshal(man)
	if err != nil {
		t.Fatal(err)
	}
	m, err := model.Parse(onnxBytes, manifestJSON)
	if err != nil {
		t.Fatal(err)
	}
	s, err := m.NewSession()
	if err != nil {
		t.Fatal(err)
	}
	for _, x := range [][]float64{{5, 6, 7, 8}, {1, 2, 3, 4}, {-1, 0, 1, 2}} {
		got, err := s.Predict(x)
		if err != nil {
			t.Fatal(err)
		}
		want := reference(x)
		for name := range want {
			if !slices.Equal(got[name], want[name]) {
				t.Errorf("input %v: %s = %v, want %v", x, name, got[name], want[name])
			}
		}
	}
}

package model_test

import (
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/foresightscale/foresight/forecaster/model"
	"github.com/foresightscale/foresight/forecaster/source"
	"github.com/foresightscale/foresight/forecaster/topology"
	"github.com/foresightscale/foresight/models/onnxbuild"
)

// The model shape we ship: F features over a T-step window in, H steps of
// requests and cpu out, each output W1·X + W2·(X·A) + b with X the
// [F*T, N] input, A a row-normalised adjacency (graph mixing) and b a size-1
// bias (an initializer of shape [1]: gorgonnx cannot broadcast a Constant).
const (
	shipWindow  = 12
	shipHorizon = 10
)

var shipFeatures = []source.Feature{source.CPU, source.Requests, source.Latency, source.Memory, source.Replicas}

var shipOutputs = []struct {
	name    string
	feature source.Feature
}{{"requests", source.Requests}, {"cpu", source.CPU}}

// linearGCN is a test model with its file, manifest and a plain-Go forward pass.
type linearGCN struct {
	services   int
	adjacency  []float32            // [N,N]
	w1, w2     map[string][]float32 // [H, F*T] per output
	bias       map[string]float32
	onnx       []byte
	manifest   model.Manifest
	inputShape []int
}

func newLinearGCN(t testing.TB, services int) *linearGCN {
	t.Helper()
	n, ft := services, len(shipFeatures)*shipWindow
	rng := rand.New(rand.NewPCG(uint64(services), 7))
	weights := func(count int, scale float64) []float32 {
		w := make([]float32, count)
		for i := range w {
			w[i] = float32((rng.Float64()*2 - 1) * scale)
		}
		return w
	}
	m := &linearGCN{services: n, w1: map[string][]float32{}, w2: map[string][]float32{}, bias: map[string]float32{}, inputShape: []int{ft, n}}
	// A chain call graph plus self loops, each row normalised to sum 1.
	m.adjacency = make([]float32, n*n)
	for i := range n {
		row := []int{i}
		if i > 0 {
			row = append(row, i-1)
		}
		if i+1 < n {
			row = append(row, i+1)
		}
		for _, j := range row {
			m.adjacency[i*n+j] = 1 / float32(len(row))
		}
	}

	b := onnxbuild.New(fmt.Sprintf("linear-gcn-%d", n))
	x := b.Input("x", m.inputShape)
	xa := b.MatMul(x, b.Initializer("adjacency", []int{n, n}, m.adjacency))
	for _, o := range shipOutputs {
		m.w1[o.name] = weights(shipHorizon*ft, 1/math.Sqrt(float64(ft)))
		m.w2[o.name] = weights(shipHorizon*ft, 1/math.Sqrt(float64(ft)))
		m.bias[o.name] = float32(rng.Float64() - 0.5)
		direct := b.MatMul(b.Initializer(o.name+"_w1", []int{shipHorizon, ft}, m.w1[o.name]), x)
		mixed := b.MatMul(b.Initializer(o.name+"_w2", []int{shipHorizon, ft}, m.w2[o.name]), xa)
		bias := b.Initializer(o.name+"_bias", []int{1}, []float32{m.bias[o.name]})
		b.Output(b.Add(b.Add(direct, mixed), bias), o.name)
	}
	var err error
	if m.onnx, err = b.Marshal(); err != nil {
		t.Fatal(err)
	}
	m.manifest = shipManifest(n)
	m.manifest.Golden.Input = m.input(0)
	m.manifest.Golden.Outputs = m.forward(m.manifest.Golden.Input)
	return m
}

// shipManifest fills a valid manifest for n services, golden left empty.
func shipManifest(n int) model.Manifest {
	man := model.Manifest{
		Format:        model.ManifestFormat,
		Name:          "linear-gcn",
		Version:       "test",
		Features:      shipFeatures,
		Window:        shipWindow,
		Horizon:       shipHorizon,
		Step:          model.Duration(30 * time.Second),
		Input:         model.Tensor{Name: "x", Shape: []int{len(shipFeatures) * shipWindow, n}},
		Normalization: map[source.Feature]model.Stats{},
	}
	for i := range n {
		man.Services = append(man.Services, fmt.Sprintf("svc-%d", i))
		if i > 0 {
			man.CallGraph = append(man.CallGraph, topology.Edge{Caller: man.Services[i-1], Callee: man.Services[i]})
		}
	}
	for _, f := range shipFeatures {
		st := model.Stats{Mean: make([]float64, n), Std: make([]float64, n)}
		for i := range n {
			st.Mean[i], st.Std[i] = 1, 0.5
		}
		man.Normalization[f] = st
	}
	for _, o := range shipOutputs {
		man.Outputs = append(man.Outputs, model.Output{
			Tensor: model.Tensor{Name: o.name, Shape: []int{shipHorizon, n}}, Feature: o.feature, Quantile: 0.5,
		})
	}
	return man
}

// input returns a deterministic normalised input; seed varies it.
func (m *linearGCN) input(seed int) []float64 {
	x := make([]float64, m.inputShape[0]*m.inputShape[1])
	for i := range x {
		x[i] = math.Sin(0.37*float64(i)+float64(seed)) + 0.3*math.Cos(0.11*float64(i*(seed+1)))
	}
	return x
}

// forward is the plain-Go forward pass, in float64 on the float32-rounded
// input the runtime sees.
func (m *linearGCN) forward(input []float64) map[string][]float64 {
	ft, n := m.inputShape[0], m.inputShape[1]
	x := make([]float64, len(input))
	for i, v := range input {
		x[i] = float64(float32(v))
	}
	xa := make([]float64, ft*n)
	for r := range ft {
		for c := range n {
			var s float64
			for k := range n {
				s += x[r*n+k] * float64(m.adjacency[k*n+c])
			}
			xa[r*n+c] = s
		}
	}
	out := make(map[string][]float64)
	for _, o := range shipOutputs {
		y := make([]float64, shipHorizon*n)
		w1, w2 := m.w1[o.name], m.w2[o.name]
		for h := range shipHorizon {
			for c := range n {
				s := float64(m.bias[o.name])
				for k := range ft {
					s += float64(w1[h*ft+k])*x[k*n+c] + float64(w2[h*ft+k])*xa[k*n+c]
				}
				y[h*n+c] = s
			}
		}
		out[o.name] = y
	}
	return out
}

func (m *linearGCN) manifestJSON(t testing.TB) []byte {
	t.Helper()
	b, err := json.Marshal(m.manifest)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// maxDiff is the largest absolute difference over all outputs.
func maxDiff(t testing.TB, got, want map[string][]float64) float64 {
	t.Helper()
	d, err := outputDiff(got, want)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func outputDiff(got, want map[string][]float64) (float64, error) {
	var worst float64
	for name, w := range want {
		g, ok := got[name]
		if !ok || len(g) != len(w) {
			return 0, fmt.Errorf("output %s: got %d values, want %d", name, len(g), len(w))
		}
		for i := range w {
			worst = max(worst, math.Abs(g[i]-w[i]))
		}
	}
	return worst, nil
}

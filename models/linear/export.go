package linear

import (
	"fmt"

	"github.com/foresightscale/foresight/forecaster/model"
	"github.com/foresightscale/foresight/models/onnxbuild"
)

// Export writes the fitted model as ONNX plus its manifest. The graph is
//
//	Z = Concat(x, x·Â)          [2·F·T, N]
//	y_o = W_o·Z + B_o           [H, N] per target o
//
// using only 2-D MatMul, Concat on axis 0 and same-shape Add, all in the
// verified op set. The manifest's golden pair is the last training window and
// the plain-Go forward pass on it, which the loader re-checks against the
// runtime.
func (m *Model) Export() ([]byte, *model.Manifest, error) {
	o := m.opts
	nF, nN, nT, nH := len(o.Features), len(o.Graph.Services), o.Window, o.Horizon
	k := nF * nT
	b := onnxbuild.New(o.Name)
	x := b.Input("x", []int{k, nN})
	adj := make([]float32, 0, nN*nN)
	for _, row := range m.adjacency {
		for _, v := range row {
			adj = append(adj, float32(v))
		}
	}
	mixed := b.MatMul(x, b.Initializer("adjacency", []int{nN, nN}, adj))
	z := b.Concat(0, x, mixed)
	outputs := make([]model.Output, 0, len(o.Targets))
	for t, target := range o.Targets {
		ti := indexOf(o.Features, target)
		w := make([]float32, 0, nH*2*k)
		bias := make([]float32, 0, nH*nN)
		for h := range nH {
			for j, v := range m.weights[t][h] {
				if j == ti*nT+nT-1 {
					v++ // the last value the model predicts a change from
				}
				w = append(w, float32(v))
			}
			for range nN {
				bias = append(bias, float32(m.bias[t][h]))
			}
		}
		name := outputName(target)
		y := b.Add(
			b.MatMul(b.Initializer(name+"_weights", []int{nH, 2 * k}, w), z),
			b.Initializer(name+"_bias", []int{nH, nN}, bias))
		b.Output(y, name)
		outputs = append(outputs, model.Output{
			Tensor:   model.Tensor{Name: name, Shape: []int{nH, nN}},
			Feature:  target,
			Quantile: 0.5,
		})
	}
	onnxBytes, err := b.Marshal()
	if err != nil {
		return nil, nil, fmt.Errorf("exporting %s: %w", o.Name, err)
	}
	man := &model.Manifest{
		Format:        model.ManifestFormat,
		Name:          o.Name,
		Version:       o.Version,
		Description:   o.Description,
		Services:      o.Graph.Services,
		Features:      o.Features,
		Window:        nT,
		Horizon:       nH,
		Step:          model.Duration(o.Step),
		Input:         model.Tensor{Name: "x", Shape: []int{k, nN}},
		Outputs:       outputs,
		Normalization: m.norm,
		CallGraph:     o.Graph.Edges,
		Golden:        model.Golden{Input: m.golden, Outputs: m.Forward(m.golden)},
		Training: map[string]any{
			"kind":       "graph-aware linear autoregression (ridge, closed form)",
			"ridge":      o.Ridge,
			"validation": m.Report,
		},
	}
	if err := man.Validate(); err != nil {
		return nil, nil, fmt.Errorf("exporting %s: manifest: %w", o.Name, err)
	}
	return onnxBytes, man, nil
}

// roundToFloat32 rounds the fitted parameters to what the ONNX file stores,
// so the plain-Go forward pass is an exact reference for the runtime.
func (m *Model) roundToFloat32() {
	r := func(v float64) float64 { return float64(float32(v)) }
	for _, row := range m.adjacency {
		for i := range row {
			row[i] = r(row[i])
		}
	}
	for t := range m.weights {
		for h := range m.weights[t] {
			for j := range m.weights[t][h] {
				m.weights[t][h][j] = r(m.weights[t][h][j])
			}
			m.bias[t][h] = r(m.bias[t][h])
		}
	}
	for i := range m.golden {
		m.golden[i] = r(m.golden[i])
	}
}

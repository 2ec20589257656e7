package gnn

import (
	"fmt"

	"github.com/foresightscale/foresight/forecaster/model"
	"github.com/foresightscale/foresight/models/onnxbuild"
)

// Export writes the trained network as ONNX plus its manifest. The graph is
// the one Forward computes, with only verified ops: 2-D MatMul, Concat on
// axis 0, Add of same shapes, a [rows,1] bias or a [1,1] constant, Abs, Div
// and Mul of same shapes, Tanh, Sigmoid and Softplus. The learned adjacency,
// the powers of the call-graph adjacency and the calibration factors are
// constants, exported precomputed. The golden pair is the last validation
// window and Forward on it, which the loader re-checks against the runtime.
func (m *Model) Export() ([]byte, *model.Manifest, error) {
	o := m.opts
	nN, nT, nH := len(o.Graph.Services), o.Window, o.Horizon
	b := onnxbuild.New(o.Name)
	init := func(name string, d *dense) onnxbuild.Value {
		v := make([]float32, len(d.v))
		for i, f := range d.v {
			v[i] = float32(f)
		}
		return b.Initializer(name, []int{d.r, d.c}, v)
	}
	p := m.p
	x := b.Input("x", []int{inputRows(o), nN})
	prior := make([]onnxbuild.Value, len(m.prior))
	for k, a := range m.prior {
		prior[k] = init(fmt.Sprintf("prior_adjacency_%d", k+1), a)
	}
	adaptive := init("adaptive_adjacency", m.adaptive)
	centering := init("centering", m.centering())
	// |D| comes from its own product: gorgonnx may compute element-wise ops
	// in place, so D itself is read by nothing but the division.
	dev := b.Abs(b.MatMul(centering, x))
	epsilon := b.Initializer("scale_epsilon", []int{1, 1}, []float32{float32(scaleEpsilon)})
	volatility := b.Add(b.MatMul(init("block_mean", m.blockMean()), dev), epsilon)
	dn := b.Div(b.MatMul(centering, x), volatility)
	noise := b.Abs(b.MatMul(init("differencing", m.differencing()), x))
	var season onnxbuild.Value
	if seasonalRows(o) > 0 {
		// seasonParts and gateSeason; every operand of an element-wise op
		// comes from a product of its own, for the reason above.
		seasonScale := b.Add(b.MatMul(init("seasonal_volatility_mean", m.seasonalScale()), dev), epsilon)
		scn := b.Div(b.MatMul(init("seasonal_centering", m.seasonalCentering()), x), seasonScale)
		mismatch := b.MatMul(init("season_mismatch_mean", m.seasonMismatchMean()), b.Abs(b.MatMul(init("season_mismatch", m.seasonMismatch()), x)))
		rho := b.Div(mismatch, b.Add(b.MatMul(init("season_noise_mean", m.seasonNoiseMean()), noise), epsilon))
		gate := b.Sigmoid(b.Add(b.MatMul(init("season_gate_slope", diag(p.ga)), rho), init("season_gate_bias", p.gb)))
		season = b.Mul(scn, b.MatMul(init("season_expand", m.seasonExpand()), gate))
	}
	parts := []onnxbuild.Value{dn}
	for _, a := range prior {
		parts = append(parts, b.MatMul(dn, a))
	}
	parts = append(parts, b.MatMul(dn, adaptive))
	if seasonalRows(o) > 0 {
		parts = append(parts, season)
	}
	z0 := b.Concat(0, parts...)
	gated := func(f, g onnxbuild.Value) onnxbuild.Value { return b.Mul(b.Tanh(f), b.Sigmoid(g)) }
	h1 := gated(
		b.Add(b.MatMul(init("w1f", p.w1f), z0), init("b1f", p.b1f)),
		b.Add(b.MatMul(init("w1g", p.w1g), z0), init("b1g", p.b1g)))
	z1 := b.Concat(0, h1, b.MatMul(h1, prior[0]), b.MatMul(h1, adaptive))
	h2 := b.Add(gated(
		b.Add(b.MatMul(init("w2f", p.w2f), z1), init("b2f", p.b2f)),
		b.Add(b.MatMul(init("w2g", p.w2g), z1), init("b2g", p.b2g))), h1)

	var outputs []model.Output
	for i, t := range o.Targets {
		h, name, upper := p.heads[i], string(t), UpperOutputName(t, o.UpperQuantile)
		last := b.MatMul(init(name+"_last_value_selector", m.selector(indexOf(o.Features, t))), x)
		ti := indexOf(o.Features, t)
		change := b.Add(b.Add(b.MatMul(init(name+"_wo", h.wo), h2), b.MatMul(init(name+"_lo", h.lo), z0)), init(name+"_bo", h.bo))
		scale := b.Add(b.MatMul(init(name+"_volatility_mean", m.targetMean(ti, nil)), dev), epsilon)
		// Fresh intermediates come first: gorgonnx writes Add's and Mul's
		// result into their first operand, which must not be p50 (a graph
		// output) or a value read again.
		p50 := b.Add(b.Mul(change, scale), last)
		k := m.upperCalibration(i)
		upperScale := b.Add(b.MatMul(init(name+"_upper_noise_mean", m.targetMean(ti, k)), noise), init(name+"_upper_epsilon", scaleCol(k, scaleEpsilon)))
		margin := b.Add(b.MatMul(init(name+"_qo", h.qo), h2), b.MatMul(init(name+"_ql", h.ql), z0))
		p90 := b.Add(b.Mul(b.Softplus(b.Add(margin, init(name+"_qb", h.qb))), upperScale), p50)
		b.Output(p50, name)
		b.Output(p90, upper)
		outputs = append(outputs,
			model.Output{Tensor: model.Tensor{Name: name, Shape: []int{nH, nN}}, Feature: t, Quantile: 0.5},
			model.Output{Tensor: model.Tensor{Name: upper, Shape: []int{nH, nN}}, Feature: t, Quantile: o.UpperQuantile})
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
		Input:         model.Tensor{Name: "x", Shape: []int{inputRows(o), nN}},
		Seasonal:      o.seasonal(),
		Outputs:       outputs,
		Normalization: m.norm,
		CallGraph:     o.Graph.Edges,
		Unobserved:    o.Unobserved,
		Golden:        model.Golden{Input: m.golden, Outputs: m.Forward(m.golden)},
		Training: map[string]any{
			"kind": "spatiotemporal graph network (gated graph convolution, learned adjacency) on volatility-normalised changes, trained with Adam, shrinkage and upper-margin calibration fitted on validation",
			"options": map[string]any{
				"hidden": o.Hidden, "embedding": o.Embedding, "hops": o.Hops,
				"upperQuantile": o.UpperQuantile, "epochs": o.Epochs, "patience": o.Patience,
				"batchSize": o.BatchSize, "learnRate": o.LearnRate, "weightDecay": o.WeightDecay,
				"scaleWeighted": o.ScaleWeighted, "seed": o.Seed,
			},
			"report": m.Report,
		},
	}
	if err := man.Validate(); err != nil {
		return nil, nil, fmt.Errorf("exporting %s: manifest: %w", o.Name, err)
	}
	return onnxBytes, man, nil
}

package gnn

import (
	"math"
	"math/rand"

	"github.com/foresightscale/foresight/forecaster/model"
	"github.com/foresightscale/foresight/forecaster/source"
)

// Model is a trained network, ready to export.
type Model struct {
	opts Options
	norm map[source.Feature]model.Stats
	p    *params
	// prior[k] is Â^(k+1) and adaptive is softmax(relu(E1·E2ᵀ)), both as the
	// ONNX file stores them (float32-rounded), so Forward is an exact
	// reference for the runtime.
	prior    []*dense
	adaptive *dense
	// Report is what training measured; the manifest records it.
	Report Report
	golden []float64
}

// Report summarises a training run.
type Report struct {
	TrainWindows      int       `json:"trainWindows"`
	ValidationWindows int       `json:"validationWindows"`
	Epochs            int       `json:"epochs"`    // epochs run
	BestEpoch         int       `json:"bestEpoch"` // 0: the untrained model (last value) was best
	TrainLoss         []float64 `json:"trainLoss"` // per epoch
	ValLoss           []float64 `json:"valLoss"`   // per epoch, after it
	InitialValLoss    float64   `json:"initialValLoss"`
	BestValLoss       float64   `json:"bestValLoss"`
	Seconds           float64   `json:"-"` // wall time; kept out of the manifest so rebuilds are byte-identical
}

// params are the trainable tensors. The order of list() is the order
// gorgonia sees them in and is part of the model's determinism.
type params struct {
	e1, e2   *dense // [N, Embedding] node embeddings
	w1f, w1g *dense // [Hidden, rows0]
	b1f, b1g *dense // [Hidden, 1]
	w2f, w2g *dense // [Hidden, 3·Hidden]
	b2f, b2g *dense // [Hidden, 1]
	heads    []head // one per target
}

// head maps the hidden state to one target's median and upper quantile.
type head struct {
	wo, lo, bo *dense // [H, Hidden], [H, rows0], [H, 1]
	qo, ql, qb *dense // same shapes, for the upper quantile's margin
}

type namedDense struct {
	name string
	d    *dense
}

func (p *params) list(targets []source.Feature) []namedDense {
	out := []namedDense{
		{"e1", p.e1}, {"e2", p.e2}, {"w1f", p.w1f}, {"w1g", p.w1g}, {"b1f", p.b1f}, {"b1g", p.b1g},
		{"w2f", p.w2f}, {"w2g", p.w2g}, {"b2f", p.b2f}, {"b2g", p.b2g},
	}
	for i, h := range p.heads {
		t := string(targets[i])
		out = append(out,
			namedDense{t + "_wo", h.wo}, namedDense{t + "_lo", h.lo}, namedDense{t + "_bo", h.bo},
			namedDense{t + "_qo", h.qo}, namedDense{t + "_ql", h.ql}, namedDense{t + "_qb", h.qb})
	}
	return out
}

// rows0 is the height of Z0: X and its K + 1 graph diffusions.
func rows0(o Options) int { return (o.Hops + 2) * len(o.Features) * o.Window }

// newParams draws the initial weights. Output layers start at zero (the
// model starts as "last value"), and the upper quantile's margin starts at a
// bias that puts it a little above the median.
func newParams(o Options, rng *rand.Rand) *params {
	n, hid, r0, hor := len(o.Graph.Services), o.Hidden, rows0(o), o.Horizon
	glorot := func(r, c int) *dense {
		d := newDense(r, c)
		scale := math.Sqrt(2 / float64(r+c))
		for i := range d.v {
			d.v[i] = rng.NormFloat64() * scale
		}
		return d
	}
	p := &params{
		e1: glorot(n, o.Embedding), e2: glorot(n, o.Embedding),
		w1f: glorot(hid, r0), w1g: glorot(hid, r0), b1f: newDense(hid, 1), b1g: newDense(hid, 1),
		w2f: glorot(hid, 3*hid), w2g: glorot(hid, 3*hid), b2f: newDense(hid, 1), b2g: newDense(hid, 1),
	}
	for range o.Targets {
		qb := newDense(hor, 1)
		for i := range qb.v {
			qb.v[i] = -1 // softplus(-1) ≈ 0.31 std above the median
		}
		p.heads = append(p.heads, head{
			wo: newDense(hor, hid), lo: newDense(hor, r0), bo: newDense(hor, 1),
			qo: newDense(hor, hid), ql: newDense(hor, r0), qb: qb,
		})
	}
	return p
}

// Forward runs the exported graph in plain Go on one input (the manifest's
// row-major [F·T, N] normalised tensor) and returns every output by name,
// row-major [H, N], in normalised units.
func (m *Model) Forward(x []float64) map[string][]float64 {
	o := m.opts
	nN := len(o.Graph.Services)
	xm := &dense{r: len(x) / nN, c: nN, v: x}
	out := make(map[string][]float64, 2*len(o.Targets))
	h2, z0 := m.hidden(xm)
	for i, t := range o.Targets {
		p50, p90 := m.head(i, indexOf(o.Features, t), xm, z0, h2)
		out[string(t)] = p50.v
		out[upperName(t, o.UpperQuantile)] = p90.v
	}
	return out
}

// hidden computes H2 and Z0.
func (m *Model) hidden(x *dense) (h2, z0 *dense) {
	p := m.p
	d := mul(m.centering(), x)
	parts := []*dense{d}
	for _, a := range m.prior {
		parts = append(parts, mul(d, a))
	}
	parts = append(parts, mul(d, m.adaptive))
	z0 = concatRows(parts...)
	h1 := gate(addCol(mul(p.w1f, z0), p.b1f), addCol(mul(p.w1g, z0), p.b1g))
	z1 := concatRows(h1, mul(h1, m.prior[0]), mul(h1, m.adaptive))
	h2 = add(h1, gate(addCol(mul(p.w2f, z1), p.b2f), addCol(mul(p.w2g, z1), p.b2g)))
	return h2, z0
}

// head computes target i's median and upper quantile; ti is the target's
// feature index in the input.
func (m *Model) head(i, ti int, x, z0, h2 *dense) (p50, p90 *dense) {
	h := m.p.heads[i]
	last := mul(m.selector(ti), x)
	p50 = add(last, addCol(add(mul(h.wo, h2), mul(h.lo, z0)), h.bo))
	margin := apply(addCol(add(mul(h.qo, h2), mul(h.ql, z0)), h.qb), softplus)
	return p50, add(p50, margin)
}

// selector is the constant [H, F·T] matrix whose every row picks feature
// ti's last window row: S·X repeats the last observed value H times.
func (m *Model) selector(ti int) *dense {
	o := m.opts
	s := newDense(o.Horizon, len(o.Features)*o.Window)
	for h := range o.Horizon {
		s.set(h, ti*o.Window+o.Window-1, 1)
	}
	return s
}

// centering is the constant [F·T, F·T] matrix C with C·X = X minus, in every
// feature block, that block's last row: the network sees only how each
// series moved relative to its last value, never its level. Levels drift
// out of the training range (load grows, services are re-scaled); changes do
// not, so a level-free network extrapolates where a level-aware one fails.
func (m *Model) centering() *dense {
	o := m.opts
	k := len(o.Features) * o.Window
	c := newDense(k, k)
	for f := range o.Features {
		last := f*o.Window + o.Window - 1
		for t := range o.Window {
			r := f*o.Window + t
			c.set(r, r, 1)
			c.set(r, last, c.at(r, last)-1)
		}
	}
	return c
}

// adaptiveAdjacency computes softmax(relu(E1·E2ᵀ)) row by row.
func adaptiveAdjacency(e1, e2 *dense) *dense {
	a := apply(mul(e1, transpose(e2)), relu)
	for i := range a.r {
		row := a.v[i*a.c : (i+1)*a.c]
		top := math.Inf(-1)
		for _, v := range row {
			top = math.Max(top, v)
		}
		var sum float64
		for j, v := range row {
			row[j] = math.Exp(v - top)
			sum += row[j]
		}
		for j := range row {
			row[j] /= sum
		}
	}
	return a
}

// priorPowers returns Â, Â², …, Â^hops.
func priorPowers(adj [][]float64, hops int) []*dense {
	a := newDense(len(adj), len(adj))
	for i, row := range adj {
		copy(a.v[i*a.c:], row)
	}
	out := []*dense{a}
	for len(out) < hops {
		out = append(out, mul(out[len(out)-1], a))
	}
	return out
}

// finish derives the exported constants from the parameters, everything
// rounded to float32 as the ONNX file stores it.
func (m *Model) finish() {
	for _, p := range m.p.list(m.opts.Targets) {
		roundDense(p.d)
	}
	m.adaptive = adaptiveAdjacency(m.p.e1, m.p.e2)
	roundDense(m.adaptive)
	m.prior = priorPowers(m.opts.Graph.Adjacency(), m.opts.Hops)
	for _, a := range m.prior {
		roundDense(a)
	}
	for i := range m.golden {
		m.golden[i] = float64(float32(m.golden[i]))
	}
}

func roundDense(d *dense) {
	for i, v := range d.v {
		d.v[i] = float64(float32(v))
	}
}

func relu(v float64) float64 { return math.Max(v, 0) }

func sigmoid(v float64) float64 { return 1 / (1 + math.Exp(-v)) }

// softplus is ln(1+e^v), computed without overflow for large v.
func softplus(v float64) float64 {
	if v > 30 {
		return v
	}
	return math.Log1p(math.Exp(v))
}

// gate is tanh(f) ⊙ σ(g).
func gate(f, g *dense) *dense {
	out := newDense(f.r, f.c)
	for i := range out.v {
		out.v[i] = math.Tanh(f.v[i]) * sigmoid(g.v[i])
	}
	return out
}

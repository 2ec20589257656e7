package gnn

import (
	"math"
	"math/rand"

	"github.com/foresightscale/foresight/forecaster/model"
	"github.com/foresightscale/foresight/forecaster/source"
	"github.com/foresightscale/foresight/models/dataset"
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
	// calibration[i][h] scales target i's upper margin at step h so that
	// the validation windows reach the upper quantile's coverage.
	calibration [][]float64
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
	// Shrinkage[i][h] is the factor on target i's forecast change at step
	// h+1 and UpperCalibration[i][h] the factor on its upper margin, both
	// fitted on the validation windows after training; CalibratedValLoss is
	// the validation loss with them.
	Shrinkage         [][]float64 `json:"shrinkage"`
	UpperCalibration  [][]float64 `json:"upperCalibration"`
	CalibratedValLoss float64     `json:"calibratedValLoss"`
	Seconds           float64     `json:"-"` // wall time; kept out of the manifest so rebuilds are byte-identical
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
	// ga, gb [S, 1] gate each target's seasonal rows: σ(ga·ρ + gb), ρ the
	// season's recent mismatch (seasonParts). Absent without a season.
	ga, gb *dense
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
	if p.ga != nil {
		out = append(out, namedDense{"season_gate_slope", p.ga}, namedDense{"season_gate_bias", p.gb})
	}
	return out
}

// rows0 is the height of Z0: the scale-free window and its K + 1 graph
// diffusions, then the gated seasonal rows (not diffused: a service's own
// last period is what tells about its next steps, and diffusing them would
// add most of the cost of the seasonal context).
func rows0(o Options) int { return (o.Hops+2)*windowRows(o) + seasonZRows(o) }

// Input returns the model's input for the window of ds ending at step last:
// the window, then the seasonal rows when the model has a seasonal context.
func (m *Model) Input(ds *dataset.Dataset, last int) []float64 {
	return ds.SeasonalInput(last, m.opts.Window, m.opts.Horizon, m.opts.seasonal())
}

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
	if o.Period > 0 {
		// The gate starts half open where the season matched the window as
		// well as the step-to-step noise (ρ = 1) and closes as it fits worse.
		p.ga, p.gb = newDense(len(o.Targets), 1), newDense(len(o.Targets), 1)
		for i := range p.ga.v {
			p.ga.v[i], p.gb.v[i] = -seasonGateSlope, seasonGateSlope
		}
	}
	for range o.Targets {
		qb := newDense(hor, 1)
		for i := range qb.v {
			qb.v[i] = 0.5 // softplus(0.5) ≈ 0.97 of the window's volatility above the median
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
	dn, dev := m.scaleFree(xm)
	noise := m.noise(xm)
	var season *dense
	if seasonalRows(o) > 0 {
		season = m.gateSeason(m.seasonParts(xm, dev, noise))
	}
	h2, z0 := m.hidden(dn, season)
	for i, t := range o.Targets {
		p50, p90 := m.head(i, indexOf(o.Features, t), xm, dev, noise, z0, h2)
		out[string(t)] = p50.v
		out[UpperOutputName(t, o.UpperQuantile)] = p90.v
	}
	return out
}

// scaleFree returns the window's changes since the last value divided by
// their volatility, D / (B·|D| + ε), and |D| itself. B averages each
// feature block, so every series is measured in units of its own recent
// movement: the network sees the shape of the window, not how wild the
// current regime is, and what it learned in a calm period applies to a
// volatile one.
func (m *Model) scaleFree(x *dense) (dn, dev *dense) {
	d := mul(m.centering(), x)
	dev = apply(d, math.Abs)
	s := addScalar(mul(m.blockMean(), dev), scaleEpsilon)
	return divide(d, s), dev
}

// seasonGateSlope is the initial slope of the seasonal gate: σ(−s·ρ + s)
// is ½ at ρ = 1 and about 0.12 at ρ = 2.
const seasonGateSlope = 2

// seasonParts returns the seasonal rows, scale-free, and every target's
// recent mismatch ρ [S, N]. The rows are, per target, its value one period
// before the window's last step and at the H steps after that, minus its
// last value in the current window, divided by its volatility in the
// current window: row h+1 of a block is seasonal naive's forecast of step
// h+1 as a change from the last value, in the units the change outputs
// share, row 0 how far the level moved since last period, and a block
// filled with the last value (no season) reads as zero. ρ is seasonal naive's mean absolute error over the window
// (current rows against lagged ones) over the window's mean step-to-step
// change: about 1 where last period repeats as closely as the load moves
// from one step to the next, large after a change of regime.
func (m *Model) seasonParts(x, dev, noise *dense) (scn, rho *dense) {
	scn = divide(mul(m.seasonalCentering(), x), addScalar(mul(m.seasonalScale(), dev), scaleEpsilon))
	mismatch := mul(m.seasonMismatchMean(), apply(mul(m.seasonMismatch(), x), math.Abs))
	rho = divide(mismatch, addScalar(mul(m.seasonNoiseMean(), noise), scaleEpsilon))
	return scn, rho
}

// gateSeason multiplies each target's block of seasonal rows by its gate
// σ(ga·ρ + gb), so the network reads the season in proportion to how well
// it held over the window.
func (m *Model) gateSeason(scn, rho *dense) *dense {
	g := apply(addCol(mul(diag(m.p.ga), rho), m.p.gb), sigmoid)
	return hadamard(scn, mul(m.seasonExpand(), g))
}

// diag returns the square matrix with column d on its diagonal.
func diag(d *dense) *dense {
	out := newDense(d.r, d.r)
	for i := range d.r {
		out.set(i, i, d.v[i])
	}
	return out
}

// seasonMismatch is the constant [S·T, rows] matrix taking, per target, its
// window rows minus the first T rows of its seasonal block (the same steps
// one period earlier).
func (m *Model) seasonMismatch() *dense {
	o := m.opts
	l, base := o.Window+o.Horizon, windowRows(o)
	c := newDense(len(o.Targets)*o.Window, inputRows(o))
	for s, t := range o.Targets {
		ti := indexOf(o.Features, t)
		for r := range o.Window {
			c.set(s*o.Window+r, ti*o.Window+r, 1)
			c.set(s*o.Window+r, base+s*l+r, -1)
		}
	}
	return c
}

// seasonMismatchMean is the constant [S, S·T] matrix averaging each
// target's T mismatch rows.
func (m *Model) seasonMismatchMean() *dense {
	o := m.opts
	a := newDense(len(o.Targets), len(o.Targets)*o.Window)
	for s := range o.Targets {
		for r := range o.Window {
			a.set(s, s*o.Window+r, 1/float64(o.Window))
		}
	}
	roundDense(a)
	return a
}

// seasonNoiseMean is the constant [S, F·T] matrix averaging each target's
// block of |Δ1 X| over its T-1 differences.
func (m *Model) seasonNoiseMean() *dense {
	o := m.opts
	a := newDense(len(o.Targets), windowRows(o))
	w := 1 / float64(max(o.Window-1, 1))
	for s, t := range o.Targets {
		ti := indexOf(o.Features, t)
		for c := range o.Window {
			a.set(s, ti*o.Window+c, w)
		}
	}
	roundDense(a)
	return a
}

// seasonExpand is the constant [S·(H+1), S] matrix repeating target s's
// gate over the rows of its block.
func (m *Model) seasonExpand() *dense {
	o := m.opts
	k := o.Horizon + 1
	e := newDense(seasonZRows(o), len(o.Targets))
	for s := range o.Targets {
		for j := range k {
			e.set(s*k+j, s, 1)
		}
	}
	return e
}

// seasonalCentering is the constant [S·(H+1), rows] matrix that takes, per
// target, the seasonal block's rows T-1 .. T+H-1 minus the target's last
// value in the window.
func (m *Model) seasonalCentering() *dense {
	o := m.opts
	l, base, k := o.Window+o.Horizon, windowRows(o), o.Horizon+1
	c := newDense(seasonZRows(o), inputRows(o))
	for s, t := range o.Targets {
		last := indexOf(o.Features, t)*o.Window + o.Window - 1
		for j := range k {
			c.set(s*k+j, base+s*l+o.Window-1+j, 1)
			c.set(s*k+j, last, -1)
		}
	}
	return c
}

// seasonalScale is the constant [S·(H+1), F·T] matrix whose rows of target
// s average that target's block of the window's |D|.
func (m *Model) seasonalScale() *dense {
	o := m.opts
	k := o.Horizon + 1
	a := newDense(seasonZRows(o), windowRows(o))
	w := 1 / float64(max(o.Window-1, 1))
	for s, t := range o.Targets {
		ti := indexOf(o.Features, t)
		for j := range k {
			for c := range o.Window {
				a.set(s*k+j, ti*o.Window+c, w)
			}
		}
	}
	roundDense(a)
	return a
}

// hidden computes H2 and Z0 from the scale-free changes and the gated
// seasonal rows (nil without a season).
func (m *Model) hidden(dn, season *dense) (h2, z0 *dense) {
	p := m.p
	parts := []*dense{dn}
	for _, a := range m.prior {
		parts = append(parts, mul(dn, a))
	}
	parts = append(parts, mul(dn, m.adaptive))
	if season != nil {
		parts = append(parts, season)
	}
	z0 = concatRows(parts...)
	h1 := gate(addCol(mul(p.w1f, z0), p.b1f), addCol(mul(p.w1g, z0), p.b1g))
	z1 := concatRows(h1, mul(h1, m.prior[0]), mul(h1, m.adaptive))
	h2 = add(h1, gate(addCol(mul(p.w2f, z1), p.b2f), addCol(mul(p.w2g, z1), p.b2g)))
	return h2, z0
}

// head computes target i's median and upper quantile; ti is the target's
// feature index in the input, dev the window's |D|. Both the change and the
// margin are in units of the target's volatility, so they scale back with it.
func (m *Model) head(i, ti int, x, dev, noise, z0, h2 *dense) (p50, p90 *dense) {
	h := m.p.heads[i]
	last := mul(m.selector(ti), x)
	change := addCol(add(mul(h.wo, h2), mul(h.lo, z0)), h.bo)
	p50 = add(hadamard(change, m.targetScale(ti, dev)), last)
	margin := apply(addCol(add(mul(h.qo, h2), mul(h.ql, z0)), h.qb), softplus)
	return p50, add(hadamard(margin, m.upperScale(i, ti, noise)), p50)
}

// targetScale is target ti's volatility repeated over the horizon,
// A_ti·|D| + ε: [H, N].
func (m *Model) targetScale(ti int, dev *dense) *dense {
	return addScalar(mul(m.targetMean(ti, nil), dev), scaleEpsilon)
}

// upperScale is the scale of target i's upper margin: its step-to-step
// noise (noise is |Δ1 X|) times the per-step calibration factor fitted on
// the validation windows. The noise, unlike the distance from the last
// value, does not grow with a trend the median already follows.
//
// The window's noise, not a long-run level per service, on purpose: on the
// Online Boutique history a long-run level would need about 30 % less
// margin for the same coverage within one regime (measured on the training
// part), but the test part is more volatile than the validation part the
// margin is calibrated on, and there a long-run margin fell to 0.816
// coverage where this one keeps 0.865. An autoscaler's upper bound has to
// widen when the load gets wilder; being wide in calm periods costs less.
func (m *Model) upperScale(i, ti int, noise *dense) *dense {
	k := m.upperCalibration(i)
	return addCol(mul(m.targetMean(ti, k), noise), scaleCol(k, scaleEpsilon))
}

// noise returns |Δ1 X|: every series' absolute step-to-step changes (the
// first row of each feature block is zero).
func (m *Model) noise(x *dense) *dense {
	return apply(mul(m.differencing(), x), math.Abs)
}

// differencing is the constant [F·T, rows] matrix whose row t of each
// feature block takes row t minus row t-1 (row 0 gives zero); the seasonal
// rows, if any, it ignores.
func (m *Model) differencing() *dense {
	o := m.opts
	d := newDense(windowRows(o), inputRows(o))
	for f := range o.Features {
		for t := 1; t < o.Window; t++ {
			r := f*o.Window + t
			d.set(r, r, 1)
			d.set(r, r-1, -1)
		}
	}
	return d
}

// upperCalibration returns target i's per-step margin factors (1 until
// calibrated).
func (m *Model) upperCalibration(i int) []float64 {
	if i < len(m.calibration) && m.calibration[i] != nil {
		return m.calibration[i]
	}
	k := make([]float64, m.opts.Horizon)
	for h := range k {
		k[h] = 1
	}
	return k
}

// scaleEpsilon keeps the volatility positive on a flat window (in
// normalised units, a hundredth of a standard deviation): a series that
// did not move gets a forecast that barely moves.
const scaleEpsilon = float64(float32(0.01)) // as the ONNX file stores it

// blockMean is the constant [F·T, F·T] matrix B whose row in feature block
// f averages block f of |D| over the T-1 rows that can be non-zero (the
// last row of D is zero by construction).
func (m *Model) blockMean() *dense {
	o := m.opts
	k := len(o.Features) * o.Window
	b := newDense(k, k)
	w := 1 / float64(max(o.Window-1, 1))
	for f := range o.Features {
		for r := range o.Window {
			for c := range o.Window {
				b.set(f*o.Window+r, f*o.Window+c, w)
			}
		}
	}
	roundDense(b)
	return b
}

// targetMean is the constant [H, F·T] matrix whose row h averages feature
// ti's block of |D|, times k[h] when k is given.
func (m *Model) targetMean(ti int, k []float64) *dense {
	o := m.opts
	a := newDense(o.Horizon, len(o.Features)*o.Window)
	w := 1 / float64(max(o.Window-1, 1))
	for h := range o.Horizon {
		f := w
		if k != nil {
			f *= k[h]
		}
		for c := range o.Window {
			a.set(h, ti*o.Window+c, f)
		}
	}
	roundDense(a)
	return a
}

// scaleCol returns the [len(k), 1] column k·v, float32-rounded.
func scaleCol(k []float64, v float64) *dense {
	d := newDense(len(k), 1)
	for i := range k {
		d.v[i] = k[i] * v
	}
	roundDense(d)
	return d
}

// selector is the constant [H, rows] matrix whose every row picks feature
// ti's last window row: S·X repeats the last observed value H times.
func (m *Model) selector(ti int) *dense {
	o := m.opts
	s := newDense(o.Horizon, inputRows(o))
	for h := range o.Horizon {
		s.set(h, ti*o.Window+o.Window-1, 1)
	}
	return s
}

// centering is the constant [F·T, rows] matrix C with C·X = X minus, in
// every feature block, that block's last row (seasonal rows are ignored): the network sees only how each
// series moved relative to its last value, never its level. Levels drift
// out of the training range (load grows, services are re-scaled); changes do
// not, so a level-free network extrapolates where a level-aware one fails.
func (m *Model) centering() *dense {
	o := m.opts
	c := newDense(windowRows(o), inputRows(o))
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

package gnn

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand"
	"slices"
	"time"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"

	"github.com/foresightscale/foresight/models/dataset"
)

// Progress reports one finished epoch.
type Progress struct {
	Epoch, Epochs      int
	TrainLoss, ValLoss float64
	Improved           bool // the validation loss is the best so far
	Elapsed, ETA       time.Duration
}

// minTrainWindows is the least history worth training on: fewer windows fit
// noise, not load.
const minTrainWindows = 10

// Train fits the network on the windows ending at trainOrigins (step indices
// of ds, as dataset.Origins returns) and keeps the parameters with the lowest
// loss on the windows ending at valOrigins, stopping after opts.Patience
// epochs without improvement, then fits the median's shrinkage and the upper
// margin's calibration on the same validation windows (see calibrate; the
// report records both). ds must be normalised (FitNormalization on the
// training part); the model keeps ds.Norm. If ctx is cancelled, Train returns
// the best model so far together with an error wrapping ctx.Err(), so an
// interrupted run still yields a usable model. The same seed and data give
// the same model.
func Train(ctx context.Context, ds *dataset.Dataset, trainOrigins, valOrigins []int, opts Options, progress func(Progress)) (*Model, error) {
	started := time.Now()
	m, err := trainNetwork(ctx, ds, trainOrigins, valOrigins, opts, progress)
	if m == nil {
		return nil, err
	}
	m.calibrate(ds, valOrigins)
	m.Report.CalibratedValLoss = m.loss(ds, valOrigins)
	m.Report.Seconds = time.Since(started).Seconds()
	return m, err
}

// trainNetwork is Train without the calibration: the network with the best
// validation loss, as gradient steps left it.
func trainNetwork(ctx context.Context, ds *dataset.Dataset, trainOrigins, valOrigins []int, opts Options, progress func(Progress)) (*Model, error) {
	if err := opts.Validate(); err != nil {
		return nil, fmt.Errorf("gnn options: %w", err)
	}
	if err := checkDataset(ds, opts, trainOrigins, valOrigins); err != nil {
		return nil, err
	}
	started := time.Now()
	rng := rand.New(rand.NewSource(opts.Seed))
	p := newParams(opts, rng)
	tr, err := newTrainer(ds, opts, p, min(opts.BatchSize, len(trainOrigins)))
	if err != nil {
		return nil, fmt.Errorf("gnn: building the training graph: %w", err)
	}
	defer tr.vm.Close()

	best := snapshot(ds, opts, p, valOrigins)
	best.Report = Report{
		TrainWindows: len(trainOrigins), ValidationWindows: len(valOrigins),
		InitialValLoss: best.loss(ds, valOrigins), TrainLoss: []float64{}, ValLoss: []float64{},
	}
	best.Report.BestValLoss = best.Report.InitialValLoss
	report := best.Report
	finish := func(err error) (*Model, error) {
		best.Report = report
		return best, err
	}
	order := slices.Clone(trainOrigins)
	sinceBest := 0
	for epoch := 1; epoch <= opts.Epochs; epoch++ {
		rng.Shuffle(len(order), func(i, j int) { order[i], order[j] = order[j], order[i] })
		var sum float64
		var batches int
		for from := 0; from < len(order); from += tr.batch {
			if err := ctx.Err(); err != nil {
				return finish(fmt.Errorf("gnn: training interrupted in epoch %d, keeping epoch %d: %w", epoch, report.BestEpoch, err))
			}
			loss, err := tr.step(order[from:min(from+tr.batch, len(order))])
			if err != nil {
				return finish(fmt.Errorf("gnn: epoch %d: %w", epoch, err))
			}
			sum += loss
			batches++
		}
		candidate := snapshot(ds, opts, p, valOrigins)
		valLoss := candidate.loss(ds, valOrigins)
		if math.IsNaN(valLoss) || math.IsInf(valLoss, 0) {
			return finish(fmt.Errorf("gnn: epoch %d: validation loss is %v; lower LearnRate", epoch, valLoss))
		}
		report.Epochs = epoch
		report.TrainLoss = append(report.TrainLoss, sum/float64(batches))
		report.ValLoss = append(report.ValLoss, valLoss)
		improved := valLoss < report.BestValLoss
		if improved {
			candidate.Report = best.Report
			best = candidate
			report.BestEpoch, report.BestValLoss, sinceBest = epoch, valLoss, 0
		} else {
			sinceBest++
		}
		if progress != nil {
			elapsed := time.Since(started)
			progress(Progress{
				Epoch: epoch, Epochs: opts.Epochs, TrainLoss: sum / float64(batches), ValLoss: valLoss,
				Improved: improved, Elapsed: elapsed,
				ETA: elapsed / time.Duration(epoch) * time.Duration(opts.Epochs-epoch),
			})
		}
		if sinceBest >= opts.Patience {
			break
		}
	}
	return finish(nil)
}

// checkDataset refuses data the options cannot train on, naming what is wrong.
func checkDataset(ds *dataset.Dataset, o Options, trainOrigins, valOrigins []int) error {
	if ds == nil {
		return errors.New("gnn: no dataset")
	}
	if !slices.Equal(ds.Services, o.Graph.Services) {
		return fmt.Errorf("gnn: dataset services %v differ from the graph's %v", ds.Services, o.Graph.Services)
	}
	if !slices.Equal(ds.Features, o.Features) {
		return fmt.Errorf("gnn: dataset features %v differ from Features %v", ds.Features, o.Features)
	}
	if ds.Step != o.Step {
		return fmt.Errorf("gnn: dataset step %v differs from Step %v", ds.Step, o.Step)
	}
	if ds.Norm == nil {
		return errors.New("gnn: dataset is not normalised; call FitNormalization on the training part first")
	}
	if len(trainOrigins) < minTrainWindows {
		return fmt.Errorf("gnn: %d training windows (history of %d steps, window %d, horizon %d); need at least %d",
			len(trainOrigins), ds.Steps, o.Window, o.Horizon, minTrainWindows)
	}
	if len(valOrigins) == 0 {
		return errors.New("gnn: no validation windows: early stopping needs held-out windows")
	}
	for _, set := range []struct {
		name    string
		origins []int
	}{{"training", trainOrigins}, {"validation", valOrigins}} {
		for _, last := range set.origins {
			if last-o.Window+1 < 0 || last+o.Horizon >= ds.Steps {
				return fmt.Errorf("gnn: %s window ending at step %d does not fit in %d steps with window %d and horizon %d",
					set.name, last, ds.Steps, o.Window, o.Horizon)
			}
		}
	}
	return nil
}

// snapshot copies the current parameters into an exportable model.
func snapshot(ds *dataset.Dataset, o Options, p *params, valOrigins []int) *Model {
	c := &params{}
	*c = *p
	c.heads = nil
	for _, h := range p.heads {
		c.heads = append(c.heads, head{
			wo: h.wo.clone(), lo: h.lo.clone(), bo: h.bo.clone(),
			qo: h.qo.clone(), ql: h.ql.clone(), qb: h.qb.clone(),
		})
	}
	c.e1, c.e2, c.w1f, c.w1g, c.b1f, c.b1g = p.e1.clone(), p.e2.clone(), p.w1f.clone(), p.w1g.clone(), p.b1f.clone(), p.b1g.clone()
	c.w2f, c.w2g, c.b2f, c.b2g = p.w2f.clone(), p.w2g.clone(), p.b2f.clone(), p.b2g.clone()
	if p.ga != nil {
		c.ga, c.gb = p.ga.clone(), p.gb.clone()
	}
	m := &Model{opts: o, norm: ds.Norm, p: c}
	m.golden = m.Input(ds, valOrigins[len(valOrigins)-1])
	m.finish()
	return m
}

// targetWeights returns, per target, every service's weight in the loss:
// its standard deviation over the mean one when ScaleWeighted (the loss then
// matches the error in source units), else 1.
func targetWeights(ds *dataset.Dataset, o Options) [][]float64 {
	out := make([][]float64, len(o.Targets))
	for i, t := range o.Targets {
		w := make([]float64, len(o.Graph.Services))
		st := ds.Norm[t]
		var mean float64
		for _, s := range st.Std {
			mean += s / float64(len(st.Std))
		}
		for n := range w {
			w[n] = 1
			if o.ScaleWeighted {
				w[n] = st.Std[n] / mean
			}
		}
		out[i] = w
	}
	return out
}

// loss is the training objective on the windows ending at origins, computed
// with the plain-Go forward pass: per target, the weighted absolute error of
// the median plus the pinball loss of the upper quantile, over observed
// actuals, averaged per window and output cell.
func (m *Model) loss(ds *dataset.Dataset, origins []int) float64 {
	o := m.opts
	nN, q := len(o.Graph.Services), o.UpperQuantile
	weights := targetWeights(ds, o)
	var total float64
	for _, last := range origins {
		out := m.Forward(m.Input(ds, last))
		for i, t := range o.Targets {
			ti := indexOf(o.Features, t)
			p50, p90 := out[string(t)], out[UpperOutputName(t, q)]
			for h := range o.Horizon {
				for n := range nN {
					if !ds.Observed[ti][last+1+h][n] {
						continue
					}
					y := ds.Normalised(ti, last+1+h, n)
					e, e9 := y-p50[h*nN+n], y-p90[h*nN+n]
					total += weights[i][n] * (math.Abs(e) + q*math.Max(e9, 0) + (1-q)*math.Max(-e9, 0))
				}
			}
		}
	}
	return total / float64(len(origins)*o.Horizon*nN)
}

// trainer holds the gorgonia graph for one batch size: B windows side by
// side as [F·T, B·N], so every left product mixes time and features within a
// window and every graph product (done on a [rows·B, N] reshape) mixes
// services within a window.
type trainer struct {
	ds      *dataset.Dataset
	opts    Options
	batch   int
	p       *params
	nodes   []*G.Node // parameters, in params.list order
	values  []*dense  // the same parameters' Go copies
	dn      *G.Node   // scale-free changes, [F·T, B·N]
	scn     *G.Node   // scale-free seasonal rows, [S·L, B·N] (nil without a season)
	rho     *G.Node   // the season's mismatch per target, [S, B·N]
	y, w    []*G.Node // per target: actuals and loss weights (mask × scale / cells)
	last    []*G.Node // per target: the last value, repeated over the horizon
	scale   []*G.Node // per target: its volatility, repeated over the horizon
	uscale  []*G.Node // per target: the scale of its upper margin
	wq, wq1 []*G.Node // per target: w·q and w·(1-q) for the pinball loss
	cost    *G.Node
	// rng draws which windows lose or swap their seasonal context, when
	// augment (always, but in the test that compares the graph with Forward).
	rng     *rand.Rand
	augment bool
	vm      G.VM
	solver  G.Solver
	weights [][]float64
}

func newTrainer(ds *dataset.Dataset, o Options, p *params, batch int) (*trainer, error) {
	g := G.NewGraph()
	nN, nFT, nH := len(o.Graph.Services), len(o.Features)*o.Window, o.Horizon
	cols := batch * nN
	tr := &trainer{ds: ds, opts: o, batch: batch, p: p, weights: targetWeights(ds, o), rng: rand.New(rand.NewSource(o.Seed + 1)), augment: true}
	param := map[string]*G.Node{}
	for _, nd := range p.list(o.Targets) {
		n := G.NewMatrix(g, tensor.Float64, G.WithShape(nd.d.r, nd.d.c), G.WithName(nd.name),
			G.WithValue(tensor.New(tensor.WithShape(nd.d.r, nd.d.c), tensor.WithBacking(slices.Clone(nd.d.v)))))
		param[nd.name] = n
		tr.nodes = append(tr.nodes, n)
		tr.values = append(tr.values, nd.d)
	}
	constant := func(name string, d *dense) *G.Node {
		return G.NewMatrix(g, tensor.Float64, G.WithShape(d.r, d.c), G.WithName(name),
			G.WithValue(tensor.New(tensor.WithShape(d.r, d.c), tensor.WithBacking(slices.Clone(d.v)))))
	}
	input := func(name string, r int) *G.Node {
		return G.NewMatrix(g, tensor.Float64, G.WithShape(r, cols), G.WithName(name),
			G.WithValue(tensor.New(tensor.WithShape(r, cols), tensor.WithBacking(make([]float64, r*cols)))))
	}
	tr.dn = input("dn", nFT)

	// Errors accumulate: after the first one every helper returns nil.
	var err error
	do := func(f func() (*G.Node, error)) *G.Node {
		if err != nil {
			return nil
		}
		var n *G.Node
		n, err = f()
		return n
	}
	matmul := func(a, b *G.Node) *G.Node { return do(func() (*G.Node, error) { return G.Mul(a, b) }) }
	plus := func(a, b *G.Node) *G.Node { return do(func() (*G.Node, error) { return G.Add(a, b) }) }
	times := func(a, b *G.Node) *G.Node { return do(func() (*G.Node, error) { return G.HadamardProd(a, b) }) }
	bias := func(a, b *G.Node) *G.Node {
		return do(func() (*G.Node, error) { return G.BroadcastAdd(a, b, nil, []byte{1}) })
	}
	unary := func(f func(*G.Node) (*G.Node, error), a *G.Node) *G.Node {
		return do(func() (*G.Node, error) { return f(a) })
	}
	// graphConv is M·A for each window: reshape [r, B·N] to [r·B, N] (rows
	// of one window's services), multiply, reshape back.
	graphConv := func(m, a *G.Node) *G.Node {
		if err != nil {
			return nil
		}
		r := m.Shape()[0]
		flat := do(func() (*G.Node, error) { return G.Reshape(m, tensor.Shape{r * batch, nN}) })
		prod := matmul(flat, a)
		return do(func() (*G.Node, error) { return G.Reshape(prod, tensor.Shape{r, cols}) })
	}
	gated := func(f, gt *G.Node) *G.Node { return times(unary(G.Tanh, f), unary(G.Sigmoid, gt)) }

	scores := unary(G.Rectify, matmul(param["e1"], unary(func(n *G.Node) (*G.Node, error) { return G.Transpose(n) }, param["e2"])))
	adaptive := do(func() (*G.Node, error) { return G.SoftMax(scores) })
	var prior []*G.Node
	for k, a := range priorPowers(o.Graph.Adjacency(), o.Hops) {
		prior = append(prior, constant(fmt.Sprintf("prior%d", k+1), a))
	}
	// The scale-free input, the last values and the volatilities do not
	// depend on the parameters: step computes them with Forward's code and
	// feeds them in.
	dn := tr.dn
	var season *G.Node
	if seasonalRows(o) > 0 {
		// gateSeason: each target's block times σ(ga·ρ + gb).
		tr.scn, tr.rho = input("scn", seasonZRows(o)), input("rho", len(o.Targets))
		slope := do(func() (*G.Node, error) {
			return G.BroadcastHadamardProd(tr.rho, param["season_gate_slope"], nil, []byte{1})
		})
		gate := unary(G.Sigmoid, bias(slope, param["season_gate_bias"]))
		season = times(tr.scn, matmul(constant("season_expand", (&Model{opts: o}).seasonExpand()), gate))
	}
	parts := []*G.Node{dn}
	for _, a := range prior {
		parts = append(parts, graphConv(dn, a))
	}
	parts = append(parts, graphConv(dn, adaptive))
	if season != nil {
		parts = append(parts, season)
	}
	z0 := do(func() (*G.Node, error) { return G.Concat(0, parts...) })
	h1 := gated(bias(matmul(param["w1f"], z0), param["b1f"]), bias(matmul(param["w1g"], z0), param["b1g"]))
	z1 := do(func() (*G.Node, error) { return G.Concat(0, h1, graphConv(h1, prior[0]), graphConv(h1, adaptive)) })
	h2 := plus(h1, gated(bias(matmul(param["w2f"], z1), param["b2f"]), bias(matmul(param["w2g"], z1), param["b2g"])))

	var terms []*G.Node
	for _, t := range o.Targets {
		name := string(t)
		y, w, wq, wq1 := input(name+"_y", nH), input(name+"_w", nH), input(name+"_wq", nH), input(name+"_wq1", nH)
		last, scale, uscale := input(name+"_last", nH), input(name+"_scale", nH), input(name+"_upper_scale", nH)
		tr.y, tr.w, tr.wq, tr.wq1 = append(tr.y, y), append(tr.w, w), append(tr.wq, wq), append(tr.wq1, wq1)
		tr.last, tr.scale, tr.uscale = append(tr.last, last), append(tr.scale, scale), append(tr.uscale, uscale)
		change := bias(plus(matmul(param[name+"_wo"], h2), matmul(param[name+"_lo"], z0)), param[name+"_bo"])
		p50 := plus(times(change, scale), last)
		margin := plus(matmul(param[name+"_qo"], h2), matmul(param[name+"_ql"], z0))
		p90 := plus(times(unary(G.Softplus, bias(margin, param[name+"_qb"])), uscale), p50)
		e := do(func() (*G.Node, error) { return G.Sub(y, p50) })
		e9 := do(func() (*G.Node, error) { return G.Sub(y, p90) })
		sum := func(a *G.Node) *G.Node { return do(func() (*G.Node, error) { return G.Sum(a) }) }
		terms = append(terms,
			sum(times(unary(G.Abs, e), w)),
			sum(times(unary(G.Rectify, e9), wq)),
			sum(times(unary(G.Rectify, unary(G.Neg, e9)), wq1)))
	}
	tr.cost = do(func() (*G.Node, error) { return G.ReduceAdd(terms) })
	if err != nil {
		return nil, err
	}
	if _, err := G.Grad(tr.cost, tr.nodes...); err != nil {
		return nil, fmt.Errorf("gradients: %w", err)
	}
	tr.vm = G.NewTapeMachine(g, G.BindDualValues(tr.nodes...))
	tr.solver = G.NewAdamSolver(G.WithLearnRate(o.LearnRate), G.WithL2Reg(o.WeightDecay), G.WithClip(5))
	return tr, nil
}

// Shares of training windows whose seasonal context is withheld (filled as
// when the history is shorter than a period) or taken from another window
// (a cycle that no longer holds). Without them the network would learn to
// follow a season it has only ever seen repeat exactly; with them it learns
// to check the lagged window against the current one and to fall back on
// the window when they disagree, as after a change of regime.
const (
	seasonWithheld = 0.15
	seasonSwapped  = 0.25
)

// withholdSeason fills x's seasonal blocks with the window's last values,
// as the input reads when the history does not reach a period back, and
// returns it.
func (m *Model) withholdSeason(x []float64) []float64 {
	o := m.opts
	nN, base, l := len(o.Graph.Services), windowRows(o)*len(o.Graph.Services), o.Window+o.Horizon
	for s, t := range o.Targets {
		lastRow := x[(indexOf(o.Features, t)*o.Window+o.Window-1)*nN:][:nN]
		for r := range l {
			copy(x[base+(s*l+r)*nN:], lastRow)
		}
	}
	return x
}

// seasonAugmented returns x with its seasonal rows withheld or swapped for
// another window's (seasonWithheld, seasonSwapped), or x as it is.
func (tr *trainer) seasonAugmented(x []float64, last int) []float64 {
	o := tr.opts
	if seasonalRows(o) == 0 || !tr.augment {
		return x
	}
	base := windowRows(o) * len(o.Graph.Services)
	switch u := tr.rng.Float64(); {
	case u < seasonWithheld:
		x = (&Model{opts: o}).withholdSeason(x)
	case u < seasonWithheld+seasonSwapped:
		// A quarter to three quarters of a period away: out of phase.
		other := last - o.Period/4 - tr.rng.Intn(o.Period/2+1)
		if other >= o.Window-1 {
			copy(x[base:], tr.ds.SeasonalInput(other, o.Window, o.Horizon, o.seasonal())[base:])
		}
	}
	return x
}

// step runs one Adam step on the windows ending at origins (at most one
// batch; missing slots are padded with weight-zero copies) and returns the
// batch loss. The parameters' Go copies are updated.
func (tr *trainer) step(origins []int) (float64, error) {
	o, ds := tr.opts, tr.ds
	nN, nH, q := len(o.Graph.Services), o.Horizon, o.UpperQuantile
	nFT, nS, nT := windowRows(o), seasonZRows(o), len(o.Targets)
	cols := tr.batch * nN
	x, scn, rho := make([]float64, nFT*cols), make([]float64, nS*cols), make([]float64, nT*cols)
	ys, ws := make([][]float64, len(o.Targets)), make([][]float64, len(o.Targets))
	lasts, scales, uscales := make([][]float64, len(o.Targets)), make([][]float64, len(o.Targets)), make([][]float64, len(o.Targets))
	for i := range o.Targets {
		ys[i], ws[i] = make([]float64, nH*cols), make([]float64, nH*cols)
		lasts[i], scales[i], uscales[i] = make([]float64, nH*cols), make([]float64, nH*cols), make([]float64, nH*cols)
	}
	m := &Model{opts: o}
	cells := float64(tr.batch * nH * nN)
	for b := range tr.batch {
		last, counted := origins[b%len(origins)], b < len(origins)
		in := &dense{r: inputRows(o), c: nN, v: tr.seasonAugmented(m.Input(ds, last), last)}
		dn, dev := m.scaleFree(in)
		noise := m.noise(in)
		for r := range nFT {
			copy(x[r*cols+b*nN:], dn.v[r*nN:(r+1)*nN])
		}
		if nS > 0 {
			sc, rh := m.seasonParts(in, dev, noise)
			for r := range nS {
				copy(scn[r*cols+b*nN:], sc.v[r*nN:(r+1)*nN])
			}
			for r := range nT {
				copy(rho[r*cols+b*nN:], rh.v[r*nN:(r+1)*nN])
			}
		}
		for i, t := range o.Targets {
			ti := indexOf(o.Features, t)
			lastValue, scale, uscale := mul(m.selector(ti), in), m.targetScale(ti, dev), m.upperScale(i, ti, noise)
			for h := range nH {
				copy(lasts[i][h*cols+b*nN:], lastValue.v[h*nN:(h+1)*nN])
				copy(scales[i][h*cols+b*nN:], scale.v[h*nN:(h+1)*nN])
				copy(uscales[i][h*cols+b*nN:], uscale.v[h*nN:(h+1)*nN])
				for n := range nN {
					k := h*cols + b*nN + n
					ys[i][k] = ds.Normalised(ti, last+1+h, n)
					if counted && ds.Observed[ti][last+1+h][n] {
						ws[i][k] = tr.weights[i][n] / cells
					}
				}
			}
		}
	}
	let := func(n *G.Node, v []float64) error {
		return G.Let(n, tensor.New(tensor.WithShape(n.Shape()...), tensor.WithBacking(v)))
	}
	if err := let(tr.dn, x); err != nil {
		return 0, err
	}
	if nS > 0 {
		if err := let(tr.scn, scn); err != nil {
			return 0, err
		}
		if err := let(tr.rho, rho); err != nil {
			return 0, err
		}
	}
	for i := range o.Targets {
		wq, wq1 := make([]float64, len(ws[i])), make([]float64, len(ws[i]))
		for k, w := range ws[i] {
			wq[k], wq1[k] = w*q, w*(1-q)
		}
		for _, set := range []struct {
			n *G.Node
			v []float64
		}{{tr.y[i], ys[i]}, {tr.w[i], ws[i]}, {tr.wq[i], wq}, {tr.wq1[i], wq1}, {tr.last[i], lasts[i]}, {tr.scale[i], scales[i]}, {tr.uscale[i], uscales[i]}} {
			if err := let(set.n, set.v); err != nil {
				return 0, err
			}
		}
	}
	defer tr.vm.Reset()
	if err := tr.vm.RunAll(); err != nil {
		return 0, fmt.Errorf("forward/backward pass: %w", err)
	}
	loss := tr.cost.Value().Data().(float64) * cells / float64(len(origins)*nH*nN)
	if math.IsNaN(loss) || math.IsInf(loss, 0) {
		return 0, fmt.Errorf("training loss is %v; lower LearnRate", loss)
	}
	if err := tr.solver.Step(G.NodesToValueGrads(tr.nodes)); err != nil {
		return 0, fmt.Errorf("adam step: %w", err)
	}
	for i, n := range tr.nodes {
		copy(tr.values[i].v, n.Value().Data().([]float64))
	}
	return loss, nil
}

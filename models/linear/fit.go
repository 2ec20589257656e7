// Package linear fits Foresight's first forecasting model: a graph-aware
// linear autoregression solved in closed form (ridge regression), exported
// to ONNX with only the operators our runtime verifiably executes.
//
// For every output feature o and horizon step h the model predicts, per
// service n, in normalised units:
//
//	y[h,n] = x_o,last[n] + Σ_k W1[h,k]·X[k,n] + Σ_k W2[h,k]·(X·Â)[k,n] + b[h]
//
// where X is the [features×window, services] input, Â the call graph's
// normalised adjacency (so X·Â mixes in the neighbours' history), and the
// weights are shared by all services. Fitting the change from the last value
// rather than the level keeps the model no worse than "last value" when the
// data is close to a random walk.
package linear

import (
	"errors"
	"fmt"
	"math"
	"time"

	"gonum.org/v1/gonum/mat"

	"github.com/foresightscale/foresight/forecaster/model"
	"github.com/foresightscale/foresight/forecaster/source"
	"github.com/foresightscale/foresight/forecaster/topology"
	"github.com/foresightscale/foresight/models/dataset"
)

// Options describe the model to fit.
type Options struct {
	Name, Version, Description string
	Graph                      topology.Graph
	Features                   []source.Feature // inputs, in order
	Targets                    []source.Feature // outputs; each must be an input
	Window, Horizon            int
	Step                       time.Duration
	// Ridge is the L2 penalty per training row; it keeps the weights small
	// where the data does not pin them down.
	Ridge float64
	// ValidationFraction of the windows (the most recent ones) is held out
	// to report the fit's quality against the last-value baseline.
	ValidationFraction float64
}

// Model is a fitted model, ready to export.
type Model struct {
	opts      Options
	norm      map[source.Feature]model.Stats
	adjacency [][]float64
	// weights[o] is [Horizon][2·F·T] (own history, then neighbourhood),
	// bias[o] is [Horizon].
	weights [][][]float64
	bias    [][]float64
	// Report holds the validation errors, for the manifest.
	Report Report
	golden []float64
}

// Report compares the fit with the last-value baseline on held-out windows
// (mean absolute error in the target's own units, over all services and steps).
type Report struct {
	TrainWindows      int                `json:"trainWindows"`
	ValidationWindows int                `json:"validationWindows"`
	MAE               map[string]float64 `json:"mae"`
	LastValueMAE      map[string]float64 `json:"lastValueMAE"`
}

func (o Options) validate() error {
	var errs []error
	if err := o.Graph.Validate(); err != nil {
		errs = append(errs, fmt.Errorf("graph: %w", err))
	}
	if len(o.Features) == 0 || len(o.Targets) == 0 {
		errs = append(errs, errors.New("features and targets must not be empty"))
	}
	for _, t := range o.Targets {
		if indexOf(o.Features, t) < 0 {
			errs = append(errs, fmt.Errorf("target %s is not an input feature", t))
		}
	}
	if o.Window < 1 || o.Horizon < 1 || o.Step <= 0 {
		errs = append(errs, fmt.Errorf("window %d, horizon %d and step %v must be positive", o.Window, o.Horizon, o.Step))
	}
	if o.Ridge < 0 || o.ValidationFraction < 0 || o.ValidationFraction >= 1 {
		errs = append(errs, fmt.Errorf("ridge %v must be ≥ 0 and validation fraction %v in [0,1)", o.Ridge, o.ValidationFraction))
	}
	return errors.Join(errs...)
}

// Fit fits the model to the history in data between start and end (aligned
// to opts.Step with the same window code that serves the model).
func Fit(data source.Data, start, end time.Time, opts Options) (*Model, error) {
	if err := opts.validate(); err != nil {
		return nil, fmt.Errorf("linear model options: %w", err)
	}
	nSteps := int(end.Sub(start)/opts.Step) + 1
	nWindows := nSteps - opts.Window - opts.Horizon + 1
	if nWindows < 10 {
		return nil, fmt.Errorf("history of %d steps gives %d training windows; need at least 10 (window %d + horizon %d)", nSteps, nWindows, opts.Window, opts.Horizon)
	}
	services := opts.Graph.Services
	nF, nN, nT := len(opts.Features), len(services), opts.Window
	ds, err := dataset.Build(data, services, opts.Features, start, end, opts.Step)
	if err != nil {
		return nil, fmt.Errorf("training history: %w", err)
	}
	nVal := int(float64(nWindows) * opts.ValidationFraction)
	nTrain := nWindows - nVal
	// Statistics from the steps the training windows see (inputs and
	// targets), never from the held-out part.
	if err := ds.FitNormalization(nTrain - 1 + nT + opts.Horizon); err != nil {
		return nil, err
	}
	m := &Model{opts: opts, norm: ds.Norm, adjacency: opts.Graph.Adjacency()}
	m.Report = Report{TrainWindows: nTrain, ValidationWindows: nVal, MAE: map[string]float64{}, LastValueMAE: map[string]float64{}}
	cols := 2*nF*nT + 1
	design := mat.NewDense(nTrain*nN, cols, nil)
	for w := range nTrain {
		x := ds.Input(w+nT-1, nT)
		for n := range nN {
			design.SetRow(w*nN+n, m.features(x, n))
		}
	}
	solver, err := newRidgeSolver(design, opts.Ridge*float64(nTrain*nN))
	if err != nil {
		return nil, err
	}
	for _, target := range opts.Targets {
		ti := indexOf(opts.Features, target)
		weights := make([][]float64, opts.Horizon)
		bias := make([]float64, opts.Horizon)
		for h := range opts.Horizon {
			y := mat.NewVecDense(nTrain*nN, nil)
			for w := range nTrain {
				last := w + nT - 1
				for n := range nN {
					y.SetVec(w*nN+n, ds.Normalised(ti, last+1+h, n)-ds.Normalised(ti, last, n))
				}
			}
			beta, err := solver.solve(design, y)
			if err != nil {
				return nil, fmt.Errorf("fitting %s at horizon %d: %w", target, h+1, err)
			}
			weights[h] = beta[:cols-1]
			bias[h] = beta[cols-1]
		}
		m.weights = append(m.weights, weights)
		m.bias = append(m.bias, bias)
	}
	m.golden = ds.Input(nWindows-1+nT-1, nT)
	m.roundToFloat32()
	for o, target := range opts.Targets {
		ti := indexOf(opts.Features, target)
		m.Report.MAE[string(target)], m.Report.LastValueMAE[string(target)] = m.validate(ds, ti, o, nTrain, nWindows)
	}
	return m, nil
}

// features returns service n's regression row: its own history, its
// neighbourhood's history (X·Â), and the intercept.
func (m *Model) features(x []float64, n int) []float64 {
	nN := len(m.opts.Graph.Services)
	k := len(x) / nN
	row := make([]float64, 2*k+1)
	for i := range k {
		row[i] = x[i*nN+n]
		var mixed float64
		for j := range nN {
			mixed += x[i*nN+j] * m.adjacency[j][n]
		}
		row[k+i] = mixed
	}
	row[2*k] = 1
	return row
}

// Forward computes the model's outputs for one input in plain Go: the
// reference the exported ONNX graph must reproduce.
func (m *Model) Forward(x []float64) map[string][]float64 {
	nN, nT := len(m.opts.Graph.Services), m.opts.Window
	out := make(map[string][]float64, len(m.opts.Targets))
	for o, target := range m.opts.Targets {
		ti := indexOf(m.opts.Features, target)
		y := make([]float64, m.opts.Horizon*nN)
		for n := range nN {
			row := m.features(x, n)
			last := x[(ti*nT+nT-1)*nN+n]
			for h := range m.opts.Horizon {
				v := last + m.bias[o][h]
				for k, w := range m.weights[o][h] {
					v += w * row[k]
				}
				y[h*nN+n] = v
			}
		}
		out[outputName(target)] = y
	}
	return out
}

// validate returns the model's and last value's MAE on the held-out windows,
// in the target's units, over observed actuals only.
func (m *Model) validate(ds *dataset.Dataset, ti, o, from, to int) (float64, float64) {
	nN, nT := len(m.opts.Graph.Services), m.opts.Window
	st := m.norm[m.opts.Features[ti]]
	var errModel, errLast float64
	var count int
	for w := from; w < to; w++ {
		last := w + nT - 1
		pred := m.Forward(ds.Input(last, nT))[outputName(m.opts.Targets[o])]
		for h := range m.opts.Horizon {
			for n := range nN {
				if !ds.Observed[ti][last+1+h][n] {
					continue
				}
				actual := ds.Raw[ti][last+1+h][n]
				errModel += math.Abs(pred[h*nN+n]*st.Std[n] + st.Mean[n] - actual)
				errLast += math.Abs(ds.Raw[ti][last][n] - actual)
				count++
			}
		}
	}
	if count == 0 {
		return 0, 0 // nothing held out: reported as zero windows
	}
	return errModel / float64(count), errLast / float64(count)
}

// ridgeSolver solves (AᵀA + λI)β = Aᵀy for many y with one factorisation,
// leaving the intercept (last column) unpenalised.
type ridgeSolver struct{ chol mat.Cholesky }

func newRidgeSolver(a *mat.Dense, lambda float64) (*ridgeSolver, error) {
	_, cols := a.Dims()
	var ata mat.SymDense
	ata.SymOuterK(1, a.T())
	for i := range cols - 1 {
		ata.SetSym(i, i, ata.At(i, i)+lambda)
	}
	r := &ridgeSolver{}
	if ok := r.chol.Factorize(&ata); !ok {
		return nil, errors.New("normal equations are singular: constant or duplicated inputs; raise the ridge penalty")
	}
	return r, nil
}

func (r *ridgeSolver) solve(a *mat.Dense, y *mat.VecDense) ([]float64, error) {
	var aty, beta mat.VecDense
	aty.MulVec(a.T(), y)
	if err := r.chol.SolveVecTo(&beta, &aty); err != nil {
		return nil, fmt.Errorf("solving normal equations: %w", err)
	}
	return beta.RawVector().Data, nil
}

func outputName(f source.Feature) string { return string(f) }

func indexOf(fs []source.Feature, f source.Feature) int {
	for i, g := range fs {
		if g == f {
			return i
		}
	}
	return -1
}

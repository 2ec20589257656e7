package baseline

import (
	"fmt"
	"math"
	"strings"

	"gonum.org/v1/gonum/mat"

	"github.com/foresightscale/foresight/models/dataset"
)

// Autoregression is a per-service linear AR(Order) model: the next value is
// a weighted sum of the last Order values plus a constant, fitted by ridge
// regression in closed form on the training part (on the service's
// standardised series, so one Ridge suits every scale). Longer horizons
// feed forecasts back in. Unlike the model under test it sees neither the
// call graph nor the other features: it is the "no graph" ablation.
type Autoregression struct {
	// Order is the number of past steps regressed on (the model's window).
	Order int
	// Ridge is the L2 penalty on the lag weights, in standardised units
	// (default 1; the constant is not penalised).
	Ridge float64

	fits []arFit
}

// arFit is one service's model: next = mean + std·(c + Σ w[i]·z[t-Order+1+i]).
type arFit struct {
	mean, std float64
	weights   []float64 // oldest lag first
	constant  float64
	rows      int
}

const arDefaultRidge = 1.0

// Name implements Method.
func (*Autoregression) Name() string { return AutoregressionName }

// Fit implements Method.
func (m *Autoregression) Fit(ds *dataset.Dataset, target, trainEnd int) error {
	if m.Order < 1 {
		return fmt.Errorf("%s: order must be at least 1, got %d", AutoregressionName, m.Order)
	}
	if m.Ridge < 0 || math.IsNaN(m.Ridge) || math.IsInf(m.Ridge, 0) {
		return fmt.Errorf("%s: ridge must be a finite non-negative number, got %v", AutoregressionName, m.Ridge)
	}
	// At least as many equations as unknowns.
	if err := checkFit(ds, target, trainEnd, 2*m.Order+2); err != nil {
		return fmt.Errorf("%s: %w", AutoregressionName, err)
	}
	ridge := m.Ridge
	if ridge == 0 {
		ridge = arDefaultRidge
	}
	m.fits = make([]arFit, len(ds.Services))
	for n, svc := range ds.Services {
		if ds.NoData != nil && ds.NoData[target][n] {
			// A series the model was trained without has no actuals to
			// score either: repeat the (filled) last value.
			m.fits[n] = arFit{std: 1, weights: make([]float64, m.Order)}
			m.fits[n].weights[m.Order-1] = 1
			continue
		}
		f, err := fitAR(ds, target, n, trainEnd, m.Order, ridge)
		if err != nil {
			return fmt.Errorf("%s: service %s: %w", AutoregressionName, svc, err)
		}
		m.fits[n] = f
	}
	return nil
}

// fitAR solves (XᵀX + λD) w = Xᵀy, X the standardised lag windows plus a
// column of ones, y the next standardised value, over the training steps
// whose next value was observed (a filled gap is not a target to learn).
func fitAR(ds *dataset.Dataset, target, n, trainEnd, order int, ridge float64) (arFit, error) {
	x := column(ds, target, n, 0, trainEnd)
	mu := mean(x)
	var sq float64
	for _, v := range x {
		sq += (v - mu) * (v - mu)
	}
	sd := math.Sqrt(sq / float64(len(x)))
	if sd < 1e-9*math.Max(1, math.Abs(mu)) {
		sd = 1 // constant: any scale will do
	}
	z := make([]float64, len(x))
	for t, v := range x {
		z[t] = (v - mu) / sd
	}
	k := order + 1
	gram := mat.NewSymDense(k, nil)
	rhs := mat.NewVecDense(k, nil)
	row := make([]float64, k)
	rows := 0
	for t := order - 1; t+1 < trainEnd; t++ {
		if !ds.Observed[target][t+1][n] {
			continue
		}
		copy(row, z[t-order+1:t+1])
		row[order] = 1
		gram.SymRankOne(gram, 1, mat.NewVecDense(k, row))
		rhs.AddScaledVec(rhs, z[t+1], mat.NewVecDense(k, row))
		rows++
	}
	if rows < k {
		return arFit{}, fmt.Errorf("%d observed training targets for %d coefficients", rows, k)
	}
	for i := range order {
		gram.SetSym(i, i, gram.At(i, i)+ridge)
	}
	var chol mat.Cholesky
	if !chol.Factorize(gram) {
		return arFit{}, fmt.Errorf("normal equations are singular (%d rows)", rows)
	}
	var w mat.VecDense
	if err := chol.SolveVecTo(&w, rhs); err != nil {
		return arFit{}, fmt.Errorf("solving normal equations: %w", err)
	}
	f := arFit{mean: mu, std: sd, weights: make([]float64, order), constant: w.AtVec(order), rows: rows}
	for i := range order {
		f.weights[i] = w.AtVec(i)
	}
	return f, nil
}

// Describe implements Describer.
func (m *Autoregression) Describe() string {
	parts := make([]string, len(m.fits))
	for n, f := range m.fits {
		var sum float64
		for _, w := range f.weights {
			sum += w
		}
		parts[n] = fmt.Sprintf("[Σw=%.3g lag1=%.3g rows=%d]", sum, f.weights[len(f.weights)-1], f.rows)
	}
	return fmt.Sprintf("order %d ", m.Order) + strings.Join(parts, " ")
}

// Forecast implements Method.
func (m *Autoregression) Forecast(ds *dataset.Dataset, target, last, horizon int) ([][]float64, error) {
	if m.fits == nil {
		return nil, fmt.Errorf("%s: Forecast before Fit", AutoregressionName)
	}
	if len(m.fits) != len(ds.Services) {
		return nil, fmt.Errorf("%s: fitted on %d services, dataset has %d", AutoregressionName, len(m.fits), len(ds.Services))
	}
	if err := checkForecast(ds, target, last, horizon, m.Order); err != nil {
		return nil, fmt.Errorf("%s: %w", AutoregressionName, err)
	}
	out := newForecast(horizon, len(ds.Services))
	z := make([]float64, m.Order+horizon)
	for n, f := range m.fits {
		for i := range m.Order {
			z[i] = (ds.Raw[target][last-m.Order+1+i][n] - f.mean) / f.std
		}
		for h := range horizon {
			next := f.constant
			for i, w := range f.weights {
				next += w * z[h+i]
			}
			z[m.Order+h] = next
			out[h][n] = f.mean + f.std*next
		}
	}
	return out, nil
}

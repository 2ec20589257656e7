package baseline

import (
	"fmt"
	"math"
	"strings"

	"github.com/foresightscale/foresight/models/dataset"
)

// Season detection bounds.
const (
	// MinPeriod is the shortest period DetectPeriod considers: shorter
	// "seasons" are noise, and last value already covers them.
	MinPeriod = 4
	// minSeasonACF is the autocorrelation a peak needs to count as a season.
	minSeasonACF = 0.3
	// peakTolerance picks the shortest peak within this share of the
	// highest, so noise cannot make a multiple of the period win.
	peakTolerance = 0.9
)

// DetectPeriod returns the dominant period of x in steps and the
// autocorrelation at that lag, or 0 when x has no season. It removes the
// least-squares line, computes the autocorrelation for lags up to len(x)/3
// (at least three periods must fit, so a seasonal model can be initialised
// and checked), and looks for peaks only after the autocorrelation first
// drops to zero: before that, a smooth series is merely correlated with its
// recent past, which is not a season.
func DetectPeriod(x []float64) (period int, acf float64) {
	n := len(x)
	maxLag := n / 3
	if maxLag < MinPeriod+1 {
		return 0, 0
	}
	y := detrend(x)
	var v0 float64
	for _, v := range y {
		v0 += v * v
	}
	v0 /= float64(n)
	if v0 <= 1e-12*(1+meanAbs(x)*meanAbs(x)) {
		return 0, 0 // constant or a pure line: nothing periodic
	}
	r := make([]float64, maxLag+2)
	for k := 1; k < len(r); k++ {
		var s float64
		for t := 0; t+k < n; t++ {
			s += y[t] * y[t+k]
		}
		r[k] = s / float64(n-k) / v0
	}
	zero := 0
	for k := 1; k <= maxLag; k++ {
		if r[k] <= 0 {
			zero = k
			break
		}
	}
	if zero == 0 {
		return 0, 0
	}
	var peaks []int
	best := math.Inf(-1)
	for k := max(zero, MinPeriod); k <= maxLag; k++ {
		if r[k] >= r[k-1] && r[k] > r[k+1] {
			peaks = append(peaks, k)
			best = math.Max(best, r[k])
		}
	}
	if len(peaks) == 0 || best < minSeasonACF {
		return 0, 0
	}
	for _, k := range peaks {
		if r[k] >= peakTolerance*best {
			return k, r[k]
		}
	}
	return 0, 0 // unreachable: the best peak passes its own test
}

// periods returns the period to use for every service: the configured one,
// or one detected on each service's training part (0: no season).
func periods(ds *dataset.Dataset, target, trainEnd, configured int) ([]int, error) {
	out := make([]int, len(ds.Services))
	for n, svc := range ds.Services {
		if configured > 0 {
			if trainEnd < 2*configured {
				return nil, fmt.Errorf("season of %d steps: the training part (%d steps) must hold two periods", configured, trainEnd)
			}
			out[n] = configured
			continue
		}
		p, _ := DetectPeriod(column(ds, target, n, 0, trainEnd))
		if p > 0 && trainEnd < 2*p {
			return nil, fmt.Errorf("service %s: detected season of %d steps does not fit twice in the training part", svc, p)
		}
		out[n] = p
	}
	return out, nil
}

// describePeriods formats per-service periods for Describe.
func describePeriods(ds *dataset.Dataset, ps []int) string {
	parts := make([]string, len(ps))
	for n, p := range ps {
		if p == 0 {
			parts[n] = ds.Services[n] + "=none"
		} else {
			parts[n] = fmt.Sprintf("%s=%d", ds.Services[n], p)
		}
	}
	return "period " + strings.Join(parts, " ")
}

// detrend subtracts the least-squares line from x.
func detrend(x []float64) []float64 {
	a, b := fitLine(x)
	y := make([]float64, len(x))
	for t, v := range x {
		y[t] = v - (a + b*float64(t))
	}
	return y
}

// fitLine returns intercept a and slope b of the least-squares line through
// (t, x[t]); one point gives a flat line.
func fitLine(x []float64) (a, b float64) {
	n := float64(len(x))
	if len(x) < 2 {
		if len(x) == 1 {
			return x[0], 0
		}
		return 0, 0
	}
	tMean := (n - 1) / 2
	var xMean float64
	for _, v := range x {
		xMean += v
	}
	xMean /= n
	var sxy, sxx float64
	for t, v := range x {
		dt := float64(t) - tMean
		sxy += dt * (v - xMean)
		sxx += dt * dt
	}
	b = sxy / sxx
	return xMean - b*tMean, b
}

func meanAbs(x []float64) float64 {
	var s float64
	for _, v := range x {
		s += math.Abs(v)
	}
	return s / float64(len(x))
}

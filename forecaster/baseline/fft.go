package baseline

import (
	"fmt"
	"math"
	"math/cmplx"

	"gonum.org/v1/gonum/dsp/fourier"

	"github.com/foresightscale/foresight/models/dataset"
)

// FFT is Crane's DSP predictor: take a longer history (a few whole periods),
// keep its strongest frequency components and extrapolate them. The drift
// between the first and the last period is removed first and extrapolated
// separately, so a trend does not leak into the spectrum. Without a
// season, the history is NoSeasonHistory steps and the drift is measured
// between its halves.
type FFT struct {
	// Period in steps; 0 detects it per service on the training part.
	Period int
	// Periods is how many whole periods of history the spectrum is taken
	// over (default 4; fewer when the origin has less history).
	Periods int
	// TopK is how many non-constant frequency components are kept (default 8).
	TopK int
	// NoSeasonHistory is the history length for services without a season
	// (default 96 steps).
	NoSeasonHistory int

	periods []int
	fitted  string
	// spectra[n] is service n's spectrum, slid along with the origin.
	spectra []spectrum
	bases   map[int]*spectralBasis // by history length
}

// FFT defaults.
const (
	fftDefaultPeriods   = 4
	fftDefaultTopK      = 8
	fftDefaultNoSeasonH = 96
)

// Name implements Method.
func (*FFT) Name() string { return FFTName }

// Fit implements Method: it settles each service's period.
func (m *FFT) Fit(ds *dataset.Dataset, target, trainEnd int) error {
	if m.Periods < 0 || m.TopK < 0 || m.NoSeasonHistory < 0 {
		return fmt.Errorf("%s: periods %d, top-k %d and no-season history %d must not be negative", FFTName, m.Periods, m.TopK, m.NoSeasonHistory)
	}
	if err := checkFit(ds, target, trainEnd, 4); err != nil {
		return fmt.Errorf("%s: %w", FFTName, err)
	}
	ps, err := periods(ds, target, trainEnd, m.Period)
	if err != nil {
		return fmt.Errorf("%s: %w", FFTName, err)
	}
	m.periods, m.fitted = ps, describePeriods(ds, ps)
	m.spectra = make([]spectrum, len(ds.Services))
	m.bases = make(map[int]*spectralBasis)
	return nil
}

// Describe implements Describer.
func (m *FFT) Describe() string {
	return fmt.Sprintf("%s, top %d components over %d periods", m.fitted, orDefault(m.TopK, fftDefaultTopK), orDefault(m.Periods, fftDefaultPeriods))
}

// Forecast implements Method.
func (m *FFT) Forecast(ds *dataset.Dataset, target, last, horizon int) ([][]float64, error) {
	if m.periods == nil {
		return nil, fmt.Errorf("%s: Forecast before Fit", FFTName)
	}
	if err := checkForecast(ds, target, last, horizon, 4); err != nil {
		return nil, fmt.Errorf("%s: %w", FFTName, err)
	}
	out := newForecast(horizon, len(ds.Services))
	for n, p := range m.periods {
		var length, chunk int
		if p > 0 {
			k := min(orDefault(m.Periods, fftDefaultPeriods), (last+1)/p)
			if k < 2 {
				return nil, fmt.Errorf("%s: service %s: origin step %d has less than two periods (%d steps) of history", FFTName, ds.Services[n], last, p)
			}
			length, chunk = k*p, p
		} else {
			length = min(orDefault(m.NoSeasonHistory, fftDefaultNoSeasonH), last+1) &^ 1 // even, so it halves
			chunk = length / 2
		}
		m.extrapolate(ds, target, out, n, last-length+1, length, chunk)
	}
	return out, nil
}

// extrapolate writes the forecasts of service n from the history of the
// given length starting at step start.
func (m *FFT) extrapolate(ds *dataset.Dataset, target int, out [][]float64, n, start, length, chunk int) {
	x := column(ds, target, n, start, start+length)
	slope := (mean(x[length-chunk:]) - mean(x[:chunk])) / float64(length-chunk)
	b := m.basis(length)
	raw := m.spectra[n].at(ds.Raw[target], n, start, b)
	// The spectrum of x − slope·t, by linearity.
	coeff := make([]complex128, len(raw))
	for k := range coeff {
		coeff[k] = raw[k] - complex(slope, 0)*b.ramp[k]
	}
	kept := strongest(coeff[1:], orDefault(m.TopK, fftDefaultTopK))
	for h := 1; h <= len(out); h++ {
		t := float64(length - 1 + h)
		v := real(coeff[0])
		for _, i := range kept {
			k := i + 1 // kept indexes coeff[1:]
			w := 2.0
			if length%2 == 0 && k == length/2 {
				w = 1 // the Nyquist term has no mirror image
			}
			theta := 2 * math.Pi * float64(k) * t / float64(length)
			v += w * (real(coeff[k])*math.Cos(theta) - imag(coeff[k])*math.Sin(theta))
		}
		out[h-1][n] = v/float64(length) + slope*t
	}
}

func (m *FFT) basis(length int) *spectralBasis {
	b, ok := m.bases[length]
	if !ok {
		b = newSpectralBasis(length)
		m.bases[length] = b
	}
	return b
}

// spectralBasis holds what every spectrum of one length shares.
type spectralBasis struct {
	fft     *fourier.FFT
	twiddle []complex128 // e^{2πik/L}: one step of slide for bin k
	ramp    []complex128 // spectrum of t = 0..L-1, to remove a trend by linearity
}

func newSpectralBasis(length int) *spectralBasis {
	b := &spectralBasis{fft: fourier.NewFFT(length), twiddle: make([]complex128, length/2+1)}
	for k := range b.twiddle {
		b.twiddle[k] = cmplx.Rect(1, 2*math.Pi*float64(k)/float64(length))
	}
	ramp := make([]float64, length)
	for t := range ramp {
		ramp[t] = float64(t)
	}
	b.ramp = b.fft.Coefficients(nil, ramp)
	return b
}

// Sliding the spectrum instead of recomputing it: histories span a few
// periods (thousands of steps, of any length, often with a large prime
// factor the FFT is slow on), and consecutive origins differ by one step.
const (
	maxSlide         = 64  // a longer jump recomputes
	slidesPerRefresh = 512 // recompute now and then so rounding cannot build up
)

// spectrum is the DFT of one service's history x[start : start+L], bins
// 0..L/2, with the convention X_k = Σ_j x_j e^{-2πikj/L}.
type spectrum struct {
	basis  *spectralBasis
	start  int
	coeff  []complex128
	slides int
}

// at returns the spectrum of column n of rows[start : start+L], sliding the
// previous one forward when that is cheaper than recomputing.
func (s *spectrum) at(rows [][]float64, n, start int, b *spectralBasis) []complex128 {
	length := b.fft.Len()
	if s.basis != b || start < s.start || start-s.start > maxSlide || s.slides+start-s.start > slidesPerRefresh {
		x := make([]float64, length)
		for j := range x {
			x[j] = rows[start+j][n]
		}
		*s = spectrum{basis: b, start: start, coeff: b.fft.Coefficients(nil, x)}
		return s.coeff
	}
	for ; s.start < start; s.start++ {
		// Drop x[start], add x[start+L], shift the phase origin by one step.
		d := complex(rows[s.start+length][n]-rows[s.start][n], 0)
		for k := range s.coeff {
			s.coeff[k] = (s.coeff[k] + d) * b.twiddle[k]
		}
		s.slides++
	}
	return s.coeff
}

// strongest returns the indices of the k largest coefficients by magnitude,
// largest first (ties: lower frequency first). A selection pass, not a sort:
// k is small and histories are thousands of steps long.
func strongest(coeff []complex128, k int) []int {
	k = min(k, len(coeff))
	power := make([]float64, len(coeff))
	for i, c := range coeff {
		power[i] = real(c)*real(c) + imag(c)*imag(c)
	}
	out := make([]int, 0, k)
	for len(out) < k {
		best := -1
		for i, p := range power {
			if p >= 0 && (best < 0 || p > power[best]) {
				best = i
			}
		}
		out = append(out, best)
		power[best] = -1 // taken
	}
	return out
}

func orDefault(v, def int) int {
	if v == 0 {
		return def
	}
	return v
}

package baseline

import (
	"math"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/foresightscale/foresight/forecaster/source"
	"github.com/foresightscale/foresight/models/dataset"
)

// synthetic builds a one-feature (requests) dataset with one service per
// generator, every step observed except where observed returns false.
func synthetic(steps int, gens ...func(t int) float64) *dataset.Dataset {
	ds := &dataset.Dataset{
		Features: []source.Feature{source.Requests},
		Start:    time.Date(2024, 4, 6, 0, 0, 0, 0, time.UTC),
		Step:     30 * time.Second,
		Steps:    steps,
		Raw:      [][][]float64{make([][]float64, steps)},
		Observed: [][][]bool{make([][]bool, steps)},
	}
	for n := range gens {
		ds.Services = append(ds.Services, string(rune('a'+n)))
	}
	for t := range steps {
		ds.Raw[0][t] = make([]float64, len(gens))
		ds.Observed[0][t] = make([]bool, len(gens))
		for n, g := range gens {
			ds.Raw[0][t][n] = g(t)
			ds.Observed[0][t][n] = true
		}
	}
	return ds
}

func constant(t int) float64 { return 7.5 }
func trend(t int) float64    { return 3 + 0.25*float64(t) }
func sine(t int) float64     { return 50 + 20*math.Sin(2*math.Pi*float64(t)/24+0.7) }
func seasonalTrend(t int) float64 {
	return 100 + 0.1*float64(t) + 15*math.Sin(2*math.Pi*float64(t)/24) + 5*math.Cos(2*math.Pi*float64(t)/12)
}

// TestKnownAnswers checks each baseline on series whose future is known.
func TestKnownAnswers(t *testing.T) {
	const steps, trainEnd, horizon = 480, 336, 10
	tests := []struct {
		name   string
		method Method
		gen    func(int) float64
		tol    float64 // largest absolute error allowed
	}{
		{"last value, constant", &LastValue{}, constant, 1e-12},
		{"seasonal naive, constant", &SeasonalNaive{}, constant, 1e-12},
		{"holt, constant", &HoltWinters{}, constant, 1e-9},
		{"linear regression, constant", &LinearRegression{Window: 12}, constant, 1e-9},
		{"fft, constant", &FFT{}, constant, 1e-9},
		{"autoregression, constant", &Autoregression{Order: 12}, constant, 1e-9},

		{"linear regression, trend", &LinearRegression{Window: 12}, trend, 1e-9},
		{"holt, trend", &HoltWinters{}, trend, 1e-6},
		{"fft, trend", &FFT{}, trend, 1e-6},

		{"seasonal naive, sine (detected period)", &SeasonalNaive{}, sine, 1e-9},
		{"seasonal naive, sine (given period)", &SeasonalNaive{Period: 24}, sine, 1e-9},
		{"holt-winters, sine", &HoltWinters{}, sine, 1e-6},
		{"fft, sine", &FFT{}, sine, 1e-6},
		{"holt-winters, season + trend", &HoltWinters{Period: 24}, seasonalTrend, 1e-6},
		{"fft, season + trend", &FFT{Period: 24}, seasonalTrend, 1e-6},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ds := synthetic(steps, tc.gen)
			if err := tc.method.Fit(ds, 0, trainEnd); err != nil {
				t.Fatal(err)
			}
			// Every origin of the test part, in order (the rolling origin),
			// then one early origin again (a restart must give the same).
			origins := ds.Origins(24, horizon, trainEnd-1, steps)
			origins = append(origins, trainEnd+5)
			for _, last := range origins {
				fc, err := tc.method.Forecast(ds, 0, last, horizon)
				if err != nil {
					t.Fatalf("origin %d: %v", last, err)
				}
				if len(fc) != horizon || len(fc[0]) != 1 {
					t.Fatalf("origin %d: forecast shape %dx%d, want %dx1", last, len(fc), len(fc[0]), horizon)
				}
				for h := 1; h <= horizon; h++ {
					if want := tc.gen(last + h); !(math.Abs(fc[h-1][0]-want) <= tc.tol) {
						t.Fatalf("origin %d, h=%d: forecast %v, want %v (±%v)", last, h, fc[h-1][0], want, tc.tol)
					}
				}
			}
		})
	}
}

// TestNotFooledByTrend checks that methods that cannot extrapolate a trend
// do lag behind it (so the known-answer tests above can fail).
func TestNotFooledByTrend(t *testing.T) {
	ds := synthetic(200, trend)
	m := &LastValue{}
	if err := m.Fit(ds, 0, 150); err != nil {
		t.Fatal(err)
	}
	fc, err := m.Forecast(ds, 0, 160, 4)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := fc[3][0], trend(160); got != want {
		t.Errorf("last value at h=4 = %v, want the origin's %v", got, want)
	}
}

func TestDetectPeriod(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	noisy := func(period float64) []float64 {
		x := make([]float64, 1200)
		for i := range x {
			x[i] = 100 + 0.02*float64(i) + 30*math.Sin(2*math.Pi*float64(i)/period) + 5*rng.NormFloat64()
		}
		return x
	}
	walk := make([]float64, 1200)
	for i := 1; i < len(walk); i++ {
		walk[i] = walk[i-1] + rng.NormFloat64()
	}
	white := make([]float64, 1200)
	for i := range white {
		white[i] = rng.NormFloat64()
	}
	line := make([]float64, 300)
	for i := range line {
		line[i] = trend(i)
	}
	tests := []struct {
		name string
		x    []float64
		want int
	}{
		{"noisy sine 24 with trend", noisy(24), 24},
		{"noisy sine 150", noisy(150), 150},
		{"white noise", white, 0},
		{"random walk", walk, 0},
		{"line", line, 0},
		{"too short", line[:12], 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, acf := DetectPeriod(tc.x)
			// A detected period may be off by one step from noise.
			if tc.want == 0 && got != 0 || tc.want != 0 && (got < tc.want-1 || got > tc.want+1) {
				t.Errorf("period = %d (acf %.2f), want %d", got, acf, tc.want)
			}
		})
	}
}

// TestAutoregressionAR1 fits an AR(1) process and checks the weights and the
// h-step forecast mean+φ^h·(x−mean).
func TestAutoregressionAR1(t *testing.T) {
	const phi, mu, steps = 0.8, 10.0, 4000
	rng := rand.New(rand.NewPCG(3, 4))
	x := make([]float64, steps)
	x[0] = mu
	for i := 1; i < steps; i++ {
		x[i] = mu + phi*(x[i-1]-mu) + rng.NormFloat64()
	}
	ds := synthetic(steps, func(t int) float64 { return x[t] })
	m := &Autoregression{Order: 3}
	if err := m.Fit(ds, 0, 3000); err != nil {
		t.Fatal(err)
	}
	w := m.fits[0].weights
	if math.Abs(w[2]-phi) > 0.05 || math.Abs(w[0]) > 0.05 || math.Abs(w[1]) > 0.05 {
		t.Errorf("weights (oldest first) = %v, want ≈ [0 0 %v]", w, phi)
	}
	const last = 3500
	fc, err := m.Forecast(ds, 0, last, 5)
	if err != nil {
		t.Fatal(err)
	}
	for h := 1; h <= 5; h++ {
		want := mu + math.Pow(phi, float64(h))*(x[last]-mu)
		if math.Abs(fc[h-1][0]-want) > 0.1+0.05*math.Abs(x[last]-mu) {
			t.Errorf("h=%d: forecast %v, want ≈ %v", h, fc[h-1][0], want)
		}
	}
}

// TestAutoregressionSkipsUnobservedTargets: filled gaps are not learnt.
func TestAutoregressionSkipsUnobservedTargets(t *testing.T) {
	ds := synthetic(100, trend)
	for i := range 100 {
		ds.Observed[0][i][0] = i < 10
	}
	err := (&Autoregression{Order: 12}).Fit(ds, 0, 80)
	if err == nil || !strings.Contains(err.Error(), "observed training targets") {
		t.Fatalf("error = %v, want too few observed targets", err)
	}
}

func TestRefusals(t *testing.T) {
	ds := synthetic(100, sine)
	tests := []struct {
		name string
		run  func() error
		want string
	}{
		{"forecast before fit", func() error {
			_, err := (&HoltWinters{}).Forecast(ds, 0, 50, 3)
			return err
		}, "before Fit"},
		{"bad target", func() error { return (&LastValue{}).Fit(ds, 3, 50) }, "target feature index 3"},
		{"training part too long", func() error { return (&LastValue{}).Fit(ds, 0, 101) }, "training part of 101 steps"},
		{"season longer than half the training part", func() error { return (&SeasonalNaive{Period: 40}).Fit(ds, 0, 60) }, "must hold two periods"},
		{"origin without a window of history", func() error {
			_, err := (&LinearRegression{Window: 12}).Forecast(ds, 0, 5, 3)
			return err
		}, "need 12 steps of history"},
		{"origin past the data", func() error {
			_, err := (&LastValue{}).Forecast(ds, 0, 100, 3)
			return err
		}, "origin step 100"},
		{"zero horizon", func() error {
			_, err := (&LastValue{}).Forecast(ds, 0, 50, 0)
			return err
		}, "horizon must be at least 1"},
		{"one-point line", func() error { return (&LinearRegression{Window: 1}).Fit(ds, 0, 50) }, "at least 2 steps"},
		{"negative ridge", func() error { return (&Autoregression{Order: 3, Ridge: -1}).Fit(ds, 0, 50) }, "ridge"},
		{"negative season option", func() error { _, err := Classical(Options{Window: 12, Season: -1}); return err }, "season"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if err := tc.run(); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error = %v, want %q", err, tc.want)
			}
		})
	}
}

func TestClassicalNames(t *testing.T) {
	ms, err := Classical(Options{Window: 12})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"last_value", "seasonal_naive", "holt_winters", "linear_regression", "fft", "autoregression"}
	if len(ms) != len(want) {
		t.Fatalf("%d methods, want %d", len(ms), len(want))
	}
	for i, m := range ms {
		if m.Name() != want[i] {
			t.Errorf("method %d is %q, want %q", i, m.Name(), want[i])
		}
	}
}

// TestFFTSlidingSpectrum checks that the spectrum slid from origin to origin
// gives the forecasts of one computed afresh, across short steps, long
// jumps, a refresh and a step back in time.
func TestFFTSlidingSpectrum(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	x := make([]float64, 3000)
	for i := range x {
		x[i] = 40 + 10*math.Sin(2*math.Pi*float64(i)/37) + 3*rng.NormFloat64()
	}
	ds := synthetic(len(x), func(t int) float64 { return x[t] })
	slid := &FFT{Period: 37}
	if err := slid.Fit(ds, 0, 1500); err != nil {
		t.Fatal(err)
	}
	var origins []int
	for o := 1500; o < 2200; o++ { // past slidesPerRefresh
		origins = append(origins, o)
	}
	origins = append(origins, 2300, 2301, 2305, 1700, 1701)
	for _, last := range origins {
		got, err := slid.Forecast(ds, 0, last, 6)
		if err != nil {
			t.Fatal(err)
		}
		fresh := &FFT{Period: 37}
		if err := fresh.Fit(ds, 0, 1500); err != nil {
			t.Fatal(err)
		}
		want, err := fresh.Forecast(ds, 0, last, 6)
		if err != nil {
			t.Fatal(err)
		}
		for h := range want {
			if math.Abs(got[h][0]-want[h][0]) > 1e-9*math.Abs(want[h][0]) {
				t.Fatalf("origin %d h=%d: slid spectrum gives %v, fresh %v", last, h+1, got[h][0], want[h][0])
			}
		}
	}
}

// TestAutoregressionRepeatsSeriesWithoutData: a series the model was
// trained without (NoData) gets last value instead of failing the fit.
func TestAutoregressionRepeatsSeriesWithoutData(t *testing.T) {
	ds := synthetic(100, trend)
	ds.NoData = [][]bool{make([]bool, len(ds.Services))}
	ds.NoData[0][0] = true
	for i := range 100 {
		ds.Observed[0][i][0] = false
	}
	m := &Autoregression{Order: 3}
	if err := m.Fit(ds, 0, 80); err != nil {
		t.Fatal(err)
	}
	out, err := m.Forecast(ds, 0, 90, 2)
	if err != nil {
		t.Fatal(err)
	}
	if out[0][0] != ds.Raw[0][90][0] || out[1][0] != ds.Raw[0][90][0] {
		t.Errorf("forecast %v, %v; want the last value %v", out[0][0], out[1][0], ds.Raw[0][90][0])
	}
}

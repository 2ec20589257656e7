package conformal

import (
	"math"
	"slices"
	"strings"
	"testing"
)

func TestNewRefuses(t *testing.T) {
	tests := []struct {
		name              string
		services, horizon int
		q                 float64
		window, minimum   int
		want              string
	}{
		{"no services", 0, 3, 0.9, 10, 5, "need at least one of each"},
		{"no horizon", 2, 0, 0.9, 10, 5, "need at least one of each"},
		{"median", 2, 3, 0.5, 10, 5, "must be in (0.5, 1)"},
		{"NaN quantile", 2, 3, math.NaN(), 10, 5, "must be in (0.5, 1)"},
		{"window below minimum", 2, 3, 0.9, 4, 5, "need 1 ≤ minimum ≤ window"},
		{"zero minimum", 2, 3, 0.9, 4, 0, "need 1 ≤ minimum ≤ window"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := New(tc.services, tc.horizon, tc.q, tc.window, tc.minimum); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want %q", err, tc.want)
			}
		})
	}
}

// TestUpperIsTheRecentErrorQuantile: a model always 10 too low at step 1 and
// alternately 0 or 4 too high at step 2 gets an upper bound of p50+10 at step
// 1 and p50 (never below it) at step 2, once enough errors exist.
func TestUpperIsTheRecentErrorQuantile(t *testing.T) {
	tr, err := New(1, 2, 0.9, 10, 4)
	if err != nil {
		t.Fatal(err)
	}
	actual := func(s int64) float64 { return float64(s) }
	for o := int64(0); o < 8; o++ {
		if err := tr.Observe(o, []float64{actual(o)}); err != nil {
			t.Fatal(err)
		}
		if o == 2 {
			if _, ok := tr.Upper(0, 0, 0); ok {
				t.Fatal("an upper bound from one error")
			}
		}
		high := 0.0
		if o%2 == 1 {
			high = 4
		}
		if err := tr.Record(o, []float64{actual(o+1) - 10, actual(o+2) + high}); err != nil {
			t.Fatal(err)
		}
	}
	if got, ok := tr.Upper(0, 0, 100); !ok || got != 110 {
		t.Errorf("step 1: upper %v (ok %v), want 110", got, ok)
	}
	if got, ok := tr.Upper(1, 0, 100); !ok || got != 100 {
		t.Errorf("step 2: upper %v (ok %v), want 100 (the errors are all ≤ 0)", got, ok)
	}
	if n := tr.Errors(0, 0); n != 7 {
		t.Errorf("step 1 has %d errors, want 7 (origins 0..6 scored by steps 1..7)", n)
	}
}

// TestObserveSkipsGapsAndRepeats: NaN actuals and steps seen before add no
// error; the window keeps only the latest errors.
func TestObserveSkipsGapsAndRepeats(t *testing.T) {
	tr, _ := New(2, 1, 0.9, 3, 1)
	for o := int64(0); o < 6; o++ {
		tr.Observe(o, []float64{float64(o), math.NaN()})
		tr.Observe(o, []float64{1e9, 1e9}) // a repeat of the same step: ignored
		tr.Record(o, []float64{float64(o+1) - float64(o), 5})
	}
	if n := tr.Errors(0, 1); n != 0 {
		t.Errorf("service without samples has %d errors", n)
	}
	// Errors of origins 2, 3, 4 (the window of 3): o+1 - (o+1-o) = o.
	if got, ok := tr.Upper(0, 0, 0); !ok || got != 4 {
		t.Errorf("upper %v (ok %v), want 4, the largest of the last three errors 2, 3, 4", got, ok)
	}
}

func TestRecordAndObserveCheckSizes(t *testing.T) {
	tr, _ := New(2, 3, 0.9, 10, 5)
	if err := tr.Record(0, make([]float64, 5)); err == nil {
		t.Error("Record took 5 forecasts for 2 services × 3 steps")
	}
	if err := tr.Observe(0, make([]float64, 3)); err == nil {
		t.Error("Observe took 3 actuals for 2 services")
	}
	if _, ok := tr.Upper(3, 0, 1); ok {
		t.Error("Upper answered for a step beyond the horizon")
	}
}

// FuzzUpper: whatever forecasts and actuals arrive, an upper bound given is
// finite and never below p50.
func FuzzUpper(f *testing.F) {
	f.Add(1.0, 2.0, 3.0, 100.0, 0.9)
	f.Add(math.Inf(1), math.NaN(), -1e308, 1e308, 0.99)
	f.Fuzz(func(t *testing.T, a, b, c, p50, q float64) {
		if !(q > 0.5 && q < 1) {
			q = 0.9
		}
		tr, err := New(1, 1, q, 4, 1)
		if err != nil {
			t.Fatal(err)
		}
		for o, v := range []float64{a, b, c} {
			tr.Record(int64(o), []float64{v})
			tr.Observe(int64(o+1), []float64{c - v})
		}
		up, ok := tr.Upper(0, 0, p50)
		if !ok {
			return
		}
		if math.IsNaN(up) || math.IsInf(up, 0) || up < p50 {
			t.Fatalf("upper %v for p50 %v", up, p50)
		}
	})
}

// TestRingQuantileMatchesSorting: the sorted copy kept on every add gives
// the quantile sorting the window's errors would, through many wraps and
// repeated values.
func TestRingQuantileMatchesSorting(t *testing.T) {
	const size = 7
	var r ring
	var all []float64
	for i := range 100 {
		v := float64((i * 37) % 11) // repeats on purpose
		r.add(v, size)
		all = append(all, v)
		window := slices.Clone(all[max(0, len(all)-size):])
		slices.Sort(window)
		for _, q := range []float64{0.5, 0.9, 0.99} {
			want := window[min(max(int(math.Ceil(q*float64(len(window))))-1, 0), len(window)-1)]
			if got := r.quantile(q); got != want {
				t.Fatalf("after %d adds: quantile(%v) = %v, want %v (window %v)", i+1, q, got, want, window)
			}
		}
	}
}

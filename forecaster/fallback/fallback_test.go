package fallback

import (
	"errors"
	"math"
	"testing"
)

func TestPredict(t *testing.T) {
	nan := math.NaN()
	tests := []struct {
		name        string
		history     []float64
		lead        int
		q           float64
		last, upper float64
	}{
		{"steady rise", []float64{10, 11, 12, 13, 14, 15, 16, 17}, 2, 0.9, 17, 19},
		{"falling: no margin below the last value", []float64{20, 18, 16, 14, 12, 10, 8}, 2, 0.9, 8, 8},
		{"one spike sets the quantile at 0.9", []float64{10, 10, 10, 10, 30, 10, 10, 10, 10, 10, 10}, 1, 0.9, 10, 10},
		{"the spike is the maximum", []float64{10, 10, 10, 10, 30, 10, 10}, 1, 0.99, 10, 30},
		{"gaps are skipped", []float64{5, nan, 7, nan, 9, 10, 11, nan}, 1, 0.9, 11, 12},
		{"short history scales one-step changes", []float64{1, 2, 3}, 4, 0.9, 3, 7},
		{"one observation: no margin", []float64{nan, 4, nan}, 3, 0.9, 4, 4},
		{"negative and infinite are missing", []float64{3, -1, math.Inf(1), 4}, 1, 0.5, 4, 4},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f, err := Predict(tc.history, tc.lead, tc.q)
			if err != nil {
				t.Fatal(err)
			}
			if f.Last != tc.last || f.Upper != tc.upper {
				t.Errorf("Predict = %+v, want last %v upper %v", f, tc.last, tc.upper)
			}
		})
	}
}

func TestPredictRefuses(t *testing.T) {
	if _, err := Predict([]float64{math.NaN(), -3}, 2, 0.9); !errors.Is(err, ErrNoData) {
		t.Errorf("no observation: %v, want ErrNoData", err)
	}
	if _, err := Predict([]float64{1}, 0, 0.9); err == nil {
		t.Error("lead 0 accepted")
	}
	if _, err := Predict([]float64{1}, 1, 1); err == nil {
		t.Error("quantile 1 accepted")
	}
	if _, err := Predict([]float64{0, math.MaxFloat64}, 1, 0.9); err == nil {
		t.Error("an infinite upper bound accepted")
	}
}

// FuzzPredict: Predict never panics; when it answers, Last is the newest
// observed value and Upper is finite and at least Last.
func FuzzPredict(f *testing.F) {
	f.Add(1.0, 2.0, 3.0, 4.0, 2, 0.9)
	f.Add(math.NaN(), 1e308, -1.0, math.Inf(1), 1, 0.5)
	f.Add(0.0, 0.0, 0.0, 0.0, 100, 0.01)
	f.Add(1.0, 2.0, 3.0, 4.0, math.MaxInt, 0.9)
	f.Fuzz(func(t *testing.T, a, b, c, d float64, lead int, q float64) {
		h := []float64{a, b, c, d}
		p, err := Predict(h, lead, q)
		if err != nil {
			return
		}
		newest := math.NaN()
		for _, v := range h {
			if observed(v) {
				newest = v
			}
		}
		if p.Last != newest {
			t.Fatalf("Last = %v, want the newest observed %v", p.Last, newest)
		}
		if math.IsNaN(p.Upper) || math.IsInf(p.Upper, 0) || p.Upper < p.Last || p.Last < 0 {
			t.Fatalf("Predict(%v, %d, %v) = %+v", h, lead, q, p)
		}
	})
}

package window

import (
	"math"
	"testing"
	"time"

	"github.com/foresightscale/foresight/forecaster/model"
	"github.com/foresightscale/foresight/forecaster/source"
)

var t0 = time.Date(2024, 4, 6, 12, 0, 0, 0, time.UTC)

func at(step int) time.Time { return t0.Add(time.Duration(step) * 30 * time.Second) }

func spec(length int) Spec {
	return Spec{
		Services: []string{"a", "b"},
		Features: []source.Feature{source.Requests},
		Length:   length,
		Step:     30 * time.Second,
		Norm: map[source.Feature]model.Stats{
			source.Requests: {Mean: []float64{10, 0}, Std: []float64{2, 1}},
		},
		MaxCarry: DefaultMaxCarry,
	}
}

func samples(points map[int]float64) []source.Sample {
	var out []source.Sample
	for i := -20; i < 20; i++ {
		if v, ok := points[i]; ok {
			out = append(out, source.Sample{Time: at(i), Value: v})
		}
	}
	return out
}

func TestBuildAlignsImputesAndNormalises(t *testing.T) {
	nan := math.NaN()
	tests := []struct {
		name        string
		points      map[int]float64
		wantValues  []float64
		wantCarried int
		wantImputed int
		wantNoData  bool
	}{
		{"complete", map[int]float64{0: 10, 1: 12, 2: 14, 3: 16}, []float64{10, 12, 14, 16}, 0, 0, false},
		{"gap carried forward", map[int]float64{0: 10, 1: 12, 3: 16}, []float64{10, 12, 12, 16}, 1, 0, false},
		{"NaN is a gap", map[int]float64{0: 10, 1: 12, 2: nan, 3: 16}, []float64{10, 12, 12, 16}, 1, 0, false},
		{"carried from before the window", map[int]float64{-2: 8, 2: 14, 3: 16}, []float64{8, 8, 14, 16}, 2, 0, false},
		{"carry limit is inclusive", map[int]float64{-10: 8, 2: 14, 3: 16}, []float64{8, 8, 14, 16}, 1, 1, false},
		{"too old to carry: back-filled", map[int]float64{-15: 1, 2: 14, 3: 16}, []float64{14, 14, 14, 16}, 0, 2, false},
		{"long gap inside the window", map[int]float64{-20: 5}, []float64{10, 10, 10, 10}, 0, 4, true},
		{"no data at all", map[int]float64{}, []float64{10, 10, 10, 10}, 0, 4, true},
		{"only samples after the window", map[int]float64{5: 3}, []float64{10, 10, 10, 10}, 0, 4, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			data := source.Data{source.Requests: {"a": samples(tc.points)}}
			w, err := Build(spec(4), data, at(3))
			if err != nil {
				t.Fatal(err)
			}
			for i, want := range tc.wantValues {
				if got := w.Values[0][i][0]; got != want {
					t.Errorf("value[%d] = %v, want %v", i, got, want)
				}
				if got, wantIn := w.Input[i*2], (want-10)/2; got != wantIn {
					t.Errorf("input[%d] = %v, want %v", i, got, wantIn)
				}
			}
			if w.Carried[0][0] != tc.wantCarried || w.Imputed[0][0] != tc.wantImputed || w.NoData[0][0] != tc.wantNoData {
				t.Errorf("carried %d, imputed %d, noData %v; want %d, %d, %v",
					w.Carried[0][0], w.Imputed[0][0], w.NoData[0][0], tc.wantCarried, tc.wantImputed, tc.wantNoData)
			}
			// Service b never has data: filled with its mean, flagged.
			if !w.NoData[0][1] || w.FeatureMissingFraction(0, 1) != 1 {
				t.Errorf("service b: noData %v, missing fraction %v", w.NoData[0][1], w.FeatureMissingFraction(0, 1))
			}
		})
	}
}

func TestBuildPicksNearestSampleWithinStep(t *testing.T) {
	// Samples every 10 s: each step takes the one exactly at the step.
	var s []source.Sample
	for i := 0; i < 12; i++ {
		s = append(s, source.Sample{Time: t0.Add(time.Duration(i) * 10 * time.Second), Value: float64(i)})
	}
	w, err := Build(spec(3), source.Data{source.Requests: {"a": s}}, at(3))
	if err != nil {
		t.Fatal(err)
	}
	for i, want := range []float64{3, 6, 9} {
		if got := w.Values[0][i][0]; got != want {
			t.Errorf("value[%d] = %v, want %v", i, got, want)
		}
	}
	if w.Imputed[0][0] != 0 {
		t.Errorf("imputed = %d, want 0", w.Imputed[0][0])
	}
}

func TestQueryCoversCarryWindow(t *testing.T) {
	q := spec(12).Query("ns", at(11))
	if !q.Start.Equal(at(0).Add(-DefaultMaxCarry)) || !q.End.Equal(at(11)) || q.Namespace != "ns" {
		t.Errorf("query = %+v", q)
	}
	if err := q.Validate(); err != nil {
		t.Error(err)
	}
}

func TestBuildRejectsBadSpec(t *testing.T) {
	bad := spec(4)
	bad.Norm = map[source.Feature]model.Stats{}
	if _, err := Build(bad, source.Data{}, at(3)); err == nil {
		t.Error("want an error for missing normalisation statistics")
	}
}

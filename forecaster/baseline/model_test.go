package baseline

import (
	"math"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/foresightscale/foresight/forecaster/conformal"
	"github.com/foresightscale/foresight/forecaster/model"
	"github.com/foresightscale/foresight/models"
	"github.com/foresightscale/foresight/models/dataset"
)

// manifestDataset is a dataset laid out as man wants, every value a smooth
// function of feature, step and service (scaled per feature, far from the
// model's training statistics, as a new recording would be).
func manifestDataset(man *model.Manifest, steps int) *dataset.Dataset {
	ds := &dataset.Dataset{
		Services: slices.Clone(man.Services), Features: slices.Clone(man.Features),
		Start: time.Date(2024, 4, 6, 0, 0, 0, 0, time.UTC), Step: time.Duration(man.Step), Steps: steps,
	}
	for f := range ds.Features {
		raw, obs := make([][]float64, steps), make([][]bool, steps)
		for t := range steps {
			raw[t], obs[t] = make([]float64, len(ds.Services)), make([]bool, len(ds.Services))
			for n := range ds.Services {
				raw[t][n] = float64(f+1) * (5 + float64(n) + 3*math.Sin(float64(t)/9+float64(n)))
				obs[t][n] = true
			}
		}
		ds.Raw, ds.Observed = append(ds.Raw, raw), append(ds.Observed, obs)
	}
	return ds
}

// TestModelForecast checks the model method against a hand-built input:
// normalised with the manifest's statistics (not the dataset's), run, and
// the requests output denormalised with the requests statistics.
func TestModelForecast(t *testing.T) {
	m, err := model.LoadFS(models.Demo())
	if err != nil {
		t.Fatal(err)
	}
	man := m.Manifest()
	ds := manifestDataset(man, 80)
	target := ds.FeatureIndex("requests")
	gnn, err := NewModel(m)
	if err != nil {
		t.Fatal(err)
	}
	if err := gnn.Fit(ds, target, 60); err != nil {
		t.Fatal(err)
	}
	const last = 65
	got, err := gnn.Forecast(ds, target, last, man.Horizon)
	if err != nil {
		t.Fatal(err)
	}

	nN, w := len(man.Services), man.Window
	x := make([]float64, len(man.Features)*w*nN)
	for f, feat := range man.Features {
		st := man.Normalization[feat]
		for s := range w {
			for n := range nN {
				x[(f*w+s)*nN+n] = (ds.Raw[f][last-w+1+s][n] - st.Mean[n]) / st.Std[n]
			}
		}
	}
	session, err := m.NewSession()
	if err != nil {
		t.Fatal(err)
	}
	out, err := session.Predict(x)
	if err != nil {
		t.Fatal(err)
	}
	o, _ := man.Output("requests", 0.5)
	st := man.Normalization["requests"]
	for h := range man.Horizon {
		for n := range nN {
			want := out[o.Name][h*nN+n]*st.Std[n] + st.Mean[n]
			if math.Abs(got[h][n]-want) > 1e-9*math.Max(1, math.Abs(want)) {
				t.Fatalf("h=%d %s: forecast %v, want %v", h+1, man.Services[n], got[h][n], want)
			}
		}
	}

	if !gnn.HasQuantile(ds, target, 0.5) || !gnn.HasQuantile(ds, target, 0.9) || gnn.HasQuantile(ds, target, 0.75) {
		t.Error("the demo model has requests at quantiles 0.5 and 0.9, not 0.75")
	}
	upper, err := gnn.ForecastQuantile(ds, target, last, 3, 0.9)
	if err != nil {
		t.Fatal(err)
	}
	for h := range upper {
		for n := range upper[h] {
			if upper[h][n] < got[h][n] {
				t.Fatalf("h=%d %s: P90 %v below the point forecast %v", h+1, man.Services[n], upper[h][n], got[h][n])
			}
		}
	}
	if _, err := gnn.ForecastQuantile(ds, target, last, 3, 0.75); err == nil || !strings.Contains(err.Error(), "quantile 0.75") {
		t.Errorf("a quantile the model lacks: error %v", err)
	}
	if _, err := gnn.Forecast(ds, target, last, man.Horizon+1); err == nil || !strings.Contains(err.Error(), "beyond model") {
		t.Errorf("horizon beyond the model's: error %v", err)
	}
	if _, err := gnn.Forecast(ds, target, w-2, 3); err == nil {
		t.Error("origin without a full window accepted")
	}
}

func TestModelRefusesOtherLayouts(t *testing.T) {
	m, err := model.LoadFS(models.Demo())
	if err != nil {
		t.Fatal(err)
	}
	man := m.Manifest()
	tests := []struct {
		name   string
		mutate func(*dataset.Dataset)
		want   string
	}{
		{"services reordered", func(ds *dataset.Dataset) { ds.Services[0], ds.Services[1] = ds.Services[1], ds.Services[0] }, "in that order"},
		{"feature missing", func(ds *dataset.Dataset) {
			ds.Features, ds.Raw, ds.Observed = ds.Features[:2], ds.Raw[:2], ds.Observed[:2]
		}, "features"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			gnn, err := NewModel(m)
			if err != nil {
				t.Fatal(err)
			}
			ds := manifestDataset(man, 40)
			tc.mutate(ds)
			if err := gnn.Fit(ds, 1, 30); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error = %v, want %q", err, tc.want)
			}
		})
	}
}

// TestModelAdaptiveUpper: the P90 the model method gives is serve's
// adaptive bound, the median plus the 90th percentile of the median's errors
// over its last conformal.DefaultWindow forecasts (computed here from the
// point forecasts alone), the model's own P90 before enough errors exist or
// with SetAdaptiveUpper(false). Origins out of order give the same answer.
func TestModelAdaptiveUpper(t *testing.T) {
	m, err := model.LoadFS(models.Demo())
	if err != nil {
		t.Fatal(err)
	}
	man := m.Manifest()
	nH, nN := man.Horizon, len(man.Services)
	ds := manifestDataset(man, 400)
	target := ds.FeatureIndex("requests")
	method := func(adaptive bool) *Model {
		g, err := NewModel(m)
		if err != nil {
			t.Fatal(err)
		}
		if err := g.Fit(ds, target, 60); err != nil {
			t.Fatal(err)
		}
		g.SetAdaptiveUpper(adaptive)
		return g
	}
	reference := method(false)
	point := func(o int) [][]float64 {
		p, err := reference.Forecast(ds, target, o, nH)
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	// want is the bound from the errors of origins o-h-1, o-h-2, ... (at
	// most DefaultWindow of them, from the first origin with a window).
	want := func(last, h, n int) (float64, bool) {
		var errs []float64
		for o := last - h - 1; o >= man.Window-1 && len(errs) < conformal.DefaultWindow; o-- {
			errs = append(errs, ds.Raw[target][o+h+1][n]-point(o)[h][n])
		}
		if len(errs) < conformal.DefaultMinResiduals {
			return 0, false
		}
		slices.Sort(errs)
		q := errs[int(math.Ceil(0.9*float64(len(errs))))-1]
		return point(last)[h][n] + math.Max(q, 0), true
	}
	adaptive := method(true)
	var adapted int
	for _, last := range []int{40, 330, 331, 120} {
		got, err := adaptive.ForecastQuantile(ds, target, last, nH, 0.9)
		if err != nil {
			t.Fatal(err)
		}
		own, err := reference.ForecastQuantile(ds, target, last, nH, 0.9)
		if err != nil {
			t.Fatal(err)
		}
		for _, h := range []int{0, nH - 1} {
			for n := range nN {
				w, ok := want(last, h, n)
				if !ok {
					w = own[h][n]
				} else if math.Abs(w-own[h][n]) > 1e-6 {
					adapted++
				}
				if math.Abs(got[h][n]-w) > 1e-9*math.Max(1, math.Abs(w)) {
					t.Fatalf("origin %d step %d %s: P90 %v, want %v (adaptive: %v)", last, h+1, man.Services[n], got[h][n], w, ok)
				}
			}
		}
	}
	if adapted == 0 {
		t.Error("the adaptive bound never differed from the model's own: the test checks nothing")
	}
}

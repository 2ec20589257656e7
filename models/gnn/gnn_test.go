package gnn

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/rand"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/foresightscale/foresight/forecaster/model"
	"github.com/foresightscale/foresight/forecaster/source"
	"github.com/foresightscale/foresight/forecaster/synthetic"
	"github.com/foresightscale/foresight/forecaster/topology"
	"github.com/foresightscale/foresight/models"
	"github.com/foresightscale/foresight/models/dataset"
)

var start = time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)

// tinyOptions train in well under a second: the unit tests check behaviour,
// not forecast quality.
func tinyOptions() Options {
	o := DefaultOptions(topology.OnlineBoutique())
	o.Name = "tiny-gnn"
	o.Features = []source.Feature{source.Requests, source.CPU, source.Replicas}
	o.Window, o.Horizon = 6, 4
	o.Hidden, o.Embedding, o.Hops = 4, 2, 2
	o.Epochs, o.Patience, o.BatchSize = 3, 3, 16
	return o
}

// synthetic returns a normalised dataset of the synthetic workload and its
// chronological training and validation windows.
func syntheticDataset(t testing.TB, o Options, hours int) (*dataset.Dataset, []int, []int) {
	t.Helper()
	cfg := synthetic.DefaultConfig()
	if !slices.Equal(o.Graph.Services, topology.OnlineBoutique().Services) {
		cfg.Services = nil // the default profiles name Online Boutique's services
	}
	gen, err := synthetic.New(cfg, o.Graph)
	if err != nil {
		t.Fatal(err)
	}
	end := start.Add(time.Duration(hours) * time.Hour)
	data, err := source.NewSynthetic(gen).Fetch(context.Background(), source.Query{
		Services: o.Graph.Services, Features: o.Features, Start: start, End: end, Step: o.Step,
	})
	if err != nil {
		t.Fatal(err)
	}
	ds, err := dataset.Build(data, o.Graph.Services, o.Features, start, end, o.Step)
	if err != nil {
		t.Fatal(err)
	}
	split := ds.Steps * 8 / 10
	if err := ds.FitNormalization(split); err != nil {
		t.Fatal(err)
	}
	return ds, ds.Origins(o.Window, o.Horizon, 0, split), ds.Origins(o.Window, o.Horizon, split, ds.Steps)
}

func train(t testing.TB, o Options, hours int) (*Model, *dataset.Dataset, []int) {
	t.Helper()
	ds, tr, val := syntheticDataset(t, o, hours)
	m, err := Train(context.Background(), ds, tr, val, o, nil)
	if err != nil {
		t.Fatal(err)
	}
	return m, ds, val
}

func manifestJSON(t testing.TB, man *model.Manifest) []byte {
	t.Helper()
	b, err := json.MarshalIndent(man, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestExportedModelMatchesForward runs the exported file through the real
// runtime on held-out windows and compares with the plain-Go forward pass.
func TestExportedModelMatchesForward(t *testing.T) {
	for _, period := range []int{0, 40} {
		t.Run(fmt.Sprintf("period %d", period), func(t *testing.T) {
			o := tinyOptions()
			o.Period = period
			exportedModelMatchesForward(t, o)
		})
	}
}

func exportedModelMatchesForward(t *testing.T, o Options) {
	m, ds, val := train(t, o, 4)
	onnxBytes, man, err := m.Export()
	if err != nil {
		t.Fatal(err)
	}
	if err := models.Write(t.TempDir(), onnxBytes, man); err != nil {
		t.Fatalf("models.Write refuses the export: %v", err)
	}
	loaded, err := model.Parse(onnxBytes, manifestJSON(t, man))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []model.Output{
		{Feature: source.Requests, Quantile: 0.5}, {Feature: source.Requests, Quantile: 0.9},
		{Feature: source.CPU, Quantile: 0.5}, {Feature: source.CPU, Quantile: 0.9},
	} {
		if _, ok := loaded.Manifest().Output(want.Feature, want.Quantile); !ok {
			t.Errorf("manifest has no %s output at quantile %v", want.Feature, want.Quantile)
		}
	}
	s, err := loaded.NewSession()
	if err != nil {
		t.Fatal(err)
	}
	for _, last := range []int{val[0], val[len(val)/2], val[len(val)-1]} {
		x := m.Input(ds, last)
		for i := range x {
			x[i] = float64(float32(x[i])) // what the runtime sees
		}
		got, err := s.Predict(x)
		if err != nil {
			t.Fatal(err)
		}
		want := m.Forward(x)
		for name, w := range want {
			for i := range w {
				if d := math.Abs(got[name][i] - w[i]); d > 1e-4 {
					t.Fatalf("window ending at %d: %s[%d]: runtime %v, forward pass %v", last, name, i, got[name][i], w[i])
				}
			}
		}
	}
}

// TestTrainingGraphMatchesForward checks that the gorgonia graph trained on
// computes what Forward (and so the export) computes: its loss on a batch
// equals the plain-Go loss. A wrong softmax axis or batch layout would not.
func TestTrainingGraphMatchesForward(t *testing.T) {
	for _, period := range []int{0, 40} {
		t.Run(fmt.Sprintf("period %d", period), func(t *testing.T) {
			o := tinyOptions()
			o.Period = period
			trainingGraphMatchesForward(t, o)
		})
	}
}

func trainingGraphMatchesForward(t *testing.T, o Options) {
	ds, tr, val := syntheticDataset(t, o, 2)
	p := newParams(o, rand.New(rand.NewSource(7)))
	// Non-zero heads, so every path contributes.
	for _, h := range p.heads {
		for _, d := range []*dense{h.wo, h.lo, h.qo, h.ql} {
			for i := range d.v {
				d.v[i] = 0.05 * math.Sin(float64(i))
			}
		}
	}
	trainer, err := newTrainer(ds, o, p, o.BatchSize)
	if err != nil {
		t.Fatal(err)
	}
	defer trainer.vm.Close()
	trainer.augment = false             // the plain-Go loss reads every window as it is
	batch := tr[len(tr)-o.BatchSize+3:] // a padded batch, of windows that reach a period back
	want := snapshot(ds, o, p, val).loss(ds, batch)
	got, err := trainer.step(batch)
	if err != nil {
		t.Fatal(err)
	}
	if math.Abs(got-want) > 1e-5*math.Max(1, math.Abs(want)) {
		t.Fatalf("training graph loss %v, plain-Go loss %v", got, want)
	}
	if after := snapshot(ds, o, p, val).loss(ds, batch); !(after < want) {
		t.Errorf("one Adam step did not lower the batch loss: %v -> %v", want, after)
	}
}

func TestTrainIsDeterministic(t *testing.T) {
	o := tinyOptions()
	o.Epochs = 2
	ds, tr, val := syntheticDataset(t, o, 2)
	var first []byte
	for i := range 2 {
		m, err := Train(context.Background(), ds, tr, val, o, nil)
		if err != nil {
			t.Fatal(err)
		}
		onnxBytes, man, err := m.Export()
		if err != nil {
			t.Fatal(err)
		}
		b := append(onnxBytes, manifestJSON(t, man)...)
		if i == 0 {
			first = b
		} else if !bytes.Equal(first, b) {
			t.Fatal("the same seed and data gave different model files")
		}
	}
	o.Seed++
	m, err := Train(context.Background(), ds, tr, val, o, nil)
	if err != nil {
		t.Fatal(err)
	}
	onnxBytes, _, err := m.Export()
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Equal(first[:len(onnxBytes)], onnxBytes) {
		t.Error("another seed gave the same model: the seed is not used")
	}
}

func TestTrainImprovesOnLastValue(t *testing.T) {
	o := tinyOptions()
	o.Epochs, o.Patience = 6, 6
	var reports []Progress
	m, _, _ := func() (*Model, *dataset.Dataset, []int) {
		ds, tr, val := syntheticDataset(t, o, 6)
		m, err := Train(context.Background(), ds, tr, val, o, func(p Progress) { reports = append(reports, p) })
		if err != nil {
			t.Fatal(err)
		}
		return m, ds, val
	}()
	r := m.Report
	if !(r.BestValLoss < r.InitialValLoss) || r.BestEpoch == 0 {
		t.Errorf("validation loss %v not below the untrained (last value) %v; report %+v", r.BestValLoss, r.InitialValLoss, r)
	}
	if len(reports) != r.Epochs || len(r.ValLoss) != r.Epochs || reports[len(reports)-1].Epoch != r.Epochs {
		t.Errorf("%d progress reports, %d validation losses for %d epochs", len(reports), len(r.ValLoss), r.Epochs)
	}
	for _, p := range reports {
		if p.Epochs != o.Epochs || p.Elapsed <= 0 || math.IsNaN(p.TrainLoss) || math.IsNaN(p.ValLoss) {
			t.Errorf("bad progress report %+v", p)
		}
	}
}

func TestCancelReturnsBestModel(t *testing.T) {
	o := tinyOptions()
	o.Epochs, o.Patience = 50, 50
	ds, tr, val := syntheticDataset(t, o, 2)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	m, err := Train(ctx, ds, tr, val, o, func(p Progress) {
		if p.Epoch == 2 {
			cancel()
		}
	})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("error = %v, want one wrapping context.Canceled", err)
	}
	if m == nil {
		t.Fatal("no model returned after cancellation")
	}
	if m.Report.Epochs != 2 || m.Report.BestValLoss != minOf(m.Report.InitialValLoss, m.Report.ValLoss...) {
		t.Errorf("report after cancellation: %+v", m.Report)
	}
	if got := m.loss(ds, val); math.Abs(got-m.Report.CalibratedValLoss) > 1e-12 {
		t.Errorf("returned model's validation loss %v, recorded after calibration %v", got, m.Report.CalibratedValLoss)
	}
	if _, _, err := m.Export(); err != nil {
		t.Errorf("the model kept after cancellation does not export: %v", err)
	}
}

func TestConstantSeriesTrainsWithoutNaN(t *testing.T) {
	o := tinyOptions()
	o.Epochs = 2
	data := source.Data{}
	for s := range 200 {
		at := start.Add(time.Duration(s) * o.Step)
		for _, f := range o.Features {
			for _, svc := range o.Graph.Services {
				data.Add(f, svc, source.Sample{Time: at, Value: 3})
			}
		}
	}
	end := start.Add(199 * o.Step)
	ds, err := dataset.Build(data, o.Graph.Services, o.Features, start, end, o.Step)
	if err != nil {
		t.Fatal(err)
	}
	if err := ds.FitNormalization(150); err != nil {
		t.Fatal(err)
	}
	m, err := Train(context.Background(), ds, ds.Origins(o.Window, o.Horizon, 0, 150), ds.Origins(o.Window, o.Horizon, 150, 200), o, nil)
	if err != nil {
		t.Fatal(err)
	}
	for name, v := range m.Forward(ds.Input(190, o.Window)) {
		for i, y := range v {
			if math.IsNaN(y) || math.IsInf(y, 0) {
				t.Fatalf("%s[%d] = %v", name, i, y)
			}
		}
	}
	if _, _, err := m.Export(); err != nil {
		t.Fatal(err)
	}
}

func TestTrainRefusesBadInput(t *testing.T) {
	o := tinyOptions()
	ds, tr, val := syntheticDataset(t, o, 1)
	unnormalised := *ds
	unnormalised.Norm = nil
	fewer := o
	fewer.Features = []source.Feature{source.Requests, source.CPU}
	tests := []struct {
		name     string
		ds       *dataset.Dataset
		opts     Options
		tr, val  []int
		wantText string
	}{
		{"too short history", ds, o, tr[:5], val, "5 training windows"},
		{"no validation windows", ds, o, tr, nil, "no validation windows"},
		{"window outside the data", ds, o, tr, []int{ds.Steps - 1}, "does not fit"},
		{"features differ from the dataset", ds, fewer, tr, val, "differ from Features"},
		{"not normalised", &unnormalised, o, tr, val, "not normalised"},
		{"invalid options", ds, Options{}, tr, val, "Name: must not be empty"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Train(context.Background(), tc.ds, tc.tr, tc.val, tc.opts, nil)
			if err == nil || !strings.Contains(err.Error(), tc.wantText) {
				t.Fatalf("error = %v, want it to contain %q", err, tc.wantText)
			}
		})
	}
}

func TestValidateNamesTheField(t *testing.T) {
	tests := []struct {
		name string
		edit func(*Options)
		want string
	}{
		{"name", func(o *Options) { o.Name = "" }, "Name:"},
		{"graph", func(o *Options) { o.Graph = topology.Graph{} }, "Graph:"},
		{"unknown feature", func(o *Options) { o.Features = append(o.Features, "bogus") }, "Features[5]:"},
		{"target not an input", func(o *Options) { o.Features = o.Features[:1] }, "Targets[0]:"},
		{"window", func(o *Options) { o.Window = 0 }, "Window:"},
		{"horizon", func(o *Options) { o.Horizon = -1 }, "Horizon:"},
		{"hidden", func(o *Options) { o.Hidden = 0 }, "Hidden:"},
		{"hops", func(o *Options) { o.Hops = 0 }, "Hops:"},
		{"batch", func(o *Options) { o.BatchSize = 0 }, "BatchSize:"},
		{"step", func(o *Options) { o.Step = 0 }, "Step:"},
		{"quantile", func(o *Options) { o.UpperQuantile = 0.5 }, "UpperQuantile:"},
		{"learn rate", func(o *Options) { o.LearnRate = math.NaN() }, "LearnRate:"},
		{"weight decay", func(o *Options) { o.WeightDecay = -1 }, "WeightDecay:"},
	}
	if err := DefaultOptions(topology.OnlineBoutique()).Validate(); err != nil {
		t.Fatalf("default options: %v", err)
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			o := DefaultOptions(topology.OnlineBoutique())
			tc.edit(&o)
			if err := o.Validate(); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error = %v, want it to name %q", err, tc.want)
			}
		})
	}
}

func minOf(first float64, rest ...float64) float64 {
	for _, v := range rest {
		first = math.Min(first, v)
	}
	return first
}

// TestCalibrateOnValidation checks what calibration promises on the windows
// it was fitted on: the median's weighted error is no worse than last
// value's (the error is convex in the shrinkage, and the validated one is
// only blended toward 0), every step keeps at most its horizonBlend share of
// the change, and the upper quantile covers its share of the actuals plus
// the allowance.
func TestCalibrateOnValidation(t *testing.T) {
	o := tinyOptions()
	ds, _, val := syntheticDataset(t, o, 4)
	p := newParams(o, rand.New(rand.NewSource(3)))
	// A network that moves away from last value, so there is something to shrink.
	for _, h := range p.heads {
		for i := range h.wo.v {
			h.wo.v[i] = 0.3 * math.Sin(float64(i))
		}
	}
	m := snapshot(ds, o, p, val)
	lastValue := snapshot(ds, o, p, val)
	for _, h := range lastValue.p.heads {
		clear(h.wo.v)
	}
	lastValue.finish()
	before, lastErr := medianError(m, ds, val), medianError(lastValue, ds, val)
	if before <= lastErr {
		t.Fatalf("the test network (%v) should be worse than last value (%v) for shrinkage to matter", before, lastErr)
	}
	m.calibrate(ds, val)
	if after := medianError(m, ds, val); !(after <= lastErr+1e-9) {
		t.Errorf("calibrated validation median error %v worse than last value's %v", after, lastErr)
	}
	for i, tgt := range o.Targets {
		for h := range o.Horizon {
			if a := m.Report.Shrinkage[i][h]; a < 0 || a > horizonBlend(h, o.Horizon)+1e-12 {
				t.Errorf("%s step %d: shrinkage %v outside [0, %v]", tgt, h+1, a, horizonBlend(h, o.Horizon))
			}
			if k := m.Report.UpperCalibration[i][h]; k < minUpperCalibration || k > maxUpperCalibration {
				t.Errorf("%s step %d: upper calibration %v outside its bounds", tgt, h+1, k)
			}
		}
		want := o.UpperQuantile + coverageAllowance
		if c := coverage(m, ds, val, tgt); c < want-0.005 || c > want+0.03 {
			t.Errorf("%s: validation coverage after calibration %.3f, want about %v", tgt, c, want)
		}
	}
}

// medianError is the loss-weighted absolute error of every target's median.
func medianError(m *Model, ds *dataset.Dataset, origins []int) float64 {
	o := m.opts
	weights := targetWeights(ds, o)
	var e float64
	for _, last := range origins {
		out := m.Forward(ds.Input(last, o.Window))
		for i, t := range o.Targets {
			ti := indexOf(o.Features, t)
			for h := range o.Horizon {
				for n := range o.Graph.Services {
					if ds.Observed[ti][last+1+h][n] {
						e += weights[i][n] * math.Abs(ds.Normalised(ti, last+1+h, n)-out[string(t)][h*len(o.Graph.Services)+n])
					}
				}
			}
		}
	}
	return e
}

func coverage(m *Model, ds *dataset.Dataset, origins []int, f source.Feature) float64 {
	o := m.opts
	ti, nN := indexOf(o.Features, f), len(o.Graph.Services)
	var in, all int
	for _, last := range origins {
		upper := m.Forward(ds.Input(last, o.Window))[UpperOutputName(f, o.UpperQuantile)]
		for h := range o.Horizon {
			for n := range nN {
				if ds.Observed[ti][last+1+h][n] {
					all++
					if ds.Normalised(ti, last+1+h, n) <= upper[h*nN+n] {
						in++
					}
				}
			}
		}
	}
	return float64(in) / float64(all)
}

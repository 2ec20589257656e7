// Package training is the pipeline behind `foresight train`: read a history
// from any source, align and normalise it with the serving code's window
// (models/dataset), split it chronologically, train the GNN with early
// stopping, and evaluate it on the held-out part it never saw.
package training

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"math"
	"slices"
	"time"

	"github.com/foresightscale/foresight/forecaster/conformal"
	"github.com/foresightscale/foresight/forecaster/model"
	"github.com/foresightscale/foresight/forecaster/source"
	"github.com/foresightscale/foresight/forecaster/synthetic"
	"github.com/foresightscale/foresight/forecaster/topology"
	"github.com/foresightscale/foresight/models/dataset"
	"github.com/foresightscale/foresight/models/gnn"
)

// Config says what to train on and how.
type Config struct {
	Source     source.Source
	SourceName string // for the report: a file name, "synthetic", a URL
	Namespace  string
	Start, End time.Time
	Options    gnn.Options
	// TestFraction of the windows (the most recent) is held out for the
	// report and never used for training or early stopping.
	TestFraction float64
	// ValidationFraction of the remaining windows (the most recent of them)
	// drives early stopping.
	ValidationFraction float64
	// Season is the seasonal context's period in steps, SeasonAuto to
	// detect it on the training part, or SeasonNone.
	Season int
	// Champion, if set, is the serving model the new one must beat: both
	// are backtested on the held-out part (Report.Comparison).
	Champion *model.Model
	// MinHistory is the least history, from the first request-rate or CPU
	// sample to End, worth training on; with less, Run returns an error
	// wrapping ErrNotEnoughHistory. Zero means no minimum.
	MinHistory time.Duration
}

// ErrNotEnoughHistory says the history, from its first sample, is shorter
// than Config.MinHistory: the application is too young to train on yet,
// which a scheduled retrain waits out rather than reports as a failure.
var ErrNotEnoughHistory = errors.New("not enough history")

// DefaultTestFraction and DefaultValidationFraction give the 70/30 split of
// the project's evaluations, with 15 % of the training part for validation.
const (
	DefaultTestFraction       = 0.3
	DefaultValidationFraction = 0.15
)

// Report is written next to the model as report.json.
type Report struct {
	Model     string    `json:"model"`
	Source    string    `json:"source"`
	Start     time.Time `json:"start"`
	End       time.Time `json:"end"`
	Steps     int       `json:"steps"`
	Windows   Split     `json:"windows"`
	Epochs    int       `json:"epochs"`
	BestEpoch int       `json:"bestEpoch"`
	TrainLoss float64   `json:"trainLoss"`
	ValLoss   float64   `json:"validationLoss"`
	Seconds   float64   `json:"trainingSeconds"`
	// Trained is when training finished (serve shows the serving model's
	// age from it).
	Trained time.Time `json:"trained"`
	Stopped string    `json:"stopped"` // "converged", "epochs", "interrupted"
	Test    *TestEval `json:"test,omitempty"`
	// Data says which services and features were modelled, and what was
	// left out of the history and why.
	Data *DataReport `json:"data,omitempty"`
	// Season is the seasonal context the model reads, or why it has none.
	Season *SeasonReport `json:"season,omitempty"`
	// Comparison backtests the new model against the champion (if any) and
	// last value on the held-out part; Decision is what `train --promote`
	// made of it.
	Comparison *Comparison `json:"comparison,omitempty"`
	Decision   *Decision   `json:"decision,omitempty"`
	Normalised bool        `json:"statisticsFromTrainingPartOnly"`
}

// Split counts the windows of each part.
type Split struct {
	Train      int `json:"train"`
	Validation int `json:"validation"`
	Test       int `json:"test"`
}

// TestEval compares the model with last value on the held-out windows, for
// the first target (the request rate; CPU for a history without one), over
// observed actuals, in the target's unit.
type TestEval struct {
	MAEByHorizon          []float64 `json:"maeByHorizon"`
	LastValueMAEByHorizon []float64 `json:"lastValueMaeByHorizon"`
	P90Coverage           *float64  `json:"p90Coverage,omitempty"`
	// P90MeanExcess is the mean of (upper forecast − actual), in the
	// target's unit: what the coverage costs in capacity.
	P90MeanExcess *float64 `json:"p90MeanExcess,omitempty"`
	Points        int      `json:"points"`
}

// Run trains and evaluates. The history starts at its first request-rate
// or CPU sample (Report.Start), not before. On cancellation it returns the
// best model so far with its report and an error wrapping context.Canceled.
func Run(ctx context.Context, cfg Config, progress func(gnn.Progress)) (*gnn.Model, *Report, error) {
	if cfg.TestFraction < 0 || cfg.TestFraction >= 1 || cfg.ValidationFraction <= 0 || cfg.ValidationFraction >= 1 {
		return nil, nil, fmt.Errorf("test fraction %v must be in [0,1) and validation fraction %v in (0,1)", cfg.TestFraction, cfg.ValidationFraction)
	}
	if cfg.MinHistory < 0 {
		return nil, nil, fmt.Errorf("minimum history %v must not be negative", cfg.MinHistory)
	}
	o := cfg.Options
	data, err := cfg.Source.Fetch(ctx, source.Query{
		Namespace: cfg.Namespace, Services: o.Graph.Services, AllServices: len(o.Graph.Services) == 0,
		Features: o.Features, Start: cfg.Start, End: cfg.End, Step: o.Step,
	})
	if err != nil {
		return nil, nil, fmt.Errorf("reading history from %s: %w", cfg.SourceName, err)
	}
	// Without any sample the history is left as asked, and shaping it says
	// what is missing.
	if first, ok := firstSizingSample(data, candidates(data, o), cfg.End); ok {
		cfg.Start = trimmedStart(cfg.Start, first, o.Step)
		if have := cfg.End.Sub(cfg.Start); have < cfg.MinHistory {
			return nil, nil, fmt.Errorf("%w: %s has %v of history (from %s to %s), training needs at least %v",
				ErrNotEnoughHistory, cfg.SourceName, have, cfg.Start.Format(time.RFC3339), cfg.End.Format(time.RFC3339), cfg.MinHistory)
		}
	}
	ds, dataReport, err := shapeFromHistory(data, &o, cfg)
	if err != nil {
		return nil, nil, err
	}
	if err := o.Validate(); err != nil {
		return nil, nil, fmt.Errorf("model options: %w", err)
	}
	all := ds.Origins(o.Window, o.Horizon, 0, ds.Steps)
	nTest := int(float64(len(all)) * cfg.TestFraction)
	nVal := int(float64(len(all)-nTest) * cfg.ValidationFraction)
	nTrain := len(all) - nTest - nVal
	if nTrain < 50 || nVal < 10 {
		return nil, nil, fmt.Errorf("history %s..%s has %d windows of %d+%d steps: too short to train (need ≥ 50 training and 10 validation windows)",
			cfg.Start.Format(time.RFC3339), cfg.End.Format(time.RFC3339), len(all), o.Window, o.Horizon)
	}
	train, val, test := all[:nTrain], all[nTrain:nTrain+nVal], all[nTrain+nVal:]
	season, err := chooseSeason(ds, &o, cfg.Season, train[len(train)-1]+1)
	if err != nil {
		return nil, nil, err
	}
	// Statistics from what training may see: every step up to the last
	// training window's last target.
	if err := ds.FitNormalization(train[len(train)-1] + o.Horizon + 1); err != nil {
		return nil, nil, err
	}

	start := time.Now()
	report := &Report{
		Model: o.Name, Source: cfg.SourceName, Start: cfg.Start, End: cfg.End, Steps: ds.Steps,
		Windows: Split{Train: len(train), Validation: len(val), Test: len(test)}, Normalised: true,
		Stopped: "converged", Data: dataReport, Season: season,
	}
	track := func(p gnn.Progress) {
		report.Epochs = p.Epoch
		if p.Improved {
			report.BestEpoch, report.TrainLoss, report.ValLoss = p.Epoch, p.TrainLoss, p.ValLoss
		}
		if progress != nil {
			progress(p)
		}
	}
	m, trainErr := gnn.Train(ctx, ds, train, val, o, track)
	report.Seconds, report.Trained = time.Since(start).Seconds(), time.Now().UTC().Truncate(time.Second)
	switch {
	case trainErr != nil && errors.Is(trainErr, context.Canceled) && m != nil:
		report.Stopped = "interrupted"
	case trainErr != nil:
		return nil, nil, fmt.Errorf("training: %w", trainErr)
	case report.Epochs >= o.Epochs:
		report.Stopped = "epochs"
	}
	if len(test) > 0 {
		var points map[int][]float64
		report.Test, points = evaluate(m, ds, test, o)
		c := compare(points, ds, data, test, o, cfg.Champion)
		report.Comparison = &c
	}
	return m, report, trainErr
}

// evaluate measures the first target's forecast on the test windows. The
// upper quantile is judged as serve publishes it: the median plus the
// quantile of the median's recent errors (forecaster/conformal), replayed
// over every origin from far enough before the test part to fill the
// tracker, the model's own upper output while too few errors exist. It
// also returns the median forecasts of every test origin, in the target's
// unit, row-major [horizon, services], for the champion/challenger
// comparison.
func evaluate(m *gnn.Model, ds *dataset.Dataset, origins []int, o gnn.Options) (*TestEval, map[int][]float64) {
	ti := ds.FeatureIndex(o.Targets[0])
	st := ds.Norm[o.Targets[0]]
	nN, nH := len(ds.Services), o.Horizon
	ev := &TestEval{MAEByHorizon: make([]float64, nH), LastValueMAEByHorizon: make([]float64, nH)}
	counts := make([]int, nH)
	var covered, upperPoints int
	var excess float64
	tracker, err := conformal.New(nN, nH, o.UpperQuantile, conformal.DefaultWindow, conformal.DefaultMinResiduals)
	if err != nil {
		return ev, nil // unreachable: Options.Validate keeps the quantile in (0.5, 1)
	}
	points := make(map[int][]float64, len(origins))
	denorm := func(v []float64) []float64 {
		out := make([]float64, len(v))
		for k, x := range v {
			out[k] = x*st.Std[k%nN] + st.Mean[k%nN]
		}
		return out
	}
	first := origins[0]
	actual := make([]float64, nN)
	for last := max(o.Window-1, first-conformal.DefaultWindow-nH-1); last <= origins[len(origins)-1]; last++ {
		out := m.Forward(m.Input(ds, last))
		point, upper := denorm(out[string(o.Targets[0])]), denorm(out[gnn.UpperOutputName(o.Targets[0], o.UpperQuantile)])
		for n := range nN {
			actual[n] = math.NaN()
			if ds.Observed[ti][last][n] {
				actual[n] = ds.Raw[ti][last][n]
			}
		}
		_ = tracker.Observe(int64(last), actual) // sizes are right by construction
		_ = tracker.Record(int64(last), point)
		if last < first {
			continue
		}
		points[last] = point
		for h := range nH {
			for n := range nN {
				if !ds.Observed[ti][last+1+h][n] {
					continue
				}
				k := h*nN + n
				y := ds.Raw[ti][last+1+h][n]
				ev.MAEByHorizon[h] += math.Abs(point[k] - y)
				ev.LastValueMAEByHorizon[h] += math.Abs(ds.Raw[ti][last][n] - y)
				counts[h]++
				u := upper[k]
				if a, ok := tracker.Upper(h, n, point[k]); ok {
					u = a
				}
				upperPoints++
				if y <= u {
					covered++
				}
				excess += u - y
			}
		}
	}
	for h := range nH {
		if counts[h] > 0 {
			ev.MAEByHorizon[h] /= float64(counts[h])
			ev.LastValueMAEByHorizon[h] /= float64(counts[h])
		}
		ev.Points += counts[h]
	}
	if upperPoints > 0 {
		c, e := float64(covered)/float64(upperPoints), excess/float64(upperPoints)
		ev.P90Coverage, ev.P90MeanExcess = &c, &e
	}
	return ev, points
}

// shapeFromHistory decides what the model is trained on from the history
// itself: the services (those in o.Graph.Services, or every service the
// source returned), the features and targets that have usable data, the
// call-graph edges between modelled services. It updates o and returns the
// aligned dataset and what it decided.
func shapeFromHistory(data source.Data, o *gnn.Options, cfg Config) (*dataset.Dataset, *DataReport, error) {
	candidates := candidates(data, *o)
	span := fmt.Sprintf("%s..%s", cfg.Start.Format(time.RFC3339), cfg.End.Format(time.RFC3339))
	switch {
	case len(candidates) == 0:
		return nil, nil, fmt.Errorf("no series of any service in %s over %s (features %v): check the source, namespace and time range", cfg.SourceName, span, o.Features)
	case len(candidates) > topology.MaxServices:
		return nil, nil, fmt.Errorf("%d services in %s, over the limit of %d", len(candidates), cfg.SourceName, topology.MaxServices)
	}
	all, err := dataset.BuildPartial(data, candidates, o.Features, cfg.Start, cfg.End, o.Step)
	if err != nil {
		return nil, nil, err
	}
	use := survey(all)
	report, err := choose(all, use, o.Targets, o.Graph.Edges)
	if err != nil {
		return nil, report, fmt.Errorf("history %s over %s: %w", cfg.SourceName, span, err)
	}
	// A series too sparse to use is not an input at all, as it will not be
	// when serving (the manifest lists it as unobserved).
	for f, feat := range all.Features {
		for n, svc := range all.Services {
			if !use[f][n].usable() {
				delete(data[feat], svc)
			}
		}
	}
	o.Graph = topology.Graph{Services: report.Services, Edges: report.keptEdges(o.Graph.Edges)}
	o.Features, o.Targets, o.Unobserved = report.Features, report.Targets, report.Unobserved
	ds, err := dataset.BuildPartial(data, o.Graph.Services, o.Features, cfg.Start, cfg.End, o.Step)
	return ds, report, err
}

// candidates are the services training may model: those the options name,
// or every service in the history.
func candidates(data source.Data, o gnn.Options) []string {
	if len(o.Graph.Services) > 0 {
		return o.Graph.Services
	}
	return servicesIn(data)
}

// firstSizingSample returns the time of the earliest real (finite,
// non-negative) request-rate or CPU sample of any of the services before
// end, and false when there is none.
func firstSizingSample(data source.Data, services []string, end time.Time) (time.Time, bool) {
	var first time.Time
	found := false
	for _, f := range []source.Feature{source.Requests, source.CPU} {
		for _, svc := range services {
			for _, s := range data[f][svc] { // time-ordered
				if !s.Time.Before(end) {
					break
				}
				if math.IsNaN(s.Value) || math.IsInf(s.Value, 0) || s.Value < 0 {
					continue
				}
				if !found || s.Time.Before(first) {
					first, found = s.Time, true
				}
				break
			}
		}
	}
	return first, found
}

// trimmedStart moves start forward to the step of its grid at or before
// first. A young application's range of days may hold hours of data:
// counting the empty days would make every series look too sparse to
// train on.
func trimmedStart(start, first time.Time, step time.Duration) time.Time {
	if step <= 0 || !first.After(start) { // a bad step is Options.Validate's to report
		return start
	}
	return start.Add(first.Sub(start) / step * step)
}

// servicesIn returns every service with a series in data, sorted.
func servicesIn(data source.Data) []string {
	seen := make(map[string]bool)
	for _, byService := range data {
		for s := range byService {
			seen[s] = true
		}
	}
	return slices.Sorted(maps.Keys(seen))
}

// DemoOptions are the shipped demo model's recipe: the default network on
// the synthetic workload's Online Boutique topology, named boutique-gnn.
// `foresight train --synthetic` and the reproducibility test share it.
func DemoOptions() gnn.Options {
	o := gnn.DefaultOptions(topology.OnlineBoutique())
	o.Name = "boutique-gnn"
	return o
}

// SyntheticDays is how much synthetic history the shipped models learn from.
const SyntheticDays = 3

// SyntheticConfig trains on days of the built-in synthetic workload (seed 1,
// fixed start), so the result is the same on every machine: the recipe of
// the shipped demo model.
func SyntheticConfig(days int, opts gnn.Options) (Config, error) {
	gen, err := synthetic.New(synthetic.DefaultConfig(), opts.Graph)
	if err != nil {
		return Config{}, fmt.Errorf("synthetic workload: %w", err)
	}
	if days < 1 {
		return Config{}, fmt.Errorf("synthetic history of %d days: need at least 1", days)
	}
	start := SyntheticHistoryStart
	return Config{
		Source: source.NewSynthetic(gen), SourceName: "synthetic (seed 1)", Namespace: "default",
		Start: start, End: start.Add(time.Duration(days) * 24 * time.Hour), Options: opts,
		TestFraction: DefaultTestFraction, ValidationFraction: DefaultValidationFraction,
	}, nil
}

// SyntheticHistoryStart is where synthetic training histories start.
var SyntheticHistoryStart = time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)

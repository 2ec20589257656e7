package backtest

import (
	"context"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/foresightscale/foresight/forecaster/baseline"
	"github.com/foresightscale/foresight/forecaster/model"
	"github.com/foresightscale/foresight/forecaster/source"
	"github.com/foresightscale/foresight/internal/textlimit"
	"github.com/foresightscale/foresight/models/dataset"
)

// Options are the knobs of Evaluate.
type Options struct {
	// Split is the share of the history used for training (0 < Split < 1);
	// the rest is the test part.
	Split float64
	// Stride evaluates every Stride-th origin.
	Stride int
	// Season is the seasonal period in steps for the seasonal baselines; 0
	// detects it per service on the training part.
	Season int
	// Target is the feature scored: the request rate (default) or CPU. The
	// model must forecast it.
	Target source.Feature
}

// DefaultOptions are the command's defaults.
func DefaultOptions() Options { return Options{Split: 0.7, Stride: 1, Target: source.Requests} }

// Evaluate backtests the model under test (reported as "gnn") and every
// classical baseline on the request rate of a recorded wide-format CSV: the
// file's whole span, aligned to the model's step through the same dataset
// code as training, split at opts.Split. The file may cover any time range;
// it must hold every service and feature the model reads.
func Evaluate(ctx context.Context, m *model.Model, csvPath string, opts Options) (*Result, error) {
	if !(opts.Split > 0 && opts.Split < 1) {
		return nil, fmt.Errorf("backtest: split must be in (0,1), got %v", opts.Split)
	}
	if opts.Target == "" {
		opts.Target = source.Requests
	}
	if opts.Target != source.Requests && opts.Target != source.CPU {
		return nil, fmt.Errorf("backtest: target %q: want requests or cpu", opts.Target)
	}
	csv, err := source.NewCSV(csvPath, source.CSVOptions{})
	if err != nil {
		return nil, fmt.Errorf("backtest: %w", err)
	}
	man := m.Manifest()
	ds, err := csvDataset(ctx, csv, csvPath, man, opts.Target)
	if err != nil {
		return nil, err
	}
	var ignored []string
	for _, svc := range csv.Services() {
		if !slices.Contains(man.Services, svc) {
			ignored = append(ignored, svc)
		}
	}
	gnn, err := baseline.NewModel(m)
	if err != nil {
		return nil, fmt.Errorf("backtest: %w", err)
	}
	classical, err := baseline.Classical(baseline.Options{Window: man.Window, Season: opts.Season})
	if err != nil {
		return nil, fmt.Errorf("backtest: %w", err)
	}
	trainEnd := int(math.Round(opts.Split * float64(ds.Steps)))
	res, err := Run(ctx, ds, Config{
		Target:    opts.Target,
		Window:    man.Window,
		Horizon:   man.Horizon,
		TrainEnd:  trainEnd,
		Stride:    opts.Stride,
		Methods:   append([]baseline.Method{gnn}, classical...),
		ModelName: man.Name,
	})
	if err != nil {
		return nil, err
	}
	res.Report.IgnoredServices = ignored
	return res, nil
}

// csvDataset aligns the whole file to the model's services, features and
// step. Series the model was trained without (manifest.unobserved) are left
// out, as they are when serving; every other series must be in the file.
func csvDataset(ctx context.Context, csv *source.CSV, name string, man *model.Manifest, target source.Feature) (*dataset.Dataset, error) {
	have := csv.Services()
	var missing []string
	for _, svc := range man.Services {
		if !slices.Contains(have, svc) {
			missing = append(missing, svc)
		}
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("backtest: %s has no columns for service(s) %s, which model %s forecasts (the file has %s)",
			name, strings.Join(missing, ", "), man.Name, strings.Join(have, ", "))
	}
	if _, ok := man.Output(target, 0.5); !ok {
		return nil, fmt.Errorf("backtest: model %s does not forecast %s, the feature scored (--target)", man.Name, target)
	}
	start, end := csv.Span()
	data, err := csv.Fetch(ctx, source.Query{
		Services: man.Services, Features: man.Features,
		Start: start, End: end, Step: time.Duration(man.Step),
	})
	if err != nil {
		return nil, fmt.Errorf("backtest: reading %s: %w", name, err)
	}
	for feat, services := range man.Unobserved {
		for _, svc := range services {
			delete(data[feat], svc)
		}
	}
	ds, err := dataset.BuildPartial(data, man.Services, man.Features, start, end, time.Duration(man.Step))
	if err != nil {
		return nil, fmt.Errorf("backtest: %s: %w", name, err)
	}
	var absent []string
	for fi, feat := range man.Features {
		for n, svc := range man.Services {
			if ds.NoData[fi][n] && !man.IsUnobserved(feat, svc) {
				absent = append(absent, fmt.Sprintf("%s of %s", feat, svc))
			}
		}
	}
	if len(absent) > 0 {
		return nil, fmt.Errorf("backtest: %s has no data for %d series model %s reads: %s", name, len(absent), man.Name, textlimit.List(absent, 10))
	}
	return ds, nil
}

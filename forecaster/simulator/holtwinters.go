package simulator

import (
	"context"
	"fmt"
	"math"
	"time"

	"github.com/foresightscale/foresight/forecaster/baseline"
	"github.com/foresightscale/foresight/forecaster/policy"
	"github.com/foresightscale/foresight/forecaster/simulator/hpa"
	"github.com/foresightscale/foresight/forecaster/source"
	"github.com/foresightscale/foresight/models/dataset"
	commonmodel "github.com/prometheus/common/model"
)

// PolicyHoltWinters names the Holt-Winters policy.
const PolicyHoltWinters = "holt-winters"

// HoltWintersOptions configure the Holt-Winters policy.
type HoltWintersOptions struct {
	// Policy sizes replicas from the forecast as Foresight's does (services
	// it does not size are sized as Sizing says).
	Policy            policy.Config
	TargetUtilisation float64
	Sizing            Sizing
	// Step is the series' resolution and the interval between forecasts;
	// Horizon how many steps each forecast covers.
	Step    time.Duration
	Horizon int
}

// HoltWinters is what predictive-horizontal-pod-autoscaler users run: a
// Holt-Winters forecast per service, refitted on the whole history at every
// interval (forecaster/baseline's additive model: the season is detected,
// else Holt's linear trend), sized by the same policy as Foresight and
// driving the same HPA. It forecasts each service alone, without the graph.
func HoltWinters(o HoltWintersOptions) (Scaler, error) {
	if !(o.TargetUtilisation > 0 && o.TargetUtilisation <= 1) {
		return nil, fmt.Errorf("holt-winters policy: target utilisation must be in (0,1], got %v", o.TargetUtilisation)
	}
	if o.Step < time.Second || o.Step%time.Second != 0 || o.Horizon < 1 {
		return nil, fmt.Errorf("holt-winters policy: step %v (whole seconds) and horizon %d (≥ 1) required", o.Step, o.Horizon)
	}
	s := &hpaScaler{name: PolicyHoltWinters, config: externalHPA}
	var (
		pol       policy.Config
		predicted []float64
		previous  []int64
	)
	interval := int(o.Step / time.Second)
	s.start = func(run *Run) error {
		var err error
		if pol, err = appPolicy(o.Policy, run.Config, o.TargetUtilisation, o.Sizing); err != nil {
			return fmt.Errorf("holt-winters policy: %w", err)
		}
		predicted = make([]float64, len(run.Config.App.Services))
		previous = make([]int64, len(run.Config.App.Services))
		for i := range predicted {
			predicted[i] = math.NaN()
		}
		return nil
	}
	s.prepare = func(t int) error {
		if t%interval != 0 {
			return nil
		}
		app := s.run.Config.App
		steps := t / interval
		if steps < 8 {
			return nil // too little history to fit a trend; the HPAs hold
		}
		names := make([]string, len(app.Services))
		for i, svc := range app.Services {
			names[i] = svc.Name
		}
		first := At(t - (steps-1)*interval)
		data, err := (&Source{Run: s.run}).Fetch(context.Background(), source.Query{
			Services: names, Features: []source.Feature{source.Requests}, Start: first, End: At(t), Step: o.Step,
		})
		if err != nil {
			return fmt.Errorf("holt-winters policy: %w", err)
		}
		ds, err := dataset.Build(data, names, []source.Feature{source.Requests}, first, At(t), o.Step)
		if err != nil {
			return fmt.Errorf("holt-winters policy: %w", err)
		}
		hw := &baseline.HoltWinters{}
		if err := hw.Fit(ds, 0, ds.Steps); err != nil {
			return fmt.Errorf("holt-winters policy at second %d: %w", t, err)
		}
		fc, err := hw.Forecast(ds, 0, ds.Steps-1, o.Horizon)
		if err != nil {
			return fmt.Errorf("holt-winters policy at second %d: %w", t, err)
		}
		for i, svc := range app.Services {
			series := make([]float64, o.Horizon)
			for h := range series {
				series[h] = fc[h][i]
			}
			d, err := pol.Decide(svc.Name, series, o.Step, previous[i])
			if err != nil {
				predicted[i] = math.NaN() // a bad forecast is not published
				continue
			}
			predicted[i], previous[i] = float64(d.Replicas), d.Replicas
		}
		return nil
	}
	s.metrics = func(t, i int) []hpa.Metric { return externalMetric(predicted[i]) }
	return s, nil
}

// Sizing says how the forecasting policies turn a forecast into pods.
type Sizing string

const (
	// SizingQueueing gives each service the policy's queueing sizing: its
	// pod rate, which an operator knows from the CPU request and the CPU a
	// request costs, and a share of the SLO as its latency budget (see
	// LatencyBudgets). Services whose share is below an idle pod's own p99
	// fall back to SizingCapacity.
	SizingQueueing Sizing = "queueing"
	// SizingCapacity sizes every service for a fixed capacity per pod: its
	// pod rate at the target utilisation, as the CPU HPA aims.
	SizingCapacity Sizing = "capacity"
)

// appPolicy completes a policy for the application: each service's replica
// bounds and, unless configured, how it is sized (see Sizing).
func appPolicy(p policy.Config, cfg Config, utilisation float64, sizing Sizing) (policy.Config, error) {
	app := cfg.App
	budgets := LatencyBudgets(&app, cfg.SLO)
	services := make(map[string]policy.ServiceConfig, len(app.Services))
	for name, sc := range p.Services {
		services[name] = sc
	}
	names := make([]string, len(app.Services))
	for i, svc := range app.Services {
		names[i] = svc.Name
		sc := services[svc.Name]
		configured := sc.CapacityPerPod > 0 || sc.PodRate > 0
		floor := time.Duration(math.Log(100) / svc.PodRate() * float64(time.Second))
		switch {
		case configured:
		case sizing == SizingQueueing && budgets[i] > floor:
			sc.PodRate, sc.LatencyP99 = svc.PodRate(), commonmodel.Duration(budgets[i])
		default:
			sc.CapacityPerPod = svc.PodRate() * utilisation
		}
		sc.MinReplicas, sc.MaxReplicas = int64(svc.MinReplicas), int64(svc.MaxReplicas)
		services[svc.Name] = sc
	}
	p.Services = services
	if err := p.Validate(names); err != nil {
		return policy.Config{}, err
	}
	return p, nil
}

// LatencyBudgets splits the SLO among the services on each typical request
// path in proportion to their service times (a slow service gets more of
// it), and gives a service on several paths its smallest share. Services on
// no typical path get 0 (no budget). An operator would set these as each
// team's latency objective; proportional shares are a neutral default.
func LatencyBudgets(app *App, slo time.Duration) []time.Duration {
	budgets := make([]time.Duration, len(app.Services))
	var walk func(i int, path []int)
	walk = func(i int, path []int) {
		path = append(path, i)
		if len(app.typicalOut[i]) == 0 {
			var total float64
			for _, j := range path {
				total += 1 / app.Services[j].PodRate()
			}
			for _, j := range path {
				share := time.Duration(float64(slo) * (1 / app.Services[j].PodRate()) / total)
				if budgets[j] == 0 || share < budgets[j] {
					budgets[j] = share
				}
			}
			return
		}
		for _, j := range app.typicalOut[i] {
			walk(j, path)
		}
	}
	walk(app.graph.Index(app.Entry), nil)
	return budgets
}

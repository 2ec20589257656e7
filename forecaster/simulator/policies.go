package simulator

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	commonmodel "github.com/prometheus/common/model"

	"github.com/foresightscale/foresight/forecaster"
	"github.com/foresightscale/foresight/forecaster/model"
	"github.com/foresightscale/foresight/forecaster/policy"
	"github.com/foresightscale/foresight/forecaster/simulator/hpa"
	"github.com/foresightscale/foresight/forecaster/snapshot"
)

// Policy names, as the report and the command use them.
const (
	PolicyCPUHPA     = "cpu-hpa"
	PolicyCPUHPAFast = "cpu-hpa-fast"
	PolicyForesight  = "foresight"
	PolicyOracle     = "oracle"
	PolicyStatic     = "static"
)

// hpaScaler drives one simulated stock HPA per service. metrics says what
// the HPA observes at a sync; prepare runs first every second (a forecast
// loop publishing its metric).
type hpaScaler struct {
	name    string
	config  func(Service) hpa.Config
	metrics func(t, i int) []hpa.Metric
	prepare func(t int) error
	start   func(run *Run) error

	run     *Run
	hpas    []*hpa.HPA
	current []int32
}

func (s *hpaScaler) Name() string { return s.name }

func (s *hpaScaler) Start(run *Run) ([]int32, error) {
	s.run = run
	initial, err := initialReplicas(run)
	if err != nil {
		return nil, err
	}
	s.current = initial
	s.hpas = make([]*hpa.HPA, len(run.Config.App.Services))
	for i, svc := range run.Config.App.Services {
		h, err := hpa.New(s.config(svc))
		if err != nil {
			return nil, fmt.Errorf("HPA of %s: %w", svc.Name, err)
		}
		s.hpas[i] = h
	}
	if s.start != nil {
		if err := s.start(run); err != nil {
			return nil, err
		}
	}
	return s.current, nil
}

func (s *hpaScaler) Tick(t int) ([]int32, error) {
	if s.prepare != nil {
		if err := s.prepare(t); err != nil {
			return nil, err
		}
	}
	now := time.Duration(t) * time.Second
	for i, h := range s.hpas {
		if !h.Due(now) {
			continue
		}
		// The pods that exist: status.replicas for External AverageValue.
		status := int32(len(s.run.Pods[i]))
		desired, rescale, err := h.SyncScale(now, s.current[i], status, s.metrics(t, i))
		if err != nil && !errors.Is(err, hpa.ErrMetricsUnavailable) {
			return nil, fmt.Errorf("HPA of %s: %w", s.run.Config.App.Services[i].Name, err)
		}
		if rescale {
			s.current[i] = desired
		}
	}
	return s.current, nil
}

// initialReplicas is where every policy starts: sized for the first
// minute's mean rate, as if the deployment had settled on it.
func initialReplicas(run *Run) ([]int32, error) {
	n, err := run.Config.SizeFor(firstMinuteMean(run.Trace.RPS))
	if err != nil {
		return nil, fmt.Errorf("initial replicas: %w", err)
	}
	return n, nil
}

// CPUHPA is the stock HPA on CPU utilisation: target percent of the pods'
// request, the controller's sync period and the default behaviour except
// for the scale-down stabilisation window.
func CPUHPA(name string, target int32, sync, downStabilisation time.Duration) Scaler {
	s := &hpaScaler{name: name}
	s.config = func(svc Service) hpa.Config {
		c := hpa.DefaultConfig(svc.MinReplicas, svc.MaxReplicas)
		c.SyncPeriod = sync
		c.Behavior.ScaleDown.StabilizationWindow = &downStabilisation
		return c
	}
	s.metrics = func(t, i int) []hpa.Metric {
		return []hpa.Metric{{
			Kind: hpa.ResourceUtilization, Resource: hpa.ResourceCPU, TargetUtilization: target,
			Pods: s.run.cpuSamples(t, i),
		}}
	}
	return s
}

// DefaultCPUHPA is the CPU HPA the comparison defaults to: 70 %, 15 s sync,
// 300 s scale-down stabilisation (the upstream defaults).
func DefaultCPUHPA() Scaler { return CPUHPA(PolicyCPUHPA, 70, 15*time.Second, 300*time.Second) }

// FastCPUHPA is Autothrottle's "fast" HPA baseline: 1 s sync, 20 s
// scale-down stabilisation.
func FastCPUHPA(target int32) Scaler {
	return CPUHPA(PolicyCPUHPAFast, target, time.Second, 20*time.Second)
}

// cpuSamples is what metrics-server reports for service i's pods at second
// t: each ready pod's mean CPU over the last metric window; a pod that does
// not serve yet has no sample.
func (r *Run) cpuSamples(t, i int) []hpa.Pod {
	svc := r.Config.App.Services[i]
	window := int(r.Config.MetricWindow / time.Second)
	from := max(t-window, 0)
	var perPod float64
	var seconds int
	for s := from; s < t; s++ {
		if ready := r.Ready[i][s]; ready > 0 {
			perPod += r.CPU[i][s] / float64(ready)
			seconds++
		}
	}
	usage := math.NaN()
	if seconds > 0 {
		usage = perPod / float64(seconds)
	}
	pods := make([]hpa.Pod, len(r.Pods[i]))
	for k, p := range r.Pods[i] {
		pods[k] = hpa.Pod{
			Ready:     p.Ready(t),
			StartedAt: time.Duration(p.Created) * time.Second,
			ReadyAt:   time.Duration(p.ReadyAt) * time.Second,
			Usage:     math.NaN(),
			Request:   svc.CoresPerPod,
		}
		if p.Ready(t) && p.ReadyAt < t {
			pods[k].Usage = usage
		} else if !p.Ready(t) {
			pods[k].ReadyAt = time.Duration(p.Created) * time.Second
		}
	}
	return pods
}

// externalHPA is the HPA every forecasting policy drives: an External
// metric with averageValue 1 whose value is the predicted replicas, and the
// behaviour of Foresight's example HPA (tolerance 0 both ways, no
// scale-down stabilisation: the forecast already looks ahead).
func externalHPA(svc Service) hpa.Config {
	c := hpa.DefaultConfig(svc.MinReplicas, svc.MaxReplicas)
	zero, none := 0.0, time.Duration(0)
	c.Behavior.ScaleUp.Tolerance = &zero
	c.Behavior.ScaleDown.Tolerance = &zero
	c.Behavior.ScaleDown.StabilizationWindow = &none
	return c
}

func externalMetric(value float64) []hpa.Metric {
	return []hpa.Metric{{Kind: hpa.ExternalAverageValue, Value: value, Target: 1}}
}

// Oracle knows the trace: it publishes, for each service, the replicas
// SizeFor says the peak of the coming lead time needs, where the lead time
// covers the slowest pod start-up and an HPA sync. The upper bound of what
// forecasting can achieve through the same HPA.
func Oracle() Scaler {
	s := &hpaScaler{name: PolicyOracle, config: externalHPA}
	var need [][]int32 // [second][service], computed once
	s.start = func(run *Run) error {
		memo := map[int][]int32{}
		need = make([][]int32, len(run.Trace.RPS))
		for t, rps := range run.Trace.RPS {
			key := int(math.Ceil(rps)) // sizing for the next whole req/s is safe and bounds the work
			n, ok := memo[key]
			if !ok {
				var err error
				if n, err = run.Config.SizeFor(float64(key)); err != nil {
					return fmt.Errorf("oracle at second %d: %w", t, err)
				}
				memo[key] = n
			}
			need[t] = n
		}
		return nil
	}
	s.metrics = func(t, i int) []hpa.Metric {
		cfg := s.run.Config
		lead := int(math.Ceil(cfg.StartupDelay.Seconds()*(1+cfg.StartupJitter))) + int(s.hpas[i].Config().SyncPeriod/time.Second)
		var peak int32
		for u := t; u < min(t+lead+1, len(need)); u++ {
			peak = max(peak, need[u][i])
		}
		return externalMetric(float64(peak))
	}
	return s
}

// ForesightOptions configure the Foresight policy in the simulation.
type ForesightOptions struct {
	Model *model.Model
	// Policy is Foresight's policy; services it does not size are sized
	// as Sizing says (TargetUtilisation is the capacity sizing's).
	Policy            policy.Config
	TargetUtilisation float64
	Sizing            Sizing
	// Interval between forecast cycles; default the model's step.
	Interval time.Duration
	// SLOFeedback tunes the headroom from the entry service's measured p99
	// against the run's SLO (policy.slo, as serve runs it), starting from
	// Policy.Headroom.
	SLOFeedback bool
	// Name overrides the report name (sweeps).
	Name string
}

// Foresight runs Foresight's own forecast loop (forecaster.Forecaster: the
// window, the model, the policy, exactly as `foresight serve` runs them) on
// the simulated metrics, and drives each service's HPA with the published
// foresight_predicted_replicas.
func Foresight(o ForesightOptions) (Scaler, error) {
	if o.Model == nil {
		return nil, errors.New("foresight policy: no model")
	}
	if !(o.TargetUtilisation > 0 && o.TargetUtilisation <= 1) {
		return nil, fmt.Errorf("foresight policy: target utilisation must be in (0,1], got %v", o.TargetUtilisation)
	}
	name := o.Name
	if name == "" {
		name = PolicyForesight
	}
	s := &hpaScaler{name: name, config: externalHPA}
	man := o.Model.Manifest()
	var (
		fc        *forecaster.Forecaster
		interval  int       // seconds between cycles
		predicted []float64 // per service, the value the HPA reads (NaN: none)
		clock     time.Time // the forecaster's "now": simulated time
	)
	s.start = func(run *Run) error {
		app := run.Config.App
		names := make([]string, len(app.Services))
		for i, svc := range app.Services {
			names[i] = svc.Name
		}
		if !slices.Equal(slices.Sorted(slices.Values(names)), slices.Sorted(slices.Values(man.Services))) {
			return fmt.Errorf("foresight policy: model %s forecasts %s, application %s has %s: train a model on this application's history (foresight train) and pass it with --model, or leave foresight out of --policy",
				man.Name, strings.Join(man.Services, ", "), app.Name, strings.Join(names, ", "))
		}
		pol, err := appPolicy(o.Policy, run.Config, o.TargetUtilisation, o.Sizing)
		if err != nil {
			return fmt.Errorf("foresight policy: %w", err)
		}
		if o.SLOFeedback {
			pol.SLO = &policy.SLOConfig{LatencyP99: commonmodel.Duration(run.Config.SLO), Service: app.Entry}
		}
		session, err := o.Model.NewSession()
		if err != nil {
			return fmt.Errorf("foresight policy: %w", err)
		}
		fc, err = forecaster.New(forecaster.Options{
			Source: &Source{Run: run}, Manifest: man, Predictor: session, Policy: pol,
			Store: &snapshot.Store{}, Interval: o.Interval, Registerer: prometheus.NewRegistry(),
			Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Now: func() time.Time { return clock },
		})
		if err != nil {
			return fmt.Errorf("foresight policy: %w", err)
		}
		interval = int(time.Duration(man.Step) / time.Second)
		if o.Interval > 0 {
			interval = int(o.Interval / time.Second)
		}
		if interval < 1 {
			return fmt.Errorf("foresight policy: interval %v is under a second", o.Interval)
		}
		predicted = make([]float64, len(app.Services))
		for i := range predicted {
			predicted[i] = math.NaN() // no forecast yet: the HPA holds
		}
		return nil
	}
	s.prepare = func(t int) error {
		if t%interval != 0 {
			return nil
		}
		clock = At(t)
		snap, err := fc.Cycle(context.Background(), clock)
		if err != nil && snap == nil {
			return nil // nothing published: the HPAs hold, as in a cluster
		}
		for i := range predicted {
			predicted[i] = math.NaN()
		}
		for _, p := range snap.Fresh(At(t), "") {
			if i := s.run.Config.App.graph.Index(p.Service); i >= 0 {
				predicted[i] = float64(p.PredictedReplicas)
			}
		}
		return nil
	}
	s.metrics = func(t, i int) []hpa.Metric { return externalMetric(predicted[i]) }
	return s, nil
}

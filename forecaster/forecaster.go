// Package forecaster runs the forecast loop: every step it fetches the recent
// history from a source, builds the model's input window, runs the model,
// turns the forecast into replica counts with the policy, and publishes a new
// snapshot. Data flows one way; publishers only read the snapshot store.
package forecaster

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/foresightscale/foresight/forecaster/budget"
	"github.com/foresightscale/foresight/forecaster/conformal"
	"github.com/foresightscale/foresight/forecaster/model"
	"github.com/foresightscale/foresight/forecaster/policy"
	"github.com/foresightscale/foresight/forecaster/snapshot"
	"github.com/foresightscale/foresight/forecaster/source"
	"github.com/foresightscale/foresight/forecaster/window"
	"github.com/foresightscale/foresight/internal/textlimit"
)

// Predictor runs a model on one normalised input tensor and returns its
// outputs by name (row-major [horizon, services], normalised units).
// A model session implements it; it need not be safe for concurrent use.
type Predictor interface {
	Predict(input []float64) (map[string][]float64, error)
}

// Reasons a service's prediction is held rather than fresh.
const (
	HeldSourceError = "source_error"
	HeldMissingData = "missing_data"
	HeldBadForecast = "bad_forecast"
	HeldModelError  = "model_error"
	HeldTimeout     = "timeout"
	// HeldStaleInput: the newest real sample of a feature replicas are sized
	// from is older than MaxInputAge, so a forecast would be about the past.
	HeldStaleInput = "stale_input"
)

// Bounds of the loop's timing, checked by New.
const (
	// MinInterval keeps a misconfigured loop from sending thousands of
	// queries a second to the metrics backend.
	MinInterval = time.Second
	// DefaultMaxInputAge is the default bound on input staleness; it is
	// raised to two model steps for models with a long step.
	DefaultMaxInputAge = 2 * time.Minute
)

const (
	resultOK       = "ok"
	resultDegraded = "degraded"
	resultFailed   = "failed"
)

// Options configure a Forecaster. Zero durations take the defaults noted.
type Options struct {
	Source   source.Source
	Manifest *model.Manifest
	// Predictor runs Manifest's model; it may be nil only with NoModel's
	// manifest, which runs nothing until SetModel brings a model.
	Predictor Predictor
	Policy    policy.Config
	Store     *snapshot.Store
	Namespace string // Kubernetes namespace of the model's services; default "default"
	// Services, when set, are the services this loop owns in Namespace (an
	// application sharing its namespace with others): series of any other
	// service are ignored, and model services outside it are not published.
	// Empty means every service in Namespace.
	Services []string
	// OtherApps are the services other applications own in Namespace: with
	// Services set, a service of the data in neither list is reported as
	// unowned (nothing forecasts it); these are not.
	OtherApps []string
	// Interval between cycles; default: the model's step.
	Interval time.Duration
	// Timeout bounds one cycle; default: 80% of Interval.
	Timeout time.Duration
	// StaleAfter is how long a last good prediction may be held when new
	// cycles fail; after that the service is not published at all and the
	// HPA holds its current replicas. Default 5m.
	StaleAfter time.Duration
	// MaxMissingFraction is the largest share of a service's window (in a
	// feature replicas are sized from: requests, CPU) that may be imputed
	// before its forecast is not trusted. Default 0.5. Other features
	// (latency, memory, replicas) are filled and counted but never block a
	// forecast: an idle service has no latency series at all.
	MaxMissingFraction float64
	// MaxInputAge is how old the newest real sample of a sizing feature may
	// be before the service is held as stale_input. Default: the larger of
	// DefaultMaxInputAge and two model steps.
	MaxInputAge time.Duration
	Registerer  prometheus.Registerer
	Logger      *slog.Logger
	Now         func() time.Time
	// Budgeter, if set, fits the published replicas into shared budgets.
	Budgeter *budget.Budgeter
	// Events, if set, records Kubernetes Events about model reloads
	// (ReportReload); nil records none (no cluster, the demo).
	Events EventRecorder
}

// Forecaster is the forecast loop. Cycle is serialised; Ready is safe to call
// from any goroutine.
type Forecaster struct {
	opts Options
	// modelState is what the loop derives from its model; SetModel replaces
	// it (and opts.Manifest and opts.Predictor) between cycles.
	modelState
	metrics  *metrics
	log      *slog.Logger
	mu       sync.Mutex // serialises cycles and model swaps: the predictor is not goroutine-safe
	lastGood map[string]snapshot.Prediction
	accuracy *accuracy
	// owned is Options.Services as a set (nil: every service); others the
	// services other applications own.
	owned, others map[string]bool
	// fallback are the services of the last cycle's data that the model
	// does not know, forecast by the model-free fallback.
	fallback []string
	// bursts are this cycle's burst factors by service (absent: 1);
	// burstMetrics estimates them (nil when policy.burst is off).
	bursts       map[string]float64
	burstMetrics *burstEstimator
	// slo tunes the headroom from the SLO service's p99 (nil without
	// policy.slo).
	slo *sloFeedback
	// seasonPresent is the last cycle's seasonal state per service, so a
	// change is logged once.
	seasonPresent map[string]bool
	// coverage is the last cycle's Coverage state per service (under readyMu).
	coverage      map[string]string
	loggedSummary bool
	readyMu       sync.RWMutex
	// lastFresh is when a cycle last produced a fresh prediction; lastErr
	// the last cycle's failure, for /readyz.
	lastFresh time.Time
	lastErr   error
	// lastCycle is the last cycle's outcome, for the status page.
	lastCycle CycleStatus
}

// CycleStatus is how the last forecast cycle went.
type CycleStatus struct {
	// At is the cycle's "now"; zero before the first cycle.
	At       time.Time
	Duration time.Duration
	// Fresh and Held count the services it forecast and held.
	Fresh, Held int
	// Err is its failure (nil when every service was forecast, or only
	// some were held for reasons of their own).
	Err error
	// Bursts are the burst factors it sized with (policy.burst), by
	// service; a service without one is absent. Do not modify.
	Bursts map[string]float64
}

// Interval is the time between cycles.
func (f *Forecaster) Interval() time.Duration { return f.opts.Interval }

// LastCycle returns how the last cycle went.
func (f *Forecaster) LastCycle() CycleStatus {
	f.readyMu.RLock()
	defer f.readyMu.RUnlock()
	return f.lastCycle
}

// modelState is everything the loop derives from its model and options: New
// builds it once and SetModel again for a reloaded model, so both check a
// model the same way.
type modelState struct {
	spec window.Spec
	// The outputs replicas are sized from (the policy's quantile, or the
	// point forecast) and the point forecast shown on dashboards.
	sizeRequests, pointRequests model.Output
	sizeCPU                     *model.Output
	// upperRequests and upperCPU, when set, replace the sizing outputs (an
	// upper quantile) by a bound from the model's recent errors
	// (policy.adaptiveUpper).
	upperRequests, upperCPU *upperBound
	// primary are the window indices of the features replicas are sized
	// from; only their gaps and staleness hold a forecast.
	primary []int
	// modelled the model's services; served the model's services the loop
	// publishes.
	modelled map[string]bool
	served   []string
	// cpuSized are model services without a request rate, sized from their
	// CPU forecast; noRequestRate those that cannot be sized at all.
	cpuSized      map[string]bool
	noRequestRate []string
	// season is the lagged window of a model with a seasonal context (nil
	// without).
	season *window.Season
}

// deriveModel checks model m against the options (the policy, the services
// owned, the loop's timing) and derives the loop's state from it. It logs
// nothing: warnings returns what New and SetModel log once the model is
// taken. opts must have its defaults applied. NoModel's manifest has no
// services and no outputs: the state derived from it sizes nothing itself,
// and every service of the data goes to the fallback.
func deriveModel(opts Options, m *model.Manifest) (*modelState, []func(*slog.Logger), error) {
	pointRequests, hasRequests := m.Output(source.Requests, 0.5)
	_, hasCPU := m.Output(source.CPU, 0.5)
	switch {
	case !isModel(m):
		// No outputs to check: the fallback sizes every service.
	case !hasRequests && !hasCPU:
		return nil, nil, fmt.Errorf("model %s forecasts neither the request rate nor CPU (outputs with feature requests or cpu, quantile 0.5)", m.Name)
	case !hasCPU && (!slices.Contains(m.Features, source.CPU) || !slices.Contains(m.Features, source.Requests)):
		return nil, nil, fmt.Errorf("model %s can predict CPU neither directly (no cpu output) nor from CPU per request (needs cpu and requests inputs)", m.Name)
	}
	owned := ownedSet(opts.Services)
	modelled := make(map[string]bool, len(m.Services))
	var served, requestSized, noRequestRate []string
	cpuSized := make(map[string]bool)
	for _, svc := range m.Services {
		modelled[svc] = true
		if owned != nil && !owned[svc] {
			continue
		}
		served = append(served, svc)
		switch {
		case hasRequests && !m.IsUnobserved(source.Requests, svc):
			requestSized = append(requestSized, svc)
		case hasCPU && !m.IsUnobserved(source.CPU, svc) && opts.Policy.CPUCapacity(svc) > 0:
			cpuSized[svc] = true
		default:
			noRequestRate = append(noRequestRate, svc)
		}
	}
	if len(served) > 0 && len(noRequestRate) == len(served) {
		return nil, nil, fmt.Errorf("model %s has no request-rate forecast for any of its services %v, so none can be sized: set policy.cpuPerPod (the CPU cores one pod should use) to size them from their CPU forecast",
			m.Name, textlimit.Cut(fmt.Sprint(noRequestRate), 300))
	}
	if err := opts.Policy.Validate(requestSized); err != nil {
		return nil, nil, err
	}
	if err := checkTiming(opts, time.Duration(m.Step), m.Horizon); err != nil {
		return nil, nil, err
	}
	var warnings []func(*slog.Logger)
	if len(noRequestRate) > 0 {
		warnings = append(warnings, func(log *slog.Logger) {
			log.Warn("services trained without a request rate cannot be sized: nothing is published for them until policy.services.<service>.cpuPerPod (or policy.cpuPerPod) sizes them from their CPU forecast",
				"services", noRequestRate)
		})
	}
	if !isModel(m) && opts.Policy.CapacityPerPod <= 0 {
		warnings = append(warnings, func(log *slog.Logger) {
			log.Warn("no policy.capacityPerPod default: without a model, the fallback sizes only the services with a policy.services entry (capacityPerPod, or podRate and latencyP99); nothing is published for the others")
		})
	}
	// Without a model every entry names a service the model does not know:
	// no typo to point at.
	if unknown := opts.Policy.Unknown(m.Services); isModel(m) && len(unknown) > 0 {
		warnings = append(warnings, func(log *slog.Logger) {
			log.Info("policy.services entries name services the model does not know: they apply if the services appear in the data (forecast by the fallback); check for typos",
				"services", unknown)
		})
	}
	var sizeRequests model.Output
	if hasRequests {
		var warn func(*slog.Logger)
		sizeRequests, warn = sizingOutput(m, source.Requests, opts.Policy.Quantile)
		warnings = appendNonNil(warnings, warn)
	}
	var sizeCPU *model.Output
	if hasCPU {
		o, warn := sizingOutput(m, source.CPU, opts.Policy.Quantile)
		warnings = appendNonNil(warnings, warn)
		sizeCPU = &o
	}
	spec := window.SpecFor(m)
	var season *window.Season
	if s, ok := window.SeasonFor(m); ok {
		season = &s
	}
	var upperRequests, upperCPU *upperBound
	if opts.Policy.AdaptiveUpper {
		var err error
		if hasRequests {
			if upperRequests, err = newUpperBound(m, spec, sizeRequests); err != nil {
				return nil, nil, err
			}
		}
		if sizeCPU != nil {
			if upperCPU, err = newUpperBound(m, spec, *sizeCPU); err != nil {
				return nil, nil, err
			}
		}
	}
	var primary []int
	for i, feat := range spec.Features {
		if feat == source.Requests || feat == source.CPU {
			primary = append(primary, i)
		}
	}
	return &modelState{
		spec:          spec,
		sizeRequests:  sizeRequests,
		pointRequests: pointRequests,
		sizeCPU:       sizeCPU,
		upperRequests: upperRequests,
		upperCPU:      upperCPU,
		primary:       primary,
		modelled:      modelled,
		served:        served,
		cpuSized:      cpuSized,
		noRequestRate: noRequestRate,
		season:        season,
	}, warnings, nil
}

func appendNonNil(warnings []func(*slog.Logger), w func(*slog.Logger)) []func(*slog.Logger) {
	if w == nil {
		return warnings
	}
	return append(warnings, w)
}

// ownedSet is Options.Services as a set; nil means every service.
func ownedSet(services []string) map[string]bool {
	if len(services) == 0 {
		return nil
	}
	owned := make(map[string]bool, len(services))
	for _, s := range services {
		owned[s] = true
	}
	return owned
}

// New checks the options and registers the loop's metrics.
func New(opts Options) (*Forecaster, error) {
	if opts.Source == nil || opts.Manifest == nil || opts.Store == nil {
		return nil, errors.New("forecaster: source, manifest, predictor and store are required")
	}
	// NoModel needs no predictor: nothing runs a network until SetModel.
	if opts.Predictor == nil && isModel(opts.Manifest) {
		return nil, fmt.Errorf("forecaster: model %s: a predictor is required (only NoModel, with no services, runs without one)", opts.Manifest.Name)
	}
	m := opts.Manifest
	step := time.Duration(m.Step)
	if opts.Namespace == "" {
		opts.Namespace = "default"
	}
	if opts.Interval <= 0 {
		opts.Interval = step
	}
	if opts.Timeout <= 0 {
		opts.Timeout = opts.Interval * 8 / 10
	}
	if opts.StaleAfter <= 0 {
		opts.StaleAfter = 5 * time.Minute
	}
	if opts.MaxMissingFraction <= 0 {
		opts.MaxMissingFraction = 0.5
	}
	if opts.MaxInputAge <= 0 {
		opts.MaxInputAge = max(DefaultMaxInputAge, 2*step)
	}
	state, warnings, err := deriveModel(opts, m)
	if err != nil {
		return nil, fmt.Errorf("forecaster: %w", err)
	}
	if opts.Registerer == nil {
		opts.Registerer = prometheus.NewRegistry()
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	met, err := newMetrics(opts.Registerer)
	if err != nil {
		return nil, fmt.Errorf("forecaster: registering metrics: %w", err)
	}
	met.setModel(m, opts.Now())
	slo, err := newSLOFeedback(opts.Policy, opts.Registerer)
	if err != nil {
		return nil, fmt.Errorf("forecaster: %w", err)
	}
	bursts, err := newBurstEstimator(opts.Policy.Burst, opts.Registerer)
	if err != nil {
		return nil, fmt.Errorf("forecaster: %w", err)
	}
	log := opts.Logger.With("model", m.Name, "source", opts.Source.Name())
	for _, w := range warnings {
		w(log)
	}
	others := make(map[string]bool, len(opts.OtherApps))
	for _, s := range opts.OtherApps {
		others[s] = true
	}
	return &Forecaster{
		opts:          opts,
		modelState:    *state,
		accuracy:      newAccuracy(step, m.Horizon, AccuracyWindow, met, log),
		metrics:       met,
		log:           log,
		lastGood:      make(map[string]snapshot.Prediction),
		owned:         ownedSet(opts.Services),
		others:        others,
		seasonPresent: make(map[string]bool),
		slo:           slo,
		burstMetrics:  bursts,
	}, nil
}

// burst is the service's burst factor this cycle (1 without one).
func (f *Forecaster) burst(svc string) float64 {
	if b, ok := f.bursts[svc]; ok {
		return b
	}
	return 1
}

// policy is the policy this cycle sizes with: the configured one, with the
// headroom the SLO feedback tuned.
func (f *Forecaster) policy() policy.Config { return f.slo.policy(f.opts.Policy) }

// EventRecorder records a Kubernetes Event about the loop (a model loaded or
// rejected) on an object of the caller's choosing; eventType is "Normal" or
// "Warning". Implementations must not block.
type EventRecorder interface {
	Event(eventType, reason, note string)
}

// Reasons of the Events ReportReload records.
const (
	EventModelLoaded   = "ModelLoaded"
	EventModelRejected = "ModelRejected"
)

// Model returns the manifest of the model being served. It is shared: do
// not modify it.
func (f *Forecaster) Model() *model.Manifest {
	f.readyMu.RLock()
	defer f.readyMu.RUnlock()
	return f.opts.Manifest
}

// SetModel swaps in a new model between cycles (it waits for a running
// cycle to end). The model is checked against the options exactly as New
// checks the first one (sizing outputs, policy entries for its services,
// capacities, the lead time against its horizon), and in two more ways a
// model taken while serving must pass: it has the served model's step (the
// loop's interval, timeout and input age were set from it: a new step needs
// a restart), and it still forecasts every service the served model
// forecasts from data the last cycle read (losing one would hand it to the
// fallback or stop publishing it; remove a service from a model with a
// restart). On an error nothing changes and the old model keeps serving.
//
// Kept across the swap: the last good predictions (services the new model
// does not know are held until they expire, under the old model's name),
// the coverage of the last cycle, and the accuracy bookkeeping when the
// horizon is unchanged (it scores the forecasts that were published,
// whichever model made them; the rolling means forget the old model within
// AccuracyWindow scores). Reset, because they depend on the old model's
// outputs: the adaptive upper bounds (their errors are the old model's:
// the new model sizes from its own quantile until it has
// conformal.DefaultMinResiduals errors of its own), the seasonal state and
// the per-service gauges derived from the model (imputed samples, upper
// bound errors, seasonal context), which the next cycle sets again.
//
// From NoModel, the model's services leave the fallback on the next cycle
// (services it does not know stay there). Back to NoModel is refused: a
// manifest without services is no model to serve.
func (f *Forecaster) SetModel(m *model.Manifest, p Predictor) error {
	if m == nil || p == nil {
		return errors.New("forecaster: manifest and predictor are required")
	}
	if !isModel(m) {
		return fmt.Errorf("model %s forecasts no services: a loop cannot go back to forecasting without a model; restart serve for that", m.Name)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	old := f.opts.Manifest
	if m.Step != old.Step {
		return fmt.Errorf("model %s: step %v differs from the served model's %v; the loop's interval, timeout and maxInputAge follow the step: restart serve to change it",
			m.Name, time.Duration(m.Step), time.Duration(old.Step))
	}
	state, warnings, err := deriveModel(f.opts, m)
	if err != nil {
		return err
	}
	if lost := f.lostServices(state); len(lost) > 0 {
		return fmt.Errorf("model %s does not forecast %d services the served model %s forecasts from the data (%s): is it this application's model? A reload never drops a served service; restart serve to take a model without them",
			m.Name, len(lost), old.Name, textlimit.List(lost, 20))
	}

	f.readyMu.Lock()
	f.opts.Manifest, f.opts.Predictor = m, p
	f.modelState = *state
	f.readyMu.Unlock()
	// The new model serves what the fallback did: were the next cycle's
	// fetch to fail, publishable would list such a service twice.
	f.fallback = slices.DeleteFunc(f.fallback, func(svc string) bool { return state.modelled[svc] })
	f.log = f.opts.Logger.With("model", m.Name, "source", f.opts.Source.Name())
	for svc, pr := range f.lastGood {
		if pr.Model == "" {
			pr.Model = old.Name // held until replaced: say which model made it
			f.lastGood[svc] = pr
		}
	}
	if m.Horizon == old.Horizon {
		f.accuracy.log = f.log
	} else {
		f.metrics.forecastAbsError.Reset()
		f.accuracy = newAccuracy(time.Duration(m.Step), m.Horizon, AccuracyWindow, f.metrics, f.log)
	}
	f.seasonPresent = make(map[string]bool)
	f.metrics.seasonal.Reset()
	f.metrics.upperBoundErrors.Reset()
	f.metrics.imputed.Reset()
	f.metrics.setModel(m, f.opts.Now())
	f.loggedSummary = false // the next cycle logs the new model's coverage
	for _, w := range warnings {
		w(f.log)
	}
	return nil
}

// logger is the loop's logger for use outside a cycle: f.log belongs to
// the cycle (SetModel replaces it under f.mu).
func (f *Forecaster) logger() *slog.Logger {
	return f.opts.Logger.With("model", f.Model().Name, "source", f.opts.Source.Name())
}

// lostServices are the services the served model forecasts from the last
// cycle's data that state would no longer publish a forecast for, sorted.
func (f *Forecaster) lostServices(state *modelState) []string {
	var lost []string
	for svc, c := range f.coverage {
		if c != CoverageModel {
			continue
		}
		if !slices.Contains(state.served, svc) || slices.Contains(state.noRequestRate, svc) {
			lost = append(lost, svc)
		}
	}
	slices.Sort(lost)
	return lost
}

// ReportReload counts, logs and records (as an Event, when Options.Events
// is set) the outcome of a model reload from dir: err is why the model was
// rejected (it failed to load, or SetModel refused it), nil when it now
// serves. A rejection is logged at error level: the old model keeps
// serving, and a retrained model the operator expects is not live.
func (f *Forecaster) ReportReload(dir string, err error) {
	cur := f.Model()
	log := f.logger()
	if err != nil {
		f.metrics.modelReloads.WithLabelValues(reloadRejected).Inc()
		log.Error("model reload rejected; the current model keeps serving",
			"version", cur.Version, "dir", dir, "err", err)
		if f.opts.Events != nil {
			f.opts.Events.Event("Warning", EventModelRejected, textlimit.Cut(fmt.Sprintf("model in %s rejected, %s %s keeps serving: %v", dir, cur.Name, cur.Version, err), 1000))
		}
		return
	}
	f.metrics.modelReloads.WithLabelValues(reloadLoaded).Inc()
	log.Info("model reloaded; serving it from the next cycle", "version", cur.Version, "dir", dir,
		"services", len(cur.Services), "horizon", cur.Horizon)
	if f.opts.Events != nil {
		f.opts.Events.Event("Normal", EventModelLoaded, textlimit.Cut(fmt.Sprintf("model %s %s loaded from %s", cur.Name, cur.Version, dir), 1000))
	}
}

// checkTiming refuses loop settings under which nothing useful could ever be
// published, instead of running and staying silent.
func checkTiming(o Options, step time.Duration, horizon int) error {
	var errs []error
	if o.Interval < MinInterval {
		errs = append(errs, fmt.Errorf("interval %v: must be at least %v (each cycle queries the metrics backend)", o.Interval, MinInterval))
	}
	if o.Timeout > o.Interval {
		errs = append(errs, fmt.Errorf("timeout %v: longer than the interval %v; cycles would overlap", o.Timeout, o.Interval))
	}
	if o.StaleAfter <= o.Interval {
		errs = append(errs, fmt.Errorf("staleAfter %v: must be longer than the interval %v, or every prediction expires before the next cycle replaces it and nothing is ever served", o.StaleAfter, o.Interval))
	}
	if o.MaxInputAge < step {
		errs = append(errs, fmt.Errorf("maxInputAge %v: must be at least the model's step %v", o.MaxInputAge, step))
	}
	if reach := time.Duration(horizon) * step; time.Duration(o.Policy.LeadTime) > reach {
		errs = append(errs, fmt.Errorf("policy.leadTime %v: beyond what the model forecasts (%d steps of %v = %v); lower it or use a model with a longer horizon", o.Policy.LeadTime, horizon, step, reach))
	}
	return errors.Join(errs...)
}

// Ready returns nil while the loop serves something: a cycle produced a fresh
// prediction within StaleAfter. Before the first good cycle, and once every
// service's prediction has expired, it says why not.
func (f *Forecaster) Ready() error {
	f.readyMu.RLock()
	defer f.readyMu.RUnlock()
	reason := "no cycle has run yet"
	if f.lastErr != nil {
		reason = "last cycle: " + textlimit.Cut(f.lastErr.Error(), 300)
	}
	if f.lastFresh.IsZero() {
		return fmt.Errorf("no fresh forecast yet (%s)", reason)
	}
	if now := f.opts.Now(); now.Sub(f.lastFresh) > f.opts.StaleAfter {
		return fmt.Errorf("no fresh forecast for %v, longer than staleAfter %v: nothing is served (%s)",
			now.Sub(f.lastFresh).Round(time.Second), f.opts.StaleAfter, reason)
	}
	return nil
}

// Run cycles every Interval until ctx is cancelled. A failed cycle is logged
// and counted; the loop goes on.
func (f *Forecaster) Run(ctx context.Context) error {
	ticker := time.NewTicker(f.opts.Interval)
	defer ticker.Stop()
	for {
		if _, err := f.Cycle(ctx, f.opts.Now()); err != nil && ctx.Err() == nil {
			f.logger().Error("forecast cycle failed; holding last good predictions", "err", err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-ticker.C:
		}
	}
}

// Cycle runs one forecast for the window ending at now (truncated to the
// model's step) and publishes the resulting snapshot. It returns the snapshot
// and an error when no service got a fresh prediction.
func (f *Forecaster) Cycle(ctx context.Context, now time.Time) (*snapshot.Snapshot, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	start := time.Now()
	defer func() { f.metrics.cycleDuration.Observe(time.Since(start).Seconds()) }()

	ctx, cancel := context.WithTimeout(ctx, f.opts.Timeout)
	defer cancel()
	end := now.Truncate(f.spec.Step)

	fresh, heldReason, err := f.forecast(ctx, end, now)
	f.accuracy.observe(end, fresh)
	services := f.publishable()
	held := make(map[string]string, len(services))
	for _, svc := range services {
		if _, ok := fresh[svc]; ok {
			continue
		}
		reason := heldReason[svc]
		if reason == "" {
			reason = failureReason(err)
		}
		held[svc] = reason
	}
	snap := f.publish(ctx, now, services, fresh, held)
	f.logSummary(err)

	result := resultOK
	switch {
	case len(fresh) == 0:
		result = resultFailed
	case len(held) > 0:
		result = resultDegraded
	}
	f.metrics.cycles.WithLabelValues(result).Inc()
	if err == nil && len(fresh) == 0 {
		err = f.noneFresh(held)
	}
	f.readyMu.Lock()
	if len(fresh) > 0 {
		f.metrics.lastSuccess.SetToCurrentTime()
		f.lastFresh = now
	}
	f.lastErr = err
	f.lastCycle = CycleStatus{At: now, Duration: time.Since(start), Fresh: len(fresh), Held: len(held), Err: err, Bursts: f.bursts}
	f.readyMu.Unlock()
	return snap, err
}

// forecast computes fresh predictions. Services it could not forecast get a
// reason in the second map; an error means the whole cycle failed.
func (f *Forecaster) forecast(ctx context.Context, end, now time.Time) (map[string]snapshot.Prediction, map[string]string, error) {
	m := f.opts.Manifest
	src := f.opts.Source
	query := f.spec.Query(f.opts.Namespace, end)
	// Every service: the data says which the model does not know.
	query.AllServices = true
	if f.slo != nil {
		query.Features = append(slices.Clip(query.Features), source.LatencyP99)
	}
	if f.opts.Policy.Burst.Enabled {
		query.Features = append(slices.Clip(query.Features), source.RequestsPeak)
	}
	data, err := src.Fetch(ctx, query)
	if err != nil {
		kind := fetchErrorKind(err)
		f.metrics.sourceErrors.WithLabelValues(src.Name(), string(kind)).Inc()
		reason := HeldSourceError
		if kind == source.ErrTimeout {
			reason = HeldTimeout
		}
		return nil, nil, &cycleError{reason, fmt.Errorf("fetching window ending %s from %s: %w", end.Format(time.RFC3339), src.Name(), err)}
	}
	if f.slo != nil {
		f.slo.observe(data, end, f.opts.MaxInputAge, f.log)
	}
	f.bursts = nil
	if f.burstMetrics != nil {
		f.bursts = f.burstMetrics.estimate(data, end, f.opts.Policy.Burst, f.owns, f.log)
	}
	f.fallback = f.updateCoverage(data)
	reasons := make(map[string]string)
	fresh := f.forecastFallback(data, f.fallback, end, now, reasons)
	if !isModel(m) {
		return fresh, reasons, nil // no model yet: no window to build, nothing to run
	}
	win, err := window.Build(f.spec, data, end)
	if err != nil {
		return fresh, reasons, &cycleError{HeldModelError, fmt.Errorf("building input window: %w", err)}
	}
	// Score past forecasts against this window's actuals before anything
	// can end the cycle: a cycle without a forecast still observes.
	for _, u := range []*upperBound{f.upperRequests, f.upperCPU} {
		if u == nil {
			continue
		}
		if err := u.observe(win, f.owns); err != nil {
			return fresh, reasons, &cycleError{HeldModelError, err}
		}
	}
	for _, svc := range f.noRequestRate {
		reasons[svc] = HeldNoRequestRate
	}
	clipped := make(map[string]bool)
	usable := 0
	for n, svc := range m.Services {
		if !f.owns(svc) || reasons[svc] != "" {
			continue
		}
		if f.coverage[svc] == CoverageAbsent {
			reasons[svc] = HeldMissingData // said once, when it went absent
			continue
		}
		for fi, feat := range f.spec.Features {
			f.metrics.imputed.Set(svc, string(feat), win.Carried[fi][n], win.Imputed[fi][n])
			if c := win.Clipped[fi][n]; c > 0 {
				clipped[svc] = true
				f.metrics.inputOutOfRange.WithLabelValues(svc, string(feat)).Add(float64(c))
				f.log.Warn("input far outside anything seen in training; clipped for this service only (check the exporter or query)",
					"service", svc, "feature", feat, "steps", c, "latest", win.Latest(fi, n))
			}
		}
		if reason, attrs := f.unusable(win, n, end); reason != "" {
			reasons[svc] = reason
			f.log.Warn("input unusable for a forecast; holding last good prediction", append([]any{"service", svc, "reason", reason}, attrs...)...)
			continue
		}
		usable++
	}
	if usable == 0 {
		return fresh, reasons, nil
	}

	input := win.Input
	if f.season != nil {
		if input, err = f.seasonalInput(ctx, win, end); err != nil {
			return fresh, reasons, &cycleError{HeldModelError, err}
		}
	}
	inferStart := time.Now()
	outputs, err := f.opts.Predictor.Predict(input)
	f.metrics.inferenceDuration.Observe(time.Since(inferStart).Seconds())
	if err != nil {
		return fresh, reasons, &cycleError{HeldModelError, fmt.Errorf("running model %s: %w", m.Name, err)}
	}
	var requests, point, cpu []float64
	if f.pointRequests.Name != "" {
		if requests, err = f.denormalised(outputs, f.sizeRequests); err != nil {
			return fresh, reasons, &cycleError{HeldBadForecast, err}
		}
		if point, err = f.denormalised(outputs, f.pointRequests); err != nil {
			return fresh, reasons, &cycleError{HeldBadForecast, err}
		}
	}
	if f.sizeCPU != nil {
		if cpu, err = f.denormalised(outputs, *f.sizeCPU); err != nil {
			return fresh, reasons, &cycleError{HeldBadForecast, err}
		}
	}
	if requests, cpu, err = f.adaptUpper(outputs, win, requests, point, cpu, reasons, clipped); err != nil {
		return fresh, reasons, &cycleError{HeldBadForecast, err}
	}
	var cpuPoint []float64
	if o, ok := m.Output(source.CPU, 0.5); ok && f.sizeCPU != nil {
		if cpuPoint, err = f.denormalised(outputs, o); err != nil {
			return fresh, reasons, &cycleError{HeldBadForecast, err}
		}
	}
	step := time.Duration(m.Step)
	leadSteps := f.opts.Policy.LeadSteps(step, m.Horizon)
	horizon := time.Duration(leadSteps) * step

	for n, svc := range m.Services {
		if !f.owns(svc) || reasons[svc] != "" {
			continue
		}
		prev := f.lastGood[svc].PredictedReplicas
		var dec policy.Decision
		if f.cpuSized[svc] {
			dec, err = f.policy().DecideCPU(svc, column(cpu, n, len(m.Services)), step, prev)
		} else {
			dec, err = f.policy().DecideBursty(svc, column(requests, n, len(m.Services)), f.burst(svc), step, prev)
		}
		if err != nil {
			reasons[svc] = HeldBadForecast
			f.log.Warn("forecast unusable; holding last good prediction", "service", svc, "err", err)
			continue
		}
		cpuPeak, err := f.cpuPeak(cpu, win, n, leadSteps, dec.PeakRequests)
		if err != nil {
			reasons[svc] = HeldBadForecast
			f.log.Warn("CPU forecast unusable; holding last good prediction", "service", svc, "err", err)
			continue
		}
		p := snapshot.Prediction{
			Namespace:         f.opts.Namespace,
			Service:           svc,
			Horizon:           horizon,
			PredictedReplicas: dec.Replicas,
			PredictedRequests: dec.PeakRequests,
			PredictedCPUCores: cpuPeak,
			RequestsByStep:    clampNonNegative(column(point, n, len(m.Services))),
			ObservedRequests:  latestObserved(win, source.Requests, n),
			ObservedCPUCores:  latestObserved(win, source.CPU, n),
			ObservedReplicas:  latestObserved(win, source.Replicas, n),
			ComputedAt:        now,
			ExpiresAt:         now.Add(f.opts.StaleAfter),
			InputAt:           f.inputAt(win, n),
		}
		p.PeakMemoryPerPodBytes = peakMemoryPerPod(win, n)
		p.Chart = &snapshot.Chart{
			Start: win.End.Add(-time.Duration(win.Spec.Length-1) * step), Step: step,
			ObservedRequests: observedSeries(win, source.Requests, n), ObservedCPU: observedSeries(win, source.CPU, n),
			RequestsP50: chartColumn(point, n, len(m.Services), m.Horizon), RequestsUpper: chartColumn(requests, n, len(m.Services), m.Horizon),
			CPUP50: chartColumn(cpuPoint, n, len(m.Services), m.Horizon), CPUUpper: chartColumn(cpu, n, len(m.Services), m.Horizon),
		}
		if f.cpuSized[svc] {
			// Sized from CPU: the model has no request rate for it.
			p.PredictedRequests, p.RequestsByStep, p.ObservedRequests = math.NaN(), nil, math.NaN()
		}
		if clipped[svc] {
			// The load numbers come from clipped input: only the replica
			// count (at the policy's bound) means something. NaN is never
			// published, so consumers see no made-up rate.
			p.PredictedRequests, p.PredictedCPUCores, p.RequestsByStep, p.Chart = math.NaN(), math.NaN(), nil, nil
		}
		if dec.Saturated {
			f.log.Warn("forecast load needs more than maxReplicas; publishing maxReplicas", "service", svc,
				"replicas", dec.Replicas, "peakRequests", dec.PeakRequests, "inputClipped", clipped[svc])
		}
		fresh[svc] = p
		f.log.Debug("prediction", "service", svc, "replicas", dec.Replicas, "rawReplicas", dec.Raw,
			"limitedBy", dec.Limited, "peakRequests", dec.PeakRequests, "cpuCores", cpuPeak)
	}
	return fresh, reasons, nil
}

// fetchErrorKind classifies a failed fetch for foresight_source_errors_total.
func fetchErrorKind(err error) source.ErrorKind {
	var fe *source.FetchError
	switch {
	case errors.As(err, &fe):
		return fe.Kind
	case errors.Is(err, context.DeadlineExceeded):
		return source.ErrTimeout
	}
	return source.ErrBadResponse
}

// seasonalInput is the window's input followed by the seasonal rows of a
// model with a seasonal context, from one more query to the same source.
// When that query fails or the history does not reach one period back, the
// blocks say "no season" and the forecast goes on: the season improves a
// forecast, it never costs one. The lagged query gets at most half the time
// left in the cycle, so a slow one cannot starve what follows it.
func (f *Forecaster) seasonalInput(ctx context.Context, win *window.Window, end time.Time) ([]float64, error) {
	src := f.opts.Source
	q := f.season.Query(f.opts.Namespace, end)
	fetchCtx, cancel := ctx, context.CancelFunc(func() {})
	if deadline, ok := ctx.Deadline(); ok {
		fetchCtx, cancel = context.WithDeadline(ctx, time.Now().Add(time.Until(deadline)/2))
	}
	data, err := src.Fetch(fetchCtx, q)
	cancel()
	if err != nil {
		f.metrics.sourceErrors.WithLabelValues(src.Name(), string(fetchErrorKind(err))).Inc()
		data, err = nil, fmt.Errorf("fetching %s..%s from %s: %w", q.Start.Format(time.RFC3339), q.End.Format(time.RFC3339), src.Name(), err)
	}
	in, buildErr := f.season.Append(win, data)
	if buildErr != nil {
		return nil, fmt.Errorf("building input window: %w", buildErr)
	}
	f.noteSeason(in, q, err)
	return in.Input, nil
}

// noteSeason sets foresight_seasonal_context per served service (1 when
// every seasonal feature it was trained with had its season) and logs the
// services whose state changed: once, not every cycle.
func (f *Forecaster) noteSeason(in *window.SeasonalInput, q source.Query, fetchErr error) {
	m := f.opts.Manifest
	var lost, found []string
	for n, svc := range m.Services {
		if !f.owns(svc) {
			continue
		}
		present, read := true, false
		for fi, feat := range f.season.Spec.Features {
			if m.IsUnobserved(feat, svc) {
				continue // trained without it: there is no season to miss
			}
			read = true
			present = present && in.Present[fi][n]
		}
		if !read {
			continue
		}
		f.metrics.seasonal.WithLabelValues(svc).Set(boolGauge(present))
		if was, known := f.seasonPresent[svc]; known && was == present {
			continue
		}
		f.seasonPresent[svc] = present
		if present {
			found = append(found, svc)
		} else {
			lost = append(lost, svc)
		}
	}
	period := time.Duration(m.Seasonal.PeriodSteps) * time.Duration(m.Step)
	if len(lost) > 0 {
		reason := "the history does not reach one period back (Prometheus retention shorter than the period plus the window, or a new service or series)"
		if fetchErr != nil {
			reason = "the lagged query failed: " + textlimit.Cut(fetchErr.Error(), 300)
		}
		f.log.Warn("seasonal context absent: forecasting without last period's values (the model reads its window's last value instead); the forecast goes on",
			"services", textlimit.List(lost, 20), "period", period, "reason", reason, "from", q.Start, "to", q.End)
	}
	if len(found) > 0 {
		f.log.Info("seasonal context present: the forecast reads last period's values", "services", textlimit.List(found, 20), "period", period)
	}
}

func boolGauge(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// unusable says why service n's window must not be forecast from, or "".
// Only the features replicas are sized from count: an idle service has no
// latency series, and that must not stop it from scaling down.
func (f *Forecaster) unusable(win *window.Window, n int, end time.Time) (string, []any) {
	svc := f.opts.Manifest.Services[n]
	for _, fi := range f.primary {
		if f.opts.Manifest.IsUnobserved(f.spec.Features[fi], svc) {
			continue // trained without it: no gap to hold on
		}
		last := win.LastSample[fi][n]
		if !last.IsZero() && end.Sub(last) > f.opts.MaxInputAge {
			return HeldStaleInput, []any{"feature", f.spec.Features[fi], "newestSample", last, "maxInputAge", f.opts.MaxInputAge}
		}
	}
	for _, fi := range f.primary {
		if f.opts.Manifest.IsUnobserved(f.spec.Features[fi], svc) {
			continue
		}
		if frac := win.FeatureMissingFraction(fi, n); frac > f.opts.MaxMissingFraction {
			return HeldMissingData, []any{"feature", f.spec.Features[fi], "missingFraction", frac, "limit", f.opts.MaxMissingFraction}
		}
	}
	return "", nil
}

// inputAt is the newest real sample time of the stalest sizing feature.
func (f *Forecaster) inputAt(win *window.Window, n int) time.Time {
	var at time.Time
	for _, fi := range f.primary {
		last := win.LastSample[fi][n]
		if !last.IsZero() && (at.IsZero() || last.Before(at)) {
			at = last
		}
	}
	return at
}

// latestObserved is the window's latest value of feat for service n, or NaN
// when the model does not read feat or the series had no data at all (the
// window then holds the training mean, which is not an observation).
func latestObserved(win *window.Window, feat source.Feature, n int) float64 {
	fi := win.FeatureIndex(feat)
	if fi < 0 || win.NoData[fi][n] {
		return math.NaN()
	}
	return win.Latest(fi, n)
}

// observedSeries is the window's real samples of feat for service n, NaN
// where the step had none of its own (a filled gap) or the model does not
// read feat.
func observedSeries(win *window.Window, feat source.Feature, n int) []float64 {
	out := make([]float64, win.Spec.Length)
	fi := win.FeatureIndex(feat)
	for t := range out {
		out[t] = math.NaN()
		if fi >= 0 && !win.NoData[fi][n] && win.Observed[fi][t][n] {
			out[t] = win.Values[fi][t][n]
		}
	}
	return out
}

// chartColumn is service n's forecast over the horizon from a row-major
// [horizon, width] output, or NaNs when the model has no such output.
func chartColumn(values []float64, n, width, horizon int) []float64 {
	if values == nil {
		out := make([]float64, horizon)
		for i := range out {
			out[i] = math.NaN()
		}
		return out
	}
	return column(values, n, width)
}

// peakMemoryPerPod is the highest memory per pod over the window's steps,
// memory and replicas taken at the same step; NaN without both series.
func peakMemoryPerPod(win *window.Window, n int) float64 {
	mem, rep := win.FeatureIndex(source.Memory), win.FeatureIndex(source.Replicas)
	if mem < 0 || rep < 0 || win.NoData[mem][n] || win.NoData[rep][n] {
		return math.NaN()
	}
	peak := math.NaN()
	for t := range win.Values[mem] {
		pods := win.Values[rep][t][n]
		if pods < 1 { // a scaled-to-zero or missing replica count says nothing per pod
			continue
		}
		v := win.Values[mem][t][n] / pods
		if v >= 0 && !math.IsInf(v, 0) && (math.IsNaN(peak) || v > peak) {
			peak = v
		}
	}
	return peak
}

// cpuPeak returns the peak CPU forecast over the lead time: from the model's
// CPU output when it has one, else from the request forecast times the CPU
// cost per request seen in the window.
func (f *Forecaster) cpuPeak(cpu []float64, win *window.Window, n, leadSteps int, peakRequests float64) (float64, error) {
	if cpu != nil {
		return policy.Peak(column(cpu, n, len(f.opts.Manifest.Services))[:leadSteps])
	}
	// New made sure the model has both inputs when it has no CPU output.
	ci, ri := win.FeatureIndex(source.CPU), win.FeatureIndex(source.Requests)
	var cores, reqs float64
	for t := range win.Spec.Length {
		cores += win.Values[ci][t][n]
		reqs += win.Values[ri][t][n]
	}
	if reqs <= 0 {
		return 0, fmt.Errorf("no requests in the window to estimate CPU per request")
	}
	return policy.Peak([]float64{peakRequests * cores / reqs})
}

// denormalised returns an output in the source's units, row-major
// [horizon, services].
func (f *Forecaster) denormalised(outputs map[string][]float64, out model.Output) ([]float64, error) {
	m := f.opts.Manifest
	values, ok := outputs[out.Name]
	n := len(m.Services)
	if !ok || len(values) != m.Horizon*n {
		return nil, fmt.Errorf("model %s: output %q has %d values, want %d", m.Name, out.Name, len(values), m.Horizon*n)
	}
	st := m.Normalization[out.Feature]
	res := make([]float64, len(values))
	for i, v := range values {
		res[i] = v*st.Std[i%n] + st.Mean[i%n]
		if math.IsNaN(res[i]) || math.IsInf(res[i], 0) {
			return nil, fmt.Errorf("model %s: output %q[%d] is %v", m.Name, out.Name, i, res[i])
		}
	}
	return res, nil
}

// publish builds the snapshot from the fresh predictions and the last good
// ones of held services (until they expire), and swaps it in.
func (f *Forecaster) publish(ctx context.Context, now time.Time, services []string, fresh map[string]snapshot.Prediction, held map[string]string) *snapshot.Snapshot {
	m := f.opts.Manifest
	snap := &snapshot.Snapshot{CreatedAt: now, Model: m.Name, Step: time.Duration(m.Step)}
	unpublished := func(svc, reason string, since time.Time) {
		snap.Unpublished = append(snap.Unpublished, snapshot.Unpublished{Namespace: f.opts.Namespace, Service: svc, Reason: reason, Since: since})
	}
	for _, svc := range services {
		if p, ok := fresh[svc]; ok {
			f.lastGood[svc] = p
			snap.Predictions = append(snap.Predictions, p)
			continue
		}
		reason := held[svc]
		f.metrics.held.WithLabelValues(svc, reason).Inc()
		last, ok := f.lastGood[svc]
		switch {
		case !ok && (reason == HeldNoRequestRate || f.coverage[svc] == CoverageAbsent):
			unpublished(svc, reason, time.Time{}) // said once: at start-up, or when it went absent
		case ok && !f.modelled[svc] && !slices.Contains(f.fallback, svc) && !now.Before(last.ExpiresAt):
			// A fallback service gone from the data: forget it once expired.
			delete(f.lastGood, svc)
		case !ok:
			f.log.Warn("no prediction published for service: no good forecast yet", "service", svc, "reason", reason)
			unpublished(svc, reason, time.Time{})
		case !now.Before(last.ExpiresAt):
			f.log.Warn("last good prediction expired; publishing nothing for service so the HPA holds its replicas",
				"service", svc, "reason", reason, "computedAt", last.ComputedAt)
			unpublished(svc, reason, last.ExpiresAt)
		default:
			last.HeldReason = reason
			snap.Predictions = append(snap.Predictions, last)
		}
	}
	// After lastGood is kept: a held service is refitted from its need.
	if f.opts.Budgeter != nil {
		published := make(map[string]snapshot.Prediction, len(snap.Predictions))
		for _, p := range snap.Predictions {
			published[p.Service] = p
		}
		f.opts.Budgeter.Apply(ctx, published)
		for i, p := range snap.Predictions {
			snap.Predictions[i] = published[p.Service]
		}
	}
	f.opts.Store.Publish(snap)
	return snap
}

// cycleError is a failure of the whole cycle with the reason every service's
// prediction is held for.
type cycleError struct {
	reason string
	err    error
}

func (e *cycleError) Error() string { return e.err.Error() }
func (e *cycleError) Unwrap() error { return e.err }

func failureReason(err error) string {
	var ce *cycleError
	switch {
	case errors.As(err, &ce):
		return ce.reason
	case errors.Is(err, context.DeadlineExceeded):
		return HeldTimeout
	case err != nil:
		return HeldModelError
	}
	return HeldMissingData
}

// column extracts service n's values from a row-major [rows, n] matrix.
func column(values []float64, n, width int) []float64 {
	out := make([]float64, 0, len(values)/width)
	for i := n; i < len(values); i += width {
		out = append(out, values[i])
	}
	return out
}

func clampNonNegative(values []float64) []float64 {
	out := slices.Clone(values)
	for i, v := range out {
		out[i] = math.Max(0, v)
	}
	return out
}

// sizingOutput returns the output of feat at quantile q, or the point
// forecast when the model has none, with the warning that says so (nil
// when there is none), logged once when the model is taken.
func sizingOutput(m *model.Manifest, feat source.Feature, q float64) (model.Output, func(*slog.Logger)) {
	if o, ok := m.Output(feat, q); ok {
		return o, nil
	}
	o, _ := m.Output(feat, 0.5)
	if q == 0.5 {
		return o, nil
	}
	return o, func(log *slog.Logger) {
		log.Warn("model has no output at the policy's quantile; sizing from its point forecast",
			"feature", feat, "quantile", q)
	}
}

// publishable are the services a cycle publishes or holds: the model's
// (those the loop owns), the fallback's, and fallback services that left
// the data while their last prediction has not expired.
func (f *Forecaster) publishable() []string {
	out := slices.Clone(f.served)
	out = append(out, f.fallback...)
	for svc := range f.lastGood {
		if !f.modelled[svc] && !slices.Contains(f.fallback, svc) {
			out = append(out, svc)
		}
	}
	slices.Sort(out[len(f.served):])
	return out
}

// logSummary says once, after the first cycle that read data, how the
// services are covered: the start-up summary of what is served and what not.
func (f *Forecaster) logSummary(err error) {
	if f.loggedSummary || f.coverage == nil {
		return
	}
	f.loggedSummary = true
	c := f.Coverage()
	f.log.Info("first forecast cycle", append(c.describe(), "err", err)...)
	if len(c.Model) == 0 && len(c.Absent) > 0 {
		f.log.Warn("the model knows none of the services in the data: is it this application's model? Train one on its history (docs/your-own-application.md)",
			"modelServices", len(c.Absent), "dataServices", textlimit.Cut(strings.Join(c.Fallback, ", "), 300))
	}
}

// upperBound replaces one sizing output, an upper quantile of the model, by
// the feature's point forecast plus the same quantile of the point
// forecast's recent errors, per service and horizon step (a
// conformal.Tracker). A model's own upper quantile is calibrated on its
// training period: on a wilder one it covers too little, on a calmer one it
// costs too much. Until a service has conformal.DefaultMinResiduals errors
// at every horizon step (after a start, a restart or for a new service) the
// model's own bound stands.
type upperBound struct {
	feature source.Feature
	fi      int          // the feature's index in the window: the actuals
	point   model.Output // the feature's point forecast (quantile 0.5)
	tracker *conformal.Tracker
	// seen is the newest step index given to the tracker (started: any).
	seen    int64
	started bool
	// adaptive is, per service, whether the last cycle used the adaptive
	// bound, so a switch is logged once.
	adaptive map[string]bool
}

// newUpperBound returns the adaptive bound for sizing output out, or nil when
// out is not an upper quantile, the model has no point forecast of its
// feature, or does not read the feature (no actuals to score against).
func newUpperBound(m *model.Manifest, spec window.Spec, out model.Output) (*upperBound, error) {
	if !(out.Quantile > 0.5) {
		return nil, nil
	}
	point, ok := m.Output(out.Feature, 0.5)
	fi := slices.Index(spec.Features, out.Feature)
	if !ok || fi < 0 {
		return nil, nil
	}
	tr, err := conformal.New(len(m.Services), m.Horizon, out.Quantile, conformal.DefaultWindow, conformal.DefaultMinResiduals)
	if err != nil {
		return nil, fmt.Errorf("adaptive upper bound of %s: %w", out.Feature, err)
	}
	return &upperBound{feature: out.Feature, fi: fi, point: point, tracker: tr, adaptive: make(map[string]bool)}, nil
}

// stepIndex numbers the model's steps: Cycle truncates every window end to a
// whole step, so the window's steps (end - k·step) are whole steps too and
// consecutive ones get consecutive indexes, whatever the interval (Truncate
// counts from Go's zero time, this from 1970: on one grid of whole steps the
// floor gives consecutive indexes either way). With an
// interval shorter than the step several cycles share one end: the tracker
// keeps the last forecast of that origin and scores each step once. With a
// longer one, origins are further apart: every step in between is still
// observed from the window, but fewer forecasts are scored per hour, so the
// adaptive bound takes longer to start (MinResiduals cycles, not steps).
func stepIndex(t time.Time, step time.Duration) int64 {
	ns, s := t.UnixNano(), step.Nanoseconds()
	q := ns / s
	if ns%s < 0 {
		q-- // floor, for times before 1970
	}
	return q
}

// observe gives the tracker the window's steps it has not seen, oldest
// first. A step without a sample of its own (a filled gap), a value the
// window clipped (a broken exporter, not an error of the model) and a
// service the loop does not own are NaN: not scored.
func (u *upperBound) observe(win *window.Window, owns func(string) bool) error {
	spec := win.Spec
	nT, nN := spec.Length, len(spec.Services)
	endIdx := stepIndex(win.End, spec.Step)
	st := spec.Norm[u.feature]
	actual := make([]float64, nN)
	for t := range nT {
		idx := endIdx - int64(nT-1-t)
		if u.started && idx <= u.seen {
			continue
		}
		for n, svc := range spec.Services {
			v := win.Values[u.fi][t][n]
			if !win.Observed[u.fi][t][n] || win.NoData[u.fi][n] || !owns(svc) ||
				math.Abs((v-st.Mean[n])/st.Std[n]) > window.MaxAbsInput {
				v = math.NaN()
			}
			actual[n] = v
		}
		if err := u.tracker.Observe(idx, actual); err != nil {
			return err
		}
		u.seen, u.started = idx, true
	}
	return nil
}

// adapt records this origin's point forecast (NaN for the services skip
// says were not forecast from trusted input) and replaces each service's
// sizing column by the adaptive bound where the tracker has one at every
// horizon step. It returns, per service index, the fewest errors the bound
// rests on over the horizon steps, 0 where the model's own bound stays.
func (u *upperBound) adapt(origin int64, point, sizing []float64, nN int, skip func(n int) bool) ([]int, error) {
	rec := slices.Clone(point)
	for n := range nN {
		if skip(n) {
			for i := n; i < len(rec); i += nN {
				rec[i] = math.NaN()
			}
		}
	}
	if err := u.tracker.Record(origin, rec); err != nil {
		return nil, err
	}
	horizon := len(point) / nN
	errs := make([]int, nN)
	upper := make([]float64, horizon)
services:
	for n := range nN {
		fewest := -1
		for h := range horizon {
			up, ok := u.tracker.Upper(h, n, point[h*nN+n])
			if !ok {
				continue services
			}
			upper[h] = up
			if e := u.tracker.Errors(h, n); fewest < 0 || e < fewest {
				fewest = e
			}
		}
		for h, up := range upper {
			sizing[h*nN+n] = up
		}
		errs[n] = fewest
	}
	return errs, nil
}

// adaptUpper replaces the sizing forecasts (requests, cpu) by the adaptive
// upper bounds where they exist, and says per service how many errors each
// rests on. The policy then sizes from the result, so its checks (no NaN,
// no Inf, a negative forecast is no load) see the numbers published.
func (f *Forecaster) adaptUpper(outputs map[string][]float64, win *window.Window, requests, point, cpu []float64, reasons map[string]string, clipped map[string]bool) ([]float64, []float64, error) {
	m := f.opts.Manifest
	nN := len(m.Services)
	origin := stepIndex(win.End, win.Spec.Step)
	// Forecasts from input that was not trusted are not the model's errors.
	skip := func(n int) bool {
		svc := m.Services[n]
		return !f.owns(svc) || reasons[svc] != "" || clipped[svc]
	}
	switched := make(map[string]*upperSwitch)
	if u := f.upperRequests; u != nil && requests != nil {
		errs, err := u.adapt(origin, point, requests, nN, skip)
		if err != nil {
			return nil, nil, err
		}
		f.noteUpper(u, errs, switched)
	}
	if u := f.upperCPU; u != nil && cpu != nil {
		cpuPoint, err := f.denormalised(outputs, u.point)
		if err != nil {
			return nil, nil, err
		}
		errs, err := u.adapt(origin, cpuPoint, cpu, nN, skip)
		if err != nil {
			return nil, nil, err
		}
		f.noteUpper(u, errs, switched)
	}
	for _, svc := range m.Services {
		if s := switched[svc]; s != nil {
			f.log.Info("sizing from the upper bound of the model's recent errors instead of its own quantile",
				"service", svc, "features", strings.Join(s.features, ","), "errors", s.errors, "quantile", f.opts.Policy.Quantile)
		}
	}
	return requests, cpu, nil
}

// upperSwitch is a service whose sizing features just became adaptive, and
// the fewest errors their bounds rest on.
type upperSwitch struct {
	features []string
	errors   int
}

// noteUpper sets foresight_upper_bound_errors for the loop's services that
// have the feature, and notes in switched the services whose bound just
// became adaptive (the caller logs them, once per service and switch, not
// every cycle). A bound that falls back to the model's own is warned here.
func (f *Forecaster) noteUpper(u *upperBound, errs []int, switched map[string]*upperSwitch) {
	m := f.opts.Manifest
	var own []string
	for n, svc := range m.Services {
		if !f.owns(svc) || m.IsUnobserved(u.feature, svc) {
			continue
		}
		f.metrics.upperBoundErrors.WithLabelValues(svc, string(u.feature)).Set(float64(errs[n]))
		on := errs[n] > 0
		if u.adaptive[svc] == on {
			continue
		}
		u.adaptive[svc] = on
		if on {
			s := switched[svc]
			if s == nil {
				s = &upperSwitch{errors: errs[n]}
				switched[svc] = s
			}
			s.features, s.errors = append(s.features, string(u.feature)), min(s.errors, errs[n])
		} else {
			own = append(own, svc)
		}
	}
	if len(own) > 0 {
		f.log.Warn("adaptive upper bound not finite; sizing from the model's own quantile", "services", textlimit.List(own, 20), "feature", u.feature)
	}
}

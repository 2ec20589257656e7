// Package hpa is a pure, deterministic re-implementation of the stock
// Kubernetes HorizontalPodAutoscaler controller (autoscaling/v2, as in
// kube-controller-manager v1.37) for the trace-driven simulator.
//
// It models one reconcile of one HPA (Sync) from what the controller would
// read at that instant: the target's replicas and, per entry of spec.metrics,
// the observed values. It follows upstream's replica calculator (tolerance,
// integer utilization percentages, milli-unit quantities, the handling of
// unready pods, of CPU samples taken during the initialization period and of
// pods with missing metrics, and the re-run that cancels a change of
// direction), the max over metrics with upstream's rule for failed metrics,
// the "spec.replicas 0 disables autoscaling" rule, min/max clamping, and both
// normalizations: with spec.behavior (stabilization windows over the
// recommendation history, Pods/Percent rate policies over the scale-event
// history, selectPolicy, per-direction tolerance) and without it (the legacy
// 5-minute downscale stabilization and the 2x / 4-pod scale-up cap).
//
// Left out, because the simulator provides them or they do not affect the
// replica count: metrics-server and adapter delays (Sync uses the values it
// is given, Pod.UsageAge tells how old a CPU sample is), API calls, retries,
// events and status writes; Object metrics (they are computed exactly like
// External ones: map an Object Value/AverageValue target onto ExternalValue /
// ExternalAverageValue); container-level resource metrics (pass the
// container's usage and request); scale to zero (HPAScaleToZero, minReplicas
// 0); wall-clock jitter: all comparisons use the single instant now, so a
// recommendation or scale event exactly one window or period old is outside
// it, as upstream's strict After comparisons make it (the legacy
// no-behavior stabilization keeps it, as its Before comparison does).
//
// An HPA is not safe for concurrent use; the simulator owns one per target.
package hpa

import (
	"errors"
	"fmt"
	"math"
	"time"
)

// PolicyType is the type of an HPAScalingPolicy.
type PolicyType string

// Policy types.
const (
	Pods    PolicyType = "Pods"
	Percent PolicyType = "Percent"
)

// Policy is one HPAScalingPolicy: at most Value pods (Pods) or Value percent
// of the replicas at the start of the period (Percent) may be added or removed
// within any Period.
type Policy struct {
	Type   PolicyType    // Pods or Percent
	Value  int32         // > 0
	Period time.Duration // periodSeconds: whole seconds in (0, 1800 s]
}

// SelectPolicy chooses among a direction's policies.
type SelectPolicy string

// Select policies.
const (
	SelectMax      SelectPolicy = "Max"      // the policy allowing the largest change
	SelectMin      SelectPolicy = "Min"      // the policy allowing the smallest change
	SelectDisabled SelectPolicy = "Disabled" // no scaling in this direction
)

// Rules is one direction's HPAScalingRules. Zero fields take upstream's
// defaults, as the API server's defaulting fills them.
type Rules struct {
	// StabilizationWindow: whole seconds in [0, 3600 s]; nil: 0 for scale-up,
	// Config.DownscaleStabilization (truncated to whole seconds) for
	// scale-down.
	StabilizationWindow *time.Duration
	SelectPolicy        SelectPolicy // "" = Max
	// Policies: nil or empty means the defaults (up: 4 pods and 100 % per
	// 15 s; down: 100 % per 15 s). Upstream rejects an explicit empty list;
	// here it cannot be told apart from nil.
	Policies  []Policy
	Tolerance *float64 // >= 0; nil: Config.Tolerance
}

// Behavior is spec.behavior.
type Behavior struct{ ScaleUp, ScaleDown Rules }

// Config is one HPA object plus the controller flags that matter. Start from
// DefaultConfig: zero values are not the upstream defaults.
type Config struct {
	MinReplicas, MaxReplicas int32
	Behavior                 Behavior
	// NoBehavior models an HPA whose spec.behavior is omitted (the common
	// case in manifests): upstream then skips the behavior logic and uses
	// normalizeDesiredReplicas, which stabilizes scale-down over
	// DownscaleStabilization and caps a scale-up at max(2*current, 4) per
	// sync, with no scale-event history and the global tolerance. Behavior
	// must be left zero then.
	NoBehavior bool
	// SyncPeriod is --horizontal-pod-autoscaler-sync-period (default 15 s);
	// Due uses it to tell when the controller reconciles.
	SyncPeriod time.Duration
	// Tolerance is --horizontal-pod-autoscaler-tolerance (default 0.1).
	Tolerance float64
	// CPUInitializationPeriod is --horizontal-pod-autoscaler-cpu-initialization-period (default 5 min).
	CPUInitializationPeriod time.Duration
	// InitialReadinessDelay is --horizontal-pod-autoscaler-initial-readiness-delay (default 30 s).
	InitialReadinessDelay time.Duration
	// DownscaleStabilization is
	// --horizontal-pod-autoscaler-downscale-stabilization (default 5 min):
	// the default scale-down stabilization window.
	DownscaleStabilization time.Duration
	// MetricWindow is the window metrics-server reports with each CPU sample
	// (its --metric-resolution, 15 s by default). A CPU sample taken less
	// than one window after a pod turned ready is ignored during the pod's
	// initialization period.
	MetricWindow time.Duration
}

// Upstream limits and defaults (pkg/apis/autoscaling/validation and
// pkg/apis/autoscaling/v2/defaults.go, kube-controller-manager flags).
const (
	maxStabilizationWindow = 3600 * time.Second
	maxPolicyPeriod        = 1800 * time.Second
	defaultPolicyPeriod    = 15 * time.Second
)

// DefaultConfig returns an HPA with the given bounds, a spec.behavior with
// every field defaulted, and the controller's default flags.
func DefaultConfig(min, max int32) Config {
	return Config{
		MinReplicas:             min,
		MaxReplicas:             max,
		SyncPeriod:              15 * time.Second,
		Tolerance:               0.1,
		CPUInitializationPeriod: 5 * time.Minute,
		InitialReadinessDelay:   30 * time.Second,
		DownscaleStabilization:  5 * time.Minute,
		MetricWindow:            15 * time.Second,
	}
}

// Validate checks the configuration as the API server's validation and the
// controller's flag parsing would; every problem is reported, naming the
// field.
func (c Config) Validate() error {
	var errs []error
	bad := func(field, format string, args ...any) {
		errs = append(errs, fieldError(field, format, args...))
	}
	if c.MinReplicas < 1 {
		bad("MinReplicas", "must be at least 1 (scale to zero is not modeled), got %d", c.MinReplicas)
	}
	if c.MaxReplicas < 1 {
		bad("MaxReplicas", "must be at least 1, got %d", c.MaxReplicas)
	} else if c.MaxReplicas < c.MinReplicas {
		bad("MaxReplicas", "must be >= MinReplicas (%d), got %d", c.MinReplicas, c.MaxReplicas)
	}
	if c.SyncPeriod <= 0 {
		bad("SyncPeriod", "must be positive, got %v", c.SyncPeriod)
	}
	if math.IsNaN(c.Tolerance) || math.IsInf(c.Tolerance, 0) || c.Tolerance < 0 {
		bad("Tolerance", "must be a finite number >= 0, got %v", c.Tolerance)
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{
		{"CPUInitializationPeriod", c.CPUInitializationPeriod},
		{"InitialReadinessDelay", c.InitialReadinessDelay},
		{"DownscaleStabilization", c.DownscaleStabilization},
		{"MetricWindow", c.MetricWindow},
	} {
		if d.v < 0 {
			bad(d.name, "must not be negative, got %v", d.v)
		}
	}
	if c.NoBehavior {
		if !c.Behavior.isZero() {
			bad("Behavior", "must be zero when NoBehavior is set (an omitted spec.behavior has no rules)")
		}
	} else {
		errs = append(errs, c.Behavior.ScaleUp.validate("Behavior.ScaleUp")...)
		errs = append(errs, c.Behavior.ScaleDown.validate("Behavior.ScaleDown")...)
	}
	if len(errs) == 0 {
		return nil
	}
	return fmt.Errorf("invalid HPA config: %w", errors.Join(errs...))
}

// fieldError is a validation error led by the name of the offending field.
func fieldError(field, format string, args ...any) error {
	return fmt.Errorf("%s: %s", field, fmt.Sprintf(format, args...))
}

func (b Behavior) isZero() bool { return b.ScaleUp.isZero() && b.ScaleDown.isZero() }

func (r Rules) isZero() bool {
	return r.StabilizationWindow == nil && r.SelectPolicy == "" && len(r.Policies) == 0 && r.Tolerance == nil
}

func (r Rules) validate(path string) []error {
	var errs []error
	bad := func(field, format string, args ...any) {
		errs = append(errs, fieldError(path+"."+field, format, args...))
	}
	if w := r.StabilizationWindow; w != nil {
		switch {
		case *w < 0 || *w > maxStabilizationWindow:
			bad("StabilizationWindow", "must be within [0, %v], got %v", maxStabilizationWindow, *w)
		case *w%time.Second != 0:
			bad("StabilizationWindow", "must be whole seconds (stabilizationWindowSeconds), got %v", *w)
		}
	}
	switch r.SelectPolicy {
	case "", SelectMax, SelectMin, SelectDisabled:
	default:
		bad("SelectPolicy", "unknown %q (want %q, %q or %q)", r.SelectPolicy, SelectMax, SelectMin, SelectDisabled)
	}
	for i, p := range r.Policies {
		field := fmt.Sprintf("Policies[%d]", i)
		if p.Type != Pods && p.Type != Percent {
			bad(field+".Type", "unknown policy type %q (want %q or %q)", p.Type, Pods, Percent)
		}
		if p.Value <= 0 {
			bad(field+".Value", "must be greater than zero, got %d", p.Value)
		}
		switch {
		case p.Period <= 0 || p.Period > maxPolicyPeriod:
			bad(field+".Period", "must be within (0, %v], got %v", maxPolicyPeriod, p.Period)
		case p.Period%time.Second != 0:
			bad(field+".Period", "must be whole seconds (periodSeconds), got %v", p.Period)
		}
	}
	if t := r.Tolerance; t != nil && (math.IsNaN(*t) || math.IsInf(*t, 0) || *t < 0) {
		bad("Tolerance", "must be a finite number >= 0, got %v", *t)
	}
	return errs
}

// rules is one direction's HPAScalingRules after defaulting.
type rules struct {
	window   time.Duration
	sel      SelectPolicy
	policies []Policy
	longest  time.Duration // longest policy period: scale events older than it are reusable
}

func resolveRules(r Rules, defWindow time.Duration, defPolicies []Policy) rules {
	out := rules{window: defWindow, sel: SelectMax, policies: defPolicies}
	if r.StabilizationWindow != nil {
		out.window = *r.StabilizationWindow
	}
	if r.SelectPolicy != "" {
		out.sel = r.SelectPolicy
	}
	if len(r.Policies) > 0 {
		out.policies = append([]Policy(nil), r.Policies...)
	}
	for _, p := range out.policies {
		out.longest = max(out.longest, p.Period)
	}
	return out
}

// tolerances are the per-direction tolerances on the usage ratio.
type tolerances struct{ down, up float64 }

// within reports whether a usage ratio is too close to 1 to act on; the
// bounds are inclusive, as upstream's Tolerances.isWithin.
func (t tolerances) within(ratio float64) bool {
	return 1-t.down <= ratio && ratio <= 1+t.up
}

// HPA is one autoscaler's controller state: the recommendation history used
// by stabilization, the scale events used by the rate policies, the time of
// the last reconcile and the status it would publish.
type HPA struct {
	cfg      Config
	up, down rules
	tol      tolerances

	// recs is nil until the first Sync records the initial recommendation,
	// as upstream's recordInitialRecommendation.
	recs                 []recommendation
	upEvents, downEvents []scaleEvent

	synced   bool
	lastSync time.Duration
	status   Status
}

type recommendation struct {
	replicas int32
	at       time.Duration
}

// scaleEvent is one rescale; its slot is reused once it is older than the
// direction's longest policy period.
type scaleEvent struct {
	change int32 // absolute replica change, > 0
	at     time.Duration
}

// New returns the controller state for one HPA, or the configuration error.
func New(c Config) (*HPA, error) {
	if err := c.Validate(); err != nil {
		return nil, fmt.Errorf("new HPA: %w", err)
	}
	h := &HPA{cfg: c, tol: tolerances{down: c.Tolerance, up: c.Tolerance}}
	if !c.NoBehavior {
		h.up = resolveRules(c.Behavior.ScaleUp, 0, []Policy{
			{Type: Pods, Value: 4, Period: defaultPolicyPeriod},
			{Type: Percent, Value: 100, Period: defaultPolicyPeriod},
		})
		// Upstream converts the flag with int32(Seconds()) before using it as
		// stabilizationWindowSeconds, dropping any fraction of a second.
		downDefault := c.DownscaleStabilization.Truncate(time.Second)
		h.down = resolveRules(c.Behavior.ScaleDown, downDefault, []Policy{
			{Type: Percent, Value: 100, Period: defaultPolicyPeriod},
		})
		if t := c.Behavior.ScaleUp.Tolerance; t != nil {
			h.tol.up = *t
		}
		if t := c.Behavior.ScaleDown.Tolerance; t != nil {
			h.tol.down = *t
		}
	}
	h.status.MetricReplicas = -1
	return h, nil
}

// Config returns the configuration the HPA was built from.
func (h *HPA) Config() Config { return h.cfg }

// Due reports whether the controller reconciles this HPA at now: on the first
// call, then once SyncPeriod has passed since the previous Sync, because the
// controller's work queue re-adds every HPA with a fixed SyncPeriod delay
// after processing it.
func (h *HPA) Due(now time.Duration) bool {
	return !h.synced || now-h.lastSync >= h.cfg.SyncPeriod
}

// ErrMetricsUnavailable is wrapped by Sync's error when the controller cannot
// act on its metrics: every metric failed, or some failed and the valid ones
// would scale down. Upstream then leaves the target alone
// (FailedComputeMetricsReplicas); Sync returns the current replicas and
// rescale false. Other errors from Sync are invalid input.
var ErrMetricsUnavailable = errors.New("failed to compute desired number of replicas based on listed metrics")

// Sync runs one reconcile at time now for a target whose scale subresource
// has spec.replicas = status.replicas = current. It returns the replicas the
// controller would write and whether it would write them. See SyncScale.
func (h *HPA) Sync(now time.Duration, current int32, metrics []Metric) (desired int32, rescale bool, err error) {
	return h.SyncScale(now, current, current, metrics)
}

// SyncScale is Sync for a target whose status.replicas (pods that exist,
// which External AverageValue divides by) differs from spec.replicas, e.g.
// while a scale-up is rolling out.
//
// Times must not go backwards across calls. On invalid input the state is
// left untouched. A metric that cannot be computed (no pods, no usable
// samples, NaN value, missing request) fails like a failed metrics fetch
// upstream: it is skipped when another metric is valid and the result does
// not scale down (Status reports it), otherwise Sync returns an error
// wrapping ErrMetricsUnavailable with desired = specReplicas.
func (h *HPA) SyncScale(now time.Duration, specReplicas, statusReplicas int32, metrics []Metric) (desired int32, rescale bool, err error) {
	if err := h.checkInput(now, specReplicas, statusReplicas, metrics); err != nil {
		return specReplicas, false, fmt.Errorf("hpa sync at %v: %w", now, err)
	}
	h.synced, h.lastSync = true, now
	st := &h.status
	st.Time, st.CurrentReplicas, st.MetricReplicas = now, specReplicas, -1
	st.Proposals, st.MetricErrors = st.Proposals[:0], st.MetricErrors[:0]
	st.AbleToScale = Condition{true, ReasonSucceededGetScale}

	if h.recs == nil {
		h.recs = append(make([]recommendation, 0, 32), recommendation{specReplicas, now})
	}

	rescale, compute := true, true
	switch {
	case specReplicas == 0:
		// Someone scaled the target to zero by hand: the HPA stands back.
		desired, rescale, compute = 0, false, false
		st.ScalingActive = Condition{false, ReasonScalingDisabled}
	case specReplicas > h.cfg.MaxReplicas:
		desired, compute = h.cfg.MaxReplicas, false
	case specReplicas < h.cfg.MinReplicas:
		desired, compute = h.cfg.MinReplicas, false
	}

	if compute {
		metricDesired, err := h.computeReplicasForMetrics(now, specReplicas, statusReplicas, metrics)
		if err != nil {
			st.DesiredReplicas = specReplicas
			return specReplicas, false, fmt.Errorf("hpa sync at %v: %w", now, err)
		}
		// Upstream starts from 0 and takes the metric result only if larger.
		desired = max(0, metricDesired)
		if h.cfg.NoBehavior {
			desired = h.normalizeLegacy(now, specReplicas, desired)
		} else {
			desired = h.normalizeWithBehavior(now, specReplicas, desired)
		}
		rescale = desired != specReplicas
	}

	if rescale {
		st.AbleToScale = Condition{true, ReasonSucceededRescale}
		st.LastScaleTime, st.Scaled = now, true
		if !h.cfg.NoBehavior {
			h.storeScaleEvent(now, specReplicas, desired)
		}
	} else {
		desired = specReplicas
	}
	st.DesiredReplicas = desired
	return desired, rescale, nil
}

func (h *HPA) checkInput(now time.Duration, spec, status int32, metrics []Metric) error {
	if h.synced && now < h.lastSync {
		return fmt.Errorf("time went backwards: %v is before the previous sync at %v", now, h.lastSync)
	}
	if spec < 0 {
		return fmt.Errorf("spec replicas must not be negative, got %d", spec)
	}
	if status < 0 {
		return fmt.Errorf("status replicas must not be negative, got %d", status)
	}
	if len(metrics) == 0 {
		// Upstream's defaulting turns an empty list into CPU at 80 %; the
		// simulator must say what it measures.
		return errors.New("no metrics: an HPA needs at least one entry in spec.metrics")
	}
	for i := range metrics {
		if err := metrics[i].validate(); err != nil {
			return fmt.Errorf("metrics[%d] (%s): %w", i, metrics[i].Kind, err)
		}
	}
	return nil
}

// Condition is one status condition: its status and the reason string
// upstream sets. Reason is "" until the controller first sets it.
type Condition struct {
	True   bool
	Reason string
}

// Reasons of the AbleToScale, ScalingActive and ScalingLimited conditions, as
// upstream spells them.
const (
	// AbleToScale
	ReasonSucceededGetScale   = "SucceededGetScale"
	ReasonSucceededRescale    = "SucceededRescale"
	ReasonReadyForNewScale    = "ReadyForNewScale"
	ReasonScaleUpStabilized   = "ScaleUpStabilized"
	ReasonScaleDownStabilized = "ScaleDownStabilized"
	// ScalingActive
	ReasonValidMetricFound        = "ValidMetricFound"
	ReasonScalingDisabled         = "ScalingDisabled"
	ReasonFailedGetResourceMetric = "FailedGetResourceMetric"
	ReasonFailedGetPodsMetric     = "FailedGetPodsMetric"
	ReasonFailedGetExternalMetric = "FailedGetExternalMetric"
	// ScalingLimited
	ReasonDesiredWithinRange = "DesiredWithinRange"
	ReasonScaleUpLimit       = "ScaleUpLimit"
	ReasonScaleDownLimit     = "ScaleDownLimit"
	ReasonTooManyReplicas    = "TooManyReplicas"
	ReasonTooFewReplicas     = "TooFewReplicas"
)

// Status is what the controller knows after the last Sync. Conditions keep
// their value across syncs that do not touch them, as on the HPA object.
type Status struct {
	Time            time.Duration // of the last Sync
	CurrentReplicas int32
	DesiredReplicas int32 // what Sync returned
	// MetricReplicas is the max over the metric proposals, before
	// stabilization, rate limits and bounds; -1 when no metric was computed.
	MetricReplicas int32
	// Proposals and MetricErrors are per entry of the metrics passed to the
	// last Sync (empty when none was computed): the proposal, or -1 and the
	// error that made the metric invalid.
	Proposals    []int32
	MetricErrors []error
	// LastScaleTime is the time of the last rescale, valid when Scaled.
	LastScaleTime time.Duration
	Scaled        bool

	AbleToScale    Condition
	ScalingActive  Condition
	ScalingLimited Condition
}

// Status returns a copy of the status after the last Sync.
func (h *HPA) Status() Status {
	s := h.status
	s.Proposals = append([]int32(nil), s.Proposals...)
	s.MetricErrors = append([]error(nil), s.MetricErrors...)
	return s
}

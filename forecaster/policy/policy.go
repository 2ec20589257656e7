// Package policy turns a load forecast into a replica count.
package policy

import (
	"errors"
	"fmt"
	"math"
	"sort"
	"strings"
	"time"

	"github.com/prometheus/common/model"

	"github.com/foresightscale/foresight/forecaster/queueing"
)

// Config is the scaling policy, YAML-configurable under "policy".
type Config struct {
	// Headroom is the fraction of extra capacity kept above the forecast peak.
	Headroom float64 `yaml:"headroom,omitempty" json:"headroom,omitempty"`
	// LeadTime is how far ahead capacity must be ready: the time a new pod
	// takes to start serving plus the HPA's reaction time. Replicas are sized
	// for the peak forecast within it.
	LeadTime model.Duration `yaml:"leadTime,omitempty" json:"leadTime,omitempty"`
	// MinReplicas and MaxReplicas bound every prediction.
	MinReplicas int64 `yaml:"minReplicas,omitempty" json:"minReplicas,omitempty"`
	MaxReplicas int64 `yaml:"maxReplicas,omitempty" json:"maxReplicas,omitempty"`
	// MaxScaleDownPercent limits how far one cycle may lower a prediction
	// (at least one replica per cycle), so a dip in the forecast cannot drop
	// capacity all at once.
	MaxScaleDownPercent float64 `yaml:"maxScaleDownPercent,omitempty" json:"maxScaleDownPercent,omitempty"`
	// Quantile is the forecast quantile replicas are sized from: 0.9 sizes
	// for the model's P90 (an upper bound is what autoscaling needs), 0.5
	// for the point forecast. A model without that output falls back to its
	// point forecast, with a warning at start-up.
	Quantile float64 `yaml:"quantile,omitempty" json:"quantile,omitempty"`
	// AdaptiveUpper sizes from an upper bound that follows the model's
	// recent errors instead of the model's own upper quantile: the point
	// forecast plus the Quantile of its errors over its last forecasts, per
	// service and horizon step (see forecaster/conformal), once enough of
	// them exist. It applies when Quantile is above 0.5 and the model has a
	// point forecast of the feature; false (the default) keeps the model's
	// own quantile. Off by default: in `foresight simulate`, with the burst
	// factor and the headroom on top, it cost up to 16 % more core-hours and
	// bought fewer violations on only two of five trace families
	// (docs/simulate.md): after a ramp its window of errors stays wide for
	// hours. No omitempty: true must survive a round trip either way.
	AdaptiveUpper bool `yaml:"adaptiveUpper" json:"adaptiveUpper"`
	// CapacityPerPod is the request rate (req/s) one pod serves within its
	// SLO, used for services that do not set their own.
	CapacityPerPod float64 `yaml:"capacityPerPod,omitempty" json:"capacityPerPod,omitempty"`
	// CPUPerPod is the CPU (cores) one pod should use at most, for services
	// that do not set their own. It sizes the services whose model has no
	// request rate (they never reported one) from their CPU forecast; a
	// service with a request rate is always sized from it.
	CPUPerPod float64 `yaml:"cpuPerPod,omitempty" json:"cpuPerPod,omitempty"`
	// Services overrides the defaults per service. An entry may name a
	// service the model does not know yet: it applies when the service
	// appears in the data and is forecast by the model-free fallback.
	Services map[string]ServiceConfig `yaml:"services,omitempty" json:"services,omitempty"`
	// Burst sizes each service for the short-window peaks its pods see
	// within a step, not for the step's mean rate (see BurstConfig).
	Burst BurstConfig `yaml:"burst" json:"burst"`
	// SLO, when set, makes Headroom a starting point that follows the
	// latency users get: lowered while the entry service's p99 has slack
	// against the SLO, raised at once on a violation (forecaster/feedback).
	SLO *SLOConfig `yaml:"slo,omitempty" json:"slo,omitempty"`
}

// BurstConfig sizes for bursts within a step. Models forecast each step's
// mean rate, but pods queue on the peaks inside it: a load that swings 1.3×
// around its 30 s mean overloads pods sized for the mean. Each cycle, per
// service, the burst factor is the Quantile of peak / mean over the last
// Steps steps, where the peak is the requests_peak series (the highest
// short-window rate within the step) and the mean the requests series; it
// is bounded to [1, MaxBurst]. The forecast peak is multiplied by it before
// the headroom. A service with fewer than MinBurstSamples paired samples
// (no requests_peak series) gets 1, and the loop says so once.
type BurstConfig struct {
	// Enabled turns it on (the default). No omitempty: false must survive
	// a round trip.
	Enabled bool `yaml:"enabled" json:"enabled"`
	// Quantile of the recent peak-to-mean ratios sized for: 0.75 by
	// default, so one burst's onset does not inflate the next ten minutes.
	Quantile float64 `yaml:"quantile,omitempty" json:"quantile,omitempty"`
	// Steps is how many recent steps the ratios come from (20 by default:
	// ten minutes at a 30 s step). At most the forecast window's length
	// counts, since that is what each cycle reads.
	Steps int `yaml:"steps,omitempty" json:"steps,omitempty"`
}

// MinBurstSamples is the fewest paired samples a burst factor rests on.
const MinBurstSamples = 3

// maxBurstSteps bounds policy.burst.steps.
const maxBurstSteps = 10000

func (b BurstConfig) errors() []error {
	if !b.Enabled {
		return nil
	}
	var errs []error
	if !(b.Quantile > 0 && b.Quantile <= 1) {
		errs = append(errs, fmt.Errorf("policy.burst.quantile: must be in (0,1], got %v", b.Quantile))
	}
	if b.Steps < MinBurstSamples || b.Steps > maxBurstSteps {
		errs = append(errs, fmt.Errorf("policy.burst.steps: must be between %d and %d, got %d", MinBurstSamples, maxBurstSteps, b.Steps))
	}
	return errs
}

// SLOConfig is the application's latency objective for SLO feedback.
type SLOConfig struct {
	// LatencyP99 is the objective on the p99 response time of Service.
	LatencyP99 model.Duration `yaml:"latencyP99" json:"latencyP99"`
	// Service is the entry service whose p99 (as its own sidecar measures
	// the requests it receives, callees included) is what users get.
	Service string `yaml:"service" json:"service"`
	// MinHeadroom and MaxHeadroom bound the tuned headroom. MinHeadroom
	// defaults to Headroom: the feedback then only adds headroom when the
	// SLO is violated and gives it back when it has slack. Setting it lower
	// lets quiet periods tighten below Headroom, which in the simulator
	// turned a burst's onset into more violations (docs/simulate.md).
	// MaxHeadroom defaults to 1 (or Headroom, if higher).
	MinHeadroom *float64 `yaml:"minHeadroom,omitempty" json:"minHeadroom,omitempty"`
	MaxHeadroom float64  `yaml:"maxHeadroom,omitempty" json:"maxHeadroom,omitempty"`
}

// Bounds returns the tuned headroom's bounds, defaults applied, for a
// policy starting at headroom.
func (s *SLOConfig) Bounds(headroom float64) (lo, hi float64) {
	lo, hi = headroom, s.MaxHeadroom
	if s.MinHeadroom != nil {
		lo = *s.MinHeadroom
	}
	if hi == 0 {
		hi = max(1, headroom)
	}
	return lo, hi
}

// MaxBurst bounds a burst factor: a service whose short-window peaks are
// more than this many times its step's mean is sized for this many.
const MaxBurst = 4

// maxSLOLatency bounds slo.latencyP99.
const maxSLOLatency = time.Hour

// ServiceConfig overrides the policy for one service. Zero fields inherit.
type ServiceConfig struct {
	CapacityPerPod float64 `yaml:"capacityPerPod,omitempty" json:"capacityPerPod,omitempty"`
	CPUPerPod      float64 `yaml:"cpuPerPod,omitempty" json:"cpuPerPod,omitempty"`
	MinReplicas    int64   `yaml:"minReplicas,omitempty" json:"minReplicas,omitempty"`
	MaxReplicas    int64   `yaml:"maxReplicas,omitempty" json:"maxReplicas,omitempty"`
	// PodRate and LatencyP99 together size the service with a queueing
	// model instead of CapacityPerPod: PodRate is the requests/s one pod
	// serves when fully busy (its CPU request over the CPU-seconds a request
	// costs), LatencyP99 the service's own p99 latency budget. Replicas are
	// then the fewest that keep an M/M/c queue's p99 within the budget at
	// the forecast peak times (1 + headroom). A fixed capacity per pod is
	// one utilisation for every size; the queueing model lets a large
	// deployment run hotter than a small one at the same latency, which is
	// where the savings at scale are.
	PodRate    float64        `yaml:"podRate,omitempty" json:"podRate,omitempty"`
	LatencyP99 model.Duration `yaml:"latencyP99,omitempty" json:"latencyP99,omitempty"`
}

// queueingQuantile is the latency quantile LatencyP99 bounds.
const queueingQuantile = 0.99

// Default returns the policy defaults.
func Default() Config {
	return Config{
		Headroom:            0.2,
		LeadTime:            model.Duration(2 * time.Minute),
		MinReplicas:         1,
		MaxReplicas:         100,
		MaxScaleDownPercent: 25,
		Quantile:            0.9,
		AdaptiveUpper:       false,
		Burst:               BurstConfig{Enabled: true, Quantile: 0.75, Steps: 20},
	}
}

// Bounds of the numeric settings. They are far outside any sane setting, so
// they refuse typos and absurd values (a capacity of 1e-300 req/s per pod
// would size every service at +Inf replicas) without getting in the way.
const (
	// minRate and maxRate bound capacityPerPod and podRate, in req/s.
	minRate, maxRate = 1e-6, 1e9
	// minCores and maxCores bound cpuPerPod.
	minCores, maxCores = 1e-6, 1e6
	// maxHeadroom bounds headroom: 10 is eleven times the forecast.
	maxHeadroom = 10
	// maxReplicasLimit bounds every maxReplicas; the HPA's replicas are
	// int32, and no Deployment runs a million pods.
	maxReplicasLimit = 1_000_000
	// maxLeadTime bounds leadTime (the forecaster also refuses a lead time
	// longer than its model's horizon).
	maxLeadTime = 24 * time.Hour
	// maxLatencyP99 bounds a service's latencyP99 budget.
	maxLatencyP99 = time.Hour
)

// Validate checks the configuration for the given services, which are
// sized from their request rate; errors name the field. Entries of
// policy.services for other services are allowed (see Config.Services and
// Unknown).
func (c Config) Validate(services []string) error {
	errs := c.settingErrors()
	for _, s := range services {
		if !c.CanSizeFromRequests(s) {
			errs = append(errs, fmt.Errorf("policy.services.%s.capacityPerPod: not set and no policy.capacityPerPod default (req/s one pod serves), nor podRate and latencyP99", s))
		}
	}
	return errors.Join(errs...)
}

// Unknown returns the policy.services entries that name none of services,
// sorted: a typo, or a service not modelled yet. Callers warn about them.
func (c Config) Unknown(services []string) []string {
	known := make(map[string]bool, len(services))
	for _, s := range services {
		known[s] = true
	}
	var out []string
	for _, name := range c.serviceNames() {
		if !known[name] {
			out = append(out, name)
		}
	}
	return out
}

// CanSizeFromRequests reports whether the service has a capacity per pod
// or a queueing model: what Decide needs.
func (c Config) CanSizeFromRequests(service string) bool {
	return c.capacity(service) > 0 || c.queueing(service)
}

// CPUCapacity is the service's cpuPerPod, or the default (0: none).
func (c Config) CPUCapacity(service string) float64 {
	if sc, ok := c.Services[service]; ok && sc.CPUPerPod > 0 {
		return sc.CPUPerPod
	}
	return c.CPUPerPod
}

// ValidateSettings checks what does not depend on the model's services:
// every bound, in the defaults and in each policy.services entry. A
// configuration file is checked with it when it is read, before the model
// is loaded; Validate checks the same and the services.
func (c Config) ValidateSettings() error {
	return errors.Join(c.settingErrors()...)
}

// serviceNames are the keys of c.Services, sorted for stable messages.
func (c Config) serviceNames() []string {
	names := make([]string, 0, len(c.Services))
	for name := range c.Services {
		names = append(names, name)
	}
	sort.Strings(names)
	return names
}

// settingErrors are ValidateSettings' errors.
func (c Config) settingErrors() []error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	// Comparisons are written so that NaN fails them: !(x >= lo) is true for NaN.
	if !(c.Headroom >= 0 && c.Headroom <= maxHeadroom) {
		bad("policy.headroom: must be between 0 and %d, got %v", maxHeadroom, c.Headroom)
	}
	if !(c.Quantile > 0 && c.Quantile < 1) {
		bad("policy.quantile: must be in (0,1), got %v", c.Quantile)
	}
	if c.LeadTime <= 0 {
		bad("policy.leadTime: must be positive, got %v", c.LeadTime)
	} else if time.Duration(c.LeadTime) > maxLeadTime {
		bad("policy.leadTime: must be at most %v, got %v", model.Duration(maxLeadTime), c.LeadTime)
	}
	if c.MinReplicas < 1 {
		bad("policy.minReplicas: must be at least 1, got %d (publishing 0 would let the HPA scale a service away)", c.MinReplicas)
	}
	if c.MaxReplicas < c.MinReplicas {
		bad("policy.maxReplicas: %d is below minReplicas %d", c.MaxReplicas, c.MinReplicas)
	} else if c.MaxReplicas > maxReplicasLimit {
		bad("policy.maxReplicas: must be at most %d, got %d", maxReplicasLimit, c.MaxReplicas)
	}
	if !(c.MaxScaleDownPercent > 0 && c.MaxScaleDownPercent <= 100) {
		bad("policy.maxScaleDownPercent: must be in (0,100], got %v", c.MaxScaleDownPercent)
	}
	if err := checkRate(c.CapacityPerPod); err != nil {
		bad("policy.capacityPerPod: %v", err)
	}
	if err := checkCores(c.CPUPerPod); err != nil {
		bad("policy.cpuPerPod: %v", err)
	}
	for _, name := range c.serviceNames() {
		errs = append(errs, c.validateService(name)...)
	}
	if c.SLO != nil {
		errs = append(errs, c.SLO.errors(c.Headroom)...)
	}
	errs = append(errs, c.Burst.errors()...)
	return errs
}

// errors checks the SLO block; headroom is the policy's starting headroom.
func (s *SLOConfig) errors(headroom float64) []error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if l := time.Duration(s.LatencyP99); l <= 0 || l > maxSLOLatency {
		bad("policy.slo.latencyP99: must be positive and at most %v, got %v", model.Duration(maxSLOLatency), s.LatencyP99)
	}
	if strings.TrimSpace(s.Service) == "" {
		bad("policy.slo.service: required: the entry service whose p99 users get")
	}
	lo, hi := s.Bounds(headroom)
	switch {
	case !(lo >= 0 && lo <= maxHeadroom):
		bad("policy.slo.minHeadroom: must be between 0 and %d, got %v", maxHeadroom, lo)
	case !(hi >= lo && hi <= maxHeadroom):
		bad("policy.slo.maxHeadroom: must be between minHeadroom %v and %d, got %v", lo, maxHeadroom, s.MaxHeadroom)
	case headroom < lo || headroom > hi:
		bad("policy.headroom: %v is outside policy.slo's [%v, %v]; it is where the feedback starts", headroom, lo, hi)
	}
	return errs
}

// validateService checks one entry of policy.services.
func (c Config) validateService(name string) []error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	sc := c.Services[name]
	if err := checkRate(sc.CapacityPerPod); err != nil {
		bad("policy.services.%s.capacityPerPod: %v", name, err)
	}
	if err := checkCores(sc.CPUPerPod); err != nil {
		bad("policy.services.%s.cpuPerPod: %v", name, err)
	}
	podRateErr := checkRate(sc.PodRate)
	if podRateErr != nil {
		bad("policy.services.%s.podRate: %v", name, podRateErr)
	}
	latencyOK := sc.LatencyP99 >= 0 && time.Duration(sc.LatencyP99) <= maxLatencyP99
	if !latencyOK {
		bad("policy.services.%s.latencyP99: must be between 0 (unset) and %v, got %v", name, model.Duration(maxLatencyP99), sc.LatencyP99)
	}
	if (sc.PodRate > 0) != (sc.LatencyP99 > 0) {
		bad("policy.services.%s: podRate and latencyP99 go together (queueing sizing needs both)", name)
	} else if sc.PodRate > 0 && podRateErr == nil && latencyOK {
		// An idle pod's own p99 is ln(100)/podRate: a budget below it
		// cannot be met by any number of pods.
		if floor := -math.Log(1-queueingQuantile) / sc.PodRate; time.Duration(sc.LatencyP99).Seconds() <= floor {
			bad("policy.services.%s.latencyP99: %v is below what one request takes at the 99th percentile even on an idle pod (%v at podRate %v)",
				name, sc.LatencyP99, time.Duration(floor*float64(time.Second)).Round(time.Millisecond), sc.PodRate)
		}
	}
	// 0 inherits the default; a negative bound is a typo, not "unset".
	if sc.MinReplicas < 0 {
		bad("policy.services.%s.minReplicas: must not be negative (0 inherits policy.minReplicas), got %d", name, sc.MinReplicas)
	}
	if sc.MaxReplicas < 0 || sc.MaxReplicas > maxReplicasLimit {
		bad("policy.services.%s.maxReplicas: must be between 0 (inherit) and %d, got %d", name, maxReplicasLimit, sc.MaxReplicas)
	}
	if lo, hi := c.bounds(name); hi < lo {
		bad("policy.services.%s: maxReplicas %d is below minReplicas %d", name, hi, lo)
	}
	return errs
}

// checkRate checks a request rate setting: 0 (unset, inherit) or within
// [minRate, maxRate]. NaN and Inf fail the range test.
func checkRate(v float64) error {
	if v == 0 || (v >= minRate && v <= maxRate) {
		return nil
	}
	return fmt.Errorf("must be a request rate between %g and %g req/s, got %v", float64(minRate), float64(maxRate), v)
}

// checkCores checks a cpuPerPod setting: 0 (unset) or within [minCores,
// maxCores]. NaN and Inf fail the range test.
func checkCores(v float64) error {
	if v == 0 || (v >= minCores && v <= maxCores) {
		return nil
	}
	return fmt.Errorf("must be CPU cores between %g and %g, got %v", float64(minCores), float64(maxCores), v)
}

func (c Config) capacity(service string) float64 {
	if sc, ok := c.Services[service]; ok && sc.CapacityPerPod > 0 {
		return sc.CapacityPerPod
	}
	return c.CapacityPerPod
}

// queueing reports whether the service is sized by the queueing model.
func (c Config) queueing(service string) bool {
	sc, ok := c.Services[service]
	return ok && sc.PodRate > 0 && sc.LatencyP99 > 0
}

// MinReplicasFor is the service's own minimum, or the default.
func (c Config) MinReplicasFor(service string) int64 {
	lo, _ := c.bounds(service)
	return lo
}

func (c Config) bounds(service string) (lo, hi int64) {
	lo, hi = c.MinReplicas, c.MaxReplicas
	if sc, ok := c.Services[service]; ok {
		if sc.MinReplicas > 0 {
			lo = sc.MinReplicas
		}
		if sc.MaxReplicas > 0 {
			hi = sc.MaxReplicas
		}
	}
	return lo, hi
}

// LeadSteps is how many forecast steps the lead time covers (at least one,
// at most the model's horizon).
func (c Config) LeadSteps(step time.Duration, horizon int) int {
	n := int(math.Ceil(float64(c.LeadTime) / float64(step)))
	return max(1, min(n, horizon))
}

// Decision is the outcome for one service, with the reasoning kept for logs.
type Decision struct {
	Replicas     int64
	PeakRequests float64 // forecast peak over the lead time, req/s
	// Raw is the replica count the load asks for, before clamping and the
	// scale-down limit. It saturates at math.MaxInt64 when the count does
	// not fit an int64 (a load/capacity of 2^63 or more, or +Inf). Under
	// queueing sizing, a load that no count up to maxReplicas serves within
	// the latency budget gives the pods needed just to keep up, or
	// maxReplicas+1 when even that is within maxReplicas.
	Raw     int64
	Limited string // "", "min", "max" or "scale_down_step"
	// Saturated reports that the load exceeds what maxReplicas can serve:
	// Replicas is maxReplicas (Limited is "max") and the service is short of
	// capacity, or its input is wrong. Callers should say so loudly.
	Saturated bool
}

// ErrBadForecast reports a forecast that must not be turned into replicas.
var ErrBadForecast = errors.New("bad forecast")

// Decide sizes a service for the peak of forecast (req/s per step, step 1
// first) within the lead time. previous is the replicas last published for
// the service (0 if none), for the scale-down limit.
//
// A load beyond what maxReplicas serves always gives maxReplicas, however
// large (even +Inf after the headroom): the arithmetic is done in float64
// and saturates, because under overload the wrong answer is the minimum.
func (c Config) Decide(service string, forecast []float64, step time.Duration, previous int64) (Decision, error) {
	return c.DecideBursty(service, forecast, 1, step, previous)
}

// DecideBursty is Decide for a service whose pods see peaks burst times the
// step's mean rate (burst ≥ 1, see BurstConfig): it sizes for the forecast
// peak times burst, then the headroom.
func (c Config) DecideBursty(service string, forecast []float64, burst float64, step time.Duration, previous int64) (Decision, error) {
	if !c.CanSizeFromRequests(service) {
		return Decision{}, fmt.Errorf("%s: no capacity per pod configured", service)
	}
	if !(burst >= 1 && burst <= MaxBurst) {
		return Decision{}, fmt.Errorf("%s: burst factor %v is outside [1, %v]", service, burst, float64(MaxBurst))
	}
	return c.decide(service, forecast, burst, step, previous, func(load float64, hi int64) int64 { return c.rawReplicas(service, load, hi) })
}

// DecideCPU is Decide for a service without a request rate: forecast is
// its CPU (cores per step), sized with its cpuPerPod. PeakRequests then
// holds the peak CPU.
func (c Config) DecideCPU(service string, forecast []float64, step time.Duration, previous int64) (Decision, error) {
	perPod := c.CPUCapacity(service)
	if perPod <= 0 {
		return Decision{}, fmt.Errorf("%s: no cpuPerPod configured to size it from its CPU forecast", service)
	}
	return c.decide(service, forecast, 1, step, previous, func(load float64, _ int64) int64 { return ceilInt64(load / perPod) })
}

// decide is Decide with the load-to-replicas rule given.
func (c Config) decide(service string, forecast []float64, burst float64, step time.Duration, previous int64, replicasFor func(load float64, hi int64) int64) (Decision, error) {
	if len(forecast) == 0 {
		return Decision{}, fmt.Errorf("%w: %s: empty forecast", ErrBadForecast, service)
	}
	lo, hi := c.bounds(service)
	if lo < 1 || hi < lo || hi > maxReplicasLimit {
		// Validate refuses these; a policy that skipped it must not
		// publish 0 or wrap around.
		return Decision{}, fmt.Errorf("%s: replica bounds [%d, %d] are not valid (policy not validated?)", service, lo, hi)
	}
	peak, err := Peak(forecast[:c.LeadSteps(step, len(forecast))])
	if err != nil {
		return Decision{}, fmt.Errorf("%w: %s: %v", ErrBadForecast, service, err)
	}
	load := peak * burst * (1 + c.Headroom) // +Inf for a peak near MaxFloat64: saturates below
	if math.IsNaN(load) {
		return Decision{}, fmt.Errorf("%s: load %v × burst %v × (1 + headroom %v) is not a number (policy not validated?)", service, peak, burst, c.Headroom)
	}
	raw := replicasFor(load, hi)
	d := Decision{PeakRequests: peak, Raw: raw, Replicas: raw}
	if raw > hi {
		// Checked before the scale-down limit: however large the load, the
		// answer is max, never a step down from the last prediction.
		d.Replicas, d.Limited, d.Saturated = hi, "max", true
		return d, nil
	}
	if previous > 0 && d.Replicas < previous {
		step := max(1, int64(math.Floor(float64(previous)*c.MaxScaleDownPercent/100)))
		if floor := previous - step; d.Replicas < floor {
			d.Replicas, d.Limited = floor, "scale_down_step"
		}
	}
	switch {
	case d.Replicas < lo:
		d.Replicas, d.Limited = lo, "min"
	case d.Replicas > hi:
		// A previous prediction above a since-lowered maxReplicas.
		d.Replicas, d.Limited = hi, "max"
	}
	return d, nil
}

// rawReplicas is the replica count load (req/s, not NaN, ≥ 0) asks for; see
// Decision.Raw. hi is the service's maxReplicas (at most maxReplicasLimit).
func (c Config) rawReplicas(service string, load float64, hi int64) int64 {
	if !c.queueing(service) {
		return ceilInt64(load / c.capacity(service))
	}
	sc := c.Services[service]
	// An M/M/c queue at 100 % never drains: keeping up at all takes more
	// than load/podRate pods. Past maxReplicas there is nothing to search
	// (and ServersFor converts that ratio to an int, which a huge load
	// would overflow).
	keepUp := load / sc.PodRate
	if keepUp >= float64(hi) {
		return max(hi+1, ceilInt64(keepUp))
	}
	n, ok := queueing.ServersFor(load, sc.PodRate, queueingQuantile, time.Duration(sc.LatencyP99).Seconds(), int(hi))
	if !ok {
		return hi + 1 // not even maxReplicas meets the budget
	}
	return int64(n)
}

// ceilInt64 is ceil(x) for x ≥ 0, saturating at math.MaxInt64 for x at or
// above 2^63 and for +Inf: converting such a float64 to int64 is undefined
// in Go and gives math.MinInt64 on amd64, which the clamp then turned into
// minReplicas.
func ceilInt64(x float64) int64 {
	const twoTo63 = 1 << 63 // float64(math.MaxInt64) rounds up to this
	switch {
	case !(x > 0):
		return 0
	case x >= twoTo63:
		return math.MaxInt64
	default:
		return int64(math.Ceil(x))
	}
}

// Peak returns the largest value, treating a negative forecast (a linear
// model can undershoot near zero load) as zero load. NaN or Inf is an error:
// no number at all is better than a wrong one.
func Peak(values []float64) (float64, error) {
	peak := 0.0
	for i, v := range values {
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return 0, fmt.Errorf("value %v at step %d", v, i+1)
		}
		peak = math.Max(peak, v)
	}
	return peak, nil
}

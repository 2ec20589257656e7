package hpa

import (
	"errors"
	"fmt"
	"math"
	"time"
)

// MetricKind is a spec.metrics source type together with its target type.
type MetricKind string

// Metric kinds. Object metrics are computed like the External ones.
const (
	// ResourceUtilization is a Resource metric with an averageUtilization
	// target: percent of the pods' requests (Metric.TargetUtilization).
	ResourceUtilization MetricKind = "ResourceUtilization"
	// ResourceAverageValue is a Resource metric with an averageValue target
	// per pod (Metric.Target, in the unit of Pod.Usage).
	ResourceAverageValue MetricKind = "ResourceAverageValue"
	// PodsAverageValue is a Pods (per-pod custom) metric with an averageValue
	// target; Pod.Usage is each pod's value.
	PodsAverageValue MetricKind = "PodsAverageValue"
	// ExternalValue is an External metric with a value target: desired =
	// ceil(ready pods * Value/Target).
	ExternalValue MetricKind = "ExternalValue"
	// ExternalAverageValue is an External metric with an averageValue
	// target: desired = ceil(Value/Target).
	ExternalAverageValue MetricKind = "ExternalAverageValue"
)

// ResourceCPU is the resource name whose samples get the readiness and
// initialization-period checks; upstream applies them to cpu only.
const ResourceCPU = "cpu"

// Metric is one entry of spec.metrics with the values observed at a sync.
type Metric struct {
	Kind MetricKind
	// Resource is the resource name of the Resource kinds: "" or "cpu" (CPU
	// samples of unready or just-started pods are set aside) or any other
	// name such as "memory" (every sample counts). Ignored by other kinds.
	Resource string
	// TargetUtilization is the ResourceUtilization target in percent of the
	// request (e.g. 70), > 0.
	TargetUtilization int32
	// Pods are the pods the target's selector matches: their samples for
	// the Resource and Pods kinds; for ExternalValue only their readiness
	// (upstream multiplies by the ready pod count). Unused by
	// ExternalAverageValue.
	Pods []Pod
	// Value is the External metric's value (sum over the selected series);
	// NaN when the metrics API returned nothing.
	Value float64
	// Target is the averageValue or value target of every kind except
	// ResourceUtilization, > 0.
	Target float64
}

// Pod is what the controller knows about one pod of the target at a sync.
type Pod struct {
	// Ready is the pod's Ready condition.
	Ready bool
	// StartedAt is the pod's status.startTime (simulation clock).
	StartedAt time.Duration
	// ReadyAt is the last transition time of the Ready condition: when it
	// turned ready if Ready, when it turned (or was first reported) unready
	// otherwise. A pod that never became ready has ReadyAt close to
	// StartedAt, which is how upstream tells it apart from one that failed
	// later.
	ReadyAt time.Duration
	// Usage is the pod's sample from the metrics API (e.g. CPU cores, or the
	// custom metric's value); NaN if missing.
	Usage float64
	// UsageAge is how old the sample is at the sync (now minus its
	// timestamp); 0 for a fresh sample. Only used by the CPU readiness check.
	UsageAge time.Duration
	// Request is the pod's resource request in the unit of Usage; NaN if the
	// pod does not request the resource, which fails a ResourceUtilization
	// metric as upstream does. Must not be negative.
	Request float64
	// Pending is phase Pending (not yet scheduled or started; also use it
	// for a pod without a start time or Ready condition yet): the pod counts
	// as unready whatever its other fields.
	Pending bool
	// Deleting is a pod being deleted (or failed): ignored entirely by the
	// Resource and Pods kinds. For ExternalValue upstream counts ready pods
	// without looking at deletion, and so does this package.
	Deleting bool
}

func (m *Metric) validate() error {
	switch m.Kind {
	case ResourceUtilization:
		if m.TargetUtilization <= 0 {
			return fieldError("TargetUtilization", "must be positive, got %d", m.TargetUtilization)
		}
	case ResourceAverageValue, PodsAverageValue, ExternalValue, ExternalAverageValue:
		if !(m.Target > 0) || math.IsInf(m.Target, 0) {
			return fieldError("Target", "must be a finite number > 0, got %v", m.Target)
		}
	default:
		return fmt.Errorf("unknown metric kind %q", m.Kind)
	}
	if math.IsInf(m.Value, 0) {
		return fieldError("Value", "must be finite or NaN, got %v", m.Value)
	}
	for i := range m.Pods {
		p := &m.Pods[i]
		switch {
		case math.IsInf(p.Usage, 0):
			return fieldError(fmt.Sprintf("Pods[%d].Usage", i), "must be finite or NaN, got %v", p.Usage)
		case p.Request < 0 || math.IsInf(p.Request, 0):
			return fieldError(fmt.Sprintf("Pods[%d].Request", i), "must be a finite number >= 0 or NaN, got %v", p.Request)
		case p.UsageAge < 0:
			return fieldError(fmt.Sprintf("Pods[%d].UsageAge", i), "must not be negative, got %v", p.UsageAge)
		}
	}
	return nil
}

// failureReason is the ScalingActive reason upstream sets when the metric fails.
func (k MetricKind) failureReason() string {
	switch k {
	case ResourceUtilization, ResourceAverageValue:
		return ReasonFailedGetResourceMetric
	case PodsAverageValue:
		return ReasonFailedGetPodsMetric
	default:
		return ReasonFailedGetExternalMetric
	}
}

// Metric failures, worded as upstream's.
var (
	errNoPods         = errors.New("no pods returned by selector while calculating replica count")
	errNoReadyMetrics = errors.New("did not receive metrics for targeted pods (pods might be unready)")
	errNoRequests     = errors.New("no metrics returned matched known pods")
	errNoValue        = errors.New("unable to get external metric: no value")
)

// computeReplicasForMetrics returns the max of the metric proposals and
// records them in the status. Failed metrics are skipped unless all failed or
// the valid ones would scale down, when upstream refuses to act.
func (h *HPA) computeReplicasForMetrics(now time.Duration, spec, status int32, metrics []Metric) (int32, error) {
	st := &h.status
	var replicas int32
	invalid := 0
	var firstErr error
	var firstReason string
	for i := range metrics {
		m := &metrics[i]
		p, err := h.proposal(now, m, spec, status)
		if err != nil {
			err = fmt.Errorf("metrics[%d] (%s): %w", i, m.Kind, err)
			st.Proposals = append(st.Proposals, -1)
			st.MetricErrors = append(st.MetricErrors, err)
			if invalid == 0 {
				firstErr, firstReason = err, m.Kind.failureReason()
			}
			invalid++
			continue
		}
		st.Proposals = append(st.Proposals, p)
		st.MetricErrors = append(st.MetricErrors, nil)
		// Upstream takes the first valid proposal even if it is lower than
		// 0, then the larger ones.
		if replicas == 0 || p > replicas {
			replicas = p
		}
	}
	if invalid == len(metrics) || (invalid > 0 && replicas < spec) {
		st.ScalingActive = Condition{false, firstReason}
		return -1, fmt.Errorf("%w: invalid metrics (%d invalid out of %d), first error is: %w",
			ErrMetricsUnavailable, invalid, len(metrics), firstErr)
	}
	st.ScalingActive = Condition{true, ReasonValidMetricFound}
	st.MetricReplicas = replicas
	return replicas, nil
}

// proposal is one metric's desired replicas (replica_calculator.go).
func (h *HPA) proposal(now time.Duration, m *Metric, spec, status int32) (int32, error) {
	switch m.Kind {
	case ResourceUtilization:
		return h.utilizationReplicas(now, m, spec)
	case ResourceAverageValue:
		return h.plainReplicas(now, m, spec, m.Resource == "" || m.Resource == ResourceCPU)
	case PodsAverageValue:
		return h.plainReplicas(now, m, spec, false)
	case ExternalValue:
		return h.externalValueReplicas(m, spec)
	default: // ExternalAverageValue; validate rejected other kinds
		return h.externalAverageValueReplicas(m, status)
	}
}

type podClass uint8

const (
	podReady   podClass = iota // sample counts
	podUnready                 // set aside; counts as 0 on a scale-up
	podMissing                 // no sample; 0 on a scale-up, the target on a scale-down
	podIgnored                 // being deleted
)

// classify is upstream's groupPods for one pod. cpu enables the checks that
// keep the CPU burst of starting pods out of the average.
func (h *HPA) classify(now time.Duration, p *Pod, cpu bool) podClass {
	switch {
	case p.Deleting:
		return podIgnored
	case p.Pending:
		return podUnready
	case math.IsNaN(p.Usage):
		return podMissing
	case !cpu:
		return podReady
	}
	var unready bool
	if p.StartedAt+h.cfg.CPUInitializationPeriod > now {
		// Still initializing: use the sample only if the pod is ready and
		// the sample covers a full metric window after it turned ready.
		sampledAt := now - p.UsageAge
		unready = !p.Ready || sampledAt < p.ReadyAt+h.cfg.MetricWindow
	} else {
		// Past initialization: ignore only a pod that has never been ready
		// (its condition turned unready within the readiness delay).
		unready = !p.Ready && p.StartedAt+h.cfg.InitialReadinessDelay > p.ReadyAt
	}
	if unready {
		return podUnready
	}
	return podReady
}

// tally classifies the pods and sums the usable samples in milli-units.
func (h *HPA) tally(now time.Duration, pods []Pod, cpu bool) (ready, unready, missing int, usage int64) {
	for i := range pods {
		switch h.classify(now, &pods[i], cpu) {
		case podReady:
			ready++
			usage += milli(pods[i].Usage)
		case podUnready:
			unready++
		case podMissing:
			missing++
		}
	}
	return ready, unready, missing, usage
}

// utilizationReplicas is GetResourceReplicas: quantities in milli-units,
// utilization as a truncated integer percentage of the summed requests.
func (h *HPA) utilizationReplicas(now time.Duration, m *Metric, spec int32) (int32, error) {
	if len(m.Pods) == 0 {
		return 0, errNoPods
	}
	cpu := m.Resource == "" || m.Resource == ResourceCPU
	ready, unready, missing, usage := h.tally(now, m.Pods, cpu)
	if ready == 0 {
		return 0, errNoReadyMetrics
	}

	// Upstream needs a request for every listed pod, deleted or not.
	target := int64(m.TargetUtilization)
	fallback := max(100, target) // a missing pod on a scale-down uses its full request, or the target if above 100 %
	var request, missingReq, missingUsage, unreadyReq int64
	for i := range m.Pods {
		p := &m.Pods[i]
		if math.IsNaN(p.Request) {
			return 0, fmt.Errorf("missing request for pods[%d]", i)
		}
		r := milli(p.Request)
		switch h.classify(now, p, cpu) {
		case podReady:
			request += r
		case podUnready:
			unreadyReq += r
		case podMissing:
			missingReq += r
			missingUsage += r * fallback / 100
		}
	}
	if request == 0 {
		return 0, errNoRequests
	}
	utilization := func(usage, request int64) float64 {
		return float64(int32(usage*100/request)) / float64(target)
	}
	ratio := utilization(usage, request)

	scaleUpWithUnready := unready > 0 && ratio > 1
	if !scaleUpWithUnready && missing == 0 {
		if h.tol.within(ratio) {
			return spec, nil
		}
		return ceilInt32(ratio * float64(ready)), nil
	}

	// Re-run with the set-aside pods filled in conservatively, so that they
	// dampen the change instead of amplifying it.
	n := ready
	if missing > 0 {
		if ratio < 1 {
			usage += missingUsage
			request += missingReq
			n += missing
		} else if ratio > 1 {
			request += missingReq
			n += missing
		}
	}
	if scaleUpWithUnready {
		request += unreadyReq
		n += unready
	}
	return h.rerun(spec, ratio, utilization(usage, request), n), nil
}

// rerun finishes a calculation after the unready and missing pods were
// filled in: no change if that lands within tolerance or flips the direction.
func (h *HPA) rerun(spec int32, ratio, newRatio float64, n int) int32 {
	if h.tol.within(newRatio) || (ratio < 1 && newRatio > 1) || (ratio > 1 && newRatio < 1) {
		return spec
	}
	replicas := ceilInt32(newRatio * float64(n))
	if (newRatio < 1 && replicas > spec) || (newRatio > 1 && replicas < spec) {
		// Counting more pods reversed the direction.
		return spec
	}
	return replicas
}

// plainReplicas is calcPlainMetricReplicas (average-value targets): the
// average per-pod value in milli-units against the target.
func (h *HPA) plainReplicas(now time.Duration, m *Metric, spec int32, cpu bool) (int32, error) {
	if len(m.Pods) == 0 {
		return 0, errNoPods
	}
	ready, unready, missing, sum := h.tally(now, m.Pods, cpu)
	if ready == 0 {
		return 0, errNoReadyMetrics
	}
	target := milli(m.Target)
	ratio := float64(sum/int64(ready)) / float64(target)

	scaleUpWithUnready := unready > 0 && ratio > 1
	if !scaleUpWithUnready && missing == 0 {
		if h.tol.within(ratio) {
			return spec, nil
		}
		return ceilInt32(ratio * float64(ready)), nil
	}

	n := ready
	if missing > 0 {
		if ratio < 1 {
			sum += target * int64(missing) // exactly on target
			n += missing
		} else if ratio > 1 {
			n += missing
		}
	}
	if scaleUpWithUnready {
		n += unready
	}
	return h.rerun(spec, ratio, float64(sum/int64(n))/float64(target), n), nil
}

// externalValueReplicas is GetExternalMetricReplicas: the ratio of the total
// to the target, times the ready pods.
func (h *HPA) externalValueReplicas(m *Metric, spec int32) (int32, error) {
	if math.IsNaN(m.Value) {
		return 0, errNoValue
	}
	ratio := float64(milli(m.Value)) / float64(milli(m.Target))
	if h.tol.within(ratio) {
		return spec, nil
	}
	if len(m.Pods) == 0 {
		return 0, errNoPods
	}
	ready := 0
	for i := range m.Pods {
		if m.Pods[i].Ready && !m.Pods[i].Pending {
			ready++
		}
	}
	return ceilInt32(ratio * float64(ready)), nil
}

// externalAverageValueReplicas is GetExternalPerPodMetricReplicas: the total
// divided by the per-pod target, compared against status.replicas.
func (h *HPA) externalAverageValueReplicas(m *Metric, status int32) (int32, error) {
	if math.IsNaN(m.Value) {
		return 0, errNoValue
	}
	usage, target := float64(milli(m.Value)), float64(milli(m.Target))
	if h.tol.within(usage / (target * float64(status))) {
		return status, nil
	}
	return ceilInt32(usage / target), nil
}

// milli converts a value to integer milli-units as the controller sees a
// resource.Quantity: MilliValue rounds up. A product within float noise of
// an integer counts as that integer, so 0.9 cores is 900m, not 901m.
func milli(v float64) int64 {
	const limit = 1 << 62 // keeps the sums of many pods within int64
	x := v * 1000
	if r := math.Round(x); math.Abs(x-r) <= 1e-9*math.Max(1, math.Abs(x)) {
		x = r
	} else {
		x = math.Ceil(x)
	}
	return int64(math.Max(-limit, math.Min(limit, x)))
}

// ceilInt32 rounds a replica proposal up, as upstream's math.Ceil.
func ceilInt32(x float64) int32 { return toInt32(math.Ceil(x)) }

// toInt32 converts an integral float to int32, saturating like upstream's
// MaxInt32 caps instead of leaving overflow to the platform. Its inputs are
// never NaN: every ratio here has a positive denominator.
func toInt32(x float64) int32 {
	switch {
	case x >= math.MaxInt32:
		return math.MaxInt32
	case x <= math.MinInt32:
		return math.MinInt32
	}
	return int32(x)
}

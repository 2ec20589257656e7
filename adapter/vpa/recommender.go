// Package vpa publishes Foresight's forecasts as VerticalPodAutoscaler
// recommendations: it acts as a VPA recommender (the VPA API's
// spec.recommenders) and writes status.recommendation for the VPAs that name
// it, leaving every other VPA to its own recommender. The VPA admission
// controller and updater then apply the values exactly as they would the
// stock recommender's.
//
// Like the rest of package adapter it only reads a snapshot.Reader.
package vpa

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	autoscalingv1 "k8s.io/api/autoscaling/v1"
	corev1 "k8s.io/api/core/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/uuid"
	vpatypes "k8s.io/autoscaler/vertical-pod-autoscaler/pkg/apis/autoscaling.k8s.io/v1"
	vpaclientset "k8s.io/autoscaler/vertical-pod-autoscaler/pkg/client/clientset/versioned"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/events"
	"k8s.io/client-go/tools/leaderelection"
	"k8s.io/client-go/tools/leaderelection/resourcelock"

	"github.com/foresightscale/foresight/forecaster/snapshot"
)

// Defaults. The margins, minimums and their meaning follow the stock VPA
// recommender (k8s.io/autoscaler/vertical-pod-autoscaler v1.8.1,
// pkg/recommender/config): --recommendation-margin-fraction 0.15,
// --pod-recommendation-min-cpu-millicores 25 and
// --pod-recommendation-min-memory-mb 250, so that a VPA moved to Foresight is
// sized with the same safety rules. See docs/vpa.md.
const (
	DefaultName     = "foresight"
	DefaultInterval = 30 * time.Second
	// DefaultCPUMargin and DefaultMemoryMargin are the fractions added on
	// top of the forecast (CPU) and the recent peak (memory).
	DefaultCPUMargin    = 0.15
	DefaultMemoryMargin = 0.15
	// DefaultUpperBoundFactor: pods whose request exceeds target × 1.5 are
	// considered over-provisioned by the VPA updater.
	DefaultUpperBoundFactor = 1.5
	// DefaultMinCPUCores and DefaultMinMemoryBytes floor every value, so a
	// quiet service never gets a request that cannot start it.
	DefaultMinCPUCores    = 0.025
	DefaultMinMemoryBytes = 250 * mebibyte
	// DefaultLeaseName is the Lease the replicas of `foresight serve`
	// compete for when leader election is on.
	DefaultLeaseName = "foresight-vpa-recommender"
)

// Annotations on a VerticalPodAutoscaler that tune how Foresight serves it.
const (
	// AnnotationService names the Foresight service whose forecast sizes
	// the VPA's pods; the default is spec.targetRef.name.
	AnnotationService = "foresight.io/service"
	// AnnotationContainer names the container that receives the
	// recommendation; needed when more than one container could.
	AnnotationContainer = "foresight.io/container"
	// AnnotationReplicas says which pod count the service's CPU forecast
	// is spread over: "predicted" (default; the pod count follows
	// foresight_predicted_replicas, e.g. through the example HPAs) or
	// "target" (the workload's own replica count, for a VPA used without
	// an HPA).
	AnnotationReplicas = "foresight.io/replicas"
)

// Values of AnnotationReplicas.
const (
	ReplicasPredicted = "predicted"
	ReplicasTarget    = "target"
)

const (
	mebibyte = 1 << 20
	// reportingController names Foresight in the Events it writes.
	reportingController = "foresight.io/vpa-recommender"
	// implausibleMemoryBytes: no real container's working set is below
	// 1 MiB, but a memory series recorded as a fraction of the limit (how
	// the boutique training data is recorded) is; sizing that as bytes
	// would silently give every pod the minimum.
	implausibleMemoryBytes = mebibyte
	// maxCPUCores and maxMemoryBytes bound what fits the quantities once
	// multiplied by the margins and bounds: far above any real pod, they
	// only stop an absurd forecast from overflowing.
	maxCPUCores    = 1e9
	maxMemoryBytes = 1 << 50
)

// Options configure a Recommender. VPAClient, KubeClient and Reader are
// required; zero values of the others mean the defaults above.
type Options struct {
	VPAClient  vpaclientset.Interface
	KubeClient kubernetes.Interface
	Reader     snapshot.Reader
	// Name is the recommender name VPAs select with spec.recommenders.
	Name string
	// Interval between passes.
	Interval time.Duration
	// Namespace limits the recommender to one namespace; empty means all.
	Namespace string
	// Now decides which predictions are fresh; nil means time.Now.
	Now func() time.Time
	Log *slog.Logger
	// Registerer receives the recommender's metrics; nil means a private
	// registry (metrics not exported).
	Registerer prometheus.Registerer

	// CPUMargin and MemoryMargin are the fractions added to the per-pod
	// CPU forecast and memory peak (DefaultCPUMargin, DefaultMemoryMargin).
	CPUMargin    float64
	MemoryMargin float64
	// UpperBoundFactor multiplies the target into the upper bound (≥ 1).
	UpperBoundFactor float64
	// MinCPUCores and MinMemoryBytes floor target and bounds.
	MinCPUCores    float64
	MinMemoryBytes float64

	// Events records Kubernetes Events on the VPAs; nil means Events sent
	// through KubeClient (events.k8s.io/v1) while Run is running.
	Events events.EventRecorder
	// LeaderElection, when set, makes Run write only while this replica
	// holds a Lease, so that the replicas of `foresight serve` do not take
	// turns writing slightly different values.
	LeaderElection *LeaderElection
}

// LeaderElection configures the Lease Run competes for.
type LeaderElection struct {
	// Namespace of the Lease; empty means the namespace of the pod's
	// ServiceAccount.
	Namespace string
	// Name of the Lease; empty means DefaultLeaseName.
	Name string
	// Identity of this replica; empty means hostname plus a random suffix.
	Identity string
	// LeaseDuration, RenewDeadline and RetryPeriod default to 15 s, 10 s
	// and 2 s, as in Kubernetes' own controllers.
	LeaseDuration time.Duration
	RenewDeadline time.Duration
	RetryPeriod   time.Duration
}

// Recommender writes Foresight-based recommendations into the status of the
// VerticalPodAutoscalers that select it. Create it with New.
type Recommender struct {
	vpa         vpaclientset.Interface
	kube        kubernetes.Interface
	reader      snapshot.Reader
	name        string
	interval    time.Duration
	namespace   string
	now         func() time.Time
	log         *slog.Logger
	sizing      sizing
	events      events.EventRecorder
	broadcaster events.EventBroadcaster
	election    *LeaderElection
	metrics     *metrics

	mu sync.Mutex
	// states remembers, per VPA, why it was last not (fully) served ("" when
	// it was): Events and warnings go out only when that changes, so a
	// lasting problem is reported once, not every pass.
	states map[types.UID]reason
}

// sizing holds the knobs that turn a forecast into resource amounts.
type sizing struct {
	cpuMargin, memoryMargin, upperFactor, minCPU, minMemory float64
}

// New validates opts and builds a Recommender.
func New(opts Options) (*Recommender, error) {
	if opts.VPAClient == nil || opts.KubeClient == nil || opts.Reader == nil {
		return nil, errors.New("vpa recommender: VPAClient, KubeClient and Reader are required")
	}
	r := &Recommender{
		vpa: opts.VPAClient, kube: opts.KubeClient, reader: opts.Reader,
		name: opts.Name, interval: opts.Interval, namespace: opts.Namespace,
		now: opts.Now, log: opts.Log, events: opts.Events,
		states: make(map[types.UID]reason),
	}
	if r.name == "" {
		r.name = DefaultName
	}
	if r.interval < 0 {
		return nil, fmt.Errorf("vpa recommender: interval %v is negative", r.interval)
	}
	if r.interval == 0 {
		r.interval = DefaultInterval
	}
	if r.now == nil {
		r.now = time.Now
	}
	if r.log == nil {
		r.log = slog.Default()
	}
	r.log = r.log.With("component", "vpa-recommender", "recommender", r.name)

	var err error
	if r.sizing, err = newSizing(opts); err != nil {
		return nil, fmt.Errorf("vpa recommender: %w", err)
	}
	reg := opts.Registerer
	if reg == nil {
		reg = prometheus.NewRegistry()
	}
	if r.metrics, err = newMetrics(reg); err != nil {
		return nil, fmt.Errorf("vpa recommender: registering metrics: %w", err)
	}
	if r.events == nil {
		scheme := runtime.NewScheme()
		if err := vpatypes.AddToScheme(scheme); err != nil {
			return nil, fmt.Errorf("vpa recommender: event scheme: %w", err)
		}
		r.broadcaster = events.NewBroadcaster(&events.EventSinkImpl{Interface: opts.KubeClient.EventsV1()})
		r.events = r.broadcaster.NewRecorder(scheme, reportingController)
	}
	if opts.LeaderElection != nil {
		if r.election, err = resolveElection(*opts.LeaderElection); err != nil {
			return nil, fmt.Errorf("vpa recommender: leader election: %w", err)
		}
	}
	return r, nil
}

func newSizing(opts Options) (sizing, error) {
	s := sizing{
		cpuMargin: opts.CPUMargin, memoryMargin: opts.MemoryMargin, upperFactor: opts.UpperBoundFactor,
		minCPU: opts.MinCPUCores, minMemory: opts.MinMemoryBytes,
	}
	for _, f := range []struct {
		name     string
		v        *float64
		def, min float64
		max      float64
	}{
		{"CPU margin", &s.cpuMargin, DefaultCPUMargin, 0, 10},
		{"memory margin", &s.memoryMargin, DefaultMemoryMargin, 0, 10},
		{"upper bound factor", &s.upperFactor, DefaultUpperBoundFactor, 1, 100},
		{"minimum CPU", &s.minCPU, DefaultMinCPUCores, 0.001, 1000},
		{"minimum memory", &s.minMemory, DefaultMinMemoryBytes, mebibyte, 1 << 40},
	} {
		if *f.v == 0 {
			*f.v = f.def
		}
		if math.IsNaN(*f.v) || *f.v < f.min || *f.v > f.max {
			return s, fmt.Errorf("%s %v is outside [%v, %v]", f.name, *f.v, f.min, f.max)
		}
	}
	return s, nil
}

func resolveElection(le LeaderElection) (*LeaderElection, error) {
	if le.Name == "" {
		le.Name = DefaultLeaseName
	}
	if le.Namespace == "" {
		// Where a pod finds its own namespace without the downward API.
		ns, err := os.ReadFile("/var/run/secrets/kubernetes.io/serviceaccount/namespace")
		if err != nil || strings.TrimSpace(string(ns)) == "" {
			return nil, fmt.Errorf("no Lease namespace given and none found in the pod's ServiceAccount (%v)", err)
		}
		le.Namespace = strings.TrimSpace(string(ns))
	}
	if le.Identity == "" {
		host, err := os.Hostname()
		if err != nil {
			return nil, fmt.Errorf("identity from hostname: %w", err)
		}
		// The suffix keeps two processes on one host (or a restarted pod
		// whose old Lease record lingers) distinct, as kube components do.
		le.Identity = host + "_" + string(uuid.NewUUID())
	}
	if le.LeaseDuration == 0 {
		le.LeaseDuration = 15 * time.Second
	}
	if le.RenewDeadline == 0 {
		le.RenewDeadline = 10 * time.Second
	}
	if le.RetryPeriod == 0 {
		le.RetryPeriod = 2 * time.Second
	}
	return &le, nil
}

// Run syncs every Interval until ctx is done, and returns nil then. A
// failed pass (the API unreachable, a write refused) is logged, counted and
// retried on the next tick. With LeaderElection it syncs only while it
// holds the Lease, and campaigns again after losing it. Call Run once.
func (r *Recommender) Run(ctx context.Context) error {
	if r.broadcaster != nil {
		if err := r.broadcaster.StartRecordingToSinkWithContext(ctx); err != nil {
			return fmt.Errorf("vpa recommender: starting the event recorder: %w", err)
		}
		defer r.broadcaster.Shutdown()
	}
	r.log.Info("VPA recommender starting", "interval", r.interval, "namespace", r.namespace,
		"leaderElection", r.election != nil)
	if r.election == nil {
		r.loop(ctx)
		return nil
	}
	return r.runElected(ctx)
}

func (r *Recommender) loop(ctx context.Context) {
	ticker := time.NewTicker(r.interval)
	defer ticker.Stop()
	for {
		if ctx.Err() != nil {
			return
		}
		if err := r.Sync(ctx); err != nil && ctx.Err() == nil {
			r.log.Error("VPA recommender pass failed; retrying next interval", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-ticker.C:
		}
	}
}

func (r *Recommender) runElected(ctx context.Context) error {
	le := r.election
	lock := &resourcelock.LeaseLock{
		LeaseMeta:  metav1.ObjectMeta{Namespace: le.Namespace, Name: le.Name},
		Client:     r.kube.CoordinationV1(),
		LockConfig: resourcelock.ResourceLockConfig{Identity: le.Identity},
	}
	log := r.log.With("lease", le.Namespace+"/"+le.Name, "identity", le.Identity)
	for ctx.Err() == nil {
		var started atomic.Bool
		loopDone := make(chan struct{})
		elector, err := leaderelection.NewLeaderElector(leaderelection.LeaderElectionConfig{
			Lock:            lock,
			LeaseDuration:   le.LeaseDuration,
			RenewDeadline:   le.RenewDeadline,
			RetryPeriod:     le.RetryPeriod,
			ReleaseOnCancel: true,
			Name:            le.Name,
			Callbacks: leaderelection.LeaderCallbacks{
				OnStartedLeading: func(lctx context.Context) {
					started.Store(true)
					defer close(loopDone)
					r.metrics.leader.Set(1)
					log.Info("became the VPA recommender leader")
					r.loop(lctx)
				},
				OnStoppedLeading: func() { r.metrics.leader.Set(0) },
			},
		})
		if err != nil {
			return fmt.Errorf("vpa recommender: leader election: %w", err)
		}
		elector.Run(ctx)
		// Run cancels the leader's context when it returns; wait for the
		// pass in flight so two passes never overlap. A callback that has
		// not started yet finds its context cancelled and does nothing.
		if started.Load() {
			<-loopDone
		}
		if ctx.Err() == nil {
			log.Warn("lost the VPA recommender lease; campaigning again")
		}
	}
	return nil
}

// Sync runs one pass: list the VPAs, and write a recommendation into each
// one that selects this recommender and whose recommendation changed. It
// returns an error when the list failed or some VPA could not be read or
// written; VPAs that were skipped for lack of a usable forecast are not
// errors (they are logged, counted and reported as Events and conditions).
func (r *Recommender) Sync(ctx context.Context) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	vpas, err := r.listVPAs(ctx)
	if err != nil {
		r.metrics.listFailures.Inc()
		return fmt.Errorf("listing VerticalPodAutoscalers in %s: %w", namespaceLabel(r.namespace), err)
	}
	now := r.now()
	preds := newestByService(r.reader.Latest().Fresh(now, r.namespace))
	targets := newTargetCache(r.kube)
	seen := make(map[types.UID]bool, len(vpas))
	var errs []error
	owned := 0
	for i := range vpas {
		v := &vpas[i]
		if !r.selects(v) {
			continue
		}
		owned++
		seen[v.UID] = true
		if err := r.syncOne(ctx, v, preds, targets, now); err != nil {
			errs = append(errs, fmt.Errorf("VPA %s/%s: %w", v.Namespace, v.Name, err))
		}
	}
	for uid := range r.states {
		if !seen[uid] {
			delete(r.states, uid)
		}
	}
	r.metrics.managed.Set(float64(owned))
	if len(errs) == 0 {
		r.metrics.lastSync.SetToCurrentTime()
	}
	return errors.Join(errs...)
}

func namespaceLabel(ns string) string {
	if ns == "" {
		return "all namespaces"
	}
	return "namespace " + ns
}

// listVPAs lists every VPA in the namespace, page by page. A fresh list
// each pass (rather than an informer) keeps nothing that can go stale and
// costs one request per 500 VPAs per interval.
func (r *Recommender) listVPAs(ctx context.Context) ([]vpatypes.VerticalPodAutoscaler, error) {
	var out []vpatypes.VerticalPodAutoscaler
	err := paginate(ctx, func(ctx context.Context, opts metav1.ListOptions) (string, error) {
		l, err := r.vpa.AutoscalingV1().VerticalPodAutoscalers(r.namespace).List(ctx, opts)
		if err != nil {
			return "", err
		}
		out = append(out, l.Items...)
		return l.Continue, nil
	})
	return out, err
}

// selects: only the VPAs whose first recommender is ours. A VPA without
// recommenders belongs to the stock recommender; the VPA API allows one
// recommender per VPA, so the first is the one.
func (r *Recommender) selects(v *vpatypes.VerticalPodAutoscaler) bool {
	return len(v.Spec.Recommenders) > 0 && v.Spec.Recommenders[0] != nil && v.Spec.Recommenders[0].Name == r.name
}

// newestByService indexes fresh predictions by namespace and service,
// keeping the newest should the snapshot ever hold two.
func newestByService(preds []snapshot.Prediction) map[serviceKey]snapshot.Prediction {
	out := make(map[serviceKey]snapshot.Prediction, len(preds))
	for _, p := range preds {
		k := serviceKey{p.Namespace, p.Service}
		if old, ok := out[k]; !ok || p.ComputedAt.After(old.ComputedAt) {
			out[k] = p
		}
	}
	return out
}

type serviceKey struct{ namespace, service string }

// reason says why a VPA (or one resource of it) was not served from the
// forecast; it is the metric's reason label.
type reason string

const (
	reasonNone               reason = ""
	reasonNoPrediction       reason = "no_prediction"
	reasonInvalidPrediction  reason = "invalid_prediction"
	reasonMemoryUnknown      reason = "memory_unknown"
	reasonInvalidMemory      reason = "invalid_memory"
	reasonTargetNotFound     reason = "target_not_found"
	reasonUnsupportedTarget  reason = "unsupported_target"
	reasonTargetScaledToZero reason = "target_scaled_to_zero"
	reasonContainerNotFound  reason = "container_not_found"
	reasonContainerAmbiguous reason = "container_ambiguous"
	reasonContainerOff       reason = "container_off"
	reasonNothingControlled  reason = "nothing_controlled"
	reasonBadAnnotation      reason = "bad_annotation"
)

// eventReason is the CamelCase form used in Events and the condition.
var eventReason = map[reason]string{
	reasonNoPrediction:       "ForesightNoPrediction",
	reasonInvalidPrediction:  "ForesightInvalidPrediction",
	reasonMemoryUnknown:      "ForesightMemoryUnknown",
	reasonInvalidMemory:      "ForesightInvalidMemory",
	reasonTargetNotFound:     "ForesightTargetNotFound",
	reasonUnsupportedTarget:  "ForesightUnsupportedTarget",
	reasonTargetScaledToZero: "ForesightTargetScaledToZero",
	reasonContainerNotFound:  "ForesightContainerNotFound",
	reasonContainerAmbiguous: "ForesightContainerAmbiguous",
	reasonContainerOff:       "ForesightContainerOff",
	reasonNothingControlled:  "ForesightNothingControlled",
	reasonBadAnnotation:      "ForesightBadAnnotation",
}

// Condition reasons and the Event sent when a VPA recovers.
const (
	conditionReasonProvided = "ForesightForecast"
	eventReasonRecovered    = "ForesightRecommendationProvided"
	eventAction             = "Recommend"
)

// problem is a reason with its human explanation (stable across passes, so
// an unchanged problem rewrites nothing).
type problem struct {
	reason reason
	detail string
}

func (p *problem) Error() string { return p.detail }

func problemf(r reason, format string, args ...any) *problem {
	return &problem{reason: r, detail: fmt.Sprintf(format, args...)}
}

// syncOne serves one VPA. It returns an error only for API failures.
func (r *Recommender) syncOne(ctx context.Context, v *vpatypes.VerticalPodAutoscaler,
	preds map[serviceKey]snapshot.Prediction, targets *targetCache, now time.Time) error {
	log := r.log.With("namespace", v.Namespace, "vpa", v.Name)
	plan, err := r.plan(ctx, v, preds, targets)
	if err != nil {
		r.metrics.recommendations.WithLabelValues(resultError, "api").Inc()
		return err
	}
	log = log.With("service", plan.service)

	newStatus := v.Status.DeepCopy()
	gen := v.Generation
	newStatus.ObservedGeneration = &gen
	cond := vpatypes.VerticalPodAutoscalerCondition{Type: vpatypes.RecommendationProvided}
	var state reason
	result := resultSkipped
	switch {
	case plan.recommendation == nil:
		// Nothing computed: keep whatever recommendation is there (the
		// last good one) and say why it is not being refreshed.
		state = plan.problems[0].reason
		cond.Status, cond.Reason = corev1.ConditionFalse, eventReason[state]
		cond.Message = joinDetails(plan.problems)
		if hasRecommendation(&v.Status) {
			cond.Message += "; keeping the previous recommendation"
		} else {
			cond.Message += "; no recommendation yet"
		}
	default:
		newStatus.Recommendation = &vpatypes.RecommendedPodResources{
			ContainerRecommendations: []vpatypes.RecommendedContainerResources{*plan.recommendation},
		}
		cond.Status, cond.Reason = corev1.ConditionTrue, conditionReasonProvided
		cond.Message = fmt.Sprintf("container %q sized from Foresight's forecast of service %q", plan.container, plan.service)
		if len(plan.problems) > 0 {
			// Partly served: one resource kept its previous value.
			state = plan.problems[0].reason
			cond.Reason = eventReason[state]
			cond.Message += "; " + joinDetails(plan.problems)
		}
		result = resultWritten
	}
	newStatus.Conditions = setCondition(newStatus.Conditions, cond, now)

	if apiequality.Semantic.DeepEqual(&v.Status, newStatus) {
		if result == resultWritten {
			result = resultUnchanged
		}
		log.Debug("VPA status unchanged", "result", result, "reason", state)
	} else {
		updated := v.DeepCopy()
		updated.Status = *newStatus
		if _, err := r.vpa.AutoscalingV1().VerticalPodAutoscalers(v.Namespace).UpdateStatus(ctx, updated, metav1.UpdateOptions{}); err != nil {
			// A conflict means someone changed the VPA since the list;
			// the next pass starts from the new version.
			r.metrics.recommendations.WithLabelValues(resultError, "api").Inc()
			return fmt.Errorf("updating status: %w", err)
		}
		if result == resultWritten {
			log.Debug("VPA recommendation written", "container", plan.container,
				"target", formatList(plan.recommendation.Target), "lowerBound", formatList(plan.recommendation.LowerBound),
				"upperBound", formatList(plan.recommendation.UpperBound), "uncappedTarget", formatList(plan.recommendation.UncappedTarget))
		}
	}
	r.metrics.recommendations.WithLabelValues(result, string(state)).Inc()
	r.report(v, state, plan.problems, log)
	return nil
}

// report logs a warning and sends an Event when a VPA's state changes: a
// problem appears or changes, or the VPA recovers. Nothing while it stays
// the same, so a 30 s loop does not flood the namespace's Events.
func (r *Recommender) report(v *vpatypes.VerticalPodAutoscaler, state reason, problems []*problem, log *slog.Logger) {
	prev, known := r.states[v.UID]
	r.states[v.UID] = state
	if known && prev == state {
		return
	}
	if state == reasonNone {
		if known { // the first pass of a healthy VPA is not news
			log.Info("VPA served from the forecast again", "previousReason", prev)
			r.events.Eventf(v, nil, corev1.EventTypeNormal, eventReasonRecovered, eventAction,
				"Foresight is sizing this VPA's pods from its forecast again")
		}
		return
	}
	msg := joinDetails(problems)
	log.Warn("VPA not fully served from the forecast", "reason", state, "detail", msg)
	r.events.Eventf(v, nil, corev1.EventTypeWarning, eventReason[state], eventAction, "%s", msg)
}

func joinDetails(ps []*problem) string {
	parts := make([]string, len(ps))
	for i, p := range ps {
		parts[i] = p.detail
	}
	return strings.Join(parts, "; ")
}

func hasRecommendation(s *vpatypes.VerticalPodAutoscalerStatus) bool {
	return s.Recommendation != nil && len(s.Recommendation.ContainerRecommendations) > 0
}

// setCondition replaces the condition of c's type, keeping its transition
// time when the status did not change, as Kubernetes conditions do.
func setCondition(conds []vpatypes.VerticalPodAutoscalerCondition, c vpatypes.VerticalPodAutoscalerCondition, now time.Time) []vpatypes.VerticalPodAutoscalerCondition {
	c.LastTransitionTime = metav1.NewTime(now.Truncate(time.Second))
	for i := range conds {
		if conds[i].Type != c.Type {
			continue
		}
		if conds[i].Status == c.Status {
			c.LastTransitionTime = conds[i].LastTransitionTime
		}
		conds[i] = c
		return conds
	}
	return append(conds, c)
}

func formatList(l corev1.ResourceList) string {
	parts := make([]string, 0, len(l))
	for _, name := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory} {
		if q, ok := l[name]; ok {
			parts = append(parts, string(name)+"="+q.String())
		}
	}
	return strings.Join(parts, ",")
}

// plan is what one pass decided for one VPA: the recommendation to write
// (nil when none could be computed) and the problems met on the way.
type plan struct {
	service, container string
	recommendation     *vpatypes.RecommendedContainerResources
	problems           []*problem
}

// plan decides the recommendation for v. An error is an API failure;
// everything else is a problem recorded in the plan.
func (r *Recommender) plan(ctx context.Context, v *vpatypes.VerticalPodAutoscaler,
	preds map[serviceKey]snapshot.Prediction, targets *targetCache) (plan, error) {
	var p plan
	fail := func(pr *problem) (plan, error) {
		p.problems = append(p.problems, pr)
		return p, nil
	}
	ref := v.Spec.TargetRef
	if ref == nil || ref.Name == "" {
		return fail(problemf(reasonUnsupportedTarget, "spec.targetRef is not set"))
	}
	p.service = ref.Name
	if s, ok := v.Annotations[AnnotationService]; ok {
		if strings.TrimSpace(s) == "" {
			return fail(problemf(reasonBadAnnotation, "annotation %s is empty", AnnotationService))
		}
		p.service = s
	}
	replicasFrom := v.Annotations[AnnotationReplicas]
	if replicasFrom == "" {
		replicasFrom = ReplicasPredicted
	}
	if replicasFrom != ReplicasPredicted && replicasFrom != ReplicasTarget {
		return fail(problemf(reasonBadAnnotation, "annotation %s is %q, want %q or %q",
			AnnotationReplicas, replicasFrom, ReplicasPredicted, ReplicasTarget))
	}

	wl, err := targets.get(ctx, v.Namespace, ref)
	var pr *problem
	switch {
	case errors.As(err, &pr):
		return fail(pr)
	case err != nil:
		return p, err
	}
	container, pr := chooseContainer(v.Annotations[AnnotationContainer], wl.containers, v.Spec.ResourcePolicy)
	if pr != nil {
		return fail(pr)
	}
	p.container = container
	policy := containerPolicy(container, v.Spec.ResourcePolicy)
	controlled := controlledResources(policy)
	if len(controlled) == 0 {
		return fail(problemf(reasonNothingControlled, "container %q controls neither cpu nor memory (resourcePolicy controlledResources)", container))
	}

	pred, ok := preds[serviceKey{v.Namespace, p.service}]
	if !ok {
		return fail(problemf(reasonNoPrediction, "no fresh Foresight prediction for service %q in namespace %q", p.service, v.Namespace))
	}

	var cpu, mem *amounts
	if controlled[corev1.ResourceCPU] {
		a, pr := r.sizing.cpu(pred, replicasFrom, wl)
		if pr != nil {
			p.problems = append(p.problems, pr)
		} else {
			cpu = &a
		}
	}
	if controlled[corev1.ResourceMemory] {
		a, pr := r.sizing.memory(pred)
		if pr != nil {
			p.problems = append(p.problems, pr)
		} else {
			mem = &a
		}
	}
	p.recommendation = buildRecommendation(container, policy, controlled, cpu, mem, previousFor(container, &v.Status))
	if p.recommendation == nil && len(p.problems) == 0 {
		// Unreachable with the checks above; never report a silent skip.
		p.problems = append(p.problems, problemf(reasonNothingControlled, "nothing to recommend for container %q", container))
	}
	return p, nil
}

// chooseContainer picks the container that receives the whole pod's
// forecast: the annotated one, else the only one whose scaling mode is not
// Off. Foresight forecasts a service, not its containers, so it cannot
// split the amounts between two containers.
func chooseContainer(annotated string, containers []string, pol *vpatypes.PodResourcePolicy) (string, *problem) {
	off := func(name string) bool {
		cp := containerPolicy(name, pol)
		return cp != nil && cp.Mode != nil && *cp.Mode == vpatypes.ContainerScalingModeOff
	}
	if annotated != "" {
		if !slices.Contains(containers, annotated) {
			return "", problemf(reasonContainerNotFound, "annotation %s names container %q, which the pod template does not have (containers: %s)",
				AnnotationContainer, annotated, strings.Join(containers, ", "))
		}
		if off(annotated) {
			return "", problemf(reasonContainerOff, "annotation %s names container %q, whose resourcePolicy mode is Off", AnnotationContainer, annotated)
		}
		return annotated, nil
	}
	var candidates []string
	for _, c := range containers {
		if !off(c) {
			candidates = append(candidates, c)
		}
	}
	switch len(candidates) {
	case 1:
		return candidates[0], nil
	case 0:
		if len(containers) == 0 {
			return "", problemf(reasonContainerNotFound, "the pod template has no containers")
		}
		return "", problemf(reasonContainerOff, "every container's resourcePolicy mode is Off")
	default:
		return "", problemf(reasonContainerAmbiguous, "the pod has containers %s: name the one to size with annotation %s",
			strings.Join(candidates, ", "), AnnotationContainer)
	}
}

// containerPolicy returns the container's own policy, else the "*" one.
func containerPolicy(name string, pol *vpatypes.PodResourcePolicy) *vpatypes.ContainerResourcePolicy {
	if pol == nil {
		return nil
	}
	var def *vpatypes.ContainerResourcePolicy
	for i := range pol.ContainerPolicies {
		switch pol.ContainerPolicies[i].ContainerName {
		case name:
			return &pol.ContainerPolicies[i]
		case vpatypes.DefaultContainerResourcePolicy:
			def = &pol.ContainerPolicies[i]
		}
	}
	return def
}

// controlledResources: cpu and memory unless the policy lists fewer.
func controlledResources(cp *vpatypes.ContainerResourcePolicy) map[corev1.ResourceName]bool {
	if cp == nil || cp.ControlledResources == nil {
		return map[corev1.ResourceName]bool{corev1.ResourceCPU: true, corev1.ResourceMemory: true}
	}
	out := make(map[corev1.ResourceName]bool, 2)
	for _, res := range *cp.ControlledResources {
		if res == corev1.ResourceCPU || res == corev1.ResourceMemory {
			out[res] = true
		}
	}
	return out
}

func previousFor(container string, s *vpatypes.VerticalPodAutoscalerStatus) *vpatypes.RecommendedContainerResources {
	if s.Recommendation == nil {
		return nil
	}
	for i := range s.Recommendation.ContainerRecommendations {
		if s.Recommendation.ContainerRecommendations[i].ContainerName == container {
			return &s.Recommendation.ContainerRecommendations[i]
		}
	}
	return nil
}

// amounts are one resource's values for one pod, in cores or bytes, before
// rounding and capping.
type amounts struct{ target, lower, upper float64 }

// cpu sizes CPU: the forecast peak over the horizon spread over the pods
// that will serve it, plus the margin. The lower bound is what a pod uses
// now (a request below it is already too small); the upper bound the
// target times the factor.
func (s sizing) cpu(p snapshot.Prediction, replicasFrom string, wl workload) (amounts, *problem) {
	if err := checkAmount(p.PredictedCPUCores, maxCPUCores); err != nil {
		return amounts{}, problemf(reasonInvalidPrediction, "predicted CPU cores for service %q %v; CPU not updated", p.Service, err)
	}
	var pods float64
	switch replicasFrom {
	case ReplicasTarget:
		if wl.replicas < 1 {
			return amounts{}, problemf(reasonTargetScaledToZero, "the target has no replicas to spread the CPU forecast over; CPU not updated")
		}
		pods = float64(wl.replicas)
	default:
		if p.PredictedReplicas < 1 {
			return amounts{}, problemf(reasonInvalidPrediction, "predicted replicas for service %q is %d, below 1; CPU not updated", p.Service, p.PredictedReplicas)
		}
		pods = float64(p.PredictedReplicas)
	}
	perPod := p.PredictedCPUCores / pods
	target := max(perPod*(1+s.cpuMargin), s.minCPU)
	lower := perPod
	if checkAmount(p.ObservedCPUCores, maxCPUCores) == nil && p.ObservedReplicas >= 1 && !math.IsInf(p.ObservedReplicas, 0) {
		lower = p.ObservedCPUCores / p.ObservedReplicas
	}
	lower = max(min(lower, target), s.minCPU)
	return amounts{target: target, lower: lower, upper: target * s.upperFactor}, nil
}

// memory sizes memory from the recent peak per pod (the model forecasts no
// memory) plus the margin; the lower bound is the peak itself: a request
// below it has already been exceeded.
func (s sizing) memory(p snapshot.Prediction) (amounts, *problem) {
	peak := p.PeakMemoryPerPodBytes
	if math.IsNaN(peak) {
		return amounts{}, problemf(reasonMemoryUnknown, "no memory data for service %q (peak memory per pod unknown); memory not updated", p.Service)
	}
	if err := checkAmount(peak, maxMemoryBytes); err != nil {
		return amounts{}, problemf(reasonInvalidMemory, "peak memory per pod for service %q %v; memory not updated", p.Service, err)
	}
	if peak < implausibleMemoryBytes {
		return amounts{}, problemf(reasonInvalidMemory, "peak memory per pod for service %q is below 1 MiB, which is not bytes "+
			"(is the memory query a fraction of the limit?); memory not updated", p.Service)
	}
	target := max(peak*(1+s.memoryMargin), s.minMemory)
	lower := max(min(peak, target), s.minMemory)
	return amounts{target: target, lower: lower, upper: target * s.upperFactor}, nil
}

// checkAmount rejects what must never be written: NaN, ±Inf, negatives and
// values too large to be real.
func checkAmount(v, limit float64) error {
	switch {
	case math.IsNaN(v):
		return errors.New("is NaN")
	case math.IsInf(v, 0):
		return fmt.Errorf("is %v", v)
	case v < 0:
		return fmt.Errorf("is negative (%v)", v)
	case v > limit:
		return fmt.Errorf("is implausibly large (%v)", v)
	}
	return nil
}

// cpuQuantity rounds up to whole millicores, the unit the kubelet uses.
func cpuQuantity(cores float64) resource.Quantity {
	return *resource.NewMilliQuantity(int64(math.Ceil(cores*1000-1e-6)), resource.DecimalSI)
}

// memoryQuantity rounds up to whole MiB: readable ("300Mi"), and far
// finer than the margin.
func memoryQuantity(bytes float64) resource.Quantity {
	return *resource.NewQuantity(int64(math.Ceil(bytes/mebibyte-1e-9))*mebibyte, resource.BinarySI)
}

// buildRecommendation turns the amounts into the container's
// recommendation. uncappedTarget is the target before the VPA's
// minAllowed/maxAllowed; target and bounds are capped to them. A resource
// whose amounts are nil (no usable value this pass) keeps its previous
// values, re-capped to the current policy. Nil when nothing is left.
func buildRecommendation(container string, pol *vpatypes.ContainerResourcePolicy, controlled map[corev1.ResourceName]bool,
	cpu, mem *amounts, prev *vpatypes.RecommendedContainerResources) *vpatypes.RecommendedContainerResources {
	rec := &vpatypes.RecommendedContainerResources{
		ContainerName:  container,
		Target:         corev1.ResourceList{},
		LowerBound:     corev1.ResourceList{},
		UpperBound:     corev1.ResourceList{},
		UncappedTarget: corev1.ResourceList{},
	}
	fresh := false
	for _, res := range []struct {
		name    corev1.ResourceName
		amounts *amounts
		toQ     func(float64) resource.Quantity
	}{
		{corev1.ResourceCPU, cpu, cpuQuantity},
		{corev1.ResourceMemory, mem, memoryQuantity},
	} {
		if !controlled[res.name] {
			continue
		}
		capQ := func(q resource.Quantity) resource.Quantity { return capToPolicy(res.name, q, pol) }
		if res.amounts != nil {
			fresh = true
			uncapped := res.toQ(res.amounts.target)
			rec.UncappedTarget[res.name] = uncapped
			rec.Target[res.name] = capQ(uncapped)
			rec.LowerBound[res.name] = capQ(res.toQ(res.amounts.lower))
			rec.UpperBound[res.name] = capQ(res.toQ(res.amounts.upper))
			continue
		}
		if prev == nil {
			continue
		}
		uncapped, ok := prev.UncappedTarget[res.name]
		if !ok {
			if uncapped, ok = prev.Target[res.name]; !ok {
				continue
			}
		}
		rec.UncappedTarget[res.name] = uncapped
		rec.Target[res.name] = capQ(uncapped)
		for _, l := range []struct{ from, to corev1.ResourceList }{{prev.LowerBound, rec.LowerBound}, {prev.UpperBound, rec.UpperBound}} {
			if q, ok := l.from[res.name]; ok {
				l.to[res.name] = capQ(q)
			}
		}
	}
	if !fresh {
		return nil
	}
	return rec
}

// capToPolicy applies minAllowed then maxAllowed, as the VPA does (a zero
// bound is no bound; with min above max, max wins).
func capToPolicy(name corev1.ResourceName, q resource.Quantity, pol *vpatypes.ContainerResourcePolicy) resource.Quantity {
	if pol == nil {
		return q
	}
	if lo, ok := pol.MinAllowed[name]; ok && !lo.IsZero() && q.Cmp(lo) < 0 {
		q = lo.DeepCopy()
	}
	if hi, ok := pol.MaxAllowed[name]; ok && !hi.IsZero() && q.Cmp(hi) > 0 {
		q = hi.DeepCopy()
	}
	return q
}

// workload is what the recommender needs from a VPA's target.
type workload struct {
	containers []string
	// replicas is the target's own pod count (spec.replicas, or the pods a
	// DaemonSet schedules, or a Job's parallelism).
	replicas int64
}

type targetKind struct{ namespace, group, kind string }

// targetCache lists each kind of workload once per namespace per pass, so
// a pass costs a few requests whatever the number of VPAs.
type targetCache struct {
	kube  kubernetes.Interface
	lists map[targetKind]map[string]workload
}

func newTargetCache(kube kubernetes.Interface) *targetCache {
	return &targetCache{kube: kube, lists: make(map[targetKind]map[string]workload)}
}

// get returns the target's workload, a *problem when the target cannot be
// served, or another error when the API failed.
func (c *targetCache) get(ctx context.Context, namespace string, ref *autoscalingv1.CrossVersionObjectReference) (workload, error) {
	gv, err := schema.ParseGroupVersion(ref.APIVersion)
	if err != nil {
		return workload{}, problemf(reasonUnsupportedTarget, "spec.targetRef.apiVersion %q: %v", ref.APIVersion, err)
	}
	key := targetKind{namespace, gv.Group, ref.Kind}
	byName, ok := c.lists[key]
	if !ok {
		if byName, err = c.list(ctx, key); err != nil {
			return workload{}, err
		}
		c.lists[key] = byName
	}
	wl, ok := byName[ref.Name]
	if !ok {
		return workload{}, problemf(reasonTargetNotFound, "target %s %s/%s not found", ref.Kind, namespace, ref.Name)
	}
	return wl, nil
}

func (c *targetCache) list(ctx context.Context, k targetKind) (map[string]workload, error) {
	out := make(map[string]workload)
	add := func(name string, spec *corev1.PodSpec, replicas int64) {
		names := make([]string, len(spec.Containers))
		for i, ctr := range spec.Containers {
			names[i] = ctr.Name
		}
		out[name] = workload{containers: names, replicas: replicas}
	}
	ns := k.namespace
	var pager func(context.Context, metav1.ListOptions) (string, error)
	switch k.group + "/" + k.kind {
	case "apps/Deployment":
		pager = func(ctx context.Context, o metav1.ListOptions) (string, error) {
			l, err := c.kube.AppsV1().Deployments(ns).List(ctx, o)
			if err != nil {
				return "", err
			}
			for _, d := range l.Items {
				add(d.Name, &d.Spec.Template.Spec, replicasOrOne(d.Spec.Replicas))
			}
			return l.Continue, nil
		}
	case "apps/StatefulSet":
		pager = func(ctx context.Context, o metav1.ListOptions) (string, error) {
			l, err := c.kube.AppsV1().StatefulSets(ns).List(ctx, o)
			if err != nil {
				return "", err
			}
			for _, s := range l.Items {
				add(s.Name, &s.Spec.Template.Spec, replicasOrOne(s.Spec.Replicas))
			}
			return l.Continue, nil
		}
	case "apps/ReplicaSet":
		pager = func(ctx context.Context, o metav1.ListOptions) (string, error) {
			l, err := c.kube.AppsV1().ReplicaSets(ns).List(ctx, o)
			if err != nil {
				return "", err
			}
			for _, s := range l.Items {
				add(s.Name, &s.Spec.Template.Spec, replicasOrOne(s.Spec.Replicas))
			}
			return l.Continue, nil
		}
	case "apps/DaemonSet":
		pager = func(ctx context.Context, o metav1.ListOptions) (string, error) {
			l, err := c.kube.AppsV1().DaemonSets(ns).List(ctx, o)
			if err != nil {
				return "", err
			}
			for _, d := range l.Items {
				add(d.Name, &d.Spec.Template.Spec, int64(d.Status.DesiredNumberScheduled))
			}
			return l.Continue, nil
		}
	case "/ReplicationController":
		pager = func(ctx context.Context, o metav1.ListOptions) (string, error) {
			l, err := c.kube.CoreV1().ReplicationControllers(ns).List(ctx, o)
			if err != nil {
				return "", err
			}
			for _, rc := range l.Items {
				if rc.Spec.Template != nil {
					add(rc.Name, &rc.Spec.Template.Spec, replicasOrOne(rc.Spec.Replicas))
				}
			}
			return l.Continue, nil
		}
	case "batch/Job":
		pager = func(ctx context.Context, o metav1.ListOptions) (string, error) {
			l, err := c.kube.BatchV1().Jobs(ns).List(ctx, o)
			if err != nil {
				return "", err
			}
			for _, j := range l.Items {
				add(j.Name, &j.Spec.Template.Spec, replicasOrOne(j.Spec.Parallelism))
			}
			return l.Continue, nil
		}
	case "batch/CronJob":
		pager = func(ctx context.Context, o metav1.ListOptions) (string, error) {
			l, err := c.kube.BatchV1().CronJobs(ns).List(ctx, o)
			if err != nil {
				return "", err
			}
			for _, j := range l.Items {
				add(j.Name, &j.Spec.JobTemplate.Spec.Template.Spec, replicasOrOne(j.Spec.JobTemplate.Spec.Parallelism))
			}
			return l.Continue, nil
		}
	default:
		return nil, problemf(reasonUnsupportedTarget, "target kind %s in API group %q is not supported "+
			"(Deployment, StatefulSet, DaemonSet, ReplicaSet, ReplicationController, Job, CronJob)", k.kind, k.group)
	}
	if err := paginate(ctx, pager); err != nil {
		if apierrors.IsForbidden(err) {
			return nil, fmt.Errorf("listing %s in namespace %s (check the vpa-recommender RBAC component): %w", k.kind, ns, err)
		}
		return nil, fmt.Errorf("listing %s in namespace %s: %w", k.kind, ns, err)
	}
	return out, nil
}

// replicasOrOne follows the API defaults: an unset replica count (or Job
// parallelism) is 1.
func replicasOrOne(n *int32) int64 {
	if n == nil {
		return 1
	}
	return int64(*n)
}

// paginate calls list with 500-item pages until the continue token is empty.
func paginate(ctx context.Context, list func(context.Context, metav1.ListOptions) (string, error)) error {
	opts := metav1.ListOptions{Limit: 500}
	for {
		next, err := list(ctx, opts)
		if err != nil {
			return err
		}
		if next == "" {
			return nil
		}
		opts.Continue = next
	}
}

// Results of one VPA in one pass, the metric's result label.
const (
	resultWritten   = "written"
	resultUnchanged = "unchanged"
	resultSkipped   = "skipped"
	resultError     = "error"
)

type metrics struct {
	recommendations *prometheus.CounterVec
	listFailures    prometheus.Counter
	lastSync        prometheus.Gauge
	managed         prometheus.Gauge
	leader          prometheus.Gauge
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		recommendations: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "foresight_vpa_recommendations_total",
			Help: "VPA passes by result (written, unchanged, skipped, error) and reason: why the VPA, or one of its resources, " +
				"was not sized from the forecast (empty when it fully was; \"api\" for API errors).",
		}, []string{"result", "reason"}),
		listFailures: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "foresight_vpa_list_failures_total",
			Help: "Passes in which the VerticalPodAutoscalers could not be listed.",
		}),
		lastSync: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "foresight_vpa_last_sync_timestamp_seconds",
			Help: "Unix time of the last pass without API errors.",
		}),
		managed: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "foresight_vpa_managed",
			Help: "VerticalPodAutoscalers that select this recommender, at the last pass.",
		}),
		leader: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "foresight_vpa_leader",
			Help: "1 while this replica holds the VPA recommender lease (leader election on), else 0.",
		}),
	}
	for _, c := range []prometheus.Collector{m.recommendations, m.listFailures, m.lastSync, m.managed, m.leader} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	for _, r := range []string{resultWritten, resultUnchanged, resultSkipped} {
		m.recommendations.WithLabelValues(r, "")
	}
	return m, nil
}

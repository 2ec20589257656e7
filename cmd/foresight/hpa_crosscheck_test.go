package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/url"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	autoscalingv2 "k8s.io/api/autoscaling/v2"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/watch"

	"github.com/foresightscale/foresight/forecaster/simulator/hpa"
	"github.com/foresightscale/foresight/internal/kubetest"
	"github.com/foresightscale/foresight/internal/testenv"
)

// Cross-check of the simulator's HPA (forecaster/simulator/hpa) against the
// real kube-controller-manager: the e2e test records every status the
// controller writes for the example HPA while it follows the load step, and
// crosscheckHPA replays those syncs through hpa.New with the same HPA spec
// and compares the replica counts decided.

// kcmHPASyncPeriod is --horizontal-pod-autoscaler-sync-period of the
// controller manager internal/kubetest starts; its other HPA flags are the
// defaults, which hpa.DefaultConfig holds.
const kcmHPASyncPeriod = 5 * time.Second

// hpaConfigFromSpec converts an autoscaling/v2 HPA spec into the simulator's
// configuration for a controller manager with default HPA flags except the
// sync period. Fields the API server would default may be set or not:
// unset ones take the same defaults in both. Only what changes the replica
// count is converted (spec.metrics goes through hpaMetricFromSpec).
func hpaConfigFromSpec(spec autoscalingv2.HorizontalPodAutoscalerSpec, syncPeriod time.Duration) (hpa.Config, error) {
	minReplicas := int32(1) // SetDefaults_HorizontalPodAutoscaler
	if spec.MinReplicas != nil {
		minReplicas = *spec.MinReplicas
	}
	cfg := hpa.DefaultConfig(minReplicas, spec.MaxReplicas)
	cfg.SyncPeriod = syncPeriod
	if spec.Behavior == nil {
		cfg.NoBehavior = true
	} else {
		var errs []error
		var err error
		if cfg.Behavior.ScaleUp, err = hpaRulesFromSpec(spec.Behavior.ScaleUp); err != nil {
			errs = append(errs, fmt.Errorf("behavior.scaleUp: %w", err))
		}
		if cfg.Behavior.ScaleDown, err = hpaRulesFromSpec(spec.Behavior.ScaleDown); err != nil {
			errs = append(errs, fmt.Errorf("behavior.scaleDown: %w", err))
		}
		if len(errs) > 0 {
			return hpa.Config{}, errors.Join(errs...)
		}
	}
	if err := cfg.Validate(); err != nil {
		return hpa.Config{}, err
	}
	return cfg, nil
}

// hpaRulesFromSpec converts one direction's HPAScalingRules; nil (the
// direction omitted) leaves every field to the defaults.
func hpaRulesFromSpec(r *autoscalingv2.HPAScalingRules) (hpa.Rules, error) {
	var out hpa.Rules
	if r == nil {
		return out, nil
	}
	if w := r.StabilizationWindowSeconds; w != nil {
		d := time.Duration(*w) * time.Second
		out.StabilizationWindow = &d
	}
	if p := r.SelectPolicy; p != nil {
		switch *p {
		case autoscalingv2.MaxChangePolicySelect:
			out.SelectPolicy = hpa.SelectMax
		case autoscalingv2.MinChangePolicySelect:
			out.SelectPolicy = hpa.SelectMin
		case autoscalingv2.DisabledPolicySelect:
			out.SelectPolicy = hpa.SelectDisabled
		default:
			return hpa.Rules{}, fmt.Errorf("unknown selectPolicy %q", *p)
		}
	}
	if r.Policies != nil && len(r.Policies) == 0 {
		// The API server rejects it; the simulator would read it as the defaults.
		return hpa.Rules{}, errors.New("policies: an explicit empty list is invalid")
	}
	for i, p := range r.Policies {
		var typ hpa.PolicyType
		switch p.Type {
		case autoscalingv2.PodsScalingPolicy:
			typ = hpa.Pods
		case autoscalingv2.PercentScalingPolicy:
			typ = hpa.Percent
		default:
			return hpa.Rules{}, fmt.Errorf("policies[%d]: unknown type %q", i, p.Type)
		}
		out.Policies = append(out.Policies, hpa.Policy{Type: typ, Value: p.Value, Period: time.Duration(p.PeriodSeconds) * time.Second})
	}
	if q := r.Tolerance; q != nil {
		// As the controller's tolerancesForHpa.
		t := q.AsApproximateFloat64()
		out.Tolerance = &t
	}
	return out, nil
}

// hpaMetricFromSpec returns the simulator metric for one entry of
// spec.metrics, without its observed values. Only External metrics are
// converted: the e2e cluster has no metrics-server. Targets are taken in
// milli-units, as the controller reads them (MilliValue).
func hpaMetricFromSpec(m autoscalingv2.MetricSpec) (hpa.Metric, error) {
	if m.Type != autoscalingv2.ExternalMetricSourceType || m.External == nil {
		return hpa.Metric{}, fmt.Errorf("metric type %q is not converted (External only)", m.Type)
	}
	t := m.External.Target
	switch {
	case t.AverageValue != nil: // the controller checks AverageValue first
		return hpa.Metric{Kind: hpa.ExternalAverageValue, Target: float64(t.AverageValue.MilliValue()) / 1000}, nil
	case t.Value != nil:
		return hpa.Metric{Kind: hpa.ExternalValue, Target: float64(t.Value.MilliValue()) / 1000}, nil
	}
	return hpa.Metric{}, fmt.Errorf("external metric %s has neither a value nor an averageValue target", m.External.Metric.Name)
}

// hpaObservation is one status the HPA controller wrote, as the watch
// delivered it, with the target Deployment read right after.
type hpaObservation struct {
	At               time.Time
	Current, Desired int32 // status.currentReplicas (the scale's spec.replicas at the sync), status.desiredReplicas
	HasMetric        bool  // false: the status carries no metric value (e.g. a failed sync)
	AverageMilli     int64 // status.currentMetrics[0].external.current.averageValue in milli-units
	Average          float64
	AverageText      string // the same as written, e.g. "1667m"
	// Served is the metric total (the sum over the selected series) read
	// through the apiserver right after the status arrived, as a second
	// witness of what the controller read; ServedOK false if that failed.
	Served                 float64
	ServedOK               bool
	LastScale              time.Time // status.lastScaleTime (whole seconds); zero: never scaled
	Deployment, DeployPods int32     // the Deployment's spec.replicas and status.replicas
}

// hpaRecorder watches one HPA and records every change of its status.
type hpaRecorder struct {
	cancel context.CancelFunc
	done   chan struct{}

	mu   sync.Mutex
	obs  []hpaObservation
	errs []string
}

// recordHPA starts recording the statuses of the HPA name (start it before
// creating the HPA, so that the first sync is seen) until stop, ctx's end or
// the end of the test.
func recordHPA(ctx context.Context, t *testing.T, c *kubetest.Cluster, name, deployment string) *hpaRecorder {
	t.Helper()
	ctx, cancel := context.WithCancel(ctx)
	r := &hpaRecorder{cancel: cancel, done: make(chan struct{})}
	go r.run(ctx, c, name, deployment)
	t.Cleanup(func() { r.stop() })
	return r
}

// stop ends the recording and returns what was recorded, with the errors
// met on the way (watch restarts, failed reads).
func (r *hpaRecorder) stop() ([]hpaObservation, []string) {
	r.cancel()
	<-r.done
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.obs), slices.Clone(r.errs)
}

func (r *hpaRecorder) fail(format string, args ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.errs = append(r.errs, fmt.Sprintf(format, args...))
}

// run lists then watches the HPA, re-watching from the last resource
// version when the server closes the watch and re-listing when that version
// is gone; at most 200 (re)starts.
func (r *hpaRecorder) run(ctx context.Context, c *kubetest.Cluster, name, deployment string) {
	defer close(r.done)
	hpas := c.Client.AutoscalingV2().HorizontalPodAutoscalers(appNamespace)
	sel := fields.OneTermEqualSelector("metadata.name", name).String()
	var last *autoscalingv2.HorizontalPodAutoscalerStatus
	observe := func(h *autoscalingv2.HorizontalPodAutoscaler) {
		at := time.Now()
		if last != nil && reflect.DeepEqual(*last, h.Status) {
			return
		}
		last = h.Status.DeepCopy()
		o := hpaObservation{At: at, Current: h.Status.CurrentReplicas, Desired: h.Status.DesiredReplicas}
		if ms := h.Status.CurrentMetrics; len(ms) > 0 && ms[0].External != nil && ms[0].External.Current.AverageValue != nil {
			q := ms[0].External.Current.AverageValue
			o.HasMetric, o.AverageMilli, o.Average, o.AverageText = true, q.MilliValue(), q.AsApproximateFloat64(), q.String()
		}
		if len(h.Spec.Metrics) > 0 && h.Spec.Metrics[0].External != nil {
			var err error
			if o.Served, err = externalMetricTotal(ctx, c, h.Spec.Metrics[0].External.Metric); err == nil {
				o.ServedOK = true
			} else if ctx.Err() == nil {
				r.fail("reading the external metric: %v", err)
			}
		}
		if h.Status.LastScaleTime != nil {
			o.LastScale = h.Status.LastScaleTime.Time
		}
		if d, err := c.Client.AppsV1().Deployments(appNamespace).Get(ctx, deployment, metav1.GetOptions{}); err == nil {
			o.Deployment, o.DeployPods = *d.Spec.Replicas, d.Status.Replicas
		} else if ctx.Err() == nil {
			r.fail("reading Deployment %s: %v", deployment, err)
		}
		r.mu.Lock()
		r.obs = append(r.obs, o)
		r.mu.Unlock()
	}
	rv := ""
	for range 200 {
		if ctx.Err() != nil {
			return
		}
		if rv == "" {
			l, err := hpas.List(ctx, metav1.ListOptions{FieldSelector: sel})
			if err != nil {
				if ctx.Err() == nil {
					r.fail("listing HPA %s: %v", name, err)
					time.Sleep(250 * time.Millisecond)
				}
				continue
			}
			rv = l.ResourceVersion
			for i := range l.Items {
				observe(&l.Items[i])
			}
		}
		w, err := hpas.Watch(ctx, metav1.ListOptions{FieldSelector: sel, ResourceVersion: rv, AllowWatchBookmarks: true})
		if err != nil {
			if ctx.Err() == nil {
				r.fail("watching HPA %s: %v", name, err)
				rv = ""
				time.Sleep(250 * time.Millisecond)
			}
			continue
		}
		for ev := range w.ResultChan() {
			if ev.Type == watch.Error {
				// Typically 410 Gone: list again.
				if ctx.Err() == nil {
					r.fail("watch of HPA %s: %v", name, apierrors.FromObject(ev.Object))
				}
				rv = ""
				break
			}
			h, ok := ev.Object.(*autoscalingv2.HorizontalPodAutoscaler)
			if !ok {
				continue
			}
			rv = h.ResourceVersion
			if ev.Type == watch.Added || ev.Type == watch.Modified {
				observe(h)
			}
		}
		w.Stop()
	}
}

// externalMetricTotal reads an External metric through the apiserver as the
// controller does and returns the sum of the series, in milli-units as the
// controller sums them.
func externalMetricTotal(ctx context.Context, c *kubetest.Cluster, m autoscalingv2.MetricIdentifier) (float64, error) {
	sel, err := metav1.LabelSelectorAsSelector(m.Selector)
	if err != nil {
		return 0, err
	}
	path := "/apis/external.metrics.k8s.io/v1beta1/namespaces/" + appNamespace + "/" + m.Name + "?labelSelector=" + url.QueryEscape(sel.String())
	raw, err := c.Client.Discovery().RESTClient().Get().AbsPath("/").RequestURI(path).DoRaw(ctx)
	if err != nil {
		return 0, err
	}
	var list metricList
	if err := json.Unmarshal(raw, &list); err != nil {
		return 0, err
	}
	if len(list.Items) == 0 {
		return 0, fmt.Errorf("no series for %s{%s}", m.Name, sel)
	}
	var milli int64
	for _, it := range list.Items {
		q, err := resource.ParseQuantity(it.Value)
		if err != nil {
			return 0, err
		}
		milli += q.MilliValue()
	}
	return float64(milli) / 1000, nil
}

// crosscheckRow is one recorded controller sync and the simulator's
// decision on the same input.
type crosscheckRow struct {
	hpaObservation
	T          time.Duration // since the first replayed sync
	Usage      float64       // the metric total the controller saw, reconstructed
	Pods       int32         // the scale's status.replicas at the sync, reconstructed
	Rescaled   bool          // the controller scaled at this sync (lastScaleTime moved)
	Decision   bool          // a rescale or a change of desiredReplicas
	Sim        int32
	SimRescale bool
	Note       string // how Usage and Pods were found, when not simply from the average
	Unsure     bool   // Usage could not be reconstructed: the row proves nothing
}

func (r crosscheckRow) agrees() bool { return r.Sim == r.Desired && r.SimRescale == r.Rescaled }

// externalUsageFromAverage recovers the metric total the controller saw from
// the averageValue it published. For an External AverageValue target
// upstream (GetExternalPerPodMetricReplicas) publishes
// ceil(total/status.replicas) in milli-units, so averageValue ×
// currentReplicas is not the total: a total of 5 over 3 pods is published as
// 1667m, and 1667m × 3 = 5.001 would propose 6 replicas instead of 5. The
// total lies in ((avg-1)·pods, avg·pods] milli-units; Foresight's
// foresight_predicted_replicas is a whole number, and with fewer than 1000
// pods at most one whole number lies in that range. exact is false when
// none does (the value is then the upper bound).
func externalUsageFromAverage(avgMilli int64, pods int32) (usage float64, exact bool) {
	if pods <= 0 {
		return float64(avgMilli) / 1000, false
	}
	hi := avgMilli * int64(pods)
	lo := hi - int64(pods) // exclusive
	if whole := hi / 1000 * 1000; whole > lo {
		return float64(whole / 1000), true
	}
	return float64(hi) / 1000, false
}

// replayHPA feeds every recorded sync that carries a metric value to a
// fresh simulator HPA, at the same time relative to the first one, with the
// same replicas and metric total, and returns one row per sync.
//
// The status carries the scale's spec.replicas (currentReplicas) but not
// its status.replicas, the pods the AverageValue divides by. The replay takes
// them equal, which holds once the Deployment has reached its last scale:
// pods are created and, never scheduled here, deleted at once, well within
// the 5 s sync period. One exception shows in the status: right after the
// Deployment is created it has no pods yet, upstream divides by zero and
// publishes ceil(total/0) = +Inf converted to int64, a negative average
// (MinInt64 milli-units on amd64). Such a sync is replayed with 0 pods and
// the total served right after.
func replayHPA(cfg hpa.Config, metric hpa.Metric, obs []hpaObservation) ([]crosscheckRow, error) {
	if metric.Kind != hpa.ExternalAverageValue {
		return nil, fmt.Errorf("replay supports External AverageValue metrics, not %s", metric.Kind)
	}
	sim, err := hpa.New(cfg)
	if err != nil {
		return nil, err
	}
	periods := policyPeriods(cfg)
	var rows []crosscheckRow
	var scales []time.Time // when the controller rescaled, as fed
	var t0 time.Time
	var prevDesired int32 = -1
	var prevScale time.Time
	for _, o := range obs {
		rescaled := !o.LastScale.IsZero() && !o.LastScale.Equal(prevScale)
		prevScale = o.LastScale
		if !o.HasMetric || o.Current == 0 {
			continue // not a sync the controller computed a metric in
		}
		if t0.IsZero() {
			t0 = o.At
		}
		row := crosscheckRow{hpaObservation: o, T: o.At.Sub(t0), Rescaled: rescaled, Pods: o.Current}
		row.Decision = rescaled || o.Desired != prevDesired
		prevDesired = o.Desired
		switch usage, exact := externalUsageFromAverage(o.AverageMilli, o.Current); {
		case o.Average < 0:
			row.Pods = 0
			if o.ServedOK {
				row.Usage = o.Served
				row.Note = fmt.Sprintf("averageValue %s: no pods at the sync (total/0); total as served", o.AverageText)
			} else {
				row.Unsure, row.Note = true, fmt.Sprintf("averageValue %s: no pods at the sync, and no served value", o.AverageText)
			}
		case exact:
			row.Usage = usage
			if o.ServedOK && o.Served != usage {
				row.Note = fmt.Sprintf("served %g right after (changed since the sync)", o.Served)
			}
		default:
			row.Usage = usage
			row.Unsure, row.Note = true, fmt.Sprintf("averageValue %dm × %d pods holds no whole number: status.replicas ≠ currentReplicas at the sync?", o.AverageMilli, o.Current)
		}
		for _, at := range scales {
			for _, p := range periods {
				if age := o.At.Sub(at); age > p-time.Second/4 && age < p+time.Second/4 {
					row.Note = strings.TrimPrefix(row.Note+fmt.Sprintf("; rescale %.3fs earlier, at the edge of the %v policy period", age.Seconds(), p), "; ")
				}
			}
		}
		if rescaled {
			scales = append(scales, o.At)
		}
		m := metric
		m.Value = row.Usage
		row.Sim, row.SimRescale, err = sim.SyncScale(row.T, o.Current, row.Pods, []hpa.Metric{m})
		if err != nil {
			return rows, fmt.Errorf("sync at %v: %w", row.T, err)
		}
		rows = append(rows, row)
	}
	return rows, nil
}

// policyPeriods are the distinct periods of the rate policies in effect:
// a scale event about one period old is where the replay is most sensitive
// to timing.
func policyPeriods(cfg hpa.Config) []time.Duration {
	periods := []time.Duration{15 * time.Second} // every default policy's
	if cfg.NoBehavior {
		return nil
	}
	for _, r := range []hpa.Rules{cfg.Behavior.ScaleUp, cfg.Behavior.ScaleDown} {
		for _, p := range r.Policies {
			if !slices.Contains(periods, p.Period) {
				periods = append(periods, p.Period)
			}
		}
	}
	return periods
}

// crosscheckTable formats the rows: time since the first sync, the metric,
// the controller's and the simulator's decisions.
func crosscheckTable(rows []crosscheckRow) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%12s  %8s  %7s  %4s  %8s  %5s  %4s  %9s  %9s  %6s  %s\n",
		"observed", "t", "current", "pods", "avgValue", "total", "kcm", "simulator", "lastScale", "deploy", "")
	for _, r := range rows {
		kcm := fmt.Sprintf("%d", r.Desired)
		if r.Rescaled {
			kcm += "*"
		}
		sim := fmt.Sprintf("%d", r.Sim)
		if r.SimRescale {
			sim += "*"
		}
		mark := ""
		switch {
		case !r.agrees():
			mark = "DIFFERENT"
		case r.Decision:
			mark = "decision"
		}
		if r.Note != "" {
			mark += " (" + r.Note + ")"
		}
		last := "-"
		if !r.LastScale.IsZero() {
			last = r.LastScale.Format("15:04:05")
		}
		avg := r.AverageText
		if len(avg) > 8 {
			avg = avg[:5] + "…"
		}
		fmt.Fprintf(&b, "%12s  %7.2fs  %7d  %4d  %8s  %5g  %4s  %9s  %9s  %6d  %s\n",
			r.At.Format("15:04:05.000"), r.T.Seconds(), r.Current, r.Pods, avg, r.Usage, kcm, sim, last, r.Deployment, strings.TrimSpace(mark))
	}
	b.WriteString("(observed = when the watch delivered the status; pods = the scale's status.replicas at the sync, as reconstructed;\n" +
		" total = the metric total the controller saw, from averageValue × pods; * = rescaled at this sync;\n" +
		" deploy = the Deployment's spec.replicas read after the status arrived)")
	return b.String()
}

// crosscheckTiming summarises when things happened: the controller's
// lastScaleTime against the time the sync was fed to the simulator, the
// interval between recorded syncs against the sync period, and whether the
// Deployment carried the new count when the status was written.
func crosscheckTiming(rows []crosscheckRow, period time.Duration) string {
	var lags []time.Duration
	var notApplied []string
	for _, r := range rows {
		if r.Rescaled {
			lags = append(lags, r.At.Sub(r.LastScale))
			if r.Deployment != r.Desired {
				notApplied = append(notApplied, fmt.Sprintf("%.2fs", r.T.Seconds()))
			}
		}
	}
	var b strings.Builder
	if len(lags) > 0 {
		slices.Sort(lags)
		fmt.Fprintf(&b, "%d rescales: the simulator was fed each at the time its status reached the recorder, %v–%v after the controller's lastScaleTime (which is truncated to whole seconds)",
			len(lags), lags[0].Round(time.Millisecond), lags[len(lags)-1].Round(time.Millisecond))
	} else {
		b.WriteString("no rescales recorded")
	}
	var worst time.Duration
	for i := 1; i < len(rows); i++ {
		d := rows[i].T - rows[i-1].T
		off := d - d.Round(period)
		if off < 0 {
			off = -off
		}
		worst = max(worst, off)
	}
	if len(rows) > 1 {
		fmt.Fprintf(&b, "; consecutive recorded syncs are whole multiples of the %v sync period apart to within %v", period, worst.Round(time.Millisecond))
	}
	if len(notApplied) > 0 {
		fmt.Fprintf(&b, "; Deployment not yet at the new count after the rescales at %s", strings.Join(notApplied, ", "))
	}
	return b.String()
}

// crosscheckHPA stops the recorder, replays what it recorded through the
// simulator configured from spec, logs the comparison and fails the test
// unless every recorded decision is the same.
func crosscheckHPA(t *testing.T, r *hpaRecorder, h *autoscalingv2.HorizontalPodAutoscaler) {
	t.Helper()
	obs, errs := r.stop()
	for _, e := range errs {
		t.Logf("HPA recorder: %s", e)
	}
	cfg, err := hpaConfigFromSpec(h.Spec, kcmHPASyncPeriod)
	if err != nil {
		t.Fatalf("converting HPA %s: %v", h.Name, err)
	}
	if len(h.Spec.Metrics) != 1 {
		t.Fatalf("HPA %s has %d metrics; the cross-check replays one", h.Name, len(h.Spec.Metrics))
	}
	metric, err := hpaMetricFromSpec(h.Spec.Metrics[0])
	if err != nil {
		t.Fatal(err)
	}
	rows, err := replayHPA(cfg, metric, obs)
	if err != nil {
		t.Fatalf("replaying %d recorded HPA statuses: %v", len(obs), err)
	}
	t.Logf("kube-controller-manager vs forecaster/simulator/hpa, %d recorded HPA statuses, %d syncs with a metric:\n%s",
		len(obs), len(rows), crosscheckTable(rows))
	t.Logf("timing: %s", crosscheckTiming(rows, cfg.SyncPeriod))
	decisions, rescales, differ, inexact := 0, 0, 0, 0
	for _, row := range rows {
		if row.Decision {
			decisions++
		}
		if row.Rescaled {
			rescales++
		}
		if !row.agrees() && !row.Unsure {
			differ++
		}
		if row.Unsure {
			inexact++
		}
	}
	switch {
	case rescales == 0:
		t.Errorf("the controller never rescaled while recording: nothing to cross-check")
	case differ > 0:
		t.Errorf("the simulator's HPA differs from kube-controller-manager at %d of %d syncs (%d decisions, %d rescales); see the table", differ, len(rows), decisions, rescales)
	default:
		t.Logf("simulator vs kube-controller-manager: all %d decisions equal (%d rescales), and all %d recorded syncs", decisions, rescales, len(rows))
	}
	// A row whose total cannot be reconstructed (on a loaded machine the
	// pods may lag the scale at a sync) proves nothing either way; the
	// cross-check stands while most rows are exact.
	switch {
	case 2*inexact > len(rows):
		t.Errorf("%d of %d recorded metric totals could not be reconstructed (see the notes): too few exact rows to cross-check", inexact, len(rows))
	case inexact > 0:
		t.Logf("%d of %d recorded metric totals could not be reconstructed (see the notes); the other rows decide", inexact, len(rows))
	}
}

func TestHPAConfigFromSpec(t *testing.T) {
	ptr := func(v int32) *int32 { return &v }
	dur := func(d time.Duration) *time.Duration { return &d }
	float := func(v float64) *float64 { return &v }
	sel := func(p autoscalingv2.ScalingPolicySelect) *autoscalingv2.ScalingPolicySelect { return &p }
	quantity := func(s string) *resource.Quantity { q := resource.MustParse(s); return &q }
	example := exampleHPA(t, testenv.RepoRoot(t), "frontend")
	withDefaults := func(c hpa.Config) hpa.Config { c.SyncPeriod = kcmHPASyncPeriod; return c }

	// The example with every field the API server defaults filled in, as
	// the controller reads it back.
	served := example.DeepCopy()
	served.Spec.Behavior.ScaleUp.StabilizationWindowSeconds = ptr(0)
	served.Spec.Behavior.ScaleUp.SelectPolicy = sel(autoscalingv2.MaxChangePolicySelect)
	served.Spec.Behavior.ScaleUp.Policies = []autoscalingv2.HPAScalingPolicy{
		{Type: autoscalingv2.PodsScalingPolicy, Value: 4, PeriodSeconds: 15},
		{Type: autoscalingv2.PercentScalingPolicy, Value: 100, PeriodSeconds: 15},
	}
	served.Spec.Behavior.ScaleDown.SelectPolicy = sel(autoscalingv2.MaxChangePolicySelect)
	served.Spec.Behavior.ScaleDown.Policies = []autoscalingv2.HPAScalingPolicy{
		{Type: autoscalingv2.PercentScalingPolicy, Value: 100, PeriodSeconds: 15},
	}

	exampleCfg := withDefaults(hpa.DefaultConfig(1, 100))
	exampleCfg.Behavior = hpa.Behavior{
		ScaleUp:   hpa.Rules{Tolerance: float(0)},
		ScaleDown: hpa.Rules{StabilizationWindow: dur(0), Tolerance: float(0)},
	}
	servedCfg := exampleCfg
	servedCfg.Behavior = hpa.Behavior{
		ScaleUp: hpa.Rules{StabilizationWindow: dur(0), SelectPolicy: hpa.SelectMax, Tolerance: float(0), Policies: []hpa.Policy{
			{Type: hpa.Pods, Value: 4, Period: 15 * time.Second}, {Type: hpa.Percent, Value: 100, Period: 15 * time.Second},
		}},
		ScaleDown: hpa.Rules{StabilizationWindow: dur(0), SelectPolicy: hpa.SelectMax, Tolerance: float(0), Policies: []hpa.Policy{
			{Type: hpa.Percent, Value: 100, Period: 15 * time.Second},
		}},
	}
	noBehavior := withDefaults(hpa.DefaultConfig(1, 10))
	noBehavior.NoBehavior = true
	custom := withDefaults(hpa.DefaultConfig(3, 30))
	custom.Behavior = hpa.Behavior{
		ScaleUp: hpa.Rules{StabilizationWindow: dur(2 * time.Minute), SelectPolicy: hpa.SelectMin, Policies: []hpa.Policy{
			{Type: hpa.Pods, Value: 2, Period: time.Minute}, {Type: hpa.Percent, Value: 50, Period: 30 * time.Second},
		}},
		ScaleDown: hpa.Rules{SelectPolicy: hpa.SelectDisabled, Tolerance: float(0.05)},
	}

	cases := []struct {
		name    string
		spec    autoscalingv2.HorizontalPodAutoscalerSpec
		want    hpa.Config
		wantErr string
	}{
		{name: "manifests/examples/hpa-boutique.yaml frontend", spec: example.Spec, want: exampleCfg},
		{name: "the same as served, defaults filled in", spec: served.Spec, want: servedCfg},
		{name: "no behavior, minReplicas omitted", spec: autoscalingv2.HorizontalPodAutoscalerSpec{MaxReplicas: 10}, want: noBehavior},
		{name: "every field", spec: autoscalingv2.HorizontalPodAutoscalerSpec{MinReplicas: ptr(3), MaxReplicas: 30, Behavior: &autoscalingv2.HorizontalPodAutoscalerBehavior{
			ScaleUp: &autoscalingv2.HPAScalingRules{StabilizationWindowSeconds: ptr(120), SelectPolicy: sel(autoscalingv2.MinChangePolicySelect), Policies: []autoscalingv2.HPAScalingPolicy{
				{Type: autoscalingv2.PodsScalingPolicy, Value: 2, PeriodSeconds: 60}, {Type: autoscalingv2.PercentScalingPolicy, Value: 50, PeriodSeconds: 30},
			}},
			ScaleDown: &autoscalingv2.HPAScalingRules{SelectPolicy: sel(autoscalingv2.DisabledPolicySelect), Tolerance: quantity("50m")},
		}}, want: custom},
		{name: "explicit empty policies", wantErr: "behavior.scaleUp: policies", spec: autoscalingv2.HorizontalPodAutoscalerSpec{MaxReplicas: 5, Behavior: &autoscalingv2.HorizontalPodAutoscalerBehavior{
			ScaleUp: &autoscalingv2.HPAScalingRules{Policies: []autoscalingv2.HPAScalingPolicy{}},
		}}},
		{name: "unknown select policy and policy type", wantErr: "behavior.scaleDown: policies[0]: unknown type", spec: autoscalingv2.HorizontalPodAutoscalerSpec{MaxReplicas: 5, Behavior: &autoscalingv2.HorizontalPodAutoscalerBehavior{
			ScaleUp:   &autoscalingv2.HPAScalingRules{SelectPolicy: sel("Sometimes")},
			ScaleDown: &autoscalingv2.HPAScalingRules{Policies: []autoscalingv2.HPAScalingPolicy{{Type: "Pairs", Value: 1, PeriodSeconds: 15}}},
		}}},
		{name: "maxReplicas below minReplicas", wantErr: "MaxReplicas", spec: autoscalingv2.HorizontalPodAutoscalerSpec{MinReplicas: ptr(4), MaxReplicas: 2}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := hpaConfigFromSpec(tc.spec, kcmHPASyncPeriod)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want one containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("config\n got %+v\nwant %+v", got, tc.want)
			}
		})
	}

	// The example as written and as served are the same autoscaler.
	t.Run("written and served decide alike", func(t *testing.T) {
		metric, err := hpaMetricFromSpec(example.Spec.Metrics[0])
		if err != nil {
			t.Fatal(err)
		}
		if want := (hpa.Metric{Kind: hpa.ExternalAverageValue, Target: 1}); !reflect.DeepEqual(metric, want) {
			t.Fatalf("metric = %+v, want %+v", metric, want)
		}
		a, errA := hpa.New(exampleCfg)
		b, errB := hpa.New(servedCfg)
		if errA != nil || errB != nil {
			t.Fatal(errA, errB)
		}
		current := int32(1)
		for i, total := range []float64{3, 3, 12, 12, 12, 12, 20, 7, 2, 2, 9, 1} {
			now := time.Duration(i) * 4 * time.Second
			metric.Value = total
			da, _, _ := a.Sync(now, current, []hpa.Metric{metric})
			db, _, _ := b.Sync(now, current, []hpa.Metric{metric})
			if da != db {
				t.Fatalf("at %v with %v: written %d, served %d", now, total, da, db)
			}
			current = da
		}
	})
}

func TestCrosscheckExternalUsage(t *testing.T) {
	for _, tc := range []struct {
		avgMilli  int64
		pods      int32
		want      float64
		wantExact bool
	}{
		{3000, 1, 3, true},
		{1000, 3, 3, true},
		{1667, 3, 5, true}, // 1667m × 3 = 5.001: the published average is rounded up
		{2400, 5, 12, true},
		{143, 7, 1, true},
		{1001, 1, 1.001, false},
	} {
		got, exact := externalUsageFromAverage(tc.avgMilli, tc.pods)
		if got != tc.want || exact != tc.wantExact {
			t.Errorf("externalUsageFromAverage(%dm, %d) = %v, %v; want %v, %v", tc.avgMilli, tc.pods, got, exact, tc.want, tc.wantExact)
		}
	}
}

// TestCrosscheckReplay replays a recording written by hand from upstream's
// algorithm for the example HPA (tolerance 0, scale-down stabilization 0,
// scale-up at most max(+4 pods, +100 %) per 15 s).
func TestCrosscheckReplay(t *testing.T) {
	cfg, err := hpaConfigFromSpec(exampleHPA(t, testenv.RepoRoot(t), "frontend").Spec, kcmHPASyncPeriod)
	if err != nil {
		t.Fatal(err)
	}
	metric := hpa.Metric{Kind: hpa.ExternalAverageValue, Target: 1}
	base := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	var obs []hpaObservation
	var lastScale time.Time
	// sync: at seconds after base, the replicas at the sync, the metric
	// total, the controller's decision.
	sync := func(at float64, current int32, total int64, desired int32) {
		when := base.Add(time.Duration(at * float64(time.Second)))
		if desired != current {
			lastScale = when.Truncate(time.Second)
		}
		avg := (total*1000 + int64(current) - 1) / int64(current) // ceil, as upstream
		obs = append(obs, hpaObservation{At: when, Current: current, Desired: desired, HasMetric: true,
			AverageMilli: avg, Average: float64(avg) / 1000, AverageText: fmt.Sprintf("%dm", avg),
			Served: float64(total), ServedOK: true, LastScale: lastScale, Deployment: desired, DeployPods: desired})
	}
	obs = append(obs, hpaObservation{At: base.Add(-time.Second)}) // the HPA as created: no status yet

	sync(0.1, 1, 3, 3) // +2, within the limit max(1+4, 2×1) = 5
	// The Deployment had no pods yet: the controller divided by zero.
	q := resource.NewMilliQuantity(math.MinInt64, resource.DecimalSI)
	obs[1].AverageMilli, obs[1].Average, obs[1].AverageText = q.MilliValue(), q.AsApproximateFloat64(), q.String()
	sync(5.1, 3, 3, 3)         // at the prediction: a ratio of exactly 1 is within tolerance 0
	sync(10.1, 3, 12, 5)       // (-4.9 s, 10.1 s] holds +2: from 1, max(1+4, 2×1) = 5
	sync(15.2, 5, 12, 7)       // (0.2 s, 15.2 s] holds only +2 at 10.1 s: from 3, max(3+4, 2×3) = 7
	sync(20.2, 7, 12, 7)       // (5.2 s, 20.2 s] holds +2 and +2: from 3, 7 again; 12000m/7 published as 1715m
	sync(25.3, 7, 12, 10)      // (10.3 s, 25.3 s] holds +2 at 15.2 s: from 5, max(5+4, 2×5) = 10
	sync(30.3, 10, 5, 5)       // down to the prediction at once (stabilization 0, 100 % per 15 s)
	sync(35.3, 5, 3, 3)        // 3 over 5 pods is published as 600m
	sync(40.3, 3, 5, 5)        // 5 over 3 pods is published as 1667m: still 5 replicas, not 6
	obs[len(obs)-1].Served = 6 // Foresight moved on before the recorder read it: a note, no more

	rows, err := replayHPA(cfg, metric, obs)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("\n%s\ntiming: %s", crosscheckTable(rows), crosscheckTiming(rows, kcmHPASyncPeriod))
	if len(rows) != len(obs)-1 {
		t.Fatalf("%d rows for %d syncs", len(rows), len(obs)-1)
	}
	for _, r := range rows {
		if !r.agrees() {
			t.Errorf("at %v: controller %d (rescaled %v), simulator %d (%v)", r.T, r.Desired, r.Rescaled, r.Sim, r.SimRescale)
		}
		if r.Unsure {
			t.Errorf("at %v: %s", r.T, r.Note)
		}
	}
	if rows[0].Pods != 0 || rows[0].Usage != 3 || rows[len(rows)-1].Usage != 5 || rows[len(rows)-1].Note == "" {
		t.Errorf("reconstructed: first sync %d pods, total %v; last total %v, note %q", rows[0].Pods, rows[0].Usage, rows[len(rows)-1].Usage, rows[len(rows)-1].Note)
	}

	// A controller that decided otherwise is reported.
	obs[3].Desired = 12
	rows, err = replayHPA(cfg, metric, obs)
	if err != nil {
		t.Fatal(err)
	}
	differ := 0
	for _, r := range rows {
		if !r.agrees() {
			differ++
		}
	}
	if differ != 1 {
		t.Errorf("%d rows differ after changing one decision, want 1:\n%s", differ, crosscheckTable(rows))
	}

	// Without the served value the first sync cannot be reconstructed.
	obs[1].ServedOK = false
	if rows, err = replayHPA(cfg, metric, obs); err != nil || !rows[0].Unsure {
		t.Errorf("first sync without a served value: unsure %v, err %v", len(rows) > 0 && rows[0].Unsure, err)
	}
}

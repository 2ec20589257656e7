package vpa

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	appsv1 "k8s.io/api/apps/v1"
	autoscalingv1 "k8s.io/api/autoscaling/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	vpatypes "k8s.io/autoscaler/vertical-pod-autoscaler/pkg/apis/autoscaling.k8s.io/v1"
	vpafake "k8s.io/autoscaler/vertical-pod-autoscaler/pkg/client/clientset/versioned/fake"
	k8sfake "k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
	"k8s.io/client-go/tools/events"

	"github.com/foresightscale/foresight/forecaster/snapshot"
)

const ns = "shop"

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// --- builders ---

type vpaOpt func(*vpatypes.VerticalPodAutoscaler)

func newVPA(name, recommender string, opts ...vpaOpt) *vpatypes.VerticalPodAutoscaler {
	v := &vpatypes.VerticalPodAutoscaler{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns, UID: types.UID("uid-" + name), Generation: 1},
		Spec: vpatypes.VerticalPodAutoscalerSpec{
			TargetRef: &autoscalingv1.CrossVersionObjectReference{APIVersion: "apps/v1", Kind: "Deployment", Name: name},
		},
	}
	if recommender != "" {
		v.Spec.Recommenders = []*vpatypes.VerticalPodAutoscalerRecommenderSelector{{Name: recommender}}
	}
	for _, o := range opts {
		o(v)
	}
	return v
}

func annotate(k, val string) vpaOpt {
	return func(v *vpatypes.VerticalPodAutoscaler) {
		if v.Annotations == nil {
			v.Annotations = map[string]string{}
		}
		v.Annotations[k] = val
	}
}

func target(apiVersion, kind, name string) vpaOpt {
	return func(v *vpatypes.VerticalPodAutoscaler) {
		v.Spec.TargetRef = &autoscalingv1.CrossVersionObjectReference{APIVersion: apiVersion, Kind: kind, Name: name}
	}
}

func policy(cps ...vpatypes.ContainerResourcePolicy) vpaOpt {
	return func(v *vpatypes.VerticalPodAutoscaler) {
		v.Spec.ResourcePolicy = &vpatypes.PodResourcePolicy{ContainerPolicies: cps}
	}
}

func withStatus(rec vpatypes.RecommendedContainerResources) vpaOpt {
	return func(v *vpatypes.VerticalPodAutoscaler) {
		v.Status.Recommendation = &vpatypes.RecommendedPodResources{ContainerRecommendations: []vpatypes.RecommendedContainerResources{rec}}
	}
}

var modeOff = vpatypes.ContainerScalingModeOff

func deployment(name string, replicas int32, containers ...string) *appsv1.Deployment {
	d := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec:       appsv1.DeploymentSpec{Replicas: &replicas},
	}
	for _, c := range containers {
		d.Spec.Template.Spec.Containers = append(d.Spec.Template.Spec.Containers, corev1.Container{Name: c, Image: "example"})
	}
	return d
}

// pred: 2 cores over 4 predicted pods (0.5 per pod), 0.4 cores per pod now,
// 300 MiB peak per pod.
func pred(service string) snapshot.Prediction {
	return snapshot.Prediction{
		Namespace: ns, Service: service, Horizon: 2 * time.Minute,
		PredictedReplicas: 4, PredictedRequests: 100, PredictedCPUCores: 2,
		ObservedRequests: 80, ObservedCPUCores: 1.2, ObservedReplicas: 3,
		PeakMemoryPerPodBytes: 300 * mebibyte,
		ComputedAt:            t0.Add(-10 * time.Second), ExpiresAt: t0.Add(5 * time.Minute),
	}
}

func rl(cpu, mem string) corev1.ResourceList {
	l := corev1.ResourceList{}
	if cpu != "" {
		l[corev1.ResourceCPU] = resource.MustParse(cpu)
	}
	if mem != "" {
		l[corev1.ResourceMemory] = resource.MustParse(mem)
	}
	return l
}

// --- fixture ---

type fixture struct {
	t      *testing.T
	vpa    *vpafake.Clientset
	kube   *k8sfake.Clientset
	store  *snapshot.Store
	events *events.FakeRecorder
	rec    *Recommender
}

func newFixture(t *testing.T, vpas []*vpatypes.VerticalPodAutoscaler, workloads []runtime.Object, preds []snapshot.Prediction, tweak func(*Options)) *fixture {
	t.Helper()
	objs := make([]runtime.Object, len(vpas))
	for i, v := range vpas {
		objs[i] = v
	}
	f := &fixture{
		t: t, vpa: vpafake.NewSimpleClientset(objs...), kube: k8sfake.NewClientset(workloads...),
		store: &snapshot.Store{}, events: events.NewFakeRecorder(100),
	}
	if preds != nil {
		f.store.Publish(&snapshot.Snapshot{CreatedAt: t0, Model: "test", Step: 30 * time.Second, Predictions: preds})
	}
	opts := Options{
		VPAClient: f.vpa, KubeClient: f.kube, Reader: f.store,
		Now: func() time.Time { return t0 }, Log: slog.New(slog.NewTextHandler(io.Discard, nil)),
		Registerer: prometheus.NewRegistry(), Events: f.events,
	}
	if tweak != nil {
		tweak(&opts)
	}
	var err error
	if f.rec, err = New(opts); err != nil {
		t.Fatal(err)
	}
	return f
}

func (f *fixture) sync() {
	f.t.Helper()
	if err := f.rec.Sync(context.Background()); err != nil {
		f.t.Fatalf("Sync: %v", err)
	}
}

func (f *fixture) get(name string) *vpatypes.VerticalPodAutoscaler {
	f.t.Helper()
	v, err := f.vpa.AutoscalingV1().VerticalPodAutoscalers(ns).Get(context.Background(), name, metav1.GetOptions{})
	if err != nil {
		f.t.Fatal(err)
	}
	return v
}

// statusWrites counts UpdateStatus calls (and any other write) made so far.
func (f *fixture) statusWrites() int {
	n := 0
	for _, a := range f.vpa.Actions() {
		if a.GetVerb() == "update" || a.GetVerb() == "patch" || a.GetVerb() == "create" {
			n++
		}
	}
	return n
}

func (f *fixture) drainEvents() []string {
	var out []string
	for {
		select {
		case e := <-f.events.Events:
			out = append(out, e)
		default:
			return out
		}
	}
}

func (f *fixture) count(result, reason string) float64 {
	return testutil.ToFloat64(f.rec.metrics.recommendations.WithLabelValues(result, reason))
}

func condition(v *vpatypes.VerticalPodAutoscaler) *vpatypes.VerticalPodAutoscalerCondition {
	for i := range v.Status.Conditions {
		if v.Status.Conditions[i].Type == vpatypes.RecommendationProvided {
			return &v.Status.Conditions[i]
		}
	}
	return nil
}

func onlyRecommendation(t *testing.T, v *vpatypes.VerticalPodAutoscaler) vpatypes.RecommendedContainerResources {
	t.Helper()
	if v.Status.Recommendation == nil || len(v.Status.Recommendation.ContainerRecommendations) != 1 {
		t.Fatalf("want exactly one container recommendation, got %+v", v.Status.Recommendation)
	}
	return v.Status.Recommendation.ContainerRecommendations[0]
}

func equalLists(a, b corev1.ResourceList) bool {
	if len(a) != len(b) {
		return false
	}
	for k, q := range a {
		o, ok := b[k]
		if !ok || q.Cmp(o) != 0 {
			return false
		}
	}
	return true
}

func checkRec(t *testing.T, got, want vpatypes.RecommendedContainerResources) {
	t.Helper()
	if got.ContainerName != want.ContainerName {
		t.Errorf("container = %q, want %q", got.ContainerName, want.ContainerName)
	}
	for _, c := range []struct {
		name      string
		got, want corev1.ResourceList
	}{
		{"target", got.Target, want.Target}, {"lowerBound", got.LowerBound, want.LowerBound},
		{"upperBound", got.UpperBound, want.UpperBound}, {"uncappedTarget", got.UncappedTarget, want.UncappedTarget},
	} {
		if !equalLists(c.got, c.want) {
			t.Errorf("%s = %s, want %s", c.name, formatList(c.got), formatList(c.want))
		}
	}
}

// --- tests ---

func TestSyncWritesRecommendation(t *testing.T) {
	for _, tc := range []struct {
		name      string
		vpa       *vpatypes.VerticalPodAutoscaler
		workloads []runtime.Object
		pred      snapshot.Prediction
		tweak     func(*Options)
		want      vpatypes.RecommendedContainerResources
	}{{
		// CPU: 2 cores / 4 pods = 0.5 → ×1.15 = 575m; lower = 1.2/3 now =
		// 400m; upper = 575m × 1.5 = 862.5 → 863m. Memory: 300Mi × 1.15 =
		// 345Mi; lower = the 300Mi peak; upper = 517.5 → 518Mi.
		name: "forecast spread over predicted pods",
		vpa:  newVPA("frontend", "foresight"), workloads: []runtime.Object{deployment("frontend", 2, "server")},
		pred: pred("frontend"),
		want: vpatypes.RecommendedContainerResources{ContainerName: "server",
			Target: rl("575m", "345Mi"), LowerBound: rl("400m", "300Mi"), UpperBound: rl("863m", "518Mi"), UncappedTarget: rl("575m", "345Mi")},
	}, {
		name: "minimums: 25m CPU and 250Mi memory",
		vpa:  newVPA("frontend", "foresight"), workloads: []runtime.Object{deployment("frontend", 1, "server")},
		pred: func() snapshot.Prediction {
			p := pred("frontend")
			p.PredictedCPUCores, p.PredictedReplicas, p.ObservedCPUCores = 0.01, 1, math.NaN()
			p.PeakMemoryPerPodBytes = 100 * mebibyte
			return p
		}(),
		want: vpatypes.RecommendedContainerResources{ContainerName: "server",
			Target: rl("25m", "250Mi"), LowerBound: rl("25m", "250Mi"), UpperBound: rl("38m", "375Mi"), UncappedTarget: rl("25m", "250Mi")},
	}, {
		name: "zero forecast is an idle service: the minimum, never zero",
		vpa:  newVPA("frontend", "foresight"), workloads: []runtime.Object{deployment("frontend", 1, "server")},
		pred: func() snapshot.Prediction {
			p := pred("frontend")
			p.PredictedCPUCores, p.PredictedReplicas, p.ObservedCPUCores = 0, 1, 0
			return p
		}(),
		want: vpatypes.RecommendedContainerResources{ContainerName: "server",
			Target: rl("25m", "345Mi"), LowerBound: rl("25m", "300Mi"), UpperBound: rl("38m", "518Mi"), UncappedTarget: rl("25m", "345Mi")},
	}, {
		name: "observed usage above the forecast: lower bound capped at the target",
		vpa:  newVPA("frontend", "foresight"), workloads: []runtime.Object{deployment("frontend", 1, "server")},
		pred: func() snapshot.Prediction {
			p := pred("frontend")
			p.ObservedCPUCores = 3 // 1 core per pod now
			return p
		}(),
		want: vpatypes.RecommendedContainerResources{ContainerName: "server",
			Target: rl("575m", "345Mi"), LowerBound: rl("575m", "300Mi"), UpperBound: rl("863m", "518Mi"), UncappedTarget: rl("575m", "345Mi")},
	}, {
		name: "no observation: lower bound is the forecast per pod without margin",
		vpa:  newVPA("frontend", "foresight"), workloads: []runtime.Object{deployment("frontend", 1, "server")},
		pred: func() snapshot.Prediction {
			p := pred("frontend")
			p.ObservedReplicas = math.NaN()
			return p
		}(),
		want: vpatypes.RecommendedContainerResources{ContainerName: "server",
			Target: rl("575m", "345Mi"), LowerBound: rl("500m", "300Mi"), UpperBound: rl("863m", "518Mi"), UncappedTarget: rl("575m", "345Mi")},
	}, {
		name: "minAllowed/maxAllowed cap target and bounds, not uncappedTarget",
		vpa: newVPA("frontend", "foresight", policy(vpatypes.ContainerResourcePolicy{
			ContainerName: "*", MinAllowed: rl("", "400Mi"), MaxAllowed: rl("500m", "500Mi")})),
		workloads: []runtime.Object{deployment("frontend", 1, "server")},
		pred:      pred("frontend"),
		want: vpatypes.RecommendedContainerResources{ContainerName: "server",
			Target: rl("500m", "400Mi"), LowerBound: rl("400m", "400Mi"), UpperBound: rl("500m", "500Mi"), UncappedTarget: rl("575m", "345Mi")},
	}, {
		name: "controlledResources memory only",
		vpa: newVPA("frontend", "foresight", policy(vpatypes.ContainerResourcePolicy{
			ContainerName: "server", ControlledResources: &[]corev1.ResourceName{corev1.ResourceMemory}})),
		workloads: []runtime.Object{deployment("frontend", 1, "server")},
		pred:      pred("frontend"),
		want: vpatypes.RecommendedContainerResources{ContainerName: "server",
			Target: rl("", "345Mi"), LowerBound: rl("", "300Mi"), UpperBound: rl("", "518Mi"), UncappedTarget: rl("", "345Mi")},
	}, {
		// 2 cores over the Deployment's own 2 pods = 1 core → 1150m.
		name:      "replicas annotation target: spread over the workload's pods",
		vpa:       newVPA("frontend", "foresight", annotate(AnnotationReplicas, ReplicasTarget)),
		workloads: []runtime.Object{deployment("frontend", 2, "server")},
		pred:      pred("frontend"),
		want: vpatypes.RecommendedContainerResources{ContainerName: "server",
			Target: rl("1150m", "345Mi"), LowerBound: rl("400m", "300Mi"), UpperBound: rl("1725m", "518Mi"), UncappedTarget: rl("1150m", "345Mi")},
	}, {
		// Held = the last good values, served like the metrics APIs serve
		// them until they expire.
		name: "held prediction is served until it expires",
		vpa:  newVPA("frontend", "foresight"), workloads: []runtime.Object{deployment("frontend", 1, "server")},
		pred: func() snapshot.Prediction {
			p := pred("frontend")
			p.HeldReason = "missing_data"
			return p
		}(),
		want: vpatypes.RecommendedContainerResources{ContainerName: "server",
			Target: rl("575m", "345Mi"), LowerBound: rl("400m", "300Mi"), UpperBound: rl("863m", "518Mi"), UncappedTarget: rl("575m", "345Mi")},
	}, {
		name:      "service annotation overrides targetRef.name",
		vpa:       newVPA("web", "foresight", annotate(AnnotationService, "frontend")),
		workloads: []runtime.Object{deployment("web", 1, "server")},
		pred:      pred("frontend"),
		want: vpatypes.RecommendedContainerResources{ContainerName: "server",
			Target: rl("575m", "345Mi"), LowerBound: rl("400m", "300Mi"), UpperBound: rl("863m", "518Mi"), UncappedTarget: rl("575m", "345Mi")},
	}, {
		name:      "container annotation picks one of two",
		vpa:       newVPA("frontend", "foresight", annotate(AnnotationContainer, "server")),
		workloads: []runtime.Object{deployment("frontend", 1, "log-shipper", "server")},
		pred:      pred("frontend"),
		want: vpatypes.RecommendedContainerResources{ContainerName: "server",
			Target: rl("575m", "345Mi"), LowerBound: rl("400m", "300Mi"), UpperBound: rl("863m", "518Mi"), UncappedTarget: rl("575m", "345Mi")},
	}, {
		name: "the only container not switched Off is chosen",
		vpa: newVPA("frontend", "foresight", policy(vpatypes.ContainerResourcePolicy{
			ContainerName: "log-shipper", Mode: &modeOff})),
		workloads: []runtime.Object{deployment("frontend", 1, "log-shipper", "server")},
		pred:      pred("frontend"),
		want: vpatypes.RecommendedContainerResources{ContainerName: "server",
			Target: rl("575m", "345Mi"), LowerBound: rl("400m", "300Mi"), UpperBound: rl("863m", "518Mi"), UncappedTarget: rl("575m", "345Mi")},
	}, {
		// CPU: 0.5 × 1.5 = 750m, upper ×2 = 1500m; memory 300Mi × 1.2 = 360Mi, upper 720Mi; minimums 100m / 350Mi.
		name: "options: margins, upper factor and minimums",
		vpa:  newVPA("frontend", "foresight"), workloads: []runtime.Object{deployment("frontend", 1, "server")},
		pred: pred("frontend"),
		tweak: func(o *Options) {
			o.CPUMargin, o.MemoryMargin, o.UpperBoundFactor, o.MinCPUCores, o.MinMemoryBytes = 0.5, 0.2, 2, 0.1, 350*mebibyte
		},
		want: vpatypes.RecommendedContainerResources{ContainerName: "server",
			Target: rl("750m", "360Mi"), LowerBound: rl("400m", "350Mi"), UpperBound: rl("1500m", "720Mi"), UncappedTarget: rl("750m", "360Mi")},
	}, {
		name: "StatefulSet target",
		vpa:  newVPA("cart", "foresight", target("apps/v1", "StatefulSet", "cart")),
		workloads: []runtime.Object{&appsv1.StatefulSet{ObjectMeta: metav1.ObjectMeta{Name: "cart", Namespace: ns},
			Spec: appsv1.StatefulSetSpec{Template: corev1.PodTemplateSpec{Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "redis"}}}}}}},
		pred: pred("cart"),
		want: vpatypes.RecommendedContainerResources{ContainerName: "redis",
			Target: rl("575m", "345Mi"), LowerBound: rl("400m", "300Mi"), UpperBound: rl("863m", "518Mi"), UncappedTarget: rl("575m", "345Mi")},
	}} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, []*vpatypes.VerticalPodAutoscaler{tc.vpa}, tc.workloads, []snapshot.Prediction{tc.pred}, tc.tweak)
			f.sync()
			v := f.get(tc.vpa.Name)
			checkRec(t, onlyRecommendation(t, v), tc.want)
			c := condition(v)
			if c == nil || c.Status != corev1.ConditionTrue || c.Reason != conditionReasonProvided {
				t.Errorf("RecommendationProvided = %+v, want True/%s", c, conditionReasonProvided)
			}
			if v.Status.ObservedGeneration == nil || *v.Status.ObservedGeneration != 1 {
				t.Errorf("observedGeneration = %v, want 1", v.Status.ObservedGeneration)
			}
			if got := f.count(resultWritten, ""); got != 1 {
				t.Errorf("written count = %v, want 1", got)
			}
			if ev := f.drainEvents(); len(ev) != 0 {
				t.Errorf("a healthy first pass sent events: %v", ev)
			}

			// Same forecast again: nothing to write.
			before := f.statusWrites()
			f.sync()
			if after := f.statusWrites(); after != before {
				t.Errorf("second pass with the same forecast wrote %d times", after-before)
			}
			if got := f.count(resultUnchanged, ""); got != 1 {
				t.Errorf("unchanged count = %v, want 1", got)
			}
		})
	}
}

func TestSyncUpdatesWhenForecastChanges(t *testing.T) {
	f := newFixture(t, []*vpatypes.VerticalPodAutoscaler{newVPA("frontend", "foresight")},
		[]runtime.Object{deployment("frontend", 1, "server")}, []snapshot.Prediction{pred("frontend")}, nil)
	f.sync()
	p := pred("frontend")
	p.PredictedCPUCores = 4 // 1 core per pod → 1150m
	f.store.Publish(&snapshot.Snapshot{CreatedAt: t0, Predictions: []snapshot.Prediction{p}})
	f.sync()
	got := onlyRecommendation(t, f.get("frontend"))
	if q := got.Target[corev1.ResourceCPU]; q.Cmp(resource.MustParse("1150m")) != 0 {
		t.Errorf("cpu target after the change = %s, want 1150m", q.String())
	}
	if n := f.count(resultWritten, ""); n != 2 {
		t.Errorf("written count = %v, want 2", n)
	}
}

func TestSyncLeavesOtherVPAsAlone(t *testing.T) {
	twoRecommenders := newVPA("two", "other")
	twoRecommenders.Spec.Recommenders = append(twoRecommenders.Spec.Recommenders, &vpatypes.VerticalPodAutoscalerRecommenderSelector{Name: "foresight"})
	nilSelector := newVPA("nil-selector", "")
	nilSelector.Spec.Recommenders = []*vpatypes.VerticalPodAutoscalerRecommenderSelector{nil}
	vpas := []*vpatypes.VerticalPodAutoscaler{
		newVPA("default", ""),      // no recommenders: the stock recommender's
		newVPA("other", "other"),   // another recommender's
		newVPA("custom", "custom"), // ours only when configured with that name
		twoRecommenders, nilSelector,
	}
	var workloads []runtime.Object
	var preds []snapshot.Prediction
	for _, v := range vpas {
		workloads = append(workloads, deployment(v.Name, 1, "server"))
		preds = append(preds, pred(v.Name))
	}
	f := newFixture(t, vpas, workloads, preds, nil)
	f.sync()
	if n := f.statusWrites(); n != 0 {
		t.Fatalf("wrote %d times to VPAs of other recommenders: %v", n, f.vpa.Actions())
	}
	if m := testutil.ToFloat64(f.rec.metrics.managed); m != 0 {
		t.Errorf("managed = %v, want 0", m)
	}

	// With the name "custom", exactly that VPA is served.
	g := newFixture(t, vpas, workloads, preds, func(o *Options) { o.Name = "custom" })
	g.sync()
	for _, v := range vpas {
		got := g.get(v.Name)
		if served := got.Status.Recommendation != nil; served != (v.Name == "custom") {
			t.Errorf("VPA %s served = %v", v.Name, served)
		}
	}
}

func TestMissingPredictionKeepsPreviousRecommendation(t *testing.T) {
	previous := vpatypes.RecommendedContainerResources{ContainerName: "server",
		Target: rl("300m", "400Mi"), LowerBound: rl("200m", "350Mi"), UpperBound: rl("450m", "600Mi"), UncappedTarget: rl("300m", "400Mi")}
	f := newFixture(t, []*vpatypes.VerticalPodAutoscaler{newVPA("frontend", "foresight", withStatus(previous))},
		[]runtime.Object{deployment("frontend", 1, "server")}, nil, nil)

	f.sync()
	v := f.get("frontend")
	checkRec(t, onlyRecommendation(t, v), previous)
	c := condition(v)
	if c == nil || c.Status != corev1.ConditionFalse || c.Reason != "ForesightNoPrediction" || !strings.Contains(c.Message, "keeping the previous") {
		t.Errorf("condition = %+v, want False/ForesightNoPrediction keeping the previous recommendation", c)
	}
	ev := f.drainEvents()
	if len(ev) != 1 || !strings.HasPrefix(ev[0], "Warning ForesightNoPrediction") {
		t.Errorf("events = %q, want one Warning ForesightNoPrediction", ev)
	}
	if n := f.count(resultSkipped, string(reasonNoPrediction)); n != 1 {
		t.Errorf("skipped{no_prediction} = %v, want 1", n)
	}

	// Still missing: counted again, but no new Event and no write.
	writes := f.statusWrites()
	f.sync()
	if ev := f.drainEvents(); len(ev) != 0 {
		t.Errorf("repeated events for an unchanged problem: %q", ev)
	}
	if f.statusWrites() != writes {
		t.Error("an unchanged problem rewrote the status")
	}
	if n := f.count(resultSkipped, string(reasonNoPrediction)); n != 2 {
		t.Errorf("skipped{no_prediction} = %v, want 2", n)
	}

	// The forecast is back: written, condition True, one Normal event.
	f.store.Publish(&snapshot.Snapshot{CreatedAt: t0, Predictions: []snapshot.Prediction{pred("frontend")}})
	f.sync()
	v = f.get("frontend")
	if q := onlyRecommendation(t, v).Target[corev1.ResourceCPU]; q.Cmp(resource.MustParse("575m")) != 0 {
		t.Errorf("cpu target = %s, want 575m", q.String())
	}
	if c := condition(v); c == nil || c.Status != corev1.ConditionTrue {
		t.Errorf("condition after recovery = %+v", c)
	}
	if ev := f.drainEvents(); len(ev) != 1 || !strings.HasPrefix(ev[0], "Normal "+eventReasonRecovered) {
		t.Errorf("events after recovery = %q", ev)
	}
}

func TestNoPredictionWithoutPreviousRecommendation(t *testing.T) {
	expired := pred("frontend")
	expired.ExpiresAt = t0 // not before now: stale
	f := newFixture(t, []*vpatypes.VerticalPodAutoscaler{newVPA("frontend", "foresight")},
		[]runtime.Object{deployment("frontend", 1, "server")}, []snapshot.Prediction{expired}, nil)
	f.sync()
	v := f.get("frontend")
	if v.Status.Recommendation != nil {
		t.Errorf("recommendation written from an expired prediction: %+v", v.Status.Recommendation)
	}
	if c := condition(v); c == nil || c.Status != corev1.ConditionFalse || !strings.Contains(c.Message, "no recommendation yet") {
		t.Errorf("condition = %+v", c)
	}
}

func TestInvalidValuesAreNeverWritten(t *testing.T) {
	previous := vpatypes.RecommendedContainerResources{ContainerName: "server",
		Target: rl("300m", "400Mi"), LowerBound: rl("200m", "350Mi"), UpperBound: rl("450m", "600Mi"), UncappedTarget: rl("300m", "400Mi")}
	for _, tc := range []struct {
		name   string
		mutate func(*snapshot.Prediction)
		reason reason
		// wantCPU/wantMem: the target after the pass ("" = kept from before).
		wantCPU, wantMem string
		result           string
	}{
		{"NaN CPU", func(p *snapshot.Prediction) { p.PredictedCPUCores = math.NaN() }, reasonInvalidPrediction, "300m", "345Mi", resultWritten},
		{"+Inf CPU", func(p *snapshot.Prediction) { p.PredictedCPUCores = math.Inf(1) }, reasonInvalidPrediction, "300m", "345Mi", resultWritten},
		{"negative CPU", func(p *snapshot.Prediction) { p.PredictedCPUCores = -1 }, reasonInvalidPrediction, "300m", "345Mi", resultWritten},
		{"zero replicas", func(p *snapshot.Prediction) { p.PredictedReplicas = 0 }, reasonInvalidPrediction, "300m", "345Mi", resultWritten},
		{"memory unknown", func(p *snapshot.Prediction) { p.PeakMemoryPerPodBytes = math.NaN() }, reasonMemoryUnknown, "575m", "400Mi", resultWritten},
		{"negative memory", func(p *snapshot.Prediction) { p.PeakMemoryPerPodBytes = -5 }, reasonInvalidMemory, "575m", "400Mi", resultWritten},
		{"memory as a fraction", func(p *snapshot.Prediction) { p.PeakMemoryPerPodBytes = 0.4 }, reasonInvalidMemory, "575m", "400Mi", resultWritten},
		{"memory +Inf", func(p *snapshot.Prediction) { p.PeakMemoryPerPodBytes = math.Inf(1) }, reasonInvalidMemory, "575m", "400Mi", resultWritten},
		{"memory absurdly large", func(p *snapshot.Prediction) { p.PeakMemoryPerPodBytes = 1e30 }, reasonInvalidMemory, "575m", "400Mi", resultWritten},
		{"CPU absurdly large", func(p *snapshot.Prediction) { p.PredictedCPUCores = 1e20 }, reasonInvalidPrediction, "300m", "345Mi", resultWritten},
		{"both invalid", func(p *snapshot.Prediction) { p.PredictedCPUCores, p.PeakMemoryPerPodBytes = math.NaN(), math.NaN() },
			reasonInvalidPrediction, "300m", "400Mi", resultSkipped},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := pred("frontend")
			tc.mutate(&p)
			f := newFixture(t, []*vpatypes.VerticalPodAutoscaler{newVPA("frontend", "foresight", withStatus(previous))},
				[]runtime.Object{deployment("frontend", 1, "server")}, []snapshot.Prediction{p}, nil)
			f.sync()
			got := onlyRecommendation(t, f.get("frontend"))
			for _, l := range []corev1.ResourceList{got.Target, got.LowerBound, got.UpperBound, got.UncappedTarget} {
				for name, q := range l {
					if q.Sign() <= 0 {
						t.Errorf("%s written as %s", name, q.String())
					}
				}
			}
			if q := got.Target[corev1.ResourceCPU]; q.Cmp(resource.MustParse(tc.wantCPU)) != 0 {
				t.Errorf("cpu target = %s, want %s", q.String(), tc.wantCPU)
			}
			if q := got.Target[corev1.ResourceMemory]; q.Cmp(resource.MustParse(tc.wantMem)) != 0 {
				t.Errorf("memory target = %s, want %s", q.String(), tc.wantMem)
			}
			if n := f.count(tc.result, string(tc.reason)); n != 1 {
				t.Errorf("%s{%s} = %v, want 1", tc.result, tc.reason, n)
			}
			ev := f.drainEvents()
			if len(ev) != 1 || !strings.HasPrefix(ev[0], "Warning "+eventReason[tc.reason]) {
				t.Errorf("events = %q, want one Warning %s", ev, eventReason[tc.reason])
			}
			if c := condition(f.get("frontend")); c == nil || c.Reason != eventReason[tc.reason] {
				t.Errorf("condition = %+v, want reason %s", c, eventReason[tc.reason])
			}
		})
	}
}

func TestSkipsWhatCannotBeServed(t *testing.T) {
	for _, tc := range []struct {
		name      string
		vpa       *vpatypes.VerticalPodAutoscaler
		workloads []runtime.Object
		reason    reason
	}{
		{"target missing", newVPA("frontend", "foresight"), nil, reasonTargetNotFound},
		{"unsupported kind", newVPA("frontend", "foresight", target("example.com/v1", "Rollout", "frontend")), nil, reasonUnsupportedTarget},
		{"two containers, no annotation", newVPA("frontend", "foresight"),
			[]runtime.Object{deployment("frontend", 1, "server", "log-shipper")}, reasonContainerAmbiguous},
		{"annotated container missing", newVPA("frontend", "foresight", annotate(AnnotationContainer, "nope")),
			[]runtime.Object{deployment("frontend", 1, "server")}, reasonContainerNotFound},
		{"annotated container Off", newVPA("frontend", "foresight", annotate(AnnotationContainer, "server"),
			policy(vpatypes.ContainerResourcePolicy{ContainerName: "server", Mode: &modeOff})),
			[]runtime.Object{deployment("frontend", 1, "server")}, reasonContainerOff},
		{"every container Off", newVPA("frontend", "foresight", policy(vpatypes.ContainerResourcePolicy{ContainerName: "*", Mode: &modeOff})),
			[]runtime.Object{deployment("frontend", 1, "server")}, reasonContainerOff},
		{"nothing controlled", newVPA("frontend", "foresight", policy(vpatypes.ContainerResourcePolicy{
			ContainerName: "server", ControlledResources: &[]corev1.ResourceName{"ephemeral-storage"}})),
			[]runtime.Object{deployment("frontend", 1, "server")}, reasonNothingControlled},
		{"bad replicas annotation", newVPA("frontend", "foresight", annotate(AnnotationReplicas, "some")),
			[]runtime.Object{deployment("frontend", 1, "server")}, reasonBadAnnotation},
		{"empty service annotation", newVPA("frontend", "foresight", annotate(AnnotationService, " ")),
			[]runtime.Object{deployment("frontend", 1, "server")}, reasonBadAnnotation},
		{"service annotation without a prediction", newVPA("frontend", "foresight", annotate(AnnotationService, "elsewhere")),
			[]runtime.Object{deployment("frontend", 1, "server")}, reasonNoPrediction},
		{"prediction in another namespace", newVPA("frontend", "foresight", func(v *vpatypes.VerticalPodAutoscaler) { v.Namespace = "other" }),
			[]runtime.Object{func() *appsv1.Deployment { d := deployment("frontend", 1, "server"); d.Namespace = "other"; return d }()}, reasonNoPrediction},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, []*vpatypes.VerticalPodAutoscaler{tc.vpa}, tc.workloads, []snapshot.Prediction{pred("frontend")}, nil)
			f.sync()
			v, err := f.vpa.AutoscalingV1().VerticalPodAutoscalers(tc.vpa.Namespace).Get(context.Background(), tc.vpa.Name, metav1.GetOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if v.Status.Recommendation != nil {
				t.Errorf("recommendation written: %+v", v.Status.Recommendation)
			}
			if c := condition(v); c == nil || c.Status != corev1.ConditionFalse || c.Reason != eventReason[tc.reason] {
				t.Errorf("condition = %+v, want False/%s", c, eventReason[tc.reason])
			}
			if n := f.count(resultSkipped, string(tc.reason)); n != 1 {
				t.Errorf("skipped{%s} = %v, want 1", tc.reason, n)
			}
			if ev := f.drainEvents(); len(ev) != 1 || !strings.HasPrefix(ev[0], "Warning "+eventReason[tc.reason]) {
				t.Errorf("events = %q", ev)
			}
		})
	}
}

func TestPartialKeepsOtherResourceAndRecapsIt(t *testing.T) {
	// Memory unknown this pass: the previous memory stays, re-capped to
	// today's maxAllowed (the policy changed since it was written).
	previous := vpatypes.RecommendedContainerResources{ContainerName: "server",
		Target: rl("300m", "900Mi"), LowerBound: rl("200m", "800Mi"), UpperBound: rl("450m", "1200Mi"), UncappedTarget: rl("300m", "900Mi")}
	p := pred("frontend")
	p.PeakMemoryPerPodBytes = math.NaN()
	f := newFixture(t, []*vpatypes.VerticalPodAutoscaler{newVPA("frontend", "foresight", withStatus(previous),
		policy(vpatypes.ContainerResourcePolicy{ContainerName: "server", MaxAllowed: rl("", "1Gi")}))},
		[]runtime.Object{deployment("frontend", 1, "server")}, []snapshot.Prediction{p}, nil)
	f.sync()
	checkRec(t, onlyRecommendation(t, f.get("frontend")), vpatypes.RecommendedContainerResources{ContainerName: "server",
		Target: rl("575m", "900Mi"), LowerBound: rl("400m", "800Mi"), UpperBound: rl("863m", "1Gi"), UncappedTarget: rl("575m", "900Mi")})
}

func TestUpdateFailureIsReportedAndRetried(t *testing.T) {
	f := newFixture(t, []*vpatypes.VerticalPodAutoscaler{newVPA("frontend", "foresight")},
		[]runtime.Object{deployment("frontend", 1, "server")}, []snapshot.Prediction{pred("frontend")}, nil)
	conflict := true
	f.vpa.PrependReactor("update", "verticalpodautoscalers", func(a k8stesting.Action) (bool, runtime.Object, error) {
		if conflict && a.GetSubresource() == "status" {
			return true, nil, apierrors.NewConflict(schema.GroupResource{Group: "autoscaling.k8s.io", Resource: "verticalpodautoscalers"}, "frontend", errors.New("changed"))
		}
		return false, nil, nil
	})
	err := f.rec.Sync(context.Background())
	if err == nil || !apierrors.IsConflict(err) {
		t.Fatalf("Sync error = %v, want a conflict", err)
	}
	if n := f.count(resultError, "api"); n != 1 {
		t.Errorf("error{api} = %v, want 1", n)
	}
	conflict = false
	f.sync()
	if f.get("frontend").Status.Recommendation == nil {
		t.Error("the next pass did not write")
	}
}

func TestListFailureIsReturned(t *testing.T) {
	f := newFixture(t, nil, nil, nil, nil)
	f.vpa.PrependReactor("list", "verticalpodautoscalers", func(k8stesting.Action) (bool, runtime.Object, error) {
		return true, nil, apierrors.NewServiceUnavailable("etcd down")
	})
	if err := f.rec.Sync(context.Background()); err == nil || !strings.Contains(err.Error(), "listing VerticalPodAutoscalers") {
		t.Fatalf("Sync error = %v", err)
	}
	if n := testutil.ToFloat64(f.rec.metrics.listFailures); n != 1 {
		t.Errorf("list failures = %v, want 1", n)
	}
}

func TestRunSyncsUntilCancelled(t *testing.T) {
	f := newFixture(t, []*vpatypes.VerticalPodAutoscaler{newVPA("frontend", "foresight")},
		[]runtime.Object{deployment("frontend", 1, "server")}, []snapshot.Prediction{pred("frontend")},
		func(o *Options) { o.Interval = 10 * time.Millisecond })
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- f.rec.Run(ctx) }()
	deadline := time.Now().Add(10 * time.Second)
	for testutil.ToFloat64(f.rec.metrics.recommendations.WithLabelValues(resultUnchanged, "")) < 2 {
		if time.Now().After(deadline) {
			t.Fatal("Run did not keep syncing")
		}
		time.Sleep(5 * time.Millisecond)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Run returned %v after cancel, want nil", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return after cancel")
	}
}

func TestNewValidates(t *testing.T) {
	base := func() Options {
		return Options{VPAClient: vpafake.NewSimpleClientset(), KubeClient: k8sfake.NewClientset(), Reader: &snapshot.Store{},
			Events: events.NewFakeRecorder(1)}
	}
	for _, tc := range []struct {
		name   string
		mutate func(*Options)
		want   string
	}{
		{"no VPA client", func(o *Options) { o.VPAClient = nil }, "required"},
		{"no reader", func(o *Options) { o.Reader = nil }, "required"},
		{"negative interval", func(o *Options) { o.Interval = -time.Second }, "negative"},
		{"negative CPU margin", func(o *Options) { o.CPUMargin = -0.1 }, "CPU margin"},
		{"NaN memory margin", func(o *Options) { o.MemoryMargin = math.NaN() }, "memory margin"},
		{"upper factor below 1", func(o *Options) { o.UpperBoundFactor = 0.9 }, "upper bound factor"},
		{"minimum memory below 1 MiB", func(o *Options) { o.MinMemoryBytes = 1000 }, "minimum memory"},
		{"lease without namespace outside a pod", func(o *Options) { o.LeaderElection = &LeaderElection{} }, "namespace"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.want == "namespace" {
				if _, err := os.Stat("/var/run/secrets/kubernetes.io/serviceaccount/namespace"); err == nil {
					t.Skip("running in a pod: the ServiceAccount namespace is there")
				}
			}
			o := base()
			tc.mutate(&o)
			_, err := New(o)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("New error = %v, want one mentioning %q", err, tc.want)
			}
		})
	}
	r, err := New(base())
	if err != nil {
		t.Fatal(err)
	}
	if r.name != DefaultName || r.interval != DefaultInterval || r.sizing.cpuMargin != DefaultCPUMargin ||
		r.sizing.minMemory != DefaultMinMemoryBytes || r.sizing.upperFactor != DefaultUpperBoundFactor {
		t.Errorf("defaults not applied: %+v %+v", r, r.sizing)
	}
	// Registering twice on one registry is a configuration error, reported.
	reg := prometheus.NewRegistry()
	o := base()
	o.Registerer = reg
	if _, err := New(o); err != nil {
		t.Fatal(err)
	}
	if _, err := New(o); err == nil {
		t.Error("second New on the same registry did not fail")
	}
}

func TestQuantityRounding(t *testing.T) {
	for _, tc := range []struct {
		got  resource.Quantity
		want string
	}{
		{cpuQuantity(0.1), "100m"},
		{cpuQuantity(0.1001), "101m"},
		{cpuQuantity(0.575), "575m"},
		{cpuQuantity(2), "2"},
		{memoryQuantity(300 * mebibyte), "300Mi"},
		{memoryQuantity(300*mebibyte + 1), "301Mi"},
		{memoryQuantity(1 << 30), "1Gi"},
	} {
		if tc.got.String() != tc.want {
			t.Errorf("got %s, want %s", tc.got.String(), tc.want)
		}
	}
}

func TestChooseContainer(t *testing.T) {
	offSidecar := &vpatypes.PodResourcePolicy{ContainerPolicies: []vpatypes.ContainerResourcePolicy{
		{ContainerName: "*", Mode: &modeOff}, {ContainerName: "app"}}}
	for _, tc := range []struct {
		annotated  string
		containers []string
		pol        *vpatypes.PodResourcePolicy
		want       string
		reason     reason
	}{
		{"", []string{"app"}, nil, "app", reasonNone},
		{"", []string{"app", "sidecar"}, offSidecar, "app", reasonNone}, // "*" is Off, app's own policy is not
		{"", []string{"app", "sidecar"}, nil, "", reasonContainerAmbiguous},
		{"sidecar", []string{"app", "sidecar"}, nil, "sidecar", reasonNone},
		{"sidecar", []string{"app", "sidecar"}, offSidecar, "", reasonContainerOff},
		{"", nil, nil, "", reasonContainerNotFound},
	} {
		t.Run(fmt.Sprintf("%s/%v", tc.annotated, tc.containers), func(t *testing.T) {
			got, pr := chooseContainer(tc.annotated, tc.containers, tc.pol)
			gotReason := reasonNone
			if pr != nil {
				gotReason = pr.reason
			}
			if got != tc.want || gotReason != tc.reason {
				t.Errorf("chooseContainer = %q, %q; want %q, %q", got, gotReason, tc.want, tc.reason)
			}
		})
	}
}

package vpa

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	vpatypes "k8s.io/autoscaler/vertical-pod-autoscaler/pkg/apis/autoscaling.k8s.io/v1"
	vpaclientset "k8s.io/autoscaler/vertical-pod-autoscaler/pkg/client/clientset/versioned"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/foresightscale/foresight/forecaster/snapshot"
	"github.com/foresightscale/foresight/internal/kubetest"
	"github.com/foresightscale/foresight/internal/testenv"
)

const (
	e2eNamespace = "shop"
	vpaModule    = "k8s.io/autoscaler/vertical-pod-autoscaler"
	vpaVersion   = "v1.8.1"
)

// The application side: a one-container Deployment, a VPA that selects
// Foresight and one that selects another recommender.
const e2eObjects = `
apiVersion: apps/v1
kind: Deployment
metadata: {name: frontend, namespace: shop}
spec:
  replicas: 2
  selector: {matchLabels: {app: frontend}}
  template:
    metadata: {labels: {app: frontend}}
    spec:
      containers:
        - name: server
          image: example.invalid/frontend:1
          resources: {requests: {cpu: 100m, memory: 64Mi}}
---
apiVersion: autoscaling.k8s.io/v1
kind: VerticalPodAutoscaler
metadata: {name: frontend, namespace: shop}
spec:
  targetRef: {apiVersion: apps/v1, kind: Deployment, name: frontend}
  recommenders: [{name: foresight}]
  updatePolicy: {updateMode: "Off"}
---
apiVersion: autoscaling.k8s.io/v1
kind: VerticalPodAutoscaler
metadata: {name: frontend-other, namespace: shop}
spec:
  targetRef: {apiVersion: apps/v1, kind: Deployment, name: frontend}
  recommenders: [{name: other}]
  updatePolicy: {updateMode: "Off"}
`

// TestRecommenderOnRealControlPlane runs two recommenders (leader election
// on) as the foresight ServiceAccount with only the RBAC of
// manifests/components/vpa-recommender, against the real VPA CRD.
func TestRecommenderOnRealControlPlane(t *testing.T) {
	c := kubetest.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	kubectl := func(stdin []byte, args ...string) []byte {
		t.Helper()
		return c.MustKubectl(ctx, t, stdin, args...)
	}

	crd := filepath.Join(kubetest.GoModuleDir(ctx, t, vpaModule, vpaVersion), "deploy", "vpa-v1-crd-gen.yaml")
	crdYAML, err := os.ReadFile(crd)
	if err != nil {
		t.Fatal(err)
	}
	kubectl(crdYAML, "apply", "--server-side", "-f", "-")
	kubectl(nil, "wait", "--for=condition=Established", "--timeout=60s",
		"crd/verticalpodautoscalers.autoscaling.k8s.io", "crd/verticalpodautoscalercheckpoints.autoscaling.k8s.io")

	// What an operator applies: the base plus the component. The
	// APIService is left out: nothing serves it here, and an unavailable
	// aggregated API only slows kubectl's discovery down.
	rendered := renderWithComponent(t, kubectl)
	if !bytes.Contains(rendered, []byte("--vpa-recommender=foresight")) {
		t.Error("the component does not add --vpa-recommender=foresight to the Deployment")
	}
	kubectl(withoutKind(t, rendered, "APIService"), "apply", "--server-side", "--validate=strict", "-f", "-")

	kubectl(nil, "create", "namespace", e2eNamespace)
	kubectl([]byte(e2eObjects), "apply", "--server-side", "--validate=strict", "-f", "-")

	t.Run("example VPAs pass strict server-side validation", func(t *testing.T) {
		path := filepath.Join(testenv.RepoRoot(t), "manifests", "examples", "vpa-boutique.yaml")
		out := kubectl(nil, "apply", "--server-side", "--validate=strict", "--dry-run=server", "-f", path)
		if n := bytes.Count(out, []byte("verticalpodautoscaler.autoscaling.k8s.io/")); n != 10 {
			t.Errorf("dry-run applied %d VPAs, want 10:\n%s", n, out)
		}
	})

	// The recommender's own identity: only what the component grants.
	kubeconfig, _, err := c.ServiceAccountKubeconfig(ctx, "foresight", "foresight")
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	vpaClient, err := vpaclientset.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	kubeClient, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}

	store := &snapshot.Store{}
	publish := func(preds ...snapshot.Prediction) {
		store.Publish(&snapshot.Snapshot{CreatedAt: time.Now(), Model: "e2e", Step: 30 * time.Second, Predictions: preds})
	}
	prediction := func(cpuCores float64) snapshot.Prediction {
		now := time.Now()
		return snapshot.Prediction{
			Namespace: e2eNamespace, Service: "frontend", Horizon: 2 * time.Minute,
			PredictedReplicas: 4, PredictedRequests: 100, PredictedCPUCores: cpuCores,
			ObservedRequests: 80, ObservedCPUCores: 1.2, ObservedReplicas: 3,
			PeakMemoryPerPodBytes: 300 << 20,
			ComputedAt:            now, ExpiresAt: now.Add(time.Hour),
		}
	}
	publish(prediction(2))

	type replica struct {
		name   string
		reg    *prometheus.Registry
		cancel context.CancelFunc
		done   chan error
	}
	var replicas []*replica
	for _, name := range []string{"replica-a", "replica-b"} {
		rp := &replica{name: name, reg: prometheus.NewRegistry(), done: make(chan error, 1)}
		r, err := New(Options{
			VPAClient: vpaClient, KubeClient: kubeClient, Reader: store,
			Namespace: e2eNamespace, Interval: 300 * time.Millisecond,
			Log:        slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug})).With("replica", name),
			Registerer: rp.reg,
			LeaderElection: &LeaderElection{Namespace: "foresight", Identity: name,
				LeaseDuration: 15 * time.Second, RenewDeadline: 10 * time.Second, RetryPeriod: 500 * time.Millisecond},
		})
		if err != nil {
			t.Fatal(err)
		}
		var rctx context.Context
		rctx, rp.cancel = context.WithCancel(ctx)
		go func() { rp.done <- r.Run(rctx) }()
		replicas = append(replicas, rp)
	}
	stopped := make(map[*replica]bool)
	stop := func(rp *replica) {
		if stopped[rp] {
			return
		}
		stopped[rp] = true
		rp.cancel()
		select {
		case err := <-rp.done:
			if err != nil {
				t.Errorf("%s: Run returned %v", rp.name, err)
			}
		case <-time.After(30 * time.Second):
			t.Errorf("%s: Run did not return after cancel", rp.name)
		}
	}
	t.Cleanup(func() {
		for _, rp := range replicas {
			stop(rp)
		}
	})

	vpas := vpaClient.AutoscalingV1().VerticalPodAutoscalers(e2eNamespace)
	waitFor := func(what string, ok func(v *vpatypes.VerticalPodAutoscaler) bool) *vpatypes.VerticalPodAutoscaler {
		t.Helper()
		deadline := time.Now().Add(45 * time.Second)
		var last *vpatypes.VerticalPodAutoscaler
		for time.Now().Before(deadline) {
			v, err := vpas.Get(ctx, "frontend", metav1.GetOptions{})
			if err == nil {
				last = v
				if ok(v) {
					return v
				}
			}
			time.Sleep(200 * time.Millisecond)
		}
		t.Fatalf("timed out waiting for %s; last status: %+v", what, last.Status)
		return nil
	}
	cpuTarget := func(want string) func(v *vpatypes.VerticalPodAutoscaler) bool {
		return func(v *vpatypes.VerticalPodAutoscaler) bool {
			if v.Status.Recommendation == nil || len(v.Status.Recommendation.ContainerRecommendations) != 1 {
				return false
			}
			q, ok := v.Status.Recommendation.ContainerRecommendations[0].Target[corev1.ResourceCPU]
			return ok && q.Cmp(resource.MustParse(want)) == 0
		}
	}

	// 2 cores over 4 predicted pods = 500m per pod → 575m with the margin;
	// lower bound the 400m a pod uses now; upper 575m × 1.5. Memory from
	// the 300Mi peak per pod.
	v := waitFor("the first recommendation", cpuTarget("575m"))
	want := vpatypes.RecommendedContainerResources{ContainerName: "server",
		Target: rl("575m", "345Mi"), LowerBound: rl("400m", "300Mi"), UpperBound: rl("863m", "518Mi"), UncappedTarget: rl("575m", "345Mi")}
	checkRec(t, v.Status.Recommendation.ContainerRecommendations[0], want)
	if cond := condition(v); cond == nil || cond.Status != corev1.ConditionTrue {
		t.Errorf("RecommendationProvided = %+v, want True", cond)
	}

	other, err := vpas.Get(ctx, "frontend-other", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if other.Status.Recommendation != nil || len(other.Status.Conditions) != 0 {
		t.Errorf("the VPA of another recommender was written: %+v", other.Status)
	}

	// Exactly one replica leads, and the Lease names it.
	lease, err := c.Client.CoordinationV1().Leases("foresight").Get(ctx, DefaultLeaseName, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var leader *replica
	for _, rp := range replicas {
		if gaugeValue(t, rp.reg, "foresight_vpa_leader") == 1 {
			if leader != nil {
				t.Fatalf("both %s and %s lead", leader.name, rp.name)
			}
			leader = rp
		}
	}
	if leader == nil || lease.Spec.HolderIdentity == nil || *lease.Spec.HolderIdentity != leader.name {
		t.Fatalf("lease holder %v, leading replica %v", lease.Spec.HolderIdentity, leader)
	}

	// The leader goes away (releasing its Lease); the other takes over
	// and follows the next forecast: 4 cores / 4 pods → 1150m.
	stop(leader)
	publish(prediction(4))
	waitFor("the new leader's updated recommendation", cpuTarget("1150m"))

	// No prediction: the recommendation stays, the condition and an Event
	// say why.
	publish()
	v = waitFor("RecommendationProvided=False", func(v *vpatypes.VerticalPodAutoscaler) bool {
		cond := condition(v)
		return cond != nil && cond.Status == corev1.ConditionFalse && cond.Reason == "ForesightNoPrediction"
	})
	if !cpuTarget("1150m")(v) {
		t.Errorf("the previous recommendation was not kept: %+v", v.Status.Recommendation)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		evs, err := c.Client.EventsV1().Events(e2eNamespace).List(ctx, metav1.ListOptions{})
		if err != nil {
			t.Fatal(err)
		}
		found := false
		for _, e := range evs.Items {
			if e.Reason == "ForesightNoPrediction" && e.Regarding.Kind == "VerticalPodAutoscaler" && e.Regarding.Name == "frontend" &&
				e.Type == corev1.EventTypeWarning {
				found = true
			}
		}
		if found {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no ForesightNoPrediction Event on VPA frontend; events: %+v", evs.Items)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// renderWithComponent renders manifests/base with the vpa-recommender
// component through a kustomization of its own (kustomize wants relative
// paths).
func renderWithComponent(t *testing.T, kubectl func([]byte, ...string) []byte) []byte {
	t.Helper()
	dir := t.TempDir()
	manifests, err := filepath.Rel(dir, filepath.Join(testenv.RepoRoot(t), "manifests"))
	if err != nil {
		t.Fatal(err)
	}
	k := fmt.Sprintf("apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources:\n  - %s\ncomponents:\n  - %s\n",
		filepath.ToSlash(filepath.Join(manifests, "base")), filepath.ToSlash(filepath.Join(manifests, "components", "vpa-recommender")))
	if err := os.WriteFile(filepath.Join(dir, "kustomization.yaml"), []byte(k), 0o600); err != nil {
		t.Fatal(err)
	}
	return kubectl(nil, "kustomize", dir)
}

// withoutKind drops the documents of one kind from a rendered stream.
func withoutKind(t *testing.T, stream []byte, kind string) []byte {
	t.Helper()
	var kept []string
	dropped := 0
	for _, doc := range strings.Split(string(stream), "\n---\n") {
		if strings.Contains(doc, "\nkind: "+kind+"\n") || strings.HasPrefix(doc, "kind: "+kind+"\n") {
			dropped++
			continue
		}
		kept = append(kept, doc)
	}
	if dropped == 0 {
		t.Fatalf("no %s in the rendered manifests", kind)
	}
	return []byte(strings.Join(kept, "\n---\n"))
}

func gaugeValue(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name && len(mf.GetMetric()) == 1 {
			return mf.GetMetric()[0].GetGauge().GetValue()
		}
	}
	t.Fatalf("metric %s not found", name)
	return 0
}

// testWriter sends the recommenders' logs to the test log, shown on failure.
type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

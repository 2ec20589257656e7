package budget_test

import (
	"context"
	"io"
	"log/slog"
	"math"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/foresightscale/foresight/forecaster/budget"
	"github.com/foresightscale/foresight/forecaster/snapshot"
	"github.com/foresightscale/foresight/internal/kubetest"
)

// TestBudgetFromARealResourceQuota: a quota of 3 CPU in a namespace where
// another pod already requests 1 leaves 2 cores for the budget's services,
// read through the real apiserver with the quota controller keeping
// status.used.
func TestBudgetFromARealResourceQuota(t *testing.T) {
	c := kubetest.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	const ns = "shop"
	if _, err := c.Client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	quota := &corev1.ResourceQuota{
		ObjectMeta: metav1.ObjectMeta{Name: "compute"},
		Spec:       corev1.ResourceQuotaSpec{Hard: corev1.ResourceList{corev1.ResourceRequestsCPU: resource.MustParse("3")}},
	}
	if _, err := c.Client.CoreV1().ResourceQuotas(ns).Create(ctx, quota, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	// The quota admission refuses pods until the controller has filled in status.hard.
	var other *corev1.Pod
	for deadline := time.Now().Add(time.Minute); time.Now().Before(deadline); time.Sleep(250 * time.Millisecond) {
		var err error
		other, err = c.Client.CoreV1().Pods(ns).Create(ctx, &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: "batch-job"},
			Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "job", Image: "example.invalid/job:1",
				Resources: corev1.ResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("1")}}}}},
		}, metav1.CreateOptions{})
		if err == nil {
			break
		}
	}
	if other == nil {
		t.Fatal("the quota never admitted the other workload's pod")
	}
	waitForUsed(ctx, t, c, ns, "1")

	get := func(ctx context.Context, namespace, name string) (*corev1.ResourceQuota, error) {
		return c.Client.CoreV1().ResourceQuotas(namespace).Get(ctx, name, metav1.GetOptions{})
	}
	cfg := budget.Config{Name: "shop", ResourceQuota: &budget.QuotaRef{Namespace: ns, Name: "compute"}, Services: map[string]budget.Member{
		"frontend": {CPURequest: 0.5, Priority: 10},
		"cart":     {CPURequest: 0.5},
	}}
	if err := budget.Validate([]budget.Config{cfg}, []string{"frontend", "cart"}); err != nil {
		t.Fatal(err)
	}
	b, err := budget.NewBudgeter([]budget.Config{cfg}, get, func(string) int64 { return 1 }, nil, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	apply := func() map[string]snapshot.Prediction {
		preds := map[string]snapshot.Prediction{
			"frontend": {Service: "frontend", PredictedReplicas: 4, ObservedReplicas: 0, ObservedRequests: math.NaN()},
			"cart":     {Service: "cart", PredictedReplicas: 2, ObservedReplicas: 0, ObservedRequests: math.NaN()},
		}
		b.Apply(ctx, preds)
		return preds
	}
	// 2 cores: minimums 1 (0.5 each), frontend first: 2 more of its 3.
	got := apply()
	if got["frontend"].PredictedReplicas != 3 || got["cart"].PredictedReplicas != 1 {
		t.Fatalf("frontend %d, cart %d; want 3 and 1 within the 2 cores the quota leaves", got["frontend"].PredictedReplicas, got["cart"].PredictedReplicas)
	}

	// The other workload goes away: the whole quota is the budget's.
	if err := c.Client.CoreV1().Pods(ns).Delete(ctx, other.Name, metav1.DeleteOptions{GracePeriodSeconds: new(int64)}); err != nil {
		t.Fatal(err)
	}
	waitForUsed(ctx, t, c, ns, "0")
	got = apply()
	if got["frontend"].PredictedReplicas != 4 || got["cart"].PredictedReplicas != 2 {
		t.Errorf("after the other pod left: frontend %d, cart %d; want the full needs 4 and 2 (3 cores fit)", got["frontend"].PredictedReplicas, got["cart"].PredictedReplicas)
	}
}

func waitForUsed(ctx context.Context, t *testing.T, c *kubetest.Cluster, ns, want string) {
	t.Helper()
	w := resource.MustParse(want)
	var used resource.Quantity
	for deadline := time.Now().Add(time.Minute); time.Now().Before(deadline); time.Sleep(250 * time.Millisecond) {
		q, err := c.Client.CoreV1().ResourceQuotas(ns).Get(ctx, "compute", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		used = q.Status.Used[corev1.ResourceRequestsCPU]
		if used.Cmp(w) == 0 {
			return
		}
	}
	t.Fatalf("quota used requests.cpu %s, want %s", used.String(), want)
}

package main

import (
	"context"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/foresightscale/foresight/internal/kubetest"
	"github.com/foresightscale/foresight/internal/testenv"
)

// TestChartOnRealControlPlane is the HPA path installed from the Helm
// chart instead of the kustomize base: charts/foresight rendered with its
// defaults (its own generated serving certificate and CA bundle) and
// applied with strict validation; foresight serve started with the chart
// Deployment's arguments, the chart's configuration and Secret, as the
// chart's ServiceAccount; the aggregator admits it through the chart's
// APIService, and the shipped example HPA reads the prediction through the
// chart's RBAC and scales its Deployment to it. (The step in load up and
// down is TestManifestsOnRealControlPlane's; charts/chart_test.go keeps the
// two installs' objects equal.)
func TestChartOnRealControlPlane(t *testing.T) {
	helmBin := testenv.Helm(t)
	c := kubetest.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	repo := testenv.RepoRoot(t)

	// Only the chart's ClusterRole may let the HPA controller read.
	trimBuiltInHPARole(ctx, t, c)
	rendered, err := exec.CommandContext(ctx, helmBin, "template", "foresight", filepath.Join(repo, "charts", "foresight"), "--namespace", "foresight").Output()
	if err != nil {
		t.Fatalf("helm template: %v", err)
	}
	objs := decodeObjects(t, rendered)
	securePort, metricsPort := freePort(t), freePort(t)
	adaptForLoopback(t, objs, securePort)
	if _, err := c.Client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "foresight"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	applyObjects(ctx, t, c, objs)
	waitForAccess(ctx, t, c, hpaControllerUser, true)

	stepAt := time.Now().Add(time.Hour) // no step: a steady load
	args := append(podArgs(t, objs, objs, securePort, metricsPort, writeStepCSV(t, stepAt, 1)), serviceAccountArgs(ctx, t, c)...)
	runForesight(t, securePort, metricsPort, args)
	waitForAPIService(ctx, t, c, true, 90*time.Second)
	predicted := predictedReplicas(ctx, t, c, "frontend")

	hpa := exampleHPA(t, repo, "frontend")
	createDeployment(ctx, t, c, "frontend")
	if _, err := c.Client.AutoscalingV2().HorizontalPodAutoscalers(appNamespace).Create(ctx, hpa, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	var last *autoscalingv2.HorizontalPodAutoscaler
	for deadline := time.Now().Add(90 * time.Second); time.Now().Before(deadline); time.Sleep(time.Second) {
		if last, err = c.Client.AutoscalingV2().HorizontalPodAutoscalers(appNamespace).Get(ctx, hpa.Name, metav1.GetOptions{}); err != nil {
			t.Fatal(err)
		}
		if len(last.Status.CurrentMetrics) == 1 && last.Status.CurrentMetrics[0].External != nil && last.Status.DesiredReplicas > 1 &&
			deploymentReplicas(ctx, t, c, "frontend") == last.Status.DesiredReplicas {
			break
		}
	}
	got := deploymentReplicas(ctx, t, c, "frontend")
	t.Logf("prediction %d; the HPA wants %d; the Deployment has %d", predicted, last.Status.DesiredReplicas, got)
	if len(last.Status.CurrentMetrics) != 1 || last.Status.CurrentMetrics[0].External == nil {
		t.Fatalf("the HPA read no external metric: %+v", last.Status)
	}
	if d := last.Status.DesiredReplicas; got != d || d < min(predicted, hpa.Spec.MaxReplicas)-1 || d > predicted+1 {
		t.Errorf("the Deployment has %d replicas, the HPA wants %d: want the prediction %d (±1: it may move between reads)", got, d, predicted)
	}
}

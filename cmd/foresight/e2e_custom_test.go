package main

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	autoscalingv2 "k8s.io/api/autoscaling/v2"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/dynamic"
	cmv1beta2 "k8s.io/metrics/pkg/apis/custom_metrics/v1beta2"

	"github.com/foresightscale/foresight/internal/kubetest"
	"github.com/foresightscale/foresight/internal/testenv"
)

// TestCustomMetricsObjectHPAOnRealControlPlane: where another adapter owns
// external metrics, Foresight is installed with the custom-metrics overlay
// (registered only for custom.metrics.k8s.io), and the shipped Object-metric
// example HPA scales the Deployment to the prediction through the real
// aggregator and HPA controller.
func TestCustomMetricsObjectHPAOnRealControlPlane(t *testing.T) {
	c := kubetest.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), 6*time.Minute)
	defer cancel()
	repo := testenv.RepoRoot(t)

	securePort, metricsPort := freePort(t), freePort(t)
	rendered, err := c.Kubectl(ctx, t, nil, "kustomize", filepath.Join(repo, "manifests", "overlays", "custom-metrics"))
	must(t, err)
	base := decodeObjects(t, rendered)
	certsOut, err := exec.CommandContext(ctx, foresightBinary(t), "certs", "--namespace", "foresight", "--api", "custom").Output()
	must(t, err)
	certs := decodeObjects(t, certsOut)
	for _, objs := range [][]*unstructured.Unstructured{base, certs} {
		adaptForLoopback(t, objs, securePort)
	}
	applyObjects(ctx, t, c, base)
	applyObjects(ctx, t, c, certs, "--server-side", "--field-manager=foresight-certs")

	// The external metrics API stays with its owner: the overlay must not
	// install (and so replace) its APIService.
	dyn, err := dynamic.NewForConfig(c.Config)
	must(t, err)
	if _, err := dyn.Resource(apiServicesGVR).Get(ctx, metricsAPIs["external"].name, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Fatalf("the custom-metrics overlay installed %s (err %v); it must leave it to its owner", metricsAPIs["external"].name, err)
	}

	saKubeconfig, _, err := c.ServiceAccountKubeconfig(ctx, "foresight", "foresight")
	must(t, err)
	// A steady load: the replayed file repeats every 2 h, so a step 1 h
	// away is as far as it gets.
	args := podArgs(t, base, certs, securePort, metricsPort, writeStepCSV(t, time.Now().Add(time.Hour), 3))
	args = append(args, "--bind-address=127.0.0.1",
		"--authentication-kubeconfig="+saKubeconfig, "--authorization-kubeconfig="+saKubeconfig, "--lister-kubeconfig="+saKubeconfig)
	runForesight(t, securePort, metricsPort, args)
	waitForAPIServiceNamed(ctx, t, c, metricsAPIs["custom"].name, true, 90*time.Second)

	raw, err := os.ReadFile(filepath.Join(repo, "manifests", "examples", "hpa-object-boutique.yaml"))
	must(t, err)
	var hpa autoscalingv2.HorizontalPodAutoscaler
	must(t, runtime.DefaultUnstructuredConverter.FromUnstructured(findObject(t, decodeObjects(t, raw), "HorizontalPodAutoscaler", "frontend").Object, &hpa))
	if hpa.Namespace != appNamespace || len(hpa.Spec.Metrics) != 1 || hpa.Spec.Metrics[0].Type != autoscalingv2.ObjectMetricSourceType {
		t.Fatalf("example HPA: namespace %q, metrics %+v; want one Object metric in %s", hpa.Namespace, hpa.Spec.Metrics, appNamespace)
	}
	createDeployment(ctx, t, c, "frontend")
	if _, err := c.Client.AutoscalingV2().HorizontalPodAutoscalers(appNamespace).Create(ctx, &hpa, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}

	// The Deployment reaches the prediction read through the aggregator.
	bounds := func(p int32) int32 { return min(max(p, *hpa.Spec.MinReplicas), hpa.Spec.MaxReplicas) }
	var predicted, replicas int32
	deadline := time.Now().Add(2 * time.Minute)
	for time.Now().Before(deadline) {
		predicted = objectMetricReplicas(ctx, t, c, "frontend")
		replicas = deploymentReplicas(ctx, t, c, "frontend")
		if predicted > 1 && replicas == bounds(predicted) {
			break
		}
		time.Sleep(500 * time.Millisecond)
	}
	if predicted <= 1 || replicas != bounds(predicted) {
		t.Fatalf("Deployment at %d replicas, prediction through custom.metrics.k8s.io %d (want > 1 and followed)", replicas, predicted)
	}
	got, err := c.Client.AutoscalingV2().HorizontalPodAutoscalers(appNamespace).Get(ctx, "frontend", metav1.GetOptions{})
	must(t, err)
	if len(got.Status.CurrentMetrics) != 1 || got.Status.CurrentMetrics[0].Object == nil {
		t.Errorf("HPA status metrics %+v, want the Object metric", got.Status.CurrentMetrics)
	}
	t.Logf("Object-metric HPA scaled the Deployment from 1 to the prediction, %d replicas", replicas)
}

// objectMetricReplicas reads foresight_predicted_replicas of the Deployment
// through the apiserver, as the HPA controller does for an Object metric.
func objectMetricReplicas(ctx context.Context, t *testing.T, c *kubetest.Cluster, deployment string) int32 {
	t.Helper()
	path := "/apis/custom.metrics.k8s.io/v1beta2/namespaces/" + appNamespace + "/deployments.apps/" + deployment + "/foresight_predicted_replicas"
	raw, err := c.Client.Discovery().RESTClient().Get().AbsPath(path).DoRaw(ctx)
	if err != nil {
		// Between discovery refreshes, or before the first cycle: not yet.
		t.Logf("GET %s: %v", path, err)
		return 0
	}
	var list cmv1beta2.MetricValueList
	must(t, json.Unmarshal(raw, &list))
	if len(list.Items) != 1 || list.Items[0].DescribedObject.Name != deployment || list.Items[0].DescribedObject.Kind != "Deployment" {
		t.Fatalf("unexpected answer for %s: %s", path, raw)
	}
	return int32(list.Items[0].Value.Value())
}

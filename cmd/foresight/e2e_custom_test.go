package main

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	k8slabels "k8s.io/apimachinery/pkg/labels"
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

	in := install(ctx, t, c, filepath.Join(repo, "manifests", "overlays", "custom-metrics"), "--api", "custom")

	// The external metrics API stays with its owner: the overlay must not
	// install (and so replace) its APIService.
	dyn, err := dynamic.NewForConfig(c.Config)
	must(t, err)
	if _, err := dyn.Resource(apiServicesGVR).Get(ctx, metricsAPIs["external"].name, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Fatalf("the custom-metrics overlay installed %s (err %v); it must leave it to its owner", metricsAPIs["external"].name, err)
	}

	// A steady load: the replayed file repeats every 2 h, so a step 1 h
	// away is as far as it gets.
	args := podArgs(t, in.base, in.certs, in.securePort, in.metricsPort, writeStepCSV(t, time.Now().Add(time.Hour), 3))
	args = append(append(args, "--pod-metrics"), serviceAccountArgs(ctx, t, c)...)
	runForesight(t, in.securePort, in.metricsPort, args)
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

	t.Run("Pods metric, as Knative's HPA class creates", func(t *testing.T) {
		knativeStylePodsHPA(ctx, t, c)
	})
}

// knativeStylePodsHPA: a revision Deployment named as Knative names it, its
// pods labelled with their Knative service, and the HPA Knative's HPA-class
// autoscaler creates for `autoscaling.knative.dev/metric:
// foresight_predicted_replicas` with target 1: type Pods, AverageValue 1.
// Every running pod reports its share, so the HPA reaches the prediction.
// There is no kubelet: the test marks the pods Running itself.
func knativeStylePodsHPA(ctx context.Context, t *testing.T, c *kubetest.Cluster) {
	const name = "frontend-00001-deployment"
	labels := map[string]string{"serving.knative.dev/service": "frontend", "serving.knative.dev/revision": "frontend-00001"}
	one := int32(1)
	_, err := c.Client.AppsV1().Deployments(appNamespace).Create(ctx, &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: appsv1.DeploymentSpec{
			Replicas: &one,
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "user-container", Image: "example.invalid/frontend:1"}}},
			},
		},
	}, metav1.CreateOptions{})
	must(t, err)
	target := resource.MustParse("1")
	zero := int32(0)
	tolerance := resource.MustParse("0")
	hpa := &autoscalingv2.HorizontalPodAutoscaler{
		ObjectMeta: metav1.ObjectMeta{Name: "frontend-00001", Namespace: appNamespace},
		Spec: autoscalingv2.HorizontalPodAutoscalerSpec{
			ScaleTargetRef: autoscalingv2.CrossVersionObjectReference{APIVersion: "apps/v1", Kind: "Deployment", Name: name},
			MinReplicas:    &one,
			MaxReplicas:    100,
			Metrics: []autoscalingv2.MetricSpec{{
				Type: autoscalingv2.PodsMetricSourceType,
				Pods: &autoscalingv2.PodsMetricSource{
					Metric: autoscalingv2.MetricIdentifier{Name: "foresight_predicted_replicas"},
					Target: autoscalingv2.MetricTarget{Type: autoscalingv2.AverageValueMetricType, AverageValue: &target},
				},
			}},
			Behavior: &autoscalingv2.HorizontalPodAutoscalerBehavior{
				ScaleUp:   &autoscalingv2.HPAScalingRules{Tolerance: &tolerance},
				ScaleDown: &autoscalingv2.HPAScalingRules{StabilizationWindowSeconds: &zero, Tolerance: &tolerance},
			},
		},
	}
	_, err = c.Client.AutoscalingV2().HorizontalPodAutoscalers(appNamespace).Create(ctx, hpa, metav1.CreateOptions{})
	must(t, err)

	var predicted, replicas int32
	deadline := time.Now().Add(2 * time.Minute)
	for time.Now().Before(deadline) {
		markPodsRunning(ctx, t, c, labels)
		predicted = objectMetricReplicas(ctx, t, c, "frontend")
		replicas = deploymentReplicas(ctx, t, c, name)
		if predicted > 1 && replicas == predicted {
			break
		}
		time.Sleep(500 * time.Millisecond)
	}
	if predicted <= 1 || replicas != predicted {
		got, _ := c.Client.AutoscalingV2().HorizontalPodAutoscalers(appNamespace).Get(ctx, hpa.Name, metav1.GetOptions{})
		t.Fatalf("revision Deployment at %d replicas, prediction %d; HPA status %+v", replicas, predicted, got.Status)
	}
	t.Logf("Pods-metric HPA scaled the revision Deployment from 1 to the prediction, %d replicas", replicas)
}

// markPodsRunning plays the kubelet: pods the ReplicaSet created become
// Running and Ready.
func markPodsRunning(ctx context.Context, t *testing.T, c *kubetest.Cluster, selector map[string]string) {
	t.Helper()
	pods, err := c.Client.CoreV1().Pods(appNamespace).List(ctx, metav1.ListOptions{LabelSelector: k8slabels.Set(selector).String()})
	must(t, err)
	for i := range pods.Items {
		p := &pods.Items[i]
		if p.Status.Phase == corev1.PodRunning {
			continue
		}
		now := metav1.Now()
		p.Status.Phase = corev1.PodRunning
		p.Status.StartTime = &now
		p.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue, LastTransitionTime: now}}
		if _, err := c.Client.CoreV1().Pods(appNamespace).UpdateStatus(ctx, p, metav1.UpdateOptions{}); err != nil && !apierrors.IsConflict(err) {
			t.Fatalf("marking pod %s running: %v", p.Name, err)
		}
	}
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

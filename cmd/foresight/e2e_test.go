package main

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	authenticationv1 "k8s.io/api/authentication/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"

	"github.com/foresightscale/foresight/internal/kubetest"
)

// TestServeBehindRealAPIServer registers `foresight serve` as the external
// metrics API of a real kube-apiserver (APIService + ExternalName Service,
// delegated authentication and authorization through that apiserver) and
// reads a prediction through the aggregation layer.
func TestServeBehindRealAPIServer(t *testing.T) {
	c := kubetest.Start(t)
	// A floor of 3 replicas for frontend makes the HPA's move visible
	// whatever the synthetic load is at this time of day.
	cfg := writeFile(t, "policy:\n  services:\n    frontend: {minReplicas: 3}\n")
	s := startServe(t, "--demo=false", "--config", cfg,
		"--lister-kubeconfig", c.Kubeconfig, "--authentication-kubeconfig", c.Kubeconfig, "--authorization-kubeconfig", c.Kubeconfig)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	_, err := c.Client.CoreV1().Services("default").Create(ctx, &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "foresight"},
		Spec:       corev1.ServiceSpec{Type: corev1.ServiceTypeExternalName, ExternalName: "localhost"},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	dyn, err := dynamic.NewForConfig(c.Config)
	if err != nil {
		t.Fatal(err)
	}
	apiService := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "apiregistration.k8s.io/v1",
		"kind":       "APIService",
		"metadata":   map[string]any{"name": "v1beta1.external.metrics.k8s.io"},
		"spec": map[string]any{
			"group": "external.metrics.k8s.io", "version": "v1beta1",
			"service":               map[string]any{"name": "foresight", "namespace": "default", "port": int64(s.securePort)},
			"insecureSkipTLSVerify": true, "groupPriorityMinimum": int64(100), "versionPriority": int64(100),
		},
	}}
	gvr := schema.GroupVersionResource{Group: "apiregistration.k8s.io", Version: "v1", Resource: "apiservices"}
	if _, err := dyn.Resource(gvr).Create(ctx, apiService, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}

	path := "/apis/external.metrics.k8s.io/v1beta1/namespaces/default/foresight_predicted_replicas?labelSelector=" + url.QueryEscape("service=frontend")
	var last error
	deadline := time.Now().Add(90 * time.Second)
	for time.Now().Before(deadline) {
		var raw []byte
		raw, last = c.Client.Discovery().RESTClient().Get().AbsPath("/").RequestURI(path).DoRaw(ctx)
		if last == nil {
			var list metricList
			if last = json.Unmarshal(raw, &list); last == nil && len(list.Items) == 1 && list.Items[0].MetricLabels["service"] == "frontend" {
				t.Logf("through the apiserver: %s = %s", list.Items[0].MetricName, list.Items[0].Value)
				hpaFollowsPrediction(ctx, t, c)
				return
			}
			last = fmt.Errorf("unexpected answer %s", raw)
		}
		time.Sleep(500 * time.Millisecond)
	}
	t.Fatalf("no prediction through the aggregation layer within 90s: %v", last)
}

// hpaFollowsPrediction creates a Deployment and a stock autoscaling/v2 HPA on
// foresight_predicted_replicas (External, AverageValue 1) and waits until the
// Deployment has the predicted replica count.
func hpaFollowsPrediction(ctx context.Context, t *testing.T, c *kubetest.Cluster) {
	t.Helper()
	labels := map[string]string{"app": "frontend"}
	one := int32(1)
	if _, err := c.Client.AppsV1().Deployments("default").Create(ctx, &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "frontend"},
		Spec: appsv1.DeploymentSpec{
			Replicas: &one,
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "frontend", Image: "example.invalid/frontend:1"}}},
			},
		},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Client.AutoscalingV2().HorizontalPodAutoscalers("default").Create(ctx, &autoscalingv2.HorizontalPodAutoscaler{
		ObjectMeta: metav1.ObjectMeta{Name: "frontend"},
		Spec: autoscalingv2.HorizontalPodAutoscalerSpec{
			ScaleTargetRef: autoscalingv2.CrossVersionObjectReference{APIVersion: "apps/v1", Kind: "Deployment", Name: "frontend"},
			MinReplicas:    &one,
			MaxReplicas:    20,
			Metrics: []autoscalingv2.MetricSpec{{
				Type: autoscalingv2.ExternalMetricSourceType,
				External: &autoscalingv2.ExternalMetricSource{
					Metric: autoscalingv2.MetricIdentifier{
						Name:     "foresight_predicted_replicas",
						Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"service": "frontend"}},
					},
					Target: autoscalingv2.MetricTarget{Type: autoscalingv2.AverageValueMetricType, AverageValue: resource.NewQuantity(1, resource.DecimalSI)},
				},
			}},
		},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	var replicas int32
	var predicted string
	for time.Since(start) < 90*time.Second {
		d, err := c.Client.AppsV1().Deployments("default").Get(ctx, "frontend", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		replicas = *d.Spec.Replicas
		hpa, err := c.Client.AutoscalingV2().HorizontalPodAutoscalers("default").Get(ctx, "frontend", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if len(hpa.Status.CurrentMetrics) == 1 && hpa.Status.CurrentMetrics[0].External != nil {
			// AverageValue over current replicas: predicted = value × replicas.
			v := hpa.Status.CurrentMetrics[0].External.Current.AverageValue
			predicted = v.String()
			if replicas >= 3 && hpa.Status.DesiredReplicas == replicas && v.MilliValue() == 1000 {
				t.Logf("the stock HPA scaled the Deployment 1 → %d on Foresight's prediction in %v", replicas, time.Since(start).Round(time.Second))
				return
			}
		}
		time.Sleep(time.Second)
	}
	t.Fatalf("HPA did not settle on the prediction within 90s: deployment at %d replicas, HPA average value %s", replicas, predicted)
}

// TestServeDelegatesAuthToRealAPIServer talks to Foresight directly and
// checks its delegated authentication and authorization through the real
// apiserver: no credentials and a ServiceAccount without RBAC for
// external.metrics.k8s.io are refused. (Authorised reads through the
// aggregation layer are TestServeBehindRealAPIServer's.)
func TestServeDelegatesAuthToRealAPIServer(t *testing.T) {
	c := kubetest.Start(t)
	s := startServe(t, "--demo=false",
		"--lister-kubeconfig", c.Kubeconfig, "--authentication-kubeconfig", c.Kubeconfig, "--authorization-kubeconfig", c.Kubeconfig)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if _, err := c.Client.CoreV1().ServiceAccounts("default").Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "nobody"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	expiry := int64(600)
	tr, err := c.Client.CoreV1().ServiceAccounts("default").CreateToken(ctx, "nobody",
		&authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: &expiry}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	insecure := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}} // #nosec: Foresight's self-signed serving cert in a test
	metric := s.secure + "/apis/external.metrics.k8s.io/v1beta1/namespaces/default/foresight_predicted_replicas"
	status := func(token string) (int, error) {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, metric, nil)
		if err != nil {
			return 0, err
		}
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := insecure.Do(req)
		if err != nil {
			return 0, err
		}
		resp.Body.Close()
		return resp.StatusCode, nil
	}
	waitFor(t, "foresight serving with delegated auth", func() error {
		code, err := status(tr.Status.Token)
		if err == nil && code != http.StatusForbidden {
			err = fmt.Errorf("service account without RBAC: status %d, want 403", code)
		}
		return err
	})
	if code, err := status(""); err != nil || (code != http.StatusUnauthorized && code != http.StatusForbidden) {
		t.Errorf("no credentials: status %d, %v; want 401 or 403", code, err)
	}
}

package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
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
	s := startServe(t, "--demo=false",
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
				return
			}
			last = fmt.Errorf("unexpected answer %s", raw)
		}
		time.Sleep(500 * time.Millisecond)
	}
	t.Fatalf("no prediction through the aggregation layer within 90s: %v", last)
}

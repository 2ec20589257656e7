package kubetest

import (
	"context"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// TestControlPlaneRunsDeployments starts the control plane and checks that
// the apiserver serves and the controller-manager turns a Deployment into a
// ReplicaSet (its pods stay Pending: there is no kubelet).
func TestControlPlaneRunsDeployments(t *testing.T) {
	c := Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	labels := map[string]string{"app": "web"}
	_, err := c.Client.AppsV1().Deployments("default").Create(ctx, &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "web"},
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr(int32(2)),
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "web", Image: "example.invalid/web:1"}}},
			},
		},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		rs, err := c.Client.AppsV1().ReplicaSets("default").List(ctx, metav1.ListOptions{})
		if err == nil && len(rs.Items) == 1 && rs.Items[0].Spec.Replicas != nil && *rs.Items[0].Spec.Replicas == 2 {
			return
		}
		time.Sleep(250 * time.Millisecond)
	}
	t.Fatal("the controller-manager created no ReplicaSet for the Deployment within 60s")
}

func ptr[T any](v T) *T { return &v }

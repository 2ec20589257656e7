package store

import (
	"context"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"
)

func TestConfigMapSaveShiftsHistory(t *testing.T) {
	ctx := context.Background()
	client := fake.NewClientset()
	c := &ConfigMap{Client: client, Namespace: "shop", Name: "shop-model", Keep: 3}
	if files, v, err := c.Current(ctx); err != nil || files != nil || v != "" {
		t.Fatalf("empty store: %v %q %v", files, v, err)
	}
	for i, tag := range []string{"a", "b", "c", "d"} {
		if _, err := c.Save(ctx, files(tag), t0.Add(time.Duration(i)*time.Hour)); err != nil {
			t.Fatal(err)
		}
	}
	got, version, err := c.Current(ctx)
	if err != nil || string(got["manifest.json"]) != `{"tag":"d"}` || string(got["model.onnx"]) != "onnx d" || version != "20261206T025959Z" {
		t.Fatalf("current %q %q version %q (%v)", got["manifest.json"], got["model.onnx"], version, err)
	}
	for i, want := range map[int]string{1: `{"tag":"c"}`, 2: `{"tag":"b"}`} {
		cm, err := client.CoreV1().ConfigMaps("shop").Get(ctx, c.PreviousName(i), metav1.GetOptions{})
		if err != nil || cm.Data["manifest.json"] != want || cm.Labels[StoreLabel] != "shop-model" {
			t.Errorf("%s: %v %v", c.PreviousName(i), cm, err)
		}
	}
	if _, err := client.CoreV1().ConfigMaps("shop").Get(ctx, c.PreviousName(3), metav1.GetOptions{}); err == nil {
		t.Error("a fourth version was kept with Keep 3")
	}
	cm, _ := client.CoreV1().ConfigMaps("shop").Get(ctx, "shop-model", metav1.GetOptions{})
	if len(cm.BinaryData["model.onnx"]) == 0 || cm.Data["model.onnx"] != "" {
		t.Error("model.onnx not stored as binary data")
	}
	if names := c.Names(); strings.Join(names, ",") != "shop-model,shop-model-prev-1,shop-model-prev-2" {
		t.Errorf("names %v", names)
	}
}

func TestConfigMapRefusesAModelTooLarge(t *testing.T) {
	client := fake.NewClientset()
	c := &ConfigMap{Client: client, Namespace: "shop", Name: "m", Keep: 2}
	big := map[string][]byte{"model.onnx": make([]byte, MaxConfigMapBytes)}
	if _, err := c.Save(context.Background(), big, t0); err == nil || !strings.Contains(err.Error(), "use a directory store") {
		t.Fatalf("error %v", err)
	}
	if list, _ := client.CoreV1().ConfigMaps("shop").List(context.Background(), metav1.ListOptions{}); len(list.Items) != 0 {
		t.Errorf("a refused save wrote %d objects", len(list.Items))
	}
}

func TestParseConfigMapRef(t *testing.T) {
	tests := []struct {
		ref, ns, name string
		ok            bool
		err           string
	}{
		{"/var/lib/models", "", "", false, ""},
		{"configmap:shop/shop-model", "shop", "shop-model", true, ""},
		{"configmap:shop-model", "default", "shop-model", true, ""},
		{"configmap:", "", "", true, "is \"configmap:NAMESPACE/NAME\""},
		{"configmap:Shop/x", "", "", true, "namespace"},
		{"configmap:shop/a/b", "", "", true, "is \"configmap:NAMESPACE/NAME\""},
		{"configmap:shop/" + strings.Repeat("x", 250), "", "", true, "-prev-N suffix"},
	}
	for _, tc := range tests {
		ns, name, ok, err := ParseConfigMapRef(tc.ref, "default")
		if ok != tc.ok || (tc.err == "" && (err != nil || ns != tc.ns || name != tc.name)) || (tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err))) {
			t.Errorf("%q: %q %q %v %v", tc.ref, ns, name, ok, err)
		}
	}
}

func TestConfigMapRecordDecision(t *testing.T) {
	ctx := context.Background()
	client := fake.NewClientset()
	c := &ConfigMap{Client: client, Namespace: "shop", Name: "m", Keep: 2}
	// An empty store: nothing to record on, and no error.
	if err := c.RecordDecision(ctx, []byte(`{"promote":false}`), false, "kept", t0); err != nil {
		t.Fatal(err)
	}
	if last, err := c.LastDecision(ctx); err != nil || last != nil {
		t.Errorf("LastDecision of an empty store = %q, %v", last, err)
	}
	if _, err := c.Save(ctx, files("a"), t0); err != nil {
		t.Fatal(err)
	}
	if err := c.RecordDecision(ctx, []byte(`{"promote":true}`), true, strings.Repeat("x", 2000), t0); err != nil {
		t.Fatal(err)
	}
	cm, _ := client.CoreV1().ConfigMaps("shop").Get(ctx, "m", metav1.GetOptions{})
	if cm.Annotations[DecisionAnnotation] != `{"promote":true}` || cm.Annotations[VersionAnnotation] == "" {
		t.Errorf("annotations %v", cm.Annotations)
	}
	if last, err := c.LastDecision(ctx); err != nil || string(last) != `{"promote":true}` {
		t.Errorf("LastDecision = %q, %v", last, err)
	}
	evs, _ := client.EventsV1().Events("shop").List(ctx, metav1.ListOptions{})
	if len(evs.Items) != 1 || evs.Items[0].Reason != "ModelPromoted" || evs.Items[0].Regarding.Name != "m" || len(evs.Items[0].Note) > 1024 {
		t.Errorf("events %+v", evs.Items)
	}
}

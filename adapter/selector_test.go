package adapter

import (
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
)

// TestLabelSelectorEcho: the selector echoed in a custom-metrics answer
// selects exactly what the request's did (found by FuzzSelector: `!=` was
// echoed as "everything", and of two `service=` requirements only the last
// was kept).
func TestLabelSelectorEcho(t *testing.T) {
	sets := []labels.Set{
		{LabelService: "frontend", LabelHorizon: "120s", LabelModel: "gru-v1"},
		{LabelService: "cartservice", LabelHorizon: "120s", LabelModel: "gru-v1"},
		{LabelService: "frontend", LabelHorizon: "60s"},
	}
	for _, raw := range []string{
		"service=frontend", "service!=frontend", "service notin (frontend,adservice)", "service in (frontend,cartservice)",
		"service=frontend,service=cartservice", "service=frontend,service==frontend", "model", "!model", "service=frontend,horizon!=60s",
	} {
		sel, err := labels.Parse(raw)
		if err != nil {
			t.Fatalf("labels.Parse(%q): %v", raw, err)
		}
		echo := labelSelector(sel)
		if echo == nil {
			t.Errorf("%q: echoed as everything", raw)
			continue
		}
		back, err := metav1.LabelSelectorAsSelector(echo)
		if err != nil {
			t.Fatalf("%q: echo %v does not convert back: %v", raw, echo, err)
		}
		for _, set := range sets {
			if back.Matches(set) != sel.Matches(set) {
				t.Errorf("%q: echoed as %v, which matches %v: %v, want %v", raw, echo, set, back.Matches(set), sel.Matches(set))
			}
		}
	}
	if echo := labelSelector(labels.Everything()); echo != nil {
		t.Errorf("everything echoed as %v, want nil", echo)
	}
}

// TestServiceFromSelectorConflict: a metric selector naming two services
// selects none; it is refused rather than answered with the last one's value.
func TestServiceFromSelectorConflict(t *testing.T) {
	for _, tt := range []struct {
		raw, want string
		ok        bool
	}{
		{"service=cartservice", "cartservice", true},
		{"service=cartservice,service==cartservice", "cartservice", true},
		{"service=frontend,service=cartservice", "", false},
		{"", "frontend", true},
	} {
		sel, err := labels.Parse(tt.raw)
		if err != nil {
			t.Fatal(err)
		}
		got, err := serviceFromSelector(sel, "frontend")
		if (err == nil) != tt.ok || got != tt.want {
			t.Errorf("serviceFromSelector(%q) = %q, %v; want %q, ok %v", tt.raw, got, err, tt.want, tt.ok)
		}
	}
	// The refusal quotes a prefix, not a selector of kilobytes.
	sel, err := labels.Parse(hugeSelector(6000))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := serviceFromSelector(sel, "frontend"); err == nil || len(err.Error()) > 400 || !strings.Contains(err.Error(), "bytes)") {
		t.Errorf("error of %d bytes, want a short one naming the length: %.300v", len(err.Error()), err)
	}
}

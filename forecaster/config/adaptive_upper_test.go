package config

import (
	"strings"
	"testing"
)

// TestParseAdaptiveUpper: policy.adaptiveUpper is off unless a policy block
// turns it on, at the top level and per application (an application's
// policy block replaces the top-level one, so an omitted key is the
// default, false, whatever the top level says).
func TestParseAdaptiveUpper(t *testing.T) {
	tests := []struct {
		name    string
		yaml    string
		want    map[string]bool // per application name
		wantErr string
	}{
		{name: "default", yaml: "namespace: shop\n", want: map[string]bool{"shop": false}},
		{name: "top level off", yaml: "namespace: shop\npolicy:\n  adaptiveUpper: false\n", want: map[string]bool{"shop": false}},
		{name: "top level on", yaml: "namespace: shop\npolicy: {adaptiveUpper: true}\n", want: map[string]bool{"shop": true}},
		{name: "per application", yaml: `
policy:
  adaptiveUpper: true
apps:
  - {name: a, namespace: a}
  - {name: b, namespace: b, policy: {capacityPerPod: 5}}
  - {name: c, namespace: c, policy: {adaptiveUpper: true}}
`, want: map[string]bool{"a": true, "b": false, "c": true}},
		{name: "not a bool", yaml: "policy:\n  adaptiveUpper: sometimes\n", wantErr: "policy.adaptiveUpper: cannot unmarshal"},
		{name: "not a bool per application", yaml: "apps:\n  - {name: a, namespace: a, policy: {adaptiveUpper: 0.9}}\n", wantErr: "apps[0].policy.adaptiveUpper: cannot unmarshal"},
		{name: "misspelt", yaml: "policy:\n  adaptiveupper: false\n", wantErr: "policy.adaptiveupper: unknown key"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, err := Parse([]byte(tc.yaml))
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error = %v, want one containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			got := map[string]bool{}
			for _, a := range c.Applications() {
				got[a.Name] = a.Policy.AdaptiveUpper
			}
			for name, want := range tc.want {
				if v, ok := got[name]; !ok || v != want {
					t.Errorf("application %s: adaptiveUpper %v (present %v), want %v", name, v, ok, want)
				}
			}
		})
	}
}

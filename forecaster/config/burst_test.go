package config

import (
	"strings"
	"testing"

	"github.com/foresightscale/foresight/forecaster/policy"
)

// TestParseBurst: policy.burst is on with its defaults unless a policy
// block changes it; setting one field keeps the others' defaults, and bad
// values are refused with the field's name.
func TestParseBurst(t *testing.T) {
	on := policy.BurstConfig{Enabled: true, Quantile: 0.75, Steps: 20}
	tests := []struct {
		name    string
		yaml    string
		want    map[string]policy.BurstConfig // per application name
		wantErr string
	}{
		{name: "default", yaml: "namespace: shop\n", want: map[string]policy.BurstConfig{"shop": on}},
		{name: "off", yaml: "namespace: shop\npolicy:\n  burst: {enabled: false}\n", want: map[string]policy.BurstConfig{"shop": {Quantile: 0.75, Steps: 20}}},
		{name: "one field", yaml: "namespace: shop\npolicy:\n  burst: {quantile: 0.9}\n", want: map[string]policy.BurstConfig{"shop": {Enabled: true, Quantile: 0.9, Steps: 20}}},
		{name: "per application", yaml: `
policy:
  burst: {steps: 40}
apps:
  - {name: a, namespace: a}
  - {name: b, namespace: b, policy: {capacityPerPod: 5}}
  - {name: c, namespace: c, policy: {burst: {enabled: false}}}
`, want: map[string]policy.BurstConfig{"a": {Enabled: true, Quantile: 0.75, Steps: 40}, "b": on, "c": {Quantile: 0.75, Steps: 20}}},
		{name: "quantile above 1", yaml: "policy:\n  burst: {quantile: 1.5}\n", wantErr: "policy.burst.quantile"},
		{name: "too few steps", yaml: "policy:\n  burst: {steps: 1}\n", wantErr: "policy.burst.steps"},
		{name: "misspelt", yaml: "policy:\n  burst: {quantil: 0.9}\n", wantErr: "unknown"},
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
			got := map[string]policy.BurstConfig{}
			for _, a := range c.Applications() {
				got[a.Name] = a.Policy.Burst
			}
			for name, want := range tc.want {
				if v, ok := got[name]; !ok || v != want {
					t.Errorf("application %s: burst %+v (present %v), want %+v", name, v, ok, want)
				}
			}
		})
	}
}

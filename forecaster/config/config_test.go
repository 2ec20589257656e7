package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestParse(t *testing.T) {
	tests := []struct {
		name    string
		yaml    string
		wantErr string // substring; empty means valid
		check   func(t *testing.T, c Config)
	}{
		{name: "empty file keeps defaults", yaml: "", check: func(t *testing.T, c Config) {
			if c.Namespace != "default" || c.Policy.MinReplicas != 1 || time.Duration(c.StaleAfter) != 5*time.Minute {
				t.Errorf("defaults lost: %+v", c)
			}
		}},
		{name: "prometheus source and policy", yaml: `
namespace: shop
interval: 15s
source:
  prometheus:
    url: http://prometheus.monitoring:9090
    tenant: team-a
policy:
  headroom: 0.3
  leadTime: 90s
  capacityPerPod: 40
  services:
    frontend: {capacityPerPod: 25, maxReplicas: 20}
`, check: func(t *testing.T, c Config) {
			if c.Source.Prometheus == nil || c.Source.Prometheus.Tenant != "team-a" {
				t.Fatalf("prometheus source = %+v", c.Source.Prometheus)
			}
			if time.Duration(c.Interval) != 15*time.Second || time.Duration(c.Policy.LeadTime) != 90*time.Second {
				t.Errorf("durations: %v %v", c.Interval, c.Policy.LeadTime)
			}
			if c.Policy.Services["frontend"].MaxReplicas != 20 || c.Policy.MaxReplicas != 100 {
				t.Errorf("policy = %+v", c.Policy)
			}
		}},
		{name: "misspelt key", yaml: "namespase: x\n", wantErr: "namespase"},
		{name: "bad duration", yaml: "interval: soon\n", wantErr: "soon"},
		{name: "two sources", yaml: "source:\n  csv: {path: a.csv}\n  synthetic: {seed: 2}\n", wantErr: "exactly one"},
		{name: "csv without path", yaml: "source:\n  csv: {replay: true}\n", wantErr: "source.csv.path"},
		{name: "bad prometheus url", yaml: "source:\n  prometheus: {url: 'not a url'}\n", wantErr: "source.prometheus"},
		{name: "timeout longer than interval", yaml: "interval: 10s\ntimeout: 20s\n", wantErr: "timeout"},
		{name: "missing fraction", yaml: "maxMissingFraction: 2\n", wantErr: "maxMissingFraction"},
		{name: "not yaml", yaml: "policy: [1, 2\n", wantErr: "yaml"},
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
			tc.check(t, c)
		})
	}
}

func TestLoadNamesTheFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "foresight.yaml")
	if err := os.WriteFile(path, []byte("namespace: ''\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := Load(path)
	if err == nil || !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), "namespace") {
		t.Errorf("error = %v, want one naming the file and the field", err)
	}
	if _, err := Load(filepath.Join(t.TempDir(), "absent.yaml")); err == nil {
		t.Error("want an error for a missing file")
	}
}

// TestDocumentedExampleParses keeps docs/foresight.example.yaml honest.
func TestDocumentedExampleParses(t *testing.T) {
	c, err := Load(filepath.Join("..", "..", "docs", "foresight.example.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if c.Source.Prometheus == nil || c.Policy.Services["frontend"].CapacityPerPod != 25 {
		t.Errorf("example parsed to %+v", c)
	}
	if err := c.Policy.Validate([]string{"frontend", "cartservice"}); err != nil {
		t.Errorf("example policy: %v", err)
	}
}

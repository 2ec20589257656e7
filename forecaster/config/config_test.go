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
		{name: "p99 latency query override", yaml: "source:\n  prometheus:\n    url: http://p:9090\n    queries: {latency_p99: 'max by (service) (p99{namespace=\"{{.Namespace}}\"})'}\n",
			check: func(t *testing.T, c Config) {
				if q := c.Source.Prometheus.Queries["latency_p99"]; q != `max by (service) (p99{namespace="{{.Namespace}}"})` {
					t.Errorf("latency_p99 query = %q", q)
				}
			}},
		{name: "broken p99 latency query", yaml: "source:\n  prometheus:\n    url: http://p:9090\n    queries: {latency_p99: '{{.Namespace'}\n", wantErr: "source.prometheus.queries.latency_p99"},
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

// TestParseNamesTheField is issue 12's defect 5: every decoding and
// validation error names the full key path, and settings that would flood
// Prometheus or never publish anything are refused at load.
func TestParseNamesTheField(t *testing.T) {
	const prom = "source:\n  prometheus:\n    url: http://127.0.0.1:9090\n"
	tests := []struct {
		name, yaml, want string
	}{
		// Durations: yaml.v2 reported these without a key.
		{"interval without a unit", "interval: 30\n", `interval: "30" is not a duration (use a unit, e.g. 30s)`},
		{"negative leadTime", "policy:\n  leadTime: -1m\n", "policy.leadTime: must be positive, got -1m"},
		{"negative prometheus timeout", prom + "    timeout: -1s\n", "source.prometheus.timeout: must not be negative"},
		{"negative timeout", "timeout: -1s\n", "timeout: must not be negative"},
		{"negative staleAfter", "staleAfter: -5m\n", "staleAfter: must not be negative"},
		{"latencyP99 without a unit", "policy:\n  services:\n    frontend: {latencyP99: 1}\n", `policy.services.frontend.latencyP99: "1" is not a duration`},
		{"dayLength unknown unit", "source:\n  synthetic: {dayLength: 5x}\n", `source.synthetic.dayLength: "5x" is not a duration: unknown unit`},
		{"maxInputAge out of range", "maxInputAge: 300y\n", `maxInputAge: "300y" is not a duration: duration out of range`},
		// Type errors had a line but no key.
		{"headroom not a number", "policy:\n  headroom: lots\n", "policy.headroom: cannot unmarshal !!str `lots` into float64"},
		{"service maxReplicas not a number", "policy:\n  services:\n    cart: {maxReplicas: many}\n", "policy.services.cart.maxReplicas: cannot unmarshal"},
		{"budget totalCPU not a number", "budgets:\n  - {name: shop, totalCPU: x}\n", "budgets[0].totalCPU: cannot unmarshal"},
		{"prometheus http type", prom + "    http: {tls_config: {insecure_skip_verify: 3}}\n", "source.prometheus.http.tls_config.insecure_skip_verify: cannot unmarshal"},
		{"misspelt nested key", prom + "    timeuot: 1s\n", "source.prometheus.timeuot: unknown key"},
		{"prometheus cross-field check", prom + "    http: {basic_auth: {username: a}, bearer_token: b}\n", "source.prometheus.http: at most one of"},
		// Bounds.
		{"interval 1ms floods", "interval: 1ms\n", "interval: must be 0 (the model's step) or between 1s and 1h, got 1ms"},
		{"interval 2h", "interval: 2h\n", "interval: must be 0"},
		{"timeout 1ms", "timeout: 1ms\n", "timeout: must be 0 (80% of the interval) or at least 100ms"},
		{"timeout longer than interval", "interval: 10s\ntimeout: 20s\n", "timeout: 20s is longer than the interval 10s"},
		{"timeout over an hour with the model's step", "timeout: 2h\n", "timeout: must be at most 1h"},
		{"staleAfter shorter than interval publishes nothing", "interval: 30s\nstaleAfter: 10s\n", "staleAfter: 10s must be longer than the interval 30s"},
		{"staleAfter equal to interval", "interval: 30s\nstaleAfter: 30s\n", "staleAfter: 30s must be longer than the interval"},
		{"staleAfter over a day", "staleAfter: 25h\n", "staleAfter: must be at most 1d"},
		{"maxInputAge over an hour", "maxInputAge: 2h\n", "maxInputAge: must be 0 (automatic) or at most 1h"},
		{"modelReload 1ms", "modelReload: 1ms\n", "modelReload: must be 0 (no polling) or between 1s and 1h, got 1ms"},
		{"modelReload a day", "modelReload: 1d\n", "modelReload: must be 0 (no polling) or between 1s and 1h, got 1d"},
		{"modelReload negative", "modelReload: -10s\n", "modelReload: must not be negative"},
		{"maxMissingFraction NaN", "maxMissingFraction: .nan\n", "maxMissingFraction: must be in (0,1]"},
		{"maxMissingFraction 0", "maxMissingFraction: 0\n", "maxMissingFraction: must be in (0,1]"},
		{"namespace with a quote", "namespace: 'Bad\"NS'\n", `namespace: "Bad\"NS" is not a Kubernetes namespace name`},
		{"namespace upper case", "namespace: Shop\n", "namespace: \"Shop\" is not a Kubernetes namespace name"},
		{"namespace too long", "namespace: " + strings.Repeat("a", 64) + "\n", "namespace: "},
		{"model blank", "model: '  '\n", "model: "},
		{"model with a newline", "model: \"a\\nb\"\n", "model: "},
		{"dayLength too short", "source:\n  synthetic: {dayLength: 1s}\n", "source.synthetic.dayLength: must be 0 (24h) or between 1m and"},
		{"prometheus url", "source:\n  prometheus: {url: 'not a url'}\n", "source.prometheus.url"},
		// The policy's bounds are checked at load, before the model.
		{"negative per-service maxReplicas", "policy:\n  services:\n    frontend: {maxReplicas: -3}\n", "policy.services.frontend.maxReplicas"},
		{"leadTime 100y", "policy:\n  leadTime: 100y\n", "policy.leadTime: must be at most 1d, got 100y"},
		{"capacityPerPod 1e-300", "policy:\n  capacityPerPod: 1e-300\n", "policy.capacityPerPod: must be a request rate between 1e-06 and 1e+09 req/s, got 1e-300"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]byte(tc.yaml))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error = %v, want one containing %q", err, tc.want)
			}
		})
	}
}

// TestModelReloadDefault: polling is on unless the file turns it off.
func TestModelReloadDefault(t *testing.T) {
	for y, want := range map[string]time.Duration{"namespace: a\n": DefaultModelReload, "modelReload: 0s\n": 0, "modelReload: 1m\n": time.Minute} {
		c, err := Parse([]byte(y))
		if err != nil {
			t.Fatal(err)
		}
		if got := time.Duration(c.ModelReload); got != want {
			t.Errorf("Parse(%q).ModelReload = %v, want %v", y, got, want)
		}
	}
}

// TestParseAcceptsBounds: the edges of every bound are settings, not errors.
func TestParseAcceptsBounds(t *testing.T) {
	for _, y := range []string{
		"interval: 0s\n",
		"interval: 1s\nstaleAfter: 2s\ntimeout: 100ms\n",
		"interval: 1h\ntimeout: 1h\nstaleAfter: 1d\n",
		"staleAfter: 0s\n", // the default, 5m
		"maxInputAge: 0s\n",
		"maxInputAge: 1h\n",
		"maxMissingFraction: 1\n",
		"modelReload: 0s\n", // no polling
		"modelReload: 1s\n",
		"modelReload: 1h\n",
		"namespace: a\n",
		"namespace: " + strings.Repeat("a", 63) + "\n",
		"namespace: shop-2\n",
		"model: /models/boutique\n",
		"source:\n  synthetic: {dayLength: 1m}\n",
	} {
		if _, err := Parse([]byte(y)); err != nil {
			t.Errorf("Parse(%q): %v", y, err)
		}
	}
}

// TestParseReportsEveryBadDuration: yaml.v2 stops at the first error of a
// type's own decoder; each bad key is reported, by its path.
func TestParseReportsEveryBadDuration(t *testing.T) {
	_, err := Parse([]byte("interval: 30\npolicy:\n  leadTime: -1m\nsource:\n  prometheus: {url: 'http://127.0.0.1:9090', timeout: -1s}\n"))
	for _, want := range []string{"interval: ", "policy.leadTime: ", "source.prometheus.timeout: "} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error = %v, want one naming %q", err, want)
		}
	}
}

func TestLoadRefusesHugeFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "foresight.yaml")
	if err := os.WriteFile(path, []byte("# "+strings.Repeat("x", maxFileSize)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(path); err == nil || !strings.Contains(err.Error(), "larger than") {
		t.Errorf("error = %v, want one saying the file is too large", err)
	}
}

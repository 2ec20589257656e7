package config

import (
	"fmt"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

// FuzzParse: no input makes Parse panic; a refused input gets a non-empty
// error and no configuration; an accepted one is within every bound.
func FuzzParse(f *testing.F) {
	example, err := os.ReadFile(filepath.Join("..", "..", "docs", "foresight.example.yaml"))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(example)
	for _, seed := range []string{
		"",
		// Issue 12, defect 5.
		"interval: 30s\nstaleAfter: 10s\n",
		"interval: 1ms\n",
		"policy:\n  services:\n    frontend: {maxReplicas: -3}\n",
		"policy:\n  leadTime: 100y\n",
		"namespace: 'Bad\"NS'\n",
		"interval: 30\n",
		"policy:\n  leadTime: -1m\n",
		"source:\n  prometheus: {url: 'http://127.0.0.1:9090', timeout: -1s}\n",
		// Defect 2's policy.
		"policy:\n  capacityPerPod: 1e-300\n",
		"policy:\n  capacityPerPod: 10\n  maxReplicas: 100\n  services:\n    frontend: {podRate: 100, latencyP99: 100ms, maxReplicas: 50}\n",
		// Shapes and types.
		"- 1\n",
		"policy: [1, 2\n",
		"budgets:\n  - {name: shop, totalCPU: x, services: {a: {cpuRequest: 1}}}\n",
		"source:\n  prometheus: {url: 'http://127.0.0.1:9090', http: {basic_auth: {username: a}, bearer_token: b}}\n",
		"a: &a [*a]\n",
		"interval: &d 1s\ntimeout: *d\nstaleAfter: 2s\nmaxInputAge: 1h\n",
		"maxMissingFraction: .nan\n",
		"source:\n  synthetic: {dayLength: 5x, seed: 2}\n",
		"source:\n  csv: {path: a.csv}\n  synthetic: {seed: 2}\n",
		// Found by this target: yaml.v2 quotes a long value cut in the
		// middle of a character.
		"000000\u065c000",
		"policy:\n  services:\n    " + strings.Repeat("é", 50) + ": {maxReplicas: x}\n",
		// Applications.
		"apps:\n  - {name: a, namespace: shop, services: [x, y]}\n  - {name: b, namespace: shop, services: [z]}\n",
		"apps:\n  - {name: a, namespace: a, policy: {minReplicas: 2}}\n  - {name: a, namespace: 'b,c'}\n",
		"source: {prometheus: {url: 'http://127.0.0.1:9090'}}\napps:\n  - {name: a, namespace: a, queries: {requests: 'x{namespace=\"{{.Namespace}}\"}'}}\n",
		"source: {prometheus: {url: 'http://127.0.0.1:9090', queries: {latency_p99: 'p99{namespace=\"{{.Namespace}}\"}'}}}\napps:\n  - {name: a, namespace: a, queries: {latency_p99: '{{.Nope}}'}}\n",
		"apps: []\n",
		"policy:\n  adaptiveUpper: false\n",
		"apps:\n  - {name: a, namespace: a, policy: {adaptiveUpper: 0.9}}\n",
		"apps:\n  - {name: a, namespace: a, budgets: [{name: b, resourceQuota: {namespace: s, name: q}, services: {x: {cpuRequest: 1}}}]}\n  - {name: b, namespace: b, budgets: [{name: b, resourceQuota: {namespace: s, name: q}, services: {y: {cpuRequest: 1}}}]}\n",
		// Learning the model.
		"model: auto\nmodelStore: /var/lib/foresight\nretrain: {every: 24h, history: 7d, minHistory: 6h}\n",
		"model: auto\nmodelStore: configmap:x/y\nretrain: {every: 1ms, step: 0s, epochs: -1}\n",
		"retrain: {every: 1h}\n",
		"apps:\n  - {name: a, namespace: a, model: auto, modelStore: /s, retrain: {every: 1h, timeout: 2h}}\n",
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		// A hang is a finding too, but the fuzzer only reports crashes:
		// crash the worker so that it saves the input.
		watchdog := time.AfterFunc(parseDeadline, func() { panic(fmt.Sprintf("Parse took over %v on %q", parseDeadline, b)) })
		defer watchdog.Stop()
		c, err := Parse(b)
		if err != nil {
			if err.Error() == "" || !utf8.ValidString(err.Error()) && utf8.Valid(b) {
				t.Fatalf("error %q is empty or garbles valid UTF-8 input", err)
			}
			if !reflect.DeepEqual(c, Config{}) {
				t.Fatalf("refused input returned a configuration: %+v", c)
			}
			return
		}
		if err := c.Validate(); err != nil {
			t.Fatalf("accepted configuration fails Validate: %v", err)
		}
		if err := c.Policy.ValidateSettings(); err != nil {
			t.Fatalf("accepted policy fails ValidateSettings: %v", err)
		}
		checkBounds(t, c)
		checkApps(t, c)
		checkRetrain(t, c)
	})
}

// parseDeadline is far above what Parse takes on a file of a fuzzer's size
// (well under a millisecond), so a slow machine cannot trip it.
const parseDeadline = 10 * time.Second

// checkBounds restates the bounds independently of Validate, so that a
// change to one without the other fails here.
func checkBounds(t *testing.T, c Config) {
	t.Helper()
	interval, timeout, stale := time.Duration(c.Interval), time.Duration(c.Timeout), time.Duration(c.StaleAfter)
	if interval != 0 && (interval < time.Second || interval > time.Hour) {
		t.Errorf("accepted interval %v", interval)
	}
	if timeout < 0 || (timeout > 0 && timeout < 100*time.Millisecond) || (interval > 0 && timeout > interval) || timeout > time.Hour {
		t.Errorf("accepted timeout %v with interval %v", timeout, interval)
	}
	if stale < 0 || stale > 24*time.Hour || (stale > 0 && interval > 0 && stale <= interval) {
		t.Errorf("accepted staleAfter %v with interval %v", stale, interval)
	}
	if age := time.Duration(c.MaxInputAge); age < 0 || age > time.Hour {
		t.Errorf("accepted maxInputAge %v", age)
	}
	if math.IsNaN(c.MaxMissingFraction) || c.MaxMissingFraction <= 0 || c.MaxMissingFraction > 1 {
		t.Errorf("accepted maxMissingFraction %v", c.MaxMissingFraction)
	}
	if n := c.Namespace; n == "" || len(n) > 63 || strings.Trim(n, "abcdefghijklmnopqrstuvwxyz0123456789-") != "" || n[0] == '-' || n[len(n)-1] == '-' {
		t.Errorf("accepted namespace %q", n)
	}
	sources := 0
	for _, set := range []bool{c.Source.Prometheus != nil, c.Source.CSV != nil, c.Source.Synthetic != nil} {
		if set {
			sources++
		}
	}
	if sources > 1 {
		t.Errorf("accepted %d sources", sources)
	}
	if c.Source.CSV != nil && c.Source.CSV.Path == "" {
		t.Error("accepted an empty source.csv.path")
	}
	if p := c.Source.Prometheus; p != nil && (p.URL == "" || p.Timeout < 0) {
		t.Errorf("accepted prometheus %+v", p)
	}
	pol := c.Policy
	if pol.MinReplicas < 1 || pol.MaxReplicas < pol.MinReplicas || pol.MaxReplicas > 1_000_000 {
		t.Errorf("accepted policy replicas [%d, %d]", pol.MinReplicas, pol.MaxReplicas)
	}
	if lead := time.Duration(pol.LeadTime); lead <= 0 || lead > 24*time.Hour {
		t.Errorf("accepted policy.leadTime %v", lead)
	}
	rates := []float64{pol.CapacityPerPod}
	for name, sc := range pol.Services {
		rates = append(rates, sc.CapacityPerPod, sc.PodRate)
		if sc.MinReplicas < 0 || sc.MaxReplicas < 0 || sc.MaxReplicas > 1_000_000 {
			t.Errorf("accepted policy.services.%s replicas [%d, %d]", name, sc.MinReplicas, sc.MaxReplicas)
		}
	}
	for _, r := range rates {
		if r != 0 && !(r >= 1e-6 && r <= 1e9) {
			t.Errorf("accepted a request rate of %v", r)
		}
	}
}

// checkApps restates the rules of an accepted apps list: at least one
// application, each with a valid name and namespace, names unique, and
// applications sharing a namespace owning disjoint, listed services.
func checkApps(t *testing.T, c Config) {
	t.Helper()
	apps := c.Applications()
	if len(apps) == 0 || len(apps) > 100 {
		t.Fatalf("accepted %d applications", len(apps))
	}
	names := map[string]bool{}
	owners := map[string]map[string]bool{} // namespace -> owned services
	shared := map[string]int{}
	for _, a := range apps {
		shared[a.Namespace]++
	}
	for _, a := range apps {
		if a.Name == "" || names[a.Name] {
			t.Errorf("accepted application name %q (empty or twice)", a.Name)
		}
		names[a.Name] = true
		if n := a.Namespace; n == "" || len(n) > 63 || strings.Trim(n, "abcdefghijklmnopqrstuvwxyz0123456789-") != "" || n[0] == '-' || n[len(n)-1] == '-' {
			t.Errorf("accepted application namespace %q", n)
		}
		if a.Policy.MinReplicas < 1 || a.Policy.MaxReplicas < a.Policy.MinReplicas {
			t.Errorf("accepted application %s policy replicas [%d, %d]", a.Name, a.Policy.MinReplicas, a.Policy.MaxReplicas)
		}
		if shared[a.Namespace] < 2 {
			continue
		}
		if len(a.Services) == 0 {
			t.Errorf("accepted application %s without services in shared namespace %s", a.Name, a.Namespace)
		}
		if owners[a.Namespace] == nil {
			owners[a.Namespace] = map[string]bool{}
		}
		for _, s := range a.Services {
			if owners[a.Namespace][s] {
				t.Errorf("accepted service %q owned twice in namespace %s", s, a.Namespace)
			}
			owners[a.Namespace][s] = true
		}
	}
	quotas := map[string]string{}
	for _, a := range apps {
		for _, b := range a.Budgets {
			if q := b.ResourceQuota; q != nil {
				key := q.Namespace + "/" + q.Name
				if other, ok := quotas[key]; ok && other != a.Name {
					t.Errorf("accepted quota %s budgeted by applications %s and %s", key, other, a.Name)
				}
				quotas[key] = a.Name
			}
		}
	}
	if len(c.Apps) > 0 && (c.Model != "" || len(c.Budgets) > 0) {
		t.Errorf("accepted apps beside a top-level model %q or %d budgets", c.Model, len(c.Budgets))
	}
}

// checkRetrain restates the model and retrain rules independently of
// validateModelKeys, for every application.
func checkRetrain(t *testing.T, c Config) {
	t.Helper()
	for _, a := range c.Applications() {
		if (a.Model == ModelAuto) != (a.ModelStore != "") {
			t.Errorf("app %s: accepted model %q with modelStore %q", a.Name, a.Model, a.ModelStore)
		}
		r := a.Retrain
		if r == nil {
			continue
		}
		if a.Model != ModelAuto {
			t.Errorf("app %s: accepted retrain with model %q", a.Name, a.Model)
		}
		every, history, minHistory := time.Duration(r.Every), time.Duration(r.History), time.Duration(r.MinHistory)
		timeout, step := time.Duration(r.Timeout), time.Duration(r.Step)
		if every < time.Minute || every > 90*24*time.Hour {
			t.Errorf("app %s: accepted retrain.every %v", a.Name, every)
		}
		if history <= 0 || history > 90*24*time.Hour || minHistory < 0 || minHistory > history {
			t.Errorf("app %s: accepted retrain history %v, minHistory %v", a.Name, history, minHistory)
		}
		if timeout < time.Minute && timeout != every || timeout > every {
			t.Errorf("app %s: accepted retrain.timeout %v with every %v", a.Name, timeout, every)
		}
		if step < time.Second || step > 24*time.Hour || history/step > 1_000_000 {
			t.Errorf("app %s: accepted retrain.step %v with history %v", a.Name, step, history)
		}
		if !(r.MaxLastValueRatio > 0 && r.MaxLastValueRatio <= 2) {
			t.Errorf("app %s: accepted retrain.maxLastValueRatio %v", a.Name, r.MaxLastValueRatio)
		}
		if r.Epochs < 0 || r.Epochs > 10000 {
			t.Errorf("app %s: accepted retrain.epochs %d", a.Name, r.Epochs)
		}
	}
}

package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/foresightscale/foresight/forecaster/source"
)

const twoApps = `
source:
  prometheus:
    url: http://prometheus.monitoring:9090
    tenant: team-a
    queries:
      latency: 'avg by (service) (lat{namespace="{{.Namespace}}"})'
policy:
  capacityPerPod: 40
apps:
  - name: shop
    namespace: shop
    model: /models/shop
  - name: bookinfo
    namespace: books
    services: [productpage, reviews]
    queries:
      requests: 'sum by (service) (rate(http_requests_total{namespace="{{.Namespace}}"}[2m]))'
    policy:
      capacityPerPod: 7
`

func TestParseApps(t *testing.T) {
	tests := []struct {
		name    string
		yaml    string
		wantErr []string // substrings; empty means valid
		check   func(t *testing.T, c Config)
	}{
		{name: "two applications", yaml: twoApps, check: func(t *testing.T, c Config) {
			apps := c.Applications()
			if len(apps) != 2 {
				t.Fatalf("%d applications, want 2", len(apps))
			}
			shop, books := apps[0], apps[1]
			if shop.Name != "shop" || shop.Namespace != "shop" || shop.Model != "/models/shop" || shop.Services != nil {
				t.Errorf("shop = %+v", shop)
			}
			if books.Name != "bookinfo" || books.Namespace != "books" || books.Model != "" || strings.Join(books.Services, ",") != "productpage,reviews" {
				t.Errorf("bookinfo = %+v", books)
			}
			// Shared settings reach both; overrides only their own.
			if shop.Source.Prometheus.Tenant != "team-a" || books.Source.Prometheus.Tenant != "team-a" {
				t.Errorf("tenant not shared: %q %q", shop.Source.Prometheus.Tenant, books.Source.Prometheus.Tenant)
			}
			if _, ok := shop.Source.Prometheus.Queries[source.Requests]; ok {
				t.Error("bookinfo's requests query leaked into shop")
			}
			if !strings.Contains(books.Source.Prometheus.Queries[source.Requests], "http_requests_total") {
				t.Errorf("bookinfo's requests query = %q", books.Source.Prometheus.Queries[source.Requests])
			}
			if books.Source.Prometheus.Queries[source.Latency] == "" || shop.Source.Prometheus.Queries[source.Latency] == "" {
				t.Error("the shared latency query is not in both applications")
			}
			if _, ok := c.Source.Prometheus.Queries[source.Requests]; ok {
				t.Error("an application's override changed the shared source")
			}
			if shop.Policy.CapacityPerPod != 40 {
				t.Errorf("shop capacityPerPod = %v, want the top-level 40", shop.Policy.CapacityPerPod)
			}
			// An application's policy replaces the block; its omitted keys
			// are the defaults, not invalid zeros.
			if books.Policy.CapacityPerPod != 7 || books.Policy.MinReplicas != 1 || books.Policy.MaxReplicas != 100 {
				t.Errorf("bookinfo policy = %+v", books.Policy)
			}
		}},
		{name: "no apps is one application named after its namespace", yaml: "namespace: shop\nmodel: /m\n", check: func(t *testing.T, c Config) {
			apps := c.Applications()
			if len(apps) != 1 || apps[0].Name != "shop" || apps[0].Namespace != "shop" || apps[0].Model != "/m" || apps[0].Services != nil {
				t.Fatalf("applications = %+v", apps)
			}
		}},
		{name: "two applications in one namespace with disjoint services", yaml: `
apps:
  - {name: a, namespace: shop, services: [frontend, cart]}
  - {name: b, namespace: shop, services: [ads]}
`, check: func(t *testing.T, c Config) {
			if apps := c.Applications(); len(apps) != 2 || apps[1].Services[0] != "ads" {
				t.Errorf("applications = %+v", apps)
			}
		}},
		{name: "empty list", yaml: "apps: []\n", wantErr: []string{"apps: empty list"}},
		{name: "top-level model beside apps", yaml: "model: /m\napps:\n  - {name: a, namespace: a}\n", wantErr: []string{"model: not used with apps; set apps[i].model"}},
		{name: "top-level namespace beside apps", yaml: "namespace: shop\napps:\n  - {name: a, namespace: a}\n", wantErr: []string{"namespace: not used with apps; set apps[i].namespace"}},
		{name: "budgets beside apps", yaml: "budgets:\n  - {name: b, totalCPU: 2, services: {a: {cpuRequest: 1}}}\napps:\n  - {name: a, namespace: a}\n", wantErr: []string{"budgets: not used with apps; set each application's apps[i].budgets"}},
		{name: "per-application budgets", yaml: `
apps:
  - name: a
    namespace: a
    budgets: [{name: b, resourceQuota: {namespace: a, name: q}, services: {x: {cpuRequest: 1}}}]
  - name: b
    namespace: b
    budgets: [{name: b, totalCPU: 4, services: {y: {cpuRequest: 0.5}}}]
`, check: func(t *testing.T, c Config) {
			apps := c.Applications()
			if len(apps[0].Budgets) != 1 || apps[0].Budgets[0].ResourceQuota == nil || apps[1].Budgets[0].TotalCPU != 4 {
				t.Errorf("budgets not per application: %+v / %+v", apps[0].Budgets, apps[1].Budgets)
			}
		}},
		{name: "two applications' budgets on one quota", yaml: `
apps:
  - name: a
    namespace: a
    budgets: [{name: b, resourceQuota: {namespace: shared, name: q}, services: {x: {cpuRequest: 1}}}]
  - name: b
    namespace: b
    budgets: [{name: c, resourceQuota: {namespace: shared, name: q}, services: {y: {cpuRequest: 1}}}]
`, wantErr: []string{"apps[1].budgets[0].resourceQuota: shared/q is also the quota of apps[0].budgets[0]"}},
		{name: "missing name and namespace", yaml: "apps:\n  - {model: /m}\n", wantErr: []string{"apps[0].name: must not be empty", "apps[0].namespace: must not be empty"}},
		{name: "name not a DNS label", yaml: "apps:\n  - {name: My_App, namespace: a}\n", wantErr: []string{`apps[0].name: "My_App" is not a DNS label`}},
		{name: "duplicate names", yaml: "apps:\n  - {name: a, namespace: x}\n  - {name: a, namespace: y}\n", wantErr: []string{`apps[1].name: "a" is also the name of apps[0]`}},
		{name: "bad namespace", yaml: "apps:\n  - {name: a, namespace: x}\n  - {name: b, namespace: Shop}\n", wantErr: []string{`apps[1].namespace: "Shop" is not a Kubernetes namespace`}},
		{name: "namespace list", yaml: "apps:\n  - {name: a, namespace: 'x,y'}\n", wantErr: []string{"apps[0].namespace", "list several applications under apps"}},
		{name: "top-level namespace list", yaml: "namespace: 'x,y'\n", wantErr: []string{"namespace:", "list several applications under apps"}},
		{name: "bad model path", yaml: "apps:\n  - {name: a, namespace: a, model: ' '}\n", wantErr: []string{"apps[0].model"}},
		{name: "shared namespace without services", yaml: "apps:\n  - {name: a, namespace: shop, services: [x]}\n  - {name: b, namespace: shop}\n",
			wantErr: []string{`apps[1].services: must be set: apps apps[0], apps[1] share namespace "shop"`}},
		{name: "shared namespace with overlapping services", yaml: "apps:\n  - {name: a, namespace: shop, services: [x, y]}\n  - {name: b, namespace: shop, services: [z, y]}\n",
			wantErr: []string{`apps[1].services: "y" is also a service of apps[0]`}},
		{name: "service listed twice", yaml: "apps:\n  - {name: a, namespace: a, services: [x, x]}\n", wantErr: []string{`apps[0].services[1]: "x" is listed twice`}},
		{name: "empty service list", yaml: "apps:\n  - {name: a, namespace: a, services: []}\n", wantErr: []string{"apps[0].services: empty list"}},
		{name: "blank service", yaml: "apps:\n  - {name: a, namespace: a, services: ['']}\n", wantErr: []string{"apps[0].services[0]"}},
		{name: "queries without prometheus", yaml: "apps:\n  - {name: a, namespace: a, queries: {requests: 'x'}}\n", wantErr: []string{"apps[0].queries: only for source.prometheus"}},
		{name: "query of an unknown feature", yaml: "source: {prometheus: {url: 'http://p:9090'}}\napps:\n  - {name: a, namespace: a, queries: {rps: 'x'}}\n", wantErr: []string{"apps[0].queries.rps"}},
		{name: "broken query template", yaml: "source: {prometheus: {url: 'http://p:9090'}}\napps:\n  - {name: a, namespace: a, queries: {requests: '{{.Nope}}'}}\n", wantErr: []string{"apps[0].queries.requests"}},
		{name: "p99 latency query", yaml: "source: {prometheus: {url: 'http://p:9090'}}\napps:\n  - {name: a, namespace: a, queries: {latency_p99: 'max by (service) (p99{namespace=\"{{.Namespace}}\"})'}}\n",
			check: func(t *testing.T, c Config) {
				if q := c.Applications()[0].Source.Prometheus.Queries[source.LatencyP99]; !strings.Contains(q, "p99{") {
					t.Errorf("latency_p99 query = %q", q)
				}
			}},
		{name: "broken p99 latency query", yaml: "source: {prometheus: {url: 'http://p:9090'}}\napps:\n  - {name: a, namespace: a, queries: {latency_p99: '{{.Nope}}'}}\n", wantErr: []string{"apps[0].queries.latency_p99"}},
		{name: "bad application policy", yaml: "apps:\n  - {name: a, namespace: a, policy: {minReplicas: 0, headroom: -1}}\n",
			wantErr: []string{"apps[0].policy.minReplicas", "apps[0].policy.headroom"}},
		{name: "misspelt application key", yaml: "apps:\n  - {name: a, namespase: a}\n", wantErr: []string{"apps[0].namespase: unknown key"}},
		{name: "misspelt application policy key", yaml: "apps:\n  - {name: a, namespace: a, policy: {minReplica: 2}}\n", wantErr: []string{"apps[0].policy.minReplica"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, err := Parse([]byte(tc.yaml))
			if len(tc.wantErr) > 0 {
				if err == nil {
					t.Fatalf("accepted; want an error containing %q", tc.wantErr)
				}
				for _, want := range tc.wantErr {
					if !strings.Contains(err.Error(), want) {
						t.Errorf("error = %v\nwant one containing %q", err, want)
					}
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

// TestDocumentedAppsExampleParses keeps the apps example of
// docs/configuration.md valid.
func TestDocumentedAppsExampleParses(t *testing.T) {
	doc, err := os.ReadFile(filepath.Join("..", "..", "docs", "configuration.md"))
	if err != nil {
		t.Fatal(err)
	}
	_, section, ok := strings.Cut(string(doc), "## Several applications")
	if !ok {
		t.Fatal(`docs/configuration.md has no "## Several applications" section`)
	}
	_, block, ok := strings.Cut(section, "```yaml\n")
	block, _, ok2 := strings.Cut(block, "```")
	if !ok || !ok2 {
		t.Fatal("the section has no yaml example")
	}
	c, err := Parse([]byte(block))
	if err != nil {
		t.Fatalf("the documented example is refused: %v\n%s", err, block)
	}
	if n := len(c.Applications()); n != 3 {
		t.Errorf("the documented example has %d applications, want 3", n)
	}
}

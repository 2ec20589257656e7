package discovery_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	v1 "github.com/prometheus/client_golang/api/prometheus/v1"

	"github.com/foresightscale/foresight/forecaster/discovery"
	"github.com/foresightscale/foresight/forecaster/source"
	"github.com/foresightscale/foresight/forecaster/synthetic"
	"github.com/foresightscale/foresight/forecaster/topology"
	"github.com/foresightscale/foresight/internal/meshtest"
	"github.com/foresightscale/foresight/internal/promtest"
	"github.com/foresightscale/foresight/internal/testenv"
)

// start is when the histories begin (years ago, as promtest expects); they
// last two hours and discovery looks at the last one.
var (
	start = time.Date(2025, 3, 1, 6, 0, 0, 0, time.UTC)
	end   = start.Add(2 * time.Hour)
)

const step = 30 * time.Second

func app(t testing.TB, flavour meshtest.Flavour, namespace string, g topology.Graph, seed uint64) meshtest.Options {
	t.Helper()
	cfg := synthetic.DefaultConfig()
	cfg.Services, cfg.Seed = nil, seed
	gen, err := synthetic.New(cfg, g)
	if err != nil {
		t.Fatal(err)
	}
	return meshtest.Options{Flavour: flavour, Namespace: namespace, Generator: gen, Graph: g, Start: start, End: end, Step: step}
}

func newAPI(t testing.TB, url string) v1.API {
	t.Helper()
	cfg := source.DefaultPrometheusConfig()
	cfg.URL = url
	a, err := source.NewPrometheusAPI(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func formatFloat(x float64) string { return strconv.FormatFloat(x, 'g', -1, 64) }

// checkRecovered: the same services and edges, fan-outs within 2 %.
func checkRecovered(t *testing.T, got *discovery.Result, want topology.Graph) {
	t.Helper()
	if !slices.Equal(got.Graph.Graph.Services, want.Services) {
		t.Fatalf("services\n got %q\nwant %q", got.Graph.Graph.Services, want.Services)
	}
	pairs := func(g topology.Graph) []string {
		var p []string
		for _, e := range g.Edges {
			p = append(p, e.Caller+"→"+e.Callee)
		}
		return p
	}
	if !slices.Equal(pairs(got.Graph.Graph), pairs(want)) {
		t.Fatalf("edges\n got %q\nwant %q", pairs(got.Graph.Graph), pairs(want))
	}
	worst := 0.0
	for i, e := range got.Graph.Graph.Edges {
		rel := math.Abs(e.FanOut-want.Edges[i].FanOut) / want.Edges[i].FanOut
		worst = max(worst, rel)
		if rel > 0.02 {
			t.Errorf("%s→%s: fan-out %v, want %v (±2%%)", e.Caller, e.Callee, e.FanOut, want.Edges[i].FanOut)
		}
	}
	if got.Cycle != "" {
		t.Errorf("cycle reported in an acyclic graph: %s", got.Cycle)
	}
	t.Logf("%s: %d services, %d edges, worst fan-out error %.2f%%", got.Mesh, len(want.Services), len(want.Edges), 100*worst)
}

// TestDiscoverRecoversTheGraph: one real Prometheus holding three
// applications in three namespaces, each exported by another mesh: Bookinfo
// with Istio, a 40-service graph with chains 3 deep with Linkerd, a small
// graph with the OpenTelemetry servicegraph connector. Discovery, with the
// mesh given or found automatically, recovers each graph exactly, keeps to
// its namespace, and fails clearly in a namespace without series.
func TestDiscoverRecoversTheGraph(t *testing.T) {
	layered := meshtest.Layered(40, 3, 1)
	small := meshtest.Layered(6, 3, 5)
	// A second Bookinfo-named application in another namespace with other
	// fan-outs, to show namespace filtering on identical names.
	otherBookinfo := meshtest.Bookinfo()
	otherBookinfo.Edges[2].FanOut = 2.5
	path := meshtest.WriteOpenMetricsFile(t,
		app(t, meshtest.Istio, "bookinfo", meshtest.Bookinfo(), 1),
		app(t, meshtest.Istio, "bookinfo-copy", otherBookinfo, 2),
		app(t, meshtest.Linkerd, "trains", layered, 3),
		app(t, meshtest.OpenTelemetry, "shop", small, 4),
	)
	srv := promtest.Start(t, promtest.Options{Backfill: path})
	a := newAPI(t, srv.URL())
	doc, err := os.ReadFile(filepath.Join(testenv.RepoRoot(t), "docs", "topology.md"))
	if err != nil {
		t.Fatal(err)
	}
	docs := string(doc)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	for _, tt := range []struct {
		namespace string
		mesh      discovery.Mesh
		wantMesh  discovery.Mesh
		want      topology.Graph
	}{
		{"bookinfo", discovery.Auto, discovery.Istio, meshtest.Bookinfo()},
		{"bookinfo", discovery.Istio, discovery.Istio, meshtest.Bookinfo()},
		{"bookinfo-copy", discovery.Auto, discovery.Istio, otherBookinfo},
		{"trains", discovery.Auto, discovery.Linkerd, layered},
		{"shop", discovery.Auto, discovery.OpenTelemetry, small},
		{"shop", discovery.OpenTelemetry, discovery.OpenTelemetry, small},
	} {
		t.Run(tt.namespace+"/"+string(tt.mesh), func(t *testing.T) {
			got, err := discovery.Discover(ctx, a, discovery.Options{Namespace: tt.namespace, Mesh: tt.mesh, At: end})
			if err != nil {
				t.Fatal(err)
			}
			if got.Mesh != tt.wantMesh {
				t.Errorf("mesh %q, want %q", got.Mesh, tt.wantMesh)
			}
			checkRecovered(t, got, tt.want)
			if len(got.Warnings) > 0 {
				t.Errorf("warnings: %q", got.Warnings)
			}
			if got.Window != time.Hour || len(got.Queries) == 0 {
				t.Errorf("window %v, queries %q", got.Window, got.Queries)
			}
			// docs/topology.md shows the queries that run (but the probe
			// for OpenTelemetry's namespace label).
			for _, q := range got.Queries {
				q = strings.ReplaceAll(strings.ReplaceAll(q, `"`+tt.namespace+`"`, `"NS"`), "[1h]", "[W]")
				if !strings.HasPrefix(q, "count(") && !strings.Contains(docs, q) {
					t.Errorf("docs/topology.md does not show the query\n%s", q)
				}
			}
		})
	}

	t.Run("no series in the namespace", func(t *testing.T) {
		_, err := discovery.Discover(ctx, a, discovery.Options{Namespace: "empty", At: end})
		if !errors.Is(err, discovery.ErrNoData) {
			t.Fatalf("err = %v, want ErrNoData", err)
		}
		for _, want := range []string{"istio_requests_total", "request_total", "response_total", "traces_service_graph_request_total",
			"namespace empty", "--call-graph", "without a call graph"} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("error lacks %q: %v", want, err)
			}
		}
	})
	t.Run("the mesh given has no series", func(t *testing.T) {
		_, err := discovery.Discover(ctx, a, discovery.Options{Namespace: "bookinfo", Mesh: discovery.Linkerd, At: end})
		if !errors.Is(err, discovery.ErrNoData) || strings.Contains(err.Error(), "istio_requests_total") {
			t.Fatalf("err = %v, want ErrNoData naming only Linkerd's series", err)
		}
	})
	t.Run("before the history", func(t *testing.T) {
		_, err := discovery.Discover(ctx, a, discovery.Options{Namespace: "bookinfo", At: start.Add(-time.Hour)})
		if !errors.Is(err, discovery.ErrNoData) {
			t.Fatalf("err = %v, want ErrNoData", err)
		}
	})
	t.Run("bad options", func(t *testing.T) {
		for _, o := range []discovery.Options{
			{Namespace: `x"}`, At: end},
			{Namespace: "bookinfo", Window: time.Millisecond, At: end},
			{Namespace: "bookinfo", Mesh: "consul", At: end},
		} {
			if _, err := discovery.Discover(ctx, a, o); err == nil || errors.Is(err, discovery.ErrNoData) {
				t.Errorf("%+v: err = %v, want a refusal", o, err)
			}
		}
	})
}

// counter is a hand-written series: a counter growing at a constant rate.
type counter struct {
	family, labels string
	rate           float64
}

// writeCounters writes the counters over the test history, family by family
// (in the order given), as OpenMetrics, and returns the file's path.
func writeCounters(t *testing.T, counters []counter) string {
	t.Helper()
	var b strings.Builder
	last := ""
	for _, c := range counters {
		if c.family != last {
			b.WriteString("# TYPE " + c.family + " counter\n")
			last = c.family
		}
		for k := 0; k <= int(end.Sub(start)/step); k++ {
			ts := start.Add(time.Duration(k) * step)
			b.WriteString(c.family + "_total{" + c.labels + "} " + formatFloat(c.rate*float64(k)*step.Seconds()) + " " + formatFloat(float64(ts.Unix())) + "\n")
		}
	}
	b.WriteString("# EOF\n")
	path := filepath.Join(t.TempDir(), "counters.om.txt")
	if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestDiscoverHandWrittenSeries: cases meshtest does not write, on
// hand-written series in one real Prometheus:
//   - Istio: an ingress gateway in istio-system is external load (a note,
//     not a warning), as is source_workload="unknown";
//   - Linkerd with response_total only; a call to another namespace is
//     left out with a warning;
//   - OpenTelemetry without the namespace dimension: not filtered, and said
//     so; "user" is external, self-calls dropped, a cycle reported with the
//     graph still returned; every warning is logged.
func TestDiscoverHandWrittenSeries(t *testing.T) {
	istio := func(src, srcNS, dst string) string {
		return `reporter="destination",source_workload="` + src + `",source_workload_namespace="` + srcNS +
			`",destination_workload="` + dst + `",destination_workload_namespace="app"`
	}
	linkerd := func(direction, deployment, dst, dstNS string) string {
		l := `direction="` + direction + `",namespace="mesh2",deployment="` + deployment + `"`
		if dst != "" {
			l += `,dst_deployment="` + dst + `",dst_namespace="` + dstNS + `"`
		}
		return l
	}
	otel := func(client, server string) string { return `client="` + client + `",server="` + server + `"` }
	path := writeCounters(t, []counter{
		{"istio_requests", istio("istio-ingressgateway", "istio-system", "web"), 10},
		{"istio_requests", istio("unknown", "unknown", "web"), 2},
		{"istio_requests", istio("web", "app", "api"), 5},
		{"response", linkerd("inbound", "front", "", ""), 4},
		{"response", linkerd("inbound", "back", "", ""), 2},
		{"response", linkerd("outbound", "front", "back", "mesh2"), 2},
		{"response", linkerd("outbound", "front", "ext", "other"), 1},
		{"traces_service_graph_request", otel("user", "web"), 10},
		{"traces_service_graph_request", otel("web", "api.v1"), 20},
		{"traces_service_graph_request", otel("api.v1", "web"), 1},
		{"traces_service_graph_request", otel("api.v1", "api.v1"), 3},
		{"traces_service_graph_request", otel("api.v1", "ts-db"), 5},
	})
	srv := promtest.Start(t, promtest.Options{Backfill: path})
	a := newAPI(t, srv.URL())
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, tt := range []struct {
		namespace string
		mesh      discovery.Mesh
		want      topology.Graph
		cycle     bool
		selfCalls []string
		warnings  []string
		notes     []string
	}{
		{namespace: "app", mesh: discovery.Istio,
			want:  topology.Graph{Services: []string{"api", "web"}, Edges: []topology.Edge{{Caller: "web", Callee: "api", FanOut: 0.417}}},
			notes: []string{`workloads of other namespaces counted as external load: ["istio-system/istio-ingressgateway"]`}},
		{namespace: "mesh2", mesh: discovery.Linkerd,
			want:     topology.Graph{Services: []string{"back", "front"}, Edges: []topology.Edge{{Caller: "front", Callee: "back", FanOut: 0.5}}},
			warnings: []string{`left out calls to 1 destinations outside namespace mesh2: ["other/ext"]`}},
		{namespace: "anything", mesh: discovery.OpenTelemetry,
			want: topology.Graph{Services: []string{"api.v1", "ts-db", "web"}, Edges: []topology.Edge{
				{Caller: "api.v1", Callee: "ts-db", FanOut: 0.25}, {Caller: "api.v1", Callee: "web", FanOut: 0.05}, {Caller: "web", Callee: "api.v1", FanOut: 1.82},
			}},
			cycle: true, selfCalls: []string{"api.v1"},
			warnings: []string{"does not filter", "dropped the self-calls", "cycle through"}},
	} {
		t.Run(tt.namespace, func(t *testing.T) {
			var logs bytes.Buffer
			logger := slog.New(slog.NewTextHandler(&logs, nil))
			got, err := discovery.Discover(ctx, a, discovery.Options{Namespace: tt.namespace, At: end, Logger: logger})
			if err != nil {
				t.Fatal(err)
			}
			if got.Mesh != tt.mesh {
				t.Errorf("mesh %q, want %q", got.Mesh, tt.mesh)
			}
			if !slices.Equal(got.Graph.Graph.Services, tt.want.Services) || !slices.Equal(got.Graph.Graph.Edges, tt.want.Edges) {
				t.Errorf("graph\n got %+v\nwant %+v", got.Graph.Graph, tt.want)
			}
			if (got.Cycle != "") != tt.cycle || !slices.Equal(got.SelfCalls, tt.selfCalls) {
				t.Errorf("cycle %q, self-calls %q", got.Cycle, got.SelfCalls)
			}
			checkMessages(t, "warnings", got.Warnings, tt.warnings)
			checkMessages(t, "notes", got.Notes, tt.notes)
			if n := strings.Count(logs.String(), "level=WARN"); n != len(got.Warnings) {
				t.Errorf("%d warnings logged, want the %d of the result:\n%s", n, len(got.Warnings), logs.String())
			}
		})
	}
}

// checkMessages: one message per wanted fragment, in order.
func checkMessages(t *testing.T, what string, got, want []string) {
	t.Helper()
	if len(got) != len(want) {
		t.Errorf("%s %q, want %d containing %q", what, got, len(want), want)
		return
	}
	for i := range want {
		if !strings.Contains(got[i], want[i]) {
			t.Errorf("%s[%d] = %q, want it to contain %q", what, i, got[i], want[i])
		}
	}
}

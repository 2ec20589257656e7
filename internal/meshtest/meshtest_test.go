package meshtest

import (
	"bytes"
	"context"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/foresightscale/foresight/forecaster/source"
	"github.com/foresightscale/foresight/forecaster/synthetic"
	"github.com/foresightscale/foresight/forecaster/topology"
	"github.com/foresightscale/foresight/internal/promtest"
	"github.com/foresightscale/foresight/internal/testenv"
)

// start is when the test histories begin: years ago, as promtest expects.
var start = time.Date(2025, 3, 1, 6, 0, 0, 0, time.UTC)

const step = 30 * time.Second

func generator(t testing.TB, g topology.Graph) *synthetic.Generator {
	t.Helper()
	cfg := synthetic.DefaultConfig()
	cfg.Services = nil // the Online Boutique profiles name other services
	gen, err := synthetic.New(cfg, g)
	if err != nil {
		t.Fatal(err)
	}
	return gen
}

// TestLayered: the graph is valid, deterministic, n services with hyphens
// and dots in their names, every chain at most depth long, every service
// reached from a root, fan-outs varied.
func TestLayered(t *testing.T) {
	for _, tt := range []struct{ n, depth int }{{40, 3}, {1, 3}, {5, 1}, {10, 10}, {200, 4}, {3, 2}} {
		g := Layered(tt.n, tt.depth, 7)
		if err := g.Validate(); err != nil {
			t.Fatalf("Layered(%d, %d): %v", tt.n, tt.depth, err)
		}
		if len(g.Services) != tt.n {
			t.Errorf("Layered(%d, %d): %d services", tt.n, tt.depth, len(g.Services))
		}
		if again := Layered(tt.n, tt.depth, 7); !slices.Equal(again.Services, g.Services) || !slices.Equal(again.Edges, g.Edges) {
			t.Errorf("Layered(%d, %d) is not deterministic", tt.n, tt.depth)
		}
		if !slices.IsSorted(g.Services) || !slices.IsSortedFunc(g.Edges, compareEdges) {
			t.Errorf("Layered(%d, %d): services or edges not sorted", tt.n, tt.depth)
		}
		order, err := g.TopologicalOrder()
		if err != nil {
			t.Fatal(err)
		}
		// Longest chain (in services) ending at each service.
		chain := map[string]int{}
		for _, s := range order {
			chain[s] = max(chain[s], 1)
			for _, e := range g.Edges {
				if e.Caller == s {
					chain[e.Callee] = max(chain[e.Callee], chain[s]+1)
				}
			}
		}
		longest := 0
		for _, c := range chain {
			longest = max(longest, c)
		}
		if want := min(tt.depth, tt.n); longest != want {
			t.Errorf("Layered(%d, %d): longest chain %d services, want %d", tt.n, tt.depth, longest, want)
		}
		fanOuts := map[float64]bool{}
		for _, e := range g.Edges {
			fanOuts[e.FanOut] = true
			if e.FanOut < 0.2 || e.FanOut > 3 {
				t.Errorf("fan-out %v out of [0.2, 3]", e.FanOut)
			}
		}
		if len(g.Edges) > 3 && len(fanOuts) < 3 {
			t.Errorf("Layered(%d, %d): only %d distinct fan-outs", tt.n, tt.depth, len(fanOuts))
		}
	}
	g := Layered(40, 3, 1)
	var dots, hyphens bool
	for _, s := range g.Services {
		dots = dots || strings.Contains(s, ".")
		hyphens = hyphens || strings.Contains(s, "-")
		if strings.Contains(s, "_") {
			t.Errorf("name %q has an underscore", s)
		}
	}
	if !dots || !hyphens {
		t.Errorf("names %v: want some with dots and some with hyphens", g.Services)
	}
	if other := Layered(40, 3, 2); slices.Equal(other.Edges, g.Edges) {
		t.Error("seeds 1 and 2 give the same edges")
	}
}

func TestBookinfo(t *testing.T) {
	g := Bookinfo()
	if err := g.Validate(); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(g.Roots(), []string{"productpage"}) {
		t.Errorf("roots %v, want productpage", g.Roots())
	}
}

// TestWriteOpenMetricsRefuses: options that cannot describe a history.
func TestWriteOpenMetricsRefuses(t *testing.T) {
	gen := generator(t, Bookinfo())
	good := Options{Flavour: Istio, Namespace: "bookinfo", Generator: gen, Graph: Bookinfo(), Start: start, End: start.Add(time.Hour), Step: step}
	for _, tt := range []struct {
		name   string
		change func(*Options)
		want   string
	}{
		{"flavour", func(o *Options) { o.Flavour = "consul" }, "unknown flavour"},
		{"namespace", func(o *Options) { o.Namespace = "" }, "no namespace"},
		{"generator", func(o *Options) { o.Generator = nil }, "no generator"},
		{"step", func(o *Options) { o.Step = 0 }, "step"},
		{"end", func(o *Options) { o.End = start.Add(-time.Second) }, "before start"},
		{"graph", func(o *Options) { o.Graph = Layered(4, 2, 1) }, "not the generator's"},
		{"firstSeen", func(o *Options) { o.FirstSeen = map[string]time.Time{"nobody": start} }, "not in the graph"},
	} {
		o := good
		tt.change(&o)
		if err := WriteOpenMetrics(&bytes.Buffer{}, o); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: err = %v, want one containing %q", tt.name, err, tt.want)
		}
	}
}

// TestWriteOpenMetricsSeries: the series each flavour writes, with their
// labels, and FirstSeen holding back a late service and its calls.
func TestWriteOpenMetricsSeries(t *testing.T) {
	gen := generator(t, Bookinfo())
	late := start.Add(10 * time.Minute)
	for _, tt := range []struct {
		flavour Flavour
		want    []string
	}{
		{Istio, []string{
			`istio_requests_total{reporter="destination",source_workload="unknown",source_workload_namespace="unknown",destination_workload="productpage",destination_workload_namespace="bookinfo",response_code="200"}`,
			`istio_requests_total{reporter="destination",source_workload="reviews",source_workload_namespace="bookinfo",destination_workload="ratings",destination_workload_namespace="bookinfo",response_code="200"}`,
		}},
		{Linkerd, []string{
			`request_total{direction="inbound",namespace="bookinfo",deployment="productpage"}`,
			`request_total{direction="outbound",namespace="bookinfo",deployment="reviews",dst_namespace="bookinfo",dst_deployment="ratings"}`,
			`response_total{direction="outbound",namespace="bookinfo",deployment="reviews",dst_namespace="bookinfo",dst_deployment="ratings",classification="success",status_code="200"}`,
		}},
		{OpenTelemetry, []string{
			`traces_service_graph_request_total{client="user",server="productpage",server_k8s_namespace_name="bookinfo"}`,
			`traces_service_graph_request_total{client="reviews",client_k8s_namespace_name="bookinfo",server="ratings",server_k8s_namespace_name="bookinfo"}`,
		}},
	} {
		var b bytes.Buffer
		o := Options{Flavour: tt.flavour, Namespace: "bookinfo", Generator: gen, Graph: Bookinfo(),
			Start: start, End: start.Add(20 * time.Minute), Step: step, FirstSeen: map[string]time.Time{"ratings": late}}
		if err := WriteOpenMetrics(&b, o); err != nil {
			t.Fatal(err)
		}
		text := b.String()
		want := append(tt.want,
			`container_cpu_usage_seconds_total{namespace="bookinfo",pod="`+podName("details")+`",container="details"}`,
			`kube_deployment_status_replicas{namespace="bookinfo",deployment="reviews"}`)
		for _, w := range want {
			if !strings.Contains(text, w+" ") {
				t.Errorf("%s: no series %s", tt.flavour, w)
			}
		}
		if !strings.HasSuffix(text, "# EOF\n") {
			t.Errorf("%s: no # EOF at the end", tt.flavour)
		}
		// ratings and the calls to it start at `late`: 20 samples of 41 missing.
		for _, line := range strings.Split(text, "\n") {
			if strings.Contains(line, `"ratings"`) {
				fields := strings.Fields(line)
				if ts := fields[len(fields)-1]; ts < "1740809400" { // late, in Unix seconds
					t.Fatalf("%s: ratings written before its FirstSeen: %s", tt.flavour, line)
				}
			}
		}
	}
}

// TestQueriesReadBackTheGenerator: for every flavour, backfill two hours of
// Bookinfo into a real Prometheus and read requests, CPU and replicas back
// with the Prometheus source and Queries(flavour): requests and CPU match
// the generator's rates averaged over the rate window, replicas exactly.
func TestQueriesReadBackTheGenerator(t *testing.T) {
	g := Bookinfo()
	gen := generator(t, g)
	end := start.Add(2 * time.Hour)
	truth, err := gen.Series(context.Background(), start, end, step)
	if err != nil {
		t.Fatal(err)
	}
	for _, flavour := range Flavours {
		t.Run(string(flavour), func(t *testing.T) {
			// Two namespaces, to show the queries keep to theirs: the other
			// one holds a different world (another seed) under the same names.
			other := synthetic.DefaultConfig()
			other.Services, other.Seed, other.Diurnal.Base = nil, 99, 500
			otherGen, err := synthetic.New(other, g)
			if err != nil {
				t.Fatal(err)
			}
			path := WriteOpenMetricsFile(t,
				Options{Flavour: flavour, Namespace: "bookinfo", Generator: gen, Graph: g, Start: start, End: end, Step: step},
				Options{Flavour: flavour, Namespace: "other", Generator: otherGen, Graph: g, Start: start, End: end, Step: step})
			srv := promtest.Start(t, promtest.Options{Backfill: path})
			cfg := source.DefaultPrometheusConfig()
			cfg.URL, cfg.Queries = srv.URL(), Queries(flavour)
			prom, err := source.NewPrometheus(cfg, nil)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(prom.Close)
			from, to := start.Add(time.Hour), end
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			data, err := prom.Fetch(ctx, source.Query{Namespace: "bookinfo", Services: g.Services,
				Features: []source.Feature{source.Requests, source.CPU, source.Replicas}, Start: from, End: to, Step: step})
			if err != nil {
				t.Fatal(err)
			}
			offset := int(from.Sub(start) / step)
			for i, s := range g.Services {
				for _, f := range []source.Feature{source.Requests, source.CPU, source.Replicas} {
					got := data[f][s]
					if len(got) != int(to.Sub(from)/step)+1 {
						t.Fatalf("%s %s: %d samples, want %d", f, s, len(got), int(to.Sub(from)/step)+1)
					}
					sumErr := 0.0
					for k, sample := range got {
						at := offset + k
						if !sample.Time.Equal(truth[at].Time) {
							t.Fatalf("%s %s: sample %d at %v, want %v", f, s, k, sample.Time, truth[at].Time)
						}
						value := func(j int) float64 {
							st := truth[j].Services[i]
							switch f {
							case source.Requests:
								return st.Requests
							case source.CPU:
								return st.CPUCores
							}
							return float64(st.Replicas)
						}
						if f == source.Replicas {
							if sample.Value != value(at) {
								t.Fatalf("replicas %s at %v: %v, want %v", s, sample.Time, sample.Value, value(at))
							}
							continue
						}
						// rate() over 2m at a 30 s step averages the last four
						// samples' rates (Prometheus 2, closed window) or the
						// last three (Prometheus 3, left-open window).
						mean := func(n int) float64 {
							sum := 0.0
							for j := at - n + 1; j <= at; j++ {
								sum += value(j)
							}
							return sum / float64(n)
						}
						if relErr(sample.Value, mean(4)) > 0.005 && relErr(sample.Value, mean(3)) > 0.005 {
							t.Fatalf("%s %s at %v: %v, want the window's mean rate %v (4 samples) or %v (3)",
								f, s, sample.Time, sample.Value, mean(4), mean(3))
						}
						sumErr += relErr(sample.Value, value(at))
					}
					// Against the instantaneous value the 2m window lags the bursts
					// (up to 80 req/s on a trough of 40): a sanity bound only; the
					// window mean above is the exact check.
					if f != source.Replicas {
						if mean := sumErr / float64(len(got)); mean > 0.15 {
							t.Errorf("%s %s: mean relative error %.3f against the generator's instantaneous values", f, s, mean)
						}
					}
				}
			}
		})
	}
}

func relErr(got, want float64) float64 { return math.Abs(got-want) / math.Max(math.Abs(want), 1e-9) }

// TestDocsShowTheQueries: docs/topology.md shows exactly the templates
// Queries returns (the tested ones), so a user copying them gets what the
// tests prove.
func TestDocsShowTheQueries(t *testing.T) {
	doc, err := os.ReadFile(filepath.Join(testenv.RepoRoot(t), "docs", "topology.md"))
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range Flavours {
		for feature, q := range Queries(f) {
			if !strings.Contains(string(doc), fmt.Sprintf("%s: '%s'", feature, q)) {
				t.Errorf("docs/topology.md does not show the %s template for %s:\n  %s: '%s'", f, feature, feature, q)
			}
		}
	}
	if Queries("consul") != nil {
		t.Error("Queries of an unknown flavour is not nil")
	}
}

// FuzzLayered: any size, depth and seed give a valid graph of n services
// whose chains are at most depth long, each service reached from a root.
func FuzzLayered(f *testing.F) {
	f.Add(uint16(40), uint8(3), int64(1))
	f.Add(uint16(1), uint8(0), int64(-5))
	f.Add(uint16(500), uint8(12), int64(99))
	f.Fuzz(func(t *testing.T, n uint16, depth uint8, seed int64) {
		size := int(n % 600)
		g := Layered(size, int(depth), seed)
		if size == 0 {
			if len(g.Services) != 0 {
				t.Fatalf("Layered(0) has services")
			}
			return
		}
		if err := g.Validate(); err != nil {
			t.Fatalf("Layered(%d, %d, %d): %v", size, depth, seed, err)
		}
		if len(g.Services) != size {
			t.Fatalf("%d services, want %d", len(g.Services), size)
		}
		order, err := g.TopologicalOrder()
		if err != nil {
			t.Fatal(err)
		}
		callers := map[string][]string{}
		for _, e := range g.Edges {
			callers[e.Callee] = append(callers[e.Callee], e.Caller)
		}
		chain := map[string]int{}
		for _, s := range order {
			chain[s] = 1
			for _, c := range callers[s] {
				chain[s] = max(chain[s], chain[c]+1)
			}
			if chain[s] > max(1, int(depth)) {
				t.Fatalf("%s ends a chain of %d services, depth %d", s, chain[s], depth)
			}
		}
	})
}

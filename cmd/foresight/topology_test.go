package main

import (
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"sigs.k8s.io/yaml"

	"github.com/foresightscale/foresight/forecaster/synthetic"
	"github.com/foresightscale/foresight/forecaster/topology"
	"github.com/foresightscale/foresight/internal/meshtest"
	"github.com/foresightscale/foresight/internal/promtest"
	"github.com/foresightscale/foresight/internal/testproc"
)

// bookinfoPrometheus starts a real Prometheus holding two hours of Bookinfo
// history with Istio's series in namespace bookinfo, and returns its URL and
// the end of the history.
func bookinfoPrometheus(t *testing.T) (string, time.Time) {
	t.Helper()
	start := time.Date(2025, 3, 1, 6, 0, 0, 0, time.UTC)
	end := start.Add(2 * time.Hour)
	cfg := synthetic.DefaultConfig()
	cfg.Services = nil
	gen, err := synthetic.New(cfg, meshtest.Bookinfo())
	if err != nil {
		t.Fatal(err)
	}
	path := meshtest.WriteOpenMetricsFile(t, meshtest.Options{Flavour: meshtest.Istio, Namespace: "bookinfo",
		Generator: gen, Graph: meshtest.Bookinfo(), Start: start, End: end, Step: 30 * time.Second})
	return promtest.Start(t, promtest.Options{Backfill: path}).URL(), end
}

// checkBookinfo: the same edges as meshtest.Bookinfo, fan-outs within 2 %.
func checkBookinfo(t *testing.T, g topology.Graph) {
	t.Helper()
	want := meshtest.Bookinfo()
	if len(g.Edges) != len(want.Edges) {
		t.Fatalf("edges %+v, want %+v", g.Edges, want.Edges)
	}
	for i, e := range g.Edges {
		w := want.Edges[i]
		if e.Caller != w.Caller || e.Callee != w.Callee || math.Abs(e.FanOut-w.FanOut) > 0.02*w.FanOut {
			t.Errorf("edge %d: %+v, want %+v (fan-out ±2%%)", i, e, w)
		}
	}
}

// TestTopologyCommand: `foresight topology` against a real Prometheus with
// Istio-shaped Bookinfo history prints the call graph in each format, with a
// summary on stderr; --out writes the file and nothing to stdout; --config
// supplies the URL and namespace, or with apps the --app's namespace.
func TestTopologyCommand(t *testing.T) {
	url, end := bookinfoPrometheus(t)
	at := end.Format(time.RFC3339)
	base := []string{"--prometheus-url", url, "--namespace", "bookinfo", "--at", at}

	t.Run("csv", func(t *testing.T) {
		out, stderr, err := execute(newTopologyCommand(), time.Minute, base...)
		if err != nil {
			t.Fatal(err)
		}
		g, err := topology.ParseCallGraphCSV(strings.NewReader(out), nil)
		if err != nil {
			t.Fatalf("the CSV does not parse: %v\n%s", err, out)
		}
		checkBookinfo(t, g)
		for _, want := range []string{"istio", "namespace bookinfo", "4 services, 3 edges", "roots: productpage"} {
			if !strings.Contains(stderr, want) {
				t.Errorf("summary lacks %q:\n%s", want, stderr)
			}
		}
	})
	t.Run("yaml", func(t *testing.T) {
		out, _, err := execute(newTopologyCommand(), time.Minute, append(base, "--format", "yaml", "--mesh", "istio")...)
		if err != nil {
			t.Fatal(err)
		}
		var g topology.Graph
		if err := yaml.UnmarshalStrict([]byte(out), &g); err != nil {
			t.Fatalf("the YAML does not decode: %v\n%s", err, out)
		}
		checkBookinfo(t, g)
		if strings.Join(g.Services, ",") != "details,productpage,ratings,reviews" {
			t.Errorf("services %v", g.Services)
		}
	})
	t.Run("dot", func(t *testing.T) {
		out, _, err := execute(newTopologyCommand(), time.Minute, append(base, "--format", "dot")...)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(out, "digraph callgraph {") || !strings.Contains(out, `"reviews" -> "ratings" [label="0.67`) {
			t.Errorf("DOT output:\n%s", out)
		}
	})
	t.Run("out file", func(t *testing.T) {
		dir := t.TempDir()
		path := filepath.Join(dir, "callgraph.csv")
		out, stderr, err := execute(newTopologyCommand(), time.Minute, append(base, "--out", path)...)
		if err != nil {
			t.Fatal(err)
		}
		if out != "" || !strings.Contains(stderr, "wrote "+path) {
			t.Errorf("stdout %q, stderr %q: want nothing on stdout and the file named", out, stderr)
		}
		f, err := os.Open(path)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		g, err := topology.ParseCallGraphCSV(f, nil)
		if err != nil {
			t.Fatal(err)
		}
		checkBookinfo(t, g)
		if entries, _ := os.ReadDir(dir); len(entries) != 1 {
			t.Errorf("%d files in the directory, want only the graph (no temporary file left)", len(entries))
		}
	})
	t.Run("config", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "foresight.yaml")
		doc := "namespace: bookinfo\nsource:\n  prometheus:\n    url: " + strconv.Quote(url) + "\n    tenant: team-a\n"
		if err := os.WriteFile(path, []byte(doc), 0o644); err != nil {
			t.Fatal(err)
		}
		out, _, err := execute(newTopologyCommand(), time.Minute, "--config", path, "--at", at)
		if err != nil {
			t.Fatal(err)
		}
		g, err := topology.ParseCallGraphCSV(strings.NewReader(out), nil)
		if err != nil {
			t.Fatal(err)
		}
		checkBookinfo(t, g)
		// With apps: the --app's namespace, or the only app's.
		appsPath := filepath.Join(t.TempDir(), "apps.yaml")
		appsDoc := "source:\n  prometheus:\n    url: " + strconv.Quote(url) + "\napps:\n" +
			"  - name: reviews-site\n    namespace: bookinfo\n  - name: shop\n    namespace: shop\n"
		if err := os.WriteFile(appsPath, []byte(appsDoc), 0o644); err != nil {
			t.Fatal(err)
		}
		out, _, err = execute(newTopologyCommand(), time.Minute, "--config", appsPath, "--app", "reviews-site", "--at", at)
		if err != nil {
			t.Fatal(err)
		}
		if g, err = topology.ParseCallGraphCSV(strings.NewReader(out), nil); err != nil {
			t.Fatal(err)
		}
		checkBookinfo(t, g)
		for _, tt := range []struct {
			args []string
			want string
		}{
			{[]string{"--config", appsPath}, "lists 2 apps (reviews-site, shop): choose one with --app"},
			{[]string{"--config", appsPath, "--app", "blog"}, "--app blog: not in"},
			{[]string{"--config", path, "--app", "shop"}, "lists no apps"},
			{[]string{"--app", "shop", "--prometheus-url", url}, "--app needs --config"},
		} {
			if _, _, err := execute(newTopologyCommand(), time.Minute, append(tt.args, "--at", at)...); err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("%q: err = %v, want one containing %q", tt.args, err, tt.want)
			}
		}
		// The namespace flag overrides the file's: no series there.
		_, _, err = execute(newTopologyCommand(), time.Minute, "--config", path, "--at", at, "--namespace", "elsewhere")
		if err == nil || !strings.Contains(err.Error(), "namespace elsewhere") {
			t.Errorf("err = %v, want no data in namespace elsewhere", err)
		}
	})
}

// TestTopologyCommandRefuses: wrong flags, no server, an unreachable one, a
// namespace without mesh series; each error says what to fix.
func TestTopologyCommandRefuses(t *testing.T) {
	port, err := testproc.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	closed := "http://127.0.0.1:" + strconv.Itoa(port) // nothing listens there
	url, end := bookinfoPrometheus(t)
	for _, tt := range []struct {
		name string
		args []string
		want string
	}{
		{"bad format", []string{"--prometheus-url", closed, "--format", "png"}, "--format"},
		{"bad mesh", []string{"--prometheus-url", closed, "--mesh", "consul"}, "--mesh"},
		{"bad window", []string{"--prometheus-url", closed, "--window", "0s"}, "--window"},
		{"bad at", []string{"--prometheus-url", closed, "--at", "yesterday"}, "--at"},
		{"no URL", nil, "--prometheus-url"},
		{"bad URL", []string{"--prometheus-url", "ftp://127.0.0.1:1"}, "scheme"},
		{"unreachable", []string{"--prometheus-url", closed}, "connection refused"},
		{"missing config", []string{"--config", filepath.Join(t.TempDir(), "none.yaml")}, "none.yaml"},
		{"no series", []string{"--prometheus-url", url, "--namespace", "shop", "--at", end.Format(time.RFC3339)}, "--call-graph FILE"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			out, _, err := execute(newTopologyCommand(), 30*time.Second, tt.args...)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want one containing %q", err, tt.want)
			}
			if out != "" {
				t.Errorf("stdout %q on error, want nothing", out)
			}
		})
	}
}

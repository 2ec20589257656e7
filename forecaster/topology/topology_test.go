package topology

import (
	"math"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/foresightscale/foresight/internal/testenv"
)

func TestOnlineBoutiqueMatchesRecordedCallGraph(t *testing.T) {
	f, err := os.Open(testenv.SharedData(t, "boutique/callgraph.csv"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	want := OnlineBoutique()
	got, err := ParseCallGraphCSV(f, want.Services)
	if err != nil {
		t.Fatal(err)
	}
	if len(got.Edges) != len(want.Edges) {
		t.Fatalf("%d edges in the recorded graph, %d built in", len(got.Edges), len(want.Edges))
	}
	for i, e := range got.Edges {
		if e.Caller != want.Edges[i].Caller || e.Callee != want.Edges[i].Callee {
			t.Errorf("edge %d: recorded %s→%s, built in %s→%s", i, e.Caller, e.Callee, want.Edges[i].Caller, want.Edges[i].Callee)
		}
	}
}

func TestValidate(t *testing.T) {
	tests := []struct {
		name string
		g    Graph
		want string
	}{
		{"boutique", OnlineBoutique(), ""},
		{"no services", Graph{}, "no services"},
		{"duplicate", Graph{Services: []string{"a", "a"}}, "listed twice"},
		{"unknown callee", Graph{Services: []string{"a"}, Edges: []Edge{{"a", "b", 1}}}, `unknown callee "b"`},
		{"self call", Graph{Services: []string{"a"}, Edges: []Edge{{"a", "a", 1}}}, "calls itself"},
		{"negative fan-out", Graph{Services: []string{"a", "b"}, Edges: []Edge{{"a", "b", -1}}}, "negative fan-out"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.g.Validate()
			if (tc.want == "") != (err == nil) || err != nil && !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Validate() = %v, want %q", err, tc.want)
			}
		})
	}
}

func TestTopologicalOrder(t *testing.T) {
	order, err := OnlineBoutique().TopologicalOrder()
	if err != nil {
		t.Fatal(err)
	}
	pos := func(s string) int { return slices.Index(order, s) }
	for _, e := range OnlineBoutique().Edges {
		if pos(e.Caller) > pos(e.Callee) {
			t.Errorf("%s comes after its callee %s in %v", e.Caller, e.Callee, order)
		}
	}
	cyclic := Graph{Services: []string{"a", "b", "c"}, Edges: []Edge{{"a", "b", 1}, {"b", "c", 1}, {"c", "b", 1}}}
	if _, err := cyclic.TopologicalOrder(); err == nil || !strings.Contains(err.Error(), "cycle") {
		t.Errorf("cyclic graph: error %v, want one naming a cycle", err)
	}
	if roots := OnlineBoutique().Roots(); !slices.Equal(roots, []string{"frontend"}) {
		t.Errorf("roots = %v, want [frontend]", roots)
	}
}

func TestAdjacencyAveragesTheNeighbourhood(t *testing.T) {
	g := Graph{Services: []string{"a", "b", "c"}, Edges: []Edge{{"a", "b", 1}}}
	a := g.Adjacency()
	want := [][]float64{{0.5, 0.5, 0}, {0.5, 0.5, 0}, {0, 0, 1}}
	for i := range want {
		for j := range want[i] {
			if math.Abs(a[i][j]-want[i][j]) > 1e-12 {
				t.Fatalf("adjacency = %v, want %v", a, want)
			}
		}
	}
}

func TestParseCallGraphCSVErrors(t *testing.T) {
	tests := []struct{ name, csv, want string }{
		{"no header", "a,b\n", "header"},
		{"unknown service", "caller,callee\nx,y\n", `service "x" is not in the service list`},
		{"short row", "caller,callee\na\n", "wrong number of fields"},
		{"fan-out without its header", "caller,callee\na,b,2\n", "wrong number of fields"},
		{"unknown third column", "caller,callee,weight\na,b,2\n", "header"},
		{"negative fan-out", "caller,callee,fanOut\na,b,-1\n", "fanOut \"-1\" is not a positive number"},
		{"word fan-out", "caller,callee,fanOut\na,b,lots\n", "not a positive number"},
		{"infinite fan-out", "caller,callee,fanOut\na,b,+Inf\n", "not a positive number"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseCallGraphCSV(strings.NewReader(tc.csv), []string{"a", "b"})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error = %v, want %q", err, tc.want)
			}
		})
	}
}

func TestParseCallGraphCSVFanOut(t *testing.T) {
	g, err := ParseCallGraphCSV(strings.NewReader("caller,callee,fanOut\nweb.v2,api-gw,2.5\napi-gw,db,\n"), nil)
	if err != nil {
		t.Fatal(err)
	}
	want := []Edge{{"web.v2", "api-gw", 2.5}, {"api-gw", "db", 1}}
	if !slices.Equal(g.Edges, want) || !slices.Equal(g.Services, []string{"web.v2", "api-gw", "db"}) {
		t.Errorf("graph = %+v, want edges %v (an empty fan-out is 1)", g, want)
	}
}

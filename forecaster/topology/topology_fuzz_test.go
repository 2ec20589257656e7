package topology

import (
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/foresightscale/foresight/internal/testenv"
)

// FuzzParseCallGraphCSV: arbitrary bytes, with and without a service list.
// Invariants: no panic; an error is short and says it is about the call
// graph; an accepted graph passes Validate, keeps the given node order, and
// its derived forms are sound: Adjacency is N×N, finite, symmetric in its
// pattern, with columns summing to 1; TopologicalOrder is either a cycle
// error or a permutation of the services with every caller before its
// callees; Roots are exactly the services nobody calls.
func FuzzParseCallGraphCSV(f *testing.F) {
	for _, s := range []string{
		"caller,callee\na,b\nb,c\n", "caller,callee\n", "caller,callee\na,b\na,b\n", "caller,callee\na,a\n",
		"caller,callee\na,b\nb,a\n", "caller,callee\n a , b \n", "caller,callee\na,\n", "caller,callee\na\n",
		"caller,callee\na,b,c\n", "\ufeffcaller,callee\na,b\n", "caller,callee\n\"a\nb\",c\n", "caller,callee\n\"a,b\n",
		"callee,caller\na,b\n", "", "a,b\n", "caller,callee\nfrontend,cartservice\nfrontend,nobody\n",
		"caller,callee\n" + strings.Repeat("x", 300) + ",b\n",
		"caller,callee,fanOut\na,b,2.5\nb,c,\n", "caller,callee,fanOut\na,b,0\n", "caller,callee,fanOut\na,b,1e308\n",
	} {
		f.Add([]byte(s), false)
		f.Add([]byte(s), true)
	}
	if b, err := os.ReadFile(filepath.Join(testenv.RepoRoot(f), "..", "shared", "data", "boutique", "callgraph.csv")); err == nil {
		f.Add(b, false)
		f.Add(b, true)
	} else {
		f.Logf("seed boutique/callgraph.csv not available (%v): fuzzing without it", err)
	}
	f.Fuzz(func(t *testing.T, data []byte, withServices bool) {
		var services []string
		if withServices {
			services = OnlineBoutique().Services
		}
		g, err := ParseCallGraphCSV(strings.NewReader(string(data)), services)
		if err != nil {
			if msg := err.Error(); len(msg) > 1024 || !strings.Contains(msg, "call graph CSV") {
				t.Fatalf("error of %d bytes (want at most 1024, naming the call graph CSV): %.300q", len(msg), msg)
			}
			return
		}
		if err := g.Validate(); err != nil {
			t.Fatalf("accepted a graph that fails Validate: %v", err)
		}
		if withServices && !slices.Equal(g.Services, services) {
			t.Fatalf("services %v, want the given order %v", g.Services, services)
		}
		checkAdjacency(t, g)
		checkOrder(t, g)
	})
}

func checkAdjacency(t *testing.T, g Graph) {
	t.Helper()
	a := g.Adjacency()
	n := len(g.Services)
	if len(a) != n {
		t.Fatalf("adjacency has %d rows for %d services", len(a), n)
	}
	for j := range n {
		sum := 0.0
		for i := range n {
			v := a[i][j]
			if len(a[i]) != n || math.IsNaN(v) || v < 0 || v > 1 {
				t.Fatalf("adjacency[%d][%d] = %v", i, j, v)
			}
			if (v > 0) != (a[j][i] > 0) {
				t.Fatalf("adjacency pattern not symmetric at %d,%d", i, j)
			}
			sum += v
		}
		if math.Abs(sum-1) > 1e-9 {
			t.Fatalf("adjacency column %d sums to %v", j, sum)
		}
	}
}

func checkOrder(t *testing.T, g Graph) {
	t.Helper()
	called := map[string]bool{}
	for _, e := range g.Edges {
		called[e.Callee] = true
	}
	for _, r := range g.Roots() {
		if called[r] || g.Index(r) < 0 {
			t.Fatalf("root %q is called or unknown", r)
		}
	}
	if len(g.Roots()) != len(g.Services)-len(called) {
		t.Fatalf("%d roots for %d services of which %d are called", len(g.Roots()), len(g.Services), len(called))
	}
	order, err := g.TopologicalOrder()
	if err != nil {
		if !strings.Contains(err.Error(), "cycle") {
			t.Fatalf("TopologicalOrder: %v, want only a cycle error", err)
		}
		return
	}
	if !slices.Equal(slices.Sorted(slices.Values(order)), slices.Sorted(slices.Values(g.Services))) {
		t.Fatalf("order %v is not a permutation of %v", order, g.Services)
	}
	for _, e := range g.Edges {
		if slices.Index(order, e.Caller) > slices.Index(order, e.Callee) {
			t.Fatalf("%s comes after its callee %s in %v", e.Caller, e.Callee, order)
		}
	}
}

// TestValidateRepeatsAndFanOut: a repeated edge (its calls would count
// twice in the synthetic workload) and a NaN or infinite fan-out are
// refused; long names are quoted as a prefix.
func TestValidateRepeatsAndFanOut(t *testing.T) {
	long := strings.Repeat("n", 10000)
	tests := []struct {
		name string
		g    Graph
		want string
	}{
		{"repeated edge", Graph{Services: []string{"a", "b"}, Edges: []Edge{{"a", "b", 1}, {"a", "b", 2}}}, `edges[1]: "a"→"b" repeats edges[0]`},
		{"NaN fan-out", Graph{Services: []string{"a", "b"}, Edges: []Edge{{"a", "b", math.NaN()}}}, "fan-out NaN"},
		{"infinite fan-out", Graph{Services: []string{"a", "b"}, Edges: []Edge{{"a", "b", math.Inf(1)}}}, "fan-out +Inf"},
		{"long unknown name", Graph{Services: []string{"a"}, Edges: []Edge{{"a", long, 1}}}, "(10000 bytes)"},
		{"too many services", Graph{Services: make([]string, MaxServices+1)}, "over the limits"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.g.Validate()
			if err == nil || !strings.Contains(err.Error(), tt.want) || len(err.Error()) > 200 {
				t.Fatalf("Validate() = %.300v, want a short error containing %q", err, tt.want)
			}
		})
	}
}

// TestParseCallGraphCSVLimits: a file over MaxCallGraphBytes is refused,
// not parsed as far as the limit; a row's error names its own line even
// after a quoted multi-line field.
func TestParseCallGraphCSVLimits(t *testing.T) {
	huge := "caller,callee\n" + strings.Repeat("a,b\n", MaxCallGraphBytes/4)
	if _, err := ParseCallGraphCSV(strings.NewReader(huge), nil); err == nil || !strings.Contains(err.Error(), "over the 4 MiB limit") {
		t.Errorf("a %d-byte file: %v, want the size limit", len(huge), err)
	}
	_, err := ParseCallGraphCSV(strings.NewReader("caller,callee\n\"a\nx\",b\nc\n"), nil)
	if err == nil || !strings.Contains(err.Error(), "line 4: wrong number of fields") {
		t.Errorf("short row after a multi-line field: %v, want line 4", err)
	}
}

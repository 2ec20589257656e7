package topology

import (
	"bytes"
	"math"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"

	"sigs.k8s.io/yaml"
)

// formatGraph has the names the writers must survive: dots, hyphens, a
// name YAML would read as a number, and a fan-out below one.
func formatGraph() Graph {
	return Graph{
		Services: []string{"api.v2-gateway", "ts-order-service", "1.0", "lonely", "alone"},
		Edges: []Edge{
			{Caller: "api.v2-gateway", Callee: "ts-order-service", FanOut: 0.67},
			{Caller: "ts-order-service", Callee: "1.0", FanOut: 2},
			{Caller: "api.v2-gateway", Callee: "lonely", FanOut: 0},
		},
	}
}

func TestWriters(t *testing.T) {
	tests := []struct {
		name  string
		write func(*bytes.Buffer, Graph) error
		want  string
	}{
		{"csv", func(b *bytes.Buffer, g Graph) error { return WriteCSV(b, g) },
			"caller,callee,fanOut\napi.v2-gateway,ts-order-service,0.67\nts-order-service,1.0,2\napi.v2-gateway,lonely,\n"},
		{"yaml", func(b *bytes.Buffer, g Graph) error { return WriteYAML(b, g) },
			"services:\n- api.v2-gateway\n- ts-order-service\n- \"1.0\"\n- lonely\n- alone\nedges:\n" +
				"- caller: api.v2-gateway\n  callee: ts-order-service\n  fanOut: 0.67\n" +
				"- caller: ts-order-service\n  callee: \"1.0\"\n  fanOut: 2\n" +
				"- caller: api.v2-gateway\n  callee: lonely\n  fanOut: 0\n"},
		{"dot", func(b *bytes.Buffer, g Graph) error { return WriteDOT(b, g) },
			"digraph callgraph {\n  rankdir=LR;\n  node [shape=box];\n" +
				"  \"api.v2-gateway\";\n  \"ts-order-service\";\n  \"1.0\";\n  \"lonely\";\n  \"alone\";\n" +
				"  \"api.v2-gateway\" -> \"ts-order-service\" [label=\"0.67\"];\n" +
				"  \"ts-order-service\" -> \"1.0\" [label=\"2\"];\n" +
				"  \"api.v2-gateway\" -> \"lonely\";\n}\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var b bytes.Buffer
			if err := tt.write(&b, formatGraph()); err != nil {
				t.Fatal(err)
			}
			if b.String() != tt.want {
				t.Errorf("got\n%s\nwant\n%s", b.String(), tt.want)
			}
			// An invalid graph is refused, and nothing is promised about output.
			bad := Graph{Services: []string{"a"}, Edges: []Edge{{Caller: "a", Callee: "b", FanOut: 1}}}
			if err := tt.write(&bytes.Buffer{}, bad); err == nil || !strings.Contains(err.Error(), "unknown callee") {
				t.Errorf("invalid graph: err = %v, want the validation error", err)
			}
		})
	}
}

// TestWriteDOTQuotes: a quote, a backslash or a newline in a name cannot end
// the DOT string early.
func TestWriteDOTQuotes(t *testing.T) {
	g := Graph{Services: []string{`a"b`, `c\d`, "e\nf"}, Edges: []Edge{{Caller: `a"b`, Callee: `c\d`, FanOut: 1}}}
	var b bytes.Buffer
	if err := WriteDOT(&b, g); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`"a\"b" -> "c\\d"`, `"e\nf";`} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("DOT output lacks %s:\n%s", want, b.String())
		}
	}
}

// TestWriteCSVRoundTrip: what WriteCSV writes, ParseCallGraphCSV reads back
// as the same edges with the same fan-outs.
func TestWriteCSVRoundTrip(t *testing.T) {
	for _, g := range []Graph{formatGraph(), OnlineBoutique()} {
		checkCSVRoundTrip(t, g)
	}
}

func checkCSVRoundTrip(t *testing.T, g Graph) {
	t.Helper()
	var b bytes.Buffer
	if err := WriteCSV(&b, g); err != nil {
		t.Fatal(err)
	}
	got, err := ParseCallGraphCSV(&b, g.Services)
	if err != nil {
		t.Fatalf("ParseCallGraphCSV of WriteCSV's output: %v\n%s", err, b.String())
	}
	want := slices.Clone(g.Edges)
	for i := range want {
		if want[i].FanOut == 0 { // unknown: written empty, read as 1
			want[i].FanOut = 1
		}
	}
	if !slices.Equal(got.Services, g.Services) || !slices.Equal(got.Edges, want) {
		t.Fatalf("round trip changed the graph:\n got %+v\nwant %+v", got, g)
	}
}

// TestWriteYAMLRoundTrip: the YAML decodes into the same Graph through its
// JSON tags (sigs.k8s.io/yaml), names that look like numbers included.
func TestWriteYAMLRoundTrip(t *testing.T) {
	for _, g := range []Graph{formatGraph(), OnlineBoutique()} {
		var b bytes.Buffer
		if err := WriteYAML(&b, g); err != nil {
			t.Fatal(err)
		}
		var got Graph
		if err := yaml.UnmarshalStrict(b.Bytes(), &got); err != nil {
			t.Fatalf("decoding WriteYAML's output: %v\n%s", err, b.String())
		}
		if !slices.Equal(got.Services, g.Services) || !slices.Equal(got.Edges, g.Edges) {
			t.Fatalf("round trip changed the graph:\n got %+v\nwant %+v", got, g)
		}
	}
}

// FuzzWriteCSVRoundTrip: any valid graph of two services and one edge,
// whatever the names and the fan-out, survives WriteCSV → ParseCallGraphCSV
// and WriteYAML → yaml; an invalid one is refused by every writer.
func FuzzWriteCSVRoundTrip(f *testing.F) {
	f.Add("api.v2-gateway", "ts-order-service", 0.67)
	f.Add("a", "b", 1e-300)
	f.Add(`a"b`, "c,d", 3.0)
	f.Add("yes", "null", 0.0)
	f.Add(" a", "a", math.NaN())
	f.Fuzz(func(t *testing.T, caller, callee string, fanOut float64) {
		g := Graph{Services: []string{caller, callee}, Edges: []Edge{{Caller: caller, Callee: callee, FanOut: fanOut}}}
		if g.Validate() != nil {
			for _, write := range []func(*bytes.Buffer, Graph) error{
				func(b *bytes.Buffer, g Graph) error { return WriteCSV(b, g) },
				func(b *bytes.Buffer, g Graph) error { return WriteYAML(b, g) },
				func(b *bytes.Buffer, g Graph) error { return WriteDOT(b, g) },
			} {
				if write(&bytes.Buffer{}, g) == nil {
					t.Fatalf("an invalid graph was written: %+v", g)
				}
			}
			return
		}
		// The CSV reader trims spaces around names and reads CSV fields,
		// so only names it can represent are expected back unchanged.
		if strings.TrimSpace(caller) == caller && strings.TrimSpace(callee) == callee &&
			!strings.ContainsAny(caller+callee, "\r\x00") {
			checkCSVRoundTrip(t, g)
		}
		var b bytes.Buffer
		err := WriteYAML(&b, g)
		if !utf8.ValidString(caller) || !utf8.ValidString(callee) {
			if err == nil || WriteDOT(&bytes.Buffer{}, g) == nil {
				t.Fatalf("names that are not UTF-8 were written as YAML or DOT")
			}
			return
		}
		if err != nil {
			t.Fatal(err)
		}
		var got Graph
		if err := yaml.Unmarshal(b.Bytes(), &got); err != nil {
			t.Fatalf("decoding WriteYAML's output: %v\n%s", err, b.String())
		}
		if !slices.Equal(got.Services, g.Services) || !slices.Equal(got.Edges, g.Edges) {
			t.Fatalf("YAML round trip changed the graph:\n got %+v\nwant %+v\n%s", got, g, b.String())
		}
	})
}

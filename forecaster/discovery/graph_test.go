package discovery

import (
	"math"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/foresightscale/foresight/forecaster/topology"
)

func TestBuildGraph(t *testing.T) {
	tests := []struct {
		name        string
		rates       Rates
		want        topology.Graph
		wantRates   []float64
		ingressOnly []string
		selfCalls   []string
		cycle       bool
		warning     string // a warning containing this
		err         string
	}{
		{
			name: "external load and fan-outs from the sums",
			rates: Rates{Calls: []Call{
				{Callee: "front", Rate: 10}, {Caller: "front", Callee: "db", Rate: 20}, {Caller: "front", Callee: "cache", Rate: 6.666666},
			}},
			want: topology.Graph{Services: []string{"cache", "db", "front"}, Edges: []topology.Edge{
				{Caller: "front", Callee: "cache", FanOut: 0.667}, {Caller: "front", Callee: "db", FanOut: 2},
			}},
			wantRates: []float64{6.666666, 20},
		},
		{
			name: "received measured separately (Linkerd inbound)",
			rates: Rates{
				Calls:    []Call{{Caller: "a.v2-api", Callee: "ts-b", Rate: 3}},
				Received: map[string]float64{"a.v2-api": 4, "ts-b": 3, "idle": 0},
			},
			want: topology.Graph{Services: []string{"a.v2-api", "idle", "ts-b"}, Edges: []topology.Edge{
				{Caller: "a.v2-api", Callee: "ts-b", FanOut: 0.75},
			}},
			wantRates: []float64{3},
		},
		{
			name: "received measured separately: an isolated service with traffic is ingress-only, an idle one is not",
			rates: Rates{
				Calls:    []Call{{Caller: "a", Callee: "b", Rate: 1}},
				Received: map[string]float64{"a": 2, "b": 1, "lonely": 3, "idle": 0},
			},
			want: topology.Graph{Services: []string{"a", "b", "idle", "lonely"}, Edges: []topology.Edge{
				{Caller: "a", Callee: "b", FanOut: 0.5},
			}},
			wantRates:   []float64{1},
			ingressOnly: []string{"lonely"},
		},
		{
			name: "repeated pairs add up, ingress-only services listed",
			rates: Rates{Calls: []Call{
				{Callee: "a", Rate: 1}, {Callee: "a", Rate: 1}, {Caller: "a", Callee: "b", Rate: 1}, {Caller: "a", Callee: "b", Rate: 2},
				{Callee: "lonely", Rate: 5},
			}},
			want: topology.Graph{Services: []string{"a", "b", "lonely"}, Edges: []topology.Edge{
				{Caller: "a", Callee: "b", FanOut: 1.5},
			}},
			wantRates:   []float64{3},
			ingressOnly: []string{"lonely"},
		},
		{
			name: "self-calls dropped and reported",
			rates: Rates{Calls: []Call{
				{Callee: "a", Rate: 1}, {Caller: "a", Callee: "a", Rate: 5}, {Caller: "a", Callee: "b", Rate: 1},
			}},
			want: topology.Graph{Services: []string{"a", "b"}, Edges: []topology.Edge{
				{Caller: "a", Callee: "b", FanOut: 1},
			}},
			wantRates: []float64{1},
			selfCalls: []string{"a"},
			warning:   "self-calls",
		},
		{
			name: "NaN, negative and huge rates ignored with a warning",
			rates: Rates{Calls: []Call{
				{Callee: "a", Rate: 1}, {Caller: "a", Callee: "b", Rate: math.NaN()}, {Caller: "a", Callee: "c", Rate: math.Inf(1)},
				{Caller: "a", Callee: "d", Rate: -1}, {Caller: "a", Callee: "e", Rate: 2e9}, {Caller: "a", Callee: "f", Rate: 0.5},
			}},
			want: topology.Graph{Services: []string{"a", "f"}, Edges: []topology.Edge{
				{Caller: "a", Callee: "f", FanOut: 0.5},
			}},
			wantRates: []float64{0.5},
			warning:   "ignored 4 rates",
		},
		{
			name: "zero-rate calls are no edge but keep their services",
			rates: Rates{Calls: []Call{
				{Callee: "a", Rate: 1}, {Caller: "a", Callee: "b", Rate: 0},
			}},
			want:        topology.Graph{Services: []string{"a", "b"}},
			ingressOnly: []string{"a"},
		},
		{
			name: "caller that receives nothing: fan-out unknown",
			rates: Rates{Calls: []Call{
				{Caller: "cron", Callee: "db", Rate: 2},
			}},
			want: topology.Graph{Services: []string{"cron", "db"}, Edges: []topology.Edge{
				{Caller: "cron", Callee: "db", FanOut: 1},
			}},
			wantRates: []float64{2},
			warning:   "fan-out set to 1",
		},
		{
			name: "a cycle is reported, the graph still returned",
			rates: Rates{Calls: []Call{
				{Callee: "a", Rate: 1}, {Caller: "a", Callee: "b", Rate: 1}, {Caller: "b", Callee: "a", Rate: 0.1},
			}},
			want: topology.Graph{Services: []string{"a", "b"}, Edges: []topology.Edge{
				{Caller: "a", Callee: "b", FanOut: 0.909}, {Caller: "b", Callee: "a", FanOut: 0.1},
			}},
			wantRates: []float64{1, 0.1},
			cycle:     true,
			warning:   "cycle",
		},
		{name: "nothing", rates: Rates{}, err: "no services"},
		{name: "only unusable rates", rates: Rates{Calls: []Call{{Callee: "a", Rate: math.NaN()}}}, err: "no services"},
		{name: "only nameless callees", rates: Rates{Calls: []Call{{Caller: "a", Rate: 1}}}, err: "no services"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := BuildGraph(tt.rates)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("err = %v, want one containing %q", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got.Graph.Services, tt.want.Services) || !slices.Equal(got.Graph.Edges, tt.want.Edges) {
				t.Errorf("graph\n got %+v\nwant %+v", got.Graph, tt.want)
			}
			var rates []float64
			for i, r := range got.EdgeRates {
				if e := got.Graph.Edges[i]; r.Caller != e.Caller || r.Callee != e.Callee {
					t.Errorf("EdgeRates[%d] is %s→%s, edge %s→%s", i, r.Caller, r.Callee, e.Caller, e.Callee)
				}
				rates = append(rates, r.Rate)
			}
			if !slices.Equal(rates, tt.wantRates) {
				t.Errorf("edge rates %v, want %v", rates, tt.wantRates)
			}
			if !slices.Equal(got.IngressOnly, tt.ingressOnly) {
				t.Errorf("ingress-only %v, want %v", got.IngressOnly, tt.ingressOnly)
			}
			if !slices.Equal(got.SelfCalls, tt.selfCalls) {
				t.Errorf("self-calls %v, want %v", got.SelfCalls, tt.selfCalls)
			}
			if (got.Cycle != "") != tt.cycle {
				t.Errorf("cycle %q, want one: %v", got.Cycle, tt.cycle)
			}
			if tt.warning != "" && !slices.ContainsFunc(got.Warnings, func(w string) bool { return strings.Contains(w, tt.warning) }) {
				t.Errorf("warnings %q, want one containing %q", got.Warnings, tt.warning)
			}
			if tt.warning == "" && len(got.Warnings) > 0 {
				t.Errorf("unexpected warnings %q", got.Warnings)
			}
		})
	}
}

func TestRoundSignificant(t *testing.T) {
	for _, tt := range []struct{ in, want float64 }{
		{0.66666, 0.667}, {2, 2}, {12345, 12300}, {0.0012345, 0.00123}, {1e-300, 1e-300}, {0.9995, 1},
	} {
		if got := roundSignificant(tt.in); got != tt.want {
			t.Errorf("roundSignificant(%v) = %v, want %v", tt.in, got, tt.want)
		}
	}
}

// FuzzBuildGraph: calls from text lines "caller,callee,rate" (an empty
// caller is external), with or without measured received rates. No panic;
// an accepted graph is valid, sorted, holds every usable named service, has
// no loop and finite positive fan-outs, and its edge rates line up.
func FuzzBuildGraph(f *testing.F) {
	f.Add(",a,1\na,b,2\nb,c,0.5\n", false)
	f.Add("a,a,1\n,a,NaN\n,b,1e300\n", true)
	f.Add("a,b,1\nb,a,1\n", false)
	f.Add(",x,0\nx,y,0\n", true)
	f.Add("", false)
	f.Fuzz(func(t *testing.T, text string, withReceived bool) {
		var r Rates
		if withReceived {
			r.Received = map[string]float64{}
		}
		for line := range strings.SplitSeq(text, "\n") {
			fields := strings.SplitN(line, ",", 3)
			if len(fields) != 3 {
				continue
			}
			rate, err := strconv.ParseFloat(fields[2], 64)
			if err != nil {
				continue
			}
			r.Calls = append(r.Calls, Call{Caller: fields[0], Callee: fields[1], Rate: rate})
			if withReceived && fields[1] != "" {
				r.Received[fields[1]] += rate
			}
		}
		got, err := BuildGraph(r)
		if err != nil {
			return
		}
		g := got.Graph
		if err := g.Validate(); err != nil {
			t.Fatalf("invalid graph: %v", err)
		}
		if !slices.IsSorted(g.Services) {
			t.Fatalf("services not sorted: %q", g.Services)
		}
		if len(got.EdgeRates) != len(g.Edges) {
			t.Fatalf("%d edge rates for %d edges", len(got.EdgeRates), len(g.Edges))
		}
		for i, e := range g.Edges {
			if i > 0 && (g.Edges[i-1].Caller > e.Caller || g.Edges[i-1].Caller == e.Caller && g.Edges[i-1].Callee >= e.Callee) {
				t.Fatalf("edges not sorted at %d", i)
			}
			if !(e.FanOut > 0) || math.IsInf(e.FanOut, 0) {
				t.Fatalf("edge %+v: fan-out not finite and positive", e)
			}
			if r := got.EdgeRates[i]; r.Caller != e.Caller || r.Callee != e.Callee || !(r.Rate > 0) || math.IsInf(r.Rate, 0) {
				t.Fatalf("edge rate %+v for edge %+v", r, e)
			}
		}
		for _, c := range r.Calls {
			if c.Callee != "" && usable(c.Rate) && g.Index(c.Callee) < 0 {
				t.Fatalf("callee %q of a usable call is missing", c.Callee)
			}
		}
	})
}

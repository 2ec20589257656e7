// Package discovery finds an application's call graph in the metrics a
// service mesh or a tracing pipeline already exports to Prometheus: Istio's
// istio_requests_total, Linkerd's request_total / response_total, and the
// OpenTelemetry servicegraph connector's (or Tempo's)
// traces_service_graph_request_total. Each gives request rates per
// caller → callee pair; the fan-out of a call is its rate over the rate the
// caller receives.
//
// The package has two halves: Discover runs the instant queries for a mesh
// and turns the answers into Rates; BuildGraph, pure, turns Rates into a
// topology.Graph.
package discovery

import (
	"cmp"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"

	"github.com/foresightscale/foresight/forecaster/topology"
	"github.com/foresightscale/foresight/internal/textlimit"
)

// Call is the request rate, in req/s averaged over the discovery window, from
// Caller to Callee. An empty Caller is traffic from outside the application
// (an ingress gateway, an uninstrumented client, another namespace).
type Call struct {
	Caller, Callee string
	Rate           float64
}

// Rates is what a mesh reports over the window.
type Rates struct {
	Calls []Call
	// Received, when the mesh measures it separately (Linkerd's inbound
	// counters), is the total rate each service receives. Otherwise a
	// service receives the sum of the calls into it, external ones included.
	Received map[string]float64
}

// MaxRate is the largest rate, in req/s, taken as real. A larger one comes
// from a counter reset gone wrong or a broken exporter, and is ignored.
const MaxRate = 1e9

// EdgeRate is the measured rate of one edge of the graph, in req/s.
type EdgeRate struct {
	Caller, Callee string
	Rate           float64
}

// Graph is the call graph BuildGraph found and what it noticed on the way.
type Graph struct {
	// Graph has the services sorted by name and the edges by caller then
	// callee. It passes topology.Graph.Validate but may have a cycle.
	Graph topology.Graph
	// EdgeRates holds each edge's rate, in the order of Graph.Edges.
	EdgeRates []EdgeRate
	// Received is the rate each service receives (req/s).
	Received map[string]float64
	// IngressOnly are the services seen only as targets of external
	// traffic: no call to or from another service.
	IngressOnly []string
	// SelfCalls are the services whose calls to themselves were dropped (a
	// graph edge cannot be a loop; the load is already in what they receive).
	SelfCalls []string
	// Cycle, when not empty, says where the graph has a cycle. The forecasting
	// model copes with cycles; the synthetic generator and the simulator do not.
	Cycle string
	// Warnings are things the user should know: ignored rates, unknown
	// fan-outs, the cycle.
	Warnings []string
}

// maxQuoted bounds how much of a name a warning quotes.
const maxQuoted = 64

func quote(s string) string { return textlimit.Quote(s, maxQuoted) }

// roundSignificant rounds x to 3 significant digits: fan-outs are averages
// over a window, and more digits would only be noise that makes two runs
// differ.
func roundSignificant(x float64) float64 {
	v, err := strconv.ParseFloat(strconv.FormatFloat(x, 'g', 3, 64), 64)
	if err != nil { // cannot happen for a finite x
		return x
	}
	return v
}

// usable reports whether a rate can be taken as a measurement.
func usable(rate float64) bool { return rate >= 0 && rate <= MaxRate } // false for NaN

// BuildGraph turns measured rates into a call graph. Rates that are NaN,
// negative or above MaxRate are ignored with a warning; calls with a zero
// rate are no edge (nothing was called in the window) but their services are
// kept. Self-calls are dropped and reported. A caller that receives nothing
// measurable gets fan-out 1 (unknown) and a warning. An error means no
// service at all, or a graph over topology's limits.
func BuildGraph(r Rates) (*Graph, error) {
	out := &Graph{Received: make(map[string]float64)}
	services := make(map[string]bool)
	edges := make(map[[2]string]float64)
	external := make(map[string]float64)
	var ignored []string
	self := make(map[string]bool)
	for _, c := range r.Calls {
		if c.Callee == "" {
			continue // a call to nothing we can name; the querier warns
		}
		if !usable(c.Rate) {
			ignored = append(ignored, fmt.Sprintf("%s→%s (%v)", quote(c.Caller), quote(c.Callee), c.Rate))
			continue
		}
		services[c.Callee] = true
		if c.Caller == "" {
			external[c.Callee] += c.Rate
			continue
		}
		services[c.Caller] = true
		if c.Caller == c.Callee {
			self[c.Caller] = true
			continue
		}
		edges[[2]string{c.Caller, c.Callee}] += c.Rate
	}
	for _, s := range slices.Sorted(maps.Keys(r.Received)) {
		if s == "" {
			continue
		}
		rate := r.Received[s]
		if !usable(rate) {
			ignored = append(ignored, fmt.Sprintf("received by %s (%v)", quote(s), rate))
			continue
		}
		services[s] = true
		out.Received[s] = rate
	}
	if len(ignored) > 0 {
		slices.Sort(ignored)
		out.Warnings = append(out.Warnings, fmt.Sprintf("ignored %d rates that are NaN, negative or above %g req/s: %s",
			len(ignored), float64(MaxRate), joinLimited(ignored)))
	}
	if len(services) == 0 {
		return nil, errors.New("no services in the rates")
	}
	if len(services) > topology.MaxServices || len(edges) > topology.MaxEdges {
		return nil, fmt.Errorf("%d services and %d edges, over the limits of %d and %d",
			len(services), len(edges), topology.MaxServices, topology.MaxEdges)
	}
	// What each service receives: measured when the mesh says, else the sum
	// of the calls into it.
	if r.Received == nil {
		for s, rate := range external {
			out.Received[s] += rate
		}
		for e, rate := range edges {
			out.Received[e[1]] += rate
		}
	}

	out.Graph.Services = slices.Sorted(maps.Keys(services))
	keys := slices.SortedFunc(maps.Keys(edges), func(a, b [2]string) int {
		return cmp.Or(cmp.Compare(a[0], b[0]), cmp.Compare(a[1], b[1]))
	})
	inEdge := make(map[string]bool)
	var unknownFanOut []string
	for _, k := range keys {
		rate := edges[k]
		if rate == 0 {
			continue // the series exists, but nothing was called in the window
		}
		fan := 1.0
		if received := out.Received[k[0]]; received > 0 {
			fan = roundSignificant(rate / received)
		} else {
			unknownFanOut = append(unknownFanOut, quote(k[0])+"→"+quote(k[1]))
		}
		out.Graph.Edges = append(out.Graph.Edges, topology.Edge{Caller: k[0], Callee: k[1], FanOut: fan})
		out.EdgeRates = append(out.EdgeRates, EdgeRate{Caller: k[0], Callee: k[1], Rate: rate})
		inEdge[k[0]], inEdge[k[1]] = true, true
	}
	if len(unknownFanOut) > 0 {
		out.Warnings = append(out.Warnings, fmt.Sprintf("fan-out set to 1 (unknown) where the caller receives no measured requests: %s",
			joinLimited(unknownFanOut)))
	}
	for _, s := range out.Graph.Services {
		// Traffic from outside: the external calls, or what a mesh that
		// measures it separately says the service receives.
		if !inEdge[s] && (external[s] > 0 || r.Received != nil && out.Received[s] > 0) {
			out.IngressOnly = append(out.IngressOnly, s)
		}
	}
	out.SelfCalls = slices.Sorted(maps.Keys(self))
	if len(out.SelfCalls) > 0 {
		out.Warnings = append(out.Warnings, fmt.Sprintf("dropped the self-calls of %s", joinLimited(quoteAll(out.SelfCalls))))
	}
	if err := out.Graph.Validate(); err != nil {
		return nil, fmt.Errorf("discovered graph: %w", err)
	}
	if _, err := out.Graph.TopologicalOrder(); err != nil {
		out.Cycle = err.Error()
		out.Warnings = append(out.Warnings, out.Cycle+": the forecasting model copes with cycles, the synthetic generator and the simulator do not")
	}
	return out, nil
}

func quoteAll(names []string) []string {
	q := make([]string, len(names))
	for i, n := range names {
		q[i] = quote(n)
	}
	return q
}

// maxListed bounds how many items a warning lists.
const maxListed = 10

func joinLimited(items []string) string {
	if len(items) <= maxListed {
		return fmt.Sprint(items)
	}
	return fmt.Sprintf("%v and %d more", items[:maxListed], len(items)-maxListed)
}

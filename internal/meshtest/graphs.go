// Package meshtest writes the history a service mesh or a tracing pipeline
// would have left in Prometheus for a synthetic application: Istio's
// istio_requests_total, Linkerd's request_total/response_total, or the
// OpenTelemetry servicegraph connector's traces_service_graph_request_total,
// plus cAdvisor's container CPU counter and kube-state-metrics' replica
// gauge. The values come from a forecaster/synthetic generator, so a test
// knows exactly which call graph, rates and fan-outs the series encode.
// Queries gives the PromQL templates that read the per-service features back.
package meshtest

import (
	"cmp"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"

	"github.com/foresightscale/foresight/forecaster/topology"
)

// Bookinfo is Istio's Bookinfo sample: productpage calls details and reviews
// once per page; two of the three reviews versions call ratings, so reviews
// makes 0.67 calls to ratings per request. Services are sorted by name and
// edges by caller then callee, the order discovery returns.
func Bookinfo() topology.Graph {
	return topology.Graph{
		Services: []string{"details", "productpage", "ratings", "reviews"},
		Edges: []topology.Edge{
			{Caller: "productpage", Callee: "details", FanOut: 1},
			{Caller: "productpage", Callee: "reviews", FanOut: 1},
			{Caller: "reviews", Callee: "ratings", FanOut: 0.67},
		},
	}
}

// nameWords are the stems of Layered's service names.
var nameWords = []string{
	"order", "payment", "user", "route", "station", "train", "ticket", "seat", "price", "travel",
	"food", "consign", "security", "auth", "notify", "basic", "config", "contacts", "assurance", "voucher",
}

// layeredName gives service i a name in one of the styles real clusters use:
// hyphens (Train-Ticket's ts-order-service), dots and versions
// (api.v2-gateway), hyphen-digit suffixes. Never an underscore: the shared
// wide CSV format separates service and metric with one.
func layeredName(i int) string {
	w := nameWords[i%len(nameWords)]
	round := i / len(nameWords)
	switch i % 4 {
	case 0:
		return fmt.Sprintf("ts-%s-service-%d", w, round)
	case 1:
		return fmt.Sprintf("%s.v%d-api", w, round+1)
	case 2:
		return fmt.Sprintf("%s-%d.svc", w, round)
	default:
		return fmt.Sprintf("%s-worker-%d", w, round)
	}
}

// Layered returns a call graph of n services in min(depth, n) layers: the
// first layer are the roots (where external load enters), and every service
// of layer k is called by one or two services of layer k-1, so every call
// chain is at most depth services long and every service is reached from a
// root. Every service of a layer but the last calls at least one service.
// Fan-outs vary between 0.2 and 3. The same (n, depth, seed) gives the same
// graph; services are sorted by name and edges by caller then callee.
func Layered(n, depth int, seed int64) topology.Graph {
	if n <= 0 {
		return topology.Graph{}
	}
	depth = max(1, min(depth, n))
	rng := rand.New(rand.NewPCG(uint64(seed), 0x6d657368)) // "mesh"
	names := make([]string, n)
	for i := range names {
		names[i] = layeredName(i)
	}
	// Roots take about an eighth of the services (at least one); the rest
	// are spread evenly over the deeper layers.
	roots := 1
	if depth > 1 {
		roots = max(1, min(n-(depth-1), n/8))
	} else {
		roots = n
	}
	layers := [][]string{names[:roots]}
	rest := names[roots:]
	for k := 1; k < depth; k++ {
		size := len(rest) / (depth - k)
		layers = append(layers, rest[:size])
		rest = rest[size:]
	}
	fanOut := func() float64 { return math.Round((0.2+2.8*rng.Float64())*100) / 100 }
	var edges []topology.Edge
	for k := 1; k < len(layers); k++ {
		callers := layers[k-1]
		hasCallee := make([]bool, len(callers))
		for _, callee := range layers[k] {
			picks := rng.Perm(len(callers))[:min(len(callers), 1+rng.IntN(2))]
			for _, p := range picks {
				hasCallee[p] = true
				edges = append(edges, topology.Edge{Caller: callers[p], Callee: callee, FanOut: fanOut()})
			}
		}
		// A caller nobody picked calls a random service of the next layer.
		for p, ok := range hasCallee {
			if ok {
				continue
			}
			callee := layers[k][rng.IntN(len(layers[k]))]
			edges = append(edges, topology.Edge{Caller: callers[p], Callee: callee, FanOut: fanOut()})
		}
	}
	slices.Sort(names)
	slices.SortFunc(edges, compareEdges)
	return topology.Graph{Services: names, Edges: edges}
}

func compareEdges(a, b topology.Edge) int {
	return cmp.Or(cmp.Compare(a.Caller, b.Caller), cmp.Compare(a.Callee, b.Callee))
}

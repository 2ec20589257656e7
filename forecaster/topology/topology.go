// Package topology describes an application's services and its call graph.
package topology

import (
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"strconv"
	"strings"

	"github.com/foresightscale/foresight/internal/textlimit"
)

// Edge is a call from Caller to Callee. FanOut is how many calls to the callee
// one request to the caller makes on average (1 when unknown).
type Edge struct {
	Caller string  `json:"caller"`
	Callee string  `json:"callee"`
	FanOut float64 `json:"fanOut,omitempty"`
}

// Graph is a set of services (in a fixed node order) and the calls between them.
type Graph struct {
	Services []string `json:"services"`
	Edges    []Edge   `json:"edges"`
}

// Index returns the node index of a service, or -1.
func (g Graph) Index(service string) int { return slices.Index(g.Services, service) }

// Limits on a topology, far above any real application, so that a wrong file
// fails with a clear error instead of exhausting memory: Adjacency is a dense
// N×N matrix (10000 services: 800 MB), TopologicalOrder and the models are
// per service and per edge.
const (
	MaxServices = 10000
	MaxEdges    = 100000
)

// Validate checks that every edge names known services, nothing repeats (a
// service or a caller→callee edge: a repeated edge would count its calls
// twice), fan-outs are finite and not negative, and the graph is within
// MaxServices and MaxEdges.
func (g Graph) Validate() error {
	if len(g.Services) == 0 {
		return errors.New("topology has no services")
	}
	if len(g.Services) > MaxServices || len(g.Edges) > MaxEdges {
		return fmt.Errorf("topology has %d services and %d edges, over the limits of %d and %d",
			len(g.Services), len(g.Edges), MaxServices, MaxEdges)
	}
	seen := make(map[string]bool, len(g.Services))
	for i, s := range g.Services {
		if strings.TrimSpace(s) == "" {
			return fmt.Errorf("services[%d] is empty", i)
		}
		if seen[s] {
			return fmt.Errorf("services[%d]: service %s listed twice", i, quoteName(s))
		}
		seen[s] = true
	}
	edges := make(map[[2]string]int, len(g.Edges))
	for i, e := range g.Edges {
		if !seen[e.Caller] {
			return fmt.Errorf("edges[%d]: unknown caller %s", i, quoteName(e.Caller))
		}
		if !seen[e.Callee] {
			return fmt.Errorf("edges[%d]: unknown callee %s", i, quoteName(e.Callee))
		}
		if e.Caller == e.Callee {
			return fmt.Errorf("edges[%d]: service %s calls itself", i, quoteName(e.Caller))
		}
		// Written as !(x >= 0) so that NaN fails too.
		if !(e.FanOut >= 0) || math.IsInf(e.FanOut, 0) {
			return fmt.Errorf("edges[%d]: negative fan-out %v (a fan-out is finite and >= 0)", i, e.FanOut)
		}
		if j, dup := edges[[2]string{e.Caller, e.Callee}]; dup {
			return fmt.Errorf("edges[%d]: %s→%s repeats edges[%d]", i, quoteName(e.Caller), quoteName(e.Callee), j)
		}
		edges[[2]string{e.Caller, e.Callee}] = i
	}
	return nil
}

// maxQuotedName bounds how much of a service name an error quotes.
const maxQuotedName = 64

// quoteName quotes a service name whole when short, else its first
// maxQuotedName bytes (never cut inside a rune) and its length: names come
// from files, and errors end up in logs.
func quoteName(s string) string { return textlimit.Quote(s, maxQuotedName) }

// Roots returns the services nobody calls (where external load enters).
func (g Graph) Roots() []string {
	called := make(map[string]bool)
	for _, e := range g.Edges {
		called[e.Callee] = true
	}
	var roots []string
	for _, s := range g.Services {
		if !called[s] {
			roots = append(roots, s)
		}
	}
	return roots
}

// TopologicalOrder returns the services so that every caller comes before its
// callees, or an error naming a service on a cycle. It runs in
// O(services + edges).
func (g Graph) TopologicalOrder() ([]string, error) {
	indegree := make(map[string]int, len(g.Services))
	callees := make(map[string][]string, len(g.Services))
	for _, e := range g.Edges {
		indegree[e.Callee]++
		callees[e.Caller] = append(callees[e.Caller], e.Callee)
	}
	var queue, order []string
	for _, s := range g.Services {
		if indegree[s] == 0 {
			queue = append(queue, s)
		}
	}
	for len(queue) > 0 {
		s := queue[0]
		queue = queue[1:]
		order = append(order, s)
		for _, callee := range callees[s] {
			indegree[callee]--
			if indegree[callee] == 0 {
				queue = append(queue, callee)
			}
		}
	}
	if len(order) != len(g.Services) {
		for _, s := range g.Services {
			if indegree[s] > 0 {
				return nil, fmt.Errorf("call graph has a cycle through %s", quoteName(s))
			}
		}
	}
	return order, nil
}

// Adjacency returns the row-normalised adjacency with self loops, Â[i][j] > 0
// when j calls i or i calls j, or i == j, as a dense N×N matrix (row i = node i).
// Models mix neighbour signals with X·Â, so column j of the product aggregates
// node j's neighbourhood; the matrix is symmetric before normalisation.
func (g Graph) Adjacency() [][]float64 {
	n := len(g.Services)
	a := make([][]float64, n)
	for i := range a {
		a[i] = make([]float64, n)
		a[i][i] = 1
	}
	index := make(map[string]int, n)
	for i, s := range g.Services {
		if _, dup := index[s]; !dup {
			index[s] = i // the first, as Index
		}
	}
	for _, e := range g.Edges {
		i, okI := index[e.Caller]
		j, okJ := index[e.Callee]
		if !okI || !okJ {
			continue
		}
		a[i][j], a[j][i] = 1, 1
	}
	// Column-normalise so that (X·Â)[:, j] is the mean over j's neighbourhood.
	for j := 0; j < n; j++ {
		var sum float64
		for i := 0; i < n; i++ {
			sum += a[i][j]
		}
		for i := 0; i < n; i++ {
			a[i][j] /= sum
		}
	}
	return a
}

// MaxCallGraphBytes bounds the call graph CSV ParseCallGraphCSV reads: the
// Online Boutique graph is 425 bytes.
const MaxCallGraphBytes = 4 << 20

// ParseCallGraphCSV reads "caller,callee[,fanOut]" rows (with that header)
// and returns a graph whose services are listed in order of first appearance
// unless services is given, in which case that node order is kept. Without a
// fanOut column (or with an empty cell) an edge's fan-out is 1. The graph is
// validated; errors name the line and quote at most a prefix of a name.
func ParseCallGraphCSV(r io.Reader, services []string) (Graph, error) {
	lr := &io.LimitedReader{R: r, N: MaxCallGraphBytes + 1}
	reader := csv.NewReader(lr)
	reader.FieldsPerRecord = -1 // a short row gets our error, naming the line
	header, err := reader.Read()
	if err != nil && !errors.Is(err, io.EOF) {
		return Graph{}, callGraphReadError(lr, err)
	}
	for i := range header {
		header[i] = strings.TrimSpace(strings.TrimPrefix(header[i], "\ufeff"))
	}
	withFanOut := len(header) == 3 && header[2] == "fanOut"
	if len(header) < 2 || header[0] != "caller" || header[1] != "callee" || (len(header) > 2 && !withFanOut) {
		return Graph{}, errors.New(`call graph CSV must start with the header "caller,callee" or "caller,callee,fanOut"`)
	}
	g := Graph{Services: slices.Clone(services)}
	known := make(map[string]bool)
	for _, s := range services {
		known[s] = true
	}
	for {
		row, err := reader.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return Graph{}, callGraphReadError(lr, err)
		}
		line, _ := reader.FieldPos(0)
		if len(row) != len(header) {
			return Graph{}, fmt.Errorf("call graph CSV line %d: wrong number of fields, want %s", line, strings.Join(header, ","))
		}
		e := Edge{Caller: strings.TrimSpace(row[0]), Callee: strings.TrimSpace(row[1]), FanOut: 1}
		if withFanOut && strings.TrimSpace(row[2]) != "" {
			v, err := strconv.ParseFloat(strings.TrimSpace(row[2]), 64)
			if err != nil || v <= 0 || math.IsInf(v, 0) || math.IsNaN(v) {
				return Graph{}, fmt.Errorf("call graph CSV line %d: fanOut %s is not a positive number", line, quoteName(row[2]))
			}
			e.FanOut = v
		}
		for _, s := range []string{e.Caller, e.Callee} {
			if !known[s] {
				if services != nil {
					return Graph{}, fmt.Errorf("call graph CSV line %d: service %s is not in the service list", line, quoteName(s))
				}
				known[s] = true
				g.Services = append(g.Services, s)
			}
		}
		g.Edges = append(g.Edges, e)
	}
	if lr.N <= 0 { // the limit cut the file short: never a graph from part of it
		return Graph{}, callGraphReadError(lr, io.ErrUnexpectedEOF)
	}
	if err := g.Validate(); err != nil {
		return Graph{}, fmt.Errorf("call graph CSV: %w", err)
	}
	return g, nil
}

// callGraphReadError wraps a read error, saying so when the input was over
// MaxCallGraphBytes (the limited reader cut it short).
func callGraphReadError(lr *io.LimitedReader, err error) error {
	if lr.N <= 0 {
		return fmt.Errorf("reading call graph CSV: over the %d MiB limit", MaxCallGraphBytes>>20)
	}
	return fmt.Errorf("reading call graph CSV: %w", err)
}

// OnlineBoutique is the call graph of Google's Online Boutique demo (10
// services, 14 edges), the default topology of the demo and the simulator.
// Fan-outs are the per-request call counts seen in the recorded Online
// Boutique metrics (callee req/s over frontend req/s).
func OnlineBoutique() Graph {
	return Graph{
		Services: []string{
			"adservice", "cartservice", "checkoutservice", "currencyservice", "emailservice",
			"frontend", "paymentservice", "productcatalogservice", "recommendationservice", "shippingservice",
		},
		Edges: []Edge{
			{"checkoutservice", "cartservice", 1},
			{"checkoutservice", "currencyservice", 2},
			{"checkoutservice", "emailservice", 1},
			{"checkoutservice", "paymentservice", 1},
			{"checkoutservice", "productcatalogservice", 2},
			{"checkoutservice", "shippingservice", 1},
			{"frontend", "adservice", 1.1},
			{"frontend", "cartservice", 1.9},
			{"frontend", "checkoutservice", 0.09},
			{"frontend", "currencyservice", 5.4},
			{"frontend", "productcatalogservice", 9.5},
			{"frontend", "recommendationservice", 1.4},
			{"frontend", "shippingservice", 0.5},
			{"recommendationservice", "productcatalogservice", 1},
		},
	}
}

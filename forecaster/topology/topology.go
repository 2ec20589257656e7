// Package topology describes an application's services and its call graph.
package topology

import (
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
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

// Validate checks that every edge names known services and nothing repeats.
func (g Graph) Validate() error {
	if len(g.Services) == 0 {
		return errors.New("topology has no services")
	}
	seen := make(map[string]bool, len(g.Services))
	for i, s := range g.Services {
		if strings.TrimSpace(s) == "" {
			return fmt.Errorf("services[%d] is empty", i)
		}
		if seen[s] {
			return fmt.Errorf("service %q listed twice", s)
		}
		seen[s] = true
	}
	for i, e := range g.Edges {
		if !seen[e.Caller] {
			return fmt.Errorf("edges[%d]: unknown caller %q", i, e.Caller)
		}
		if !seen[e.Callee] {
			return fmt.Errorf("edges[%d]: unknown callee %q", i, e.Callee)
		}
		if e.Caller == e.Callee {
			return fmt.Errorf("edges[%d]: service %q calls itself", i, e.Caller)
		}
		if e.FanOut < 0 {
			return fmt.Errorf("edges[%d]: negative fan-out %v", i, e.FanOut)
		}
	}
	return nil
}

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
// callees, or an error naming a service on a cycle.
func (g Graph) TopologicalOrder() ([]string, error) {
	indegree := make(map[string]int, len(g.Services))
	for _, e := range g.Edges {
		indegree[e.Callee]++
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
		for _, e := range g.Edges {
			if e.Caller == s {
				indegree[e.Callee]--
				if indegree[e.Callee] == 0 {
					queue = append(queue, e.Callee)
				}
			}
		}
	}
	if len(order) != len(g.Services) {
		for _, s := range g.Services {
			if indegree[s] > 0 {
				return nil, fmt.Errorf("call graph has a cycle through %q", s)
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
	for _, e := range g.Edges {
		i, j := g.Index(e.Caller), g.Index(e.Callee)
		if i < 0 || j < 0 {
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

// ParseCallGraphCSV reads "caller,callee" rows (with a header) and returns a
// graph whose services are listed in order of first appearance unless
// services is given, in which case that node order is kept.
func ParseCallGraphCSV(r io.Reader, services []string) (Graph, error) {
	rows, err := csv.NewReader(r).ReadAll()
	if err != nil {
		return Graph{}, fmt.Errorf("reading call graph CSV: %w", err)
	}
	if len(rows) == 0 || len(rows[0]) < 2 || rows[0][0] != "caller" || rows[0][1] != "callee" {
		return Graph{}, errors.New(`call graph CSV must start with the header "caller,callee"`)
	}
	g := Graph{Services: slices.Clone(services)}
	known := make(map[string]bool)
	for _, s := range services {
		known[s] = true
	}
	for i, row := range rows[1:] {
		if len(row) < 2 {
			return Graph{}, fmt.Errorf("call graph CSV line %d: want caller,callee", i+2)
		}
		e := Edge{Caller: strings.TrimSpace(row[0]), Callee: strings.TrimSpace(row[1]), FanOut: 1}
		for _, s := range []string{e.Caller, e.Callee} {
			if !known[s] {
				if services != nil {
					return Graph{}, fmt.Errorf("call graph CSV line %d: service %q is not in the service list", i+2, s)
				}
				known[s] = true
				g.Services = append(g.Services, s)
			}
		}
		g.Edges = append(g.Edges, e)
	}
	return g, g.Validate()
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

package topology

import (
	"bufio"
	"encoding/csv"
	"fmt"
	"io"
	"strconv"
	"strings"
	"unicode/utf8"

	"go.yaml.in/yaml/v2"
)

// The writers below print a graph for people and for the tools that read it
// back: CSV for `train --call-graph`, YAML for review and version control,
// Graphviz DOT to look at. Each validates the graph first, so a file they
// write is always one the readers accept.

// checkText refuses names that are not UTF-8: YAML would turn them into
// !!binary values and DOT files are UTF-8 text. (CSV carries any bytes.)
func checkText(g Graph) error {
	for i, s := range g.Services {
		if !utf8.ValidString(s) {
			return fmt.Errorf("services[%d] %s is not valid UTF-8", i, quoteName(s))
		}
	}
	return nil
}

// formatFanOut writes a fan-out in the shortest form that reads back exactly.
func formatFanOut(f float64) string { return strconv.FormatFloat(f, 'g', -1, 64) }

// WriteCSV writes the edges as "caller,callee,fanOut" rows under that header,
// in the graph's edge order, the format ParseCallGraphCSV reads. A fan-out of
// 0 (unknown) is written as an empty cell, which the reader takes as 1, the
// value every consumer already gives an unknown fan-out. Services without any
// edge are not written (the format has no place for them).
func WriteCSV(w io.Writer, g Graph) error {
	if err := g.Validate(); err != nil {
		return fmt.Errorf("write call graph CSV: %w", err)
	}
	cw := csv.NewWriter(w)
	if err := cw.Write([]string{"caller", "callee", "fanOut"}); err != nil {
		return fmt.Errorf("write call graph CSV: %w", err)
	}
	for _, e := range g.Edges {
		fanOut := ""
		if e.FanOut != 0 {
			fanOut = formatFanOut(e.FanOut)
		}
		if err := cw.Write([]string{e.Caller, e.Callee, fanOut}); err != nil {
			return fmt.Errorf("write call graph CSV: %w", err)
		}
	}
	cw.Flush()
	if err := cw.Error(); err != nil {
		return fmt.Errorf("write call graph CSV: %w", err)
	}
	return nil
}

// yamlGraph fixes the key order of the YAML document: services, then edges.
type yamlGraph struct {
	Services []string   `yaml:"services"`
	Edges    []yamlEdge `yaml:"edges"`
}

type yamlEdge struct {
	Caller string  `yaml:"caller"`
	Callee string  `yaml:"callee"`
	FanOut float64 `yaml:"fanOut"`
}

// WriteYAML writes the graph as a YAML document with the keys of Graph's
// JSON form (services, edges: caller, callee, fanOut), so that it also
// decodes into a Graph with sigs.k8s.io/yaml. Names that YAML would read as
// something else (numbers, booleans, null) are quoted.
func WriteYAML(w io.Writer, g Graph) error {
	if err := g.Validate(); err != nil {
		return fmt.Errorf("write call graph YAML: %w", err)
	}
	if err := checkText(g); err != nil {
		return fmt.Errorf("write call graph YAML: %w", err)
	}
	doc := yamlGraph{Services: g.Services, Edges: make([]yamlEdge, len(g.Edges))}
	for i, e := range g.Edges {
		doc.Edges[i] = yamlEdge(e)
	}
	b, err := yaml.Marshal(doc)
	if err != nil {
		return fmt.Errorf("write call graph YAML: %w", err)
	}
	if _, err := w.Write(b); err != nil {
		return fmt.Errorf("write call graph YAML: %w", err)
	}
	return nil
}

// dotEscaper escapes a name for a DOT double-quoted string: a quote and a
// backslash would end or change the string, and a newline is written as \n.
var dotEscaper = strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`, "\r", `\r`)

func dotQuote(s string) string { return `"` + dotEscaper.Replace(s) + `"` }

// WriteDOT writes the graph for Graphviz (`dot -Tsvg`): one node per service,
// so that services without edges show too, and one edge per call labelled
// with its fan-out (unlabelled when unknown, 0). Every name is quoted: service names carry dots and hyphens,
// which DOT's bare identifiers do not allow.
func WriteDOT(w io.Writer, g Graph) error {
	if err := g.Validate(); err != nil {
		return fmt.Errorf("write call graph DOT: %w", err)
	}
	if err := checkText(g); err != nil {
		return fmt.Errorf("write call graph DOT: %w", err)
	}
	bw := bufio.NewWriter(w)
	bw.WriteString("digraph callgraph {\n  rankdir=LR;\n  node [shape=box];\n")
	for _, s := range g.Services {
		fmt.Fprintf(bw, "  %s;\n", dotQuote(s))
	}
	for _, e := range g.Edges {
		if e.FanOut == 0 { // unknown: an unlabelled edge, not a misleading "0"
			fmt.Fprintf(bw, "  %s -> %s;\n", dotQuote(e.Caller), dotQuote(e.Callee))
			continue
		}
		fmt.Fprintf(bw, "  %s -> %s [label=%s];\n", dotQuote(e.Caller), dotQuote(e.Callee), dotQuote(formatFanOut(e.FanOut)))
	}
	bw.WriteString("}\n")
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("write call graph DOT: %w", err)
	}
	return nil
}

package training

import (
	"fmt"
	"slices"
	"strings"

	"github.com/foresightscale/foresight/forecaster/source"
	"github.com/foresightscale/foresight/forecaster/topology"
	"github.com/foresightscale/foresight/internal/textlimit"
	"github.com/foresightscale/foresight/models/dataset"
)

// MinObservedFraction is the share of the history's steps a series must be
// observed at to be a model input: below it, the few samples would teach
// the model about gaps, not about the service.
const MinObservedFraction = 0.1

// DataReport says what training made of the history: which services and
// features it modelled, and what it left out and why. It is part of
// report.json, and `foresight train` prints it.
type DataReport struct {
	Services []string         `json:"services"`
	Features []source.Feature `json:"features"`
	Targets  []source.Feature `json:"targets"`
	// LeftOut are services in the history with neither a usable request
	// rate nor a usable CPU series: nothing to forecast or size from.
	LeftOut []LeftOut `json:"leftOut,omitempty"`
	// DroppedFeatures are features no modelled service has usable data for.
	DroppedFeatures []source.Feature `json:"droppedFeatures,omitempty"`
	// Unobserved lists, per feature, the modelled services without a usable
	// series of it: they are modelled without it.
	Unobserved map[source.Feature][]string `json:"unobserved,omitempty"`
	// Edges is the number of call-graph edges the model uses; DroppedEdges
	// are those naming a service that is not modelled.
	Edges        int             `json:"edges"`
	DroppedEdges []topology.Edge `json:"droppedEdges,omitempty"`
}

// LeftOut is a service training did not model.
type LeftOut struct {
	Service string `json:"service"`
	Reason  string `json:"reason"`
}

// usability is what the survey measured of one series: the share of the
// history's steps with a real sample. A constant series is usable: a
// service that always runs one replica says so.
type usability struct{ observed float64 }

func (u usability) usable() bool { return u.observed >= MinObservedFraction }

func (u usability) String() string {
	if u.observed == 0 {
		return "no samples"
	}
	return fmt.Sprintf("observed at %.1f%% of steps (needs %.0f%%)", 100*u.observed, 100*MinObservedFraction)
}

// survey measures every series of an aligned history.
func survey(ds *dataset.Dataset) [][]usability {
	out := make([][]usability, len(ds.Features))
	for f := range ds.Features {
		out[f] = make([]usability, len(ds.Services))
		for n := range ds.Services {
			seen := 0
			for t := range ds.Steps {
				if ds.Observed[f][t][n] {
					seen++
				}
			}
			out[f][n] = usability{observed: float64(seen) / float64(ds.Steps)}
		}
	}
	return out
}

// choose decides the services, features and targets from the survey: a
// service is modelled when its request rate or CPU is usable; a feature when
// some modelled service has it; the targets are the wanted ones that remain.
// Series that are not usable are reported and become unobserved inputs.
func choose(ds *dataset.Dataset, use [][]usability, wantTargets []source.Feature, graph []topology.Edge) (*DataReport, error) {
	primary := func(f source.Feature) bool { return f == source.Requests || f == source.CPU }
	if !slices.ContainsFunc(ds.Features, primary) {
		return nil, fmt.Errorf("the features %v include neither requests nor cpu: nothing to size replicas from", ds.Features)
	}
	r := &DataReport{Unobserved: map[source.Feature][]string{}}
	for n, svc := range ds.Services {
		var why []string
		keep := false
		for f, feat := range ds.Features {
			if primary(feat) {
				if use[f][n].usable() {
					keep = true
				} else {
					why = append(why, fmt.Sprintf("%s: %s", feat, use[f][n]))
				}
			}
		}
		if keep {
			r.Services = append(r.Services, svc)
		} else {
			r.LeftOut = append(r.LeftOut, LeftOut{Service: svc, Reason: "no usable request rate or CPU (" + strings.Join(why, "; ") + ")"})
		}
	}
	if len(r.Services) == 0 {
		return r, fmt.Errorf("no service has a usable request-rate or CPU series (observed at ≥ %.0f%% of steps): %d services seen; check the queries and the time range",
			100*MinObservedFraction, len(ds.Services))
	}
	for f, feat := range ds.Features {
		var without []string
		for n, svc := range ds.Services {
			if slices.Contains(r.Services, svc) && !use[f][n].usable() {
				without = append(without, svc)
			}
		}
		if len(without) == len(r.Services) {
			r.DroppedFeatures = append(r.DroppedFeatures, feat)
			continue
		}
		r.Features = append(r.Features, feat)
		if len(without) > 0 {
			r.Unobserved[feat] = without
		}
	}
	for _, t := range wantTargets {
		if slices.Contains(r.Features, t) {
			r.Targets = append(r.Targets, t)
		}
	}
	if len(r.Targets) == 0 {
		return r, fmt.Errorf("none of the forecast targets %v has usable data", wantTargets)
	}
	if len(r.Unobserved) == 0 {
		r.Unobserved = nil
	}
	for _, e := range graph {
		if slices.Contains(r.Services, e.Caller) && slices.Contains(r.Services, e.Callee) {
			r.Edges++
		} else {
			r.DroppedEdges = append(r.DroppedEdges, e)
		}
	}
	return r, nil
}

// keptEdges returns the edges between modelled services.
func (r *DataReport) keptEdges(graph []topology.Edge) []topology.Edge {
	var out []topology.Edge
	for _, e := range graph {
		if slices.Contains(r.Services, e.Caller) && slices.Contains(r.Services, e.Callee) {
			out = append(out, e)
		}
	}
	return out
}

// Summary is the report in a few lines for a terminal: each list is cut
// after a few names so a 500-service application is not a wall of text.
func (r *DataReport) Summary() []string {
	lines := []string{fmt.Sprintf("modelled %d services, features %v, targets %v, %d call-graph edges",
		len(r.Services), r.Features, r.Targets, r.Edges)}
	if len(r.LeftOut) > 0 {
		names := make([]string, len(r.LeftOut))
		for i, l := range r.LeftOut {
			names[i] = l.Service
		}
		lines = append(lines, fmt.Sprintf("left out %d services with no usable request rate or CPU: %s (report.json says why for each)",
			len(names), textlimit.List(names, 8)))
	}
	if len(r.DroppedFeatures) > 0 {
		lines = append(lines, fmt.Sprintf("features with no usable data in any modelled service, not used: %v", r.DroppedFeatures))
	}
	for _, f := range source.AllFeatures {
		if s := r.Unobserved[f]; len(s) > 0 {
			lines = append(lines, fmt.Sprintf("modelled without %s (no usable series): %d services: %s", f, len(s), textlimit.List(s, 8)))
		}
	}
	if len(r.DroppedEdges) > 0 {
		lines = append(lines, fmt.Sprintf("call-graph edges naming services that are not modelled, not used: %d (e.g. %s→%s)",
			len(r.DroppedEdges), r.DroppedEdges[0].Caller, r.DroppedEdges[0].Callee))
	}
	return lines
}

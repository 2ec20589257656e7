package training

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/foresightscale/foresight/forecaster/source"
	"github.com/foresightscale/foresight/forecaster/topology"
	"github.com/foresightscale/foresight/models/dataset"
)

// history builds an aligned dataset of steps steps where observed(f, n, t)
// says which samples are real.
func history(services []string, features []source.Feature, steps int, observed func(f, n, t int) bool) *dataset.Dataset {
	ds := &dataset.Dataset{Services: services, Features: features, Steps: steps, Step: time.Minute}
	ds.Raw = make([][][]float64, len(features))
	ds.Observed = make([][][]bool, len(features))
	for f := range features {
		ds.Raw[f] = make([][]float64, steps)
		ds.Observed[f] = make([][]bool, steps)
		for t := range steps {
			ds.Raw[f][t] = make([]float64, len(services))
			ds.Observed[f][t] = make([]bool, len(services))
			for n := range services {
				ds.Observed[f][t][n] = observed(f, n, t)
				ds.Raw[f][t][n] = float64(t % 7)
			}
		}
	}
	return ds
}

func TestChooseShapesTheModelFromTheHistory(t *testing.T) {
	services := []string{"api.gw", "orders", "idle-batch", "sparse"}
	features := []source.Feature{source.CPU, source.Requests, source.Latency}
	// orders never reports requests; idle-batch has only latency; sparse
	// has CPU at 5 % of steps only; nobody but api.gw has latency... and
	// idle-batch.
	ds := history(services, features, 100, func(f, n, t int) bool {
		switch services[n] {
		case "api.gw":
			return true
		case "orders":
			return features[f] == source.CPU
		case "idle-batch":
			return features[f] == source.Latency
		default:
			return features[f] == source.CPU && t%20 == 0
		}
	})
	edges := []topology.Edge{{Caller: "api.gw", Callee: "orders", FanOut: 2}, {Caller: "orders", Callee: "idle-batch", FanOut: 1}}
	r, err := choose(ds, survey(ds), []source.Feature{source.Requests, source.CPU}, edges)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(r.Services, []string{"api.gw", "orders"}) {
		t.Errorf("services = %v, want api.gw and orders", r.Services)
	}
	if len(r.LeftOut) != 2 || r.LeftOut[0].Service != "idle-batch" || !strings.Contains(r.LeftOut[1].Reason, "observed at 5.0% of steps") {
		t.Errorf("left out = %+v", r.LeftOut)
	}
	if !slices.Equal(r.Features, features) || !slices.Equal(r.Targets, []source.Feature{source.Requests, source.CPU}) {
		t.Errorf("features %v targets %v", r.Features, r.Targets)
	}
	if !slices.Equal(r.Unobserved[source.Requests], []string{"orders"}) || !slices.Equal(r.Unobserved[source.Latency], []string{"orders"}) {
		t.Errorf("unobserved = %v", r.Unobserved)
	}
	if r.Edges != 1 || len(r.DroppedEdges) != 1 || !slices.Equal(r.keptEdges(edges), edges[:1]) {
		t.Errorf("edges %d, dropped %v", r.Edges, r.DroppedEdges)
	}
	summary := strings.Join(r.Summary(), "\n")
	for _, want := range []string{"modelled 2 services", "left out 2 services", "modelled without requests (no usable series): 1 services: orders"} {
		if !strings.Contains(summary, want) {
			t.Errorf("summary lacks %q:\n%s", want, summary)
		}
	}
}

func TestChooseRefuses(t *testing.T) {
	tests := []struct {
		name     string
		features []source.Feature
		targets  []source.Feature
		observed func(f, n, t int) bool
		want     string
	}{
		{"no sizing feature", []source.Feature{source.Latency}, []source.Feature{source.Requests}, func(int, int, int) bool { return true }, "neither requests nor cpu"},
		{"nothing usable", []source.Feature{source.Requests}, []source.Feature{source.Requests}, func(int, int, int) bool { return false }, "no service has a usable"},
		{"no target left", []source.Feature{source.CPU, source.Latency}, []source.Feature{source.Requests}, func(int, int, int) bool { return true }, "none of the forecast targets"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ds := history([]string{"a", "b"}, tc.features, 20, tc.observed)
			if _, err := choose(ds, survey(ds), tc.targets, nil); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error = %v, want %q", err, tc.want)
			}
		})
	}
}

// FuzzChoose: whatever is observed, choose never panics, and what it keeps
// is consistent: every modelled service has a usable request rate or CPU,
// every history service is modelled or left out, unobserved lists only
// modelled services of kept features, targets are kept features, and every
// kept edge joins modelled services.
func FuzzChoose(f *testing.F) {
	f.Add(uint8(3), uint8(5), uint64(0xdeadbeef), uint8(0x1f))
	f.Add(uint8(1), uint8(1), uint64(0), uint8(1))
	f.Add(uint8(7), uint8(40), uint64(1<<63), uint8(0x06))
	f.Fuzz(func(t *testing.T, nServices, steps uint8, mask uint64, featureBits uint8) {
		nN, nT := int(nServices%8)+1, int(steps%50)+1
		var features []source.Feature
		for i, feat := range source.AllFeatures {
			if featureBits&(1<<i) != 0 {
				features = append(features, feat)
			}
		}
		if len(features) == 0 {
			return
		}
		services := make([]string, nN)
		for n := range services {
			services[n] = string(rune('a' + n))
		}
		ds := history(services, features, nT, func(f, n, t int) bool {
			return mask>>((f*7+n*3+t)%64)&1 == 1
		})
		var edges []topology.Edge
		for n := 1; n < nN; n++ {
			edges = append(edges, topology.Edge{Caller: services[n-1], Callee: services[n], FanOut: 1})
		}
		use := survey(ds)
		r, err := choose(ds, use, []source.Feature{source.Requests, source.CPU}, edges)
		if err != nil {
			return
		}
		if len(r.Services)+len(r.LeftOut) != nN {
			t.Fatalf("%d modelled + %d left out != %d services", len(r.Services), len(r.LeftOut), nN)
		}
		for _, svc := range r.Services {
			n := slices.Index(services, svc)
			ok := false
			for fi, feat := range features {
				if (feat == source.Requests || feat == source.CPU) && use[fi][n].usable() {
					ok = true
				}
			}
			if !ok {
				t.Fatalf("%s modelled without a usable request rate or CPU", svc)
			}
		}
		for feat, svcs := range r.Unobserved {
			if !slices.Contains(r.Features, feat) {
				t.Fatalf("unobserved feature %s is not kept", feat)
			}
			for _, s := range svcs {
				if !slices.Contains(r.Services, s) {
					t.Fatalf("unobserved %s lists %s, not modelled", feat, s)
				}
			}
		}
		for _, tg := range r.Targets {
			if !slices.Contains(r.Features, tg) {
				t.Fatalf("target %s is not a kept feature", tg)
			}
		}
		for _, e := range r.keptEdges(edges) {
			if !slices.Contains(r.Services, e.Caller) || !slices.Contains(r.Services, e.Callee) {
				t.Fatalf("kept edge %v joins a service that is not modelled", e)
			}
		}
	})
}

package meshtest

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/foresightscale/foresight/forecaster/synthetic"
	"github.com/foresightscale/foresight/forecaster/topology"
)

// Flavour is the kind of telemetry the call graph is written as.
type Flavour string

// The flavours WriteOpenMetrics writes and Queries reads.
const (
	Istio         Flavour = "istio"
	Linkerd       Flavour = "linkerd"
	OpenTelemetry Flavour = "otel"
)

// Flavours lists every flavour.
var Flavours = []Flavour{Istio, Linkerd, OpenTelemetry}

// Labels the flavours use for callers that are not services of the graph:
// Istio's source_workload for traffic from outside the mesh, and the
// servicegraph connector's client for a root span (no client span; "user"
// in both the OpenTelemetry collector's connector and Tempo's generator).
const (
	IstioUnknownSource = "unknown"
	OTelUserClient     = "user"
)

// OTel namespace labels: the servicegraph connector carries no namespace
// unless configured with `dimensions: [k8s.namespace.name]`, which adds these
// two labels (client_ and server_ prefixes, dots turned to underscores by the
// Prometheus exporter). WriteOpenMetrics writes them, as such a connector would.
const (
	OTelClientNamespaceLabel = "client_k8s_namespace_name"
	OTelServerNamespaceLabel = "server_k8s_namespace_name"
)

// Options says what WriteOpenMetrics writes.
type Options struct {
	Flavour   Flavour
	Namespace string
	// Generator gives every service's state; Graph must be the graph it was
	// built from (its edges and fan-outs are not readable from the generator).
	Generator *synthetic.Generator
	Graph     topology.Graph
	// Start and End (inclusive) bound the samples, written every Step.
	Start, End time.Time
	Step       time.Duration
	// FirstSeen, when set for a service, is when its series start (a service
	// added later): before it the service writes nothing, and calls to it or
	// from it are not written either.
	FirstSeen map[string]time.Time
}

// maxPoints bounds one WriteOpenMetrics call (a year at 30 s).
const maxPoints = 1 << 20

func (o Options) validate() error {
	switch o.Flavour {
	case Istio, Linkerd, OpenTelemetry:
	default:
		return fmt.Errorf("unknown flavour %q (want istio, linkerd or otel)", o.Flavour)
	}
	switch {
	case o.Namespace == "":
		return errors.New("no namespace")
	case o.Generator == nil:
		return errors.New("no generator")
	case o.Step <= 0:
		return fmt.Errorf("step %v must be positive", o.Step)
	case o.End.Before(o.Start):
		return fmt.Errorf("end %v is before start %v", o.End, o.Start)
	case int64(o.End.Sub(o.Start)/o.Step)+1 > maxPoints:
		return fmt.Errorf("%v to %v at %v is more than %d points", o.Start, o.End, o.Step, maxPoints)
	}
	if err := o.Graph.Validate(); err != nil {
		return fmt.Errorf("graph: %w", err)
	}
	if !slices.Equal(o.Generator.Services(), o.Graph.Services) {
		return fmt.Errorf("graph services %v are not the generator's %v", o.Graph.Services, o.Generator.Services())
	}
	for s := range o.FirstSeen {
		if o.Graph.Index(s) < 0 {
			return fmt.Errorf("firstSeen names %q, which is not in the graph", s)
		}
	}
	return nil
}

// series is one counter or gauge being written: its labels and, per sample
// time, its rate (counters) or value (gauges), NaN when not written.
type series struct {
	labels string
	values []float64
	times  []time.Time
	step   time.Duration
}

// family is one metric family: its OpenMetrics name and type, the sample
// name, and its series.
type family struct {
	name, typ, sample string
	series            []series
}

// WriteOpenMetrics writes the application's history as the flavour's mesh
// series plus container_cpu_usage_seconds_total and
// kube_deployment_status_replicas, for `promtool tsdb create-blocks-from
// openmetrics`. Counters integrate the generator's rates (counter += rate ×
// step), so Prometheus' rate() gives them back. More applications (other
// namespaces, flavours or time ranges) can be written into the same file:
// their series are merged family by family, as OpenMetrics requires; two
// applications writing the same series are refused.
//
// A call's rate is its share of the callee's load: the generator propagates
// caller load × fan-out and then adds the callee's own noise, so the edges
// into a callee are scaled by the same factor. The calls into a service then
// sum to exactly its request rate, and an edge's rate over its caller's
// request rate is the fan-out times noise that averages to 1.
func WriteOpenMetrics(w io.Writer, o Options, more ...Options) error {
	var families []*family
	byName := map[string]*family{}
	seen := map[string]int{}
	for a, app := range append([]Options{o}, more...) {
		if err := app.validate(); err != nil {
			return fmt.Errorf("meshtest: application %d (%s): %w", a, app.Namespace, err)
		}
		states, err := app.Generator.Series(context.Background(), app.Start, app.End, app.Step)
		if err != nil {
			return fmt.Errorf("meshtest: application %d (%s): %w", a, app.Namespace, err)
		}
		for _, f := range app.families(states) {
			for _, s := range f.series {
				key := f.sample + s.labels
				if prev, dup := seen[key]; dup {
					return fmt.Errorf("meshtest: applications %d and %d both write %s", prev, a, key)
				}
				seen[key] = a
			}
			if m, ok := byName[f.name]; ok {
				m.series = append(m.series, f.series...)
				continue
			}
			byName[f.name] = &f
			families = append(families, &f)
		}
	}
	bw := bufio.NewWriter(w)
	for _, f := range families {
		fmt.Fprintf(bw, "# TYPE %s %s\n", f.name, f.typ)
		for _, s := range f.series {
			counter := 0.0
			for i, v := range s.values {
				if math.IsNaN(v) { // not written at this time
					continue
				}
				out := v
				if f.typ == "counter" {
					counter += v * s.step.Seconds()
					out = counter
				}
				ts := strconv.FormatFloat(float64(s.times[i].UnixMilli())/1000, 'f', -1, 64)
				fmt.Fprintf(bw, "%s%s %s %s\n", f.sample, s.labels, strconv.FormatFloat(out, 'g', -1, 64), ts)
			}
		}
	}
	bw.WriteString("# EOF\n")
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("meshtest: write: %w", err)
	}
	return nil
}

// WriteOpenMetricsFile writes the histories with WriteOpenMetrics to a file
// in the test's temporary directory and returns its path.
func WriteOpenMetricsFile(t testing.TB, o Options, more ...Options) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "mesh.om.txt")
	f, err := os.Create(path)
	if err != nil {
		t.Fatalf("meshtest: %v", err)
	}
	if err := WriteOpenMetrics(f, o, more...); err != nil {
		f.Close()
		t.Fatalf("meshtest: write %s: %v", path, err)
	}
	if err := f.Close(); err != nil {
		t.Fatalf("meshtest: close %s: %v", path, err)
	}
	return path
}

// families computes every series' values from the generator's states.
func (o Options) families(states []synthetic.State) []family {
	services := o.Graph.Services
	n := len(services)
	index := make(map[string]int, n)
	for i, s := range services {
		index[s] = i
	}
	// present[i][k]: service i writes at sample k.
	present := make([][]bool, n)
	for i, s := range services {
		present[i] = make([]bool, len(states))
		first, late := o.FirstSeen[s]
		for k, st := range states {
			present[i][k] = !late || !st.Time.Before(first)
		}
	}
	nan := func() []float64 {
		v := make([]float64, len(states))
		for k := range v {
			v[k] = math.NaN()
		}
		return v
	}
	// Per edge and per root (external load): the rate at every sample.
	edgeRates := make([][]float64, len(o.Graph.Edges))
	for e := range edgeRates {
		edgeRates[e] = nan()
	}
	external := make([][]float64, n)
	called := make([]bool, n)
	for _, e := range o.Graph.Edges {
		called[index[e.Callee]] = true
	}
	for i := range external {
		if !called[i] {
			external[i] = nan()
		}
	}
	for k, st := range states {
		// What the callers send each callee before its own noise.
		sent := make([]float64, n)
		for _, e := range o.Graph.Edges {
			sent[index[e.Callee]] += st.Services[index[e.Caller]].Requests * fanOut(e)
		}
		for j, e := range o.Graph.Edges {
			caller, callee := index[e.Caller], index[e.Callee]
			if !present[caller][k] || !present[callee][k] {
				continue
			}
			rate := 0.0
			if sent[callee] > 0 {
				rate = st.Services[callee].Requests * st.Services[caller].Requests * fanOut(e) / sent[callee]
			}
			edgeRates[j][k] = rate
		}
		for i := range external {
			if external[i] != nil && present[i][k] {
				external[i][k] = st.Services[i].Requests
			}
		}
	}

	ns := o.Namespace
	var families []family
	switch o.Flavour {
	case Istio:
		f := family{name: "istio_requests", typ: "counter", sample: "istio_requests_total"}
		istio := func(src, srcNS, dst string) string {
			return labels("reporter", "destination", "source_workload", src, "source_workload_namespace", srcNS,
				"destination_workload", dst, "destination_workload_namespace", ns, "response_code", "200")
		}
		for i, s := range services {
			if external[i] != nil {
				f.series = append(f.series, series{labels: istio(IstioUnknownSource, IstioUnknownSource, s), values: external[i]})
			}
		}
		for j, e := range o.Graph.Edges {
			f.series = append(f.series, series{labels: istio(e.Caller, ns, e.Callee), values: edgeRates[j]})
		}
		families = append(families, f)
	case Linkerd:
		// request_total and response_total carry the same counts here (every
		// request answered), on the outbound side per call and on the inbound
		// side per service.
		inbound := make([][]float64, n)
		for i := range inbound {
			inbound[i] = nan()
			for k, st := range states {
				if present[i][k] {
					inbound[i][k] = st.Services[i].Requests
				}
			}
		}
		for _, name := range []string{"request", "response"} {
			f := family{name: name, typ: "counter", sample: name + "_total"}
			extra := []string{}
			if name == "response" {
				extra = []string{"classification", "success", "status_code", "200"}
			}
			for i, s := range services {
				f.series = append(f.series, series{labels: labels(append([]string{"direction", "inbound", "namespace", ns, "deployment", s}, extra...)...), values: inbound[i]})
			}
			for j, e := range o.Graph.Edges {
				f.series = append(f.series, series{labels: labels(append([]string{"direction", "outbound", "namespace", ns, "deployment", e.Caller,
					"dst_namespace", ns, "dst_deployment", e.Callee}, extra...)...), values: edgeRates[j]})
			}
			families = append(families, f)
		}
	case OpenTelemetry:
		f := family{name: "traces_service_graph_request", typ: "counter", sample: "traces_service_graph_request_total"}
		otel := func(client, clientNS, server string) string {
			return labels("client", client, OTelClientNamespaceLabel, clientNS, "server", server, OTelServerNamespaceLabel, ns)
		}
		for i, s := range services {
			if external[i] != nil {
				f.series = append(f.series, series{labels: otel(OTelUserClient, "", s), values: external[i]})
			}
		}
		for j, e := range o.Graph.Edges {
			f.series = append(f.series, series{labels: otel(e.Caller, ns, e.Callee), values: edgeRates[j]})
		}
		families = append(families, f)
	}

	cpu := family{name: "container_cpu_usage_seconds", typ: "counter", sample: "container_cpu_usage_seconds_total"}
	replicas := family{name: "kube_deployment_status_replicas", typ: "gauge", sample: "kube_deployment_status_replicas"}
	for i, s := range services {
		c, r := nan(), nan()
		for k, st := range states {
			if present[i][k] {
				c[k], r[k] = st.Services[i].CPUCores, float64(st.Services[i].Replicas)
			}
		}
		cpu.series = append(cpu.series, series{labels: labels("namespace", ns, "pod", podName(s), "container", s), values: c})
		replicas.series = append(replicas.series, series{labels: labels("namespace", ns, "deployment", s), values: r})
	}
	families = append(families, cpu, replicas)
	times := make([]time.Time, len(states))
	for k, st := range states {
		times[k] = st.Time
	}
	for _, f := range families {
		for i := range f.series {
			f.series[i].times, f.series[i].step = times, o.Step
		}
	}
	return families
}

// fanOut is an edge's calls per request; 0 means unknown, which the
// generator takes as 1.
func fanOut(e topology.Edge) float64 {
	if e.FanOut == 0 {
		return 1
	}
	return e.FanOut
}

// podName is a stable pod name for a service, shaped like a Deployment's
// (<deployment>-<replicaset hash>-<pod hash>).
func podName(service string) string {
	h := fnv.New64a()
	h.Write([]byte(service))
	sum := strconv.FormatUint(h.Sum64(), 36)
	for len(sum) < 15 {
		sum = "0" + sum
	}
	return service + "-" + sum[:10] + "-" + sum[10:15]
}

var labelValueEscaper = strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`)

// labels formats name/value pairs as an OpenMetrics label set, leaving out
// pairs with an empty value (Prometheus stores no empty label).
func labels(pairs ...string) string {
	var b strings.Builder
	b.WriteByte('{')
	first := true
	for i := 0; i+1 < len(pairs); i += 2 {
		if pairs[i+1] == "" {
			continue
		}
		if !first {
			b.WriteByte(',')
		}
		first = false
		fmt.Fprintf(&b, `%s="%s"`, pairs[i], labelValueEscaper.Replace(pairs[i+1]))
	}
	b.WriteByte('}')
	return b.String()
}

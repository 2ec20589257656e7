package discovery

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"slices"
	"strings"
	"time"

	v1 "github.com/prometheus/client_golang/api/prometheus/v1"
	"github.com/prometheus/common/model"

	"github.com/foresightscale/foresight/internal/textlimit"
)

// Mesh names where the call graph is read from.
type Mesh string

// The meshes Discover reads. Auto tries them in the order of Meshes.
const (
	Auto          Mesh = ""
	Istio         Mesh = "istio"
	Linkerd       Mesh = "linkerd"
	OpenTelemetry Mesh = "otel"
)

// Meshes is the order Auto tries.
var Meshes = []Mesh{Istio, Linkerd, OpenTelemetry}

// ParseMesh reads a --mesh value: auto (or empty), istio, linkerd or otel.
func ParseMesh(s string) (Mesh, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "", "auto":
		return Auto, nil
	case "istio":
		return Istio, nil
	case "linkerd":
		return Linkerd, nil
	case "otel", "opentelemetry", "tempo":
		return OpenTelemetry, nil
	}
	// Quoted briefly: the value comes from a flag or a file, and ends up in logs.
	return "", fmt.Errorf("unknown mesh %s (want auto, istio, linkerd or otel)", textlimit.Quote(s, 64))
}

// Defaults of Options.
const (
	DefaultWindow       = time.Hour
	DefaultQueryTimeout = 30 * time.Second
)

// Options configures Discover.
type Options struct {
	// Namespace of the application. Istio and Linkerd series are filtered
	// by it; OpenTelemetry series only when they carry a namespace label
	// (see OTelServerNamespaceLabel). Empty means every namespace.
	Namespace string
	// Window is the rate() window the rates are averaged over (default 1h):
	// long enough that every call path was taken.
	Window time.Duration
	// At is the end of the window (default now).
	At time.Time
	// Mesh selects the metrics; Auto tries each of Meshes and uses the
	// first that has data.
	Mesh Mesh
	// QueryTimeout bounds each query (default DefaultQueryTimeout).
	QueryTimeout time.Duration
	// Logger receives the warnings (nil means slog.Default()).
	Logger *slog.Logger
}

// Result is a discovered call graph and where it came from.
type Result struct {
	*Graph
	// Mesh is the mesh whose metrics the graph was built from.
	Mesh Mesh
	// Queries are the PromQL queries that were run, in order.
	Queries []string
	// Notes are facts worth a look that are routine, such as an ingress
	// gateway in another namespace counted as external load.
	Notes []string
	// Namespace, Window and At are the options used (defaults applied).
	Namespace string
	Window    time.Duration
	At        time.Time
}

// Labels and values the meshes use.
const (
	// IstioUnknownSource is Istio's source_workload for traffic from
	// outside the mesh.
	IstioUnknownSource = "unknown"
	// OTelUserClient is the servicegraph connector's (and Tempo's) client
	// for a request whose root span has no client span.
	OTelUserClient = "user"
	// OTelServerNamespaceLabel and OTelClientNamespaceLabel exist when the
	// connector is configured with `dimensions: [k8s.namespace.name]`.
	OTelServerNamespaceLabel = "server_k8s_namespace_name"
	OTelClientNamespaceLabel = "client_k8s_namespace_name"
)

// dnsLabel is a Kubernetes namespace name; checking it keeps a quote out of
// the PromQL the namespace is pasted into.
var dnsLabel = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$`)

// ErrNoData is wrapped by Discover's error when no mesh has series.
var ErrNoData = errors.New("no call-graph series found")

// Discover reads the call graph from a mesh's metrics with instant queries
// at o.At over o.Window.
func Discover(ctx context.Context, api v1.API, o Options) (*Result, error) {
	if o.Window == 0 {
		o.Window = DefaultWindow
	}
	if o.At.IsZero() {
		o.At = time.Now()
	}
	if o.QueryTimeout == 0 {
		o.QueryTimeout = DefaultQueryTimeout
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	switch {
	case o.Window < time.Second:
		return nil, fmt.Errorf("discovery: window %v is shorter than a second", o.Window)
	case o.Namespace != "" && !dnsLabel.MatchString(o.Namespace):
		return nil, fmt.Errorf("discovery: namespace %q is not a valid Kubernetes namespace name", o.Namespace)
	}
	meshes := Meshes
	if o.Mesh != Auto {
		if _, err := ParseMesh(string(o.Mesh)); err != nil {
			return nil, fmt.Errorf("discovery: %w", err)
		}
		meshes = []Mesh{o.Mesh}
	}
	d := &discoverer{api: api, o: o}
	var lookedFor []string
	for _, mesh := range meshes {
		rates, found, err := d.rates(ctx, mesh)
		if err != nil {
			return nil, fmt.Errorf("discovery (%s): %w", mesh, err)
		}
		if !found {
			lookedFor = append(lookedFor, d.describe(mesh))
			continue
		}
		g, err := BuildGraph(rates)
		if err != nil {
			return nil, fmt.Errorf("discovery (%s): %w", mesh, err)
		}
		g.Warnings = append(d.warnings, g.Warnings...)
		for _, w := range g.Warnings {
			o.Logger.WarnContext(ctx, "call-graph discovery", "mesh", mesh, "warning", w)
		}
		for _, n := range d.notes {
			o.Logger.InfoContext(ctx, "call-graph discovery", "mesh", mesh, "note", n)
		}
		return &Result{Graph: g, Mesh: mesh, Queries: d.queries, Notes: d.notes, Namespace: o.Namespace, Window: o.Window, At: o.At}, nil
	}
	ns := "every namespace"
	if o.Namespace != "" {
		ns = "namespace " + o.Namespace
	}
	return nil, fmt.Errorf("discovery: %w for %s in the %v before %s; looked for %s. "+
		"Training works without a call graph (the model learns an adjacency from the data alone), "+
		"or give one with --call-graph FILE (caller,callee[,fanOut])",
		ErrNoData, ns, o.Window, o.At.UTC().Format(time.RFC3339), strings.Join(lookedFor, "; "))
}

// discoverer runs one Discover's queries and collects what it noticed.
type discoverer struct {
	api      v1.API
	o        Options
	queries  []string
	warnings []string
	notes    []string
}

func (d *discoverer) warn(format string, args ...any) {
	d.warnings = append(d.warnings, fmt.Sprintf(format, args...))
}

// window formats the rate window in PromQL.
func (d *discoverer) window() string { return model.Duration(d.o.Window).String() }

// nsMatcher is `,label="NS"` or nothing when no namespace is set.
func (d *discoverer) nsMatcher(label string) string {
	if d.o.Namespace == "" {
		return ""
	}
	return fmt.Sprintf(`, %s="%s"`, label, d.o.Namespace)
}

// describe names the series looked for, for the no-data error.
func (d *discoverer) describe(mesh Mesh) string {
	switch mesh {
	case Istio:
		return fmt.Sprintf(`istio_requests_total{reporter="destination"%s}`, d.nsMatcher("destination_workload_namespace"))
	case Linkerd:
		return fmt.Sprintf(`request_total or response_total{direction="outbound"%s} (Linkerd)`, d.nsMatcher("namespace"))
	default:
		return "traces_service_graph_request_total (OpenTelemetry servicegraph connector or Tempo)"
	}
}

// query runs an instant query and returns its vector.
func (d *discoverer) query(ctx context.Context, q string) (model.Vector, error) {
	d.queries = append(d.queries, q)
	ctx, cancel := context.WithTimeout(ctx, d.o.QueryTimeout)
	defer cancel()
	value, warnings, _, err := d.api.Query(ctx, q, d.o.At, v1.WithTimeout(d.o.QueryTimeout))
	for _, w := range warnings {
		d.warn("Prometheus warned about %s: %s", q, w)
	}
	if err != nil {
		return nil, fmt.Errorf("query %s: %w", q, err)
	}
	vector, ok := value.(model.Vector)
	if !ok {
		kind := "nothing"
		if value != nil {
			kind = value.Type().String()
		}
		return nil, fmt.Errorf("query %s: the answer is %s, want a vector", q, kind)
	}
	return vector, nil
}

// rates runs a mesh's queries; found is false when the mesh has no series.
func (d *discoverer) rates(ctx context.Context, mesh Mesh) (Rates, bool, error) {
	switch mesh {
	case Istio:
		return d.istio(ctx)
	case Linkerd:
		return d.linkerd(ctx)
	default:
		return d.otel(ctx)
	}
}

func (d *discoverer) istio(ctx context.Context) (Rates, bool, error) {
	q := fmt.Sprintf(`sum by (source_workload, source_workload_namespace, destination_workload) (rate(istio_requests_total{reporter="destination"%s}[%s]))`,
		d.nsMatcher("destination_workload_namespace"), d.window())
	v, err := d.query(ctx, q)
	if err != nil || len(v) == 0 {
		return Rates{}, false, err
	}
	var r Rates
	others := map[string]bool{}
	for _, s := range v {
		caller := string(s.Metric["source_workload"])
		callerNS := string(s.Metric["source_workload_namespace"])
		if caller == IstioUnknownSource {
			caller = ""
		}
		if caller != "" && d.o.Namespace != "" && callerNS != d.o.Namespace {
			// A workload of another application: load entering this one.
			others[callerNS+"/"+caller] = true
			caller = ""
		}
		r.Calls = append(r.Calls, Call{Caller: caller, Callee: string(s.Metric["destination_workload"]), Rate: float64(s.Value)})
	}
	d.noteOthers(others)
	d.noteNamelessCallees(r.Calls, "destination_workload")
	return r, true, nil
}

func (d *discoverer) linkerd(ctx context.Context) (Rates, bool, error) {
	// Linkerd's proxies export both counters; response_total alone is enough
	// when a version or a relabelling dropped request_total.
	for _, metric := range []string{"request_total", "response_total"} {
		outbound, err := d.query(ctx, fmt.Sprintf(`sum by (deployment, dst_deployment, dst_namespace) (rate(%s{direction="outbound"%s}[%s]))`,
			metric, d.nsMatcher("namespace"), d.window()))
		if err != nil {
			return Rates{}, false, err
		}
		inbound, err := d.query(ctx, fmt.Sprintf(`sum by (deployment) (rate(%s{direction="inbound"%s}[%s]))`,
			metric, d.nsMatcher("namespace"), d.window()))
		if err != nil {
			return Rates{}, false, err
		}
		if len(outbound) == 0 && len(inbound) == 0 {
			continue
		}
		r := Rates{Received: make(map[string]float64, len(inbound))}
		for _, s := range inbound {
			if name := string(s.Metric["deployment"]); name != "" {
				r.Received[name] += float64(s.Value)
			}
		}
		outside := map[string]bool{}
		for _, s := range outbound {
			callee, calleeNS := string(s.Metric["dst_deployment"]), string(s.Metric["dst_namespace"])
			if d.o.Namespace != "" && calleeNS != d.o.Namespace {
				// A call out of the application (or to a destination that
				// is no deployment): not an edge of this graph.
				outside[calleeNS+"/"+callee] = true
				continue
			}
			r.Calls = append(r.Calls, Call{Caller: string(s.Metric["deployment"]), Callee: callee, Rate: float64(s.Value)})
		}
		if len(outside) > 0 {
			d.warn("left out calls to %d destinations outside namespace %s: %s", len(outside), d.o.Namespace, joinLimited(sortedKeys(outside)))
		}
		d.noteNamelessCallees(r.Calls, "dst_deployment")
		return r, true, nil
	}
	return Rates{}, false, nil
}

func (d *discoverer) otel(ctx context.Context) (Rates, bool, error) {
	filter := ""
	if d.o.Namespace != "" {
		// The connector has no namespace label unless configured with one:
		// filter by it when the series carry it, else take every series and say so.
		labelled, err := d.query(ctx, fmt.Sprintf(`count(traces_service_graph_request_total{%s!=""})`, OTelServerNamespaceLabel))
		if err != nil {
			return Rates{}, false, err
		}
		if len(labelled) > 0 {
			filter = fmt.Sprintf(`{%s="%s"}`, OTelServerNamespaceLabel, d.o.Namespace)
		}
	}
	v, err := d.query(ctx, fmt.Sprintf(`sum by (client, %s, server) (rate(traces_service_graph_request_total%s[%s]))`,
		OTelClientNamespaceLabel, filter, d.window()))
	if err != nil || len(v) == 0 {
		return Rates{}, false, err
	}
	if d.o.Namespace != "" && filter == "" {
		d.warn("traces_service_graph_request_total has no %s label, so namespace %s does not filter it: the graph holds every traced service "+
			"(add k8s.namespace.name to the servicegraph connector's dimensions to filter)", OTelServerNamespaceLabel, d.o.Namespace)
	}
	var r Rates
	others := map[string]bool{}
	for _, s := range v {
		caller, callerNS := string(s.Metric["client"]), string(s.Metric[OTelClientNamespaceLabel])
		if caller == OTelUserClient {
			caller = ""
		}
		if caller != "" && filter != "" && callerNS != "" && callerNS != d.o.Namespace {
			others[callerNS+"/"+caller] = true
			caller = ""
		}
		r.Calls = append(r.Calls, Call{Caller: caller, Callee: string(s.Metric["server"]), Rate: float64(s.Value)})
	}
	d.noteOthers(others)
	d.noteNamelessCallees(r.Calls, "server")
	return r, true, nil
}

// noteOthers records callers from other namespaces: routine (an ingress
// gateway in istio-system, another team's frontend), so a note, not a warning.
func (d *discoverer) noteOthers(others map[string]bool) {
	if len(others) > 0 {
		d.notes = append(d.notes, fmt.Sprintf("calls from %d workloads of other namespaces counted as external load: %s", len(others), joinLimited(sortedKeys(others))))
	}
}

func (d *discoverer) noteNamelessCallees(calls []Call, label string) {
	n := 0
	for _, c := range calls {
		if c.Callee == "" {
			n++
		}
	}
	if n > 0 {
		d.warn("ignored %d series without a %s label", n, label)
	}
}

func sortedKeys(m map[string]bool) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, quote(k))
	}
	slices.Sort(keys)
	return keys
}

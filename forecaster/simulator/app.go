package simulator

import (
	"errors"
	"fmt"
	"math"
	"os"
	"slices"
	"strings"

	"sigs.k8s.io/yaml"

	"github.com/foresightscale/foresight/forecaster/topology"
)

// Service is how one microservice turns requests into work.
type Service struct {
	Name string `json:"name"`
	// WorkPerRequest is the CPU-seconds one request costs the service.
	WorkPerRequest float64 `json:"workPerRequest"`
	// CoresPerPod is a pod's CPU request, what it costs and at most uses: a
	// pod serves at most CoresPerPod/WorkPerRequest requests/s.
	CoresPerPod float64 `json:"coresPerPod"`
	// MinReplicas and MaxReplicas bound every policy, as an HPA's would.
	MinReplicas int32 `json:"minReplicas"`
	MaxReplicas int32 `json:"maxReplicas"`
}

// PodRate is the requests/s one pod serves at full use.
func (s Service) PodRate() float64 { return s.CoresPerPod / s.WorkPerRequest }

// App is a microservice application: services, who calls whom how often,
// and where the trace's load enters.
type App struct {
	Name string `json:"name"`
	// Entry is the service the trace's requests arrive at; it must call
	// (directly or not) every other service, and nothing may call it.
	Entry    string          `json:"entry"`
	Services []Service       `json:"services"`
	Calls    []topology.Edge `json:"calls"`
	// TypicalFanOut: a call made at least this often per request is on a
	// typical request's path and adds to its latency; rarer calls (the
	// shop's checkout, 9 % of page views) are not, but their overload still
	// counts through the timeouts.
	TypicalFanOut float64 `json:"typicalFanOut"`

	// derived by Validate
	graph      topology.Graph
	visits     []float64 // requests at service i per entry request
	reverse    []int     // services, callees before callers
	typicalOut [][]int   // callees on the typical path, per service
}

// OnlineBoutique is the default application: Google's Online Boutique call
// graph with the fan-outs of the recorded metrics, 0.5-core pods, and work
// per request of the order of the recorded CPU use.
func OnlineBoutique() App {
	g := topology.OnlineBoutique()
	work := map[string]float64{
		"frontend": 0.004, "productcatalogservice": 0.0008, "currencyservice": 0.0015,
		"cartservice": 0.0025, "recommendationservice": 0.006, "adservice": 0.002,
		"shippingservice": 0.0025, "checkoutservice": 0.02, "emailservice": 0.012, "paymentservice": 0.006,
	}
	app := App{Name: "online-boutique", Entry: "frontend", Calls: g.Edges, TypicalFanOut: 0.5}
	for _, name := range g.Services {
		app.Services = append(app.Services, Service{
			Name: name, WorkPerRequest: work[name], CoresPerPod: 0.5, MinReplicas: 1, MaxReplicas: 100,
		})
	}
	return app
}

// LoadApp reads an application from YAML or JSON (the App fields); unknown
// fields are errors.
func LoadApp(path string) (App, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return App{}, fmt.Errorf("reading application %s: %w", path, err)
	}
	var app App
	if err := yaml.UnmarshalStrict(raw, &app); err != nil {
		return App{}, fmt.Errorf("application %s: %w", path, err)
	}
	if app.Name == "" {
		app.Name = strings.TrimSuffix(path, ".yaml")
	}
	if err := app.Validate(); err != nil {
		return App{}, fmt.Errorf("application %s: %w", path, err)
	}
	return app, nil
}

// Validate checks the application and derives what the simulation needs.
// Errors name the field.
func (a *App) Validate() error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	names := make([]string, len(a.Services))
	for i, s := range a.Services {
		names[i] = s.Name
		field := fmt.Sprintf("services[%d] (%s)", i, s.Name)
		if !(s.WorkPerRequest > 0) || math.IsInf(s.WorkPerRequest, 0) {
			bad("%s.workPerRequest: must be positive CPU-seconds, got %v", field, s.WorkPerRequest)
		}
		if !(s.CoresPerPod > 0) || math.IsInf(s.CoresPerPod, 0) {
			bad("%s.coresPerPod: must be positive, got %v", field, s.CoresPerPod)
		}
		if s.MinReplicas < 1 {
			bad("%s.minReplicas: must be at least 1, got %d", field, s.MinReplicas)
		}
		if s.MaxReplicas < s.MinReplicas {
			bad("%s.maxReplicas: %d is below minReplicas %d", field, s.MaxReplicas, s.MinReplicas)
		}
	}
	if !(a.TypicalFanOut > 0) {
		bad("typicalFanOut: must be positive, got %v", a.TypicalFanOut)
	}
	g := topology.Graph{Services: names, Edges: a.Calls}
	if err := g.Validate(); err != nil {
		bad("calls: %v", err)
	}
	if len(errs) > 0 {
		return errors.Join(errs...)
	}
	order, err := g.TopologicalOrder()
	if err != nil {
		return fmt.Errorf("calls: %w", err)
	}
	if roots := g.Roots(); len(roots) != 1 || roots[0] != a.Entry {
		if !slices.Contains(names, a.Entry) {
			return fmt.Errorf("entry: %q is not a service (services: %s)", a.Entry, strings.Join(names, ", "))
		}
		return fmt.Errorf("entry: every service must be reached from %q and nothing may call it; services nobody calls: %s",
			a.Entry, strings.Join(roots, ", "))
	}
	a.graph = g
	a.visits = make([]float64, len(names))
	a.visits[g.Index(a.Entry)] = 1
	a.typicalOut = make([][]int, len(names))
	for _, s := range order {
		i := g.Index(s)
		for _, e := range a.Calls {
			if e.Caller != s {
				continue
			}
			fan := e.FanOut
			if fan == 0 {
				fan = 1 // topology's convention: unknown fan-out is one call
			}
			j := g.Index(e.Callee)
			a.visits[j] += a.visits[i] * fan
			if fan >= a.TypicalFanOut {
				a.typicalOut[i] = append(a.typicalOut[i], j)
			}
		}
	}
	a.reverse = make([]int, len(order))
	for k, s := range order {
		a.reverse[len(order)-1-k] = g.Index(s)
	}
	return nil
}

// Visits returns how many requests each service (in Services order) gets per
// request at the entry. Validate must have succeeded.
func (a *App) Visits() []float64 { return slices.Clone(a.visits) }

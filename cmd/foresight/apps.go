package main

import (
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/foresightscale/foresight/adapter/status"
	"github.com/foresightscale/foresight/forecaster"
	"github.com/foresightscale/foresight/forecaster/config"
	"github.com/foresightscale/foresight/forecaster/model"
	"github.com/foresightscale/foresight/forecaster/snapshot"
	"github.com/foresightscale/foresight/forecaster/source"
)

// application is one application as serve runs it: its own source, model
// session, policy, store and forecast loop. Applications share nothing but
// the process, the registry (their metrics labelled app) and the
// publishers, which read all their stores through one snapshot.Merged.
type application struct {
	config.App
	manifest *model.Manifest
	// source is the application's own source, for start-up checks across
	// the application and its data.
	source source.Source
	// builtIn is true when the model is the one built into the binary.
	builtIn bool
	store   *snapshot.Store
	loop    *forecaster.Forecaster
	// reloader loads a changed model directory (nil: the built-in model).
	reloader *reloader
	// retrainer trains and promotes the application's model on its
	// schedule (nil: serve does not train it).
	retrainer *retrainer
	// report holds the serving model's training figures.
	report *modelReportMetrics
}

// buildApps makes one application per entry of cfg.Applications. A model
// that fails to load, or anything else wrong with one application, fails
// start-up with the application named: better than serving the others while
// one silently does nothing.
func (o *serveOptions) buildApps(cfg config.Config, registry *prometheus.Registry, log *slog.Logger) ([]*application, error) {
	specs := cfg.Applications()
	apps := make([]*application, 0, len(specs))
	for i, spec := range specs {
		a, err := o.buildApp(cfg, spec, otherAppsServices(specs, i), i, len(cfg.Apps) > 0, registry, log)
		if err != nil {
			if len(cfg.Apps) == 0 {
				return nil, err // the single application: its errors read as before
			}
			return nil, fmt.Errorf("app %s (apps[%d]): %w", spec.Name, i, err)
		}
		apps = append(apps, a)
	}
	return apps, nil
}

// buildApp loads one application's model, builds its source and its loop.
// listed says whether the configuration has an apps list, in which errors
// name apps[index]'s keys; otherwise they name the flags and top-level keys.
func (o *serveOptions) buildApp(cfg config.Config, spec config.App, otherApps []string, index int, listed bool, registry *prometheus.Registry, log *slog.Logger) (*application, error) {
	var err error
	modelKey := "--model"
	if listed {
		modelKey = "model"
	}
	var m *model.Model
	var files modelFiles
	var resolve modelResolver
	var dir string // where the model was read from ("" for the built-in one)
	switch spec.Model {
	case "":
		if m, err = loadModelFrom("", modelKey); err != nil {
			return nil, err
		}
	case config.ModelAuto:
		if m, dir, files, resolve, err = o.autoModel(spec, log); err != nil {
			return nil, err
		}
	default:
		// A model directory, a directory model store or a ConfigMap model
		// store; loaded from the bytes hashed: the reloader compares later
		// reads with exactly what serves.
		if resolve, err = o.modelResolverFor(spec.Model, spec.Namespace, log); err == nil {
			m, dir, files, err = loadResolved(resolve)
		}
		if err != nil {
			return nil, fmt.Errorf("%s: %w", modelKey, err)
		}
	}
	// No model yet (model: auto): the loop forecasts with the fallback at
	// the step the first model will have.
	manifest := forecaster.NoModel(autoStep(spec), autoDefaults.Window, autoDefaults.Horizon)
	if m != nil {
		manifest = m.Manifest()
	}
	log = log.With("app", spec.Name)
	src, gen, err := makeSource(spec.Source, manifest, log)
	if err != nil {
		return nil, err
	}
	pol := spec.Policy
	if gen != nil && pol.CapacityPerPod == 0 {
		// The demo world knows its own pods: size them as it does.
		if err := capacitiesFromSynthetic(&pol, gen, manifest.Services); err != nil {
			return nil, err
		}
	}
	var session forecaster.Predictor
	if m != nil {
		if session, err = m.NewSession(); err != nil {
			return nil, fmt.Errorf("starting model session: %w", err)
		}
	}
	// Every series of this loop carries the application, so two loops
	// register the same metric names without colliding.
	reg := prometheus.WrapRegistererWith(prometheus.Labels{"app": spec.Name}, registry)
	budgetKey := ""
	if listed {
		budgetKey = fmt.Sprintf("apps[%d].", index)
	}
	budgeter, err := o.budgeter(spec.Budgets, budgetKey, pol, manifest.Services, reg, log)
	if err != nil {
		return nil, err
	}
	store := &snapshot.Store{}
	loop, err := forecaster.New(forecaster.Options{
		Source:             src,
		Manifest:           manifest,
		Predictor:          session,
		Policy:             pol,
		Store:              store,
		Namespace:          spec.Namespace,
		Services:           spec.Services,
		OtherApps:          otherApps,
		Interval:           time.Duration(cfg.Interval),
		Timeout:            time.Duration(cfg.Timeout),
		StaleAfter:         time.Duration(cfg.StaleAfter),
		MaxMissingFraction: cfg.MaxMissingFraction,
		MaxInputAge:        time.Duration(cfg.MaxInputAge),
		Registerer:         reg,
		Logger:             log,
		Budgeter:           budgeter,
		Events:             o.events,
	})
	if err != nil {
		return nil, err
	}
	a := &application{App: spec, manifest: manifest, source: src, builtIn: spec.Model == "", store: store, loop: loop}
	reportMetrics := newModelReportMetrics(reg, log)
	reportMetrics.update(dir)
	a.report = reportMetrics
	if !a.builtIn {
		a.reloader = newReloader(spec.Name, resolve, loop, files.sum, budgetsAccept(spec.Budgets, budgetKey), log)
		a.reloader.loaded = reportMetrics.update
	}
	if spec.Retrain != nil {
		if a.retrainer, err = o.newRetrainer(spec, listed, loop, a.reloader, reg, log); err != nil {
			return nil, err
		}
	}
	return a, nil
}

// pickApplication returns the application named app in a configuration
// read from file, or its only one when app is empty. A configuration
// without an apps list is one application, which --app cannot name.
func pickApplication(c config.Config, app, file string) (config.App, error) {
	if app != "" && len(c.Apps) == 0 {
		return config.App{}, fmt.Errorf("--app %s: %s lists no apps", app, file)
	}
	apps := c.Applications()
	if app == "" && len(apps) == 1 {
		return apps[0], nil
	}
	names := make([]string, 0, len(apps))
	for _, a := range apps {
		if a.Name == app {
			return a, nil
		}
		names = append(names, a.Name)
	}
	if app == "" {
		return config.App{}, fmt.Errorf("%s lists %d apps (%s): choose one with --app", file, len(apps), strings.Join(names, ", "))
	}
	return config.App{}, fmt.Errorf("--app %s: not in %s (apps: %s)", app, file, strings.Join(names, ", "))
}

// otherAppsServices are the services the other applications of app i's
// namespace own: app i neither forecasts nor reports them.
func otherAppsServices(specs []config.App, i int) []string {
	var out []string
	for j, other := range specs {
		if j != i && other.Namespace == specs[i].Namespace {
			out = append(out, other.Services...)
		}
	}
	return out
}

// mergedReader is the one reader the publishers serve every application from.
func mergedReader(apps []*application) *snapshot.Merged {
	stores := make([]snapshot.AppStore, len(apps))
	for i, a := range apps {
		stores[i] = snapshot.AppStore{App: a.Name, Store: a.store}
	}
	return snapshot.NewMerged(stores...)
}

// appsReady is ready while at least one application serves fresh
// forecasts: one application's outage must not take the others' out of
// service (a failing readiness probe removes the whole pod from the
// APIService). The error names every application's state.
func appsReady(apps []*application) func() error {
	if len(apps) == 1 {
		return apps[0].loop.Ready // one application: its own message, as before
	}
	checks := make([]namedCheck, len(apps))
	for i, a := range apps {
		checks[i] = namedCheck{name: a.Name, ready: a.loop.Ready}
	}
	return func() error { return anyReady(checks) }
}

// namedCheck is one application's readiness.
type namedCheck struct {
	name  string
	ready func() error
}

// anyReady is nil when any check is, else an error naming each one's state.
func anyReady(checks []namedCheck) error {
	states := make([]string, len(checks))
	for i, c := range checks {
		err := c.ready()
		if err == nil {
			return nil
		}
		states[i] = c.name + ": " + err.Error()
	}
	return errors.New(strings.Join(states, "; "))
}

// logStartup logs one line per application: what it serves, from what, with
// which model. It takes the whole list so that checks across an application
// and its data (services in one and not the other) have one place to go.
func logStartup(log *slog.Logger, apps []*application, demo bool) {
	for _, a := range apps {
		attrs := []any{"app", a.Name, "namespace", a.Namespace, "model", a.manifest.Name,
			"modelServices", len(a.manifest.Services), "source", describeSource(a.Source)}
		switch a.Model {
		case "":
		case config.ModelAuto:
			attrs = append(attrs, "modelStore", a.ModelStore, "retrain", a.Retrain != nil)
		default:
			attrs = append(attrs, "modelDir", a.Model)
		}
		if len(a.Services) > 0 {
			attrs = append(attrs, "services", len(a.Services))
		}
		attrs = append(attrs, "demo", demo)
		log.Info("foresight starting", attrs...)
	}
}

// describeSource names a source and where it reads from, for logs and the
// demo banner.
func describeSource(s config.SourceConfig) string {
	switch {
	case s.Prometheus != nil:
		return "prometheus " + s.Prometheus.URL
	case s.CSV != nil:
		return "csv " + s.CSV.Path
	default:
		return "synthetic"
	}
}

// demoSummary says, for the demo banner, what each application really runs
// on: the banner must not claim the synthetic workload and the built-in
// model while the process reads Prometheus or a model directory.
func demoSummary(apps []*application) string {
	lines := make([]string, len(apps))
	for i, a := range apps {
		var src string
		switch {
		case a.Source.Prometheus != nil:
			src = "Prometheus at " + a.Source.Prometheus.URL
		case a.Source.CSV != nil:
			src = "replay of " + a.Source.CSV.Path
		case a.builtIn:
			src = "synthetic Online Boutique workload"
		default:
			src = fmt.Sprintf("synthetic workload on the model's call graph (%d services)", len(a.manifest.Services))
		}
		mod := "built-in model"
		switch {
		case a.Model == config.ModelAuto:
			mod = fmt.Sprintf("model learnt into %s (the fallback until the first promotion)", a.ModelStore)
		case !a.builtIn:
			mod = fmt.Sprintf("model %s from %s", a.manifest.Name, a.Model)
		}
		lines[i] = src + ", " + mod + "."
		if len(apps) > 1 {
			lines[i] = fmt.Sprintf("app %s (namespace %s): %s", a.Name, a.Namespace, lines[i])
		}
	}
	return strings.Join(lines, "\n")
}

// prefixErrors puts prefix in front of each of err's joined errors (each
// starts with its key path), so that they name the application's key path.
func prefixErrors(prefix string, err error) error {
	if prefix == "" {
		return err
	}
	var joined interface{ Unwrap() []error }
	if !errors.As(err, &joined) {
		return fmt.Errorf("%s%w", prefix, err)
	}
	errs := joined.Unwrap()
	out := make([]error, len(errs))
	for i, e := range errs {
		out[i] = fmt.Errorf("%s%w", prefix, e)
	}
	return errors.Join(out...)
}

// statusApps are the applications as the status page shows them.
func statusApps(apps []*application) []status.App {
	out := make([]status.App, len(apps))
	for i, a := range apps {
		out[i] = status.App{Name: a.Name, Namespace: a.Namespace, Latest: a.store.Latest, Info: func() status.Info {
			m := a.loop.Model()
			c := a.loop.LastCycle()
			fig := a.report.current()
			info := status.Info{Model: m.Name, Version: m.Version, Trained: fig.trained, HeldOutRatio: fig.ratio,
				LastCycle: c.At, CycleDuration: c.Duration, Fresh: c.Fresh, Held: c.Held, BurstFactor: c.Bursts}
			if c.Err != nil {
				info.CycleErr = c.Err.Error()
			}
			return info
		}}
	}
	return out
}

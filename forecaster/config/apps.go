package config

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"unicode"

	"github.com/foresightscale/foresight/forecaster/budget"
	"github.com/foresightscale/foresight/forecaster/policy"
	"github.com/foresightscale/foresight/forecaster/source"
)

// AppConfig is one application of the apps list: its own namespace, model,
// services, query overrides and policy. Everything else (the source's URL,
// tenant and TLS/auth, the loop timing) is shared by all applications.
type AppConfig struct {
	// Name identifies the application in logs, /readyz and the app label of
	// every metric: a DNS label, unique in the list.
	Name string `yaml:"name"`
	// Namespace is where the application's services run and where their
	// predictions are served.
	Namespace string `yaml:"namespace"`
	// Model is the application's model directory or model store; "auto"
	// learns it (see Config.Model); empty means the model built into the
	// binary.
	Model string `yaml:"model"`
	// ModelStore and Retrain are the application's, as Config's.
	ModelStore string         `yaml:"modelStore"`
	Retrain    *RetrainConfig `yaml:"retrain"`
	// Services, when set, are the services this application owns in its
	// namespace; required (and disjoint) when applications share a
	// namespace, so that each service is forecast by one loop only.
	Services []string `yaml:"services"`
	// Queries override PromQL templates of source.prometheus.queries for
	// this application, per feature; the other features keep the shared ones.
	Queries map[source.Feature]string `yaml:"queries"`
	// Policy, when set, replaces the top-level policy block as a whole for
	// this application (omitted keys take the built-in defaults, not the
	// top-level values): merging two policies key by key would make it hard
	// to tell which value applies.
	Policy *AppPolicy `yaml:"policy"`
	// Budgets are the application's shared CPU budgets, over its own
	// services (checked against its model at start).
	Budgets []budget.Config `yaml:"budgets"`
}

// AppPolicy is an application's own policy block, decoded over the built-in
// defaults exactly as the top-level one is.
type AppPolicy struct {
	policy.Config `yaml:",inline"`
}

// UnmarshalYAML starts from policy.Default, so that an omitted key keeps its
// default instead of becoming an invalid zero (minReplicas 0).
func (p *AppPolicy) UnmarshalYAML(unmarshal func(any) error) error {
	p.Config = policy.Default()
	return unmarshal(&p.Config)
}

// App is one application as serve runs it: the shared settings with the
// application's own overrides applied. The single-application configuration
// (no apps list) is one App named after its namespace.
type App struct {
	Name       string
	Namespace  string
	Model      string
	ModelStore string
	// Retrain is the application's retraining with its defaults filled in
	// (nil: serve does not retrain it).
	Retrain  *RetrainConfig
	Services []string
	// Source is the shared source with the application's query overrides
	// merged into its own copy of source.prometheus.
	Source  SourceConfig
	Policy  policy.Config
	Budgets []budget.Config
}

// maxApps bounds the apps list: each application is a loop with its own
// model session and queries, and hundreds in one process are a typo or a
// generated runaway rather than a deployment.
const maxApps = 100

// Applications returns the applications to run, in the order of the file. Call it
// on a configuration that passed Validate.
func (c Config) Applications() []App {
	if len(c.Apps) == 0 {
		return []App{{Name: c.Namespace, Namespace: c.Namespace, Model: c.Model, ModelStore: c.ModelStore, Retrain: retrainWithDefaults(c.Retrain),
			Source: c.Source.clone(), Policy: c.Policy, Budgets: c.Budgets}}
	}
	apps := make([]App, 0, len(c.Apps))
	for _, a := range c.Apps {
		app := App{Name: a.Name, Namespace: a.Namespace, Model: a.Model, ModelStore: a.ModelStore, Retrain: retrainWithDefaults(a.Retrain),
			Services: slices.Clone(a.Services),
			Source:   c.Source.clone(), Policy: c.Policy, Budgets: a.Budgets}
		if a.Policy != nil {
			app.Policy = a.Policy.Config
		}
		if len(a.Queries) > 0 && app.Source.Prometheus != nil {
			if app.Source.Prometheus.Queries == nil {
				app.Source.Prometheus.Queries = make(map[source.Feature]string, len(a.Queries))
			}
			maps.Copy(app.Source.Prometheus.Queries, a.Queries)
		}
		apps = append(apps, app)
	}
	return apps
}

// clone copies the source so that one application's query overrides never
// show in another's.
func (s SourceConfig) clone() SourceConfig {
	out := s
	if s.Prometheus != nil {
		p := *s.Prometheus
		p.Queries = maps.Clone(s.Prometheus.Queries)
		out.Prometheus = &p
	}
	if s.CSV != nil {
		c := *s.CSV
		out.CSV = &c
	}
	if s.Synthetic != nil {
		sy := *s.Synthetic
		out.Synthetic = &sy
	}
	return out
}

// validateApps checks the apps list and what may not be set beside it.
func (c Config) validateApps() []error {
	if c.Apps == nil {
		return nil
	}
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if len(c.Apps) == 0 {
		// `apps: []` is almost certainly an edit gone wrong; running the
		// top-level application instead would surprise.
		return []error{errors.New("apps: empty list; list at least one application, or remove the key to run the top-level namespace and model")}
	}
	if len(c.Apps) > maxApps {
		bad("apps: %d applications, at most %d in one process", len(c.Apps), maxApps)
	}
	// Each application has its own namespace and model: top-level ones would
	// apply to none of them, so a leftover is refused rather than ignored.
	if c.Model != "" {
		bad("model: not used with apps; set apps[i].model for each application instead")
	}
	if c.ModelStore != "" || c.Retrain != nil {
		bad("modelStore, retrain: not used with apps; set apps[i].modelStore and apps[i].retrain for each application instead")
	}
	if c.Namespace != Default().Namespace {
		bad("namespace: not used with apps; set apps[i].namespace for each application instead")
	}
	if len(c.Budgets) > 0 {
		bad("budgets: not used with apps; set each application's apps[i].budgets over its own services")
	}
	names := make(map[string]int, len(c.Apps))
	byNamespace := make(map[string][]int)
	for i, a := range c.Apps {
		path := fmt.Sprintf("apps[%d]", i)
		switch {
		case a.Name == "":
			bad("%s.name: must not be empty", path)
		case len(a.Name) > 63 || !namespaceName.MatchString(a.Name):
			bad("%s.name: %q is not a DNS label (at most 63 lower-case letters, digits and '-', starting and ending with a letter or digit)", path, truncate(a.Name))
		default:
			if j, dup := names[a.Name]; dup {
				bad("%s.name: %q is also the name of apps[%d]; names must be unique", path, a.Name, j)
			} else {
				names[a.Name] = i
			}
		}
		if err := checkNamespace(path+".namespace", a.Namespace); err != nil {
			errs = append(errs, err)
		} else {
			byNamespace[a.Namespace] = append(byNamespace[a.Namespace], i)
		}
		errs = append(errs, validateModelKeys(path+".", a.Model, a.ModelStore, a.Retrain)...)
		errs = append(errs, validateServices(path+".services", a.Services)...)
		if len(a.Queries) > 0 {
			if c.Source.Prometheus == nil {
				bad("%s.queries: only for source.prometheus, which is not set", path)
			} else {
				// The shared Prometheus settings are checked once, at
				// source.prometheus; here only the templates.
				p := source.DefaultPrometheusConfig()
				p.URL, p.Queries = "http://prometheus.invalid", a.Queries
				if err := p.Validate(); err != nil {
					errs = append(errs, prefixField(path, err))
				}
			}
		}
		if a.Policy != nil {
			if err := a.Policy.ValidateSettings(); err != nil {
				errs = append(errs, prefixEach(path, err)...)
			}
		}
	}
	errs = append(errs, sharedQuotas(c.Apps)...)
	for _, ns := range slices.Sorted(maps.Keys(byNamespace)) {
		if idx := byNamespace[ns]; len(idx) > 1 {
			errs = append(errs, sharedNamespace(c.Apps, ns, idx)...)
		}
	}
	return errs
}

// checkNamespace checks a Kubernetes namespace name at path.
func checkNamespace(path, ns string) error {
	switch {
	case ns == "":
		return fmt.Errorf("%s: must not be empty", path)
	case strings.Contains(ns, ","):
		return fmt.Errorf("%s: %q is a list; one namespace per application (list several applications under apps)", path, truncate(ns))
	case len(ns) > 63 || !namespaceName.MatchString(ns):
		return fmt.Errorf("%s: %q is not a Kubernetes namespace name (at most 63 lower-case letters, digits and '-', starting and ending with a letter or digit)", path, truncate(ns))
	}
	return nil
}

// validateServices checks an application's service list: names a series
// label can carry, each once.
func validateServices(path string, services []string) []error {
	if services == nil {
		return nil
	}
	if len(services) == 0 {
		return []error{fmt.Errorf("%s: empty list; remove the key to own every service of the namespace", path)}
	}
	var errs []error
	seen := make(map[string]bool, len(services))
	for i, s := range services {
		switch {
		case strings.TrimSpace(s) == "" || strings.ContainsFunc(s, unicode.IsControl):
			errs = append(errs, fmt.Errorf("%s[%d]: %q is not a service name", path, i, truncate(s)))
		case seen[s]:
			errs = append(errs, fmt.Errorf("%s[%d]: %q is listed twice", path, i, truncate(s)))
		}
		seen[s] = true
	}
	return errs
}

// sharedNamespace checks applications that share a namespace: each must
// list its services and no service may be in two lists, or two loops would
// publish the same series and the HPA would read whichever came last.
func sharedNamespace(apps []AppConfig, ns string, idx []int) []error {
	var errs []error
	owner := make(map[string]int)
	for _, i := range idx {
		if len(apps[i].Services) == 0 {
			errs = append(errs, fmt.Errorf("apps[%d].services: must be set: apps %s share namespace %q, so each must list the services it owns", i, indexList(idx), ns))
			continue
		}
		for _, s := range apps[i].Services {
			if j, taken := owner[s]; taken && j != i {
				errs = append(errs, fmt.Errorf("apps[%d].services: %q is also a service of apps[%d] in the same namespace %q; each service belongs to one application", i, truncate(s), j, ns))
				continue
			}
			owner[s] = i
		}
	}
	return errs
}

// sharedQuotas refuses two applications' budgets on one ResourceQuota:
// each loop would allocate the whole quota to its own services, and
// together they would ask for more than it holds.
func sharedQuotas(apps []AppConfig) []error {
	var errs []error
	owner := make(map[budget.QuotaRef]string)
	for i, a := range apps {
		for k, b := range a.Budgets {
			if b.ResourceQuota == nil {
				continue
			}
			path := fmt.Sprintf("apps[%d].budgets[%d]", i, k)
			q := *b.ResourceQuota
			if first, taken := owner[q]; taken && !strings.HasPrefix(first, fmt.Sprintf("apps[%d].", i)) {
				errs = append(errs, fmt.Errorf("%s.resourceQuota: %s/%s is also the quota of %s; a quota can be shared by the services of one application only", path, q.Namespace, q.Name, first))
				continue
			}
			if _, taken := owner[q]; !taken {
				owner[q] = path
			}
		}
	}
	return errs
}

// indexList renders [0 2] as "apps[0], apps[2]".
func indexList(idx []int) string {
	parts := make([]string, len(idx))
	for k, i := range idx {
		parts[k] = fmt.Sprintf("apps[%d]", i)
	}
	return strings.Join(parts, ", ")
}

// prefixEach is prefixField for every error of a joined error.
func prefixEach(path string, err error) []error {
	var joined interface{ Unwrap() []error }
	if !errors.As(err, &joined) {
		return []error{prefixField(path, err)}
	}
	var errs []error
	for _, e := range joined.Unwrap() {
		errs = append(errs, prefixField(path, e))
	}
	return errs
}

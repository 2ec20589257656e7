package dashboards_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql/parser"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/yaml"

	"github.com/foresightscale/foresight/dashboards"
	"github.com/foresightscale/foresight/internal/testenv"
)

// sampleValues are what Grafana would put in for the variables: a named
// namespace, a multi-value service selection, and the built-ins for a
// datasource scraped every 15 s.
func sampleValues() map[string]string {
	return map[string]string{
		"app":             dashboards.RegexValue("shop"),
		"namespace":       dashboards.RegexValue("default"),
		"service":         dashboards.RegexValue("frontend", "cartservice"),
		"datasource":      "prometheus-uid",
		"__rate_interval": "1m",
		"__interval":      "15s",
		"__range":         "3h",
	}
}

func TestCommittedFilesAreGenerated(t *testing.T) {
	files, err := dashboards.Files()
	if err != nil {
		t.Fatal(err)
	}
	root := testenv.RepoRoot(t)
	const fix = "run `make dashboards` and commit the result"
	for _, name := range slices.Sorted(maps.Keys(files)) {
		t.Run(name, func(t *testing.T) {
			got, err := os.ReadFile(filepath.Join(root, filepath.FromSlash(name)))
			if err != nil {
				t.Fatalf("%v; %s", err, fix)
			}
			if !bytes.Equal(got, files[name]) {
				t.Errorf("%s differs from what package dashboards generates; %s", name, fix)
			}
		})
	}
	onDisk, err := filepath.Glob(filepath.Join(root, dashboards.Dir, "*.json"))
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range onDisk {
		if _, ok := files[path.Join(dashboards.Dir, filepath.Base(p))]; !ok {
			t.Errorf("%s is not generated any more; %s", p, fix)
		}
	}
}

func TestRenderIsStable(t *testing.T) {
	first, err := dashboards.Files()
	if err != nil {
		t.Fatal(err)
	}
	second, err := dashboards.Files()
	if err != nil {
		t.Fatal(err)
	}
	if !maps.EqualFunc(first, second, bytes.Equal) {
		t.Error("two calls of Files differ")
	}
	for _, d := range dashboards.Build() {
		b, err := dashboards.Render(d)
		if err != nil {
			t.Fatal(err)
		}
		var doc any
		if err := json.Unmarshal(b, &doc); err != nil {
			t.Fatalf("%s: rendered JSON does not parse: %v", d.UID, err)
		}
		// Grafana reads a missing list as empty but breaks on null; the
		// only null is the open lower end of a threshold scale.
		for _, p := range nullPaths(doc, "") {
			if !regexp.MustCompile(`thresholds\.steps\[0\]\.value$`).MatchString(p) {
				t.Errorf("%s: %s is null", d.UID, p)
			}
		}
	}
}

func nullPaths(v any, at string) []string {
	var out []string
	switch v := v.(type) {
	case nil:
		return []string{at}
	case map[string]any:
		for k, e := range v {
			out = append(out, nullPaths(e, at+"."+k)...)
		}
	case []any:
		for i, e := range v {
			out = append(out, nullPaths(e, fmt.Sprintf("%s[%d]", at, i))...)
		}
	}
	return out
}

func TestDashboardStructure(t *testing.T) {
	all := dashboards.Build()
	if len(all) == 0 {
		t.Fatal("no dashboards")
	}
	uids := map[string]bool{}
	for _, d := range all {
		if d.UID == "" || uids[d.UID] {
			t.Errorf("dashboard %q: empty or duplicate uid", d.Title)
		}
		uids[d.UID] = true
		t.Run(d.UID, func(t *testing.T) {
			if len(d.UID) > 40 {
				t.Errorf("uid %q is longer than Grafana's 40 characters", d.UID)
			}
			if d.SchemaVersion != dashboards.SchemaVersion || d.Title == "" || !slices.Contains(d.Tags, dashboards.Tag) {
				t.Errorf("schemaVersion %d title %q tags %v", d.SchemaVersion, d.Title, d.Tags)
			}
			checkVariables(t, d)
			if len(d.Panels) == 0 {
				t.Fatal("no panels")
			}
			values := sampleValues()
			ids := map[int]bool{}
			for i, p := range d.Panels {
				if p.ID <= 0 || ids[p.ID] {
					t.Errorf("panel %q: id %d is not positive or not unique", p.Title, p.ID)
				}
				ids[p.ID] = true
				checkPanel(t, p, values)
				for _, q := range d.Panels[:i] {
					if overlap(p.GridPos, q.GridPos) {
						t.Errorf("panels %q %+v and %q %+v overlap", p.Title, p.GridPos, q.Title, q.GridPos)
					}
				}
			}
		})
	}
}

func checkVariables(t *testing.T, d dashboards.Dashboard) {
	t.Helper()
	byName := map[string]dashboards.Variable{}
	for _, v := range d.Templating.List {
		if _, dup := byName[v.Name]; dup {
			t.Errorf("variable %s defined twice", v.Name)
		}
		byName[v.Name] = v
	}
	ds := byName[dashboards.DatasourceVariable]
	if ds.Type != "datasource" || ds.Query != "prometheus" {
		t.Errorf("datasource variable = %+v, want type datasource, query prometheus", ds)
	}
	tests := []struct{ name, definition string }{
		{"app", `label_values(foresight_predicted_replicas, app)`},
		{"namespace", `label_values(foresight_predicted_replicas{app=~"$app"}, namespace)`},
		{"service", `label_values(foresight_predicted_replicas{app=~"$app", namespace=~"$namespace"}, service)`},
	}
	for _, tc := range tests {
		v, ok := byName[tc.name]
		if !ok {
			t.Errorf("no variable %s", tc.name)
			continue
		}
		q, _ := v.Query.(dashboards.VariableQuery)
		if v.Type != "query" || v.Definition != tc.definition || q.Query != tc.definition || !v.Multi || !v.IncludeAll ||
			v.Datasource == nil || v.Datasource.UID != "${datasource}" {
			t.Errorf("variable %s = %+v, want a multi-value query variable with All, on ${datasource}, from %s", tc.name, v, tc.definition)
		}
	}
}

func checkPanel(t *testing.T, p dashboards.Panel, values map[string]string) {
	t.Helper()
	if !slices.Contains([]string{"timeseries", "stat", "table"}, p.Type) {
		t.Errorf("panel %q: type %q", p.Title, p.Type)
	}
	if p.Title == "" || p.Description == "" {
		t.Errorf("panel %d: title %q, description %q: both are needed", p.ID, p.Title, p.Description)
	}
	if _, err := dashboards.Expand(p.Title, values); err != nil {
		t.Errorf("panel %q title: %v", p.Title, err)
	}
	g := p.GridPos
	if g.W <= 0 || g.H <= 0 || g.X < 0 || g.Y < 0 || g.X+g.W > dashboards.GridColumns {
		t.Errorf("panel %q: gridPos %+v is not inside %d columns", p.Title, g, dashboards.GridColumns)
	}
	if p.Repeat != "" {
		if _, ok := values[p.Repeat]; !ok {
			t.Errorf("panel %q repeats over undefined variable %s", p.Title, p.Repeat)
		}
	}
	wantDS := dashboards.DatasourceRef{Type: "prometheus", UID: "${datasource}"}
	if p.Datasource == nil || *p.Datasource != wantDS {
		t.Errorf("panel %q: datasource %+v, want %+v", p.Title, p.Datasource, wantDS)
	}
	if len(p.Targets) == 0 {
		t.Errorf("panel %q has no query", p.Title)
	}
	refIDs := map[string]bool{}
	for _, q := range p.Targets {
		if q.RefID == "" || refIDs[q.RefID] {
			t.Errorf("panel %q: refId %q empty or not unique", p.Title, q.RefID)
		}
		refIDs[q.RefID] = true
		if q.Datasource == nil || *q.Datasource != wantDS {
			t.Errorf("panel %q query %s: datasource %+v", p.Title, q.RefID, q.Datasource)
		}
		if _, err := dashboards.Expand(q.Expr, values); err != nil {
			t.Errorf("panel %q query %s: %v", p.Title, q.RefID, err)
		}
		if q.Range == q.Instant || (p.Type == "table") != q.Instant {
			t.Errorf("panel %q query %s: range %v instant %v; tables need instant queries, graphs range ones", p.Title, q.RefID, q.Range, q.Instant)
		}
	}
	for _, o := range p.FieldConfig.Overrides {
		if o.Matcher.ID == "byFrameRefID" && !refIDs[o.Matcher.Options] {
			t.Errorf("panel %q: override for query %s, which does not exist", p.Title, o.Matcher.Options)
		}
	}
}

func overlap(a, b dashboards.GridPos) bool {
	return a.X < b.X+b.W && b.X < a.X+a.W && a.Y < b.Y+b.H && b.Y < a.Y+a.H
}

// TestQueriesParseAndUseDocumentedSeries: every query, with the variables
// filled in as Grafana would, is valid PromQL for the Prometheus version in
// go.mod, and selects only series and labels docs/metrics.md documents.
func TestQueriesParseAndUseDocumentedSeries(t *testing.T) {
	documented := documentedMetrics(t)
	p := parser.NewParser(parser.Options{})
	values := sampleValues()
	for _, d := range dashboards.Build() {
		for _, v := range d.Templating.List {
			if v.Type != "query" {
				continue
			}
			selector := labelValuesSelector(t, v.Definition)
			expr, err := dashboards.Expand(selector, values)
			if err != nil {
				t.Errorf("variable %s: %v", v.Name, err)
				continue
			}
			if _, err := p.ParseExpr(expr); err != nil {
				t.Errorf("variable %s: selector %s: %v", v.Name, expr, err)
			}
		}
		for _, panel := range d.Panels {
			for _, q := range panel.Targets {
				name := fmt.Sprintf("%s/%s/%s", d.UID, panel.Title, q.RefID)
				expr, err := dashboards.Expand(q.Expr, values)
				if err != nil {
					t.Errorf("%s: %v", name, err)
					continue
				}
				ast, err := p.ParseExpr(expr)
				if err != nil {
					t.Errorf("%s: %s: %v", name, expr, err)
					continue
				}
				for _, matchers := range parser.ExtractSelectors(ast) {
					checkSelector(t, name, matchers, documented)
				}
			}
		}
	}
}

func checkSelector(t *testing.T, query string, matchers []*labels.Matcher, documented map[string][]string) {
	t.Helper()
	metric := ""
	for _, m := range matchers {
		if m.Name == "__name__" {
			metric = m.Value
		}
	}
	// A histogram's series are documented under its base name.
	labels, ok := documented[strings.TrimSuffix(metric, "_bucket")]
	if !ok {
		t.Errorf("%s: selects %q, which docs/metrics.md does not document", query, metric)
		return
	}
	for _, m := range matchers {
		if m.Name != "__name__" && !slices.Contains(labels, m.Name) {
			t.Errorf("%s: filters %s on label %q; docs/metrics.md gives it only %v", query, metric, m.Name, labels)
		}
	}
}

// documentedMetrics reads the /metrics table of docs/metrics.md: metric
// name to label names ("same" repeats the row above).
func documentedMetrics(t *testing.T) map[string][]string {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(testenv.RepoRoot(t), "docs", "metrics.md"))
	if err != nil {
		t.Fatal(err)
	}
	_, section, ok := strings.Cut(string(raw), "## Prometheus `/metrics`")
	if !ok {
		t.Fatal("docs/metrics.md has no Prometheus /metrics section")
	}
	code := regexp.MustCompile("`([a-z_]+)`")
	out := map[string][]string{}
	var previous []string
	for line := range strings.Lines(section) {
		cells := strings.Split(line, "|")
		if len(cells) < 5 || !strings.Contains(cells[1], "`foresight_") {
			continue
		}
		name := strings.Trim(strings.TrimSpace(cells[1]), "`")
		labels := []string{}
		if strings.TrimSpace(cells[3]) == "same" {
			labels = previous
		} else {
			for _, m := range code.FindAllStringSubmatch(cells[3], -1) {
				labels = append(labels, m[1])
			}
		}
		out[name], previous = labels, labels
	}
	if len(out) < 10 {
		t.Fatalf("read only %d metrics from docs/metrics.md: %v", len(out), out)
	}
	return out
}

var labelValuesPattern = regexp.MustCompile(`^label_values\((.+), *(\w+)\)$`)

// labelValuesSelector returns the series selector of a label_values(...)
// variable query.
func labelValuesSelector(t *testing.T, definition string) string {
	t.Helper()
	m := labelValuesPattern.FindStringSubmatch(definition)
	if m == nil {
		t.Fatalf("variable query %q is not label_values(selector, label)", definition)
	}
	return m[1]
}

func TestConfigMapEmbedsTheDashboards(t *testing.T) {
	files, err := dashboards.Files()
	if err != nil {
		t.Fatal(err)
	}
	raw := files[path.Join(dashboards.ComponentDir, "configmap.yaml")]
	var cm corev1.ConfigMap
	if err := yaml.UnmarshalStrict(raw, &cm); err != nil {
		t.Fatalf("configmap.yaml: %v", err)
	}
	if cm.Kind != "ConfigMap" || cm.APIVersion != "v1" || cm.Name != dashboards.ConfigMapName || cm.Namespace != dashboards.ConfigMapNamespace {
		t.Errorf("object %s %s %s/%s", cm.APIVersion, cm.Kind, cm.Namespace, cm.Name)
	}
	if cm.Labels[dashboards.DashboardLabel] != "1" || cm.Annotations[dashboards.FolderAnnotation] != dashboards.Folder {
		t.Errorf("labels %v annotations %v; want %s=1 and %s=%s", cm.Labels, cm.Annotations,
			dashboards.DashboardLabel, dashboards.FolderAnnotation, dashboards.Folder)
	}
	want := map[string]string{}
	for name, b := range files {
		if dir, base := path.Split(name); dir == dashboards.Dir+"/" {
			want[base] = string(b)
		}
	}
	if len(want) != len(dashboards.Build()) {
		t.Fatalf("%d dashboard files for %d dashboards", len(want), len(dashboards.Build()))
	}
	if !maps.Equal(cm.Data, want) {
		t.Errorf("ConfigMap data keys %v do not hold exactly the generated dashboards %v", slices.Sorted(maps.Keys(cm.Data)), slices.Sorted(maps.Keys(want)))
	}
	// kubectl apply (client side) copies the object into an annotation,
	// and annotations may total 256 KiB.
	if len(raw) > 200<<10 {
		t.Errorf("configmap.yaml is %d bytes; past about 200 KiB, client-side kubectl apply fails", len(raw))
	}

	var k struct {
		APIVersion string   `json:"apiVersion"`
		Kind       string   `json:"kind"`
		Resources  []string `json:"resources"`
	}
	if err := yaml.UnmarshalStrict(files[path.Join(dashboards.ComponentDir, "kustomization.yaml")], &k); err != nil {
		t.Fatalf("kustomization.yaml: %v", err)
	}
	if k.Kind != "Component" || !slices.Equal(k.Resources, []string{"configmap.yaml"}) {
		t.Errorf("kustomization = %+v, want a Component with configmap.yaml", k)
	}
}

func TestExpand(t *testing.T) {
	values := map[string]string{"namespace": "default", "service": "(a|b)", "__rate_interval": "1m"}
	tests := []struct {
		name, in, want, wantErr string
	}{
		{"plain", `x{namespace=~"$namespace"}`, `x{namespace=~"default"}`, ""},
		{"braces and built-in", `rate(x{service=~"${service}"}[$__rate_interval])`, `rate(x{service=~"(a|b)"}[1m])`, ""},
		{"longest name wins", `$namespaces`, "", "undefined variable $namespaces"},
		{"undefined", `x{pod=~"$pod"}`, "", "undefined variable $pod"},
		{"format not supported", `x{service=~"${service:csv}"}`, "", "only $name and ${name}"},
		{"old syntax not supported", `x{service=~"[[service]]"}`, "", "only $name and ${name}"},
		{"no variables", `sum(x)`, `sum(x)`, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := dashboards.Expand(tc.in, values)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("Expand(%q) = %q, %v; want error containing %q", tc.in, got, err, tc.wantErr)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Errorf("Expand(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
			}
		})
	}
}

func TestRegexValue(t *testing.T) {
	tests := []struct {
		values []string
		want   string
	}{
		{[]string{"frontend"}, `frontend`},
		{[]string{"frontend", "cart-service"}, `(frontend|cart-service)`},
		// Regex metacharacters are escaped, with the backslash doubled for
		// the PromQL string it lands in.
		{[]string{"a.b", "c|d"}, `(a\\.b|c\\|d)`},
	}
	p := parser.NewParser(parser.Options{})
	for _, tc := range tests {
		got := dashboards.RegexValue(tc.values...)
		if got != tc.want {
			t.Errorf("RegexValue(%q) = %s, want %s", tc.values, got, tc.want)
		}
		// The value must select exactly the chosen label values.
		expr, err := p.ParseExpr(`x{service=~"` + got + `"}`)
		if err != nil {
			t.Fatalf("RegexValue(%q) = %s does not parse in a matcher: %v", tc.values, got, err)
		}
		m := parser.ExtractSelectors(expr)[0]
		for _, mt := range m {
			if mt.Name != "service" {
				continue
			}
			for _, v := range tc.values {
				if !mt.Matches(v) {
					t.Errorf("matcher %s does not match %q", mt, v)
				}
			}
			if mt.Matches("axb") || mt.Matches("frontend2") {
				t.Errorf("matcher %s matches more than the chosen values", mt)
			}
		}
	}
}

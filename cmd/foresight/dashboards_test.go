package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/foresightscale/foresight/dashboards"
	"github.com/foresightscale/foresight/internal/promtest"
	"github.com/foresightscale/foresight/internal/testenv"
	"github.com/foresightscale/foresight/models/training"
)

// TestSlowDashboardQueriesReturnDataFromServe runs every query of every
// generated dashboard against a real Prometheus scraping real `foresight
// serve` processes, and requires each to return data: a dashboard that
// parses but shows "No data" is caught here.
//
// Two processes, as two replicas of a deployment would be: the demo
// (synthetic workload) forecasting every second, and one whose Prometheus
// source is unreachable, so the error and hold series exist too. The
// forecast error needs a forecast to mature: a step (30 s) after the first
// cycle. Takes about a minute.
func TestSlowDashboardQueriesReturnDataFromServe(t *testing.T) {
	if testing.Short() {
		t.Skip("slow (about a minute): runs foresight serve twice and Prometheus")
	}
	promtest.Binary(t, "prometheus") // skip (or fail) before starting anything
	// A 1 s interval changes the loop's pace only: `end` is still truncated
	// to the model's 30 s step, so forecasts are scored a step later, as in
	// production.
	demo := startServe(t, "--config", writeFile(t, "interval: 1s\n"))
	// The second serves the demo model from a directory with the report
	// `train --promote` writes next to it, so the panels on the serving
	// model's training figures have series too.
	broken := startServe(t, "--prometheus-url", "http://127.0.0.1:1", "--demo", "--model", demoModelWithReport(t),
		"--config", writeFile(t, "policy:\n  capacityPerPod: 50\n  slo: {latencyP99: 250ms, service: frontend}\ninterval: 1s\n"))
	prom := promtest.Start(t, promtest.Options{
		ScrapeTargets:  []string{hostPort(t, demo.metrics), hostPort(t, broken.metrics)},
		ScrapeInterval: time.Second,
	})
	api := &promAPI{base: prom.URL(), client: &http.Client{Timeout: 10 * time.Second}}

	// What Grafana fills in for a datasource whose scrape interval is set
	// to this Prometheus' 1 s: $__rate_interval is at least 4 scrapes.
	builtins := map[string]string{"__rate_interval": "4s", "__interval": "1s", "__range": "5m", "datasource": "prometheus"}

	const timeout = 3 * time.Minute
	start := time.Now()
	for attempt := 1; ; attempt++ {
		failures := dashboardFailures(t, api, builtins)
		if len(failures) == 0 {
			t.Logf("every dashboard query returned data after %s (%d attempts)", time.Since(start).Round(time.Second), attempt)
			return
		}
		if attempt == 1 {
			t.Logf("waiting for %d queries, e.g. %s", len(failures), failures[0])
		}
		if time.Since(start) > timeout {
			t.Fatalf("after %s, %d dashboard queries still fail:\n%s", timeout, len(failures), strings.Join(failures, "\n"))
		}
		time.Sleep(2 * time.Second)
	}
}

// demoModelWithReport writes the demo model into a directory with a
// report.json as `foresight train --promote` leaves it: when it was trained,
// its held-out MAE and last value's by step, and the decision that promoted
// it over a champion.
func demoModelWithReport(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	for name, b := range demoModelFiles(t) {
		must(t, os.WriteFile(filepath.Join(dir, name), b, 0o600))
	}
	// The demo's own report (its real held-out figures), with what a
	// promotion adds to it.
	var report training.Report
	b, err := os.ReadFile(filepath.Join(testenv.RepoRoot(t), "models", "demo", "report.json"))
	must(t, err)
	must(t, json.Unmarshal(b, &report))
	toChampion := 0.9
	report.Trained = time.Now().Add(-time.Hour).UTC().Truncate(time.Second)
	report.Decision = &training.Decision{Promote: true, Reason: "promoted", ToChampion: &toChampion}
	b, err = json.Marshal(report)
	must(t, err)
	must(t, os.WriteFile(filepath.Join(dir, "report.json"), b, 0o600))
	return dir
}

// dashboardFailures resolves the template variables as Grafana does, then
// runs every panel query twice: with "All" selected, and with the first
// namespace and two services selected. It returns what failed.
func dashboardFailures(t *testing.T, api *promAPI, builtins map[string]string) []string {
	t.Helper()
	var failures []string
	for _, d := range dashboards.Build() {
		all := withBuiltins(builtins, map[string]string{"app": dashboards.AllValue, "namespace": dashboards.AllValue, "service": dashboards.AllValue})
		selected, err := selectVariables(api, d, builtins)
		if err != nil {
			failures = append(failures, fmt.Sprintf("%s: variables: %v", d.UID, err))
			continue
		}
		for _, setting := range []struct {
			name   string
			values map[string]string
		}{{"all", all}, {"selected", selected}} {
			for _, p := range d.Panels {
				for _, q := range p.Targets {
					expr, err := dashboards.Expand(q.Expr, setting.values)
					if err == nil {
						err = api.hasData(expr)
					}
					if err != nil {
						failures = append(failures, fmt.Sprintf("%s / %s / %s (%s): %v", d.UID, p.Title, q.RefID, setting.name, err))
					}
				}
			}
		}
	}
	return failures
}

var labelValuesQuery = regexp.MustCompile(`^label_values\((.+), *(\w+)\)$`)

// selectVariables runs the dashboard's query variables in order, each
// expanded with the ones before, and picks the first namespace and the
// first two services. The demo forecasts namespace "default".
func selectVariables(api *promAPI, d dashboards.Dashboard, builtins map[string]string) (map[string]string, error) {
	values := withBuiltins(builtins, nil)
	for _, v := range d.Templating.List {
		if v.Type != "query" {
			continue
		}
		m := labelValuesQuery.FindStringSubmatch(v.Definition)
		if m == nil {
			return nil, fmt.Errorf("variable %s: %q is not label_values(selector, label)", v.Name, v.Definition)
		}
		selector, err := dashboards.Expand(m[1], values)
		if err != nil {
			return nil, fmt.Errorf("variable %s: %w", v.Name, err)
		}
		options, err := api.labelValues(m[2], selector)
		if err != nil {
			return nil, fmt.Errorf("variable %s: %w", v.Name, err)
		}
		want := map[string]int{"app": 1, "namespace": 1, "service": 2}[v.Name]
		if len(options) < want {
			return nil, fmt.Errorf("variable %s offers %v; want at least %d values", v.Name, options, want)
		}
		if v.Name == "namespace" && options[0] != "default" {
			return nil, fmt.Errorf("variable namespace offers %v; the demo forecasts namespace default", options)
		}
		values[v.Name] = dashboards.RegexValue(options[:max(want, 1)]...)
	}
	return values, nil
}

func withBuiltins(builtins, vars map[string]string) map[string]string {
	out := make(map[string]string, len(builtins)+len(vars))
	for k, v := range builtins {
		out[k] = v
	}
	for k, v := range vars {
		out[k] = v
	}
	return out
}

// promAPI is the part of Prometheus' HTTP API Grafana uses for these
// dashboards.
type promAPI struct {
	base   string
	client *http.Client
}

type apiResponse struct {
	Status string          `json:"status"`
	Error  string          `json:"error"`
	Data   json.RawMessage `json:"data"`
}

func (a *promAPI) get(path string, params url.Values, data any) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, a.base+path+"?"+params.Encode(), nil)
	if err != nil {
		return err
	}
	resp, err := a.client.Do(req)
	if err != nil {
		return fmt.Errorf("GET %s: %w", path, err)
	}
	defer resp.Body.Close()
	var body apiResponse
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		return fmt.Errorf("GET %s: status %s, decoding: %w", path, resp.Status, err)
	}
	if body.Status != "success" {
		return fmt.Errorf("GET %s: %s: %s", path, resp.Status, body.Error)
	}
	return json.Unmarshal(body.Data, data)
}

// labelValues is what Grafana's label_values(selector, label) runs.
func (a *promAPI) labelValues(label, selector string) ([]string, error) {
	var values []string
	err := a.get("/api/v1/label/"+url.PathEscape(label)+"/values", url.Values{"match[]": {selector}}, &values)
	return values, err
}

// hasData runs an instant query and requires at least one series with a
// finite value: NaN everywhere (e.g. a quantile of no observations) is as
// empty as no series for a dashboard.
func (a *promAPI) hasData(expr string) error {
	var data struct {
		ResultType string `json:"resultType"`
		Result     []struct {
			Metric map[string]string `json:"metric"`
			Value  [2]any            `json:"value"`
		} `json:"result"`
	}
	if err := a.get("/api/v1/query", url.Values{"query": {expr}}, &data); err != nil {
		return fmt.Errorf("%s: %w", expr, err)
	}
	if data.ResultType != "vector" {
		return fmt.Errorf("%s: result type %s, want vector", expr, data.ResultType)
	}
	if len(data.Result) == 0 {
		return fmt.Errorf("%s: no series", expr)
	}
	var errs []error
	for _, r := range data.Result {
		s, _ := r.Value[1].(string)
		v, err := strconv.ParseFloat(s, 64)
		if err == nil && !math.IsNaN(v) && !math.IsInf(v, 0) {
			return nil
		}
		errs = append(errs, fmt.Errorf("%v = %q", r.Metric, s))
	}
	return fmt.Errorf("%s: no finite value: %w", expr, errors.Join(errs...))
}

func hostPort(t *testing.T, rawURL string) string {
	t.Helper()
	u, err := url.Parse(rawURL)
	if err != nil {
		t.Fatal(err)
	}
	return u.Host
}

// Package dashboards builds Foresight's Grafana dashboards in Go: typed
// structs for the part of Grafana's dashboard JSON model they use, one
// builder (Build) as the single source of truth, and the files generated
// from it (Files): the dashboard JSON and the ConfigMap for Grafana's
// dashboard sidecar. `make dashboards` writes them; a test fails when the
// committed files differ from what Build produces.
package dashboards

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"path"
	"regexp"
	"slices"
	"strings"
)

// The subset of Grafana's dashboard JSON model these dashboards use, for
// SchemaVersion. Field names and values follow what Grafana itself exports
// at that version, so a dashboard re-exported from Grafana diffs cleanly.

// SchemaVersion is the dashboard schema the JSON targets: Grafana 10.4 and
// 11.0 write 39; newer Grafana versions migrate it on load.
const SchemaVersion = 39

// Dashboard is one Grafana dashboard.
type Dashboard struct {
	UID           string     `json:"uid"`
	Title         string     `json:"title"`
	Description   string     `json:"description,omitempty"`
	Tags          []string   `json:"tags"`
	Timezone      string     `json:"timezone"`
	Editable      bool       `json:"editable"`
	GraphTooltip  int        `json:"graphTooltip"`
	SchemaVersion int        `json:"schemaVersion"`
	Version       int        `json:"version"`
	Refresh       string     `json:"refresh"`
	Time          TimeRange  `json:"time"`
	Links         []Link     `json:"links"`
	Templating    Templating `json:"templating"`
	Panels        []Panel    `json:"panels"`
}

// TimeRange is the default time range, in Grafana's relative syntax.
type TimeRange struct {
	From string `json:"from"`
	To   string `json:"to"`
}

// Link is a dashboard link; type "dashboards" lists the dashboards with Tags.
type Link struct {
	Title       string   `json:"title"`
	Type        string   `json:"type"`
	Tags        []string `json:"tags"`
	AsDropdown  bool     `json:"asDropdown"`
	IncludeVars bool     `json:"includeVars"`
	KeepTime    bool     `json:"keepTime"`
}

// Templating holds the dashboard's variables.
type Templating struct {
	List []Variable `json:"list"`
}

// Variable is a template variable of type "datasource" or "query".
type Variable struct {
	Name        string         `json:"name"`
	Label       string         `json:"label"`
	Description string         `json:"description,omitempty"`
	Type        string         `json:"type"`
	Datasource  *DatasourceRef `json:"datasource,omitempty"`
	// Query is the datasource type for a "datasource" variable (a string),
	// a VariableQuery for a "query" variable.
	Query      any      `json:"query"`
	Definition string   `json:"definition,omitempty"`
	Current    struct{} `json:"current"`
	Options    []string `json:"options"`
	Hide       int      `json:"hide"`
	IncludeAll bool     `json:"includeAll"`
	AllValue   string   `json:"allValue,omitempty"`
	Multi      bool     `json:"multi"`
	// Refresh: 1 on dashboard load, 2 on time range change.
	Refresh int    `json:"refresh"`
	Regex   string `json:"regex"`
	// Sort: 1 alphabetical ascending.
	Sort int `json:"sort"`
}

// VariableQuery is a Prometheus query variable's query, as Grafana's
// Prometheus variable editor stores it (QryType 1: label values).
type VariableQuery struct {
	QryType int    `json:"qryType"`
	Query   string `json:"query"`
	RefID   string `json:"refId"`
}

// DatasourceRef points a panel or query at a datasource.
type DatasourceRef struct {
	Type string `json:"type"`
	UID  string `json:"uid"`
}

// Panel is one panel: type "timeseries", "stat" or "table".
type Panel struct {
	ID          int            `json:"id"`
	Type        string         `json:"type"`
	Title       string         `json:"title"`
	Description string         `json:"description,omitempty"`
	GridPos     GridPos        `json:"gridPos"`
	Datasource  *DatasourceRef `json:"datasource"`
	// Repeat names a variable: one copy of the panel per selected value.
	Repeat          string           `json:"repeat,omitempty"`
	RepeatDirection string           `json:"repeatDirection,omitempty"`
	MaxPerRow       int              `json:"maxPerRow,omitempty"`
	Targets         []Target         `json:"targets"`
	FieldConfig     FieldConfig      `json:"fieldConfig"`
	Options         PanelOptions     `json:"options"`
	Transformations []Transformation `json:"transformations,omitempty"`
}

// GridPos places a panel on the 24-column grid; H is in grid rows (30 px).
type GridPos struct {
	H int `json:"h"`
	W int `json:"w"`
	X int `json:"x"`
	Y int `json:"y"`
}

// GridColumns is the width of Grafana's dashboard grid.
const GridColumns = 24

// Target is one PromQL query of a panel.
type Target struct {
	Datasource   *DatasourceRef `json:"datasource"`
	EditorMode   string         `json:"editorMode"`
	Expr         string         `json:"expr"`
	LegendFormat string         `json:"legendFormat,omitempty"`
	RefID        string         `json:"refId"`
	// Range and Instant select a range query (graphs) or an instant query
	// (tables); Format "table" returns labels as columns.
	Range   bool   `json:"range"`
	Instant bool   `json:"instant"`
	Format  string `json:"format,omitempty"`
}

// FieldConfig styles the panel's values.
type FieldConfig struct {
	Defaults  FieldDefaults `json:"defaults"`
	Overrides []Override    `json:"overrides"`
}

// FieldDefaults apply to every field of the panel.
type FieldDefaults struct {
	Unit     string   `json:"unit,omitempty"`
	Decimals *int     `json:"decimals,omitempty"`
	Min      *float64 `json:"min,omitempty"`
	Max      *float64 `json:"max,omitempty"`
	// NoValue is shown instead of "No data".
	NoValue    string       `json:"noValue,omitempty"`
	Color      *FieldColor  `json:"color,omitempty"`
	Thresholds *Thresholds  `json:"thresholds,omitempty"`
	Custom     *FieldCustom `json:"custom,omitempty"`
}

// FieldColor picks how values are coloured: "palette-classic" or "thresholds".
type FieldColor struct {
	Mode string `json:"mode"`
}

// Thresholds colour a stat by its value.
type Thresholds struct {
	Mode  string          `json:"mode"`
	Steps []ThresholdStep `json:"steps"`
}

// ThresholdStep starts Color at Value; the first step has no value (null).
type ThresholdStep struct {
	Color string   `json:"color"`
	Value *float64 `json:"value"`
}

// FieldCustom holds the time series panel's drawing options.
type FieldCustom struct {
	DrawStyle         string `json:"drawStyle"`
	LineInterpolation string `json:"lineInterpolation"`
	LineWidth         int    `json:"lineWidth"`
	FillOpacity       int    `json:"fillOpacity"`
	ShowPoints        string `json:"showPoints"`
	SpanNulls         bool   `json:"spanNulls"`
}

// Override changes properties of the fields a matcher selects, e.g. the
// series of one query (matcher "byFrameRefID").
type Override struct {
	Matcher    Matcher    `json:"matcher"`
	Properties []Property `json:"properties"`
}

// Matcher selects fields.
type Matcher struct {
	ID      string `json:"id"`
	Options string `json:"options"`
}

// Property is one overridden field setting.
type Property struct {
	ID    string `json:"id"`
	Value any    `json:"value"`
}

// LineStyle is the value of a "custom.lineStyle" property.
type LineStyle struct {
	Fill string `json:"fill"`
	Dash []int  `json:"dash,omitempty"`
}

// PanelOptions holds the options of all three panel types; each type reads
// its own and the others are left out of the JSON.
type PanelOptions struct {
	// timeseries
	Legend  *Legend  `json:"legend,omitempty"`
	Tooltip *Tooltip `json:"tooltip,omitempty"`
	// stat
	ReduceOptions *ReduceOptions `json:"reduceOptions,omitempty"`
	ColorMode     string         `json:"colorMode,omitempty"`
	GraphMode     string         `json:"graphMode,omitempty"`
	JustifyMode   string         `json:"justifyMode,omitempty"`
	Orientation   string         `json:"orientation,omitempty"`
	TextMode      string         `json:"textMode,omitempty"`
	// table
	ShowHeader *bool  `json:"showHeader,omitempty"`
	CellHeight string `json:"cellHeight,omitempty"`
}

// Legend of a time series panel.
type Legend struct {
	DisplayMode string   `json:"displayMode"`
	Placement   string   `json:"placement"`
	ShowLegend  bool     `json:"showLegend"`
	Calcs       []string `json:"calcs"`
}

// Tooltip of a time series panel.
type Tooltip struct {
	Mode string `json:"mode"`
	Sort string `json:"sort"`
}

// ReduceOptions say how a stat turns a series into one value.
type ReduceOptions struct {
	Calcs  []string `json:"calcs"`
	Fields string   `json:"fields"`
	Values bool     `json:"values"`
}

// Transformation reshapes query results before display.
type Transformation struct {
	ID      string `json:"id"`
	Options any    `json:"options"`
}

// OrganizeOptions hide or rename columns ("organize" transformation).
type OrganizeOptions struct {
	ExcludeByName map[string]bool   `json:"excludeByName"`
	RenameByName  map[string]string `json:"renameByName"`
}

// MatrixOptions turn rows of (row, column, value) into a matrix
// ("groupingToMatrix" transformation).
type MatrixOptions struct {
	RowField    string `json:"rowField"`
	ColumnField string `json:"columnField"`
	ValueField  string `json:"valueField"`
}

// Names shared by the dashboards, their ConfigMap and the documentation.
const (
	// DatasourceVariable is the datasource picker every query runs on.
	DatasourceVariable = "datasource"
	// AllValue is what "All" of the namespace and service variables sends
	// to Prometheus: a regex, not the list of values, so that the health
	// panels keep working when the list is empty because no prediction is
	// published (exactly when they are needed).
	AllValue = ".*"
	// Tag is on every Foresight dashboard; the dashboard links list by it.
	Tag = "foresight"
	// Folder is the Grafana folder the ConfigMap asks the sidecar for.
	Folder = "Foresight"

	// Dir, ComponentDir and ChartDir are where the generated files go,
	// relative to the repository root, slash-separated: the dashboards, the
	// kustomize component, and the Helm chart's copy (a chart can only
	// read files inside it).
	Dir          = "dashboards"
	ComponentDir = "manifests/components/grafana-dashboards"
	ChartDir     = "charts/foresight/dashboards"

	// ConfigMapName and ConfigMapNamespace name the generated ConfigMap.
	ConfigMapName      = "foresight-dashboards"
	ConfigMapNamespace = "foresight"
	// DashboardLabel is the label the Grafana dashboard sidecar (kiwigrid
	// k8s-sidecar, as run by the grafana and kube-prometheus-stack Helm
	// charts) selects ConfigMaps by, with value "1".
	DashboardLabel = "grafana_dashboard"
	// FolderAnnotation names the Grafana folder. The sidecar reads it only
	// when the chart sets sidecar.dashboards.folderAnnotation to this name
	// and sidecar.dashboards.provider.foldersFromFilesStructure to true.
	FolderAnnotation = "grafana_folder"
)

// Label filters. The adapter's series carry namespace and service; the
// forecaster's per-service series carry service only (one forecaster serves
// one namespace), and its loop series carry neither.
const (
	byNamespaceService = `app=~"$app", namespace=~"$namespace", service=~"$service"`
	byService          = `app=~"$app", service=~"$service"`
	byApp              = `{app=~"$app"}`
	rateWindow         = "[$__rate_interval]"
)

var prometheusDatasource = &DatasourceRef{Type: "prometheus", UID: "${" + DatasourceVariable + "}"}

// Build returns every Foresight dashboard. It is the one source of truth:
// Files renders it, the tests check it, the integration test runs its
// queries against a real Prometheus.
func Build() []Dashboard {
	return []Dashboard{forecastsDashboard(), healthDashboard()}
}

func forecastsDashboard() Dashboard {
	b := newBuilder("foresight-forecasts", "Foresight / Forecasts",
		"What Foresight predicts for each service next to what then happened: request rate, replicas, CPU, and how far off the forecasts were by how many steps ahead they looked.")
	b.add(4, 4, stat("Services forecast",
		"Services with a prediction served now (fresh, or the last good one held).", "none",
		query("A", `count(max by (namespace, service) (foresight_predicted_replicas{`+byNamespaceService+`}))`, "")))
	b.add(4, 4, withThresholds(stat("Predictions held",
		"Services served their last good prediction instead of a fresh one; the health dashboard says why.", "none",
		query("A", `sum(max by (namespace, service) (foresight_prediction_held{`+byNamespaceService+`}))`, "")),
		step("green", nil), step("orange", ptr(1.0))))
	b.add(4, 4, stat("Predicted replicas",
		"Sum over the selected services of the replicas Foresight serves to the HPAs.", "none",
		query("A", `sum(max by (namespace, service) (foresight_predicted_replicas{`+byNamespaceService+`}))`, "")))
	b.add(4, 4, stat("Observed replicas",
		"Sum over the selected services of the replica counts the last forecasts started from.", "none",
		query("A", `sum(max by (namespace, service) (foresight_observed_replicas{`+byNamespaceService+`}))`, "")))
	b.add(4, 4, stat("Forecast error, 1 step ahead",
		"Mean absolute error of the request-rate forecasts one model step ahead, summed over the selected services and divided by their current request rate.", "percentunit",
		query("A", `sum(avg by (service) (foresight_forecast_absolute_error{`+byService+`, step="1"}) and on (service) max by (service) (foresight_observed_requests{`+byNamespaceService+`})) / sum(max by (service) (foresight_observed_requests{`+byNamespaceService+`}))`, "")))
	b.add(4, 4, withThresholds(stat("Oldest prediction",
		"Age of the oldest prediction served. A fresh one is at most a cycle old; a held one ages until it expires (staleAfter, 5m by default) and is then withdrawn.", "s",
		query("A", `max(foresight_prediction_age_seconds{`+byNamespaceService+`})`, "")),
		step("green", nil), step("orange", ptr(120.0)), step("red", ptr(240.0))))

	b.add(12, 8, dashed(timeseries("Request rate, all selected services",
		"Observed request rate, the forecast one step ahead and the peak forecast within the lead time, summed over the selected services.", "reqps",
		query("A", `sum(max by (namespace, service) (foresight_observed_requests{`+byNamespaceService+`}))`, "observed"),
		query("B", `sum(max by (namespace, service) (foresight_forecast_requests{`+byNamespaceService+`, step="1"}))`, "forecast, 1 step ahead"),
		query("C", `sum(max by (namespace, service) (foresight_predicted_requests{`+byNamespaceService+`}))`, "peak forecast within the lead time")),
		"B", "C"))
	b.add(12, 8, dashed(timeseries("CPU, all selected services",
		"Observed CPU usage and the peak CPU forecast within the lead time (cores, in the unit of the source's cpu feature), summed over the selected services.", "short",
		query("A", `sum(max by (namespace, service) (foresight_observed_cpu_cores{`+byNamespaceService+`}))`, "observed"),
		query("B", `sum(max by (namespace, service) (foresight_predicted_cpu_cores{`+byNamespaceService+`}))`, "peak forecast within the lead time")),
		"B"))

	// One panel per selected service. A repeated panel takes a whole grid
	// row; Grafana splits it into maxPerRow copies.
	b.add(GridColumns, 8, repeated(dashed(timeseries("Request rate: forecast vs observed — $service",
		"The latest observed request rate, the forecast one model step ahead, and the peak forecast within the lead time that sizes the replicas. The forecast for a moment is drawn when it is made, one step before it can be compared.", "reqps",
		query("A", `max by (service) (foresight_observed_requests{`+byNamespaceService+`})`, "{{service}} observed"),
		query("B", `max by (service) (foresight_forecast_requests{`+byNamespaceService+`, step="1"})`, "{{service}} forecast, 1 step ahead"),
		query("C", `max by (service, horizon) (foresight_predicted_requests{`+byNamespaceService+`})`, "{{service}} peak forecast within {{horizon}}")),
		"B", "C")))
	b.add(GridColumns, 8, repeated(dashed(stepped(timeseries("Replicas: predicted vs observed — $service",
		"Replicas Foresight serves to the HPA (enough for the peak forecast within the lead time) and the replicas observed when the forecast was made.", "none",
		query("A", `max by (service, horizon) (foresight_predicted_replicas{`+byNamespaceService+`})`, "{{service}} predicted for the next {{horizon}}"),
		query("B", `max by (service) (foresight_observed_replicas{`+byNamespaceService+`})`, "{{service}} observed"))),
		"A")))

	b.add(12, 8, timeseries("Forecast error by steps ahead, relative",
		"Mean absolute error of the request-rate forecasts by how many model steps ahead they looked, summed over the selected services and divided by their current request rate. Error grows with the horizon; a jump at all horizons means the workload changed.", "percentunit",
		query("A", `sum by (step) (avg by (service, step) (foresight_forecast_absolute_error{`+byService+`}) and on (service) max by (service) (foresight_observed_requests{`+byNamespaceService+`})) / scalar(sum(max by (service) (foresight_observed_requests{`+byNamespaceService+`})))`, "{{step}} steps ahead")))
	b.add(12, 8, timeseries("Forecast error 1 step ahead, by service",
		"Mean absolute error of each service's request-rate forecast one model step ahead, over its last scored forecasts (requests per second).", "reqps",
		query("A", `avg by (service) (foresight_forecast_absolute_error{`+byService+`, step="1"}) and on (service) max by (service) (foresight_predicted_replicas{`+byNamespaceService+`})`, "{{service}}")))
	b.add(12, 9, matrix(table("Mean absolute error by service and steps ahead",
		"Rows: services; columns: model steps ahead; cells: mean absolute error of the request-rate forecast over the last scored forecasts (requests per second).", "reqps",
		instant("A", `avg by (service, step) (foresight_forecast_absolute_error{`+byService+`}) and on (service) max by (service) (foresight_predicted_replicas{`+byNamespaceService+`})`))))
	b.add(12, 9, matrix(table("Relative error by service and steps ahead",
		"The mean absolute error divided by the service's current request rate. Services receiving no requests are left out.", "percentunit",
		instant("A", `avg by (service, step) (foresight_forecast_absolute_error{`+byService+`}) / on (service) group_left () (max by (service) (foresight_observed_requests{`+byNamespaceService+`}) > 0)`))))
	return b.dashboard
}

func healthDashboard() Dashboard {
	b := newBuilder("foresight-health", "Foresight / Loop health",
		"Is the forecast loop running, how fast, and why predictions are held: cycles, latency, source errors, staleness and the model served.")
	b.add(6, 4, withThresholds(stat("Since last successful cycle",
		"Per Foresight replica and application: time since a cycle last produced a fresh prediction. Held predictions expire after staleAfter (5m by default); the HPAs then hold their replicas.", "s",
		query("A", `time() - max by (instance, app) (foresight_last_success_timestamp_seconds`+byApp+`)`, "{{app}} {{instance}}")),
		step("green", nil), step("orange", ptr(120.0)), step("red", ptr(300.0))))
	b.add(6, 4, withThresholds(stat("Cycles not OK",
		"Share of forecast cycles that were degraded (some services held) or failed (none fresh).", "percentunit",
		query("A", `sum(rate(foresight_cycles_total{app=~"$app", result!="ok"}`+rateWindow+`)) / sum(rate(foresight_cycles_total`+byApp+rateWindow+`))`, "")),
		step("green", nil), step("orange", ptr(0.01)), step("red", ptr(0.5))))
	b.add(6, 4, withThresholds(stat("Predictions held now",
		"Services whose last good prediction is served because new forecasts fail.", "none",
		query("A", `sum(max by (namespace, service) (foresight_prediction_held{`+byNamespaceService+`}))`, "")),
		step("green", nil), step("orange", ptr(1.0))))
	b.add(6, 4, noValue(withThresholds(stat("Source errors in range",
		"Failed metric fetches over the dashboard's time range, all replicas.", "none",
		query("A", `sum(increase(foresight_source_errors_total`+byApp+`[$__range]))`, "")),
		step("green", nil), step("red", ptr(1.0))), "none recorded"))

	b.add(12, 8, timeseries("Cycle duration",
		"Per replica: quantiles of the time one forecast cycle takes (fetch, input window, inference, policy). It must stay well under the cycle timeout (80% of the interval by default).", "s",
		query("A", `histogram_quantile(0.5, sum by (instance, le) (rate(foresight_cycle_duration_seconds_bucket`+byApp+rateWindow+`)))`, "p50 {{instance}}"),
		query("B", `histogram_quantile(0.9, sum by (instance, le) (rate(foresight_cycle_duration_seconds_bucket`+byApp+rateWindow+`)))`, "p90 {{instance}}"),
		query("C", `histogram_quantile(0.99, sum by (instance, le) (rate(foresight_cycle_duration_seconds_bucket`+byApp+rateWindow+`)))`, "p99 {{instance}}")))
	b.add(12, 8, timeseries("Model inference duration",
		"Per replica: quantiles of the time the model takes for one forecast of all services.", "s",
		query("A", `histogram_quantile(0.5, sum by (instance, le) (rate(foresight_inference_duration_seconds_bucket`+byApp+rateWindow+`)))`, "p50 {{instance}}"),
		query("B", `histogram_quantile(0.99, sum by (instance, le) (rate(foresight_inference_duration_seconds_bucket`+byApp+rateWindow+`)))`, "p99 {{instance}}")))
	b.add(8, 8, timeseries("Cycles by result",
		"Forecast cycles per minute, all replicas: ok (every service fresh), degraded (some held), failed (none fresh).", "opm",
		query("A", `sum by (result) (rate(foresight_cycles_total`+byApp+rateWindow+`)) * 60`, "{{result}}")))
	b.add(8, 8, timeseries("Source errors by kind",
		"Failed metric fetches per minute by source and kind: unreachable, timeout, bad_response, bad_data. Every failed fetch holds all predictions for that cycle.", "opm",
		query("A", `sum by (source, kind) (rate(foresight_source_errors_total`+byApp+rateWindow+`)) * 60`, "{{source}}: {{kind}}")))
	b.add(8, 8, timeseries("Held predictions by reason",
		"Cycles per minute in which a service's prediction was held (or, once stale, dropped), by reason: source_error, timeout, missing_data, bad_forecast, model_error.", "opm",
		query("A", `sum by (service, reason) (rate(foresight_held_predictions_total{`+byService+`}`+rateWindow+`)) * 60`, "{{service}}: {{reason}}")))
	b.add(12, 8, stepped(timeseries("Prediction held, by service and reason",
		"1 while a service's last good prediction is served instead of a fresh one, with the reason; 0 when fresh.", "none",
		query("A", `max by (namespace, service, reason) (foresight_prediction_held{`+byNamespaceService+`})`, "{{namespace}}/{{service}} {{reason}}"))))
	b.add(12, 8, timeseries("Prediction age",
		"Seconds since each served prediction was computed. It climbs while a prediction is held and drops when a fresh one arrives.", "s",
		query("A", `max by (namespace, service) (foresight_prediction_age_seconds{`+byNamespaceService+`})`, "{{namespace}}/{{service}}")))
	b.add(8, 8, timeseries("Gaps in the input window",
		"Samples of the last input window that were missing, summed over features: carried (a sample within the 5m lookback filled in, as Prometheus does) or imputed (no recent sample; too many hold the forecast with missing_data).", "none",
		query("A", `sum by (service, method) (max by (service, feature, method) (foresight_window_imputed_samples{`+byService+`}))`, "{{service}} {{method}}")))
	b.add(8, 8, timeseries("Forecasts scored",
		"Forecasts compared with the request rate later observed, per minute and by steps ahead, all replicas. It feeds the error panels of the forecasts dashboard.", "opm",
		query("A", `sum by (step) (rate(foresight_forecast_evaluations_total{`+byService+`}`+rateWindow+`)) * 60`, "{{step}} steps ahead")))
	b.add(8, 8, organized(table("Model served",
		"The model each replica serves for each application: name, version, number of services, input window and horizon (in steps) and the step.", "none",
		instant("A", `max by (instance, app, name, version, services, window, horizon, step) (foresight_model_info`+byApp+`)`))))
	b.add(12, 8, organized(table("How services are forecast",
		"Services per application by coverage: model (the model knows the service and the data has it), fallback (in the data, not in the model: forecast by the model-free fallback, published with model=\"fallback\", until a retrained model covers it), absent (in the model, not in the data: nothing is published). List them with foresight_service_coverage{coverage!=\"model\"}; see docs/your-own-application.md.", "none",
		instant("A", `count by (app, coverage) (max by (app, service, coverage) (foresight_service_coverage{`+byService+`}) == 1)`))))
	b.add(8, 8, noValue(withThresholds(stat("Model age",
		"Per replica and application: time since the serving model finished training (from its report.json). With scheduled retraining it should stay under the schedule's period plus a run; older means promotions stopped (kept challengers, failed Jobs: see the ModelKept/ModelPromoted Events on the model store) or the replica did not reload.", "s",
		query("A", `time() - max by (instance, app) (foresight_model_trained_timestamp_seconds`+byApp+`)`, "{{app}} {{instance}}")),
		step("green", nil), step("orange", ptr(2*86400.0)), step("red", ptr(7*86400.0))), "no training report (built-in model)"))
	b.add(8, 8, timeseries("Model promotions and rejected reloads",
		"New models loaded (a promotion the replicas picked up, or a model directory replaced) and models rejected at reload (the previous one kept serving), per hour, all replicas.", "none",
		query("A", `sum by (app, result) (increase(foresight_model_reloads_total`+byApp+`[1h]))`, "{{app}} {{result}}")))
	b.add(8, 8, timeseries("Held-out MAE over last value, by step",
		"The serving model's error on the history it never saw, over last value's, at each step ahead (below 1: better), from its training report; and its mean error over the model it replaced when it was promoted.", "none",
		query("A", `max by (app, step) (foresight_model_heldout_mae_ratio`+byApp+`)`, "{{app}} step {{step}}"),
		query("B", `max by (app) (foresight_model_heldout_to_champion_ratio`+byApp+`)`, "{{app}} vs the model it replaced")))
	b.add(12, 8, noValue(timeseries("SLO feedback: headroom",
		"With policy.slo: the headroom each replica sizes with, as the SLO feedback tuned it from policy.headroom: raised at once when the SLO service's p99 is above the SLO, given back slowly while it has slack (docs/configuration.md, SLO feedback).", "percentunit",
		query("A", `max by (instance, app) (foresight_slo_headroom`+byApp+`)`, "{{app}} {{instance}}")), "SLO feedback off (no policy.slo)"))
	b.add(12, 8, noValue(timeseries("SLO feedback: actions per hour",
		"With policy.slo: what each new step's p99 did to the headroom, per hour, all replicas: widened (above the SLO), tightened (slack), held, at_bound, no_signal (no p99 for the SLO service: check the latency_p99 query).", "none",
		query("A", `sum by (app, action) (increase(foresight_slo_feedback_total`+byApp+`[1h]))`, "{{app}} {{action}}")), "SLO feedback off (no policy.slo)"))
	b.add(12, 8, noValue(timeseries("Burst factor",
		"With policy.burst (the default): what each service's forecast peak is multiplied by, the recent 75th percentile of its short-window peak rate (requests_peak) over its step's mean. 1 everywhere means no requests_peak data, or a scrape interval too long to see bursts (docs/configuration.md, Bursts within a step).", "none",
		query("A", `max by (app, service) (foresight_burst_factor{`+byService+`})`, "{{app}} {{service}}")), "policy.burst off"))
	return b.dashboard
}

// builder lays panels out left to right, starting a new grid row when the
// next panel does not fit, and numbers them.
type builder struct {
	dashboard  Dashboard
	x, y, rowH int
}

func newBuilder(uid, title, description string) *builder {
	return &builder{dashboard: Dashboard{
		UID:           uid,
		Title:         title,
		Description:   description,
		Tags:          []string{Tag},
		Timezone:      "browser",
		Editable:      true,
		GraphTooltip:  1, // shared crosshair: compare panels at the same instant
		SchemaVersion: SchemaVersion,
		Version:       1,
		Refresh:       "30s", // the shipped model's step: nothing changes faster
		Time:          TimeRange{From: "now-3h", To: "now"},
		Links: []Link{{Title: "Foresight", Type: "dashboards", Tags: []string{Tag},
			AsDropdown: true, IncludeVars: true, KeepTime: true}},
		Templating: Templating{List: variables()},
		Panels:     []Panel{},
	}}
}

func (b *builder) add(w, h int, p Panel) {
	if b.x+w > GridColumns {
		b.x, b.y, b.rowH = 0, b.y+b.rowH, 0
	}
	p.ID = len(b.dashboard.Panels) + 1
	p.GridPos = GridPos{H: h, W: w, X: b.x, Y: b.y}
	b.x += w
	b.rowH = max(b.rowH, h)
	b.dashboard.Panels = append(b.dashboard.Panels, p)
}

func variables() []Variable {
	app := `label_values(foresight_predicted_replicas, app)`
	ns := `label_values(foresight_predicted_replicas{app=~"$app"}, namespace)`
	svc := `label_values(foresight_predicted_replicas{app=~"$app", namespace=~"$namespace"}, service)`
	return []Variable{
		{Name: DatasourceVariable, Label: "Data source", Type: "datasource", Query: "prometheus",
			Description: "The Prometheus that scrapes Foresight's /metrics.", Refresh: 1, Options: []string{}},
		queryVariable("app", "Application", "Applications Foresight serves (the apps list of its configuration; the namespace when there is none).", app),
		queryVariable("namespace", "Namespace", "Namespaces of the forecast services.", ns),
		queryVariable("service", "Service", "Forecast services in the selected namespaces.", svc),
	}
}

func queryVariable(name, label, description, labelValues string) Variable {
	return Variable{
		Name: name, Label: label, Description: description, Type: "query",
		Datasource: prometheusDatasource,
		Query:      VariableQuery{QryType: 1, Query: labelValues, RefID: "PrometheusVariableQueryEditor-VariableQuery"},
		Definition: labelValues,
		Options:    []string{},
		IncludeAll: true, AllValue: AllValue, Multi: true,
		Refresh: 2, Sort: 1,
	}
}

func query(refID, expr, legend string) Target {
	return Target{Datasource: prometheusDatasource, EditorMode: "code", Expr: expr, LegendFormat: legend, RefID: refID, Range: true}
}

// instant is a query for a table: the latest values, labels as columns.
func instant(refID, expr string) Target {
	return Target{Datasource: prometheusDatasource, EditorMode: "code", Expr: expr, RefID: refID, Instant: true, Format: "table"}
}

func timeseries(title, description, unit string, targets ...Target) Panel {
	return Panel{
		Type: "timeseries", Title: title, Description: description, Datasource: prometheusDatasource, Targets: targets,
		FieldConfig: FieldConfig{Defaults: FieldDefaults{
			Unit:  unit,
			Min:   ptr(0.0), // every series is a rate, count or duration
			Color: &FieldColor{Mode: "palette-classic"},
			Custom: &FieldCustom{DrawStyle: "line", LineInterpolation: "linear", LineWidth: 1,
				FillOpacity: 0, ShowPoints: "never", SpanNulls: false},
		}, Overrides: []Override{}},
		Options: PanelOptions{
			Legend:  &Legend{DisplayMode: "list", Placement: "bottom", ShowLegend: true, Calcs: []string{}},
			Tooltip: &Tooltip{Mode: "multi", Sort: "desc"},
		},
	}
}

func stat(title, description, unit string, t Target) Panel {
	return Panel{
		Type: "stat", Title: title, Description: description, Datasource: prometheusDatasource, Targets: []Target{t},
		FieldConfig: FieldConfig{Defaults: FieldDefaults{
			Unit:       unit,
			Color:      &FieldColor{Mode: "thresholds"},
			Thresholds: &Thresholds{Mode: "absolute", Steps: []ThresholdStep{step("green", nil)}},
		}, Overrides: []Override{}},
		Options: PanelOptions{
			ReduceOptions: &ReduceOptions{Calcs: []string{"lastNotNull"}, Fields: "", Values: false},
			ColorMode:     "value", GraphMode: "area", JustifyMode: "auto", Orientation: "auto", TextMode: "auto",
		},
	}
}

func table(title, description, unit string, t Target) Panel {
	return Panel{
		Type: "table", Title: title, Description: description, Datasource: prometheusDatasource, Targets: []Target{t},
		FieldConfig: FieldConfig{Defaults: FieldDefaults{Unit: unit}, Overrides: []Override{}},
		Options:     PanelOptions{ShowHeader: ptr(true), CellHeight: "sm"},
	}
}

func withThresholds(p Panel, steps ...ThresholdStep) Panel {
	p.FieldConfig.Defaults.Thresholds = &Thresholds{Mode: "absolute", Steps: steps}
	return p
}

func noValue(p Panel, text string) Panel {
	p.FieldConfig.Defaults.NoValue = text
	return p
}

func step(color string, from *float64) ThresholdStep { return ThresholdStep{Color: color, Value: from} }

// dashed draws the series of the given queries dashed: forecasts, against
// solid observations.
func dashed(p Panel, refIDs ...string) Panel {
	for _, ref := range refIDs {
		p.FieldConfig.Overrides = append(p.FieldConfig.Overrides, Override{
			Matcher:    Matcher{ID: "byFrameRefID", Options: ref},
			Properties: []Property{{ID: "custom.lineStyle", Value: LineStyle{Fill: "dash", Dash: []int{10, 10}}}},
		})
	}
	return p
}

// stepped draws whole-number series (replicas, flags) as steps.
func stepped(p Panel) Panel {
	p.FieldConfig.Defaults.Custom.LineInterpolation = "stepAfter"
	p.FieldConfig.Defaults.Decimals = ptr(0)
	return p
}

func repeated(p Panel) Panel {
	p.Repeat, p.RepeatDirection, p.MaxPerRow = "service", "h", 3
	return p
}

// matrix turns an instant table of (service, step, value) rows into one
// row per service and one column per step.
func matrix(p Panel) Panel {
	p.Transformations = append(p.Transformations, Transformation{ID: "groupingToMatrix",
		Options: MatrixOptions{RowField: "service", ColumnField: "step", ValueField: "Value"}})
	return p
}

// organized hides the timestamp and the constant value of an info metric.
func organized(p Panel) Panel {
	p.Transformations = append(p.Transformations, Transformation{ID: "organize",
		Options: OrganizeOptions{ExcludeByName: map[string]bool{"Time": true, "Value": true}, RenameByName: map[string]string{}}})
	return p
}

func ptr[T any](v T) *T { return &v }

// Render returns d as Grafana dashboard JSON: indented, fields in a fixed
// order, PromQL's < > & left readable, and a final newline.
func Render(d Dashboard) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(d); err != nil {
		return nil, fmt.Errorf("rendering dashboard %s: %w", d.UID, err)
	}
	return buf.Bytes(), nil
}

// FileName is the dashboard's file name, in Dir and in the ConfigMap.
func (d Dashboard) FileName() string { return d.UID + ".json" }

// Files renders every generated file, keyed by its slash-separated path
// relative to the repository root: one JSON file per dashboard, and the
// kustomize component with the ConfigMap embedding the same JSON.
func Files() (map[string][]byte, error) {
	files := make(map[string][]byte)
	embedded := make(map[string][]byte)
	for _, d := range Build() {
		b, err := Render(d)
		if err != nil {
			return nil, err
		}
		name := d.FileName()
		if _, dup := embedded[name]; dup {
			return nil, fmt.Errorf("two dashboards with uid %s", d.UID)
		}
		embedded[name] = b
		files[path.Join(Dir, name)] = b
		files[path.Join(ChartDir, name)] = b
	}
	cm, err := configMap(embedded)
	if err != nil {
		return nil, err
	}
	files[path.Join(ComponentDir, "configmap.yaml")] = cm
	files[path.Join(ComponentDir, "kustomization.yaml")] = []byte(kustomization)
	return files, nil
}

const generatedHeader = "# Code generated by `make dashboards` (go run ./dashboards/gen) from package dashboards. DO NOT EDIT.\n"

const kustomization = generatedHeader + `# Foresight's Grafana dashboards as a ConfigMap for the Grafana dashboard
# sidecar (grafana and kube-prometheus-stack Helm charts). See docs/dashboards.md.
apiVersion: kustomize.config.k8s.io/v1alpha1
kind: Component
resources:
  - configmap.yaml
`

// configMap writes the ConfigMap by hand rather than through a YAML
// encoder, so each dashboard is a literal block that reads (and diffs) as
// the JSON file it equals.
func configMap(dashboards map[string][]byte) ([]byte, error) {
	var b bytes.Buffer
	b.WriteString(generatedHeader)
	fmt.Fprintf(&b, `apiVersion: v1
kind: ConfigMap
metadata:
  name: %s
  namespace: %s
  labels:
    app.kubernetes.io/name: foresight
    app.kubernetes.io/part-of: foresight
    app.kubernetes.io/component: dashboards
    %s: "1"
  annotations:
    %s: %s
data:
`, ConfigMapName, ConfigMapNamespace, DashboardLabel, FolderAnnotation, Folder)
	for _, name := range slices.Sorted(maps.Keys(dashboards)) {
		content := dashboards[name]
		if !bytes.HasSuffix(content, []byte("\n")) || bytes.Contains(content, []byte("\t")) || bytes.Contains(content, []byte(" \n")) {
			// A literal block keeps exactly one final newline and no tabs or
			// trailing blanks; JSON from Render has none of those.
			return nil, fmt.Errorf("dashboard %s cannot be embedded as a YAML literal block", name)
		}
		fmt.Fprintf(&b, "  %s: |\n", name)
		for line := range strings.Lines(string(content)) {
			b.WriteString("    " + line)
		}
	}
	return b.Bytes(), nil
}

// variablePattern matches Grafana's variable syntaxes: $name, ${name},
// ${name:format} and [[name]].
var variablePattern = regexp.MustCompile(`\$(\w+)|\$\{([^}]*)\}|\[\[([^\]]*)\]\]`)

// Expand substitutes the variables of s with values, as Grafana does before
// it sends a query: values holds each variable's text as it is inserted
// (see RegexValue). An undefined variable or a syntax Grafana would
// format (${name:format}, [[name]]) is an error, so a typo in a query is
// caught before Grafana would send it on silently.
func Expand(s string, values map[string]string) (string, error) {
	var errs []error
	out := variablePattern.ReplaceAllStringFunc(s, func(m string) string {
		sub := variablePattern.FindStringSubmatch(m)
		name := sub[1] + sub[2]
		if sub[3] != "" || strings.Contains(name, ":") {
			errs = append(errs, fmt.Errorf("variable %s: only $name and ${name} are used here", m))
			return m
		}
		v, ok := values[name]
		if !ok {
			errs = append(errs, fmt.Errorf("undefined variable %s", m))
			return m
		}
		return v
	})
	if err := errors.Join(errs...); err != nil {
		return "", fmt.Errorf("expanding %q: %w", s, err)
	}
	return out, nil
}

// RegexValue formats the selected values of a multi-value variable the way
// Grafana's Prometheus datasource does: each regex-escaped (with the
// backslashes doubled for the PromQL string), several joined as (a|b).
// "All" sends AllValue instead.
func RegexValue(values ...string) string {
	escaped := make([]string, len(values))
	for i, v := range values {
		escaped[i] = strings.ReplaceAll(regexp.QuoteMeta(v), `\`, `\\`)
	}
	if len(escaped) == 1 {
		return escaped[0]
	}
	return "(" + strings.Join(escaped, "|") + ")"
}

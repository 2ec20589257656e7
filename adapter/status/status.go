// Package status serves Foresight's status page: per application and
// service, what the forecast read and said, the replicas it asks for and
// why a service is held. Server-rendered HTML with inline SVG charts: no
// JavaScript, no external assets, and a Content-Security-Policy that allows
// nothing but the page's own stylesheet, so it works offline and behind any
// proxy. Read-only: the forecasts, the loop's state and the window it
// read, never configuration, credentials or queries.
package status

import (
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"html/template"
	"math"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/foresightscale/foresight/forecaster/snapshot"
	"github.com/foresightscale/foresight/internal/textlimit"
)

// App is one application the page shows.
type App struct {
	Name, Namespace string
	// Latest is the application's latest snapshot (nil before the first).
	Latest func() *snapshot.Snapshot
	// Info says what serves it: its model and its last cycle.
	Info func() Info
}

// Info is what the page says of an application's model and loop.
type Info struct {
	Model, Version string
	// Trained is when the model finished training; zero when unknown (the
	// built-in model has no report).
	Trained time.Time
	// HeldOutRatio is the model's MAE over last value's on the history it
	// never saw, by step ahead; nil when unknown.
	HeldOutRatio []float64
	// LastCycle is when the last forecast cycle ran (zero: none yet), how
	// long it took, how many services it forecast and held, and its error.
	LastCycle     time.Time
	CycleDuration time.Duration
	Fresh, Held   int
	CycleErr      string
	// BurstFactor is each service's burst factor in the last cycle
	// (policy.burst); absent: none.
	BurstFactor map[string]float64
}

// Handler serves the index at "/" and one page per service at
// "/apps/{app}/{service}". refresh is how often a page reloads itself
// (the forecast interval); now is the clock.
func Handler(apps []App, refresh time.Duration, now func() time.Time) http.Handler {
	h := &handler{apps: apps, refresh: max(refresh, time.Second), now: now}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", h.index)
	mux.HandleFunc("GET /apps/{app}/{service}", h.service)
	return securityHeaders(mux)
}

type handler struct {
	apps    []App
	refresh time.Duration
	now     func() time.Time
}

// maxErrorText bounds an error shown on the page: a proxy's whole HTML
// error page inside a fetch error would bury the table.
const maxErrorText = 500

// stylesheet is the page's only style; its hash is the only one the CSP
// allows.
const stylesheet = `body{font-family:system-ui,sans-serif;margin:1.5rem;color:#1b1f24;background:#fff}
h1{font-size:1.4rem}h2{font-size:1.15rem;margin-top:2rem}
table{border-collapse:collapse;margin:.5rem 0}th,td{padding:.25rem .6rem;border-bottom:1px solid #d0d7de;text-align:left}
td.num,th.num{text-align:right;font-variant-numeric:tabular-nums}
.fresh{color:#1a7f37}.held{color:#9a6700}.unpublished{color:#cf222e}
.meta{color:#57606a}svg{border:1px solid #d0d7de;background:#fafbfc}
.obs{fill:none;stroke:#0969da;stroke-width:2}.p50{fill:none;stroke:#8250df;stroke-width:2;stroke-dasharray:6 4}
.band{fill:#8250df;fill-opacity:.15;stroke:none}.now{stroke:#57606a;stroke-dasharray:2 3}
.axis{stroke:#8c959f}.lbl{font-size:11px;fill:#57606a}`

var csp = "default-src 'none'; style-src 'sha256-" + hashOf(stylesheet) + "'; img-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

func hashOf(s string) string {
	sum := sha256.Sum256([]byte(s))
	return base64.StdEncoding.EncodeToString(sum[:])
}

func securityHeaders(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Security-Policy", csp)
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("Cache-Control", "no-store")
		next.ServeHTTP(w, r)
	})
}

// row is one service in an application's table.
type row struct {
	Service, Link, State, StateClass, Reason, Model string
	Predicted, Current, PeakRequests, Observed      string
	InputAge, Burst                                 string
}

type appView struct {
	Name, Namespace, Model, Version, Trained, HeldOut string
	LastCycle, CycleDuration, CycleErr                string
	Fresh, Held                                       int
	Rows                                              []row
}

func (h *handler) index(w http.ResponseWriter, _ *http.Request) {
	now := h.now()
	views := make([]appView, 0, len(h.apps))
	for _, a := range h.apps {
		views = append(views, h.appView(a, now))
	}
	h.render(w, "index", map[string]any{"Apps": views, "Now": now.UTC().Format(time.RFC3339)})
}

func (h *handler) appView(a App, now time.Time) appView {
	info := a.Info()
	v := appView{Name: a.Name, Namespace: a.Namespace, Model: info.Model, Version: info.Version,
		Trained: age(info.Trained, now), HeldOut: ratios(info.HeldOutRatio), CycleErr: textlimit.Cut(info.CycleErr, maxErrorText),
		Fresh: info.Fresh, Held: info.Held, LastCycle: age(info.LastCycle, now), CycleDuration: duration(info.CycleDuration)}
	snap := a.Latest()
	if snap == nil {
		return v
	}
	for _, p := range snap.Predictions {
		r := row{Service: p.Service, Link: pageLink(a.Name, p.Service), Model: snap.ModelOf(p),
			Predicted: fmt.Sprint(p.PredictedReplicas), Current: number(p.ObservedReplicas, 0),
			PeakRequests: number(p.PredictedRequests, 1), Observed: number(p.ObservedRequests, 1),
			Burst: "–"}
		if b, ok := info.BurstFactor[p.Service]; ok {
			r.Burst = number(b, 2)
		}
		if !p.InputAt.IsZero() {
			r.InputAge = duration(now.Sub(p.InputAt))
		}
		switch {
		case p.HeldReason != "":
			r.State, r.StateClass, r.Reason = "held", "held", p.HeldReason
		case now.After(p.ExpiresAt):
			r.State, r.StateClass, r.Reason = "stale", "unpublished", "expired"
		default:
			r.State, r.StateClass = "fresh", "fresh"
		}
		v.Rows = append(v.Rows, r)
	}
	for _, u := range snap.Unpublished {
		v.Rows = append(v.Rows, row{Service: u.Service, State: "unpublished", StateClass: "unpublished", Reason: u.Reason,
			Predicted: "–", Current: "–", PeakRequests: "–", Observed: "–", Burst: "–"})
	}
	slices.SortFunc(v.Rows, func(x, y row) int { return strings.Compare(x.Service, y.Service) })
	return v
}

func (h *handler) service(w http.ResponseWriter, r *http.Request) {
	appName, svc := r.PathValue("app"), r.PathValue("service")
	i := slices.IndexFunc(h.apps, func(a App) bool { return a.Name == appName })
	if i < 0 {
		http.Error(w, "no such application", http.StatusNotFound)
		return
	}
	a := h.apps[i]
	now := h.now()
	v := h.appView(a, now)
	j := slices.IndexFunc(v.Rows, func(r row) bool { return r.Service == svc })
	if j < 0 {
		http.Error(w, "no such service in this application", http.StatusNotFound)
		return
	}
	data := map[string]any{"App": v, "Row": v.Rows[j], "Now": now.UTC().Format(time.RFC3339)}
	if snap := a.Latest(); snap != nil {
		for _, p := range snap.Predictions {
			if p.Service == svc && p.Chart != nil {
				data["Requests"] = drawChart("request rate (req/s)", p.Chart.Start, p.Chart.Step, p.Chart.ObservedRequests, p.Chart.RequestsP50, p.Chart.RequestsUpper)
				data["CPU"] = drawChart("CPU (cores)", p.Chart.Start, p.Chart.Step, p.Chart.ObservedCPU, p.Chart.CPUP50, p.Chart.CPUUpper)
			}
		}
	}
	h.render(w, "service", data)
}

func (h *handler) render(w http.ResponseWriter, name string, data map[string]any) {
	data["Style"] = template.CSS(stylesheet)
	data["Refresh"] = int(math.Ceil(h.refresh.Seconds()))
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	if err := pages.ExecuteTemplate(w, name, data); err != nil {
		// Headers are sent; all that is left is to stop the page.
		fmt.Fprintf(w, "\n<!-- rendering failed -->\n")
	}
}

// pageLink is the path of a service's page; both parts are path-escaped by
// the template.
func pageLink(app, service string) string {
	return "/apps/" + url.PathEscape(app) + "/" + url.PathEscape(service)
}

func number(v float64, decimals int) string {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return "–"
	}
	if v == 0 && decimals > 0 {
		return "0"
	}
	return fmt.Sprintf("%.*f", decimals, v)
}

func duration(d time.Duration) string {
	switch {
	case d <= 0:
		return "–"
	case d < time.Second:
		return d.Round(100 * time.Microsecond).String()
	default:
		return d.Round(time.Second).String()
	}
}

// age says how long ago t was, or "unknown".
func age(t, now time.Time) string {
	if t.IsZero() {
		return "unknown"
	}
	return duration(now.Sub(t)) + " ago"
}

func ratios(rs []float64) string {
	if len(rs) == 0 {
		return "unknown"
	}
	parts := make([]string, len(rs))
	for i, r := range rs {
		parts[i] = number(r, 3)
	}
	return strings.Join(parts, " ")
}

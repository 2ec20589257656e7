package status

import "html/template"

// pages are the index and the service page. Everything from the data
// (service names, reasons, errors) goes through html/template's escaping.
var pages = template.Must(template.New("pages").Parse(`
{{define "head"}}<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="refresh" content="{{.Refresh}}">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{block "title" .}}Foresight{{end}}</title>
<style>{{.Style}}</style></head><body>{{end}}

{{define "appHeader"}}
<p class="meta">namespace <b>{{.Namespace}}</b> · model <b>{{.Model}}</b> version {{.Version}}, trained {{.Trained}} ·
held-out MAE / last value's by step: <span class="heldout">{{.HeldOut}}</span></p>
<p class="meta">last cycle {{.LastCycle}}, took {{.CycleDuration}}: <span class="cycle-fresh">{{.Fresh}}</span> forecast, <span class="cycle-held">{{.Held}}</span> held{{if .CycleErr}} · <span class="unpublished cycle-error">{{.CycleErr}}</span>{{end}}</p>
{{end}}

{{define "index"}}{{template "head" .}}
<h1>Foresight</h1>
<p class="meta">Predicted replicas and the forecasts behind them, as of {{.Now}}. This page reloads itself every {{.Refresh}} s.</p>
{{if not .Apps}}<p>No applications.</p>{{end}}
<nav><ul>{{range .Apps}}<li><a href="#app-{{.Name}}">{{.Name}}</a> ({{len .Rows}} services)</li>{{end}}</ul></nav>
{{range .Apps}}
<section class="app" id="app-{{.Name}}" data-app="{{.Name}}">
<h2>{{.Name}}</h2>
{{template "appHeader" .}}
{{if .Rows}}<table>
<thead><tr><th>service</th><th>state</th><th class="num">predicted replicas</th><th class="num">current replicas</th>
<th class="num">forecast peak req/s</th><th class="num">observed req/s</th><th class="num">burst factor</th><th>input age</th><th>forecast by</th></tr></thead>
<tbody>{{range .Rows}}
<tr class="service" data-service="{{.Service}}">
<td>{{if .Link}}<a href="{{.Link}}">{{.Service}}</a>{{else}}{{.Service}}{{end}}</td>
<td class="{{.StateClass}}">{{.State}}{{if .Reason}}: {{.Reason}}{{end}}</td>
<td class="num predicted">{{.Predicted}}</td><td class="num current">{{.Current}}</td>
<td class="num peak">{{.PeakRequests}}</td><td class="num observed">{{.Observed}}</td><td class="num burst">{{.Burst}}</td>
<td>{{.InputAge}}</td><td>{{.Model}}</td></tr>{{end}}
</tbody></table>{{else}}<p>No forecast yet.</p>{{end}}
</section>{{end}}
</body></html>{{end}}

{{define "chart"}}{{if .Empty}}<p class="meta">{{.Title}}: no data to draw.</p>{{else}}
<figure><svg role="img" aria-label="{{.Title}}: observed, forecast median and upper bound" width="{{.Width}}" height="{{.Height}}" viewBox="0 0 {{.Width}} {{.Height}}" xmlns="http://www.w3.org/2000/svg">
<text class="lbl" x="{{.X0}}" y="14">{{.Title}}: observed (solid), forecast median (dashed), up to the upper bound (band)</text>
<line class="axis" x1="{{.X0}}" y1="{{.Y1}}" x2="{{.X1}}" y2="{{.Y1}}"/><line class="axis" x1="{{.X0}}" y1="{{.Y0}}" x2="{{.X0}}" y2="{{.Y1}}"/>
{{range .YLabels}}<text class="lbl" x="{{.X}}" y="{{.Y}}" text-anchor="end">{{.Text}}</text>{{end}}
{{range .XLabels}}<text class="lbl" x="{{.X}}" y="{{.Y}}" text-anchor="{{.Anchor}}">{{.Text}}</text>{{end}}
<line class="now" x1="{{.NowX}}" y1="{{.Y0}}" x2="{{.NowX}}" y2="{{.Y1}}"/>
{{if .Band}}<path class="band" d="{{.Band}}"/>{{end}}
{{if .Observed}}<path class="obs" d="{{.Observed}}"/>{{end}}
{{if .Median}}<path class="p50" d="{{.Median}}"/>{{end}}
</svg><figcaption class="meta">{{.Title}}; times in UTC; the dotted line is the forecast's start.</figcaption></figure>
<details><summary>{{.Title}}: the values</summary><table class="values"><thead><tr><th>time</th><th class="num">observed</th><th class="num">median</th><th class="num">upper</th></tr></thead><tbody>
{{range .Values}}<tr><td>{{.Time}}</td><td class="num">{{.Observed}}</td><td class="num">{{.Median}}</td><td class="num">{{.Upper}}</td></tr>{{end}}
</tbody></table></details>{{end}}{{end}}

{{define "service"}}{{template "head" .}}
<p><a href="/">all applications</a></p>
<h1>{{.Row.Service}} <span class="meta">in {{.App.Name}}</span></h1>
{{template "appHeader" .App}}
<table><tbody>
<tr><th>state</th><td class="{{.Row.StateClass}} state">{{.Row.State}}{{if .Row.Reason}}: {{.Row.Reason}}{{end}}</td></tr>
<tr><th>predicted replicas</th><td class="num predicted">{{.Row.Predicted}}</td></tr>
<tr><th>current replicas</th><td class="num current">{{.Row.Current}}</td></tr>
<tr><th>forecast peak request rate (req/s)</th><td class="num peak">{{.Row.PeakRequests}}</td></tr>
<tr><th>observed request rate (req/s)</th><td class="num observed">{{.Row.Observed}}</td></tr>
<tr><th>burst factor</th><td class="num burst">{{.Row.Burst}}</td></tr>
<tr><th>input age</th><td>{{.Row.InputAge}}</td></tr>
<tr><th>forecast by</th><td>{{.Row.Model}}</td></tr>
</tbody></table>
{{with .Requests}}{{template "chart" .}}{{else}}<p class="meta">No chart: this service is forecast without a model window (the fallback), or has no forecast yet.</p>{{end}}
{{with .CPU}}{{template "chart" .}}{{end}}
</body></html>{{end}}
`))

package simulator

import (
	"errors"
	"fmt"
	"image/color"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
)

// maxPlotPoints is the most points a time-series line gets. An 83-hour
// trace is ~300,000 seconds per policy: a 14-inch PNG is ~1,300 pixels
// wide, so drawing every second shows nothing more and makes the
// rasteriser take seconds per line. Averaging into buckets (rather than
// keeping every n-th second) keeps each stretch's level, so a sustained
// change is drawn where it happened and no single second is over-weighted.
const maxPlotPoints = 2000

// latencyCapSLOs caps the latency plot's y axis at this many SLOs: a run
// that times out reaches seconds, which would flatten every other line.
const latencyCapSLOs = 4

// legendRoom scales a time-series plot's y range so the legend, drawn in
// the top-left corner of the data area, mostly sits above the lines.
const legendRoom = 1.3

// Plot sizes, as forecaster/backtest's: wide for time series, smaller for
// the summary.
const (
	seriesWidth, seriesHeight   = 14 * vg.Inch, 5 * vg.Inch
	summaryWidth, summaryHeight = 9 * vg.Inch, 6 * vg.Inch
)

// WritePlots writes the report's PNG plots into dir (created if missing) and
// returns the paths written, in a stable order: load.png (the entry's
// request rate), replicas.png (total pods per policy), latency.png
// (end-to-end p99 per policy against the SLO) and, when the report has a
// sweep, frontier.png (core-hours against SLO-violation seconds). Only the
// scored seconds are drawn, in minutes since the trace's start. Each file is
// written to a temporary file and renamed, so a failure never leaves half a
// PNG; on error the paths already written are returned with it.
func (r *Report) WritePlots(dir string) ([]string, error) {
	if len(r.Policies) == 0 {
		return nil, errors.New("plots: the simulation report has no policies")
	}
	for _, res := range r.Policies {
		run := r.Runs[res.Name]
		if run == nil || run.Trace == nil {
			// A report decoded from JSON has no runs (Runs is not encoded).
			return nil, fmt.Errorf("plots: policy %s: the report has no run for it", res.Name)
		}
		if run.Scored > len(run.P99) || len(run.Trace.RPS) < len(run.P99) {
			return nil, fmt.Errorf("plots: policy %s: inconsistent run (%d seconds simulated, scored from second %d, trace of %d)",
				res.Name, len(run.P99), run.Scored, len(run.Trace.RPS))
		}
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("plots: %w", err)
	}
	type figure struct {
		file string
		draw func() (*plot.Plot, error)
		w, h vg.Length
	}
	figures := []figure{
		{"load.png", r.loadPlot, seriesWidth, seriesHeight},
		{"replicas.png", r.replicasPlot, seriesWidth, seriesHeight},
		{"latency.png", r.latencyPlot, seriesWidth, seriesHeight},
	}
	if len(r.Frontier) > 0 {
		figures = append(figures, figure{"frontier.png", r.frontierPlot, summaryWidth, summaryHeight})
	}
	var files []string
	for _, f := range figures {
		p, err := f.draw()
		if err != nil {
			return files, fmt.Errorf("plots: %s: %w", f.file, err)
		}
		file := filepath.Join(dir, f.file)
		if err := savePNG(p, f.w, f.h, file); err != nil {
			return files, fmt.Errorf("plots: writing %s: %w", file, err)
		}
		files = append(files, file)
	}
	return files, nil
}

// savePNG renders p and replaces file with it atomically: the PNG goes to a
// temporary file in the same directory (so the rename cannot cross file
// systems), which is renamed over file only once complete.
func savePNG(p *plot.Plot, w, h vg.Length, file string) (err error) {
	wt, err := p.WriterTo(w, h, "png")
	if err != nil {
		return fmt.Errorf("rendering: %w", err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(file), "."+filepath.Base(file)+".*.tmp")
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	// CreateTemp makes the file private; a plot is for sharing.
	if err := tmp.Chmod(0o644); err != nil {
		return err
	}
	if _, err := wt.WriteTo(tmp); err != nil {
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), file)
}

// scoredSeries returns the scored seconds of a per-second series (warm-up
// dropped) as points at minutes since the trace start, downsampled.
func scoredSeries(values []float64, scored int) plotter.XYs {
	if scored >= len(values) {
		return nil
	}
	values = values[scored:]
	xs := make([]float64, len(values))
	for i := range xs {
		xs[i] = float64(i) / 60
	}
	return downsample(xs, values, maxPlotPoints)
}

// downsample averages consecutive points into equal buckets so that at
// most maxPoints remain (see maxPlotPoints for why); shorter series are
// returned as they are.
func downsample(xs, ys []float64, maxPoints int) plotter.XYs {
	n := len(ys)
	if n <= maxPoints || maxPoints < 1 {
		out := make(plotter.XYs, n)
		for i := range n {
			out[i] = plotter.XY{X: xs[i], Y: ys[i]}
		}
		return out
	}
	size := (n + maxPoints - 1) / maxPoints
	out := make(plotter.XYs, 0, (n+size-1)/size)
	for lo := 0; lo < n; lo += size {
		hi := min(lo+size, n)
		var sx, sy float64
		for i := lo; i < hi; i++ {
			sx += xs[i]
			sy += ys[i]
		}
		k := float64(hi - lo)
		out = append(out, plotter.XY{X: sx / k, Y: sy / k})
	}
	return out
}

// title names the trace in every plot, since plots of several traces end up
// side by side.
func (r *Report) title(what string) string {
	if r.Trace == "" {
		return what
	}
	return fmt.Sprintf("Trace %s: %s", r.Trace, what)
}

// timeAxes labels a time-series plot's axes.
func timeAxes(p *plot.Plot, y string) {
	p.X.Label.Text = "minutes since trace start (warm-up not shown)"
	p.X.Tick.Marker, p.Y.Tick.Marker = plainTicks{}, plainTicks{}
	p.Y.Label.Text = y
	p.Legend.Top, p.Legend.Left = true, true
}

// plainTicks are gonum's default ticks labelled without trailing zeros:
// bucket centres make the range fractional, which the default labels as
// "25.00" minutes.
type plainTicks struct{}

func (plainTicks) Ticks(lo, hi float64) []plot.Tick {
	ticks := plot.DefaultTicks{}.Ticks(lo, hi)
	for i := range ticks {
		if ticks[i].Label != "" {
			ticks[i].Label = strconv.FormatFloat(ticks[i].Value, 'g', 6, 64)
		}
	}
	return ticks
}

// isReference tells the policies drawn lightly: the static deployment and
// the oracle are bounds to compare against, not contenders, and their
// lines would otherwise hide the ones that matter.
func isReference(name string) bool { return name == PolicyStatic || name == PolicyOracle }

// policyLine styles policy i's line (r.Policies order) so a policy keeps
// its colour in every plot.
func policyLine(xys plotter.XYs, i int, name string) (*plotter.Line, error) {
	line, err := plotter.NewLine(xys)
	if err != nil {
		return nil, fmt.Errorf("policy %s: %w", name, err)
	}
	line.Color, line.Dashes, line.Width = plotutil.Color(i), plotutil.Dashes(i), vg.Points(1)
	if isReference(name) {
		line.Color, line.Width = faded(plotutil.Color(i)), vg.Points(0.7)
	}
	return line, nil
}

// faded is c, translucent.
func faded(c color.Color) color.Color {
	n := color.NRGBAModel.Convert(c).(color.NRGBA)
	n.A = 0x70
	return n
}

// loadPlot draws the entry's request rate. Every run replays the same
// trace, so the first policy's is the trace.
func (r *Report) loadPlot() (*plot.Plot, error) {
	run := r.Runs[r.Policies[0].Name]
	p := plot.New()
	p.Title.Text = r.title("entry request rate")
	timeAxes(p, "requests/s")
	line, err := plotter.NewLine(scoredSeries(run.Trace.RPS[:len(run.P99)], run.Scored))
	if err != nil {
		return nil, err
	}
	line.Color, line.Width = color.Black, vg.Points(1)
	p.Add(line)
	p.X.Min, p.Y.Min = 0, 0
	return p, nil
}

// replicasPlot draws each policy's pods over all services, ready or
// starting: what it pays for.
func (r *Report) replicasPlot() (*plot.Plot, error) {
	p := plot.New()
	p.Title.Text = r.title("total pods (all services, ready or starting)")
	timeAxes(p, "pods")
	for i, res := range r.Policies {
		run := r.Runs[res.Name]
		total := make([]float64, len(run.P99))
		for _, svc := range run.Replicas {
			for t := range min(len(svc), len(total)) {
				total[t] += float64(svc[t])
			}
		}
		line, err := policyLine(scoredSeries(total, run.Scored), i, res.Name)
		if err != nil {
			return nil, err
		}
		p.Add(line)
		p.Legend.Add(res.Name, line)
	}
	p.X.Min, p.Y.Min, p.Y.Max = 0, 0, p.Y.Max*legendRoom
	return p, nil
}

// latencyPlot draws each policy's end-to-end p99 against the SLO, values
// above the cap drawn at it.
func (r *Report) latencyPlot() (*plot.Plot, error) {
	capMs := latencyCapSLOs * r.SLOMs
	p := plot.New()
	p.Title.Text = r.title(fmt.Sprintf("end-to-end p99 latency (capped at %g ms = %d× SLO)", capMs, latencyCapSLOs))
	timeAxes(p, "p99 (ms)")
	top, last := r.SLOMs, 0.0
	for i, res := range r.Policies {
		run := r.Runs[res.Name]
		xys := scoredSeries(run.P99, run.Scored)
		for k := range xys {
			xys[k].Y = math.Min(1000*xys[k].Y, capMs)
			top = math.Max(top, xys[k].Y)
		}
		if len(xys) > 0 {
			last = math.Max(last, xys[len(xys)-1].X)
		}
		line, err := policyLine(xys, i, res.Name)
		if err != nil {
			return nil, err
		}
		p.Add(line)
		p.Legend.Add(res.Name, line)
	}
	slo, err := plotter.NewLine(plotter.XYs{{X: 0, Y: r.SLOMs}, {X: last, Y: r.SLOMs}})
	if err != nil {
		return nil, fmt.Errorf("SLO line: %w", err)
	}
	slo.Color, slo.Width, slo.Dashes = color.RGBA{R: 0xd0, A: 0xff}, vg.Points(1.5), []vg.Length{vg.Points(6), vg.Points(3)}
	p.Add(slo)
	p.Legend.Add(fmt.Sprintf("SLO %g ms", r.SLOMs), slo)
	// Up to the cap, or the SLO if every line stays under it, so the SLO
	// line is always in view.
	p.X.Min, p.Y.Min, p.Y.Max = 0, 0, top*legendRoom
	return p, nil
}

// frontierPlot draws the sweep on the cost–violation plane: each swept
// policy's settings as points joined in sweep order, and the report's
// default policies as single points for reference.
func (r *Report) frontierPlot() (*plot.Plot, error) {
	p := plot.New()
	p.Title.Text = r.title("cost vs SLO violations (sweep)")
	p.X.Label.Text = "core-hours"
	p.Y.Label.Text = "SLO-violation seconds"
	p.X.Tick.Marker, p.Y.Tick.Marker = plainTicks{}, plainTicks{}
	p.Legend.Top = true
	// Sweep series in first-seen order, so the output does not depend on
	// map iteration.
	var names []string
	series := map[string][]FrontierPoint{}
	for _, pt := range r.Frontier {
		if _, ok := series[pt.Policy]; !ok {
			names = append(names, pt.Policy)
		}
		series[pt.Policy] = append(series[pt.Policy], pt)
	}
	// A swept policy takes its default run's colour when it has one.
	colour := func(name string, k int) int {
		for i, res := range r.Policies {
			if res.Name == name {
				return i
			}
		}
		return len(r.Policies) + k
	}
	// Labels at the same point are joined: the default cpu-hpa and
	// foresight runs are also sweep settings, and their labels would be
	// drawn over each other.
	var labels plotter.XYLabels
	label := func(xy plotter.XY, text string) {
		if i := slices.Index(labels.XYs, xy); i >= 0 {
			labels.Labels[i] += ", " + text
			return
		}
		labels.XYs = append(labels.XYs, xy)
		labels.Labels = append(labels.Labels, text)
	}
	for k, name := range names {
		pts := series[name]
		xys := make(plotter.XYs, len(pts))
		for j, pt := range pts {
			xys[j] = plotter.XY{X: pt.CoreHours, Y: float64(pt.SLOViolationSeconds)}
			label(xys[j], settingLabel(pt))
		}
		line, points, err := plotter.NewLinePoints(xys)
		if err != nil {
			return nil, fmt.Errorf("sweep %s: %w", name, err)
		}
		c := colour(name, k)
		line.Color, line.Dashes = plotutil.Color(c), plotutil.Dashes(1)
		points.Color, points.Shape = plotutil.Color(c), draw.CircleGlyph{}
		p.Add(line, points)
		p.Legend.Add(name+" sweep", line, points)
	}
	for i, res := range r.Policies {
		xy := plotter.XY{X: res.CoreHours, Y: float64(res.SLOViolationSeconds)}
		pt, err := plotter.NewScatter(plotter.XYs{xy})
		if err != nil {
			return nil, fmt.Errorf("policy %s: %w", res.Name, err)
		}
		pt.Color, pt.Shape, pt.Radius = plotutil.Color(i), plotutil.Shape(i+1), vg.Points(4)
		p.Add(pt)
		p.Legend.Add(res.Name+" (default)", pt)
		label(xy, res.Name)
	}
	l, err := plotter.NewLabels(labels)
	if err != nil {
		return nil, fmt.Errorf("labels: %w", err)
	}
	l.Offset = vg.Point{X: vg.Points(4), Y: vg.Points(3)}
	// Small and slanted: sweep points often share a violation count, and
	// level labels side by side would overlap.
	for i := range l.TextStyle {
		l.TextStyle[i].Font.Size, l.TextStyle[i].Rotation = vg.Points(7), math.Pi/6
	}
	p.Add(l)
	// Room on the right and top for the labels, which are drawn only when
	// their point is inside the plot area; violations start at 0.
	p.X.Max += 0.12 * (p.X.Max - p.X.Min)
	p.Y.Max += 0.08*(p.Y.Max-p.Y.Min) + 1
	p.Y.Min = 0
	return p, nil
}

// settingLabel is a sweep point's label, short enough to sit by the point.
func settingLabel(pt FrontierPoint) string {
	if pt.Policy == PolicyForesight {
		return fmt.Sprintf("h=%g q=%g", pt.Headroom, pt.Quantile)
	}
	return pt.Setting
}

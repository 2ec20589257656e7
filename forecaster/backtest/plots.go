package backtest

import (
	"fmt"
	"image/color"
	"os"
	"path/filepath"
	"strings"
	"time"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"
)

// WritePlots writes into dir (created if needed) one PNG per service with
// the actual target and every method's forecast made horizon steps earlier
// (forecast-<service>-h<horizon>.png), and mae-by-horizon.png with each
// method's pooled MAE against the horizon. It returns the files written.
func (r *Result) WritePlots(dir string, horizon int) ([]string, error) {
	if horizon < 1 || horizon > r.Config.Horizon {
		return nil, fmt.Errorf("plots: horizon %d is outside 1..%d", horizon, r.Config.Horizon)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("plots: %w", err)
	}
	var files []string
	for n, svc := range r.Dataset.Services {
		p, err := r.forecastPlot(n, horizon)
		if err != nil {
			return files, fmt.Errorf("plots: service %s: %w", svc, err)
		}
		file := filepath.Join(dir, fmt.Sprintf("forecast-%s-h%d.png", fileSafe(svc), horizon))
		if err := p.Save(14*vg.Inch, 5*vg.Inch, file); err != nil {
			return files, fmt.Errorf("plots: writing %s: %w", file, err)
		}
		files = append(files, file)
	}
	p, err := r.horizonPlot()
	if err != nil {
		return files, fmt.Errorf("plots: error by horizon: %w", err)
	}
	file := filepath.Join(dir, "mae-by-horizon.png")
	if err := p.Save(8*vg.Inch, 5*vg.Inch, file); err != nil {
		return files, fmt.Errorf("plots: writing %s: %w", file, err)
	}
	return append(files, file), nil
}

// forecastPlot draws service n's observed actuals and each method's
// forecast for the same target times, made horizon steps before.
func (r *Result) forecastPlot(n, horizon int) (*plot.Plot, error) {
	ds := r.Dataset
	p := plot.New()
	p.Title.Text = fmt.Sprintf("%s %s: forecast %d steps (%v) ahead vs actual", ds.Services[n], r.Config.Target, horizon, time.Duration(horizon)*ds.Step)
	p.X.Label.Text = "time (UTC)"
	p.Y.Label.Text = string(r.Config.Target)
	p.X.Tick.Marker = plot.TimeTicks{Format: "01-02 15:04"}
	p.Legend.Top = true
	at := func(step int) float64 { return float64(ds.Start.Add(time.Duration(step) * ds.Step).Unix()) }

	var actual plotter.XYs
	for _, last := range r.Origins {
		if a, ok := r.actual(last+horizon, n); ok {
			actual = append(actual, plotter.XY{X: at(last + horizon), Y: a})
		}
	}
	if len(actual) > 0 {
		line, err := plotter.NewLine(actual)
		if err != nil {
			return nil, err
		}
		line.Color, line.Width = color.Black, vg.Points(1.5)
		p.Add(line)
		p.Legend.Add("actual", line)
	}
	for m, name := range r.MethodNames() {
		xys := make(plotter.XYs, len(r.Origins))
		for o, last := range r.Origins {
			xys[o] = plotter.XY{X: at(last + horizon), Y: r.Forecasts[m][o][horizon-1][n]}
		}
		line, err := plotter.NewLine(xys)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		line.Color, line.Dashes, line.Width = plotutil.Color(m), plotutil.Dashes(m), vg.Points(0.8)
		p.Add(line)
		p.Legend.Add(name, line)
	}
	return p, nil
}

// horizonPlot draws each method's pooled MAE against the horizon.
func (r *Result) horizonPlot() (*plot.Plot, error) {
	p := plot.New()
	p.Title.Text = fmt.Sprintf("%s MAE by horizon (model %s)", r.Config.Target, r.Config.ModelName)
	p.X.Label.Text = fmt.Sprintf("horizon (steps of %v)", r.Dataset.Step)
	p.Y.Label.Text = "MAE"
	p.Legend.Top, p.Legend.Left = true, true
	for m, mr := range r.Report.Methods {
		var xys plotter.XYs
		for h, v := range mr.MAEByHorizon {
			if v.Defined {
				xys = append(xys, plotter.XY{X: float64(h + 1), Y: v.Value})
			}
		}
		if len(xys) == 0 {
			continue
		}
		line, points, err := plotter.NewLinePoints(xys)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", mr.Name, err)
		}
		line.Color, line.Dashes = plotutil.Color(m), plotutil.Dashes(m)
		points.Color, points.Shape = plotutil.Color(m), plotutil.Shape(m)
		p.Add(line, points)
		p.Legend.Add(mr.Name, line, points)
	}
	return p, nil
}

// fileSafe keeps letters, digits, '-' and '_' of a service name for a file name.
func fileSafe(s string) string {
	return strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '-', r == '_':
			return r
		}
		return '_'
	}, s)
}

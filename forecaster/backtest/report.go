package backtest

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"slices"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/foresightscale/foresight/forecaster/baseline"
)

// Report is the backtest's result, the JSON contract scripts and CI read.
// Metrics of the target feature are pooled over services unless per_service.
type Report struct {
	Model    string   `json:"model"`
	Target   string   `json:"target"`
	Services []string `json:"services"`
	// IgnoredServices are services in the file the model does not know:
	// not evaluated (a model trained before they were added).
	IgnoredServices []string `json:"ignored_services,omitempty"`
	HorizonSteps    int      `json:"horizon_steps"`
	WindowSteps     int      `json:"window_steps"`
	StepSeconds     float64  `json:"step_seconds"`
	TrainSteps      int      `json:"train_steps"`
	TestSteps       int      `json:"test_steps"`
	// TestStart and TestEnd are the first and last forecast target times (RFC 3339).
	TestStart string `json:"test_start"`
	TestEnd   string `json:"test_end"`
	Stride    int    `json:"stride"`
	Origins   int    `json:"origins"`
	// EvaluatedPoints counts the (origin, horizon, service) points with an
	// observed actual, the same for every method; MissingPoints those
	// without one (excluded from every metric).
	EvaluatedPoints int            `json:"evaluated_points"`
	MissingPoints   int            `json:"missing_points"`
	Methods         []MethodReport `json:"methods"`
	// HeadroomBaselineMeanExcess is the mean of (forecast − actual) of the
	// last value plus a constant per-service headroom, tuned on the training
	// part to reach the model's P90 coverage (see headroomBaseline).
	HeadroomBaselineMeanExcess Metric `json:"headroom_baseline_mean_excess"`
	// HeadroomBaselineCoverage is the share of test actuals at or below it.
	HeadroomBaselineCoverage Metric             `json:"headroom_baseline_coverage"`
	HeadroomPerService       map[string]float64 `json:"headroom_per_service,omitempty"`
	// HeadroomHindsightMeanExcess and HeadroomHindsightCoverage judge the
	// same baseline with its headroom tuned on the test part itself, so that
	// it reaches the model's coverage there exactly. No one can deploy that
	// (it knows the future), but it is the comparison at equal coverage:
	// the tuned-on-training baseline usually reaches a different coverage
	// on the test part, and mean excess falls with coverage.
	HeadroomHindsightMeanExcess Metric `json:"headroom_hindsight_mean_excess"`
	HeadroomHindsightCoverage   Metric `json:"headroom_hindsight_coverage"`
	// Horizons compares the methods step by step: an aggregate over the
	// horizon hides where a method loses.
	Horizons []HorizonSummary `json:"horizons"`
	// Undefined says why a top-level metric is null, by its key.
	Undefined map[string]string `json:"undefined,omitempty"`
}

// HorizonSummary is the comparison at one step ahead.
type HorizonSummary struct {
	Step int `json:"step"`
	// Winner is the method with the lowest MAE at this step.
	Winner string `json:"winner"`
	// BestBaseline is the classical method (any method but the model)
	// with the lowest MAE at this step, and BestBaselineMAE its MAE.
	BestBaseline    string `json:"best_baseline"`
	BestBaselineMAE Metric `json:"best_baseline_mae"`
	// ModelMAE is the model's MAE, and ModelToBestBaseline the ratio of
	// the two (below 1: the model wins); null without a model.
	ModelMAE            Metric `json:"model_mae"`
	ModelToBestBaseline Metric `json:"model_to_best_baseline"`
}

// MethodReport is one method's scores.
type MethodReport struct {
	Name string `json:"name"`
	Scores
	PerService map[string]Scores `json:"per_service"`
	// ClippedForecasts counts negative forecasts raised to 0.
	ClippedForecasts int `json:"clipped_forecasts"`
	// Fitted says what the method learnt (periods, parameters).
	Fitted string `json:"fitted,omitempty"`
	// P90Coverage is the share of observed actuals at or below the P90
	// forecast; P90MeanExcess the mean of (P90 − actual). Only for the
	// method with a P90 output (the model under test).
	P90Coverage   *Metric `json:"p90_coverage,omitempty"`
	P90MeanExcess *Metric `json:"p90_mean_excess,omitempty"`
}

// report builds the Report of a finished run.
func (r *Result) report(clipped []int) *Report {
	ds, cfg := r.Dataset, r.Config
	first, last := r.Origins[0]+1, r.Origins[len(r.Origins)-1]+cfg.Horizon
	rep := &Report{
		Model:        cfg.ModelName,
		Target:       string(cfg.Target),
		Services:     slices.Clone(ds.Services),
		HorizonSteps: cfg.Horizon,
		WindowSteps:  cfg.Window,
		StepSeconds:  ds.Step.Seconds(),
		TrainSteps:   cfg.TrainEnd,
		TestSteps:    ds.Steps - cfg.TrainEnd,
		TestStart:    ds.Start.Add(time.Duration(first) * ds.Step).Format(time.RFC3339),
		TestEnd:      ds.Start.Add(time.Duration(last) * ds.Step).Format(time.RFC3339),
		Stride:       cfg.Stride,
		Origins:      len(r.Origins),
	}
	for _, last := range r.Origins {
		for h := 1; h <= cfg.Horizon; h++ {
			for n := range ds.Services {
				if _, ok := r.actual(last+h, n); ok {
					rep.EvaluatedPoints++
				} else {
					rep.MissingPoints++
				}
			}
		}
	}
	for i, m := range cfg.Methods {
		sums := r.scoreMethod(r.Forecasts[i])
		pooled := make([]errorSums, cfg.Horizon)
		mr := MethodReport{Name: m.Name(), PerService: make(map[string]Scores, len(ds.Services)), ClippedForecasts: clipped[i], Fitted: describe(m)}
		for n, svc := range ds.Services {
			mr.PerService[svc] = scores(sums[n])
			for h := range pooled {
				pooled[h].merge(sums[n][h])
			}
		}
		mr.Scores = scores(pooled)
		rep.Methods = append(rep.Methods, mr)
	}
	r.reportP90(rep)
	rep.Horizons = horizonSummaries(rep.Methods, cfg.Horizon)
	return rep
}

// horizonSummaries finds, at every step ahead, the winner, the best
// classical method and the model's ratio to it. The model is the method
// named baseline.ModelName, when there is one.
func horizonSummaries(methods []MethodReport, horizon int) []HorizonSummary {
	out := make([]HorizonSummary, horizon)
	for h := range horizon {
		s := HorizonSummary{Step: h + 1}
		winner, bestBaseline := math.Inf(1), math.Inf(1)
		for _, m := range methods {
			v := m.MAEByHorizon[h]
			if !v.Defined {
				continue
			}
			if v.Value < winner {
				winner, s.Winner = v.Value, m.Name
			}
			if m.Name == baseline.ModelName {
				s.ModelMAE = v
			} else if v.Value < bestBaseline {
				bestBaseline, s.BestBaseline, s.BestBaselineMAE = v.Value, m.Name, v
			}
		}
		if s.ModelMAE.Defined && s.BestBaselineMAE.Defined && s.BestBaselineMAE.Value > 0 {
			s.ModelToBestBaseline = defined(s.ModelMAE.Value / s.BestBaselineMAE.Value)
		}
		out[h] = s
	}
	return out
}

// WriteHorizonTable writes the MAE of every method at every step ahead,
// the best of each step marked '*', then the winner of each step and the
// model's MAE over the best classical method's.
func (rep *Report) WriteHorizonTable(w io.Writer) error {
	var b strings.Builder
	fmt.Fprintf(&b, "\nMAE by step ahead (%v per step); '*' marks the best of each step.\n\n", time.Duration(rep.StepSeconds*float64(time.Second)))
	width := len("model / best baseline")
	for _, m := range rep.Methods {
		width = max(width, len(m.Name))
	}
	tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(tw, "%-*s\t", width, "method")
	for h := range rep.HorizonSteps {
		fmt.Fprintf(tw, "@%d\t", h+1)
	}
	fmt.Fprintln(tw)
	for _, m := range rep.Methods {
		fmt.Fprintf(tw, "%-*s\t", width, m.Name)
		for h, v := range m.MAEByHorizon {
			mark := " "
			if v.Defined && m.Name == rep.Horizons[h].Winner {
				mark = "*"
			}
			fmt.Fprintf(tw, "%s%s\t", v, mark)
		}
		fmt.Fprintln(tw)
	}
	fmt.Fprintf(tw, "%-*s\t", width, "winner")
	for _, s := range rep.Horizons {
		fmt.Fprintf(tw, "%s \t", s.Winner)
	}
	fmt.Fprintln(tw)
	fmt.Fprintf(tw, "%-*s\t", width, "model / best baseline")
	for _, s := range rep.Horizons {
		fmt.Fprintf(tw, "%s \t", s.ModelToBestBaseline)
	}
	fmt.Fprintln(tw)
	if err := tw.Flush(); err != nil {
		return err
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// reportP90 adds the P90 metrics and the headroom baseline.
func (r *Result) reportP90(rep *Report) {
	if r.P90 == nil {
		rep.undefined("headroom_baseline_mean_excess", fmt.Sprintf("no method forecasts %s at quantile %v", r.Config.Target, P90))
		rep.undefined("headroom_baseline_coverage", rep.Undefined["headroom_baseline_mean_excess"])
		rep.undefinedHindsight(rep.Undefined["headroom_baseline_mean_excess"])
		if i := r.method("gnn"); i >= 0 {
			// The contract has these keys on the model: null, with the reason.
			mr := &rep.Methods[i]
			mr.P90Coverage, mr.P90MeanExcess = &Metric{}, &Metric{}
			reason := fmt.Sprintf("the model has no %s output at quantile %v", r.Config.Target, P90)
			mr.undefined("p90_coverage", reason)
			mr.undefined("p90_mean_excess", reason)
		}
		return
	}
	mr := &rep.Methods[r.P90Method]
	coverage, excess := r.judgeUpper(func(o, h, n int) float64 { return r.P90[o][h][n] })
	mr.P90Coverage, mr.P90MeanExcess = &coverage, &excess
	if !coverage.Defined {
		mr.undefined("p90_coverage", noActuals)
		mr.undefined("p90_mean_excess", noActuals)
		rep.undefined("headroom_baseline_mean_excess", "the model's P90 coverage is undefined")
		rep.undefined("headroom_baseline_coverage", "the model's P90 coverage is undefined")
		rep.undefinedHindsight("the model's P90 coverage is undefined")
		return
	}
	ds, cfg := r.Dataset, r.Config
	if hindsight, err := r.headroom(coverage.Value, r.Origins, "test"); err != nil {
		rep.undefinedHindsight(err.Error())
	} else {
		rep.HeadroomHindsightCoverage, rep.HeadroomHindsightMeanExcess = r.judgeUpper(func(o, h, n int) float64 {
			return max(0, ds.Raw[r.Target][r.Origins[o]][n]+hindsight[n])
		})
	}
	headroom, err := r.headroom(coverage.Value, ds.Origins(cfg.Window, cfg.Horizon, 0, cfg.TrainEnd), "training")
	if err != nil {
		rep.undefined("headroom_baseline_mean_excess", err.Error())
		rep.undefined("headroom_baseline_coverage", err.Error())
		return
	}
	rep.HeadroomPerService = make(map[string]float64, len(headroom))
	for n, svc := range r.Dataset.Services {
		rep.HeadroomPerService[svc] = headroom[n]
	}
	rep.HeadroomBaselineCoverage, rep.HeadroomBaselineMeanExcess = r.judgeUpper(func(o, h, n int) float64 {
		return max(0, ds.Raw[r.Target][r.Origins[o]][n]+headroom[n])
	})
}

func (rep *Report) undefinedHindsight(reason string) {
	rep.undefined("headroom_hindsight_mean_excess", reason)
	rep.undefined("headroom_hindsight_coverage", reason)
}

// judgeUpper returns the share of observed test actuals at or below the
// upper forecast upper(origin, h, service), and the mean of (upper − actual).
func (r *Result) judgeUpper(upper func(o, h, n int) float64) (coverage, meanExcess Metric) {
	var points, covered int
	var excess float64
	for o, last := range r.Origins {
		for h := range r.Config.Horizon {
			for n := range r.Dataset.Services {
				a, ok := r.actual(last+h+1, n)
				if !ok {
					continue
				}
				u := upper(o, h, n)
				points++
				if a <= u {
					covered++
				}
				excess += u - a
			}
		}
	}
	if points == 0 {
		return Metric{}, Metric{}
	}
	return defined(float64(covered) / float64(points)), defined(excess / float64(points))
}

// headroom tunes, per service, the constant c such that "last value + c"
// covers the given share of actuals from the given origins (the training
// part's for the deployable baseline): over every origin and horizon step,
// the residuals actual − last value at observed actuals are sorted and c is
// the smallest of them with at least that share at or below it (the
// empirical quantile). The one of two upper forecasts with less mean excess
// at the same coverage buys it with less over-provisioning.
func (r *Result) headroom(coverage float64, origins []int, part string) ([]float64, error) {
	ds, cfg := r.Dataset, r.Config
	residuals := make([][]float64, len(ds.Services))
	for _, last := range origins {
		for h := 1; h <= cfg.Horizon; h++ {
			for n := range ds.Services {
				if a, ok := r.actual(last+h, n); ok {
					residuals[n] = append(residuals[n], a-ds.Raw[r.Target][last][n])
				}
			}
		}
	}
	headroom := make([]float64, len(ds.Services))
	for n, res := range residuals {
		if len(res) == 0 {
			return nil, fmt.Errorf("service %s has no observed actual in the %s part to tune the headroom on", ds.Services[n], part)
		}
		sort.Float64s(res)
		k := int(math.Ceil(coverage*float64(len(res)))) - 1
		headroom[n] = res[min(max(k, 0), len(res)-1)]
	}
	return headroom, nil
}

func (rep *Report) undefined(key, reason string) {
	if rep.Undefined == nil {
		rep.Undefined = make(map[string]string)
	}
	rep.Undefined[key] = reason
}

// WriteJSON writes the report as indented JSON.
func (rep *Report) WriteJSON(w io.Writer) error {
	b, err := json.MarshalIndent(rep, "", "  ")
	if err != nil {
		return fmt.Errorf("encoding backtest report: %w", err)
	}
	if _, err := w.Write(append(b, '\n')); err != nil {
		return fmt.Errorf("writing backtest report: %w", err)
	}
	return nil
}

// WriteTable writes the report for people: one row per method, the best
// (lowest) value of each column marked with '*'.
func (rep *Report) WriteTable(w io.Writer) error {
	var b strings.Builder
	fmt.Fprintf(&b, "Backtest of model %s on %s: %d origins (stride %d) × %d steps × %d services, test %s .. %s\n",
		rep.Model, rep.Target, rep.Origins, rep.Stride, rep.HorizonSteps, len(rep.Services), rep.TestStart, rep.TestEnd)
	fmt.Fprintf(&b, "%d points scored, %d without an observed actual (excluded); MAPE over non-zero actuals; '*' marks the best.\n\n",
		rep.EvaluatedPoints, rep.MissingPoints)
	h := rep.HorizonSteps
	columns := []struct {
		title string
		value func(MethodReport) Metric
	}{
		{"MAE", func(m MethodReport) Metric { return m.MAE }},
		{"RMSE", func(m MethodReport) Metric { return m.RMSE }},
		{"MAPE %", func(m MethodReport) Metric { return m.MAPE }},
		{"MAE@1", func(m MethodReport) Metric { return m.MAEByHorizon[0] }},
	}
	if h > 1 {
		columns = append(columns, struct {
			title string
			value func(MethodReport) Metric
		}{fmt.Sprintf("MAE@%d", h), func(m MethodReport) Metric { return m.MAEByHorizon[h-1] }})
	}
	width := len("method")
	for _, m := range rep.Methods {
		width = max(width, len(m.Name))
	}
	// Numbers align right; names are padded so they read left-aligned.
	tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(tw, "%-*s\t", width, "method")
	for _, c := range columns {
		fmt.Fprintf(tw, "%s\t", c.title)
	}
	fmt.Fprintln(tw)
	for _, m := range rep.Methods {
		fmt.Fprintf(tw, "%-*s\t", width, m.Name)
		for _, c := range columns {
			v := c.value(m)
			mark := " "
			if v.Defined && v.Value == best(rep.Methods, c.value) {
				mark = "*"
			}
			fmt.Fprintf(tw, "%s%s\t", v, mark)
		}
		fmt.Fprintln(tw)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, m := range rep.Methods {
		if m.P90Coverage != nil && m.P90Coverage.Defined {
			fmt.Fprintf(&b, "\n%s P90: coverage %.3f, mean excess %s\n", m.Name, m.P90Coverage.Value, m.P90MeanExcess)
			fmt.Fprintf(&b, "last value + headroom tuned on the training part to that coverage: coverage %s, mean excess %s\n",
				rep.HeadroomBaselineCoverage, rep.HeadroomBaselineMeanExcess)
			fmt.Fprintf(&b, "last value + headroom tuned on the test part to that coverage (hindsight): coverage %s, mean excess %s\n",
				rep.HeadroomHindsightCoverage, rep.HeadroomHindsightMeanExcess)
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// best returns the lowest defined value of a column (+Inf if none).
func best(ms []MethodReport, value func(MethodReport) Metric) float64 {
	b := math.Inf(1)
	for _, m := range ms {
		if v := value(m); v.Defined {
			b = math.Min(b, v.Value)
		}
	}
	return b
}

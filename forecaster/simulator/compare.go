package simulator

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	commonmodel "github.com/prometheus/common/model"

	"github.com/foresightscale/foresight/forecaster/model"
	"github.com/foresightscale/foresight/forecaster/policy"
	"github.com/foresightscale/foresight/forecaster/simulator/workload"
)

// AllPolicies are the policies a comparison runs by default, in report order.
var AllPolicies = []string{PolicyCPUHPA, PolicyCPUHPAFast, PolicyForesight, PolicyHoltWinters, PolicyOracle, PolicyStatic}

// Sweep settings: the CPU HPA's target and Foresight's headroom and
// quantile, the knobs users turn to trade cost for violations.
var (
	SweepHPATargets = []int32{50, 60, 70, 80}
	SweepHeadrooms  = []float64{0, 0.1, 0.2, 0.3, 0.5}
	SweepQuantiles  = []float64{0.5, 0.9}
)

// CompareOptions configure a comparison.
type CompareOptions struct {
	Config Config
	// Model is Foresight's model (the built-in one in the command).
	Model *model.Model
	// Policies to run (AllPolicies when empty).
	Policies []string
	// HPATarget is the CPU HPAs' target utilisation in percent, and the
	// utilisation Foresight's and Holt-Winters' per-pod capacity is taken
	// at, so every policy aims at the same load per pod.
	HPATarget int32
	// Foresight is Foresight's policy; a zero LeadTime becomes the slowest
	// pod start-up plus an HPA sync, what the lead time stands for.
	Foresight policy.Config
	// Sizing is how Foresight and Holt-Winters size services the policy
	// does not configure.
	Sizing Sizing
	// SLOFeedback makes Foresight tune its headroom from the entry
	// service's p99 against the SLO (policy.slo).
	SLOFeedback bool
	// Sweep adds the cost–violation curves.
	Sweep bool
	// Progress, if set, is told before each simulation.
	Progress func(done, total int, name string)
}

// DefaultCompareOptions are the command's defaults.
func DefaultCompareOptions() CompareOptions {
	p := policy.Default()
	p.LeadTime = 0 // derived from the start-up delay
	return CompareOptions{Config: DefaultConfig(), Policies: AllPolicies, HPATarget: 70, Foresight: p, Sizing: SizingQueueing}
}

// Report is a comparison's outcome, the JSON contract of `foresight simulate`.
type Report struct {
	Trace               string          `json:"trace"`
	Seconds             int             `json:"seconds"`
	App                 string          `json:"app"`
	SLOMs               float64         `json:"slo_ms"`
	StartupDelaySeconds float64         `json:"startup_delay_seconds"`
	WarmUpSeconds       float64         `json:"warm_up_seconds"`
	HPATarget           int32           `json:"hpa_target_percent"`
	ForesightHeadroom   float64         `json:"foresight_headroom"`
	ForesightQuantile   float64         `json:"foresight_quantile"`
	ForesightLeadTime   string          `json:"foresight_lead_time"`
	ForesightSizing     Sizing          `json:"foresight_sizing"`
	Policies            []Result        `json:"policies"`
	Frontier            []FrontierPoint `json:"frontier,omitempty"`
	Runs                map[string]*Run `json:"-"` // for plots
}

// FrontierPoint is one setting of a swept policy.
type FrontierPoint struct {
	Policy              string  `json:"policy"`
	Setting             string  `json:"setting"`
	HPATarget           int32   `json:"hpa_target_percent,omitempty"`
	Headroom            float64 `json:"headroom"`
	Quantile            float64 `json:"quantile,omitempty"`
	SLOViolationSeconds int     `json:"slo_violation_seconds"`
	CoreHours           float64 `json:"core_hours"`
	P99Ms               float64 `json:"p99_ms"`
}

// Compare simulates the trace under every chosen policy (and the sweep).
func Compare(ctx context.Context, trace *workload.Trace, o CompareOptions) (*Report, error) {
	if err := o.Config.Validate(); err != nil {
		return nil, err
	}
	if o.Sizing != SizingQueueing && o.Sizing != SizingCapacity {
		return nil, fmt.Errorf("sizing: want %s or %s, got %q", SizingQueueing, SizingCapacity, o.Sizing)
	}
	if o.HPATarget < 1 || o.HPATarget > 100 {
		return nil, fmt.Errorf("HPA target: must be 1..100 %%, got %d", o.HPATarget)
	}
	if len(o.Policies) == 0 {
		o.Policies = AllPolicies
	}
	for _, p := range o.Policies {
		if !slices.Contains(AllPolicies, p) {
			return nil, fmt.Errorf("unknown policy %q (policies: %s)", p, strings.Join(AllPolicies, ", "))
		}
	}
	if o.Foresight.LeadTime == 0 {
		cfg := o.Config
		o.Foresight.LeadTime = commonmodel.Duration(time.Duration(float64(cfg.StartupDelay)*(1+cfg.StartupJitter)) + 15*time.Second)
		// A derived lead time cannot ask for more than the model forecasts;
		// one the user set is refused by the forecaster instead.
		if o.Model != nil {
			m := o.Model.Manifest()
			o.Foresight.LeadTime = min(o.Foresight.LeadTime, commonmodel.Duration(time.Duration(m.Horizon)*time.Duration(m.Step)))
		}
	}
	type job struct {
		name  string
		make  func() (Scaler, error)
		point *FrontierPoint
	}
	utilisation := float64(o.HPATarget) / 100
	foresight := func(name string, p policy.Config) func() (Scaler, error) {
		return func() (Scaler, error) {
			if o.Model == nil {
				return nil, fmt.Errorf("policy %s needs a model", name)
			}
			return Foresight(ForesightOptions{Model: o.Model, Policy: p, TargetUtilisation: utilisation, Sizing: o.Sizing, Name: name, SLOFeedback: o.SLOFeedback})
		}
	}
	var jobs []job
	for _, name := range o.Policies {
		switch name {
		case PolicyCPUHPA:
			jobs = append(jobs, job{name: name, make: func() (Scaler, error) {
				return CPUHPA(PolicyCPUHPA, o.HPATarget, 15*time.Second, 300*time.Second), nil
			}})
		case PolicyCPUHPAFast:
			jobs = append(jobs, job{name: name, make: func() (Scaler, error) { return FastCPUHPA(o.HPATarget), nil }})
		case PolicyForesight:
			jobs = append(jobs, job{name: name, make: foresight(PolicyForesight, o.Foresight)})
		case PolicyHoltWinters:
			jobs = append(jobs, job{name: name, make: func() (Scaler, error) {
				step, horizon := 30*time.Second, 10
				if o.Model != nil {
					step, horizon = time.Duration(o.Model.Manifest().Step), o.Model.Manifest().Horizon
				}
				return HoltWinters(HoltWintersOptions{Policy: o.Foresight, TargetUtilisation: utilisation, Sizing: o.Sizing, Step: step, Horizon: horizon})
			}})
		case PolicyOracle:
			jobs = append(jobs, job{name: name, make: func() (Scaler, error) { return Oracle(), nil }})
		case PolicyStatic:
			jobs = append(jobs, job{name: name, make: func() (Scaler, error) { return &Static{}, nil }})
		}
	}
	if o.Sweep {
		for _, target := range SweepHPATargets {
			name := fmt.Sprintf("%s target=%d%%", PolicyCPUHPA, target)
			jobs = append(jobs, job{name: name, point: &FrontierPoint{Policy: PolicyCPUHPA, Setting: fmt.Sprintf("target=%d%%", target), HPATarget: target},
				make: func() (Scaler, error) { return CPUHPA(name, target, 15*time.Second, 300*time.Second), nil }})
		}
		for _, q := range SweepQuantiles {
			for _, h := range SweepHeadrooms {
				p := o.Foresight
				p.Headroom, p.Quantile = h, q
				setting := fmt.Sprintf("headroom=%g quantile=%g", h, q)
				jobs = append(jobs, job{name: PolicyForesight + " " + setting, point: &FrontierPoint{Policy: PolicyForesight, Setting: setting, Headroom: h, Quantile: q},
					make: foresight(PolicyForesight+" "+setting, p)})
			}
		}
	}
	rep := &Report{
		Trace: trace.Name, Seconds: len(trace.RPS), App: o.Config.App.Name,
		SLOMs: float64(o.Config.SLO) / float64(time.Millisecond), StartupDelaySeconds: o.Config.StartupDelay.Seconds(),
		WarmUpSeconds: o.Config.WarmUp.Seconds(), HPATarget: o.HPATarget,
		ForesightHeadroom: o.Foresight.Headroom, ForesightQuantile: o.Foresight.Quantile,
		ForesightLeadTime: time.Duration(o.Foresight.LeadTime).String(), ForesightSizing: o.Sizing,
		Runs: map[string]*Run{},
	}
	for k, j := range jobs {
		if o.Progress != nil {
			o.Progress(k, len(jobs), j.name)
		}
		scaler, err := j.make()
		if err != nil {
			return nil, err
		}
		res, run, err := Simulate(ctx, o.Config, trace, scaler)
		if err != nil {
			return nil, err
		}
		if j.point == nil {
			rep.Policies = append(rep.Policies, *res)
			rep.Runs[res.Name] = run
			continue
		}
		pt := *j.point
		pt.SLOViolationSeconds, pt.CoreHours, pt.P99Ms = res.SLOViolationSeconds, res.CoreHours, res.P99Ms
		rep.Frontier = append(rep.Frontier, pt)
	}
	if o.Progress != nil {
		o.Progress(len(jobs), len(jobs), "")
	}
	return rep, nil
}

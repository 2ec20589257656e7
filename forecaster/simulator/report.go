package simulator

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
)

// Dominance answers, for one CPU HPA setting, the comparison's question:
// which Foresight setting of the sweep has no more SLO-violation seconds at
// the lowest cost, and what share of the HPA's core-hours that is.
type Dominance struct {
	HPASetting          string  `json:"hpa_setting"`
	ForesightSetting    string  `json:"foresight_setting,omitempty"`
	CoreHoursRatio      float64 `json:"core_hours_ratio,omitempty"`
	HPAViolationSeconds int     `json:"hpa_slo_violation_seconds"`
	ForesightViolations int     `json:"foresight_slo_violation_seconds"`
	// Found is false when no Foresight setting has as few violations.
	Found bool `json:"found"`
	// OracleCoreHoursRatio is the oracle's cost as a share of the HPA's,
	// when the oracle ran and has no more violations: how far any
	// forecaster could go with this application's sizing.
	OracleCoreHoursRatio float64 `json:"oracle_core_hours_ratio,omitempty"`
	// OracleSavingCaptured is the share of the oracle's saving against the
	// HPA that the Foresight setting captures: (HPA − Foresight) / (HPA −
	// oracle) in core-hours. 1 saves all any forecaster could, 0 nothing,
	// below 0 costs more than the HPA. Absent without a Foresight setting,
	// an oracle ratio, or an oracle saving.
	OracleSavingCaptured *float64 `json:"oracle_saving_captured,omitempty"`
}

// dominance computes the Dominance of every swept HPA setting.
func (r *Report) dominance() []Dominance {
	var oracle *Result
	for i := range r.Policies {
		if r.Policies[i].Name == PolicyOracle {
			oracle = &r.Policies[i]
		}
	}
	var out []Dominance
	for _, h := range r.Frontier {
		if h.Policy != PolicyCPUHPA {
			continue
		}
		d := Dominance{HPASetting: h.Setting, HPAViolationSeconds: h.SLOViolationSeconds}
		if oracle != nil && oracle.SLOViolationSeconds <= h.SLOViolationSeconds && h.CoreHours > 0 {
			d.OracleCoreHoursRatio = oracle.CoreHours / h.CoreHours
		}
		for _, f := range r.Frontier {
			if f.Policy != PolicyForesight || f.SLOViolationSeconds > h.SLOViolationSeconds {
				continue
			}
			if ratio := f.CoreHours / h.CoreHours; !d.Found || ratio < d.CoreHoursRatio {
				d.Found, d.ForesightSetting, d.CoreHoursRatio, d.ForesightViolations = true, f.Setting, ratio, f.SLOViolationSeconds
			}
		}
		if d.Found && d.OracleCoreHoursRatio > 0 && d.OracleCoreHoursRatio < 1 {
			captured := (1 - d.CoreHoursRatio) / (1 - d.OracleCoreHoursRatio)
			d.OracleSavingCaptured = &captured
		}
		out = append(out, d)
	}
	return out
}

// MarshalJSON encodes the report with its dominance entries, so every
// writer of the JSON contract gets the same document.
func (r *Report) MarshalJSON() ([]byte, error) {
	type plain Report // without this method, or encoding would recurse
	return json.Marshal(struct {
		*plain
		Dominance []Dominance `json:"dominance,omitempty"`
	}{(*plain)(r), r.dominance()})
}

// WriteJSON writes the report as indented JSON.
func (r *Report) WriteJSON(w io.Writer) error {
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return fmt.Errorf("encoding the simulation report: %w", err)
	}
	if _, err := w.Write(append(b, '\n')); err != nil {
		return fmt.Errorf("writing the simulation report: %w", err)
	}
	return nil
}

// WriteTable writes the report for people.
func (r *Report) WriteTable(w io.Writer) error {
	var b strings.Builder
	fmt.Fprintf(&b, "Trace %s: %d s on %s, p99 SLO %g ms, pod start-up %g s, %g s warm-up (not scored)\n",
		r.Trace, r.Seconds, r.App, r.SLOMs, r.StartupDelaySeconds, r.WarmUpSeconds)
	fmt.Fprintf(&b, "CPU HPA target %d %%; Foresight headroom %g, quantile %g, lead time %s\n\n",
		r.HPATarget, r.ForesightHeadroom, r.ForesightQuantile, r.ForesightLeadTime)
	tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "policy\tSLO violation s\tcore-hours\tp50 ms\tp99 ms\tscaling actions\tunder-provisioned s\ttimed out\t")
	for _, p := range r.Policies {
		fmt.Fprintf(tw, "%s\t%d\t%.2f\t%.1f\t%.1f\t%d\t%d\t%.0f\t\n", p.Name, p.SLOViolationSeconds, p.CoreHours,
			p.P50Ms, p.P99Ms, p.ScalingActions, p.UnderProvisionedSeconds, p.DroppedRequests)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if len(r.Frontier) > 0 {
		b.WriteString("\nSweep (cost–violation plane):\n")
		tw = tabwriter.NewWriter(&b, 0, 0, 2, ' ', tabwriter.AlignRight)
		fmt.Fprintln(tw, "policy\tsetting\tSLO violation s\tcore-hours\tp99 ms\t")
		for _, p := range r.Frontier {
			fmt.Fprintf(tw, "%s\t%s\t%d\t%.2f\t%.1f\t\n", p.Policy, p.Setting, p.SLOViolationSeconds, p.CoreHours, p.P99Ms)
		}
		if err := tw.Flush(); err != nil {
			return err
		}
		b.WriteString("\nFor each HPA setting, the cheapest Foresight setting with no more violations\n(and the oracle's cost, the bound for any forecaster):\n")
		for _, d := range r.dominance() {
			bound := ""
			if d.OracleCoreHoursRatio > 0 {
				bound = fmt.Sprintf("; oracle %.2f×", d.OracleCoreHoursRatio)
			}
			if !d.Found {
				fmt.Fprintf(&b, "  HPA %s (%d s): none%s\n", d.HPASetting, d.HPAViolationSeconds, bound)
				continue
			}
			captured := ""
			if d.OracleSavingCaptured != nil {
				captured = fmt.Sprintf(", %.0f %% of the oracle's saving", 100**d.OracleSavingCaptured)
			}
			fmt.Fprintf(&b, "  HPA %s (%d s): Foresight %s (%d s) at %.2f× its core-hours%s%s\n",
				d.HPASetting, d.HPAViolationSeconds, d.ForesightSetting, d.ForesightViolations, d.CoreHoursRatio, bound, captured)
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

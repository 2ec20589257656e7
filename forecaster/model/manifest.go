// Package model loads forecasting models (model.onnx + manifest.json), checks
// them before they serve, and runs them.
package model

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"time"
	"unicode"

	"github.com/foresightscale/foresight/forecaster/source"
	"github.com/foresightscale/foresight/forecaster/topology"
)

// ManifestFormat is the manifest version this code reads and writes.
const ManifestFormat = 1

// Manifest describes a model file: what goes in, what comes out, and the
// statistics needed to prepare the input. The input tensor has shape
// [len(Features)*Window, len(Services)]: one block of Window rows per feature
// (oldest step first), one column per service in node order, every value
// normalised as (x-mean)/std with that feature's and service's statistics.
// A model with a Seasonal context reads more rows after those (see Seasonal).
type Manifest struct {
	Format      int              `json:"format"`
	Name        string           `json:"name"`
	Version     string           `json:"version"`
	Description string           `json:"description,omitempty"`
	Services    []string         `json:"services"`
	Features    []source.Feature `json:"features"`
	Window      int              `json:"window"`
	Horizon     int              `json:"horizon"`
	Step        Duration         `json:"step"`
	Input       Tensor           `json:"input"`
	Outputs     []Output         `json:"outputs"`
	// Normalization[feature] holds per-service statistics in node order.
	Normalization map[source.Feature]Stats `json:"normalization"`
	CallGraph     []topology.Edge          `json:"callGraph"`
	// Unobserved[feature] lists the services the model was trained without
	// that feature (their history had no usable series): their input is the
	// normalised mean, and a gap in it never holds their forecast. A service
	// without requests has no meaningful request-rate forecast.
	Unobserved map[source.Feature][]string `json:"unobserved,omitempty"`
	// Seasonal, when set, is the long context the model reads besides its
	// window: the same steps one period earlier.
	Seasonal *Seasonal      `json:"seasonal,omitempty"`
	Golden   Golden         `json:"golden"`
	Training map[string]any `json:"training,omitempty"`
}

// Seasonal is a model's long context: for each of Features, the
// Window+Horizon steps that end Horizon steps after the step one period
// (PeriodSteps) before the window's last step, that is the window and the
// forecast horizon as they were one period earlier. They follow the window
// in the input as one block of Window+Horizon rows per feature, normalised
// like the window. A step the history does not reach back to has no
// season: the whole block of that feature and service then holds the
// window's last value, which the network was trained to read as "no
// seasonal information".
type Seasonal struct {
	PeriodSteps int              `json:"periodSteps"`
	Features    []source.Feature `json:"features"`
	// ACF is the autocorrelation at the period on the training history
	// (how strong the cycle was when the model learned it); informative only.
	ACF float64 `json:"acf,omitempty"`
}

// MaxPeriodSteps bounds a seasonal period: the lagged block is fetched in one
// range query, and a week at one-minute steps fits.
const MaxPeriodSteps = 20160

// SeasonalRows returns how many input rows follow the window: 0 without a
// seasonal context.
func (m *Manifest) SeasonalRows() int {
	if m.Seasonal == nil {
		return 0
	}
	return len(m.Seasonal.Features) * (m.Window + m.Horizon)
}

// InputRows returns the height of the input tensor.
func (m *Manifest) InputRows() int { return len(m.Features)*m.Window + m.SeasonalRows() }

// Tensor names a graph input or output and its shape.
type Tensor struct {
	Name  string `json:"name"`
	Shape []int  `json:"shape"`
}

// Output is one model output: a [Horizon, len(Services)] forecast of Feature
// in normalised units (denormalise with that feature's statistics). Row h is
// the forecast h+1 steps after the last input step.
type Output struct {
	Tensor
	Feature  source.Feature `json:"feature"`
	Quantile float64        `json:"quantile"` // 0.5 for a point forecast
}

// Stats are per-service normalisation statistics, in node order.
type Stats struct {
	Mean []float64 `json:"mean"`
	Std  []float64 `json:"std"`
}

// Golden is a known input and the outputs the model must produce for it
// (within GoldenTolerance), so a corrupt or mis-exported file never serves.
type Golden struct {
	Input   []float64            `json:"input"`
	Outputs map[string][]float64 `json:"outputs"`
}

// Limits on a manifest, far above any real model, so that the sizes it
// implies (window × features × services values per input) stay small enough
// to allocate and can never overflow: a window is fetched in one range query,
// and Prometheus answers at most 11000 points per series.
const (
	MaxWindow  = 10000
	MaxHorizon = 10000
	MinStep    = time.Second
	MaxStep    = 24 * time.Hour
)

// GoldenTolerance is the largest absolute difference allowed between the
// golden outputs and what the runtime computes.
const GoldenTolerance = 1e-4

// Duration is a time.Duration that reads and writes as "30s".
type Duration time.Duration

// MarshalJSON writes the duration as a Go duration string.
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(time.Duration(d).String()) }

// UnmarshalJSON reads a Go duration string such as "30s".
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("duration must be a string like \"30s\": %w", err)
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return err
	}
	*d = Duration(v)
	return nil
}

// Output returns the output forecasting feature f at quantile q, if any.
func (m *Manifest) Output(f source.Feature, q float64) (Output, bool) {
	for _, o := range m.Outputs {
		if o.Feature == f && o.Quantile == q {
			return o, true
		}
	}
	return Output{}, false
}

// Graph returns the manifest's services and call graph as a topology.
func (m *Manifest) Graph() topology.Graph {
	return topology.Graph{Services: slices.Clone(m.Services), Edges: slices.Clone(m.CallGraph)}
}

// Validate checks the manifest's internal consistency; every error names the field.
func (m *Manifest) Validate() error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	n, f := len(m.Services), len(m.Features)
	if m.Format != ManifestFormat {
		bad("format: got %d, this build reads %d", m.Format, ManifestFormat)
	}
	if m.Name == "" {
		bad("name: must not be empty")
	}
	if n == 0 {
		bad("services: must list at least one service")
	}
	if f == 0 {
		bad("features: must list at least one feature")
	}
	if f > len(source.AllFeatures) {
		// Checked first: the duplicate check below is quadratic.
		bad("features: %d listed, more than the %d there are", f, len(source.AllFeatures))
	} else {
		for i, feat := range m.Features {
			if _, err := source.ParseFeature(string(feat)); err != nil {
				bad("features[%d]: %v", i, err)
			}
			if slices.Index(m.Features, feat) != i {
				bad("features[%d]: %q listed twice", i, feat)
			}
		}
	}
	if m.Window < 1 || m.Window > MaxWindow {
		bad("window: must be between 1 and %d, got %d", MaxWindow, m.Window)
	}
	if m.Horizon < 1 || m.Horizon > MaxHorizon {
		bad("horizon: must be between 1 and %d, got %d", MaxHorizon, m.Horizon)
	}
	if m.Step < Duration(MinStep) || m.Step > Duration(MaxStep) {
		bad("step: must be between %v and %v, got %v", MinStep, MaxStep, time.Duration(m.Step))
	}
	if n > topology.MaxServices {
		bad("services: %d listed, over the limit of %d", n, topology.MaxServices)
	}
	if sz := m.Seasonal; sz != nil {
		if sz.PeriodSteps <= m.Horizon || sz.PeriodSteps > MaxPeriodSteps {
			bad("seasonal.periodSteps: must be above the horizon (%d) and at most %d, got %d", m.Horizon, MaxPeriodSteps, sz.PeriodSteps)
		}
		if len(sz.Features) == 0 || len(sz.Features) > len(m.Features) {
			bad("seasonal.features: must list 1 to %d of the input features, got %d", len(m.Features), len(sz.Features))
		} else {
			for i, feat := range sz.Features {
				if !slices.Contains(m.Features, feat) || slices.Index(sz.Features, feat) != i {
					bad("seasonal.features[%d]: %s is not an input feature, or is listed twice", i, key(feat))
				}
			}
		}
		if !finite(sz.ACF) {
			bad("seasonal.acf: %v is not finite", sz.ACF)
		}
	}
	if errs != nil {
		// The sizes below multiply window, horizon and services: with any of
		// them out of range the products may overflow and match by accident.
		return errors.Join(errs...)
	}
	if m.Input.Name == "" {
		bad("input.name: must not be empty")
	}
	if want := []int{m.InputRows(), n}; !slices.Equal(m.Input.Shape, want) {
		bad("input.shape: got %v, want %v (features×window plus seasonal rows, services)", m.Input.Shape, want)
	}
	if len(m.Outputs) == 0 {
		bad("outputs: must list at least one output")
	}
	for i, o := range m.Outputs {
		if o.Name == "" {
			bad("outputs[%d].name: must not be empty", i)
		}
		if !slices.Contains(m.Features, o.Feature) {
			bad("outputs[%d].feature: %q is not among the input features (its statistics denormalise the output)", i, o.Feature)
		}
		if !(o.Quantile > 0 && o.Quantile < 1) { // so that NaN fails too
			bad("outputs[%d].quantile: must be in (0,1), got %v", i, o.Quantile)
		}
		if want := []int{m.Horizon, n}; !slices.Equal(o.Shape, want) {
			bad("outputs[%d].shape: got %v, want %v (horizon, services)", i, o.Shape, want)
		}
	}
	for _, feat := range m.Features {
		st, ok := m.Normalization[feat]
		if !ok {
			bad("normalization.%s: missing", key(feat))
			continue
		}
		if len(st.Mean) != n || len(st.Std) != n {
			bad("normalization.%s: want %d means and stds, got %d and %d", key(feat), n, len(st.Mean), len(st.Std))
			continue
		}
		for i := range n {
			if !finite(st.Mean[i]) || !finite(st.Std[i]) || st.Std[i] <= 0 {
				bad("normalization.%s[%s]: mean %v / std %v must be finite with std > 0", key(feat), key(m.Services[i]), st.Mean[i], st.Std[i])
			}
		}
	}
	if err := m.Graph().Validate(); err != nil {
		bad("callGraph: %v", err)
	}
	if len(m.Unobserved) > 0 {
		known := make(map[string]bool, n)
		for _, s := range m.Services {
			known[s] = true
		}
		for feat, services := range m.Unobserved {
			if !slices.Contains(m.Features, feat) {
				bad("unobserved.%s: not an input feature", key(feat))
				continue
			}
			seen := make(map[string]bool, len(services))
			for i, s := range services {
				if !known[s] || seen[s] {
					bad("unobserved.%s[%d]: %s is not a service of the model, or is listed twice", key(feat), i, key(s))
					break
				}
				seen[s] = true
			}
		}
	}
	if len(m.Golden.Input) != m.InputRows()*n {
		bad("golden.input: got %d values, want %d", len(m.Golden.Input), m.InputRows()*n)
	}
	if i := slices.IndexFunc(m.Golden.Input, func(v float64) bool { return !finite(v) }); i >= 0 {
		bad("golden.input[%d]: %v is not finite", i, m.Golden.Input[i])
	}
	for _, o := range m.Outputs {
		out := m.Golden.Outputs[o.Name]
		if got := len(out); got != m.Horizon*n {
			bad("golden.outputs.%s: got %d values, want %d", key(o.Name), got, m.Horizon*n)
		}
		if i := slices.IndexFunc(out, func(v float64) bool { return !finite(v) }); i >= 0 {
			bad("golden.outputs.%s[%d]: %v is not finite", key(o.Name), i, out[i])
		}
	}
	return errors.Join(errs...)
}

func finite(v float64) bool { return !math.IsNaN(v) && !math.IsInf(v, 0) }

// key renders a name taken from the manifest for an error message: as it is
// when it is plain, quoted when it holds anything that could break the line
// (a newline in a JSON key would otherwise split one error in two).
func key[S ~string](name S) string {
	for _, r := range name {
		if !unicode.IsPrint(r) || unicode.IsSpace(r) {
			return strconv.Quote(string(name))
		}
	}
	return string(name)
}

// IsUnobserved reports whether the model was trained without feature f for
// service (see Manifest.Unobserved).
func (m *Manifest) IsUnobserved(f source.Feature, service string) bool {
	return slices.Contains(m.Unobserved[f], service)
}

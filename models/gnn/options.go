// Package gnn trains Foresight's spatiotemporal graph neural network in Go
// (gorgonia autodiff, Adam) and exports it to ONNX with only the operators
// our runtime verifiably executes.
//
// The network is written in the 2-D formulation the runtime needs: the input
// X is the manifest's [F·T, N] matrix (one block of T rows per feature, one
// column per service), graph convolution is a right product X·A, temporal and
// feature mixing is a left product W·Z, and every output is [H, N]:
//
//	D  = C·X                                               change since the last value
//	V  = B·|D| + ε                                         per series: mean |D| over the window
//	Dn = D / V                                             scale-free changes
//	Z0 = [Dn; Dn·Â; …; Dn·Â^K; Dn·A_adp]                  graph diffusion, K hops
//	H1 = tanh(W1f·Z0 + b1f) ⊙ σ(W1g·Z0 + b1g)              gated temporal layer
//	Z1 = [H1; H1·Â; H1·A_adp]
//	H2 = tanh(W2f·Z1 + b2f) ⊙ σ(W2g·Z1 + b2g) + H1         second graph layer, residual
//	p50 = (Wo·H2 + Lo·Z0 + bo) ⊙ (A·|D| + ε) + S·X        change, in units of the target's volatility
//	p90 = softplus(Qo·H2 + QLo·Z0 + qb) ⊙ (K·|Δ1 X| + kε) + p50
//
// Â is the call graph's normalised adjacency, A_adp = softmax(relu(E1·E2ᵀ))
// an adjacency learned from node embeddings (exported precomputed), S a
// constant selector of the target's last observed row, B and A constant
// averaging matrices, Δ1 the step-to-step difference. Everything the network
// learns is relative to the window's own volatility, so it carries over from
// a calm period to a volatile one (the boutique test period is about 60 %
// more volatile than its training period), and the upper margin widens with
// the noise. The output layers start at zero, so an untrained model is
// exactly "last value" and training only moves away from it where the data
// pays for it. After training, the validation windows fix a per-step
// shrinkage of the median's change, blended toward last value at the short
// steps by a fixed prior unless the change beats last value by a wide margin
// in both halves of the validation windows (folded into Wo, Lo, bo), and a
// per-step factor on
// the upper margin that reaches the quantile's coverage with a small
// allowance (folded into K, whose rows average the target's |Δ1 X|).
package gnn

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"time"

	"github.com/foresightscale/foresight/forecaster/model"
	"github.com/foresightscale/foresight/forecaster/source"
	"github.com/foresightscale/foresight/forecaster/topology"
)

// Options describe the network and how to train it.
type Options struct {
	Name, Version, Description string
	Graph                      topology.Graph
	Features                   []source.Feature // inputs, in order
	Targets                    []source.Feature // forecast outputs; each must be an input
	// Unobserved lists, per feature, the services trained without it (no
	// usable series); it is written to the manifest for the serving loop.
	Unobserved      map[source.Feature][]string
	Window, Horizon int
	Step            time.Duration

	// Hidden is the number of hidden channels per service, Embedding the
	// size of the node embeddings behind the learned adjacency, Hops the
	// powers of the call-graph adjacency the first layer sees.
	Hidden, Embedding, Hops int
	// UpperQuantile is the quantile of the second output per target (0.9).
	UpperQuantile float64
	// Period, when positive, gives the network a seasonal context: every
	// target's window and horizon as they were Period steps earlier
	// (model.Seasonal). PeriodACF is the autocorrelation that detected it,
	// recorded in the manifest.
	Period    int
	PeriodACF float64

	// Epochs bounds training; Patience stops it after that many epochs
	// without a better validation loss. BatchSize windows form one step.
	Epochs, Patience, BatchSize int
	LearnRate                   float64
	// WeightDecay is Adam's L2 penalty; it keeps the weights small where
	// the data does not pin them down.
	WeightDecay float64
	// ScaleWeighted weights every service's error by its standard deviation,
	// so the normalised loss matches the MAE in source units, where large
	// services dominate.
	ScaleWeighted bool
	// Seed fixes the initial weights and the batch order: same seed, same data,
	// same model.
	Seed int64
}

// DefaultOptions are sized for the Online Boutique (10 services, 30 s step,
// a 6-minute window and a 5-minute horizon); they train on the 36-hour
// boutique history in a few minutes on two cores.
func DefaultOptions(g topology.Graph) Options {
	return Options{
		Name:          "boutique-gnn",
		Version:       "1",
		Description:   "Spatiotemporal graph network (gated graph convolution over the call graph and a learned adjacency) forecasting the change from the last value in units of each series' recent volatility.",
		Graph:         g,
		Features:      slices.Clone(source.AllFeatures),
		Targets:       []source.Feature{source.Requests, source.CPU},
		Window:        12,
		Horizon:       10,
		Step:          30 * time.Second,
		Hidden:        16,
		Embedding:     4,
		Hops:          2,
		UpperQuantile: 0.9,
		Epochs:        40,
		Patience:      6,
		BatchSize:     32,
		LearnRate:     1e-3,
		WeightDecay:   1e-3,
		ScaleWeighted: true,
		Seed:          1,
	}
}

// Validate checks the options; every error names the field at fault.
func (o Options) Validate() error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if o.Name == "" {
		bad("Name: must not be empty")
	}
	if err := o.Graph.Validate(); err != nil {
		bad("Graph: %v", err)
	}
	if len(o.Features) == 0 {
		bad("Features: must list at least one feature")
	}
	for i, f := range o.Features {
		if _, err := source.ParseFeature(string(f)); err != nil {
			bad("Features[%d]: %v", i, err)
		}
		if slices.Index(o.Features, f) != i {
			bad("Features[%d]: %q listed twice", i, f)
		}
	}
	if len(o.Targets) == 0 {
		bad("Targets: must list at least one feature")
	}
	for i, t := range o.Targets {
		if !slices.Contains(o.Features, t) {
			bad("Targets[%d]: %q is not an input feature", i, t)
		}
		if slices.Index(o.Targets, t) != i {
			bad("Targets[%d]: %q listed twice", i, t)
		}
	}
	positive := []struct {
		name string
		v    int
	}{
		{"Window", o.Window}, {"Horizon", o.Horizon}, {"Hidden", o.Hidden}, {"Embedding", o.Embedding},
		{"Hops", o.Hops}, {"Epochs", o.Epochs}, {"Patience", o.Patience}, {"BatchSize", o.BatchSize},
	}
	for _, p := range positive {
		if p.v < 1 {
			bad("%s: must be at least 1, got %d", p.name, p.v)
		}
	}
	if o.Period != 0 && (o.Period <= o.Horizon || o.Period > model.MaxPeriodSteps) {
		bad("Period: must be 0 (no seasonal context) or above Horizon (%d) and at most %d steps, got %d", o.Horizon, model.MaxPeriodSteps, o.Period)
	}
	if o.Step <= 0 {
		bad("Step: must be positive, got %v", o.Step)
	}
	if !(o.UpperQuantile > 0.5 && o.UpperQuantile < 1) {
		bad("UpperQuantile: must be in (0.5, 1), got %v", o.UpperQuantile)
	}
	if !(o.LearnRate > 0 && o.LearnRate < 1) {
		bad("LearnRate: must be in (0, 1), got %v", o.LearnRate)
	}
	if !(o.WeightDecay >= 0 && o.WeightDecay < 1) {
		bad("WeightDecay: must be in [0, 1), got %v", o.WeightDecay)
	}
	return errors.Join(errs...)
}

func indexOf(fs []source.Feature, f source.Feature) int { return slices.Index(fs, f) }

// seasonal returns the seasonal context the options ask for (nil: none);
// the targets are its features.
func (o Options) seasonal() *model.Seasonal {
	if o.Period <= 0 {
		return nil
	}
	return &model.Seasonal{PeriodSteps: o.Period, Features: slices.Clone(o.Targets), ACF: o.PeriodACF}
}

// windowRows is the height of the window part of the input, F·T.
func windowRows(o Options) int { return len(o.Features) * o.Window }

// seasonalRows is the height of the seasonal part: one block of T+H rows per
// target, or 0.
func seasonalRows(o Options) int {
	if o.Period <= 0 {
		return 0
	}
	return len(o.Targets) * (o.Window + o.Horizon)
}

// seasonZRows is how many seasonal rows the first layer reads: per target,
// the step one period before the window's last and the H steps after it.
// The lagged window before them only measures how well the season matches
// (seasonParts' ρ).
func seasonZRows(o Options) int {
	if o.Period <= 0 {
		return 0
	}
	return len(o.Targets) * (o.Horizon + 1)
}

// inputRows is the height of the whole input.
func inputRows(o Options) int { return windowRows(o) + seasonalRows(o) }

// UpperOutputName is the manifest output holding feature f's forecast at
// the upper quantile q, e.g. "requests_p90".
func UpperOutputName(f source.Feature, q float64) string {
	return fmt.Sprintf("%s_p%d", f, int(math.Round(q*100)))
}

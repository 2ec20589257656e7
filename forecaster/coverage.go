package forecaster

import (
	"fmt"
	"maps"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/foresightscale/foresight/forecaster/fallback"
	"github.com/foresightscale/foresight/forecaster/snapshot"
	"github.com/foresightscale/foresight/forecaster/source"
	"github.com/foresightscale/foresight/internal/textlimit"
)

// Coverage of a service: how, if at all, it is forecast.
const (
	// CoverageModel: the model knows the service and the data has it.
	CoverageModel = "model"
	// CoverageFallback: the data has the service but the model does not
	// know it; the model-free fallback forecasts it until a model does.
	CoverageFallback = "fallback"
	// CoverageAbsent: the model knows the service but the data has no
	// series of it (renamed, removed, or a query that does not match it).
	CoverageAbsent = "absent"
	// CoverageUnowned: the data has the service, but the loop owns a list
	// of services (applications sharing a namespace) and no application
	// lists it: nothing forecasts it.
	CoverageUnowned = "unowned"
)

// HeldNoRequestRate: the model was trained without the service's request
// rate (it never reported one) and no policy cpuPerPod sizes it from CPU.
const HeldNoRequestRate = "no_request_rate"

// HeldNoCapacity: a fallback service has no capacity per pod to be sized with.
const HeldNoCapacity = "no_capacity"

// maxFallbackValue bounds what the fallback takes as a real sample: beyond
// it (1e12 req/s or cores) the series is broken, as the window's clipping
// decides for modelled services.
const maxFallbackValue = 1e12

// Coverage is what the last cycle found: the services the model forecasts,
// those the fallback forecasts, and those the model knows but the data
// lacks. Each list is sorted.
type Coverage struct {
	Model, Fallback, Absent, Unowned []string
	// NoRequestRate are model services trained without a request rate that
	// no cpuPerPod lets Foresight size: never published.
	NoRequestRate []string
}

// Coverage returns what the last cycle found (empty before the first).
func (f *Forecaster) Coverage() Coverage {
	f.readyMu.RLock()
	defer f.readyMu.RUnlock()
	var c Coverage
	for _, svc := range slices.Sorted(maps.Keys(f.coverage)) {
		switch f.coverage[svc] {
		case CoverageModel:
			c.Model = append(c.Model, svc)
		case CoverageFallback:
			c.Fallback = append(c.Fallback, svc)
		case CoverageAbsent:
			c.Absent = append(c.Absent, svc)
		case CoverageUnowned:
			c.Unowned = append(c.Unowned, svc)
		}
	}
	c.NoRequestRate = slices.Clone(f.noRequestRate)
	return c
}

// updateCoverage records how each service is covered by this cycle's data,
// logs every change once, and returns the fallback services.
func (f *Forecaster) updateCoverage(data source.Data) []string {
	inData, unowned := make(map[string]bool), make(map[string]bool)
	for _, feat := range []source.Feature{source.Requests, source.CPU} {
		for svc, samples := range data[feat] {
			switch {
			case !hasObserved(samples) || f.others[svc]:
			case f.owns(svc):
				inData[svc] = true
			default:
				unowned[svc] = true
			}
		}
	}
	// A modelled service counts as present with any feature at all.
	for _, byService := range data {
		for svc, samples := range byService {
			if f.modelled[svc] && hasObserved(samples) {
				inData[svc] = true
			}
		}
	}
	next := make(map[string]string, len(inData)+len(f.served))
	for _, svc := range f.served {
		next[svc] = CoverageAbsent
		if inData[svc] {
			next[svc] = CoverageModel
		}
	}
	var extra []string
	for svc := range inData {
		if !f.modelled[svc] {
			next[svc] = CoverageFallback
			extra = append(extra, svc)
		}
	}
	slices.Sort(extra)
	for svc := range unowned {
		next[svc] = CoverageUnowned
	}

	f.readyMu.Lock()
	prev := f.coverage
	f.coverage = next
	f.readyMu.Unlock()
	// Without a model every service is a fallback service: one line for the
	// set, not a warning per service.
	noModel := !isModel(f.opts.Manifest)
	fallbackChanged := false
	for _, svc := range slices.Sorted(maps.Keys(next)) {
		state := next[svc]
		if prev[svc] == state {
			continue
		}
		if old, ok := prev[svc]; ok {
			f.metrics.coverage.DeleteLabelValues(svc, old)
			fallbackChanged = fallbackChanged || old == CoverageFallback
		}
		f.metrics.coverage.WithLabelValues(svc, state).Set(1)
		switch {
		case state == CoverageFallback && noModel:
			fallbackChanged = true
		case state == CoverageFallback:
			f.log.Warn("service in the data is not in the model: forecasting it with the model-free fallback (published with model=\"fallback\") until a retrained model covers it",
				"service", svc, "howTo", "docs/your-own-application.md#5-add-a-service")
		case state == CoverageAbsent:
			f.log.Warn("service of the model has no series in the data: nothing is forecast for it (renamed or removed? check the queries' service label)", "service", svc)
		case state == CoverageUnowned:
			f.log.Warn("service in the namespace is in no application's services list: nothing is forecast for it; add it to one application's services", "service", svc)
		case prev[svc] != "":
			f.log.Info("service is back in the data", "service", svc, "was", prev[svc])
		}
	}
	for svc, old := range prev {
		if _, ok := next[svc]; !ok {
			f.metrics.coverage.DeleteLabelValues(svc, old)
			f.log.Info("service no longer in the data", "service", svc, "was", old)
			fallbackChanged = fallbackChanged || old == CoverageFallback
		}
	}
	if noModel && fallbackChanged && len(extra) > 0 {
		f.log.Info("no model yet: forecasting every service with the model-free fallback (published with model=\"fallback\") until a trained model is promoted",
			"services", len(extra), "names", textlimit.List(extra, 20))
	}
	return extra
}

// owns reports whether the loop serves svc (Options.Services, or all).
func (f *Forecaster) owns(svc string) bool { return f.owned == nil || f.owned[svc] }

// forecastFallback forecasts the services the model does not know from
// their own recent samples. Services it cannot forecast get a reason.
func (f *Forecaster) forecastFallback(data source.Data, services []string, end, now time.Time, reasons map[string]string) map[string]snapshot.Prediction {
	out := make(map[string]snapshot.Prediction, len(services))
	step := time.Duration(f.opts.Manifest.Step)
	leadSteps := f.opts.Policy.LeadSteps(step, f.opts.Manifest.Horizon)
	horizon := time.Duration(leadSteps) * step
	q := f.opts.Policy.Quantile
	for _, svc := range services {
		if !f.opts.Policy.CanSizeFromRequests(svc) {
			reasons[svc] = HeldNoCapacity
			continue
		}
		reqs, reqLast, reqMissing, reqClipped := fallbackHistory(data[source.Requests][svc], end)
		switch {
		case reqLast.IsZero():
			reasons[svc] = HeldMissingData // CPU only: nothing to size from
			continue
		case end.Sub(reqLast) > f.opts.MaxInputAge:
			reasons[svc] = HeldStaleInput
			continue
		case reqMissing > f.opts.MaxMissingFraction:
			reasons[svc] = HeldMissingData
			continue
		}
		var load fallback.Forecast
		if !reqClipped {
			var err error
			if load, err = fallback.Predict(reqs, leadSteps, q); err != nil {
				reasons[svc] = HeldBadForecast
				f.log.Warn("fallback forecast unusable", "service", svc, "err", err)
				continue
			}
		} else {
			f.metrics.inputOutOfRange.WithLabelValues(svc, string(source.Requests)).Inc()
			load = fallback.Forecast{Last: math.Inf(1), Upper: math.Inf(1)}
		}
		dec, err := f.policy().DecideBursty(svc, []float64{load.Upper}, f.burst(svc), step, f.lastGood[svc].PredictedReplicas)
		if err != nil {
			reasons[svc] = HeldBadForecast
			f.log.Warn("fallback forecast unusable", "service", svc, "err", err)
			continue
		}
		cpuPeak := math.NaN()
		cpu, cpuLast, _, cpuClipped := fallbackHistory(data[source.CPU][svc], end)
		if !cpuLast.IsZero() && !cpuClipped {
			if c, err := fallback.Predict(cpu, leadSteps, q); err == nil {
				cpuPeak = c.Upper
			}
		}
		p := snapshot.Prediction{
			Namespace: f.opts.Namespace, Service: svc, Model: fallback.Name, Horizon: horizon,
			PredictedReplicas: dec.Replicas, PredictedRequests: load.Upper, PredictedCPUCores: cpuPeak,
			RequestsByStep:   slices.Repeat([]float64{load.Last}, f.opts.Manifest.Horizon),
			ObservedRequests: lastObservedValue(reqs), ObservedCPUCores: lastObservedValue(cpu),
			ObservedReplicas: math.NaN(), PeakMemoryPerPodBytes: math.NaN(),
			ComputedAt: now, ExpiresAt: now.Add(f.opts.StaleAfter), InputAt: reqLast,
		}
		if reqClipped {
			p.PredictedRequests, p.PredictedCPUCores, p.RequestsByStep, p.ObservedRequests = math.NaN(), math.NaN(), nil, math.NaN()
		}
		if dec.Saturated {
			f.log.Warn("fallback forecast load needs more than maxReplicas; publishing maxReplicas", "service", svc,
				"replicas", dec.Replicas, "peakRequests", dec.PeakRequests, "inputOutOfRange", reqClipped)
		}
		out[svc] = p
	}
	return out
}

// fallbackHistory returns a series' values up to end (NaN where missing),
// the time of its newest real sample (zero when none), the share of
// missing values, and whether a sample is beyond maxFallbackValue.
func fallbackHistory(samples []source.Sample, end time.Time) ([]float64, time.Time, float64, bool) {
	var values []float64
	var last time.Time
	missing, clipped := 0, false
	for _, s := range samples {
		if s.Time.After(end) {
			break
		}
		v := s.Value
		switch {
		case math.IsNaN(v) || math.IsInf(v, 0) || v < 0:
			v = math.NaN()
			missing++
		case v > maxFallbackValue:
			clipped = true
			last = s.Time
		default:
			last = s.Time
		}
		values = append(values, v)
	}
	if len(values) == 0 {
		return nil, last, 1, false
	}
	return values, last, float64(missing) / float64(len(values)), clipped
}

func hasObserved(samples []source.Sample) bool {
	return slices.ContainsFunc(samples, func(s source.Sample) bool { return !math.IsNaN(s.Value) })
}

func lastObservedValue(values []float64) float64 {
	for i := len(values) - 1; i >= 0; i-- {
		if !math.IsNaN(values[i]) {
			return values[i]
		}
	}
	return math.NaN()
}

// noneFresh explains a cycle that forecast nothing although the source
// answered, pointing at the likeliest cause first: a model of another
// application.
func (f *Forecaster) noneFresh(held map[string]string) error {
	c := f.Coverage()
	if len(c.Model) == 0 && len(c.Absent) > 0 {
		other := "none"
		if len(c.Fallback) > 0 {
			other = textlimit.Cut(strings.Join(c.Fallback, ", "), 300)
		}
		return fmt.Errorf("none of model %s's %d services has a series in the data; the data's services are: %s. Is this the model of this application? Train one on its history (docs/your-own-application.md)",
			f.opts.Manifest.Name, len(c.Absent), other)
	}
	if !isModel(f.opts.Manifest) && len(c.Fallback) == 0 {
		return fmt.Errorf("no model yet, and the data has no service in namespace %s with a request rate or CPU series for the fallback to forecast", f.opts.Namespace)
	}
	return fmt.Errorf("no service had enough data for a forecast (held: %s)", textlimit.Cut(fmt.Sprint(held), 500))
}

// describe is the first cycle's one-line summary.
func (c Coverage) describe() []any {
	return []any{"byModel", len(c.Model), "byFallback", c.Fallback, "absentFromData", c.Absent, "unowned", c.Unowned, "noRequestRate", c.NoRequestRate}
}

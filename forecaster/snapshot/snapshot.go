// Package snapshot holds the forecaster's latest published predictions. The
// forecaster writes a whole new Snapshot each cycle and swaps it in atomically;
// publishers (the metrics APIs, /metrics) only ever read one.
package snapshot

import (
	"sync/atomic"
	"time"
)

// Prediction is what Foresight publishes for one service.
type Prediction struct {
	// App is the application the service belongs to, and Model the model
	// that forecast it; Merged sets both (Model from the application's
	// snapshot unless the forecaster set its own, e.g. a fallback).
	App       string
	Model     string
	Namespace string
	Service   string
	// Horizon is how far ahead the values look: the policy's scale-up lead time.
	Horizon time.Duration
	// PredictedReplicas is the replica count the service needs over Horizon.
	PredictedReplicas int64
	// PredictedRequests is the peak forecast request rate over Horizon (req/s).
	PredictedRequests float64
	// PredictedCPUCores is the peak forecast CPU usage over Horizon (cores).
	PredictedCPUCores float64
	// RequestsByStep is the full request-rate forecast, one value per model
	// step (step 1 first), for dashboards.
	RequestsByStep []float64
	// ObservedRequests, ObservedCPUCores and ObservedReplicas are the
	// latest values of the input window, so consumers can put the forecast
	// next to what it started from; NaN when the model does not read that
	// feature or the series had no data.
	ObservedRequests float64
	ObservedCPUCores float64
	ObservedReplicas float64
	// PeakMemoryPerPodBytes is the highest memory use per pod in the input
	// window (the model does not forecast memory, so recommendations size
	// it from the recent peak); NaN when unknown.
	PeakMemoryPerPodBytes float64
	// ComputedAt is when the values were computed; after ExpiresAt they are
	// stale and no publisher may serve them.
	ComputedAt time.Time
	ExpiresAt  time.Time
	// InputAt is the time of the newest real sample the forecast started
	// from (the stalest of the features replicas are sized from); zero when
	// unknown. The age of what is served is measured from it, not from
	// ComputedAt: a forecast computed now from data eight minutes old is not
	// fresh.
	InputAt time.Time
	// HeldReason is empty for a fresh prediction; otherwise it says why the
	// last good values are being held instead (e.g. "missing_data").
	HeldReason string
	// Chart is what the forecast read and said, step by step, for the
	// status page; nil when unknown (the model-free fallback). Shared and
	// immutable, like the rest of the snapshot.
	Chart *Chart
}

// Chart holds one forecast's input window and its forecast, step by step,
// in the source's units. Values are NaN where there is none (a gap in the
// window, or a forecast the model does not make).
type Chart struct {
	// Start is the time of the first window value; value k is at
	// Start + k·Step, the window first and the horizon after it.
	Start time.Time
	Step  time.Duration
	// ObservedRequests and ObservedCPU are the window's real samples
	// (filled gaps are NaN).
	ObservedRequests, ObservedCPU []float64
	// RequestsP50 and CPUP50 are the forecast's median, RequestsUpper and
	// CPUUpper the upper bound sized from (the policy's quantile), step 1
	// first.
	RequestsP50, RequestsUpper, CPUP50, CPUUpper []float64
}

// Snapshot is one consistent set of predictions.
type Snapshot struct {
	CreatedAt time.Time
	// Model is the model's name; in a merge of applications with different
	// models, their names sorted and joined with commas (each Prediction
	// carries its own).
	Model string
	// Step is the model's step; 0 in a merge of models with different steps.
	Step        time.Duration
	Predictions []Prediction
	// Unpublished lists the model's services for which nothing is served:
	// no good forecast yet, or the last one expired. They stay visible (on
	// /metrics) with the reason, so an alert on a held service keeps firing
	// after staleAfter instead of going quiet.
	Unpublished []Unpublished
}

// Unpublished is a service Foresight knows but serves nothing for.
type Unpublished struct {
	// App is the application the service belongs to (set by Merged).
	App       string
	Namespace string
	Service   string
	// Reason is why its forecast failed (a held reason such as
	// "source_error").
	Reason string
	// Since is when the last good prediction expired; zero when there never
	// was one.
	Since time.Time
}

// Fresh returns the predictions that have not expired at now, in namespace
// (all namespaces when namespace is empty).
func (s *Snapshot) Fresh(now time.Time, namespace string) []Prediction {
	if s == nil {
		return nil
	}
	out := make([]Prediction, 0, len(s.Predictions))
	for _, p := range s.Predictions {
		if !now.Before(p.ExpiresAt) {
			continue
		}
		if namespace != "" && p.Namespace != namespace {
			continue
		}
		out = append(out, p)
	}
	return out
}

// ModelOf is the model that forecast p: its own (the fallback's, or its
// application's in a merge of several), else the snapshot's; "" for a nil
// snapshot and a prediction without one.
func (s *Snapshot) ModelOf(p Prediction) string {
	if p.Model != "" || s == nil {
		return p.Model
	}
	return s.Model
}

// Reader gives access to the latest snapshot; publishers depend on this only.
type Reader interface {
	// Latest returns the newest snapshot, or nil before the first cycle.
	Latest() *Snapshot
}

// Store is the atomically swapped latest snapshot.
type Store struct{ current atomic.Pointer[Snapshot] }

// Latest implements Reader.
func (s *Store) Latest() *Snapshot { return s.current.Load() }

// Publish makes snap the latest snapshot.
func (s *Store) Publish(snap *Snapshot) { s.current.Store(snap) }

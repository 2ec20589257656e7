// Package source reads per-service metrics history from a backend. Every backend
// (Prometheus, CSV replay, the synthetic workload) implements Source; the rest of
// the forecaster never knows which one it talks to.
package source

import (
	"context"
	"fmt"
	"slices"
	"time"
)

// Feature names one per-service metric the models consume.
type Feature string

// The features a model may use. Units: CPU in cores (or the fraction of the
// limit, for data recorded that way), requests in req/s, latency in seconds,
// memory in bytes (or fraction of the limit), replicas as a count.
const (
	CPU      Feature = "cpu"
	Requests Feature = "requests"
	Latency  Feature = "latency"
	Memory   Feature = "memory"
	Replicas Feature = "replicas"
)

// AllFeatures lists every feature a model may use, in a stable order.
var AllFeatures = []Feature{CPU, Requests, Latency, Memory, Replicas}

// LatencyP99 is the p99 response time, in seconds, of the requests a service
// receives, as its own sidecar measures them: for the application's entry
// service it is the end-to-end p99 its users see. The SLO feedback loop
// compares it with the application's latency objective to tune the scaling
// headroom. It is not a model feature (not in AllFeatures): models are
// trained on AllFeatures, and a quantile they would learn to predict is not
// what the feedback needs.
const LatencyP99 Feature = "latency_p99"

// FeedbackFeatures lists the features a source serves for feedback on the
// forecasts, not for models. A Query may ask for them like for any feature; a
// source that cannot measure one answers without that feature (no samples),
// not with an error.
var FeedbackFeatures = []Feature{LatencyP99, RequestsPeak}

// RequestsPeak is the highest short-window request rate (req/s) a service
// received within each step, for example the largest 15-second rate within
// the minute Requests averages over. Its ratio to Requests is the service's
// burstiness: the policy sizes for the peak the pods will see, not for the
// step's mean (see policy.BurstConfig). Like LatencyP99 it is not a model
// feature.
const RequestsPeak Feature = "requests_peak"

// ParseFeature validates the name of a model feature (one of AllFeatures).
func ParseFeature(s string) (Feature, error) {
	for _, f := range AllFeatures {
		if string(f) == s {
			return f, nil
		}
	}
	return "", fmt.Errorf("unknown feature %q (known: cpu, requests, latency, memory, replicas)", s)
}

// ParseQueryFeature validates the name of a feature a Query may ask for and a
// query override may name: one of AllFeatures or FeedbackFeatures.
func ParseQueryFeature(s string) (Feature, error) {
	if f, err := ParseFeature(s); err == nil {
		return f, nil
	}
	for _, f := range FeedbackFeatures {
		if string(f) == s {
			return f, nil
		}
	}
	return "", fmt.Errorf("unknown feature %q (known: cpu, requests, latency, memory, replicas, latency_p99, requests_peak)", s)
}

// Query asks for the samples of some features of some services between Start
// and End (both inclusive), at the given resolution.
type Query struct {
	Namespace string
	Services  []string
	// AllServices asks for every service the backend has data for, not only
	// those in Services (which may then be empty): training learns the
	// application from its history, and the forecast loop notices services
	// its model does not know.
	AllServices bool
	Features    []Feature
	Start       time.Time
	End         time.Time
	Step        time.Duration
}

// Validate reports a query that no source can answer.
func (q Query) Validate() error {
	switch {
	case len(q.Services) == 0 && !q.AllServices:
		return fmt.Errorf("query names no services")
	case len(q.Features) == 0:
		return fmt.Errorf("query names no features")
	case q.Step <= 0:
		return fmt.Errorf("query step %v must be positive", q.Step)
	case q.End.Before(q.Start):
		return fmt.Errorf("query end %v is before start %v", q.End, q.Start)
	}
	return nil
}

// Sample is one observation. A NaN Value is a sample the backend marked missing.
type Sample struct {
	Time  time.Time
	Value float64
}

// Data holds what a source returned: Data[feature][service] is a time-ordered
// list of samples. A service or feature that is absent had no data at all;
// aligning, imputing and counting the gaps is the window package's job.
type Data map[Feature]map[string][]Sample

// Add appends a sample, creating the inner maps as needed.
func (d Data) Add(f Feature, service string, s Sample) {
	m, ok := d[f]
	if !ok {
		m = make(map[string][]Sample)
		d[f] = m
	}
	m[service] = append(m[service], s)
}

// Source is a backend that answers range queries.
type Source interface {
	// Name identifies the source in logs and metrics ("prometheus", "csv", "synthetic").
	Name() string
	// Fetch returns the samples asked for. It returns an error only when the
	// backend could not be asked or answered badly; missing series are not errors.
	Fetch(ctx context.Context, q Query) (Data, error)
}

// ErrorKind classifies a fetch failure for the source_errors_total metric.
type ErrorKind string

// Kinds of fetch failures.
const (
	ErrUnreachable ErrorKind = "unreachable"  // connection refused, DNS, TLS
	ErrTimeout     ErrorKind = "timeout"      // deadline exceeded
	ErrBadResponse ErrorKind = "bad_response" // HTTP error status, unparsable body, query error
	ErrBadData     ErrorKind = "bad_data"     // the backend answered with data we cannot use
)

// FetchError carries the kind of failure so the loop can count it.
type FetchError struct {
	Kind    ErrorKind
	Feature Feature // empty when the failure is not tied to one feature
	Err     error
}

func (e *FetchError) Error() string {
	if e.Feature != "" {
		return fmt.Sprintf("%s (feature %s): %v", e.Kind, e.Feature, e.Err)
	}
	return fmt.Sprintf("%s: %v", e.Kind, e.Err)
}

func (e *FetchError) Unwrap() error { return e.Err }

// servicesOf returns the services a query asks for, given those the backend
// has (in the backend's order, then any others the query lists).
func (q Query) servicesOf(available []string) []string {
	if !q.AllServices {
		return q.Services
	}
	out := slices.Clone(available)
	for _, s := range q.Services {
		if !slices.Contains(available, s) {
			out = append(out, s)
		}
	}
	return out
}

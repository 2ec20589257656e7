// Package simulator replays a request trace through a simulated microservice
// application whose deployments a scaling policy sizes, second by second, and
// measures what users would feel (end-to-end latency, SLO violations) and what
// it costs (CPU core-hours requested). It is how `foresight simulate` compares
// proactive and reactive scaling without a cluster.
//
// The model, per service and simulated second:
//   - arrivals: the trace's rate at the entry times the service's visits per
//     entry request (the call graph's fan-outs);
//   - ready pods are the servers of an M/M/c queue (queueing.Station); a pod serves
//     CoresPerPod/WorkPerRequest requests/s; what exceeds capacity queues,
//     and what waits longer than the timeout is dropped;
//   - new pods start serving after a start-up delay (jittered); removed pods
//     stop at once; every pod, ready or starting, costs its CPU request;
//   - the end-to-end latency quantile is the entry's plus, recursively, the
//     slowest callee on a typical request's path.
package simulator

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand"
	"slices"
	"sort"
	"time"

	"github.com/foresightscale/foresight/forecaster/queueing"
	"github.com/foresightscale/foresight/forecaster/simulator/workload"
)

// Config is a simulation's world apart from the policy.
type Config struct {
	App App
	// SLO is the end-to-end p99 latency objective.
	SLO time.Duration
	// Timeout drops a request that waited longer in a service's queue.
	Timeout time.Duration
	// StartupDelay is how long a new pod takes to serve; each pod's delay is
	// drawn uniformly within ±StartupJitter of it.
	StartupDelay  time.Duration
	StartupJitter float64
	// MetricWindow is what resource metrics average over (metrics-server's
	// resolution): the CPU an HPA sees is this window's mean.
	MetricWindow time.Duration
	// PeakResolution is the window of the short request rates whose largest
	// within each step the metrics source reports as requests_peak: what a
	// Prometheus scraping every PeakResolution resolves (the shipped
	// recording rule takes the largest rate between consecutive scrapes).
	// Bursts shorter than it are invisible to the policy, as in a cluster.
	PeakResolution time.Duration
	// WarmUp precedes the trace with this long at the trace's first-minute
	// mean rate, not scored: policies start from history as they would in a
	// cluster (a forecaster needs a window of it), and the HPAs settle.
	WarmUp time.Duration
	// Seed fixes the start-up jitter.
	Seed int64
}

// DefaultConfig is the default world: Online Boutique, a 250 ms p99 SLO,
// 30 s ± 20 % pod start-up, 5 s timeouts, 15 s metric window, 10 minutes
// of warm-up.
func DefaultConfig() Config {
	return Config{
		App:            OnlineBoutique(),
		SLO:            250 * time.Millisecond,
		Timeout:        5 * time.Second,
		StartupDelay:   30 * time.Second,
		StartupJitter:  0.2,
		MetricWindow:   15 * time.Second,
		PeakResolution: 15 * time.Second,
		WarmUp:         10 * time.Minute,
		Seed:           1,
	}
}

// Validate checks the configuration; errors name the field.
func (c *Config) Validate() error {
	var errs []error
	if err := c.App.Validate(); err != nil {
		errs = append(errs, fmt.Errorf("app: %w", err))
	}
	if c.SLO <= 0 {
		errs = append(errs, fmt.Errorf("slo: must be positive, got %v", c.SLO))
	}
	if c.Timeout < c.SLO {
		errs = append(errs, fmt.Errorf("timeout: %v is shorter than the SLO %v", c.Timeout, c.SLO))
	}
	if c.StartupDelay < 0 {
		errs = append(errs, fmt.Errorf("startupDelay: must not be negative, got %v", c.StartupDelay))
	}
	if c.StartupJitter < 0 || c.StartupJitter >= 1 {
		errs = append(errs, fmt.Errorf("startupJitter: must be in [0,1), got %v", c.StartupJitter))
	}
	if c.WarmUp < 0 || c.WarmUp%time.Second != 0 {
		errs = append(errs, fmt.Errorf("warmUp: must be whole seconds, not negative, got %v", c.WarmUp))
	}
	if c.MetricWindow < time.Second {
		errs = append(errs, fmt.Errorf("metricWindow: must be at least 1s, got %v", c.MetricWindow))
	}
	if c.PeakResolution < time.Second || c.PeakResolution > time.Hour || c.PeakResolution%time.Second != 0 {
		errs = append(errs, fmt.Errorf("peakResolution: must be whole seconds between 1s and 1h, got %v", c.PeakResolution))
	}
	return errors.Join(errs...)
}

// Pod is one replica of a service.
type Pod struct {
	Created int // second it was created
	ReadyAt int // first second it serves
}

// Ready reports whether the pod serves at second t.
func (p Pod) Ready(t int) bool { return t >= p.ReadyAt }

// Scaler is a scaling policy under test. The simulation calls Tick at the
// start of every second; the policy sees everything that happened before
// through the Run (and, for the oracle, the trace itself).
type Scaler interface {
	Name() string
	// Start prepares the policy for a run and returns each service's
	// replicas at second 0 (Services order).
	Start(run *Run) ([]int32, error)
	// Tick returns each service's replicas from second t on.
	Tick(t int) ([]int32, error)
}

// Run is a simulation in progress: the world and what happened so far.
type Run struct {
	Config Config
	// Trace is what runs: the warm-up, then the trace under test from
	// second Scored on.
	Trace  *workload.Trace
	Scored int
	// Per service (App.Services order), per completed second:
	Arrivals [][]float64 // offered requests/s
	CPU      [][]float64 // cores used
	Latency  [][]float64 // the service's own median latency, seconds
	// P99PerService is the p99 response time, in seconds, as the service's
	// sidecar would measure it: its own p99 plus its slowest typical
	// callee's, recursively (what the end-to-end P99 adds up along the
	// path), so the entry's equals P99.
	P99PerService [][]float64
	Replicas      [][]int32 // pods (ready or starting)
	Ready         [][]int32 // ready pods
	// Pods are each service's current pods, oldest first.
	Pods [][]Pod
	// P50 and P99 are the end-to-end latency quantiles per second, in seconds.
	P50, P99 []float64
	// Violations marks the seconds that broke the SLO.
	Violations []bool
	// Dropped is the requests timed out per second, over all services.
	Dropped []float64

	rng     *rand.Rand
	backlog []float64
}

// Second is how many seconds have been simulated.
func (r *Run) Second() int { return len(r.P99) }

// Result is one policy's outcome.
type Result struct {
	Name                    string  `json:"name"`
	SLOViolationSeconds     int     `json:"slo_violation_seconds"`
	CoreHours               float64 `json:"core_hours"`
	P50Ms                   float64 `json:"p50_ms"`
	P99Ms                   float64 `json:"p99_ms"`
	ScalingActions          int     `json:"scaling_actions"`
	UnderProvisionedSeconds int     `json:"under_provisioned_seconds"`
	DroppedRequests         float64 `json:"dropped_requests"`
	Seconds                 int     `json:"seconds"`
}

// Simulate runs the trace through the application under the policy.
func Simulate(ctx context.Context, cfg Config, trace *workload.Trace, scaler Scaler) (*Result, *Run, error) {
	if err := cfg.Validate(); err != nil {
		return nil, nil, err
	}
	if trace == nil || len(trace.RPS) == 0 {
		return nil, nil, errors.New("simulate: empty trace")
	}
	if trace.Step != time.Second {
		return nil, nil, fmt.Errorf("simulate: trace step %v, want 1s", trace.Step)
	}
	trace = withWarmUp(trace, int(cfg.WarmUp/time.Second))
	app := &cfg.App
	nS, nT := len(app.Services), len(trace.RPS)
	scored := int(cfg.WarmUp / time.Second)
	run := &Run{
		Config: cfg, Trace: trace, Scored: scored,
		Arrivals: make([][]float64, nS), CPU: make([][]float64, nS), Latency: make([][]float64, nS),
		P99PerService: make([][]float64, nS),
		Replicas:      make([][]int32, nS), Ready: make([][]int32, nS), Pods: make([][]Pod, nS),
		P50: make([]float64, 0, nT), P99: make([]float64, 0, nT),
		Violations: make([]bool, 0, nT), Dropped: make([]float64, 0, nT),
		rng: rand.New(rand.NewSource(cfg.Seed)), backlog: make([]float64, nS),
	}
	for i := range nS {
		run.Arrivals[i], run.CPU[i], run.Latency[i] = make([]float64, 0, nT), make([]float64, 0, nT), make([]float64, 0, nT)
		run.P99PerService[i] = make([]float64, 0, nT)
		run.Replicas[i], run.Ready[i] = make([]int32, 0, nT), make([]int32, 0, nT)
	}
	initial, err := scaler.Start(run)
	if err != nil {
		return nil, nil, fmt.Errorf("simulate: starting %s: %w", scaler.Name(), err)
	}
	// The initial pods are up: the run starts from a steady deployment.
	for i, n := range initial {
		for range clampReplicas(app.Services[i], n) {
			run.Pods[i] = append(run.Pods[i], Pod{Created: -1, ReadyAt: 0})
		}
	}
	res := &Result{Name: scaler.Name(), Seconds: nT - scored}
	var coreSeconds float64
	p50 := make([]float64, nS)
	p99 := make([]float64, nS)
	timeout := cfg.Timeout.Seconds()
	entry := app.graph.Index(app.Entry)
	for t := range nT {
		if t%256 == 0 {
			if err := ctx.Err(); err != nil {
				return nil, nil, fmt.Errorf("simulate: %s at second %d: %w", scaler.Name(), t, err)
			}
		}
		if t > 0 {
			want, err := scaler.Tick(t)
			if err != nil {
				return nil, nil, fmt.Errorf("simulate: %s at second %d: %w", scaler.Name(), t-scored, err)
			}
			if n := run.scale(t, want); t >= scored {
				res.ScalingActions += n
			}
		}
		violated, under := false, false
		var dropped float64
		for i, svc := range app.Services {
			ready := 0
			for _, p := range run.Pods[i] {
				if p.Ready(t) {
					ready++
				}
			}
			mu := svc.PodRate()
			arrivals := trace.RPS[t] * app.visits[i]
			st := queueing.Station{Servers: ready, Mu: mu, Lambda: arrivals, Backlog: run.backlog[i]}
			p50[i], p99[i] = st.Quantile(0.5, timeout), st.Quantile(0.99, timeout)
			capacity := float64(ready) * mu
			served := math.Min(run.backlog[i]+arrivals, capacity)
			backlog := run.backlog[i] + arrivals - served
			// What would wait longer than the timeout is dropped.
			if excess := backlog - capacity*timeout; excess > 0 {
				dropped += excess
				if excess > 0.01*math.Max(arrivals, 1) {
					violated = true
				}
				backlog -= excess
			}
			run.backlog[i] = backlog
			if arrivals > capacity {
				under = true
			}
			run.Arrivals[i] = append(run.Arrivals[i], arrivals)
			run.CPU[i] = append(run.CPU[i], served*svc.WorkPerRequest)
			run.Latency[i] = append(run.Latency[i], p50[i])
			run.Replicas[i] = append(run.Replicas[i], int32(len(run.Pods[i])))
			run.Ready[i] = append(run.Ready[i], int32(ready))
			if t >= scored {
				coreSeconds += float64(len(run.Pods[i])) * svc.CoresPerPod
			}
		}
		path99, _ := app.pathLatencies(p99)
		for i, v := range path99 {
			run.P99PerService[i] = append(run.P99PerService[i], v)
		}
		e50, e99 := app.endToEnd(p50), path99[entry]
		if e99 > cfg.SLO.Seconds() {
			violated = true
		}
		run.P50, run.P99 = append(run.P50, e50), append(run.P99, e99)
		run.Violations = append(run.Violations, violated)
		run.Dropped = append(run.Dropped, dropped)
		if t < scored {
			continue
		}
		res.DroppedRequests += dropped
		if violated {
			res.SLOViolationSeconds++
		}
		if under {
			res.UnderProvisionedSeconds++
		}
	}
	res.CoreHours = coreSeconds / 3600
	res.P50Ms = 1000 * weightedQuantile(run.P50[scored:], trace.RPS[scored:], 0.5)
	res.P99Ms = 1000 * weightedQuantile(run.P99[scored:], trace.RPS[scored:], 0.99)
	return res, run, nil
}

// withWarmUp returns the trace preceded by seconds at its first minute's
// mean rate.
func withWarmUp(trace *workload.Trace, seconds int) *workload.Trace {
	if seconds == 0 {
		return trace
	}
	level := firstMinuteMean(trace.RPS)
	rps := make([]float64, seconds, seconds+len(trace.RPS))
	for i := range rps {
		rps[i] = level
	}
	return &workload.Trace{Name: trace.Name, Step: trace.Step, RPS: append(rps, trace.RPS...)}
}

// firstMinuteMean is the mean rate of a trace's first 60 seconds (or all of
// a shorter one): the level the warm-up holds and the deployments start at.
func firstMinuteMean(rps []float64) float64 {
	first := rps[:min(60, len(rps))]
	var sum float64
	for _, v := range first {
		sum += v
	}
	return sum / float64(len(first))
}

// endToEnd combines per-service latencies (Services order) into the entry's:
// a service's own plus the slowest callee on the typical path.
func (a *App) endToEnd(own []float64) float64 {
	total, _ := a.pathLatencies(own)
	return total[a.graph.Index(a.Entry)]
}

// pathLatencies returns, per service, its own latency plus its slowest
// typical callee's (recursively), and that callee (-1 for none).
func (a *App) pathLatencies(own []float64) (total []float64, next []int) {
	total, next = make([]float64, len(own)), make([]int, len(own))
	for _, i := range a.reverse {
		next[i] = -1
		var slowest float64
		for _, j := range a.typicalOut[i] {
			if total[j] > slowest {
				slowest, next[i] = total[j], j
			}
		}
		total[i] = own[i] + slowest
	}
	return total, next
}

// scale brings each service to its wanted replicas at second t and returns
// how many services changed. New pods serve after the start-up delay;
// removal takes pods that do not serve yet first, then the newest, as a
// ReplicaSet does.
func (r *Run) scale(t int, want []int32) int {
	changed := 0
	for i, svc := range r.Config.App.Services {
		if i >= len(want) {
			break
		}
		n := int(clampReplicas(svc, want[i]))
		pods := r.Pods[i]
		if n == len(pods) {
			continue
		}
		changed++
		for len(pods) < n {
			pods = append(pods, Pod{Created: t, ReadyAt: t + r.startupDelay()})
		}
		if len(pods) > n {
			// Stable: among equals the newest goes first.
			slices.SortStableFunc(pods, func(a, b Pod) int {
				ra, rb := a.Ready(t), b.Ready(t)
				switch {
				case ra && !rb:
					return -1
				case !ra && rb:
					return 1
				}
				return a.Created - b.Created
			})
			pods = pods[:n]
		}
		r.Pods[i] = pods
	}
	return changed
}

func (r *Run) startupDelay() int {
	d := r.Config.StartupDelay.Seconds()
	if j := r.Config.StartupJitter; j > 0 {
		d *= 1 + j*(2*r.rng.Float64()-1)
	}
	return int(math.Round(d))
}

func clampReplicas(s Service, n int32) int32 { return min(max(n, s.MinReplicas), s.MaxReplicas) }

// weightedQuantile is the q-quantile of values weighted by w (the entry's
// requests in each second), so a quiet second counts less than a busy one.
func weightedQuantile(values, w []float64, q float64) float64 {
	idx := make([]int, len(values))
	var total float64
	for i := range idx {
		idx[i] = i
		total += w[i]
	}
	if total == 0 {
		return 0
	}
	sort.SliceStable(idx, func(a, b int) bool { return values[idx[a]] < values[idx[b]] })
	var acc float64
	for _, i := range idx {
		acc += w[i]
		if acc >= q*total {
			return values[i]
		}
	}
	return values[idx[len(idx)-1]]
}

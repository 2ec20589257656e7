// Package synthetic generates a deterministic microservice workload: an
// external request curve (diurnal + bursts + noise) entering at the root
// services, propagated along the call graph, and turned into the per-service
// metrics a real cluster would report (requests, CPU, memory, latency,
// replicas).
//
// Every value at time t is a pure function of (Config, t): t is rounded down
// to Config.Resolution, noise comes from a counter-based hash of (seed,
// series, tick), bursts from a per-epoch seeded schedule, and the lagged
// replica count from the load at earlier controller sync instants. So a range
// fetched whole or in pieces, or a live "last N minutes" window moving with
// the clock, all see the same world. Values are bit-identical across runs on
// one platform; across CPU architectures the math library and fused
// multiply-adds may differ in the last bits.
package synthetic

import (
	"context"
	"fmt"
	"maps"
	"math"
	"slices"
	"time"

	"github.com/foresightscale/foresight/forecaster/topology"
)

// ServiceState is one service at one instant.
type ServiceState struct {
	Service string
	// Requests is the request rate the service receives, in req/s.
	Requests float64
	// CPUCores is CPU use summed over the service's pods.
	CPUCores float64
	// MemoryBytes is memory use summed over the service's pods.
	MemoryBytes float64
	// LatencySeconds is the mean response time (own queueing and service
	// time, M/M/1 per pod).
	LatencySeconds float64
	// Replicas is the observed pod count, set by a lagging reactive rule.
	Replicas int
	// Utilisation is Requests over what the current pods can serve at
	// saturation; above 1 the service is overloaded.
	Utilisation float64
}

// State is every service at one instant, in the topology's node order.
type State struct {
	Time     time.Time
	Services []ServiceState
}

// Service returns the state of the named service.
func (s State) Service(name string) (ServiceState, bool) {
	for _, ss := range s.Services {
		if ss.Service == name {
			return ss, true
		}
	}
	return ServiceState{}, false
}

// MaxSeriesPoints bounds one Series call (about 12 days at 1 s).
const MaxSeriesPoints = 1 << 20

// maxLoadBound is the largest request rate any service may reach; New
// refuses configurations whose worst case exceeds it, so every derived value
// (CPU, memory) stays finite.
const maxLoadBound = 1e15

// maxFanOut bounds a single edge's calls per request.
const maxFanOut = 1e6

type caller struct {
	node   int
	fanOut float64
}

// Generator produces the synthetic world. It is immutable after New and safe
// for concurrent use.
type Generator struct {
	cfg      Config
	services []string
	index    map[string]int
	order    []int      // topological order, callers first
	callers  [][]caller // callers[i]: who calls node i, and how often
	root     []bool
	profiles []ServiceProfile

	loadStream, cpuStream, latencyStream []uint64

	resNs, syncNs      int64
	lagSyncs, winSyncs int64
	saturationPerPod   []float64 // req/s at which one pod saturates
}

// New validates cfg and the graph and builds a generator for the graph's
// services. A profile in cfg.Services that names no service of the graph is
// an error (it is most likely a typo). An edge with FanOut 0 counts as 1, the
// topology package's "unknown" value.
func New(cfg Config, g topology.Graph) (*Generator, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if err := g.Validate(); err != nil {
		return nil, fmt.Errorf("synthetic: topology: %w", err)
	}
	order, err := g.TopologicalOrder()
	if err != nil {
		return nil, fmt.Errorf("synthetic: topology: %w", err)
	}
	n := len(g.Services)
	gen := &Generator{
		cfg:              cfg,
		services:         slices.Clone(g.Services),
		index:            make(map[string]int, n),
		callers:          make([][]caller, n),
		root:             make([]bool, n),
		profiles:         make([]ServiceProfile, n),
		loadStream:       make([]uint64, n),
		cpuStream:        make([]uint64, n),
		latencyStream:    make([]uint64, n),
		saturationPerPod: make([]float64, n),
		resNs:            int64(cfg.Resolution),
		syncNs:           int64(cfg.Replicas.SyncPeriod),
		lagSyncs:         int64(cfg.Replicas.Lag / cfg.Replicas.SyncPeriod),
		winSyncs:         int64(cfg.Replicas.ScaleDownWindow / cfg.Replicas.SyncPeriod),
	}
	gen.cfg.Services = nil // resolved into gen.profiles; never alias the caller's map
	for i, s := range gen.services {
		gen.index[s] = i
	}
	names := slices.Sorted(maps.Keys(cfg.Services))
	for _, name := range names {
		if _, ok := gen.index[name]; !ok {
			return nil, &ConfigError{Field: fmt.Sprintf("Services[%q]", name), Reason: "names a service that is not in the topology"}
		}
	}
	for _, s := range order {
		gen.order = append(gen.order, gen.index[s])
	}
	for i, e := range g.Edges {
		fan := e.FanOut
		if fan == 0 {
			fan = 1
		}
		if !inRange(fan, 0, maxFanOut) {
			return nil, fmt.Errorf("synthetic: topology: edges[%d] %s->%s: fan-out %v must be finite and at most %g",
				i, e.Caller, e.Callee, e.FanOut, float64(maxFanOut))
		}
		callee := gen.index[e.Callee]
		gen.callers[callee] = append(gen.callers[callee], caller{node: gen.index[e.Caller], fanOut: fan})
	}
	for i, s := range gen.services {
		gen.root[i] = len(gen.callers[i]) == 0
		p, ok := cfg.Services[s]
		if !ok {
			p = cfg.DefaultService
		}
		gen.profiles[i] = p
		gen.saturationPerPod[i] = p.CapacityPerPod / cfg.TargetUtilisation
		gen.loadStream[i] = streamID("load/" + s)
		gen.cpuStream[i] = streamID("cpu/" + s)
		gen.latencyStream[i] = streamID("latency/" + s)
	}
	if err := gen.checkBounds(); err != nil {
		return nil, err
	}
	return gen, nil
}

// checkBounds refuses a world whose worst-case load would overflow: maximal
// diurnal peak, every burst of two overlapping epochs at full height, maximal
// noise at every hop.
func (g *Generator) checkBounds() error {
	c := g.cfg
	external := c.Diurnal.Base + c.Diurnal.Amplitude + 2*maxBurstsPerEpoch*c.Bursts.MaxHeight
	noise := 1 + 3*c.NoiseFraction
	worst := make([]float64, len(g.services))
	for _, i := range g.order {
		var load float64
		if g.root[i] {
			load = external
		}
		for _, cl := range g.callers[i] {
			load += worst[cl.node] * cl.fanOut
		}
		worst[i] = load * noise
		if !(worst[i] <= maxLoadBound) {
			return fmt.Errorf("synthetic: worst-case load of service %q is %g req/s, above %g: lower the fan-outs or the external load",
				g.services[i], worst[i], float64(maxLoadBound))
		}
	}
	return nil
}

// Services returns the service names in the topology's node order.
func (g *Generator) Services() []string { return slices.Clone(g.services) }

// Resolution is the generator's clock tick.
func (g *Generator) Resolution() time.Duration { return g.cfg.Resolution }

// Profile returns the profile a service is generated with.
func (g *Generator) Profile(service string) (ServiceProfile, error) {
	i, ok := g.index[service]
	if !ok {
		return ServiceProfile{}, fmt.Errorf("synthetic: unknown service %q", service)
	}
	return g.profiles[i], nil
}

// CapacityPerPod is the req/s one pod of the service serves at the target
// utilisation: the number a scaling policy should divide predicted load by
// to land on the same replica counts as this world's own controller.
func (g *Generator) CapacityPerPod(service string) (float64, error) {
	p, err := g.Profile(service)
	if err != nil {
		return 0, err
	}
	return p.CapacityPerPod, nil
}

// At returns the world at time t (rounded down to the resolution).
func (g *Generator) At(t time.Time) State {
	e := g.newEvaluator()
	st := State{Time: t, Services: make([]ServiceState, len(g.services))}
	e.fill(g.tick(t), st.Services)
	return st
}

// Series returns the world at start, start+step, … up to end inclusive. Each
// state equals At of its time, however the range is split into calls.
func (g *Generator) Series(ctx context.Context, start, end time.Time, step time.Duration) ([]State, error) {
	switch {
	case step <= 0:
		return nil, fmt.Errorf("synthetic: series step %v must be positive", step)
	case end.Before(start):
		return nil, fmt.Errorf("synthetic: series end %v is before start %v", end, start)
	}
	points := int64(end.Sub(start)/step) + 1
	if points > MaxSeriesPoints {
		return nil, fmt.Errorf("synthetic: series %v to %v at step %v has %d points, more than %d",
			start, end, step, points, MaxSeriesPoints)
	}
	n := len(g.services)
	states := make([]State, points)
	backing := make([]ServiceState, int(points)*n)
	e := g.newEvaluator()
	for i := range states {
		if i%1024 == 0 {
			if err := ctx.Err(); err != nil {
				return nil, fmt.Errorf("synthetic: series interrupted: %w", err)
			}
		}
		t := start.Add(time.Duration(i) * step)
		states[i] = State{Time: t, Services: backing[i*n : (i+1)*n : (i+1)*n]}
		e.fill(g.tick(t), states[i].Services)
		e.evict(g.tick(t))
	}
	return states, nil
}

// tick is t's index on the generator's clock. Times outside the range of
// time.UnixNano (years 1678-2262) are not supported.
func (g *Generator) tick(t time.Time) int64 { return floorDiv(t.UnixNano(), g.resNs) }

// evaluator computes states, caching what neighbouring instants share (burst
// schedules, controller recommendations). The cache only saves work: every
// value is computed from (config, tick) alone. Not safe for concurrent use.
type evaluator struct {
	g        *Generator
	bursts   map[int64][]burst // by epoch
	desired  map[int64][]int   // controller recommendation by sync index
	loads    []float64         // scratch
	replicas []int             // scratch
}

func (g *Generator) newEvaluator() *evaluator {
	return &evaluator{
		g:        g,
		bursts:   make(map[int64][]burst),
		desired:  make(map[int64][]int),
		loads:    make([]float64, len(g.services)),
		replicas: make([]int, len(g.services)),
	}
}

// external is the request rate entering each root service at tNs.
func (e *evaluator) external(tNs int64) float64 {
	load := e.g.diurnal(tNs)
	if e.g.cfg.Bursts.PerHour == 0 {
		return load
	}
	epoch := floorDiv(tNs, int64(e.g.cfg.Bursts.Epoch))
	// A burst lasts at most one epoch, so only this epoch's and the previous
	// one's bursts can be active.
	for ep := epoch - 1; ep <= epoch; ep++ {
		bs, ok := e.bursts[ep]
		if !ok {
			bs = e.g.scheduleBursts(ep)
			e.bursts[ep] = bs
		}
		for _, b := range bs {
			load += b.at(tNs)
		}
	}
	return load
}

// noise is a multiplicative factor around 1 for one series at one tick.
func (e *evaluator) noise(stream uint64, tick int64) float64 {
	f := e.g.cfg.NoiseFraction
	if f == 0 {
		return 1
	}
	return 1 + f*normal(e.g.cfg.Seed, stream, tick)
}

// loadsAt fills e.loads with every service's request rate at tick:
// propagated in topological order, each callee receiving the sum over its
// callers of caller load × fan-out, then its own noise (call-mix jitter).
func (e *evaluator) loadsAt(tick int64) []float64 {
	g := e.g
	ext := e.external(tick * g.resNs)
	for _, i := range g.order {
		var load float64
		if g.root[i] {
			load = ext
		}
		for _, c := range g.callers[i] {
			load += e.loads[c.node] * c.fanOut
		}
		e.loads[i] = max(0, load*e.noise(g.loadStream[i], tick))
	}
	return e.loads
}

// desiredAt is the controller's recommendation at sync instant j: enough pods
// for the load it sees then, within the profile's bounds.
func (e *evaluator) desiredAt(j int64) []int {
	if d, ok := e.desired[j]; ok {
		return d
	}
	g := e.g
	loads := e.loadsAt(floorDiv(j*g.syncNs, g.resNs))
	d := make([]int, len(loads))
	for i, load := range loads {
		p := g.profiles[i]
		want := math.Ceil(load / p.CapacityPerPod)
		// Compare as floats before converting: load may exceed any int.
		d[i] = int(max(float64(p.MinReplicas), min(float64(p.MaxReplicas), want)))
	}
	e.desired[j] = d
	return d
}

// replicasAt writes the observed replica counts at tick: the largest
// recommendation of the scale-down window that ended Lag ago (scale-up shows
// after Lag, scale-down after Lag + ScaleDownWindow).
func (e *evaluator) replicasAt(tick int64, out []int) {
	g := e.g
	last := floorDiv(tick*g.resNs, g.syncNs) - g.lagSyncs
	clear(out)
	for j := last - g.winSyncs; j <= last; j++ {
		for i, d := range e.desiredAt(j) {
			out[i] = max(out[i], d)
		}
	}
}

// fill computes every service's state at tick into out (node order).
func (e *evaluator) fill(tick int64, out []ServiceState) {
	g := e.g
	replicas := e.replicas
	e.replicasAt(tick, replicas) // before loadsAt: it reuses the scratch loads
	loads := e.loadsAt(tick)
	for i, load := range loads {
		p := g.profiles[i]
		r := float64(replicas[i])
		util := load / (r * g.saturationPerPod[i])
		serviceTime := 1 / g.saturationPerPod[i]
		// M/M/1 per pod; capped below saturation so an overload reads as a
		// large but finite latency.
		latency := serviceTime / (1 - min(util, maxUtilisation)) * e.noise(g.latencyStream[i], tick)
		out[i] = ServiceState{
			Service:        g.services[i],
			Requests:       load,
			CPUCores:       (load*p.WorkPerRequest + r*p.IdleCoresPerPod) * e.noise(g.cpuStream[i], tick),
			MemoryBytes:    r*p.MemoryBytesPerPod + load*p.MemoryBytesPerRPS,
			LatencySeconds: latency,
			Replicas:       replicas[i],
			Utilisation:    util,
		}
	}
}

// evict drops cached schedules and recommendations that instants at or after
// tick can no longer need, so a long Series runs in bounded memory.
func (e *evaluator) evict(tick int64) {
	g := e.g
	tNs := tick * g.resNs
	if len(e.desired) > int(4*(g.lagSyncs+g.winSyncs+1)) {
		low := floorDiv(tNs, g.syncNs) - g.lagSyncs - g.winSyncs
		for j := range e.desired {
			if j < low {
				delete(e.desired, j)
			}
		}
	}
	if g.cfg.Bursts.PerHour > 0 && len(e.bursts) > 4 {
		low := floorDiv(tNs, int64(g.cfg.Bursts.Epoch)) - 1
		for ep := range e.bursts {
			if ep < low {
				delete(e.bursts, ep)
			}
		}
	}
}

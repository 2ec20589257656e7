package workload

import (
	"fmt"
	"math"
	"math/rand/v2"
	"strconv"
	"strings"
	"time"
)

// paramKind says how a generator parameter's value is parsed and checked.
type paramKind int

const (
	rateParam     paramKind = iota // requests per second, 0..MaxRate
	durationParam                  // a Go duration, whole seconds, 1s..MaxDuration
	fractionParam                  // a number in 0..1
)

// param is one key a generator accepts. Durations are held in seconds.
type param struct {
	key  string
	kind paramKind
	def  float64
	// defFor, when set, gives the default from the generated length in
	// seconds, for parameters whose only sensible default depends on it.
	defFor func(seconds int) float64
}

// generator makes n one-second values from its resolved parameters. check
// rejects combinations that single-parameter checks cannot see; bursts draws
// its random numbers from its own stream so that adding noise does not move
// the bursts.
type generator struct {
	name   string
	params []param
	check  func(p map[string]float64, seconds int) error
	fill   func(p map[string]float64, n int, bursts *rand.Rand) []float64
}

// noiseParam is accepted by every generator: the relative standard deviation
// of the per-second noise, 0 (the default) for none.
var noiseParam = param{key: "noise", kind: fractionParam}

// generators in the order they are listed to users. The defaults keep every
// one within 50..400 req/s, the range of the Autothrottle traces.
var generators = []generator{
	{
		name: "step",
		params: []param{
			{key: "low", kind: rateParam, def: 50},
			{key: "high", kind: rateParam, def: 200},
			// Halfway, so the bare name shows both levels at any Duration.
			{key: "at", kind: durationParam, defFor: func(seconds int) float64 { return float64(seconds / 2) }},
		},
		check: func(p map[string]float64, seconds int) error {
			if p["at"] <= 0 || p["at"] >= float64(seconds) {
				return fmt.Errorf("at=%s must fall strictly inside the generated %s so both levels appear",
					formatSeconds(p["at"]), formatSeconds(float64(seconds)))
			}
			return nil
		},
		fill: func(p map[string]float64, n int, _ *rand.Rand) []float64 {
			v := make([]float64, n)
			for t := range v {
				v[t] = p["low"]
				if float64(t) >= p["at"] {
					v[t] = p["high"]
				}
			}
			return v
		},
	},
	{
		name: "sinusoidal",
		params: []param{
			{key: "base", kind: rateParam, def: 150},
			{key: "amplitude", kind: rateParam, def: 100},
			{key: "period", kind: durationParam, def: (20 * time.Minute).Seconds()},
		},
		check: func(p map[string]float64, _ int) error {
			if p["amplitude"] > p["base"] {
				return fmt.Errorf("amplitude=%g is over base=%g: the rate would go negative",
					p["amplitude"], p["base"])
			}
			return nil
		},
		fill: func(p map[string]float64, n int, _ *rand.Rand) []float64 {
			v := make([]float64, n)
			for t := range v {
				v[t] = p["base"] + p["amplitude"]*math.Sin(2*math.Pi*float64(t)/p["period"])
			}
			return v
		},
	},
	{
		name: "low-high",
		params: []param{
			{key: "low", kind: rateParam, def: 50},
			{key: "high", kind: rateParam, def: 250},
			// One full cycle: low for the first half (rounded down), high
			// for the rest.
			{key: "period", kind: durationParam, def: (10 * time.Minute).Seconds()},
		},
		check: func(p map[string]float64, _ int) error {
			if p["period"] < 2 {
				return fmt.Errorf("period=%s must be at least 2s: one second of each plateau", formatSeconds(p["period"]))
			}
			return nil
		},
		fill: func(p map[string]float64, n int, _ *rand.Rand) []float64 {
			period := int(p["period"])
			v := make([]float64, n)
			for t := range v {
				v[t] = p["low"]
				if t%period >= period/2 {
					v[t] = p["high"]
				}
			}
			return v
		},
	},
	{
		name: "bursty",
		params: []param{
			{key: "base", kind: rateParam, def: 100},
			{key: "height", kind: rateParam, def: 200},
			{key: "every", kind: durationParam, def: (5 * time.Minute).Seconds()},
			{key: "length", kind: durationParam, def: time.Minute.Seconds()},
		},
		check: func(p map[string]float64, _ int) error {
			if p["length"] > p["every"] {
				return fmt.Errorf("length=%s is longer than every=%s: bursts would overlap",
					formatSeconds(p["length"]), formatSeconds(p["every"]))
			}
			return nil
		},
		// Each window of `every` seconds holds exactly one burst of base+height
		// for `length` seconds, at a seeded uniform offset: the burst count
		// is fixed by the spec, their timing is random, and they never
		// overlap. A burst in the last window may be cut off by the end.
		fill: func(p map[string]float64, n int, bursts *rand.Rand) []float64 {
			every, length := int(p["every"]), int(p["length"])
			v := make([]float64, n)
			for t := range v {
				v[t] = p["base"]
			}
			for start := 0; start < n; start += every {
				// One draw per window whether or not the burst fits, so a
				// longer trace keeps the same earlier bursts.
				from := start + bursts.IntN(every-length+1)
				for t := from; t < from+length && t < n; t++ {
					v[t] = p["base"] + p["height"]
				}
			}
			return v
		},
	},
}

// Generators returns the generator names accepted by Generate, in the order
// they are documented.
func Generators() []string {
	names := make([]string, len(generators))
	for i, g := range generators {
		names[i] = g.name
	}
	return names
}

func generatorList() string { return strings.Join(Generators(), ", ") }

func lookupGenerator(name string) (*generator, bool) {
	for i := range generators {
		if generators[i].name == name {
			return &generators[i], true
		}
	}
	return nil, false
}

// Stream constants for the seeded generators: bursts and noise come from
// separate streams of the same seed, so one can change without the other.
const (
	burstStream = 0x6275727374 // "burst"
	noiseStream = 0x6e6f697365 // "noise"
)

// Generate makes a synthetic trace from a spec "name" or
// "name:key=value,key=value":
//
//	step        low then high          step:low=50,high=200,at=10m (at defaults to half the trace)
//	sinusoidal  base ± amplitude       sinusoidal:base=150,amplitude=100,period=20m
//	low-high    alternating plateaus   low-high:low=50,high=250,period=10m (period = one low+high cycle)
//	bursty      base plus bursts       bursty:base=100,height=200,every=5m,length=1m
//
// Every parameter has a default, so the bare name works. Rates are in
// requests per second; durations are Go durations in whole seconds. Every
// generator also takes noise=F (default 0): each second is multiplied by
// 1+F·z, z standard normal clamped to ±3, so the fluctuation grows with the
// rate as arrivals' (Poisson) noise does; the result is clamped at 0. Noise
// and bursts are seeded by Options.Seed: the same spec and seed give the same
// trace.
//
// The trace is Options.Duration long (default 1 h). With Compress c the
// generator runs c times as long in its own time and is averaged down, just
// as a file is, so periods and burst lengths are in the original time.
// Unknown generator or key, or a bad value: an error naming the key.
func Generate(spec string, o Options) (*Trace, error) {
	s, err := o.resolve(true)
	if err != nil {
		return nil, fmt.Errorf("generate %q: %w", spec, err)
	}
	name, rest, hasParams := strings.Cut(strings.TrimSpace(spec), ":")
	name = strings.TrimSpace(name)
	g, ok := lookupGenerator(name)
	if !ok {
		return nil, fmt.Errorf("%w %q (generators: %s)", ErrUnknownGenerator, name, generatorList())
	}
	// Generated in original time: Duration·Compress seconds, averaged down.
	raw := math.Ceil(float64(s.seconds) * s.compress)
	if raw > float64(maxSeconds) {
		return nil, fmt.Errorf("generate %q: %w: Duration %v × Compress %g is over the %v limit for generated load",
			spec, ErrTooLarge, time.Duration(s.seconds)*time.Second, s.compress, MaxDuration)
	}
	n := int(raw)
	p, err := g.parse(rest, hasParams, n)
	if err != nil {
		return nil, err
	}
	seed := uint64(s.seed)
	values := g.fill(p, n, rand.New(rand.NewPCG(seed, burstStream)))
	if noise := p["noise"]; noise > 0 {
		rng := rand.New(rand.NewPCG(seed, noiseStream))
		for t, v := range values {
			z := max(-3, min(3, rng.NormFloat64()))
			values[t] = max(0, v*(1+noise*z))
		}
	}
	return finish(g.canonical(p), values, 1, s)
}

// parse resolves the spec's parameters over defaults for a trace of seconds.
func (g *generator) parse(rest string, hasParams bool, seconds int) (map[string]float64, error) {
	all := append(append([]param(nil), g.params...), noiseParam)
	p := make(map[string]float64, len(all))
	seen := make(map[string]bool, len(all))
	keys := make([]string, len(all))
	for i, pr := range all {
		keys[i] = pr.key
	}
	if hasParams && strings.TrimSpace(rest) != "" {
		for item := range strings.SplitSeq(rest, ",") {
			key, value, ok := strings.Cut(strings.TrimSpace(item), "=")
			key, value = strings.TrimSpace(key), strings.TrimSpace(value)
			if !ok || key == "" {
				return nil, fmt.Errorf("%w: %s: %q is not key=value", ErrBadSpec, g.name, strings.TrimSpace(item))
			}
			if seen[key] {
				return nil, fmt.Errorf("%w: %s: key %q given twice", ErrBadSpec, g.name, key)
			}
			seen[key] = true
			pr, found := findParam(all, key)
			if !found {
				return nil, fmt.Errorf("%w: %s: unknown key %q (keys: %s)", ErrBadSpec, g.name, key, strings.Join(keys, ", "))
			}
			v, err := pr.parse(value)
			if err != nil {
				return nil, fmt.Errorf("%w: %s: key %s=%q: %w", ErrBadSpec, g.name, key, value, err)
			}
			p[key] = v
		}
	}
	for _, pr := range all {
		if _, set := p[pr.key]; set {
			continue
		}
		p[pr.key] = pr.def
		if pr.defFor != nil {
			p[pr.key] = pr.defFor(seconds)
		}
	}
	if err := g.check(p, seconds); err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrBadSpec, g.name, err)
	}
	return p, nil
}

func findParam(ps []param, key string) (param, bool) {
	for _, pr := range ps {
		if pr.key == key {
			return pr, true
		}
	}
	return param{}, false
}

// parse reads one value of the parameter's kind.
func (pr param) parse(value string) (float64, error) {
	if pr.kind == durationParam {
		d, err := time.ParseDuration(value)
		if err != nil {
			return 0, fmt.Errorf("want a duration such as 10m: %w", err)
		}
		switch {
		case d < time.Second:
			return 0, fmt.Errorf("%v is under one second", d)
		case d > MaxDuration:
			return 0, fmt.Errorf("%v is over the %v limit", d, MaxDuration)
		case d%time.Second != 0:
			// The trace has one value per second, so a fraction could not be honoured.
			return 0, fmt.Errorf("%v is not a whole number of seconds", d)
		}
		return d.Seconds(), nil
	}
	v, err := strconv.ParseFloat(value, 64)
	switch {
	case err != nil || math.IsNaN(v) || math.IsInf(v, 0):
		return 0, fmt.Errorf("want a finite number")
	case v < 0:
		return 0, fmt.Errorf("must be >= 0")
	case pr.kind == fractionParam && v > 1:
		return 0, fmt.Errorf("must be between 0 and 1")
	case v > MaxRate:
		return 0, fmt.Errorf("over the %g req/s limit", float64(MaxRate))
	}
	return v, nil
}

// canonical is the spec with every parameter resolved, in declaration order,
// so a report names exactly what was generated (defaults included).
func (g *generator) canonical(p map[string]float64) string {
	var b strings.Builder
	b.WriteString(g.name)
	for i, pr := range append(append([]param(nil), g.params...), noiseParam) {
		sep := ","
		if i == 0 {
			sep = ":"
		}
		value := strconv.FormatFloat(p[pr.key], 'g', -1, 64)
		if pr.kind == durationParam {
			value = formatSeconds(p[pr.key])
		}
		b.WriteString(sep + pr.key + "=" + value)
	}
	return b.String()
}

// formatSeconds writes whole seconds as a short Go duration: 10m, not 10m0s.
func formatSeconds(sec float64) string {
	s := (time.Duration(sec) * time.Second).String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}

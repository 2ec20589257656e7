// Package workload provides the load that a trace-driven simulation replays:
// the request rate arriving at the application's entry service, one value per
// second.
//
// A workload comes either from a recorded trace file (Load) or from a
// synthetic generator spec such as "sinusoidal:period=20m" (Generate); Open
// picks one of the two for a command-line argument. Both return a Trace whose
// Step is one second, so a simulator never has to know where its load came
// from.
//
// Every workload goes through the same pipeline: the source's values (held
// constant over the interval each one covers), time compression by averaging
// (Options.Compress), truncation (Options.Duration), then scaling
// (Options.Scale). Inputs are bounded (file size, trace length, parameter
// ranges) so that a typo cannot make the simulator allocate without limit.
package workload

import (
	"errors"
	"fmt"
	"io/fs"
	"math"
	"os"
	"strings"
	"time"
)

// Limits on inputs. They are far above any real use and exist so that a wrong
// flag fails with a clear error instead of exhausting memory.
const (
	// MaxDuration is the longest trace produced, after compression and
	// truncation (one float64 per second: about 20 MiB).
	MaxDuration = 30 * 24 * time.Hour
	// MaxFileSize is the largest trace file Load reads: a 30-day per-second
	// trace of six-digit rates is about 18 MiB.
	MaxFileSize = 32 << 20
	// MaxCompress is the strongest time compression: one day of the original
	// per simulated second.
	MaxCompress = 86400
	// MaxScale bounds Options.Scale so scaled rates stay finite.
	MaxScale = 1e6
	// MaxRate bounds a single rate, in requests per second, in a file or a
	// generator spec: nothing real comes near it and it keeps sums finite.
	MaxRate = 1e12
)

// maxSeconds is MaxDuration as a count of one-second values.
const maxSeconds = int(MaxDuration / time.Second)

// Errors that callers (and tests) can test with errors.Is. Every returned
// error wraps one of these with the details: the file and line, or the
// generator and key.
var (
	ErrEmpty            = errors.New("no values")
	ErrSyntax           = errors.New("not a number")
	ErrNegative         = errors.New("negative value")
	ErrNotFinite        = errors.New("not a finite number")
	ErrMixedFormats     = errors.New("mixed formats")
	ErrTimestamp        = errors.New("unparseable timestamp")
	ErrSpacing          = errors.New("timestamps not one minute apart")
	ErrTooLarge         = errors.New("input too large")
	ErrOptions          = errors.New("invalid workload options")
	ErrUnknownGenerator = errors.New("unknown generator")
	ErrBadSpec          = errors.New("bad generator spec")
)

// Trace is the request rate at the entry service, one value per Step.
type Trace struct {
	Name string        // file base name or generator spec
	Step time.Duration // always 1 s after Load/Generate
	RPS  []float64     // requests per second, finite, >= 0
}

// Duration is how long the trace plays: one Step per value.
func (t *Trace) Duration() time.Duration {
	return time.Duration(len(t.RPS)) * t.Step
}

// Peak is the highest rate in the trace, 0 for an empty trace.
func (t *Trace) Peak() float64 {
	peak := 0.0 // rates are >= 0, so 0 is a safe floor
	for _, v := range t.RPS {
		peak = max(peak, v)
	}
	return peak
}

// Mean is the average rate over the trace, 0 for an empty trace.
func (t *Trace) Mean() float64 {
	if len(t.RPS) == 0 {
		return 0
	}
	sum := 0.0
	for _, v := range t.RPS {
		sum += v
	}
	return sum / float64(len(t.RPS))
}

// Options transform a trace after reading.
type Options struct {
	Scale float64 // multiply every value (default 1); must be > 0
	// Compress is time compression >= 1: 60 plays one minute of the original
	// per second (values are averaged over each compressed second, rates
	// unchanged); default 1. Non-integer factors are averaged with fractional
	// weights.
	Compress float64
	// Duration is, for generators, how long the generated trace is (default
	// 1 h); for trace files, a truncation when > 0. Either way it is measured
	// after compression, i.e. in simulated time, and it is whole seconds
	// (rounded down).
	Duration time.Duration
	Seed     int64 // for generators with randomness
	// Step is, for one-number-per-line files only, the time that each line
	// covers (default 1 s): 5*time.Second reads a value-every-5-s file such as
	// a Locust user curve. Each value is held for its Step, like a per-minute
	// CSV count. It must be unset for generators, and unset or one minute for
	// CSV files, whose step comes from their timestamps.
	Step time.Duration
}

// settings are Options validated, with defaults filled in.
type settings struct {
	scale    float64
	compress float64
	seconds  int // output length cap in seconds; 0 means none (files only)
	step     time.Duration
	seed     int64
}

// defaultGeneratedDuration is how long a generated trace is by default.
const defaultGeneratedDuration = time.Hour

// resolve validates o. For a generator, a zero Duration means one hour; for a
// file it means the whole file.
func (o Options) resolve(generator bool) (settings, error) {
	s := settings{scale: o.Scale, compress: o.Compress, step: o.Step, seed: o.Seed}
	if s.scale == 0 {
		s.scale = 1
	}
	// Written as !(x in range) so that NaN fails too.
	if !(s.scale > 0 && s.scale <= MaxScale) {
		return s, fmt.Errorf("%w: Scale %v must be > 0 and <= %g", ErrOptions, o.Scale, float64(MaxScale))
	}
	if s.compress == 0 {
		s.compress = 1
	}
	if !(s.compress >= 1 && s.compress <= MaxCompress) {
		return s, fmt.Errorf("%w: Compress %v must be between 1 and %d", ErrOptions, o.Compress, MaxCompress)
	}
	d := o.Duration
	if d == 0 && generator {
		d = defaultGeneratedDuration
	}
	switch {
	case d < 0:
		return s, fmt.Errorf("%w: Duration %v is negative", ErrOptions, d)
	case d > MaxDuration:
		return s, fmt.Errorf("%w: Duration %v is over the %v limit", ErrOptions, d, MaxDuration)
	case d > 0 && d < time.Second:
		return s, fmt.Errorf("%w: Duration %v is under one second, the length of one value", ErrOptions, d)
	}
	s.seconds = int(d / time.Second)
	if generator && s.step != 0 {
		return s, fmt.Errorf("%w: Step %v applies to trace files only; generators make one value per second", ErrOptions, s.step)
	}
	if s.step == 0 {
		s.step = time.Second
	}
	// A line may cover less than a second (values are averaged) but not less
	// than a millisecond, which keeps the averaging loop bounded.
	if s.step < time.Millisecond || s.step > 24*time.Hour {
		return s, fmt.Errorf("%w: Step %v must be between 1ms and 24h", ErrOptions, o.Step)
	}
	return s, nil
}

// finish turns source values, each held for stepSeconds, into the output
// trace: compress, truncate, scale. It errors when the result would be longer
// than MaxDuration.
func finish(name string, values []float64, stepSeconds float64, s settings) (*Trace, error) {
	total := float64(len(values)) * stepSeconds / s.compress
	// The epsilon keeps float rounding (e.g. 3·(1/3)) from adding a sliver
	// of a second as an extra value.
	n := int(math.Ceil(total - 1e-9))
	if s.seconds > 0 && n > s.seconds {
		n = s.seconds
	}
	if n > maxSeconds {
		return nil, fmt.Errorf("%w: %s plays for %v after compression, over the %v limit (set Compress or Duration)",
			ErrTooLarge, name, time.Duration(total*float64(time.Second)).Round(time.Second), MaxDuration)
	}
	rps := resample(values, stepSeconds, s.compress, n)
	if s.scale != 1 {
		for i := range rps {
			rps[i] *= s.scale
		}
	}
	return &Trace{Name: name, Step: time.Second, RPS: rps}, nil
}

// resample returns n one-second values of the piecewise-constant signal
// values (value j holds over [j·step, (j+1)·step) original seconds) with time
// compressed by c: output second i is the time-weighted mean of the original
// over [i·c, (i+1)·c), clipped to the end of the signal so the last, partial
// second averages only what exists. It runs in O(len(values)+n).
func resample(values []float64, step, c float64, n int) []float64 {
	out := make([]float64, n)
	end := float64(len(values)) * step
	j := 0
	for i := range out {
		lo := float64(i) * c
		hi := min(float64(i+1)*c, end)
		// Skip source values that end before this window; j only moves
		// forward, so the whole loop is linear.
		for j < len(values) && float64(j+1)*step <= lo {
			j++
		}
		sum := 0.0
		for k := j; k < len(values) && float64(k)*step < hi; k++ {
			a := max(lo, float64(k)*step)
			b := min(hi, float64(k+1)*step)
			sum += values[k] * (b - a)
		}
		out[i] = sum / (hi - lo)
	}
	return out
}

// Open is what the command calls with --trace: if arg names an existing file,
// Load it; else if it parses as a generator spec, Generate; else an error that
// says both (file not found, not a generator; list the generators).
//
// A file wins over a generator of the same name, so a trace file called
// "step" in the working directory is loaded, not generated. An arg whose name
// part is a generator but whose parameters are wrong gets the generator's
// error, since it was clearly meant as a spec.
func Open(arg string, o Options) (*Trace, error) {
	if strings.TrimSpace(arg) == "" {
		return nil, fmt.Errorf("trace: empty argument: want a trace file or a generator spec (generators: %s)", generatorList())
	}
	info, statErr := os.Stat(arg)
	if statErr == nil {
		if info.IsDir() {
			return nil, fmt.Errorf("trace %q is a directory, not a trace file", arg)
		}
		return Load(arg, o)
	}
	name, _, _ := strings.Cut(arg, ":")
	if _, ok := lookupGenerator(strings.TrimSpace(name)); ok {
		return Generate(arg, o)
	}
	if !errors.Is(statErr, fs.ErrNotExist) {
		// The file may exist but be unreadable: say so rather than only
		// "not a generator".
		return nil, fmt.Errorf("trace %q: %w", arg, statErr)
	}
	return nil, fmt.Errorf("trace %q: no such file (%w), and not a generator spec (%w: generators: %s)",
		arg, statErr, ErrUnknownGenerator, generatorList())
}

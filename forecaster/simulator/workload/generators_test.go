package workload

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"testing"
	"time"
)

func generate(t *testing.T, spec string, o Options) *Trace {
	t.Helper()
	tr, err := Generate(spec, o)
	if err != nil {
		t.Fatalf("Generate(%q): %v", spec, err)
	}
	return tr
}

// The bare names work: one hour of one-second values, all inside the range
// of the Autothrottle traces (50..400 req/s), named by their resolved spec.
func TestGeneratorDefaults(t *testing.T) {
	if got, want := Generators(), []string{"step", "sinusoidal", "low-high", "bursty"}; !slices.Equal(got, want) {
		t.Fatalf("Generators() = %v, want %v", got, want)
	}
	wantNames := map[string]string{
		"step":       "step:low=50,high=200,at=30m,noise=0",
		"sinusoidal": "sinusoidal:base=150,amplitude=100,period=20m,noise=0",
		"low-high":   "low-high:low=50,high=250,period=10m,noise=0",
		"bursty":     "bursty:base=100,height=200,every=5m,length=1m,noise=0",
	}
	for _, name := range Generators() {
		t.Run(name, func(t *testing.T) {
			tr := generate(t, name, Options{})
			if len(tr.RPS) != 3600 || tr.Step != time.Second || tr.Duration() != time.Hour {
				t.Fatalf("%d values of %v, want 3600 of 1s (default Duration 1h)", len(tr.RPS), tr.Step)
			}
			if tr.Name != wantNames[name] {
				t.Errorf("name %q, want %q (every default spelled out)", tr.Name, wantNames[name])
			}
			for i, v := range tr.RPS {
				if v < 50 || v > 400 {
					t.Fatalf("second %d: %v outside 50..400", i, v)
				}
			}
		})
	}
}

// Each generator's shape, checked against its definition.
func TestGeneratorShapes(t *testing.T) {
	tests := []struct {
		spec  string
		opts  Options
		check func(v []float64) string // "" when the shape is right
		why   string
	}{
		{"step:low=50,high=200,at=10m", Options{}, func(v []float64) string {
			for i, x := range v {
				if want := map[bool]float64{true: 50, false: 200}[i < 600]; x != want {
					return fmt.Sprintf("second %d is %v", i, x)
				}
			}
			return ""
		}, "50 for the first 600 s, then 200"},
		{"step:low=300,high=60", Options{Duration: 10 * time.Second}, func(v []float64) string {
			if !slices.Equal(v, []float64{300, 300, 300, 300, 300, 60, 60, 60, 60, 60}) {
				return fmt.Sprint("got ", v)
			}
			return ""
		}, "a step down is allowed; at defaults to half of the 10 s"},
		{"sinusoidal:base=150,amplitude=100,period=20m", Options{}, func(v []float64) string {
			lo, hi := slices.Min(v), slices.Max(v)
			if lo < 50 || hi > 250 || lo > 50.01 || hi < 249.99 {
				return fmt.Sprintf("range %v..%v", lo, hi)
			}
			if m := (&Trace{RPS: v}).Mean(); math.Abs(m-150) > 1e-9 {
				return fmt.Sprint("mean ", m)
			}
			if math.Abs(v[300]-250) > 1e-9 || math.Abs(v[1200]-150) > 1e-9 {
				return fmt.Sprintf("peak at %v, full period at %v", v[300], v[1200])
			}
			return ""
		}, "swings over exactly 50..250, peaks a quarter period in, and averages to base over whole periods"},
		{"low-high:low=50,high=250,period=10m", Options{}, func(v []float64) string {
			for i, x := range v {
				want := 50.0
				if i%600 >= 300 {
					want = 250
				}
				if x != want {
					return fmt.Sprintf("second %d is %v", i, x)
				}
			}
			return ""
		}, "300 s low then 300 s high, six cycles in an hour"},
		{"low-high:low=1,high=2,period=3s", Options{Duration: 6 * time.Second}, func(v []float64) string {
			if !slices.Equal(v, []float64{1, 2, 2, 1, 2, 2}) {
				return fmt.Sprint("got ", v)
			}
			return ""
		}, "an odd period gives the low plateau the shorter half"},
		{"bursty:base=100,height=200,every=5m,length=1m", Options{Seed: 7}, func(v []float64) string {
			for w := 0; w < len(v); w += 300 {
				first, count := -1, 0
				for i, x := range v[w : w+300] {
					switch x {
					case 300:
						if first < 0 {
							first = i
						}
						count++
					case 100:
					default:
						return fmt.Sprintf("second %d is %v", w+i, x)
					}
				}
				if count != 60 || v[w+first+59] != 300 {
					return fmt.Sprintf("window at %d s: %d burst seconds from %d, not one run of 60", w, count, first)
				}
			}
			return ""
		}, "values are base or base+height; each of the 12 windows of 5m holds one contiguous 60 s burst"},
		{"sinusoidal:base=100,amplitude=100,period=2s", Options{Compress: 2, Duration: 5 * time.Second}, func(v []float64) string {
			if !equalValues(v, []float64{100, 100, 100, 100, 100}, 1e-9) {
				return fmt.Sprint("got ", v)
			}
			return ""
		}, "Compress averages generated time: each second averages one whole 2 s period, i.e. base"},
		{"step:low=10,high=20,at=1m", Options{Compress: 60, Duration: 3 * time.Second}, func(v []float64) string {
			if !slices.Equal(v, []float64{10, 20, 20}) {
				return fmt.Sprint("got ", v)
			}
			return ""
		}, "with Compress 60, at=1m is the second simulated second"},
		{"step:low=10,high=20,at=1s", Options{Scale: 2, Duration: 2 * time.Second}, func(v []float64) string {
			if !slices.Equal(v, []float64{20, 40}) {
				return fmt.Sprint("got ", v)
			}
			return ""
		}, "Scale multiplies generated values too"},
	}
	for _, tt := range tests {
		t.Run(tt.spec, func(t *testing.T) {
			if msg := tt.check(generate(t, tt.spec, tt.opts).RPS); msg != "" {
				t.Errorf("%s: %s (want: %s)", tt.spec, msg, tt.why)
			}
		})
	}
}

// The same spec and seed give the same trace; another seed gives another one
// wherever randomness is involved (noise, bursts).
func TestGeneratorSeeds(t *testing.T) {
	for _, spec := range []string{"step:noise=0.05", "sinusoidal:noise=0.05", "low-high:noise=0.05", "bursty", "bursty:noise=0.05"} {
		t.Run(spec, func(t *testing.T) {
			a := generate(t, spec, Options{Seed: 1})
			b := generate(t, spec, Options{Seed: 1})
			c := generate(t, spec, Options{Seed: 2})
			if !slices.Equal(a.RPS, b.RPS) {
				t.Error("seed 1 twice gave different traces: not deterministic")
			}
			if slices.Equal(a.RPS, c.RPS) {
				t.Error("seeds 1 and 2 gave the same trace: the seed is ignored")
			}
		})
	}
	t.Run("no randomness", func(t *testing.T) {
		// Without noise a step has nothing random, so the seed cannot matter.
		if a, b := generate(t, "step", Options{Seed: 1}), generate(t, "step", Options{Seed: 2}); !slices.Equal(a.RPS, b.RPS) {
			t.Error("noiseless step differs by seed")
		}
	})
}

// Noise is relative and bounded: with noise=0.05 each second stays within
// ±15 % (3σ) of the noiseless value, averages out close to it, and the bursts
// stay where they were (separate random streams).
func TestGeneratorNoise(t *testing.T) {
	clean := generate(t, "bursty", Options{Seed: 3})
	noisy := generate(t, "bursty:noise=0.05", Options{Seed: 3})
	sumRatio := 0.0
	for i := range clean.RPS {
		r := noisy.RPS[i] / clean.RPS[i]
		if r < 0.85-1e-12 || r > 1.15+1e-12 {
			t.Fatalf("second %d: noisy/clean = %v, outside ±3σ", i, r)
		}
		if (clean.RPS[i] > 200) != (noisy.RPS[i] > 200) {
			t.Fatalf("second %d: burst moved when noise was added", i)
		}
		sumRatio += r
	}
	if mean := sumRatio / float64(len(clean.RPS)); math.Abs(mean-1) > 0.01 {
		t.Errorf("mean noisy/clean %v, want about 1 (unbiased noise)", mean)
	}
	// noise=1 would push values below zero (1-3σ); they are clamped at 0.
	heavy := generate(t, "sinusoidal:noise=1", Options{Seed: 3})
	if lo := slices.Min(heavy.RPS); lo < 0 {
		t.Errorf("noise=1 gave %v, want >= 0", lo)
	}
}

// Bad specs fail with an error naming the generator and the offending key.
func TestGenerateErrors(t *testing.T) {
	tests := []struct {
		spec string
		opts Options
		want error
		name string // a word the message must contain
		why  string
	}{
		{"nope", Options{}, ErrUnknownGenerator, "bursty", "unknown generator: the message lists the known ones"},
		{"", Options{}, ErrUnknownGenerator, "step", "empty spec"},
		{"step:foo=1", Options{}, ErrBadSpec, `"foo"`, "unknown key, named"},
		{"step:low=abc", Options{}, ErrBadSpec, "low", "not a number"},
		{"step:low=-1", Options{}, ErrBadSpec, "low", "negative rate"},
		{"step:low=NaN", Options{}, ErrBadSpec, "low", "NaN rate"},
		{"step:high=1e13", Options{}, ErrBadSpec, "high", "over MaxRate"},
		{"step:at=banana", Options{}, ErrBadSpec, "at", "not a duration"},
		{"step:at=1500ms", Options{}, ErrBadSpec, "at", "not whole seconds"},
		{"step:at=500ms", Options{}, ErrBadSpec, "at", "under a second"},
		{"step:at=2h", Options{}, ErrBadSpec, "at", "after the end of the 1h trace: no step would appear"},
		{"step:at=800h", Options{}, ErrBadSpec, "at", "over MaxDuration"},
		{"step", Options{Duration: time.Second}, ErrBadSpec, "at", "a one-second trace has no room for a step"},
		{"step:low", Options{}, ErrBadSpec, "low", "not key=value"},
		{"step:=5", Options{}, ErrBadSpec, "=5", "empty key"},
		{"step:low=1,", Options{}, ErrBadSpec, "step", "trailing comma leaves an empty item"},
		{"step:low=1,low=2", Options{}, ErrBadSpec, "low", "key given twice"},
		{"step:noise=2", Options{}, ErrBadSpec, "noise", "noise is a fraction 0..1"},
		{"sinusoidal:amplitude=200", Options{}, ErrBadSpec, "amplitude", "over base=150: negative rates"},
		{"sinusoidal:period=0s", Options{}, ErrBadSpec, "period", "zero period"},
		{"low-high:period=1s", Options{}, ErrBadSpec, "period", "no room for two plateaus"},
		{"bursty:length=10m", Options{}, ErrBadSpec, "length", "a burst longer than its window"},
		{"sinusoidal", Options{Duration: 24 * time.Hour, Compress: 60}, ErrTooLarge, "Compress", "60 days of generated time"},
		{"sinusoidal", Options{Step: time.Second}, ErrOptions, "Step", "Step is for files"},
		{"sinusoidal", Options{Scale: -2}, ErrOptions, "Scale", "bad options are checked for generators too"},
	}
	for _, tt := range tests {
		t.Run(tt.spec, func(t *testing.T) {
			_, err := Generate(tt.spec, tt.opts)
			if !errors.Is(err, tt.want) {
				t.Fatalf("got %v, want %v (%s)", err, tt.want, tt.why)
			}
			if !strings.Contains(err.Error(), tt.name) {
				t.Errorf("error %q does not mention %q (%s)", err, tt.name, tt.why)
			}
		})
	}
}

// Spaces around the name, keys and values are tolerated, and a colon with no
// parameters is the bare name.
func TestGenerateSpecSpacing(t *testing.T) {
	a := generate(t, " step : low = 10 , high=20 ", Options{Duration: 4 * time.Second})
	if !slices.Equal(a.RPS, []float64{10, 10, 20, 20}) || a.Name != "step:low=10,high=20,at=2s,noise=0" {
		t.Errorf("got %v named %q", a.RPS, a.Name)
	}
	b := generate(t, "step:", Options{})
	if b.Name != "step:low=50,high=200,at=30m,noise=0" {
		t.Errorf("step: named %q, want the defaults", b.Name)
	}
}

func TestFormatSeconds(t *testing.T) {
	for sec, want := range map[float64]string{0: "0s", 30: "30s", 600: "10m", 630: "10m30s", 3600: "1h", 5400: "1h30m", 3601: "1h0m1s"} {
		if got := formatSeconds(sec); got != want {
			t.Errorf("formatSeconds(%v) = %q, want %q", sec, got, want)
		}
	}
}

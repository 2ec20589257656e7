package window

import (
	"encoding/binary"
	"math"
	"testing"
	"time"

	"github.com/foresightscale/foresight/forecaster/model"
	"github.com/foresightscale/foresight/forecaster/source"
)

// FuzzBuild feeds arbitrary samples (any times, NaN, ±Inf, 1e41, negative)
// to Build: the model input must always be finite and within ±MaxAbsInput,
// the gap counts consistent, and no sample after the window's end may make
// the input look fresher.
func FuzzBuild(f *testing.F) {
	le := func(vals ...float64) []byte {
		b := make([]byte, 0, 16*len(vals))
		for i, v := range vals {
			b = binary.LittleEndian.AppendUint64(b, uint64(int64(i*30)))
			b = binary.LittleEndian.AppendUint64(b, math.Float64bits(v))
		}
		return b
	}
	f.Add(le(1, 2, 3, 4, 5, 6), uint8(4), 1.0, 1.0)
	f.Add(le(1e41, math.NaN(), math.Inf(1), -5, 1e25, 0), uint8(3), 50.0, 0.001)
	f.Add(le(math.MaxFloat64, -math.MaxFloat64), uint8(1), 0.0, 1e-300)
	f.Add([]byte{}, uint8(6), 0.0, 1.0)
	f.Fuzz(func(t *testing.T, raw []byte, length uint8, mean, std float64) {
		if length == 0 || length > 64 || !(std > 0) || math.IsInf(std, 0) || math.IsNaN(mean) || math.IsInf(mean, 0) {
			return // the manifest's validation refuses such statistics
		}
		end := time.Unix(1_700_000_000, 0).UTC()
		step := 30 * time.Second
		spec := Spec{
			Services: []string{"a", "b"}, Features: []source.Feature{source.Requests},
			Length: int(length), Step: step, MaxCarry: DefaultMaxCarry,
			Norm: map[source.Feature]model.Stats{source.Requests: {Mean: []float64{mean, mean}, Std: []float64{std, std}}},
		}
		// Each 16 bytes: a time offset in seconds from the query start and
		// a value; sorted order is what every source promises, so keep it.
		start := spec.Query("ns", end).Start
		var samples []source.Sample
		var last time.Time
		for i := 0; i+16 <= len(raw) && i < 16*512; i += 16 {
			off := int64(binary.LittleEndian.Uint64(raw[i:])) % int64(2*time.Hour/time.Second)
			at := start.Add(time.Duration(off) * time.Second)
			if at.Before(last) {
				at = last
			}
			last = at
			samples = append(samples, source.Sample{Time: at, Value: math.Float64frombits(binary.LittleEndian.Uint64(raw[i+8:]))})
		}
		w, err := Build(spec, source.Data{source.Requests: {"a": samples}}, end)
		if err != nil {
			t.Fatal(err)
		}
		for i, z := range w.Input {
			if math.IsNaN(z) || math.IsInf(z, 0) || math.Abs(z) > MaxAbsInput {
				t.Fatalf("input[%d] = %v", i, z)
			}
		}
		for n := range spec.Services {
			if w.Carried[0][n]+w.Imputed[0][n] > spec.Length || w.Carried[0][n] < 0 || w.Imputed[0][n] < 0 {
				t.Fatalf("service %d: carried %d + imputed %d over %d steps", n, w.Carried[0][n], w.Imputed[0][n], spec.Length)
			}
			if frac := w.FeatureMissingFraction(0, n); frac < 0 || frac > 1 {
				t.Fatalf("missing fraction %v", frac)
			}
			if ls := w.LastSample[0][n]; ls.After(end) {
				t.Fatalf("last sample %v after the end %v", ls, end)
			}
		}
		if !w.NoData[0][1] || !w.LastSample[0][1].IsZero() {
			t.Fatal("service b has no samples yet looks observed")
		}
	})
}

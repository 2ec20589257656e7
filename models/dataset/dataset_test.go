package dataset

import (
	"math"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/foresightscale/foresight/forecaster/source"
)

var t0 = time.Date(2024, 4, 6, 12, 0, 0, 0, time.UTC)

const step = 30 * time.Second

// series builds samples at steps 0..n-1 with value f(t); NaN marks a gap.
func series(n int, f func(t int) float64) []source.Sample {
	var out []source.Sample
	for t := range n {
		out = append(out, source.Sample{Time: t0.Add(time.Duration(t) * step), Value: f(t)})
	}
	return out
}

func testData() source.Data {
	return source.Data{
		source.Requests: {
			"a": series(10, func(t int) float64 { return float64(t) }),
			"b": series(10, func(t int) float64 {
				if t == 4 {
					return math.NaN()
				}
				return 100
			}),
		},
	}
}

func TestBuildNormaliseAndInput(t *testing.T) {
	d, err := Build(testData(), []string{"a", "b"}, []source.Feature{source.Requests}, t0, t0.Add(9*step), step)
	if err != nil {
		t.Fatal(err)
	}
	if d.Steps != 10 || d.Observed[0][4][1] || !d.Observed[0][5][1] || d.Raw[0][4][1] != 100 {
		t.Fatalf("steps %d, gap observed %v, filled with %v", d.Steps, d.Observed[0][4][1], d.Raw[0][4][1])
	}
	// Statistics from the first 5 steps only: a's mean is 2, not 4.5.
	if err := d.FitNormalization(5); err != nil {
		t.Fatal(err)
	}
	if got := d.Norm[source.Requests]; got.Mean[0] != 2 || math.Abs(got.Std[0]-math.Sqrt(2)) > 1e-12 || got.Std[1] != 1 {
		t.Errorf("stats = %+v; want a mean 2 std √2, b (constant) std 1", got)
	}
	x := d.Input(6, 3) // steps 4,5,6
	want := []float64{(4 - 2) / math.Sqrt(2), 0, (5 - 2) / math.Sqrt(2), 0, (6 - 2) / math.Sqrt(2), 0}
	for i := range want {
		if math.Abs(x[i]-want[i]) > 1e-12 {
			t.Fatalf("input = %v, want %v", x, want)
		}
	}
	if got := d.Origins(3, 2, 0, 10); !slices.Equal(got, []int{2, 3, 4, 5, 6, 7}) {
		t.Errorf("origins = %v", got)
	}
	if got := d.Origins(3, 2, 5, 9); !slices.Equal(got, []int{5, 6}) {
		t.Errorf("origins in [5,9) = %v", got)
	}
}

func TestBuildRefuses(t *testing.T) {
	tests := []struct {
		name     string
		services []string
		end      time.Time
		want     string
	}{
		{"service without data", []string{"a", "nope"}, t0.Add(9 * step), "no requests data for service nope"},
		{"empty range", []string{"a"}, t0, "empty"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Build(testData(), tc.services, []source.Feature{source.Requests}, t0, tc.end, step)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error = %v, want %q", err, tc.want)
			}
		})
	}
	d, _ := Build(testData(), []string{"a"}, []source.Feature{source.Requests}, t0, t0.Add(9*step), step)
	if err := d.FitNormalization(1); err == nil {
		t.Error("statistics from one step accepted")
	}
}

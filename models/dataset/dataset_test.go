package dataset

import (
	"math"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/foresightscale/foresight/forecaster/model"
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

func TestSeasonalInput(t *testing.T) {
	d, err := Build(testData(), []string{"a", "b"}, []source.Feature{source.Requests}, t0, t0.Add(9*step), step)
	if err != nil {
		t.Fatal(err)
	}
	if err := d.FitNormalization(10); err != nil {
		t.Fatal(err)
	}
	s := &model.Seasonal{PeriodSteps: 4, Features: []source.Feature{source.Requests}}
	norm := func(n, step int) float64 { return d.Normalised(0, step, n) }
	tests := []struct {
		name  string
		last  int
		steps []int // the steps of the seasonal block's rows; -1: the window's last step (no season)
	}{
		// Window 2, horizon 1, period 4: the block is steps last-5 .. last-3.
		{"one period back", 8, []int{3, 4, 5}},
		{"history too short", 4, []int{-1, -1, -1}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			x := d.SeasonalInput(tc.last, 2, 1, s)
			if len(x) != (2+3)*2 || !slices.Equal(x[:4], d.Input(tc.last, 2)) {
				t.Fatalf("input %v: want the window %v and 3 seasonal rows", x, d.Input(tc.last, 2))
			}
			for r, st := range tc.steps {
				if st < 0 {
					st = tc.last
				}
				for n := range 2 {
					if got := x[(2+r)*2+n]; got != norm(n, st) {
						t.Errorf("row %d service %d = %v, want step %d's %v", r, n, got, st, norm(n, st))
					}
				}
			}
		})
	}
	if got := d.SeasonalInput(8, 2, 1, nil); !slices.Equal(got, d.Input(8, 2)) {
		t.Errorf("without a season: %v, want the window alone", got)
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

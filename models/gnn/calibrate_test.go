package gnn

import "testing"

// cells makes n validation cells whose actual moves by move from the last
// value, and whose network change predicts change.
func cells(n int, move, change float64) []cell {
	out := make([]cell, n)
	for i := range out {
		out[i] = cell{y: move, last: 0, change: change, w: 1}
	}
	return out
}

func TestConsistentGain(t *testing.T) {
	tests := []struct {
		name string
		cs   []cell
		a    float64
		want bool
	}{
		// Last value errs 1 everywhere; the change 0.5 halves it: a 50 % gain.
		{"large gain in both halves", cells(10, 1, 0.5), 1, true},
		{"no shrinkage kept", cells(10, 1, 0.5), 0, false},
		// A change of 0.1 gains 10 %, under the 15 % prior.
		{"small gain", cells(10, 1, 0.1), 1, false},
		// The gain holds in the first half only.
		{"gain in one period only", append(cells(5, 1, 0.5), cells(5, 1, -0.5)...), 1, false},
		{"too few cells", cells(1, 1, 0.5), 1, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := consistentGain(tc.cs, tc.a); got != tc.want {
				t.Errorf("consistentGain = %v, want %v", got, tc.want)
			}
		})
	}
}

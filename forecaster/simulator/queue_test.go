package simulator

import (
	"math"
	"testing"
)

func TestErlangC(t *testing.T) {
	tests := []struct {
		name string
		c    int
		a    float64
		want float64
	}{
		// M/M/1: an arrival waits with probability ρ.
		{"one server", 1, 0.7, 0.7},
		// Textbook value: c = 2, a = 1 (ρ = 0.5) gives C = 1/3.
		{"two servers", 2, 1, 1.0 / 3},
		// c = 10, a = 8 (ρ = 0.8): C ≈ 0.4092 (Erlang C tables).
		{"ten servers", 10, 8, 0.4092},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := erlangC(tc.c, tc.a); math.Abs(got-tc.want) > 1e-3 {
				t.Errorf("erlangC(%d, %v) = %v, want %v", tc.c, tc.a, got, tc.want)
			}
		})
	}
}

func TestStationQuantile(t *testing.T) {
	const limit = 10.0
	tests := []struct {
		name string
		s    Station
		q    float64
		want float64
	}{
		// M/M/1 sojourn is exponential with rate μ − λ: p99 = ln(100)/(μ − λ).
		{"M/M/1 p99", Station{Servers: 1, Mu: 100, Lambda: 50}, 0.99, math.Log(100) / 50},
		// Median of the same: ln(2)/(μ − λ).
		{"M/M/1 p50", Station{Servers: 1, Mu: 100, Lambda: 50}, 0.5, math.Log(2) / 50},
		// No load: the service time alone, exponential with rate μ.
		{"idle", Station{Servers: 4, Mu: 100, Lambda: 0}, 0.99, math.Log(100) / 100},
		// Saturated or podless stations give the timeout.
		{"saturated", Station{Servers: 2, Mu: 100, Lambda: 200}, 0.99, limit},
		{"no pods", Station{Servers: 0, Mu: 100, Lambda: 1}, 0.5, limit},
		// A backlog of 100 requests at 200 req/s adds half a second.
		{"backlog", Station{Servers: 2, Mu: 100, Lambda: 0, Backlog: 100}, 0.99, 0.5 + math.Log(100)/100},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.s.Quantile(tc.q, limit); math.Abs(got-tc.want) > 1e-9+1e-6*tc.want {
				t.Errorf("Quantile(%v) = %v, want %v", tc.q, got, tc.want)
			}
		})
	}
}

// TestMoreServersLessLatency: at the same utilisation, pooling servers
// shortens the tail (the reason a bigger deployment tolerates a higher
// utilisation target).
func TestMoreServersLessLatency(t *testing.T) {
	one := Station{Servers: 1, Mu: 100, Lambda: 80}.Quantile(0.99, 10)
	ten := Station{Servers: 10, Mu: 100, Lambda: 800}.Quantile(0.99, 10)
	if !(ten < one) {
		t.Errorf("p99 with 10 servers %v, with 1 %v: want smaller", ten, one)
	}
}

package queueing

import (
	"math"
	"math/rand/v2"
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

func TestServersFor(t *testing.T) {
	tests := []struct {
		name               string
		lambda, mu, budget float64
		max                int
		want               int
		wantOK             bool
	}{
		// M/M/1 at λ = 50, μ = 100: p99 = ln(100)/50 ≈ 92 ms.
		{"one server enough", 50, 100, 0.1, 10, 1, true},
		// A 50 ms budget needs a second server: M/M/2 at ρ = 0.25 has
		// p99 just above the service time's own ln(100)/100 ≈ 46 ms.
		{"two servers", 50, 100, 0.05, 10, 2, true},
		// The idle service time's p99 (46 ms) is over a 40 ms budget:
		// no pod count helps.
		{"budget below the service time", 10, 100, 0.04, 100, 0, false},
		// 1000 req/s at 100 per server needs more than 10.
		{"max too low", 1000, 100, 0.1, 10, 0, false},
		{"no load", 0, 100, 0.1, 10, 1, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := ServersFor(tc.lambda, tc.mu, 0.99, tc.budget, tc.max)
			if got != tc.want || ok != tc.wantOK {
				t.Fatalf("ServersFor = %d, %v; want %d, %v", got, ok, tc.want, tc.wantOK)
			}
			if ok {
				if p99 := (Station{Servers: got, Mu: tc.mu, Lambda: tc.lambda}).Quantile(0.99, 10); p99 > tc.budget {
					t.Errorf("%d servers give p99 %v over the budget %v", got, p99, tc.budget)
				}
				if got > 1 {
					if p99 := (Station{Servers: got - 1, Mu: tc.mu, Lambda: tc.lambda}).Quantile(0.99, 10); p99 <= tc.budget {
						t.Errorf("%d servers would do (p99 %v): not the fewest", got-1, p99)
					}
				}
			}
		})
	}
}

// linearServersFor is the one-by-one scan ServersFor replaced: the reference
// its galloping search must agree with.
func linearServersFor(lambda, mu, q, budget float64, maxServers int) (int, bool) {
	for c := max(int(math.Floor(lambda/mu))+1, 1); c <= maxServers; c++ {
		if (Station{Servers: c, Mu: mu, Lambda: lambda}).Quantile(q, budget*2) <= budget {
			return c, true
		}
	}
	return 0, false
}

func TestServersForMatchesTheLinearScan(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for range 2000 {
		mu := 10 + rng.Float64()*200
		lambda := rng.Float64() * mu * 300
		budget := -math.Log(0.01)/mu*(1.01+rng.Float64()*3) + rng.Float64()*0.05
		maxServers := 1 + rng.IntN(500)
		got, ok := ServersFor(lambda, mu, 0.99, budget, maxServers)
		want, wantOK := linearServersFor(lambda, mu, 0.99, budget, maxServers)
		if got != want || ok != wantOK {
			t.Fatalf("ServersFor(%v, %v, 0.99, %v, %d) = %d, %v; the linear scan says %d, %v", lambda, mu, budget, maxServers, got, ok, want, wantOK)
		}
	}
}

// A load beyond any float-to-int conversion is simply more than maxServers.
func TestServersForHugeLoad(t *testing.T) {
	for _, lambda := range []float64{1e25, 1e300, math.MaxFloat64, math.Inf(1), math.NaN()} {
		if got, ok := ServersFor(lambda, 100, 0.99, 0.1, 1_000_000); ok || got != 0 {
			t.Errorf("ServersFor(%v) = %d, %v; want 0, false", lambda, got, ok)
		}
	}
}

// BenchmarkServersForLargeDeployment: half a million pods, the size a
// clipped 1e25 req/s forecast asks for under a large maxReplicas (one by
// one, this took seconds per decision).
func BenchmarkServersForLargeDeployment(b *testing.B) {
	for b.Loop() {
		if _, ok := ServersFor(5e7, 100, 0.99, 0.047, 1_000_000); !ok {
			b.Fatal("no server count meets the budget")
		}
	}
}

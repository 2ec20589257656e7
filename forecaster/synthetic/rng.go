package synthetic

import (
	"hash/fnv"
	"math"
)

// A counter-based generator: every random number is a hash of (seed, stream,
// a, b), so a value depends on where it is in time, never on how many values
// were drawn before it. That is what makes the world independent of the query
// pattern.

// mix is the splitmix64 finaliser: a bijection that scrambles every bit.
func mix(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9
	x = (x ^ (x >> 27)) * 0x94d049bb133111eb
	return x ^ (x >> 31)
}

// streamID names an independent random stream, e.g. "load/frontend". Using
// the name rather than a node index keeps a service's noise unchanged when
// other services are added to the topology.
func streamID(name string) uint64 {
	h := fnv.New64a()
	h.Write([]byte(name)) // never fails
	return h.Sum64()
}

func hash(seed, stream uint64, a int64, b uint64) uint64 {
	return mix(mix(mix(mix(seed)^stream)^uint64(a)) ^ b)
}

// uniform returns a number in (0, 1), never 0 so that log(u) is finite.
func uniform(seed, stream uint64, a int64, b uint64) float64 {
	return (float64(hash(seed, stream, a, b)>>11) + 0.5) / (1 << 53)
}

// normal returns a standard normal number (Box–Muller), clamped to ±3 so a
// multiplicative noise factor 1+f·z with f ≤ 0.3 stays positive.
func normal(seed, stream uint64, a int64) float64 {
	u1 := uniform(seed, stream, a, 0)
	u2 := uniform(seed, stream, a, 1)
	z := math.Sqrt(-2*math.Log(u1)) * math.Cos(2*math.Pi*u2)
	return max(-3, min(3, z))
}

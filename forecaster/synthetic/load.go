package synthetic

import "math"

// burst is one load spike, in nanoseconds since the Unix epoch.
type burst struct {
	start, duration int64
	height          float64
}

// riseFraction is the part of a burst spent ramping up; the rest decays, so
// bursts rise fast and fade slowly, as flash crowds do.
const riseFraction = 0.25

// at is the burst's contribution at time tNs: a raised-cosine rise then a
// raised-cosine decay, continuous with zero slope at both ends.
func (b burst) at(tNs int64) float64 {
	if tNs < b.start || tNs >= b.start+b.duration {
		return 0
	}
	u := float64(tNs-b.start) / float64(b.duration)
	if u < riseFraction {
		return b.height * 0.5 * (1 - math.Cos(math.Pi*u/riseFraction))
	}
	return b.height * 0.5 * (1 + math.Cos(math.Pi*(u-riseFraction)/(1-riseFraction)))
}

// Streams of the burst schedule: one per drawn quantity, so changing how one
// is drawn never shifts the others.
var (
	streamBurstCount    = streamID("bursts/count")
	streamBurstStart    = streamID("bursts/start")
	streamBurstDuration = streamID("bursts/duration")
	streamBurstHeight   = streamID("bursts/height")
)

// scheduleBursts draws the bursts that start in epoch e, from the seed and e
// alone.
func (g *Generator) scheduleBursts(e int64) []burst {
	b := g.cfg.Bursts
	if b.PerHour == 0 {
		return nil
	}
	seed := g.cfg.Seed
	// Poisson count by Knuth's method, bounded by maxBurstsPerEpoch.
	limit := math.Exp(-b.PerHour * b.Epoch.Hours())
	n, p := 0, 1.0
	for n < maxBurstsPerEpoch {
		p *= uniform(seed, streamBurstCount, e, uint64(n))
		if p <= limit {
			break
		}
		n++
	}
	epochNs := int64(b.Epoch)
	minDur, spanDur := float64(b.MinDuration), float64(b.MaxDuration-b.MinDuration)
	out := make([]burst, n)
	for i := range out {
		k := uint64(i)
		out[i] = burst{
			start:    e*epochNs + int64(uniform(seed, streamBurstStart, e, k)*float64(epochNs)),
			duration: int64(minDur + uniform(seed, streamBurstDuration, e, k)*spanDur),
			height:   b.MinHeight + uniform(seed, streamBurstHeight, e, k)*(b.MaxHeight-b.MinHeight),
		}
	}
	return out
}

// diurnal is the smooth daily part of the external load at tNs.
func (g *Generator) diurnal(tNs int64) float64 {
	d := g.cfg.Diurnal
	// Integer modulo keeps the phase exact however far t is from the epoch.
	phase := floorMod(tNs-int64(d.PeakAt), int64(d.Period))
	return d.Base + d.Amplitude*math.Cos(2*math.Pi*float64(phase)/float64(d.Period))
}

func floorDiv(a, b int64) int64 {
	q := a / b
	if (a%b != 0) && ((a < 0) != (b < 0)) {
		q--
	}
	return q
}

func floorMod(a, b int64) int64 { return a - floorDiv(a, b)*b }

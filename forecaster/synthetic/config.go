package synthetic

import (
	"fmt"
	"math"
	"sort"
	"time"
)

// Config describes the synthetic world. Every field has a sane default in
// DefaultConfig; Validate names the first field that is out of range.
type Config struct {
	// Seed selects one world: the same seed gives the same values.
	Seed uint64
	// Resolution is the generator's clock tick: the value at time t is the
	// value at t rounded down to a multiple of Resolution since the Unix epoch,
	// so any query pattern sees the same values.
	Resolution time.Duration
	// Diurnal is the smooth daily shape of the external load.
	Diurnal DiurnalConfig
	// Bursts are short seeded load spikes on top of the diurnal curve.
	Bursts BurstConfig
	// NoiseFraction is the standard deviation of the multiplicative noise on
	// each service's load, CPU and latency (0.03 = 3 %). The noise is clamped
	// to ±3 standard deviations so values never turn negative.
	NoiseFraction float64
	// TargetUtilisation is the pod utilisation at which a pod serves
	// CapacityPerPod; a pod saturates at CapacityPerPod/TargetUtilisation.
	TargetUtilisation float64
	// Replicas is the reactive scaling rule that produces the observed replica
	// counts (an HPA-like controller, not Foresight).
	Replicas ReplicaConfig
	// Services holds per-service profiles by name; services of the topology
	// that are not listed use DefaultService.
	Services map[string]ServiceProfile
	// DefaultService is the profile of any service not in Services.
	DefaultService ServiceProfile
}

// DiurnalConfig is external load = Base + Amplitude·cos(2π(t−PeakAt)/Period),
// in requests per second entering every root service.
type DiurnalConfig struct {
	Period    time.Duration
	Base      float64
	Amplitude float64
	// PeakAt is where in the period the load peaks, measured from the Unix
	// epoch and taken modulo Period (with a 24h period, 15h means 15:00 UTC),
	// so shortening Period alone, as a demo does, stays valid.
	PeakAt time.Duration
}

// BurstConfig describes the seeded bursts. Bursts are drawn per Epoch from the
// seed and the epoch index alone, so a burst is the same whichever range is
// asked for.
type BurstConfig struct {
	// PerHour is the mean number of bursts per hour (Poisson); 0 disables them.
	PerHour float64
	// Epoch is the length of the scheduling blocks; it must be at least
	// MaxDuration so a burst spills over at most into the next epoch.
	Epoch       time.Duration
	MinDuration time.Duration
	MaxDuration time.Duration
	// MinHeight and MaxHeight bound a burst's peak, in req/s added at the roots.
	MinHeight float64
	MaxHeight float64
}

// ReplicaConfig is the reactive rule behind the observed replica series:
// every SyncPeriod the controller wants ceil(load/CapacityPerPod) pods; the
// pods appear Lag later; scale-down waits ScaleDownWindow (the maximum of the
// recommendations in that window wins, as in the HPA).
type ReplicaConfig struct {
	SyncPeriod      time.Duration
	Lag             time.Duration
	ScaleDownWindow time.Duration
}

// ServiceProfile is how one service turns load into resource use.
type ServiceProfile struct {
	// WorkPerRequest is CPU-seconds spent per request.
	WorkPerRequest float64
	// CapacityPerPod is the req/s one pod serves at TargetUtilisation.
	CapacityPerPod float64
	MinReplicas    int
	MaxReplicas    int
	// IdleCoresPerPod is the CPU a pod burns with no traffic.
	IdleCoresPerPod float64
	// MemoryBytesPerPod is a pod's resident baseline.
	MemoryBytesPerPod float64
	// MemoryBytesPerRPS is memory that grows with load (buffers, in-flight
	// requests), in bytes per req/s received.
	MemoryBytesPerRPS float64
}

// Limits that keep every generated value finite and every computation bounded.
const (
	maxNoiseFraction      = 0.3 // with ±3σ clamping the noise factor stays ≥ 0.1
	maxUtilisation        = 0.98
	maxTargetUtilisation  = 0.95
	maxBurstsPerEpoch     = 64
	maxMeanBurstsPerEpoch = 32
	maxReplicaWindowSync  = 1000 // (Lag+ScaleDownWindow)/SyncPeriod
	maxRate               = 1e9  // req/s, for Base, Amplitude and burst heights
	maxWorkPerRequest     = 1e3
	maxBytes              = 1e15
	maxReplicas           = 100000
)

const mib = 1 << 20

// DefaultConfig is the demo world: an Online Boutique shop with 60 ± 40 req/s
// at the frontend over a day, two 1–5 minute bursts an hour, 3 % noise, and
// per-service profiles close to the recorded Online Boutique metrics.
func DefaultConfig() Config {
	return Config{
		Seed:       1,
		Resolution: time.Second,
		Diurnal: DiurnalConfig{
			Period:    24 * time.Hour,
			Base:      60,
			Amplitude: 40,
			PeakAt:    15 * time.Hour,
		},
		Bursts: BurstConfig{
			PerHour:     2,
			Epoch:       time.Hour,
			MinDuration: time.Minute,
			MaxDuration: 5 * time.Minute,
			MinHeight:   20,
			MaxHeight:   80,
		},
		NoiseFraction:     0.03,
		TargetUtilisation: 0.7,
		Replicas: ReplicaConfig{
			SyncPeriod:      15 * time.Second,
			Lag:             30 * time.Second,
			ScaleDownWindow: 5 * time.Minute,
		},
		Services:       onlineBoutiqueProfiles(),
		DefaultService: profile(0.003, 50, 64),
	}
}

func profile(work, capacity, memMiB float64) ServiceProfile {
	return ServiceProfile{
		WorkPerRequest:    work,
		CapacityPerPod:    capacity,
		MinReplicas:       1,
		MaxReplicas:       10,
		IdleCoresPerPod:   0.005,
		MemoryBytesPerPod: memMiB * mib,
		MemoryBytesPerRPS: 128 << 10,
	}
}

// onlineBoutiqueProfiles are sized so that, at the default load, CPU and
// request rates are of the order of the recorded Online Boutique metrics
// (e.g. productcatalogservice ~600 req/s and ~0.5 cores).
func onlineBoutiqueProfiles() map[string]ServiceProfile {
	return map[string]ServiceProfile{
		"frontend":              profile(0.004, 25, 64),
		"productcatalogservice": profile(0.0008, 300, 48),
		"currencyservice":       profile(0.0015, 200, 96),
		"cartservice":           profile(0.0025, 80, 128),
		"recommendationservice": profile(0.006, 50, 96),
		"adservice":             profile(0.002, 100, 192),
		"shippingservice":       profile(0.0025, 60, 32),
		"checkoutservice":       profile(0.02, 10, 32),
		"emailservice":          profile(0.012, 15, 96),
		"paymentservice":        profile(0.006, 20, 96),
	}
}

// ConfigError names the Config field that is out of range.
type ConfigError struct {
	Field  string // e.g. "Diurnal.Amplitude" or `Services["frontend"].CapacityPerPod`
	Reason string
}

func (e *ConfigError) Error() string {
	return fmt.Sprintf("synthetic config: %s %s", e.Field, e.Reason)
}

func bad(field, format string, args ...any) *ConfigError {
	return &ConfigError{Field: field, Reason: fmt.Sprintf(format, args...)}
}

// Validate reports the first field that is out of range as a *ConfigError.
func (c Config) Validate() error {
	if err := c.validate(); err != nil {
		return err
	}
	return nil // a nil *ConfigError must not become a non-nil error
}

func (c Config) validate() *ConfigError {
	if c.Resolution <= 0 {
		return bad("Resolution", "%v must be positive", c.Resolution)
	}
	d := c.Diurnal
	switch {
	case d.Period < c.Resolution:
		return bad("Diurnal.Period", "%v must be at least Resolution %v", d.Period, c.Resolution)
	case !inRange(d.Base, 0, maxRate) || d.Base == 0:
		return bad("Diurnal.Base", "%v must be in (0, %g] req/s", d.Base, maxRate)
	case !inRange(d.Amplitude, 0, d.Base):
		return bad("Diurnal.Amplitude", "%v must be in [0, Diurnal.Base=%v] so load stays non-negative", d.Amplitude, d.Base)
	}
	if err := c.Bursts.validate(); err != nil {
		return err
	}
	if !inRange(c.NoiseFraction, 0, maxNoiseFraction) {
		return bad("NoiseFraction", "%v must be in [0, %v]", c.NoiseFraction, maxNoiseFraction)
	}
	if !inRange(c.TargetUtilisation, 0, maxTargetUtilisation) || c.TargetUtilisation == 0 {
		return bad("TargetUtilisation", "%v must be in (0, %v]", c.TargetUtilisation, maxTargetUtilisation)
	}
	if err := c.Replicas.validate(c.Resolution); err != nil {
		return err
	}
	if err := c.DefaultService.validate(); err != nil {
		err.Field = "DefaultService." + err.Field
		return err
	}
	names := make([]string, 0, len(c.Services))
	for name := range c.Services {
		names = append(names, name)
	}
	sort.Strings(names) // report the same field every time
	for _, name := range names {
		if err := c.Services[name].validate(); err != nil {
			err.Field = fmt.Sprintf("Services[%q].%s", name, err.Field)
			return err
		}
	}
	return nil
}

func (b BurstConfig) validate() *ConfigError {
	switch {
	case !inRange(b.PerHour, 0, math.MaxFloat64):
		return bad("Bursts.PerHour", "%v must be non-negative and finite", b.PerHour)
	case b.PerHour == 0:
		return nil // no bursts: the other fields are unused
	case b.Epoch <= 0:
		return bad("Bursts.Epoch", "%v must be positive", b.Epoch)
	case b.PerHour*b.Epoch.Hours() > maxMeanBurstsPerEpoch:
		return bad("Bursts.PerHour", "%v gives %.1f bursts per Bursts.Epoch %v; at most %d allowed, shorten the epoch",
			b.PerHour, b.PerHour*b.Epoch.Hours(), b.Epoch, maxMeanBurstsPerEpoch)
	case b.MinDuration <= 0:
		return bad("Bursts.MinDuration", "%v must be positive", b.MinDuration)
	case b.MaxDuration < b.MinDuration:
		return bad("Bursts.MaxDuration", "%v must be at least Bursts.MinDuration %v", b.MaxDuration, b.MinDuration)
	case b.MaxDuration > b.Epoch:
		return bad("Bursts.MaxDuration", "%v must not exceed Bursts.Epoch %v", b.MaxDuration, b.Epoch)
	case !inRange(b.MinHeight, 0, maxRate):
		return bad("Bursts.MinHeight", "%v must be in [0, %g] req/s", b.MinHeight, maxRate)
	case !inRange(b.MaxHeight, b.MinHeight, maxRate):
		return bad("Bursts.MaxHeight", "%v must be in [Bursts.MinHeight=%v, %g] req/s", b.MaxHeight, b.MinHeight, maxRate)
	}
	return nil
}

func (r ReplicaConfig) validate(resolution time.Duration) *ConfigError {
	switch {
	case r.SyncPeriod < resolution:
		return bad("Replicas.SyncPeriod", "%v must be at least Resolution %v", r.SyncPeriod, resolution)
	case r.Lag < 0 || r.Lag%r.SyncPeriod != 0:
		return bad("Replicas.Lag", "%v must be a non-negative multiple of Replicas.SyncPeriod %v", r.Lag, r.SyncPeriod)
	case r.ScaleDownWindow < 0 || r.ScaleDownWindow%r.SyncPeriod != 0:
		return bad("Replicas.ScaleDownWindow", "%v must be a non-negative multiple of Replicas.SyncPeriod %v", r.ScaleDownWindow, r.SyncPeriod)
	case (r.Lag+r.ScaleDownWindow)/r.SyncPeriod > maxReplicaWindowSync:
		return bad("Replicas.ScaleDownWindow", "%v plus Replicas.Lag %v spans %d sync periods; at most %d allowed",
			r.ScaleDownWindow, r.Lag, (r.Lag+r.ScaleDownWindow)/r.SyncPeriod, maxReplicaWindowSync)
	}
	return nil
}

// validate names the field relative to the profile; callers prefix it.
func (p ServiceProfile) validate() *ConfigError {
	switch {
	case !inRange(p.WorkPerRequest, 0, maxWorkPerRequest) || p.WorkPerRequest == 0:
		return bad("WorkPerRequest", "%v must be in (0, %g] CPU-seconds", p.WorkPerRequest, float64(maxWorkPerRequest))
	case !inRange(p.CapacityPerPod, 0, maxRate) || p.CapacityPerPod == 0:
		return bad("CapacityPerPod", "%v must be in (0, %g] req/s", p.CapacityPerPod, maxRate)
	case p.MinReplicas < 1:
		return bad("MinReplicas", "%d must be at least 1", p.MinReplicas)
	case p.MaxReplicas < p.MinReplicas || p.MaxReplicas > maxReplicas:
		return bad("MaxReplicas", "%d must be in [MinReplicas=%d, %d]", p.MaxReplicas, p.MinReplicas, maxReplicas)
	case !inRange(p.IdleCoresPerPod, 0, maxWorkPerRequest):
		return bad("IdleCoresPerPod", "%v must be in [0, %g]", p.IdleCoresPerPod, float64(maxWorkPerRequest))
	case !inRange(p.MemoryBytesPerPod, 0, maxBytes):
		return bad("MemoryBytesPerPod", "%v must be in [0, %g]", p.MemoryBytesPerPod, maxBytes)
	case !inRange(p.MemoryBytesPerRPS, 0, maxBytes):
		return bad("MemoryBytesPerRPS", "%v must be in [0, %g]", p.MemoryBytesPerRPS, maxBytes)
	}
	return nil
}

// inRange is lo <= x <= hi, false for NaN.
func inRange(x, lo, hi float64) bool { return x >= lo && x <= hi }

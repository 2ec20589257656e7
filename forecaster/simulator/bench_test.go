package simulator

import (
	"context"
	"testing"

	"github.com/foresightscale/foresight/forecaster/simulator/workload"
)

// BenchmarkSimulateHour: one hour of the bursty trace at 1 s resolution
// through the 10-service Online Boutique (plus the 10-minute warm-up), per
// policy. The target is seconds, not minutes, for all six.
func BenchmarkSimulateHour(b *testing.B) {
	trace, err := workload.Generate("bursty", workload.Options{Seed: 1})
	if err != nil {
		b.Fatal(err)
	}
	m := demoModel(b)
	for _, name := range AllPolicies {
		b.Run(name, func(b *testing.B) {
			for range b.N {
				opts := DefaultCompareOptions()
				opts.Model, opts.Policies = m, []string{name}
				if _, err := Compare(context.Background(), trace, opts); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// Package budget shares a CPU budget between services: when the replicas
// the forecasts ask for would need more CPU than the budget holds (a
// ResourceQuota, or a configured total), it allocates the budget by priority
// and predicted need so that the sum fits, instead of letting the HPAs race
// for the quota and the scheduler pick the losers.
package budget

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"sort"
)

// Config is one shared budget, YAML-configurable under "budgets".
type Config struct {
	// Name identifies the budget in metrics and logs.
	Name string `yaml:"name" json:"name"`
	// TotalCPU is a fixed budget in cores of CPU requests.
	TotalCPU float64 `yaml:"totalCPU,omitempty" json:"totalCPU,omitempty"`
	// ResourceQuota takes the budget from a quota's hard requests.cpu
	// (or cpu) instead, less what the rest of its namespace uses.
	ResourceQuota *QuotaRef `yaml:"resourceQuota,omitempty" json:"resourceQuota,omitempty"`
	// Services are the members, by service name.
	Services map[string]Member `yaml:"services" json:"services"`
}

// QuotaRef names a ResourceQuota.
type QuotaRef struct {
	Namespace string `yaml:"namespace" json:"namespace"`
	Name      string `yaml:"name" json:"name"`
}

// Member is one service of a budget.
type Member struct {
	// CPURequest is one pod's CPU request in cores: what a replica costs.
	CPURequest float64 `yaml:"cpuRequest" json:"cpuRequest"`
	// Priority orders the members: a higher priority gets its whole need
	// before a lower one gets more than its minimum. Equal priorities
	// share in proportion to their shortfall.
	Priority int `yaml:"priority,omitempty" json:"priority,omitempty"`
}

// Validate checks the budgets against the model's services; errors name the field.
func Validate(budgets []Config, services []string) error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	names := map[string]bool{}
	owner := map[string]string{}
	for i, b := range budgets {
		field := fmt.Sprintf("budgets[%d]", i)
		if b.Name == "" {
			bad("%s.name: required", field)
		} else if names[b.Name] {
			bad("%s.name: %q is used twice", field, b.Name)
		}
		names[b.Name] = true
		switch {
		case b.ResourceQuota != nil && b.TotalCPU != 0:
			bad("%s: set totalCPU or resourceQuota, not both", field)
		case b.ResourceQuota != nil:
			if b.ResourceQuota.Namespace == "" || b.ResourceQuota.Name == "" {
				bad("%s.resourceQuota: namespace and name are required", field)
			}
		case !(b.TotalCPU > 0) || math.IsInf(b.TotalCPU, 0):
			bad("%s.totalCPU: must be a positive number of cores (or set resourceQuota), got %v", field, b.TotalCPU)
		}
		if len(b.Services) == 0 {
			bad("%s.services: a budget needs at least one service", field)
		}
		for _, svc := range sortedKeys(b.Services) {
			m := b.Services[svc]
			if !slices.Contains(services, svc) {
				bad("%s.services.%s: not a service of the model (services: %v)", field, svc, services)
			}
			if other, dup := owner[svc]; dup {
				bad("%s.services.%s: already in budget %q; a service belongs to one budget", field, svc, other)
			}
			owner[svc] = b.Name
			if !(m.CPURequest > 0) || math.IsInf(m.CPURequest, 0) {
				bad("%s.services.%s.cpuRequest: must be a pod's CPU request in cores, got %v", field, svc, m.CPURequest)
			}
		}
	}
	return errors.Join(errs...)
}

// Demand is what one member asks for this cycle.
type Demand struct {
	Service string
	// Need is the forecast's replica count; Min the policy's floor, which
	// the budget never cuts into (an HPA would not go below it anyway).
	Need, Min int64
}

// Allocation is the outcome for one budget.
type Allocation struct {
	// Replicas per service, each between its Min and its Need.
	Replicas map[string]int64
	// TotalCPU is the budget, NeededCPU what the needs would cost and
	// AllocatedCPU what the allocation costs, all in cores.
	TotalCPU, NeededCPU, AllocatedCPU float64
	// OverMinimum is true when the members' minimums alone exceed the
	// budget: they are kept, and the budget is overrun.
	OverMinimum bool
}

// Limited reports whether the budget cut service below its need.
func (a Allocation) Limited(d Demand) bool { return a.Replicas[d.Service] < d.Need }

// Allocate fits the demands into total cores. Every member gets its Min;
// then, priority by priority from the highest, members get their whole
// need while it fits. The first priority level that does not fit shares
// what is left in proportion to each member's shortfall (largest
// remainders first), and lower levels stay at their minimum.
func Allocate(cfg Config, total float64, demands []Demand) Allocation {
	a := Allocation{Replicas: make(map[string]int64, len(demands)), TotalCPU: total}
	cost := func(d Demand) float64 { return cfg.Services[d.Service].CPURequest }
	for _, d := range demands {
		need := max(d.Need, d.Min)
		a.Replicas[d.Service] = d.Min
		a.NeededCPU += float64(need) * cost(d)
		a.AllocatedCPU += float64(d.Min) * cost(d)
	}
	if a.AllocatedCPU > total {
		a.OverMinimum = true
		return a
	}

	// Highest priority first; names break ties so the result is stable.
	order := slices.Clone(demands)
	sort.SliceStable(order, func(i, j int) bool {
		pi, pj := cfg.Services[order[i].Service].Priority, cfg.Services[order[j].Service].Priority
		if pi != pj {
			return pi > pj
		}
		return order[i].Service < order[j].Service
	})
	left := total - a.AllocatedCPU
	for start := 0; start < len(order); {
		end := start
		prio := cfg.Services[order[start].Service].Priority
		for end < len(order) && cfg.Services[order[end].Service].Priority == prio {
			end++
		}
		level := order[start:end]
		var want float64
		for _, d := range level {
			want += float64(max(d.Need-d.Min, 0)) * cost(d)
		}
		if want <= left+1e-9 {
			for _, d := range level {
				a.Replicas[d.Service] = max(d.Need, d.Min)
			}
			left -= want
			a.AllocatedCPU += want
			start = end
			continue
		}
		a.AllocatedCPU += share(a.Replicas, level, left, want, cost)
		break
	}
	return a
}

// share gives one priority level the cores left, in proportion to each
// member's shortfall: whole replicas first, then one more replica at a
// time to the largest remainders that still fit. It returns the cores used.
func share(replicas map[string]int64, level []Demand, left, want float64, cost func(Demand) float64) float64 {
	frac := left / want
	type rem struct {
		d    Demand
		part float64
	}
	var rems []rem
	used := 0.0
	for _, d := range level {
		short := float64(max(d.Need-d.Min, 0))
		exact := short * frac
		whole := math.Floor(exact + 1e-9)
		replicas[d.Service] += int64(whole)
		used += whole * cost(d)
		if whole < short {
			rems = append(rems, rem{d, exact - whole})
		}
	}
	sort.SliceStable(rems, func(i, j int) bool { return rems[i].part > rems[j].part })
	for _, r := range rems {
		if c := cost(r.d); used+c <= left+1e-9 {
			replicas[r.d.Service]++
			used += c
		}
	}
	return used
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

package budget

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"

	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"

	"github.com/foresightscale/foresight/forecaster/snapshot"
)

// QuotaGetter reads a ResourceQuota (client-go's Get in production).
type QuotaGetter func(ctx context.Context, namespace, name string) (*corev1.ResourceQuota, error)

// Budgeter applies the configured budgets to each cycle's predictions.
type Budgeter struct {
	budgets  []Config
	getQuota QuotaGetter
	min      func(service string) int64
	log      *slog.Logger
	// lastTotal keeps each quota budget's last readable total, used while
	// the quota cannot be read.
	lastTotal map[string]float64

	cores    *prometheus.GaugeVec
	replicas *prometheus.GaugeVec
	errors   *prometheus.CounterVec
}

// NewBudgeter returns a Budgeter for budgets (already validated). min gives
// each service's minimum replicas; getQuota may be nil when no budget uses a
// ResourceQuota.
func NewBudgeter(budgets []Config, getQuota QuotaGetter, min func(string) int64, reg prometheus.Registerer, log *slog.Logger) (*Budgeter, error) {
	if log == nil {
		log = slog.Default()
	}
	for _, b := range budgets {
		if b.ResourceQuota != nil && getQuota == nil {
			return nil, fmt.Errorf("budget %q reads ResourceQuota %s/%s, but no Kubernetes client is configured (run in a cluster or pass --kubeconfig)",
				b.Name, b.ResourceQuota.Namespace, b.ResourceQuota.Name)
		}
	}
	b := &Budgeter{
		budgets: budgets, getQuota: getQuota, min: min, log: log, lastTotal: map[string]float64{},
		cores: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "foresight_budget_cpu_cores",
			Help: "A shared budget's CPU in cores: total (what the budget holds), needed (what the forecasts ask for), allocated (what the published replicas cost).",
		}, []string{"budget", "kind"}),
		replicas: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "foresight_budget_replicas",
			Help: "Replicas of a budget member: needed (the forecast's count) and allocated (published, after fitting the budget).",
		}, []string{"budget", "service", "kind"}),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "foresight_budget_errors_total",
			Help: "Cycles in which a budget's ResourceQuota could not be read (the last readable total, or none, was used).",
		}, []string{"budget"}),
	}
	if reg != nil {
		for _, c := range []prometheus.Collector{b.cores, b.replicas, b.errors} {
			if err := reg.Register(c); err != nil {
				return nil, fmt.Errorf("registering budget metrics: %w", err)
			}
		}
	}
	return b, nil
}

// Apply fits each budget's fresh predictions into it, lowering
// PredictedReplicas where the budget is short. A budget whose total is
// unknown (its quota never read) leaves the predictions as they are: the
// scheduler and the quota still bound them, and cutting blindly could
// starve a service.
func (b *Budgeter) Apply(ctx context.Context, preds map[string]snapshot.Prediction) {
	for _, cfg := range b.budgets {
		var demands []Demand
		members := 0.0 // cores the members' current pods hold
		membersKnown := true
		for _, svc := range sortedKeys(cfg.Services) {
			// A held prediction is still published, so it still needs its share.
			p, ok := preds[svc]
			if !ok {
				membersKnown = false // its pods hold part of the quota, how much is unknown
				continue
			}
			demands = append(demands, Demand{Service: svc, Need: p.PredictedReplicas, Min: b.min(svc)})
			if math.IsNaN(p.ObservedReplicas) || p.ObservedReplicas < 0 {
				membersKnown = false
			} else {
				members += p.ObservedReplicas * cfg.Services[svc].CPURequest
			}
		}
		if len(demands) == 0 {
			continue
		}
		total, ok := b.total(ctx, cfg, members, membersKnown)
		if !ok {
			continue
		}
		alloc := Allocate(cfg, total, demands)
		b.cores.WithLabelValues(cfg.Name, "total").Set(alloc.TotalCPU)
		b.cores.WithLabelValues(cfg.Name, "needed").Set(alloc.NeededCPU)
		b.cores.WithLabelValues(cfg.Name, "allocated").Set(alloc.AllocatedCPU)
		var limited []string
		for _, d := range demands {
			p := preds[d.Service]
			got := alloc.Replicas[d.Service]
			b.replicas.WithLabelValues(cfg.Name, d.Service, "needed").Set(float64(d.Need))
			b.replicas.WithLabelValues(cfg.Name, d.Service, "allocated").Set(float64(got))
			if alloc.Limited(d) {
				limited = append(limited, fmt.Sprintf("%s %d→%d", d.Service, d.Need, got))
			}
			p.PredictedReplicas = got
			preds[d.Service] = p
		}
		switch {
		case alloc.OverMinimum:
			b.log.Warn("budget smaller than its services' minimum replicas; publishing the minimums",
				"budget", cfg.Name, "totalCPU", alloc.TotalCPU, "minimumCPU", alloc.AllocatedCPU)
		case len(limited) > 0:
			b.log.Info("budget short of the forecast; replicas allocated by priority",
				"budget", cfg.Name, "totalCPU", alloc.TotalCPU, "neededCPU", alloc.NeededCPU, "limited", limited)
		}
	}
}

// total is the budget's cores for its members, and whether it is known.
func (b *Budgeter) total(ctx context.Context, cfg Config, members float64, membersKnown bool) (float64, bool) {
	if cfg.ResourceQuota == nil {
		return cfg.TotalCPU, true
	}
	q := cfg.ResourceQuota
	quota, err := b.getQuota(ctx, q.Namespace, q.Name)
	if err == nil {
		var total float64
		if total, err = quotaTotal(quota, members, membersKnown); err == nil {
			b.lastTotal[cfg.Name] = total
			return total, true
		}
	}
	b.errors.WithLabelValues(cfg.Name).Inc()
	last, ok := b.lastTotal[cfg.Name]
	if ok {
		b.log.Warn("cannot read the budget's ResourceQuota; using its last total", "budget", cfg.Name,
			"quota", q.Namespace+"/"+q.Name, "totalCPU", last, "err", err)
	} else {
		b.log.Warn("cannot read the budget's ResourceQuota and have no earlier total; not constraining its services",
			"budget", cfg.Name, "quota", q.Namespace+"/"+q.Name, "err", err)
	}
	return last, ok
}

// quotaTotal is what a ResourceQuota leaves for the members: its hard CPU
// requests less what the rest of the namespace uses (used minus the
// members' own pods, which the allocation replaces).
func quotaTotal(q *corev1.ResourceQuota, members float64, membersKnown bool) (float64, error) {
	hard, ok := q.Status.Hard[corev1.ResourceRequestsCPU]
	if !ok {
		if hard, ok = q.Status.Hard[corev1.ResourceCPU]; !ok {
			return 0, fmt.Errorf("ResourceQuota %s/%s has no requests.cpu (or cpu) in status.hard", q.Namespace, q.Name)
		}
	}
	used, ok := q.Status.Used[corev1.ResourceRequestsCPU]
	if !ok {
		used = q.Status.Used[corev1.ResourceCPU]
	}
	if !membersKnown {
		return 0, errors.New("the members' current replicas are unknown, so the rest of the namespace's use cannot be told apart")
	}
	others := math.Max(used.AsApproximateFloat64()-members, 0)
	return math.Max(hard.AsApproximateFloat64()-others, 0), nil
}

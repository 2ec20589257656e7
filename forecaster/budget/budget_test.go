package budget

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"math"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/foresightscale/foresight/forecaster/snapshot"
)

// shop: frontend (priority 10, 0.5 core pods) before cart and ads
// (priority 1, 0.25 and 0.5 core pods).
var shop = Config{Name: "shop", TotalCPU: 4, Services: map[string]Member{
	"frontend": {CPURequest: 0.5, Priority: 10},
	"cart":     {CPURequest: 0.25, Priority: 1},
	"ads":      {CPURequest: 0.5, Priority: 1},
}}

func TestAllocate(t *testing.T) {
	tests := []struct {
		name        string
		total       float64
		demands     []Demand
		want        map[string]int64
		wantCPU     float64
		overMinimum bool
	}{
		{name: "everything fits: the needs unchanged", total: 4,
			demands: []Demand{{"frontend", 4, 1}, {"cart", 4, 1}, {"ads", 2, 1}},
			want:    map[string]int64{"frontend": 4, "cart": 4, "ads": 2}, wantCPU: 4},
		{name: "higher priority first, the rest share by shortfall", total: 4,
			// minimums 0.5+0.25+0.5 = 1.25; frontend's extra 5×0.5 = 2.5 fits (left 0.25);
			// cart and ads want 3×0.25 + 3×0.5 = 2.25: a tenth each → 0.3 replicas: the
			// largest remainder that fits (cart, 0.25 core) gets one.
			demands: []Demand{{"frontend", 6, 1}, {"cart", 4, 1}, {"ads", 4, 1}},
			want:    map[string]int64{"frontend": 6, "cart": 2, "ads": 1}, wantCPU: 4},
		{name: "proportional within a level", total: 3.25,
			// frontend at its minimum by need; cart and ads short 8 and 4 replicas
			// (2 and 2 cores) with 2.0 cores left: half each → cart +4, ads +2.
			demands: []Demand{{"frontend", 1, 1}, {"cart", 9, 1}, {"ads", 5, 1}},
			want:    map[string]int64{"frontend": 1, "cart": 5, "ads": 3}, wantCPU: 3.25},
		{name: "top priority short: lower levels keep their minimum", total: 2,
			demands: []Demand{{"frontend", 10, 1}, {"cart", 4, 1}, {"ads", 4, 1}},
			want:    map[string]int64{"frontend": 2, "cart": 1, "ads": 1}, wantCPU: 1.75},
		{name: "minimums above the budget are kept and flagged", total: 1,
			demands: []Demand{{"frontend", 3, 2}, {"cart", 1, 1}, {"ads", 1, 1}},
			want:    map[string]int64{"frontend": 2, "cart": 1, "ads": 1}, wantCPU: 1.75, overMinimum: true},
		{name: "a need below the minimum is raised to it", total: 4,
			demands: []Demand{{"frontend", 1, 2}, {"cart", 1, 1}, {"ads", 1, 1}},
			want:    map[string]int64{"frontend": 2, "cart": 1, "ads": 1}, wantCPU: 1.75},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := Allocate(shop, tt.total, tt.demands)
			for svc, want := range tt.want {
				if a.Replicas[svc] != want {
					t.Errorf("%s: %d replicas, want %d (all: %v)", svc, a.Replicas[svc], want, a.Replicas)
				}
			}
			if math.Abs(a.AllocatedCPU-tt.wantCPU) > 1e-9 || a.OverMinimum != tt.overMinimum {
				t.Errorf("allocated %v cores (over minimum %v), want %v (%v)", a.AllocatedCPU, a.OverMinimum, tt.wantCPU, tt.overMinimum)
			}
			if !tt.overMinimum && a.AllocatedCPU > tt.total+1e-9 {
				t.Errorf("allocated %v cores of a %v budget", a.AllocatedCPU, tt.total)
			}
			var cost float64
			for _, d := range tt.demands {
				r := a.Replicas[d.Service]
				if r < d.Min || r > max(d.Need, d.Min) {
					t.Errorf("%s: %d replicas outside [min %d, need %d]", d.Service, r, d.Min, d.Need)
				}
				cost += float64(r) * shop.Services[d.Service].CPURequest
			}
			if math.Abs(cost-a.AllocatedCPU) > 1e-9 {
				t.Errorf("replicas cost %v cores, AllocatedCPU says %v", cost, a.AllocatedCPU)
			}
		})
	}
}

func TestValidate(t *testing.T) {
	services := []string{"frontend", "cart", "ads"}
	tests := []struct {
		name    string
		budgets []Config
		want    string // "" = valid
	}{
		{"valid total", []Config{shop}, ""},
		{"valid quota", []Config{{Name: "q", ResourceQuota: &QuotaRef{"default", "compute"}, Services: map[string]Member{"cart": {CPURequest: 0.1}}}}, ""},
		{"no name", []Config{{TotalCPU: 1, Services: map[string]Member{"cart": {CPURequest: 0.1}}}}, "budgets[0].name: required"},
		{"no total", []Config{{Name: "x", Services: map[string]Member{"cart": {CPURequest: 0.1}}}}, "budgets[0].totalCPU"},
		{"both totals", []Config{{Name: "x", TotalCPU: 1, ResourceQuota: &QuotaRef{"a", "b"}, Services: map[string]Member{"cart": {CPURequest: 0.1}}}}, "not both"},
		{"quota without name", []Config{{Name: "x", ResourceQuota: &QuotaRef{Namespace: "a"}, Services: map[string]Member{"cart": {CPURequest: 0.1}}}}, "resourceQuota: namespace and name"},
		{"unknown service", []Config{{Name: "x", TotalCPU: 1, Services: map[string]Member{"checkout": {CPURequest: 0.1}}}}, "services.checkout: not a service of the model"},
		{"no cpu request", []Config{{Name: "x", TotalCPU: 1, Services: map[string]Member{"cart": {}}}}, "services.cart.cpuRequest"},
		{"no members", []Config{{Name: "x", TotalCPU: 1}}, "at least one service"},
		{"service in two budgets", []Config{shop, {Name: "other", TotalCPU: 1, Services: map[string]Member{"cart": {CPURequest: 0.1}}}}, `already in budget "shop"`},
		{"same name twice", []Config{shop, {Name: "shop", TotalCPU: 1, Services: map[string]Member{}}}, "used twice"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := Validate(tt.budgets, services)
			if tt.want == "" {
				if err != nil {
					t.Fatalf("valid budgets refused: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %v, want one containing %q", err, tt.want)
			}
		})
	}
}

func quota(hard, used string) *corev1.ResourceQuota {
	return &corev1.ResourceQuota{
		ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "compute"},
		Status: corev1.ResourceQuotaStatus{
			Hard: corev1.ResourceList{corev1.ResourceRequestsCPU: resource.MustParse(hard)},
			Used: corev1.ResourceList{corev1.ResourceRequestsCPU: resource.MustParse(used)},
		},
	}
}

func preds(replicas map[string]int64, observed map[string]float64) map[string]snapshot.Prediction {
	out := map[string]snapshot.Prediction{}
	for svc, r := range replicas {
		o, ok := observed[svc]
		if !ok {
			o = math.NaN()
		}
		out[svc] = snapshot.Prediction{Service: svc, PredictedReplicas: r, ObservedReplicas: o}
	}
	return out
}

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// TestBudgeterWithResourceQuota: the quota's hard 5 cores, 3 of them used,
// 1.5 of those by the members' own pods: the members may use 5 − 1.5 = 3.5.
func TestBudgeterWithResourceQuota(t *testing.T) {
	cfg := shop
	cfg.TotalCPU, cfg.ResourceQuota = 0, &QuotaRef{Namespace: "shop", Name: "compute"}
	var getErr error
	get := func(_ context.Context, ns, name string) (*corev1.ResourceQuota, error) {
		if getErr != nil {
			return nil, getErr
		}
		if ns != "shop" || name != "compute" {
			t.Errorf("read quota %s/%s", ns, name)
		}
		return quota("5", "3"), nil
	}
	reg := prometheus.NewRegistry()
	b, err := NewBudgeter([]Config{cfg}, get, func(string) int64 { return 1 }, reg, quiet())
	if err != nil {
		t.Fatal(err)
	}
	// Members now: frontend 2 × 0.5 + cart 2 × 0.25 + ads 0 = 1.5 cores.
	p := preds(map[string]int64{"frontend": 6, "cart": 4, "ads": 2}, map[string]float64{"frontend": 2, "cart": 2, "ads": 0})
	b.Apply(context.Background(), p)
	// 3.5 cores: minimums 1.25, frontend +5 (2.5) → 3.75 > 3.5, so frontend
	// gets 4 more (2.0): 6→5; cart and ads stay at 1.
	if got := []int64{p["frontend"].PredictedReplicas, p["cart"].PredictedReplicas, p["ads"].PredictedReplicas}; got[0] != 5 || got[1] != 1 || got[2] != 1 {
		t.Errorf("allocated frontend/cart/ads %v, want 5/1/1", got)
	}
	if v := testutil.ToFloat64(b.cores.WithLabelValues("shop", "total")); v != 3.5 {
		t.Errorf("total cores metric %v, want 3.5", v)
	}
	if v := testutil.ToFloat64(b.replicas.WithLabelValues("shop", "frontend", "needed")); v != 6 {
		t.Errorf("needed replicas metric %v, want 6", v)
	}

	// The quota becomes unreadable: the last total is used, and counted.
	getErr = errors.New("connection refused")
	p = preds(map[string]int64{"frontend": 6, "cart": 4, "ads": 2}, map[string]float64{"frontend": 5, "cart": 1, "ads": 1})
	b.Apply(context.Background(), p)
	if p["frontend"].PredictedReplicas != 5 {
		t.Errorf("with the quota unreadable: frontend %d, want 5 from the last total", p["frontend"].PredictedReplicas)
	}
	if v := testutil.ToFloat64(b.errors.WithLabelValues("shop")); v != 1 {
		t.Errorf("errors metric %v, want 1", v)
	}
}

// TestBudgeterNeverReadQuota: without any readable total the needs are
// published unchanged rather than cut blindly.
func TestBudgeterNeverReadQuota(t *testing.T) {
	cfg := shop
	cfg.TotalCPU, cfg.ResourceQuota = 0, &QuotaRef{Namespace: "shop", Name: "compute"}
	get := func(context.Context, string, string) (*corev1.ResourceQuota, error) {
		return nil, errors.New("forbidden")
	}
	b, err := NewBudgeter([]Config{cfg}, get, func(string) int64 { return 1 }, nil, quiet())
	if err != nil {
		t.Fatal(err)
	}
	p := preds(map[string]int64{"frontend": 6, "cart": 4, "ads": 2}, map[string]float64{"frontend": 2, "cart": 2, "ads": 0})
	b.Apply(context.Background(), p)
	if p["frontend"].PredictedReplicas != 6 || p["cart"].PredictedReplicas != 4 {
		t.Errorf("needs changed without a known budget: %+v", p)
	}
}

func TestQuotaTotal(t *testing.T) {
	tests := []struct {
		name    string
		q       *corev1.ResourceQuota
		members float64
		known   bool
		want    float64
		wantErr string
	}{
		{"rest of the namespace subtracted", quota("10", "6"), 2, true, 6, ""},
		{"members hold all the use", quota("10", "2"), 2, true, 10, ""},
		{"members' pods unknown", quota("10", "6"), 0, false, 0, "unknown"},
		{"no cpu in the quota", &corev1.ResourceQuota{Status: corev1.ResourceQuotaStatus{Hard: corev1.ResourceList{corev1.ResourcePods: resource.MustParse("10")}}}, 0, true, 0, "no requests.cpu"},
		{"others above hard", quota("4", "9"), 0, true, 0, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := quotaTotal(tt.q, tt.members, tt.known)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Errorf("got %v, %v; want %v", got, err, tt.want)
			}
		})
	}
}

func TestNewBudgeterNeedsAClientForQuotas(t *testing.T) {
	cfg := Config{Name: "q", ResourceQuota: &QuotaRef{"a", "b"}, Services: map[string]Member{"cart": {CPURequest: 1}}}
	if _, err := NewBudgeter([]Config{cfg}, nil, func(string) int64 { return 1 }, nil, quiet()); err == nil || !strings.Contains(err.Error(), "no Kubernetes client") {
		t.Errorf("error %v, want one saying a client is needed", err)
	}
}

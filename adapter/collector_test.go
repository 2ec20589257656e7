package adapter

import (
	"math"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/foresightscale/foresight/forecaster/snapshot"
)

func TestCollector(t *testing.T) {
	held := func(p *snapshot.Prediction) {
		p.HeldReason = "missing_data"
		p.ComputedAt = testNow.Add(-90 * time.Second)
	}
	steps := func(v ...float64) func(*snapshot.Prediction) {
		return func(p *snapshot.Prediction) { p.RequestsByStep = v }
	}
	observed := func(p *snapshot.Prediction) {
		p.ObservedRequests, p.ObservedCPUCores, p.ObservedReplicas = 98, 0.6, 3
		// The age counts from the newest input sample, not the computation.
		p.InputAt = testNow.Add(-40 * time.Second)
	}
	snap := &snapshot.Snapshot{
		Model: "gru-v1",
		Predictions: []snapshot.Prediction{
			prediction("default", "frontend", 4, 123.5, 0.8, steps(100, 123.5, math.NaN()), observed),
			prediction("shop", "cartservice", 2, 10, 0.25, held),
			prediction("default", "adservice", 9, 1, 1, expired),
			prediction("default", "broken", 0, -3, math.Inf(1), steps(-1, 5)),
		},
		Unpublished: []snapshot.Unpublished{
			{Namespace: "shop", Service: "checkout", Reason: "source_error", Since: testNow.Add(-time.Minute)},
			// Listed twice, or also fresh: exported once, as fresh wins.
			{Namespace: "shop", Service: "checkout", Reason: "source_error"},
			{Namespace: "default", Service: "frontend", Reason: "timeout"},
		},
	}
	withApps(snap)

	tests := []struct {
		name string
		snap *snapshot.Snapshot
		want string
	}{
		{name: "fresh, held and invalid predictions", snap: snap, want: `
# HELP foresight_forecast_requests Forecast request rate at each model step ahead (requests per second); step 1 is the nearest.
# TYPE foresight_forecast_requests gauge
foresight_forecast_requests{app="web",model="gru-v1",namespace="default",service="broken",step="2"} 5
foresight_forecast_requests{app="web",model="gru-v1",namespace="default",service="frontend",step="1"} 100
foresight_forecast_requests{app="web",model="gru-v1",namespace="default",service="frontend",step="2"} 123.5
# HELP foresight_observed_cpu_cores Latest CPU usage the forecast started from (cores).
# TYPE foresight_observed_cpu_cores gauge
foresight_observed_cpu_cores{app="web",namespace="default",service="frontend"} 0.6
# HELP foresight_observed_replicas Latest replica count the forecast started from.
# TYPE foresight_observed_replicas gauge
foresight_observed_replicas{app="web",namespace="default",service="frontend"} 3
# HELP foresight_observed_requests Latest request rate the forecast started from (requests per second).
# TYPE foresight_observed_requests gauge
foresight_observed_requests{app="web",namespace="default",service="frontend"} 98
# HELP foresight_predicted_cpu_cores Peak forecast CPU usage over the horizon (cores).
# TYPE foresight_predicted_cpu_cores gauge
foresight_predicted_cpu_cores{app="web",horizon="120s",model="gru-v1",namespace="default",service="frontend"} 0.8
foresight_predicted_cpu_cores{app="store",horizon="120s",model="gru-v1",namespace="shop",service="cartservice"} 0.25
# HELP foresight_predicted_replicas Replica count each service needs over the horizon, as served to the HPA.
# TYPE foresight_predicted_replicas gauge
foresight_predicted_replicas{app="web",horizon="120s",model="gru-v1",namespace="default",service="frontend"} 4
foresight_predicted_replicas{app="store",horizon="120s",model="gru-v1",namespace="shop",service="cartservice"} 2
# HELP foresight_predicted_requests Peak forecast request rate over the horizon (requests per second).
# TYPE foresight_predicted_requests gauge
foresight_predicted_requests{app="web",horizon="120s",model="gru-v1",namespace="default",service="frontend"} 123.5
foresight_predicted_requests{app="store",horizon="120s",model="gru-v1",namespace="shop",service="cartservice"} 10
# HELP foresight_prediction_age_seconds Seconds since the newest real input sample the served prediction was computed from.
# TYPE foresight_prediction_age_seconds gauge
foresight_prediction_age_seconds{app="web",namespace="default",service="broken"} 10
foresight_prediction_age_seconds{app="web",namespace="default",service="frontend"} 40
foresight_prediction_age_seconds{app="store",namespace="shop",service="cartservice"} 90
# HELP foresight_prediction_held 1 while a service has no fresh prediction (reason says why): its last good one is held, or, after staleAfter, nothing is served; 0 when fresh.
# TYPE foresight_prediction_held gauge
foresight_prediction_held{app="web",namespace="default",reason="",service="broken"} 0
foresight_prediction_held{app="web",namespace="default",reason="",service="frontend"} 0
foresight_prediction_held{app="web",namespace="default",reason="expired",service="adservice"} 1
foresight_prediction_held{app="store",namespace="shop",reason="missing_data",service="cartservice"} 1
foresight_prediction_held{app="store",namespace="shop",reason="source_error",service="checkout"} 1
# HELP foresight_prediction_published 1 while a prediction is served for the service (fresh or held), 0 when nothing is and the HPA keeps its current replicas.
# TYPE foresight_prediction_published gauge
foresight_prediction_published{app="web",namespace="default",service="adservice"} 0
foresight_prediction_published{app="web",namespace="default",service="broken"} 0
foresight_prediction_published{app="web",namespace="default",service="frontend"} 1
foresight_prediction_published{app="store",namespace="shop",service="cartservice"} 1
foresight_prediction_published{app="store",namespace="shop",service="checkout"} 0
`},
		{name: "before the first cycle", snap: nil, want: ""},
		// Nothing fresh: no value keeps its last number, but the service
		// stays visible as held and unpublished, so an alert keeps firing.
		{name: "all expired", snap: &snapshot.Snapshot{Predictions: []snapshot.Prediction{
			prediction("default", "frontend", 4, 1, 1, expired, func(p *snapshot.Prediction) { p.HeldReason = "timeout"; p.App = "web" })}}, want: `
# HELP foresight_prediction_held 1 while a service has no fresh prediction (reason says why): its last good one is held, or, after staleAfter, nothing is served; 0 when fresh.
# TYPE foresight_prediction_held gauge
foresight_prediction_held{app="web",namespace="default",reason="timeout",service="frontend"} 1
# HELP foresight_prediction_published 1 while a prediction is served for the service (fresh or held), 0 when nothing is and the HPA keeps its current replicas.
# TYPE foresight_prediction_published gauge
foresight_prediction_published{app="web",namespace="default",service="frontend"} 0
`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			store := &snapshot.Store{}
			if tt.snap != nil {
				store.Publish(tt.snap)
			}
			c := NewCollector(store, func() time.Time { return testNow })
			if err := testutil.CollectAndCompare(c, strings.NewReader(tt.want)); err != nil {
				t.Error(err)
			}
			if n := testutil.CollectAndCount(c); tt.want == "" && n != 0 {
				t.Errorf("collected %d series, want none", n)
			}
		})
	}
}

// withApps names each namespace's application, as snapshot.Merged does.
func withApps(s *snapshot.Snapshot) {
	app := map[string]string{"default": "web", "shop": "store"}
	for i := range s.Predictions {
		s.Predictions[i].App = app[s.Predictions[i].Namespace]
	}
	for i := range s.Unpublished {
		s.Unpublished[i].App = app[s.Unpublished[i].Namespace]
	}
}

// TestCollectorMergedApps: through snapshot.Merged, two applications
// serving the same service name in two namespaces are told apart by app.
func TestCollectorMergedApps(t *testing.T) {
	web, store := &snapshot.Store{}, &snapshot.Store{}
	web.Publish(&snapshot.Snapshot{Model: "m1", Predictions: []snapshot.Prediction{prediction("default", "frontend", 4, 1, 1)}})
	store.Publish(&snapshot.Snapshot{Model: "m2", Predictions: []snapshot.Prediction{prediction("shop", "frontend", 7, 1, 1)},
		Unpublished: []snapshot.Unpublished{{Namespace: "shop", Service: "cart", Reason: "source_error"}}})
	c := NewCollector(snapshot.NewMerged(snapshot.AppStore{App: "web", Store: web}, snapshot.AppStore{App: "store", Store: store}),
		func() time.Time { return testNow })
	want := `
# HELP foresight_predicted_replicas Replica count each service needs over the horizon, as served to the HPA.
# TYPE foresight_predicted_replicas gauge
foresight_predicted_replicas{app="store",horizon="120s",model="m2",namespace="shop",service="frontend"} 7
foresight_predicted_replicas{app="web",horizon="120s",model="m1",namespace="default",service="frontend"} 4
# HELP foresight_prediction_published 1 while a prediction is served for the service (fresh or held), 0 when nothing is and the HPA keeps its current replicas.
# TYPE foresight_prediction_published gauge
foresight_prediction_published{app="store",namespace="shop",service="cart"} 0
foresight_prediction_published{app="store",namespace="shop",service="frontend"} 1
foresight_prediction_published{app="web",namespace="default",service="frontend"} 1
`
	if err := testutil.CollectAndCompare(c, strings.NewReader(want), MetricPredictedReplicas, "foresight_prediction_published"); err != nil {
		t.Error(err)
	}
}

// The collector must reflect the store at scrape time, not at construction.
func TestCollectorFollowsTheStore(t *testing.T) {
	store := &snapshot.Store{}
	c := NewCollector(store, func() time.Time { return testNow })
	if n := testutil.CollectAndCount(c, MetricPredictedReplicas); n != 0 {
		t.Fatalf("empty store: %d series, want 0", n)
	}
	store.Publish(&snapshot.Snapshot{Predictions: []snapshot.Prediction{
		prediction("default", "frontend", 4, 1, 1),
		prediction("default", "cartservice", 2, 1, 1),
	}})
	if n := testutil.CollectAndCount(c, MetricPredictedReplicas); n != 2 {
		t.Fatalf("after publishing: %d series, want 2", n)
	}
	store.Publish(&snapshot.Snapshot{Predictions: []snapshot.Prediction{prediction("default", "frontend", 5, 1, 1)}})
	if n := testutil.CollectAndCount(c, MetricPredictedReplicas); n != 1 {
		t.Fatalf("after the next cycle: %d series, want 1", n)
	}
	if problems, err := testutil.CollectAndLint(c); err != nil || len(problems) > 0 {
		t.Errorf("lint: %v %v", problems, err)
	}
}

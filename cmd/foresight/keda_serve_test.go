package main

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	pb "github.com/kedacore/keda/v2/pkg/scalers/externalscaler"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
)

// TestServeKEDAExternalScaler: `serve --keda-scaler-address` answers KEDA's
// GetMetrics for the demo's frontend with the replica count it publishes
// on /metrics, through a real gRPC client.
func TestServeKEDAExternalScaler(t *testing.T) {
	addr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	s := startServe(t, "--keda-scaler-address", addr)
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	client := pb.NewExternalScalerClient(conn)
	ref := &pb.ScaledObjectRef{Name: "frontend", Namespace: "default", ScalerMetadata: map[string]string{"service": "frontend"}}

	var replicas float64
	waitFor(t, "a KEDA metric for frontend", func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		spec, err := client.GetMetricSpec(ctx, ref)
		if err != nil {
			return err
		}
		if len(spec.MetricSpecs) != 1 {
			return fmt.Errorf("metric specs %v, want one", spec.MetricSpecs)
		}
		got, err := client.GetMetrics(ctx, &pb.GetMetricsRequest{ScaledObjectRef: ref, MetricName: spec.MetricSpecs[0].MetricName})
		if err != nil {
			return err
		}
		if len(got.MetricValues) != 1 || got.MetricValues[0].MetricValueFloat < 1 {
			return fmt.Errorf("metric values %v, want one replica count ≥ 1", got.MetricValues)
		}
		replicas = got.MetricValues[0].MetricValueFloat
		return nil
	})
	_, body, err := get(http.DefaultClient, s.metrics+"/metrics")
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("KEDA GetMetrics: frontend %v replicas", replicas)
	if want := `foresight_keda_requests_total{code="OK",method="GetMetrics"}`; !strings.Contains(body, want) {
		t.Errorf("/metrics lacks %s", want)
	}
}

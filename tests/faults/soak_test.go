package faults

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/foresightscale/foresight/forecaster/source"
	"github.com/foresightscale/foresight/internal/fakeprom"
)

// Soak parameters. The thresholds come from runs on the shared 2-core
// development machine: alone with other builds running (load average ~15),
// p50 5 ms, p99 about 100 ms, max under 1 s at ~1,750 requests/s, and a peak
// resident set of about 180 MB (100 MB idle); inside `make test`, beside the
// control-plane end-to-end tests, p99 295 ms at ~800 requests/s. They leave
// room for a busy CI runner while still catching a regression of an order
// of magnitude.
const (
	defaultSoakDuration = 90 * time.Second
	soakClients         = 24
	soakP99Limit        = 750 * time.Millisecond
	soakRSSLimit        = 250e6 // bytes
	// soakThink is each client's pause between requests: the clients are
	// many and concurrent, but must leave the cycles CPU on two cores.
	soakThink = 2 * time.Millisecond
)

// soakDuration is FORESIGHT_SOAK_DURATION (a Go duration), default 90 s.
// Run longer with, e.g.:
//
//	FORESIGHT_SOAK_DURATION=10m go test ./tests/faults/ -run Soak -timeout 15m -v
func soakDuration(t *testing.T) time.Duration {
	t.Helper()
	s := os.Getenv("FORESIGHT_SOAK_DURATION")
	if s == "" {
		return defaultSoakDuration
	}
	d, err := time.ParseDuration(s)
	if err != nil || d <= 0 {
		t.Fatalf("FORESIGHT_SOAK_DURATION=%q: want a positive Go duration such as 3m (%v)", s, err)
	}
	return d
}

// clientStats is what one client saw.
type clientStats struct {
	latencies []time.Duration
	errors    int // transport errors and non-200 answers
	invalid   int // an answer with a value that is not a replica count in range
	missing   int // a service the selector matched was not served
	examples  []string
}

func (s *clientStats) note(format string, args ...any) {
	if len(s.examples) < 3 {
		s.examples = append(s.examples, fmt.Sprintf(format, args...))
	}
}

// TestSoak: concurrent clients read the external metrics API while cycles run
// every second and the fake Prometheus flaps between healthy and a random
// fault, never for as long as staleAfter, so every service must stay served.
func TestSoak(t *testing.T) {
	needProcesses(t)
	duration := soakDuration(t)
	services := demoServices(t)
	fake := startFake(t, services)
	e := newEnv(t, fake, services)
	e.waitUntil(t, "every service fresh", 30*time.Second, e.allFresh, nil)

	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv("FORESIGHT_SOAK_SEED"); s != "" {
		var err error
		if seed, err = strconv.ParseUint(s, 10, 64); err != nil {
			t.Fatalf("FORESIGHT_SOAK_SEED=%q: %v", s, err)
		}
	}
	t.Logf("soak for %v with %d clients; fault sequence seed %d (FORESIGHT_SOAK_SEED=%d repeats it)", duration, soakClients, seed, seed)

	ctx, cancel := context.WithTimeout(context.Background(), duration)
	defer cancel()
	var wg sync.WaitGroup

	flaps := map[string]int{}
	var flapErr error
	wg.Go(func() { flapErr = flap(ctx, fake, services, seed, flaps) })

	stats := make([]*clientStats, soakClients)
	began := time.Now()
	for i := range stats {
		stats[i] = &clientStats{}
		client := demoClient(t, e.serve.demoDir)
		wg.Go(func() { soakClient(ctx, client, e.serve.apiURL, services, i, stats[i]) })
	}

	// The test goroutine samples memory and checks /metrics' invariants.
	var peakRSS float64
	var lastCheck time.Time
	for ctx.Err() == nil {
		if rss, _, err := memory(e.serve.pid); err == nil {
			peakRSS = max(peakRSS, rss)
		}
		if time.Since(lastCheck) >= time.Second {
			lastCheck = time.Now()
			if _, err := e.observe(t); err != nil {
				e.errorOnce(t, "observe", "reading the process during the soak: %v", err)
			}
		}
		ctxSleep(ctx, 250*time.Millisecond)
	}
	wg.Wait()
	elapsed := time.Since(began)
	if flapErr != nil {
		t.Error(flapErr)
	}
	e.restore(t)
	e.alive(t)
	_, hwm, _ := memory(e.serve.pid)

	var all []time.Duration
	var errs, invalid, missing int
	var examples []string
	for _, s := range stats {
		all = append(all, s.latencies...)
		errs += s.errors
		invalid += s.invalid
		missing += s.missing
		examples = append(examples, s.examples...)
	}
	if len(all) == 0 {
		t.Fatal("no request completed")
	}
	slices.Sort(all)
	p := func(q float64) time.Duration { return all[min(len(all)-1, int(q*float64(len(all))))] }
	t.Logf("%d requests in %v (%.0f/s): p50 %v, p99 %v, max %v; errors %d, invalid values %d, services not served %d",
		len(all), elapsed.Round(time.Second), float64(len(all))/elapsed.Seconds(), p(0.5), p(0.99), all[len(all)-1], errs, invalid, missing)
	t.Logf("RSS: peak sampled %.0f MB, peak since start (VmHWM) %.0f MB; faults played: %v", peakRSS/1e6, hwm/1e6, flaps)
	if errs+invalid+missing > 0 {
		t.Errorf("%d errors, %d invalid values, %d services not served; e.g. %v", errs, invalid, missing, examples)
	}
	if p(0.99) > soakP99Limit {
		t.Errorf("p99 latency %v, want below %v", p(0.99), soakP99Limit)
	}
	// VmHWM also catches a spike between two samples.
	if peak := max(peakRSS, hwm); peak > soakRSSLimit {
		t.Errorf("peak RSS %.0f MB, want below %.0f MB", peak/1e6, soakRSSLimit/1e6)
	}
	e.waitUntil(t, "every service fresh after the soak", 20*time.Second, e.allFresh, nil)
}

// soakClient GETs the external metric until ctx ends: all services, one
// service, or two, in turn.
func soakClient(ctx context.Context, client *http.Client, apiURL string, services []string, n int, s *clientStats) {
	srv := &serveProc{api: client, apiURL: apiURL}
	for i := n; ctx.Err() == nil; i++ {
		var selector string
		var want []string
		switch i % 3 {
		case 0:
			want = services
		case 1:
			svc := services[i%len(services)]
			selector, want = "service="+svc, []string{svc}
		case 2:
			a, b := services[i%len(services)], services[(i+1)%len(services)]
			selector, want = fmt.Sprintf("service in (%s,%s)", a, b), []string{a, b}
		}
		start := time.Now()
		got, err := srv.external(selector)
		took := time.Since(start)
		if ctx.Err() != nil {
			return // the soak ended during this request
		}
		s.latencies = append(s.latencies, took)
		switch {
		case err != nil && isInvalidValue(err):
			s.invalid++
			s.note("%v", err)
		case err != nil:
			s.errors++
			s.note("%s: %v", start.Format("15:04:05.000"), err)
		default:
			for _, svc := range want {
				if !hasKey(got, svc) {
					s.missing++
					s.note("%s: selector %q: %s not served", start.Format("15:04:05.000"), selector, svc)
				}
			}
		}
		ctxSleep(ctx, soakThink)
	}
}

func isInvalidValue(err error) bool {
	return strings.Contains(err.Error(), "is not an integer replica count") || strings.Contains(err.Error(), "two items for service")
}

// flap alternates healthy answers (2-4 s) and a random fault (1-3 s): a
// fault never lasts long enough for a held value to pass staleAfter.
func flap(ctx context.Context, fake *fakeprom.Server, services []string, seed uint64, played map[string]int) error {
	rng := rand.New(rand.NewPCG(seed, 0x5eed))
	svc := func() string { return services[rng.IntN(len(services))] }
	choices := []func() (string, []fakeprom.Fault, bool){
		func() (string, []fakeprom.Fault, bool) { return "down", nil, true },
		single(fakeprom.Fault{Kind: fakeprom.Reset}),
		single(fakeprom.Fault{Kind: fakeprom.ServerError}),
		single(fakeprom.Fault{Kind: fakeprom.HTMLUnavailable}),
		single(fakeprom.Fault{Kind: fakeprom.Malformed}),
		single(fakeprom.Fault{Kind: fakeprom.EmptyObject}),
		single(fakeprom.Fault{Kind: fakeprom.SuccessOnly}),
		single(fakeprom.Fault{Kind: fakeprom.NullData}),
		single(fakeprom.Fault{Kind: fakeprom.NullBody}),
		single(fakeprom.Fault{Kind: fakeprom.Slow, Delay: 3 * time.Second}),
		single(fakeprom.Fault{Kind: fakeprom.HugeSeries, Size: 12 << 20}),
		single(fakeprom.Fault{Kind: fakeprom.Stale, Shift: 8 * time.Minute}),
		single(fakeprom.Fault{Kind: fakeprom.Future, Shift: time.Minute}),
		func() (string, []fakeprom.Fault, bool) {
			return "nan", []fakeprom.Fault{{Kind: fakeprom.NaN, Service: svc(), Feature: source.Requests, Count: 3}}, false
		},
		func() (string, []fakeprom.Fault, bool) {
			return "pos_inf", []fakeprom.Fault{{Kind: fakeprom.PosInf, Service: svc(), Count: 2}}, false
		},
		func() (string, []fakeprom.Fault, bool) {
			return "absent", []fakeprom.Fault{{Kind: fakeprom.Absent, Service: svc()}}, false
		},
		func() (string, []fakeprom.Fault, bool) {
			return "idle", []fakeprom.Fault{{Kind: fakeprom.Idle, Service: svc()}}, false
		},
		func() (string, []fakeprom.Fault, bool) {
			return "value 1e25", []fakeprom.Fault{{Kind: fakeprom.Value, Service: svc(), Feature: source.Requests, Value: 1e25}}, false
		},
	}
	between := func(lo, hi time.Duration) time.Duration { return lo + time.Duration(rng.Int64N(int64(hi-lo))) }
	defer func() {
		fake.Healthy()
		_ = fake.Up()
	}()
	for ctx.Err() == nil {
		ctxSleep(ctx, between(2*time.Second, 4*time.Second))
		if ctx.Err() != nil {
			return nil
		}
		name, faults, down := choices[rng.IntN(len(choices))]()
		played[name]++
		if down {
			fake.Down()
		} else if err := fake.Set(faults...); err != nil {
			return fmt.Errorf("flap: %w", err)
		}
		ctxSleep(ctx, between(time.Second, 3*time.Second))
		fake.Healthy()
		if err := fake.Up(); err != nil {
			return fmt.Errorf("flap: %w", err)
		}
	}
	return nil
}

func single(f fakeprom.Fault) func() (string, []fakeprom.Fault, bool) {
	return func() (string, []fakeprom.Fault, bool) { return string(f.Kind), []fakeprom.Fault{f}, false }
}

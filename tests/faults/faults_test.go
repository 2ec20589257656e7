package faults

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/foresightscale/foresight/forecaster/source"
	"github.com/foresightscale/foresight/internal/fakeprom"
	"github.com/foresightscale/foresight/internal/testproc"
)

// faultCase is one row of the fault matrix: switch faults on, wait for the
// state they must lead to, keep them on a while, switch back and time the
// recovery.
type faultCase struct {
	name   string
	faults []fakeprom.Fault
	down   bool // stop the fake listening (connection refused)
	// pre, if set, must hold before the fault is switched on (besides
	// every service being fresh): no trace of an earlier case.
	pre func(o *obs) error
	// reach is the state the fault must lead to, within reachIn (default 8 s);
	// it must then hold for hold (default 2 s) while the fault stays on.
	reach   func(base, o *obs) error
	reachIn time.Duration
	hold    time.Duration
	// each runs on every observation while the fault is on.
	each func(t *testing.T, e *env, base, o *obs)
	// final runs once before the fault is switched off.
	final func(t *testing.T, e *env, base, reached, last *obs)
	// recoverIn bounds the time from healthy answers to every service
	// fresh again (default 5 s: five cycles).
	recoverIn time.Duration
}

// errorOnce reports a violation once per test, however many polls see it.
func (e *env) errorOnce(t *testing.T, key, format string, args ...any) {
	t.Helper()
	if k := t.Name() + "\x00" + key; !e.reported[k] {
		e.reported[k] = true
		t.Errorf(format, args...)
	}
}

// run plays one case on the shared process.
func (e *env) run(t *testing.T, parent *testing.T, c faultCase) {
	e.ensureRunning(t, parent)
	base := e.waitUntil(t, "every service fresh before the fault", 20*time.Second, func(o *obs) error {
		if err := e.allFresh(o); err != nil {
			return err
		}
		if c.pre != nil {
			return c.pre(o)
		}
		return nil
	}, nil)
	defer e.restore(t) // also when the case fails half-way
	if c.down {
		e.fake.Down()
	} else if err := e.fake.Set(c.faults...); err != nil {
		t.Fatal(err)
	}
	faultAt := time.Now()

	heldValue := map[string]int64{} // replicas of a held service when it was first seen held
	var prev *obs
	var states []string // how the held reasons changed, for the log
	check := func(o *obs) {
		if st := reasonSummary(o); len(states) == 0 || !strings.HasSuffix(states[len(states)-1], " "+st) {
			states = append(states, fmt.Sprintf("%.1fs %s", o.at.Sub(faultAt).Seconds(), st))
		}
		if o.at.Sub(base.at) < staleAfter-time.Second {
			// Within staleAfter of the last fresh cycle: still ready, and
			// every service still served (fresh, or its last good value).
			if o.readyCode != http.StatusOK {
				e.errorOnce(t, "ready", "/readyz = %d %q %.1fs after a fresh cycle; want 200 within staleAfter (%v)",
					o.readyCode, strings.TrimSpace(o.readyBody), o.at.Sub(base.at).Seconds(), staleAfter)
			}
			if gone := missingFrom(e.services, o.ext); len(gone) > 0 {
				e.errorOnce(t, "served", "%v not served by the external metrics API %.1fs after their last fresh value; want the last good value within staleAfter (%v)\n%s",
					gone, o.at.Sub(base.at).Seconds(), staleAfter, o.summary())
			}
		}
		for svc, h := range o.held {
			if h.value != 1 {
				delete(heldValue, svc)
				continue
			}
			v, ok := o.replicas[svc]
			if !ok {
				continue // expired: nothing served
			}
			first, seen := heldValue[svc]
			if !seen {
				heldValue[svc] = int64(v)
				continue
			}
			if int64(v) != first {
				e.errorOnce(t, "held changed "+svc, "held %s changed on /metrics from %d to %v; a held value is served unchanged", svc, first, v)
			}
			if ev, ok := o.ext[svc]; ok && prev != nil && prev.held[svc].value == 1 && ev != first {
				e.errorOnce(t, "held api "+svc, "held %s served as %d by the external metrics API, want its held value %d", svc, ev, first)
			}
		}
		if c.each != nil {
			c.each(t, e, base, o)
		}
		prev = o
	}

	reachIn := cmp.Or(c.reachIn, 4*interval+4*time.Second)
	reached := e.waitUntil(t, c.name+": the state the fault must lead to", reachIn, func(o *obs) error { return c.reach(base, o) }, check)
	t.Logf("state reached %.1fs after the fault was switched on; held reasons seen: %s", reached.at.Sub(faultAt).Seconds(), strings.Join(states, "; "))
	last := reached
	for time.Since(reached.at) < cmp.Or(c.hold, 2*time.Second) {
		time.Sleep(pollEvery)
		o, err := e.observe(t)
		if err != nil {
			e.errorOnce(t, "observe", "reading the process while the fault is on: %v", err)
			continue
		}
		check(o)
		if err := c.reach(base, o); err != nil {
			e.errorOnce(t, "left", "the state did not last while the fault was on: %v\n%s", err, o.summary())
		}
		last = o
	}
	// Every held service counted its reason.
	for svc, h := range last.held {
		if h.value == 1 && counter(last, "foresight_held_predictions_total", "service", svc, "reason", h.reason) <= counter(base, "foresight_held_predictions_total", "service", svc, "reason", h.reason) {
			t.Errorf("foresight_held_predictions_total{service=%q,reason=%q} did not increase", svc, h.reason)
		}
	}
	if c.final != nil {
		c.final(t, e, base, reached, last)
	}

	e.restore(t)
	restored := time.Now()
	fresh := e.waitUntil(t, "recovery: every service fresh again", 20*time.Second, e.allFresh, nil)
	took := fresh.at.Sub(restored)
	t.Logf("recovered %.1fs after Prometheus answered normally again", took.Seconds())
	if limit := cmp.Or(c.recoverIn, 3*interval+2*time.Second); took > limit {
		t.Errorf("recovery took %v, want at most %v (a few %v cycles)", took.Round(100*time.Millisecond), limit, interval)
	}
	e.alive(t)
}

// counter is the value of the series of a family with the given labels
// (name/value pairs), or 0 when absent.
func counter(o *obs, family string, labels ...string) float64 {
	mf := o.families[family]
	if mf == nil {
		return 0
	}
next:
	for _, m := range mf.Metric {
		have := map[string]string{}
		for _, lp := range m.Label {
			have[lp.GetName()] = lp.GetValue()
		}
		for i := 0; i+1 < len(labels); i += 2 {
			if have[labels[i]] != labels[i+1] {
				continue next
			}
		}
		switch {
		case m.Counter != nil:
			return m.Counter.GetValue()
		case m.Gauge != nil:
			return m.Gauge.GetValue()
		case m.Untyped != nil:
			return m.Untyped.GetValue()
		}
	}
	return 0
}

// allHeld is the state of a fault that hides every service: each held with
// reason, its last good value still served, and a source error of one of
// kinds counted.
func allHeld(services []string, reason string, kinds ...string) func(base, o *obs) error {
	return func(base, o *obs) error {
		for _, svc := range services {
			if h := o.held[svc]; h.value != 1 || h.reason != reason {
				return fmt.Errorf("%s: held=%v reason %q, want held with reason %q", svc, h.value, h.reason, reason)
			}
		}
		if kinds == nil {
			return nil
		}
		for _, k := range kinds {
			if o.sourceErrors[k] > base.sourceErrors[k] {
				return nil
			}
		}
		return fmt.Errorf("no source error of kind %v counted (counts %v)", kinds, o.sourceErrors)
	}
}

// publishedWhileHeld checks the per-service published series when the fault
// had just taken hold: the held values are still served then, so it is 1.
// (Later, past staleAfter, the invariants check it against what is served.)
func publishedWhileHeld(t *testing.T, e *env, base, reached, _ *obs) {
	t.Helper()
	if reached.at.Sub(base.at) > staleAfter-time.Second {
		return
	}
	if bad := servicesWhere(e.services, func(svc string) bool { v, ok := reached.published[svc]; return !ok || v != 1 }); len(bad) > 0 {
		t.Errorf("foresight_prediction_published is not 1 for %v while their held values are served (values %v)", bad, reached.published)
	}
}

// reasonSummary counts the services by held reason ("fresh" for none), e.g.
// "fresh=8 missing_data=2".
func reasonSummary(o *obs) string {
	counts := map[string]int{}
	for _, h := range o.held {
		r := h.reason
		if h.value == 0 {
			r = "fresh"
		}
		counts[r]++
	}
	keys := make([]string, 0, len(counts))
	for r := range counts {
		keys = append(keys, r)
	}
	slices.Sort(keys)
	parts := make([]string, len(keys))
	for i, r := range keys {
		parts[i] = fmt.Sprintf("%s=%d", r, counts[r])
	}
	return strings.Join(parts, ",")
}

// servicesWhere lists the services for which bad holds.
func servicesWhere(services []string, bad func(string) bool) []string {
	var out []string
	for _, svc := range services {
		if bad(svc) {
			out = append(out, svc)
		}
	}
	return out
}

// missingFrom lists the services that are not keys of m.
func missingFrom[V any](services []string, m map[string]V) []string {
	return servicesWhere(services, func(svc string) bool { return !hasKey(m, svc) })
}

// othersFresh reports the first service other than skip that is not fresh.
func othersFresh(services []string, o *obs, skip ...string) error {
	for _, svc := range services {
		if !slices.Contains(skip, svc) && !o.fresh(svc) {
			h := o.held[svc]
			return fmt.Errorf("%s is not fresh (held=%v reason %q)", svc, h.value, h.reason)
		}
	}
	return nil
}

// TestFaultMatrix drives one foresight serve through every fault in turn.
func TestFaultMatrix(t *testing.T) {
	needProcesses(t)
	services := demoServices(t)
	fake := startFake(t, services)
	// The process starts against a failing Prometheus: not ready yet.
	if err := fake.Set(fakeprom.Fault{Kind: fakeprom.ServerError}); err != nil {
		t.Fatal(err)
	}
	e := newEnv(t, fake, services)

	t.Run("not ready before the first good cycle", func(t *testing.T) {
		o := e.waitUntil(t, "a counted source error", 20*time.Second, func(o *obs) error {
			if o.sourceErrors["bad_response"] == 0 {
				return errNotYet
			}
			return nil
		}, nil)
		if o.readyCode != http.StatusServiceUnavailable {
			t.Errorf("/readyz = %d %q before any good cycle; want 503", o.readyCode, o.readyBody)
		}
		if len(o.ext) != 0 || len(o.replicas) != 0 {
			t.Errorf("served before any good cycle: api %v, /metrics %v", o.ext, o.replicas)
		}
		e.restore(t)
		began := time.Now()
		e.waitUntil(t, "every service fresh", 20*time.Second, e.allFresh, nil)
		t.Logf("every service fresh and ready %.1fs after Prometheus answered", time.Since(began).Seconds())
	})
	e.restore(t) // also when that case was not selected with -run

	t.Run("healthy", func(t *testing.T) {
		e.ensureRunning(t, t)
		first := e.waitUntil(t, "every service fresh", 20*time.Second, e.allFresh, nil)
		for time.Since(first.at) < 3*time.Second {
			o, err := e.observe(t)
			if err != nil {
				t.Fatal(err)
			}
			if err := e.allFresh(o); err != nil {
				e.errorOnce(t, "fresh", "healthy answers but %v\n%s", err, o.summary())
			}
			if bad := servicesWhere(services, func(svc string) bool { v, ok := o.published[svc]; return !ok || v != 1 }); len(bad) > 0 {
				e.errorOnce(t, "published", "foresight_prediction_published is not 1 for %v while served (values %v)", bad, o.published)
			}
			// The newest sample is at the end of the window, which is now
			// truncated to the model's 30 s step.
			if bad := servicesWhere(services, func(svc string) bool { age, ok := o.age[svc]; return !ok || age > 30+3*interval.Seconds() }); len(bad) > 0 {
				e.errorOnce(t, "age", "foresight_prediction_age_seconds of %v is absent or above the 30 s step plus a few cycles: %v", bad, o.age)
			}
			time.Sleep(pollEvery)
		}
		last, _ := e.observe(t)
		if last != nil {
			t.Logf("healthy: RSS %.0f MB (peak since start %.0f MB)", last.rss/1e6, last.hwmem/1e6)
		}
	})

	sampleSvc := services[0]
	// The services given huge request rates: a different one each, so the
	// second does not start at maxReplicas already.
	victims := map[float64]string{1e25: services[len(services)/2], 1e41: services[len(services)/2+1]}
	absent := services[1:3]
	idle := services[3]

	cases := []faultCase{
		{name: "unreachable", down: true, reach: allHeld(services, "source_error", "unreachable"), final: publishedWhileHeld},
		{name: "connection reset", faults: []fakeprom.Fault{{Kind: fakeprom.Reset}}, reach: allHeld(services, "source_error", "unreachable"), final: publishedWhileHeld},
		{name: "HTTP 500", faults: []fakeprom.Fault{{Kind: fakeprom.ServerError}}, reach: allHeld(services, "source_error", "bad_response"), final: publishedWhileHeld},
		{name: "HTML 503", faults: []fakeprom.Fault{{Kind: fakeprom.HTMLUnavailable}}, reach: allHeld(services, "source_error", "bad_response"), final: publishedWhileHeld},
		{name: "malformed JSON", faults: []fakeprom.Fault{{Kind: fakeprom.Malformed}}, reach: allHeld(services, "source_error", "bad_response"), final: publishedWhileHeld},
		{name: "slow", faults: []fakeprom.Fault{{Kind: fakeprom.Slow, Delay: 3 * time.Second}}, reach: allHeld(services, "timeout", "timeout"), final: publishedWhileHeld},
	}
	// Defect 1: each of these used to panic the process (exit 2).
	for _, k := range []fakeprom.Kind{fakeprom.EmptyObject, fakeprom.SuccessOnly, fakeprom.NullData, fakeprom.NullBody} {
		cases = append(cases, faultCase{name: "empty success " + string(k), faults: []fakeprom.Fault{{Kind: k}},
			reach: allHeld(services, "source_error", "bad_response", "bad_data"), final: publishedWhileHeld})
	}
	// Defect 3: a huge answer is refused, and memory stays bounded.
	for _, f := range []fakeprom.Fault{{Kind: fakeprom.HugeSeries, Size: 50 << 20}, {Kind: fakeprom.HugeLabel, Size: 20 << 20}} {
		cases = append(cases, faultCase{name: fmt.Sprintf("%s %d MB", f.Kind, f.Size>>20), faults: []fakeprom.Fault{f},
			reach: allHeld(services, "source_error", "bad_response"), reachIn: 6 * interval,
			each: rssBelow(300e6),
			final: func(t *testing.T, e *env, base, reached, last *obs) {
				publishedWhileHeld(t, e, base, reached, last)
				t.Logf("RSS now %.0f MB, peak since start %.0f MB", last.rss/1e6, last.hwmem/1e6)
				if last.hwmem > 300e6 {
					t.Errorf("peak RSS %.0f MB, want below 300 MB", last.hwmem/1e6)
				}
			}})
	}
	// NaN, ±Inf and negative samples of one service count as missing; a few
	// of them leave it fresh. Feature "" spoils every feature's samples.
	for _, sc := range []struct {
		kind    fakeprom.Kind
		feature source.Feature
	}{{fakeprom.NaN, source.Requests}, {fakeprom.PosInf, ""}, {fakeprom.NegInf, source.CPU}, {fakeprom.Negative, source.Requests}} {
		checked := cmp.Or(sc.feature, source.Requests)
		key := sampleSvc + "/" + string(checked)
		cases = append(cases, faultCase{name: fmt.Sprintf("3 %s samples of %s", sc.kind, cmp.Or(string(sc.feature), "every feature")),
			faults: []fakeprom.Fault{{Kind: sc.kind, Service: sampleSvc, Feature: sc.feature, Count: 3}},
			pre: func(o *obs) error {
				if n := o.filled[key]; n != 0 {
					return fmt.Errorf("%s: %v samples still filled from an earlier case", key, n)
				}
				return nil
			},
			reach: func(_, o *obs) error {
				if n := o.filled[key]; n < 3 {
					return fmt.Errorf("%s: %v samples filled in the window, want the 3 bad ones counted missing", key, n)
				}
				return othersFresh(services, o)
			},
			each: func(t *testing.T, e *env, _, o *obs) {
				if err := othersFresh(services, o); err != nil {
					e.errorOnce(t, "fresh", "a few bad samples held a service: %v", err)
				}
			}})
	}
	// Defects 2 and 4: one service at an absurd request rate is published at
	// maxReplicas, never lower; the others stay fresh.
	for _, v := range []float64{1e25, 1e41} {
		victim := victims[v]
		cases = append(cases, faultCase{name: fmt.Sprintf("requests %g", v), faults: []fakeprom.Fault{{Kind: fakeprom.Value, Service: victim, Feature: source.Requests, Value: v}},
			reachIn: 6 * interval,
			reach: func(_, o *obs) error {
				if o.ext[victim] != maxReplicas || o.replicas[victim] != maxReplicas {
					return fmt.Errorf("%s: api %d, /metrics %v; want maxReplicas %d", victim, o.ext[victim], o.replicas[victim], maxReplicas)
				}
				return othersFresh(services, o, victim)
			},
			each: func(t *testing.T, e *env, base, o *obs) {
				if got, ok := o.ext[victim]; ok && got < base.ext[victim] {
					e.errorOnce(t, "lower", "%s at request rate %g published %d, below its %d before the fault (min instead of max)", victim, v, got, base.ext[victim])
				}
				if err := othersFresh(services, o, victim); err != nil && o.at.Sub(base.at) > 1500*time.Millisecond {
					e.errorOnce(t, "others", "one service's huge rate affected another: %v", err)
				}
			}})
	}
	cases = append(cases,
		faultCase{name: "partial answer", faults: []fakeprom.Fault{{Kind: fakeprom.Absent, Service: absent[0]}, {Kind: fakeprom.Absent, Service: absent[1]}},
			reach: func(base, o *obs) error {
				if err := allHeld(absent, "missing_data")(base, o); err != nil {
					return err
				}
				return othersFresh(services, o, absent...)
			}},
		faultCase{name: "idle service", faults: []fakeprom.Fault{{Kind: fakeprom.Idle, Service: idle}}, reachIn: 15 * interval,
			reach: func(_, o *obs) error {
				if !o.fresh(idle) || o.ext[idle] != minReplicas {
					return fmt.Errorf("idle %s: held=%v(%s) api %d; want fresh at minReplicas %d", idle, o.held[idle].value, o.held[idle].reason, o.ext[idle], minReplicas)
				}
				return othersFresh(services, o)
			},
			each: func(t *testing.T, e *env, _, o *obs) {
				if h := o.held[idle]; h.value == 1 {
					e.errorOnce(t, "held", "idle %s held with reason %q; zero load is a measurement", idle, h.reason)
				}
			}},
		faultCase{name: "stale input 8m", faults: []fakeprom.Fault{{Kind: fakeprom.Stale, Shift: 8 * time.Minute}},
			reach: allHeld(services, "stale_input"),
			each: func(t *testing.T, e *env, base, o *obs) {
				if o.at.Sub(base.at) < 2500*time.Millisecond {
					return // the first cycle with stale data may not have run yet
				}
				if bad := servicesWhere(e.services, func(svc string) bool { return o.held[svc].value == 0 }); len(bad) > 0 {
					e.errorOnce(t, "fresh", "%v published as fresh from input 8 minutes old (ages %v)", bad, o.age)
				}
			}},
		faultCase{name: "future timestamps", faults: []fakeprom.Fault{{Kind: fakeprom.Future, Shift: time.Minute}},
			reach: allHeld(services, "missing_data")},
	)
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) { e.run(t, t, c) })
	}

	t.Run("outage longer than staleAfter", func(t *testing.T) {
		e.run(t, t, faultCase{down: true, reachIn: staleAfter + 5*time.Second, hold: 1500 * time.Millisecond,
			reach: func(_, o *obs) error {
				if len(o.ext) != 0 || len(o.replicas) != 0 {
					return fmt.Errorf("still served: api %v, /metrics %v", o.ext, o.replicas)
				}
				if o.readyCode != http.StatusServiceUnavailable {
					return fmt.Errorf("/readyz %d, want 503 once no service is fresh within staleAfter", o.readyCode)
				}
				return nil
			},
			each: func(t *testing.T, e *env, base, o *obs) {
				if o.at.Sub(base.at) < staleAfter+2*interval {
					return
				}
				if bad := servicesWhere(e.services, func(svc string) bool { h, ok := o.held[svc]; return !ok || h.value != 1 || h.reason != "source_error" }); len(bad) > 0 {
					e.errorOnce(t, "held", "after staleAfter, foresight_prediction_held of %v is not 1 with reason source_error (the series must stay): %v", bad, o.held)
				}
				if bad := servicesWhere(e.services, func(svc string) bool { v, ok := o.published[svc]; return !ok || v != 0 }); len(bad) > 0 {
					e.errorOnce(t, "published", "after staleAfter, foresight_prediction_published of %v is not 0: %v", bad, o.published)
				}
			},
			final: func(t *testing.T, _ *env, _, reached, _ *obs) {
				t.Logf("/readyz after staleAfter: %d %q", reached.readyCode, strings.TrimSpace(reached.readyBody))
			},
		})
	})

	t.Run("oversized label selector", func(t *testing.T) {
		e.ensureRunning(t, t)
		e.waitUntil(t, "every service fresh", 20*time.Second, e.allFresh, nil)
		var sel strings.Builder
		sel.WriteString("service in (")
		for i := 0; sel.Len() < 400<<10; i++ {
			fmt.Fprintf(&sel, "svc-%07d,", i)
		}
		sel.WriteString(services[0] + ")")
		began := time.Now()
		resp, err := e.serve.api.Get(e.serve.apiURL + "?labelSelector=" + url.QueryEscape(sel.String()))
		took := time.Since(began)
		if err != nil {
			t.Fatalf("GET with a %d KB selector: %v", sel.Len()>>10, err)
		}
		resp.Body.Close()
		t.Logf("a %d KB selector: %d in %v", sel.Len()>>10, resp.StatusCode, took.Round(time.Millisecond))
		if resp.StatusCode != http.StatusRequestURITooLong && resp.StatusCode != http.StatusBadRequest {
			t.Errorf("a %d KB label selector answered %d; want 414 or 400", sel.Len()>>10, resp.StatusCode)
		}
		if took > 2*time.Second {
			t.Errorf("refusing the selector took %v, want it quick", took)
		}
		for _, small := range []struct {
			sel  string
			want []string
		}{
			{"service=" + services[0], services[:1]},
			{fmt.Sprintf("service in (%s,%s)", services[1], services[2]), services[1:3]},
		} {
			got, err := e.serve.external(small.sel)
			if err != nil {
				t.Errorf("selector %q: %v", small.sel, err)
				continue
			}
			if len(got) != len(small.want) || !hasKey(got, small.want[0]) || !hasKey(got, small.want[len(small.want)-1]) {
				t.Errorf("selector %q served %v, want %v", small.sel, got, small.want)
			}
		}
		// The selector must not be echoed whole into the log (issue 12, defect 6).
		for _, line := range strings.Split(e.serve.proc.Output(), "\n") {
			if len(line) > 64<<10 {
				t.Errorf("a log line of %d bytes (%.120s…): the selector was echoed whole", len(line), line)
				break
			}
		}
	})
}

// rssBelow fails the case when the resident set passes limit, and then stops
// the fault at once rather than let an unbounded process take the machine.
func rssBelow(limit float64) func(t *testing.T, e *env, base, o *obs) {
	return func(t *testing.T, e *env, _, o *obs) {
		if o.rss > limit {
			e.errorOnce(t, "rss", "RSS %.0f MB, want below %.0f MB; switching the fault off", o.rss/1e6, limit/1e6)
			e.fake.Healthy()
		}
	}
}

// TestConfigRefusals: a configuration that would do nothing, flood
// Prometheus or mean something else than written stops `foresight serve` at
// start, naming the field, before a single query.
func TestConfigRefusals(t *testing.T) {
	needProcesses(t)
	services := demoServices(t)
	bin := foresightBinary(t)
	// Each case changes one thing in the configuration the matrix runs
	// with, so the refusal can only be for that one thing.
	tests := []struct {
		name, old, new, field string
	}{
		{"interval 1ms", "interval: 2s\n", "interval: 1ms\n", "interval"},
		{"staleAfter below interval", "interval: 2s\nstaleAfter: 16s\n", "interval: 2s\nstaleAfter: 1s\n", "staleAfter"},
		{"namespace with a quote", "interval: 2s\n", "namespace: 'Bad\"NS'\ninterval: 2s\n", "namespace"},
		{"interval without unit", "interval: 2s\nstaleAfter: 16s\n", "interval: 30\nstaleAfter: 5m\n", "interval"},
		{"negative leadTime", "  capacityPerPod: 10\n", "  capacityPerPod: 10\n  leadTime: -1m\n", "policy.leadTime"},
		{"negative prometheus timeout", "timeout: 1s\n", "timeout: -1s\n", "source.prometheus.timeout"},
		{"negative per-service maxReplicas", "  maxReplicas: 50\n", "  maxReplicas: 50\n  services:\n    " + services[0] + ": {maxReplicas: -3}\n",
			"policy.services." + services[0] + ".maxReplicas"},
		{"leadTime 100y", "  capacityPerPod: 10\n", "  capacityPerPod: 10\n  leadTime: 100y\n", "policy.leadTime"},
		{"capacityPerPod 1e-300", "capacityPerPod: 10\n", "capacityPerPod: 1e-300\n", "policy.capacityPerPod"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			fake := startFake(t, services)
			yaml := strings.Replace(fmt.Sprintf(baseConfig, fake.URL()), tc.old, tc.new, 1)
			if !strings.Contains(yaml, tc.new) {
				t.Fatalf("test bug: %q is not in the base configuration", tc.old)
			}
			cfg := writeConfig(t, yaml)
			securePort, err1 := testproc.FreePort()
			metricsPort, err2 := testproc.FreePort()
			if err := errors.Join(err1, err2); err != nil {
				t.Fatal(err)
			}
			// A refused config exits at once; one accepted by mistake runs
			// until this deadline (and is then reported with its queries).
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			cmd := exec.CommandContext(ctx, bin, serveArgs(securePort, metricsPort, t.TempDir(), cfg)...)
			var stdout, stderr bytes.Buffer
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			began := time.Now()
			err := cmd.Run()
			took := time.Since(began)
			var exitErr *exec.ExitError
			switch {
			case ctx.Err() != nil:
				t.Fatalf("foresight serve accepted the config and ran for %v (%d Prometheus queries); want a start-up error naming %q\nstderr:\n%s",
					took.Round(time.Millisecond), fake.Queries(), tc.field, tail(stderr.String(), 20))
			case !errors.As(err, &exitErr) || exitErr.ExitCode() == 0:
				t.Fatalf("foresight serve: %v; want a non-zero exit", err)
			}
			t.Logf("exit %d after %v: %s", exitErr.ExitCode(), took.Round(time.Millisecond), strings.TrimSpace(tail(stderr.String(), 3)))
			// The file's path holds the test's name, which may hold the
			// field's: only the message itself counts.
			if msg := strings.ReplaceAll(stderr.String(), cfg, "<config>"); !strings.Contains(msg, tc.field) {
				t.Errorf("stderr does not name the field %q:\n%s", tc.field, tail(stderr.String(), 20))
			}
			if n := fake.Queries(); n != 0 {
				t.Errorf("Prometheus received %d queries before the config was refused, want 0", n)
			}
		})
	}
}

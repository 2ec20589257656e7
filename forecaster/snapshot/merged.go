package snapshot

import (
	"slices"
	"sort"
	"strings"
	"sync/atomic"
)

// AppStore is one application's store and the name its predictions carry.
type AppStore struct {
	App   string
	Store *Store
}

// Merged reads the stores of several applications as one Snapshot, so that
// publishers stay readers of a single snapshot while every application's loop
// publishes into its own Store, never waiting for another's.
//
// Publishers call Latest on every request, so the merge is cached: it is
// rebuilt only when an application has published a new snapshot since, which
// Latest sees by comparing the stores' current pointers (one atomic load
// each). Merged is safe for concurrent use.
type Merged struct {
	apps  []AppStore
	cache atomic.Pointer[mergedSnapshot]
}

// mergedSnapshot is a merge and the application snapshots it was made from.
type mergedSnapshot struct {
	from []*Snapshot
	snap *Snapshot
}

// NewMerged returns the merged reader of apps, in that order.
func NewMerged(apps ...AppStore) *Merged {
	return &Merged{apps: slices.Clone(apps)}
}

// Latest implements Reader: every application's latest predictions in one
// snapshot, or nil while no application has published yet. The result is
// shared between callers and must not be modified.
func (m *Merged) Latest() *Snapshot {
	var buf [8]*Snapshot // no allocation for the usual handful of applications
	current := buf[:0]
	for _, a := range m.apps {
		current = append(current, a.Store.Latest())
	}
	if c := m.cache.Load(); c != nil && slices.Equal(c.from, current) {
		return c.snap
	}
	// Two callers may rebuild at once; both results are right for the
	// pointers each read, and a cache entry that is already out of date is
	// noticed by the next call's comparison.
	snap := merge(m.apps, current)
	m.cache.Store(&mergedSnapshot{from: slices.Clone(current), snap: snap})
	return snap
}

// merge builds one snapshot from each application's (nil when it has not
// published yet). Predictions get their application and model; the merged
// Model and Step are the applications' own when they all agree.
func merge(apps []AppStore, snaps []*Snapshot) *Snapshot {
	var out *Snapshot
	var models []string
	nPred, nUnpub := 0, 0
	for _, s := range snaps {
		if s != nil {
			nPred, nUnpub = nPred+len(s.Predictions), nUnpub+len(s.Unpublished)
		}
	}
	for i, s := range snaps {
		if s == nil {
			continue
		}
		if out == nil {
			out = &Snapshot{CreatedAt: s.CreatedAt, Step: s.Step, Predictions: make([]Prediction, 0, nPred)}
			if nUnpub > 0 {
				out.Unpublished = make([]Unpublished, 0, nUnpub)
			}
		}
		// The newest cycle dates the merge; a Step that differs between
		// applications has no single value.
		if s.CreatedAt.After(out.CreatedAt) {
			out.CreatedAt = s.CreatedAt
		}
		if s.Step != out.Step {
			out.Step = 0
		}
		if s.Model != "" && !slices.Contains(models, s.Model) {
			models = append(models, s.Model)
		}
		app := apps[i].App
		for _, p := range s.Predictions {
			p.App = app
			if p.Model == "" {
				p.Model = s.Model
			}
			out.Predictions = append(out.Predictions, p)
		}
		for _, u := range s.Unpublished {
			u.App = app
			out.Unpublished = append(out.Unpublished, u)
		}
	}
	if out == nil {
		return nil
	}
	sort.Strings(models)
	out.Model = strings.Join(models, ",")
	return out
}

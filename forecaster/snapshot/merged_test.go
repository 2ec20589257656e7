package snapshot

import (
	"fmt"
	"sync"
	"testing"
	"time"
)

var t0 = time.Date(2026, 12, 5, 12, 0, 0, 0, time.UTC)

func snap(model string, at time.Time, step time.Duration, ns string, services ...string) *Snapshot {
	s := &Snapshot{CreatedAt: at, Model: model, Step: step}
	for _, svc := range services {
		s.Predictions = append(s.Predictions, Prediction{Namespace: ns, Service: svc, ComputedAt: at, ExpiresAt: at.Add(time.Minute)})
	}
	return s
}

func TestMergedLatest(t *testing.T) {
	fallback := snap("shop-v1", t0, 30*time.Second, "shop", "cart")
	fallback.Predictions[0].Model = "fallback"
	fallback.Unpublished = []Unpublished{{Namespace: "shop", Service: "ads", Reason: "missing_data"}}
	tests := []struct {
		name      string
		shop      *Snapshot
		books     *Snapshot
		wantNil   bool
		wantModel string
		wantStep  time.Duration
		wantAt    time.Time
		// app/model/namespace/service of each prediction, in order
		want []string
		// app/namespace/service of each unpublished service
		wantUnpublished []string
	}{
		{name: "nothing published yet", wantNil: true},
		{name: "one application published", books: snap("books-v2", t0, 30*time.Second, "books", "reviews", "ratings"),
			wantModel: "books-v2", wantStep: 30 * time.Second, wantAt: t0,
			want: []string{"bookinfo/books-v2/books/reviews", "bookinfo/books-v2/books/ratings"}},
		{name: "both, different models and steps",
			shop:      snap("shop-v1", t0, 30*time.Second, "shop", "frontend"),
			books:     snap("books-v2", t0.Add(time.Second), time.Minute, "books", "reviews"),
			wantModel: "books-v2,shop-v1", wantStep: 0, wantAt: t0.Add(time.Second),
			want: []string{"shop/shop-v1/shop/frontend", "bookinfo/books-v2/books/reviews"}},
		{name: "same model and step", shop: snap("m", t0, time.Minute, "shop", "a"), books: snap("m", t0, time.Minute, "books", "b"),
			wantModel: "m", wantStep: time.Minute, wantAt: t0, want: []string{"shop/m/shop/a", "bookinfo/m/books/b"}},
		{name: "a prediction's own model is kept", shop: fallback, wantModel: "shop-v1", wantStep: 30 * time.Second, wantAt: t0,
			want: []string{"shop/fallback/shop/cart"}, wantUnpublished: []string{"shop/shop/ads"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			shop, books := &Store{}, &Store{}
			if tc.shop != nil {
				shop.Publish(tc.shop)
			}
			if tc.books != nil {
				books.Publish(tc.books)
			}
			got := NewMerged(AppStore{App: "shop", Store: shop}, AppStore{App: "bookinfo", Store: books}).Latest()
			if tc.wantNil {
				if got != nil {
					t.Fatalf("Latest = %+v, want nil before any application published", got)
				}
				return
			}
			if got == nil {
				t.Fatal("Latest = nil")
			}
			if got.Model != tc.wantModel || got.Step != tc.wantStep || !got.CreatedAt.Equal(tc.wantAt) {
				t.Errorf("model %q step %v created %v; want %q %v %v", got.Model, got.Step, got.CreatedAt, tc.wantModel, tc.wantStep, tc.wantAt)
			}
			var preds []string
			for _, p := range got.Predictions {
				preds = append(preds, p.App+"/"+p.Model+"/"+p.Namespace+"/"+p.Service)
			}
			if fmt.Sprint(preds) != fmt.Sprint(tc.want) {
				t.Errorf("predictions %v, want %v", preds, tc.want)
			}
			var unpub []string
			for _, u := range got.Unpublished {
				unpub = append(unpub, u.App+"/"+u.Namespace+"/"+u.Service)
			}
			if fmt.Sprint(unpub) != fmt.Sprint(tc.wantUnpublished) {
				t.Errorf("unpublished %v, want %v", unpub, tc.wantUnpublished)
			}
			// The stores' own snapshots are not touched by the merge.
			for _, s := range []*Snapshot{tc.shop, tc.books} {
				for _, p := range snapshotPredictions(s) {
					if p.App != "" {
						t.Errorf("merge wrote App %q into an application's own snapshot", p.App)
					}
				}
			}
		})
	}
}

func snapshotPredictions(s *Snapshot) []Prediction {
	if s == nil {
		return nil
	}
	return s.Predictions
}

// TestMergedCaches: the merge is rebuilt only when an application publishes.
func TestMergedCaches(t *testing.T) {
	a, b := &Store{}, &Store{}
	m := NewMerged(AppStore{App: "a", Store: a}, AppStore{App: "b", Store: b})
	a.Publish(snap("m", t0, time.Minute, "x", "s1"))
	first := m.Latest()
	if again := m.Latest(); again != first {
		t.Fatal("Latest rebuilt the merge although no application published")
	}
	b.Publish(snap("m", t0, time.Minute, "y", "s2"))
	second := m.Latest()
	if second == first || len(second.Predictions) != 2 {
		t.Fatalf("after b published: same merge %v, %d predictions; want a new merge with 2", second == first, len(second.Predictions))
	}
	a.Publish(snap("m", t0.Add(time.Minute), time.Minute, "x", "s1"))
	if third := m.Latest(); third == second || !third.CreatedAt.Equal(t0.Add(time.Minute)) {
		t.Fatal("a's new snapshot is not in the merge")
	}
	if allocs := testing.AllocsPerRun(100, func() { m.Latest() }); allocs != 0 {
		t.Errorf("a cached Latest allocates %v times, want 0", allocs)
	}
}

// TestMergedConcurrent runs publishers and readers at once (meaningful with
// -race): every merge a reader sees holds, per application, the predictions
// of one whole snapshot, never a mix.
func TestMergedConcurrent(t *testing.T) {
	const apps, cycles, readers = 3, 300, 4
	stores := make([]AppStore, apps)
	for i := range stores {
		stores[i] = AppStore{App: fmt.Sprintf("app%d", i), Store: &Store{}}
	}
	m := NewMerged(stores...)
	var wg sync.WaitGroup
	done := make(chan struct{})
	for i, s := range stores {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for c := range cycles {
				s.Store.Publish(snap("m", t0.Add(time.Duration(c)*time.Second), time.Minute, fmt.Sprint("ns", i), "s1", "s2", "s3"))
			}
		}()
	}
	errs := make(chan error, readers)
	var rg sync.WaitGroup
	for range readers {
		rg.Add(1)
		go func() {
			defer rg.Done()
			for {
				select {
				case <-done:
					return
				default:
				}
				s := m.Latest()
				if s == nil {
					continue
				}
				computed := map[string]time.Time{}
				for _, p := range s.Predictions {
					if at, ok := computed[p.App]; ok && !at.Equal(p.ComputedAt) {
						errs <- fmt.Errorf("app %s: predictions of two cycles in one merge (%v and %v)", p.App, at, p.ComputedAt)
						return
					}
					computed[p.App] = p.ComputedAt
				}
			}
		}()
	}
	wg.Wait()
	close(done)
	rg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	final := m.Latest()
	if len(final.Predictions) != apps*3 || !final.CreatedAt.Equal(t0.Add((cycles-1)*time.Second)) {
		t.Errorf("final merge: %d predictions at %v; want %d at the last cycle", len(final.Predictions), final.CreatedAt, apps*3)
	}
}

func BenchmarkMergedLatest(b *testing.B) {
	stores := make([]AppStore, 5)
	for i := range stores {
		stores[i] = AppStore{App: fmt.Sprint("app", i), Store: &Store{}}
		services := make([]string, 50)
		for j := range services {
			services[j] = fmt.Sprint("svc", j)
		}
		stores[i].Store.Publish(snap("m", t0, time.Minute, fmt.Sprint("ns", i), services...))
	}
	m := NewMerged(stores...)
	b.Run("cached", func(b *testing.B) {
		for b.Loop() {
			m.Latest()
		}
	})
	b.Run("after a publish", func(b *testing.B) {
		s := stores[0].Store.Latest()
		for b.Loop() {
			stores[0].Store.Publish(s.clone())
			m.Latest()
		}
	})
}

func (s *Snapshot) clone() *Snapshot { c := *s; return &c }

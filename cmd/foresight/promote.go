package main

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"time"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/foresightscale/foresight/forecaster/model"
	"github.com/foresightscale/foresight/models"
	"github.com/foresightscale/foresight/models/store"
	"github.com/foresightscale/foresight/models/training"
)

// modelStore is where `train --promote` finds the champion and saves a
// promoted model: a directory (store.Dir) or Kubernetes ConfigMaps
// (store.ConfigMap).
type modelStore interface {
	// champion returns the current model, nil for an empty store; a
	// current version that does not load is no champion (logged).
	champion(ctx context.Context) (*model.Model, error)
	save(ctx context.Context, files map[string][]byte, now time.Time) (version string, err error)
	// record keeps the decision in the store's promotion history.
	record(ctx context.Context, r decisionRecord) error
	// lastDecision returns the newest decision recorded (JSON), nil for
	// none.
	lastDecision(ctx context.Context) ([]byte, error)
	String() string
}

// decisionRecord is one line of a store's promotion history: when, which
// model, the version it was saved as (promoted only), and the decision with
// its figures.
type decisionRecord struct {
	Time    time.Time `json:"time"`
	Model   string    `json:"model"`
	Version string    `json:"version,omitempty"`
	training.Decision
}

// openStore opens the store --promote names: "configmap:[NAMESPACE/]NAME"
// through the Kubernetes API (in-cluster, or --kubeconfig / $KUBECONFIG),
// anything else a directory.
func openStore(ref, namespace, kubeconfig string, keep int) (modelStore, error) {
	ns, name, isConfigMap, err := store.ParseConfigMapRef(ref, namespace)
	if err != nil {
		return nil, fmt.Errorf("--promote %w", err)
	}
	if !isConfigMap {
		d, err := store.Open(ref, keep)
		if err != nil {
			return nil, err
		}
		return dirStore{d}, nil
	}
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	rules.ExplicitPath = kubeconfig
	cfg, err := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, &clientcmd.ConfigOverrides{}).ClientConfig()
	if err != nil {
		return nil, fmt.Errorf("--promote %s: no Kubernetes client configuration (in-cluster, --kubeconfig or $KUBECONFIG): %w", ref, err)
	}
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("--promote %s: %w", ref, err)
	}
	return configMapStore{&store.ConfigMap{Client: client, Namespace: ns, Name: name, Keep: keep}}, nil
}

type dirStore struct{ d *store.Dir }

func (s dirStore) String() string { return s.d.Path }

func (s dirStore) champion(context.Context) (*model.Model, error) {
	var m *model.Model
	v, rejected, err := s.d.Newest(func(dir string) error {
		var err error
		m, err = model.Load(dir)
		return err
	})
	for _, r := range rejected {
		slog.Warn("model store: a version does not load; it cannot be the champion", "version", r.Version.Name, "err", r.Err)
	}
	if err != nil {
		vs, verr := s.d.Versions()
		if verr != nil {
			return nil, verr
		}
		if len(vs) > 0 {
			slog.Warn("model store: no version loads; the new model is compared with last value only", "store", s.d.Path)
		}
		return nil, nil
	}
	slog.Info("champion", "store", s.d.Path, "version", v.Name, "model", m.Manifest().Name)
	return m, nil
}

func (s dirStore) save(_ context.Context, files map[string][]byte, now time.Time) (string, error) {
	v, err := s.d.Save(files, now)
	return v.Name, err
}

func (s dirStore) record(_ context.Context, r decisionRecord) error {
	b, err := json.Marshal(r)
	if err != nil {
		return err
	}
	return s.d.RecordDecision(b)
}

func (s dirStore) lastDecision(context.Context) ([]byte, error) { return s.d.LastDecision() }

type configMapStore struct{ c *store.ConfigMap }

func (s configMapStore) lastDecision(ctx context.Context) ([]byte, error) {
	return s.c.LastDecision(ctx)
}

func (s configMapStore) String() string {
	return fmt.Sprintf("configmap:%s/%s", s.c.Namespace, s.c.Name)
}

func (s configMapStore) champion(ctx context.Context) (*model.Model, error) {
	files, version, err := s.c.Current(ctx)
	if err != nil || files == nil {
		return nil, err
	}
	// The loader's checks on the bytes themselves: nothing to unpack.
	m, err := model.Parse(files[model.ONNXFile], files[model.ManifestFile])
	if err != nil {
		slog.Warn("model store: the current version does not load; the new model is compared with last value only", "store", s, "version", version, "err", err)
		return nil, nil
	}
	slog.Info("champion", "store", s, "version", version, "model", m.Manifest().Name)
	return m, nil
}

func (s configMapStore) save(ctx context.Context, files map[string][]byte, now time.Time) (string, error) {
	return s.c.Save(ctx, files, now)
}

func (s configMapStore) record(ctx context.Context, r decisionRecord) error {
	b, err := json.Marshal(r)
	if err != nil {
		return err
	}
	return s.c.RecordDecision(ctx, b, r.Promote, r.Reason, r.Time)
}

// promote decides whether the new model replaces the champion and, if so,
// saves it (with its report) as the store's current version.
func promote(ctx context.Context, st modelStore, report *training.Report, onnxBytes []byte, manifest *model.Manifest, margin, maxLastValue float64) (string, error) {
	var c training.Comparison
	if report.Comparison != nil {
		c = *report.Comparison
	}
	d := training.Decide(c, margin, maxLastValue)
	report.Decision = &d
	slog.Info("champion/challenger", "store", st, "promote", d.Promote, "reason", d.Reason)
	rec := decisionRecord{Time: time.Now().UTC(), Model: manifest.Name, Decision: d}
	if d.Promote {
		files, err := models.Files(onnxBytes, manifest)
		if err != nil {
			return "", err
		}
		if files["report.json"], err = json.MarshalIndent(report, "", "  "); err != nil {
			return "", fmt.Errorf("encoding the report: %w", err)
		}
		if rec.Version, err = st.save(ctx, files, rec.Time); err != nil {
			return "", fmt.Errorf("promoting: %w", err)
		}
	}
	// The history is a record, not the model: failing to write it is said,
	// not fatal.
	if err := st.record(ctx, rec); err != nil {
		slog.Warn("the decision is not in the store's promotion history", "store", st, "err", err)
	}
	return rec.Version, nil
}

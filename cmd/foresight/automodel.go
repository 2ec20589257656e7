package main

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/foresightscale/foresight/forecaster/config"
	"github.com/foresightscale/foresight/forecaster/model"
	"github.com/foresightscale/foresight/forecaster/topology"
	"github.com/foresightscale/foresight/models/gnn"
	"github.com/foresightscale/foresight/models/store"
)

// autoDefaults are the window and horizon `foresight train` gives a model:
// before the first one exists, the loop and its fallback run on them.
var autoDefaults = gnn.DefaultOptions(topology.Graph{})

// autoStep is the step of the model model: auto will learn: retrain.step,
// else what `foresight train` uses for Prometheus.
func autoStep(spec config.App) time.Duration {
	if spec.Retrain != nil && spec.Retrain.Step > 0 {
		return time.Duration(spec.Retrain.Step)
	}
	return defaultPrometheusStep
}

// autoModel opens the model store of an application with model: auto and
// loads its newest model, if it has one that loads. An empty store (or one
// that cannot be read now) is no error: the application starts on the
// fallback and its reloader takes the first model promoted.
func (o *serveOptions) autoModel(spec config.App, log *slog.Logger) (*model.Model, string, modelFiles, modelResolver, error) {
	const key = "modelStore" // buildApps names the application
	if spec.Source.Prometheus == nil {
		return nil, "", modelFiles{}, nil, errors.New("model: auto learns from the application's Prometheus history: set source.prometheus (or --prometheus-url)")
	}
	if len(spec.Budgets) > 0 {
		// A budget names the model's services, which model: auto does not
		// know before its first model.
		return nil, "", modelFiles{}, nil, errors.New("budgets: not supported with model: auto (a budget's services are checked against the model's at start): train a model first and serve it with model: STORE")
	}
	if _, _, isConfigMap, err := store.ParseConfigMapRef(spec.ModelStore, spec.Namespace); err != nil {
		return nil, "", modelFiles{}, nil, fmt.Errorf("%s: %w", key, err)
	} else if !isConfigMap {
		// The store is serve's own: a fresh install starts with none.
		if err := os.MkdirAll(spec.ModelStore, 0o755); err != nil {
			return nil, "", modelFiles{}, nil, fmt.Errorf("%s: %w", key, err)
		}
	}
	resolve, err := o.modelResolverFor(spec.ModelStore, spec.Namespace, log)
	if err != nil {
		return nil, "", modelFiles{}, nil, fmt.Errorf("%s: %w", key, err)
	}
	m, dir, files, err := loadResolved(resolve)
	switch {
	case err == nil:
		return m, dir, files, resolve, nil
	case errors.Is(err, errNoModelYet):
		log.Info("model: auto: no model in the store yet; forecasting every service with the model-free fallback until one is promoted",
			"app", spec.Name, "modelStore", spec.ModelStore, "retrain", spec.Retrain != nil)
	default:
		log.Warn("model: auto: the store's model cannot be loaded now; forecasting with the model-free fallback until one loads",
			"app", spec.Name, "modelStore", spec.ModelStore, "err", err)
	}
	return nil, "", modelFiles{}, resolve, nil
}

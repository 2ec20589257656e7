package config

import (
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode"

	"github.com/prometheus/common/model"

	foresightmodel "github.com/foresightscale/foresight/forecaster/model"
)

// ModelAuto is the model setting that means "learn it": serve forecasts with
// the model-free fallback until a model is promoted into modelStore, then
// serves the store's newest model (and follows later promotions).
const ModelAuto = "auto"

// RetrainConfig makes serve retrain an application's model itself: every
// Every it runs `foresight train --promote` on the application's last
// History as a low-priority child process, which promotes the new model
// into modelStore only if it beats the serving one.
type RetrainConfig struct {
	// Every is the time between training runs (required).
	Every model.Duration `yaml:"every"`
	// History is how far back each run reads; default 7d. A younger
	// application trains on what there is.
	History model.Duration `yaml:"history"`
	// MinHistory is the least history a run trains on; with less, the run
	// trains nothing and is retried (hourly, or every Every if shorter).
	// Default 6h.
	MinHistory model.Duration `yaml:"minHistory"`
	// Timeout ends a run that takes longer; default the smaller of Every
	// and 2h.
	Timeout model.Duration `yaml:"timeout"`
	// Step is the trained model's step; default 30s (the shipped recording
	// rules' step). With model: auto the loop runs at this step before the
	// first model exists, and a model of another step needs a restart.
	Step model.Duration `yaml:"step"`
	// Epochs bounds training (0: the model's default; early stopping may
	// end sooner).
	Epochs int `yaml:"epochs"`
	// MaxLastValueRatio is the most a new model's held-out MAE may be of
	// last value's, at every step, to be promoted (train
	// --max-last-value-ratio); default 1. A first model on noisy data may
	// lose to last value at step 1 while winning from step 2 on: a little
	// above 1 lets it replace the fallback, which is last value plus a
	// margin.
	MaxLastValueRatio float64 `yaml:"maxLastValueRatio"`
}

// Retrain defaults and bounds.
const (
	DefaultRetrainHistory    = 7 * 24 * time.Hour
	DefaultRetrainMinHistory = 6 * time.Hour
	DefaultRetrainStep       = 30 * time.Second
	defaultRetrainTimeout    = 2 * time.Hour
	// A run reads the whole history and trains for minutes: more often
	// than every minute is a typo (1m meant as 1h?), not a schedule.
	minRetrainEvery = time.Minute
	maxRetrainEvery = 90 * 24 * time.Hour
	// The history is one range query per feature at the model's step.
	maxRetrainHistory = 90 * 24 * time.Hour
	maxRetrainEpochs  = 10000
)

// withDefaults fills the keys left out.
func (r RetrainConfig) withDefaults() RetrainConfig {
	if r.History == 0 {
		r.History = model.Duration(DefaultRetrainHistory)
	}
	if r.MinHistory == 0 {
		r.MinHistory = model.Duration(min(DefaultRetrainMinHistory, time.Duration(r.History)))
	}
	if r.Timeout == 0 {
		r.Timeout = model.Duration(min(time.Duration(r.Every), defaultRetrainTimeout))
	}
	if r.Step == 0 {
		r.Step = model.Duration(DefaultRetrainStep)
	}
	if r.MaxLastValueRatio == 0 {
		r.MaxLastValueRatio = 1
	}
	return r
}

// retrainWithDefaults is a copy of r with its defaults, nil for nil.
func retrainWithDefaults(r *RetrainConfig) *RetrainConfig {
	if r == nil {
		return nil
	}
	d := r.withDefaults()
	return &d
}

// validate checks one retrain block; path is its key path ("retrain" or
// "apps[1].retrain").
func (r RetrainConfig) validate(path string) []error {
	var errs []error
	bad := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s.%s", path, fmt.Sprintf(format, args...)))
	}
	every, history, minHistory := time.Duration(r.Every), time.Duration(r.History), time.Duration(r.MinHistory)
	timeout, step := time.Duration(r.Timeout), time.Duration(r.Step)
	switch {
	case every == 0:
		bad("every: required (e.g. 24h): the time between training runs")
	case every < minRetrainEvery || every > maxRetrainEvery:
		bad("every: must be between %v and %v, got %v", model.Duration(minRetrainEvery), model.Duration(maxRetrainEvery), r.Every)
	}
	if history < 0 || history > maxRetrainHistory {
		bad("history: must be 0 (7d) or at most %v, got %v", model.Duration(maxRetrainHistory), r.History)
	}
	switch {
	case minHistory < 0:
		bad("minHistory: must not be negative, got %v", r.MinHistory)
	case history > 0 && minHistory > history:
		bad("minHistory: %v is longer than history %v; no run could ever train", r.MinHistory, r.History)
	case history == 0 && minHistory > DefaultRetrainHistory:
		bad("minHistory: %v is longer than the default history 7d; no run could ever train", r.MinHistory)
	}
	switch {
	case timeout < 0:
		bad("timeout: must not be negative, got %v", r.Timeout)
	case timeout != 0 && timeout < time.Minute:
		bad("timeout: must be 0 (the smaller of every and 2h) or at least 1m, got %v", r.Timeout)
	case timeout > every && every > 0:
		bad("timeout: %v is longer than every %v; runs would overlap", r.Timeout, r.Every)
	}
	if step != 0 && (step < foresightmodel.MinStep || step > foresightmodel.MaxStep) {
		bad("step: must be 0 (30s) or between %v and %v, got %v", model.Duration(foresightmodel.MinStep), model.Duration(foresightmodel.MaxStep), r.Step)
	}
	if step > 0 && history > 0 && history/step > 1_000_000 {
		bad("history: %v is over a million steps of %v; lengthen the step or shorten the history", r.History, r.Step)
	}
	if !(r.MaxLastValueRatio >= 0 && r.MaxLastValueRatio <= 2) {
		bad("maxLastValueRatio: must be 0 (1) or in (0, 2], got %v", r.MaxLastValueRatio)
	}
	if r.Epochs < 0 || r.Epochs > maxRetrainEpochs {
		bad("epochs: must be between 0 (the model's default) and %d, got %d", maxRetrainEpochs, r.Epochs)
	}
	return errs
}

// validateModelKeys checks an application's model, modelStore and retrain
// keys together; prefix is "" or "apps[i].".
func validateModelKeys(prefix, modelPath, storeRef string, retrain *RetrainConfig) []error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(prefix+format, args...)) }
	if modelPath != "" && (strings.TrimSpace(modelPath) == "" || strings.ContainsFunc(modelPath, unicode.IsControl)) {
		bad("model: %q is not a directory path", truncate(modelPath))
	}
	auto := modelPath == ModelAuto
	switch {
	case auto && storeRef == "":
		bad("modelStore: required with model: auto (a directory, or configmap:NAMESPACE/NAME): where promoted models are read from")
	case storeRef == "":
	case !auto:
		bad("modelStore: only used with model: auto (set model: auto, or give the store as model: %s)", truncate(storeRef))
	case strings.TrimSpace(storeRef) == "" || strings.ContainsFunc(storeRef, unicode.IsControl):
		// A configmap: reference is checked in full when serve opens it.
		bad("modelStore: %q is neither a directory path nor configmap:NAMESPACE/NAME", truncate(storeRef))
	}
	if retrain != nil {
		if !auto {
			errs = append(errs, errors.New(prefix+"retrain: needs model: auto and a modelStore (serve promotes what it trains into the store and serves the store's newest model)"))
		}
		errs = append(errs, retrain.validate(prefix+"retrain")...)
	}
	return errs
}

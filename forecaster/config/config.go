// Package config reads Foresight's optional YAML configuration file: which
// source to read, the PromQL templates, the loop timing and the scaling
// policy. Every error names the field at fault.
package config

import (
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/prometheus/common/model"
	"go.yaml.in/yaml/v2"

	"github.com/foresightscale/foresight/forecaster/budget"
	"github.com/foresightscale/foresight/forecaster/policy"
	"github.com/foresightscale/foresight/forecaster/source"
)

// Config is the whole configuration file.
type Config struct {
	// Namespace of the model's services: the namespace the metrics are
	// served in and the {{.Namespace}} of the PromQL templates.
	Namespace string `yaml:"namespace"`
	// Model is the model directory (model.onnx + manifest.json); empty means
	// the model built into the binary.
	Model string `yaml:"model"`
	// Interval between forecast cycles; 0 means the model's step.
	Interval model.Duration `yaml:"interval"`
	// Timeout bounds one cycle; 0 means 80% of the interval.
	Timeout model.Duration `yaml:"timeout"`
	// StaleAfter is how long the last good prediction is served when new
	// cycles fail. After that nothing is served for the service and the
	// HPA keeps its current replicas.
	StaleAfter model.Duration `yaml:"staleAfter"`
	// MaxMissingFraction is the largest share of a service's input window
	// that may be imputed before its forecast is held.
	MaxMissingFraction float64       `yaml:"maxMissingFraction"`
	Source             SourceConfig  `yaml:"source"`
	Policy             policy.Config `yaml:"policy"`
	// Budgets are optional shared CPU budgets: their services' replicas
	// are allocated by priority and predicted need so that the sum fits.
	Budgets []budget.Config `yaml:"budgets"`
}

// SourceConfig selects exactly one source. With none set, the synthetic
// demo workload is used.
type SourceConfig struct {
	Prometheus *source.PrometheusConfig `yaml:"prometheus"`
	CSV        *CSVConfig               `yaml:"csv"`
	Synthetic  *SyntheticConfig         `yaml:"synthetic"`
}

// CSVConfig replays a recorded wide-format CSV file.
type CSVConfig struct {
	Path string `yaml:"path"`
	// Replay maps wall-clock time onto the file cyclically (for a live
	// process); false uses the file's own timestamps.
	Replay bool `yaml:"replay"`
}

// SyntheticConfig tunes the built-in demo workload.
type SyntheticConfig struct {
	Seed uint64 `yaml:"seed"`
	// DayLength compresses the diurnal cycle (default 24h), so a demo shows
	// the forecasts move within minutes.
	DayLength model.Duration `yaml:"dayLength"`
}

// Default returns the configuration used when no file is given.
func Default() Config {
	return Config{
		Namespace:          "default",
		StaleAfter:         model.Duration(5 * time.Minute),
		MaxMissingFraction: 0.5,
		Policy:             policy.Default(),
	}
}

// Load reads and validates a configuration file on top of the defaults.
func Load(path string) (Config, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return Config{}, fmt.Errorf("reading config: %w", err)
	}
	c, err := Parse(b)
	if err != nil {
		return Config{}, fmt.Errorf("config %s: %w", path, err)
	}
	return c, nil
}

// Parse decodes YAML strictly (an unknown or misspelt key is an error) on top
// of the defaults and validates the result.
func Parse(b []byte) (Config, error) {
	c := Default()
	if err := yaml.UnmarshalStrict(b, &c); err != nil {
		return Config{}, err
	}
	if err := c.Validate(); err != nil {
		return Config{}, err
	}
	return c, nil
}

// Validate checks what can be checked without the model (the policy is
// checked against the model's services when the model is loaded).
func (c Config) Validate() error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if c.Namespace == "" {
		bad("namespace: must not be empty")
	}
	if c.Interval < 0 || c.Timeout < 0 || c.StaleAfter < 0 {
		bad("interval, timeout, staleAfter: must not be negative")
	}
	if c.Interval > 0 && c.Timeout > c.Interval {
		bad("timeout: %v is longer than the interval %v; cycles would overlap", c.Timeout, c.Interval)
	}
	if c.MaxMissingFraction <= 0 || c.MaxMissingFraction > 1 {
		bad("maxMissingFraction: must be in (0,1], got %v", c.MaxMissingFraction)
	}
	n := 0
	if c.Source.Prometheus != nil {
		n++
		if err := c.Source.Prometheus.Validate(); err != nil {
			bad("source.prometheus: %v", err)
		}
	}
	if c.Source.CSV != nil {
		n++
		if c.Source.CSV.Path == "" {
			bad("source.csv.path: must not be empty")
		}
	}
	if c.Source.Synthetic != nil {
		n++
		if c.Source.Synthetic.DayLength < 0 {
			bad("source.synthetic.dayLength: must not be negative")
		}
	}
	if n > 1 {
		bad("source: set exactly one of prometheus, csv, synthetic (got %d)", n)
	}
	return errors.Join(errs...)
}

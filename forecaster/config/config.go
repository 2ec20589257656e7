// Package config reads Foresight's optional YAML configuration file: which
// source to read, the PromQL templates, the loop timing and the scaling
// policy. Every error names the field at fault.
package config

import (
	"errors"
	"fmt"
	"io"
	"os"
	"reflect"
	"regexp"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/prometheus/common/model"
	"go.yaml.in/yaml/v2"

	"github.com/foresightscale/foresight/forecaster/budget"
	"github.com/foresightscale/foresight/forecaster/policy"
	"github.com/foresightscale/foresight/forecaster/source"
	"github.com/foresightscale/foresight/internal/textlimit"
)

// Config is the whole configuration file.
type Config struct {
	// Namespace of the model's services: the namespace the metrics are
	// served in and the {{.Namespace}} of the PromQL templates.
	Namespace string `yaml:"namespace"`
	// Model is the model directory (model.onnx + manifest.json) or a model
	// store (a directory `foresight train --promote` writes, or
	// configmap:NAMESPACE/NAME); "auto" learns it (fallback forecasts until
	// a model is promoted into ModelStore); empty means the model built into
	// the binary.
	Model string `yaml:"model"`
	// ModelStore is where model: auto reads promoted models from, and where
	// retrain promotes them.
	ModelStore string `yaml:"modelStore"`
	// Retrain, when set, makes serve retrain the model itself on a schedule
	// (needs model: auto).
	Retrain *RetrainConfig `yaml:"retrain"`
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
	MaxMissingFraction float64 `yaml:"maxMissingFraction"`
	// MaxInputAge is how old a service's newest real input sample may be
	// before its forecast is held as stale: a forecast from old input would
	// be published as if it were fresh. 0 means automatic (the forecaster
	// picks it from the model's step and the interval).
	MaxInputAge model.Duration `yaml:"maxInputAge"`
	// ModelReload is how often serve checks each application's model
	// directory for a changed model (model.onnx and manifest.json hashed)
	// and loads it; 0 turns polling off (SIGHUP still re-reads). It does
	// not apply to the built-in model.
	ModelReload model.Duration `yaml:"modelReload"`
	Source      SourceConfig   `yaml:"source"`
	Policy      policy.Config  `yaml:"policy"`
	// Budgets are optional shared CPU budgets: their services' replicas
	// are allocated by priority and predicted need so that the sum fits.
	Budgets []budget.Config `yaml:"budgets"`
	// Apps, when set, runs several applications in one process, each with
	// its own namespace, model, loop and budgets; top-level namespace, model
	// and budgets must then be left out. Applications resolves them.
	Apps []AppConfig `yaml:"apps"`
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
		ModelReload:        model.Duration(DefaultModelReload),
		Policy:             policy.Default(),
	}
}

// DefaultModelReload is how often serve looks for a changed model by
// default: a mounted ConfigMap or Secret changes within about a minute of
// its update anyway, and hashing two files is cheap.
const DefaultModelReload = 10 * time.Second

// maxFileSize bounds a configuration file: a real one is a few KiB, and a
// huge one (a wrong path, a generated runaway) should not be read whole.
const maxFileSize = 1 << 20

// Bounds of the settings, far outside any sane value: they catch typos and
// values that would flood Prometheus or never publish anything.
const (
	minInterval   = time.Second // a cycle is a set of Prometheus range queries
	maxInterval   = time.Hour
	minTimeout    = 100 * time.Millisecond
	maxStaleAfter = 24 * time.Hour
	maxInputAge   = time.Hour
	// A model directory is read and hashed on every poll: more often than
	// each second is load for nothing, less often than hourly is no reload.
	minModelReload = time.Second
	maxModelReload = time.Hour
	minDayLength   = time.Minute
	maxDayLength   = 365 * 24 * time.Hour
)

// namespaceName is a Kubernetes namespace name: an RFC 1123 label.
var namespaceName = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`)

// Load reads and validates a configuration file on top of the defaults.
func Load(path string) (Config, error) {
	f, err := os.Open(path)
	if err != nil {
		return Config{}, fmt.Errorf("reading config: %w", err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxFileSize+1))
	if err != nil {
		return Config{}, fmt.Errorf("reading config %s: %w", path, err)
	}
	if len(b) > maxFileSize {
		return Config{}, fmt.Errorf("config %s: larger than %d bytes; is it the right file?", path, maxFileSize)
	}
	c, err := Parse(b)
	if err != nil {
		return Config{}, fmt.Errorf("config %s: %w", path, err)
	}
	return c, nil
}

// Parse decodes YAML strictly (an unknown or misspelt key is an error) on top
// of the defaults and validates the result. Errors name the key path.
func Parse(b []byte) (Config, error) {
	c := Default()
	if err := yaml.UnmarshalStrict(b, &c); err != nil {
		return Config{}, validUTF8(locate(b, reflect.TypeFor[Config](), err))
	}
	if err := c.Validate(); err != nil {
		return Config{}, err
	}
	return c, nil
}

// Validate checks what can be checked without the model: every bound,
// including the policy's (the policy is checked against the model's services
// when the model is loaded, and staleAfter against the model's step when
// interval is 0).
func (c Config) Validate() error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if err := checkNamespace("namespace", c.Namespace); err != nil {
		errs = append(errs, err)
	}
	errs = append(errs, validateModelKeys("", c.Model, c.ModelStore, c.Retrain)...)
	errs = append(errs, c.validateApps()...)
	errs = append(errs, c.validateTiming()...)
	if !(c.MaxMissingFraction > 0 && c.MaxMissingFraction <= 1) {
		bad("maxMissingFraction: must be in (0,1], got %v", c.MaxMissingFraction)
	}
	errs = append(errs, c.Source.validate()...)
	// The policy's bounds do not need the model: refusing them here names
	// the field before anything is loaded.
	if err := c.Policy.ValidateSettings(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// validateTiming checks interval, timeout, staleAfter and maxInputAge.
func (c Config) validateTiming() []error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	interval, timeout, stale := time.Duration(c.Interval), time.Duration(c.Timeout), time.Duration(c.StaleAfter)
	if interval != 0 && (interval < minInterval || interval > maxInterval) {
		// 1ms would be thousands of cycles, each a set of Prometheus
		// queries, every second.
		bad("interval: must be 0 (the model's step) or between %v and %v, got %v", model.Duration(minInterval), model.Duration(maxInterval), c.Interval)
	}
	switch {
	case timeout < 0:
		bad("timeout: must not be negative, got %v", c.Timeout)
	case timeout != 0 && timeout < minTimeout:
		bad("timeout: must be 0 (80%% of the interval) or at least %v, got %v", minTimeout, c.Timeout)
	case interval > 0 && timeout > interval:
		bad("timeout: %v is longer than the interval %v; cycles would overlap", c.Timeout, c.Interval)
	case interval == 0 && timeout > maxInterval:
		bad("timeout: must be at most %v, got %v", model.Duration(maxInterval), c.Timeout)
	}
	switch {
	case stale < 0:
		bad("staleAfter: must not be negative, got %v", c.StaleAfter)
	case stale > maxStaleAfter:
		bad("staleAfter: must be at most %v, got %v", model.Duration(maxStaleAfter), c.StaleAfter)
	case stale != 0 && interval > 0 && stale <= interval:
		// Every prediction would expire before the next cycle replaced
		// it: nothing would ever be served.
		bad("staleAfter: %v must be longer than the interval %v, or no prediction would outlive its cycle", c.StaleAfter, c.Interval)
	}
	if age := time.Duration(c.MaxInputAge); age < 0 || age > maxInputAge {
		bad("maxInputAge: must be 0 (automatic) or at most %v, got %v", model.Duration(maxInputAge), c.MaxInputAge)
	}
	if r := time.Duration(c.ModelReload); r != 0 && (r < minModelReload || r > maxModelReload) {
		bad("modelReload: must be 0 (no polling) or between %v and %v, got %v", model.Duration(minModelReload), model.Duration(maxModelReload), c.ModelReload)
	}
	return errs
}

// validate checks that at most one source is set, and the one that is.
func (s SourceConfig) validate() []error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	n := 0
	if s.Prometheus != nil {
		n++
		if err := s.Prometheus.Validate(); err != nil {
			errs = append(errs, prefixField("source.prometheus", err))
		}
	}
	if s.CSV != nil {
		n++
		if s.CSV.Path == "" {
			bad("source.csv.path: must not be empty")
		}
	}
	if s.Synthetic != nil {
		n++
		if d := time.Duration(s.Synthetic.DayLength); d != 0 && (d < minDayLength || d > maxDayLength) {
			bad("source.synthetic.dayLength: must be 0 (24h) or between %v and %v, got %v", model.Duration(minDayLength), model.Duration(maxDayLength), s.Synthetic.DayLength)
		}
	}
	if n > 1 {
		bad("source: set exactly one of prometheus, csv, synthetic (got %d)", n)
	}
	return errs
}

// fieldFirst matches an error that starts with a key path, as
// source.PrometheusConfig.Validate's do ("timeout -1s: must not be negative").
var fieldFirst = regexp.MustCompile(`^[a-zA-Z_][a-zA-Z0-9_.]*[ :]`)

// prefixField puts the path of the block in front of an error from its own
// Validate: source.prometheus.timeout when the error starts with the key,
// source.prometheus: otherwise.
func prefixField(path string, err error) error {
	if fieldFirst.MatchString(err.Error()) {
		return fmt.Errorf("%s.%w", path, err)
	}
	return fmt.Errorf("%s: %w", path, err)
}

// truncate bounds a user's value echoed in an error, cutting on a
// character boundary.
func truncate(s string) string {
	const n = 80
	if len(s) <= n {
		return s
	}
	return textlimit.Prefix(s, n) + "..."
}

// validUTF8 repairs a message that yaml.v2 cut short in the middle of a
// character when quoting a long value, so that logs stay valid UTF-8.
func validUTF8(err error) error {
	if msg := err.Error(); !utf8.ValidString(msg) {
		return errors.New(strings.ToValidUTF8(msg, "\uFFFD"))
	}
	return err
}

// locate turns a decoding error into errors that name their key path.
// yaml.v2 reports a type's own UnmarshalYAML error (`not a valid duration
// string: "30"`) without a position and a type mismatch with a line but no
// key, so on failure the document is decoded again generically and each
// value re-decoded on its own into its field's type, descending into
// structs, maps and lists while the failure reproduces there.
func locate(doc []byte, t reflect.Type, decodeErr error) error {
	var tree yaml.MapSlice
	if yaml.Unmarshal(doc, &tree) != nil {
		return decodeErr // not a mapping, or not YAML: the parser's own error has the line
	}
	errs := walk("", tree, t)
	if len(errs) == 0 {
		return decodeErr
	}
	return errors.Join(errs...)
}

// walk returns the errors of decoding v into a t, each naming the deepest
// key path at which it reproduces.
func walk(path string, v any, t reflect.Type) []error {
	err := decodeAs(v, t)
	if err == nil {
		return nil
	}
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	var errs []error
	switch v := v.(type) {
	case yaml.MapSlice:
		switch t.Kind() {
		case reflect.Struct:
			fields := yamlFields(t)
			for _, item := range v {
				key := fmt.Sprint(item.Key)
				ft, ok := fields[key]
				if !ok {
					errs = append(errs, fmt.Errorf("%s: unknown key (misspelt?)", join(path, truncate(key))))
					continue
				}
				errs = append(errs, walk(join(path, key), item.Value, ft)...)
			}
		case reflect.Map:
			for _, item := range v {
				errs = append(errs, walk(join(path, truncate(fmt.Sprint(item.Key))), item.Value, t.Elem())...)
			}
		}
	case []any:
		if t.Kind() == reflect.Slice || t.Kind() == reflect.Array {
			for i, e := range v {
				errs = append(errs, walk(fmt.Sprintf("%s[%d]", path, i), e, t.Elem())...)
			}
		}
	}
	if len(errs) > 0 {
		return errs
	}
	// The value fails as a whole: a wrong kind, a scalar its type refuses,
	// or a check across its fields.
	if path == "" {
		return nil // the caller's own error has the file's line numbers
	}
	if t == reflect.TypeFor[model.Duration]() {
		if s, ok := scalar(v); ok {
			return []error{durationError(path, s)}
		}
	}
	return []error{fmt.Errorf("%s: %w", path, plainMessage(err))}
}

// decodeAs decodes v (from a generic decode) into a new t, strictly.
func decodeAs(v any, t reflect.Type) error {
	b, err := yaml.Marshal(v)
	if err != nil {
		return err
	}
	return yaml.UnmarshalStrict(b, reflect.New(t).Interface())
}

// lineNumber is yaml.v2's position prefix; it is relative to the re-encoded
// value, not the file, so it is dropped in favour of the key path.
var lineNumber = regexp.MustCompile(`^line \d+: `)

// plainMessage is the message of a re-decoding error without yaml.v2's
// framing and line numbers.
func plainMessage(err error) error {
	var te *yaml.TypeError
	if !errors.As(err, &te) {
		return err
	}
	msgs := make([]string, len(te.Errors))
	for i, m := range te.Errors {
		msgs[i] = lineNumber.ReplaceAllString(m, "")
	}
	return errors.New(strings.Join(msgs, "; "))
}

// durationError explains a value that is not a model.Duration.
func durationError(path, s string) error {
	if d, err := model.ParseDuration(strings.TrimPrefix(s, "-")); err == nil && strings.HasPrefix(s, "-") {
		if positiveDurations[path] {
			return fmt.Errorf("%s: must be positive, got -%v", path, d)
		}
		return fmt.Errorf("%s: must not be negative, got -%v", path, d)
	}
	_, err := model.ParseDuration(s)
	if err == nil || strings.HasPrefix(err.Error(), "not a valid duration string") {
		return fmt.Errorf("%s: %q is not a duration (use a unit, e.g. 30s)", path, truncate(s))
	}
	return fmt.Errorf("%s: %q is not a duration: %w", path, truncate(s), err) // out of range, unknown unit
}

// positiveDurations are the duration keys for which 0 is not a setting.
var positiveDurations = map[string]bool{"policy.leadTime": true}

// scalar is v as the string a YAML scalar would be, if it is one.
func scalar(v any) (string, bool) {
	switch v.(type) {
	case yaml.MapSlice, []any, nil:
		return "", false
	}
	return fmt.Sprint(v), true
}

// yamlFields maps a struct's YAML keys to their field types, including the
// fields of inlined structs.
func yamlFields(t reflect.Type) map[string]reflect.Type {
	fields := map[string]reflect.Type{}
	for f := range t.Fields() {
		if !f.IsExported() {
			continue
		}
		tag := f.Tag.Get("yaml")
		name, opts, _ := strings.Cut(tag, ",")
		if name == "-" {
			continue
		}
		if strings.Contains(","+opts+",", ",inline,") {
			ft := f.Type
			for ft.Kind() == reflect.Pointer {
				ft = ft.Elem()
			}
			if ft.Kind() == reflect.Struct {
				for k, v := range yamlFields(ft) {
					fields[k] = v
				}
			}
			continue
		}
		if name == "" {
			name = strings.ToLower(f.Name)
		}
		fields[name] = f.Type
	}
	return fields
}

// join appends key to a key path.
func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

package main

import (
	"errors"
	"testing"

	"github.com/foresightscale/foresight/forecaster/config"
	"github.com/foresightscale/foresight/forecaster/model"
	"github.com/foresightscale/foresight/forecaster/source"
)

func TestAnyReady(t *testing.T) {
	ok := func() error { return nil }
	down := func(msg string) func() error { return func() error { return errors.New(msg) } }
	tests := []struct {
		name    string
		checks  []namedCheck
		wantErr string // empty: ready
	}{
		{"all ready", []namedCheck{{"a", ok}, {"b", ok}}, ""},
		{"one of two ready", []namedCheck{{"a", down("no fresh forecast yet (last cycle: timeout)")}, {"b", ok}}, ""},
		{"none ready names each", []namedCheck{{"a", down("no fresh forecast yet")}, {"b", down("no fresh forecast for 2m0s")}},
			"a: no fresh forecast yet; b: no fresh forecast for 2m0s"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := anyReady(tc.checks)
			switch {
			case tc.wantErr == "" && err != nil:
				t.Fatalf("not ready: %v", err)
			case tc.wantErr != "" && (err == nil || err.Error() != tc.wantErr):
				t.Fatalf("error = %v, want %q", err, tc.wantErr)
			}
		})
	}
}

// TestDemoSummary: the demo banner says what each application really runs on.
func TestDemoSummary(t *testing.T) {
	prom := source.DefaultPrometheusConfig()
	prom.URL = "http://127.0.0.1:9090"
	app := func(name, ns, dir string, src config.SourceConfig) *application {
		return &application{App: config.App{Name: name, Namespace: ns, Model: dir, Source: src},
			manifest: &model.Manifest{Name: "m-" + name, Services: []string{"x", "y", "z"}}, builtIn: dir == ""}
	}
	tests := []struct {
		name string
		apps []*application
		want string
	}{
		{"the embedded demo", []*application{app("default", "default", "", config.SourceConfig{})},
			"synthetic Online Boutique workload, built-in model."},
		{"prometheus with --demo", []*application{app("default", "default", "", config.SourceConfig{Prometheus: &prom})},
			"Prometheus at http://127.0.0.1:9090, built-in model."},
		{"csv with a model directory", []*application{app("default", "default", "/models/books", config.SourceConfig{CSV: &config.CSVConfig{Path: "books.csv"}})},
			"replay of books.csv, model m-default from /models/books."},
		{"synthetic on a model directory", []*application{app("default", "default", "/models/books", config.SourceConfig{})},
			"synthetic workload on the model's call graph (3 services), model m-default from /models/books."},
		{"two applications", []*application{app("a", "team-a", "", config.SourceConfig{}), app("b", "team-b", "/m", config.SourceConfig{})},
			"app a (namespace team-a): synthetic Online Boutique workload, built-in model.\n" +
				"app b (namespace team-b): synthetic workload on the model's call graph (3 services), model m-b from /m."},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := demoSummary(tc.apps); got != tc.want {
				t.Errorf("demoSummary =\n%s\nwant\n%s", got, tc.want)
			}
		})
	}
}

package config

import (
	"strings"
	"testing"
	"time"
)

func TestModelAutoAndRetrain(t *testing.T) {
	tests := []struct {
		name    string
		yaml    string
		wantErr []string // substrings; none means valid
		check   func(t *testing.T, a App)
	}{
		{name: "defaults", yaml: "model: auto\nmodelStore: /var/lib/foresight/ledger\nretrain: {every: 24h}\n", check: func(t *testing.T, a App) {
			r := a.Retrain
			if r == nil || time.Duration(r.History) != 7*24*time.Hour || time.Duration(r.MinHistory) != 6*time.Hour ||
				time.Duration(r.Timeout) != 2*time.Hour || time.Duration(r.Step) != 30*time.Second || r.Epochs != 0 || r.MaxLastValueRatio != 1 {
				t.Errorf("retrain = %+v", r)
			}
			if a.ModelStore != "/var/lib/foresight/ledger" {
				t.Errorf("modelStore = %q", a.ModelStore)
			}
		}},
		{name: "short history shortens minHistory and timeout follows every", yaml: "model: auto\nmodelStore: configmap:ops/ledger-model\nretrain: {every: 30m, history: 2h}\n", check: func(t *testing.T, a App) {
			if r := a.Retrain; time.Duration(r.MinHistory) != 2*time.Hour || time.Duration(r.Timeout) != 30*time.Minute {
				t.Errorf("retrain = %+v", r)
			}
		}},
		{name: "model auto without retrain (a CronJob trains)", yaml: "model: auto\nmodelStore: configmap:ops/ledger-model\n", check: func(t *testing.T, a App) {
			if a.Retrain != nil || a.Model != ModelAuto {
				t.Errorf("app = %+v", a)
			}
		}},
		{name: "per application", yaml: "apps:\n  - {name: ledger, namespace: pay, model: auto, modelStore: /s/ledger, retrain: {every: 6h, history: 3d, epochs: 20}}\n  - {name: web, namespace: web}\n", check: func(t *testing.T, a App) {
			if a.Name != "ledger" || a.Retrain == nil || a.Retrain.Epochs != 20 || time.Duration(a.Retrain.History) != 72*time.Hour {
				t.Errorf("app = %+v", a)
			}
		}},
		{name: "auto without store", yaml: "model: auto\n", wantErr: []string{"modelStore: required with model: auto"}},
		{name: "store without auto", yaml: "model: /models/ledger\nmodelStore: /s\n", wantErr: []string{"modelStore: only used with model: auto"}},
		{name: "retrain without auto", yaml: "retrain: {every: 1h}\n", wantErr: []string{"retrain: needs model: auto"}},
		{name: "every missing", yaml: "model: auto\nmodelStore: /s\nretrain: {history: 1d}\n", wantErr: []string{"retrain.every: required"}},
		{name: "every of a millisecond", yaml: "model: auto\nmodelStore: /s\nretrain: {every: 1ms}\n", wantErr: []string{"retrain.every: must be between 1m and 90d"}},
		{name: "minHistory beyond history", yaml: "model: auto\nmodelStore: /s\nretrain: {every: 1h, history: 1h, minHistory: 2h}\n", wantErr: []string{"retrain.minHistory: 2h is longer than history 1h"}},
		{name: "minHistory beyond the default history", yaml: "model: auto\nmodelStore: /s\nretrain: {every: 1h, minHistory: 8d}\n", wantErr: []string{"retrain.minHistory"}},
		{name: "timeout beyond every", yaml: "model: auto\nmodelStore: /s\nretrain: {every: 1h, timeout: 2h}\n", wantErr: []string{"retrain.timeout: 2h is longer than every 1h"}},
		{name: "step too short and too many steps", yaml: "model: auto\nmodelStore: /s\nretrain: {every: 1h, step: 1ms}\n", wantErr: []string{"retrain.step"}},
		{name: "a million steps", yaml: "model: auto\nmodelStore: /s\nretrain: {every: 1h, step: 1s, history: 30d}\n", wantErr: []string{"over a million steps"}},
		{name: "last-value ratio out of range", yaml: "model: auto\nmodelStore: /s\nretrain: {every: 1h, maxLastValueRatio: 3}\n", wantErr: []string{"retrain.maxLastValueRatio"}},
		{name: "NaN last-value ratio", yaml: "model: auto\nmodelStore: /s\nretrain: {every: 1h, maxLastValueRatio: .nan}\n", wantErr: []string{"retrain.maxLastValueRatio"}},
		{name: "negative epochs", yaml: "model: auto\nmodelStore: /s\nretrain: {every: 1h, epochs: -2}\n", wantErr: []string{"retrain.epochs"}},
		{name: "negative history", yaml: "model: auto\nmodelStore: /s\nretrain: {every: 1h, history: -1h}\n", wantErr: []string{"retrain.history"}},
		{name: "misspelt key", yaml: "model: auto\nmodelStore: /s\nretrain: {every: 1h, evrey: 2h}\n", wantErr: []string{"evrey"}},
		{name: "top-level keys beside apps", yaml: "modelStore: /s\napps:\n  - {name: a, namespace: a}\n", wantErr: []string{"modelStore, retrain: not used with apps"}},
		{name: "application errors name the application", yaml: "apps:\n  - {name: a, namespace: a, retrain: {every: 1ms}}\n", wantErr: []string{"apps[0].retrain: needs model: auto", "apps[0].retrain.every"}},
		{name: "control characters in the store", yaml: "model: auto\nmodelStore: \"a\\x01b\"\n", wantErr: []string{"modelStore:"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, err := Parse([]byte(tc.yaml))
			if len(tc.wantErr) > 0 {
				if err == nil {
					t.Fatalf("accepted:\n%s", tc.yaml)
				}
				for _, want := range tc.wantErr {
					if !strings.Contains(err.Error(), want) {
						t.Errorf("error %q does not contain %q", err, want)
					}
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			tc.check(t, c.Applications()[0])
		})
	}
}

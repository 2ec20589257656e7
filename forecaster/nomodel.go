package forecaster

import (
	"time"

	"github.com/foresightscale/foresight/forecaster/model"
	"github.com/foresightscale/foresight/forecaster/source"
)

// NoModelName is the model name a loop without a model reports (foresight_model_info, logs).
const NoModelName = "none"

// NoModel returns the manifest of a loop that has no model yet: no services, so every
// service of the data is forecast by the fallback; step, window and horizon are those the
// first trained model will have (the loop's timing and the fallback's history follow them).
//
// It has no outputs, inputs or normalisation: nothing runs a network on it.
// Its features are the two the fallback reads (it sizes from the request
// rate and reports CPU), so the loop queries nothing else.
func NoModel(step time.Duration, window, horizon int) *model.Manifest {
	return &model.Manifest{
		Format:      model.ManifestFormat,
		Name:        NoModelName,
		Description: "no trained model yet: every service is forecast by the model-free fallback",
		Features:    []source.Feature{source.Requests, source.CPU},
		Window:      window,
		Horizon:     horizon,
		Step:        model.Duration(step),
	}
}

// HasModel reports whether the loop serves a trained model (false while on NoModel).
func (f *Forecaster) HasModel() bool {
	return isModel(f.Model())
}

// isModel tells a trained model from NoModel's manifest: a model forecasts
// services, NoModel none.
func isModel(m *model.Manifest) bool { return len(m.Services) > 0 }

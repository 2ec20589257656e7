package backtest

import (
	"encoding/json"
	"fmt"
	"math"
	"strconv"
)

// Metric is a number that may be undefined (no points to compute it on).
// It is written as a JSON number, or null when undefined: a report never
// carries NaN, and the reason a metric is null is in the "undefined" map
// next to it.
type Metric struct {
	Value   float64
	Defined bool
}

func defined(v float64) Metric { return Metric{Value: v, Defined: true} }

// MarshalJSON writes the value or null. A defined non-finite value is a bug
// upstream and fails the encoding rather than produce an unreadable report.
func (m Metric) MarshalJSON() ([]byte, error) {
	if !m.Defined {
		return []byte("null"), nil
	}
	if math.IsNaN(m.Value) || math.IsInf(m.Value, 0) {
		return nil, fmt.Errorf("metric value %v is not finite", m.Value)
	}
	return strconv.AppendFloat(nil, m.Value, 'g', -1, 64), nil
}

// UnmarshalJSON reads a number or null.
func (m *Metric) UnmarshalJSON(b []byte) error {
	if string(b) == "null" {
		*m = Metric{}
		return nil
	}
	var v float64
	if err := json.Unmarshal(b, &v); err != nil {
		return fmt.Errorf("metric: %w", err)
	}
	*m = defined(v)
	return nil
}

// String formats the value for tables ("-" when undefined).
func (m Metric) String() string {
	if !m.Defined {
		return "-"
	}
	return strconv.FormatFloat(m.Value, 'g', 4, 64)
}

// errorSums accumulates forecast errors over observed actuals.
type errorSums struct {
	points     int // observed actuals scored
	absSum     float64
	sqSum      float64
	mapePoints int // observed non-zero actuals (MAPE's denominator)
	apeSum     float64
}

func (s *errorSums) add(forecast, actual float64) {
	e := forecast - actual
	s.points++
	s.absSum += math.Abs(e)
	s.sqSum += e * e
	if actual != 0 {
		s.mapePoints++
		s.apeSum += math.Abs(e / actual)
	}
}

func (s *errorSums) merge(o errorSums) {
	s.points += o.points
	s.absSum += o.absSum
	s.sqSum += o.sqSum
	s.mapePoints += o.mapePoints
	s.apeSum += o.apeSum
}

// Reasons a metric is null.
const (
	noActuals        = "no observed actual to compare with"
	noNonZeroActuals = "every observed actual is 0 (MAPE is undefined)"
)

func (s errorSums) mae() Metric {
	if s.points == 0 {
		return Metric{}
	}
	return defined(s.absSum / float64(s.points))
}

func (s errorSums) rmse() Metric {
	if s.points == 0 {
		return Metric{}
	}
	return defined(math.Sqrt(s.sqSum / float64(s.points)))
}

// mape is in percent, over the observed actuals that are not 0.
func (s errorSums) mape() Metric {
	if s.mapePoints == 0 {
		return Metric{}
	}
	return defined(100 * s.apeSum / float64(s.mapePoints))
}

// Scores are the errors of one method, over all services or one service.
type Scores struct {
	MAE  Metric `json:"mae"`
	RMSE Metric `json:"rmse"`
	// MAPE is the mean absolute percentage error, in percent, over the
	// observed actuals that are not 0.
	MAPE Metric `json:"mape"`
	// MAEByHorizon[h-1] is the MAE of the forecasts h steps ahead.
	MAEByHorizon []Metric `json:"mae_by_horizon"`
	// EvaluatedPoints counts the observed actuals scored; MAPEPoints those
	// of them that are not 0.
	EvaluatedPoints int `json:"evaluated_points"`
	MAPEPoints      int `json:"mape_points"`
	// Undefined says why a metric above is null, by its key.
	Undefined map[string]string `json:"undefined,omitempty"`
}

// scores turns per-horizon sums into Scores.
func scores(byHorizon []errorSums) Scores {
	var all errorSums
	s := Scores{MAEByHorizon: make([]Metric, len(byHorizon))}
	for h, sums := range byHorizon {
		all.merge(sums)
		s.MAEByHorizon[h] = sums.mae()
		if sums.points == 0 {
			s.undefined(fmt.Sprintf("mae_by_horizon[%d]", h), noActuals)
		}
	}
	s.MAE, s.RMSE, s.MAPE = all.mae(), all.rmse(), all.mape()
	s.EvaluatedPoints, s.MAPEPoints = all.points, all.mapePoints
	if all.points == 0 {
		s.undefined("mae", noActuals)
		s.undefined("rmse", noActuals)
	}
	switch {
	case all.points == 0:
		s.undefined("mape", noActuals)
	case all.mapePoints == 0:
		s.undefined("mape", noNonZeroActuals)
	}
	return s
}

func (s *Scores) undefined(key, reason string) {
	if s.Undefined == nil {
		s.Undefined = make(map[string]string)
	}
	s.Undefined[key] = reason
}

package strategy

import (
	"context"
	"fmt"
	"math"
	"slices"
	"strings"

	"asymptote.dev/asymptote/scaling"
	"asymptote.dev/asymptote/sweep"
)

// AsymptoteRefit is the asymptote search with the width prediction it made
// before the cost of certainty, kept as the baseline the tests compare the
// search with: refit and bootstrap the data plus the added runs, their
// losses the fit's prediction spread by its residual noise (alternately
// above and below).
func AsymptoteRefit(ctx context.Context, s *Study) (Step, error) {
	return asymptote(ctx, s, refitWidth)
}

func refitWidth(ctx context.Context, fit *scaling.Fit, obs []scaling.Obs, _ float64, added []scaling.Obs) (float64, error) {
	hyp := slices.Clone(obs)
	sigma := max(fit.Goodness.RMSELog, 1e-3)
	for i, o := range added {
		z := sigma
		if i%2 == 1 {
			z = -sigma
		}
		o.Loss = fit.Predict(o) * math.Exp(z)
		hyp = append(hyp, o)
	}
	_, w, err := eWidth(ctx, hyp)
	return w, err
}

// CrossoverCheapest is the crossover search choosing, among values near
// the crossing, the one the cost of certainty predicts to narrow its
// interval most per unit of cost (cheapestCrossing).
func CrossoverCheapest(ctx context.Context, s *Study) (Step, error) {
	return crossover(ctx, s, cheapestCrossing)
}

// cheapestCrossing, the alternative the tests compare the search with,
// chooses among the crossing's estimate, its interval's
// ends and the geometric midpoints between them (3 significant digits,
// values not yet measured) the one whose runs, both groups at every seed,
// are predicted to narrow the crossing's interval most per unit of cost
// (the value per run). The prediction is the cost of certainty's
// (scaling.PredictCrossingRatio): the measured ratio raised to the ratio
// of log x*'s Wald widths after and before the runs.
func cheapestCrossing(fits [2]*scaling.Fit, root scaling.Root, ratio float64, axis sweep.Axis, runs int) (float64, string, error) {
	iv := root.Interval
	var cands []float64
	for _, c := range []float64{root.X, math.Sqrt(root.X * iv.Hi), math.Sqrt(root.X * iv.Lo), iv.Hi, iv.Lo} {
		c = roundSig(c, 3)
		if c > 0 && !slices.Contains(axis.Values, any(c)) && !slices.Contains(cands, c) {
			cands = append(cands, c)
		}
	}
	best, bestScore, bestRatio := 0.0, 0.0, 0.0
	var others []string
	for _, c := range cands {
		pred, err := predictCrossing(fits, root, ratio, c, runs)
		if err != nil {
			continue
		}
		score := (math.Log(ratio) - math.Log(pred)) / (c * float64(2*runs))
		others = append(others, fmt.Sprintf("%g to %.3g×", c, pred))
		if score > bestScore {
			best, bestScore, bestRatio = c, score, pred
		}
	}
	if best == 0 {
		return 0, "", fmt.Errorf("no value near the crossing is predicted to narrow its interval (candidates %v)", cands)
	}
	return best, fmt.Sprintf("measuring both groups at %g (%d runs) is predicted to narrow it to %.3g×, the most per unit of cost (%s)", best, 2*runs, bestRatio, strings.Join(others, ", ")), nil
}

package strategy

import (
	"context"
	"math"
	"slices"

	"asymptote.dev/asymptote/scaling"
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

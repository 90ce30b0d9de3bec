package scaling

import (
	"context"
	"fmt"
	"math"
	"sort"
	"strings"
)

// Nested is the nested asymptote of Kim et al. 2025: for each model size N
// the ensemble law L(K) = E_N + A·K^−alpha is fitted over the number of
// members K and its K → ∞ asymptote E_N taken; a power law in N is then
// fitted to the E_N and its N → ∞ asymptote taken.
type Nested struct {
	// PerN are the inner fits, by increasing N.
	PerN []*Fit
	// Sizes are their N.
	Sizes []float64
	// Outer is the power law fitted to (N, E_N).
	Outer *Fit
	// Asymptote is lim_N lim_K L, Outer's E; Interval is its percentile
	// interval from the nested bootstrap (equal to Asymptote without one,
	// NaN when an inner fit is not identified).
	Asymptote float64
	Interval  Interval
}

// NestedAsymptote fits the nested limit to observations carrying N, the
// member count K in X, and the loss. With resamples > 0 it bootstraps:
// replicate i resamples every size's runs, refits each L(K) and then the
// outer law on the replicate asymptotes, so the interval carries both
// stages' uncertainty.
func NestedAsymptote(ctx context.Context, obs []Obs, o Options, b BootstrapOptions) (*Nested, error) {
	bySize := map[float64][]Obs{}
	for i, ob := range obs {
		if !(ob.N > 0) {
			return nil, &RowError{Row: i, Field: "params", Msg: "nested asymptote needs a positive parameter count"}
		}
		bySize[ob.N] = append(bySize[ob.N], ob)
	}
	nest := &Nested{}
	for n := range bySize {
		nest.Sizes = append(nest.Sizes, n)
	}
	sort.Float64s(nest.Sizes)
	if len(nest.Sizes) < 3 {
		return nil, fmt.Errorf("%w: the outer law needs at least 3 model sizes, got %d", ErrTooFewPoints, len(nest.Sizes))
	}
	var outer []Obs
	for _, n := range nest.Sizes {
		f, err := FitLaw(ctx, Ensemble, bySize[n], o)
		if err != nil {
			return nil, fmt.Errorf("N = %g: %w", n, err)
		}
		nest.PerN = append(nest.PerN, f)
		outer = append(outer, Obs{X: n, Loss: f.Params[0]})
	}
	of, err := FitLaw(ctx, Power, outer, o)
	if err != nil {
		return nil, fmt.Errorf("outer law: %w", err)
	}
	nest.Outer, nest.Asymptote = of, of.Params[0]
	nest.Interval = Interval{nest.Asymptote, nest.Asymptote}
	if b.Resamples <= 0 {
		return nest, nil
	}
	var unidentified []string
	for k, f := range nest.PerN {
		bk := b
		bk.Seed = b.Seed + uint64(k)*0x9e3779b97f4a7c15
		if _, err := Bootstrap(ctx, f, bk); err != nil {
			return nil, err
		}
		if f.Bootstrap.NotIdentified {
			unidentified = append(unidentified, fmt.Sprintf("%g", nest.Sizes[k]))
		}
	}
	if len(unidentified) > 0 {
		// A size whose E_N has no sampling distribution cannot enter the
		// replicates, and dropping it would narrow the interval: give none.
		nest.Interval = Interval{math.NaN(), math.NaN()}
		of.Warnings = append(of.Warnings, fmt.Sprintf(
			"the asymptote E_N of size(s) %s is not identified (no residual degrees of freedom): the nested asymptote has no interval",
			strings.Join(unidentified, ", ")))
		return nest, nil
	}
	res := BootstrapResult{Resamples: b.Resamples, Level: nest.PerN[0].Bootstrap.Level,
		Samples: make([][]float64, b.Resamples)}
	for i := range b.Resamples {
		rep := make([]Obs, 0, len(outer))
		for _, f := range nest.PerN {
			if s := f.Bootstrap.Samples[i]; s != nil {
				rep = append(rep, Obs{X: f.obs[0].N, Loss: s[0]})
			}
		}
		if len(rep) < 3 {
			continue
		}
		if p, ok := of.refitOn(rep); ok {
			res.Samples[i] = p
		}
	}
	var es []float64
	for _, s := range res.Samples {
		if s != nil {
			es = append(es, s[0])
		}
	}
	es = sortedCopy(es)
	q := (1 - res.Level) / 2
	nest.Interval = Interval{quantile(es, q), quantile(es, 1-q)}
	if nest.Interval.Lo > 0 && nest.Interval.Hi/nest.Interval.Lo > 1.5 {
		of.Warnings = append(of.Warnings, fmt.Sprintf("nested asymptote interval (%.3g, %.3g) is wide: the limit is weakly identified",
			nest.Interval.Lo, nest.Interval.Hi))
	}
	return nest, nil
}

// refitOn refits f's law to obs from f's optimum and returns the natural
// parameters.
func (f *Fit) refitOn(obs []Obs) ([]float64, bool) {
	if len(obs) < f.lay.free {
		return nil, false
	}
	for _, o := range obs {
		if !(o.Loss > 0) || math.IsInf(o.Loss, 0) {
			return nil, false
		}
	}
	set := f.opts.Settings.withDefaults()
	ev := newEvaluator(f.Law.bind(obs), &f.lay, f.Loss, obs)
	z, r := f.refit(ev, newLBFGS(f.lay.free, set.Memory))
	if !finite(r.f) {
		return nil, false
	}
	th := make([]float64, f.lay.p)
	f.lay.expand(z, th)
	p := make([]float64, f.lay.p)
	f.Law.natural(th, p)
	return p, true
}

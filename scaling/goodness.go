package scaling

import (
	"context"
	"fmt"
	"math"
	"sort"

	"gonum.org/v1/gonum/mat"
	"gonum.org/v1/gonum/stat"
	"gonum.org/v1/gonum/stat/distuv"
)

// Goodness summarises how well a fit describes its observations, on the
// linear and the log scale.
type Goodness struct {
	// R2 is 1 − Σ(L − L̂)²/Σ(L − mean L)² on the linear scale; R2Log the
	// same on log L.
	R2, R2Log float64
	// RMSE and RMSELog are root-mean-square residuals.
	RMSE, RMSELog float64
	// MAE is the mean absolute residual on the linear scale.
	MAE float64
	// MRE is the mean of |L̂ − L|/L in percent; MRELog the mean of
	// |log L̂ − log L|/|log L| in percent.
	MRE, MRELog float64
	// LogLik is the Gaussian log-likelihood of the log residuals at their
	// maximum-likelihood variance, or for the Huber likelihood loss that
	// likelihood itself; AIC = 2k − 2·LogLik and BIC = k·log n − 2·LogLik
	// with k free parameters (a variance counts as one).
	LogLik, AIC, BIC float64
	// DoF is the residual degrees of freedom, n − p, with p the free
	// parameters of the curve (tied exponents count once; neither the
	// Gaussian variance nor the Huber likelihood's log σ counts, as they
	// describe the noise, not the curve). At zero the curve can pass
	// through every point and the parameters are not identified: Bootstrap
	// then gives no interval.
	DoF int
}

// Residual is one row of the residual table.
type Residual struct {
	// Index is the observation's position in the fitted data.
	Index int
	// Observed and Predicted are L and L̂.
	Observed, Predicted float64
	// Resid is L̂ − L; LogResid is log L̂ − log L.
	Resid, LogResid float64
}

func goodness(f *Fit) ([]Residual, Goodness) {
	n := len(f.obs)
	res := make([]Residual, n)
	var g Goodness
	var mean, meanLog float64
	for _, o := range f.obs {
		mean += o.Loss
		meanLog += math.Log(o.Loss)
	}
	mean /= float64(n)
	meanLog /= float64(n)
	var ss, ssLog, tot, totLog float64
	for i, o := range f.obs {
		p := f.Predict(o)
		r := Residual{Index: i, Observed: o.Loss, Predicted: p, Resid: p - o.Loss,
			LogResid: math.Log(p) - math.Log(o.Loss)}
		res[i] = r
		ss += r.Resid * r.Resid
		ssLog += r.LogResid * r.LogResid
		tot += (o.Loss - mean) * (o.Loss - mean)
		ly := math.Log(o.Loss)
		totLog += (ly - meanLog) * (ly - meanLog)
		g.MAE += math.Abs(r.Resid)
		g.MRE += math.Abs(r.Resid) / o.Loss
		g.MRELog += math.Abs(r.LogResid) / math.Abs(ly)
	}
	fn := float64(n)
	g.R2, g.R2Log = 1-ss/tot, 1-ssLog/totLog
	g.RMSE, g.RMSELog = math.Sqrt(ss/fn), math.Sqrt(ssLog/fn)
	g.MAE /= fn
	g.MRE *= 100 / fn
	g.MRELog *= 100 / fn
	k := f.Free
	if f.Loss.Kind == HuberLikelihood {
		g.LogLik = -f.Objective
	} else {
		k++ // the Gaussian variance
		g.LogLik = -fn / 2 * (math.Log(2*math.Pi*ssLog/fn) + 1)
	}
	g.AIC = 2*float64(k) - 2*g.LogLik
	g.BIC = float64(k)*math.Log(fn) - 2*g.LogLik
	g.DoF = n - f.curveParams()
	return res, g
}

// curveParams is the number of free parameters of the curve: Free less
// the Huber likelihood's log σ.
func (f *Fit) curveParams() int { return f.Free - f.lay.extra }

// Identified reports whether the data leave at least one residual degree
// of freedom (Goodness.DoF > 0). Without one the curve passes through
// every point whatever the noise, the data say nothing about how far the
// parameters could move, and Bootstrap gives no interval.
func (f *Fit) Identified() bool { return f.Goodness.DoF > 0 }

// diagnose adds warnings about identification that need no bootstrap.
func (f *Fit) diagnose() {
	params := fmt.Sprintf("%d free parameters", f.curveParams())
	if f.lay.extra > 0 {
		params += " and log σ"
	}
	switch f.Goodness.DoF {
	case 0:
		// Every bootstrap refit of an exact fit lands back on it, so a
		// percentile interval would have zero width: none is given.
		f.Warnings = append(f.Warnings, fmt.Sprintf(
			"%d points for %s: no residual degrees of freedom, so the parameters are not identified by the data and no interval can be given",
			f.N, params))
	case 1:
		f.Warnings = append(f.Warnings, fmt.Sprintf(
			"%d points for %s leave 1 residual degree of freedom: the parameters are barely identified; report intervals, not point values, and read them as rough",
			f.N, params))
	}
	minLoss := math.Inf(1)
	for _, o := range f.obs {
		minLoss = math.Min(minLoss, o.Loss)
	}
	for j, name := range f.Names {
		if f.Fixed[j] {
			continue
		}
		v := f.Params[j]
		switch name {
		case "alpha", "beta":
			if v <= 0.01 || v > 2 {
				f.Warnings = append(f.Warnings, fmt.Sprintf("%s = %.4g is outside (0, 2]: the power law has degenerated", name, v))
			}
		case "E":
			if v < 1e-6*minLoss {
				f.Warnings = append(f.Warnings, fmt.Sprintf("E = %.3g is at its bound (0): the data show no asymptote", v))
			}
		case "RD_star", "RN_star":
			if v > 1e4 || v < 1e-3 {
				f.Warnings = append(f.Warnings, fmt.Sprintf("%s = %.3g is at a bound: the decay is not identified", name, v))
			}
		case "A", "B":
			if v > 1e15 {
				f.Warnings = append(f.Warnings, fmt.Sprintf("%s = %.3g is at its bound: the term is not identified", name, v))
			}
		}
	}
	if f.Starts > 1 && f.Agree == 1 {
		f.Warnings = append(f.Warnings, fmt.Sprintf(
			"only 1 of %d starts reached the best objective: it may not be the global optimum", f.Starts))
	}
}

// LRTest is a likelihood-ratio (Wilks) test of given parameters against the
// free fit, both scored by the Huber likelihood with σ refitted.
type LRTest struct {
	// LogLikFree and LogLikGiven are the maximised log-likelihoods.
	LogLikFree, LogLikGiven float64
	// Stat is 2·(LogLikFree − LogLikGiven), DF the number of parameters
	// the hypothesis fixes and P the χ² tail probability.
	Stat float64
	DF   int
	P    float64
}

// LikelihoodRatio tests the hypothesis that the law's parameters equal
// given (natural values by name; parameters not named stay free) against
// the unrestricted fit, under the Huber likelihood with δ of f's loss.
func LikelihoodRatio(f *Fit, given map[string]float64) (LRTest, error) {
	o := f.opts
	o.Loss = Loss{Kind: HuberLikelihood, Delta: f.Loss.delta()}
	o.Starts = [][]float64{f.Params}
	free, err := FitLaw(context.Background(), f.Law, f.obs, o)
	if err != nil {
		return LRTest{}, fmt.Errorf("free fit: %w", err)
	}
	rest := o
	rest.Fixed = map[string]float64{}
	for k, v := range o.Fixed {
		rest.Fixed[k] = v
	}
	df := 0
	for k, v := range given {
		if _, already := rest.Fixed[k]; !already {
			df++
		}
		rest.Fixed[k] = v
	}
	start := append([]float64(nil), f.Params...)
	for k, v := range given {
		if j := indexOf(f.Names, k); j >= 0 {
			start[j] = v
		}
	}
	rest.Starts = [][]float64{start}
	restricted, err := FitLaw(context.Background(), f.Law, f.obs, rest)
	if err != nil {
		return LRTest{}, fmt.Errorf("restricted fit: %w", err)
	}
	t := LRTest{LogLikFree: -free.Objective, LogLikGiven: -restricted.Objective, DF: df}
	t.Stat = 2 * (t.LogLikFree - t.LogLikGiven)
	if df > 0 {
		t.P = distuv.ChiSquared{K: float64(df)}.Survival(math.Max(t.Stat, 0))
	}
	return t, nil
}

// Scale returns the scale variable law orders observations by: X for the
// one-dimensional laws, compute 6ND for the Chinchilla laws.
func Scale(law Law, o Obs) float64 {
	if law == Chinchilla || law == DataConstrained {
		return 6 * o.N * o.D
	}
	return o.X
}

// SplitLargest holds out the k observations of largest scale (see Scale),
// for validating an extrapolation: fit on train, score held. The order of
// train is kept.
func SplitLargest(law Law, obs []Obs, k int) (train, held []Obs) {
	if k <= 0 || k >= len(obs) {
		return obs, nil
	}
	s := make([]float64, len(obs))
	for i, o := range obs {
		s[i] = Scale(law, o)
	}
	sorted := append([]float64(nil), s...)
	sort.Float64s(sorted)
	cut := sorted[len(sorted)-k]
	for i, o := range obs {
		if s[i] >= cut && len(held) < k {
			held = append(held, o)
		} else {
			train = append(train, o)
		}
	}
	return train, held
}

// ChiSquareTest is a Wald test of given parameters against a bootstrapped
// fit.
type ChiSquareTest struct {
	// Stat is dᵀΣ⁻¹d with d the difference between fitted and given
	// parameters (log scale for positive ones) and Σ their bootstrap
	// covariance; DF is the number of parameters tested, P the χ² tail.
	Stat float64
	DF   int
	P    float64
}

// ChiSquare tests the hypothesis that the named free parameters equal the
// given values, using the covariance of f's bootstrap refits (Besiroglu et
// al. test Hoffmann et al.'s estimates this way: χ² = 238 with 5 degrees
// of freedom).
func ChiSquare(f *Fit, given map[string]float64) (ChiSquareTest, error) {
	b := f.Bootstrap
	if b == nil {
		return ChiSquareTest{}, fmt.Errorf("the χ² test needs a bootstrap")
	}
	if b.NotIdentified {
		return ChiSquareTest{}, fmt.Errorf("no χ² test: with %d points for %d free parameters the parameters are not identified and have no bootstrap covariance", f.N, f.curveParams())
	}
	pos := f.Law.positive()
	var idx []int
	var d []float64
	tr := func(j int, v float64) float64 {
		if pos[j] {
			return math.Log(v)
		}
		return v
	}
	for name := range given {
		j := indexOf(f.Names, name)
		if j < 0 || f.Fixed[j] {
			continue
		}
		idx = append(idx, j)
	}
	sort.Ints(idx)
	for _, j := range idx {
		d = append(d, tr(j, f.Params[j])-tr(j, given[f.Names[j]]))
	}
	k := len(idx)
	if k == 0 {
		return ChiSquareTest{}, fmt.Errorf("no free parameter named among %v", f.Names)
	}
	var rows [][]float64
	for _, s := range b.Samples {
		if s == nil {
			continue
		}
		r := make([]float64, k)
		for c, j := range idx {
			r[c] = tr(j, s[j])
		}
		rows = append(rows, r)
	}
	if len(rows) <= k {
		return ChiSquareTest{}, fmt.Errorf("%d bootstrap refits are too few for %d parameters", len(rows), k)
	}
	data := mat.NewDense(len(rows), k, nil)
	for i, r := range rows {
		data.SetRow(i, r)
	}
	var cov mat.SymDense
	stat.CovarianceMatrix(&cov, data, nil)
	var ch mat.Cholesky
	if !ch.Factorize(&cov) {
		return ChiSquareTest{}, fmt.Errorf("the bootstrap covariance is singular")
	}
	var x mat.VecDense
	if err := ch.SolveVecTo(&x, mat.NewVecDense(k, d)); err != nil {
		return ChiSquareTest{}, err
	}
	t := ChiSquareTest{Stat: mat.Dot(mat.NewVecDense(k, d), &x), DF: k}
	t.P = distuv.ChiSquared{K: float64(k)}.Survival(t.Stat)
	return t, nil
}

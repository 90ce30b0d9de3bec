package scaling

import (
	"context"
	"fmt"
	"math"
	"strings"

	"gonum.org/v1/gonum/mat"
	"gonum.org/v1/gonum/stat/distuv"
)

// IdentifyOptions configure Identify.
type IdentifyOptions struct {
	// Level is the coverage of the profile intervals (default 0.95).
	Level float64
	// Profile computes profile intervals (one restricted refit per step
	// of a bracketing search on each side of each parameter).
	Profile bool
	// Sensitivity refits under other losses (Huber δ of 1e-4 to 1e-1 and
	// least squares) and without each point in turn.
	Sensitivity bool
}

// Direction is an eigen-direction of the Fisher information in the
// internal parameters (log of positive constants, exponents as they are).
type Direction struct {
	// Vector is the unit eigenvector over Identifiability.Names.
	Vector []float64
	// SE is 1/√λ: the distance along the direction at which the fitted log
	// losses move by one noise standard deviation in all.
	SE float64
	// Pinned is false when SE exceeds 1: the data do not tell a factor
	// of e in a coefficient (or 1 in an exponent) along this direction.
	Pinned bool
	// Words states the direction in words.
	Words string
}

// ProfileInterval is a profile interval of one parameter, in
// natural units; an end that the search did not reach within 2¹⁰ Wald
// standard errors is ±Inf (0 for a positive parameter's lower end).
type ProfileInterval struct {
	Name     string
	Interval Interval
	// Refits counts the restricted fits the search ran.
	Refits int
}

// Influence is the largest change of a parameter when one point is left
// out.
type Influence struct {
	Name string
	// Row is the observation whose removal moved the parameter most, and
	// Change that relative (log-scale for positive parameters) change.
	Row    int
	Change float64
}

// LossSensitivity is the fit under another loss, from the same start.
type LossSensitivity struct {
	Loss   string
	Params []float64
}

// Identifiability says which parameters, and which combinations of them,
// the data pin down (Raue et al. 2009 on practical identifiability: the
// Fisher information and profile likelihoods).
type Identifiability struct {
	// Names are the free internal parameters: "log E", "log A", "alpha", ...
	Names []string
	// Sigma is the noise level of the log residuals the information is
	// scaled by: √(Σ(rᵢ/sᵢ)²/(n − p)).
	Sigma float64
	// SE are the Wald standard errors in internal units (from the inverse
	// information), Corr their correlations.
	SE   []float64
	Corr [][]float64
	// Condition is λ_max/λ_min of the information.
	Condition float64
	// Directions are its eigen-directions, least determined first.
	Directions []Direction
	// Profile, Influence and Losses are set by the options.
	Profile   []ProfileInterval
	Influence []Influence
	Losses    []LossSensitivity
	Level     float64
}

// Identify measures how well f's data determine its parameters: the
// Fisher information JᵀS⁻²J/σ² of the log residuals at the optimum (J the
// Jacobian of log L̂ in the internal parameters, S the noise scales), its
// eigen-directions stated in words, and optionally profile intervals
// (Gaussian log residuals, the F form of the likelihood-ratio bound) and
// the fit's sensitivity to the loss and to each point.
func Identify(ctx context.Context, f *Fit, o IdentifyOptions) (*Identifiability, error) {
	if o.Level <= 0 || o.Level >= 1 {
		o.Level = 0.95
	}
	id := &Identifiability{Level: o.Level}
	cols, names := f.freeColumns()
	id.Names = names
	k := len(cols)
	info, sigma, err := f.information(cols)
	if err != nil {
		return nil, fmt.Errorf("identify: %w", err)
	}
	id.Sigma = sigma
	var eig mat.EigenSym
	if !eig.Factorize(info, true) {
		return nil, fmt.Errorf("identify: the information matrix has no eigen-decomposition")
	}
	vals := eig.Values(nil)
	var vecs mat.Dense
	eig.VectorsTo(&vecs)
	id.Condition = vals[len(vals)-1] / vals[0]
	for c := range vals { // ascending: least determined first
		v := make([]float64, k)
		for r := range k {
			v[r] = vecs.At(r, c)
		}
		se := 1 / math.Sqrt(math.Max(vals[c], 0))
		id.Directions = append(id.Directions, Direction{Vector: v, SE: se, Pinned: se <= 1, Words: directionWords(names, v, se)})
	}
	id.SE, id.Corr = waldCovariance(vals, &vecs, k)
	if o.Profile {
		if err := id.profiles(ctx, f); err != nil {
			return nil, err
		}
	}
	if o.Sensitivity {
		if err := id.sensitivity(ctx, f); err != nil {
			return nil, err
		}
	}
	return id, nil
}

// waldCovariance returns the standard errors and correlations of the
// inverse information, from its eigen-decomposition (an infinite error for
// a direction with no information).
func waldCovariance(vals []float64, vecs *mat.Dense, k int) ([]float64, [][]float64) {
	cov := mat.NewSymDense(k, nil)
	for a := range k {
		for b := a; b < k; b++ {
			v := 0.0
			for c, l := range vals {
				v += vecs.At(a, c) * vecs.At(b, c) / l
			}
			cov.SetSym(a, b, v)
		}
	}
	se := make([]float64, k)
	corr := make([][]float64, k)
	for a := range k {
		se[a] = math.Sqrt(cov.At(a, a))
	}
	for a := range k {
		corr[a] = make([]float64, k)
		for b := range k {
			corr[a][b] = cov.At(a, b) / (se[a] * se[b])
		}
	}
	return se, corr
}

// freeColumns lists, per free internal parameter (log σ excluded), the
// law's internal indices it moves (two for tied exponents) and its name.
func (f *Fit) freeColumns() ([][]int, []string) {
	pos := f.Law.positive()
	var cols [][]int
	var names []string
	for j, s := range f.lay.slot {
		if s < 0 {
			continue
		}
		if s < len(cols) {
			cols[s] = append(cols[s], j)
			continue
		}
		cols = append(cols, []int{j})
		name := f.Names[j]
		if pos[j] {
			name = "log " + name
		}
		names = append(names, name)
	}
	return cols, names
}

// directionWords states a direction of the internal parameters: its
// largest components, scaled so the largest is 1, and what SE means.
func directionWords(names []string, v []float64, se float64) string {
	big := 0
	for i := range v {
		if math.Abs(v[i]) > math.Abs(v[big]) {
			big = i
		}
	}
	terms := []string{names[big]}
	for i, x := range v {
		c := x / v[big]
		if i == big || math.Abs(c) < 0.05 {
			continue
		}
		if c < 0 {
			terms = append(terms, fmt.Sprintf("− %.3g·%s", -c, names[i]))
		} else {
			terms = append(terms, fmt.Sprintf("+ %.3g·%s", c, names[i]))
		}
	}
	combo := strings.Join(terms, " ")
	factor := ""
	if strings.HasPrefix(names[big], "log ") {
		factor = fmt.Sprintf(" (a factor of %.3g)", math.Exp(se))
	}
	if len(terms) == 1 {
		if se > 1 {
			return fmt.Sprintf("%s is not pinned down by the data: ±%.3g%s moves the fitted log losses by one noise standard deviation", combo, se, factor)
		}
		return fmt.Sprintf("%s is determined to ±%.3g%s alone", combo, se, factor)
	}
	if se > 1 {
		return fmt.Sprintf("the data cannot tell apart changes along %s: moving by ±%.3g%s along it shifts the fitted log losses by only one noise standard deviation, so these parameters trade off and each is poorly determined alone", combo, se, factor)
	}
	return fmt.Sprintf("the combination %s is determined to ±%.3g%s", combo, se, factor)
}

// profiles computes each free parameter's profile interval under Gaussian
// log residuals (weighted by the noise scales), whatever loss f used: the
// values t of its internal form where the restricted residual sum of
// squares RSS(t), with the others refitted, has
// (RSS(t) − RSS)/(RSS/(n − p)) ≤ F(1, n − p; level) (Bates and Watts 1988,
// §6.1: the profile t, exact for linear models), found by doubling steps
// of its Wald standard error outwards, then bisection.
func (id *Identifiability) profiles(ctx context.Context, f *Fit) error {
	o := f.opts
	// Huber with a threshold far beyond any log residual is ½·RSS.
	o.Loss = Loss{Kind: HuberLog, Delta: 10}
	o.Starts = [][]float64{f.Params}
	o.Noise = nil
	free, err := FitLaw(ctx, f.Law, f.obs, o)
	if err != nil {
		return fmt.Errorf("profile: free fit: %w", err)
	}
	cols, _ := f.freeColumns()
	dof := float64(len(f.obs) - len(cols))
	crit := distuv.F{D1: 1, D2: dof}.Quantile(id.Level)
	pos := f.Law.positive()
	for c, col := range cols {
		j := col[0]
		name := f.Names[j]
		nat := func(t float64) float64 {
			if pos[j] {
				return math.Exp(t)
			}
			return t
		}
		t0 := free.theta[j]
		refits := 0
		lr := func(t float64) (float64, error) {
			r := o
			r.Fixed = map[string]float64{}
			for k, v := range o.Fixed {
				r.Fixed[k] = v
			}
			r.Fixed[name] = nat(t)
			start := append([]float64(nil), free.Params...)
			start[j] = nat(t)
			r.Starts = [][]float64{start}
			refits++
			g, err := FitLaw(ctx, f.Law, f.obs, r)
			if err != nil {
				return 0, err
			}
			return (g.Objective - free.Objective) / (free.Objective / dof), nil
		}
		step := id.SE[c]
		if !(step > 0) || math.IsInf(step, 0) {
			step = 1
		}
		var ends [2]float64
		for side, sign := range []float64{-1, 1} {
			in, out := t0, math.NaN()
			for k := 0; k <= 12; k++ {
				t := t0 + sign*step*math.Pow(2, float64(k))/4
				v, err := lr(t)
				if err != nil {
					return fmt.Errorf("profile %s at %g: %w", name, nat(t), err)
				}
				if v > crit {
					out = t
					break
				}
				in = t
			}
			if math.IsNaN(out) {
				ends[side] = sign * math.Inf(1)
				continue
			}
			for range 30 {
				mid := (in + out) / 2
				v, err := lr(mid)
				if err != nil {
					return fmt.Errorf("profile %s at %g: %w", name, nat(mid), err)
				}
				if v > crit {
					out = mid
				} else {
					in = mid
				}
				if math.Abs(out-in) < 1e-4*math.Max(step, 1e-12) {
					break
				}
			}
			ends[side] = (in + out) / 2
		}
		id.Profile = append(id.Profile, ProfileInterval{Name: name, Interval: Interval{nat(ends[0]), nat(ends[1])}, Refits: refits})
	}
	return nil
}

// sensitivity refits f under other losses and without each point, each
// from f's optimum.
func (id *Identifiability) sensitivity(ctx context.Context, f *Fit) error {
	o := f.opts
	o.Starts = [][]float64{f.Params}
	for _, loss := range []Loss{{Kind: HuberLog, Delta: 1e-4}, {Kind: HuberLog, Delta: 1e-3}, {Kind: HuberLog, Delta: 1e-2}, {Kind: HuberLog, Delta: 1e-1}, {Kind: LeastSquares}} {
		r := o
		r.Loss = loss
		g, err := FitLaw(ctx, f.Law, f.obs, r)
		if err != nil {
			return fmt.Errorf("sensitivity to %s: %w", loss, err)
		}
		id.Losses = append(id.Losses, LossSensitivity{Loss: loss.String(), Params: g.Params})
	}
	pos := f.Law.positive()
	id.Influence = nil
	worst := make([]Influence, len(f.Names))
	for i := range f.obs {
		sub := make([]Obs, 0, len(f.obs)-1)
		sub = append(sub, f.obs[:i]...)
		sub = append(sub, f.obs[i+1:]...)
		g, err := FitLaw(ctx, f.Law, sub, o)
		if err != nil {
			return fmt.Errorf("without row %d: %w", i, err)
		}
		for j, v := range g.Params {
			if f.Fixed[j] {
				continue
			}
			d := math.Abs(v - f.Params[j])
			if pos[j] {
				d = math.Abs(math.Log(v / f.Params[j]))
			}
			if d > worst[j].Change || worst[j].Name == "" {
				worst[j] = Influence{Name: f.Names[j], Row: i, Change: d}
			}
		}
	}
	for j := range worst {
		if !f.Fixed[j] {
			id.Influence = append(id.Influence, worst[j])
		}
	}
	return nil
}

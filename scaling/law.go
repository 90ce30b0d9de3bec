// Package scaling fits scaling laws to sweep results and reports what they
// imply: asymptotes with honest intervals, crossovers between recipes, the
// value of repeated data and the compute-optimal split of a budget.
//
// The procedures follow the published ones exactly where a paper is being
// reproduced (Hoffmann et al. 2022 "Approach 3", Besiroglu et al. 2024,
// Muennighoff et al. 2023, Kim et al. 2025), and differ only where the
// published procedure was itself at fault: tolerances here are relative to
// the objective's scale, so a summed objective near 1e-3 is minimised to the
// optimum instead of stopping next to it.
//
// The package imports only the standard library and gonum.
package scaling

import (
	"fmt"
	"math"
	"strings"
)

// Obs is one observation: the sizes that produced a run and its loss. A law
// reads only the fields it needs (see Law.Inputs).
type Obs struct {
	// X is the scale variable of one-dimensional laws: parameters, tokens,
	// compute or, for ensembles, the number of members K.
	X float64
	// N is the parameter count.
	N float64
	// D is the number of training tokens seen, repeats included.
	D float64
	// U is the number of unique training tokens (U_D).
	U float64
	// Loss is the observed loss; it must be positive.
	Loss float64
	// Group names the run an observation belongs to. When set, the
	// bootstrap resamples groups (runs) instead of single rows, so several
	// checkpoints or seeds of one run move together.
	Group string
	// Scale is the observation's noise relative to the others' (zero
	// means 1): a fit divides its residual by Scale inside the loss, so
	// noisier runs weigh less (Noise.Weigh sets it from seed noise).
	Scale float64
}

// model evaluates a law's log-prediction for every bound observation.
type model interface {
	// eval sets lp[i] = log L̂_i and, if jac is not nil,
	// jac[i*p+j] = ∂ log L̂_i / ∂θ_j for the law's p internal parameters.
	eval(theta, lp, jac []float64)
}

// Law is a parametric scaling law. Its parameters are fitted in an internal,
// unconstrained space (logarithms of positive constants, as in Hoffmann et
// al.'s log-sum-exp form) and reported in natural units.
type Law interface {
	// Name is the law's short name, as the CLI spells it.
	Name() string
	// Params lists the natural parameter names in order, as reported and
	// as accepted by Options.Fixed: E, A, B, alpha, beta, RD_star, RN_star.
	Params() []string
	// Inputs lists the Obs fields the law reads ("X", "N", "D", "U").
	Inputs() []string
	// Predict returns L̂ for one observation at natural parameters p.
	Predict(p []float64, o Obs) float64

	natural(theta, p []float64)
	internal(p, theta []float64)
	bind(obs []Obs) model
	// grid lists candidate internal starting values for each parameter.
	grid() [][]float64
	// centers returns the (log-coefficient, exponent, mean log scale)
	// triples for the optimiser's centring.
	centers(obs []Obs) []center
	// positive reports which natural parameters are positive by
	// construction (intervals on them are judged on a log scale).
	positive() []bool
}

// The laws.
var (
	// Power is the saturating power law L(x) = E + A·x^−alpha of Kim et
	// al. 2025 and the data-scaling laws before it.
	Power Law = powerLaw{name: "power"}
	// Ensemble is the ensemble-size law L(K) = E + A·K^−alpha, the power
	// law read in the number of members K (Obs.X). Its E is the K → ∞
	// asymptote; NestedAsymptote then takes N → ∞.
	Ensemble Law = powerLaw{name: "ensemble"}
	// Chinchilla is L(N, D) = E + A/N^alpha + B/D^beta (Hoffmann et al.
	// 2022), fitted as log L̂ = LSE(a − alpha·log N, b − beta·log D, e).
	Chinchilla Law = chinchillaLaw{}
	// DataConstrained is the law of Muennighoff et al. 2023:
	// L = E + A/N′^alpha + B/D′^beta with effective data
	// D′ = U_D + U_D·R_D*·(1 − e^(−R_D/R_D*)) and effective parameters
	// N′ = U_N + U_N·R_N*·(1 − e^(−R_N/R_N*)).
	DataConstrained Law = dataLaw{}
)

// LawByName returns the law the CLI calls name: power, ensemble, chinchilla
// or datablations (also data-constrained).
func LawByName(name string) (Law, error) {
	switch strings.ToLower(name) {
	case "power":
		return Power, nil
	case "ensemble":
		return Ensemble, nil
	case "chinchilla":
		return Chinchilla, nil
	case "datablations", "data-constrained", "dataconstrained", "muennighoff":
		return DataConstrained, nil
	}
	return nil, fmt.Errorf("unknown law %q (want power, chinchilla, datablations or ensemble)", name)
}

// meanLog returns the mean of log v(o) over obs.
func meanLog(obs []Obs, v func(Obs) float64) float64 {
	m := 0.0
	for _, o := range obs {
		m += math.Log(v(o))
	}
	return m / float64(max(len(obs), 1))
}

func (powerLaw) centers(obs []Obs) []center {
	return []center{{1, 2, meanLog(obs, func(o Obs) float64 { return o.X })}}
}

func (chinchillaLaw) centers(obs []Obs) []center {
	return []center{
		{1, 3, meanLog(obs, func(o Obs) float64 { return o.N })},
		{2, 4, meanLog(obs, func(o Obs) float64 { return o.D })},
	}
}

func (dataLaw) centers(obs []Obs) []center { return chinchillaLaw{}.centers(obs) }

// Hoffmann's grid of initialisations (Hoffmann et al. 2022, as written out
// in Besiroglu et al.'s notebook).
var (
	gridE     = []float64{-1, -0.5, 0, 0.5, 1}
	gridAB    = []float64{0, 5, 10, 15, 20, 25}
	gridAlpha = []float64{0, 0.5, 1, 1.5, 2}
	// Muennighoff et al. start R_D*, R_N* at linspace(0, 20, 4); zero is
	// not representable in log space, so the first point is 0.5.
	gridR = []float64{math.Log(0.5), math.Log(20.0 / 3), math.Log(40.0 / 3), math.Log(20)}
)

// lse3 returns log(e^x + e^y + e^z) and the softmax weights.
func lse3(x, y, z float64) (v, wx, wy, wz float64) {
	m := math.Max(x, math.Max(y, z))
	if math.IsInf(m, 0) {
		if m < 0 {
			return m, 1.0 / 3, 1.0 / 3, 1.0 / 3
		}
		return m, 0, 0, 0
	}
	ex, ey, ez := math.Exp(x-m), math.Exp(y-m), math.Exp(z-m)
	s := ex + ey + ez
	return m + math.Log(s), ex / s, ey / s, ez / s
}

// lse2 returns log(e^x + e^y) and the softmax weights.
func lse2(x, y float64) (v, wx, wy float64) {
	m := math.Max(x, y)
	if math.IsInf(m, 0) {
		if m < 0 {
			return m, 0.5, 0.5
		}
		return m, 0, 0
	}
	ex, ey := math.Exp(x-m), math.Exp(y-m)
	s := ex + ey
	return m + math.Log(s), ex / s, ey / s
}

// powerLaw: θ = (e, a, alpha); log L̂ = LSE(a − alpha·log x, e).
type powerLaw struct{ name string }

func (l powerLaw) Name() string         { return l.name }
func (powerLaw) Params() []string       { return []string{"E", "A", "alpha"} }
func (powerLaw) Inputs() []string       { return []string{"X"} }
func (powerLaw) positive() []bool       { return []bool{true, true, false} }
func (powerLaw) grid() [][]float64      { return [][]float64{gridE, gridAB, gridAlpha} }
func (powerLaw) natural(t, p []float64) { p[0], p[1], p[2] = math.Exp(t[0]), math.Exp(t[1]), t[2] }
func (powerLaw) internal(p, t []float64) {
	t[0], t[1], t[2] = math.Log(p[0]), math.Log(p[1]), p[2]
}

func (powerLaw) Predict(p []float64, o Obs) float64 {
	return p[0] + p[1]*math.Pow(o.X, -p[2])
}

func (powerLaw) bind(obs []Obs) model {
	m := &powerModel{lx: make([]float64, len(obs))}
	for i, o := range obs {
		m.lx[i] = math.Log(o.X)
	}
	return m
}

type powerModel struct{ lx []float64 }

func (m *powerModel) eval(t, lp, jac []float64) {
	e, a, al := t[0], t[1], t[2]
	ee := math.Exp(e)
	direct := e > -700 && e < 700
	for i, lx := range m.lx {
		x := a - al*lx
		var v, w1, w0 float64
		if direct && x < 700 {
			t1 := fastExp(x)
			s := ee + t1
			v = fastLog(s)
			w1 = t1 / s
			w0 = 1 - w1
		} else {
			v, w1, w0 = lse2(x, e)
		}
		lp[i] = v
		if jac != nil {
			j := jac[i*3 : i*3+3]
			j[0], j[1], j[2] = w0, w1, -w1*lx
		}
	}
}

// chinchillaLaw: θ = (e, a, b, alpha, beta).
type chinchillaLaw struct{}

func (chinchillaLaw) Name() string     { return "chinchilla" }
func (chinchillaLaw) Params() []string { return []string{"E", "A", "B", "alpha", "beta"} }
func (chinchillaLaw) Inputs() []string { return []string{"N", "D"} }
func (chinchillaLaw) positive() []bool { return []bool{true, true, true, false, false} }
func (chinchillaLaw) grid() [][]float64 {
	return [][]float64{gridE, gridAB, gridAB, gridAlpha, gridAlpha}
}
func (chinchillaLaw) natural(t, p []float64) {
	p[0], p[1], p[2], p[3], p[4] = math.Exp(t[0]), math.Exp(t[1]), math.Exp(t[2]), t[3], t[4]
}
func (chinchillaLaw) internal(p, t []float64) {
	t[0], t[1], t[2], t[3], t[4] = math.Log(p[0]), math.Log(p[1]), math.Log(p[2]), p[3], p[4]
}

func (chinchillaLaw) Predict(p []float64, o Obs) float64 {
	return p[0] + p[1]*math.Pow(o.N, -p[3]) + p[2]*math.Pow(o.D, -p[4])
}

func (chinchillaLaw) bind(obs []Obs) model {
	m := &chinchillaModel{ln: make([]float64, len(obs)), ld: make([]float64, len(obs))}
	for i, o := range obs {
		m.ln[i], m.ld[i] = math.Log(o.N), math.Log(o.D)
	}
	return m
}

type chinchillaModel struct{ ln, ld []float64 }

func (m *chinchillaModel) eval(t, lp, jac []float64) {
	e, a, b, al, be := t[0], t[1], t[2], t[3], t[4]
	ld := m.ld[:len(m.ln)]
	ee := math.Exp(e)
	for i, ln := range m.ln {
		x, y := a-al*ln, b-be*ld[i]
		var v, w1, w2, w0 float64
		if x < 700 && y < 700 && e < 700 && e > -700 {
			// Direct sum: two exponentials instead of three; the
			// log-sum-exp shift is only needed near overflow.
			t1, t2 := fastExp(x), fastExp(y)
			s := ee + t1 + t2
			v = fastLog(s)
			inv := 1 / s
			w0, w1, w2 = ee*inv, t1*inv, t2*inv
		} else {
			v, w1, w2, w0 = lse3(x, y, e)
		}
		lp[i] = v
		if jac != nil {
			j := jac[i*5 : i*5+5]
			j[0], j[1], j[2], j[3], j[4] = w0, w1, w2, -w1*ln, -w2*ld[i]
		}
	}
}

// huberFused computes the summed Huber objective on log residuals and its
// gradient in one pass, without the Jacobian: the hot loop of the grid
// fit and the bootstrap. It reports false (and computes nothing) when an
// exponent is large enough to need the log-sum-exp shift. inv, when not
// nil, holds each observation's inverse noise scale, which multiplies its
// residual inside the Huber loss (a noise-weighted fit).
func (m *chinchillaModel) huberFused(t, ly, inv []float64, delta float64, g []float64) (float64, bool) {
	e, a, b, al, be := t[0], t[1], t[2], t[3], t[4]
	if math.Abs(e) > 700 {
		return 0, false
	}
	ee := math.Exp(e)
	ld := m.ld[:len(m.ln)]
	ly = ly[:len(m.ln)]
	var f, ge, ga, gb, gal, gbe float64
	for i, ln := range m.ln {
		x, y := a-al*ln, b-be*ld[i]
		if !(x > -700 && x < 700 && y > -700 && y < 700) {
			return 0, false
		}
		// fastExp(x), fastExp(y) and fastLog(s), written out: the calls
		// are too large to inline and cost a fifth of the loop.
		kx := x*(expTabN/math.Ln2) + shifter
		ky := y*(expTabN/math.Ln2) + shifter
		ix := int64(math.Float64bits(kx)) - shifterBits
		iy := int64(math.Float64bits(ky)) - shifterBits
		kx -= shifter
		ky -= shifter
		rx := (x - kx*(ln2Hi/expTabN)) - kx*(ln2Lo/expTabN)
		ry := (y - ky*(ln2Hi/expTabN)) - ky*(ln2Lo/expTabN)
		px := rx * (1 + rx*(0.5+rx*(1.0/6+rx*(1.0/24))))
		py := ry * (1 + ry*(0.5+ry*(1.0/6+ry*(1.0/24))))
		tx, ty := expTab[ix&(expTabN-1)], expTab[iy&(expTabN-1)]
		t1 := (tx + tx*px) * math.Float64frombits(uint64((ix>>expBits)+1023)<<52)
		t2 := (ty + ty*py) * math.Float64frombits(uint64((iy>>expBits)+1023)<<52)
		s := ee + t1 + t2
		bits := math.Float64bits(s)
		j := ((bits>>(52-logBits))&(logTabN-1) + (bits>>(51-logBits))&1) & (2*logTabN - 1)
		u := math.Float64frombits(bits&(1<<52-1)|1023<<52)*logInv[j] - 1
		pu := u - u*u*(0.5-u*(1.0/3-u*(0.25-u*0.2)))
		ex := float64(int64(bits>>52) - 1023)
		r := ex*ln2Hi + (logC[j] + (pu + ex*ln2Lo)) - ly[i]
		w := 1.0
		if inv != nil {
			w = inv[i]
			r *= w
		}
		var d float64
		switch {
		case r > delta:
			f += delta * (r - delta/2)
			d = delta
		case r < -delta:
			f += delta * (-r - delta/2)
			d = -delta
		default:
			f += r * r / 2
			d = r
		}
		d *= w
		d /= s
		ge += d
		d1, d2 := d*t1, d*t2
		ga += d1
		gb += d2
		gal -= d1 * ln
		gbe -= d2 * ld[i]
	}
	if g != nil {
		g[0], g[1], g[2], g[3], g[4] = ge*ee, ga, gb, gal, gbe
	}
	return f, true
}

// dataLaw: θ = (e, a, b, alpha, beta, log R_D*, log R_N*).
type dataLaw struct{}

func (dataLaw) Name() string { return "datablations" }
func (dataLaw) Params() []string {
	return []string{"E", "A", "B", "alpha", "beta", "RD_star", "RN_star"}
}
func (dataLaw) Inputs() []string { return []string{"N", "D", "U"} }
func (dataLaw) positive() []bool { return []bool{true, true, true, false, false, true, true} }
func (dataLaw) grid() [][]float64 {
	return [][]float64{gridE, gridAB, gridAB, gridAlpha, gridAlpha, gridR, gridR}
}
func (dataLaw) natural(t, p []float64) {
	chinchillaLaw{}.natural(t, p)
	p[5], p[6] = math.Exp(t[5]), math.Exp(t[6])
}
func (dataLaw) internal(p, t []float64) {
	chinchillaLaw{}.internal(p, t)
	t[5], t[6] = math.Log(p[5]), math.Log(p[6])
}

// Effective returns Muennighoff et al.'s effective data D′ and effective
// parameters N′ for an observation at natural parameters p of the
// DataConstrained law. R_D* or R_N* set to +Inf switches that decay off
// (D′ = D, or N′ = N).
func Effective(p []float64, o Obs) (dPrime, nPrime float64) {
	dPrime = effective(o.U, o.D/o.U-1, p[5])
	un := math.Min(o.N, optimalParamsForTokens(p, o.U))
	nPrime = effective(un, o.N/un-1, p[6])
	return dPrime, nPrime
}

// effective returns u·(1 + r*·(1 − e^(−r/r*))) with r clipped at zero.
func effective(u, r, rStar float64) float64 {
	if r <= 0 {
		return u
	}
	if math.IsInf(rStar, 1) {
		return u * (1 + r)
	}
	return u * (1 - rStar*math.Expm1(-r/rStar))
}

// optimalParamsForTokens returns the compute-optimal parameter count for
// d tokens under the Chinchilla constants in p: with
// G = (alpha·A/(beta·B))^(1/(alpha+beta)), D_opt = G⁻¹(C/6)^(alpha/(alpha+beta))
// and N_opt = G·(C/6)^(beta/(alpha+beta)), so N = G^(1+beta/alpha)·d^(beta/alpha).
// With alpha = beta it is G²·d.
func optimalParamsForTokens(p []float64, d float64) float64 {
	al, be := p[3], p[4]
	lg := (math.Log(al*p[1]) - math.Log(be*p[2])) / (al + be)
	r := be / al
	return math.Exp((1+r)*lg + r*math.Log(d))
}

func (dataLaw) Predict(p []float64, o Obs) float64 {
	dp, np := Effective(p, o)
	return p[0] + p[1]*math.Pow(np, -p[3]) + p[2]*math.Pow(dp, -p[4])
}

func (dataLaw) bind(obs []Obs) model {
	n := len(obs)
	m := &dataModel{ln: make([]float64, n), lu: make([]float64, n), n: make([]float64, n),
		u: make([]float64, n), rd: make([]float64, n)}
	for i, o := range obs {
		m.ln[i], m.lu[i], m.n[i], m.u[i] = math.Log(o.N), math.Log(o.U), o.N, o.U
		m.rd[i] = math.Max(o.D/o.U-1, 0)
	}
	return m
}

type dataModel struct{ ln, lu, n, u, rd []float64 }

// eval differentiates through U_N = min(N, N_opt(U_D)), whose N_opt depends
// on a, b, alpha and beta, so the gradient is exact when the base constants
// are free too.
func (m *dataModel) eval(t, lp, jac []float64) {
	e, a, b, al, be := t[0], t[1], t[2], t[3], t[4]
	rdS, rnS := math.Exp(t[5]), math.Exp(t[6])
	infD, infN := math.IsInf(t[5], 1), math.IsInf(t[6], 1)
	// log G and its partial derivatives in (a, b, alpha, beta).
	lg := (math.Log(al) + a - math.Log(be) - b) / (al + be)
	s := al + be
	dlg := [4]float64{1 / s, -1 / s, (1/al - lg) / s, (-1/be - lg) / s}
	r := be / al
	dr := [4]float64{0, 0, -be / (al * al), 1 / al}
	for i := range m.ln {
		u, rd := m.u[i], m.rd[i]
		// Effective data.
		dPrime, dDdR := u, 0.0 // dDdR: ∂D′/∂log R_D*
		if rd > 0 {
			if infD {
				dPrime = u * (1 + rd)
			} else {
				ex := math.Exp(-rd / rdS)
				dPrime = u * (1 + rdS*(1-ex))
				dDdR = u * rdS * ((1 - ex) - ex*rd/rdS)
			}
		}
		// Effective parameters.
		lun := (1+r)*lg + r*m.lu[i]
		nn := m.n[i]
		nPrime, dNdU, dNdR, bound := nn, 0.0, 0.0, false
		if un := math.Exp(lun); nn > un {
			bound = true
			rn := nn/un - 1
			if infN {
				nPrime = nn
			} else {
				ex := math.Exp(-rn / rnS)
				nPrime = un * (1 + rnS*(1-ex))
				dNdU = 1 + rnS*(1-ex) - ex*nn/un
				dNdR = un * rnS * ((1 - ex) - ex*rn/rnS)
				dNdU *= un // ∂N′/∂log U_N
			}
		}
		lnp, ldp := math.Log(nPrime), math.Log(dPrime)
		v, w1, w2, w0 := lse3(a-al*lnp, b-be*ldp, e)
		lp[i] = v
		if jac == nil {
			continue
		}
		j := jac[i*7 : i*7+7]
		// ∂ log N′/∂(a, b, alpha, beta) through log U_N.
		var dlnp [4]float64
		if bound && !infN {
			c := dNdU / nPrime
			for k := range 4 {
				dlnp[k] = c * ((1+r)*dlg[k] + dr[k]*(lg+m.lu[i]))
			}
		}
		j[0] = w0
		j[1] = w1*(1-al*dlnp[0]) + w2*0
		j[2] = w1 * (-al * dlnp[1])
		j[2] += w2
		j[3] = w1 * (-lnp - al*dlnp[2])
		j[4] = w1*(-al*dlnp[3]) - w2*ldp
		j[5] = -w2 * be * dDdR / dPrime
		j[6] = -w1 * al * dNdR / nPrime
	}
}

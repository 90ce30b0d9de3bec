package scaling

import (
	"fmt"
	"math"
	"strings"
)

// LossKind selects the objective a fit minimises.
type LossKind int

// The objectives.
const (
	// HuberLog is Σ huber_δ(log L̂_i − log L_i), summed (Hoffmann et al.
	// 2022, Besiroglu et al. 2024, Muennighoff et al. 2023).
	HuberLog LossKind = iota
	// LeastSquares is Σ (L̂_i − L_i)² on the linear scale, what
	// scipy.optimize.curve_fit minimises (Kim et al. 2025).
	LeastSquares
	// HuberLikelihood is the negative log-likelihood of the log residuals
	// under a Huber density with a free scale σ (Besiroglu et al. 2024):
	// n·log σ + n·log Z + Σ huber_δ(r_i/σ), with
	// Z = √(2π)(1 − 2Φ̄(δ)) + 2e^(−δ²/2)/δ.
	HuberLikelihood
)

// DefaultDelta is Hoffmann et al.'s Huber threshold on log residuals.
const DefaultDelta = 1e-3

// Loss is an objective: a kind and, for the Huber kinds, the threshold δ.
type Loss struct {
	Kind LossKind
	// Delta is the Huber threshold; zero means DefaultDelta.
	Delta float64
}

// String names the loss as the CLI spells it.
func (l Loss) String() string {
	switch l.Kind {
	case LeastSquares:
		return "ls"
	case HuberLikelihood:
		return fmt.Sprintf("huber-likelihood(delta=%g)", l.delta())
	}
	return fmt.Sprintf("huber(delta=%g)", l.delta())
}

func (l Loss) delta() float64 {
	if l.Delta == 0 {
		return DefaultDelta
	}
	return l.Delta
}

// extra is the number of internal parameters the loss adds (log σ).
func (l Loss) extra() int {
	if l.Kind == HuberLikelihood {
		return 1
	}
	return 0
}

// ParseLoss reads huber, ls (least squares) or likelihood
// (huber-likelihood); delta is the Huber threshold.
func ParseLoss(name string, delta float64) (Loss, error) {
	if delta < 0 || math.IsNaN(delta) {
		return Loss{}, fmt.Errorf("huber delta must be positive, got %g", delta)
	}
	switch strings.ToLower(name) {
	case "huber", "huber-log", "":
		return Loss{Kind: HuberLog, Delta: delta}, nil
	case "ls", "least-squares", "lsq", "mse":
		return Loss{Kind: LeastSquares}, nil
	case "likelihood", "huber-likelihood", "mle":
		return Loss{Kind: HuberLikelihood, Delta: delta}, nil
	}
	return Loss{}, fmt.Errorf("unknown loss %q (want huber, ls or likelihood)", name)
}

// huber returns huber_δ(r) = r²/2 for |r| ≤ δ, δ(|r| − δ/2) beyond, and its
// derivative.
func huber(r, d float64) (v, dv float64) {
	if r > d {
		return d * (r - d/2), d
	}
	if r < -d {
		return d * (-r - d/2), -d
	}
	return r * r / 2, r
}

// huberLogZ is log of the normalising constant of the density
// e^(−huber_δ(z)) / Z.
func huberLogZ(d float64) float64 {
	phiBar := 0.5 * math.Erfc(d/math.Sqrt2)
	return math.Log(math.Sqrt(2*math.Pi)*(1-2*phiBar) + 2*math.Exp(-d*d/2)/d)
}

// residualGrad fills dr[i] = ∂objective/∂ log L̂_i and returns the
// objective, given log-predictions lp, log observations ly and linear
// observations y; scale (nil: all 1) divides each residual, so a noisier
// observation weighs less; sigma is log σ for the likelihood (ignored
// otherwise), and dSigma receives ∂objective/∂ log σ.
func (l Loss) residualGrad(lp, ly, y, scale, dr []float64, logSigma float64) (f, dSigma float64) {
	d := l.delta()
	inv := func(i int) float64 {
		if scale == nil {
			return 1
		}
		return 1 / scale[i]
	}
	switch l.Kind {
	case LeastSquares:
		for i, v := range lp {
			p := math.Exp(v)
			w := inv(i)
			r := (p - y[i]) * w
			f += r * r
			if dr != nil {
				dr[i] = 2 * r * w * p
			}
		}
	case HuberLikelihood:
		s := math.Exp(-logSigma)
		n := float64(len(lp))
		f = n*logSigma + n*huberLogZ(d)
		dSigma = n
		for i, v := range lp {
			w := inv(i)
			if scale != nil {
				// The density of rᵢ has scale σ·scaleᵢ.
				f -= math.Log(w)
			}
			z := (v - ly[i]) * s * w
			h, dh := huber(z, d)
			f += h
			dSigma -= dh * z
			if dr != nil {
				dr[i] = dh * s * w
			}
		}
	default:
		for i, v := range lp {
			w := inv(i)
			h, dh := huber((v-ly[i])*w, d)
			f += h
			if dr != nil {
				dr[i] = dh * w
			}
		}
	}
	return f, dSigma
}

package scaling

import (
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"

	"gonum.org/v1/gonum/mathext"
	"gonum.org/v1/gonum/stat/distuv"
)

// ConfigNoise is the seed noise measured at one configuration: the runs
// whose law inputs (X, N, D, U as the law reads them) are identical.
type ConfigNoise struct {
	// At holds the configuration's inputs (its loss is the mean loss).
	At Obs
	// Seeds is the number of replicate runs.
	Seeds int
	// SD is the sample standard deviation of the loss, LogSD that of log
	// loss (n − 1 in the denominator).
	SD, LogSD float64
}

// Noise is a seed-noise model: the standard deviation of a run's log loss
// around its configuration's mean, measured from replicate seeds (or
// assumed, and then Measured is false and Source says from where).
type Noise struct {
	// Measured is true when the level comes from replicates in the data.
	Measured bool
	// Source says where the level comes from, in words.
	Source string
	// Configs are the configurations with two or more replicates.
	Configs []ConfigNoise
	// Pooled is the pooled standard deviation of log loss,
	// √(Σ(nᵢ − 1)sᵢ² / Σ(nᵢ − 1)), with DoF = Σ(nᵢ − 1) degrees of freedom
	// and PooledCI its χ² interval at Level.
	Pooled   float64
	DoF      int
	PooledCI Interval
	Level    float64
	// Median is the median of the configurations' LogSD.
	Median float64
	// Slope is the fitted exponent c of σ(L) ∝ L^c (least squares of
	// log sᵢ on log L̄ᵢ, weighted by nᵢ − 1), SlopeSE its standard error.
	// Trend is true when at least three configurations have replicates
	// and |Slope| > 2·SlopeSE: the noise is then modelled as a function of
	// the loss, σ(L) = Pooled·(L/RefLoss)^Slope, RefLoss being the
	// weighted geometric mean of the configurations' losses. Otherwise
	// σ(L) = Pooled everywhere.
	Slope, SlopeSE, RefLoss float64
	Trend                   bool
	// RefSD is the trend's seed noise at RefLoss, σ(L) = RefSD·(L/RefLoss)^Slope:
	// the exponential of the configurations' weighted mean log sᵢ, each
	// corrected for its bias E[log sᵢ] − log σᵢ = ½(ψ(νᵢ/2) − log(νᵢ/2))
	// with νᵢ = nᵢ − 1 (Bartlett and Kendall 1946). Pooled, a root mean
	// square, is not the level of a trend: it is dominated by the
	// noisiest configurations and overstated the noise everywhere else.
	RefSD float64
}

// At returns the seed noise of log loss at a loss of l.
func (n *Noise) At(l float64) float64 {
	if !n.Trend || !(l > 0) {
		return n.Pooled
	}
	return n.RefSD * math.Pow(l/n.RefLoss, n.Slope)
}

// Relative returns the seed noise at a loss of l relative to the model's
// level: (l/RefLoss)^Slope with a trend, 1 without.
func (n *Noise) Relative(l float64) float64 {
	if !n.Trend || !(l > 0) {
		return 1
	}
	return math.Pow(l/n.RefLoss, n.Slope)
}

// AssumedNoise is a noise model without replicates: sdLoss is the seed
// noise on the loss scale, turned into log loss at the data's mean loss,
// and source says where the value comes from.
func AssumedNoise(obs []Obs, sdLoss float64, source string) (*Noise, error) {
	if !(sdLoss > 0) || math.IsInf(sdLoss, 0) {
		return nil, fmt.Errorf("seed noise must be a positive loss difference, got %g", sdLoss)
	}
	m := 0.0
	for _, o := range obs {
		m += o.Loss
	}
	if len(obs) == 0 || !(m > 0) {
		return nil, fmt.Errorf("seed noise: no observations to scale %g to log loss", sdLoss)
	}
	m /= float64(len(obs))
	s := sdLoss / m
	return &Noise{Source: source, Pooled: s, Median: s, PooledCI: Interval{s, s}}, nil
}

// configKey is the identity of o's configuration under law: its inputs.
func configKey(law Law, o Obs) string {
	var b strings.Builder
	for _, in := range law.Inputs() {
		var v float64
		switch in {
		case "X":
			v = o.X
		case "N":
			v = o.N
		case "D":
			v = o.D
		case "U":
			v = o.U
		}
		b.WriteString(strconv.FormatUint(math.Float64bits(v), 16))
		b.WriteByte(',')
	}
	return b.String()
}

// configsOf returns the observation indices of each configuration, in order
// of first appearance.
func configsOf(law Law, obs []Obs) [][]int {
	idx := make([]int, len(obs))
	for i := range idx {
		idx[i] = i
	}
	return keyGroups(idx, func(i int) string { return configKey(law, obs[i]) })
}

// keyGroups splits idx into groups of equal key, in order of first
// appearance.
func keyGroups(idx []int, key func(int) string) [][]int {
	seen := map[string]int{}
	var out [][]int
	for _, i := range idx {
		k := key(i)
		j, ok := seen[k]
		if !ok {
			j = len(out)
			seen[k] = j
			out = append(out, nil)
		}
		out[j] = append(out[j], i)
	}
	return out
}

// SeedNoise measures the seed noise of obs: runs with identical law inputs
// are replicates of one configuration. Each run counts once: rows of one
// run (the same Obs.Group) are averaged first, so checkpoints are not
// taken for seeds. It fails when no configuration has two runs; use
// AssumedNoise then. level is the coverage of PooledCI (default 0.95).
func SeedNoise(law Law, obs []Obs, level float64) (*Noise, error) {
	if level <= 0 || level >= 1 {
		level = 0.95
	}
	n := &Noise{Measured: true, Level: level}
	var sumV, sumW, logs []float64
	var lls []float64
	for _, idx := range configsOf(law, obs) {
		runs := runLosses(obs, idx)
		if len(runs) < 2 {
			continue
		}
		var m, ml float64
		for _, l := range runs {
			m += l
			ml += math.Log(l)
		}
		k := float64(len(runs))
		m, ml = m/k, ml/k
		var v, vl float64
		for _, l := range runs {
			v += (l - m) * (l - m)
			vl += (math.Log(l) - ml) * (math.Log(l) - ml)
		}
		v, vl = v/(k-1), vl/(k-1)
		at := obs[idx[0]]
		at.Loss, at.Group = m, ""
		n.Configs = append(n.Configs, ConfigNoise{At: at, Seeds: len(runs), SD: math.Sqrt(v), LogSD: math.Sqrt(vl)})
		sumV = append(sumV, vl*(k-1))
		sumW = append(sumW, k-1)
		if vl > 0 {
			logs = append(logs, 0.5*math.Log(vl))
			lls = append(lls, ml)
		} else {
			logs = append(logs, math.NaN())
			lls = append(lls, ml)
		}
	}
	if len(n.Configs) == 0 {
		return nil, fmt.Errorf("seed noise: no configuration has two runs with identical %s; give the noise level instead (%g on the loss is the datablations median)",
			strings.Join(law.Inputs(), ", "), DefaultNoiseFloor)
	}
	var sv, sw float64
	for i := range sumV {
		sv += sumV[i]
		sw += sumW[i]
	}
	n.DoF = int(sw)
	n.Pooled = math.Sqrt(sv / sw)
	if n.Pooled == 0 {
		return nil, fmt.Errorf("seed noise: the replicates of all %d configurations have identical losses, so no noise can be measured; give the noise level instead", len(n.Configs))
	}
	a := (1 - level) / 2
	chi := distuv.ChiSquared{K: sw}
	n.PooledCI = Interval{n.Pooled * math.Sqrt(sw/chi.Quantile(1-a)), n.Pooled * math.Sqrt(sw/chi.Quantile(a))}
	sds := make([]float64, len(n.Configs))
	for i, c := range n.Configs {
		sds[i] = c.LogSD
	}
	sort.Float64s(sds)
	n.Median = quantile(sds, 0.5)
	n.trend(logs, lls, sumW)
	if n.Trend {
		// The trend's level: the weighted mean of log sᵢ, less its
		// small-sample bias, at the weighted mean log loss.
		var sw, sl float64
		for i, ls := range logs {
			if math.IsNaN(ls) {
				continue
			}
			nu := sumW[i]
			sl += sumW[i] * (ls - 0.5*(mathext.Digamma(nu/2)-math.Log(nu/2)))
			sw += sumW[i]
		}
		n.RefSD = math.Exp(sl / sw)
	}
	n.Source = fmt.Sprintf("measured from %d configurations with replicate seeds (%d degrees of freedom)", len(n.Configs), n.DoF)
	return n, nil
}

// runLosses returns the loss of each run among the observations idx: rows
// sharing a non-empty Group are one run, averaged.
func runLosses(obs []Obs, idx []int) []float64 {
	var out []float64
	pos := map[string]int{}
	cnt := map[string]int{}
	for _, i := range idx {
		o := obs[i]
		if o.Group == "" {
			out = append(out, o.Loss)
			continue
		}
		j, ok := pos[o.Group]
		if !ok {
			j = len(out)
			pos[o.Group] = j
			out = append(out, 0)
		}
		out[j] += o.Loss
		cnt[o.Group]++
	}
	for g, j := range pos {
		out[j] /= float64(cnt[g])
	}
	return out
}

// trend fits log sᵢ = c₀ + c·log L̄ᵢ weighted by the configurations'
// degrees of freedom, and keeps it when it is resolved.
func (n *Noise) trend(logs, lls, w []float64) {
	var sw, mx, my float64
	var xs, ys, ws []float64
	for i := range logs {
		if math.IsNaN(logs[i]) {
			continue
		}
		xs, ys, ws = append(xs, lls[i]), append(ys, logs[i]), append(ws, w[i])
		sw += w[i]
		mx += w[i] * lls[i]
		my += w[i] * logs[i]
	}
	if sw > 0 {
		n.RefLoss = math.Exp(mx / sw)
	}
	if len(xs) < 3 {
		return
	}
	mx, my = mx/sw, my/sw
	var sxx, sxy float64
	for i := range xs {
		sxx += ws[i] * (xs[i] - mx) * (xs[i] - mx)
		sxy += ws[i] * (xs[i] - mx) * (ys[i] - my)
	}
	if sxx == 0 {
		return
	}
	n.Slope = sxy / sxx
	var rss float64
	for i := range xs {
		r := ys[i] - my - n.Slope*(xs[i]-mx)
		rss += ws[i] * r * r
	}
	// Residual variance per unit weight, over k − 2 degrees of freedom.
	s2 := rss / float64(len(xs)-2)
	n.SlopeSE = math.Sqrt(s2 / sxx)
	n.Trend = math.Abs(n.Slope) > 2*n.SlopeSE
}

// Weigh returns a copy of obs with each observation's Scale set to its
// seed noise relative to the pooled level, on the scale loss compares
// residuals: σ(Lᵢ)/Pooled on log loss for the Huber losses, and
// Lᵢ·σ(Lᵢ)/(L̄·Pooled) on the loss itself for least squares (L̄ the mean
// loss). A fit of the result weights each residual by 1/Scale inside its
// loss (inverse-variance weights for least squares).
func (n *Noise) Weigh(obs []Obs, loss Loss) []Obs {
	out := append([]Obs(nil), obs...)
	mean := 0.0
	for _, o := range obs {
		mean += o.Loss
	}
	mean /= float64(max(len(obs), 1))
	for i := range out {
		s := n.Relative(out[i].Loss)
		if loss.Kind == LeastSquares {
			s *= out[i].Loss / mean
		}
		out[i].Scale = s
	}
	return out
}

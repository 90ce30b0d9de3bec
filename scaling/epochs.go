package scaling

import (
	"fmt"
	"math"
	"sort"
)

// DefaultNoiseFloor is the seed-noise level assumed when no replicate seeds
// are available: the median seed standard deviation of Muennighoff et
// al.'s 16 four-seed C4 configurations.
const DefaultNoiseFloor = 0.004

// EpochOptions configure EpochAnalysis.
type EpochOptions struct {
	// Z is how many seed standard deviations above the running minimum a
	// loss must be to count as degradation (default 2).
	Z float64
	// NoiseFloor is σ_seed when the data hold no replicate seeds
	// (default DefaultNoiseFloor). With replicates, σ_seed is their median
	// standard deviation, but never below a floor the caller set.
	NoiseFloor float64
}

// EpochPoint is one epoch count of a series: the mean loss over its seeds.
type EpochPoint struct {
	Epochs, Loss float64
	// Seeds is the number of runs averaged.
	Seeds int
}

// EpochSeries is one (N, U_D) series of runs over epochs.
type EpochSeries struct {
	// N and U are the series' parameters and unique tokens.
	N, U float64
	// Points are sorted by epochs.
	Points []EpochPoint
	// Best is the epoch count with the lowest loss.
	Best float64
	// Degrades is the first epoch count whose loss exceeds the running
	// minimum by more than Z·σ_seed (zero when none does).
	Degrades float64
}

// EpochReport is the repeated-data analysis of a set of runs.
type EpochReport struct {
	Series []EpochSeries
	// Sigma is σ_seed and SigmaSource says where it came from.
	Sigma       float64
	SigmaSource string
	Z           float64
}

// EpochAnalysis groups runs by (N, U_D), averages seeds of identical
// (N, D, U_D), and for each series reports the epoch count at the optimum
// and the first epoch count where the loss rises beyond the seed noise
// (multi-epoch degradation, Xue et al. 2023).
func EpochAnalysis(obs []Obs, o EpochOptions) (*EpochReport, error) {
	if o.Z <= 0 {
		o.Z = 2
	}
	if err := Validate(DataConstrained, obs); err != nil {
		return nil, err
	}
	type cfg struct{ n, d, u float64 }
	byCfg := map[cfg][]float64{}
	for _, ob := range obs {
		k := cfg{ob.N, ob.D, ob.U}
		byCfg[k] = append(byCfg[k], ob.Loss)
	}
	var sds []float64
	for _, ls := range byCfg {
		if len(ls) >= 2 {
			sds = append(sds, stddev(ls))
		}
	}
	r := &EpochReport{Z: o.Z}
	switch {
	case len(sds) > 0:
		sort.Float64s(sds)
		r.Sigma = quantile(sds, 0.5)
		r.SigmaSource = fmt.Sprintf("median standard deviation of %d replicated configurations", len(sds))
		if o.NoiseFloor > r.Sigma {
			r.Sigma, r.SigmaSource = o.NoiseFloor, "stated floor (above the replicate estimate)"
		}
	case o.NoiseFloor > 0:
		r.Sigma, r.SigmaSource = o.NoiseFloor, "stated floor (no replicate seeds)"
	default:
		r.Sigma, r.SigmaSource = DefaultNoiseFloor, "default floor (no replicate seeds)"
	}
	type key struct{ n, u float64 }
	series := map[key]*EpochSeries{}
	for c, ls := range byCfg {
		k := key{c.n, c.u}
		s := series[k]
		if s == nil {
			s = &EpochSeries{N: c.n, U: c.u}
			series[k] = s
		}
		m := 0.0
		for _, l := range ls {
			m += l
		}
		s.Points = append(s.Points, EpochPoint{Epochs: c.d / c.u, Loss: m / float64(len(ls)), Seeds: len(ls)})
	}
	for _, s := range series {
		sort.Slice(s.Points, func(i, j int) bool { return s.Points[i].Epochs < s.Points[j].Epochs })
		best := math.Inf(1)
		for _, p := range s.Points {
			if s.Degrades == 0 && p.Loss > best+o.Z*r.Sigma {
				s.Degrades = p.Epochs
			}
			if p.Loss < best {
				best, s.Best = p.Loss, p.Epochs
			}
		}
		r.Series = append(r.Series, *s)
	}
	sort.Slice(r.Series, func(i, j int) bool {
		a, b := r.Series[i], r.Series[j]
		if a.N != b.N {
			return a.N < b.N
		}
		return a.U < b.U
	})
	return r, nil
}

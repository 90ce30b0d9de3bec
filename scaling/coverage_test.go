package scaling

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"testing"
)

// The coverage study draws data from known parameters with known noise,
// fits, bootstraps, and counts how often each parameter's 95% interval
// contains the truth. The default run is small (a few seconds); set
// SCALING_LONG=1 for the full study:
//
//	SCALING_LONG=1 go test -run Coverage -v ./scaling
func coverageSize() (seeds, resamples int, minRate float64) {
	if os.Getenv("SCALING_LONG") != "" {
		return 400, 1000, 0.90
	}
	return 40, 200, 0.80
}

type coverageCase struct {
	law   Law
	truth []float64
	opts  Options
	// draw returns the design (losses filled by the caller).
	draw  func(rng *rand.Rand) []Obs
	noise float64 // log-normal σ
}

func coverageCases() []coverageCase {
	grid1 := func(rng *rand.Rand) []Obs {
		var obs []Obs
		for i := range 24 {
			x := math.Pow(10, 0.5+3*float64(i)/23)
			obs = append(obs, Obs{X: x})
		}
		return obs
	}
	chin := func(rng *rand.Rand) []Obs {
		var obs []Obs
		for i := range 6 {
			n := math.Pow(10, 7.5+0.5*float64(i))
			for j := range 6 {
				d := n * math.Pow(10, 0.3+0.4*float64(j))
				obs = append(obs, Obs{N: n, D: d})
			}
		}
		return obs
	}
	data := func(rng *rand.Rand) []Obs {
		var obs []Obs
		for _, n := range []float64{1e8, 4e8, 1.6e9} {
			for _, u := range []float64{2e9, 8e9} {
				for _, ep := range []float64{1, 2, 4, 8, 16, 32, 64} {
					obs = append(obs, Obs{N: n, D: u * ep, U: u})
				}
			}
		}
		return obs
	}
	members := func(rng *rand.Rand) []Obs {
		var obs []Obs
		for k := 1; k <= 12; k++ {
			obs = append(obs, Obs{X: float64(k)})
		}
		return obs
	}
	base := datablationsBase
	return []coverageCase{
		{law: Power, truth: []float64{2.0, 5.0, 0.4}, draw: grid1, noise: 0.01,
			opts: Options{Loss: Loss{Kind: LeastSquares}}},
		{law: Ensemble, truth: []float64{3.3, 0.25, 0.8}, draw: members, noise: 0.002,
			opts: Options{Loss: Loss{Kind: LeastSquares}}},
		{law: Chinchilla, truth: []float64{1.8, 480, 2100, 0.34, 0.37}, draw: chin, noise: 0.01,
			opts: Options{RandomStarts: 20}},
		{law: DataConstrained, truth: datablationsParams(5, 3), draw: data, noise: 0.005,
			opts: Options{Fixed: base}},
	}
}

func TestCoverage(t *testing.T) {
	seeds, resamples, minRate := coverageSize()
	if testing.Short() {
		seeds = 10
	}
	for _, c := range coverageCases() {
		t.Run(c.law.Name(), func(t *testing.T) {
			hits := make([]int, len(c.truth))
			for s := range seeds {
				rng := rand.New(rand.NewPCG(uint64(s), 99))
				obs := c.draw(rng)
				for i := range obs {
					obs[i].Loss = c.law.Predict(c.truth, obs[i]) * math.Exp(c.noise*rng.NormFloat64())
				}
				o := c.opts
				o.Seed = uint64(s)
				f, err := FitLaw(context.Background(), c.law, obs, o)
				if err != nil {
					t.Fatal(err)
				}
				b, err := Bootstrap(context.Background(), f, BootstrapOptions{Resamples: resamples, Seed: uint64(s)})
				if err != nil {
					t.Fatal(err)
				}
				for j, v := range c.truth {
					if b.Intervals[j].Contains(v) {
						hits[j]++
					}
				}
			}
			var report string
			for j, name := range c.law.Params() {
				rate := float64(hits[j]) / float64(seeds)
				report += fmt.Sprintf(" %s %.2f", name, rate)
				if !c.opts.fixed(name) && rate < minRate && !testing.Short() {
					t.Errorf("%s: 95%% interval covered the truth in %d of %d data sets", name, hits[j], seeds)
				}
			}
			t.Logf("coverage over %d seeds, %d resamples:%s", seeds, resamples, report)
		})
	}
}

func (o Options) fixed(name string) bool {
	_, ok := o.Fixed[name]
	return ok
}

package scaling

import (
	"context"
	"os"
	"testing"
)

func readSynthetic(tb testing.TB) []Obs {
	tb.Helper()
	f, err := os.Open("testdata/chinchilla_synthetic_240.csv")
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { f.Close() })
	obs, err := ReadCSV(f, Chinchilla, DefaultColumns)
	if err != nil {
		tb.Fatal(err)
	}
	return obs
}

// hoffmann are Hoffmann et al.'s published Approach 3 parameters, the start
// of Besiroglu et al.'s bootstrap refits.
var hoffmann = []float64{1.69, 406.4, 410.7, 0.34, 0.28}

// BenchmarkChinchillaGrid times the 4,500-start grid fit on 240 points
// (the job SciPy's L-BFGS-B takes about 66 s for; see bench/scaling).
func BenchmarkChinchillaGrid(b *testing.B) {
	obs := readSynthetic(b)
	for b.Loop() {
		f, err := FitLaw(context.Background(), Chinchilla, obs, Options{})
		if err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(float64(f.Agree), "agree")
	}
}

// BenchmarkChinchillaBootstrap times 4,000 bootstrap refits of 240 points,
// each started from Hoffmann et al.'s parameters as Besiroglu et al. do.
func BenchmarkChinchillaBootstrap(b *testing.B) {
	obs := readSynthetic(b)
	f, err := FitLaw(context.Background(), Chinchilla, obs, Options{Starts: [][]float64{hoffmann}})
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if _, err := Bootstrap(context.Background(), f, BootstrapOptions{Resamples: 4000, Seed: 42, Start: hoffmann}); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkChinchillaWeighted times the 4,500-start grid on the same 240
// points with per-point noise scales (a noise-weighted fit), which runs the
// general residual loop instead of the fused Huber kernel; compare with
// BenchmarkChinchillaGrid.
func BenchmarkChinchillaWeighted(b *testing.B) {
	obs := readSynthetic(b)
	for i := range obs {
		obs[i].Scale = 0.5 + float64(i%7)/6
	}
	for b.Loop() {
		if _, err := FitLaw(context.Background(), Chinchilla, obs, Options{}); err != nil {
			b.Fatal(err)
		}
	}
}

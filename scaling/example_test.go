package scaling_test

import (
	"context"
	"fmt"
	"math"

	"asymptote.dev/asymptote/scaling"
)

// Fit a saturating power law L(x) = E + A·x^−alpha to noiseless points and
// read back the asymptote.
func ExampleFitLaw() {
	var obs []scaling.Obs
	for _, x := range []float64{1, 2, 4, 8, 16, 32, 64, 128} {
		obs = append(obs, scaling.Obs{X: x, Loss: 3.2 + 0.8*math.Pow(x, -0.5)})
	}
	fit, err := scaling.FitLaw(context.Background(), scaling.Power, obs, scaling.Options{})
	if err != nil {
		fmt.Println(err)
		return
	}
	for i, name := range fit.Names {
		fmt.Printf("%s = %.4f\n", name, fit.Params[i])
	}
	fmt.Printf("%d of %d starts reached the optimum\n", fit.Agree, fit.Starts)
	// Output:
	// E = 3.2000
	// A = 0.8000
	// alpha = 0.5000
	// 94 of 150 starts reached the optimum
}

// The compute-optimal split of Chinchilla's budget under Besiroglu et al.'s
// estimates: about 18 tokens per parameter.
func ExampleFrontier_At() {
	fr := scaling.FrontierOf([]float64{1.8169, 482.01, 2085.43, 0.3478, 0.3658})
	al := fr.At(5.88e23)
	fmt.Printf("N = %.3g, D = %.3g, D/N = %.1f, L* = %.3f\n", al.N, al.D, al.TokensPerParam, al.Loss)
	// Output:
	// N = 7.3e+10, D = 1.34e+12, D/N = 18.4, L* = 1.974
}

// How much a repeated token is worth under Muennighoff et al.'s fit.
func ExampleRepeatValue() {
	for _, epochs := range []float64{4, 40} {
		frac, marginal := scaling.RepeatValue(15.387756, epochs)
		fmt.Printf("%2.0f epochs: D'/D = %.2f, next repeated token worth %.2f of a fresh one\n", epochs, frac, marginal)
	}
	// Output:
	//  4 epochs: D'/D = 0.93, next repeated token worth 0.82 of a fresh one
	// 40 epochs: D'/D = 0.38, next repeated token worth 0.08 of a fresh one
}

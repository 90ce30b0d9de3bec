package coordinator_test

import (
	"context"
	"fmt"
	"math"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"asymptote.dev/asymptote/internal/bus"
	"asymptote.dev/asymptote/internal/clustertest"
	"asymptote.dev/asymptote/plugins/methods/synthetic"
	"asymptote.dev/asymptote/plugins/sdk"
	"asymptote.dev/asymptote/sweep"
)

// TestStrategiesOverSeeds measures the adaptive strategies over many noise
// seeds on the synthetic law: how often the crossover search's final
// interval holds the true crossing and the asymptote search's holds the
// true asymptote (both nominally 95%), the asymptote search's compute
// against the full grid, and successive halving's margin and compute
// against the grid. It takes minutes, so it runs only with
// ASYMPTOTE_STRATEGY_SEEDS=N:
//
//	ASYMPTOTE_STRATEGY_SEEDS=20 go test ./coordinator -run TestStrategiesOverSeeds -v -timeout 30m
func TestStrategiesOverSeeds(t *testing.T) {
	n, _ := strconv.Atoi(os.Getenv("ASYMPTOTE_STRATEGY_SEEDS"))
	if n <= 0 {
		t.Skip("set ASYMPTOTE_STRATEGY_SEEDS=N to run the strategy study over N seeds")
	}
	var crossHit, asymHit, asymDone int
	var asymFrac, shaMargin, shaFrac, shaWorst, ashaMargin, ashaFrac, ashaWorst float64
	for seed := range n {
		am, af := ashaRun(t, seed)
		ashaMargin += am
		ashaFrac += af
		ashaWorst = max(ashaWorst, am)
		crossHit += b2i(crossoverRun(t, seed))
		hit, done, frac := asymptoteRun(t, seed)
		asymHit += b2i(hit)
		asymDone += b2i(done)
		asymFrac += frac
		m, f := halvingRun(t, seed)
		shaMargin += m
		shaFrac += f
		shaWorst = max(shaWorst, m)
	}
	t.Logf("crossover refinement: true crossing inside the final 95%% interval in %d of %d seeds (%.0f%%)", crossHit, n, 100*float64(crossHit)/float64(n))
	t.Logf("asymptote search: reached the target in %d of %d; true E inside the final interval in %d (%.0f%%); mean compute %.0f%% of the full grid", asymDone, n, asymHit, 100*float64(asymHit)/float64(n), 100*asymFrac/float64(n))
	t.Logf("successive halving: mean margin to the grid's best %.2f%% (worst %.2f%%), mean compute %.0f%% of the grid", 100*shaMargin/float64(n), 100*shaWorst, 100*shaFrac/float64(n))
	t.Logf("ASHA: mean margin to the grid's best %.2f%% (worst %.2f%%), mean compute %.0f%% of the grid", 100*ashaMargin/float64(n), 100*ashaWorst, 100*ashaFrac/float64(n))
}

// ashaRun tunes 9 weight decays with ASHA early stopping and returns the
// noiseless margin of the best completed configuration to the grid's best,
// and the tokens trained as a fraction of the grid's.
func ashaRun(t *testing.T, seed int) (margin, frac float64) {
	spec := fmt.Sprintf(`name: asha
method: synthetic
space:
  weight_decay: {range: [0.01, 1], count: 9, scale: log}
fixed:
  params: 1e8
  tokens: 1e9
  unique_tokens: 1e9
  noise: 0.01
  steps: 9
  sleep: 0.9
seeds: [%d]
resources: {cpu: 0.5, memory: 16MiB}
search:
  asha: {fidelity: tokens, rungs: [1.1e8, 3.3e8], eta: 3}
`, seed)
	cl, name := runStudy(t, spec)
	client := cl.Client()
	cl.WaitDone(client, name, 120*time.Second)
	parsed, _ := sweep.Parse("asha.yaml", []byte(spec))
	noiseless := func(params map[string]any, seed int64) float64 {
		v, _ := parsed.Variant(params, map[string]any{"noise": 0.0, "steps": 0.0, "sleep": 0.0}, seed)
		res, err := synthetic.New().Run(context.Background(), &sdk.TrialRequest{TrialID: v.ID, Params: v.Params, Seed: v.Seed, Threads: 1}, func(sdk.Metrics) error { return nil })
		if err != nil {
			t.Fatal(err)
		}
		return res.Metrics["val_loss"]
	}
	grid, used, gridTokens := math.Inf(1), 0.0, 0.0
	found, foundObj := math.Inf(1), math.Inf(1)
	for _, tr := range results(t, client, name) {
		gridTokens += 1e9
		grid = min(grid, noiseless(tr.Params, tr.Seed))
		switch tr.State {
		case sweep.Succeeded:
			used += 1e9
			if *tr.Result.Objective < foundObj {
				foundObj, found = *tr.Result.Objective, noiseless(tr.Params, tr.Seed)
			}
		default:
			if len(tr.Rungs) > 0 {
				used += tr.Rungs[len(tr.Rungs)-1].Fidelity
			}
		}
	}
	return found/grid - 1, used / gridTokens
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

func runStudy(t *testing.T, spec string) (*clustertest.Cluster, string) {
	t.Helper()
	cl, client := syntheticCluster(t)
	name := strings.Fields(strings.SplitN(spec, "\n", 2)[0])[1]
	submit(t, client, spec)
	return cl, name
}

func crossoverRun(t *testing.T, seed int) bool {
	spec := fmt.Sprintf(`name: cross
method: synthetic
space:
  params: [1e5, 1e7, 1e9, 1e11]
  alpha: [0.3, 0.4]
fixed:
  tokens: 1e15
  noise: 0.03
derived:
  E: 1.8 - (alpha - 0.3) * 2
  A: 400 + (alpha - 0.3) * 16000
seeds: [%d, %d]
resources: {cpu: 0.5, memory: 16MiB}
analysis:
  fit: {law: power, x: params, group: alpha, bootstrap: 0}
search:
  crossover: {ratio: 1.6, max_values: 6}
`, 2*seed, 2*seed+1)
	cl, name := runStudy(t, spec)
	st := cl.WaitDone(cl.Client(), name, 120*time.Second)
	last := st.Decisions[len(st.Decisions)-1].Reason
	var lo, hi float64
	if _, err := fmtSscanInterval(last, &lo, &hi); err != nil {
		return false
	}
	f := func(n float64) float64 { return 1.8 + 400*math.Pow(n, -0.3) - 1.6 - 2000*math.Pow(n, -0.4) }
	a, b := 1e5, 1e9
	for range 100 {
		m := math.Sqrt(a * b)
		if f(a)*f(m) <= 0 {
			b = m
		} else {
			a = m
		}
	}
	return a >= lo && a <= hi
}

func asymptoteRun(t *testing.T, seed int) (hit, done bool, frac float64) {
	spec := fmt.Sprintf(`name: asym
method: synthetic
space:
  params: [1e6, 3e6, 1e7, 3e7]
fixed:
  tokens: 1e12
  noise: 0.005
seeds: [%d, %d]
resources: {cpu: 0.5, memory: 16MiB}
analysis:
  fit: {law: power, x: params, bootstrap: 200}
search:
  asymptote: {target_width: 0.1, max_values: 6}
`, 2*seed, 2*seed+1)
	cl, name := runStudy(t, spec)
	client := cl.Client()
	st := cl.WaitDone(client, name, 120*time.Second)
	done = strings.Contains(st.Decisions[len(st.Decisions)-1].Reason, "within the target")
	used, sizes := 0.0, map[float64]bool{}
	for _, tr := range results(t, client, name) {
		n := tr.Params["params"].(float64)
		used += n
		sizes[n] = true
	}
	grid := 0.0
	for n := 1e6; n <= 1e10*1.01; n *= math.Sqrt(10) {
		grid += 2 * n
	}
	wantE := 1.69 + 410.7/math.Pow(1e12, 0.28)
	clustertest.WaitFor(t, 30*time.Second, func() error {
		r, err := client.Status(context.Background(), name)
		if err != nil {
			return err
		}
		a := r.Studies[0].Analysis
		if len(a) != 1 || a[0].Points != 2*len(sizes) || a[0].Params[0].Lo == nil {
			return fmt.Errorf("final fit not there yet")
		}
		e := a[0].Params[0]
		hit = *e.Lo <= wantE && wantE <= *e.Hi
		return nil
	})
	return hit, done, used / grid
}

func halvingRun(t *testing.T, seed int) (margin, frac float64) {
	spec := fmt.Sprintf(`name: sha
method: synthetic
space:
  weight_decay: {range: [0.01, 1], count: 9, scale: log}
fixed:
  params: 1e8
  tokens: 1e9
  noise: 0.01
derived:
  unique_tokens: tokens
seeds: [%d]
resources: {cpu: 0.5, memory: 16MiB}
search:
  halving: {fidelity: tokens, max: 2.7e10, eta: 3}
`, seed)
	cl, name := runStudy(t, spec)
	client := cl.Client()
	cl.WaitDone(client, name, 120*time.Second)
	shaCompute := 0.0
	for _, tr := range results(t, client, name) {
		shaCompute += tr.Params["tokens"].(float64)
	}
	parsed, _ := sweep.Parse("sha.yaml", []byte(spec))
	trials, _ := parsed.Expand()
	// The grid's best is judged by the noiseless law, so the margin
	// measures the configuration found, not the noise of its draw.
	gridBest, gridCompute, shaTrue := math.Inf(1), 0.0, math.Inf(1)
	for _, tr := range trials {
		v, _ := parsed.Variant(tr.Params, map[string]any{"tokens": 2.7e10, "noise": 0.0}, tr.Seed)
		res, err := synthetic.New().Run(context.Background(), &sdk.TrialRequest{TrialID: v.ID, Params: v.Params, Seed: v.Seed, Threads: 1}, func(sdk.Metrics) error { return nil })
		if err != nil {
			t.Fatal(err)
		}
		gridBest = min(gridBest, res.Metrics["val_loss"])
		gridCompute += 2.7e10
	}
	// The noiseless loss of the configuration halving kept.
	for _, tr := range results(t, client, name) {
		if tr.Params["tokens"] == 2.7e10 {
			v, _ := parsed.Variant(tr.Params, map[string]any{"noise": 0.0}, tr.Seed)
			res, err := synthetic.New().Run(context.Background(), &sdk.TrialRequest{TrialID: v.ID, Params: v.Params, Seed: v.Seed, Threads: 1}, func(sdk.Metrics) error { return nil })
			if err != nil {
				t.Fatal(err)
			}
			shaTrue = min(shaTrue, res.Metrics["val_loss"])
		}
	}
	return shaTrue/gridBest - 1, shaCompute / gridCompute
}

// syntheticCluster starts embedded servers, a coordinator and one agent
// with two CPUs that runs the synthetic method in process.
func syntheticCluster(t *testing.T) (*clustertest.Cluster, *bus.Client) {
	t.Helper()
	cl := clustertest.New(t)
	cl.StartCoordinator("c1", nil)
	cl.StartAgent("a1", cpuNode(2), clustertest.InProcess{"synthetic": synthetic.New()})
	return cl, cl.Client()
}

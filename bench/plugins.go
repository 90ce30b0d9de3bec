package bench

import (
	"context"
	"fmt"
	"os"
	"slices"
	"time"

	"asymptote.dev/asymptote/agent/methodmgr"
	"asymptote.dev/asymptote/plugins/methods"
	"asymptote.dev/asymptote/plugins/sdk"
)

// PluginResult is the plugin path on its own, without the cluster.
type PluginResult struct {
	// Cold is the median time from a fresh manager to the first trial's
	// result: launch, handshake, dispense and one trial.
	Cold time.Duration
	// Warm is the median per-trial time of no-op trials on a reused
	// process, sequentially.
	Warm time.Duration
	// StreamPerSec is metric reports per second from one trial that
	// reports every step, received by the host.
	StreamPerSec float64
}

// Plugins measures cold start, warm per-trial overhead and metric
// streaming through methodmgr and go-plugin.
func Plugins(ctx context.Context, opts Options, colds, warms, steps int) (PluginResult, error) {
	opts.setDefaults()
	var res PluginResult
	dir, err := os.MkdirTemp(opts.TempDir, "asymptote-plugins-")
	if err != nil {
		return res, fmt.Errorf("bench: %w", err)
	}
	defer os.RemoveAll(dir)
	newMgr := func() (*methodmgr.Manager, error) {
		return methodmgr.New(methodmgr.Config{Executable: opts.Executable, Builtins: methods.Names(), WorkDir: dir, Logger: opts.components})
	}
	noop := func(i int) methodmgr.Run {
		return methodmgr.Run{Method: "synthetic", Request: &sdk.TrialRequest{
			Study: "bench", TrialID: fmt.Sprintf("t%d", i), Attempt: 1, Seed: int64(i), Threads: 1,
			Params: map[string]any{"params": 1e8, "tokens": 2e9},
		}}
	}
	cold := make([]time.Duration, 0, colds)
	for i := range colds {
		m, err := newMgr()
		if err != nil {
			return res, fmt.Errorf("bench: method manager: %w", err)
		}
		start := time.Now()
		_, err = m.Run(ctx, noop(i), nil)
		cold = append(cold, time.Since(start))
		m.Close()
		if err != nil {
			return res, fmt.Errorf("bench: cold trial: %w", err)
		}
	}
	res.Cold = median(cold)

	m, err := newMgr()
	if err != nil {
		return res, fmt.Errorf("bench: method manager: %w", err)
	}
	defer m.Close()
	if _, err := m.Run(ctx, noop(0), nil); err != nil {
		return res, fmt.Errorf("bench: warm-up trial: %w", err)
	}
	// Median of batches of trials, each batch timed as a whole.
	const batch = 50
	var per []time.Duration
	for done := 0; done < warms; done += batch {
		start := time.Now()
		for i := range batch {
			if _, err := m.Run(ctx, noop(done+i), nil); err != nil {
				return res, fmt.Errorf("bench: warm trial: %w", err)
			}
		}
		per = append(per, time.Since(start)/batch)
	}
	res.Warm = median(per)

	r := noop(-1)
	r.Request.Params["steps"] = float64(steps)
	n := 0
	start := time.Now()
	if _, err := m.Run(ctx, r, func(sdk.Metrics) error { n++; return nil }); err != nil {
		return res, fmt.Errorf("bench: streaming trial: %w", err)
	}
	if n < steps {
		return res, fmt.Errorf("bench: streaming trial reported %d of %d steps", n, steps)
	}
	res.StreamPerSec = float64(n) / time.Since(start).Seconds()
	return res, nil
}

func median[T ~int64 | ~float64](xs []T) T {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	return s[len(s)/2]
}

// Package methodtest holds what the built-in methods' tests share: they
// require the real data (skipping when it is not installed, except under
// CI, where .ci/run installs it and missing data is a failure), and they
// check cancellation and missing-data errors the same way.
package methodtest

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"asymptote.dev/asymptote/plugins/methods/corpus"
	"asymptote.dev/asymptote/plugins/sdk"
)

// RequireKJV fails t unless the KJV text is installed.
func RequireKJV(t testing.TB) {
	t.Helper()
	_, err := corpus.LoadKJV(nil)
	check(t, err)
}

// RequireFashion fails t unless Fashion-MNIST is installed.
func RequireFashion(t testing.TB) {
	t.Helper()
	_, _, err := corpus.LoadFashionMNIST(nil)
	check(t, err)
}

func check(t testing.TB, err error) {
	t.Helper()
	// Missing data fails the test rather than skipping it: a green run
	// must mean the methods trained on real data. scripts/test installs
	// it first.
	if err != nil {
		t.Fatalf("%v (scripts/install-data.sh installs the data)", err)
	}
}

// StopsPromptly starts run, which must outlast after, cancels its context
// after that long and fails t unless run returns context.Canceled within
// a second.
func StopsPromptly(t *testing.T, after time.Duration, run func(ctx context.Context) error) {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	t.Cleanup(cancel)
	done := make(chan error, 1)
	go func() { done <- run(ctx) }()
	time.Sleep(after)
	start := time.Now()
	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("run returned %v, want context.Canceled", err)
		}
		if d := time.Since(start); d > time.Second {
			t.Errorf("run took %v to stop", d)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("run did not stop within 2 s of cancellation")
	}
}

// NamesInstallScript fails t unless err reports missing data and says to
// run scripts/install-data.sh.
func NamesInstallScript(t *testing.T, err error) {
	t.Helper()
	if !errors.Is(err, corpus.ErrMissing) || !strings.Contains(err.Error(), "scripts/install-data.sh") {
		t.Errorf("got %v, want ErrMissing naming scripts/install-data.sh", err)
	}
}

// Run runs one trial of m in-process and returns its result and the
// metrics it reported.
func Run(ctx context.Context, m sdk.Method, params map[string]any, seed int64, threads int) (*sdk.Result, []sdk.Metrics, error) {
	var reports []sdk.Metrics
	res, err := m.Run(ctx, &sdk.TrialRequest{Params: params, Seed: seed, Threads: threads}, func(x sdk.Metrics) error {
		reports = append(reports, x)
		return nil
	})
	return res, reports, err
}

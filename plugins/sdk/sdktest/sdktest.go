// Package sdktest helps method authors test their methods through the same
// gRPC code path the agent uses, in-process and without a plugin binary.
//
//	func TestMyMethod(t *testing.T) {
//		res, reports, err := sdktest.Run(t, mymethod.New(), &sdk.TrialRequest{
//			TrialID: "t1", Attempt: 1, Params: map[string]any{"lr": 0.01},
//		})
//		...
//	}
//
//	func TestConformance(t *testing.T) {
//		sdktest.Conformance(t, mymethod.New(), sdktest.Cases{
//			Long:    &sdk.TrialRequest{...}, // runs long enough to cancel
//			Invalid: &sdk.TrialRequest{...}, // rejected with *sdk.ParamError
//		})
//	}
package sdktest

import (
	"context"
	"errors"
	"math"
	"reflect"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-plugin"

	"asymptote.dev/asymptote/plugins/sdk"
)

// Client serves m in-process over go-plugin's gRPC transport and returns
// the host's client for it. Both ends are closed when the test ends.
func Client(t testing.TB, m sdk.Method) *sdk.Client {
	t.Helper()
	client, server := plugin.TestPluginGRPCConn(t, false, sdk.PluginSet(m))
	t.Cleanup(func() {
		// Close asks the server to stop over the connection; stopping
		// it here as well would race go-plugin's own Stop.
		if err := client.Close(); err != nil {
			server.Stop()
		}
	})
	raw, err := client.Dispense(sdk.PluginName)
	if err != nil {
		t.Fatalf("dispense method: %v", err)
	}
	c, ok := raw.(*sdk.Client)
	if !ok {
		t.Fatalf("dispensed %T, want *sdk.Client", raw)
	}
	return c
}

// Run runs one attempt of m through the gRPC transport and returns its
// result, the metrics it reported, and its error as the agent would see
// it. It fills in Attempt 1 and Threads 1 when they are zero.
func Run(t testing.TB, m sdk.Method, req *sdk.TrialRequest) (*sdk.Result, []sdk.Metrics, error) {
	t.Helper()
	return RunContext(t.Context(), t, m, req)
}

// RunContext is Run under ctx.
func RunContext(ctx context.Context, t testing.TB, m sdk.Method, req *sdk.TrialRequest) (*sdk.Result, []sdk.Metrics, error) {
	t.Helper()
	r := *req
	if r.Attempt == 0 {
		r.Attempt = 1
	}
	if r.Threads == 0 {
		r.Threads = 1
	}
	var (
		mu      sync.Mutex
		reports []sdk.Metrics
	)
	res, err := Client(t, m).Run(ctx, &r, func(mt sdk.Metrics) error {
		mu.Lock()
		defer mu.Unlock()
		reports = append(reports, mt)
		return nil
	})
	return res, reports, err
}

// Cases are the requests Conformance needs.
type Cases struct {
	// Long is a valid request that runs for at least a second (for
	// example with a large step count), so it can be cancelled midway.
	Long *sdk.TrialRequest
	// Invalid is a request m rejects with a *sdk.ParamError; nil skips
	// that check.
	Invalid *sdk.TrialRequest
	// CancelWithin is how soon after cancellation Run must return;
	// default 1s.
	CancelWithin time.Duration
}

// Conformance checks that m keeps the Method contract over the wire: Info
// describes it, Run returns promptly with the context's error when
// cancelled or past its deadline, and a *sdk.ParamError reaches the agent
// intact. Each check is a subtest.
func Conformance(t *testing.T, m sdk.Method, c Cases) {
	t.Helper()
	within := c.CancelWithin
	if within <= 0 {
		within = time.Second
	}
	t.Run("Info", func(t *testing.T) {
		info, err := Client(t, m).Info(t.Context())
		if err != nil {
			t.Fatalf("Info: %v", err)
		}
		if info.Name == "" || info.Version == "" {
			t.Errorf("Info = %+v, want a name and a version", info)
		}
		for _, p := range info.Params {
			if p.Name == "" || p.Type == "" {
				t.Errorf("parameter %+v lacks a name or a type", p)
			}
		}
	})
	stopped := func(t *testing.T, name string, mk func() (context.Context, func()), want ...error) {
		t.Run(name, func(t *testing.T) {
			if c.Long == nil {
				t.Skip("no Long request")
			}
			cl := Client(t, m)
			req := *c.Long
			req.Attempt, req.Threads = max(req.Attempt, 1), max(req.Threads, 1)
			ctx, stop := mk()
			defer stop()
			start := time.Now()
			type outcome struct {
				res *sdk.Result
				err error
			}
			done := make(chan outcome, 1)
			go func() {
				res, err := cl.Run(ctx, &req, func(sdk.Metrics) error { return nil })
				done <- outcome{res, err}
			}()
			var res *sdk.Result
			var err error
			select {
			case o := <-done:
				res, err = o.res, o.err
			case <-time.After(within + 2*time.Second):
				// Closing the connection at cleanup ends the call.
				t.Fatalf("Run did not return within %v of cancellation: it must honour ctx", within)
			}
			if err == nil {
				t.Fatalf("Run = %v, nil; want an error (is Long long enough?)", res)
			}
			ok := false
			for _, w := range want {
				ok = ok || errors.Is(err, w)
			}
			if !ok {
				t.Errorf("Run error = %v, want one matching %v", err, want)
			}
			if d := time.Since(start); d > within+200*time.Millisecond {
				t.Errorf("Run returned %v after starting, want within %v of cancellation", d, within)
			}
		})
	}
	stopped(t, "Cancel", func() (context.Context, func()) {
		ctx, cancel := context.WithCancel(t.Context())
		timer := time.AfterFunc(100*time.Millisecond, cancel)
		return ctx, func() { timer.Stop(); cancel() }
	}, context.Canceled)
	stopped(t, "Deadline", func() (context.Context, func()) {
		return context.WithTimeout(t.Context(), 100*time.Millisecond)
	}, context.DeadlineExceeded, context.Canceled)
	t.Run("ParamError", func(t *testing.T) {
		if c.Invalid == nil {
			t.Skip("no Invalid request")
		}
		req := *c.Invalid
		req.Attempt, req.Threads = max(req.Attempt, 1), max(req.Threads, 1)
		_, direct := m.Run(t.Context(), &req, func(sdk.Metrics) error { return nil })
		var want *sdk.ParamError
		if !errors.As(direct, &want) {
			t.Fatalf("in-process Run error = %v, want a *sdk.ParamError", direct)
		}
		_, _, err := Run(t, m, c.Invalid)
		var got *sdk.ParamError
		if !errors.As(err, &got) {
			t.Fatalf("Run error over the wire = %v, want a *sdk.ParamError", err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("ParamError over the wire = %+v, want %+v", got, want)
		}
	})
}

// ResumeCase describes a resume check: Request must make the method save
// checkpoints on its own (for example a checkpoint period among its
// parameters), and Tolerance bounds the relative difference allowed
// between the resumed and the uninterrupted run's values (0: bit for
// bit, what a deterministic method gives).
type ResumeCase struct {
	Request   *sdk.TrialRequest
	Tolerance float64
	// Ignore names metrics that may differ between the runs, such as a
	// throughput in tokens per second.
	Ignore []string
}

// Resume checks that m resumes from its checkpoints with the result it
// would have reached uninterrupted: it runs Request through once with a
// checkpoint directory, then resumes a new attempt from the middle
// checkpoint it saved, as an agent would on another host, and compares the
// result and every report after the checkpoint's step with the first run's.
// It returns the number of checkpoints the first run saved.
func Resume(t *testing.T, m sdk.Method, c ResumeCase) int {
	t.Helper()
	req := c.Request.WithCheckpointRoot(t.TempDir())
	full, reports, err := Run(t, m, req)
	if err != nil {
		t.Fatalf("uninterrupted run: %v", err)
	}
	var saved []sdk.Metrics
	for _, r := range reports {
		if r.Checkpoint != "" {
			saved = append(saved, r)
		}
	}
	if len(saved) == 0 {
		t.Fatalf("the run saved no checkpoint in %d reports; give the request a checkpoint period", len(reports))
	}
	from := saved[len(saved)/2]
	resumed := c.Request.WithCheckpointRoot(t.TempDir())
	resumed.Attempt = max(c.Request.Attempt, 1) + 1
	resumed.Resume = &sdk.Checkpoint{Step: from.Step, Metrics: from.Values, Dir: from.Checkpoint}
	res, after, err := Run(t, m, resumed)
	if err != nil {
		t.Fatalf("resumed from step %d: %v", from.Step, err)
	}
	var want []sdk.Metrics
	for _, r := range reports {
		if r.Step > from.Step {
			want = append(want, r)
		}
	}
	if len(after) != len(want) {
		t.Fatalf("resumed from step %d: %d reports, want the %d after it", from.Step, len(after), len(want))
	}
	for i := range want {
		if after[i].Step != want[i].Step {
			t.Fatalf("resumed report %d is step %d, want %d", i, after[i].Step, want[i].Step)
		}
		compareValues(t, "step "+strconv.FormatInt(want[i].Step, 10), drop(after[i].Values, c.Ignore), drop(want[i].Values, c.Ignore), c.Tolerance)
	}
	compareValues(t, "result", drop(res.Metrics, c.Ignore), drop(full.Metrics, c.Ignore), c.Tolerance)
	return len(saved)
}

// drop returns m without the names in ignore.
func drop(m map[string]float64, ignore []string) map[string]float64 {
	if len(ignore) == 0 {
		return m
	}
	out := make(map[string]float64, len(m))
	for k, v := range m {
		if !slices.Contains(ignore, k) {
			out[k] = v
		}
	}
	return out
}

func compareValues(t *testing.T, what string, got, want map[string]float64, tol float64) {
	t.Helper()
	for k, w := range want {
		g, ok := got[k]
		switch {
		case !ok:
			t.Errorf("%s: %s missing after resume", what, k)
		case tol == 0 && math.Float64bits(g) != math.Float64bits(w):
			t.Errorf("%s: %s = %v after resume, want %v bit for bit", what, k, g, w)
		case tol > 0 && math.Abs(g-w) > tol*math.Max(math.Abs(w), 1e-12):
			t.Errorf("%s: %s = %v after resume, want %v within %g", what, k, g, w, tol)
		}
	}
	for k := range got {
		if _, ok := want[k]; !ok {
			t.Errorf("%s: %s appears only after resume", what, k)
		}
	}
}

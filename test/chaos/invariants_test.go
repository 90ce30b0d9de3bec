package chaos

import (
	"context"
	"fmt"
	"math"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"asymptote.dev/asymptote/internal/api"
	"asymptote.dev/asymptote/internal/bus"
	"asymptote.dev/asymptote/plugins/methods/synthetic"
	"asymptote.dev/asymptote/plugins/sdk"
	"asymptote.dev/asymptote/sweep"
)

// reference computes the fault-free result of every trial of a synthetic
// spec: the objective per trial ID, from the same expansion and the same
// deterministic method the agents run, without any of the machinery under
// test in between. Trials run concurrently; each takes its own sleep.
func reference(spec string) (map[string]float64, error) {
	sp, err := sweep.Parse("reference.yaml", []byte(spec))
	if err != nil {
		return nil, err
	}
	trials, err := sp.Expand()
	if err != nil {
		return nil, err
	}
	var (
		mu   sync.Mutex
		out  = make(map[string]float64, len(trials))
		errs []error
		wg   sync.WaitGroup
	)
	for _, tr := range trials {
		wg.Add(1)
		go func() {
			defer wg.Done()
			res, err := synthetic.New().Run(context.Background(), &sdk.TrialRequest{
				Study: sp.Name, TrialID: tr.ID, Attempt: 1, Params: tr.Params, Seed: tr.Seed, Threads: 1,
			}, func(sdk.Metrics) error { return nil })
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				errs = append(errs, fmt.Errorf("trial %s: %w", tr.ID, err))
				return
			}
			out[tr.ID] = res.Metrics[sdk.MetricValLoss]
		}()
	}
	wg.Wait()
	if len(errs) > 0 {
		return nil, errs[0]
	}
	return out, nil
}

// referenceAsync runs reference in the background (its trials take their
// sleeps) and returns a function that waits for its answer.
func referenceAsync(spec string) func() (map[string]float64, error) {
	var (
		want map[string]float64
		err  error
		done = make(chan struct{})
	)
	go func() { defer close(done); want, err = reference(spec) }()
	return func() (map[string]float64, error) { <-done; return want, err }
}

// checkTrials returns every violation of the recording invariants in a
// finished study of a method that never fails (synthetic): each trial
// succeeded with exactly one result, from its last attempt; attempts are
// numbered 1..n; every earlier attempt was lost (stale), never failed, so
// no failure was counted; late results never became the recorded one; and
// the objective equals the fault-free reference.
func checkTrials(trials []api.Trial, want map[string]float64) []string {
	var v []string
	bad := func(t api.Trial, format string, args ...any) {
		v = append(v, fmt.Sprintf("trial %s: ", t.ID)+fmt.Sprintf(format, args...))
	}
	if len(trials) != len(want) {
		v = append(v, fmt.Sprintf("%d trials in etcd, want %d", len(trials), len(want)))
	}
	for _, t := range trials {
		obj, known := want[t.ID]
		if !known {
			bad(t, "not in the spec's expansion")
		}
		if t.State != sweep.Succeeded {
			bad(t, "state %s, want succeeded (error %q)", t.State, t.Error)
			continue
		}
		n := len(t.Attempts)
		if n == 0 || t.Attempt != n {
			bad(t, "current attempt %d with %d attempts recorded", t.Attempt, n)
			continue
		}
		stale := 0
		for i, a := range t.Attempts {
			if a.N != i+1 {
				bad(t, "attempt %d is numbered %d", i+1, a.N)
			}
			if !a.State.Terminal() {
				bad(t, "attempt %d still %s in a finished trial", a.N, a.State)
			}
			last := i == n-1
			switch {
			case last && a.State != api.AttemptSucceeded:
				bad(t, "last attempt %d is %s, want succeeded", a.N, a.State)
			case !last && a.State == api.AttemptSucceeded:
				bad(t, "attempt %d succeeded but is not the last of %d", a.N, n)
			case !last && a.State != api.AttemptStale && a.State != api.AttemptPreempted:
				// Synthetic never fails: every superseded attempt was
				// lost to infrastructure or given up when its agent was
				// asked to leave, neither of which may read as the
				// method's fault.
				bad(t, "attempt %d is %s (%s), want stale or preempted", a.N, a.State, a.Error)
			}
			if a.State == api.AttemptStale {
				stale++
			}
		}
		if t.Failures != 0 {
			bad(t, "%d failures counted for a method that never fails", t.Failures)
		}
		if t.Stale != stale {
			bad(t, "stale counter %d, but %d stale attempts recorded", t.Stale, stale)
		}
		r := t.Result
		if r == nil {
			bad(t, "succeeded without a result")
			continue
		}
		if r.Attempt != n {
			bad(t, "result from attempt %d, current is %d", r.Attempt, n)
		}
		if r.Node != t.Attempts[n-1].Node {
			bad(t, "result from node %s, the attempt ran on %s", r.Node, t.Attempts[n-1].Node)
		}
		for _, l := range t.Late {
			if l.Attempt >= n {
				bad(t, "late result of attempt %d, not older than current %d", l.Attempt, n)
			}
			if l.Attempt == r.Attempt {
				bad(t, "late result of attempt %d is also the recorded one", l.Attempt)
			}
		}
		if known && (r.Objective == nil || !same(*r.Objective, obj)) {
			got := math.NaN()
			if r.Objective != nil {
				got = *r.Objective
			}
			bad(t, "objective %v, the fault-free run gives %v", got, obj)
		}
	}
	return v
}

// same compares objectives that went through JSON.
func same(a, b float64) bool {
	return a == b || math.Abs(a-b) <= 1e-12*math.Max(math.Abs(a), math.Abs(b))
}

// reportViolations fails t with the violations, at most 30 lines.
func reportViolations(t testing.TB, v []string) {
	t.Helper()
	for i, s := range v {
		if i == 30 {
			t.Errorf("... and %d more violations", len(v)-30)
			break
		}
		t.Errorf("invariant violated: %s", s)
	}
}

// studyStats summarises what the chaos did to a study.
type studyStats struct {
	trials, attempts, stale, late int
	// staleWhy counts stale attempts by reason, node names blanked.
	staleWhy map[string]int
}

func stats(trials []api.Trial) studyStats {
	var s studyStats
	s.trials = len(trials)
	s.staleWhy = map[string]int{}
	for _, t := range trials {
		for _, a := range t.Attempts {
			if a.State == api.AttemptStale {
				why := strings.ReplaceAll(a.Error, a.Node, "<node>")
				if i := strings.Index(why, ": "); i > 0 && strings.HasPrefix(why, "<node> did not answer") {
					why = why[:i]
				}
				s.staleWhy[why]++
			}
		}
		s.attempts += len(t.Attempts)
		s.stale += t.Stale
		s.late += len(t.Late)
	}
	return s
}

// checkHistory returns every violation of the metric history of a finished
// study whose trials report steps steps each: the recorded attempt of every
// trial has each step once, in order, from the step after the one it
// resumed from (none lost to a fault, none doubled by a retried publish),
// the attempts it resumed from cover the steps before, and its last
// val_loss is the recorded objective. Superseded attempts may have stored
// only part of their curves.
func checkHistory(nc *nats.Conn, study string, trials []api.Trial, steps int) []string {
	got, err := readHistory(nc, study)
	if err != nil {
		return []string{err.Error()}
	}
	var v []string
	for _, t := range trials {
		if t.Result == nil {
			continue
		}
		from := t.Attempts[len(t.Attempts)-1].StartStep
		rs := got[attemptKey{t.ID, t.Result.Attempt}]
		if want := steps - int(from); len(rs) != want {
			v = append(v, fmt.Sprintf("trial %s: attempt %d (resumed after step %d) has %d reports in its history, want %d", t.ID, t.Result.Attempt, from, len(rs), want))
			continue
		}
		for i, r := range rs {
			if r.Step != from+int64(i+1) || r.Seq != int64(i+1) {
				v = append(v, fmt.Sprintf("trial %s: report %d is step %d (seq %d), want step %d", t.ID, i+1, r.Step, r.Seq, from+int64(i+1)))
				break
			}
		}
		if from > 0 {
			// Some earlier attempt reached the step it resumed from.
			reached := false
			for _, a := range t.Attempts[:len(t.Attempts)-1] {
				for _, r := range got[attemptKey{t.ID, a.N}] {
					reached = reached || r.Step == from
				}
			}
			if !reached {
				v = append(v, fmt.Sprintf("trial %s: resumed after step %d, which no earlier attempt's history reached", t.ID, from))
			}
		}
		if last := rs[len(rs)-1].Values["val_loss"]; t.Result.Objective == nil || !same(last, *t.Result.Objective) {
			v = append(v, fmt.Sprintf("trial %s: the curve ends at %g, the recorded objective is %v", t.ID, last, t.Result.Objective))
		}
	}
	return v
}

// historyHealthy waits until the history stream has a leader and every
// replica is current.
func historyHealthy(ctx context.Context, js jetstream.JetStream) error {
	var last error
	for {
		info, err := func() (*jetstream.StreamInfo, error) {
			ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			defer cancel()
			s, err := js.Stream(ctx, bus.StreamHistory)
			if err != nil {
				return nil, err
			}
			return s.Info(ctx)
		}()
		if err == nil && (info.Cluster == nil || info.Cluster.Name == "") {
			return nil // one server, no replicas
		}
		if err == nil {
			err = fmt.Errorf("no stream leader")
			if c := info.Cluster; c.Leader != "" {
				err = nil
				for _, r := range c.Replicas {
					if !r.Current {
						err = fmt.Errorf("replica %s not current", r.Name)
					}
				}
			}
		}
		if err == nil {
			return nil
		}
		last = err
		select {
		case <-ctx.Done():
			return fmt.Errorf("history stream not healthy: %w", last)
		case <-time.After(time.Second):
		}
	}
}

// attemptKey names one attempt of a trial.
type attemptKey struct {
	trial string
	n     int
}

// readHistory reads a study's whole metric history, by attempt.
func readHistory(nc *nats.Conn, study string) (map[attemptKey][]bus.MetricsReport, error) {
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, fmt.Errorf("history: %w", err)
	}
	got := map[attemptKey][]bus.MetricsReport{}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	// The faults may end with a majority of the NATS members just
	// restarted, and their stream replicas catching up: what is checked is
	// that no report is lost, once the stream has a leader and current
	// replicas again.
	if err := historyHealthy(ctx, js); err != nil {
		return nil, err
	}
	if err := bus.History(ctx, js, study, "", func(r *bus.MetricsReport) error {
		k := attemptKey{r.Trial, r.Attempt}
		got[k] = append(got[k], *r)
		return nil
	}); err != nil {
		return nil, fmt.Errorf("read history: %w", err)
	}
	return got, nil
}

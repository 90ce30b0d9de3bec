package coordinator_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"asymptote.dev/asymptote/coordinator"
	"asymptote.dev/asymptote/internal/api"
	"asymptote.dev/asymptote/internal/bus"
	"asymptote.dev/asymptote/internal/clustertest"
	"asymptote.dev/asymptote/internal/store"
	"asymptote.dev/asymptote/plugins/sdk"
	"asymptote.dev/asymptote/sweep"
)

// quadratic is an in-process test method: loss = (x-3)^2 + seed/100,
// optionally sleeping, failing its first attempts, or blocking until
// released.
type quadratic struct {
	mu       sync.Mutex
	runs     map[string]int // trial ID -> attempts started
	block    chan struct{}  // when non-nil, Run waits for it (or ctx)
	gpus     map[string][]int
	inflight atomic.Int64
	peak     atomic.Int64
}

func newQuadratic() *quadratic {
	return &quadratic{runs: map[string]int{}, gpus: map[string][]int{}}
}

func (q *quadratic) Info(context.Context) (*sdk.Info, error) {
	return &sdk.Info{Name: "quadratic", Version: "1"}, nil
}

func (q *quadratic) Run(ctx context.Context, req *sdk.TrialRequest, report func(sdk.Metrics) error) (*sdk.Result, error) {
	n := q.inflight.Add(1)
	defer q.inflight.Add(-1)
	for {
		p := q.peak.Load()
		if n <= p || q.peak.CompareAndSwap(p, n) {
			break
		}
	}
	q.mu.Lock()
	q.runs[req.TrialID]++
	q.gpus[req.TrialID] = req.GPUs
	block := q.block
	q.mu.Unlock()
	x, err := req.Float("x", 0)
	if err != nil {
		return nil, err
	}
	failFirst, _ := req.Int("fail_first", 0)
	sleep, _ := req.Float("sleep", 0)
	if x < 0 {
		return nil, &sdk.ParamError{Param: "x", Reason: "want x >= 0"}
	}
	if int64(req.Attempt) <= failFirst {
		return nil, fmt.Errorf("injected failure on attempt %d", req.Attempt)
	}
	if block != nil {
		select {
		case <-block:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	if sleep > 0 {
		select {
		case <-time.After(time.Duration(sleep * float64(time.Second))):
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	loss := (x-3)*(x-3) + float64(req.Seed)/100
	_ = report(sdk.Metrics{Step: 1, Values: map[string]float64{"val_loss": loss}})
	return &sdk.Result{Metrics: map[string]float64{"val_loss": loss}}, nil
}

func (q *quadratic) attempts(id string) int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.runs[id]
}

func cpuNode(cpu float64) bus.Resources {
	return bus.Resources{CPU: cpu, Memory: 8 << 30}
}

func submit(t *testing.T, c *bus.Client, spec string) *api.SubmitReply {
	t.Helper()
	r, err := c.Submit(t.Context(), api.SubmitRequest{SpecFile: "test.yaml", Spec: spec})
	if err != nil {
		t.Fatalf("submit: %v", err)
	}
	return r
}

func results(t *testing.T, c *bus.Client, study string) map[string]api.Trial {
	t.Helper()
	r, err := c.Results(t.Context(), study)
	if err != nil {
		t.Fatalf("results: %v", err)
	}
	out := map[string]api.Trial{}
	for _, tr := range r.Trials {
		out[tr.ID] = tr
	}
	return out
}

const gridSpec = `
name: grid
method: quadratic
objective: {metric: val_loss, direction: minimize}
space:
  x: [0, 1, 2, 3, 4, 5]
seeds: [0, 1]
resources: {cpu: 0.5, memory: 64MiB}
retries: 1
timeout: 30s
`

func TestStudyRunsToCompletionExactlyOnce(t *testing.T) {
	cl := clustertest.New(t)
	q := newQuadratic()
	cl.StartCoordinator("c1", nil)
	cl.StartAgent("a1", cpuNode(2), clustertest.InProcess{"quadratic": q})
	cl.StartAgent("a2", cpuNode(1), clustertest.InProcess{"quadratic": q})
	client := cl.Client()

	r := submit(t, client, gridSpec)
	if r.Added != 12 || r.Total != 12 {
		t.Fatalf("submit = %+v, want 12 added", r)
	}
	st := cl.WaitDone(client, "grid", 30*time.Second)
	if st.Counts["succeeded"] != 12 {
		t.Fatalf("counts = %v, want 12 succeeded", st.Counts)
	}
	if got := *st.Best.Result.Objective; got != 0 {
		t.Errorf("best objective = %v, want 0 (x=3, seed 0)", got)
	}
	// 3 CPUs at 0.5 each: at most 6 trials at once.
	if p := q.peak.Load(); p > 6 {
		t.Errorf("peak concurrency = %d, want at most 6 (resources)", p)
	}
	for id, tr := range results(t, client, "grid") {
		if tr.Result == nil || tr.Attempt != 1 || len(tr.Attempts) != 1 {
			t.Errorf("trial %s: attempt %d, %d attempts, result %v; want one attempt and a result", id, tr.Attempt, len(tr.Attempts), tr.Result)
		}
		if n := q.attempts(id); n != 1 {
			t.Errorf("trial %s ran %d times, want 1", id, n)
		}
	}

	// Resubmitting the same spec schedules nothing; extending it schedules
	// only the new trials.
	if r := submit(t, client, gridSpec); r.Added != 0 || !r.Unchanged {
		t.Errorf("resubmit = %+v, want nothing added", r)
	}
	ext := gridSpec + "\n"
	ext = replace(ext, "x: [0, 1, 2, 3, 4, 5]", "x: [0, 1, 2, 3, 4, 5, 6]")
	if r := submit(t, client, ext); r.Added != 2 || r.Total != 14 {
		t.Errorf("extend = %+v, want 2 added, 14 total", r)
	}
	cl.WaitDone(client, "grid", 30*time.Second)
	for id, tr := range results(t, client, "grid") {
		if n := q.attempts(id); n != 1 || tr.State != sweep.Succeeded {
			t.Errorf("after extension trial %s ran %d times (state %s), want once", id, n, tr.State)
		}
	}
}

// replace replaces the first old in s, which a test's spec edit must find.
func replace(s, old, new string) string {
	if !strings.Contains(s, old) {
		panic("replace: not found: " + old)
	}
	return strings.Replace(s, old, new, 1)
}

func TestDuplicateAndLateEventsChangeNothing(t *testing.T) {
	cl := clustertest.New(t)
	q := newQuadratic()
	cl.StartCoordinator("c1", nil)
	cl.StartAgent("a1", cpuNode(2), clustertest.InProcess{"quadratic": q})
	client := cl.Client()
	submit(t, client, gridSpec)
	cl.WaitDone(client, "grid", 30*time.Second)
	before := results(t, client, "grid")

	// Replay every trial's finished event with a different outcome and
	// without a message ID (so JetStream cannot deduplicate it), plus an
	// event for an attempt that never existed.
	js, err := jetstream.New(cl.Conn("replayer"))
	if err != nil {
		t.Fatal(err)
	}
	for id := range before {
		for _, ev := range []bus.Event{
			{AttemptRef: bus.AttemptRef{Study: "grid", Trial: id, Attempt: 1}, Kind: bus.EventFinished, Node: "a1", Time: time.Now(), Outcome: bus.OutcomeSucceeded, Metrics: map[string]float64{"val_loss": -1}},
			{AttemptRef: bus.AttemptRef{Study: "grid", Trial: id, Attempt: 1}, Kind: bus.EventStarted, Node: "a1", Time: time.Now()},
			{AttemptRef: bus.AttemptRef{Study: "grid", Trial: id, Attempt: 7}, Kind: bus.EventFinished, Node: "a9", Time: time.Now(), Outcome: bus.OutcomeFailed, Error: "from the past"},
		} {
			if _, err := js.Publish(t.Context(), bus.EventSubject("grid", id, ev.Node), bus.Encode(&ev)); err != nil {
				t.Fatal(err)
			}
		}
	}
	// Wait until the stream is drained, i.e. every replay was processed.
	clustertest.WaitFor(t, 10*time.Second, func() error {
		s, err := js.Stream(t.Context(), bus.StreamEvents)
		if err != nil {
			return err
		}
		info, err := s.Info(t.Context())
		if err != nil {
			return err
		}
		if info.State.Msgs != 0 {
			return fmt.Errorf("%d events unprocessed", info.State.Msgs)
		}
		return nil
	})
	after := results(t, client, "grid")
	for id, b := range before {
		a := after[id]
		if *a.Result.Objective != *b.Result.Objective || a.Attempt != b.Attempt || a.State != sweep.Succeeded {
			t.Errorf("trial %s changed: objective %v -> %v, attempt %d -> %d, state %s", id, *b.Result.Objective, *a.Result.Objective, b.Attempt, a.Attempt, a.State)
		}
		if len(a.Late) != 1 || a.Late[0].Attempt != 7 {
			t.Errorf("trial %s late = %+v, want the attempt-7 outcome kept as late", id, a.Late)
		}
	}
}

const retrySpec = `
name: retry
method: quadratic
space:
  x: [1]
fixed:
  fail_first: 2
resources: {cpu: 1, memory: 64MiB}
retries: RETRIES
timeout: 30s
`

func TestRetriesWithBackoffThenSuccessOrFailure(t *testing.T) {
	cl := clustertest.New(t)
	q := newQuadratic()
	cl.StartCoordinator("c1", nil)
	cl.StartAgent("a1", cpuNode(1), clustertest.InProcess{"quadratic": q})
	client := cl.Client()

	submit(t, client, replace(retrySpec, "RETRIES", "2"))
	st := cl.WaitDone(client, "retry", 30*time.Second)
	if st.Counts["succeeded"] != 1 {
		t.Fatalf("with 2 retries: counts = %v, want success on the third attempt", st.Counts)
	}
	for _, tr := range results(t, client, "retry") {
		if tr.Attempt != 3 || tr.Failures != 2 || tr.Result.Attempt != 3 {
			t.Errorf("trial: attempt %d failures %d result attempt %d; want 3, 2, 3", tr.Attempt, tr.Failures, tr.Result.Attempt)
		}
		// Backoff: the third attempt starts at least 1s+2s after the first.
		if gap := tr.Attempts[2].Dispatched.Sub(tr.Attempts[0].Dispatched); gap < 3*time.Second {
			t.Errorf("retries came %s after the first attempt, want at least 3s of backoff", gap)
		}
	}

	submit(t, client, replace(replace(retrySpec, "RETRIES", "1"), "name: retry", "name: retry-fail"))
	st = cl.WaitDone(client, "retry-fail", 30*time.Second)
	if st.Counts["failed"] != 1 || len(st.Failures) != 1 {
		t.Fatalf("with 1 retry: counts = %v, want failed", st.Counts)
	}
	if msg := st.Failures[0].Error; !strings.Contains(msg, "injected failure on attempt 2") || !strings.Contains(msg, "failed 2 times") {
		t.Errorf("failure reason = %q, want the last error and the count", msg)
	}
}

func TestInvalidParamsFailWithoutRetry(t *testing.T) {
	cl := clustertest.New(t)
	q := newQuadratic()
	cl.StartCoordinator("c1", nil)
	cl.StartAgent("a1", cpuNode(1), clustertest.InProcess{"quadratic": q})
	client := cl.Client()
	submit(t, client, "name: bad\nmethod: quadratic\nspace:\n  x: [-1]\nretries: 3\n")
	st := cl.WaitDone(client, "bad", 30*time.Second)
	if st.Counts["failed"] != 1 {
		t.Fatalf("counts = %v, want failed", st.Counts)
	}
	f := st.Failures[0]
	if f.Attempt != 1 || !strings.Contains(f.Error, `parameter "x": want x >= 0`) {
		t.Errorf("trial failed after %d attempts with %q; want 1 attempt naming the parameter", f.Attempt, f.Error)
	}
}

func TestTimeoutFailsTheAttempt(t *testing.T) {
	cl := clustertest.New(t)
	q := newQuadratic()
	cl.StartCoordinator("c1", nil)
	cl.StartAgent("a1", cpuNode(1), clustertest.InProcess{"quadratic": q})
	client := cl.Client()
	submit(t, client, "name: slow\nmethod: quadratic\nspace:\n  x: [1]\nfixed:\n  sleep: 30\nretries: 0\ntimeout: 500ms\n")
	st := cl.WaitDone(client, "slow", 20*time.Second)
	if st.Counts["failed"] != 1 {
		t.Fatalf("counts = %v, want failed", st.Counts)
	}
	for _, tr := range results(t, client, "slow") {
		if a := tr.Attempts[0]; a.State != api.AttemptTimedOut {
			t.Errorf("attempt state = %s (%s), want timed_out", a.State, a.Error)
		}
	}
}

func TestCancelStopsRunningAttempts(t *testing.T) {
	cl := clustertest.New(t)
	q := newQuadratic()
	q.block = make(chan struct{}) // never released: trials run until cancelled
	cl.StartCoordinator("c1", nil)
	cl.StartAgent("a1", cpuNode(2), clustertest.InProcess{"quadratic": q})
	client := cl.Client()
	submit(t, client, gridSpec)
	clustertest.WaitFor(t, 10*time.Second, func() error {
		if n := q.inflight.Load(); n != 4 {
			return fmt.Errorf("%d running, want 4", n)
		}
		return nil
	})
	r, err := client.Cancel(t.Context(), api.CancelRequest{Study: "grid"})
	if err != nil || r.Cancelled != 12 {
		t.Fatalf("cancel = %+v, %v; want 12 cancelled", r, err)
	}
	clustertest.WaitFor(t, 5*time.Second, func() error {
		if n := q.inflight.Load(); n != 0 {
			return fmt.Errorf("%d attempts still running on the agent", n)
		}
		return nil
	})
	st := cl.WaitDone(client, "grid", 5*time.Second)
	if st.State != api.StudyCancelled || st.Counts["cancelled"] != 12 {
		t.Errorf("status = %s %v, want cancelled with 12 cancelled trials", st.State, st.Counts)
	}
	// The agents' confirmations of the stops are not late results.
	time.Sleep(500 * time.Millisecond)
	for id, tr := range results(t, client, "grid") {
		if len(tr.Late) != 0 {
			t.Errorf("trial %s keeps the confirmation of its cancellation as a late result: %+v", id, tr.Late)
		}
	}
	if _, err := client.Submit(t.Context(), api.SubmitRequest{SpecFile: "g.yaml", Spec: gridSpec}); err == nil || !strings.Contains(err.Error(), "was cancelled") {
		t.Errorf("resubmitting a cancelled study: err = %v, want a clear refusal", err)
	}
}

func TestResourceFitAndGPUAssignment(t *testing.T) {
	cl := clustertest.New(t)
	q := newQuadratic()
	q.block = make(chan struct{})
	cl.StartCoordinator("c1", nil)
	cl.StartAgent("cpu-only", cpuNode(8), clustertest.InProcess{"quadratic": q})
	gpuHost := cpuNode(8)
	gpuHost.GPUs = []bus.GPU{{Index: 0, Model: "H100"}, {Index: 1, Model: "H100"}}
	cl.StartAgent("gpu-host", gpuHost, clustertest.InProcess{"quadratic": q})
	client := cl.Client()
	submit(t, client, "name: gpu\nmethod: quadratic\nspace:\n  x: [1, 2, 3]\nresources: {cpu: 1, gpu: 1, memory: 64MiB}\n")
	// Two GPUs: two trials run, the third waits.
	clustertest.WaitFor(t, 10*time.Second, func() error {
		if n := q.inflight.Load(); n != 2 {
			return fmt.Errorf("%d running, want 2", n)
		}
		return nil
	})
	time.Sleep(500 * time.Millisecond)
	if n := q.inflight.Load(); n != 2 {
		t.Fatalf("%d trials running with 2 GPUs, want 2", n)
	}
	seen := map[int]bool{}
	for _, tr := range results(t, client, "gpu") {
		a := tr.Current()
		if a == nil || tr.State == sweep.Pending {
			continue
		}
		if a.Node != "gpu-host" || len(a.GPUs) != 1 || seen[a.GPUs[0]] {
			t.Errorf("trial %s on %s with GPUs %v; want gpu-host and a GPU of its own", tr.ID, a.Node, a.GPUs)
			continue
		}
		seen[a.GPUs[0]] = true
		q.mu.Lock()
		got := q.gpus[tr.ID]
		q.mu.Unlock()
		if len(got) != 1 || got[0] != a.GPUs[0] {
			t.Errorf("method saw GPUs %v, want %v", got, a.GPUs)
		}
	}
	close(q.block)
	st := cl.WaitDone(client, "gpu", 20*time.Second)
	if st.Counts["succeeded"] != 3 {
		t.Errorf("counts = %v", st.Counts)
	}
}

func TestDeadAgentAttemptsGoStaleAndRunElsewhere(t *testing.T) {
	cl := clustertest.New(t)
	stuck := newQuadratic()
	stuck.block = make(chan struct{})
	fine := newQuadratic()
	cl.StartCoordinator("c1", nil)
	doomed := cl.StartAgent("doomed", cpuNode(4), clustertest.InProcess{"quadratic": stuck})
	client := cl.Client()
	submit(t, client, gridSpec)
	clustertest.WaitFor(t, 10*time.Second, func() error {
		if n := stuck.inflight.Load(); n != 8 {
			return fmt.Errorf("%d running on the doomed agent, want 8", n)
		}
		return nil
	})
	// The agent vanishes without a word, as if killed: its heartbeats stop
	// and it reports nothing.
	doomed.Kill()
	cl.StartAgent("healthy", cpuNode(4), clustertest.InProcess{"quadratic": fine})
	st := cl.WaitDone(client, "grid", 30*time.Second)
	if st.Counts["succeeded"] != 12 || st.StaleAttempts < 8 {
		t.Fatalf("counts = %v stale = %d; want 12 succeeded and the 8 lost attempts stale", st.Counts, st.StaleAttempts)
	}
	for id, tr := range results(t, client, "grid") {
		if tr.Result.Node != "healthy" && stuck.attempts(id) > 0 {
			t.Errorf("trial %s result from %s, want healthy", id, tr.Result.Node)
		}
		for _, a := range tr.Attempts[:len(tr.Attempts)-1] {
			if a.State != api.AttemptStale {
				t.Errorf("trial %s earlier attempt %d is %s, want stale", id, a.N, a.State)
			}
		}
		if tr.Failures != 0 {
			t.Errorf("trial %s counts %d failures; stale attempts are not the method's", id, tr.Failures)
		}
	}
}

func TestLeaderFailover(t *testing.T) {
	cl := clustertest.New(t)
	q := newQuadratic()
	firstLeader := cl.StartCoordinator("c1", nil)
	client := cl.Client()
	// c1 leads before c2 starts.
	clustertest.WaitFor(t, 10*time.Second, func() error {
		r, err := client.Status(t.Context(), "")
		if err != nil {
			return err
		}
		if r.Leader != "c1" {
			return fmt.Errorf("leader %q", r.Leader)
		}
		return nil
	})
	cl.StartCoordinator("c2", nil)
	cl.StartAgent("a1", cpuNode(2), clustertest.InProcess{"quadratic": q})
	spec := replace(gridSpec, "seeds: [0, 1]", "seeds: [0, 1, 2, 3, 4]")
	spec = replace(spec, "resources: {cpu: 0.5, memory: 64MiB}", "resources: {cpu: 0.5, memory: 64MiB}\nfixed:\n  sleep: 0.2")
	submit(t, client, spec)
	clustertest.WaitFor(t, 10*time.Second, func() error {
		r, err := client.Status(t.Context(), "grid")
		if err != nil {
			return err
		}
		if r.Studies[0].Counts["succeeded"] < 5 {
			return errors.New("not enough progress yet")
		}
		return nil
	})
	killed := time.Now()
	firstLeader.Kill()
	clustertest.WaitFor(t, 10*time.Second, func() error {
		r, err := client.Status(t.Context(), "")
		if err != nil {
			return err
		}
		if r.Leader != "c2" {
			return fmt.Errorf("leader %q", r.Leader)
		}
		return nil
	})
	t.Logf("standby took over %s after the leader stopped", time.Since(killed).Round(time.Millisecond))
	st := cl.WaitDone(client, "grid", 60*time.Second)
	if st.Counts["succeeded"] != 30 {
		t.Fatalf("counts = %v, want 30 succeeded", st.Counts)
	}
	for id, tr := range results(t, client, "grid") {
		// The leader records an attempt before it sends the dispatch, so
		// a leader killed between the two leaves one that never ran: the
		// new leader finds it missing from the agent's heartbeats and
		// calls it stale. Every other recorded attempt ran, and every run
		// is recorded.
		unsent := 0
		for _, a := range tr.Attempts {
			if a.State == api.AttemptStale && a.Started == nil {
				unsent++
			}
		}
		if n := q.attempts(id); n > len(tr.Attempts) || n < len(tr.Attempts)-unsent {
			t.Errorf("trial %s ran %d times but records %d attempts (%d stale that never started)", id, n, len(tr.Attempts), unsent)
		}
		if tr.Result == nil {
			t.Errorf("trial %s has no result", id)
		}
	}
}

func TestDeposedLeaderCannotWrite(t *testing.T) {
	cl := clustertest.New(t)
	// Elect a leader through the coordinator, then write with a fence of a
	// different (lost) election revision: the write must be refused.
	p := cl.StartCoordinator("c1", nil)
	client := cl.Client()
	if _, err := client.Status(t.Context(), ""); err != nil {
		t.Fatal(err)
	}
	p.Stop()
	st := store.New(cl.Etcd)
	resp, err := cl.Etcd.Get(t.Context(), store.ElectionPrefix, withPrefix())
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.Kvs) != 0 {
		t.Fatalf("leader key still present after resign: %s", resp.Kvs[0].Key)
	}
	fenced := st.Fenced(fenceOn(store.ElectionPrefix+"/gone", 42))
	_, err = fenced.Commit(t.Context(), []store.Put{{Key: store.StudyKey("x"), Value: api.Study{Name: "x"}}})
	if !errors.Is(err, store.ErrNotLeader) {
		t.Fatalf("fenced write after losing leadership: err = %v, want ErrNotLeader", err)
	}
	if r, _ := cl.Etcd.Get(t.Context(), store.StudyKey("x")); len(r.Kvs) != 0 {
		t.Fatal("a fenced write landed")
	}
}

// An agent that vanished, but whose heartbeat grace has not yet passed, must
// not soak up dispatches: each one finds no listener, and a trial sent there
// again and again would spend its stale budget and fail although no method
// ever ran. The leader stops placing trials on a node whose dispatch went
// unanswered until the node heartbeats again.
func TestUnreachableAgentDoesNotBurnAttempts(t *testing.T) {
	cl := clustertest.New(t)
	cl.StartCoordinator("c1", func(c *coordinator.Config) { c.HeartbeatGrace = 20 * time.Second })
	q := newQuadratic()
	// The vanished agent offers more CPU, so the scheduler prefers it.
	gone := cl.StartAgent("gone", cpuNode(8), clustertest.InProcess{"quadratic": newQuadratic()})
	cl.StartAgent("alive", cpuNode(1), clustertest.InProcess{"quadratic": q})
	client := cl.Client()
	clustertest.WaitFor(t, 10*time.Second, func() error {
		r, err := client.Status(t.Context(), "")
		if err != nil {
			return err
		}
		if len(r.Nodes) != 2 {
			return fmt.Errorf("%d nodes known, want 2", len(r.Nodes))
		}
		return nil
	})
	gone.Kill()
	submit(t, client, gridSpec)
	st := cl.WaitDone(client, "grid", 15*time.Second)
	if st.Counts["succeeded"] != 12 {
		t.Fatalf("counts = %v; want every trial succeeded", st.Counts)
	}
	// Each trial may find the vanished agent once before the leader learns
	// to avoid it; not once per retry.
	if st.StaleAttempts > 12 {
		t.Errorf("%d stale attempts for 12 trials; the unreachable agent kept receiving dispatches", st.StaleAttempts)
	}
}

// oneTrialSpec is a study of one trial that takes a whole CPU.
const oneTrialSpec = `
name: one
method: quadratic
objective: {metric: val_loss, direction: minimize}
space:
  x: [3]
seeds: [0]
resources: {cpu: 1, memory: 64MiB}
retries: 1
timeout: 30s
`

// fakeAgent is a hand-driven agent: it accepts every dispatch, and
// heartbeats the attempts the test says it runs.
type fakeAgent struct {
	mu         sync.Mutex
	running    []bus.AttemptRef
	dispatched []bus.AttemptRef
}

// startFakeAgent starts a fake agent named node offering res, until the
// test ends.
func startFakeAgent(t *testing.T, nc *nats.Conn, node string, res bus.Resources) *fakeAgent {
	t.Helper()
	f := &fakeAgent{}
	_, err := nc.Subscribe(bus.DispatchSubject(node), func(m *nats.Msg) {
		var b bus.DispatchBatch
		if err := bus.Decode(m.Data, &b); err != nil {
			return
		}
		var reply bus.DispatchBatchReply
		f.mu.Lock()
		for _, d := range b.Dispatches {
			f.running = append(f.running, d.AttemptRef)
			f.dispatched = append(f.dispatched, d.AttemptRef)
			reply.Replies = append(reply.Replies, bus.DispatchReply{Accepted: true})
		}
		f.mu.Unlock()
		_ = m.Respond(bus.Encode(&reply))
	})
	if err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	t.Cleanup(func() { close(stop) })
	go func() {
		for {
			f.mu.Lock()
			hb := bus.Heartbeat{Node: node, Boot: "b1", Resources: res, Running: append([]bus.AttemptRef(nil), f.running...), Sent: time.Now()}
			f.mu.Unlock()
			_, _ = nc.Request(bus.HeartbeatSubject(node), bus.Encode(&hb), time.Second)
			select {
			case <-stop:
				return
			case <-time.After(200 * time.Millisecond):
			}
		}
	}()
	return f
}

// setRunning replaces what the agent reports it runs.
func (f *fakeAgent) setRunning(refs ...bus.AttemptRef) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.running = refs
}

// sent returns the dispatches received so far.
// first waits for the fake agent's first dispatch and returns it.
func (f *fakeAgent) first(t *testing.T) bus.AttemptRef {
	t.Helper()
	var ref bus.AttemptRef
	clustertest.WaitFor(t, 10*time.Second, func() error {
		sent := f.sent()
		if len(sent) == 0 {
			return errors.New("nothing dispatched yet")
		}
		ref = sent[0]
		return nil
	})
	return ref
}

// reportSuccess publishes ref's outcome as the fake agent would.
func reportSuccess(t *testing.T, nc *nats.Conn, ref bus.AttemptRef) {
	t.Helper()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ev := bus.Event{AttemptRef: ref, Kind: bus.EventFinished, Node: "fake", Time: time.Now(), Outcome: bus.OutcomeSucceeded, Metrics: map[string]float64{"val_loss": 0.5}}
	if _, err := js.Publish(t.Context(), bus.EventSubject(ref.Study, ref.Trial, ev.Node), bus.Encode(&ev), jetstream.WithMsgID(ev.MsgID())); err != nil {
		t.Fatal(err)
	}
}

func (f *fakeAgent) sent() []bus.AttemptRef {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]bus.AttemptRef(nil), f.dispatched...)
}

// An attempt that leaves its agent's heartbeats has finished, and its
// outcome is in JetStream; a leader may receive it only after the events
// consumer's ack wait (a dead predecessor held it unacknowledged). The
// leader must wait for that outcome, not call the attempt stale and run a
// finished trial again.
func TestFinishedAttemptAwaitsItsDelayedOutcome(t *testing.T) {
	cl := clustertest.New(t)
	cl.StartCoordinator("c1", func(c *coordinator.Config) { c.HeartbeatGrace = 30 * time.Second })
	nc := cl.Conn("fake-agent")
	fake := startFakeAgent(t, nc, "fake", cpuNode(1))
	client := cl.Client()
	submit(t, client, oneTrialSpec)
	ref := fake.first(t)
	// The attempt finishes: it leaves the heartbeats at once, but its
	// outcome reaches the leader only seven seconds later, past the
	// slack the leader gives a fresh dispatch.
	fake.setRunning()
	time.Sleep(7 * time.Second)
	reportSuccess(t, nc, ref)
	st := cl.WaitDone(client, "one", 10*time.Second)
	tr := results(t, client, "one")[ref.Trial]
	if st.StaleAttempts != 0 || tr.Attempt != 1 || tr.Result == nil || tr.Result.Attempt != 1 || len(tr.Late) != 0 {
		t.Fatalf("stale %d, attempt %d, result %+v, late %+v; want attempt 1 recorded, nothing stale or late", st.StaleAttempts, tr.Attempt, tr.Result, tr.Late)
	}
	if sent := fake.sent(); len(sent) != 1 {
		t.Errorf("dispatched %v; a finished trial ran again", sent)
	}
}

// An agent back from a partition still runs attempts that ran elsewhere
// meanwhile, until the heartbeat reply has them cancelled; they occupy its
// resources, so the leader must count them, or the agent refuses what it
// sends.
func TestSupersededAttemptsOccupyTheAgent(t *testing.T) {
	cl := clustertest.New(t)
	cl.StartCoordinator("c1", nil)
	client := cl.Client()
	// No agent yet: the trials wait, and their IDs can be read.
	submit(t, client, oneTrialSpec)
	var id string
	for tid := range results(t, client, "one") {
		id = tid
	}
	// The agent reports an attempt the leader never made current.
	nc := cl.Conn("fake-agent")
	fake := startFakeAgent(t, nc, "fake", cpuNode(1))
	fake.setRunning(bus.AttemptRef{Study: "one", Trial: id, Attempt: 5})
	clustertest.WaitFor(t, 10*time.Second, func() error {
		r, err := client.Status(t.Context(), "")
		if err != nil {
			return err
		}
		if len(r.Nodes) != 1 || r.Nodes[0].Superseded != 1 || r.Nodes[0].FreeCPU != 0 {
			return fmt.Errorf("nodes %+v, want the fake agent with one superseded attempt and no free CPU", r.Nodes)
		}
		return nil
	})
	time.Sleep(time.Second)
	if sent := fake.sent(); len(sent) != 0 {
		t.Fatalf("dispatched %v to an agent whose CPU a superseded attempt holds", sent)
	}
	// Once it stops, the agent has room again.
	fake.setRunning()
	clustertest.WaitFor(t, 10*time.Second, func() error {
		if len(fake.sent()) == 0 {
			return errors.New("nothing dispatched")
		}
		return nil
	})
}

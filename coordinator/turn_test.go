package coordinator

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"asymptote.dev/asymptote/internal/api"
	"asymptote.dev/asymptote/internal/bus"
	"asymptote.dev/asymptote/internal/store"
	"asymptote.dev/asymptote/sweep"
)

// The tests in this file drive one leader's turns with no server at all:
// no etcd, no NATS. The leader's cache is built directly, inputs are
// applied as the loop applies them, and what a turn would write (the dirty
// records) and do (dispatches, effects) is read off the state. A turn that
// touched the outside world here would panic on the nil store or
// connection, so these tests also hold scheduling and recording to doing
// their I/O only through the commit and the effects.

// offline returns a leader's state with the default configuration, and
// with no store and no connection to reach.
func offline(t testing.TB) *leaderState {
	t.Helper()
	cfg := Config{ID: "leader-test"}
	cfg.setDefaults()
	// A store without a client: its checks of record sizes are pure.
	return newLeaderState(&cfg, cfg.Logger, store.New(nil).Check)
}

// addStudy puts a study and its expanded trials into the cache.
func (l *leaderState) addStudy(t testing.TB, spec string, priority int, now time.Time) *study {
	t.Helper()
	parsed, err := sweep.Parse("spec.yaml", []byte(spec))
	if err != nil {
		t.Fatal(err)
	}
	trials, err := parsed.Expand()
	if err != nil {
		t.Fatal(err)
	}
	s := newStudy(api.Study{Name: parsed.Name, Method: parsed.Method, State: api.StudyActive, Priority: priority, Objective: parsed.Objective.Metric, Direction: string(parsed.Objective.Direction)}, 1, parsed)
	l.studies[s.rec.Name] = s
	l.order = append(l.order, s)
	for i, tr := range trials {
		l.addTrial(s, &trial{study: s, rev: 1, rec: api.Trial{ID: tr.ID, Study: s.rec.Name, Index: i, Method: tr.Method, Params: tr.Params, Seed: tr.Seed, Bracket: tr.Bracket, State: sweep.Pending}}, now)
	}
	return s
}

// heartbeat applies a heartbeat of an agent with the resources given.
func (l *leaderState) heartbeat(id string, cpu float64, mem int64, gpus int, methods []string, now time.Time, running ...bus.AttemptRef) {
	hb := bus.Heartbeat{Node: id, Boot: "boot-" + id, Resources: bus.Resources{CPU: cpu, Memory: mem}, Methods: methods, Running: running, Sent: now}
	for i := range gpus {
		hb.Resources.GPUs = append(hb.Resources.GPUs, bus.GPU{Index: i})
	}
	l.onHeartbeat(heartbeatInput{hb: hb, msg: &nats.Msg{}}, now)
}

// placed returns how many dispatches the turn queued for each node.
func (l *leaderState) placed() map[string]int {
	out := map[string]int{}
	for n, ds := range l.outbox {
		out[n.rec.ID] += len(ds)
	}
	return out
}

// studySpec is a grid of trials synthetic trials needing resources.
func studySpec(name string, trials int, resources string) string {
	values := make([]string, trials)
	for i := range values {
		values[i] = fmt.Sprint(i + 1)
	}
	return fmt.Sprintf("name: %s\nmethod: synthetic\nspace:\n  params: [%s]\nresources: %s\n", name, strings.Join(values, ", "), resources)
}

// TestSchedule places ready trials for one turn and checks where each
// went.
func TestSchedule(t *testing.T) {
	const mib = 1 << 20
	type node struct {
		id      string
		cpu     float64
		mem     int64
		gpus    int
		methods []string
		drain   bool
	}
	type st struct {
		name      string
		trials    int
		resources string
		priority  int
	}
	for _, tc := range []struct {
		name    string
		nodes   []node
		studies []st
		want    map[string]int // dispatches per node
		per     map[string]int // dispatches per study
	}{
		{
			name:    "fills every core, spreading load to the node with the most free CPU",
			nodes:   []node{{id: "a", cpu: 4, mem: 1024 * mib}, {id: "b", cpu: 2, mem: 1024 * mib}},
			studies: []st{{"s", 10, "{cpu: 1, memory: 16MiB}", 0}},
			want:    map[string]int{"a": 4, "b": 2},
		},
		{
			name:    "memory binds before CPU",
			nodes:   []node{{id: "a", cpu: 8, mem: 64 * mib}},
			studies: []st{{"s", 10, "{cpu: 1, memory: 32MiB}", 0}},
			want:    map[string]int{"a": 2},
		},
		{
			name:    "a GPU trial goes only where a GPU is free",
			nodes:   []node{{id: "cpu", cpu: 8, mem: 1024 * mib}, {id: "gpu", cpu: 8, mem: 1024 * mib, gpus: 2}},
			studies: []st{{"s", 5, "{cpu: 1, gpu: 1, memory: 16MiB}", 0}},
			want:    map[string]int{"gpu": 2},
		},
		{
			name:    "a node that does not offer the method gets none",
			nodes:   []node{{id: "a", cpu: 4, mem: 1024 * mib, methods: []string{"charlm"}}, {id: "b", cpu: 1, mem: 1024 * mib, methods: []string{"synthetic"}}},
			studies: []st{{"s", 5, "{cpu: 1, memory: 16MiB}", 0}},
			want:    map[string]int{"b": 1},
		},
		{
			name:    "a draining node gets none",
			nodes:   []node{{id: "a", cpu: 4, mem: 1024 * mib, drain: true}},
			studies: []st{{"s", 5, "{cpu: 1, memory: 16MiB}", 0}},
			want:    map[string]int{},
		},
		{
			name:    "equal studies share the cluster",
			nodes:   []node{{id: "a", cpu: 6, mem: 1024 * mib}},
			studies: []st{{"x", 10, "{cpu: 1, memory: 16MiB}", 0}, {"y", 10, "{cpu: 1, memory: 16MiB}", 0}, {"z", 10, "{cpu: 1, memory: 16MiB}", 0}},
			want:    map[string]int{"a": 6},
			per:     map[string]int{"x": 2, "y": 2, "z": 2},
		},
		{
			name:    "a higher priority study is served first",
			nodes:   []node{{id: "a", cpu: 4, mem: 1024 * mib}},
			studies: []st{{"low", 10, "{cpu: 1, memory: 16MiB}", 0}, {"high", 3, "{cpu: 1, memory: 16MiB}", 5}},
			want:    map[string]int{"a": 4},
			per:     map[string]int{"high": 3, "low": 1},
		},
		{
			name:    "a study whose trial fits nowhere does not block the others",
			nodes:   []node{{id: "a", cpu: 2, mem: 1024 * mib}},
			studies: []st{{"big", 3, "{cpu: 4, memory: 16MiB}", 9}, {"small", 3, "{cpu: 1, memory: 16MiB}", 0}},
			want:    map[string]int{"a": 2},
			per:     map[string]int{"small": 2},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l := offline(t)
			now := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
			for _, n := range tc.nodes {
				l.heartbeat(n.id, n.cpu, n.mem, n.gpus, n.methods, now)
				l.nodes[n.id].draining = n.drain
			}
			for _, s := range tc.studies {
				l.addStudy(t, studySpec(s.name, s.trials, s.resources), s.priority, now)
			}
			l.schedule(now)
			got := l.placed()
			if fmt.Sprint(got) != fmt.Sprint(tc.want) {
				t.Errorf("dispatches per node %v, want %v", got, tc.want)
			}
			per := map[string]int{}
			for _, s := range l.order {
				if s.running > 0 {
					per[s.rec.Name] = s.running
				}
				if n := s.counts[sweep.Dispatched]; n != s.running {
					t.Errorf("study %s: %d trials dispatched but %d counted running", s.rec.Name, n, s.running)
				}
			}
			if tc.per != nil && fmt.Sprint(per) != fmt.Sprint(tc.per) {
				t.Errorf("dispatches per study %v, want %v", per, tc.per)
			}
			for n, ds := range l.outbox {
				for _, d := range ds {
					if d.Leader != "leader-test" || d.Attempt != 1 || len(d.GPUs) != d.Resources.GPUCount {
						t.Errorf("dispatch to %s: %+v", n.rec.ID, d)
					}
				}
			}
			if len(l.dirtyTrials) != sum(got) {
				t.Errorf("%d trial records to write, want one per dispatch (%d)", len(l.dirtyTrials), sum(got))
			}
		})
	}
}

func sum(m map[string]int) int {
	n := 0
	for _, v := range m {
		n += v
	}
	return n
}

// durable stands for the JetStream message of a durable event: the
// recording path only hands it to effects, which these tests never run.
type durable struct{ jetstream.Msg }

// TestRecord dispatches one trial and applies its agent's events, checking
// what the trial record says after each sequence.
func TestRecord(t *testing.T) {
	type want struct {
		state    sweep.State
		attempts []api.AttemptState
		late     int
		orphans  int
		failures int
		result   bool
	}
	loss := map[string]float64{"val_loss": 2.5}
	ev := func(kind bus.EventKind, out bus.Outcome, node string, attempt int, metrics map[string]float64) bus.Event {
		return bus.Event{Kind: kind, Outcome: out, Node: node, Metrics: metrics, AttemptRef: bus.AttemptRef{Attempt: attempt}}
	}
	started := ev(bus.EventStarted, "", "a", 1, nil)
	succeeded := ev(bus.EventFinished, bus.OutcomeSucceeded, "a", 1, loss)
	for _, tc := range []struct {
		name   string
		events []bus.Event
		want   want
	}{
		{"started", []bus.Event{started},
			want{state: sweep.Running, attempts: []api.AttemptState{api.AttemptRunning}}},
		{"succeeded", []bus.Event{started, succeeded},
			want{state: sweep.Succeeded, attempts: []api.AttemptState{api.AttemptSucceeded}, result: true}},
		{"a redelivered outcome changes nothing", []bus.Event{started, succeeded, succeeded, succeeded},
			want{state: sweep.Succeeded, attempts: []api.AttemptState{api.AttemptSucceeded}, result: true}},
		{"an outcome from another node is kept apart", []bus.Event{started, ev(bus.EventFinished, bus.OutcomeSucceeded, "intruder", 1, loss)},
			want{state: sweep.Running, attempts: []api.AttemptState{api.AttemptRunning}, orphans: 1}},
		{"an outcome of an attempt never made is late", []bus.Event{started, ev(bus.EventFinished, bus.OutcomeSucceeded, "a", 7, loss)},
			want{state: sweep.Running, attempts: []api.AttemptState{api.AttemptRunning}, late: 1}},
		{"no objective fails the attempt and retries", []bus.Event{started, ev(bus.EventFinished, bus.OutcomeSucceeded, "a", 1, map[string]float64{"other": 1})},
			want{state: sweep.Pending, attempts: []api.AttemptState{api.AttemptFailed}, failures: 1}},
		{"a failure retries", []bus.Event{started, ev(bus.EventFinished, bus.OutcomeFailed, "a", 1, nil)},
			want{state: sweep.Pending, attempts: []api.AttemptState{api.AttemptFailed}, failures: 1}},
		{"invalid parameters fail at once", []bus.Event{started, ev(bus.EventFinished, bus.OutcomeInvalid, "a", 1, nil)},
			want{state: sweep.Failed, attempts: []api.AttemptState{api.AttemptInvalid}, failures: 1}},
		{"an attempt the agent lost runs again", []bus.Event{started, ev(bus.EventFinished, bus.OutcomeLost, "a", 1, nil)},
			want{state: sweep.Pending, attempts: []api.AttemptState{api.AttemptStale}}},
		{"a preempted attempt runs again, using no retry", []bus.Event{started, ev(bus.EventFinished, bus.OutcomePreempted, "a", 1, nil)},
			want{state: sweep.Pending, attempts: []api.AttemptState{api.AttemptPreempted}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l := offline(t)
			now := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
			l.heartbeat("a", 1, 1<<30, 0, nil, now)
			s := l.addStudy(t, studySpec("s", 1, "{cpu: 1, memory: 16MiB}"), 0, now)
			l.schedule(now)
			tr := s.trials[0]
			clear(l.dirtyTrials)
			for _, e := range tc.events {
				e.Study, e.Trial, e.Time = s.rec.Name, tr.rec.ID, now
				in := eventInput{ev: e, msg: &durable{}}
				if e.Kind == bus.EventStarted {
					in.msg = nil // started events are not durable
				}
				l.apply(in, now)
			}
			var got []api.AttemptState
			for _, a := range tr.rec.Attempts {
				got = append(got, a.State)
			}
			w := tc.want
			if tr.rec.State != w.state || fmt.Sprint(got) != fmt.Sprint(w.attempts) || len(tr.rec.Late) != w.late ||
				len(l.orph.pending) != w.orphans || tr.rec.Failures != w.failures || (tr.rec.Result != nil) != w.result {
				t.Errorf("trial %s attempts %v late %d orphans %d failures %d result %v; want %+v",
					tr.rec.State, got, len(tr.rec.Late), len(l.orph.pending), tr.rec.Failures, tr.rec.Result != nil, w)
			}
			if w.result && *tr.rec.Result.Objective != 2.5 {
				t.Errorf("objective %v, want 2.5", *tr.rec.Result.Objective)
			}
			acks := 0
			for _, a := range l.actions {
				if _, ok := a.(ack); ok {
					acks++
				}
			}
			durable := 0
			for _, e := range tc.events {
				if e.Kind != bus.EventStarted {
					durable++
				}
			}
			if acks != durable {
				t.Errorf("%d acknowledgements queued for %d durable events: every one is acknowledged once recorded or kept", acks, durable)
			}
			if s.counts[tr.rec.State] != 1 {
				t.Errorf("counts %v disagree with the trial's state %s", s.counts, tr.rec.State)
			}
			if n := l.nodes["a"]; (n.usedCPU != 0) != (tr.rec.State == sweep.Running) {
				t.Errorf("node a holds %g CPU with the trial %s", n.usedCPU, tr.rec.State)
			}
		})
	}
}

// TestLiveness runs the leader's clock in a bubble: a node that stops
// heartbeating is declared dead after the grace period and its attempt
// runs again elsewhere; an attempt its agent stops reporting is stale once
// its outcome has had time to arrive.
func TestLiveness(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := offline(t)
		l.heartbeat("a", 1, 1<<30, 0, nil, time.Now())
		l.heartbeat("b", 1, 1<<30, 0, nil, time.Now())
		s := l.addStudy(t, studySpec("s", 2, "{cpu: 1, memory: 16MiB}"), 0, time.Now())
		l.schedule(time.Now())
		clear(l.outbox) // sent
		onA, onB := s.trials[0], s.trials[1]
		if onA.node.rec.ID != "a" {
			onA, onB = onB, onA
		}
		grace := l.cfg.HeartbeatGrace
		// b keeps heartbeating but stops listing its attempt; a falls
		// silent.
		for elapsed := time.Duration(0); elapsed <= grace; elapsed += time.Second {
			time.Sleep(time.Second)
			l.heartbeat("b", 1, 1<<30, 0, nil, time.Now())
			l.onTick(time.Now())
		}
		if l.nodes["a"].rec.State != api.NodeDead || onA.rec.State != sweep.Pending || onA.rec.Attempts[0].State != api.AttemptStale {
			t.Fatalf("after %s of silence: node a %s, its trial %s (attempt %s)", grace, l.nodes["a"].rec.State, onA.rec.State, onA.rec.Attempts[0].State)
		}
		if onB.rec.State != sweep.Dispatched {
			t.Fatalf("b's attempt went %s before its outcome had time to arrive", onB.rec.State)
		}
		time.Sleep(outcomeWait)
		l.heartbeat("b", 1, 1<<30, 0, nil, time.Now())
		if onB.rec.State != sweep.Pending || onB.rec.Attempts[0].State != api.AttemptStale {
			t.Fatalf("b's unreported attempt is %s after %s", onB.rec.State, outcomeWait)
		}
		// Both run again on b, the one node alive, one at a time.
		l.schedule(time.Now())
		if p := l.placed(); p["b"] != 1 || p["a"] != 0 {
			t.Errorf("dispatches %v, want one to b", p)
		}
	})
}

// TestSubmit applies a submission and a resubmission that extends the
// grid: the turn adds only the missing trials, marks the study for the
// commit's submitting protocol, and queues the reply, all without I/O.
func TestSubmit(t *testing.T) {
	l := offline(t)
	now := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	l.heartbeat("a", 4, 1<<30, 0, nil, now)
	submit := func(spec string) {
		data, _ := json.Marshal(api.SubmitRequest{SpecFile: "spec.yaml", Spec: spec})
		l.apply(apiInput{verb: api.VerbSubmit, msg: &nats.Msg{Data: data, Reply: "inbox"}}, now)
	}
	submit(studySpec("s", 3, "{cpu: 1, memory: 16MiB}"))
	s := l.studies["s"]
	if s == nil || len(s.trials) != 3 || !l.expanding[s] || !l.dirtyStudies[s] || len(l.dirtyTrials) != 3 || len(l.actions) != 1 {
		t.Fatalf("after a submission: study %v, expanding %v, %d dirty trials, %d effects", s != nil, l.expanding, len(l.dirtyTrials), len(l.actions))
	}
	if r, ok := l.actions[0].(reply); !ok || r.unless != s || r.err != nil {
		t.Errorf("action %#v: want the reply, held to the commit not quarantining the study", l.actions[0])
	}
	if s.rec.State != api.StudyActive || len(s.rec.Submissions) != 1 || s.rec.Submissions[0].Added != 3 {
		t.Errorf("study record %s with submissions %+v", s.rec.State, s.rec.Submissions)
	}
	// The commit would write them; pretend it did.
	clear(l.expanding)
	clear(l.dirtyTrials)
	clear(l.dirtyStudies)
	for _, tr := range s.trials {
		tr.rev = 1
	}
	s.rev = 1
	submit(studySpec("s", 5, "{cpu: 1, memory: 16MiB}"))
	if len(s.trials) != 5 || len(l.dirtyTrials) != 2 || !l.expanding[s] || s.rec.Submissions[1].Added != 2 {
		t.Errorf("after a resubmission: %d trials, %d new to write, submissions %+v", len(s.trials), len(l.dirtyTrials), s.rec.Submissions)
	}
	// A spec over the trial limit is refused with nothing changed.
	clear(l.expanding)
	clear(l.dirtyTrials)
	l.cfg.Limits.Trials = 6
	submit(studySpec("s", 9, "{cpu: 1, memory: 16MiB}"))
	if len(s.trials) != 5 || len(l.dirtyTrials) != 0 || l.expanding[s] {
		t.Errorf("a refused resubmission changed the study: %d trials, %d to write", len(s.trials), len(l.dirtyTrials))
	}
}

// TestCancel cancels a study with attempts running: its trials end, their
// resources are freed, and one cancellation per node is queued for after
// the commit.
func TestCancel(t *testing.T) {
	l := offline(t)
	now := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	l.heartbeat("a", 2, 1<<30, 0, nil, now)
	l.heartbeat("b", 1, 1<<30, 0, nil, now)
	s := l.addStudy(t, studySpec("s", 5, "{cpu: 1, memory: 16MiB}"), 0, now)
	l.schedule(now)
	data, _ := json.Marshal(api.CancelRequest{Study: "s", Reason: "wrong learning rate"})
	l.apply(apiInput{verb: api.VerbCancel, msg: &nats.Msg{Data: data, Reply: "inbox"}}, now)
	if s.counts[sweep.Cancelled] != 5 || s.running != 0 || s.rec.State != api.StudyCancelled {
		t.Errorf("counts %v, %d running, study %s", s.counts, s.running, s.rec.State)
	}
	sent := map[string]int{}
	for _, a := range l.actions {
		if p, ok := a.(publish); ok {
			var c bus.Cancel
			if err := bus.Decode(p.data, &c); err != nil {
				t.Fatal(err)
			}
			sent[p.subject] += len(c.Attempts)
			if c.Reason != "wrong learning rate" {
				t.Errorf("cancellation reason %q", c.Reason)
			}
		}
	}
	if want := map[string]int{bus.CancelSubject("a"): 2, bus.CancelSubject("b"): 1}; fmt.Sprint(sent) != fmt.Sprint(want) {
		t.Errorf("cancellations %v, want %v", sent, want)
	}
	for _, n := range l.nodes {
		if n.usedCPU != 0 || len(n.attempts) != 0 {
			t.Errorf("node %s still holds %g CPU and %d attempts", n.rec.ID, n.usedCPU, len(n.attempts))
		}
	}
}

// TestPreemptedRunsFirst preempts one of three running trials of a study
// with more waiting: the preempted trial is the next one dispatched, ahead
// of those that never ran, and it used no retry.
func TestPreemptedRunsFirst(t *testing.T) {
	l := offline(t)
	now := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	l.heartbeat("a", 3, 1<<30, 0, nil, now)
	s := l.addStudy(t, studySpec("s", 6, "{cpu: 1, memory: 16MiB}"), 0, now)
	l.schedule(now)
	clear(l.outbox)
	victim := s.trials[1]
	l.apply(eventInput{ev: bus.Event{Kind: bus.EventFinished, Outcome: bus.OutcomePreempted, Node: "a", Time: now, Error: "agent is shutting down",
		AttemptRef: bus.AttemptRef{Study: "s", Trial: victim.rec.ID, Attempt: 1}}, msg: &durable{}}, now)
	if victim.rec.State != sweep.Pending || victim.rec.Preempted != 1 || victim.rec.Failures != 0 || victim.rec.Stale != 0 {
		t.Fatalf("preempted trial: %s, preempted %d, failures %d, stale %d", victim.rec.State, victim.rec.Preempted, victim.rec.Failures, victim.rec.Stale)
	}
	l.schedule(now)
	var sent []string
	for _, ds := range l.outbox {
		for _, d := range ds {
			sent = append(sent, d.Trial)
		}
	}
	if len(sent) != 1 || sent[0] != victim.rec.ID {
		t.Errorf("dispatched %v after the preemption, want the preempted trial %s first", sent, victim.rec.ID)
	}
	if st := l.fullStatus(s, now); st.PreemptedAttempts != 1 || st.StaleAttempts != 0 {
		t.Errorf("status counts %d preempted and %d stale attempts, want 1 and 0", st.PreemptedAttempts, st.StaleAttempts)
	}
}

// TestPreemptedWithoutEnd fails a trial whose method asks to run again
// every time, once it has been preempted maxPreempted times.
func TestPreemptedWithoutEnd(t *testing.T) {
	l := offline(t)
	now := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	l.heartbeat("a", 1, 1<<30, 0, nil, now)
	s := l.addStudy(t, studySpec("s", 1, "{cpu: 1, memory: 16MiB}"), 0, now)
	tr := s.trials[0]
	for n := 1; n <= maxPreempted; n++ {
		clear(l.outbox)
		l.schedule(now)
		if tr.rec.State != sweep.Dispatched || tr.rec.Attempt != n {
			t.Fatalf("round %d: trial %s at attempt %d", n, tr.rec.State, tr.rec.Attempt)
		}
		l.apply(eventInput{ev: bus.Event{Kind: bus.EventFinished, Outcome: bus.OutcomePreempted, Node: "a", Time: now, Error: "the program exited with status 75",
			AttemptRef: bus.AttemptRef{Study: "s", Trial: tr.rec.ID, Attempt: n}}, msg: &durable{}}, now)
	}
	if tr.rec.State != sweep.Failed || !strings.Contains(tr.rec.Error, "preempted 100 times") {
		t.Errorf("after %d preemptions: %s (%q), want failed naming the count", maxPreempted, tr.rec.State, tr.rec.Error)
	}
}

// TestPromotionsQueueFirst checks the queue of a Hyperband study as a new
// leader rebuilds it: waiting promotions first, higher rungs first and in
// the order they were made, then the trials that start in their bracket
// (the last bracket's at the top rung among them) in expansion order.
func TestPromotionsQueueFirst(t *testing.T) {
	l := offline(t)
	now := time.Now()
	s := l.addStudy(t, `name: hb
method: synthetic
space:
  wd: [1, 2, 3, 4, 5, 6]
fixed: {tokens: 100}
search:
  hyperband: {fidelity: tokens, rungs: [100, 300, 900]}
`, 0, now)
	first := len(s.trials)
	// Promotions made in this order: wd 1 to 300, wd 2 to 900, wd 3 to 300.
	for i, p := range []struct {
		wd, tokens float64
	}{{1, 300}, {2, 900}, {3, 300}} {
		tr, err := s.spec.VariantIn(1, map[string]any{"wd": p.wd, "tokens": 100.0}, map[string]any{"tokens": p.tokens}, 0)
		if err != nil {
			t.Fatal(err)
		}
		l.addTrial(s, &trial{study: s, rev: 1, rec: api.Trial{ID: tr.ID, Study: "hb", Index: first + i, Params: tr.Params, Bracket: 1, State: sweep.Pending}}, now)
	}
	// A new leader loads them in any order.
	slices.Reverse(s.ready)
	sortTrials(s)
	s.orderPromotions()
	var got []string
	for _, tr := range s.ready {
		got = append(got, fmt.Sprintf("%d:%g", tr.rec.Index, tr.rec.Params["tokens"]))
	}
	var want []string
	want = append(want, fmt.Sprintf("%d:900", first+1), fmt.Sprintf("%d:300", first), fmt.Sprintf("%d:300", first+2))
	for i := range first {
		want = append(want, fmt.Sprintf("%d:%g", i, s.trials[i].rec.Params["tokens"]))
	}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("queue (index:tokens) %v, want %v", got, want)
	}
}

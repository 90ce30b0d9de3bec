package agent_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"asymptote.dev/asymptote/agent"
	"asymptote.dev/asymptote/agent/methodmgr"
	"asymptote.dev/asymptote/internal/bus"
	"asymptote.dev/asymptote/internal/clustertest"
	"asymptote.dev/asymptote/plugins/sdk"
)

// gate is a method runner whose trials run until the test releases them
// (or their context ends), and which records which trials started.
type gate struct {
	mu      sync.Mutex
	started []string
	release map[string]chan struct{}
}

func (g *gate) Run(ctx context.Context, r methodmgr.Run, _ func(sdk.Metrics) error) (*sdk.Result, error) {
	g.mu.Lock()
	g.started = append(g.started, r.Request.TrialID)
	ch := g.ch(r.Request.TrialID)
	g.mu.Unlock()
	select {
	case <-ch:
		return &sdk.Result{Metrics: map[string]float64{"loss": 1}}, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// ch returns trial's release channel; the caller holds g.mu.
func (g *gate) ch(trial string) chan struct{} {
	if g.release[trial] == nil {
		g.release[trial] = make(chan struct{})
	}
	return g.release[trial]
}

func (g *gate) done(trial string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	close(g.ch(trial))
}

func (g *gate) startedList() string {
	g.mu.Lock()
	defer g.mu.Unlock()
	return strings.Join(g.started, ",")
}

// wire plays the leader's side of the agent's protocol over real NATS and
// JetStream.
type wire struct {
	t    *testing.T
	nc   *nats.Conn
	cons jetstream.Consumer
	// started receives the started events, which are core NATS messages.
	started *nats.Subscription
	node    string
	// events seen so far, by trial: "started", "finished:<outcome>".
	events map[string][]string
	dur    map[string]time.Duration
}

func (w *wire) dispatch(trial string, cpu float64, timeout time.Duration) bus.DispatchReply {
	w.t.Helper()
	d := bus.Dispatch{
		AttemptRef: bus.AttemptRef{Study: "q", Trial: trial, Attempt: 1},
		Method:     "gate", Threads: 1, Params: map[string]any{},
		Resources: bus.Resources{CPU: cpu, Memory: 1 << 20}, Timeout: bus.Duration(timeout),
	}
	msg, err := w.nc.Request(bus.DispatchSubject(w.node), bus.Encode(&bus.DispatchBatch{Dispatches: []bus.Dispatch{d}}), 5*time.Second)
	if err != nil {
		w.t.Fatalf("dispatch %s: %v", trial, err)
	}
	var r bus.DispatchBatchReply
	if err := bus.Decode(msg.Data, &r); err != nil || len(r.Replies) != 1 {
		w.t.Fatalf("dispatch %s: reply %s: %v", trial, msg.Data, err)
	}
	return r.Replies[0]
}

// drain reads every event published so far.
func (w *wire) drain() {
	w.t.Helper()
	for {
		m, err := w.started.NextMsg(10 * time.Millisecond)
		if err != nil {
			break
		}
		var ev bus.Event
		if err := bus.Decode(m.Data, &ev); err != nil {
			w.t.Fatal(err)
		}
		w.events[ev.Trial] = append(w.events[ev.Trial], string(ev.Kind))
	}
	for {
		batch, err := w.cons.FetchNoWait(100)
		if err != nil {
			w.t.Fatal(err)
		}
		n := 0
		for m := range batch.Messages() {
			n++
			var ev bus.Event
			if err := bus.Decode(m.Data(), &ev); err != nil {
				w.t.Fatal(err)
			}
			kind := string(ev.Kind)
			if ev.Kind == bus.EventFinished {
				kind += ":" + string(ev.Outcome)
				w.dur[ev.Trial] = time.Duration(ev.Duration)
			}
			w.events[ev.Trial] = append(w.events[ev.Trial], kind)
			_ = m.Ack()
		}
		if n == 0 {
			return
		}
	}
}

// waitEvent waits until trial has an event containing want.
func (w *wire) waitEvent(trial, want string) {
	w.t.Helper()
	clustertest.WaitFor(w.t, 10*time.Second, func() error {
		w.drain()
		for _, e := range w.events[trial] {
			if strings.Contains(e, want) {
				return nil
			}
		}
		return fmt.Errorf("trial %s: events %v, waiting for %q", trial, w.events[trial], want)
	})
}

// heartbeat answers the agent's next heartbeat and returns what it
// reported running.
func (w *wire) heartbeat() []string {
	w.t.Helper()
	sub, err := w.nc.SubscribeSync(bus.HeartbeatSubject(w.node))
	if err != nil {
		w.t.Fatal(err)
	}
	defer sub.Unsubscribe()
	m, err := sub.NextMsg(5 * time.Second)
	if err != nil {
		w.t.Fatal(err)
	}
	var hb bus.Heartbeat
	if err := bus.Decode(m.Data, &hb); err != nil {
		w.t.Fatal(err)
	}
	_ = m.Respond(bus.Encode(&bus.HeartbeatReply{}))
	var out []string
	for _, r := range hb.Running {
		out = append(out, r.Trial)
	}
	if hb.Queue != 1 {
		w.t.Errorf("heartbeat offers queue %g, want 1", hb.Queue)
	}
	return out
}

// TestQueue checks the agent's queue: an attempt that does not fit what is
// free waits, reported in heartbeats but not started; it starts the
// moment a running attempt ends; its timeout counts from its start; a
// cancelled queued attempt finishes without starting; attempts beyond the
// queue, or larger than the agent, are refused.
func TestQueue(t *testing.T) {
	cl, nc, cons := eventsOf(t, "leader")
	g := &gate{release: map[string]chan struct{}{}}
	anc := cl.Conn("agent")
	a, err := agent.New(agent.Config{
		NodeID: "n1", NATS: anc, Methods: g, Queue: 1,
		Resources:         bus.Resources{CPU: 1, Memory: 1 << 30},
		HeartbeatInterval: 100 * time.Millisecond, ShutdownGrace: 3 * time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	stopped := make(chan struct{})
	go func() { _ = a.Run(ctx); close(stopped) }()
	t.Cleanup(func() { cancel(); <-stopped })
	started, err := nc.SubscribeSync(bus.SubjectStarted + ".>")
	if err != nil {
		t.Fatal(err)
	}
	w := &wire{t: t, nc: nc, cons: cons, started: started, node: "n1", events: map[string][]string{}, dur: map[string]time.Duration{}}
	const (
		tA = "aaaaaaaaaaaaaaaaaaaa"
		tB = "bbbbbbbbbbbbbbbbbbbb"
		tC = "cccccccccccccccccccc"
		tD = "dddddddddddddddddddd"
		tE = "eeeeeeeeeeeeeeeeeeee"
	)
	clustertest.WaitFor(t, 5*time.Second, func() error {
		if _, err := nc.Request(bus.DispatchSubject("n1"), []byte("{}"), time.Second); err != nil {
			return err
		}
		return nil
	})

	if r := w.dispatch(tA, 1, 0); !r.Accepted {
		t.Fatalf("A refused: %s", r.Reason)
	}
	w.waitEvent(tA, "started")
	if r := w.dispatch(tB, 1, 0); !r.Accepted {
		t.Fatalf("B refused though the queue has room: %s", r.Reason)
	}
	if r := w.dispatch(tC, 1, 0); r.Accepted || !strings.Contains(r.Reason, "queue") {
		t.Fatalf("C beyond the queue: accepted %v, reason %q; want a refusal naming the queue", r.Accepted, r.Reason)
	}
	if r := w.dispatch(tE, 2, 0); r.Accepted || !strings.Contains(r.Reason, "more than the agent has") {
		t.Fatalf("E larger than the agent: accepted %v, reason %q", r.Accepted, r.Reason)
	}
	if running := strings.Join(w.heartbeat(), ","); !strings.Contains(running, tA) || !strings.Contains(running, tB) {
		t.Errorf("heartbeat reports %s, want both the running and the queued attempt", running)
	}
	time.Sleep(200 * time.Millisecond)
	w.drain()
	if got := g.startedList(); got != tA || len(w.events[tB]) != 0 {
		t.Fatalf("while A runs: started %q, B's events %v; want only A started", got, w.events[tB])
	}

	// A ends: B starts without another dispatch.
	g.done(tA)
	w.waitEvent(tA, "finished:succeeded")
	w.waitEvent(tB, "started")

	// C queued behind B, then cancelled: it finishes, never starts.
	if r := w.dispatch(tC, 1, 0); !r.Accepted {
		t.Fatalf("C refused: %s", r.Reason)
	}
	// Twice, as a cancel and a heartbeat reply can both ask: the second
	// must change nothing.
	for range 2 {
		if err := nc.Publish(bus.CancelSubject("n1"), bus.Encode(&bus.Cancel{
			Attempts: []bus.AttemptRef{{Study: "q", Trial: tC, Attempt: 1}}, Reason: "test",
		})); err != nil {
			t.Fatal(err)
		}
	}
	w.waitEvent(tC, "finished:cancelled")
	if strings.Contains(g.startedList(), tC) || strings.Contains(strings.Join(w.events[tC], ","), "started") {
		t.Fatalf("cancelled queued attempt C started: runner saw %q, events %v", g.startedList(), w.events[tC])
	}

	// D has a 300 ms timeout and waits longer than that in the queue: it
	// must still start, and time out 300 ms after its start.
	if r := w.dispatch(tD, 1, 300*time.Millisecond); !r.Accepted {
		t.Fatalf("D refused: %s", r.Reason)
	}
	if r := w.dispatch(tE, 1, 0); r.Accepted {
		t.Fatal("E accepted beyond a full queue")
	}
	time.Sleep(500 * time.Millisecond)
	g.done(tB)
	w.waitEvent(tD, "started")
	w.waitEvent(tD, "finished:timed_out")
	if d := w.dur[tD]; d < 300*time.Millisecond || d > 2*time.Second {
		t.Errorf("D ran %v before timing out, want about 300ms from its start", d)
	}
	if got, want := g.startedList(), strings.Join([]string{tA, tB, tD}, ","); got != want {
		t.Errorf("trials started in order %q, want %q", got, want)
	}
}

package agent_test

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"asymptote.dev/asymptote/agent"
	"asymptote.dev/asymptote/agent/methodmgr"
	"asymptote.dev/asymptote/internal/bus"
	"asymptote.dev/asymptote/internal/checkpoint"
	"asymptote.dev/asymptote/internal/clustertest"
	"asymptote.dev/asymptote/plugins/sdk"
)

// TestDrain asks a running agent to drain, as `asymptote drain` does: it
// answers with the attempts it runs, reports each one preempted, and Run
// returns with no context ending.
func TestDrain(t *testing.T) {
	const trial = "dddddddddddddddddddd"
	cl, nc, cons := eventsOf(t, "cli")
	g := &gate{release: map[string]chan struct{}{}}
	a, err := agent.New(agent.Config{
		NodeID: "n1", NATS: cl.Conn("agent"), Methods: g,
		Resources:         bus.Resources{CPU: 1, Memory: 1 << 30},
		HeartbeatInterval: 100 * time.Millisecond, ShutdownGrace: 10 * time.Second,
		Logger: slog.New(slog.DiscardHandler),
	})
	if err != nil {
		t.Fatal(err)
	}
	returned := make(chan error, 1)
	go func() { returned <- a.Run(context.Background()) }()
	waitSubscribed(t, nc, "n1")
	dispatch(t, nc, "n1", bus.Dispatch{
		AttemptRef: bus.AttemptRef{Study: "q", Trial: trial, Attempt: 1},
		Method:     "gate", Threads: 1, Params: map[string]any{},
		Resources: bus.Resources{CPU: 1, Memory: 1 << 20},
	})
	clustertest.WaitFor(t, 10*time.Second, func() error {
		if g.startedList() != trial {
			return context.DeadlineExceeded
		}
		return nil
	})
	r, err := bus.NewClient(nc, 5*time.Second).Drain(t.Context(), "n1")
	if err != nil {
		t.Fatal(err)
	}
	if r.Node != "n1" || r.Preempted != 1 {
		t.Errorf("drain reply %+v, want n1 with 1 attempt preempted", r)
	}
	select {
	case err := <-returned:
		if err != nil {
			t.Errorf("Run after a drain: %v", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("the agent did not exit after the drain")
	}
	if ev := finished(t, cons, trial); ev.Outcome != bus.OutcomePreempted {
		t.Errorf("outcome %s (%s), want preempted", ev.Outcome, ev.Error)
	}
	// An agent that is gone says so by name.
	if _, err := bus.NewClient(nc, time.Second).Drain(t.Context(), "n1"); err == nil {
		t.Error("a second drain of a stopped agent succeeded")
	}
}

// killedWithTheJob is a method whose process dies of the signal the agent
// gets too, as every process of a SLURM job step does at its time limit:
// the agent's request for a checkpoint finds it gone.
type killedWithTheJob struct{ started chan struct{} }

func (k *killedWithTheJob) Run(ctx context.Context, r methodmgr.Run, _ func(sdk.Metrics) error) (*sdk.Result, error) {
	close(k.started)
	select {
	case q := <-r.Checkpoint:
		if q.Found != nil {
			q.Found <- true
		}
		return nil, &methodmgr.MethodError{Method: r.Method, Kind: methodmgr.Crashed, Err: errors.New("plugin process exited (signal: terminated)")}
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// TestMethodDyingWithTheAgentIsPreempted: a method whose process ends
// while its agent is stopping is preempted, not failed, so it uses no
// retry.
func TestMethodDyingWithTheAgentIsPreempted(t *testing.T) {
	const trial = "eeeeeeeeeeeeeeeeeeee"
	cl, nc, cons := eventsOf(t, "cli")
	store, err := checkpoint.NewDir(t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	m := &killedWithTheJob{started: make(chan struct{})}
	a, err := agent.New(agent.Config{
		NodeID: "n1", NATS: cl.Conn("agent"), Methods: m, Checkpoints: store,
		Resources:         bus.Resources{CPU: 1, Memory: 1 << 30},
		HeartbeatInterval: 100 * time.Millisecond, ShutdownGrace: 5 * time.Second,
		Logger: slog.New(slog.DiscardHandler),
	})
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = a.Run(context.Background()) }()
	waitSubscribed(t, nc, "n1")
	dispatch(t, nc, "n1", bus.Dispatch{
		AttemptRef: bus.AttemptRef{Study: "q", Trial: trial, Attempt: 1},
		Method:     "m", Threads: 1, Params: map[string]any{},
		Resources: bus.Resources{CPU: 1, Memory: 1 << 20},
	})
	<-m.started
	if _, err := bus.NewClient(nc, 5*time.Second).Drain(t.Context(), "n1"); err != nil {
		t.Fatal(err)
	}
	if ev := finished(t, cons, trial); ev.Outcome != bus.OutcomePreempted || !strings.Contains(ev.Error, "while the agent was stopping") {
		t.Errorf("outcome %s (%s), want preempted", ev.Outcome, ev.Error)
	}
}

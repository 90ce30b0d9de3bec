package agent_test

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"asymptote.dev/asymptote/agent"
	"asymptote.dev/asymptote/internal/bus"
	"asymptote.dev/asymptote/internal/clustertest"
)

// TestDrain asks a running agent to drain, as `asymptote drain` does: it
// answers with the attempts it runs, reports each one preempted, and Run
// returns with no context ending.
func TestDrain(t *testing.T) {
	const trial = "dddddddddddddddddddd"
	cl := clustertest.New(t)
	nc := cl.Conn("cli")
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	cons, err := bus.Declare(t.Context(), js, 1)
	if err != nil {
		t.Fatal(err)
	}
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

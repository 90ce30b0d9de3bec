package agent

import (
	"context"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"asymptote.dev/asymptote/internal/bus"
)

// lostAcks is a JetStream whose asynchronous publishes are never
// acknowledged, as when the acknowledgement was lost with a connection,
// and whose synchronous ones are stored.
type lostAcks struct {
	jetstream.JetStream // every other method: not called
	published           atomic.Int64
}

// hungFuture neither succeeds nor fails.
type hungFuture struct{ jetstream.PubAckFuture }

func (hungFuture) Ok() <-chan *jetstream.PubAck { return nil }
func (hungFuture) Err() <-chan error            { return nil }

func (j *lostAcks) PublishAsync(string, []byte, ...jetstream.PublishOpt) (jetstream.PubAckFuture, error) {
	return hungFuture{}, nil
}

func (j *lostAcks) Publish(context.Context, string, []byte, ...jetstream.PublishOpt) (*jetstream.PubAck, error) {
	j.published.Add(1)
	return &jetstream.PubAck{Stream: bus.StreamHistory}, nil
}

// TestFlushPublishesAgainWhenAnAckIsLost checks that an attempt's history
// whose acknowledgements never come is published again and counted as
// stored, instead of holding the outcome back until historyWait and
// giving the history up (the chaos suite lost an attempt's reports so
// after a NATS server was killed and the agent paused).
func TestFlushPublishesAgainWhenAnAckIsLost(t *testing.T) {
	was := ackWait
	ackWait = 20 * time.Millisecond
	t.Cleanup(func() { ackWait = was })
	js := &lostAcks{}
	h := &historyWriter{js: js, node: "n", log: slog.New(slog.DiscardHandler)}
	ref := bus.AttemptRef{Study: "s", Trial: "t", Attempt: 1}
	for step := range 3 {
		h.add(&bus.MetricsReport{AttemptRef: ref, Step: int64(step), Values: map[string]float64{"loss": 1}})
	}
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	start := time.Now()
	if lost := h.flush(ctx); lost != 0 {
		t.Fatalf("%d messages given up, want 0", lost)
	}
	// Three reports and the curve chunk.
	if n := js.published.Load(); n != 4 {
		t.Errorf("%d messages published again, want 4", n)
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("flush took %s", took)
	}
}

package agent

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"asymptote.dev/asymptote/internal/backoff"
	"asymptote.dev/asymptote/internal/bus"
)

// historyWait bounds how long an attempt's outcome waits for its history
// to be stored: longer than a NATS cluster takes to recover its streams
// (a few seconds for a failover, but over 30 s on nats-server 2.9 after a
// majority of members restarted together, which the chaos suite does),
// and far shorter than what holding a result back would cost. While the
// history stream does not answer, the events stream that carries the
// outcome usually does not either.
const historyWait = 2 * time.Minute

// ackWait bounds flush's wait for one message's acknowledgement before it
// publishes the message again: an acknowledgement lost with a connection
// (a NATS server killed, the agent paused) never comes, and its future
// then neither succeeds nor fails. The server deduplicates the second
// copy by its message ID.
var ackWait = 5 * time.Second

// historyBackoff paces flush's publishing again: 50ms, doubling to 2s.
var historyBackoff = backoff.Policy{First: 50 * time.Millisecond, Max: 2 * time.Second}

// historyWriter publishes one attempt's metrics reports to the history
// stream without waiting on each acknowledgement, and the same reports in
// curve chunks (bus.Curve) that bulk reads use, and makes sure, before the
// attempt's outcome goes out, that every one was stored: a message whose
// publish failed is sent again with the same message ID, which the server
// deduplicates.
type historyWriter struct {
	js jetstream.JetStream
	// node is this agent's node ID, which the metrics subjects name.
	node    string
	log     *slog.Logger
	pending []pendingReport
	seq     int64
	curve   *bus.CurveBuilder
}

type pendingReport struct {
	subject string
	data    []byte
	id      string
	ack     jetstream.PubAckFuture // nil: publish again
}

// add publishes r and forgets the reports acknowledged so far, so an
// attempt that reports for days holds only what is in flight.
func (h *historyWriter) add(r *bus.MetricsReport) {
	h.seq++
	r.Seq = h.seq
	h.send(bus.MetricsSubject(r.Study, r.Trial, h.node), bus.Encode(r), r.MsgID())
	if h.curve == nil {
		h.curve = bus.NewCurveBuilder(r.AttemptRef)
	}
	if c := h.curve.Add(r); c != nil {
		h.send(bus.CurveSubject(c.Study, c.Trial, h.node), bus.Encode(c), c.MsgID())
	}
	h.prune()
}

// send publishes one message without waiting for its acknowledgement.
// When too many are in flight (a method reporting faster than JetStream
// stores), it waits for them instead: the method slows down, and the
// writer never holds more than the client's in-flight limit.
func (h *historyWriter) send(subject string, data []byte, id string) {
	p := pendingReport{subject: subject, data: data, id: id}
	var err error
	p.ack, err = h.js.PublishAsync(p.subject, p.data, jetstream.WithMsgID(p.id))
	if err != nil {
		select {
		case <-h.js.PublishAsyncComplete():
		case <-time.After(5 * time.Second):
		}
		h.compact()
		p.ack, _ = h.js.PublishAsync(p.subject, p.data, jetstream.WithMsgID(p.id))
	}
	h.pending = append(h.pending, p)
}

// prune drops the acknowledged messages at the front: cheap, and enough
// while acknowledgements come in order.
func (h *historyWriter) prune() {
	i := 0
	for ; i < len(h.pending); i++ {
		f := h.pending[i].ack
		if f == nil {
			break
		}
		select {
		case <-f.Ok():
			continue
		default:
		}
		break
	}
	h.pending = h.pending[i:]
}

// noStream reports whether the server says the history stream does not
// exist (not merely that it did not answer).
func (h *historyWriter) noStream(ctx context.Context) bool {
	sctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	_, err := h.js.Stream(sctx, bus.StreamHistory)
	return errors.Is(err, jetstream.ErrStreamNotFound)
}

// compact drops every acknowledged message, keeping the order of the rest.
func (h *historyWriter) compact() {
	kept := h.pending[:0]
	for _, p := range h.pending {
		if p.ack != nil {
			select {
			case <-p.ack.Ok():
				continue
			default:
			}
		}
		kept = append(kept, p)
	}
	clear(h.pending[len(kept):])
	h.pending = kept
}

// flush publishes the attempt's last curve chunk and waits for every
// message's acknowledgement, publishing again what failed, until ctx ends.
// It returns how many messages were not stored.
//
// The wait is bounded by historyWait: the history must never hold back an
// attempt's outcome (its result) for long, so past that, or when there is
// no history stream at all, the rest is given up and the outcome goes out.
func (h *historyWriter) flush(ctx context.Context) int {
	ctx, cancel := context.WithTimeout(ctx, historyWait)
	defer cancel()
	if h.curve != nil {
		c := h.curve.Finish()
		h.send(bus.CurveSubject(c.Study, c.Trial, h.node), bus.Encode(c), c.MsgID())
		h.curve = nil
	}
	for i := range h.pending {
		p := &h.pending[i]
		if p.ack != nil {
			lost := time.NewTimer(ackWait)
			select {
			case <-p.ack.Ok():
				lost.Stop()
				continue
			case <-p.ack.Err():
			case <-lost.C:
				h.log.Debug("no acknowledgement of a metrics history message; publishing it again", "subject", p.subject)
			case <-ctx.Done():
			}
			lost.Stop()
		}
		wait := historyBackoff.Start()
		for ctx.Err() == nil {
			pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			_, err := h.js.Publish(pctx, p.subject, p.data, jetstream.WithMsgID(p.id))
			cancel()
			if err == nil {
				break
			}
			if errors.Is(err, jetstream.ErrNoStreamResponse) && h.noStream(ctx) {
				// No stream takes the subject: retrying cannot help. (No
				// response alone is also what a stream electing a leader
				// gives, which retrying outlasts.)
				h.log.Warn("no metric history stream; the attempt's history is not kept", "subject", p.subject)
				lost := len(h.pending) - i
				h.pending = nil
				return lost
			}
			h.log.Warn("store metrics history failed; retrying", "subject", p.subject, "error", err)
			_ = wait.Wait(ctx) // an ended ctx ends the loop
		}
		if ctx.Err() != nil {
			lost := len(h.pending) - i
			h.pending = nil
			return lost
		}
	}
	h.pending = nil
	return 0
}

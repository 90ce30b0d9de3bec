package bus

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"asymptote.dev/asymptote/internal/api"
)

// A team's identities read a study's metric history through the leader
// (api.VerbHistory), which checks that the study is their team's: the
// history stream itself is open only to the coordinator and the operator.
// The leader sends the chunks as HistoryChunks reads them, one message
// each, to the request's reply subject, numbered so the client notices
// one that never arrived, and ends with their count.

// historyFlushEvery paces a history reply to the server: the leader waits
// for the server to take every so many chunks before it sends more.
const historyFlushEvery = 256

// ServeHistory answers a history request whose checks passed, on reply:
// study's chunks (trial's only, when set), then the end, which carries
// the error that stopped the read, if one did. It returns that error, and
// any of sending.
func ServeHistory(ctx context.Context, nc *nats.Conn, js jetstream.JetStream, reply, study, trial string) error {
	n := 0
	err := HistoryChunks(ctx, js, study, trial, func(c *Curve, raw []byte) error {
		if raw == nil {
			raw = Encode(c)
		}
		n++
		m := &nats.Msg{Subject: reply, Header: nats.Header{api.HistorySeqHeader: []string{strconv.Itoa(n)}}, Data: raw}
		if err := nc.PublishMsg(m); err != nil {
			return fmt.Errorf("history: send chunk %d: %w", n, err)
		}
		if n%historyFlushEvery == 0 {
			return nc.FlushWithContext(ctx)
		}
		return nil
	})
	return errors.Join(err, EndHistory(nc, reply, n, err))
}

// EndHistory sends the end of a history reply of n chunks, or the error
// that refused or stopped it.
func EndHistory(nc *nats.Conn, reply string, n int, err error) error {
	end := &nats.Msg{Subject: reply, Header: nats.Header{api.HistoryEndHeader: []string{strconv.Itoa(n)}}, Data: api.EncodeReply(api.HistoryEnd{Chunks: n}, err)}
	return errors.Join(nc.PublishMsg(end), nc.Flush())
}

// OnTeamSubjects reports whether the client calls the API on a team's
// subjects (the operator's `_all` too), as on a secured bus, where the
// history is read through the leader. Caller.Scoped is another question:
// whether a caller sees one team's studies only.
func (c *Client) OnTeamSubjects() bool { return c.team != "" }

// History reads a study's metric history (trial's only, when set) through
// the leader, passing each chunk to fn in the order the leader read them:
// what HistoryChunks passes, without its stored encodings. A chunk that
// never arrives fails the read rather than leaving a hole in it.
func (c *Client) History(ctx context.Context, study, trial string, fn func(*Curve) error) error {
	const verb = api.VerbHistory
	b, err := json.Marshal(api.HistoryRequest{Study: study, Trial: trial})
	if err != nil {
		return fmt.Errorf("%s: encode the request: %w", verb, err)
	}
	subject, what := c.subject(verb)
	inbox := c.nc.NewInbox()
	sub, err := c.nc.SubscribeSync(inbox)
	if err != nil {
		return fmt.Errorf("%s: %w", verb, err)
	}
	defer sub.Unsubscribe()
	// The whole history is read into fn's hands: a slow reader keeps
	// it waiting here rather than losing chunks.
	if err := sub.SetPendingLimits(-1, -1); err != nil {
		return fmt.Errorf("%s: %w", verb, err)
	}
	first, err := c.firstReply(ctx, sub, subject, what, b)
	if err != nil {
		return fmt.Errorf("%s: %w", verb, err)
	}
	// The leader reads the stream as it sends: allow it a pause.
	idle := max(c.timeout, time.Minute)
	got := 0
	for m := first; ; {
		// The end, or a plain reply: the leader's refusal of the
		// request.
		if m.Header.Get(api.HistorySeqHeader) == "" {
			var e api.HistoryEnd
			if err := api.DecodeReply(m.Data, &e); err != nil {
				var remote *api.RemoteError
				if errors.As(err, &remote) {
					return err
				}
				return fmt.Errorf("%s: %w", verb, err)
			}
			if e.Chunks != got {
				return fmt.Errorf("%s: the leader sent %d chunks of study %s's history and %d arrived; read it again", verb, e.Chunks, study, got)
			}
			return nil
		}
		seq, err := strconv.Atoi(m.Header.Get(api.HistorySeqHeader))
		if err != nil || seq != got+1 {
			return fmt.Errorf("%s: chunk %q of study %s's history came after chunk %d: one was lost on the way; read it again", verb, m.Header.Get(api.HistorySeqHeader), study, got)
		}
		got = seq
		var cv Curve
		if err := Decode(m.Data, &cv); err != nil {
			return fmt.Errorf("%s: chunk %d: %w", verb, seq, err)
		}
		if err := fn(&cv); err != nil {
			return err
		}
		next, err := c.next(ctx, sub, idle)
		if err != nil {
			return fmt.Errorf("%s: after chunk %d of study %s's history: %w; read it again", verb, got, study, err)
		}
		m = next
	}
}

func (c *Client) next(ctx context.Context, sub *nats.Subscription, idle time.Duration) (*nats.Msg, error) {
	ctx, cancel := context.WithTimeout(ctx, idle)
	defer cancel()
	m, err := sub.NextMsgWithContext(ctx)
	if errors.Is(err, context.DeadlineExceeded) && ctx.Err() != nil {
		return nil, fmt.Errorf("nothing came for %s (the leader may have changed)", idle)
	}
	return m, err
}

// firstReply sends the request until an answer comes, as call does: a
// leader may be between elections, and a refusal by the server ends it at
// once.
func (c *Client) firstReply(ctx context.Context, sub *nats.Subscription, subject, what string, b []byte) (*nats.Msg, error) {
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	for {
		before := c.nc.LastError()
		if err := c.nc.PublishRequest(subject, sub.Subject, b); err != nil {
			return nil, err
		}
		for {
			wait, stop := context.WithTimeout(ctx, 20*time.Millisecond)
			m, err := sub.NextMsgWithContext(wait)
			stop()
			if err == nil && m.Header.Get("Status") == "503" {
				break // no leader answers yet: ask again
			}
			if err == nil {
				return m, nil
			}
			if lerr := c.nc.LastError(); lerr != before && refused(lerr, subject) {
				return nil, refusal(lerr, what)
			}
			if ctx.Err() != nil {
				return nil, ErrNoLeader
			}
		}
		select {
		case <-ctx.Done():
			return nil, ErrNoLeader
		case <-time.After(200 * time.Millisecond):
		}
	}
}

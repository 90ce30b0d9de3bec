package bus

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nats.go"

	"asymptote.dev/asymptote/internal/api"
)

// ErrNoLeader means no coordinator answered: none runs, or none is the
// leader yet.
var ErrNoLeader = errors.New("no coordinator answered (is one running, and can it reach etcd?)")

// Client calls the client API over NATS: requests on asymptote.api.<verb>,
// answered by the leader coordinator (internal/api has the requests and
// replies).
type Client struct {
	nc      *nats.Conn
	timeout time.Duration
	// team and identity scope the requests (TeamAPISubject); empty, the
	// client calls the unscoped subjects of an open bus.
	team, identity string
}

// NewClient returns a client on nc; timeout bounds each request (default
// 10s, long enough for a leader to take over).
func NewClient(nc *nats.Conn, timeout time.Duration) *Client {
	if timeout <= 0 {
		timeout = 10 * time.Second
	}
	return &Client{nc: nc, timeout: timeout}
}

// As returns a client that calls the API as identity of team, on the
// team's subjects; a secured bus refuses the requests unless this
// connection's credentials are that identity's. An empty team returns the
// unscoped client; an empty identity is "anonymous", which only an open
// bus accepts.
func (c *Client) As(team, identity string) (*Client, error) {
	if team == "" {
		return &Client{nc: c.nc, timeout: c.timeout}, nil
	}
	if identity == "" {
		identity = "anonymous"
	}
	if team != AllTeams {
		if err := ValidTeam(team); err != nil {
			return nil, fmt.Errorf("team: %w", err)
		}
	}
	if err := ValidToken(identity); err != nil {
		return nil, fmt.Errorf("identity: %w", err)
	}
	return &Client{nc: c.nc, timeout: c.timeout, team: team, identity: identity}, nil
}

// subject returns the subject of verb for this client, and what the
// request is in its errors.
func (c *Client) subject(verb string) (subject, what string) {
	if c.team == "" {
		return APISubject(verb), verb
	}
	return TeamAPISubject(verb, c.team, c.identity), fmt.Sprintf("%s as %s of team %s", verb, c.identity, c.team)
}

func (c *Client) call(ctx context.Context, verb string, req, reply any) error {
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	b, err := json.Marshal(req)
	if err != nil {
		return fmt.Errorf("%s: encode the request: %w", verb, err)
	}
	if max := c.nc.MaxPayload(); max > 0 && int64(len(b)) > max {
		return fmt.Errorf("%s: the request is %d bytes, over the NATS server's max_payload of %d bytes; send less (a smaller spec) or raise max_payload", verb, len(b), max)
	}
	subject, what := c.subject(verb)
	// A leader may be between elections: retry until the deadline.
	for {
		msg, err := c.request(ctx, subject, what, b)
		if err == nil {
			var remote *api.RemoteError
			if err := api.DecodeReply(msg.Data, reply); err != nil && !errors.As(err, &remote) {
				return fmt.Errorf("%s: %w", verb, err)
			} else if err != nil {
				return err
			}
			return nil
		}
		if !errors.Is(err, nats.ErrNoResponders) {
			if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, nats.ErrTimeout) {
				return fmt.Errorf("%s: %w", verb, ErrNoLeader)
			}
			return fmt.Errorf("%s: %w", verb, err)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s: %w", verb, ErrNoLeader)
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// request sends one request to subject, for what (a verb, "drain"). A
// server with permissions drops a request its sender may not make and
// sends the client an error instead, so no one would ever answer: the
// request then ends at once with that refusal.
func (c *Client) request(ctx context.Context, subject, what string, b []byte) (*nats.Msg, error) {
	before := c.nc.LastError()
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	go func() {
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
			if err := c.nc.LastError(); err != before && refused(err, subject) {
				cancel(err)
				return
			}
		}
	}()
	msg, err := c.nc.RequestWithContext(ctx, subject, b)
	if cause := context.Cause(ctx); err != nil && refused(cause, subject) {
		return nil, refusal(cause, what)
	}
	return msg, err
}

// refusal is the error of a request the server refused: its words, and
// what this identity may not do.
func refusal(err error, what string) error {
	return fmt.Errorf("%w; this identity may not %s (docs/security.md lists what each may do)", err, what)
}

// refused reports whether err is the server's refusal of a publish to
// subject.
func refused(err error, subject string) bool {
	return errors.Is(err, nats.ErrPermissionViolation) && strings.Contains(err.Error(), `"`+subject+`"`)
}

// Submit submits a study spec.
func (c *Client) Submit(ctx context.Context, req api.SubmitRequest) (*api.SubmitReply, error) {
	var r api.SubmitReply
	return &r, c.call(ctx, api.VerbSubmit, req, &r)
}

// Status returns the cluster's and the studies' state.
func (c *Client) Status(ctx context.Context, study string) (*api.StatusReply, error) {
	var r api.StatusReply
	return &r, c.call(ctx, api.VerbStatus, api.StatusRequest{Study: study}, &r)
}

// Results returns every trial of a study, paging through the API.
func (c *Client) Results(ctx context.Context, study string) (*api.ResultsReply, error) {
	// A page of trial records stays well under NATS's default 1 MB
	// max_payload.
	const page = 250
	var all *api.ResultsReply
	for off := 0; ; off += page {
		var r api.ResultsReply
		if err := c.call(ctx, api.VerbResults, api.ResultsRequest{Study: study, Offset: off, Limit: page}, &r); err != nil {
			return nil, err
		}
		if all == nil {
			all = &r
		} else {
			all.Trials = append(all.Trials, r.Trials...)
		}
		if len(r.Trials) < page || off+len(r.Trials) >= r.Total {
			return all, nil
		}
	}
}

// Study sends one of the operator's verbs (VerbQuarantine, VerbResume,
// VerbDelete) for a study.
func (c *Client) Study(ctx context.Context, verb string, req api.StudyRequest) (*api.StudyReply, error) {
	var r api.StudyReply
	if err := c.call(ctx, verb, req, &r); err != nil {
		return nil, err
	}
	return &r, nil
}

// Drain asks the agent node to drain: it stops taking work, preempts the
// attempts it runs (they run again first, on other agents) and exits.
func (c *Client) Drain(ctx context.Context, node string) (*DrainReply, error) {
	if err := ValidToken(node); err != nil {
		return nil, fmt.Errorf("drain: node: %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	msg, err := c.request(ctx, DrainSubject(node), "drain", nil)
	switch {
	case errors.Is(err, nats.ErrNoResponders):
		return nil, fmt.Errorf("drain: no agent %s is listening (is it running? 'asymptote status' lists the agents)", node)
	case err != nil:
		return nil, fmt.Errorf("drain %s: %w", node, err)
	}
	var r DrainReply
	if err := Decode(msg.Data, &r); err != nil {
		return nil, fmt.Errorf("drain %s: the agent answered garbage: %w", node, err)
	}
	return &r, nil
}

// Allow reads or changes the cluster's allowlist (api.VerbAllow).
func (c *Client) Allow(ctx context.Context, req api.AllowRequest) (*api.AllowReply, error) {
	var r api.AllowReply
	return &r, c.call(ctx, api.VerbAllow, req, &r)
}

// Cancel cancels a study or some of its trials.
func (c *Client) Cancel(ctx context.Context, req api.CancelRequest) (*api.CancelReply, error) {
	var r api.CancelReply
	return &r, c.call(ctx, api.VerbCancel, req, &r)
}

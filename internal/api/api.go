package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"

	"asymptote.dev/asymptote/internal/bus"
)

// The client API verbs; each is a NATS request on asymptote.api.<verb>,
// answered only by the leader coordinator.
const (
	VerbSubmit  = "submit"
	VerbStatus  = "status"
	VerbResults = "results"
	VerbCancel  = "cancel"
	// The operator's verbs for a study that misbehaves (docs/operations.md).
	VerbQuarantine = "quarantine"
	VerbResume     = "resume"
	VerbDelete     = "delete"
)

// Verbs lists every verb the leader answers.
var Verbs = []string{VerbSubmit, VerbStatus, VerbResults, VerbCancel, VerbQuarantine, VerbResume, VerbDelete}

// StudyRequest names a study for quarantine, resume or delete.
type StudyRequest struct {
	Study string `json:"study"`
	// Reason is kept with an operator's quarantine.
	Reason string `json:"reason,omitempty"`
}

// StudyReply reports what quarantine, resume or delete did.
type StudyReply struct {
	Study string     `json:"study"`
	State StudyState `json:"state,omitempty"`
	// Deleted counts the trials a delete removed.
	Deleted int `json:"deleted,omitempty"`
}

// SubmitRequest submits (or resubmits, or extends) a study.
type SubmitRequest struct {
	// SpecFile is the spec's file name, for error messages.
	SpecFile string `json:"spec_file"`
	// Spec is the YAML source.
	Spec string `json:"spec"`
}

// SubmitReply reports what a submission changed.
type SubmitReply struct {
	Study string `json:"study"`
	// Added is the number of new trials; Existing were already known.
	Added    int `json:"added"`
	Existing int `json:"existing"`
	Total    int `json:"total"`
	// Unchanged is true when the same spec was submitted before.
	Unchanged bool `json:"unchanged"`
	// Warnings say what will keep the study from running (no live agent
	// can fit its trials).
	Warnings []string `json:"warnings,omitempty"`
}

// StatusRequest asks for the state of one study, or of all when Study is
// empty.
type StatusRequest struct {
	Study string `json:"study,omitempty"`
}

// StudyStatus summarises one study.
type StudyStatus struct {
	Name      string     `json:"name"`
	State     StudyState `json:"state"`
	Method    string     `json:"method"`
	Objective string     `json:"objective"`
	Direction string     `json:"direction"`
	Priority  int        `json:"priority"`
	Total     int        `json:"total"`
	// Counts maps each trial state to its number of trials.
	Counts map[string]int `json:"counts"`
	// StaleAttempts counts attempts lost with their agents; LateResults
	// counts results that arrived for superseded attempts; Retries counts
	// attempts beyond the first.
	StaleAttempts int `json:"stale_attempts"`
	LateResults   int `json:"late_results"`
	Retries       int `json:"retries"`
	// Rate is trials finished per second over the last minute.
	Rate float64 `json:"rate"`
	// ETA estimates the time left at the current rate (zero if unknown).
	ETA      Duration   `json:"eta"`
	Created  time.Time  `json:"created"`
	Finished *time.Time `json:"finished,omitempty"`
	// Best is the best succeeded trial by the objective.
	Best *Trial `json:"best,omitempty"`
	// Failures lists a few failed trials with their errors.
	Failures []Trial `json:"failures,omitempty"`
	// Analysis is the current fit of the study's analysis plan.
	Analysis []FitSummary `json:"analysis,omitempty"`
	// Budget is the study's compute budget and where it went.
	Budget *BudgetStatus `json:"budget,omitempty"`
	// Extensions and Decisions are what adaptive steps added, and why.
	Extensions []Extension `json:"extensions,omitempty"`
	Decisions  []Decision  `json:"decisions,omitempty"`
	// MethodVersions lists the method versions the study's results came
	// from, when there is more than one: they may not be comparable.
	MethodVersions []string `json:"method_versions,omitempty"`
	// Waiting says why pending trials cannot start: no live agent offers
	// the method or could fit one.
	Waiting string `json:"waiting,omitempty"`
	// Quarantine says why a quarantined study is stopped.
	Quarantine *Quarantine `json:"quarantine,omitempty"`
	// Error is set when part of this status could not be reported (a
	// value that cannot be encoded); the fields that could be are kept.
	Error string `json:"error,omitempty"`
}

// BudgetStatus is a study's compute budget: its unit, size, what was used,
// and how the use splits over the values of each grid axis.
type BudgetStatus struct {
	Kind   string      `json:"kind"`
	Limit  float64     `json:"limit"`
	Used   float64     `json:"used"`
	ByAxis []AxisUsage `json:"by_axis,omitempty"`
}

// AxisUsage splits a budget's use over one grid axis's values.
type AxisUsage struct {
	Axis   string       `json:"axis"`
	Values []ValueUsage `json:"values"`
}

// ValueUsage is the budget used by the trials with one axis value.
type ValueUsage struct {
	Value string  `json:"value"`
	Used  float64 `json:"used"`
}

// Done reports whether every trial is in a terminal state.
func (s *StudyStatus) Done() bool {
	return s.State == StudyDone || s.State == StudyCancelled
}

// NodeStatus summarises one agent host.
type NodeStatus struct {
	Node
	// Running counts the attempts the agent reported started; Waiting
	// those dispatched to it that have not started, queued on the agent
	// (docs/operations.md) or on their way.
	Running int `json:"running"`
	Waiting int `json:"waiting,omitempty"`
	// FreeCPU and FreeMemory are the coordinator's view of what is left.
	FreeCPU    float64 `json:"free_cpu"`
	FreeMemory int64   `json:"free_memory"`
	// Held is true while the leader places nothing on the node because
	// a dispatch to it went unanswered or was refused; the node's next
	// heartbeat clears it.
	Held bool `json:"held,omitempty"`
	// Superseded counts attempts the agent still runs that are no longer
	// current (after a partition or a leader change); the leader has
	// told it to cancel them, and counts their resources until it has.
	Superseded int `json:"superseded,omitempty"`
}

// StatusReply is the cluster and study state.
type StatusReply struct {
	Leader  string        `json:"leader"`
	Since   time.Time     `json:"leader_since"`
	Studies []StudyStatus `json:"studies"`
	Nodes   []NodeStatus  `json:"nodes"`
	// Orphans counts the trial events kept because they could not be
	// applied; Recent are the latest few, with their reasons.
	Orphans       int      `json:"orphans,omitempty"`
	RecentOrphans []Orphan `json:"recent_orphans,omitempty"`
}

// ResultsRequest pages through a study's trials in expansion order.
type ResultsRequest struct {
	Study  string `json:"study"`
	Offset int    `json:"offset"`
	Limit  int    `json:"limit"`
}

// ResultsReply is one page of trials.
type ResultsReply struct {
	Study     string  `json:"study"`
	Objective string  `json:"objective"`
	Direction string  `json:"direction"`
	Total     int     `json:"total"`
	Trials    []Trial `json:"trials"`
	// SpecFile, Spec and Extensions are the study's spec as the leader
	// runs it: its latest submission and the values adaptive steps added.
	// Only the first page (offset 0) carries them.
	SpecFile   string      `json:"spec_file,omitempty"`
	Spec       string      `json:"spec,omitempty"`
	Extensions []Extension `json:"extensions,omitempty"`
}

// CancelRequest cancels a whole study, or only the named trials.
type CancelRequest struct {
	Study  string   `json:"study"`
	Trials []string `json:"trials,omitempty"`
	Reason string   `json:"reason,omitempty"`
}

// CancelReply reports how many trials were cancelled.
type CancelReply struct {
	Cancelled int `json:"cancelled"`
	// Note says why nothing was cancelled, when nothing was.
	Note string `json:"note,omitempty"`
}

// Duration is a time.Duration that encodes as a Go duration string, the
// same type the bus carries.
type Duration = bus.Duration

// envelope wraps every reply so errors travel as data.
type envelope struct {
	Error string          `json:"error,omitempty"`
	Data  json.RawMessage `json:"data,omitempty"`
}

// EncodeReply returns the wire form of a reply or an error.
func EncodeReply(v any, err error) []byte {
	var env envelope
	if err != nil {
		env.Error = err.Error()
	} else {
		b, merr := json.Marshal(v)
		if merr != nil {
			env.Error = "encode reply: " + merr.Error()
		} else {
			env.Data = b
		}
	}
	b, _ := json.Marshal(env)
	return b
}

// ErrNoLeader means no coordinator answered: none runs, or none is the
// leader yet.
var ErrNoLeader = errors.New("no coordinator answered (is one running, and can it reach etcd?)")

// Client calls the client API over NATS.
type Client struct {
	nc      *nats.Conn
	timeout time.Duration
}

// NewClient returns a client on nc; timeout bounds each request (default
// 10s, long enough for a leader to take over).
func NewClient(nc *nats.Conn, timeout time.Duration) *Client {
	if timeout <= 0 {
		timeout = 10 * time.Second
	}
	return &Client{nc: nc, timeout: timeout}
}

// RemoteError is an error the coordinator returned.
type RemoteError struct{ Msg string }

func (e *RemoteError) Error() string { return e.Msg }

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
	// A leader may be between elections: retry until the deadline.
	for {
		msg, err := c.nc.RequestWithContext(ctx, bus.APISubject(verb), b)
		if err == nil {
			var env envelope
			if err := json.Unmarshal(msg.Data, &env); err != nil {
				return fmt.Errorf("%s: malformed reply: %w", verb, err)
			}
			if env.Error != "" {
				return &RemoteError{Msg: env.Error}
			}
			return json.Unmarshal(env.Data, reply)
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

// Submit submits a study spec.
func (c *Client) Submit(ctx context.Context, req SubmitRequest) (*SubmitReply, error) {
	var r SubmitReply
	return &r, c.call(ctx, VerbSubmit, req, &r)
}

// Status returns the cluster's and the studies' state.
func (c *Client) Status(ctx context.Context, study string) (*StatusReply, error) {
	var r StatusReply
	return &r, c.call(ctx, VerbStatus, StatusRequest{Study: study}, &r)
}

// Results returns every trial of a study, paging through the API.
func (c *Client) Results(ctx context.Context, study string) (*ResultsReply, error) {
	// A page of trial records stays well under NATS's default 1 MB
	// max_payload.
	const page = 250
	var all *ResultsReply
	for off := 0; ; off += page {
		var r ResultsReply
		if err := c.call(ctx, VerbResults, ResultsRequest{Study: study, Offset: off, Limit: page}, &r); err != nil {
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
func (c *Client) Study(ctx context.Context, verb string, req StudyRequest) (*StudyReply, error) {
	var r StudyReply
	if err := c.call(ctx, verb, req, &r); err != nil {
		return nil, err
	}
	return &r, nil
}

// Cancel cancels a study or some of its trials.
func (c *Client) Cancel(ctx context.Context, req CancelRequest) (*CancelReply, error) {
	var r CancelReply
	return &r, c.call(ctx, VerbCancel, req, &r)
}

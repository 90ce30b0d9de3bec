package api

import (
	"encoding/json"
	"fmt"
	"time"

	"asymptote.dev/asymptote/internal/resource"
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
var Verbs = []string{VerbSubmit, VerbStatus, VerbResults, VerbCancel, VerbQuarantine, VerbResume, VerbDelete, VerbAllow, VerbHistory}

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
	// Team owns the study.
	Team string `json:"team"`
	// Submissions and Cancellations say who submitted and cancelled
	// the study, and when.
	Submissions   []Submission   `json:"submissions,omitempty"`
	Cancellations []Cancellation `json:"cancellations,omitempty"`
	// Quota says why the study's pending trials wait for its team's
	// quota, when they do.
	Quota string `json:"quota,omitempty"`
	// Counts maps each trial state to its number of trials.
	Counts map[string]int `json:"counts"`
	// Paused counts the succeeded trials that wait for a promotion that
	// may still continue them (counted under succeeded too).
	Paused int `json:"paused,omitempty"`
	// StaleAttempts counts attempts lost with their agents; LateResults
	// counts results that arrived for superseded attempts; Retries counts
	// attempts beyond the first.
	StaleAttempts int `json:"stale_attempts"`
	// PreemptedAttempts counts attempts given up on purpose (preempted,
	// drained); they used no retry.
	PreemptedAttempts int `json:"preempted_attempts,omitempty"`
	// Needs is what one trial of the study reserves on an agent, so a
	// provisioner counts only the waiting trials its agents could run.
	Needs *resource.Resources `json:"needs,omitempty"`
	// Checkpoints counts the checkpoints the study's trials keep and
	// their bytes; Resuming lists running attempts that resumed from one
	// (the first few), with the step each started after.
	Checkpoints     int              `json:"checkpoints,omitempty"`
	CheckpointBytes int64            `json:"checkpoint_bytes,omitempty"`
	CheckpointQuota int64            `json:"checkpoint_quota,omitempty"`
	Resuming        []ResumedAttempt `json:"resuming,omitempty"`
	LateResults     int              `json:"late_results"`
	Retries         int              `json:"retries"`
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

// Duration is a time.Duration that encodes as a Go duration string; the
// bus carries the same type.
type Duration time.Duration

// MarshalJSON encodes d as a string such as "1m30s".
func (d Duration) MarshalJSON() ([]byte, error) {
	return json.Marshal(time.Duration(d).String())
}

// UnmarshalJSON decodes a duration string or a number of nanoseconds.
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err == nil {
		v, err := time.ParseDuration(s)
		if err != nil {
			return err
		}
		*d = Duration(v)
		return nil
	}
	var n int64
	if err := json.Unmarshal(b, &n); err != nil {
		return fmt.Errorf("duration: want a string such as \"90s\", got %s", b)
	}
	*d = Duration(n)
	return nil
}

// RemoteError is an error the coordinator returned.
type RemoteError struct{ Msg string }

func (e *RemoteError) Error() string { return e.Msg }

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

// DecodeReply decodes the wire form of a reply into v, or returns the
// coordinator's error as a *RemoteError.
func DecodeReply(data []byte, v any) error {
	var env envelope
	if err := json.Unmarshal(data, &env); err != nil {
		return fmt.Errorf("malformed reply: %w", err)
	}
	if env.Error != "" {
		return &RemoteError{Msg: env.Error}
	}
	return json.Unmarshal(env.Data, v)
}

// ResumedAttempt is a running attempt that resumed from a checkpoint.
type ResumedAttempt struct {
	Trial     string `json:"trial"`
	Attempt   int    `json:"attempt"`
	Node      string `json:"node"`
	StartStep int64  `json:"start_step"`
}

// MaxResumedShown bounds StudyStatus.Resuming.
const MaxResumedShown = 10

// Package api defines the documents the coordinator keeps in etcd (studies,
// trials and their attempts, nodes) and the request and reply types of the
// client API that `asymptote submit`, `status`, `results`, `watch` and
// `cancel` use over NATS, together with a small client for it.
package api

import (
	"time"

	"asymptote.dev/asymptote/internal/resource"
	"asymptote.dev/asymptote/sweep"
)

// StudyState is the lifecycle of a study.
type StudyState string

// The study states.
const (
	// StudySubmitting means the spec is stored but not every trial is
	// written yet; a new leader finishes the expansion.
	StudySubmitting StudyState = "submitting"
	// StudyActive means trials are being scheduled.
	StudyActive StudyState = "active"
	// StudyDone means every trial reached a terminal state.
	StudyDone StudyState = "done"
	// StudyCancelled means a user cancelled the study.
	StudyCancelled StudyState = "cancelled"
	// StudyQuarantined means the leader stopped the study because one of
	// its records can never be written (too large, not encodable, or
	// corrupt in etcd), or an operator did; its reason is in status.
	// Nothing of it is scheduled or written until `asymptote study
	// resume` or `delete` (docs/operations.md). It is never stored in the
	// study's own record, only shown: the quarantine has its own record.
	StudyQuarantined StudyState = "quarantined"
)

// Running reports whether a study in this state is still being run:
// submitting or active.
func (s StudyState) Running() bool { return s == StudySubmitting || s == StudyActive }

// Orphan is a trial event the leader could not apply: its study or trial
// is unknown (never submitted, or deleted), or it came from another node
// than the one its attempt was dispatched to. It is kept, never dropped,
// and counted in status.
type Orphan struct {
	Study    string             `json:"study"`
	Trial    string             `json:"trial"`
	Attempt  int                `json:"attempt"`
	Node     string             `json:"node"`
	Outcome  string             `json:"outcome,omitempty"`
	Metrics  map[string]float64 `json:"metrics,omitempty"`
	Error    string             `json:"error,omitempty"`
	Reason   string             `json:"reason"`
	Received time.Time          `json:"received"`
}

// Quarantine is the stored record of a quarantined study, under its own
// key so that it lands even when the study's record cannot be written.
type Quarantine struct {
	Study  string    `json:"study"`
	Reason string    `json:"reason"`
	By     string    `json:"by"` // "leader" or "operator"
	Time   time.Time `json:"time"`
}

// Study is the stored record of a study.
type Study struct {
	Name     string     `json:"name"`
	State    StudyState `json:"state"`
	SpecFile string     `json:"spec_file"`
	// Spec is the YAML source of the latest submission.
	Spec     string `json:"spec"`
	SpecHash string `json:"spec_hash"`
	Method   string `json:"method"`
	// Objective is the metric the study optimises and its direction.
	Objective string `json:"objective"`
	Direction string `json:"direction"`
	Priority  int    `json:"priority"`
	Trials    int    `json:"trials"`
	// Team owns the study: only its identities and operators see and
	// touch it. Empty in a record written before teams existed, which
	// belongs to the default team (TeamOf).
	Team string `json:"team,omitempty"`
	// Submissions records every accepted submission of the study.
	Submissions []Submission `json:"submissions"`
	// Cancellations records the latest cancellations (MaxCancellations),
	// with who asked.
	Cancellations []Cancellation `json:"cancellations,omitempty"`
	Created       time.Time      `json:"created"`
	Updated       time.Time      `json:"updated"`
	Finished      *time.Time     `json:"finished,omitempty"`
	// Analysis is the current fit of the study's analysis plan, one per
	// group.
	Analysis []FitSummary `json:"analysis,omitempty"`
	// Extensions are the values the coordinator added to tuned axes, in
	// order; they apply on top of every submission of the spec.
	Extensions []Extension `json:"extensions,omitempty"`
	// Decisions log what an adaptive search decided and why.
	Decisions []Decision `json:"decisions,omitempty"`
}

// Decision is one step of an adaptive search.
type Decision struct {
	Time   time.Time `json:"time"`
	Reason string    `json:"reason"`
	// Added counts the trials it added; Stopped names the trials whose
	// configurations it did not take further.
	Added   int      `json:"added"`
	Stopped []string `json:"stopped,omitempty"`
}

// Submission is one accepted submission of a study's spec.
type Submission struct {
	SpecHash string    `json:"spec_hash"`
	Time     time.Time `json:"time"`
	Added    int       `json:"added"`
	Total    int       `json:"total"`
	// By is the identity that submitted, as the request's subject named
	// it ("anonymous" on an open bus); empty for an addition the
	// coordinator made itself, and in records from before it was kept.
	By string `json:"by,omitempty"`
}

// Cancellation is one accepted cancel request of a study or of some of
// its trials.
type Cancellation struct {
	Time time.Time `json:"time"`
	// By is the identity that cancelled, as the request's subject named
	// it ("anonymous" on an open bus).
	By string `json:"by"`
	// Trials counts the trials it cancelled; Whole is true when it
	// cancelled the study.
	Trials int    `json:"trials"`
	Whole  bool   `json:"whole,omitempty"`
	Reason string `json:"reason,omitempty"`
}

// MaxCancellations bounds Study.Cancellations: the oldest go first.
const MaxCancellations = 50

// DefaultTeam is the team of a study recorded without one
// (internal/bus.DefaultTeam, kept equal by a test).
const DefaultTeam = "default"

// TeamOf returns the team that owns the study.
func (s *Study) TeamOf() string {
	if s.Team == "" {
		return DefaultTeam
	}
	return s.Team
}

// AttemptState is the state of one attempt of a trial; sweep defines the
// states and what each means. Stale is kept apart from Failed: a stale
// attempt was lost with its agent and says nothing about the method.
type AttemptState = sweep.AttemptState

// The attempt states, as stored.
const (
	AttemptDispatched = sweep.AttemptDispatched
	AttemptRunning    = sweep.AttemptRunning
	AttemptSucceeded  = sweep.AttemptSucceeded
	AttemptFailed     = sweep.AttemptFailed
	AttemptInvalid    = sweep.AttemptInvalid
	AttemptTimedOut   = sweep.AttemptTimedOut
	AttemptCancelled  = sweep.AttemptCancelled
	AttemptStale      = sweep.AttemptStale
	AttemptPreempted  = sweep.AttemptPreempted
)

// Attempt is one try at a trial.
type Attempt struct {
	N          int          `json:"n"`
	Node       string       `json:"node"`
	State      AttemptState `json:"state"`
	GPUs       []int        `json:"gpus,omitempty"`
	Dispatched time.Time    `json:"dispatched"`
	Started    *time.Time   `json:"started,omitempty"`
	Ended      *time.Time   `json:"ended,omitempty"`
	Error      string       `json:"error,omitempty"`
	// StartStep is the step the attempt resumed after (0: it started
	// from scratch); Resume says from which checkpoint, and why an
	// earlier one was passed over.
	StartStep int64  `json:"start_step,omitempty"`
	Resume    string `json:"resume,omitempty"`
	// Notes say what happened to the attempt's checkpoints that were not
	// kept (over the study's quota, from an attempt no longer current).
	Notes []string `json:"notes,omitempty"`
}

// MaxAttemptNotes bounds an attempt's notes.
const MaxAttemptNotes = 8

// Checkpoint is the record of one stored checkpoint of a trial: where it
// is, what it holds, and the metrics the method reported with its step
// (tokens and FLOPs so far among them, where the method reports them).
// The bytes live in the checkpoint store; etcd keeps only this.
type Checkpoint struct {
	Attempt int    `json:"attempt"`
	Step    int64  `json:"step"`
	Node    string `json:"node,omitempty"`
	// Key, Size and SHA256 locate and verify the bytes in the store.
	Key    string `json:"key"`
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256"`
	// Metrics are the finite values reported with the step; NonFinite the
	// others, as in Result.
	Metrics   map[string]float64 `json:"metrics,omitempty"`
	NonFinite map[string]string  `json:"non_finite,omitempty"`
	Time      time.Time          `json:"time"`
}

// Continuation is where a promoted trial starts: the last checkpoint of
// the same configuration at the rung below, instead of step 0.
type Continuation struct {
	// Trial is the lower-rung trial; Checkpoint its checkpoint (the
	// record stays in that trial, which keeps the blob until this trial
	// ends).
	Trial      string     `json:"trial"`
	Checkpoint Checkpoint `json:"checkpoint"`
	// Resumed is whether the trial's latest attempt started from it (or
	// from a checkpoint of its own after it): the compute before the
	// checkpoint was then spent, and counted, in Trial.
	Resumed bool `json:"resumed,omitempty"`
	// Dropped says why the trial stopped continuing and starts from
	// scratch (an attempt that started from the checkpoint failed).
	Dropped string `json:"dropped,omitempty"`
}

// Result is the one recorded result of a trial.
type Result struct {
	Attempt   int                `json:"attempt"`
	Node      string             `json:"node"`
	Objective *float64           `json:"objective,omitempty"`
	Metrics   map[string]float64 `json:"metrics"`
	// NonFinite holds the metrics that were NaN or infinite, as "NaN",
	// "+Inf" or "-Inf": JSON has no such numbers.
	NonFinite map[string]string `json:"non_finite,omitempty"`
	// MethodVersion is the version of the method that produced the
	// result, as it reported itself (empty if its agent could not tell).
	MethodVersion string    `json:"method_version,omitempty"`
	Recorded      time.Time `json:"recorded"`
	Duration      float64   `json:"duration_s"`
}

// LateResult is an outcome that arrived for an attempt that was no longer
// current. It is kept for the record and never replaces the trial's state.
type LateResult struct {
	Attempt  int                `json:"attempt"`
	Node     string             `json:"node"`
	Outcome  string             `json:"outcome"`
	Metrics  map[string]float64 `json:"metrics,omitempty"`
	Error    string             `json:"error,omitempty"`
	Received time.Time          `json:"received"`
}

// MaxLate bounds how many late results a trial keeps.
const MaxLate = 8

// Trial is the stored record of one trial: one etcd key each.
type Trial struct {
	ID            string         `json:"id"`
	Study         string         `json:"study"`
	Index         int            `json:"index"`
	Method        string         `json:"method"`
	MethodVersion string         `json:"method_version,omitempty"`
	Params        map[string]any `json:"params"`
	Seed          int64          `json:"seed"`
	// Bracket is the trial's Hyperband bracket (from 1), part of its
	// identity; 0 without brackets.
	Bracket int         `json:"bracket,omitempty"`
	State   sweep.State `json:"state"`
	// Attempt is the current attempt's number (0 before the first).
	Attempt int `json:"attempt"`
	// Failures counts attempts the method failed; Stale counts attempts
	// lost with their agent.
	Failures int `json:"failures"`
	Stale    int `json:"stale"`
	// Preempted counts attempts given up on purpose (preempted,
	// drained, or asked to run again by the method).
	Preempted int       `json:"preempted,omitempty"`
	Attempts  []Attempt `json:"attempts,omitempty"`
	// Checkpoints are the trial's kept checkpoints, oldest first; a new
	// attempt resumes from the latest that verifies.
	Checkpoints []Checkpoint `json:"checkpoints,omitempty"`
	// From is set on a trial promoted by a search that continues: the
	// lower-rung trial it continues and the checkpoint it resumes from.
	From *Continuation `json:"from,omitempty"`
	// NotBefore delays the next attempt (retry backoff).
	NotBefore *time.Time   `json:"not_before,omitempty"`
	Result    *Result      `json:"result,omitempty"`
	Late      []LateResult `json:"late,omitempty"`
	// Rungs are the objective values the trial reported as it passed an
	// early-stopping search's rungs.
	Rungs []Rung `json:"rungs,omitempty"`
	// Error explains a failed or cancelled trial.
	Error   string    `json:"error,omitempty"`
	Created time.Time `json:"created"`
	Updated time.Time `json:"updated"`
	// Paused is set in answers (results, status), never in the stored
	// record: the trial succeeded at its rung and keeps its checkpoint,
	// holding no slot, for a promotion that may still continue it.
	Paused bool `json:"paused,omitempty"`
}

// Shown is the state to show for the trial: "paused" for a paused one,
// else its state.
func (t *Trial) Shown() string {
	if t.Paused {
		return "paused"
	}
	return string(t.State)
}

// Current returns the current attempt, or nil before the first.
func (t *Trial) Current() *Attempt {
	if t.Attempt == 0 || len(t.Attempts) == 0 {
		return nil
	}
	a := &t.Attempts[len(t.Attempts)-1]
	if a.N != t.Attempt {
		return nil
	}
	return a
}

// NodeState is the coordinator's view of an agent.
type NodeState string

// The node states.
const (
	NodeAlive NodeState = "alive"
	NodeDead  NodeState = "dead"
)

// Node is the stored record of an agent host.
type Node struct {
	ID       string    `json:"id"`
	State    NodeState `json:"state"`
	Boot     string    `json:"boot"`
	CPU      float64   `json:"cpu"`
	Memory   int64     `json:"memory"`
	GPUs     []GPU     `json:"gpus,omitempty"`
	Methods  []string  `json:"methods,omitempty"`
	Joined   time.Time `json:"joined"`
	LastSeen time.Time `json:"last_seen"`
	// DeadSince is when the node missed its heartbeat grace period.
	DeadSince *time.Time `json:"dead_since,omitempty"`
}

// GPU describes one GPU of a node, as its agent's heartbeat reported it.
type GPU = resource.GPU

// FitSummary is the current fit of a study's analysis plan for one group,
// kept in the study record and refreshed as results arrive.
type FitSummary struct {
	// Group is the value of the plan's group parameter ("" without one).
	Group string `json:"group,omitempty"`
	Law   string `json:"law"`
	X     string `json:"x"`
	// Points is the number of points fitted (best runs), Trials the
	// succeeded trials they were chosen from.
	Points int        `json:"points"`
	Trials int        `json:"trials"`
	Params []FitParam `json:"params,omitempty"`
	Agree  int        `json:"agree"`
	Starts int        `json:"starts"`
	// R2 is nil where it is not a number: over points whose objective
	// does not vary, R² divides by zero.
	R2     *float64      `json:"r2,omitempty"`
	Error  string        `json:"error,omitempty"`
	Notes  []string      `json:"warnings,omitempty"`
	Uncert []Uncertified `json:"uncertified,omitempty"`
	Time   time.Time     `json:"time"`
}

// FitParam is one fitted parameter with its bootstrap interval. A bound
// that is not a finite number is left out (nil).
type FitParam struct {
	Name  string   `json:"name"`
	Value float64  `json:"value"`
	Lo    *float64 `json:"lo,omitempty"`
	Hi    *float64 `json:"hi,omitempty"`
}

// Uncertified flags a point whose best run does not beat all of its
// one-step neighbours on the tuned parameters, because a neighbour has not
// run (or succeeded) or because the best sits on the edge of the grid.
type Uncertified struct {
	X      float64 `json:"x"`
	Seed   int64   `json:"seed"`
	Trial  string  `json:"trial"`
	Reason string  `json:"reason"`
	// Edges lists the tuned axes on whose first or last value the best run
	// sits while its inner neighbour has a result: only a value past the
	// edge can certify it.
	Edges []Edge `json:"edges,omitempty"`
}

// Edge names one edge of a grid axis.
type Edge struct {
	Axis string `json:"axis"`
	Last bool   `json:"last"`
}

// Extension records a value the coordinator added to a tuned axis because
// a best run sat on the grid's edge.
type Extension struct {
	// By names what added the value: "edge" (an analysis plan's extend),
	// or the search that did ("degradation", "asymptote", "crossover").
	By    string  `json:"by"`
	Axis  string  `json:"axis"`
	Value float64 `json:"value"`
	// Last is true for a value past the axis's largest, false for one
	// below its smallest.
	Last   bool      `json:"last"`
	Reason string    `json:"reason"`
	Time   time.Time `json:"time"`
}

// Rung is a trial's objective when it first reported a fidelity at or past
// an early-stopping rung.
type Rung struct {
	Rung     float64 `json:"rung"`
	Fidelity float64 `json:"fidelity"`
	Value    float64 `json:"value"`
}

// Package bus defines how the coordinator, the agents and the client
// commands talk over NATS: the subjects, the JetStream stream that carries
// trial events durably, and the messages themselves.
//
// Messages are JSON documents. Every message is validated when decoded, so a
// malformed or hostile message is rejected with an error naming the field
// instead of corrupting state.
package bus

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"path/filepath"
	"strings"
	"time"

	"asymptote.dev/asymptote/internal/api"
	"asymptote.dev/asymptote/internal/resource"
	"asymptote.dev/asymptote/sweep"
)

// Resources are what a host offers or a trial asks for (see
// resource.Resources).
type Resources = resource.Resources

// GPU describes one accelerator of a host.
type GPU = resource.GPU

// AttemptRef names one attempt of one trial.
type AttemptRef struct {
	Study   string `json:"study"`
	Trial   string `json:"trial"`
	Attempt int    `json:"attempt"`
}

func (r AttemptRef) String() string { return fmt.Sprintf("%s/%s#%d", r.Study, r.Trial, r.Attempt) }

func (r AttemptRef) validate() error {
	var errs []error
	if r.Study == "" {
		errs = append(errs, errors.New("study: empty"))
	}
	if r.Trial == "" {
		errs = append(errs, errors.New("trial: empty"))
	}
	if r.Attempt < 1 {
		errs = append(errs, fmt.Errorf("attempt: %d, want at least 1", r.Attempt))
	}
	return errors.Join(errs...)
}

// Dispatch asks an agent to run one attempt of a trial. It is sent as a
// request; the agent answers with a DispatchReply.
type Dispatch struct {
	AttemptRef
	Method        string         `json:"method"`
	MethodVersion string         `json:"method_version,omitempty"`
	Params        map[string]any `json:"params"`
	Seed          int64          `json:"seed"`
	// Threads is the CPU thread budget granted to the trial.
	Threads int `json:"threads"`
	// GPUs are the indices of the host GPUs assigned to the trial.
	GPUs []int `json:"gpus,omitempty"`
	// Resources are what the trial reserved on the node.
	Resources Resources `json:"resources"`
	// Timeout bounds the attempt; zero means none.
	Timeout Duration `json:"timeout"`
	// Leader names the coordinator that sent it (for logs).
	Leader string `json:"leader,omitempty"`
	// Config is the study's configuration of the method, a JSON object
	// (sweep.MethodConfig: the command method's command section); empty
	// for none.
	Config json.RawMessage `json:"config,omitempty"`
	// Resume lists the trial's checkpoints, latest first: the attempt
	// resumes from the first one that downloads and verifies, and from
	// scratch when none does.
	Resume []Checkpoint `json:"resume,omitempty"`
}

// Checkpoint is the record of a stored checkpoint (api.Checkpoint).
type Checkpoint = api.Checkpoint

// MaxResume bounds a dispatch's checkpoints: a trial keeps no more.
const MaxResume = sweep.MaxCheckpointKeep

// maxCheckpointKey is the longest key the checkpoint store accepts.
const maxCheckpointKey = 512

func validCheckpoint(c *Checkpoint) error {
	var errs []error
	if c.Step < 1 {
		errs = append(errs, fmt.Errorf("step: %d, want at least 1", c.Step))
	}
	if c.Attempt < 1 {
		errs = append(errs, fmt.Errorf("attempt: %d, want at least 1", c.Attempt))
	}
	// The store checks a key's characters and segments when it is used;
	// the bus checks only its shape, since importing the store's rule here
	// would make the store's own tests import themselves.
	switch {
	case c.Key == "":
		errs = append(errs, errors.New("key: empty; want <study>/<trial>/<attempt>-<step>"))
	case len(c.Key) > maxCheckpointKey:
		errs = append(errs, fmt.Errorf("key: %d bytes, over the limit of %d", len(c.Key), maxCheckpointKey))
	}
	if c.Size < 0 {
		errs = append(errs, errors.New("size: negative"))
	}
	if len(c.SHA256) != 64 {
		errs = append(errs, fmt.Errorf("sha256: %d characters, want 64 hex digits", len(c.SHA256)))
	}
	errs = append(errs, checkReported(c.Metrics, c.NonFinite))
	return errors.Join(errs...)
}

func (d *Dispatch) validate() error {
	errs := []error{d.AttemptRef.validate()}
	if d.Method == "" {
		errs = append(errs, errors.New("method: empty"))
	}
	if d.Threads < 1 {
		errs = append(errs, fmt.Errorf("threads: %d, want at least 1", d.Threads))
	}
	if d.Timeout < 0 {
		errs = append(errs, errors.New("timeout: negative"))
	}
	if len(d.Config) > maxConfigBytes {
		errs = append(errs, fmt.Errorf("config: %d bytes, over the limit of %d", len(d.Config), maxConfigBytes))
	}
	if len(d.Resume) > MaxResume {
		errs = append(errs, fmt.Errorf("resume: %d checkpoints, over the limit of %d", len(d.Resume), MaxResume))
	}
	for i := range d.Resume {
		if err := validCheckpoint(&d.Resume[i]); err != nil {
			errs = append(errs, fmt.Errorf("resume[%d]: %w", i, err))
		}
	}
	return errors.Join(errs...)
}

// DispatchReply answers a Dispatch.
type DispatchReply struct {
	// Accepted is true when the agent runs (or already runs) the attempt.
	Accepted bool `json:"accepted"`
	// Reason says why it was refused.
	Reason string `json:"reason,omitempty"`
}

func (*DispatchReply) validate() error { return nil }

// DispatchBatch carries the attempts a leader sends one node in one turn
// of its loop, as a request on the node's DispatchSubject: one message
// for a hundred trials ending together, not a hundred.
type DispatchBatch struct {
	Dispatches []Dispatch `json:"dispatches"`
}

// MaxDispatchBatch bounds a batch, keeping its message far below NATS's
// default 1 MB payload limit.
const MaxDispatchBatch = 256

func (b *DispatchBatch) validate() error {
	if len(b.Dispatches) == 0 || len(b.Dispatches) > MaxDispatchBatch {
		return fmt.Errorf("dispatches: %d, want 1 to %d", len(b.Dispatches), MaxDispatchBatch)
	}
	var errs []error
	for i := range b.Dispatches {
		if err := b.Dispatches[i].validate(); err != nil {
			errs = append(errs, fmt.Errorf("dispatches[%d]: %w", i, err))
		}
	}
	return errors.Join(errs...)
}

// DispatchBatchReply answers a DispatchBatch, one reply per dispatch in
// the batch's order.
type DispatchBatchReply struct {
	Replies []DispatchReply `json:"replies"`
}

func (*DispatchBatchReply) validate() error { return nil }

// Heartbeat is an agent's periodic liveness report, sent as a request to
// the leader. It carries the node's resources, so a heartbeat also
// registers a new node.
type Heartbeat struct {
	Node string `json:"node"`
	// Boot identifies the agent process; a new value means the agent
	// restarted and runs none of the attempts its predecessor ran.
	Boot      string       `json:"boot"`
	Resources Resources    `json:"resources"`
	Running   []AttemptRef `json:"running"`
	Methods   []string     `json:"methods,omitempty"`
	Sent      time.Time    `json:"sent"`
	// Draining agents accept no new work.
	Draining bool `json:"draining,omitempty"`
	// Queue is how far beyond Resources the agent accepts attempts that
	// wait on it for a running one to end, as a multiple of its CPU and
	// memory (0: none).
	Queue float64 `json:"queue,omitempty"`
	// Allow is the version of the cluster's allowlist the agent holds
	// (api.Allowlist.Version; "" for none).
	Allow string `json:"allow,omitempty"`
}

func (h *Heartbeat) validate() error {
	var errs []error
	if h.Node == "" {
		errs = append(errs, errors.New("node: empty"))
	}
	if h.Resources.CPU < 0 || h.Resources.Memory < 0 {
		errs = append(errs, errors.New("resources: negative"))
	}
	if h.Queue < 0 || math.IsNaN(h.Queue) || math.IsInf(h.Queue, 0) {
		errs = append(errs, fmt.Errorf("queue: %g, want a finite number of at least 0", h.Queue))
	}
	if math.IsNaN(h.Resources.CPU) || math.IsInf(h.Resources.CPU, 0) {
		errs = append(errs, errors.New("resources.cpu: not a finite number"))
	}
	// A node's record holds its GPUs and methods: bounded, so a hostile
	// heartbeat cannot make a record etcd refuses.
	if n := len(h.Resources.GPUs); n > MaxGPUs {
		errs = append(errs, fmt.Errorf("resources.gpus: %d, over the limit of %d", n, MaxGPUs))
	}
	if n := len(h.Methods); n > MaxMethods {
		errs = append(errs, fmt.Errorf("methods: %d, over the limit of %d", n, MaxMethods))
	}
	for i, r := range h.Running {
		if err := r.validate(); err != nil {
			errs = append(errs, fmt.Errorf("running[%d]: %w", i, err))
		}
	}
	if len(h.Allow) > 64 {
		errs = append(errs, fmt.Errorf("allow: a version of %d characters, over 64", len(h.Allow)))
	}
	return errors.Join(errs...)
}

// MaxAfter bounds an event's After list.
const MaxAfter = 16

// Bounds on what a heartbeat may list.
const (
	MaxGPUs    = 256
	MaxMethods = 1024
)

// HeartbeatReply tells an agent which of its attempts to stop.
type HeartbeatReply struct {
	Leader string       `json:"leader"`
	Cancel []AttemptRef `json:"cancel,omitempty"`
	// Allow is the cluster's allowlist, sent when the heartbeat's version
	// differs from the leader's: the agent replaces the one it holds.
	Allow *Allowlist `json:"allow,omitempty"`
}

// Allowlist is the cluster's allowlist as an agent needs it.
type Allowlist struct {
	Version string `json:"version"`
	api.AllowHashes
}

func (r *HeartbeatReply) validate() error {
	if r.Allow == nil {
		return nil
	}
	var errs []error
	for n, h := range r.Allow.Methods {
		if err := api.CheckMethodName(n); err != nil {
			errs = append(errs, fmt.Errorf("allow.methods: %w", err))
		}
		if !isSHA256(h) {
			errs = append(errs, fmt.Errorf("allow.methods[%q]: %q is not a hex SHA-256", n, h))
		}
	}
	for p, h := range r.Allow.Programs {
		if !filepath.IsAbs(p) {
			errs = append(errs, fmt.Errorf("allow.programs: %q is not an absolute path", p))
		}
		if !isSHA256(h) {
			errs = append(errs, fmt.Errorf("allow.programs[%q]: %q is not a hex SHA-256", p, h))
		}
	}
	return errors.Join(errs...)
}

func isSHA256(h string) bool {
	b, err := hex.DecodeString(h)
	return err == nil && len(b) == sha256.Size
}

// Cancel tells an agent to stop attempts (published on the node's cancel
// subject).
type Cancel struct {
	Attempts []AttemptRef `json:"attempts"`
	Reason   string       `json:"reason"`
}

func (c *Cancel) validate() error {
	var errs []error
	for i, r := range c.Attempts {
		if err := r.validate(); err != nil {
			errs = append(errs, fmt.Errorf("attempts[%d]: %w", i, err))
		}
	}
	return errors.Join(errs...)
}

// EventKind distinguishes the trial events.
type EventKind string

// The event kinds.
const (
	// EventStarted reports that the method began running the attempt. It
	// goes out on core NATS (StartedSubject), not JetStream: it changes
	// only what status shows, and a finished event may overtake it.
	EventStarted EventKind = "started"
	// EventFinished reports the attempt's outcome, durably (EventSubject).
	EventFinished EventKind = "finished"
	// EventCheckpoint reports a checkpoint the agent stored, durably
	// (EventSubject), before the attempt's finished event.
	EventCheckpoint EventKind = "checkpoint"
)

// Outcome is how an attempt ended on the agent.
type Outcome string

// The attempt outcomes an agent reports.
const (
	OutcomeSucceeded Outcome = "succeeded"
	// OutcomeFailed is a method failure (an error, a crash, a protocol
	// violation); it counts against the study's retry limit.
	OutcomeFailed Outcome = "failed"
	// OutcomeInvalid is a method's refusal of its parameters; retrying
	// cannot help.
	OutcomeInvalid Outcome = "invalid"
	// OutcomeTimedOut means the attempt ran past the trial's timeout.
	OutcomeTimedOut Outcome = "timed_out"
	// OutcomeCancelled means the attempt was stopped on request.
	OutcomeCancelled Outcome = "cancelled"
	// OutcomeLost means the agent gave the attempt up through no fault of
	// the method (for example it shut down); the attempt is stale.
	OutcomeLost Outcome = "lost"
	// OutcomePreempted means the attempt was given up on purpose: the
	// agent was asked to leave (SIGTERM, a drain) or the method asked to
	// run again. It runs again first, using no retry.
	OutcomePreempted Outcome = "preempted"
)

// Limits on what a method may report, checked by the agent (which fails
// the attempt with a clear error) and again on decode (so a hostile
// message is refused). docs/spec.md lists them.
const (
	// MaxMetrics bounds the metrics in one result or one report.
	MaxMetrics = 256
	// MaxMetricName bounds a metric's name, in bytes.
	MaxMetricName = 128
	// MaxErrorBytes bounds an attempt's error text; a longer one keeps its
	// head and its tail.
	MaxErrorBytes = 4096
)

// maxConfigBytes bounds a dispatch's method configuration: a batch of
// MaxDispatchBatch of them must stay far below a message's 1 MB limit.
// sweep.MaxCommandBytes keeps a spec's command section below it.
const maxConfigBytes = 4 << 10

// NonFinite values: JSON has no NaN or infinity, so a metric that is not a
// finite number travels, and is stored, as one of these strings in a
// message's non_finite map, beside the finite metrics.
const (
	NaN    = "NaN"
	PosInf = "+Inf"
	NegInf = "-Inf"
)

// SplitFinite splits metrics into the finite values and the names of the
// others with NaN, PosInf or NegInf. Either result is nil when empty.
func SplitFinite(m map[string]float64) (finite map[string]float64, nonFinite map[string]string) {
	for k, v := range m {
		var word string
		switch {
		case math.IsNaN(v):
			word = NaN
		case math.IsInf(v, 1):
			word = PosInf
		case math.IsInf(v, -1):
			word = NegInf
		default:
			if finite == nil {
				finite = make(map[string]float64, len(m))
			}
			finite[k] = v
			continue
		}
		if nonFinite == nil {
			nonFinite = map[string]string{}
		}
		nonFinite[k] = word
	}
	return finite, nonFinite
}

// CheckMetrics checks a method's metrics against MaxMetrics and
// MaxMetricName; the error says which limit and how far over.
func CheckMetrics(m map[string]float64) error {
	if len(m) > MaxMetrics {
		return fmt.Errorf("%d metrics, over the limit of %d per result or report; report fewer (log the rest to a file)", len(m), MaxMetrics)
	}
	for k := range m {
		if err := checkMetricName(k); err != nil {
			return err
		}
	}
	return nil
}

func checkMetricName(k string) error {
	if k == "" {
		return errors.New("a metric with an empty name")
	}
	if len(k) > MaxMetricName {
		return fmt.Errorf("metric %.32q... has a %d-byte name, over the limit of %d", k, len(k), MaxMetricName)
	}
	return nil
}

func checkReported(finite map[string]float64, nonFinite map[string]string) error {
	if n := len(finite) + len(nonFinite); n > MaxMetrics {
		return fmt.Errorf("metrics: %d, over the limit of %d", n, MaxMetrics)
	}
	for k := range finite {
		if err := checkMetricName(k); err != nil {
			return fmt.Errorf("metrics: %w", err)
		}
	}
	for k, v := range nonFinite {
		if err := checkMetricName(k); err != nil {
			return fmt.Errorf("non_finite: %w", err)
		}
		if v != NaN && v != PosInf && v != NegInf {
			return fmt.Errorf("non_finite: %q: %q is not %s, %s or %s", k, v, NaN, PosInf, NegInf)
		}
	}
	return nil
}

// Clip shortens s to at most n bytes, keeping its head and its tail (where
// a stack trace ends) around a marker.
func Clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	const mark = "\n[... %d bytes cut ...]\n"
	head := n / 4
	tail := n - head - len(mark) - 8
	cut := len(s) - head - tail
	return strings.ToValidUTF8(s[:head]+fmt.Sprintf(mark, cut)+s[len(s)-tail:], "")
}

// Event is a durable trial event, published to JetStream by the agent and
// consumed by the leader. Its message ID makes republishing idempotent.
type Event struct {
	AttemptRef
	Kind    EventKind          `json:"kind"`
	Node    string             `json:"node"`
	Time    time.Time          `json:"time"`
	Outcome Outcome            `json:"outcome,omitempty"`
	Metrics map[string]float64 `json:"metrics,omitempty"`
	// NonFinite holds the metrics that are NaN or infinite (NaN, PosInf,
	// NegInf), which JSON cannot carry as numbers.
	NonFinite map[string]string `json:"non_finite,omitempty"`
	Error     string            `json:"error,omitempty"`
	// After, on a started event, names the attempts that ended on the
	// agent and freed the resources this one took: their outcomes are on
	// their way (JetStream), and may arrive after this event (core NATS).
	// The leader counts them as finishing, not running, meanwhile.
	After []AttemptRef `json:"after,omitempty"`
	// MethodVersion is the version the method reported of itself (its
	// Info) when it ran the attempt; empty when the agent could not tell.
	MethodVersion string `json:"method_version,omitempty"`
	// Duration is the attempt's run time on the agent.
	Duration Duration `json:"duration,omitempty"`
	// StartStep, on started and finished events, is the step the
	// attempt resumed after (0: from scratch); Resume says from which
	// checkpoint, and why any later one was passed over.
	StartStep int64  `json:"start_step,omitempty"`
	Resume    string `json:"resume,omitempty"`
	// Checkpoint is the checkpoint a checkpoint event reports.
	Checkpoint *Checkpoint `json:"checkpoint,omitempty"`
}

// MsgID is the JetStream de-duplication ID of the event.
func (e *Event) MsgID() string {
	if e.Kind == EventCheckpoint && e.Checkpoint != nil {
		return fmt.Sprintf("%s/%s/%d/%s/%d", e.Study, e.Trial, e.Attempt, e.Kind, e.Checkpoint.Step)
	}
	return fmt.Sprintf("%s/%s/%d/%s", e.Study, e.Trial, e.Attempt, e.Kind)
}

func (e *Event) validate() error {
	errs := []error{e.AttemptRef.validate()}
	switch e.Kind {
	case EventStarted:
	case EventCheckpoint:
		if e.Checkpoint == nil {
			errs = append(errs, errors.New("checkpoint: missing from a checkpoint event"))
		} else if err := validCheckpoint(e.Checkpoint); err != nil {
			errs = append(errs, fmt.Errorf("checkpoint: %w", err))
		} else if e.Checkpoint.Attempt != e.Attempt {
			errs = append(errs, fmt.Errorf("checkpoint: attempt %d, but the event is of attempt %d", e.Checkpoint.Attempt, e.Attempt))
		}
	case EventFinished:
		switch e.Outcome {
		case OutcomeSucceeded, OutcomeFailed, OutcomeInvalid, OutcomeTimedOut, OutcomeCancelled, OutcomeLost, OutcomePreempted:
		default:
			errs = append(errs, fmt.Errorf("outcome: %q is not one of succeeded, failed, invalid, timed_out, cancelled, lost, preempted", e.Outcome))
		}
	default:
		errs = append(errs, fmt.Errorf("kind: %q is not started, checkpoint or finished", e.Kind))
	}
	if e.Node == "" {
		errs = append(errs, errors.New("node: empty"))
	}
	if e.StartStep < 0 {
		errs = append(errs, errors.New("start_step: negative"))
	}
	if len(e.Resume) > MaxErrorBytes {
		errs = append(errs, fmt.Errorf("resume: %d bytes, over the limit of %d", len(e.Resume), MaxErrorBytes))
	}
	errs = append(errs, checkReported(e.Metrics, e.NonFinite))
	if len(e.After) > MaxAfter {
		errs = append(errs, fmt.Errorf("after: %d attempts, over the limit of %d", len(e.After), MaxAfter))
	}
	for i, r := range e.After {
		if err := r.validate(); err != nil {
			errs = append(errs, fmt.Errorf("after[%d]: %w", i, err))
		}
	}
	return errors.Join(errs...)
}

// MetricsReport is one step's metrics of a running attempt, published on
// core NATS for live viewers; it is not durable.
type MetricsReport struct {
	AttemptRef
	// Seq numbers an attempt's reports from 1 (0 from an older agent).
	Seq int64 `json:"seq,omitempty"`
	// Time is when the agent received the report.
	Time   time.Time          `json:"time,omitzero"`
	Step   int64              `json:"step"`
	Values map[string]float64 `json:"values"`
	// NonFinite holds the values that are NaN or infinite, as in Event.
	NonFinite map[string]string `json:"non_finite,omitempty"`
	// Checkpoint marks the report a checkpoint was saved with: its values
	// are the anytime record of the trial at that step.
	Checkpoint bool `json:"checkpoint,omitempty"`
}

func (m *MetricsReport) validate() error {
	return errors.Join(m.AttemptRef.validate(), checkReported(m.Values, m.NonFinite))
}

// Duration is a time.Duration that encodes as a Go duration string: the
// same type as the client API's (api.Duration).
type Duration = api.Duration

// DrainReply is an agent's answer to a drain request: it stops taking
// work, and Preempted attempts are given up and reported preempted as it
// exits.
type DrainReply struct {
	Node      string `json:"node"`
	Preempted int    `json:"preempted"`
}

func (r *DrainReply) validate() error { return ValidToken(r.Node) }

// validator is implemented by every message type.
type validator interface{ validate() error }

// Encode returns the JSON encoding of m.
func Encode(m any) []byte {
	b, err := json.Marshal(m)
	if err != nil {
		// Every message type is plain data; failing to encode one is a
		// programming error.
		panic(fmt.Sprintf("bus: encode %T: %v", m, err))
	}
	return b
}

// Decode parses data into m and validates it. The error names the message
// type and the offending field.
func Decode(data []byte, m validator) error {
	if err := json.Unmarshal(data, m); err != nil {
		return fmt.Errorf("bus: decode %T: %w", m, err)
	}
	if err := m.validate(); err != nil {
		return fmt.Errorf("bus: invalid %T: %w", m, err)
	}
	return nil
}

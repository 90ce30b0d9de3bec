package sweep

import (
	"errors"
	"fmt"
	"strings"
)

// State is the lifecycle state of a trial.
type State string

// The trial states. A trial moves pending → dispatched → running → one of
// the terminal states; a failed or stale attempt sends it back to pending
// while retries remain.
const (
	// Pending means the trial waits to be dispatched.
	Pending State = "pending"
	// Dispatched means an attempt was sent to an agent, which has not yet
	// reported it running.
	Dispatched State = "dispatched"
	// Running means an agent reported the attempt running.
	Running State = "running"
	// Succeeded means an attempt reported a result. Terminal.
	Succeeded State = "succeeded"
	// Failed means the trial used up its retries, or its parameters were
	// rejected. Terminal.
	Failed State = "failed"
	// Cancelled means a user or a study cancellation stopped it. Terminal.
	Cancelled State = "cancelled"
)

// States lists every trial state, in lifecycle order.
var States = []State{Pending, Dispatched, Running, Succeeded, Failed, Cancelled}

var (
	// ErrTransition is matched, with errors.Is, by every error Transition
	// returns.
	ErrTransition = errors.New("invalid trial state transition")
	// ErrTerminal is matched by Transition errors whose from state is
	// terminal: such a trial never changes again.
	ErrTerminal = errors.New("trial state is terminal")
)

// transitions is the table of allowed moves. A result may arrive before
// the running event, hence dispatched → succeeded and failed.
var transitions = map[State][]State{
	Pending:    {Dispatched, Cancelled},
	Dispatched: {Running, Succeeded, Failed, Pending, Cancelled},
	Running:    {Succeeded, Failed, Pending, Cancelled},
}

// Terminal reports whether s is a final state: succeeded, failed or
// cancelled.
func (s State) Terminal() bool {
	return s == Succeeded || s == Failed || s == Cancelled
}

// Valid reports whether s is one of States.
func (s State) Valid() bool {
	_, ok := transitions[s]
	return ok || s.Terminal()
}

// TransitionError reports a move the trial state machine does not allow.
// It matches ErrTransition, and ErrTerminal when From is terminal.
type TransitionError struct {
	From, To State
}

// Error names both states and the moves From allows.
func (e *TransitionError) Error() string {
	switch {
	case !e.From.Valid() || !e.To.Valid():
		return fmt.Sprintf("trial state %s -> %s: unknown state; states are %s", e.From, e.To, joinStates(States))
	case e.From.Terminal():
		return fmt.Sprintf("trial state %s -> %s: %s is terminal and never changes", e.From, e.To, e.From)
	}
	return fmt.Sprintf("trial state %s -> %s: not allowed; from %s a trial may move to %s", e.From, e.To, e.From, joinStates(transitions[e.From]))
}

// Is lets errors.Is match ErrTransition, and ErrTerminal for a terminal
// from state.
func (e *TransitionError) Is(target error) bool {
	return target == ErrTransition || (target == ErrTerminal && e.From.Terminal())
}

// Transition checks that a trial may move from one state to another. It is
// pure; callers apply the move with a compare-and-set. Staying in the same
// state is not a transition and is an error: compare first to make a replay
// idempotent. Errors are *TransitionError.
func Transition(from, to State) error {
	for _, s := range transitions[from] {
		if s == to {
			return nil
		}
	}
	return &TransitionError{From: from, To: to}
}

func joinStates[S ~string](states []S) string {
	parts := make([]string, len(states))
	for i, s := range states {
		parts[i] = string(s)
	}
	return strings.Join(parts, ", ")
}

// AttemptState is the state of one attempt at a trial. Its values match
// the attempt states the coordinator stores.
type AttemptState string

// The attempt states. An attempt starts dispatched, may become running and
// ends in exactly one of the others. A result that arrives for an attempt
// already ended (typically a stale one) is not a state: the coordinator
// keeps it as a late result next to the trial.
const (
	// AttemptDispatched means the attempt was sent to an agent.
	AttemptDispatched AttemptState = "dispatched"
	// AttemptRunning means the agent started the method.
	AttemptRunning AttemptState = "running"
	// AttemptSucceeded means the method reported a result.
	AttemptSucceeded AttemptState = "succeeded"
	// AttemptFailed means the method failed; it counts against retries.
	AttemptFailed AttemptState = "failed"
	// AttemptInvalid means the method rejected the parameters; retrying
	// cannot help, so the trial fails.
	AttemptInvalid AttemptState = "invalid"
	// AttemptTimedOut means the attempt ran past the spec's timeout; it
	// counts against retries like a failure.
	AttemptTimedOut AttemptState = "timed_out"
	// AttemptCancelled means the trial or study was cancelled.
	AttemptCancelled AttemptState = "cancelled"
	// AttemptStale means the attempt was lost with its agent (dead node,
	// lost lease). It is not the method's fault: the trial is retried
	// without using up a retry.
	AttemptStale AttemptState = "stale"
	// AttemptPreempted means the attempt was given up on purpose: its
	// agent was asked to leave (SIGTERM from SLURM or a spot market, a
	// drain, a shutdown) or the method asked to run again (sdk.ErrPreempted,
	// exit status 75). Like a stale attempt it uses up no retry, and the
	// trial goes back to the head of its study's queue.
	AttemptPreempted AttemptState = "preempted"
)

// AttemptStates lists every attempt state.
var AttemptStates = []AttemptState{AttemptDispatched, AttemptRunning, AttemptSucceeded, AttemptFailed, AttemptInvalid, AttemptTimedOut, AttemptCancelled, AttemptStale, AttemptPreempted}

// Terminal reports whether the attempt is over.
func (a AttemptState) Terminal() bool {
	return a != AttemptDispatched && a != AttemptRunning
}

// ChargesRetry reports whether ending in a counts against the spec's
// retries: failures and timeouts do, stale and preempted attempts do not.
func (a AttemptState) ChargesRetry() bool {
	return a == AttemptFailed || a == AttemptTimedOut
}

// TrialStateAfter returns the state a trial moves to when its current
// attempt ends in a, given how many attempts have already charged a retry
// (failures, counting this one) and the spec's retries. It returns "" for
// an attempt state that has not ended.
func TrialStateAfter(a AttemptState, failures, retries int) State {
	switch a {
	case AttemptSucceeded:
		return Succeeded
	case AttemptCancelled:
		return Cancelled
	case AttemptInvalid:
		return Failed
	case AttemptStale, AttemptPreempted:
		return Pending
	case AttemptFailed, AttemptTimedOut:
		if failures > retries {
			return Failed
		}
		return Pending
	}
	return ""
}

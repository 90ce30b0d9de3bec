package sweep

import (
	"errors"
	"strings"
	"testing"
)

// TestTransition checks every pair of states against the intended table.
func TestTransition(t *testing.T) {
	t.Parallel()
	allowed := map[[2]State]bool{
		{Pending, Dispatched}:   true,
		{Pending, Cancelled}:    true,
		{Dispatched, Running}:   true,
		{Dispatched, Succeeded}: true,
		{Dispatched, Failed}:    true,
		{Dispatched, Pending}:   true,
		{Dispatched, Cancelled}: true,
		{Running, Succeeded}:    true,
		{Running, Failed}:       true,
		{Running, Pending}:      true,
		{Running, Cancelled}:    true,
	}
	all := append(append([]State(nil), States...), "", "bogus")
	for _, from := range all {
		for _, to := range all {
			err := Transition(from, to)
			if want := allowed[[2]State{from, to}]; (err == nil) != want {
				t.Errorf("Transition(%q, %q) = %v, want allowed %t", from, to, err, want)
				continue
			}
			if err == nil {
				continue
			}
			if !errors.Is(err, ErrTransition) {
				t.Errorf("Transition(%q, %q) = %v, want it to match ErrTransition", from, to, err)
			}
			if got := errors.Is(err, ErrTerminal); got != from.Terminal() {
				t.Errorf("errors.Is(Transition(%q, %q), ErrTerminal) = %t, want %t", from, to, got, from.Terminal())
			}
			if msg := err.Error(); !strings.Contains(msg, string(from)+" -> "+string(to)) {
				t.Errorf("Transition(%q, %q) error %q does not name both states", from, to, msg)
			}
		}
	}
}

func TestStateTerminal(t *testing.T) {
	t.Parallel()
	want := map[State]bool{Pending: false, Dispatched: false, Running: false, Succeeded: true, Failed: true, Cancelled: true}
	for _, s := range States {
		if s.Terminal() != want[s] {
			t.Errorf("%s.Terminal() = %t, want %t", s, s.Terminal(), want[s])
		}
		if !s.Valid() {
			t.Errorf("%s.Valid() = false", s)
		}
	}
	if State("bogus").Valid() {
		t.Error(`State("bogus").Valid() = true`)
	}
}

func TestTransitionErrorText(t *testing.T) {
	t.Parallel()
	tests := []struct {
		from, to State
		want     string
	}{
		{Pending, Succeeded, "trial state pending -> succeeded: not allowed; from pending a trial may move to dispatched, cancelled"},
		{Succeeded, Pending, "trial state succeeded -> pending: succeeded is terminal and never changes"},
		{"bogus", Pending, "trial state bogus -> pending: unknown state"},
	}
	for _, tt := range tests {
		if err := Transition(tt.from, tt.to); err == nil || !strings.HasPrefix(err.Error(), tt.want) {
			t.Errorf("Transition(%s, %s) = %v, want %q", tt.from, tt.to, err, tt.want)
		}
	}
}

func TestTrialStateAfter(t *testing.T) {
	t.Parallel()
	tests := []struct {
		a                 AttemptState
		failures, retries int
		want              State
	}{
		{AttemptSucceeded, 0, 2, Succeeded},
		{AttemptFailed, 1, 2, Pending},
		{AttemptFailed, 2, 2, Pending},
		{AttemptFailed, 3, 2, Failed},
		{AttemptTimedOut, 1, 0, Failed},
		{AttemptStale, 0, 0, Pending}, // not the method's fault: no retry used
		{AttemptStale, 5, 2, Pending},
		{AttemptPreempted, 5, 2, Pending}, // asked to leave: no retry used either
		{AttemptInvalid, 0, 2, Failed},
		{AttemptCancelled, 0, 2, Cancelled},
		{AttemptRunning, 0, 2, ""},
		{AttemptDispatched, 0, 2, ""},
	}
	for _, tt := range tests {
		if got := TrialStateAfter(tt.a, tt.failures, tt.retries); got != tt.want {
			t.Errorf("TrialStateAfter(%s, %d, %d) = %q, want %q", tt.a, tt.failures, tt.retries, got, tt.want)
		}
	}
	for _, a := range AttemptStates {
		if a.ChargesRetry() && a != AttemptFailed && a != AttemptTimedOut {
			t.Errorf("%s.ChargesRetry() = true", a)
		}
		if a.Terminal() == (a == AttemptDispatched || a == AttemptRunning) {
			t.Errorf("%s.Terminal() = %t", a, a.Terminal())
		}
		// Every end of an attempt must be a legal move for a running trial.
		if to := TrialStateAfter(a, 1, 2); to != "" {
			if err := Transition(Running, to); err != nil {
				t.Errorf("after attempt %s: %v", a, err)
			}
		}
	}
	if AttemptStale.ChargesRetry() {
		t.Error("AttemptStale.ChargesRetry() = true; a lost agent must not use up retries")
	}
}

package agent

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"asymptote.dev/asymptote/agent/methodmgr"
	"asymptote.dev/asymptote/internal/bus"
	"asymptote.dev/asymptote/plugins/sdk"
)

func TestClassify(t *testing.T) {
	ok := &sdk.Result{Metrics: map[string]float64{"val_loss": 1}}
	preempted := &methodmgr.MethodError{Method: "command", Kind: methodmgr.Failed,
		Err: fmt.Errorf("%w: the program exited with status 75", sdk.ErrPreempted)}
	for _, tc := range []struct {
		name       string
		res        *sdk.Result
		err, cause error
		want       bus.Outcome
		msg        string
	}{
		{"success", ok, nil, nil, bus.OutcomeSucceeded, ""},
		{"no result", nil, nil, nil, bus.OutcomeFailed, "no result"},
		{"failure", nil, errors.New("loss exploded"), nil, bus.OutcomeFailed, "loss exploded"},
		{"bad parameter", nil, &sdk.ParamError{Param: "lr", Reason: "negative"}, nil, bus.OutcomeInvalid, "negative"},
		{"preempted", nil, preempted, nil, bus.OutcomePreempted, "status 75"},
		{"shutting down", nil, errors.New("x"), errStopping, bus.OutcomePreempted, "shutting down"},
		{"cancelled", nil, errors.New("x"), errCancelled, bus.OutcomeCancelled, "cancelled"},
	} {
		got, msg := classify(tc.res, tc.err, tc.cause)
		if got != tc.want || !strings.Contains(msg, tc.msg) {
			t.Errorf("%s: %s %q, want %s with %q", tc.name, got, msg, tc.want, tc.msg)
		}
	}
}

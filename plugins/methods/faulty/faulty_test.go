package faulty

import (
	"errors"
	"testing"

	"asymptote.dev/asymptote/plugins/sdk"
)

func TestStartupFaults(t *testing.T) {
	tests := []struct {
		env     string
		wantErr bool
	}{
		{env: "", wantErr: false},
		{env: "garbage", wantErr: false}, // prints junk where the handshake goes
		{env: "exit_early", wantErr: true},
		{env: "nonsense", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.env, func(t *testing.T) {
			t.Setenv(StartupEnv, tt.env)
			if err := New().Start(); (err != nil) != tt.wantErr {
				t.Errorf("Start() with %s=%q = %v, want error %v", StartupEnv, tt.env, err, tt.wantErr)
			}
		})
	}
}

func TestModes(t *testing.T) {
	tests := []struct {
		params  map[string]any
		attempt int
		is      error
		param   string // a *sdk.ParamError for this parameter
	}{
		{params: map[string]any{"mode": "ok"}, attempt: 1},
		{params: map[string]any{"mode": "fail"}, attempt: 1, is: ErrInjected},
		{params: map[string]any{"mode": "ok", "fail_attempts": 2.0}, attempt: 2, is: ErrInjected},
		{params: map[string]any{"mode": "ok", "fail_attempts": 2.0}, attempt: 3},
		{params: map[string]any{"mode": "bad_param"}, attempt: 1, param: "mode"},
		{params: map[string]any{"mode": "exit_early"}, attempt: 1, param: "mode"},
		{params: map[string]any{"mode": "nosuch"}, attempt: 1, param: "mode"},
		{params: map[string]any{"mode": "slow", "seconds": 0.01}, attempt: 1},
	}
	for _, tt := range tests {
		req := &sdk.TrialRequest{Attempt: tt.attempt, Params: tt.params}
		res, err := New().Run(t.Context(), req, func(sdk.Metrics) error { return nil })
		switch {
		case tt.param != "":
			var pe *sdk.ParamError
			if !errors.As(err, &pe) || pe.Param != tt.param {
				t.Errorf("%v attempt %d: err = %v, want a ParamError for %s", tt.params, tt.attempt, err, tt.param)
			}
		case tt.is != nil:
			if !errors.Is(err, tt.is) {
				t.Errorf("%v attempt %d: err = %v, want %v", tt.params, tt.attempt, err, tt.is)
			}
		case err != nil || res.Metrics["pid"] == 0:
			t.Errorf("%v attempt %d: Run = %v, %v; want a result with the pid", tt.params, tt.attempt, res, err)
		}
	}
}

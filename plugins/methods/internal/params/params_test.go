package params

import (
	"errors"
	"strings"
	"testing"

	"asymptote.dev/asymptote/plugins/sdk"
)

var known = []sdk.ParamInfo{{Name: "width"}, {Name: "lr"}}

func TestReader(t *testing.T) {
	tests := []struct {
		name      string
		params    map[string]any
		wantParam string
		wantText  string
	}{
		{"defaults", map[string]any{}, "", ""},
		{"in range", map[string]any{"width": 64.0, "lr": 0.5}, "", ""},
		{"int too big", map[string]any{"width": 5000.0}, "width", "[1, 4096]"},
		{"not an int", map[string]any{"width": 1.5}, "width", "integer"},
		{"float too small", map[string]any{"lr": 0.0}, "lr", "[1e-06, 1]"},
		{"unknown", map[string]any{"widht": 3.0}, "widht", "width, lr"},
		{"unknown suggests the nearest", map[string]any{"widht": 3.0}, "widht", `did you mean "width"?`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := New(&sdk.TrialRequest{Params: tc.params}, known)
			w := r.Int("width", 32, 1, 4096)
			lr := r.Float("lr", 0.1, 1e-6, 1)
			err := r.Err()
			if tc.wantParam == "" {
				if err != nil {
					t.Fatal(err)
				}
				if tc.params["width"] == nil && (w != 32 || lr != 0.1) {
					t.Errorf("defaults: %v %v", w, lr)
				}
				return
			}
			var pe *sdk.ParamError
			if !errors.As(err, &pe) || pe.Param != tc.wantParam || !strings.Contains(pe.Reason, tc.wantText) {
				t.Errorf("got %v, want a ParamError for %q mentioning %q", err, tc.wantParam, tc.wantText)
			}
		})
	}
}

func TestFailKeepsFirstError(t *testing.T) {
	r := New(&sdk.TrialRequest{Params: map[string]any{"width": 0.0}}, known)
	r.Int("width", 1, 1, 2)
	r.Fail(errors.New("later"))
	var pe *sdk.ParamError
	if !errors.As(r.Err(), &pe) || pe.Param != "width" {
		t.Errorf("Err = %v, want the width error", r.Err())
	}
	if !r.Has("width") || r.Has("lr") {
		t.Error("Has is wrong")
	}
}

func TestNearest(t *testing.T) {
	names := []string{"weight_decay", "width", "lr", "E", "unique_tokens", "tokens"}
	tests := []struct {
		name, want string // want "" for no suggestion
	}{
		{"weight_decy", "weight_decay"},
		{"Weight_Decay", "weight_decay"},
		{"widht", "width"},
		{"lrr", "lr"},
		{"uniqe_tokens", "unique_tokens"},
		{"token", "tokens"},
		{"x", ""},
		{"momentum", ""},
		{"dropout", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := Nearest(tc.name, names)
			if tc.want == "" {
				if ok {
					t.Errorf("Nearest(%q) = %q, want no suggestion", tc.name, got)
				}
				return
			}
			if !ok || got != tc.want {
				t.Errorf("Nearest(%q) = %q, %v; want %q", tc.name, got, ok, tc.want)
			}
		})
	}
}

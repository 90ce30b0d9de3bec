package methods

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"asymptote.dev/asymptote/plugins/sdk"
)

func TestCatalog(t *testing.T) {
	names := Names()
	if len(names) == 0 {
		t.Fatal("no built-in methods")
	}
	for _, name := range names {
		m, ok := Lookup(name)
		if !ok {
			t.Fatalf("Lookup(%q) failed for a listed name", name)
		}
		info, err := m.Info(context.Background())
		if err != nil {
			t.Fatalf("%s: Info: %v", name, err)
		}
		if info.Name != name {
			t.Errorf("Lookup(%q) serves a method named %q", name, info.Name)
		}
	}
	if _, ok := Lookup("nosuch"); ok {
		t.Error("Lookup(nosuch) succeeded")
	}
}

// TestUnknownParamsRefused runs every built-in method with a misspelling
// of each of its parameters: each must refuse it with a *sdk.ParamError
// that names the misspelt parameter and suggests the real one, rather than
// run with the default, and before loading any data.
func TestUnknownParamsRefused(t *testing.T) {
	for _, name := range Names() {
		m, _ := Lookup(name)
		info, err := m.Info(context.Background())
		if err != nil {
			t.Fatalf("%s: Info: %v", name, err)
		}
		typos := map[string]string{}
		for _, p := range info.Params {
			typos[p.Name+"x"] = p.Name
		}
		if _, ok := typos["weight_decay"+"x"]; ok {
			typos["weight_decy"] = "weight_decay"
		}
		for typo, want := range typos {
			t.Run(name+"/"+typo, func(t *testing.T) {
				req := &sdk.TrialRequest{TrialID: "typo", Attempt: 1, Threads: 1, Params: map[string]any{typo: 1.0}}
				_, err := m.Run(t.Context(), req, func(sdk.Metrics) error { return nil })
				var pe *sdk.ParamError
				if !errors.As(err, &pe) || pe.Param != typo {
					t.Fatalf("Run with %s = %v: got %v, want a *sdk.ParamError for %q", typo, 1.0, err, typo)
				}
				if hint := fmt.Sprintf("did you mean %q?", want); !strings.Contains(pe.Reason, hint) {
					t.Errorf("error %q does not suggest %s", err, hint)
				}
			})
		}
	}
}

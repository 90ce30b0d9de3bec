package main

import (
	"testing"

	"asymptote.dev/asymptote/plugins/sdk"
	"asymptote.dev/asymptote/plugins/sdk/sdktest"
)

func TestFit(t *testing.T) {
	res, reports, err := sdktest.Run(t, method{}, &sdk.TrialRequest{TrialID: "t", Params: map[string]any{"steps": 500.0}, Seed: 1})
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	if len(reports) != 10 {
		t.Errorf("got %d reports, want 10", len(reports))
	}
	if w := res.Metrics["w"]; w < 2.5 || w > 3.5 {
		t.Errorf("w = %v, want about 3", w)
	}
}

func TestConformance(t *testing.T) {
	sdktest.Conformance(t, method{}, sdktest.Cases{
		Long:    &sdk.TrialRequest{TrialID: "long", Params: map[string]any{"steps": 1e12}},
		Invalid: &sdk.TrialRequest{TrialID: "bad", Params: map[string]any{"lr": -1.0}},
	})
}

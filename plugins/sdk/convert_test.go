package sdk

import (
	"reflect"
	"testing"
	"time"
)

func TestRequestRoundTrip(t *testing.T) {
	in := &TrialRequest{
		Study: "s", TrialID: "t", Attempt: 2, Seed: -5, Threads: 4, GPUs: []int{0, 3},
		Params: map[string]any{"lr": 0.001, "name": "x", "wd": 0.0, "on": true, "steps": 100.0},
		Config: []byte(`{"command":{"program":"train.py"}}`),
	}
	deadline := time.Date(2026, 1, 2, 3, 4, 5, 6, time.UTC)
	p, err := requestToProto(in, deadline)
	if err != nil {
		t.Fatal(err)
	}
	if got := p.GetDeadline().AsTime(); !got.Equal(deadline) {
		t.Errorf("deadline = %v, want %v", got, deadline)
	}
	out, err := requestFromProto(p)
	if err != nil {
		t.Fatal(err)
	}
	if out.checkpoints == nil || out.checkpoints.root != "" {
		t.Errorf("checkpoint state = %+v, want one with no root", out.checkpoints)
	}
	out.checkpoints = nil
	if !reflect.DeepEqual(out, in) {
		t.Errorf("round trip = %+v, want %+v", out, in)
	}
}

func TestRequestDefaults(t *testing.T) {
	p, err := requestToProto(&TrialRequest{TrialID: "t"}, time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	if p.GetDeadline() != nil {
		t.Error("zero deadline was sent")
	}
	out, err := requestFromProto(p)
	if err != nil {
		t.Fatal(err)
	}
	if out.Threads != 1 || out.Params == nil || out.Config != nil {
		t.Errorf("defaults: Threads = %d, Params = %v, Config = %s; want 1, an empty map and no config", out.Threads, out.Params, out.Config)
	}
}

func TestInfoRoundTrip(t *testing.T) {
	in := &Info{Name: "m", Version: "2", Description: "d", Params: []ParamInfo{
		{Name: "lr", Type: "float", Default: 0.1, Description: "learning rate"},
		{Name: "tokens", Type: "float", Optional: true},
		{Name: "data", Type: "string"},
		{Name: "act", Type: "string", Default: "relu"},
	}}
	p, err := infoToProto(in)
	if err != nil {
		t.Fatal(err)
	}
	out, err := infoFromProto(p)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(out, in) {
		t.Errorf("round trip = %+v, want %+v", out, in)
	}
}

package sdk

import (
	"bytes"
	"encoding/json"
	"fmt"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	asymptotev1 "asymptote.dev/asymptote/proto/asymptote/v1"
)

// Conversions between the SDK's types and their wire form. Parameters
// travel as JSON text, which any language decodes without protobuf's
// well-known types; numbers decode to float64, as TrialRequest documents.

func infoToProto(in *Info) (*asymptotev1.InfoResponse, error) {
	out := &asymptotev1.InfoResponse{Name: in.Name, Version: in.Version, Description: in.Description}
	for _, p := range in.Params {
		pi := &asymptotev1.ParamInfo{Name: p.Name, Type: p.Type, Description: p.Description, MayOmit: p.Optional}
		if p.Default != nil {
			b, err := json.Marshal(p.Default)
			if err != nil {
				return nil, fmt.Errorf("encode default of parameter %q: %w", p.Name, err)
			}
			pi.DefaultJson = string(b)
		}
		out.Params = append(out.Params, pi)
	}
	return out, nil
}

func infoFromProto(in *asymptotev1.InfoResponse) (*Info, error) {
	out := &Info{Name: in.GetName(), Version: in.GetVersion(), Description: in.GetDescription()}
	for _, p := range in.GetParams() {
		pi := ParamInfo{Name: p.GetName(), Type: p.GetType(), Description: p.GetDescription(), Optional: p.GetMayOmit()}
		if s := p.GetDefaultJson(); s != "" {
			if err := json.Unmarshal([]byte(s), &pi.Default); err != nil {
				return nil, fmt.Errorf("%w: default of parameter %q: %w", ErrProtocol, p.GetName(), err)
			}
		}
		out.Params = append(out.Params, pi)
	}
	return out, nil
}

func requestToProto(in *TrialRequest, deadline time.Time) (*asymptotev1.RunTrialRequest, error) {
	params := in.Params
	if params == nil {
		params = map[string]any{}
	}
	b, err := json.Marshal(params)
	if err != nil {
		return nil, fmt.Errorf("encode parameters: %w", err)
	}
	out := &asymptotev1.RunTrialRequest{
		Study:      in.Study,
		TrialId:    in.TrialID,
		Attempt:    int32(in.Attempt),
		ParamsJson: string(b),
		Seed:       in.Seed,
		Threads:    int32(in.Threads),
		ConfigJson: string(in.Config),
	}
	if in.checkpoints != nil {
		out.CheckpointRoot = in.checkpoints.root
	}
	if c := in.Resume; c != nil {
		out.Resume = &asymptotev1.Checkpoint{Step: c.Step, Metrics: c.Metrics, Dir: c.Dir}
	}
	for _, g := range in.GPUs {
		out.Gpus = append(out.Gpus, int32(g))
	}
	if !deadline.IsZero() {
		out.Deadline = timestamppb.New(deadline)
	}
	return out, nil
}

func requestFromProto(in *asymptotev1.RunTrialRequest) (*TrialRequest, error) {
	out := &TrialRequest{
		Study:   in.GetStudy(),
		TrialID: in.GetTrialId(),
		Attempt: int(in.GetAttempt()),
		Seed:    in.GetSeed(),
		Threads: max(int(in.GetThreads()), 1),
		Params:  map[string]any{},
		// A server's request always has the state, so the host's
		// RequestCheckpoint finds it.
		checkpoints: &checkpointState{root: in.GetCheckpointRoot()},
	}
	if c := in.GetResume(); c != nil {
		out.Resume = &Checkpoint{Step: c.GetStep(), Metrics: nonNil(c.GetMetrics()), Dir: c.GetDir()}
	}
	if c := in.GetConfigJson(); c != "" {
		out.Config = json.RawMessage(c)
	}
	if s := in.GetParamsJson(); s != "" {
		dec := json.NewDecoder(bytes.NewReader([]byte(s)))
		if err := dec.Decode(&out.Params); err != nil {
			return nil, &ParamError{Reason: fmt.Sprintf("parameters are not a JSON object: %v", err)}
		}
		if out.Params == nil {
			out.Params = map[string]any{}
		}
	}
	for _, g := range in.GetGpus() {
		out.GPUs = append(out.GPUs, int(g))
	}
	return out, nil
}

func metricsToProto(in Metrics) *asymptotev1.RunTrialResponse {
	return &asymptotev1.RunTrialResponse{Event: &asymptotev1.RunTrialResponse_Metrics{
		Metrics: &asymptotev1.Metrics{Step: in.Step, Values: in.Values, CheckpointDir: in.Checkpoint},
	}}
}

func metricsFromProto(in *asymptotev1.Metrics) Metrics {
	return Metrics{Step: in.GetStep(), Values: nonNil(in.GetValues()), Checkpoint: in.GetCheckpointDir()}
}

func resultToProto(in *Result) *asymptotev1.RunTrialResponse {
	var m map[string]float64
	if in != nil {
		m = in.Metrics
	}
	return &asymptotev1.RunTrialResponse{Event: &asymptotev1.RunTrialResponse_Result{
		Result: &asymptotev1.Result{Metrics: m},
	}}
}

func resultFromProto(in *asymptotev1.Result) *Result {
	return &Result{Metrics: nonNil(in.GetMetrics())}
}

// nonNil returns m, or an empty map when m is nil, so callers can assign
// into it without checks.
func nonNil(m map[string]float64) map[string]float64 {
	if m == nil {
		return map[string]float64{}
	}
	return m
}

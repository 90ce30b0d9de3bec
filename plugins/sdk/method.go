// Package sdk is what a method author imports to turn training code into an
// asymptote method: implement [Method] and call [Serve] from main.
//
// A method runs one attempt of one trial at a time per call; one plugin
// process may serve many trials over its life, one after another. The agent
// starts the process, hands it trials over gRPC, and reads the metrics it
// reports while it trains.
package sdk

import (
	"context"
	"encoding/json"
	"fmt"
)

// Method is implemented by a training or evaluation method.
//
// Implementations must be safe to call again after a trial returns: the agent
// reuses plugin processes across trials.
type Method interface {
	// Info describes the method and the parameters it accepts.
	Info(ctx context.Context) (*Info, error)

	// Run runs one attempt of a trial. It calls report for each step's
	// metrics (report returns an error when the host can no longer receive
	// them; Run should then return). Run must return promptly, with ctx.Err()
	// or an error wrapping it, when ctx is cancelled: the agent cancels it on
	// timeouts and when the study or trial is cancelled.
	//
	// A returned *ParamError marks the parameters as invalid; the attempt
	// fails without retry. Any other error fails the attempt and may be
	// retried under the study's retry limit.
	Run(ctx context.Context, req *TrialRequest, report func(Metrics) error) (*Result, error)
}

// Info describes a method.
type Info struct {
	// Name is the method's name as studies refer to it (for example "charlm").
	Name string
	// Version is the method's version; it is part of every trial's identity.
	Version string
	// Description is one line for `asymptote methods`.
	Description string
	// Params lists the parameters the method reads, for documentation and
	// for validating specs before anything is scheduled.
	Params []ParamInfo
}

// ParamInfo documents one parameter.
type ParamInfo struct {
	Name        string
	Type        string // "float", "int", "string" or "bool"
	Default     any    // nil when the parameter is required (unless Optional)
	Description string
	// Optional, with a nil Default, marks a parameter that may be omitted
	// although it has no fixed default: the method derives its value from
	// other parameters, as Description says.
	Optional bool
}

// TrialRequest is one attempt of one trial.
type TrialRequest struct {
	// Study is the study's name.
	Study string
	// TrialID is the trial's content hash; it is the same for every attempt.
	TrialID string
	// Attempt numbers attempts from 1.
	Attempt int
	// Params holds the resolved parameters. Numbers are float64, and
	// strings and bools keep their types. Use the Float, Int, String and
	// Bool helpers to read them with defaults and clear errors.
	Params map[string]any
	// Seed is the trial's seed. Methods must be deterministic for a seed.
	Seed int64
	// Threads is the CPU thread budget the agent granted this trial (at
	// least 1). Methods must not use more worker goroutines or threads.
	Threads int
	// GPUs lists the indices of the GPUs assigned to this trial, as the
	// host numbers them; CUDA_VISIBLE_DEVICES in the process environment
	// already restricts visibility to them. Empty means CPU only.
	GPUs []int
	// Config is the study's configuration of the method as a JSON object
	// (the command method's command section); nil when the spec gives
	// none. Most methods read only Params.
	Config json.RawMessage
	// Resume is the checkpoint this attempt continues from, its files
	// already on this host; nil starts the trial from step 0. See
	// NewCheckpoint and CheckpointWanted for saving them.
	Resume *Checkpoint

	checkpoints *checkpointState
}

// Metrics is one report while a trial runs: the step and named values such
// as "train_loss", "val_loss" or "tokens".
type Metrics struct {
	Step   int64
	Values map[string]float64
	// Checkpoint, when set, is the directory (from
	// TrialRequest.NewCheckpoint) holding a checkpoint taken after Step;
	// Values are its metrics. The host takes the directory over.
	Checkpoint string
}

// Result is the final outcome of a successful attempt.
type Result struct {
	// Metrics are the final values; the study's objective is read from them
	// by name. Methods should include the accounting keys below that apply.
	Metrics map[string]float64
}

// Well-known metric names for a method's accounting. Analysis reads them by
// these names.
const (
	MetricParams       = "params"        // model parameter count
	MetricTokens       = "tokens"        // tokens (or samples) seen in training
	MetricUniqueTokens = "unique_tokens" // distinct tokens (or samples) in the training pool
	MetricEpochs       = "epochs"        // tokens / unique_tokens
	MetricFLOPs        = "flops"         // training FLOPs
	MetricMembers      = "members"       // ensemble members
	MetricTrainLoss    = "train_loss"
	MetricValLoss      = "val_loss"
)

// ParamError reports a parameter the method cannot accept. The attempt fails
// without retry, and the message reaches the user as is.
type ParamError struct {
	Param  string
	Reason string
}

// Error says which parameter was rejected and why.
func (e *ParamError) Error() string {
	return fmt.Sprintf("parameter %q: %s", e.Param, e.Reason)
}

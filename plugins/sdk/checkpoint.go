package sdk

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"sync/atomic"
)

// Checkpointing, from a method's side. Three things, all optional:
//
//   - req.Resume, when set, is the checkpoint this attempt continues from:
//     restore from its Dir and carry on after its Step.
//   - req.NewCheckpoint(step) gives an empty directory; write the state
//     into it, then report the step's metrics with Checkpoint set to that
//     directory. The host uploads it to a store that outlives this machine
//     and deletes the directory afterwards; the checkpoint counts once the
//     upload is done.
//   - req.CheckpointWanted() turns true when the host asks for a
//     checkpoint now (it is about to stop the attempt: a preemption, a
//     drain); save one at the next safe point and keep going.
//
// A method that does none of this still works: every new attempt of its
// trials starts again from step 0.

// Checkpoint is a saved state of a trial.
type Checkpoint struct {
	// Step is the step the checkpoint was taken after; a resumed attempt
	// continues with Step+1.
	Step int64
	// Metrics are the values reported with the checkpoint's step.
	Metrics map[string]float64
	// Dir holds the checkpoint's files on the method's host. The method
	// only reads it.
	Dir string
}

// ErrNoCheckpoints is returned by NewCheckpoint when the host keeps no
// checkpoints for this attempt (none is configured, or the host predates
// them): the method should carry on without saving.
var ErrNoCheckpoints = errors.New("the host keeps no checkpoints for this attempt")

// checkpointState is shared by a TrialRequest and the server that runs it:
// the host's request for a checkpoint lands here.
type checkpointState struct {
	root   string
	wanted atomic.Bool
	// saved counts NewCheckpoint calls, so two checkpoints of one step
	// get two directories.
	saved atomic.Int64
}

// NewCheckpoint returns a new empty directory for a checkpoint after step,
// or ErrNoCheckpoints. Write the checkpoint's files into it, then report
// the step with [Metrics.Checkpoint] set to it; do not touch it after.
func (r *TrialRequest) NewCheckpoint(step int64) (string, error) {
	if r.checkpoints == nil || r.checkpoints.root == "" {
		return "", ErrNoCheckpoints
	}
	r.checkpoints.wanted.Store(false)
	n := r.checkpoints.saved.Add(1)
	dir := filepath.Join(r.checkpoints.root, "step-"+strconv.FormatInt(step, 10)+"-"+strconv.FormatInt(n, 10))
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", fmt.Errorf("checkpoint directory: %w", err)
	}
	return dir, nil
}

// CheckpointWanted reports whether the host asked for a checkpoint now. It
// turns false again with the next NewCheckpoint.
func (r *TrialRequest) CheckpointWanted() bool {
	return r.checkpoints != nil && r.checkpoints.root != "" && r.checkpoints.wanted.Load()
}

// Checkpoints reports whether the host keeps checkpoints for this attempt,
// so a method can skip the work of preparing one when it does not.
func (r *TrialRequest) Checkpoints() bool {
	return r.checkpoints != nil && r.checkpoints.root != ""
}

// WithCheckpointRoot returns a copy of r whose checkpoints go under root,
// for hosts that build requests (the agent does): an empty root keeps
// none. The copy shares nothing with r.
func (r *TrialRequest) WithCheckpointRoot(root string) *TrialRequest {
	c := *r
	c.checkpoints = &checkpointState{root: root}
	return &c
}

// CheckpointRoot is the directory under which the request's checkpoints
// are written; empty when none are kept.
func (r *TrialRequest) CheckpointRoot() string {
	if r.checkpoints == nil {
		return ""
	}
	return r.checkpoints.root
}

// checkCheckpointDir checks that dir, a checkpoint a method reported, is a
// directory strictly inside root: the host uploads it and deletes it, so a
// method must not name anything else.
func checkCheckpointDir(root, dir string) error {
	if root == "" {
		return fmt.Errorf("%w: a checkpoint was reported (%q), but the host keeps none for this attempt (call NewCheckpoint, which says so)", ErrProtocol, dir)
	}
	rel, err := filepath.Rel(root, dir)
	if err != nil || rel == "." || rel == ".." || filepath.IsAbs(rel) || len(rel) >= 3 && rel[:3] == ".."+string(filepath.Separator) {
		return fmt.Errorf("%w: checkpoint directory %q is not inside %q; use the directory NewCheckpoint returned", ErrProtocol, dir, root)
	}
	fi, err := os.Lstat(dir)
	if err != nil {
		return fmt.Errorf("%w: checkpoint directory: %w", ErrProtocol, err)
	}
	if !fi.IsDir() {
		return fmt.Errorf("%w: checkpoint %q is not a directory", ErrProtocol, dir)
	}
	return nil
}

// AskCheckpoint makes CheckpointWanted true, for hosts that run a method
// in their own process (tests); a plugin's host asks with
// Client.RequestCheckpoint. It reports whether the request keeps
// checkpoints at all.
func (r *TrialRequest) AskCheckpoint() bool {
	if !r.Checkpoints() {
		return false
	}
	r.checkpoints.wanted.Store(true)
	return true
}

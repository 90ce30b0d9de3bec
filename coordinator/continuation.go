package coordinator

import (
	"fmt"

	"asymptote.dev/asymptote/internal/api"
	"asymptote.dev/asymptote/sweep"
)

// Promotions that continue: successive halving and promotion ASHA with
// continue promote a configuration by resuming the run of the rung below
// from its last checkpoint. That rung's trial keeps its last checkpoint past success
// while a promotion may still want it (holdsForPromotion); the promoted
// trial's record names it (api.Continuation), a new attempt of that trial
// resumes from it until the trial has checkpoints of its own, and the
// lower trial lets go of it once the promoted trial ends, once the search
// stops its configuration there, or once the search is over.

// continuing returns how the study's search promotes when it continues
// its promotions, else nil.
func continuing(s *study) *sweep.Promotion {
	if p := s.spec.Search.Promotion(); p != nil && p.Continue {
		return p
	}
	return nil
}

// mayGoOn reports whether t's configuration may still be promoted past
// t: its study's search continues, is not over, and t's rung is below the
// last.
func mayGoOn(t *trial) bool {
	p := continuing(t.study)
	if p == nil || t.study.searchDone {
		return false
	}
	f, ok := t.rec.Params[p.Fidelity].(float64)
	if !ok {
		return false
	}
	_, ok = p.Next(f)
	return ok
}

// holdsForPromotion reports whether succeeded trial t keeps its last
// checkpoint for a promotion that may continue from it (mayGoOn), where
// the spec would otherwise let it go.
func holdsForPromotion(t *trial) bool {
	return !t.study.spec.CheckpointPolicy().KeepOnSuccess && mayGoOn(t)
}

// promotedFrom returns the trials of s that a promotion continues.
func promotedFrom(s *study) map[string]bool {
	out := map[string]bool{}
	for _, t := range s.trials {
		if f := t.rec.From; f != nil {
			out[f.Trial] = true
		}
	}
	return out
}

// paused reports whether t is paused: it succeeded at a rung, keeps the
// checkpoint a promotion would continue from, and no promotion has come
// yet while the search may still make one. A paused trial holds no slot;
// it is a way of showing a succeeded trial, not a state of its own, and
// once the search is over it shows as what it is, succeeded at its rung.
func paused(t *trial, promoted map[string]bool) bool {
	return t.rec.State == sweep.Succeeded && len(t.rec.Checkpoints) > 0 && !promoted[t.rec.ID] && mayGoOn(t)
}

// continueFrom sets where each trial a search step promoted starts: from
// the last checkpoint of the trial of the rung below that it continues.
// A promoted trial that already ran, or whose lower trial kept no
// checkpoint, is left to start as it would.
func (l *leaderState) continueFrom(s *study, cont map[string]string) {
	for id, from := range cont {
		t, lower := s.byID[id], s.byID[from]
		if t == nil || lower == nil || t.rec.From != nil || t.rec.Attempt > 0 || len(lower.rec.Checkpoints) == 0 {
			continue
		}
		c := lower.rec.Checkpoints[len(lower.rec.Checkpoints)-1]
		t.rec.From = &api.Continuation{Trial: from, Checkpoint: c}
		l.dirtyTrials[t] = true
	}
}

// noteStart records where an attempt of a continuing trial began: from
// the lower trial's checkpoint (or a later one of its own), or from
// scratch.
func (l *leaderState) noteStart(t *trial, a *api.Attempt) {
	f := t.rec.From
	if f == nil {
		return
	}
	resumed := a.StartStep >= f.Checkpoint.Step && a.StartStep > 0
	if resumed != f.Resumed {
		f.Resumed = resumed
		l.dirtyTrials[t] = true
	}
	// Its own checkpoints come after the lower one's step, so starting
	// at that step means starting from it, even when the started event
	// (not durable) arrives after them or not at all.
	if a.StartStep == f.Checkpoint.Step {
		l.noteAttempt(t, a, fmt.Sprintf("continues trial %s from its checkpoint after step %d", f.Trial, f.Checkpoint.Step))
	}
}

// dropContinuation stops a trial from continuing when its attempt that
// started from the lower trial's checkpoint failed: a method may refuse a
// checkpoint of another budget (a schedule that decays to the budget), and
// the same refusal would fail every retry. Later attempts start from
// scratch, and the record says why.
func (l *leaderState) dropContinuation(t *trial, a *api.Attempt, reason string) {
	f := t.rec.From
	if f == nil || f.Dropped != "" || a.StartStep != f.Checkpoint.Step || a.StartStep == 0 || len(t.rec.Checkpoints) > 0 {
		return
	}
	f.Dropped = fmt.Sprintf("attempt %d failed after continuing trial %s from step %d (%s); later attempts start from scratch", a.N, f.Trial, f.Checkpoint.Step, reason)
	f.Resumed = false
	l.noteAttempt(t, a, f.Dropped)
	l.dirtyTrials[t] = true
}

// releaseLower lets the lower trial of ended trial t go of the checkpoint
// t continued from.
func (l *leaderState) releaseLower(t *trial) {
	if t.rec.From == nil {
		return
	}
	if lower := t.study.byID[t.rec.From.Trial]; lower != nil && lower.rec.State == sweep.Succeeded && !t.study.spec.CheckpointPolicy().KeepOnSuccess {
		l.dropCheckpoints(lower)
	}
}

// releaseHeld lets go of the checkpoints succeeded trials of s held for
// promotions: those of trials a decision stopped, or all of them once the
// search is over (ids nil).
func (l *leaderState) releaseHeld(s *study, ids []string) {
	if continuing(s) == nil || s.spec.CheckpointPolicy().KeepOnSuccess {
		return
	}
	// The lower trials a promotion still running continues keep theirs
	// until it ends (releaseLower).
	inUse := map[string]bool{}
	for _, t := range s.trials {
		if f := t.rec.From; f != nil && !t.rec.State.Terminal() {
			inUse[f.Trial] = true
		}
	}
	drop := func(t *trial) {
		if t.rec.State == sweep.Succeeded && len(t.rec.Checkpoints) > 0 && !inUse[t.rec.ID] {
			l.dropCheckpoints(t)
		}
	}
	if ids == nil {
		for _, t := range s.trials {
			drop(t)
		}
		return
	}
	for _, id := range ids {
		if t := s.byID[id]; t != nil {
			drop(t)
		}
	}
}

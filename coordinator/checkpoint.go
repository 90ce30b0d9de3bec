package coordinator

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"asymptote.dev/asymptote/internal/api"
	"asymptote.dev/asymptote/internal/bus"
	"asymptote.dev/asymptote/sweep"
)

// Checkpoints, from the leader's side: etcd keeps only their records, in
// the trial's record, written through the same fenced commit as results;
// the bytes are in the checkpoint store. A record is added from the
// agent's checkpoint event of the trial's current attempt; the trial keeps
// its latest few (checkpoints.keep), within the study's quota; a new
// attempt is dispatched with them, latest first. The blobs a turn lets go
// of are deleted once its commit is durable (deleteCheckpoints).

// recordCheckpoint applies a checkpoint event. Replays find the record
// already there and change nothing.
func (l *leaderState) recordCheckpoint(t *trial, ev bus.Event, current bool, now time.Time) {
	c := *ev.Checkpoint
	if slices.ContainsFunc(t.rec.Checkpoints, func(k api.Checkpoint) bool { return k.Key == c.Key }) {
		return
	}
	a := t.attempt(ev.Attempt)
	if !current {
		// An attempt that is no longer current (it went stale, or the
		// trial ended) does not decide where the next one starts.
		if a != nil {
			l.noteAttempt(t, a, fmt.Sprintf("checkpoint after step %d not kept: the attempt was no longer current when it arrived", c.Step))
		}
		l.do(deleteCheckpoints{keys: []string{c.Key}})
		return
	}
	pol := t.study.spec.CheckpointPolicy()
	c.Time = now
	c.Metrics = trimCheckpointMetrics(c.Metrics, t.study.rec.Objective)
	kept := append(slices.Clone(t.rec.Checkpoints), c)
	var dropped []string
	for len(kept) > max(pol.Keep, 1) {
		dropped = append(dropped, kept[0].Key)
		kept = kept[1:]
	}
	if pol.Quota > 0 {
		after := t.study.checkpointBytes + c.Size
		for _, k := range t.rec.Checkpoints {
			if slices.Contains(dropped, k.Key) {
				after -= k.Size
			}
		}
		if after > pol.Quota {
			l.noteAttempt(t, a, fmt.Sprintf("checkpoint after step %d (%d bytes) not kept: the study's checkpoints would take %d bytes, over its quota of %d; raise checkpoints.quota or lower checkpoints.keep", c.Step, c.Size, after, pol.Quota))
			l.do(deleteCheckpoints{keys: []string{c.Key}})
			return
		}
	}
	for _, k := range t.rec.Checkpoints {
		if slices.Contains(dropped, k.Key) {
			t.study.checkpointBytes -= k.Size
		}
	}
	t.study.checkpointBytes += c.Size
	t.rec.Checkpoints = kept
	l.dirtyTrials[t] = true
	if len(dropped) > 0 {
		l.do(deleteCheckpoints{keys: dropped})
	}
}

// maxCheckpointMetrics bounds the metrics kept with one checkpoint: a
// trial keeps up to sweep.MaxCheckpointKeep of them in its record.
const maxCheckpointMetrics = 32

// trimCheckpointMetrics keeps the objective, the accounting metrics and
// then the first others by name, up to maxCheckpointMetrics.
func trimCheckpointMetrics(m map[string]float64, objective string) map[string]float64 {
	if len(m) <= maxCheckpointMetrics {
		return m
	}
	out := make(map[string]float64, maxCheckpointMetrics)
	for _, k := range []string{objective, "tokens", "flops", "epochs", "train_loss", "val_loss"} {
		if v, ok := m[k]; ok {
			out[k] = v
		}
	}
	names := make([]string, 0, len(m))
	for k := range m {
		names = append(names, k)
	}
	slices.Sort(names)
	for _, k := range names {
		if len(out) >= maxCheckpointMetrics {
			break
		}
		out[k] = m[k]
	}
	return out
}

// noteAttempt adds a note to an attempt's history, up to
// api.MaxAttemptNotes.
func (l *leaderState) noteAttempt(t *trial, a *api.Attempt, note string) {
	if a == nil || len(a.Notes) >= api.MaxAttemptNotes || slices.Contains(a.Notes, note) {
		return
	}
	a.Notes = append(a.Notes, note)
	l.dirtyTrials[t] = true
}

// releaseCheckpoints lets go of a trial's checkpoints as it reaches to: a
// succeeded trial needs them no more (unless its spec keeps them), nor a
// cancelled one.
func (l *leaderState) releaseCheckpoints(t *trial, to sweep.State) {
	if len(t.rec.Checkpoints) == 0 {
		return
	}
	switch {
	case to == sweep.Cancelled:
	case to == sweep.Succeeded && !t.study.spec.CheckpointPolicy().KeepOnSuccess:
	default:
		return
	}
	keys := make([]string, len(t.rec.Checkpoints))
	for i, c := range t.rec.Checkpoints {
		keys[i] = c.Key
		t.study.checkpointBytes -= c.Size
	}
	t.rec.Checkpoints = nil
	l.dirtyTrials[t] = true
	l.do(deleteCheckpoints{keys: keys})
}

// resumeFrom returns the checkpoints a new attempt of t may resume from,
// latest first.
func resumeFrom(t *trial) []bus.Checkpoint {
	n := len(t.rec.Checkpoints)
	if n == 0 {
		return nil
	}
	out := make([]bus.Checkpoint, 0, min(n, bus.MaxResume))
	for i := n - 1; i >= 0 && len(out) < bus.MaxResume; i-- {
		out = append(out, t.rec.Checkpoints[i])
	}
	return out
}

// deleteCheckpoints removes checkpoint blobs (keys), or every blob of a
// deleted study (study), from the store once the turn that let go of them
// is durable.
type deleteCheckpoints struct {
	keys  []string
	study string
}

func (deleteCheckpoints) isAction() {}

// checkpointDeleteTimeout bounds one turn's deletions.
const checkpointDeleteTimeout = time.Minute

// deleteCheckpoints performs a deleteCheckpoints action in the
// background: a failure leaves a blob that no record names, which the
// next sweep of the study (its deletion) or an operator removes, and is
// logged.
func (l *leader) deleteCheckpoints(a deleteCheckpoints) {
	st := l.cfg.Checkpoints
	if st == nil {
		return
	}
	go func() {
		ctx, cancel := context.WithTimeout(context.WithoutCancel(l.ctx), checkpointDeleteTimeout)
		defer cancel()
		keys := a.keys
		if a.study != "" {
			infos, err := st.List(ctx, a.study+"/")
			if err != nil {
				l.log.Warn("checkpoints of a deleted study not listed; they stay in the store", "study", a.study, "error", err)
				return
			}
			for _, i := range infos {
				keys = append(keys, i.Key)
			}
		}
		var failed []string
		for _, k := range keys {
			if err := st.Delete(ctx, k); err != nil {
				failed = append(failed, k+": "+err.Error())
			}
		}
		if len(failed) > 0 {
			l.log.Warn("checkpoints not deleted", "count", len(failed), "errors", strings.Join(failed, "; "))
		}
	}()
}

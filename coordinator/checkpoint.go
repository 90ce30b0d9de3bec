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
// of are deleted once its commit is durable (blobDeletion).

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
		l.deleteBlobs([]string{c.Key}, "")
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
			l.deleteBlobs([]string{c.Key}, "")
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
		l.deleteBlobs(dropped, "")
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
// succeeded trial needs them no more (unless its spec keeps them, or a
// promotion may continue from its last one), nor a cancelled one. An
// ended trial that continued another lets go of that one's too.
func (l *leaderState) releaseCheckpoints(t *trial, to sweep.State) {
	defer l.releaseLower(t)
	switch {
	case to == sweep.Cancelled:
	case to == sweep.Succeeded && holdsForPromotion(t):
		if n := len(t.rec.Checkpoints); n > 1 {
			l.dropCheckpointsBefore(t, n-1)
		}
		return
	case to == sweep.Succeeded && !t.study.spec.CheckpointPolicy().KeepOnSuccess:
	default:
		return
	}
	l.dropCheckpoints(t)
}

// dropCheckpointsBefore lets go of t's checkpoints before the i-th.
func (l *leaderState) dropCheckpointsBefore(t *trial, i int) {
	keys := make([]string, i)
	for j, c := range t.rec.Checkpoints[:i] {
		keys[j] = c.Key
		t.study.checkpointBytes -= c.Size
	}
	t.rec.Checkpoints = slices.Clone(t.rec.Checkpoints[i:])
	l.dirtyTrials[t] = true
	l.deleteBlobs(keys, "")
}

// dropCheckpoints lets go of all of t's checkpoints.
func (l *leaderState) dropCheckpoints(t *trial) {
	keys := make([]string, len(t.rec.Checkpoints))
	for i, c := range t.rec.Checkpoints {
		keys[i] = c.Key
		t.study.checkpointBytes -= c.Size
	}
	if len(keys) > 0 {
		t.rec.Checkpoints = nil
		l.dirtyTrials[t] = true
	}
	switch {
	case len(t.rec.Attempts) > 1:
		// Every blob under the trial goes, recorded or not: an attempt
		// the leader had given up on may have stored some that no
		// record names. (Listing costs a read of the store's index, so
		// only trials that had such attempts pay it.)
		l.deleteBlobs(keys, t.rec.Study+"/"+t.rec.ID+"/")
	case len(keys) > 0:
		l.deleteBlobs(keys, "")
	}
}

// resumeFrom returns the checkpoints a new attempt of t may resume from,
// latest first.
func resumeFrom(t *trial) []bus.Checkpoint {
	n := len(t.rec.Checkpoints)
	if n == 0 {
		if f := t.rec.From; f != nil && f.Dropped == "" {
			return []bus.Checkpoint{f.Checkpoint}
		}
		return nil
	}
	out := make([]bus.Checkpoint, 0, min(n, bus.MaxResume))
	for i := n - 1; i >= 0 && len(out) < bus.MaxResume; i-- {
		out = append(out, t.rec.Checkpoints[i])
	}
	return out
}

// blobDeletion gathers the checkpoint blobs a turn lets go of: keys, and
// every blob under each of prefixes (a deleted study's, a finished
// trial's). The term deletes them once the turn's commit is durable, all
// in one pass, so a turn that cancels a thousand trials lists the store
// once, not a thousand times.
type blobDeletion struct {
	keys     []string
	prefixes []string
}

func (d *blobDeletion) empty() bool { return len(d.keys) == 0 && len(d.prefixes) == 0 }

// deleteBlobs queues keys, and everything under prefix when it is not
// empty, for deletion after the turn's commit.
func (l *leaderState) deleteBlobs(keys []string, prefix string) {
	l.blobs.keys = append(l.blobs.keys, keys...)
	if prefix != "" {
		l.blobs.prefixes = append(l.blobs.prefixes, prefix)
	}
}

// checkpointDeleteTimeout bounds one turn's deletions.
const checkpointDeleteTimeout = time.Minute

// deleteCheckpoints deletes a turn's blobs in the background: a failure
// leaves a blob that no record names, which the next term's sweep
// removes, and is logged.
func (l *leader) deleteCheckpoints(d blobDeletion) {
	st := l.cfg.Checkpoints
	if st == nil || d.empty() {
		return
	}
	go func() {
		ctx, cancel := context.WithTimeout(context.WithoutCancel(l.ctx), checkpointDeleteTimeout)
		defer cancel()
		keys := d.keys
		if len(d.prefixes) > 0 {
			prefix := "" // one listing for them all
			if len(d.prefixes) == 1 {
				prefix = d.prefixes[0]
			}
			infos, err := st.List(ctx, prefix)
			if err != nil {
				l.log.Warn("checkpoints not listed for deletion; they stay in the store until the next leader's sweep", "prefixes", d.prefixes, "error", err)
			}
			seen := make(map[string]bool, len(keys))
			for _, k := range keys {
				seen[k] = true
			}
			for _, i := range infos {
				if !seen[i.Key] && slices.ContainsFunc(d.prefixes, func(p string) bool { return strings.HasPrefix(i.Key, p) }) {
					keys = append(keys, i.Key)
				}
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

// checkpointSweep is what a new term knows about which checkpoint blobs
// may be in the store: a blob no record names, of a study or trial that
// can write none any more, is an orphan (a leader died between the commit
// that let go of it and its deletion). Blobs of trials still open are
// left alone: their checkpoint events may be on their way.
type checkpointSweep struct {
	studies map[string]map[string]trialBlobs
}

type trialBlobs struct {
	open bool
	keys map[string]bool
}

// checkpointSweep takes the snapshot of the cache a sweep needs.
func (l *leaderState) checkpointSweep() checkpointSweep {
	sw := checkpointSweep{studies: make(map[string]map[string]trialBlobs, len(l.studies))}
	for name, s := range l.studies {
		trials := make(map[string]trialBlobs, len(s.trials))
		for _, t := range s.trials {
			tb := trialBlobs{open: !t.rec.State.Terminal() || s.quarantined()}
			if len(t.rec.Checkpoints) > 0 {
				tb.keys = make(map[string]bool, len(t.rec.Checkpoints))
				for _, c := range t.rec.Checkpoints {
					tb.keys[c.Key] = true
				}
			}
			trials[t.rec.ID] = tb
		}
		sw.studies[name] = trials
	}
	return sw
}

// orphan reports whether the blob under key may be deleted.
func (sw checkpointSweep) orphan(key string) bool {
	study, rest, ok := strings.Cut(key, "/")
	if !ok {
		return false // not a key the agents write
	}
	trialID, _, ok := strings.Cut(rest, "/")
	if !ok {
		return false
	}
	trials, known := sw.studies[study]
	if !known {
		return true // a deleted study
	}
	tb, known := trials[trialID]
	if !known {
		return true
	}
	return !tb.open && !tb.keys[key]
}

// sweepCheckpoints deletes the orphaned blobs, in the background, once
// per term.
func (l *leader) sweepCheckpoints(sw checkpointSweep) {
	st := l.cfg.Checkpoints
	if st == nil {
		return
	}
	go func() {
		ctx, cancel := context.WithTimeout(l.ctx, checkpointDeleteTimeout)
		defer cancel()
		infos, err := st.List(ctx, "")
		if err != nil {
			l.log.Debug("checkpoint store not swept", "error", err)
			return
		}
		n := 0
		for _, i := range infos {
			if !sw.orphan(i.Key) {
				continue
			}
			if err := st.Delete(ctx, i.Key); err != nil {
				l.log.Warn("orphaned checkpoint not deleted", "key", i.Key, "error", err)
				continue
			}
			n++
		}
		if n > 0 {
			l.log.Info("deleted checkpoints no record names", "count", n)
		}
	}()
}

package coordinator

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"asymptote.dev/asymptote/internal/api"
	"asymptote.dev/asymptote/internal/bus"
	"asymptote.dev/asymptote/sweep"
)

// deletedBlobs returns the blob keys the turn deletes.
func (l *leaderState) deletedBlobs() []string { return l.blobs.keys }

func ckptEvent(tr *trial, attempt int, step, size int64) bus.Event {
	key := fmt.Sprintf("%s/%s/%d-%d", tr.rec.Study, tr.rec.ID, attempt, step)
	return bus.Event{AttemptRef: bus.AttemptRef{Study: tr.rec.Study, Trial: tr.rec.ID, Attempt: attempt}, Kind: bus.EventCheckpoint, Node: "a",
		Checkpoint: &bus.Checkpoint{Attempt: attempt, Step: step, Key: key, Size: size, SHA256: strings.Repeat("0", 64),
			Metrics: map[string]float64{"val_loss": 3, "tokens": float64(step)}}}
}

// TestCheckpointRecords drives the leader's part of checkpoints through
// its turns: recording, replays, retention, the quota, resuming, late
// checkpoints and release on success.
func TestCheckpointRecords(t *testing.T) {
	const mib = 1 << 20
	l := offline(t)
	now := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	l.heartbeat("a", 1, 1<<30, 0, nil, now)
	s := l.addStudy(t, studySpec("s", 1, "{cpu: 1, memory: 16MiB}")+"checkpoints: {keep: 2, quota: 2.5MiB}\n", 0, now)
	l.schedule(now)
	tr := s.trials[0]
	apply := func(ev bus.Event) {
		t.Helper()
		ev.Study, ev.Trial, ev.Time = s.rec.Name, tr.rec.ID, now
		in := eventInput{ev: ev, msg: &durable{}}
		if ev.Kind == bus.EventStarted {
			in.msg = nil
		}
		l.actions, l.blobs = nil, blobDeletion{}
		l.apply(in, now)
	}
	steps := func() []int64 {
		var out []int64
		for _, c := range tr.rec.Checkpoints {
			out = append(out, c.Step)
		}
		return out
	}
	apply(bus.Event{Kind: bus.EventStarted, Node: "a", AttemptRef: bus.AttemptRef{Attempt: 1}})
	apply(ckptEvent(tr, 1, 10, mib))
	apply(ckptEvent(tr, 1, 10, mib)) // a replay
	if got := steps(); !slices.Equal(got, []int64{10}) || s.checkpointBytes != mib {
		t.Fatalf("after a checkpoint and its replay: steps %v, %d bytes", got, s.checkpointBytes)
	}
	apply(ckptEvent(tr, 1, 20, mib))
	apply(ckptEvent(tr, 1, 30, mib))
	if got := steps(); !slices.Equal(got, []int64{20, 30}) {
		t.Errorf("keep 2: steps %v, want [20 30]", got)
	}
	if got := l.deletedBlobs(); len(got) != 1 || !strings.HasSuffix(got[0], "/1-10") {
		t.Errorf("the checkpoint let go of is deleted: %v", got)
	}
	// 30 (1 MiB) and a 2 MiB one would take 3 MiB, over the 2.5 MiB quota.
	apply(ckptEvent(tr, 1, 40, 2*mib))
	if got := steps(); !slices.Equal(got, []int64{20, 30}) {
		t.Errorf("over the quota: steps %v, want [20 30] still", got)
	}
	if notes := tr.rec.Attempts[0].Notes; len(notes) != 1 || !strings.Contains(notes[0], "over its quota") {
		t.Errorf("notes %q, want the quota named", notes)
	}
	if got := l.deletedBlobs(); len(got) != 1 || !strings.HasSuffix(got[0], "/1-40") {
		t.Errorf("the refused checkpoint's blob is deleted: %v", got)
	}
	// Preempted: the next attempt is sent with the checkpoints, latest
	// first.
	apply(bus.Event{Kind: bus.EventFinished, Outcome: bus.OutcomePreempted, Node: "a", AttemptRef: bus.AttemptRef{Attempt: 1}})
	clear(l.outbox)
	l.schedule(now)
	var sent *bus.Dispatch
	for _, ds := range l.outbox {
		sent = ds[0]
	}
	if sent == nil || len(sent.Resume) != 2 || sent.Resume[0].Step != 30 || sent.Resume[1].Step != 20 {
		t.Fatalf("dispatch of attempt 2 resumes from %+v, want steps 30 then 20", sent)
	}
	apply(bus.Event{Kind: bus.EventStarted, Node: "a", AttemptRef: bus.AttemptRef{Attempt: 2}, StartStep: 30, Resume: "resumed from the checkpoint after step 30 of attempt 1"})
	if a := tr.rec.Current(); a.StartStep != 30 || !strings.Contains(a.Resume, "step 30") {
		t.Errorf("attempt 2 start step %d (%q), want 30", a.StartStep, a.Resume)
	}
	// A checkpoint of the superseded attempt does not decide anything.
	apply(ckptEvent(tr, 1, 50, mib))
	if got := steps(); !slices.Equal(got, []int64{20, 30}) || len(l.deletedBlobs()) != 1 {
		t.Errorf("a late checkpoint of attempt 1: steps %v, deleted %v", got, l.deletedBlobs())
	}
	apply(ckptEvent(tr, 2, 60, mib))
	apply(bus.Event{Kind: bus.EventFinished, Outcome: bus.OutcomeSucceeded, Node: "a", AttemptRef: bus.AttemptRef{Attempt: 2}, Metrics: map[string]float64{"val_loss": 2}})
	if tr.rec.State != sweep.Succeeded || len(tr.rec.Checkpoints) != 0 || s.checkpointBytes != 0 {
		t.Errorf("after success: %s with %d checkpoints, %d bytes; want none kept", tr.rec.State, len(tr.rec.Checkpoints), s.checkpointBytes)
	}
	if got := l.deletedBlobs(); len(got) != 2 {
		t.Errorf("on success the kept checkpoints are deleted: %v", got)
	}
}

func TestCheckpointSweep(t *testing.T) {
	sw := checkpointSweep{studies: map[string]map[string]trialBlobs{
		"s": {
			"open": {open: true},
			"done": {keys: map[string]bool{"s/done/1-20": true}},
		},
	}}
	for key, want := range map[string]bool{
		"gone/t/1-10":  true,  // a deleted study
		"s/nope/1-10":  true,  // no such trial
		"s/open/1-10":  false, // its events may be on their way
		"s/done/1-10":  true,  // no record names it
		"s/done/1-20":  false, // the record keeps it
		"not-a-key":    false,
		"s/only-trial": false,
	} {
		if got := sw.orphan(key); got != want {
			t.Errorf("orphan(%q) = %v, want %v", key, got, want)
		}
	}
	// The snapshot comes from the cache.
	l := offline(t)
	now := time.Now()
	s := l.addStudy(t, studySpec("s", 2, "{cpu: 1, memory: 16MiB}"), 0, now)
	s.trials[0].rec.State = sweep.Succeeded
	s.trials[0].rec.Checkpoints = []api.Checkpoint{{Key: "s/" + s.trials[0].rec.ID + "/1-5"}}
	snap := l.checkpointSweep()
	if snap.orphan("s/"+s.trials[0].rec.ID+"/1-5") || !snap.orphan("s/"+s.trials[0].rec.ID+"/1-4") || snap.orphan("s/"+s.trials[1].rec.ID+"/1-4") {
		t.Errorf("snapshot %+v", snap)
	}
}

func TestBatchLenBoundsBytes(t *testing.T) {
	small := make([]*bus.Dispatch, 300)
	for i := range small {
		small[i] = &bus.Dispatch{AttemptRef: bus.AttemptRef{Study: "s", Trial: "t", Attempt: 1}, Method: "m", Threads: 1}
	}
	if n := batchLen(small); n != bus.MaxDispatchBatch {
		t.Errorf("small dispatches: batch of %d, want %d", n, bus.MaxDispatchBatch)
	}
	// Dispatches resuming from many checkpoints with many metrics each.
	metrics := map[string]float64{}
	for i := range maxCheckpointMetrics {
		metrics[fmt.Sprintf("metric_with_a_long_name_%03d", i)] = float64(i)
	}
	big := make([]*bus.Dispatch, 300)
	for i := range big {
		d := *small[i]
		for j := range sweep.MaxCheckpointKeep {
			d.Resume = append(d.Resume, bus.Checkpoint{Attempt: 1, Step: int64(j + 1), Key: "s/t/1-1", SHA256: strings.Repeat("0", 64), Metrics: metrics})
		}
		big[i] = &d
	}
	n := batchLen(big)
	b, _ := json.Marshal(bus.DispatchBatch{Dispatches: func() []bus.Dispatch {
		out := make([]bus.Dispatch, n)
		for i := range out {
			out[i] = *big[i]
		}
		return out
	}()})
	if n < 1 || n >= bus.MaxDispatchBatch || len(b) > maxBatchBytes+64<<10 {
		t.Errorf("large dispatches: batch of %d encodes to %d bytes, want under %d", n, len(b), maxBatchBytes)
	}
}

package coordinator

import (
	"context"
	"fmt"
	"time"

	"asymptote.dev/asymptote/internal/api"
	"asymptote.dev/asymptote/internal/bus"
	"asymptote.dev/asymptote/internal/store"
)

// A study is quarantined when one of its records can never be written as
// it is (too large for etcd, not encodable as JSON, or corrupt in etcd), or
// when an operator asks. A quarantined study is frozen: nothing of it is
// scheduled, its writes are held in the cache, its trials' outcomes wait
// in the event stream unacknowledged, and every other study carries on.
// `asymptote study resume` writes the held records again (and quarantines
// the study anew if they still cannot be written); `asymptote study
// delete` removes it. The quarantine has its own small record, so it lands
// even when the study's own record is the one that cannot be written, and
// a new leader finds the study quarantined.

// quarantineState is what a study keeps while quarantined.
type quarantineState struct {
	rec api.Quarantine
	rev int64
	// prev is the study's state before the quarantine, restored on resume.
	prev api.StudyState
	// held are the study's trials, and whether its own record, that
	// changed while it was quarantined (or whose write was rejected).
	held      map[*trial]bool
	heldStudy bool
	// written is true once the quarantine record is durable.
	written bool
}

func (s *study) quarantined() bool { return s.q != nil }

// quarantine freezes s with reason. It is idempotent: a second reason is
// logged but the first is kept.
func (l *leaderState) quarantine(s *study, by, reason string, now time.Time) {
	if s.q != nil {
		l.log.Warn("quarantined study: another problem", "study", s.rec.Name, "reason", reason)
		return
	}
	l.log.Error("study quarantined; every other study carries on", "study", s.rec.Name, "reason", reason,
		"fix", "asymptote study resume "+s.rec.Name+" (after the cause is fixed) or asymptote study delete "+s.rec.Name)
	s.q = &quarantineState{
		rec:  api.Quarantine{Study: s.rec.Name, Reason: reason, By: by, Time: now},
		prev: s.rec.State,
		held: map[*trial]bool{},
	}
	s.rec.State = api.StudyQuarantined
	l.quarantined[s] = true
}

// hold moves the quarantined studies' pending writes out of the turn's
// batch, so nothing of a frozen study is written.
func (l *leaderState) hold() {
	for t := range l.dirtyTrials {
		if q := t.study.q; q != nil {
			q.held[t] = true
			delete(l.dirtyTrials, t)
		}
	}
	for s := range l.dirtyStudies {
		if s.q != nil {
			s.q.heldStudy = true
			delete(l.dirtyStudies, s)
		}
	}
}

// reject handles the puts etcd can never take: each one's study is
// quarantined with the reason, and the record is held with it. A rejected
// node record (a hostile heartbeat) is dropped and logged.
func (l *leaderState) reject(rej *store.RejectedError, owners []any, now time.Time) {
	for _, r := range rej.Puts {
		switch o := owners[r.Index].(type) {
		case *trial:
			l.quarantine(o.study, "leader", fmt.Sprintf("trial %s cannot be stored: %s", o.rec.ID, r.Reason), now)
			o.study.q.held[o] = true
		case *study:
			l.quarantine(o, "leader", fmt.Sprintf("the study record cannot be stored: %s", r.Reason), now)
			o.q.heldStudy = true
		case *node:
			l.log.Error("node record cannot be stored; dropped", "node", o.rec.ID, "reason", r.Reason)
		default:
			l.log.Error("kept event cannot be stored", "key", r.Key, "reason", r.Reason)
		}
	}
}

// writeQuarantines makes the new quarantine records durable. They are
// small and always encode, so only a transient error or a lost fence can
// stop them, and those end the term like any commit.
func (l *leader) writeQuarantines(ctx context.Context) error {
	var puts []store.Put
	var qs []*quarantineState
	for s := range l.quarantined {
		if s.q == nil || s.q.written {
			delete(l.quarantined, s)
			continue
		}
		puts = append(puts, store.Put{Key: store.QuarantineKey(s.rec.Name), Value: &s.q.rec, Rev: s.q.rev})
		qs = append(qs, s.q)
	}
	if len(puts) == 0 {
		return nil
	}
	revs, err := l.commitWithRetry(ctx, puts)
	if err != nil {
		return fmt.Errorf("write quarantine records: %w", err)
	}
	for i, q := range qs {
		q.rev, q.written = revs[i], true
	}
	clear(l.quarantined)
	return nil
}

// resumeStudy lifts a quarantine: the study's state comes back, its held
// records are written in the next commit (a record that still cannot be
// written quarantines it again, with the new reason), and its waiting
// outcomes are applied as the stream redelivers them.
func (l *leaderState) resumeStudy(s *study) error {
	q := s.q
	if q == nil {
		return fmt.Errorf("study %q is not quarantined", s.rec.Name)
	}
	if q.written {
		l.removals = append(l.removals, store.Put{Key: store.QuarantineKey(s.rec.Name), Rev: q.rev, Delete: true})
	}
	s.q = nil
	delete(l.quarantined, s)
	s.rec.State = q.prev
	for t := range q.held {
		l.dirtyTrials[t] = true
	}
	// The study record is written back whether or not it was held, so
	// that its state is current again.
	l.dirtyStudies[s] = true
	l.log.Info("study resumed", "study", s.rec.Name, "held_records", len(q.held))
	return nil
}

// deleteStudy removes a study and every one of its trials from etcd and
// from the cache, and stops its running attempts. Only a study that is
// quarantined, cancelled or done may be deleted, so a running study is
// never removed by a slip of the hand.
func (l *leaderState) deleteStudy(s *study, now time.Time) (int, error) {
	switch s.rec.State {
	case api.StudyQuarantined, api.StudyCancelled, api.StudyDone:
	default:
		return 0, fmt.Errorf("study %q is %s; cancel it first ('asymptote cancel %s'), or quarantine it ('asymptote study quarantine %s'), then delete it", s.rec.Name, s.rec.State, s.rec.Name, s.rec.Name)
	}
	// Pending writes of the study are dropped: it is going away.
	for t := range l.dirtyTrials {
		if t.study == s {
			delete(l.dirtyTrials, t)
		}
	}
	delete(l.dirtyStudies, s)
	delete(l.expanding, s)
	// The commit deletes its keys before it writes anything else; if that
	// fails, the term ends and the next leader finds the study again.
	l.deleted = append(l.deleted, s.rec.Name)
	running := 0
	byNode := map[string][]bus.AttemptRef{}
	for _, t := range s.trials {
		if t.node != nil {
			byNode[t.node.rec.ID] = append(byNode[t.node.rec.ID], t.ref())
			t.node.release(t)
			running++
		}
	}
	// Its metric history goes with it (a failure leaves the reports to
	// the retention age, and is logged).
	name := s.rec.Name
	l.do(purgeHistory{name})
	l.deleteBlobs(nil, name+"/")
	for node, refs := range byNode {
		data := bus.Encode(&bus.Cancel{Attempts: refs, Reason: "the study was deleted"})
		subj := bus.CancelSubject(node)
		l.do(publish{subj, data})
	}
	l.do(unwatchMetrics{name})
	delete(l.studies, s.rec.Name)
	delete(l.quarantined, s)
	for i, o := range l.order {
		if o == s {
			l.order = append(l.order[:i], l.order[i+1:]...)
			break
		}
	}
	l.log.Info("study deleted", "study", s.rec.Name, "trials", len(s.trials), "stopped", running)
	return len(s.trials), nil
}

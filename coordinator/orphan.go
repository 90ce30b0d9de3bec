package coordinator

import (
	"context"
	"time"

	"asymptote.dev/asymptote/internal/api"
	"asymptote.dev/asymptote/internal/store"
)

// An orphan is a trial event the leader cannot apply: no study or trial of
// that name (never submitted, or deleted since), or an outcome from a node
// other than the one its attempt was dispatched to. Acknowledging and
// forgetting such an event would lose an outcome for good if the cause is
// ours (a study an upgrade cannot read, a deleted study resubmitted), so
// it is kept in etcd with its reason, counted in status, and only then
// acknowledged.

// maxOrphans bounds the kept events, so a hostile publisher cannot fill
// etcd; past it, events are acknowledged and counted as dropped, loudly.
const maxOrphans = 10_000

// recentOrphans is how many of the latest orphans status shows.
const recentOrphans = 5

type orphans struct {
	keys    map[string]bool
	recent  []api.Orphan
	pending []store.Put
	dropped int
}

// loadOrphans reads the kept events at the start of a term.
func (l *leader) loadOrphans(ctx context.Context) error {
	l.orph.keys = map[string]bool{}
	return l.store.Orphans(ctx, func(key string, v store.Versioned[api.Orphan]) error {
		l.orph.keys[key] = true
		l.noteOrphan(v.Value)
		return nil
	})
}

func (l *leaderState) noteOrphan(o api.Orphan) {
	l.orph.recent = append(l.orph.recent, o)
	if len(l.orph.recent) > recentOrphans {
		l.orph.recent = l.orph.recent[len(l.orph.recent)-recentOrphans:]
	}
}

// orphan keeps an event that cannot be applied; its acknowledgement is an
// action of the turn, after the record is durable.
func (l *leaderState) orphan(in eventInput, reason string, now time.Time) {
	ev := in.ev
	l.log.Warn("keeping an event that cannot be applied", "study", ev.Study, "trial_id", ev.Trial, "attempt", ev.Attempt, "node", ev.Node, "reason", reason)
	if in.msg == nil {
		return // a started event changes nothing durable
	}
	key := store.OrphanKey(ev.MsgID())
	if !l.orph.keys[key] {
		if len(l.orph.keys) >= maxOrphans {
			l.orph.dropped++
			l.log.Error("too many kept events; dropping one", "kept", len(l.orph.keys), "dropped", l.orph.dropped, "study", ev.Study, "trial_id", ev.Trial)
		} else {
			o := api.Orphan{
				Study: ev.Study, Trial: ev.Trial, Attempt: ev.Attempt, Node: ev.Node,
				Outcome: string(ev.Outcome), Metrics: ev.Metrics, Error: ev.Error,
				Reason: reason, Received: now,
			}
			l.orph.keys[key] = true
			l.orph.pending = append(l.orph.pending, store.Put{Key: key, Value: &o})
			l.noteOrphan(o)
		}
	}
	l.do(ack{msg: in.msg})
}

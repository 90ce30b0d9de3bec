package coordinator

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/nats-io/nats.go"

	"asymptote.dev/asymptote/internal/api"
	"asymptote.dev/asymptote/internal/bus"
	"asymptote.dev/asymptote/sweep"
)

// schedule places ready trials on nodes with room for them.
//
// Teams share the cluster first: each placement goes to the team with the
// least running attempts per unit of its weight (Quota.Weight), taking
// turns when they tie, and never past the team's quota. Within a team,
// studies are served by priority, highest first; studies of equal
// priority share the team's turns fairly: the study with the fewest
// running attempts goes next, taking turns when they tie. A trial goes to
// the node that fits it with the most free CPU, which spreads load across
// agents. With one team and no quota this is priority order and fair
// sharing among studies, as before teams.
func (l *leaderState) schedule(now time.Time) {
	if len(l.nodes) == 0 {
		return
	}
	var active []*study
	for _, s := range l.order {
		if s.rec.State == api.StudyActive && len(s.ready) > 0 {
			active = append(active, s)
		}
	}
	if len(active) == 0 {
		return
	}
	nodes := make([]*node, 0, len(l.nodes))
	for _, n := range l.nodes {
		if n.rec.State == api.NodeAlive && !n.draining {
			nodes = append(nodes, n)
		}
	}
	use := l.teamUsage()
	teams := teamQueues(active, l.cfg.Quotas)
	blocked := make(map[*study]bool)
	for {
		q, pick := pickStudy(teams, blocked, use)
		if pick == nil {
			return
		}
		if quotaFull(q.team, q.quota, use[q.team], pick.needs) != "" {
			// Every trial of a study needs the same resources: if one
			// would pass the quota, all would this turn.
			blocked[pick] = true
			continue
		}
		n := bestFit(nodes, pick.rec.Method, pick.needs, l.queueAhead(pick))
		if n == nil {
			// Likewise, if one does not fit, none does.
			blocked[pick] = true
			continue
		}
		t := pick.next()
		pick.pop()
		l.served++
		pick.served = l.served
		l.dispatch(t, n, now)
		u := use[q.team]
		u.add(pick.needs, 1)
		use[q.team] = u
	}
}

// teamQueue is one team's studies with trials ready, for a turn.
type teamQueue struct {
	team    string
	quota   Quota
	studies []*study
}

// teamQueues groups the active studies by team, in the order each team's
// first study comes.
func teamQueues(active []*study, quotas map[string]Quota) []*teamQueue {
	var out []*teamQueue
	byTeam := map[string]*teamQueue{}
	for _, s := range active {
		team := s.rec.TeamOf()
		q := byTeam[team]
		if q == nil {
			q = &teamQueue{team: team, quota: quotas[team]}
			byTeam[team] = q
			out = append(out, q)
		}
		q.studies = append(q.studies, s)
	}
	for _, q := range out {
		// Highest priority first, so a pick looks no further than the
		// first priority with a study that can go.
		slices.SortStableFunc(q.studies, func(a, b *study) int { return b.rec.Priority - a.rec.Priority })
	}
	return out
}

// pickStudy chooses the study whose trial is placed next, and its team,
// or nil when every study is blocked or has none ready: the team with the
// least share (ties: the team served longest ago), then its study of
// highest priority, then the one with the fewest running attempts (ties:
// served longest ago). It changes nothing.
func pickStudy(teams []*teamQueue, blocked map[*study]bool, use map[string]teamUse) (*teamQueue, *study) {
	var (
		pickQ      *teamQueue
		pick       *study
		pickShare  float64
		pickServed uint64
	)
	for _, q := range teams {
		var best *study
		var served uint64 // the team's latest dispatch
		for _, s := range q.studies {
			served = max(served, s.served)
			if best != nil && s.rec.Priority < best.rec.Priority {
				continue // sorted: none of lower priority goes first
			}
			if blocked[s] || s.next() == nil {
				continue
			}
			if best == nil || s.rec.Priority > best.rec.Priority ||
				s.rec.Priority == best.rec.Priority && (s.running < best.running || s.running == best.running && s.served < best.served) {
				best = s
			}
		}
		if best == nil {
			continue
		}
		sh := share(q.quota, use[q.team])
		if pick == nil || sh < pickShare || sh == pickShare && served < pickServed {
			pickQ, pick, pickShare, pickServed = q, best, sh, served
		}
	}
	return pickQ, pick
}

// queueAhead reports whether s's trials may wait in agents' queues: its
// attempts so far held their slots for less than QueueBelow on average.
func (l *leaderState) queueAhead(s *study) bool {
	return s.timed > 0 && s.slotTime < l.cfg.QueueBelow
}

// noteSlotTime adds an attempt's time on its slot to the study's average.
func (s *study) noteSlotTime(d time.Duration) {
	if d <= 0 {
		return
	}
	s.timed++
	if s.timed == 1 {
		s.slotTime = d
		return
	}
	s.slotTime += (d - s.slotTime) / 8
}

func bestFit(nodes []*node, method string, needs bus.Resources, ahead bool) *node {
	var best *node
	for _, n := range nodes {
		if !n.offers(method) || !n.fits(needs, ahead) {
			continue
		}
		if best == nil || n.rec.CPU-n.usedCPU > best.rec.CPU-best.usedCPU {
			best = n
		}
	}
	return best
}

// dispatch starts a new attempt of t on n: the attempt is recorded, and
// the dispatch sent once the record is durable.
func (l *leaderState) dispatch(t *trial, n *node, now time.Time) {
	s := t.study
	t.rec.Attempt++
	t.rec.NotBefore = nil
	t.missing = time.Time{}
	t.unanswered = ""
	gpus := n.reserve(t, s.needs)
	t.rec.Attempts = append(t.rec.Attempts, api.Attempt{
		N: t.rec.Attempt, Node: n.rec.ID, State: api.AttemptDispatched, GPUs: gpus, Dispatched: now,
	})
	if t.rec.Attempt > 1 {
		s.retries++
	}
	s.running++
	l.setState(t, sweep.Dispatched, now)
	d := &bus.Dispatch{
		AttemptRef:    t.ref(),
		Method:        t.rec.Method,
		MethodVersion: t.rec.MethodVersion,
		Params:        t.rec.Params,
		Seed:          t.rec.Seed,
		Threads:       max(1, int(s.needs.CPU)),
		GPUs:          gpus,
		Resources:     s.needs,
		Timeout:       bus.Duration(s.spec.Timeout),
		Leader:        l.cfg.ID,
		Config:        s.methodConfig,
		Resume:        resumeFrom(t),
	}
	l.outbox[n] = append(l.outbox[n], d)
}

// sendDispatches sends the turn's dispatches once the turn's records are
// durable: one request per node (in batches of at most
// bus.MaxDispatchBatch), whose replies come back to the loop as inputs for
// the attempts refused or unanswered.
func (l *leader) sendDispatches() {
	nc, timeout := l.cfg.NATS, l.cfg.DispatchTimeout
	for n, ds := range l.outbox {
		node := n.rec.ID
		for len(ds) > 0 {
			k := batchLen(ds)
			batch := bus.DispatchBatch{Dispatches: make([]bus.Dispatch, k)}
			for i, d := range ds[:k] {
				batch.Dispatches[i] = *d
			}
			ds = ds[k:]
			data := bus.Encode(&batch)
			go func() {
				failed := dispatchBatch(nc, timeout, node, batch.Dispatches, data)
				if len(failed) == 0 {
					return
				}
				// The term may have ended; then the next leader
				// reconciles.
				select {
				case l.inbox <- failed:
				case <-time.After(time.Second):
				}
			}()
		}
	}
	clear(l.outbox)
}

// maxBatchBytes bounds a dispatch batch's encoding, well below NATS's
// default 1 MB payload limit: dispatches that resume from checkpoints carry
// their records, so a batch of MaxDispatchBatch of them may not fit.
const maxBatchBytes = 512 << 10

// batchLen returns how many of ds the next batch takes: at most
// bus.MaxDispatchBatch, and no more than fit in maxBatchBytes (at least
// one).
func batchLen(ds []*bus.Dispatch) int {
	size := 0
	for i, d := range ds {
		if i == bus.MaxDispatchBatch {
			return i
		}
		b, err := json.Marshal(d)
		if err != nil {
			return max(i, 1) // Encode reports it
		}
		size += len(b) + 1
		if size > maxBatchBytes && i > 0 {
			return i
		}
	}
	return len(ds)
}

// dispatchBatch sends one batch to node and returns the attempts it did
// not accept, with the reason.
func dispatchBatch(nc *nats.Conn, timeout time.Duration, node string, ds []bus.Dispatch, data []byte) []dispatchInput {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	all := func(reason string) []dispatchInput {
		out := make([]dispatchInput, len(ds))
		for i, d := range ds {
			out[i] = dispatchInput{ref: d.AttemptRef, node: node, reason: reason}
		}
		return out
	}
	msg, err := nc.RequestWithContext(ctx, bus.DispatchSubject(node), data)
	switch {
	case errors.Is(err, nats.ErrNoResponders):
		return all("agent " + node + " is not listening")
	case err != nil:
		out := all("agent " + node + " did not answer: " + err.Error())
		for i := range out {
			out[i].unanswered = true
		}
		return out
	}
	var r bus.DispatchBatchReply
	if err := bus.Decode(msg.Data, &r); err != nil {
		return all("agent " + node + " answered garbage: " + err.Error())
	}
	if len(r.Replies) != len(ds) {
		return all(fmt.Sprintf("agent %s answered %d of %d dispatches", node, len(r.Replies), len(ds)))
	}
	var failed []dispatchInput
	for i, rep := range r.Replies {
		if !rep.Accepted {
			failed = append(failed, dispatchInput{ref: ds[i].AttemptRef, node: node, reason: "agent " + node + " refused: " + rep.Reason})
		}
	}
	return failed
}

// onDispatchReply handles an agent's answer to a dispatch. A refused
// dispatch makes the attempt stale, and the trial runs again elsewhere. An
// unanswered one may still have reached the agent, which then runs it (a
// loaded host answers late): the agent's next heartbeats decide
// (onHeartbeat), so a long trial that started is not run twice.
func (l *leaderState) onDispatchReply(in dispatchInput, now time.Time) {
	if in.reason == "" {
		return
	}
	s := l.studies[in.ref.Study]
	if s == nil {
		return
	}
	t := s.byID[in.ref.Trial]
	if t == nil {
		return
	}
	a := t.rec.Current()
	if a == nil || a.N != in.ref.Attempt || a.State != api.AttemptDispatched {
		return
	}
	// Place nothing more there until the node heartbeats: a vanished
	// agent would otherwise take every dispatch until its grace period
	// ends, and a full one would refuse them.
	if n := l.nodes[in.node]; n != nil {
		n.held = true
	}
	if in.unanswered {
		l.log.Warn("dispatch unanswered; the agent's next heartbeats say whether it runs the attempt", "study", in.ref.Study, "trial_id", in.ref.Trial, "attempt", in.ref.Attempt, "node_id", in.node, "reason", in.reason)
		t.unanswered, t.unlisted = in.reason, 0
		return
	}
	l.log.Warn("dispatch failed", "study", in.ref.Study, "trial_id", in.ref.Trial, "attempt", in.ref.Attempt, "node_id", in.node, "reason", in.reason)
	// Hold the retry back a little so a node that keeps refusing is not
	// hammered.
	l.markStaleAfter(t, a, in.reason, now, time.Second)
}

// sortTrials puts a loaded study's trials and ready queue in expansion
// order.
func sortTrials(s *study) {
	byIndex := func(a, b *trial) int { return a.rec.Index - b.rec.Index }
	slices.SortFunc(s.trials, byIndex)
	slices.SortFunc(s.ready, byIndex)
}

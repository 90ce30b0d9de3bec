package coordinator

import (
	"slices"
	"time"

	"asymptote.dev/asymptote/internal/api"
	"asymptote.dev/asymptote/internal/bus"
)

// dispatchSlack is how long after a dispatch an agent's heartbeat may
// still omit the attempt (the dispatch and the heartbeat can cross).
const dispatchSlack = 5 * time.Second

// outcomeWait is how long an attempt may be missing from its agent's
// heartbeats before the leader calls it stale. An agent drops an attempt
// from its heartbeats only once JetStream has acknowledged the attempt's
// outcome, so the outcome is on its way; but it reaches a new leader only
// after the events consumer's ack wait when a dead leader had received it,
// and not at all while the events consumer has no leader (a NATS cluster
// recovering from losing two members in a row took 20s in the chaos
// suite). Calling the attempt stale sooner would run a finished trial
// again. Waiting longer costs when JetStream lost the outcome, which
// Debian's nats-server 2.9 did in the chaos suite after two members were
// lost in a row (acknowledged events of an R3 work-queue stream never
// delivered): then the trial runs again after this wait.
const outcomeWait = 30 * time.Second

// onHeartbeat registers or refreshes a node and reconciles what it runs
// with what the leader believes it runs. An attempt the leader placed there
// that the agent does not report is stale; an attempt the agent runs that is
// no longer current is cancelled through the reply.
func (l *leaderState) onHeartbeat(in heartbeatInput, now time.Time) {
	hb := in.hb
	n := l.nodes[hb.Node]
	if n == nil {
		n = newNode(api.Node{ID: hb.Node, Joined: now}, 0)
		l.nodes[hb.Node] = n
		l.log.Info("node joined", "node_id", hb.Node, "cpu", hb.Resources.CPU, "memory", hb.Resources.Memory, "gpus", len(hb.Resources.GPUs))
	}
	restarted := n.rec.Boot != "" && n.rec.Boot != hb.Boot
	revived := n.rec.State != api.NodeAlive
	n.seen = now
	n.draining = hb.Draining
	n.queue = hb.Queue
	n.held = false
	gpus := make([]api.GPU, len(hb.Resources.GPUs))
	copy(gpus, hb.Resources.GPUs)
	changed := revived || n.rec.Boot != hb.Boot || n.rec.CPU != hb.Resources.CPU || n.rec.Memory != hb.Resources.Memory || len(n.rec.GPUs) != len(gpus) ||
		!slices.Equal(n.rec.Methods, hb.Methods)
	n.rec.State = api.NodeAlive
	n.rec.Boot = hb.Boot
	n.rec.CPU = hb.Resources.CPU
	n.rec.Memory = hb.Resources.Memory
	n.rec.GPUs = gpus
	n.rec.Methods = hb.Methods
	n.rec.DeadSince = nil
	// LastSeen is written only with other changes: a write per heartbeat
	// would cost etcd more than everything else the leader does.
	n.rec.LastSeen = now
	if changed {
		l.dirtyNodes[n] = true
		if revived {
			l.log.Info("node alive", "node_id", hb.Node)
		}
	}

	running := make(map[bus.AttemptRef]bool, len(hb.Running))
	for _, r := range hb.Running {
		running[r] = true
	}
	for _, t := range n.attempts {
		a := t.rec.Current()
		if a == nil {
			continue
		}
		switch {
		case restarted:
			l.markStale(t, a, "agent "+hb.Node+" restarted", now)
		case running[t.ref()] || now.Sub(a.Dispatched) <= dispatchSlack:
			t.missing = time.Time{}
		case t.missing.IsZero():
			t.missing = now
		case now.Sub(t.missing) > outcomeWait:
			l.markStale(t, a, "agent "+hb.Node+" no longer runs it and its outcome never arrived", now)
		}
	}
	var reply bus.HeartbeatReply
	reply.Leader = l.cfg.ID
	if hb.Allow != l.allowed.version {
		reply.Allow = l.allowed.forAgent()
	}
	n.leftover = usage{}
	for _, r := range hb.Running {
		if l.isCurrent(r, hb.Node) {
			continue
		}
		s, a := l.attemptOf(r)
		// An attempt whose outcome this agent reported is over: the agent
		// frees its resources before it publishes the outcome, and lists
		// the attempt only until the outcome is acknowledged. Cancelling
		// it would do nothing, and counting it would keep its slot idle
		// until the next heartbeat.
		if a != nil && a.Node == hb.Node && outcomeReported(a.State) {
			continue
		}
		reply.Cancel = append(reply.Cancel, r)
		n.addLeftover(s, a)
	}
	if in.msg.Reply != "" {
		data := bus.Encode(&reply)
		l.do(respond{in.msg, data})
	}
}

// attemptOf returns r's study and attempt record, either nil when the
// leader does not know them.
func (l *leaderState) attemptOf(r bus.AttemptRef) (*study, *api.Attempt) {
	s := l.studies[r.Study]
	if s == nil {
		return nil, nil
	}
	if t := s.byID[r.Trial]; t != nil && r.Attempt >= 1 && r.Attempt <= len(t.rec.Attempts) {
		return s, &t.rec.Attempts[r.Attempt-1]
	}
	return s, nil
}

// addLeftover counts what a superseded attempt of study s still running on
// n occupies, as far as the leader knows it (a may be nil).
func (n *node) addLeftover(s *study, a *api.Attempt) {
	if s == nil {
		return
	}
	n.leftover.attempts++
	n.leftover.cpu += s.needs.CPU
	n.leftover.mem += s.needs.Memory
	if a == nil {
		return
	}
	for _, g := range a.GPUs {
		if n.leftover.gpus == nil {
			n.leftover.gpus = map[int]bool{}
		}
		n.leftover.gpus[g] = true
	}
}

// outcomeReported reports whether an attempt in state st ended by its
// agent's finished event, rather than by the leader's decision (stale,
// cancelled), after which the agent may still be running it.
func outcomeReported(st api.AttemptState) bool {
	switch st {
	case api.AttemptSucceeded, api.AttemptFailed, api.AttemptInvalid, api.AttemptTimedOut, api.AttemptPreempted:
		return true
	}
	return false
}

// isCurrent reports whether r is the current, unfinished attempt of its
// trial and runs on node.
func (l *leaderState) isCurrent(r bus.AttemptRef, node string) bool {
	s := l.studies[r.Study]
	if s == nil {
		return false
	}
	t := s.byID[r.Trial]
	if t == nil {
		return false
	}
	a := t.rec.Current()
	return a != nil && a.N == r.Attempt && !a.State.Terminal() && a.Node == node
}

// onTick declares silent nodes dead, marking their attempts stale, and
// releases retry backoffs that have passed.
func (l *leaderState) onTick(now time.Time) {
	grace := l.cfg.HeartbeatGrace
	for _, n := range l.nodes {
		if n.rec.State != api.NodeAlive || now.Sub(n.seen) <= grace {
			continue
		}
		l.log.Warn("node missed its heartbeat grace period; marking it dead", "node_id", n.rec.ID, "silent", now.Sub(n.seen).Round(time.Millisecond), "attempts", len(n.attempts))
		n.rec.State = api.NodeDead
		dead := now
		n.rec.DeadSince = &dead
		if n.rev != 0 || n.rec.Boot != "" {
			l.dirtyNodes[n] = true
		}
		for _, t := range n.attempts {
			if a := t.rec.Current(); a != nil {
				l.markStale(t, a, "agent "+n.rec.ID+" missed its heartbeats", now)
			}
		}
	}
	for _, s := range l.order {
		s.promote(now)
	}
}

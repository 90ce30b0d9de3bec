package coordinator

import (
	"log/slog"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"asymptote.dev/asymptote/internal/api"
	"asymptote.dev/asymptote/internal/bus"
	"asymptote.dev/asymptote/internal/store"
	"asymptote.dev/asymptote/strategy"
	"asymptote.dev/asymptote/sweep"
)

// leaderState is what a leader knows during one term: the cache of every
// study, trial and node, and what the current turn changed. Its methods
// apply the turn's inputs, schedule, record and decide, and none of them
// does I/O: the records a turn changed are the dirty sets, which the
// term's commit writes, and what the turn asks of the outside world is its
// list of actions, which the term performs once the commit is durable (the
// shape of etcd's raft, whose Ready hands the caller what to persist and
// send). The tests drive it directly, with no server (turn_test.go).
type leaderState struct {
	cfg *Config
	log *slog.Logger
	// check reports the records etcd could never take, before anything
	// is written (store.Check).
	check func([]store.Put) *store.RejectedError
	since time.Time

	studies map[string]*study
	order   []*study
	nodes   map[string]*node
	// served counts dispatches, for round-robin between equal studies.
	served uint64

	// The current turn's pending writes and actions.
	dirtyTrials  map[*trial]bool
	dirtyStudies map[*study]bool
	dirtyNodes   map[*node]bool
	actions      []action
	// blobs are the checkpoint blobs the turn let go of, deleted after the
	// commit.
	blobs blobDeletion
	// outbox holds the turn's dispatches by node, sent after the commit
	// as one batch per node.
	outbox map[*node][]*bus.Dispatch
	// quarantined holds the studies whose quarantine record is still to
	// be written.
	quarantined map[*study]bool
	// orph holds the kept events that could not be applied (orphan.go).
	orph orphans
	// expanding holds the studies that gained trials this turn (or are
	// new): the commit marks each submitting before their trials land,
	// and active only after.
	expanding map[*study]bool
	// deleted names the studies removed this turn, whose keys the commit
	// deletes first; removals holds other deletions (a lifted
	// quarantine's record).
	deleted  []string
	removals []store.Put
	// allowed is the cluster's allowlist (allowlist.go).
	allowed allowlist
}

func newLeaderState(cfg *Config, log *slog.Logger, check func([]store.Put) *store.RejectedError) *leaderState {
	return &leaderState{
		cfg:          cfg,
		log:          log,
		check:        check,
		since:        time.Now(),
		studies:      map[string]*study{},
		nodes:        map[string]*node{},
		dirtyTrials:  map[*trial]bool{},
		dirtyStudies: map[*study]bool{},
		dirtyNodes:   map[*node]bool{},
		outbox:       map[*node][]*bus.Dispatch{},
		quarantined:  map[*study]bool{},
		orph:         orphans{keys: map[string]bool{}},
		expanding:    map[*study]bool{},
	}
}

// An action is what a turn asks of the outside world once its writes are
// durable; the term performs it (leader.perform).
type action interface{ isAction() }

type (
	// publish sends data on subject (cancellations).
	publish struct {
		subject string
		data    []byte
	}
	// respond answers a request with data as it is (heartbeat replies).
	respond struct {
		msg  *nats.Msg
		data []byte
	}
	// reply answers a client API request with v or err; with unless set,
	// it answers that the study is quarantined if the commit
	// quarantined it.
	reply struct {
		msg    *nats.Msg
		v      any
		err    error
		unless *study
	}
	// ack acknowledges a recorded event; it is dropped if the commit
	// quarantined the study, whose outcomes wait in the stream.
	ack struct {
		msg   jetstream.Msg
		study *study
	}
	// nak has the stream offer an event again after delay.
	nak struct {
		msg   jetstream.Msg
		delay time.Duration
	}
	// watchMetrics and unwatchMetrics start and end the term's
	// subscription to a study's streamed metrics (ASHA).
	watchMetrics   struct{ study string }
	unwatchMetrics struct{ study string }
	// purgeHistory removes a deleted study's metric history.
	purgeHistory struct{ study string }
	// sendHistory answers a history request, whose caller may read the
	// study, with the study's metric history.
	sendHistory struct {
		msg          *nats.Msg
		study, trial string
	}
)

func (publish) isAction()        {}
func (respond) isAction()        {}
func (reply) isAction()          {}
func (ack) isAction()            {}
func (nak) isAction()            {}
func (watchMetrics) isAction()   {}
func (unwatchMetrics) isAction() {}
func (purgeHistory) isAction()   {}
func (sendHistory) isAction()    {}

// do queues an action of the turn.
func (l *leaderState) do(a action) { l.actions = append(l.actions, a) }

// respond queues the reply to a client API request.
func (l *leaderState) respond(m *nats.Msg, v any, err error) {
	if m.Reply != "" {
		l.do(reply{msg: m, v: v, err: err})
	}
}

// apply applies one input to the state. It does no I/O: what the
// input changes is written by the turn's commit, and what it asks of the
// outside world (replies, acknowledgements, dispatches, cancellations,
// subscriptions) is queued as actions performed after the commit.
func (l *leaderState) apply(in any, now time.Time) {
	switch in := in.(type) {
	case eventInput:
		l.onEvent(in, now)
	case heartbeatInput:
		l.onHeartbeat(in, now)
	case apiInput:
		l.onAPI(in, now)
	case []dispatchInput:
		for _, d := range in {
			l.onDispatchReply(d, now)
		}
	case tickInput:
		l.onTick(now)
	case refitInput:
		l.onRefit(in, now)
	case metricsInput:
		l.onMetrics(in, now)
	}
}

// addTrial puts a loaded or new trial into the cache.
func (l *leaderState) addTrial(s *study, t *trial, now time.Time) {
	s.trials = append(s.trials, t)
	s.byID[t.rec.ID] = t
	for _, c := range t.rec.Checkpoints {
		s.checkpointBytes += c.Size
	}
	s.counts[t.rec.State]++
	switch t.rec.State {
	case sweep.Pending:
		s.enqueue(t, now)
	case sweep.Dispatched, sweep.Running:
		a := t.rec.Current()
		n := l.nodes[a.Node]
		if n == nil || n.rec.State != api.NodeAlive {
			// The attempt's node is gone; the next tick marks it stale.
			n = l.ghostNode(a.Node)
		}
		n.reserve(t, s.needs)
		s.running++
	}
	for _, a := range t.rec.Attempts {
		switch a.State {
		case api.AttemptStale:
			s.stale++
		case api.AttemptPreempted:
			s.preempted++
		}
	}
	s.late += len(t.rec.Late)
	t.usage = strategy.Usage(s.spec, &t.rec)
	s.used += t.usage
	if t.rec.Attempt > 1 {
		s.retries += t.rec.Attempt - 1
	}
}

// ghostNode returns a dead placeholder for a node the leader has no record
// of, so its attempts are found stale by the liveness check.
func (l *leaderState) ghostNode(id string) *node {
	if n, ok := l.nodes[id]; ok {
		return n
	}
	n := newNode(api.Node{ID: id, State: api.NodeAlive}, 0)
	n.seen = time.Now()
	l.nodes[id] = n
	return n
}

// setState moves a trial to a new state, keeping the counters in step.
func (l *leaderState) setState(t *trial, to sweep.State, now time.Time) {
	from := t.rec.State
	if from == to {
		return
	}
	if err := sweep.Transition(from, to); err != nil {
		// The leader only makes transitions the state machine allows; an
		// impossible one is logged, never applied.
		l.log.Error("refusing illegal transition", "study", t.rec.Study, "trial_id", t.rec.ID, "error", err)
		return
	}
	s := t.study
	s.counts[from]--
	s.counts[to]++
	t.rec.State = to
	t.rec.Updated = now
	if to.Terminal() {
		s.finished = append(s.finished, now)
	}
	l.dirtyTrials[t] = true
	if to == sweep.Pending {
		s.enqueue(t, now)
	}
	if to == sweep.Succeeded {
		s.promoteDue = true
	}
	if to.Terminal() {
		l.releaseCheckpoints(t, to)
		if to == sweep.Succeeded && s.spec.Analysis != nil && s.spec.Analysis.Fit != nil {
			s.refitDue = true
		}
		l.maybeFinish(s, now)
	}
}

// maybeFinish marks a study done once every trial is terminal, unless a
// refit that may extend its grid is still to come.
func (l *leaderState) maybeFinish(s *study, now time.Time) {
	if s.rec.State != api.StudyActive || !s.terminal() {
		return
	}
	if p := s.spec.Analysis; p != nil && p.Fit != nil && p.Fit.Extend > 0 && (s.refitDue || s.refitting) {
		return
	}
	if s.spec.Search != nil && !s.searchDone {
		return // the search decides first whether the study goes on
	}
	s.rec.State = api.StudyDone
	fin := now
	s.rec.Finished = &fin
	s.rec.Updated = now
	l.dirtyStudies[s] = true
	l.log.Info("study finished", "study", s.rec.Name, "trials", len(s.trials))
}

package coordinator

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"asymptote.dev/asymptote/internal/api"
	"asymptote.dev/asymptote/internal/backoff"
	"asymptote.dev/asymptote/internal/bus"
	"asymptote.dev/asymptote/internal/store"
	"asymptote.dev/asymptote/strategy"
	"asymptote.dev/asymptote/sweep"
)

// leader holds the state of one leadership term. Its loop goroutine owns
// every field; other goroutines talk to it through inbox.
//
// Each turn of the loop applies a batch of inputs to the cached state,
// schedules what fits, commits every changed record to etcd in a few
// fenced transactions, and only then acts on the outside world: replies,
// acknowledgements, dispatches and cancellations. Nothing is announced
// before it is durable, and a crash between commit and action is repaired
// by the idempotent handling of redelivered messages.
type leader struct {
	c     *Coordinator
	log   *slog.Logger
	store *store.Store
	since time.Time

	studies map[string]*study
	order   []*study
	nodes   map[string]*node
	// metricSubs are the term's subscriptions to the streamed metrics of
	// studies that stop trials early.
	metricSubs map[string]*nats.Subscription
	// served counts dispatches, for round-robin between equal studies.
	served uint64

	inbox chan any

	// The current turn's pending writes and effects.
	dirtyTrials  map[*trial]bool
	dirtyStudies map[*study]bool
	dirtyNodes   map[*node]bool
	effects      []effect
	// outbox holds the turn's dispatches by node, sent after the commit
	// as one batch per node.
	outbox map[*node][]*bus.Dispatch
	// quarantined holds the studies whose quarantine record is still to
	// be written.
	quarantined map[*study]bool
	// ctx is the term's; callbacks that effects set up send to the loop
	// with it.
	ctx context.Context
	// orph holds the kept events that could not be applied (orphan.go).
	orph orphans
	// expanding holds the studies that gained trials this turn (or are
	// new): the commit marks each submitting before their trials land,
	// and active only after (expansion.go).
	expanding map[*study]bool
	// deleted names the studies removed this turn, whose keys the commit
	// deletes first; removals holds other deletions (a lifted
	// quarantine's record).
	deleted  []string
	removals []store.Put
}

func newLeader(c *Coordinator, st *store.Store) *leader {
	return &leader{
		c:            c,
		log:          c.log,
		store:        st,
		since:        time.Now(),
		studies:      map[string]*study{},
		nodes:        map[string]*node{},
		inbox:        make(chan any, 4096),
		dirtyTrials:  map[*trial]bool{},
		dirtyStudies: map[*study]bool{},
		dirtyNodes:   map[*node]bool{},
		outbox:       map[*node][]*bus.Dispatch{},
		metricSubs:   map[string]*nats.Subscription{},
		quarantined:  map[*study]bool{},
		orph:         orphans{keys: map[string]bool{}},
		expanding:    map[*study]bool{},
	}
}

// Inputs to the loop.
type (
	eventInput struct {
		ev  bus.Event
		msg jetstream.Msg // nil for a started event, which is not durable
	}
	heartbeatInput struct {
		hb  bus.Heartbeat
		msg *nats.Msg
	}
	apiInput struct {
		verb string
		msg  *nats.Msg
	}
	dispatchInput struct {
		ref    bus.AttemptRef
		node   string
		reason string // empty when accepted
	}
)

func (l *leader) run(ctx context.Context) error {
	l.ctx = ctx
	defer func() {
		for _, s := range l.metricSubs {
			_ = s.Unsubscribe()
		}
	}()
	if err := l.load(ctx); err != nil {
		return err
	}
	nc := l.c.cfg.NATS
	var subs []*nats.Subscription
	defer func() {
		for _, s := range subs {
			_ = s.Unsubscribe()
		}
	}()
	for _, verb := range api.Verbs {
		s, err := nc.Subscribe(bus.APISubject(verb), func(m *nats.Msg) {
			l.send(ctx, apiInput{verb: verb, msg: m})
		})
		if err != nil {
			return fmt.Errorf("subscribe api: %w", err)
		}
		subs = append(subs, s)
	}
	s, err := nc.Subscribe(bus.AllHeartbeats, func(m *nats.Msg) {
		var hb bus.Heartbeat
		if err := bus.Decode(m.Data, &hb); err != nil {
			l.log.Warn("dropping malformed heartbeat", "subject", m.Subject, "error", err)
			return
		}
		l.send(ctx, heartbeatInput{hb: hb, msg: m})
	})
	if err != nil {
		return fmt.Errorf("subscribe heartbeats: %w", err)
	}
	subs = append(subs, s)
	s, err = nc.Subscribe(bus.AllStarted, func(m *nats.Msg) {
		var ev bus.Event
		if err := bus.Decode(m.Data, &ev); err != nil || ev.Kind != bus.EventStarted {
			l.log.Warn("dropping malformed started event", "subject", m.Subject, "error", err)
			return
		}
		l.send(ctx, eventInput{ev: ev})
	})
	if err != nil {
		return fmt.Errorf("subscribe started events: %w", err)
	}
	subs = append(subs, s)

	js, err := jetstream.New(nc)
	if err != nil {
		return err
	}
	cons, err := bus.Declare(ctx, js, l.c.cfg.StreamReplicas)
	if err != nil {
		return err
	}
	if err := bus.DeclareHistory(ctx, js, l.c.cfg.StreamReplicas, l.c.cfg.HistoryRetention); err != nil {
		return err
	}
	cc, err := cons.Consume(func(m jetstream.Msg) {
		var ev bus.Event
		if err := bus.Decode(m.Data(), &ev); err != nil {
			// A message that can never be valid is terminated, not
			// redelivered forever.
			l.log.Warn("terminating malformed event", "subject", m.Subject(), "error", err)
			_ = m.Term()
			return
		}
		l.send(ctx, eventInput{ev: ev, msg: m})
	}, jetstream.PullMaxMessages(1000), jetstream.PullExpiry(pullExpiry))
	if err != nil {
		return fmt.Errorf("consume events: %w", err)
	}
	defer cc.Stop()

	tick := time.NewTicker(l.c.cfg.Tick)
	defer tick.Stop()
	l.log.Info("leading", "studies", len(l.studies), "nodes", len(l.nodes))
	batch := make([]any, 0, 1024)
	for {
		batch = batch[:0]
		select {
		case <-ctx.Done():
			return context.Cause(ctx)
		case in := <-l.inbox:
			batch = append(batch, in)
		case <-tick.C:
			batch = append(batch, tickInput{})
		}
	drain:
		for len(batch) < cap(batch) {
			select {
			case in := <-l.inbox:
				batch = append(batch, in)
			default:
				break drain
			}
		}
		now := time.Now()
		for _, in := range batch {
			l.apply(in, now)
		}
		l.account()
		l.spendOut(now)
		l.schedule(now)
		if err := l.commit(ctx); err != nil {
			return err
		}
		// Dispatches are queued after the commit, so a study quarantined
		// by it sends none.
		l.sendDispatches()
		for _, e := range l.effects {
			if e.study != nil && e.study.quarantined() {
				// A frozen study's outcomes stay unacknowledged: the
				// stream redelivers them once it is resumed.
				continue
			}
			e.f()
		}
		clear(l.effects)
		l.effects = l.effects[:0]
		l.maybeRefit(ctx, now)
		l.searchSteps(ctx, now)
	}
}

type tickInput struct{}

// pullExpiry bounds each pull request of the events consumer. A request
// the server drops (a NATS cluster that restarts, a stream without a
// leader yet) is noticed after two missed idle heartbeats, half the expiry
// each: with the client's default of 30s, a leader elected as NATS came
// back received no event for 30s, while its agents' attempts went stale
// waiting for outcomes.
const pullExpiry = 5 * time.Second

// send hands an input to the loop, dropping it if the term has ended (the
// message is then redelivered to, or retried against, the next leader).
func (l *leader) send(ctx context.Context, in any) {
	select {
	case l.inbox <- in:
	case <-ctx.Done():
	}
}

// apply applies one input to the term's state. It does no I/O: what the
// input changes is written by the turn's commit, and what it asks of the
// outside world (replies, acknowledgements, dispatches, cancellations,
// subscriptions) is queued as effects performed after the commit.
func (l *leader) apply(in any, now time.Time) {
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

// load rebuilds the cache from etcd at the start of a term. A record that
// does not decode never stops the leader: its study is quarantined with
// the reason (a node's record is dropped, and the node re-registers with
// its next heartbeat).
func (l *leader) load(ctx context.Context) error {
	now := time.Now()
	var corrupt []string // study names with undecodable records, and why
	why := map[string]string{}
	undecodable := func(err error) error {
		var bad *store.Undecodable
		if !errors.As(err, &bad) {
			return err
		}
		for key, e := range bad.Keys {
			name := store.StudyOf(key)
			if name == "" {
				l.log.Error("dropping a record that does not decode", "key", key, "error", e)
				continue
			}
			if _, seen := why[name]; !seen {
				corrupt = append(corrupt, name)
			}
			why[name] = fmt.Sprintf("the stored record %s does not decode (%v); delete the study, or restore the record from a backup, then resume", key, e)
		}
		return nil
	}
	err := l.store.Studies(ctx, func(v store.Versioned[api.Study]) error {
		spec, err := sweep.Parse(v.Value.SpecFile, []byte(v.Value.Spec))
		if err != nil {
			// A stored spec always parsed when it was accepted; a newer
			// parser that rejects it must not stop the leader, nor lose
			// the study's outcomes: it is loaded quarantined, with an
			// empty spec, so its trials and events are kept.
			s := newStudy(v.Value, v.Rev, &sweep.Spec{Name: v.Value.Name})
			l.studies[s.rec.Name] = s
			l.order = append(l.order, s)
			if _, seen := why[s.rec.Name]; !seen {
				corrupt = append(corrupt, s.rec.Name)
			}
			why[s.rec.Name] = fmt.Sprintf("the stored spec no longer parses (%v); run a coordinator version that reads it, or delete the study", err)
			return nil
		}
		s := newStudy(v.Value, v.Rev, withExtensions(spec, v.Value.Extensions))
		l.studies[s.rec.Name] = s
		l.order = append(l.order, s)
		return nil
	})
	if err := undecodable(err); err != nil {
		return err
	}
	err = l.store.Nodes(ctx, func(v store.Versioned[api.Node]) error {
		n := newNode(v.Value, v.Rev)
		// Every node gets a fresh grace period from the new leader.
		n.seen = time.Now()
		l.nodes[n.rec.ID] = n
		return nil
	})
	if err := undecodable(err); err != nil {
		return err
	}
	err = l.store.Trials(ctx, func(v store.Versioned[api.Trial]) error {
		s := l.studies[v.Value.Study]
		if s == nil {
			return nil
		}
		t := &trial{rec: v.Value, rev: v.Rev, study: s}
		l.addTrial(s, t, now)
		return nil
	})
	if err := undecodable(err); err != nil {
		return err
	}
	if err := undecodable(l.loadOrphans(ctx)); err != nil {
		return err
	}
	err = l.store.Quarantines(ctx, func(v store.Versioned[api.Quarantine]) error {
		s := l.studies[v.Value.Study]
		if s == nil {
			return nil // the study record itself is gone or corrupt
		}
		l.quarantine(s, v.Value.By, v.Value.Reason, v.Value.Time)
		s.q.rec, s.q.rev, s.q.written = v.Value, v.Rev, true
		return nil
	})
	if err := undecodable(err); err != nil {
		return err
	}
	for _, name := range corrupt {
		if s := l.studies[name]; s != nil {
			l.quarantine(s, "leader", why[name], now)
		}
	}
	for _, s := range l.order {
		sortTrials(s)
		if s.quarantined() {
			continue
		}
		l.noteEarlyStopping(s)
		// A new leader refits every active study with a plan once, so a
		// study that waited on a refit (to extend its grid) finishes.
		if s.rec.State == api.StudyActive && s.spec.Analysis != nil && s.spec.Analysis.Fit != nil {
			s.refitDue = true
		}
		if s.rec.State == api.StudySubmitting {
			// The last leader died while writing this study's trials.
			if err := l.expand(s, now); err != nil {
				l.log.Error("finish interrupted submission", "study", s.rec.Name, "error", err)
			}
		}
		// The last leader may have died between committing a study's
		// last trials and its done record: finish it now.
		l.maybeFinish(s, now)
	}
	// What loading changed (an interrupted submission finished, a study
	// found done) is written before the term serves anything.
	return l.commit(ctx)
}

// addTrial puts a loaded or new trial into the cache.
func (l *leader) addTrial(s *study, t *trial, now time.Time) {
	s.trials = append(s.trials, t)
	s.byID[t.rec.ID] = t
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
		if a.State == api.AttemptStale {
			s.stale++
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
func (l *leader) ghostNode(id string) *node {
	if n, ok := l.nodes[id]; ok {
		return n
	}
	n := newNode(api.Node{ID: id, State: api.NodeAlive}, 0)
	n.seen = time.Now()
	l.nodes[id] = n
	return n
}

// setState moves a trial to a new state, keeping the counters in step.
func (l *leader) setState(t *trial, to sweep.State, now time.Time) {
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
	if to.Terminal() {
		if to == sweep.Succeeded && s.spec.Analysis != nil && s.spec.Analysis.Fit != nil {
			s.refitDue = true
		}
		l.maybeFinish(s, now)
	}
}

// maybeFinish marks a study done once every trial is terminal, unless a
// refit that may extend its grid is still to come.
func (l *leader) maybeFinish(s *study, now time.Time) {
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

// commit writes every change of the turn, fenced, in batched
// transactions, in an order that a leader dying at any point leaves
// repairable: the keys of deleted studies go first; then every expanding
// study is marked submitting; then the turn's records (new trials with
// the others) land, and only then the expanding studies' own records, so a
// study is active in etcd only once all its trials are. The records of
// quarantined studies are held back. A record that etcd can never take
// quarantines its study alone: the rest of the batch lands. Any other
// failure ends the term (the next one rebuilds its state from etcd).
func (l *leader) commit(ctx context.Context) error {
	for _, name := range l.deleted {
		if err := l.store.DeleteStudy(ctx, name); err != nil {
			return fmt.Errorf("delete study %s: %w", name, err)
		}
	}
	l.deleted = l.deleted[:0]
	if err := l.markSubmitting(ctx); err != nil {
		return err
	}
	last := map[*study]bool{}
	for s := range l.expanding {
		if l.dirtyStudies[s] {
			last[s] = true
			delete(l.dirtyStudies, s)
		}
	}
	clear(l.expanding)
	if err := l.commitDirty(ctx); err != nil {
		return err
	}
	if len(last) > 0 {
		for s := range last {
			l.dirtyStudies[s] = true
		}
		if err := l.commitDirty(ctx); err != nil {
			return err
		}
	}
	return l.writeQuarantines(ctx)
}

// markSubmitting writes the record of every expanding study marked
// submitting, so a leader that dies before all of a study's new trials
// land leaves a record its successor finishes (load).
func (l *leader) markSubmitting(ctx context.Context) error {
	var puts []store.Put
	var owners []any
	for s := range l.expanding {
		if s.quarantined() {
			continue
		}
		rec := s.rec
		rec.State = api.StudySubmitting
		puts = append(puts, store.Put{Key: store.StudyKey(s.rec.Name), Value: &rec, Rev: s.rev})
		owners = append(owners, s)
	}
	if len(puts) == 0 {
		return nil
	}
	revs, err := l.commitWithRetry(ctx, puts)
	var rej *store.RejectedError
	if err != nil && !errors.As(err, &rej) {
		return err
	}
	if rej != nil {
		l.reject(rej, owners, time.Now())
	}
	for i, o := range owners {
		if revs[i] != 0 {
			o.(*study).rev = revs[i]
		}
	}
	return nil
}

// commitDirty writes the changed records of the turn.
func (l *leader) commitDirty(ctx context.Context) error {
	l.hold()
	n := len(l.dirtyTrials) + len(l.dirtyStudies) + len(l.dirtyNodes) + len(l.orph.pending) + len(l.removals)
	if n == 0 {
		return nil
	}
	puts := make([]store.Put, 0, n)
	owners := make([]any, 0, n)
	for _, p := range append(l.orph.pending, l.removals...) {
		owners = append(owners, nil)
		puts = append(puts, p)
	}
	l.orph.pending = l.orph.pending[:0]
	l.removals = l.removals[:0]
	for t := range l.dirtyTrials {
		owners = append(owners, t)
		puts = append(puts, store.Put{Key: store.TrialKey(t.rec.Study, t.rec.ID), Value: &t.rec, Rev: t.rev})
	}
	for s := range l.dirtyStudies {
		owners = append(owners, s)
		puts = append(puts, store.Put{Key: store.StudyKey(s.rec.Name), Value: &s.rec, Rev: s.rev})
	}
	for n := range l.dirtyNodes {
		owners = append(owners, n)
		puts = append(puts, store.Put{Key: store.NodeKey(n.rec.ID), Value: &n.rec, Rev: n.rev})
	}
	revs, err := l.commitWithRetry(ctx, puts)
	var rej *store.RejectedError
	if err != nil && !errors.As(err, &rej) {
		return err
	}
	now := time.Now()
	if rej != nil {
		l.reject(rej, owners, now)
	}
	for i, o := range owners {
		if revs[i] == 0 {
			continue // rejected, and held with its quarantined study
		}
		switch o := o.(type) {
		case *trial:
			o.rev = revs[i]
		case *study:
			o.rev = revs[i]
		case *node:
			o.rev = revs[i]
		}
	}
	clear(l.dirtyTrials)
	clear(l.dirtyStudies)
	clear(l.dirtyNodes)
	return nil
}

// commitWithRetry retries transient etcd errors (an election among etcd
// members, a reconnect) until the term ends. A lost fence or a conflict
// ends the term: the next leader rebuilds from etcd. A rejected write
// (store.ErrRejected) is permanent for its input and never retried; the
// other puts of the call have landed.
func (l *leader) commitWithRetry(ctx context.Context, puts []store.Put) ([]int64, error) {
	wait := commitBackoff.Start()
	out := make([]int64, len(puts))
	todo := make([]int, len(puts)) // indices of the puts not yet landed
	for i := range todo {
		todo[i] = i
	}
	var rejected *store.RejectedError
	for {
		batch := make([]store.Put, len(todo))
		for j, i := range todo {
			batch[j] = puts[i]
		}
		revs, err := l.store.WithAttemptTimeout(commitAttempt).Commit(ctx, batch)
		var rej *store.RejectedError
		if err == nil || errors.As(err, &rej) {
			for j, i := range todo {
				out[i] = revs[j]
			}
			if rej != nil {
				for k := range rej.Puts {
					rej.Puts[k].Index = todo[rej.Puts[k].Index]
				}
				rejected = rej
			}
			if rejected != nil {
				return out, rejected
			}
			return out, nil
		}
		if errors.Is(err, store.ErrNotLeader) || errors.Is(err, store.ErrConflict) || ctx.Err() != nil {
			return nil, fmt.Errorf("commit: %w", err)
		}
		// Some transactions may have landed though their answers were
		// lost (a timeout, a broken connection). As the only writer, the
		// leader finds which in the keys' revisions and retries only the
		// rest, rather than end the term on a conflict with itself.
		landed, rerr := l.store.ModRevisions(ctx, keysOf(batch))
		if rerr != nil {
			l.log.Warn("etcd write failed and its outcome cannot be read yet; retrying", "error", err, "read_error", rerr, "backoff", wait.Next())
		} else {
			left := todo[:0:0]
			for j, i := range todo {
				switch {
				case revs[j] != 0:
					out[i] = revs[j]
				case wrote(puts[i], landed[j]):
					out[i] = landed[j]
				default:
					left = append(left, i)
				}
			}
			todo = left
			if len(todo) == 0 {
				return out, nil
			}
			l.log.Warn("etcd write failed; retrying", "error", err, "retrying", len(todo), "of", len(puts), "backoff", wait.Next())
		}
		if err := wait.Wait(ctx); err != nil {
			return nil, err
		}
	}
}

// commitBackoff paces commitWithRetry: 50ms, doubling to 2s.
var commitBackoff = backoff.Policy{First: 50 * time.Millisecond, Max: 2 * time.Second}

// wrote reports whether put p landed, given its key's revision now: the
// key changed from the revision the leader last saw (or was created, or
// deleted), and only the leader writes.
func wrote(p store.Put, now int64) bool {
	if p.Delete {
		return now == 0
	}
	return now != p.Rev
}

func keysOf(puts []store.Put) []string {
	keys := make([]string, len(puts))
	for i, p := range puts {
		keys[i] = p.Key
	}
	return keys
}

// effect is an action taken once the turn's writes are durable. One that
// belongs to a study (acknowledging its outcome) is skipped if the study
// was quarantined by the turn's commit.
type effect struct {
	study *study
	f     func()
}

// effect queues f to run after this turn's writes are durable.
func (l *leader) effect(f func()) { l.effects = append(l.effects, effect{f: f}) }

// studyEffect queues f as an effect of study s.
func (l *leader) studyEffect(s *study, f func()) {
	l.effects = append(l.effects, effect{study: s, f: f})
}

// respond queues a reply to a request.
func (l *leader) respond(m *nats.Msg, v any, err error) {
	l.respondAfter(m, func() (any, error) { return v, err })
}

// respondAfter queues a reply to a request whose content is decided once
// the turn's writes are durable.
func (l *leader) respondAfter(m *nats.Msg, reply func() (any, error)) {
	if m.Reply == "" {
		return
	}
	l.effect(func() {
		data := api.EncodeReply(reply())
		if max := l.c.cfg.NATS.MaxPayload(); max > 0 && int64(len(data)) > max {
			data = api.EncodeReply(nil, fmt.Errorf("the reply (%d bytes) exceeds the NATS server's max_payload (%d bytes); ask for less (a smaller results page) or raise max_payload", len(data), max))
		}
		_ = m.Respond(data)
	})
}

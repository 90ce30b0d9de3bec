package coordinator

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"asymptote.dev/asymptote/internal/api"
	"asymptote.dev/asymptote/internal/backoff"
	"asymptote.dev/asymptote/internal/bus"
	"asymptote.dev/asymptote/internal/store"
	"asymptote.dev/asymptote/sweep"
)

// leader is one leadership term: it subscribes to the bus, loads its
// state from etcd, and runs the loop. Its loop goroutine owns every field;
// other goroutines talk to it through inbox.
//
// Each turn of the loop applies a batch of inputs to the state (which does
// no I/O), schedules what fits, commits every changed record to etcd in a
// few fenced transactions, and only then performs the turn's actions:
// replies, acknowledgements, dispatches and cancellations. Nothing is
// announced before it is durable, and a crash between commit and action is
// repaired by the idempotent handling of redelivered messages.
type leader struct {
	*leaderState
	c     *Coordinator
	store *store.Store
	// metricSubs are the term's subscriptions to the streamed metrics of
	// studies that stop trials early.
	metricSubs map[string]*nats.Subscription
	// js is the term's JetStream handle.
	js jetstream.JetStream
	// histories holds a place for each history the term is sending.
	histories chan struct{}
	inbox     chan any
	// ctx is the term's; callbacks the term sets up send to the loop
	// with it.
	ctx context.Context
}

func newLeader(c *Coordinator, st *store.Store) *leader {
	return &leader{
		leaderState: newLeaderState(&c.cfg, c.log, st.Check),
		c:           c,
		store:       st,
		inbox:       make(chan any, 4096),
		metricSubs:  map[string]*nats.Subscription{},
		histories:   make(chan struct{}, maxHistories),
	}
}

// Inputs to the loop.
type (
	eventInput struct {
		ev  bus.Event
		msg jetstream.Msg // nil for a started event, which is not durable
		// subject is the one the event came on; it names its sender.
		subject string
	}
	heartbeatInput struct {
		hb  bus.Heartbeat
		msg *nats.Msg
	}
	apiInput struct {
		verb string
		// caller is who sent the request, from its subject.
		caller bus.Caller
		msg    *nats.Msg
	}
	dispatchInput struct {
		ref    bus.AttemptRef
		node   string
		reason string // empty when accepted
		// unanswered: the agent did not answer in time, so it may
		// have taken the attempt all the same.
		unanswered bool
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
	l.sweepCheckpoints(l.checkpointSweep())
	nc := l.cfg.NATS
	var subs []*nats.Subscription
	defer func() {
		for _, s := range subs {
			_ = s.Unsubscribe()
		}
	}()
	for _, verb := range api.Verbs {
		// The unscoped subject (an open bus) and the team-scoped ones:
		// the caller comes from the subject, which a secured bus lets
		// each identity publish only under its own team and name.
		for _, subj := range []string{bus.APISubject(verb), bus.TeamAPISubjects(verb)} {
			s, err := nc.Subscribe(subj, func(m *nats.Msg) {
				_, caller, err := bus.ParseAPISubject(m.Subject)
				if err != nil {
					l.log.Warn("dropping request on a malformed subject", "subject", m.Subject, "error", err)
					return
				}
				l.send(ctx, apiInput{verb: verb, caller: caller, msg: m})
			})
			if err != nil {
				return fmt.Errorf("subscribe api: %w", err)
			}
			subs = append(subs, s)
		}
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
		l.send(ctx, eventInput{ev: ev, subject: m.Subject})
	})
	if err != nil {
		return fmt.Errorf("subscribe started events: %w", err)
	}
	subs = append(subs, s)

	js, err := jetstream.New(nc)
	if err != nil {
		return err
	}
	l.js = js
	cons, err := bus.Declare(ctx, js, l.cfg.StreamReplicas)
	if err != nil {
		return err
	}
	if err := bus.DeclareHistory(ctx, js, l.cfg.StreamReplicas, l.cfg.HistoryRetention); err != nil {
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
		l.send(ctx, eventInput{ev: ev, msg: m, subject: m.Subject()})
	}, jetstream.PullMaxMessages(1000), jetstream.PullExpiry(pullExpiry))
	if err != nil {
		return fmt.Errorf("consume events: %w", err)
	}
	defer cc.Stop()

	tick := time.NewTicker(l.cfg.Tick)
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
		l.promoteSteps(ctx, now)
		l.schedule(now)
		if err := l.commit(ctx); err != nil {
			return err
		}
		for _, a := range l.actions {
			l.perform(a)
		}
		clear(l.actions)
		l.actions = l.actions[:0]
		l.deleteCheckpoints(l.blobs)
		l.blobs = blobDeletion{}
		l.sendDispatches()
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
	if err := l.loadAllowlist(ctx); err != nil {
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
		s.orderPromotions()
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
	if l.allowed.dirty {
		n++
	}
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
	if l.allowed.dirty {
		owners = append(owners, &l.allowed)
		rec := l.allowed.rec
		puts = append(puts, store.Put{Key: store.AllowlistKey, Value: &rec, Rev: l.allowed.rev})
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
		case *allowlist:
			o.rev, o.dirty = revs[i], false
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

// perform carries out one action of a turn whose writes are durable.
func (l *leader) perform(a action) {
	nc := l.cfg.NATS
	switch a := a.(type) {
	case publish:
		_ = nc.Publish(a.subject, a.data)
	case respond:
		_ = a.msg.Respond(a.data)
	case reply:
		v, err := a.v, a.err
		if s := a.unless; s != nil && s.quarantined() {
			v, err = nil, fmt.Errorf("study %s is quarantined: %s", s.rec.Name, s.q.rec.Reason)
		}
		data := api.EncodeReply(v, err)
		if max := nc.MaxPayload(); max > 0 && int64(len(data)) > max {
			data = api.EncodeReply(nil, fmt.Errorf("the reply (%d bytes) exceeds the NATS server's max_payload (%d bytes); ask for less (a smaller results page) or raise max_payload", len(data), max))
		}
		_ = a.msg.Respond(data)
	case ack:
		if a.study != nil && a.study.quarantined() {
			// A frozen study's outcomes stay unacknowledged: the stream
			// redelivers them once it is resumed.
			return
		}
		_ = a.msg.Ack()
	case nak:
		_ = a.msg.NakWithDelay(a.delay)
	case watchMetrics:
		l.watchMetrics(a.study)
	case unwatchMetrics:
		if sub := l.metricSubs[a.study]; sub != nil {
			_ = sub.Unsubscribe()
			delete(l.metricSubs, a.study)
		}
	case purgeHistory:
		go l.purgeHistory(a.study)
	case sendHistory:
		go l.sendHistory(a)
	}
}

// watchMetrics subscribes the loop to a study's streamed metrics, once per
// term.
func (l *leader) watchMetrics(name string) {
	if _, ok := l.metricSubs[name]; ok {
		return
	}
	sub, err := l.cfg.NATS.Subscribe(bus.StudyMetrics(name), func(m *nats.Msg) {
		var r bus.MetricsReport
		if err := bus.Decode(m.Data, &r); err != nil {
			return
		}
		l.send(l.ctx, metricsInput{r: r, subject: m.Subject})
	})
	if err != nil {
		l.log.Error("subscribe to a study's metrics; its trials are not stopped early", "study", name, "error", err)
		return
	}
	l.metricSubs[name] = sub
}

// maxHistories bounds the histories a leader sends at once: each reads
// the history stream, which a large study makes long.
const maxHistories = 4

// sendHistory sends a study's metric history to a caller the turn let
// read it, from the term's goroutine of its own, and stops when the term
// ends.
func (l *leader) sendHistory(a sendHistory) {
	nc := l.cfg.NATS
	select {
	case l.histories <- struct{}{}:
		defer func() { <-l.histories }()
	default:
		_ = bus.EndHistory(nc, a.msg.Reply, 0, fmt.Errorf("the leader is sending %d histories already; read again in a moment", maxHistories))
		return
	}
	ctx, cancel := context.WithTimeout(l.ctx, 10*time.Minute)
	defer cancel()
	if err := bus.ServeHistory(ctx, nc, l.js, a.msg.Reply, a.study, a.trial); err != nil {
		l.log.Warn("a history was not sent whole", "study", a.study, "trial", a.trial, "error", err)
	}
}

// purgeHistory removes a deleted study's metric history; a failure leaves
// the reports to the retention age, and is logged.
func (l *leader) purgeHistory(name string) {
	js, err := jetstream.New(l.cfg.NATS)
	if err == nil {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		err = bus.PurgeHistory(ctx, js, name)
		cancel()
	}
	if err != nil {
		l.log.Warn("metric history of a deleted study not purged; it ages out", "study", name, "error", err)
	}
}

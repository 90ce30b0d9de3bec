package coordinator

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math"
	"slices"
	"sort"
	"strings"
	"time"

	"asymptote.dev/asymptote/internal/api"
	"asymptote.dev/asymptote/internal/bus"
	"asymptote.dev/asymptote/internal/store"
	"asymptote.dev/asymptote/sweep"
)

func (l *leaderState) onAPI(in apiInput, now time.Time) {
	var (
		out any
		err error
	)
	who := in.caller
	switch in.verb {
	case api.VerbSubmit:
		var req api.SubmitRequest
		if err = json.Unmarshal(in.msg.Data, &req); err == nil {
			out, err = l.submit(who, req, now)
		}
	case api.VerbStatus:
		var req api.StatusRequest
		if err = json.Unmarshal(in.msg.Data, &req); err == nil {
			out, err = l.status(who, req, now)
		}
	case api.VerbResults:
		var req api.ResultsRequest
		if err = json.Unmarshal(in.msg.Data, &req); err == nil {
			out, err = l.results(who, req)
		}
	case api.VerbCancel:
		var req api.CancelRequest
		if err = json.Unmarshal(in.msg.Data, &req); err == nil {
			out, err = l.cancel(who, req, now)
		}
	case api.VerbAllow:
		var req api.AllowRequest
		if err = json.Unmarshal(in.msg.Data, &req); err == nil {
			out, err = l.allow(who, req, now)
		}
	case api.VerbHistory:
		var req api.HistoryRequest
		if err = json.Unmarshal(in.msg.Data, &req); err == nil {
			if err = l.history(who, req); err == nil && in.msg.Reply != "" {
				l.do(sendHistory{msg: in.msg, study: req.Study, trial: req.Trial})
				return
			}
		}
	case api.VerbQuarantine, api.VerbResume, api.VerbDelete:
		var req api.StudyRequest
		if err = json.Unmarshal(in.msg.Data, &req); err == nil {
			out, err = l.operate(who, in.verb, req, now)
		}
	default:
		err = fmt.Errorf("unknown request %q", in.verb)
	}
	if r, ok := out.(*api.SubmitReply); ok && err == nil && in.msg.Reply != "" {
		// The submission's records are written by this turn's commit: if
		// etcd refused one that the checks passed, the study is
		// quarantined by then, and the reply says so instead.
		l.do(reply{msg: in.msg, v: out, unless: l.studies[r.Study]})
		return
	}
	l.respond(in.msg, out, err)
}

// submit accepts a new study, or a resubmission: every trial of the
// expanded spec that the study lacks is created, and nothing else changes.
// Input over a limit is refused with the field and the limit, and a
// refused submission leaves the study as it was.
func (l *leaderState) submit(who bus.Caller, req api.SubmitRequest, now time.Time) (*api.SubmitReply, error) {
	lim := l.cfg.Limits
	if n := len(req.Spec); n > lim.SpecBytes {
		return nil, fmt.Errorf("%s: the spec is %d bytes, over the limit of %d (the coordinator's -max-spec-bytes); pass large values as files your method reads, by path", req.SpecFile, n, lim.SpecBytes)
	}
	spec, err := sweep.Parse(req.SpecFile, []byte(req.Spec))
	if err != nil {
		return nil, err
	}
	if err := bus.ValidToken(spec.Name); err != nil {
		return nil, fmt.Errorf("%s: name: %w", req.SpecFile, err)
	}
	if err := checkParamSizes(req.SpecFile, spec, lim.ParamBytes); err != nil {
		return nil, err
	}
	needs := spec.Resources.Needs()
	if why := l.unplaceable(spec.Method, needs); why != "" && !l.placeableSomeday(spec.Method) && !l.cfg.AllowUnofferedMethods {
		return nil, fmt.Errorf("%s: method: %s; start an agent that has it, or run the coordinator with -allow-unoffered-methods to queue studies for agents not started yet", req.SpecFile, why)
	}
	s := l.studies[spec.Name]
	if s != nil && !visible(s, who) {
		// The name is another team's: saying no more keeps that
		// team's studies out of sight.
		return nil, fmt.Errorf("%s: name: study %q belongs to another team; submit the spec under another name", req.SpecFile, spec.Name)
	}
	if s != nil && s.quarantined() {
		return nil, fmt.Errorf("study %q is quarantined: %s; run 'asymptote study resume %s' once the cause is fixed, or 'asymptote study delete %s'", spec.Name, s.q.rec.Reason, spec.Name, spec.Name)
	}
	if s != nil && s.rec.State == api.StudyCancelled {
		return nil, fmt.Errorf("study %q was cancelled; submit the spec under a new name to run it again", spec.Name)
	}
	unchanged := s != nil && s.rec.SpecHash == spec.Hash() && s.rec.State != api.StudySubmitting
	if s != nil {
		// Values the coordinator added past a grid's edge stay added.
		spec = withExtensions(spec, s.rec.Extensions)
	}
	var undo func()
	if s == nil {
		team := who.Team
		if !who.Scoped() {
			team = bus.DefaultTeam
		}
		s = newStudy(api.Study{
			Name: spec.Name, Created: now, Team: team,
			Method: spec.Method, Objective: spec.Objective.Metric, Direction: string(spec.Objective.Direction),
		}, 0, spec)
		l.studies[s.rec.Name] = s
		l.order = append(l.order, s)
		undo = func() {
			delete(l.studies, s.rec.Name)
			l.order = l.order[:len(l.order)-1]
		}
	} else {
		rec, old := s.rec, s.spec
		rec.Submissions = slices.Clone(rec.Submissions)
		undo = func() { s.rec = rec; s.setSpec(old) }
	}
	before, submissions := len(s.trials), len(s.rec.Submissions)
	s.rec.SpecFile, s.rec.Spec, s.rec.SpecHash = req.SpecFile, req.Spec, spec.Hash()
	s.rec.Priority = spec.Priority
	s.rec.Objective, s.rec.Direction = spec.Objective.Metric, string(spec.Objective.Direction)
	s.setSpec(spec)
	if err := l.expand(s, now); err != nil {
		var refused *refusedError
		if errors.As(err, &refused) {
			undo()
		}
		return nil, err
	}
	if len(s.rec.Submissions) > submissions {
		s.rec.Submissions[len(s.rec.Submissions)-1].By = who.Who()
	}
	l.noteEarlyStopping(s)
	added := len(s.trials) - before
	r := &api.SubmitReply{Study: s.rec.Name, Added: added, Existing: len(s.trials) - added, Total: len(s.trials), Unchanged: unchanged}
	if why := l.unplaceable(spec.Method, needs); why != "" && l.placeableSomeday(spec.Method) {
		r.Warnings = append(r.Warnings, why+"; its trials wait until such an agent joins")
	}
	return r, nil
}

// placeableSomeday reports whether some live agent offers method (so the
// study's problem, if any, is only its resources), or none is alive yet.
func (l *leaderState) placeableSomeday(method string) bool {
	alive := 0
	for _, n := range l.nodes {
		if n.rec.State == api.NodeAlive {
			alive++
			if n.offers(method) {
				return true
			}
		}
	}
	return alive == 0
}

// unplaceable says why no live agent could ever run a trial of method
// with needs, or "" when one could (or none is alive to ask).
func (l *leaderState) unplaceable(method string, needs bus.Resources) string {
	var offered []*node
	methods := map[string]bool{}
	alive := 0
	for _, n := range l.nodes {
		if n.rec.State != api.NodeAlive {
			continue
		}
		alive++
		for _, m := range n.rec.Methods {
			methods[m] = true
		}
		if n.offers(method) {
			if n.couldFit(needs) {
				return ""
			}
			offered = append(offered, n)
		}
	}
	switch {
	case alive == 0:
		return ""
	case len(offered) == 0 && method == sweep.CommandMethod:
		return "no live agent offers method \"command\": an agent offers it once it allows a program (-allow-program PATH for the program and its interpreter)"
	case len(offered) == 0:
		return fmt.Sprintf("no live agent offers method %q (they offer %s)", method, strings.Join(slices.Sorted(maps.Keys(methods)), ", "))
	}
	big := offered[0]
	for _, n := range offered[1:] {
		if n.rec.CPU > big.rec.CPU || (n.rec.CPU == big.rec.CPU && n.rec.Memory > big.rec.Memory) {
			big = n
		}
	}
	return fmt.Sprintf("no live agent can fit one trial (it needs %s); the largest offers %s",
		describeResources(needs.CPU, needs.Memory, needs.GPUCount), describeResources(big.rec.CPU, big.rec.Memory, len(big.rec.GPUs)))
}

func describeResources(cpu float64, mem int64, gpus int) string {
	return fmt.Sprintf("cpu %g, memory %.4g GiB, %d GPUs", cpu, float64(mem)/(1<<30), gpus)
}

// refusedError is a submission or extension refused before anything was
// written: the study is as it was.
type refusedError struct{ err error }

func (e *refusedError) Error() string { return e.err.Error() }
func (e *refusedError) Unwrap() error { return e.err }

// checkParamSizes refuses a fixed value or an axis value whose JSON
// encoding is over limit bytes, naming the field.
func checkParamSizes(file string, spec *sweep.Spec, limit int) error {
	var errs []error
	check := func(field string, v any) bool {
		b, err := json.Marshal(v)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %s: the value cannot be encoded: %w", file, field, err))
			return false
		}
		if len(b) > limit {
			errs = append(errs, fmt.Errorf("%s: %s: the value is %d bytes, over the limit of %d per parameter value (the coordinator's -max-param-bytes); pass large values as files your method reads, by path", file, field, len(b), limit))
			return false
		}
		return true
	}
	for _, name := range slices.Sorted(maps.Keys(spec.Fixed)) {
		check("fixed."+name, spec.Fixed[name])
	}
	for _, a := range spec.Axes {
		for i, v := range a.Values {
			if !check(fmt.Sprintf("space.%s[%d]", a.Name, i), v) {
				break
			}
		}
	}
	return errors.Join(errs...)
}

// expand adds every trial of the study's spec that it does not have yet.
func (l *leaderState) expand(s *study, now time.Time) error {
	trials, err := s.spec.Expand()
	if err != nil {
		return &refusedError{err}
	}
	return l.addTrials(s, trials, now)
}

// addTrials adds the given trials the study does not have yet to the
// cache, and queues them with the study for the turn's commit, which
// writes them with the same care as a submission (expanding): the study
// is marked submitting until every new trial is durable. Every record is
// checked first, so input that etcd could never take is refused (a
// *refusedError) with nothing changed.
func (l *leaderState) addTrials(s *study, trials []sweep.Trial, now time.Time) error {
	if s.quarantined() {
		return fmt.Errorf("study %q is quarantined: %s", s.rec.Name, s.q.rec.Reason)
	}
	var missing []*trial
	next := 0
	for _, t := range s.trials {
		next = max(next, t.rec.Index+1)
	}
	for _, tr := range trials {
		if _, ok := s.byID[tr.ID]; ok {
			continue
		}
		missing = append(missing, &trial{study: s, rec: api.Trial{
			ID: tr.ID, Study: s.rec.Name, Index: next, Method: tr.Method, MethodVersion: tr.MethodVersion,
			Params: tr.Params, Seed: tr.Seed, Bracket: tr.Bracket, State: sweep.Pending, Created: now, Updated: now,
		}})
		next++
	}
	if n, lim := len(s.trials)+len(missing), l.cfg.Limits.Trials; n > lim {
		return &refusedError{fmt.Errorf("study %s would have %d trials, over the limit of %d per study (the coordinator's -max-trials); split it into several studies", s.rec.Name, n, lim)}
	}
	puts := make([]store.Put, len(missing), len(missing)+1)
	for i, t := range missing {
		puts[i] = store.Put{Key: store.TrialKey(t.rec.Study, t.rec.ID), Value: &t.rec}
	}
	if rej := l.check(append(puts, store.Put{Key: store.StudyKey(s.rec.Name), Value: &s.rec})); rej != nil {
		return &refusedError{fmt.Errorf("study %s cannot be stored: %w", s.rec.Name, rej)}
	}
	submitting := len(missing) > 0 || s.rev == 0 || s.rec.State == api.StudySubmitting
	if len(missing) > 0 || s.rev == 0 {
		l.expanding[s] = true
	}
	for _, t := range missing {
		l.addTrial(s, t, now)
		l.dirtyTrials[t] = true
	}
	if len(missing) > 0 {
		s.searchDone = false
		l.log.Info("study expanded", "study", s.rec.Name, "added", len(missing), "total", len(s.trials))
	}
	s.rec.Trials = len(s.trials)
	if submitting {
		s.rec.Submissions = append(s.rec.Submissions, api.Submission{SpecHash: s.rec.SpecHash, Time: now, Added: len(missing), Total: len(s.trials)})
	}
	s.rec.State = api.StudyActive
	if s.terminal() {
		s.rec.State = api.StudyDone
		if s.rec.Finished == nil {
			fin := now
			s.rec.Finished = &fin
		}
	} else {
		s.rec.Finished = nil
	}
	s.rec.Updated = now
	l.dirtyStudies[s] = true
	return nil
}

func (l *leaderState) status(who bus.Caller, req api.StatusRequest, now time.Time) (*api.StatusReply, error) {
	r := &api.StatusReply{Leader: l.cfg.ID, Since: l.since}
	if !who.Scoped() {
		// Orphaned events name studies of every team.
		r.Orphans = len(l.orph.keys) + l.orph.dropped
		if req.Study == "" {
			r.RecentOrphans = l.orph.recent
		}
	}
	for _, s := range l.order {
		if req.Study != "" && s.rec.Name != req.Study || !visible(s, who) {
			continue
		}
		r.Studies = append(r.Studies, l.studyStatus(s, now))
	}
	if req.Study != "" && len(r.Studies) == 0 {
		return nil, fmt.Errorf("no study named %q (run 'asymptote status' to list studies)", req.Study)
	}
	for _, n := range l.nodes {
		waiting, ending := 0, 0
		for _, t := range n.attempts {
			if a := t.rec.Current(); a != nil && a.State == api.AttemptDispatched {
				waiting++
			} else if t.ending {
				ending++ // ended on the agent; its outcome is on the way
			}
		}
		r.Nodes = append(r.Nodes, api.NodeStatus{
			Node: n.rec, Running: len(n.attempts) - waiting - ending, Waiting: waiting,
			FreeCPU:    max(0, n.rec.CPU-n.usedCPU-n.leftover.cpu),
			FreeMemory: max(0, n.rec.Memory-n.usedMem-n.leftover.mem),
			Held:       n.held, Superseded: n.leftover.attempts,
		})
	}
	sort.Slice(r.Nodes, func(i, j int) bool { return r.Nodes[i].ID < r.Nodes[j].ID })
	return r, nil
}

func (l *leaderState) studyStatus(s *study, now time.Time) api.StudyStatus {
	st := l.fullStatus(s, now)
	if _, err := json.Marshal(&st); err != nil {
		// One study's unencodable value must not take status away from
		// every study: report what is certain, and why the rest is not.
		st = api.StudyStatus{
			Name: st.Name, State: st.State, Method: st.Method, Objective: st.Objective, Direction: st.Direction,
			Priority: st.Priority, Team: st.Team, Total: st.Total, Counts: st.Counts, Created: st.Created, Finished: st.Finished,
			StaleAttempts: st.StaleAttempts, LateResults: st.LateResults, Retries: st.Retries, Quarantine: st.Quarantine,
			Error: fmt.Sprintf("part of this study's status cannot be encoded (%v); it is left out", err),
		}
	}
	return st
}

func (l *leaderState) fullStatus(s *study, now time.Time) api.StudyStatus {
	st := api.StudyStatus{
		Name: s.rec.Name, State: s.rec.State, Method: s.rec.Method,
		Objective: s.rec.Objective, Direction: s.rec.Direction, Priority: s.rec.Priority,
		Team: s.rec.TeamOf(), Submissions: s.rec.Submissions, Cancellations: s.rec.Cancellations,
		Total: len(s.trials), Counts: map[string]int{},
		StaleAttempts: s.stale, PreemptedAttempts: s.preempted, LateResults: s.late, Retries: s.retries,
		Created: s.rec.Created, Finished: s.rec.Finished,
		Analysis:   s.rec.Analysis,
		Budget:     budgetStatus(s),
		Extensions: s.rec.Extensions, Decisions: s.rec.Decisions,
	}
	if s.q != nil {
		q := s.q.rec
		st.Quarantine = &q
	}
	if n := s.counts[sweep.Pending]; n > 0 && s.running == 0 {
		if why := l.unplaceable(s.rec.Method, s.needs); why != "" {
			st.Waiting = fmt.Sprintf("%d trials wait: %s", n, why)
		}
	}
	if n := len(s.ready); n > 0 && s.rec.State == api.StudyActive {
		team := s.rec.TeamOf()
		if why := quotaFull(team, l.cfg.Quotas[team], l.teamUsage()[team], s.needs); why != "" {
			st.Quota = fmt.Sprintf("%d trials wait: %s; they start as the team's running trials end (an operator sets quotas with the coordinator's -team-quotas)", n, why)
		}
	}
	done := 0
	for state, c := range s.counts {
		if c > 0 {
			st.Counts[string(state)] = c
		}
		if state.Terminal() {
			done += c
		}
	}
	st.Rate = s.rate(now)
	if left := len(s.trials) - done; left > 0 && st.Rate > 0 {
		st.ETA = api.Duration(time.Duration(float64(left) / st.Rate * float64(time.Second)))
	}
	maximize := s.rec.Direction == string(sweep.Maximize)
	bestVal := math.Inf(1)
	versions := map[string]bool{}
	st.CheckpointBytes, st.CheckpointQuota = s.checkpointBytes, s.spec.CheckpointPolicy().Quota
	needs := s.needs
	st.Needs = &needs
	promoted := promotedFrom(s)
	for _, t := range s.trials {
		if paused(t, promoted) {
			st.Paused++
		}
		st.Checkpoints += len(t.rec.Checkpoints)
		if a := t.rec.Current(); a != nil && !a.State.Terminal() && a.StartStep > 0 && len(st.Resuming) < api.MaxResumedShown {
			st.Resuming = append(st.Resuming, api.ResumedAttempt{Trial: t.rec.ID, Attempt: a.N, Node: a.Node, StartStep: a.StartStep})
		}
		switch t.rec.State {
		case sweep.Succeeded:
			if r := t.rec.Result; r != nil {
				versions[r.MethodVersion] = true
			}
			if r := t.rec.Result; r != nil && r.Objective != nil {
				v := *r.Objective
				if maximize {
					v = -v
				}
				if v < bestVal {
					bestVal = v
					best := t.rec
					st.Best = &best
				}
			}
		case sweep.Failed:
			if len(st.Failures) < 5 {
				st.Failures = append(st.Failures, t.rec)
			}
		}
	}
	if len(versions) > 1 {
		st.MethodVersions = slices.Sorted(maps.Keys(versions))
		for i, v := range st.MethodVersions {
			if v == "" {
				st.MethodVersions[i] = "unknown"
			}
		}
	}
	return st
}

func (l *leaderState) results(who bus.Caller, req api.ResultsRequest) (*api.ResultsReply, error) {
	s := l.studies[req.Study]
	if s == nil || !visible(s, who) {
		return nil, fmt.Errorf("no study named %q (run 'asymptote status' to list studies)", req.Study)
	}
	if req.Limit <= 0 || req.Limit > 2000 {
		req.Limit = 2000
	}
	r := &api.ResultsReply{Study: s.rec.Name, Objective: s.rec.Objective, Direction: s.rec.Direction, Total: len(s.trials)}
	if req.Offset == 0 {
		r.SpecFile, r.Spec, r.Extensions = s.rec.SpecFile, s.rec.Spec, s.rec.Extensions
	}
	var promoted map[string]bool
	if continuing(s) != nil {
		promoted = promotedFrom(s)
	}
	for i := req.Offset; i < len(s.trials) && i < req.Offset+req.Limit; i++ {
		rec := s.trials[i].rec
		rec.Paused = promoted != nil && paused(s.trials[i], promoted)
		r.Trials = append(r.Trials, rec)
	}
	return r, nil
}

// history checks a history request: the caller reads only its team's
// studies' histories, and an unknown or invisible study is answered as
// results answers it.
func (l *leaderState) history(who bus.Caller, req api.HistoryRequest) error {
	s := l.studies[req.Study]
	if s == nil || !visible(s, who) {
		return fmt.Errorf("no study named %q (run 'asymptote status' to list studies)", req.Study)
	}
	if req.Trial != "" {
		if err := bus.ValidToken(req.Trial); err != nil {
			return fmt.Errorf("trial: %w", err)
		}
	}
	return nil
}

// operate carries out an operator's quarantine, resume or delete.
func (l *leaderState) operate(who bus.Caller, verb string, req api.StudyRequest, now time.Time) (*api.StudyReply, error) {
	if err := operatorOnly(who, verb); err != nil {
		return nil, err
	}
	s := l.studies[req.Study]
	if s == nil {
		return nil, fmt.Errorf("no study named %q (run 'asymptote status' to list studies)", req.Study)
	}
	r := &api.StudyReply{Study: s.rec.Name}
	switch verb {
	case api.VerbQuarantine:
		if s.quarantined() {
			return nil, fmt.Errorf("study %q is already quarantined: %s", s.rec.Name, s.q.rec.Reason)
		}
		reason := req.Reason
		if reason == "" {
			reason = "quarantined by an operator"
		}
		l.quarantine(s, "operator", reason, now)
	case api.VerbResume:
		if err := l.resumeStudy(s); err != nil {
			return nil, err
		}
	case api.VerbDelete:
		n, err := l.deleteStudy(s, now)
		if err != nil {
			return nil, err
		}
		r.Deleted = n
		return r, nil
	}
	r.State = s.rec.State
	return r, nil
}

// cancel stops a study, or some of its trials: queued trials are cancelled
// at once, and running attempts are told to stop.
func (l *leaderState) cancel(who bus.Caller, req api.CancelRequest, now time.Time) (*api.CancelReply, error) {
	s := l.studies[req.Study]
	if s == nil || !visible(s, who) {
		return nil, fmt.Errorf("no study named %q (run 'asymptote status' to list studies)", req.Study)
	}
	if s.quarantined() {
		return nil, fmt.Errorf("study %q is quarantined: %s; resume it first ('asymptote study resume %s'), or delete it ('asymptote study delete %s')", s.rec.Name, s.q.rec.Reason, s.rec.Name, s.rec.Name)
	}
	if s.rec.State == api.StudyDone && len(req.Trials) == 0 {
		// Every trial has ended: cancelling would change no trial and
		// only refuse every later extension of the study.
		return &api.CancelReply{Note: fmt.Sprintf("study %s has finished: all %d trials have ended, so nothing was cancelled", s.rec.Name, len(s.trials))}, nil
	}
	targets := s.trials
	if len(req.Trials) > 0 {
		targets = nil
		var errs []error
		for _, id := range req.Trials {
			t := s.byID[id]
			if t == nil {
				errs = append(errs, fmt.Errorf("study %q has no trial %q", req.Study, id))
				continue
			}
			targets = append(targets, t)
		}
		if err := errors.Join(errs...); err != nil {
			return nil, err
		}
	}
	reason := req.Reason
	if reason == "" {
		reason = "cancelled by the user"
	}
	byNode := map[string][]bus.AttemptRef{}
	n := 0
	for _, t := range targets {
		if t.rec.State.Terminal() {
			continue
		}
		if a := t.rec.Current(); a != nil && !a.State.Terminal() {
			a.State = api.AttemptCancelled
			end := now
			a.Ended = &end
			a.Error = reason
			byNode[a.Node] = append(byNode[a.Node], t.ref())
			if t.node != nil {
				t.node.release(t)
				s.running--
			}
		}
		t.rec.Error = reason
		l.setState(t, sweep.Cancelled, now)
		n++
	}
	if len(req.Trials) == 0 && s.rec.State != api.StudyCancelled {
		s.rec.State = api.StudyCancelled
		fin := now
		s.rec.Finished = &fin
		s.rec.Updated = now
		l.dirtyStudies[s] = true
		// No promotion will come: what succeeded trials held for one
		// goes.
		s.searchDone = true
		l.releaseHeld(s, nil)
	}
	if n > 0 {
		c := api.Cancellation{Time: now, By: who.Who(), Trials: n, Whole: len(req.Trials) == 0, Reason: req.Reason}
		s.rec.Cancellations = append(s.rec.Cancellations, c)
		if k := len(s.rec.Cancellations) - api.MaxCancellations; k > 0 {
			s.rec.Cancellations = slices.Delete(s.rec.Cancellations, 0, k)
		}
		s.rec.Updated = now
		l.dirtyStudies[s] = true
	}
	for node, refs := range byNode {
		data := bus.Encode(&bus.Cancel{Attempts: refs, Reason: reason})
		subj := bus.CancelSubject(node)
		l.do(publish{subj, data})
	}
	l.log.Info("cancelled", "study", s.rec.Name, "trials", n, "by", who.Who(), "team", s.rec.TeamOf())
	return &api.CancelReply{Cancelled: n}, nil
}

package coordinator

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"asymptote.dev/asymptote/internal/api"
	"asymptote.dev/asymptote/internal/bus"
	"asymptote.dev/asymptote/sweep"
)

// call applies one API request from who, on the subject who would send
// it on, and returns the reply the turn queued.
func (l *leaderState) call(t *testing.T, who bus.Caller, verb string, req any, now time.Time) (any, error) {
	t.Helper()
	data, err := json.Marshal(req)
	if err != nil {
		t.Fatal(err)
	}
	subject := bus.APISubject(verb)
	if who.Team != "" {
		subject = bus.TeamAPISubject(verb, who.Team, who.Identity)
	}
	_, parsed, err := bus.ParseAPISubject(subject)
	if err != nil || parsed != who {
		t.Fatalf("ParseAPISubject(%q) = %+v, %v; want %+v", subject, parsed, err, who)
	}
	l.actions = nil
	l.apply(apiInput{verb: verb, caller: parsed, msg: &nats.Msg{Subject: subject, Data: data, Reply: "inbox"}}, now)
	for _, a := range l.actions {
		if r, ok := a.(reply); ok {
			return r.v, r.err
		}
	}
	t.Fatalf("%s from %+v queued no reply", verb, who)
	return nil, nil
}

// commitAll pretends the turn's commit wrote every dirty record.
func (l *leaderState) commitAll() {
	for s := range l.dirtyStudies {
		s.rev++
	}
	for tr := range l.dirtyTrials {
		tr.rev++
	}
	clear(l.expanding)
	clear(l.dirtyTrials)
	clear(l.dirtyStudies)
}

var (
	teamA    = bus.Caller{Team: "a", Identity: "submitter-a"}
	viewerA  = bus.Caller{Team: "a", Identity: "viewer-a"}
	teamB    = bus.Caller{Team: "b", Identity: "submitter-b"}
	operator = bus.Caller{Team: bus.AllTeams, Identity: "operator"}
	open     = bus.Caller{}
)

// TestTeams: a study belongs to the team whose identity submitted it, and
// a team's identities see and touch only their team's studies, with the
// answer a missing study gets; an operator and the open bus see every
// team's. Who submitted and cancelled is recorded with the study and
// shown in its status.
func TestTeams(t *testing.T) {
	l := offline(t)
	now := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	l.heartbeat("n", 8, 1<<30, 0, nil, now)
	submit := func(who bus.Caller, name string) error {
		_, err := l.call(t, who, api.VerbSubmit, api.SubmitRequest{SpecFile: name + ".yaml", Spec: studySpec(name, 2, "{cpu: 1, memory: 16MiB}")}, now)
		l.commitAll()
		return err
	}
	for who, name := range map[bus.Caller]string{teamA: "sa", teamB: "sb", open: "so", operator: "sop"} {
		if err := submit(who, name); err != nil {
			t.Fatalf("%s submits %s: %v", who.Who(), name, err)
		}
	}
	for name, team := range map[string]string{"sa": "a", "sb": "b", "so": bus.DefaultTeam, "sop": bus.DefaultTeam} {
		if got := l.studies[name].rec.Team; got != team {
			t.Errorf("study %s has team %q, want %q", name, got, team)
		}
	}
	if err := submit(teamB, "sa"); err == nil || !strings.Contains(err.Error(), `name: study "sa" belongs to another team; submit the spec under another name`) {
		t.Errorf("team b submits team a's study name: %v", err)
	}
	if n := len(l.studies["sa"].trials); n != 2 {
		t.Errorf("team b's refused submission left team a's study with %d trials", n)
	}

	listed := func(who bus.Caller) []string {
		v, err := l.call(t, who, api.VerbStatus, api.StatusRequest{}, now)
		if err != nil {
			t.Fatalf("status from %s: %v", who.Who(), err)
		}
		var names []string
		for _, st := range v.(*api.StatusReply).Studies {
			names = append(names, st.Name)
		}
		slices.Sort(names)
		return names
	}
	for _, tt := range []struct {
		who  bus.Caller
		want string
	}{{teamA, "sa"}, {viewerA, "sa"}, {teamB, "sb"}, {operator, "sa sb so sop"}, {open, "sa sb so sop"}} {
		if got := strings.Join(listed(tt.who), " "); got != tt.want {
			t.Errorf("%s lists %q, want %q", tt.who.Who(), got, tt.want)
		}
	}

	missing := `no study named "sa" (run 'asymptote status' to list studies)`
	for verb, req := range map[string]any{
		api.VerbStatus:  api.StatusRequest{Study: "sa"},
		api.VerbResults: api.ResultsRequest{Study: "sa"},
		api.VerbCancel:  api.CancelRequest{Study: "sa"},
	} {
		if _, err := l.call(t, teamB, verb, req, now); err == nil || err.Error() != missing {
			t.Errorf("team b's %s of team a's study: %v, want %q", verb, err, missing)
		}
		if _, err := l.call(t, teamA, verb, req, now); verb != api.VerbCancel && err != nil {
			t.Errorf("team a's %s of its study: %v", verb, err)
		}
	}
	if s := l.studies["sa"]; s.rec.State != api.StudyCancelled || len(s.rec.Cancellations) != 1 {
		t.Fatalf("team a's cancel: study %s, cancellations %+v", s.rec.State, s.rec.Cancellations)
	}
	if _, err := l.call(t, teamA, api.VerbDelete, api.StudyRequest{Study: "sa"}, now); err == nil || !strings.Contains(err.Error(), "delete is an operator's verb: submitter-a of team a may not call it") {
		t.Errorf("team a's delete: %v, want the operator's-verb refusal", err)
	}
	if _, err := l.call(t, teamA, api.VerbAllow, api.AllowRequest{}, now); err == nil || !strings.Contains(err.Error(), "allow is an operator's verb: submitter-a of team a may not call it") {
		t.Errorf("team a's allow: %v, want the operator's-verb refusal", err)
	}
	if _, err := l.call(t, operator, api.VerbCancel, api.CancelRequest{Study: "sb", Trials: []string{l.studies["sb"].trials[0].rec.ID}, Reason: "too big"}, now); err != nil {
		t.Errorf("the operator cancels a trial of team b's study: %v", err)
	}

	v, err := l.call(t, teamA, api.VerbStatus, api.StatusRequest{Study: "sa"}, now)
	if err != nil {
		t.Fatal(err)
	}
	st := v.(*api.StatusReply).Studies[0]
	if st.Team != "a" || len(st.Submissions) != 1 || st.Submissions[0].By != "submitter-a" || !st.Submissions[0].Time.Equal(now) {
		t.Errorf("status of sa: team %q, submissions %+v; want team a, submitted by submitter-a at %s", st.Team, st.Submissions, now)
	}
	if c := st.Cancellations; len(c) != 1 || c[0].By != "submitter-a" || !c[0].Whole || c[0].Trials != 2 {
		t.Errorf("status of sa: cancellations %+v, want the whole study by submitter-a", c)
	}
	sb := l.studies["sb"].rec
	if c := sb.Cancellations; len(c) != 1 || c[0].By != "operator" || c[0].Whole || c[0].Trials != 1 || c[0].Reason != "too big" {
		t.Errorf("sb's cancellations %+v, want one trial by the operator", c)
	}
	if by := l.studies["so"].rec.Submissions[0].By; by != "anonymous" {
		t.Errorf("a submission on the open bus is recorded by %q, want anonymous", by)
	}
}

// TestTeamOfOldRecords: a study recorded before teams belongs to the
// default team: the default team's identities see it, another team's do
// not.
func TestTeamOfOldRecords(t *testing.T) {
	l := offline(t)
	now := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	l.addStudy(t, studySpec("old", 1, "{cpu: 1, memory: 16MiB}"), 0, now)
	if _, err := l.call(t, bus.Caller{Team: bus.DefaultTeam, Identity: "viewer"}, api.VerbResults, api.ResultsRequest{Study: "old"}, now); err != nil {
		t.Errorf("the default team's viewer reads an old study: %v", err)
	}
	if _, err := l.call(t, viewerA, api.VerbResults, api.ResultsRequest{Study: "old"}, now); err == nil {
		t.Error("team a's viewer read a study of the default team")
	}
}

// running counts each team's attempts on agents.
func (l *leaderState) runningByTeam() map[string]int {
	out := map[string]int{}
	for _, s := range l.order {
		out[s.rec.TeamOf()] += s.running
	}
	return out
}

// TestQuotaBurst: a burst of submissions from one team never holds more
// than its quota of trials, CPUs or GPUs at once, however much room the
// cluster has; its status says why its trials wait; a slot its quota
// frees goes to it again; another team's work runs meanwhile.
func TestQuotaBurst(t *testing.T) {
	for _, tt := range []struct {
		name  string
		quota Quota
		needs string
		want  int
		says  string
	}{
		{"trials", Quota{Trials: 3}, "{cpu: 1, memory: 16MiB}", 3, "team a is at its quota of 3 running trials"},
		{"cpu", Quota{CPU: 5}, "{cpu: 2, memory: 16MiB}", 2, "team a is at its quota of 5 CPUs (4 in use, a trial needs 2)"},
		{"gpus", Quota{GPUs: 4}, "{cpu: 1, memory: 16MiB, gpu: 1}", 4, "team a is at its quota of 4 GPUs (4 in use, a trial needs 1)"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			l := offline(t)
			l.cfg.Quotas = map[string]Quota{"a": tt.quota}
			now := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
			l.heartbeat("n1", 32, 1<<30, 8, nil, now)
			l.heartbeat("n2", 32, 1<<30, 8, nil, now)
			for i := range 6 {
				name := "a" + string(rune('0'+i))
				if _, err := l.call(t, teamA, api.VerbSubmit, api.SubmitRequest{SpecFile: name + ".yaml", Spec: studySpec(name, 5, tt.needs)}, now); err != nil {
					t.Fatal(err)
				}
				l.commitAll()
				l.schedule(now)
				if got := l.runningByTeam()["a"]; got > tt.want {
					t.Fatalf("after %d submissions team a runs %d, over its quota of %d", i+1, got, tt.want)
				}
			}
			if _, err := l.call(t, teamB, api.VerbSubmit, api.SubmitRequest{SpecFile: "b.yaml", Spec: studySpec("b", 4, "{cpu: 1, memory: 16MiB}")}, now); err != nil {
				t.Fatal(err)
			}
			l.schedule(now)
			if got := l.runningByTeam(); got["a"] != tt.want || got["b"] != 4 {
				t.Errorf("running %v, want a at its quota of %d and b's 4 unbounded", got, tt.want)
			}
			v, err := l.call(t, teamA, api.VerbStatus, api.StatusRequest{Study: "a5"}, now)
			if err != nil {
				t.Fatal(err)
			}
			if q := v.(*api.StatusReply).Studies[0].Quota; !strings.Contains(q, "5 trials wait: "+tt.says) {
				t.Errorf("status of a waiting study says %q, want %q", q, tt.says)
			}
			// Cancelling a running trial frees its share of the quota,
			// and the next turn takes it up again, no more.
			var running *trial
			for _, s := range l.order {
				for _, tr := range s.trials {
					if s.rec.TeamOf() == "a" && tr.rec.State == sweep.Dispatched && running == nil {
						running = tr
					}
				}
			}
			if _, err := l.call(t, teamA, api.VerbCancel, api.CancelRequest{Study: running.study.rec.Name, Trials: []string{running.rec.ID}}, now); err != nil {
				t.Fatal(err)
			}
			if got := l.runningByTeam()["a"]; got != tt.want-1 {
				t.Fatalf("after a cancel team a runs %d, want %d", got, tt.want-1)
			}
			l.schedule(now)
			if got := l.runningByTeam()["a"]; got != tt.want {
				t.Errorf("after the freed slot's turn team a runs %d, want %d", got, tt.want)
			}
		})
	}
}

// TestFairShare: teams share the slots by weight, whatever their studies'
// priorities and however many studies each has: equal weights within one
// trial of each other, weight 2 twice weight 1's. Within a team, a study
// of higher priority goes first.
func TestFairShare(t *testing.T) {
	for _, tt := range []struct {
		name    string
		quotas  map[string]Quota
		slots   int
		want    map[string]int
		slack   int
		studies map[string]int // per team
	}{
		{"equal", nil, 7, map[string]int{"a": 4, "b": 3}, 1, map[string]int{"a": 1, "b": 4}},
		{"equal, even", nil, 8, map[string]int{"a": 4, "b": 4}, 0, map[string]int{"a": 5, "b": 1}},
		{"weighted", map[string]Quota{"a": {Weight: 2}}, 9, map[string]int{"a": 6, "b": 3}, 1, map[string]int{"a": 2, "b": 2}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			l := offline(t)
			l.cfg.Quotas = tt.quotas
			now := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
			l.heartbeat("n", float64(tt.slots), 1<<30, 0, nil, now)
			callers := map[string]bus.Caller{"a": teamA, "b": teamB}
			for _, team := range []string{"b", "a"} {
				for i := range tt.studies[team] {
					name := team + string(rune('0'+i))
					// Team b's studies outrank team a's: priorities
					// order a team's studies, not the teams.
					spec := studySpec(name, 20, "{cpu: 1, memory: 16MiB}")
					if team == "b" {
						spec += "priority: 10\n"
					}
					if _, err := l.call(t, callers[team], api.VerbSubmit, api.SubmitRequest{SpecFile: name + ".yaml", Spec: spec}, now); err != nil {
						t.Fatal(err)
					}
				}
			}
			l.commitAll()
			l.schedule(now)
			got := l.runningByTeam()
			for team, want := range tt.want {
				if d := got[team] - want; d > tt.slack || d < -tt.slack {
					t.Errorf("team %s runs %d of %d slots, want %d (within %d); all: %v", team, got[team], tt.slots, want, tt.slack, got)
				}
			}
			if got["a"]+got["b"] != tt.slots {
				t.Errorf("running %v, want all %d slots used", got, tt.slots)
			}
		})
	}
	t.Run("priority within a team", func(t *testing.T) {
		l := offline(t)
		now := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
		l.heartbeat("n", 3, 1<<30, 0, nil, now)
		for name, prio := range map[string]string{"low": "", "high": "priority: 5\n"} {
			if _, err := l.call(t, teamA, api.VerbSubmit, api.SubmitRequest{SpecFile: name + ".yaml", Spec: studySpec(name, 5, "{cpu: 1, memory: 16MiB}") + prio}, now); err != nil {
				t.Fatal(err)
			}
		}
		l.schedule(now)
		if hi, lo := l.studies["high"].running, l.studies["low"].running; hi != 3 || lo != 0 {
			t.Errorf("high priority runs %d, low %d; want 3 and 0", hi, lo)
		}
	})
}

// TestParseQuotas: a quota file is refused with the team and field at
// fault and what to give instead.
func TestParseQuotas(t *testing.T) {
	q, err := ParseQuotas("q.json", []byte(`{"vision": {"cpu": 64, "gpus": 8, "trials": 32, "weight": 2}, "nlp": {}}`))
	if err != nil {
		t.Fatal(err)
	}
	if got := q["vision"]; got != (Quota{CPU: 64, GPUs: 8, Trials: 32, Weight: 2}) || q["nlp"].weight() != 1 {
		t.Errorf("ParseQuotas = %+v", q)
	}
	// The sample in deploy/ is one the coordinator takes.
	sample := filepath.Join("..", "deploy", "systemd", "team-quotas.json.example")
	data, err := os.ReadFile(sample)
	if err != nil {
		t.Fatal(err)
	}
	if q, err := ParseQuotas(sample, data); err != nil || q["vision"].GPUs != 32 {
		t.Errorf("ParseQuotas(%s) = %+v, %v", sample, q, err)
	}
	for _, tt := range []struct{ src, want string }{
		{`{"vision": {"cpu": -1}}`, "q.json: vision.cpu: -1; give a positive number"},
		{`{"vision": {"weight": -2, "gpus": -1}}`, "vision.gpus: -1"},
		{`{"_all": {}}`, "q.json: team name:"},
		{`{"vision": {"gpu": 8}}`, `unknown field "gpu"`},
		{`[1]`, "want an object such as"},
	} {
		if _, err := ParseQuotas("q.json", []byte(tt.src)); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("ParseQuotas(%s) = %v, want an error with %q", tt.src, err, tt.want)
		}
	}
}

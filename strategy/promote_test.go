package strategy_test

import (
	"fmt"
	"strings"
	"testing"

	"asymptote.dev/asymptote/internal/api"
	"asymptote.dev/asymptote/strategy"
	"asymptote.dev/asymptote/sweep"
)

const promoteSpec = rungStudy + `search:
  asha: {fidelity: tokens, rungs: [1e9, 3e9, 9e9], eta: 3, promote: true%s}
`

// runAsync runs a promotion study on one slot, as the leader does: the
// first queued trial runs, the strategy steps on its result, and what it
// promotes goes to the head of the queue. It logs each decision.
func runAsync(t *testing.T, m *sim) {
	t.Helper()
	queue, err := m.s.Spec.Expand()
	if err != nil {
		t.Fatal(err)
	}
	for n := 1; ; n++ {
		if n > 100 {
			t.Fatalf("the search did not end:\n%s", m.log.String())
		}
		if len(queue) > 0 {
			m.run(queue[:1])
			queue = queue[1:]
		}
		// The leader's snapshot holds the queued trials too, pending.
		snap := *m.s
		snap.Trials = append([]api.Trial(nil), m.s.Trials...)
		for _, q := range queue {
			snap.Trials = append(snap.Trials, api.Trial{ID: q.ID, Params: q.Params, Seed: q.Seed, Bracket: q.Bracket, State: sweep.Pending})
		}
		st, err := strategy.Next(t.Context(), &snap)
		if err != nil {
			t.Fatal(err)
		}
		if d := st.Decision; d != nil {
			fmt.Fprintf(&m.log, "after %d trials: %s\n", m.ran, d.Reason)
		}
		queue = append(st.Add, queue...)
		if !st.More() && len(queue) == 0 {
			if st.Decision == nil {
				t.Fatalf("the search ended with no decision saying so:\n%s", m.log.String())
			}
			return
		}
	}
}

// TestPromoteStudy runs promotion ASHA on the synthetic law, one trial at
// a time: every promotion must be a configuration in the best
// floor(n/eta) of its rung when it was made, the top rung's best must be
// near the grid's best there, and the log of decisions is golden.
func TestPromoteStudy(t *testing.T) {
	m := newSim(t, fmt.Sprintf(promoteSpec, ""))
	m.ran, m.s.Trials, m.ids = 0, nil, map[string]bool{} // runAsync runs the grid itself
	runAsync(t, m)
	perRung := map[float64]int{}
	for _, tr := range m.s.Trials {
		perRung[tr.Params["tokens"].(float64)]++
	}
	// Asynchronous promotion decides on partial rungs: at least what
	// halving promotes, rarely much more.
	if perRung[1e9] != 9 || perRung[3e9] < 3 || perRung[9e9] < 1 || perRung[3e9] > 5 {
		t.Errorf("trials per rung %v, want 9 at 1e9, 3 to 5 at 3e9 and at least 1 at 9e9", perRung)
	}
	grid := newSim(t, strings.Replace(strings.Split(fmt.Sprintf(promoteSpec, ""), "search:")[0], "tokens: 1e9", "tokens: 9e9", 1))
	top := func(tr api.Trial) bool { return tr.Params["tokens"] == 9e9 }
	if asha, full := m.best(top), grid.best(top); asha > full*1.01 {
		t.Errorf("ASHA's best %.5f is more than 1%% worse than the grid's %.5f", asha, full)
	}
	m.golden("promote")
}

// TestPromoteContinueSameDecisions checks that continuing promotions
// changes only where they start: the same results lead to the same
// trials, and every promotion names the lower trial it continues.
func TestPromoteContinueSameDecisions(t *testing.T) {
	restart := newSim(t, fmt.Sprintf(promoteSpec, ""))
	restart.ran, restart.s.Trials, restart.ids = 0, nil, map[string]bool{}
	runAsync(t, restart)
	cont := newSim(t, fmt.Sprintf(promoteSpec, ", continue: true"))
	cont.ran, cont.s.Trials, cont.ids = 0, nil, map[string]bool{}
	runAsync(t, cont)
	if got, want := cont.log.String(), restart.log.String(); got != want {
		t.Errorf("decisions differ with continue:\n%s\nwithout:\n%s", got, want)
	}
	for i := range restart.s.Trials {
		if cont.s.Trials[i].ID != restart.s.Trials[i].ID {
			t.Fatalf("trial %d is %s with continue, %s without", i, cont.s.Trials[i].ID, restart.s.Trials[i].ID)
		}
	}
}

// hyperbandSpec is rungStudy with 27 weight decays, enough for each
// bracket to promote.
var hyperbandSpec = strings.Replace(rungStudy, "count: 9", "count: 27", 1) + `search:
  hyperband: {fidelity: tokens, rungs: [1e9, 3e9, 9e9], eta: 3%s}
`

// TestHyperbandStudy runs asynchronous Hyperband on the synthetic law one
// trial at a time: every promotion stays in its bracket, each bracket
// starts at its own rung, continuing changes no decision, and the log of
// decisions is golden.
func TestHyperbandStudy(t *testing.T) {
	var logs []string
	for _, cont := range []string{"", ", continue: true"} {
		m := newSim(t, fmt.Sprintf(hyperbandSpec, cont))
		m.ran, m.s.Trials, m.ids = 0, nil, map[string]bool{}
		runAsync(t, m)
		starts := map[int]float64{}
		for _, tr := range m.s.Trials {
			f := tr.Params["tokens"].(float64)
			if s, ok := starts[tr.Bracket]; !ok || f < s {
				starts[tr.Bracket] = f
			}
		}
		if starts[1] != 1e9 || starts[2] != 3e9 || starts[3] != 9e9 || len(starts) != 3 {
			t.Errorf("brackets start at %v, want 1 at 1e9, 2 at 3e9, 3 at 9e9", starts)
		}
		for _, line := range strings.Split(m.log.String(), "; ") {
			if strings.Contains(line, "bracket 3: trial") {
				t.Errorf("bracket 3 starts at the top rung, yet promoted: %s", line)
			}
		}
		logs = append(logs, m.log.String())
		if cont == "" {
			m.golden("hyperband")
		}
	}
	if logs[0] != logs[1] {
		t.Errorf("decisions differ with continue:\n%s\nwithout:\n%s", logs[1], logs[0])
	}
}

// TestPromote checks single steps of promotion ASHA on hand-made rungs.
func TestPromote(t *testing.T) {
	spec := func(extra string) *sweep.Spec {
		return parse(t, `name: asha
method: synthetic
space:
  weight_decay: [0.1, 0.2, 0.3, 0.4, 0.5, 0.6]
fixed: {tokens: 100}
search:
  asha: {fidelity: tokens, rungs: [100, 300, 900], eta: 3, promote: true`+extra+`}
`)
	}
	base, err := spec("").Expand()
	if err != nil {
		t.Fatal(err)
	}
	// at makes the record of base trial i at fidelity f with a result v
	// (or in state st without one).
	at := func(s *sweep.Spec, i int, f float64, st sweep.State, v float64) api.Trial {
		tr, err := s.Variant(base[i].Params, map[string]any{"tokens": f}, base[i].Seed)
		if err != nil {
			t.Fatal(err)
		}
		rec := api.Trial{ID: tr.ID, Params: tr.Params, Seed: tr.Seed, State: st}
		if st == sweep.Succeeded {
			rec.Result = &api.Result{Objective: &v}
		}
		return rec
	}
	s := spec("")
	type want struct {
		promoted []string // "i@fidelity"
		done     bool     // a final decision
	}
	for _, tc := range []struct {
		name      string
		direction string
		trials    []api.Trial
		want      want
	}{
		{"two results are too few", "minimize", []api.Trial{
			at(s, 0, 100, sweep.Succeeded, 3), at(s, 1, 100, sweep.Succeeded, 2), at(s, 2, 100, sweep.Running, 0),
		}, want{}},
		{"three promote the best", "minimize", []api.Trial{
			at(s, 0, 100, sweep.Succeeded, 3), at(s, 1, 100, sweep.Succeeded, 2), at(s, 2, 100, sweep.Succeeded, 4), at(s, 3, 100, sweep.Pending, 0),
		}, want{promoted: []string{"1@300"}}},
		{"maximize promotes the largest", "maximize", []api.Trial{
			at(s, 0, 100, sweep.Succeeded, 3), at(s, 1, 100, sweep.Succeeded, 2), at(s, 2, 100, sweep.Succeeded, 4), at(s, 3, 100, sweep.Pending, 0),
		}, want{promoted: []string{"2@300"}}},
		{"promoted once", "minimize", []api.Trial{
			at(s, 0, 100, sweep.Succeeded, 3), at(s, 1, 100, sweep.Succeeded, 2), at(s, 2, 100, sweep.Succeeded, 4), at(s, 1, 300, sweep.Running, 0),
		}, want{}},
		{"a better newcomer goes on, the one before stays promoted", "minimize", []api.Trial{
			at(s, 0, 100, sweep.Succeeded, 3), at(s, 1, 100, sweep.Succeeded, 2), at(s, 2, 100, sweep.Succeeded, 4), at(s, 1, 300, sweep.Running, 0),
			at(s, 3, 100, sweep.Succeeded, 1), at(s, 4, 100, sweep.Succeeded, 5), at(s, 5, 100, sweep.Succeeded, 6),
		}, want{promoted: []string{"3@300"}}},
		{"higher rungs first", "minimize", []api.Trial{
			at(s, 0, 100, sweep.Succeeded, 3), at(s, 1, 100, sweep.Succeeded, 2), at(s, 2, 100, sweep.Succeeded, 4),
			at(s, 3, 100, sweep.Succeeded, 1), at(s, 4, 100, sweep.Succeeded, 5), at(s, 5, 100, sweep.Succeeded, 6),
			at(s, 1, 300, sweep.Succeeded, 1.5), at(s, 0, 300, sweep.Succeeded, 2.5), at(s, 2, 300, sweep.Succeeded, 3.5),
		}, want{promoted: []string{"1@900", "3@300"}}},
		{"failed trials are not ranked", "minimize", []api.Trial{
			at(s, 0, 100, sweep.Succeeded, 3), at(s, 1, 100, sweep.Failed, 0), at(s, 2, 100, sweep.Succeeded, 4),
		}, want{done: true}},
		{"the top rung promotes nothing", "minimize", []api.Trial{
			at(s, 0, 900, sweep.Succeeded, 3), at(s, 1, 900, sweep.Succeeded, 2), at(s, 2, 900, sweep.Succeeded, 4),
		}, want{done: true}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st, err := strategy.Next(t.Context(), &strategy.Study{Name: "asha", Spec: s, Objective: "val_loss", Direction: tc.direction, Trials: tc.trials})
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, tr := range st.Add {
				for i, b := range base {
					if b.Params["weight_decay"] == tr.Params["weight_decay"] {
						got = append(got, fmt.Sprintf("%d@%g", i, tr.Params["tokens"]))
					}
				}
			}
			if strings.Join(got, ",") != strings.Join(tc.want.promoted, ",") {
				t.Errorf("promoted %v, want %v", got, tc.want.promoted)
			}
			if done := !st.More() && st.Decision != nil; done != tc.want.done {
				t.Errorf("final decision %v (%+v), want %v", done, st.Decision, tc.want.done)
			}
			if st.Continue != nil {
				t.Errorf("continues %v without continue", st.Continue)
			}
		})
	}
	t.Run("continue names the lower trial", func(t *testing.T) {
		c := spec(", continue: true")
		trials := []api.Trial{at(c, 0, 100, sweep.Succeeded, 3), at(c, 1, 100, sweep.Succeeded, 2), at(c, 2, 100, sweep.Succeeded, 4)}
		st, err := strategy.Next(t.Context(), &strategy.Study{Name: "asha", Spec: c, Objective: "val_loss", Direction: "minimize", Trials: trials})
		if err != nil {
			t.Fatal(err)
		}
		if len(st.Add) != 1 || st.Continue[st.Add[0].ID] != trials[1].ID {
			t.Errorf("added %v continuing %v, want trial 1 at 300 continuing %s", st.Add, st.Continue, trials[1].ID)
		}
	})
}

// BenchmarkPromote measures one step of promotion ASHA on a study of
// 10,000 configurations that all finished the first rung and a ninth of
// which finished the second: the cost the leader pays each time a trial
// of such a study succeeds.
func BenchmarkPromote(b *testing.B) {
	spec, err := sweep.Parse("spec.yaml", []byte(`name: asha
method: synthetic
space:
  wd: {range: [0.0001, 1], count: 10000, scale: log}
fixed: {tokens: 100}
search:
  asha: {fidelity: tokens, rungs: [100, 300, 900], eta: 3, promote: true}
`))
	if err != nil {
		b.Fatal(err)
	}
	base, err := spec.Expand()
	if err != nil {
		b.Fatal(err)
	}
	s := &strategy.Study{Name: "asha", Spec: spec, Objective: "val_loss", Direction: "minimize"}
	for i, tr := range base {
		v := float64((i * 7919) % 10007)
		s.Trials = append(s.Trials, api.Trial{ID: tr.ID, Params: tr.Params, Seed: tr.Seed, State: sweep.Succeeded, Result: &api.Result{Objective: &v}})
		if i%9 == 0 {
			up, err := spec.Variant(tr.Params, map[string]any{"tokens": 300.0}, tr.Seed)
			if err != nil {
				b.Fatal(err)
			}
			s.Trials = append(s.Trials, api.Trial{ID: up.ID, Params: up.Params, Seed: up.Seed, State: sweep.Succeeded, Result: &api.Result{Objective: &v}})
		}
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := strategy.Promote(s); err != nil {
			b.Fatal(err)
		}
	}
}

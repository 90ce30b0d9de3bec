package bench

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"asymptote.dev/asymptote/internal/api"
	"asymptote.dev/asymptote/internal/devcluster"
	"asymptote.dev/asymptote/internal/store"
)

func (j dispatchJob) String() string {
	if j.Storage == "" {
		return fmt.Sprintf("rep %d asymptote %s", j.Rep, j.Config)
	}
	return fmt.Sprintf("rep %d optuna %s %d", j.Rep, j.Storage, j.Workers)
}

// TestDispatchPlan checks the schedule's order: repetition is the outer
// loop over both systems; asymptote at each concurrency runs right next to
// Optuna's runs at as many workers; each flushed run sits beside its
// synced twin, alternating which goes first; every repetition runs the
// same jobs with the same trial counts.
func TestDispatchPlan(t *testing.T) {
	full := (&Options{Repeats: 3}).sizes()
	quick := (&Options{Repeats: 3, Quick: true}).sizes()
	for _, tc := range []struct {
		name string
		sz   sizes
	}{{"full", full}, {"quick", quick}} {
		t.Run(tc.name, func(t *testing.T) {
			sz := tc.sz
			jobs := dispatchPlan(sz, optunaStorages)
			var reps [][]dispatchJob
			for i, j := range jobs {
				if i > 0 && j.Rep < jobs[i-1].Rep {
					t.Fatalf("job %d (%s) after %s: repetitions are not the outer loop", i, j, jobs[i-1])
				}
				if j.Rep == len(reps) {
					reps = append(reps, nil)
				}
				reps[j.Rep] = append(reps[j.Rep], j)
			}
			if len(reps) != sz.repeats {
				t.Fatalf("%d repetitions, want %d", len(reps), sz.repeats)
			}
			for r, js := range reps {
				// Same jobs (ignoring order within the flushed pairs) and
				// trial counts every repetition.
				key := func(js []dispatchJob) []string {
					var ks []string
					for _, j := range js {
						j.Rep = 0
						ks = append(ks, fmt.Sprintf("%s/%d", j, j.Trials))
					}
					slices.Sort(ks)
					return ks
				}
				if !slices.Equal(key(js), key(reps[0])) {
					t.Errorf("repetition %d runs %v, repetition 0 %v", r, key(js), key(reps[0]))
				}
				hasOurs, hasPeer := false, false
				for _, j := range js {
					hasOurs = hasOurs || j.Storage == ""
					hasPeer = hasPeer || j.Storage != ""
				}
				if !hasOurs || !hasPeer {
					t.Fatalf("repetition %d runs one system only: %v", r, js)
				}
				for _, k := range sz.concurrency {
					// Asymptote's synced run at k, then (after its flushed
					// twin, if it has one) Optuna's runs at k, in a row.
					i := slices.IndexFunc(js, func(j dispatchJob) bool { return j.Storage == "" && j.Config == sameConcurrency(k) })
					if i < 0 {
						t.Fatalf("repetition %d: no asymptote run at concurrency %d", r, k)
					}
					next := i + 1
					if next < len(js) && js[next].Storage == "" && js[next].Config.NATSSyncInterval > 0 {
						next++
					}
					for n, st := range optunaStorages {
						j := js[next+n]
						if j.Storage != st || j.Workers != k {
							t.Errorf("repetition %d: after asymptote at concurrency %d, job %s, want Optuna %s with %d workers", r, k, j, st, k)
						}
						want := sz.optunaTrials
						if st == "journal" {
							want = sz.journalN
						}
						if j.Trials != want {
							t.Errorf("%s: %d trials, want %d", j, j.Trials, want)
						}
					}
				}
				var flushed int
				for i, j := range js {
					if j.Storage == "" && j.Trials != sz.dispatchTrials {
						t.Errorf("%s: %d trials, want %d", j, j.Trials, sz.dispatchTrials)
					}
					if j.Config.NATSSyncInterval == 0 {
						continue
					}
					flushed++
					if j.Config.NATSSyncInterval != SyncInterval {
						t.Errorf("%s: interval %s, want %s", j, j.Config.NATSSyncInterval, SyncInterval)
					}
					twin := j.Config
					twin.NATSSyncInterval = 0
					at := i + 1 // flushed first in odd repetitions
					if r%2 == 0 {
						at = i - 1
					}
					if at < 0 || at >= len(js) || js[at].Storage != "" || js[at].Config != twin {
						t.Errorf("repetition %d: %s not paired with its synced twin on the %s", r, j, map[bool]string{true: "left", false: "right"}[r%2 == 0])
					}
				}
				if flushed != 2 {
					t.Errorf("repetition %d: %d flushed runs, want 2 (one slot, and asymptote's own configuration)", r, flushed)
				}
			}
		})
	}
	// Without Optuna the asymptote runs stay the same.
	var ours []dispatchJob
	for _, j := range dispatchPlan(quick, optunaStorages) {
		if j.Storage == "" {
			ours = append(ours, j)
		}
	}
	if got := dispatchPlan(quick, nil); !slices.Equal(got, ours) {
		t.Errorf("without Optuna: %v, want %v", got, ours)
	}
}

// TestCommitWatchEnd checks the window's end: not the study's `finished`
// timestamp, nor its done record when a result lands after it (the leader
// commits a turn in concurrent transactions), but the moment the last
// result's commit returns.
func TestCommitWatchEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("starts etcd")
	}
	ctx := t.Context()
	srv, err := devcluster.Start(ctx, devcluster.Config{DataDir: t.TempDir(), NATSPort: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	cli, err := clientv3.New(clientv3.Config{Endpoints: srv.EtcdEndpoints, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	st := store.New(cli)
	revs := map[string]int64{}
	put := func(puts ...store.Put) {
		t.Helper()
		for i := range puts {
			puts[i].Rev = revs[puts[i].Key]
		}
		rs, err := st.Commit(ctx, puts)
		if err != nil {
			t.Fatal(err)
		}
		for i, p := range puts {
			revs[p.Key] = rs[i]
		}
	}
	trial := func(study, id string, result bool) store.Put {
		tr := api.Trial{ID: id, Study: study}
		if result {
			tr.Result = &api.Result{Recorded: time.Now(), Metrics: map[string]float64{"val_loss": 1}}
		}
		return store.Put{Key: store.TrialKey(study, id), Value: &tr}
	}
	w, err := watchCommits(ctx, cli, "s", 3)
	if err != nil {
		t.Fatal(err)
	}
	finished := time.Now()
	// A study whose name extends ours finishing is not ours.
	put(store.Put{Key: store.StudyKey("s2"), Value: &api.Study{Name: "s2", State: api.StudyDone, Finished: &finished}},
		trial("s2", "a", true), trial("s2", "b", true), trial("s2", "c", true))
	put(trial("s", "a", false), trial("s", "b", false), trial("s", "c", false))
	put(trial("s", "a", true), trial("s", "b", true))
	// The done record lands before the last result.
	put(store.Put{Key: store.StudyKey("s"), Value: &api.Study{Name: "s", State: api.StudyDone, Finished: &finished}})
	time.Sleep(200 * time.Millisecond)
	beforeLast := time.Now()
	put(trial("s", "c", true))
	returned := time.Now()
	wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	c, err := w.wait(wctx)
	if err != nil {
		t.Fatal(err)
	}
	if c.End.Before(beforeLast) {
		t.Errorf("window ended %s before the last result's commit was sent", beforeLast.Sub(c.End))
	}
	if d := c.End.Sub(returned); d > time.Second {
		t.Errorf("window ended %s after the last commit returned", d)
	}
	if !c.DoneAt.Before(beforeLast) {
		t.Errorf("done seen at %s, after the last result was sent", c.DoneAt)
	}
	if len(c.Result) != 3 || c.Result["c"] != c.End || !c.Result["a"].Before(c.DoneAt) {
		t.Errorf("results seen: %v (done %v, end %v)", c.Result, c.DoneAt, c.End)
	}
}

// TestCommitWatchIncomplete checks that a study whose results are not all
// committed does not end the window.
func TestCommitWatchIncomplete(t *testing.T) {
	if testing.Short() {
		t.Skip("starts etcd")
	}
	ctx := t.Context()
	srv, err := devcluster.Start(ctx, devcluster.Config{DataDir: t.TempDir(), NATSPort: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	cli, err := clientv3.New(clientv3.Config{Endpoints: srv.EtcdEndpoints, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	w, err := watchCommits(ctx, cli, "s", 2)
	if err != nil {
		t.Fatal(err)
	}
	tr := api.Trial{ID: "a", Study: "s", Result: &api.Result{Recorded: time.Now()}}
	if _, err := store.New(cli).Commit(ctx, []store.Put{
		{Key: store.TrialKey("s", "a"), Value: &tr},
		{Key: store.StudyKey("s"), Value: &api.Study{Name: "s", State: api.StudyDone}},
	}); err != nil {
		t.Fatal(err)
	}
	wctx, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
	defer cancel()
	if c, err := w.wait(wctx); err == nil {
		t.Fatalf("window ended at %v with 1 of 2 results", c.End)
	}
}

// TestStagesIncludeCommit checks that "ended → recorded" runs to the
// result's etcd commit, not to the leader's timestamp on the result.
func TestStagesIncludeCommit(t *testing.T) {
	t0 := time.Now()
	at := func(ms int) *time.Time { x := t0.Add(time.Duration(ms) * time.Millisecond); return &x }
	tr := api.Trial{ID: "a", Attempts: []api.Attempt{{N: 1, Dispatched: t0, Started: at(2), Ended: at(5)}},
		Result: &api.Result{Attempt: 1, Recorded: *at(8)}}
	cm := commits{Result: map[string]time.Time{"a": *at(20)}, Recorded: map[string]time.Time{"a": *at(8)}}
	got := map[string]time.Duration{}
	for _, s := range stagesOf([]api.Trial{tr}, cm) {
		got[s.Name] = s.P50
	}
	want := map[string]time.Duration{stageDispatched: 2 * time.Millisecond, stageRPC: 3 * time.Millisecond, stageRecorded: 15 * time.Millisecond, stageCommit: 12 * time.Millisecond}
	for name, d := range want {
		if got[name] != d {
			t.Errorf("%s: %s, want %s", name, got[name], d)
		}
	}
}

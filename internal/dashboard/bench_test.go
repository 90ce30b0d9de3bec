package dashboard_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"asymptote.dev/asymptote/internal/api"
	"asymptote.dev/asymptote/internal/store"
	"asymptote.dev/asymptote/sweep"
)

// BenchmarkStudyPage100k opens the page of a finished 100,000-trial study
// in Chromium (software WebGL) and measures the time until the table holds
// every trial, and then a sort by the objective. Goal: under 2 s each.
//
//	go test ./internal/dashboard -run '^$' -bench StudyPage100k -benchtime 3x
func BenchmarkStudyPage100k(b *testing.B) {
	url, cl := clusterB(b)
	ctx := context.Background()
	st := store.New(cl.Etcd)
	const n = 100_000
	now := time.Now()
	puts := []store.Put{{Key: store.StudyKey("big"), Value: api.Study{Name: "big", State: api.StudyDone, Method: "synthetic", Objective: "val_loss", Direction: "minimize", Trials: n, Spec: "name: big\nmethod: synthetic\n", SpecFile: "big.yaml", Created: now, Updated: now}}}
	for i := range n {
		obj := 2 + 1/float64(i+1)
		tr := api.Trial{ID: fmt.Sprintf("%020x", i), Study: "big", Index: i, Method: "synthetic", State: sweep.Succeeded, Attempt: 1, Seed: int64(i % 10),
			Params:   map[string]any{"params": float64(1e6 + i%1000*1e5), "weight_decay": float64(i%7) / 10, "tokens": 2e9},
			Attempts: []api.Attempt{{N: 1, State: api.AttemptSucceeded, Node: "dev-1", Dispatched: now, Ended: &now}},
			Result:   &api.Result{Attempt: 1, Node: "dev-1", Objective: &obj, Metrics: map[string]float64{"val_loss": obj}, Recorded: now},
			Created:  now, Updated: now}
		puts = append(puts, store.Put{Key: store.TrialKey("big", tr.ID), Value: tr})
		if len(puts) >= 500 {
			if _, err := st.Commit(ctx, puts); err != nil {
				b.Fatal(err)
			}
			puts = puts[:0]
		}
	}
	if _, err := st.Commit(ctx, puts); err != nil {
		b.Fatal(err)
	}
	br := openB(b, url, true)
	var paint, sort time.Duration
	for b.Loop() {
		start := time.Now()
		if err := chromedp.Do(br.ctx, chromedp.Navigate(url+"/#/blank"), chromedp.Navigate(url+"/#/study/big")); err != nil {
			b.Fatal(err)
		}
		waitB(b, br, 120*time.Second, `(() => { const t = Tabulator.findTable("#trials")[0]; return !!t && t.getDataCount() === 100000; })()`)
		paint += time.Since(start)
		start = time.Now()
		if _, err := chromedp.Run(br.ctx, chromedp.Evaluate[bool](`(() => { const t = Tabulator.findTable("#trials")[0];
			window.sorted = false; t.on("dataSorted", () => { window.sorted = true; }); t.setSort("objective", "asc"); return true; })()`)); err != nil {
			b.Fatal(err)
		}
		waitB(b, br, 60*time.Second, `window.sorted === true`)
		sort += time.Since(start)
	}
	b.ReportMetric(paint.Seconds()/float64(b.N), "s/paint")
	b.ReportMetric(sort.Seconds()/float64(b.N), "s/sort")
}

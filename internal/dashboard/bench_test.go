package dashboard_test

import (
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// BenchmarkStudyPage100k opens the page of a finished 100,000-trial study
// in Chromium (software WebGL) and measures the time until the table holds
// every trial, and then a sort by the objective. Goal: under 2 s each.
//
//	go test ./internal/dashboard -run '^$' -bench StudyPage100k -benchtime 3x
func BenchmarkStudyPage100k(b *testing.B) {
	url, cl := clusterB(b)
	cl.FinishedStudy("big", 100_000)
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

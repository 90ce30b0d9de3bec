package dashboard_test

import (
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"asymptote.dev/asymptote/internal/api"
)

// TestCrossoverView opens a study of two recipes and expects the scaling
// law plot to draw both fitted curves with their bands, the crossing at
// about 3.2e6 with a bootstrap interval around the true one, and to say
// so below the plot.
func TestCrossoverView(t *testing.T) {
	if testing.Short() {
		t.Skip("browser test: embedded servers and Chromium")
	}
	url, cl := clusterB(t)
	if _, err := cl.Client().Submit(t.Context(), api.SubmitRequest{SpecFile: "cross.yaml", Spec: example(t, "synthetic-crossover.yaml")}); err != nil {
		t.Fatal(err)
	}
	b := open(t, url, cl, false)
	b.run(t, chromedp.Navigate(url+"/#/study/cross"), chromedp.WaitVisible(chromedp.CSS(`#trials .tabulator-tableholder`)))
	b.waitJS(t, 60*time.Second, `Tabulator.findTable("#trials")[0].getData().filter(r => r.state === "succeeded").length === 24`)
	b.waitJS(t, 60*time.Second, `(document.getElementById("fit").data || []).some(t => t.name === "crossover")`)
	type root struct{ X, Lo, Hi float64 }
	got := eval[struct {
		Bands, Curves int
		Roots         []root
	}](t, b, `(() => { const d = document.getElementById("fit").data;
		const c = d.find(t => t.name === "crossover"), iv = d.filter(t => t.name === "crossover 95% interval");
		return { bands: d.filter(t => t.fill === "tonexty").length, curves: d.filter(t => /^alpha=[0-9.]+$/.test(t.name)).length,
			roots: c.x.map((x, i) => ({ x, lo: iv[i] ? Math.min(...iv[i].x) : 0, hi: iv[i] ? Math.max(...iv[i].x) : 0 })) }; })()`)
	if got.Bands != 2 || got.Curves != 2 {
		t.Errorf("the plot has %d bands and %d fitted curves, want 2 of each", got.Bands, got.Curves)
	}
	if len(got.Roots) != 1 {
		t.Fatalf("crossings drawn: %+v, want one", got.Roots)
	}
	if r := got.Roots[0]; r.X < 2e6 || r.X > 5e6 || !(r.Lo < 3.2e6 && 3.2e6 < r.Hi) {
		t.Errorf("crossing drawn at %g with interval (%g, %g), want about 3.2e6 inside its interval", r.X, r.Lo, r.Hi)
	}
	if info := b.text(t, "#fitinfo"); !strings.Contains(info, "alpha=0.2 and alpha=0.4 cross at params = ") || !strings.Contains(info, "95%") {
		t.Errorf("below the plot: %q, want where the recipes cross and the interval", info)
	}
	b.shot(t, `.card:has(> #fit)`, "dashboard-crossover.png")
	b.noErrors(t)
}

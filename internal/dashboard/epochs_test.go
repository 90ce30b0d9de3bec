package dashboard_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"asymptote.dev/asymptote/internal/api"
	"asymptote.dev/asymptote/internal/httpapi"
)

// TestEpochsView opens a study over repeated data and expects the
// repeated-data plot to draw each series' points and fitted curve, and to
// mark each series' best epoch count and where it degrades exactly where
// the API's analysis puts them.
func TestEpochsView(t *testing.T) {
	if testing.Short() {
		t.Skip("browser test: embedded servers and Chromium")
	}
	url, cl := clusterB(t)
	if _, err := cl.Client().Submit(t.Context(), api.SubmitRequest{SpecFile: "reps.yaml", Spec: example(t, "synthetic-epochs.yaml")}); err != nil {
		t.Fatal(err)
	}
	cl.WaitDone(cl.Client(), "reps", 60*time.Second)
	resp, err := http.Get(url + "/api/v1/studies/reps/epochs")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var want httpapi.EpochsReply
	if err := json.NewDecoder(resp.Body).Decode(&want); err != nil || len(want.Series) != 4 {
		t.Fatalf("the API's analysis: %v, %d series; want 4", err, len(want.Series))
	}

	b := open(t, url, cl, false)
	b.run(t, chromedp.Navigate(url+"/#/study/reps"), chromedp.WaitVisible(chromedp.CSS(`#epochs-card`)))
	b.waitJS(t, 30*time.Second, `(document.getElementById("epochs").data || []).length > 0`)
	type series struct {
		Name           string
		Points, Fitted int
		Best, Degrades []float64
	}
	got := eval[[]series](t, b, `(() => { const d = document.getElementById("epochs").data;
		return d.filter(t => t.showlegend !== false).map(t => {
			const of = (suffix) => d.find(u => u.name === t.name + suffix);
			return { name: t.name, points: t.x.length, fitted: of(" fit") ? of(" fit").x.length : 0,
				best: of(" best") ? of(" best").x : [], degrades: of(" degrades") ? of(" degrades").x : [] };
		}); })()`)
	if len(got) != len(want.Series) {
		t.Fatalf("the plot draws %d series, the API has %d", len(got), len(want.Series))
	}
	for i, s := range want.Series {
		g := got[i]
		if g.Points != len(s.Epochs) || g.Fitted != len(s.FitEpochs) || len(g.Best) != 1 || g.Best[0] != s.Best {
			t.Errorf("series %s: %d points, %d on the fit, best marked at %v; the API has %d, %d, %g", g.Name, g.Points, g.Fitted, g.Best, len(s.Epochs), len(s.FitEpochs), s.Best)
		}
		if s.DegradesAt == nil || len(g.Degrades) != 1 || g.Degrades[0] != *s.DegradesAt {
			t.Errorf("series %s: degradation marked at %v; the API has %v", g.Name, g.Degrades, s.DegradesAt)
		}
	}
	if info := b.text(t, "#epochsinfo"); !strings.Contains(info, "R_D* = ") || !strings.Contains(info, "worse from") {
		t.Errorf("below the plot: %q, want the fitted R_D* and where each series degrades", info)
	}
	b.shot(t, `#epochs-card`, "dashboard-epochs.png")
	b.noErrors(t)
}

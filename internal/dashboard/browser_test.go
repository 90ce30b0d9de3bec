package dashboard_test

import (
	"bufio"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/input"
	"github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"

	"asymptote.dev/asymptote/internal/api"
	"asymptote.dev/asymptote/internal/bus"
	"asymptote.dev/asymptote/internal/clustertest"
	"asymptote.dev/asymptote/internal/dashboard"
	"asymptote.dev/asymptote/internal/httpapi"
	"asymptote.dev/asymptote/internal/node"
	"asymptote.dev/asymptote/plugins/methods/synthetic"
)

var update = flag.Bool("update", false, "rewrite the screenshots in docs/img")

// chromium is Debian's browser (scripts/install-test-deps.sh installs it).
const chromium = "/usr/bin/chromium"

const spec = `name: dash
method: synthetic
space:
  params: [1e6, 3e6, 1e7, 3e7, 1e8, 3e8]
  weight_decay: [0.03, 0.1, 0.3]
fixed:
  tokens: 2e9
  steps: 8
  sleep: 0.4
  noise: 0.01
seeds: [0, 1]
analysis:
  fit: {law: power, x: params, best_over: [weight_decay], bootstrap: 20}
resources: {cpu: 0.25, memory: 16MiB}
`

// browser opens a headless Chromium on the dashboard of a real cluster and
// collects every console error and uncaught exception.
type browser struct {
	ctx  context.Context
	url  string
	cl   *clustertest.Cluster
	mu   sync.Mutex
	errs []string
}

// cluster starts a real cluster serving the API and the dashboard, with
// no agent yet (the coordinator queues studies for agents to come), and
// returns its URL and the cluster.
func cluster(t testing.TB) (string, *clustertest.Cluster) {
	t.Helper()
	if _, err := os.Stat(chromium); err != nil {
		t.Fatalf("%s is required (scripts/install-test-deps.sh installs Debian's chromium): %v", chromium, err)
	}
	cl := clustertest.New(t)
	cl.StartCoordinator("c1", func(c *node.CoordinatorConfig) { c.AllowUnofferedMethods = true })
	return serveUI(t, cl, true), cl
}

// serveUI serves the API and the dashboard of cl and returns its URL.
// With follow, the server follows every study written from then on, as a
// coordinator's does; without, it reads a study's table on its first
// opening.
func serveUI(t testing.TB, cl *clustertest.Cluster, follow bool) string {
	t.Helper()
	srv, err := httpapi.New(httpapi.Config{Etcd: cl.Etcd, NATS: cl.Conn("http"), UI: dashboard.Handler()})
	if err != nil {
		t.Fatal(err)
	}
	if follow {
		cl.Follow(srv.Follow)
	}
	ts := httptest.NewServer(srv.Handler())
	t.Cleanup(ts.Close)
	return ts.URL
}

// startAgent starts the cluster's agent, which runs the synthetic method.
func startAgent(cl *clustertest.Cluster) {
	cl.StartAgent("a1", bus.Resources{CPU: 4, Memory: 1 << 30}, clustertest.InProcess{"synthetic": synthetic.New()})
}

// clusterB is cluster with its agent running.
func clusterB(t testing.TB) (string, *clustertest.Cluster) {
	t.Helper()
	url, cl := cluster(t)
	startAgent(cl)
	return url, cl
}

// open starts a headless Chromium on url. With webgl, it renders WebGL in
// software (SwiftShader), for the parallel coordinates; that costs both
// cores of a small machine, so the latency checks run without it.
func open(t *testing.T, url string, cl *clustertest.Cluster, webgl bool) *browser {
	b := openB(t, url, webgl)
	b.cl = cl
	return b
}

func openB(t testing.TB, url string, webgl bool) *browser {
	t.Helper()
	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(chromium), chromedp.NoSandbox, chromedp.WindowSize(1500, 1300))
	if webgl {
		opts = append(opts, chromedp.Flag("use-angle", "swiftshader"), chromedp.Flag("enable-unsafe-swiftshader", true))
	} else {
		opts = append(opts, chromedp.Flag("disable-gpu", true))
	}
	b := &browser{url: url}
	listen := func(ev any) {
		b.mu.Lock()
		defer b.mu.Unlock()
		switch ev := ev.(type) {
		case *runtime.EventExceptionThrown:
			d := ev.ExceptionDetails
			msg := d.Text
			if d.Exception != nil {
				msg += " " + d.Exception.Description
			}
			b.errs = append(b.errs, fmt.Sprintf("exception: %s at %s:%d", msg, d.URL, d.LineNumber))
		case *runtime.EventConsoleAPICalled:
			if ev.Type == runtime.ConsoleAPICalledTypeError {
				var parts []string
				for _, a := range ev.Args {
					parts = append(parts, string(a.Value))
				}
				b.errs = append(b.errs, "console.error: "+strings.Join(parts, " "))
			}
		case *log.EventEntryAdded:
			if ev.Entry.Level == log.EntryLevelError {
				b.errs = append(b.errs, "log: "+ev.Entry.Text+" "+ev.Entry.URL)
			}
		}
	}
	// Chromium now and then dies as it starts on this machine (its crash
	// handler finds no stack mapping); a second start is a new process.
	var err error
	for try := 1; try <= 3; try++ {
		actx, cancelA := chromedp.NewExecAllocator(t.Context(), opts...)
		ctx, cancel := chromedp.NewContext(actx)
		if err = chromedp.Listen(ctx, listen); err == nil {
			t.Cleanup(cancelA)
			t.Cleanup(cancel)
			b.ctx = ctx
			return b
		}
		cancel()
		cancelA()
		t.Logf("start Chromium, try %d of 3: %v", try, err)
		time.Sleep(500 * time.Millisecond)
	}
	t.Fatal(err)
	return nil
}

func (b *browser) run(t *testing.T, actions ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 60*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, actions...); err != nil {
		html, _ := chromedp.Run(b.ctx, chromedp.Evaluate[string](`document.body ? document.body.innerHTML.slice(0, 2000) : "no body"`))
		b.noErrors(t)
		t.Fatalf("%v; the page:\n%s", err, html)
	}
}

// eval returns the value of js.
func eval[T any](t *testing.T, b *browser, js string) T {
	t.Helper()
	v, err := chromedp.Run(b.ctx, chromedp.Evaluate[T](js))
	if err != nil {
		t.Fatalf("%s: %v", js, err)
	}
	return v
}

// text returns the text of the first element sel matches.
func (b *browser) text(t *testing.T, sel string) string {
	t.Helper()
	v, err := chromedp.Run(b.ctx, chromedp.Text(chromedp.CSS(sel)))
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// waitJS evaluates js until it returns true, or fails after timeout.
func (b *browser) waitJS(t *testing.T, timeout time.Duration, js string) { waitB(t, b, timeout, js) }

func waitB(t testing.TB, b *browser, timeout time.Duration, js string) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		if ok, _ := chromedp.Run(b.ctx, chromedp.Evaluate[bool](js)); ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("not true within %s: %s", timeout, js)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (b *browser) noErrors(t *testing.T) {
	t.Helper()
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, e := range b.errs {
		t.Errorf("browser: %s", e)
	}
	b.errs = nil
}

func (b *browser) screenshot(t *testing.T, name string) {
	t.Helper()
	if !*update {
		return
	}
	b.write(t, chromedp.FullScreenshot(100), name)
}

// write waits for the page to settle, then writes the image shoot takes
// to docs/img/name.
func (b *browser) write(t *testing.T, shoot chromedp.Action[[]byte], name string) {
	t.Helper()
	b.run(t, chromedp.Sleep(500*time.Millisecond))
	png, err := chromedp.Run(b.ctx, shoot)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join("..", "..", "docs", "img", name)
	if err := os.WriteFile(path, png, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("wrote %s", path)
}

// example returns the spec of examples/name.
func example(t *testing.T, name string) string {
	t.Helper()
	spec, err := os.ReadFile(filepath.Join("..", "..", "examples", name))
	if err != nil {
		t.Fatal(err)
	}
	return string(spec)
}

// shot writes a screenshot of the element sel matches to docs/img/name,
// under -update.
func (b *browser) shot(t *testing.T, sel, name string) {
	t.Helper()
	if !*update {
		return
	}
	b.write(t, chromedp.Screenshot(chromedp.CSS(sel)), name)
}

// TestDashboard drives every view in a real headless Chromium against a
// real cluster running a study: each renders without a console error,
// results reach the page within 2 s of being recorded, brushing an axis
// filters the table, and the fit plot draws its band and asymptote.
func TestDashboard(t *testing.T) {
	if testing.Short() {
		t.Skip("browser test: embedded servers and Chromium")
	}
	url, cl := cluster(t)
	b := open(t, url, cl, false)
	client := cl.Client()
	if _, err := client.Submit(t.Context(), api.SubmitRequest{SpecFile: "dash.yaml", Spec: spec}); err != nil {
		t.Fatal(err)
	}

	// The studies list.
	b.run(t, chromedp.Navigate(b.url+"/"), chromedp.WaitVisible(chromedp.CSS(`#study-list a`)))
	if name := b.text(t, `#study-list a`); name != "dash" {
		t.Errorf("studies list shows %q", name)
	}
	b.screenshot(t, "dashboard-studies.png")

	// The study page, watched while the study runs: the page shows every
	// result within 2 s of the leader recording it.
	b.run(t, chromedp.Navigate(b.url+"/#/study/dash"), chromedp.WaitVisible(chromedp.CSS(`#trials .tabulator-tableholder`)))
	const total = 36
	b.waitJS(t, 20*time.Second, `Tabulator.findTable("#trials")[0].getDataCount() === 36`)
	// When each result arrives on the event stream the page reads, for
	// telling the server's part of the lag from the page's.
	var streamMu sync.Mutex
	streamed := map[string]time.Time{}
	sctx, stop := context.WithCancel(t.Context())
	defer stop()
	req, _ := http.NewRequestWithContext(sctx, "GET", b.url+"/api/v1/studies/dash/events", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	// The study runs only now, with the page and the stream open: every
	// result is recorded while both watch.
	startAgent(cl)
	go func() {
		defer resp.Body.Close()
		sc := bufio.NewScanner(resp.Body)
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			line := sc.Text()
			if !strings.HasPrefix(line, "data: ") || !strings.Contains(line, `"state":"succeeded"`) {
				continue
			}
			var tr api.Trial
			if json.Unmarshal([]byte(line[6:]), &tr) == nil && tr.Result != nil {
				streamMu.Lock()
				if _, ok := streamed[tr.ID]; !ok {
					streamed[tr.ID] = time.Now()
				}
				streamMu.Unlock()
			}
		}
	}()
	// When each result first shows on the page, polled every 50 ms.
	shown := map[string]time.Time{}
	deadline := time.Now().Add(90 * time.Second)
	for len(shown) < total {
		ids, _ := chromedp.Run(b.ctx, chromedp.Evaluate[[]string](`Tabulator.findTable("#trials")[0].getData().filter(r => r.state === "succeeded").map(r => r.trial)`))
		now := time.Now()
		for _, id := range ids {
			if _, ok := shown[id]; !ok {
				shown[id] = now
			}
		}
		if now.After(deadline) {
			t.Fatalf("the page shows %d of %d results after 90 s", len(shown), total)
		}
		time.Sleep(50 * time.Millisecond)
	}
	r, err := client.Results(t.Context(), "dash")
	if err != nil {
		t.Fatal(err)
	}
	var lags []time.Duration
	for _, tr := range r.Trials {
		if tr.Result != nil {
			lags = append(lags, shown[tr.ID].Sub(tr.Result.Recorded))
		}
	}
	var streamLags []time.Duration
	streamMu.Lock()
	for _, tr := range r.Trials {
		if at, ok := streamed[tr.ID]; ok && tr.Result != nil {
			streamLags = append(streamLags, at.Sub(tr.Result.Recorded))
		}
	}
	streamMu.Unlock()
	slices.Sort(streamLags)
	if len(streamLags) > 0 {
		t.Logf("results reached the event stream %s after they were recorded (median of %d)", streamLags[len(streamLags)/2].Round(time.Millisecond), len(streamLags))
	}
	slices.Sort(lags)
	median, worst := lags[len(lags)/2], lags[len(lags)-1]
	t.Logf("results reached the page %s after they were recorded (median of %d; the slowest %s)", median.Round(time.Millisecond), len(lags), worst.Round(time.Millisecond))
	if median > 2*time.Second {
		t.Errorf("results reach the page a median %s after they are recorded, want under 2 s", median)
	}

	b.noErrors(t)

	// The views that draw with WebGL, in a browser that has it.
	b = open(t, url, cl, true)
	b.run(t, chromedp.Navigate(b.url+"/#/study/dash"), chromedp.WaitVisible(chromedp.CSS(`#trials .tabulator-tableholder`)))
	b.waitJS(t, 20*time.Second, `Tabulator.findTable("#trials")[0].getDataCount() === 36`)
	// The fit plot: points, the fitted curve, its band and the asymptote.
	b.waitJS(t, 20*time.Second, `(() => { const d = document.getElementById("fit").data || [];
		return d.some(t => t.fill === "tonexty") && d.some(t => /asymptote/.test(t.name)) && d.some(t => t.mode === "markers" && t.x.length === 12); })()`)
	// Its trials all train for one epoch: no repeated-data plot.
	if hidden := eval[bool](t, b, `document.getElementById("epochs-card").hidden`); !hidden {
		t.Errorf("the repeated-data plot shows for a study of one epoch count")
	}
	// Learning curves of the best trials, against tokens on log axes.
	b.waitJS(t, 20*time.Second, `(document.getElementById("curves").data || []).length > 0`)
	b.run(t, chromedp.SetValue(chromedp.CSS(`#xaxis`), "tokens"), chromedp.Click(chromedp.CSS(`#logx`)))
	eval[bool](t, b, `document.getElementById("xaxis").dispatchEvent(new Event("change"))`)
	b.waitJS(t, 10*time.Second, `(() => { const g = document.getElementById("curves"); return g.layout.xaxis.title.text === "tokens" && g.layout.xaxis.type === "log"; })()`)

	// Brushing the first axis filters the table to the trials inside.
	b.waitJS(t, 10*time.Second, `(document.getElementById("parcoords").data || []).length === 1`)
	want := eval[int](t, b, `(() => { const d = document.getElementById("parcoords").data[0].dimensions[0];
		const lo = Math.min(...d.values), hi = lo + (Math.max(...d.values) - lo) / 3;
		Plotly.restyle("parcoords", {"dimensions[0].constraintrange": [[lo, hi]]});
		return d.values.filter(v => v >= lo && v <= hi).length; })()`)
	b.waitJS(t, 5*time.Second, fmt.Sprintf(`Tabulator.findTable("#trials")[0].getDataCount("active") === %d`, want))
	got := eval[int](t, b, `Tabulator.findTable("#trials")[0].getDataCount("active")`)
	if want == 0 || got != want || got == total {
		t.Errorf("brushing kept %d rows, want %d of %d", got, want, total)
	}
	b.screenshot(t, "dashboard-study.png")

	// Selecting a trial in the table highlights its curve.
	eval[bool](t, b, `Plotly.restyle("parcoords", {"dimensions[0].constraintrange": null}) && true`)
	b.run(t, chromedp.Click(chromedp.CSS(`#trials .tabulator-row`)))
	b.waitJS(t, 10*time.Second, `(document.getElementById("curves").data || []).some(t => t.line && t.line.width === 4)`)

	// Clicking a point of the fit selects that trial everywhere: its row,
	// its curve and its point.
	b.run(t, chromedp.Click(chromedp.CSS(`#trials .tabulator-row`))) // deselect
	// Move the pointer off the table: a row redrawn under a resting
	// pointer takes the hover, which would race the hovers emitted below.
	b.run(t, chromedp.MouseEvent(input.DispatchMouseEventTypeMouseMoved, 1, 1))
	picked := eval[string](t, b, `(() => { const g = document.getElementById("fit");
		const pts = g.data.find(t => t.mode === "markers");
		const id = pts.text[pts.text.length - 1];
		g.emit("plotly_click", { points: [{ data: pts, text: id }] });
		return id; })()`)
	b.waitJS(t, 10*time.Second, fmt.Sprintf(`(() => { const row = Tabulator.findTable("#trials")[0].getRow(%q);
		const fit = document.getElementById("fit").data.find(t => t.mode === "markers");
		return row && row.getElement().classList.contains("selected-trial") &&
			(document.getElementById("curves").data || []).some(t => t.meta === %q && t.line.width === 4) &&
			fit.marker.size[fit.text.indexOf(%q)] === 14; })()`, picked, picked, picked))

	// Hovering another trial's point shows it in the table and the curves
	// too, and leaving it clears that, keeping the selection.
	hovered := eval[string](t, b, fmt.Sprintf(`(() => { const g = document.getElementById("fit");
		const pts = g.data.find(t => t.mode === "markers");
		const id = pts.text.find(x => x !== %q);
		g.emit("plotly_hover", { points: [{ data: pts, text: id }] });
		return id; })()`, picked))
	hoverShown := fmt.Sprintf(`(() => { const row = Tabulator.findTable("#trials")[0].getRow(%q);
		const fit = document.getElementById("fit").data.find(t => t.mode === "markers");
		return !!row && row.getElement().classList.contains("hovered-trial") &&
			fit.marker.size[fit.text.indexOf(%q)] === 14 && fit.marker.size[fit.text.indexOf(%q)] === 14; })()`, hovered, hovered, picked)
	b.waitJS(t, 10*time.Second, hoverShown)
	eval[bool](t, b, `document.getElementById("fit").emit("plotly_unhover", {}) || true`)
	b.waitJS(t, 10*time.Second, fmt.Sprintf(`(() => { const fit = document.getElementById("fit").data.find(t => t.mode === "markers");
		return document.querySelectorAll(".hovered-trial").length === 0 &&
			fit.marker.size[fit.text.indexOf(%q)] === 7 && fit.marker.size[fit.text.indexOf(%q)] === 14; })()`, hovered, picked))

	// The agents.
	b.run(t, chromedp.Navigate(b.url+"/#/agents"), chromedp.WaitVisible(chromedp.CSS(`#agents table`)))
	if agents := b.text(t, `#agents table`); !strings.Contains(agents, "a1") {
		t.Errorf("agents page: %q", agents)
	}
	b.screenshot(t, "dashboard-agents.png")
	b.noErrors(t)
}

// TestVendor checks that the vendored libraries are the files vendor.sh
// copied at the versions package-lock.json pins.
func TestVendor(t *testing.T) {
	out, err := exec.Command("sha256sum", "static/vendor/plotly.min.js", "static/vendor/tabulator.min.js", "static/vendor/tabulator.min.css").Output()
	if err != nil {
		t.Fatal(err)
	}
	versions, err := os.ReadFile("static/vendor/VERSIONS")
	if err != nil {
		t.Fatal(err)
	}
	lock, err := os.ReadFile("package-lock.json")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		f := strings.Fields(line)
		if want := "file " + f[0] + "  " + filepath.Base(f[1]); !strings.Contains(string(versions), want) {
			t.Errorf("%s has sha256 %s, which VERSIONS does not record; run vendor.sh", f[1], f[0])
		}
	}
	for _, line := range strings.Split(string(versions), "\n") {
		f := strings.Fields(line)
		if len(f) == 3 && f[0] == "package" {
			if !strings.Contains(string(lock), `"node_modules/`+f[1]+`": {`+"\n"+`      "version": "`+f[2]+`"`) {
				t.Errorf("VERSIONS has %s %s, which package-lock.json does not pin; run vendor.sh", f[1], f[2])
			}
		}
	}
}

// TestPlotWaitsForTheTable opens a finished study and sorts its table
// over and over, a sort every quarter of a second for 3 s: the parallel
// coordinates, whose draw holds the page, must not draw while the table
// is in use, and must draw once it is left alone.
func TestPlotWaitsForTheTable(t *testing.T) {
	if testing.Short() {
		t.Skip("browser test: embedded servers and Chromium")
	}
	url, cl := cluster(t)
	cl.FinishedStudy("quiet", 2000)
	b := open(t, url, cl, true)
	b.run(t, chromedp.Navigate(b.url+"/#/study/quiet"))
	b.waitJS(t, 30*time.Second, `(() => { const t = Tabulator.findTable("#trials")[0]; return !!t && t.getDataCount() === 2000; })()`)
	const drawn = `(document.getElementById("parcoords").data || []).length === 1`
	for i := range 12 {
		dir := []string{"asc", "desc"}[i%2]
		eval[bool](t, b, `Tabulator.findTable("#trials")[0].setSort("objective", "`+dir+`") || true`)
		if eval[bool](t, b, drawn) {
			t.Fatalf("the parallel coordinates drew while the table was being sorted (after %d sorts)", i+1)
		}
		time.Sleep(250 * time.Millisecond)
	}
	b.waitJS(t, 30*time.Second, drawn)
	b.noErrors(t)
}

// TestTableInTwoParts opens a study larger than the table's first part:
// a sort set as soon as the first rows show must order every trial once
// the rest are in, and the counts must then be those of every trial.
func TestTableInTwoParts(t *testing.T) {
	if testing.Short() {
		t.Skip("browser test: embedded servers and Chromium")
	}
	url, cl := cluster(t)
	cl.FinishedStudy("two", 2500)
	b := open(t, url, cl, false)
	b.run(t, chromedp.Navigate(b.url+"/#/study/two"))
	b.waitJS(t, 30*time.Second, `(() => { const t = Tabulator.findTable("#trials")[0]; return !!t && t.getDataCount() > 0; })()`)
	eval[bool](t, b, `Tabulator.findTable("#trials")[0].setSort("objective", "asc") || true`)
	b.waitJS(t, 30*time.Second, `(() => { const t = Tabulator.findTable("#trials")[0]; return t.getDataCount() === 2500; })()`)
	// Trial i's objective is 2 + 1/(i+1): the lowest is the last trial's,
	// which comes with the second part.
	b.waitJS(t, 10*time.Second, `Tabulator.findTable("#trials")[0].getRows("active")[0].getData().trial === "`+fmt.Sprintf("%020x", 2499)+`"`)
	b.waitJS(t, 10*time.Second, `document.getElementById("counts").textContent.includes("succeeded 2500")`)
	b.noErrors(t)
}

// TestPausedShown runs a continuing promotion ASHA study and expects the
// page to say, while it runs, how many succeeded trials wait for a
// promotion (the leader's count), and to say nothing of it once the
// study is over.
func TestPausedShown(t *testing.T) {
	if testing.Short() {
		t.Skip("browser test: embedded servers and Chromium")
	}
	url, cl := clusterB(t)
	b := open(t, url, cl, false)
	const spec = `name: asha
method: synthetic
space:
  weight_decay: {range: [0.01, 1], count: 9, scale: log}
fixed: {params: 1e7, tokens: 2e7, noise: 0.01, checkpoint_every: 10, step_tokens: 1e6, sleep: 1}
derived:
  unique_tokens: tokens
resources: {cpu: 2, memory: 16MiB}
search:
  asha: {fidelity: tokens, rungs: [2e7, 6e7, 1.8e8], eta: 3, promote: true, continue: true}
`
	if _, err := cl.Client().Submit(t.Context(), api.SubmitRequest{SpecFile: "asha.yaml", Spec: spec}); err != nil {
		t.Fatal(err)
	}
	b.run(t, chromedp.Navigate(b.url+"/#/blank"), chromedp.Navigate(b.url+"/#/study/asha"))
	b.waitJS(t, 60*time.Second, `/paused [1-9][0-9]* of the succeeded/.test(document.getElementById("counts").textContent)`)
	cl.WaitDone(cl.Client(), "asha", 2*time.Minute)
	b.waitJS(t, 30*time.Second, `(() => { const c = document.getElementById("counts").textContent; return !c.includes("paused") && c.includes("succeeded"); })()`)
	b.noErrors(t)
}

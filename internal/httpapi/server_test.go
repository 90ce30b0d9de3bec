package httpapi_test

import (
	"bufio"
	"context"
	"encoding/csv"
	"encoding/json"
	"io"
	"maps"
	"math"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"asymptote.dev/asymptote/internal/api"
	"asymptote.dev/asymptote/internal/bus"
	"asymptote.dev/asymptote/internal/clustertest"
	"asymptote.dev/asymptote/internal/httpapi"
	"asymptote.dev/asymptote/plugins/methods/synthetic"
)

const spec = `name: web
method: synthetic
space:
  params: [1e6, 3e6, 1e7, 3e7, 1e8, 3e8]
fixed:
  tokens: 2e9
  steps: 10
  noise: 0.01
seeds: [0, 1]
analysis:
  fit: {law: power, x: params, bootstrap: 50}
resources: {cpu: 0.25, memory: 16MiB}
`

type env struct {
	t   *testing.T
	cl  *clustertest.Cluster
	url string
	sub api.SubmitReply
}

// wantField expects a JSON error at path naming field.
func (e *env) wantField(path string, status int, field string) httpapi.Error {
	e.t.Helper()
	var bad httpapi.Error
	e.get(path, status, &bad)
	if bad.Field != field {
		e.t.Errorf("%s: error %+v, want field %q", path, bad, field)
	}
	return bad
}

// serve starts a cluster (a coordinator, an agent running synthetic in
// process) and the API over it, submits spec over HTTP as the Python
// client does, and waits for the study to finish.
func serve(t *testing.T, spec string) (*env, *clustertest.Process) {
	t.Helper()
	cl := clustertest.New(t)
	leader := cl.StartCoordinator("c1", nil)
	cl.StartAgent("a1", bus.Resources{CPU: 2, Memory: 1 << 30}, clustertest.InProcess{"synthetic": synthetic.New()})
	srv, err := httpapi.New(httpapi.Config{Etcd: cl.Etcd, NATS: cl.Conn("http")})
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(srv.Handler())
	t.Cleanup(ts.Close)
	e := &env{t: t, cl: cl, url: ts.URL}
	resp, err := http.Post(ts.URL+"/api/v1/studies", "application/yaml", strings.NewReader(spec))
	if err != nil {
		t.Fatal(err)
	}
	var sub api.SubmitReply
	e.decode(resp, http.StatusOK, &sub)
	e.sub = sub
	cl.WaitDone(cl.Client(), sub.Study, 30*time.Second)
	return e, leader
}

func start(t *testing.T) *env {
	e, leader := serve(t, spec)
	if e.sub.Study != "web" || e.sub.Added != 12 {
		t.Fatalf("submit reply %+v, want 12 trials added to web", e.sub)
	}
	leader.Stop() // every read below is served without a leader
	return e
}

func (e *env) get(path string, status int, v any) {
	e.t.Helper()
	resp, err := http.Get(e.url + path)
	if err != nil {
		e.t.Fatal(err)
	}
	e.decode(resp, status, v)
}

func (e *env) decode(resp *http.Response, status int, v any) {
	e.t.Helper()
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != status {
		e.t.Fatalf("%s: status %d, want %d: %s", resp.Request.URL, resp.StatusCode, status, b)
	}
	if err := json.Unmarshal(b, v); err != nil {
		e.t.Fatalf("%s: %v: %s", resp.Request.URL, err, b)
	}
}

func TestAPI(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test: embedded servers")
	}
	e := start(t)

	var list struct{ Studies []httpapi.StudySummary }
	e.get("/api/v1/studies", 200, &list)
	if len(list.Studies) != 1 || list.Studies[0].Counts["succeeded"] != 12 || list.Studies[0].Spec != "" {
		t.Errorf("studies %+v, want web with 12 succeeded and no spec text", list.Studies)
	}

	var page struct {
		Total  int
		Offset int
		Trials []api.Trial
	}
	e.get("/api/v1/studies/web/trials?sort=-objective&offset=2&limit=3", 200, &page)
	if page.Total != 12 || len(page.Trials) != 3 || page.Offset != 2 {
		t.Fatalf("page: total %d, %d trials, offset %d", page.Total, len(page.Trials), page.Offset)
	}
	var all struct{ Trials []api.Trial }
	e.get("/api/v1/studies/web/trials?sort=-objective", 200, &all)
	for i := 1; i < len(all.Trials); i++ {
		if *all.Trials[i].Result.Objective > *all.Trials[i-1].Result.Objective {
			t.Fatalf("trials not sorted by objective, descending, at %d", i)
		}
	}
	if all.Trials[2].ID != page.Trials[0].ID {
		t.Errorf("offset 2 starts at %s, want the third trial %s", page.Trials[0].ID, all.Trials[2].ID)
	}
	// The same page as columns: entry i of every column is trial i's.
	var cols httpapi.TrialColumns
	e.get("/api/v1/studies/web/trials?format=columns&sort=-objective&offset=2&limit=3", 200, &cols)
	if cols.Total != 12 || cols.Offset != 2 || cols.Count != 3 || len(cols.ID) != 3 || len(cols.Params) != len(page.Trials[0].Params) {
		t.Fatalf("columns: %+v, want the page of 3 at offset 2 of 12 with every parameter", cols)
	}
	for i, tr := range page.Trials {
		if cols.ID[i] != tr.ID || cols.Index[i] != tr.Index || cols.State[i] != tr.State || cols.Seed[i] != tr.Seed || cols.Attempt[i] != tr.Attempt ||
			cols.Updated[i] != tr.Updated.UnixMicro() || cols.Objective[i] == nil || *cols.Objective[i] != *tr.Result.Objective {
			t.Errorf("columns, trial %d: %s %d %s %d %d %d %v; the record has %s %d %s %d %d %d %g", i, cols.ID[i], cols.Index[i], cols.State[i], cols.Seed[i], cols.Attempt[i],
				cols.Updated[i], cols.Objective[i], tr.ID, tr.Index, tr.State, tr.Seed, tr.Attempt, tr.Updated.UnixMicro(), *tr.Result.Objective)
		}
		for k, v := range tr.Params {
			if col := cols.Params[k]; len(col) != 3 || col[i] != v {
				t.Errorf("columns, trial %d: parameter %s is %v, the record's %v", i, k, col, v)
			}
		}
		for k, v := range tr.Result.Metrics {
			if col := cols.Metrics[k]; len(col) != 3 || col[i] == nil || *col[i] != v {
				t.Errorf("columns, trial %d: metric %s is %v, the record's %g", i, k, col, v)
			}
		}
	}
	// metric= keeps only the metrics it names.
	var oneMetric httpapi.TrialColumns
	e.get("/api/v1/studies/web/trials?format=columns&metric=train_loss", 200, &oneMetric)
	if _, ok := oneMetric.Metrics["train_loss"]; len(oneMetric.Metrics) != 1 || !ok || oneMetric.Count != 12 {
		t.Errorf("columns with metric=train_loss: %d trials, metrics %v", oneMetric.Count, slices.Collect(maps.Keys(oneMetric.Metrics)))
	}
	e.get("/api/v1/studies/web/trials?sort=params", 200, &all)
	if p0, p1 := all.Trials[0].Params["params"].(float64), all.Trials[11].Params["params"].(float64); p0 != 1e6 || p1 != 3e8 {
		t.Errorf("sorted by params: first %g, last %g", p0, p1)
	}
	e.get("/api/v1/studies/web/trials?state=failed", 200, &page)
	if page.Total != 0 {
		t.Errorf("%d failed trials", page.Total)
	}
	var one api.Trial
	e.get("/api/v1/studies/web/trials/"+all.Trials[0].ID, 200, &one)
	if one.ID != all.Trials[0].ID || len(one.Attempts) != 1 {
		t.Errorf("trial %+v", one)
	}

	// The whole history: 10 steps of each of 12 trials, in step order.
	var hist struct{ History []httpapi.HistoryRow }
	e.get("/api/v1/studies/web/history?format=json", 200, &hist)
	if len(hist.History) != 120 {
		t.Fatalf("%d history rows, want 120", len(hist.History))
	}
	steps := map[string][]int64{}
	for _, r := range hist.History {
		steps[r.Trial] = append(steps[r.Trial], r.Step)
		if _, ok := r.Values["train_loss"]; !ok {
			t.Fatalf("report without train_loss: %+v", r)
		}
	}
	for id, s := range steps {
		if len(s) != 10 || !slices.IsSorted(s) {
			t.Errorf("trial %s steps %v", id, s)
		}
	}
	// One trial, downsampled to 3 points: the first, middle and last.
	q := url.Values{"trial": {all.Trials[0].ID}, "points": {"3"}}
	resp, err := http.Get(e.url + "/api/v1/studies/web/history?" + q.Encode())
	if err != nil {
		t.Fatal(err)
	}
	var rows []httpapi.HistoryRow
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		var r httpapi.HistoryRow
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			t.Fatal(err)
		}
		rows = append(rows, r)
	}
	resp.Body.Close()
	first, last := steps[all.Trials[0].ID][0], steps[all.Trials[0].ID][9]
	if len(rows) != 3 || rows[0].Step != first || rows[2].Step != last || rows[0].Trial != all.Trials[0].ID {
		t.Errorf("downsampled rows %+v, want 3 of trial %s from step %d to %d", rows, all.Trials[0].ID, first, last)
	}

	// The same history as CSV in long form, one row a metric value.
	resp, err = http.Get(e.url + "/api/v1/studies/web/history?format=csv")
	if err != nil {
		t.Fatal(err)
	}
	recs, err := csv.NewReader(resp.Body).ReadAll()
	resp.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	trainLoss := 0
	for _, r := range recs[1:] {
		if r[4] == "train_loss" {
			trainLoss++
		}
	}
	if strings.Join(recs[0], ",") != "trial,attempt,step,time,metric,value" || trainLoss != 120 {
		t.Errorf("csv header %v and %d train_loss rows, want 120", recs[0], trainLoss)
	}

	// The stored chunks, one an attempt here (10 reports each).
	resp, err = http.Get(e.url + "/api/v1/studies/web/history?format=columns")
	if err != nil {
		t.Fatal(err)
	}
	sc = bufio.NewScanner(resp.Body)
	sc.Buffer(nil, 1<<24)
	chunks := 0
	for sc.Scan() {
		var c bus.Curve
		if err := json.Unmarshal(sc.Bytes(), &c); err != nil {
			t.Fatal(err)
		}
		if c.Len() != 10 || len(c.Values["val_loss"]) != 10 || !c.Last {
			t.Errorf("chunk %+v", c)
		}
		chunks++
	}
	resp.Body.Close()
	if chunks != 12 {
		t.Errorf("%d chunks, want one for each of 12 attempts", chunks)
	}

	var fit struct {
		Law  string
		Fits []api.FitSummary
	}
	e.get("/api/v1/studies/web/fit", 200, &fit)
	if fit.Law != "power" || len(fit.Fits) != 1 || fit.Fits[0].Error != "" || len(fit.Fits[0].Params) == 0 {
		t.Errorf("fit %+v", fit)
	}
	var drawn struct{ Curves []httpapi.FitCurve }
	e.get("/api/v1/studies/web/fit?curve=1", 200, &drawn)
	if len(drawn.Curves) != 1 || len(drawn.Curves[0].PointX) != 12 || len(drawn.Curves[0].X) != 60 || len(drawn.Curves[0].Lo) != 60 {
		t.Fatalf("curves %+v", drawn.Curves)
	}
	c := drawn.Curves[0]
	for i := range c.X {
		if !(c.Lo[i] <= c.Y[i] && c.Y[i] <= c.Hi[i]) {
			t.Errorf("at x=%g the curve %g is outside its band [%g, %g]", c.X[i], c.Y[i], c.Lo[i], c.Hi[i])
			break
		}
	}

	// No leader: the agents as etcd holds them.
	var agents httpapi.AgentsReply
	e.get("/api/v1/agents", 200, &agents)
	if agents.Live || len(agents.Agents) != 1 || agents.Agents[0].ID != "a1" || agents.Agents[0].CPU != 2 {
		t.Errorf("agents without a leader: %+v", agents)
	}

	e.wantField("/api/v1/studies/web/trials?limit=-1", 400, "limit")
	e.wantField("/api/v1/studies/web/trials?sort=no-such", 400, "sort")
	e.wantField("/api/v1/studies/web/history?format=xml", 400, "format")
	if bad := e.wantField("/api/v1/studies/nope/trials", 404, "study"); !strings.Contains(bad.Msg, `no study "nope"`) {
		t.Errorf("unknown study: %+v", bad)
	}
	e.wantField("/api/v1/nothing", 404, "")
	var bad httpapi.Error
	resp, err = http.Post(e.url+"/api/v1/studies", "application/yaml", strings.NewReader("name: x\nmethod: synthetic\nspace:\n  lr: {range: [1, 2], count: 3, scale: logg}\n"))
	if err != nil {
		t.Fatal(err)
	}
	e.decode(resp, 400, &bad)
	if bad.Field != "spec.space.lr.scale" || !strings.Contains(bad.Msg, "logg") {
		t.Errorf("bad spec: %+v", bad)
	}
}

// TestEvents reads the live stream: every trial at connection, then each
// change as the leader records it.
func TestEvents(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test: embedded servers")
	}
	e := start(t)
	resp, err := http.Get(e.url + "/api/v1/studies/web/events")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); ct != "text/event-stream" {
		t.Fatalf("content type %q", ct)
	}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(nil, 1<<20)
	trials, studies := map[string]bool{}, 0
	kind := ""
	for sc.Scan() && len(trials) < 12 {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "event: "):
			kind = strings.TrimPrefix(line, "event: ")
		case strings.HasPrefix(line, "data: ") && kind == "trial":
			var tr api.Trial
			if err := json.Unmarshal([]byte(strings.TrimPrefix(line, "data: ")), &tr); err != nil {
				t.Fatal(err)
			}
			trials[tr.ID] = true
		case strings.HasPrefix(line, "data: ") && kind == "study":
			studies++
		}
	}
	if len(trials) != 12 || studies != 1 {
		t.Errorf("snapshot: %d trials and %d study events, want 12 and 1", len(trials), studies)
	}
}

// The OpenAPI document lists exactly the routes the server serves.
func TestOpenAPIMatchesRoutes(t *testing.T) {
	doc := map[string]map[string]map[string]any{}
	b := httpapi.OpenAPI()
	var top struct {
		Paths map[string]map[string]any `json:"paths"`
	}
	if err := json.Unmarshal(b, &top); err != nil {
		t.Fatal(err)
	}
	for path, ops := range top.Paths {
		doc[path] = map[string]map[string]any{}
		for m := range ops {
			doc[path][strings.ToUpper(m)] = nil
		}
	}
	served := httpapi.Routes()
	for _, r := range served {
		if _, ok := doc[r[1]][r[0]]; !ok {
			t.Errorf("%s %s is served but not in openapi.json", r[0], r[1])
		}
	}
	for path, ops := range doc {
		for m := range ops {
			if !slices.ContainsFunc(served, func(r [2]string) bool { return r[0] == m && r[1] == path }) {
				t.Errorf("openapi.json documents %s %s, which is not served", m, path)
			}
		}
	}
}

// example returns the spec of examples/name.
func example(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "examples", name))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestCrossover compares two recipes of one study, grouped by alpha, whose
// curves cross where 100·N^-0.2 = 2000·N^-0.4, at N = 20^5 = 3.2e6
// (examples/synthetic-crossover.yaml).
func TestCrossover(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test: embedded servers")
	}
	e, _ := serve(t, example(t, "synthetic-crossover.yaml"))
	var r httpapi.CrossoverReply
	e.get("/api/v1/crossover?study=cross&lo=1e5&hi=1e9", 200, &r)
	if len(r.Roots) != 1 {
		t.Fatalf("roots %+v, want one", r.Roots)
	}
	root := r.Roots[0]
	if root.X < 2e6 || root.X > 5e6 || root.Lo == nil || *root.Lo > 3.2e6 || *root.Hi < 3.2e6 {
		t.Errorf("root %g (%v, %v), want about 3.2e6 inside its interval", root.X, root.Lo, root.Hi)
	}
	if r.Replicates != 100 || len(r.PCount) != 4 || r.PCount[1] < 0.9 || len(r.Fits) != 2 {
		t.Errorf("reply %+v", r)
	}
	// With a leader, the studies' counts are the leader's.
	var list struct{ Studies []httpapi.StudySummary }
	e.get("/api/v1/studies", 200, &list)
	if len(list.Studies) != 1 || list.Studies[0].Counts["succeeded"] != 24 {
		t.Errorf("studies with a leader: %+v", list.Studies)
	}
	// With a leader: what is free on each agent.
	var agents httpapi.AgentsReply
	e.get("/api/v1/agents", 200, &agents)
	if !agents.Live || agents.Leader != "c1" || len(agents.Agents) != 1 || agents.Agents[0].FreeCPU != 2 || agents.Agents[0].Running != 0 {
		t.Errorf("agents with a leader: %+v", agents)
	}
	e.wantField("/api/v1/crossover?study=cross&lo=5&hi=1", 400, "lo")
	e.wantField("/api/v1/crossover?lo=1&hi=5", 400, "study")
	e.wantField("/api/v1/crossover?study=web&study=cross&lo=1&hi=5", 404, "study")
}

// TestEventsLive opens the event stream of a finished study without its
// snapshot and expects a trial record the leader writes afterwards to
// arrive on it.
func TestEventsLive(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test: embedded servers")
	}
	e, _ := serve(t, spec)
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", e.url+"/api/v1/studies/web/events?snapshot=0", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	lines := make(chan string)
	go func() {
		sc := bufio.NewScanner(resp.Body)
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	if first := <-lines; first != ": no snapshot" {
		t.Fatalf("first line %q, want the no-snapshot comment", first)
	}
	// Extending the study writes new trial records and the study record.
	bigger := strings.Replace(spec, "3e8]", "3e8, 1e9]", 1)
	r2, err := http.Post(e.url+"/api/v1/studies", "application/yaml", strings.NewReader(bigger))
	if err != nil {
		t.Fatal(err)
	}
	var sub api.SubmitReply
	e.decode(r2, http.StatusOK, &sub)
	sent := time.Now()
	for line := range lines {
		if strings.HasPrefix(line, "event: trial") {
			t.Logf("a new trial reached the stream %s after its submission was answered", time.Since(sent).Round(time.Millisecond))
			return
		}
	}
	t.Fatalf("the stream ended without a trial event: %v", ctx.Err())
}

// TestEpochs analyses a study over repeated data
// (examples/synthetic-epochs.yaml) whose weight decay is held at its
// one-epoch optimum, so that its loss falls with the first
// repeats and rises once the optimum has moved away: every series must
// have a best epoch count, a later one where it degrades beyond the seed
// noise, and a fitted data-constrained curve over its epochs.
func TestEpochs(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test: embedded servers")
	}
	e, _ := serve(t, example(t, "synthetic-epochs.yaml"))
	var r httpapi.EpochsReply
	e.get("/api/v1/studies/reps/epochs", 200, &r)
	if len(r.Series) != 4 || r.Z != 2 || !strings.Contains(r.SigmaSource, "replicated") || r.FitError != "" || len(r.Fit) == 0 {
		t.Fatalf("reply %+v, want 4 series, z 2, σ from the replicates and a fit", r)
	}
	for _, s := range r.Series {
		if len(s.Epochs) != 7 || len(s.Loss) != 7 || s.Seeds[0] != 2 {
			t.Errorf("series %g/%g: %d epoch counts of %v seeds, want 7 of 2", s.Params, s.UniqueTokens, len(s.Epochs), s.Seeds)
			continue
		}
		if s.DegradesAt == nil || *s.DegradesAt <= s.Best {
			t.Errorf("series %g/%g: best at %g, degrades at %v; want a degradation after the best", s.Params, s.UniqueTokens, s.Best, s.DegradesAt)
			continue
		}
		best := slices.Min(s.Loss)
		at := s.Loss[slices.Index(s.Epochs, *s.DegradesAt)]
		if at <= best+r.Z*r.Sigma {
			t.Errorf("series %g/%g: loss %g at %g epochs is within %g·σ of the best %g", s.Params, s.UniqueTokens, at, *s.DegradesAt, r.Z, best)
		}
		if len(s.FitEpochs) != 60 || s.FitEpochs[0] != s.Epochs[0] || math.Abs(s.FitEpochs[59]-s.Epochs[6]) > 1e-9*s.Epochs[6] {
			t.Errorf("series %g/%g: fitted curve over %d epochs from %v, want 60 spanning the data", s.Params, s.UniqueTokens, len(s.FitEpochs), s.FitEpochs[:1])
		}
		// The curve's ends are the data's first and last epoch counts.
		for _, end := range [][2]float64{{s.FitLoss[0], s.Loss[0]}, {s.FitLoss[59], s.Loss[6]}} {
			if math.Abs(end[0]-end[1])/end[1] > 0.1 {
				t.Errorf("series %g/%g: fitted loss %g where the data has %g", s.Params, s.UniqueTokens, end[0], end[1])
			}
		}
	}
	e.wantField("/api/v1/studies/reps/epochs?z=0", 400, "z")
	e.wantField("/api/v1/studies/reps/epochs?noise=-1", 400, "noise")
	e.wantField("/api/v1/studies/none/epochs", 404, "study")
}

package httpapi_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"asymptote.dev/asymptote/internal/api"
	"asymptote.dev/asymptote/internal/clustertest"
	"asymptote.dev/asymptote/internal/httpapi"
	"asymptote.dev/asymptote/internal/store"
	"asymptote.dev/asymptote/sweep"
)

// shapes are trial records of every shape the store writes: every
// optional part present or absent, strings that JSON escapes, parameters
// of every JSON kind, and indexes that are not in the keys' order.
func shapes() []api.Trial {
	now := time.Date(2026, 12, 7, 8, 30, 0, 123456789, time.UTC)
	later := now.Add(90 * time.Second)
	obj, neg := 2.25, -1e-300
	return []api.Trial{
		{ID: "a-pending", Study: "shapes", Index: 4, Method: "synthetic", State: sweep.Pending, Created: now, Updated: now},
		{ID: "b-full", Study: "shapes", Index: 0, Method: "torch", MethodVersion: "1.2.3", State: sweep.Succeeded, Attempt: 2, Failures: 1, Stale: 1, Preempted: 1, Seed: -7,
			Params: map[string]any{"lr": 3e-4, "width": 1024.0, "name": `<b>&"quoted"\ ünï`, "on": true, "off": nil, "list": []any{1.0, "x", false}, "nested": map[string]any{"z": 1.5, "a": "b"}},
			Attempts: []api.Attempt{
				{N: 1, Node: "gpu-1", State: api.AttemptFailed, GPUs: []int{0, 3}, Dispatched: now, Started: &now, Ended: &later, Error: "exit 1: <oom>", Notes: []string{"checkpoint over quota", "é"}},
				{N: 2, Node: "gpu-2", State: api.AttemptSucceeded, Dispatched: later, Started: &later, Ended: &later, StartStep: 100, Resume: "from step 100"},
			},
			Checkpoints: []api.Checkpoint{{Attempt: 2, Step: 200, Node: "gpu-2", Key: "ck/b/200", Size: 1 << 40, SHA256: "ab12", Metrics: map[string]float64{"tokens": 4e9}, NonFinite: map[string]string{"grad": "NaN"}, Time: later}},
			From:        &api.Continuation{Trial: "z-lower", Checkpoint: api.Checkpoint{Attempt: 1, Step: 50, Key: "ck/z/50", Time: now}, Resumed: true, Dropped: "attempt 1 failed"},
			NotBefore:   &later,
			Result:      &api.Result{Attempt: 2, Node: "gpu-2", Objective: &obj, Metrics: map[string]float64{"val_loss": obj, "tiny": neg, "big": math.MaxFloat64}, NonFinite: map[string]string{"train_loss": "+Inf"}, MethodVersion: "1.2.3", Recorded: later, Duration: 90.5},
			Late:        []api.LateResult{{Attempt: 1, Node: "gpu-1", Outcome: "succeeded", Metrics: map[string]float64{"val_loss": 3}, Error: "late", Received: later}},
			Rungs:       []api.Rung{{}},
			Error:       "line one\nline two\t\u2028",
			Created:     now, Updated: later},
		{ID: "c-failed", Study: "shapes", Index: 2, State: sweep.Failed, Attempt: 1, Error: "boom", Result: &api.Result{Metrics: map[string]float64{}}, Created: now, Updated: now},
		{ID: "d-empty", Study: "shapes", Index: 1, State: sweep.Dispatched, Params: map[string]any{}},
		{ID: `e-"odd"\id`, Study: `sh"apes`, Index: 3, State: sweep.Running, Attempts: []api.Attempt{{N: 1}}},
	}
}

// TestFullRecordsAsBefore checks that the full records (format=json, read
// as etcd holds them) are byte for byte the document the decoded path
// returns: the same study asked with a filter that keeps every state is
// decoded and encoded again, as every format=json read was before.
func TestFullRecordsAsBefore(t *testing.T) {
	cl := clustertest.New(t)
	ctx := context.Background()
	now := time.Now()
	puts := []store.Put{{Key: store.StudyKey("shapes"), Value: api.Study{Name: "shapes", State: api.StudyDone, Spec: "name: shapes\n", Created: now, Updated: now}}}
	for _, tr := range shapes() {
		puts = append(puts, store.Put{Key: store.TrialKey("shapes", tr.ID), Value: tr})
	}
	if _, err := store.New(cl.Etcd).Commit(ctx, puts); err != nil {
		t.Fatal(err)
	}
	url := serveAPI(t, cl)
	every := ""
	for _, st := range sweep.States {
		every += "&state=" + string(st)
	}
	for _, page := range []string{"", "&offset=1&limit=3", "&offset=4", "&offset=9", "&limit=0"} {
		fast := body(t, url+"/api/v1/studies/shapes/trials?format=json"+page, http.StatusOK)
		slow := body(t, url+"/api/v1/studies/shapes/trials?format=json"+every+page, http.StatusOK)
		if !bytes.Equal(fast, slow) {
			t.Errorf("%s: records as stored differ from the decoded ones:\n%s\nwant\n%s", page, fast, slow)
		}
	}
	var doc struct {
		Trials []api.Trial `json:"trials"`
	}
	if err := json.Unmarshal(body(t, url+"/api/v1/studies/shapes/trials", http.StatusOK), &doc); err != nil {
		t.Fatal(err)
	}
	for i, tr := range doc.Trials {
		if tr.Index != i {
			t.Errorf("trial %d is %s with index %d: want index order", i, tr.ID, tr.Index)
		}
	}
}

// TestFullRecordsNotFromTheStore checks the records etcd may hold that the
// store did not write: one laid out otherwise still takes its index's
// place, and a damaged one fails the read as decoding it did.
func TestFullRecordsNotFromTheStore(t *testing.T) {
	cl := clustertest.New(t)
	ctx := context.Background()
	now := time.Now()
	if _, err := store.New(cl.Etcd).Commit(ctx, []store.Put{
		{Key: store.StudyKey("odd"), Value: api.Study{Name: "odd", State: api.StudyDone, Spec: "name: odd\n", Created: now, Updated: now}},
		{Key: store.TrialKey("odd", "a"), Value: api.Trial{ID: "a", Study: "odd", Index: 1}},
	}); err != nil {
		t.Fatal(err)
	}
	hand := `{ "index": 0, "id": "b", "study": "odd" }`
	if _, err := cl.Etcd.Put(ctx, store.TrialKey("odd", "b"), hand); err != nil {
		t.Fatal(err)
	}
	url := serveAPI(t, cl)
	var doc struct {
		Total  int               `json:"total"`
		Trials []json.RawMessage `json:"trials"`
	}
	if err := json.Unmarshal(body(t, url+"/api/v1/studies/odd/trials", http.StatusOK), &doc); err != nil {
		t.Fatal(err)
	}
	if doc.Total != 2 || len(doc.Trials) != 2 || string(doc.Trials[0]) != hand {
		t.Fatalf("got %d of %d trials, first %s: want the hand-written record first, as stored", len(doc.Trials), doc.Total, doc.Trials[0])
	}
	if _, err := cl.Etcd.Put(ctx, store.TrialKey("odd", "c"), `{"id":"c","study":"odd","index":2,`); err != nil {
		t.Fatal(err)
	}
	every := ""
	for _, st := range sweep.States {
		every += "&state=" + string(st)
	}
	fast := body(t, url+"/api/v1/studies/odd/trials", http.StatusInternalServerError)
	slow := body(t, url+"/api/v1/studies/odd/trials?"+every, http.StatusInternalServerError)
	if !bytes.Contains(fast, []byte(store.TrialKey("odd", "c"))) {
		t.Errorf("damaged record: %s, want an error naming its key (decoded: %s)", fast, slow)
	}
}

// serveAPI serves a fresh API over cl and returns its URL.
func serveAPI(t testing.TB, cl *clustertest.Cluster) string {
	t.Helper()
	srv, err := httpapi.New(httpapi.Config{Etcd: cl.Etcd, NATS: cl.Conn("http")})
	if err != nil {
		t.Fatal(err)
	}
	return serveAPIHandler(t, srv)
}

// serveAPIHandler serves srv and returns its URL.
func serveAPIHandler(t testing.TB, srv *httpapi.Server) string {
	ts := httptest.NewServer(srv.Handler())
	t.Cleanup(ts.Close)
	return ts.URL
}

func body(t *testing.T, url string, status int) []byte {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != status {
		t.Fatalf("%s: status %d, want %d: %s", url, resp.StatusCode, status, b)
	}
	return b
}

package httpapi_test

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"asymptote.dev/asymptote/internal/api"
	"asymptote.dev/asymptote/internal/clustertest"
	"asymptote.dev/asymptote/internal/httpapi"
	"asymptote.dev/asymptote/internal/store"
	"asymptote.dev/asymptote/sweep"
)

// countingHandler counts the records logged with one message.
type countingHandler struct {
	msg string
	n   *atomic.Int64
}

func (h countingHandler) Enabled(context.Context, slog.Level) bool { return true }
func (h countingHandler) WithAttrs([]slog.Attr) slog.Handler       { return h }
func (h countingHandler) WithGroup(string) slog.Handler            { return h }
func (h countingHandler) Handle(_ context.Context, r slog.Record) error {
	if r.Message == h.msg {
		h.n.Add(1)
	}
	return nil
}

// TestColumnsFollowEtcd reads a study's table as columns (which fills the
// server's cache of it), changes its trials in etcd behind the server's
// back, and expects the very next read to show every change: a result
// recorded, a trial added, one deleted. A read after a change elsewhere
// in etcd must still be answered from the cache, and a sorted read must
// not reorder what later reads get.
func TestColumnsFollowEtcd(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test: embedded servers")
	}
	cl := clustertest.New(t)
	cl.FinishedStudy("s", 20)
	cl.FinishedStudy("other", 1)
	var fallbacks atomic.Int64
	srv, err := httpapi.New(httpapi.Config{Etcd: cl.Etcd, NATS: cl.Conn("http"), Logger: slog.New(countingHandler{"trials: reading etcd, not the cache", &fallbacks})})
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(srv.Handler())
	t.Cleanup(ts.Close)
	e := &env{t: t, cl: cl, url: ts.URL}
	columns := func(query string) httpapi.TrialColumns {
		t.Helper()
		var c httpapi.TrialColumns
		e.get("/api/v1/studies/s/trials?format=columns"+query, 200, &c)
		return c
	}
	if c := columns(""); c.Count != 20 || c.ID[0] != trialID(0) {
		t.Fatalf("first read: %d trials from %v, want 20 from %s", c.Count, c.ID[:min(1, len(c.ID))], trialID(0))
	}

	st := store.New(cl.Etcd)
	ctx := t.Context()
	var tr api.Trial
	resp, err := cl.Etcd.Get(ctx, store.TrialKey("s", trialID(3)))
	if err != nil || len(resp.Kvs) != 1 {
		t.Fatalf("read trial 3: %v", err)
	}
	if err := json.Unmarshal(resp.Kvs[0].Value, &tr); err != nil {
		t.Fatal(err)
	}
	obj := 0.5
	tr.Result.Objective = &obj
	tr.Result.Metrics["val_loss"] = obj
	tr.Updated = time.Now()
	added := tr
	added.ID, added.Index, added.State, added.Result, added.Error = trialID(20), 20, sweep.Failed, nil, "out of memory"
	if _, err := st.Commit(ctx, []store.Put{{Key: store.TrialKey("s", tr.ID), Value: tr, Rev: resp.Kvs[0].ModRevision}, {Key: store.TrialKey("s", added.ID), Value: added}}); err != nil {
		t.Fatal(err)
	}
	if _, err := cl.Etcd.Delete(ctx, store.TrialKey("s", trialID(7))); err != nil {
		t.Fatal(err)
	}
	c := columns("")
	if c.Count != 20 || c.ID[3] != trialID(3) || c.Objective[3] == nil || *c.Objective[3] != 0.5 || *c.Metrics["val_loss"][3] != 0.5 {
		t.Fatalf("after the changes: %d trials, trial 3 %s with objective %v, want 20 with trial 3's new objective 0.5", c.Count, c.ID[3], c.Objective[3])
	}
	if c.ID[7] != trialID(8) || c.ID[19] != trialID(20) || c.State[19] != sweep.Failed || c.Objective[19] != nil {
		t.Errorf("after the changes: trial 7's place holds %s, the last %s (%s, objective %v); want trial 7 gone and trial 20 failed without one",
			c.ID[7], c.ID[19], c.State[19], c.Objective[19])
	}

	// CSV, for the Python client, comes from the same cache: with the
	// failed trial's error.
	hresp, err := http.Get(ts.URL + "/api/v1/studies/s/trials?format=csv")
	if err != nil {
		t.Fatal(err)
	}
	recs, err := csv.NewReader(hresp.Body).ReadAll()
	hresp.Body.Close()
	if err != nil || len(recs) != 21 {
		t.Fatalf("csv: %d rows (%v), want a header and 20", len(recs), err)
	}
	if last := recs[20]; last[0] != trialID(20) || last[len(last)-1] != "out of memory" || recs[0][len(last)-1] != "error" {
		t.Errorf("csv: last row %v, want trial 20 with its error", last)
	}

	// Each result recorded is in the very next read, every time.
	for i := range 50 {
		resp, err := cl.Etcd.Get(ctx, store.TrialKey("s", trialID(4)))
		if err != nil || len(resp.Kvs) != 1 {
			t.Fatalf("read trial 4: %v", err)
		}
		var t4 api.Trial
		if err := json.Unmarshal(resp.Kvs[0].Value, &t4); err != nil {
			t.Fatal(err)
		}
		v := 10 + float64(i)
		t4.Result.Objective = &v
		if _, err := st.Commit(ctx, []store.Put{{Key: store.TrialKey("s", t4.ID), Value: t4, Rev: resp.Kvs[0].ModRevision}}); err != nil {
			t.Fatal(err)
		}
		if c := columns("&metric="); c.Objective[4] == nil || *c.Objective[4] != v {
			t.Fatalf("read %d after recording objective %g for trial 4: %v", i, v, c.Objective[4])
		}
	}

	// A change outside the study: the cache must show it has seen
	// everything up to now without a change of its own to go by.
	if _, err := cl.Etcd.Put(ctx, store.StudyKey("other")+"-unrelated", "x"); err != nil {
		t.Fatal(err)
	}
	if s := columns("&sort=objective"); s.ID[0] != trialID(3) || s.ID[18] != trialID(4) || s.ID[19] != trialID(20) {
		t.Errorf("sorted by objective: %s first, %s and %s last; want trial 3 (0.5), then trial 4 (59) and trial 20 (none)", s.ID[0], s.ID[18], s.ID[19])
	}
	if c := columns(""); c.ID[0] != trialID(0) || c.ID[19] != trialID(20) {
		t.Errorf("after a sorted read: first %s, last %s, want the index order", c.ID[0], c.ID[19])
	}
	if n := fallbacks.Load(); n > 0 {
		t.Errorf("%d reads fell back to etcd", n)
	}
}

func trialID(i int) string { return fmt.Sprintf("%020x", i) }

// TestColumnsGzip reads a study's columns as a browser does, accepting
// gzip, and as a client that does not: the first comes compressed, and
// both are the same document.
func TestColumnsGzip(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test: embedded servers")
	}
	cl := clustertest.New(t)
	cl.FinishedStudy("s", 200)
	url := serveAPI(t, cl) + "/api/v1/studies/s/trials?format=columns"
	read := func(encoding string) (*http.Response, []byte) {
		t.Helper()
		req, _ := http.NewRequest("GET", url, nil)
		// Set by hand, Go's client leaves the body as it came.
		req.Header.Set("Accept-Encoding", encoding)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("%s: status %d, %v", encoding, resp.StatusCode, err)
		}
		return resp, b
	}
	zresp, zbody := read("gzip, deflate, br")
	if ce := zresp.Header.Get("Content-Encoding"); ce != "gzip" {
		t.Fatalf("accepting gzip: Content-Encoding %q, want gzip", ce)
	}
	zr, err := gzip.NewReader(bytes.NewReader(zbody))
	if err != nil {
		t.Fatal(err)
	}
	unzipped, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}
	presp, plain := read("identity")
	if ce := presp.Header.Get("Content-Encoding"); ce != "" {
		t.Fatalf("not accepting gzip: Content-Encoding %q, want none", ce)
	}
	if !bytes.Equal(unzipped, plain) {
		t.Fatalf("the compressed document differs from the plain one (%d and %d bytes)", len(unzipped), len(plain))
	}
	if len(zbody)*3 > len(plain) {
		t.Errorf("compressed %d bytes from %d: want at least 3 times smaller", len(zbody), len(plain))
	}
	var c httpapi.TrialColumns
	if err := json.Unmarshal(plain, &c); err != nil || c.Count != 200 {
		t.Fatalf("document: %d trials, %v; want 200", c.Count, err)
	}
}

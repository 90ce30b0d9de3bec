package httpapi_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"asymptote.dev/asymptote/internal/api"
	"asymptote.dev/asymptote/internal/clustertest"
	"asymptote.dev/asymptote/internal/httpapi"
	"asymptote.dev/asymptote/internal/store"
)

// TestWarm checks that a starting server loads the tables of the studies
// still running and of the most recently updated others, and only those,
// so that their first reads load nothing more, while another study's
// first read still does.
func TestWarm(t *testing.T) {
	cl := clustertest.New(t)
	ctx := context.Background()
	t0 := time.Now()
	var puts []store.Put
	for i, name := range []string{"old", "newest", "middle", "older", "running"} {
		at := t0.Add(-time.Duration([]int{30, 0, 10, 20, 60}[i]) * time.Minute)
		state := api.StudyDone
		if name == "running" {
			state = api.StudyActive
		}
		puts = append(puts, store.Put{Key: store.StudyKey(name), Value: api.Study{Name: name, State: state, Spec: "name: " + name + "\n", Created: at, Updated: at}})
		for j := range 3 {
			id := fmt.Sprintf("%s-%d", name, j)
			puts = append(puts, store.Put{Key: store.TrialKey(name, id), Value: api.Trial{ID: id, Study: name, Index: j}})
		}
	}
	if _, err := store.New(cl.Etcd).Commit(ctx, puts); err != nil {
		t.Fatal(err)
	}
	var loads atomic.Int64
	srv, err := httpapi.New(httpapi.Config{Etcd: cl.Etcd, NATS: cl.Conn("http"), Logger: slog.New(countingHandler{"trial cache: loaded", &loads})})
	if err != nil {
		t.Fatal(err)
	}
	if warm := srv.Warm(ctx, 2); !slices.Equal(warm, []string{"newest", "middle", "running"}) {
		t.Fatalf("warmed %v, want the two most recently updated and the one still running, [newest middle running]", warm)
	}
	if n := loads.Load(); n != 3 {
		t.Fatalf("%d tables loaded while warming, want 3", n)
	}
	e := &env{t: t, cl: cl, url: serveAPIHandler(t, srv)}
	for _, read := range []struct {
		study string
		loads int64
	}{{"newest", 3}, {"middle", 3}, {"running", 3}, {"old", 4}} {
		var c httpapi.TrialColumns
		e.get("/api/v1/studies/"+read.study+"/trials?format=columns", 200, &c)
		if c.Count != 3 {
			t.Errorf("%s: %d trials, want 3", read.study, c.Count)
		}
		if n := loads.Load(); n != read.loads {
			t.Errorf("after reading %s: %d tables loaded, want %d", read.study, n, read.loads)
		}
	}
}

// messageCounts counts the records logged under each message.
type messageCounts struct{ n *sync.Map }

func (h messageCounts) Enabled(context.Context, slog.Level) bool { return true }
func (h messageCounts) WithAttrs([]slog.Attr) slog.Handler       { return h }
func (h messageCounts) WithGroup(string) slog.Handler            { return h }
func (h messageCounts) Handle(_ context.Context, r slog.Record) error {
	c, _ := h.n.LoadOrStore(r.Message, new(atomic.Int64))
	c.(*atomic.Int64).Add(1)
	return nil
}

func (h messageCounts) get(msg string) int64 {
	if c, ok := h.n.Load(msg); ok {
		return c.(*atomic.Int64).Load()
	}
	return 0
}

// TestFollow checks that a server following etcd loads the table of a
// study submitted after it started, when it is submitted, and answers
// that study's first read from the cache, current to every trial written
// since; that a study written before, and not since, is not loaded; and
// that a deleted study is forgotten, so that one submitted again under
// its name is loaded again.
func TestFollow(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test: embedded servers")
	}
	cl := clustertest.New(t)
	cl.FinishedStudy("before", 5)
	logs := messageCounts{new(sync.Map)}
	srv, err := httpapi.New(httpapi.Config{Etcd: cl.Etcd, NATS: cl.Conn("http"), Logger: slog.New(logs)})
	if err != nil {
		t.Fatal(err)
	}
	cl.Follow(srv.Follow)
	e := &env{t: t, cl: cl, url: serveAPIHandler(t, srv)}
	const loaded, fallback = "trial cache: loaded", "trials: reading etcd, not the cache"
	waitLoads := func(want int64) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for logs.get(loaded) < want {
			if time.Now().After(deadline) {
				t.Fatalf("%d tables loaded, want %d", logs.get(loaded), want)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	count := func(study string, want int) {
		t.Helper()
		var c httpapi.TrialColumns
		e.get("/api/v1/studies/"+study+"/trials?format=columns", 200, &c)
		if c.Count != want {
			t.Fatalf("%s: %d trials, want %d", study, c.Count, want)
		}
	}

	cl.FinishedStudy("new", 3)
	waitLoads(1)
	// Written after the load, before the read.
	id := "extra"
	if _, err := store.New(cl.Etcd).Commit(t.Context(), []store.Put{{Key: store.TrialKey("new", id), Value: api.Trial{ID: id, Study: "new", Index: 3}}}); err != nil {
		t.Fatal(err)
	}
	count("new", 4)
	if n, f := logs.get(loaded), logs.get(fallback); n != 1 || f != 0 {
		t.Fatalf("after reading the followed study: %d loads and %d reads of etcd, want 1 and 0", n, f)
	}
	count("before", 5)
	if n := logs.get(loaded); n != 2 {
		t.Fatalf("%d loads after the first read of a study written before the server started, want 2 (it is read then, not before)", n)
	}

	if err := store.New(cl.Etcd).DeleteStudy(t.Context(), "new"); err != nil {
		t.Fatal(err)
	}
	e.wantField("/api/v1/studies/new/trials?format=columns", 404, "study")
	cl.FinishedStudy("new", 2)
	waitLoads(3)
	count("new", 2)
}

// TestTableIdle checks that a finished study's table is dropped once it
// has gone unread and unwritten for the idle time, while a running
// study's is kept however long its trials go unwritten.
func TestTableIdle(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test: embedded servers")
	}
	cl := clustertest.New(t)
	cl.FinishedStudy("done", 3)
	cl.FinishedStudy("running", 3)
	running, err := json.Marshal(api.Study{Name: "running", State: api.StudyActive, Spec: "name: running\n"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cl.Etcd.Put(t.Context(), store.StudyKey("running"), string(running)); err != nil {
		t.Fatal(err)
	}
	logs := messageCounts{new(sync.Map)}
	dropped := map[string]*atomic.Bool{"done": {}, "running": {}}
	const idle = 200 * time.Millisecond
	srv, err := httpapi.New(httpapi.Config{Etcd: cl.Etcd, NATS: cl.Conn("http"), TableIdle: idle,
		Logger: slog.New(droppedHandler{logs, dropped})})
	if err != nil {
		t.Fatal(err)
	}
	e := &env{t: t, cl: cl, url: serveAPIHandler(t, srv)}
	for _, study := range []string{"done", "running"} {
		var c httpapi.TrialColumns
		e.get("/api/v1/studies/"+study+"/trials?format=columns", 200, &c)
	}
	deadline := time.Now().Add(10 * time.Second)
	for !dropped["done"].Load() {
		if time.Now().After(deadline) {
			t.Fatal("the finished study's table was not dropped within 10 s of going unused")
		}
		time.Sleep(10 * time.Millisecond)
	}
	// Both were loaded together: by several more idle checks the running
	// one has been through its own.
	time.Sleep(5 * idle)
	if dropped["running"].Load() {
		t.Fatal("the running study's table was dropped while the study runs")
	}
}

// droppedHandler notes which studies' tables were dropped.
type droppedHandler struct {
	messageCounts
	dropped map[string]*atomic.Bool
}

func (h droppedHandler) Handle(ctx context.Context, r slog.Record) error {
	if r.Message == "trial cache: dropped" {
		r.Attrs(func(a slog.Attr) bool {
			if b := h.dropped[a.Value.String()]; a.Key == "study" && b != nil {
				b.Store(true)
			}
			return true
		})
	}
	return h.messageCounts.Handle(ctx, r)
}

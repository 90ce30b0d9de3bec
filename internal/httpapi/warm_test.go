package httpapi_test

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"asymptote.dev/asymptote/internal/api"
	"asymptote.dev/asymptote/internal/clustertest"
	"asymptote.dev/asymptote/internal/httpapi"
	"asymptote.dev/asymptote/internal/store"
)

// TestWarm checks that a starting server loads the tables of the most
// recently updated studies, and only those, so that their first reads
// load nothing more, while another study's first read still does.
func TestWarm(t *testing.T) {
	cl := clustertest.New(t)
	ctx := context.Background()
	t0 := time.Now()
	var puts []store.Put
	for i, name := range []string{"old", "newest", "middle", "older"} {
		at := t0.Add(-time.Duration([]int{30, 0, 10, 20}[i]) * time.Minute)
		puts = append(puts, store.Put{Key: store.StudyKey(name), Value: api.Study{Name: name, State: api.StudyDone, Spec: "name: " + name + "\n", Created: at, Updated: at}})
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
	if warm := srv.Warm(ctx, 2); !slices.Equal(warm, []string{"newest", "middle"}) {
		t.Fatalf("warmed %v, want the two most recently updated, [newest middle]", warm)
	}
	if n := loads.Load(); n != 2 {
		t.Fatalf("%d tables loaded while warming, want 2", n)
	}
	e := &env{t: t, cl: cl, url: serveAPIHandler(t, srv)}
	for _, read := range []struct {
		study string
		loads int64
	}{{"newest", 2}, {"middle", 2}, {"old", 3}} {
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

package httpapi_test

import (
	"context"
	"fmt"
	"io"
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

// BenchmarkTrials100k serves a 100,000-trial study's trials (the records a
// finished synthetic study leaves in etcd) as JSON and as CSV. Goal: under
// 2 s each on this machine.
//
//	go test ./internal/httpapi -run '^$' -bench Trials100k -benchtime 3x
func BenchmarkTrials100k(b *testing.B) {
	cl := clustertest.New(b)
	ctx := context.Background()
	st := store.New(cl.Etcd)
	const n = 100_000
	now := time.Now()
	study := api.Study{Name: "big", State: api.StudyDone, Method: "synthetic", Objective: "val_loss", Direction: "minimize", Trials: n, Spec: "name: big\nmethod: synthetic\n", SpecFile: "big.yaml", Created: now, Updated: now}
	puts := []store.Put{{Key: store.StudyKey("big"), Value: study}}
	for i := range n {
		obj := 2 + 1/float64(i+1)
		t := api.Trial{ID: fmt.Sprintf("%020x", i), Study: "big", Index: i, Method: "synthetic", State: sweep.Succeeded, Attempt: 1, Seed: int64(i % 10),
			Params:   map[string]any{"params": float64(1e6 + i), "tokens": 2e9, "weight_decay": 0.1, "steps": 34.0},
			Attempts: []api.Attempt{{N: 1, State: api.AttemptSucceeded, Node: "dev-1", Dispatched: now, Ended: &now}},
			Result:   &api.Result{Attempt: 1, Node: "dev-1", Objective: &obj, Metrics: map[string]float64{"val_loss": obj, "train_loss": obj * 0.9, "params": float64(1e6 + i), "tokens": 2e9, "flops": 1.2e16}, Recorded: now},
			Created:  now, Updated: now}
		puts = append(puts, store.Put{Key: store.TrialKey("big", t.ID), Value: t})
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
	srv, err := httpapi.New(httpapi.Config{Etcd: cl.Etcd, NATS: cl.Conn("http")})
	if err != nil {
		b.Fatal(err)
	}
	ts := httptest.NewServer(srv.Handler())
	b.Cleanup(ts.Close)
	for _, format := range []string{"json", "csv"} {
		b.Run(format, func(b *testing.B) {
			for b.Loop() {
				resp, err := http.Get(ts.URL + "/api/v1/studies/big/trials?format=" + format)
				if err != nil {
					b.Fatal(err)
				}
				nb, _ := io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 {
					b.Fatalf("status %d", resp.StatusCode)
				}
				b.SetBytes(nb)
			}
		})
	}
}

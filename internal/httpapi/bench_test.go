package httpapi_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"asymptote.dev/asymptote/internal/api"
	"asymptote.dev/asymptote/internal/bus"
	"asymptote.dev/asymptote/internal/clustertest"
	"asymptote.dev/asymptote/internal/httpapi"
	"asymptote.dev/asymptote/internal/store"
)

// BenchmarkTrials100k serves a 100,000-trial study's trials (the records a
// finished synthetic study leaves in etcd) as JSON, as columns (what the
// dashboard loads) and as CSV. Columns come from the server's cache of
// the table once a first request has filled it; columns-first is that
// first request, on a server that has just started. Goal: under 2 s each
// on this machine.
//
//	go test ./internal/httpapi -run '^$' -bench Trials100k -benchtime 3x
func BenchmarkTrials100k(b *testing.B) {
	cl := clustertest.New(b)
	cl.FinishedStudy("big", 100_000)
	get := func(b *testing.B, url string) {
		resp, err := http.Get(url)
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
	url := serveAPI(b, cl)
	b.Run("columns-first", func(b *testing.B) {
		for b.Loop() {
			b.StopTimer()
			u := serveAPI(b, cl)
			b.StartTimer()
			get(b, u+"/api/v1/studies/big/trials?format=columns")
		}
	})
	for _, format := range []string{"json", "columns", "csv"} {
		b.Run(format, func(b *testing.B) {
			get(b, url+"/api/v1/studies/big/trials?format="+format) // fills the cache
			for b.Loop() {
				get(b, url+"/api/v1/studies/big/trials?format="+format)
			}
		})
	}
}

// BenchmarkHistory10k serves the full history of 10,000 trials of 100 steps
// (three values a step), as stored by agents: one chunk an attempt beside
// the single reports. Goal: under 5 s.
//
//	go test ./internal/httpapi -run '^$' -bench History10k -benchtime 3x
func BenchmarkHistory10k(b *testing.B) {
	cl := clustertest.New(b)
	ctx := context.Background()
	nc := cl.Conn("writer")
	js, err := jetstream.New(nc)
	if err != nil {
		b.Fatal(err)
	}
	if err := bus.DeclareHistory(ctx, js, 1, 0); err != nil {
		b.Fatal(err)
	}
	now := time.Now()
	st := store.New(cl.Etcd)
	if _, err := st.Commit(ctx, []store.Put{{Key: store.StudyKey("h"), Value: api.Study{Name: "h", State: api.StudyDone, Spec: "name: h\nmethod: synthetic\n", Created: now, Updated: now}}}); err != nil {
		b.Fatal(err)
	}
	const trials, steps = 10_000, 100
	start := time.Now()
	for i := range trials {
		ref := bus.AttemptRef{Study: "h", Trial: fmt.Sprintf("%020x", i), Attempt: 1}
		cb := bus.NewCurveBuilder(ref)
		for s := 1; s <= steps; s++ {
			r := &bus.MetricsReport{AttemptRef: ref, Seq: int64(s), Time: now, Step: int64(s), Values: map[string]float64{"val_loss": 3 + 1/float64(s), "train_loss": 2.9 + 1/float64(s), "tokens": float64(s) * 1e7}}
			if _, err := js.PublishAsync(bus.MetricsSubject("h", ref.Trial, "n"), bus.Encode(r), jetstream.WithMsgID(r.MsgID())); err != nil {
				b.Fatal(err)
			}
			_ = cb.Add(r)
		}
		c := cb.Finish()
		if _, err := js.PublishAsync(bus.CurveSubject("h", ref.Trial, "n"), bus.Encode(c), jetstream.WithMsgID(c.MsgID())); err != nil {
			b.Fatal(err)
		}
		if i%20 == 19 { // keep at most about 2,000 publishes in flight
			<-js.PublishAsyncComplete()
		}
	}
	<-js.PublishAsyncComplete()
	wrote := time.Since(start)
	s, _ := js.Stream(ctx, bus.StreamHistory)
	info, _ := s.Info(ctx)
	b.Logf("stored %d reports in %s (%.1f µs a report, publishing async), %d bytes in the stream (%.0f bytes a report)",
		trials*steps, wrote.Round(time.Millisecond), float64(wrote.Microseconds())/float64(trials*steps), info.State.Bytes, float64(info.State.Bytes)/float64(trials*steps))
	srv, err := httpapi.New(httpapi.Config{Etcd: cl.Etcd, NATS: cl.Conn("http")})
	if err != nil {
		b.Fatal(err)
	}
	ts := httptest.NewServer(srv.Handler())
	b.Cleanup(ts.Close)
	for _, format := range []string{"columns", "csv"} {
		b.Run(format, func(b *testing.B) {
			for b.Loop() {
				resp, err := http.Get(ts.URL + "/api/v1/studies/h/history?format=" + format)
				if err != nil {
					b.Fatal(err)
				}
				nb, _ := io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 || nb == 0 {
					b.Fatalf("status %d, %d bytes", resp.StatusCode, nb)
				}
				b.SetBytes(nb)
			}
		})
	}
}

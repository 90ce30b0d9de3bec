package bench

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"runtime"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	clientv3 "go.etcd.io/etcd/client/v3"

	"asymptote.dev/asymptote/internal/api"
	"asymptote.dev/asymptote/internal/bus"
	"asymptote.dev/asymptote/internal/httpapi"
	"asymptote.dev/asymptote/internal/store"
	"asymptote.dev/asymptote/sweep"
)

// APIResult is the HTTP API reading a large finished study's trials, as
// the dashboard and the Python client do.
type APIResult struct {
	Trials int
	// ColumnsFirst is the first format=columns read on a server that has
	// just started (it reads every record from etcd); Columns the median
	// of the later ones, answered from the server's cache of the table.
	ColumnsFirst, Columns time.Duration
	// CSV is one read as CSV (the Python client's trials()), from the
	// same cache; JSON one read of the full records (format=json).
	CSV, JSON time.Duration
	// ColumnsBytes, CSVBytes and JSONBytes are the responses' sizes.
	ColumnsBytes, CSVBytes, JSONBytes int64
	// CacheHeap is how much the live Go heap grew over the first read:
	// the server's cache of the table, with whatever else of the process
	// (etcd, NATS) grew meanwhile.
	CacheHeap int64
}

// API writes a finished study of trials records into etcd, as a
// synthetic study leaves them, and times the API's reads of it.
func API(ctx context.Context, opts Options, trials, repeats int) (APIResult, error) {
	opts.setDefaults()
	res := APIResult{Trials: trials}
	c, ctx, done, err := startTimed(ctx, opts)
	if err != nil {
		return res, err
	}
	defer done()
	cli, err := c.etcd(nil)
	if err != nil {
		return res, err
	}
	defer cli.Close()
	if err := writeFinished(ctx, store.New(cli), "big", trials); err != nil {
		return res, err
	}
	url, stop, err := c.serveAPI(cli)
	if err != nil {
		return res, err
	}
	defer stop()
	columns := url + "/api/v1/studies/big/trials?format=columns"
	before := liveHeap()
	if res.ColumnsFirst, res.ColumnsBytes, err = timeGet(ctx, columns); err != nil {
		return res, err
	}
	res.CacheHeap = liveHeap() - before
	var times []time.Duration
	for range repeats {
		d, _, err := timeGet(ctx, columns)
		if err != nil {
			return res, err
		}
		times = append(times, d)
	}
	res.Columns = median(times)
	if res.CSV, res.CSVBytes, err = timeGet(ctx, url+"/api/v1/studies/big/trials?format=csv"); err != nil {
		return res, err
	}
	if res.JSON, res.JSONBytes, err = timeGet(ctx, url+"/api/v1/studies/big/trials?format=json"); err != nil {
		return res, err
	}
	return res, nil
}

// liveHeap returns the live Go heap after a collection.
func liveHeap() int64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return int64(m.HeapAlloc)
}

// writeFinished writes study's record and n succeeded trials with results,
// 500 records a transaction.
func writeFinished(ctx context.Context, st *store.Store, study string, n int) error {
	now := time.Now()
	puts := []store.Put{{Key: store.StudyKey(study), Value: api.Study{Name: study, State: api.StudyDone, Method: "synthetic",
		Objective: "val_loss", Direction: "minimize", Trials: n, Spec: "name: " + study + "\nmethod: synthetic\n", Created: now, Updated: now}}}
	for i := range n {
		loss := 2 + 1/float64(i+1)
		size := 1e6 + float64(i%1000)*1e5
		puts = append(puts, store.Put{Key: store.TrialKey(study, fmt.Sprintf("t%07d", i)), Value: api.Trial{
			ID: fmt.Sprintf("t%07d", i), Study: study, Index: i, Method: "synthetic", State: sweep.Succeeded, Attempt: 1, Seed: int64(i % 5),
			Params:   map[string]any{"params": size, "weight_decay": float64(i%7) / 10, "tokens": 2e9},
			Attempts: []api.Attempt{{N: 1, State: api.AttemptSucceeded, Node: "agent-1", Dispatched: now, Ended: &now}},
			Result: &api.Result{Attempt: 1, Node: "agent-1", Objective: &loss, Recorded: now,
				Metrics: map[string]float64{"val_loss": loss, "train_loss": 0.95 * loss, "tokens": 2e9, "flops": 6 * size * 2e9}},
			Created: now, Updated: now,
		}})
		if len(puts) == 500 || i == n-1 {
			if _, err := st.Commit(ctx, puts); err != nil {
				return fmt.Errorf("bench: write study %s: %w", study, err)
			}
			puts = puts[:0]
		}
	}
	return nil
}

// startTimed starts the servers and bounds ctx by opts.RunTimeout; done
// stops both.
func startTimed(ctx context.Context, opts Options) (c *cluster, tctx context.Context, done func(), err error) {
	if c, err = startCluster(ctx, opts); err != nil {
		return nil, nil, nil, err
	}
	tctx, cancel := context.WithTimeout(ctx, opts.RunTimeout)
	return c, tctx, func() { cancel(); c.close() }, nil
}

// serveAPI serves a fresh HTTP API over cli and the cluster's NATS on a
// loopback port, and returns its URL and what stops it.
func (c *cluster) serveAPI(cli *clientv3.Client) (string, func(), error) {
	nc, err := c.conn("bench-http")
	if err != nil {
		return "", nil, err
	}
	server, err := httpapi.New(httpapi.Config{Etcd: cli, NATS: nc, Logger: c.opts.components})
	if err != nil {
		nc.Close()
		return "", nil, fmt.Errorf("bench: %w", err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		nc.Close()
		return "", nil, fmt.Errorf("bench: %w", err)
	}
	srv := &http.Server{Handler: server.Handler(), ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	return "http://" + ln.Addr().String(), func() { srv.Close(); nc.Close() }, nil
}

// lineCounter counts the lines written to it.
type lineCounter int

func (n *lineCounter) Write(p []byte) (int, error) {
	*n += lineCounter(bytes.Count(p, []byte{'\n'}))
	return len(p), nil
}

// timeGet reads url to the end and returns how long that took and the
// body's size.
func timeGet(ctx context.Context, url string) (time.Duration, int64, error) {
	d, n, _, err := timeGetLines(ctx, url)
	return d, n, err
}

// timeGetLines is timeGet that also counts the body's lines.
func timeGetLines(ctx context.Context, url string) (time.Duration, int64, int, error) {
	req, err := http.NewRequestWithContext(ctx, "GET", url, nil)
	if err != nil {
		return 0, 0, 0, fmt.Errorf("bench: %w", err)
	}
	start := time.Now()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, 0, 0, fmt.Errorf("bench: GET %s: %w", url, err)
	}
	defer resp.Body.Close()
	var lines lineCounter
	n, err := io.Copy(&lines, resp.Body)
	d := time.Since(start)
	if err == nil && resp.StatusCode != http.StatusOK {
		err = fmt.Errorf("status %d", resp.StatusCode)
	}
	if err != nil {
		return 0, 0, 0, fmt.Errorf("bench: GET %s: %w", url, err)
	}
	return d, n, int(lines), nil
}

// HistoryResult is the metric history under a streaming load, and the
// API's read of a large study's full history.
type HistoryResult struct {
	// Streamed reports came from Writers trials reporting at once, each
	// report Values values, through the agents' path: every report
	// published without waiting on its acknowledgement, and the same
	// reports in curve chunks.
	Streamed, Writers, Values int
	// Write is the wall time until every report was stored; CPU this
	// process's CPU time over it (the writers and NATS together).
	Write, CPU time.Duration
	// StreamBytes is the history stream's size after the streamed load.
	StreamBytes int64
	// ReadTrials trials of ReadSteps steps are read back in full
	// (format=columns, the stored chunks, one a line: ReadChunks) in
	// Read, ReadBytes long. The stream holds the streamed load's single
	// reports beside them, and only the chunks of the other trials.
	ReadTrials, ReadSteps, ReadChunks int
	Read                              time.Duration
	ReadBytes                         int64
}

// History streams trials×steps metric reports into the history, as agents
// publish them, then adds chunks until readTrials trials of steps steps
// are stored and reads them back in full through the API.
func History(ctx context.Context, opts Options, writers, trials, steps, readTrials int) (HistoryResult, error) {
	opts.setDefaults()
	res := HistoryResult{Streamed: trials * steps, Writers: writers, Values: 3, ReadTrials: readTrials, ReadSteps: steps}
	c, ctx, done, err := startTimed(ctx, opts)
	if err != nil {
		return res, err
	}
	defer done()
	nc, err := c.conn("bench-history")
	if err != nil {
		return res, err
	}
	js, err := jetstream.New(nc)
	if err != nil {
		return res, fmt.Errorf("bench: %w", err)
	}
	if err := bus.DeclareHistory(ctx, js, 1, 0); err != nil {
		return res, err
	}
	const study = "h"
	now := time.Now()
	report := func(ref bus.AttemptRef, s int) *bus.MetricsReport {
		return &bus.MetricsReport{AttemptRef: ref, Seq: int64(s), Time: now, Step: int64(s),
			Values: map[string]float64{"val_loss": 3 + 1/float64(s), "train_loss": 2.9 + 1/float64(s), "tokens": float64(s) * 1e7}}
	}
	ref := func(i int) bus.AttemptRef {
		return bus.AttemptRef{Study: study, Trial: fmt.Sprintf("t%07d", i), Attempt: 1}
	}
	cpu0, start := cpuTime(), time.Now()
	errs := make(chan error, writers)
	for w := range writers {
		go func() {
			errs <- streamTrials(ctx, js, w, writers, trials, steps, ref, report)
		}()
	}
	for range writers {
		if e := <-errs; e != nil && err == nil {
			err = e
		}
	}
	if err != nil {
		return res, err
	}
	res.Write, res.CPU = time.Since(start), cpuTime()-cpu0
	s, err := js.Stream(ctx, bus.StreamHistory)
	if err != nil {
		return res, fmt.Errorf("bench: %w", err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		return res, fmt.Errorf("bench: %w", err)
	}
	res.StreamBytes = int64(info.State.Bytes)
	// The rest of the study read back: its chunks only, what a bulk read
	// reads (the single reports sit under other subjects).
	for i := trials; i < readTrials; i++ {
		cb := bus.NewCurveBuilder(ref(i))
		for s := 1; s <= steps; s++ {
			if c := cb.Add(report(ref(i), s)); c != nil {
				if _, err := js.PublishAsync(bus.CurveSubject(study, c.Trial, "writer"), bus.Encode(c), jetstream.WithMsgID(c.MsgID())); err != nil {
					return res, fmt.Errorf("bench: %w", err)
				}
			}
		}
		c := cb.Finish()
		if _, err := js.PublishAsync(bus.CurveSubject(study, c.Trial, "writer"), bus.Encode(c), jetstream.WithMsgID(c.MsgID())); err != nil {
			return res, fmt.Errorf("bench: %w", err)
		}
		if i%500 == 499 {
			if err := awaitPublished(ctx, js); err != nil {
				return res, err
			}
		}
	}
	if err := awaitPublished(ctx, js); err != nil {
		return res, err
	}
	cli, err := c.etcd(nil)
	if err != nil {
		return res, err
	}
	defer cli.Close()
	if _, err := store.New(cli).Commit(ctx, []store.Put{{Key: store.StudyKey(study), Value: api.Study{Name: study, State: api.StudyDone,
		Spec: "name: " + study + "\nmethod: synthetic\n", Created: now, Updated: now}}}); err != nil {
		return res, err
	}
	url, stop, err := c.serveAPI(cli)
	if err != nil {
		return res, err
	}
	defer stop()
	res.Read, res.ReadBytes, res.ReadChunks, err = timeGetLines(ctx, url+"/api/v1/studies/"+study+"/history?format=columns")
	return res, err
}

// streamTrials publishes every report of trials w, w+writers, ... one
// trial at a time, as an agent's history writer does: each report and each
// full curve chunk without waiting on its acknowledgement, then waits for
// them all at the trial's end.
func streamTrials(ctx context.Context, js jetstream.JetStream, w, writers, trials, steps int,
	ref func(int) bus.AttemptRef, report func(bus.AttemptRef, int) *bus.MetricsReport) error {
	for i := w; i < trials; i += writers {
		r := ref(i)
		cb := bus.NewCurveBuilder(r)
		var acks []jetstream.PubAckFuture
		send := func(subject string, data []byte, id string) error {
			a, err := js.PublishAsync(subject, data, jetstream.WithMsgID(id))
			if err != nil {
				return fmt.Errorf("bench: publish %s: %w", subject, err)
			}
			acks = append(acks, a)
			return nil
		}
		for s := 1; s <= steps; s++ {
			m := report(r, s)
			if err := send(bus.MetricsSubject(r.Study, r.Trial, fmt.Sprintf("writer-%d", w)), bus.Encode(m), m.MsgID()); err != nil {
				return err
			}
			if c := cb.Add(m); c != nil {
				if err := send(bus.CurveSubject(c.Study, c.Trial, fmt.Sprintf("writer-%d", w)), bus.Encode(c), c.MsgID()); err != nil {
					return err
				}
			}
		}
		c := cb.Finish()
		if err := send(bus.CurveSubject(c.Study, c.Trial, fmt.Sprintf("writer-%d", w)), bus.Encode(c), c.MsgID()); err != nil {
			return err
		}
		for _, a := range acks {
			select {
			case <-a.Ok():
			case err := <-a.Err():
				return fmt.Errorf("bench: history write: %w", err)
			case <-ctx.Done():
				return ctx.Err()
			}
		}
	}
	return nil
}

// awaitPublished waits for every asynchronous publish to be acknowledged.
func awaitPublished(ctx context.Context, js jetstream.JetStream) error {
	select {
	case <-js.PublishAsyncComplete():
		return nil
	case <-ctx.Done():
		return errors.Join(errors.New("bench: history chunks not stored"), ctx.Err())
	}
}

package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"asymptote.dev/asymptote/internal/api"
	"asymptote.dev/asymptote/internal/store"
)

// commitWatch sees, through an etcd watch, when each write of one study
// lands in etcd: the end of a measured window is when the last result's
// commit returns, not the leader's `finished` timestamp, which the leader
// sets in the turn that commits it, before the commit.
//
// Why a watch: the coordinator (which the bench must not change) returns
// from its fenced transactions without telling anyone when, and etcd keeps
// no wall-clock time per revision, so the time can only be taken from
// outside. A watch event leaves the etcd server when the transaction is
// applied, the same moment its reply leaves for the leader, so the time
// this process receives it is the commit's return give or take the two
// goroutines' scheduling (sub-millisecond on a quiet machine; under load
// the leader's goroutine waits for a core just as the watcher's does). A
// polling read would add up to its interval and load the server.
//
// One watch covers the whole keyspace (store.Prefix), so events arrive in
// revision order and the study record's `done` write and every trial's
// result write are seen in the order etcd applied them; the leader commits
// a turn in up to eight concurrent transactions, so the study record may
// land before the last result: the window ends at the later of the two.
//
// The hot path stays light, since it shares the cores with the system
// under test: it keeps each event with its arrival time and looks for
// `"result":{` in trial records (a byte search, no decoding); records are
// decoded only after the window. The watch costs the etcd server one
// encoded copy of each write of the window.
type commitWatch struct {
	study    string
	trialKey string // the study's trial prefix
	studyKey string
	trials   int
	cancel   context.CancelFunc
	done     chan struct{} // closed when every result and the done state are seen
	ended    chan struct{} // closed when the consumer returns

	mu      sync.Mutex
	batches []watchBatch
	results map[string]bool // trial keys whose result has been seen
	doneAt  time.Time
	err     error
}

// watchBatch is one watch response: its events and when it arrived.
type watchBatch struct {
	at     time.Time
	events []*clientv3.Event
}

// watchCommits starts watching before study is submitted; trials is how
// many results it waits for. It returns once the watch is registered on
// the server, so no write of the window is seen late.
func watchCommits(ctx context.Context, cli *clientv3.Client, study string, trials int) (*commitWatch, error) {
	get, err := cli.Get(ctx, store.StudyKey(study))
	if err != nil {
		return nil, fmt.Errorf("bench: etcd: %w", err)
	}
	wctx, cancel := context.WithCancel(context.Background())
	wch := cli.Watch(clientv3.WithRequireLeader(wctx), store.Prefix, clientv3.WithPrefix(),
		clientv3.WithRev(get.Header.Revision+1), clientv3.WithCreatedNotify(), clientv3.WithFilterDelete())
	w := &commitWatch{
		study: study, trialKey: store.TrialKey(study, ""), studyKey: store.StudyKey(study), trials: trials,
		cancel: cancel, done: make(chan struct{}), ended: make(chan struct{}), results: map[string]bool{},
	}
	select {
	case r, ok := <-wch:
		if !ok || r.Err() != nil || !r.Created {
			cancel()
			return nil, fmt.Errorf("bench: etcd watch not created: %v", r.Err())
		}
	case <-ctx.Done():
		cancel()
		return nil, ctx.Err()
	}
	go w.consume(wch)
	return w, nil
}

var resultField = []byte(`"result":{`)

func (w *commitWatch) consume(wch clientv3.WatchChan) {
	defer close(w.ended)
	for r := range wch {
		at := time.Now()
		if err := r.Err(); err != nil {
			w.mu.Lock()
			w.err = err
			w.mu.Unlock()
			return
		}
		w.mu.Lock()
		w.batches = append(w.batches, watchBatch{at: at, events: r.Events})
		for _, ev := range r.Events {
			k := string(ev.Kv.Key)
			switch {
			case strings.HasPrefix(k, w.trialKey):
				if !w.results[k] && bytes.Contains(ev.Kv.Value, resultField) {
					w.results[k] = true
				}
			case k == w.studyKey && w.doneAt.IsZero():
				var s api.Study
				if json.Unmarshal(ev.Kv.Value, &s) == nil && s.State == api.StudyDone {
					w.doneAt = at
				}
			}
		}
		finished := !w.doneAt.IsZero() && len(w.results) >= w.trials
		w.mu.Unlock()
		if finished {
			close(w.done)
			return
		}
	}
}

// commits is what a commitWatch saw of a finished study.
type commits struct {
	// End is when the later of the last result's write and the study's
	// done write was seen.
	End time.Time
	// DoneAt is when the study's done write was seen.
	DoneAt time.Time
	// Result maps each trial ID to when the first write of its record
	// with a result was seen, and Recorded to that result's own
	// timestamp (the leader's, taken before the write).
	Result   map[string]time.Time
	Recorded map[string]time.Time
}

// wait blocks until every result and the study's done state are in etcd.
func (w *commitWatch) wait(ctx context.Context) (commits, error) {
	defer w.close()
	select {
	case <-w.done:
	case <-w.ended:
		w.mu.Lock()
		err := w.err
		w.mu.Unlock()
		select {
		case <-w.done: // finished on its last response
		default:
			return commits{}, fmt.Errorf("bench: etcd watch of %s ended: %v", w.study, err)
		}
	case <-ctx.Done():
		w.mu.Lock()
		n, done := len(w.results), !w.doneAt.IsZero()
		w.mu.Unlock()
		return commits{}, fmt.Errorf("bench: watching %s: %d of %d results committed, done written: %v: %w", w.study, n, w.trials, done, ctx.Err())
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	c := commits{End: w.doneAt, DoneAt: w.doneAt, Result: map[string]time.Time{}, Recorded: map[string]time.Time{}}
	for _, b := range w.batches {
		for _, ev := range b.events {
			k := string(ev.Kv.Key)
			id, ok := strings.CutPrefix(k, w.trialKey)
			if !ok {
				continue
			}
			if _, seen := c.Result[id]; seen {
				continue
			}
			var t api.Trial
			if err := json.Unmarshal(ev.Kv.Value, &t); err != nil {
				return commits{}, fmt.Errorf("bench: decode %s: %w", k, err)
			}
			if t.Result == nil {
				continue
			}
			c.Result[id], c.Recorded[id] = b.at, t.Result.Recorded
			if b.at.After(c.End) {
				c.End = b.at
			}
		}
	}
	if len(c.Result) < w.trials {
		return commits{}, fmt.Errorf("bench: watch of %s: %d results decoded, %d expected", w.study, len(c.Result), w.trials)
	}
	return c, nil
}

// close stops the watch and waits for its consumer.
func (w *commitWatch) close() {
	w.cancel()
	<-w.ended
}

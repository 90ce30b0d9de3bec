package httpapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"sync"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/grpc/metadata"

	"asymptote.dev/asymptote/internal/api"
	"asymptote.dev/asymptote/internal/store"
	"asymptote.dev/asymptote/sweep"
)

// trialCache keeps, for each study whose table was read in bulk
// (format=columns, csv or parquet), the fields of its trials that those
// carry:
// read from etcd once, at one revision, then kept current by a watch from
// that revision on. A 100,000-trial study's table is then served without
// reading and decoding 100,000 full records (attempts, checkpoints) each
// time someone opens its page. Any coordinator's API keeps its own: it
// needs no leader, only etcd.
//
// A read is never older than etcd was when it began: it waits until the
// watch has passed the revision the request saw (asking etcd for a
// progress report when nothing changed), and falls back to reading the
// records itself when the watch cannot say so in time.
type trialCache struct {
	cli *clientv3.Client
	log *slog.Logger
	// idle is how long a study's cache outlives its last read or write,
	// once the study is no longer running.
	idle time.Duration
	// catchUp bounds a read's wait for the watch.
	catchUp time.Duration

	mu      sync.Mutex
	studies map[string]*studyTrials
}

// studyTrials is one study's cached trials.
type studyTrials struct {
	ready  chan struct{} // closed once loaded, or once the load failed
	err    error         // why the load failed; set before ready closes
	cancel context.CancelFunc

	mu   sync.Mutex
	rev  int64 // etcd's revision the trials are current to
	dead bool  // the watch ended: the trials no longer follow etcd
	// moved is closed (and replaced) whenever rev advances.
	moved chan struct{}
	used  time.Time
	table
}

// errBehind is a cache that could not show it is current.
var errBehind = errors.New("trial cache: behind etcd")

func newTrialCache(cli *clientv3.Client, log *slog.Logger) *trialCache {
	return &trialCache{cli: cli, log: log, idle: 10 * time.Minute, catchUp: time.Second, studies: map[string]*studyTrials{}}
}

// watchCtx marks the cache's watches so that they share a gRPC stream of
// their own: a progress request on it reaches only them.
func watchCtx(ctx context.Context) context.Context {
	return clientv3.WithRequireLeader(metadata.AppendToOutgoingContext(ctx, "asymptote-watch", "trial-cache"))
}

// trials returns study's trials by index, current to at least etcd
// revision rev. The view is shared: the caller must not change it.
// errBehind means the caller should read etcd itself.
func (c *trialCache) trials(ctx context.Context, study string, rev int64) (tableView, error) {
	st := c.study(study)
	select {
	case <-st.ready:
	case <-ctx.Done():
		return tableView{}, ctx.Err()
	}
	if st.err != nil {
		c.drop(study, st)
		return tableView{}, st.err
	}
	deadline := time.NewTimer(c.catchUp)
	defer deadline.Stop()
	asked := false
	for {
		st.mu.Lock()
		st.used = time.Now()
		if st.dead {
			st.mu.Unlock()
			c.drop(study, st)
			return tableView{}, errBehind
		}
		if st.rev >= rev {
			out := st.read()
			st.mu.Unlock()
			return out, nil
		}
		moved := st.moved
		st.mu.Unlock()
		if !asked {
			// Nothing of this study may have changed since: only etcd
			// can say the watch has seen everything up to now.
			asked = true
			pctx, cancel := context.WithTimeout(ctx, c.catchUp)
			err := c.cli.RequestProgress(watchCtx(pctx))
			cancel()
			if err != nil {
				c.log.Debug("trial cache: progress request", "study", study, "error", err)
			}
		}
		select {
		case <-moved:
		case <-deadline.C:
			return tableView{}, errBehind
		case <-ctx.Done():
			return tableView{}, ctx.Err()
		}
	}
}

// study returns study's cache, starting its load when there is none.
func (c *trialCache) study(study string) *studyTrials {
	c.mu.Lock()
	defer c.mu.Unlock()
	if st := c.studies[study]; st != nil {
		return st
	}
	ctx, cancel := context.WithCancel(context.Background())
	st := &studyTrials{ready: make(chan struct{}), cancel: cancel, moved: make(chan struct{}), used: time.Now()}
	c.studies[study] = st
	go c.follow(ctx, study, st)
	return st
}

// forget drops study's cache, if there is one.
func (c *trialCache) forget(study string) {
	c.mu.Lock()
	st := c.studies[study]
	c.mu.Unlock()
	if st != nil {
		c.drop(study, st)
	}
}

// drop forgets st, if it is still study's cache, and stops its watch.
func (c *trialCache) drop(study string, st *studyTrials) {
	c.mu.Lock()
	if c.studies[study] == st {
		delete(c.studies, study)
	}
	c.mu.Unlock()
	st.cancel()
}

// follow loads study's trials and applies every change to them until the
// watch ends or the cache has gone neither read nor written for c.idle
// and the study is no longer running.
func (c *trialCache) follow(ctx context.Context, study string, st *studyTrials) {
	defer func() {
		st.mu.Lock()
		st.dead = true
		close(st.moved)
		st.moved = make(chan struct{})
		st.mu.Unlock()
		c.drop(study, st)
		c.log.Debug("trial cache: dropped", "study", study)
	}()
	prefix := store.TrialPrefix + study + "/"
	start := time.Now()
	rev, tb, err := loadRows(ctx, c.cli, prefix)
	if err == nil {
		c.log.Debug("trial cache: loaded", "study", study, "trials", len(tb.rows), "took", time.Since(start))
	}
	st.mu.Lock()
	st.rev, st.table, st.err = rev, tb, err
	st.mu.Unlock()
	close(st.ready)
	if err != nil {
		return
	}
	idle := time.NewTicker(c.idle / 4)
	defer idle.Stop()
	var dec rowDecoder
	watch := c.cli.Watch(watchCtx(ctx), prefix, clientv3.WithPrefix(), clientv3.WithRev(rev+1))
	for {
		select {
		case <-ctx.Done():
			return
		case <-idle.C:
			st.mu.Lock()
			unused := time.Since(st.used) > c.idle
			st.mu.Unlock()
			if unused && !c.running(ctx, study) {
				return
			}
		case resp, ok := <-watch:
			if !ok {
				return
			}
			if err := resp.Err(); err != nil {
				c.log.Debug("trial cache: watch ended", "study", study, "error", err)
				return
			}
			st.mu.Lock()
			for _, ev := range resp.Events {
				key := string(ev.Kv.Key)
				if ev.Type == clientv3.EventTypeDelete {
					st.remove(key)
				} else if t, err := dec.decode(ev.Kv.Value); err == nil {
					st.put(key, t)
				} else {
					c.log.Warn("trial cache: undecodable trial", "key", key, "error", err)
					st.remove(key)
				}
			}
			if r := resp.Header.Revision; r > st.rev {
				st.rev = r
			}
			if len(resp.Events) > 0 {
				// A study being written is one someone may open.
				st.used = time.Now()
			}
			close(st.moved)
			st.moved = make(chan struct{})
			st.mu.Unlock()
		}
	}
}

// running reports whether study is still being run (submitting or
// active), whose table is kept however long its trials go unwritten: a
// study of hour-long trials writes none for many minutes. An error reads
// as not running.
func (c *trialCache) running(ctx context.Context, study string) bool {
	resp, err := c.cli.Get(ctx, store.StudyKey(study))
	if err != nil || len(resp.Kvs) == 0 {
		return false
	}
	var rec struct {
		State api.StudyState `json:"state"`
	}
	if json.Unmarshal(resp.Kvs[0].Value, &rec) != nil {
		return false
	}
	return rec.State.Running()
}

// row is what the table formats (columns, CSV, Parquet) carry of a trial
// record; decoding into it skips the rest (attempts, checkpoints, late
// results) without building it.
type row struct {
	ID      string         `json:"id"`
	Index   int            `json:"index"`
	Params  map[string]any `json:"params"`
	Seed    int64          `json:"seed"`
	State   sweep.State    `json:"state"`
	Attempt int            `json:"attempt"`
	Result  *struct {
		Objective *float64           `json:"objective"`
		Metrics   map[string]float64 `json:"metrics"`
		NonFinite map[string]string  `json:"non_finite"`
	} `json:"result"`
	Error   string    `json:"error"`
	Updated time.Time `json:"updated"`
}

func decodeRow(b []byte) (api.Trial, error) {
	var r row
	if err := json.Unmarshal(b, &r); err != nil {
		return api.Trial{}, err
	}
	t := api.Trial{ID: r.ID, Index: r.Index, Params: r.Params, Seed: r.Seed, State: r.State, Attempt: r.Attempt, Error: r.Error, Updated: r.Updated}
	if r.Result != nil {
		t.Result = &api.Result{Objective: r.Result.Objective, Metrics: r.Result.Metrics, NonFinite: r.Result.NonFinite}
	}
	return t, nil
}

// loadRows reads every trial under prefix as of one revision, which it
// returns, a page at a time: the next page is read while this one is
// decoded, on every core.
func loadRows(ctx context.Context, cli *clientv3.Client, prefix string) (int64, table, error) {
	var tb table
	decs := make([]rowDecoder, cores())
	rev, err := readPages(ctx, cli, prefix, func(count int64, kvs []*mvccpb.KeyValue) error {
		if tb.pos == nil {
			tb = newTable(int(count))
		}
		rows := make([]api.Trial, len(kvs))
		errs := make([]error, len(kvs))
		parallel(len(kvs), func(w, i int) { rows[i], errs[i] = decs[w].decode(kvs[i].Value) })
		for i, kv := range kvs {
			if errs[i] != nil {
				return fmt.Errorf("trial cache: decode %s: %w", kv.Key, errs[i])
			}
			tb.put(string(kv.Key), rows[i])
		}
		return nil
	})
	if err != nil {
		return 0, table{}, fmt.Errorf("trial cache: %w", err)
	}
	if tb.pos == nil {
		tb = newTable(0)
	}
	return rev, tb, nil
}

// readPages reads every key under prefix as of one revision, which it
// returns, and hands fn one page at a time (with the count of all keys)
// while the next page is read.
func readPages(ctx context.Context, cli *clientv3.Client, prefix string, fn func(count int64, kvs []*mvccpb.KeyValue) error) (int64, error) {
	const page = 5000
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	end := clientv3.GetPrefixRangeEnd(prefix)
	first, err := cli.Get(ctx, prefix, clientv3.WithRange(end), clientv3.WithLimit(page))
	if err != nil {
		return 0, fmt.Errorf("read %s: %w", prefix, err)
	}
	rev := first.Header.Revision
	pages := make(chan *clientv3.GetResponse, 1)
	errc := make(chan error, 1)
	go func() {
		defer close(pages)
		resp := first
		for {
			select {
			case pages <- resp:
			case <-ctx.Done():
				return
			}
			if !resp.More || len(resp.Kvs) == 0 {
				return
			}
			key := string(resp.Kvs[len(resp.Kvs)-1].Key) + "\x00"
			var err error
			resp, err = cli.Get(ctx, key, clientv3.WithRange(end), clientv3.WithLimit(page), clientv3.WithRev(rev))
			if err != nil {
				errc <- fmt.Errorf("read %s at revision %d: %w", prefix, rev, err)
				return
			}
		}
	}()
	for resp := range pages {
		if err := fn(first.Count, resp.Kvs); err != nil {
			return 0, err
		}
	}
	select {
	case err := <-errc:
		return 0, err
	default:
	}
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	return rev, nil
}

// cores is how many goroutines parallel runs.
func cores() int { return runtime.GOMAXPROCS(0) }

// parallel calls f(w, i) for every i below n, on every core: w, below
// cores(), names the goroutine, so that f can keep state for each.
func parallel(n int, f func(w, i int)) {
	var wg sync.WaitGroup
	workers := cores()
	for w := range workers {
		wg.Go(func() {
			for i := w; i < n; i += workers {
				f(w, i)
			}
		})
	}
	wg.Wait()
}

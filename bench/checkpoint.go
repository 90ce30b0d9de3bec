package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"asymptote.dev/asymptote/internal/api"
	"asymptote.dev/asymptote/internal/bus"
	"asymptote.dev/asymptote/internal/checkpoint"
	"asymptote.dev/asymptote/internal/checkpoint/diskspeed"
	"asymptote.dev/asymptote/internal/node"
	"asymptote.dev/asymptote/plugins/sdk"
)

// The stores the checkpoint schedule measures beside the disk: the
// directory store, and the object store on two NATS servers, one syncing
// every JetStream write (the embedded servers' default, as in `asymptote
// dev`) and one flushing every SyncInterval (nats-server's own default,
// what a deployment on stock servers gets).
const (
	DirStore           = "directory"
	ObjectStore        = "object"
	ObjectFlushedStore = "object-flushed"
	// diskOp names the plain files' operations ("disk write", "disk read").
	diskOp = "disk"
)

var checkpointStores = []string{DirStore, ObjectStore, ObjectFlushedStore}

// checkpointGoals are the goals, as fractions of the disk's own speed in
// the same direction.
var checkpointGoals = map[string]float64{DirStore: 0.5, ObjectStore: 0.25, ObjectFlushedStore: 0.25}

// storeLabels name the stores in the report.
var storeLabels = map[string]string{
	DirStore:           "directory",
	ObjectStore:        "object, NATS syncing every write (the embedded default)",
	ObjectFlushedStore: "object, NATS flushing every 2m (nats-server's default)",
}

// checkpointOps is one repetition's order at one size: the disk and each
// store write, then the disk and each store read the same bytes back.
var checkpointOps = func() []string {
	ops := []string{diskOp + " write"}
	for _, st := range checkpointStores {
		ops = append(ops, st+" put")
	}
	ops = append(ops, diskOp+" read")
	for _, st := range checkpointStores {
		ops = append(ops, st+" get")
	}
	return ops
}()

// CheckpointRun is one timed operation of the checkpoint schedule.
type CheckpointRun struct {
	Rep  int
	Size int64
	Op   string
	Took time.Duration
	MBps float64
}

// Checkpoints measures checkpoint save and restore throughput through
// the stores beside the disk's own sequential speed, interleaved:
// repetition is the outer loop, then each size, then checkpointOps (the
// disk and each store write, then read the same bytes), so a burst of
// foreign load hits one repetition of each rather than every repetition
// of one. The directory store and the plain files share a directory under
// opts.TempDir; the object stores are JetStream buckets on two embedded
// NATS servers (checkpointStores), whose files lie under opts.TempDir
// too. Before the reads, the kernel is asked to drop its cached pages of
// all their files (diskspeed.Evict), so the reads start from the disk,
// but for what a NATS server keeps in its own cache.
func Checkpoints(ctx context.Context, opts Options, sizes []int64, repeats int) ([]CheckpointRun, error) {
	opts.setDefaults()
	c, stores, err := startStores(ctx, opts, startCluster)
	if err != nil {
		return nil, err
	}
	defer c.close()
	flushedOpts := opts
	flushedOpts.natsSync = SyncInterval
	cf, flushed, err := startStores(ctx, flushedOpts, startCluster)
	if err != nil {
		return nil, err
	}
	defer cf.close()
	stores[ObjectFlushedStore] = flushed[ObjectStore]
	diskDir := filepath.Join(c.dir, "disk")
	if err := os.MkdirAll(diskDir, 0o700); err != nil {
		return nil, fmt.Errorf("bench: %w", err)
	}
	var runs []CheckpointRun
	for rep := range max(repeats, 1) {
		for _, n := range sizes {
			key := fmt.Sprintf("bench/%d/%d", rep, n)
			path := filepath.Join(diskDir, fmt.Sprintf("%d-%d", rep, n))
			infos := map[string]checkpoint.Info{}
			for _, op := range checkpointOps {
				st, verb, _ := strings.Cut(op, " ")
				var took time.Duration
				switch {
				case op == diskOp+" write":
					took, err = diskspeed.Write(path, n)
				case op == diskOp+" read":
					// The reads start from the disk, not from the page
					// cache the writes filled (eviction not timed).
					if err = errors.Join(diskspeed.Evict(c.dir), diskspeed.Evict(cf.dir)); err == nil {
						took, err = diskspeed.Read(path, n)
					}
				case verb == "put":
					start := time.Now()
					infos[st], err = stores[st].Put(ctx, key, diskspeed.Data(n))
					took = time.Since(start)
				default:
					took, err = readCheckpoint(ctx, stores[st], key, infos[st])
				}
				if err != nil {
					return runs, fmt.Errorf("bench: checkpoints: %s of %s: %w", op, bytesStr(n), err)
				}
				runs = append(runs, CheckpointRun{Rep: rep, Size: n, Op: op, Took: took, MBps: diskspeed.MBps(n, took)})
				opts.Logger.Debug("bench: checkpoint", "op", op, "bytes", n, "mb_per_s", diskspeed.MBps(n, took))
			}
			// Free the space before the next size; deletes are not timed.
			errs := []error{os.Remove(path)}
			for _, st := range checkpointStores {
				errs = append(errs, stores[st].Delete(ctx, key))
			}
			if err := errors.Join(errs...); err != nil {
				return runs, fmt.Errorf("bench: checkpoints: clean up %s: %w", bytesStr(n), err)
			}
		}
	}
	return runs, nil
}

// startStores starts a cluster with start and opens both stores on it:
// a directory store under the cluster's directory and the object store on
// its NATS server, keyed "directory" and "object" as the operations name
// them.
func startStores(ctx context.Context, opts Options, start func(context.Context, Options) (*cluster, error)) (*cluster, map[string]checkpoint.Store, error) {
	c, err := start(ctx, opts)
	if err != nil {
		return nil, nil, err
	}
	stores, err := c.checkpointStores(ctx)
	if err != nil {
		c.close()
		return nil, nil, err
	}
	return c, stores, nil
}

func (c *cluster) checkpointStores(ctx context.Context) (map[string]checkpoint.Store, error) {
	d, err := checkpoint.NewDir(filepath.Join(c.dir, "checkpoints"), c.opts.components)
	if err != nil {
		return nil, fmt.Errorf("bench: %w", err)
	}
	nc, err := c.conn("bench-checkpoints")
	if err != nil {
		return nil, err
	}
	c.node.Defer(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, fmt.Errorf("bench: %w", err)
	}
	o, err := checkpoint.NewObject(ctx, js, checkpoint.ObjectConfig{Logger: c.opts.components})
	if err != nil {
		return nil, fmt.Errorf("bench: %w", err)
	}
	return map[string]checkpoint.Store{"directory": d, "object": o}, nil
}

// readCheckpoint streams the checkpoint under key to its verified end.
func readCheckpoint(ctx context.Context, s checkpoint.Store, key string, want checkpoint.Info) (time.Duration, error) {
	start := time.Now()
	rc, err := s.Get(ctx, key, want)
	if err != nil {
		return 0, err
	}
	defer rc.Close()
	n, err := io.CopyBuffer(io.Discard, rc, make([]byte, diskspeed.BufSize))
	if err != nil {
		return 0, err
	}
	if n != want.Size {
		return 0, fmt.Errorf("read %d bytes of %d", n, want.Size)
	}
	return time.Since(start), nil
}

// CheckpointRow is the checkpoint table's row for one size, direction
// and store.
type CheckpointRow struct {
	Size int64
	// Save is true for the writes (disk write, puts), false for the reads.
	Save  bool
	Store string
	// Disk and MBps are the disk's and the store's median MB/s and their
	// ranges.
	Disk, MBps Spread
	// Ratio is the store's median over the disk's, with the range of the
	// per-repetition ratios; Goal is the least it should be.
	Ratio Ratio
	Goal  float64
}

// Spread is a median and the range it was taken from.
type Spread struct{ Median, Min, Max float64 }

func spread(xs []float64) Spread {
	if len(xs) == 0 {
		return Spread{}
	}
	return Spread{Median: median(xs), Min: slices.Min(xs), Max: slices.Max(xs)}
}

// Met is whether the store reaches its goal.
func (r CheckpointRow) Met() bool { return r.Ratio.Met(r.Goal) }

// CheckpointRows summarizes runs: per size, the saves, then the restores,
// each store in turn (those that have runs).
func CheckpointRows(runs []CheckpointRun) []CheckpointRow {
	var sizes []int64
	byRep := map[int64]map[int]map[string]float64{}
	for _, r := range runs {
		if byRep[r.Size] == nil {
			byRep[r.Size] = map[int]map[string]float64{}
			sizes = append(sizes, r.Size)
		}
		if byRep[r.Size][r.Rep] == nil {
			byRep[r.Size][r.Rep] = map[string]float64{}
		}
		byRep[r.Size][r.Rep][r.Op] = r.MBps
	}
	slices.Sort(sizes)
	var rows []CheckpointRow
	for _, n := range sizes {
		for _, save := range []bool{true, false} {
			disk, verb := diskOp+" read", " get"
			if save {
				disk, verb = diskOp+" write", " put"
			}
			for _, st := range checkpointStores {
				var d, m, per []float64
				for _, ops := range byRep[n] {
					d, m = appendPos(d, ops[disk]), appendPos(m, ops[st+verb])
					if ops[disk] > 0 {
						per = appendPos(per, ops[st+verb]/ops[disk])
					}
				}
				if len(m) == 0 {
					continue
				}
				row := CheckpointRow{Size: n, Save: save, Store: st, Disk: spread(d), MBps: spread(m), Goal: checkpointGoals[st]}
				row.Ratio = spreadRatio(row.MBps, row.Disk, per)
				rows = append(rows, row)
			}
		}
	}
	return rows
}

func appendPos(xs []float64, x float64) []float64 {
	if x > 0 {
		return append(xs, x)
	}
	return xs
}

func spreadRatio(num, den Spread, per []float64) Ratio {
	if num.Median <= 0 || den.Median <= 0 || len(per) == 0 {
		return Ratio{}
	}
	return Ratio{Ratio: num.Median / den.Median, Min: slices.Min(per), Max: slices.Max(per), Pairs: len(per)}
}

// PauseResult is what checkpoints of one size cost a running trial: a
// method on a real agent, with a real store, reports steps without a
// checkpoint and with one, and keeps reporting while the agent uploads it.
type PauseResult struct {
	// Store is "directory" or "object".
	Store string
	Size  int64
	// Checkpoints is how many the trial saved.
	Checkpoints int
	// Write is the median time the method took to write its checkpoint's
	// files (fsynced), before it reported them; the method's own cost.
	Write time.Duration
	// Report is the median report call that carried a checkpoint, Plain
	// the median of those that did not before it, and During the median
	// of those made while the upload ran (DuringN of them).
	Report, Plain, During time.Duration
	DuringN               int
	// Upload is the median time from the report call to the store
	// holding the checkpoint (Put returned), UploadMax the slowest, of
	// the uploads that succeeded.
	Upload, UploadMax time.Duration
	// Failed counts the uploads that failed, and Error is the last one's
	// error; the agent, and the trial, go on without them.
	Failed int    `json:",omitempty"`
	Error  string `json:",omitempty"`
}

// UploadMBps is the checkpoint's size over the median upload.
func (p PauseResult) UploadMBps() float64 { return diskspeed.MBps(p.Size, p.Upload) }

// pauseInterval is how often the method reports while an upload runs: a
// training step's pace, not a spin.
const pauseInterval = 10 * time.Millisecond

// CheckpointPause runs, for each store, one trial per size on a real
// agent with that store, of a method (in this process, so the report
// calls are timed exactly; the plugin's gRPC hop is the metric-streaming
// figure) that saves checkpoints checkpoints of each size. Before each it
// reports a step without one; after it, it reports every pauseInterval
// until the store holds the checkpoint.
func CheckpointPause(ctx context.Context, opts Options, sizes []int64, checkpoints int) ([]PauseResult, error) {
	opts.setDefaults()
	ctx, cancel := context.WithTimeout(ctx, opts.RunTimeout)
	defer cancel()
	c, stores, err := startStores(ctx, opts, startLedCluster)
	if err != nil {
		return nil, err
	}
	defer c.close()
	// Both agents first, each with its own store and its own method's
	// name, so each study runs on its store's agent.
	names := []string{DirStore, ObjectStore}
	methods := map[string]*pauseMethod{}
	for _, name := range names {
		m := &pauseMethod{name: "checkpoint-pause-" + name, puts: make(chan putDone, 1), results: map[int64]*PauseResult{}}
		methods[name] = m
		if _, err := c.node.StartAgent(node.Agent{Config: node.AgentConfig{
			NodeID: "pause-" + name, Methods: m, MethodNames: []string{m.name},
			Resources:         bus.Resources{CPU: 1, Memory: 64 << 30},
			HeartbeatInterval: time.Second, ShutdownGrace: 2 * time.Second,
			Checkpoints: &timedStore{Store: stores[name], done: m.puts},
			ScratchDir:  filepath.Join(c.dir, "scratch-"+name),
		}}); err != nil {
			return nil, fmt.Errorf("bench: agent: %w", err)
		}
	}
	if err := c.waitNodes(ctx, len(names)); err != nil {
		return nil, err
	}
	var out []PauseResult
	for _, name := range names {
		m := methods[name]
		spec := pauseSpec(m.name, sizes, checkpoints)
		if _, err := c.client.Submit(ctx, api.SubmitRequest{SpecFile: m.name + ".yaml", Spec: spec}); err != nil {
			return out, fmt.Errorf("bench: submit %s: %w", m.name, err)
		}
		st, err := c.waitDone(ctx, m.name, 50*time.Millisecond)
		if err != nil {
			return out, err
		}
		if err := m.failure(); err != nil {
			return out, fmt.Errorf("bench: checkpoint pause, %s store: %w", name, err)
		}
		if n := st.Counts["succeeded"]; n != len(sizes) {
			return out, fmt.Errorf("bench: checkpoint pause, %s store: %d of %d trials succeeded: %v%s", name, n, len(sizes), st.Counts, c.trialErrors(ctx, m.name))
		}
		for _, n := range sizes {
			r := m.results[n]
			r.Store = name
			out = append(out, *r)
		}
		if name == ObjectStore {
			// The coordinator's store; it never sees the directory
			// store's checkpoints, which go with the cluster's directory.
			c.awaitDeleted(ctx, stores[name], m.name+"/")
		}
	}
	return out, nil
}

// awaitDeleted waits, for a minute at most (the leader's own bound on a
// turn's deletions), until the leader has deleted the checkpoints under
// prefix, which it does once their trials have succeeded: the cluster
// then closes with no deletion under way.
func (c *cluster) awaitDeleted(ctx context.Context, s checkpoint.Store, prefix string) {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	for {
		left, err := s.List(ctx, prefix)
		if err == nil && len(left) == 0 {
			return
		}
		select {
		case <-ctx.Done():
			c.opts.components.Warn("bench: checkpoints the leader has not deleted", "prefix", prefix, "left", len(left), "error", err)
			return
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// trialErrors lists the errors of study's failed trials, for a message.
func (c *cluster) trialErrors(ctx context.Context, study string) string {
	r, err := c.client.Results(ctx, study)
	if err != nil {
		return " (results: " + err.Error() + ")"
	}
	var errs []string
	for _, t := range r.Trials {
		if t.Error != "" {
			errs = append(errs, t.Error)
		}
	}
	if len(errs) == 0 {
		return ""
	}
	return ": " + strings.Join(errs, "; ")
}

func pauseSpec(method string, sizes []int64, checkpoints int) string {
	vals := make([]string, len(sizes))
	for i, n := range sizes {
		vals[i] = fmt.Sprint(n)
	}
	return fmt.Sprintf(`name: %s
method: %s
space:
  bytes: [%s]
fixed: {checkpoints: %d}
resources: {cpu: 1, memory: 1MiB}
timeout: 30m
`, method, method, strings.Join(vals, ", "), checkpoints)
}

// putDone is one Put of the store under the agent: when it returned.
type putDone struct {
	key string
	end time.Time
	err error
}

// timedStore passes everything to Store and says when each Put returns,
// on a channel with room for one: the method reads each before it saves
// the next checkpoint.
type timedStore struct {
	checkpoint.Store
	done chan<- putDone
}

func (s *timedStore) Put(ctx context.Context, key string, r io.Reader) (checkpoint.Info, error) {
	info, err := s.Store.Put(ctx, key, r)
	select {
	case s.done <- putDone{key: key, end: time.Now(), err: err}:
	default: // the method waits for each of its puts; none waits now
	}
	return info, err
}

// pauseMethod is the method CheckpointPause runs, in this process: each
// trial (parameter bytes) saves checkpoints of that size and times its
// report calls; results holds what it measured by size.
type pauseMethod struct {
	name string
	puts chan putDone
	mu   sync.Mutex
	// results and err are what the trials measured and the first error.
	results map[int64]*PauseResult
	err     error
}

// Run implements agent.MethodRunner.
func (m *pauseMethod) Run(ctx context.Context, r node.MethodRun, report func(sdk.Metrics) error) (*sdk.Result, error) {
	res, err := m.run(ctx, r.Request, report)
	if err != nil {
		m.mu.Lock()
		m.err = errors.Join(m.err, err)
		m.mu.Unlock()
	}
	return res, err
}

// Info describes the method to the agent.
func (m *pauseMethod) Info(context.Context, string) (*sdk.Info, error) {
	return &sdk.Info{Name: m.name, Version: "1", Description: "saves checkpoints and times its report calls (asymptote bench)"}, nil
}

func (m *pauseMethod) failure() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.err
}

func (m *pauseMethod) run(ctx context.Context, req *sdk.TrialRequest, report func(sdk.Metrics) error) (*sdk.Result, error) {
	size, err := req.Int("bytes", 0)
	if err != nil {
		return nil, err
	}
	k, err := req.Int("checkpoints", 1)
	if err != nil {
		return nil, err
	}
	switch {
	case size <= 0:
		return nil, &sdk.ParamError{Param: "bytes", Reason: "must be positive: the size of each checkpoint"}
	case k <= 0:
		return nil, &sdk.ParamError{Param: "checkpoints", Reason: "must be positive: how many the trial saves"}
	}
	var step int64
	timed := func(ckpt string) (time.Duration, error) {
		step++
		start := time.Now()
		err := report(sdk.Metrics{Step: step, Values: map[string]float64{"step": float64(step)}, Checkpoint: ckpt})
		return time.Since(start), err
	}
	var writes, reports, plain, during, uploads []time.Duration
	failed, failure := 0, ""
	for range k {
		d, err := timed("")
		if err != nil {
			return nil, err
		}
		plain = append(plain, d)
		dir, err := req.NewCheckpoint(step + 1)
		if err != nil {
			return nil, err
		}
		w, err := diskspeed.Write(filepath.Join(dir, "state"), size)
		if err != nil {
			return nil, err
		}
		writes = append(writes, w)
		reported := time.Now()
		if d, err = timed(dir); err != nil {
			return nil, err
		}
		reports = append(reports, d)
		key, err := checkpoint.KeyFor(req.Study, req.TrialID, req.Attempt, step)
		if err != nil {
			return nil, err
		}
		tick := time.NewTicker(pauseInterval)
	wait:
		for {
			select {
			case p := <-m.puts:
				if p.key != key {
					tick.Stop()
					return nil, fmt.Errorf("the store got checkpoint %q, want %q", p.key, key)
				}
				if p.err != nil {
					// The agent goes on without it, and so does the trial:
					// the report says how many failed.
					failed, failure = failed+1, p.err.Error()
					break wait
				}
				uploads = append(uploads, p.end.Sub(reported))
				break wait
			case <-tick.C:
				d, err := timed("")
				if err != nil {
					tick.Stop()
					return nil, err
				}
				during = append(during, d)
			case <-ctx.Done():
				tick.Stop()
				return nil, ctx.Err()
			}
		}
		tick.Stop()
	}
	m.mu.Lock()
	m.results[size] = &PauseResult{
		Size: size, Checkpoints: int(k), Write: median(writes), Report: median(reports), Plain: median(plain),
		During: median(during), DuringN: len(during), Upload: median(uploads), Failed: failed, Error: failure,
	}
	if len(uploads) > 0 {
		m.results[size].UploadMax = slices.Max(uploads)
	}
	m.mu.Unlock()
	// The objective is the default, val_loss; nothing is trained.
	return &sdk.Result{Metrics: map[string]float64{sdk.MetricValLoss: 0, "steps": float64(step)}}, nil
}

// writeCheckpoints prints the checkpoint tables: throughput beside the
// disk, with the goals, and the pause a checkpoint costs a trial.
func (r *Report) writeCheckpoints(p func(string, ...any)) {
	rows := CheckpointRows(r.Checkpoint)
	if len(rows) == 0 && len(r.CheckpointPause) == 0 {
		return
	}
	reps := 0
	for _, c := range r.Checkpoint {
		reps = max(reps, c.Rep+1)
	}
	p("\n### Checkpoint stores: save and restore throughput (MB/s, medians of %d interleaved repetition(s))\n\n", reps)
	p("Each repetition, at each size: plain files written and fsynced, then a put into each store (the directory store; the object store on an embedded NATS server syncing every JetStream write, and on one flushing every %s), then all of them read back, each checkpoint's SHA-256 checked to its end. Ranges in brackets; ratios are of the medians, with the range of the per-repetition ratios. Before the reads the page cache of all their files is dropped (posix_fadvise), so they start from the disk (a NATS server may still hold recent blocks in its own cache).\n\n", SyncInterval)
	p("| checkpoint | direction | disk (plain files) | store | store MB/s | × disk | goal | verdict |\n|---|---|---|---|---|---|---|---|\n")
	for _, row := range rows {
		dir := "restore (read)"
		if row.Save {
			dir = "save (write)"
		}
		p("| %s | %s | %s | %s | %s | %s | ≥ %g× | %s |\n", bytesStr(row.Size), dir, spreadCell(row.Disk), storeLabels[row.Store],
			spreadCell(row.MBps), ratioCellPrec(row.Ratio, 2), row.Goal, verdict(row.Met(), ""))
	}
	if len(r.CheckpointPause) == 0 {
		return
	}
	p("\nWhat a checkpoint costs a running trial (a method on a real agent with a real store; medians over the trial's checkpoints). The method writes its files, then reports the step with them; the agent uploads them in the background while the method goes on reporting a step every %s:\n\n", pauseInterval)
	p("| store | checkpoint | checkpoints | method writes its files (fsynced) | `report` with the checkpoint | `report` without, before it | `report` while it uploads | upload: report → stored (slowest) | upload MB/s |\n|---|---|---|---|---|---|---|---|---|\n")
	var failures []string
	for _, ps := range r.CheckpointPause {
		upload := fmt.Sprintf("**%s** (%s)", durStr(ps.Upload), durStr(ps.UploadMax))
		if ps.Failed > 0 {
			upload += fmt.Sprintf("; **%d of %d failed**", ps.Failed, ps.Checkpoints)
			failures = append(failures, fmt.Sprintf("%s store, %s: %s", ps.Store, bytesStr(ps.Size), ps.Error))
		}
		rate := "–"
		if ps.Upload > 0 {
			rate = fmt.Sprintf("%.0f", ps.UploadMBps())
		}
		p("| %s | %s | %d | %s | **%s** | %s | %s (%d reports) | %s | %s |\n", ps.Store, bytesStr(ps.Size), ps.Checkpoints,
			durStr(ps.Write), durStr(ps.Report), durStr(ps.Plain), durStr(ps.During), ps.DuringN, upload, rate)
	}
	for _, f := range failures {
		p("\nUpload failed (the agent logs it and the trial goes on): %s\n", f)
	}
}

// spreadCell is a median in MB/s with its range.
func spreadCell(s Spread) string {
	switch {
	case s.Median <= 0:
		return "–"
	case s.Max > s.Min:
		return fmt.Sprintf("**%.0f** (%.0f–%.0f)", s.Median, s.Min, s.Max)
	}
	return fmt.Sprintf("**%.0f**", s.Median)
}

// durStr rounds d to three significant figures or so.
func durStr(d time.Duration) string {
	switch {
	case d <= 0:
		return "–"
	case d < time.Millisecond:
		return d.Round(time.Microsecond / 10).String()
	case d < time.Second:
		return d.Round(10 * time.Microsecond).String()
	}
	return d.Round(10 * time.Millisecond).String()
}

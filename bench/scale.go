package bench

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"runtime/metrics"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/nats-io/nats.go"

	"asymptote.dev/asymptote/internal/api"
	"asymptote.dev/asymptote/internal/bus"
)

// ScaleResult is the large-study run.
type ScaleResult struct {
	Trials int
	// Submit is the time from the submit request to its reply: the
	// leader expands the spec and writes every trial to etcd.
	Submit time.Duration
	// Run is the time from the reply to the last recorded result.
	Run time.Duration
	// Status and Results are the times of a status call and of paging
	// through every trial's record, on the finished study.
	Status, Results time.Duration
	// PeakRSS is the peak resident set of this whole process (coordinator,
	// embedded etcd and NATS, agents); PeakHeap the peak Go heap sampled
	// every 100 ms. Both bound the coordinator's own share from above.
	PeakRSS, PeakHeap int64
	// EtcdDB is the size of etcd's database file at the end.
	EtcdDB int64
}

// Scale runs a study of trials no-op synthetic trials on agents agents and
// measures memory, etcd's size and the API's latency.
func Scale(ctx context.Context, opts Options, trials, agents int) (ScaleResult, error) {
	opts.setDefaults()
	var res ScaleResult
	res.Trials = trials
	c, err := startLedCluster(ctx, opts)
	if err != nil {
		return res, err
	}
	defer c.close()
	share := float64(runtime.NumCPU()) / float64(agents)
	for i := range agents {
		if _, err := c.startAgent(fmt.Sprintf("agent-%d", i+1), share); err != nil {
			return res, err
		}
	}
	ctx, cancel := context.WithTimeout(ctx, opts.RunTimeout)
	defer cancel()
	if err := c.waitNodes(ctx, agents); err != nil {
		return res, err
	}
	runtime.GC()
	resetPeakRSS()
	peak := sampleHeap()
	start := time.Now()
	if _, err := c.submit(ctx, "scale", trials, 0, noopCPU); err != nil {
		return res, err
	}
	res.Submit = time.Since(start)
	start = time.Now()
	st, err := c.waitDone(ctx, "scale", 250*time.Millisecond)
	if err != nil {
		return res, err
	}
	res.Run = st.Finished.Sub(start)
	if opts.HeapProfile != "" {
		if err := writeHeapProfile(opts.HeapProfile); err != nil {
			return res, err
		}
	}
	if n := st.Counts["succeeded"]; n != trials {
		return res, fmt.Errorf("bench: scale: %d of %d trials succeeded: %v", n, trials, st.Counts)
	}
	start = time.Now()
	if _, err := c.client.Status(ctx, "scale"); err != nil {
		return res, err
	}
	res.Status = time.Since(start)
	start = time.Now()
	all, err := c.client.Results(ctx, "scale")
	if err != nil {
		return res, err
	}
	res.Results = time.Since(start)
	if len(all.Trials) != trials {
		return res, fmt.Errorf("bench: scale: results listed %d of %d trials", len(all.Trials), trials)
	}
	res.PeakHeap = peak()
	res.PeakRSS = peakRSS()
	if fi, err := os.Stat(filepath.Join(c.dir, "etcd", "member", "snap", "db")); err == nil {
		res.EtcdDB = fi.Size()
	}
	return res, nil
}

// writeHeapProfile writes the live heap to path after a GC.
func writeHeapProfile(path string) error {
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("bench: heap profile: %w", err)
	}
	runtime.GC()
	if err := pprof.WriteHeapProfile(f); err != nil {
		f.Close()
		return fmt.Errorf("bench: heap profile: %w", err)
	}
	return f.Close()
}

// resetPeakRSS resets the kernel's high-water mark of this process's
// resident set (Linux; elsewhere a no-op).
func resetPeakRSS() { _ = os.WriteFile("/proc/self/clear_refs", []byte("5"), 0) }

// peakRSS returns VmHWM from /proc/self/status in bytes, or the lifetime
// peak from getrusage where that file is missing.
func peakRSS() int64 {
	if b, err := os.ReadFile("/proc/self/status"); err == nil {
		for line := range strings.SplitSeq(string(b), "\n") {
			if rest, ok := strings.CutPrefix(line, "VmHWM:"); ok {
				kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
				if err == nil {
					return kb << 10
				}
			}
		}
	}
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return ru.Maxrss << 10
}

// sampleHeap samples the live Go heap every 100 ms until the returned
// function is called, which returns the peak.
func sampleHeap() func() int64 {
	var peak atomic.Int64
	stop := make(chan struct{})
	done := make(chan struct{})
	s := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
	go func() {
		defer close(done)
		t := time.NewTicker(100 * time.Millisecond)
		defer t.Stop()
		for {
			metrics.Read(s)
			if v := int64(s[0].Value.Uint64()); v > peak.Load() {
				peak.Store(v)
			}
			select {
			case <-stop:
				return
			case <-t.C:
			}
		}
	}()
	return func() int64 { close(stop); <-done; return peak.Load() }
}

// cpuTime returns this process's user+system CPU time.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// HeartbeatResult is the simulated-agent swarm run.
type HeartbeatResult struct {
	Agents   int
	Duration time.Duration
	// Sent and Answered count heartbeats; Latency is the heartbeat
	// request's round trip through NATS and the leader's loop.
	Sent, Answered int
	P50, P99, Max  time.Duration
	// CPU is the cores this process used on average (coordinator, NATS,
	// etcd and the simulators together); HeapDelta the Go heap's growth.
	CPU       float64
	PeakHeap  int64
	FalseDead int
}

// Heartbeats simulates agents agents, each heartbeating once a second on
// its own schedule, against one coordinator with default settings, and
// counts nodes the coordinator ever declares dead.
func Heartbeats(ctx context.Context, opts Options, agents int, d time.Duration) (HeartbeatResult, error) {
	opts.setDefaults()
	res := HeartbeatResult{Agents: agents, Duration: d}
	c, err := startLedCluster(ctx, opts)
	if err != nil {
		return res, err
	}
	defer c.close()
	// Simulators share a few connections, as agents on one NATS server
	// would share its CPU anyway.
	const conns = 16
	ncs := make([]*nats.Conn, conns)
	for i := range ncs {
		if ncs[i], err = c.conn(fmt.Sprintf("sim-%d", i)); err != nil {
			return res, err
		}
	}
	ctx, cancel := context.WithTimeout(ctx, d+opts.RunTimeout)
	defer cancel()
	var (
		mu   sync.Mutex
		lats []time.Duration
		sent atomic.Int64
		// from is when the measured window began (Unix ns; 0: not yet);
		// a heartbeat counts, sent and answered, only if sent after it.
		from atomic.Int64
	)
	runCtx, stop := context.WithCancel(ctx)
	var wg sync.WaitGroup
	for i := range agents {
		wg.Go(func() {
			nc := ncs[i%conns]
			node := fmt.Sprintf("sim-%04d", i)
			hb := bus.Heartbeat{Node: node, Boot: "b-" + node, Resources: bus.Resources{CPU: 1, Memory: 1 << 30}, Methods: []string{"synthetic"}}
			// Spread the first beats over a second.
			t := time.NewTimer(time.Duration(rand.Int64N(int64(time.Second))))
			defer t.Stop()
			for {
				select {
				case <-runCtx.Done():
					return
				case <-t.C:
				}
				t.Reset(time.Second)
				hb.Sent = time.Now()
				counted := from.Load() != 0 && hb.Sent.UnixNano() >= from.Load()
				if counted {
					sent.Add(1)
				}
				rctx, cancel := context.WithTimeout(runCtx, 5*time.Second)
				_, err := nc.RequestWithContext(rctx, bus.HeartbeatSubject(node), bus.Encode(&hb))
				cancel()
				if err == nil && counted {
					l := time.Since(hb.Sent)
					mu.Lock()
					lats = append(lats, l)
					mu.Unlock()
				}
			}
		})
	}
	// Let every node join before the clock starts.
	if err := c.waitNodes(ctx, agents); err != nil {
		stop()
		wg.Wait()
		return res, err
	}
	from.Store(time.Now().UnixNano())
	peak := sampleHeap()
	cpu0, t0 := cpuTime(), time.Now()
	dead := map[string]bool{}
	poll := time.NewTicker(time.Second)
	for end := time.After(d); ; {
		select {
		case <-end:
		case <-poll.C:
			if r, err := c.client.Status(ctx, ""); err == nil {
				for _, n := range r.Nodes {
					if n.State != api.NodeAlive {
						dead[n.ID] = true
					}
				}
			}
			continue
		case <-ctx.Done():
		}
		break
	}
	poll.Stop()
	res.CPU = (cpuTime() - cpu0).Seconds() / time.Since(t0).Seconds()
	res.PeakHeap = peak()
	stop()
	wg.Wait()
	res.FalseDead = len(dead)
	mu.Lock()
	defer mu.Unlock()
	res.Sent, res.Answered = int(sent.Load()), len(lats)
	if len(lats) > 0 {
		slices.Sort(lats)
		res.P50, res.P99, res.Max = lats[len(lats)/2], lats[len(lats)*99/100], lats[len(lats)-1]
	}
	return res, nil
}

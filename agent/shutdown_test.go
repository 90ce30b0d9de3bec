package agent_test

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"asymptote.dev/asymptote/agent"
	"asymptote.dev/asymptote/agent/methodmgr"
	"asymptote.dev/asymptote/internal/bus"
	"asymptote.dev/asymptote/internal/clustertest"
)

// logWatch is a slog handler that counts the records whose message
// contains a substring, so a test can wait for the agent to reach a point
// it only logs.
type logWatch struct {
	substr string
	mu     *sync.Mutex
	seen   *int
}

func newLogWatch(substr string) logWatch {
	return logWatch{substr: substr, mu: &sync.Mutex{}, seen: new(int)}
}

func (w logWatch) Enabled(context.Context, slog.Level) bool { return true }
func (w logWatch) WithAttrs([]slog.Attr) slog.Handler       { return w }
func (w logWatch) WithGroup(string) slog.Handler            { return w }
func (w logWatch) Handle(_ context.Context, r slog.Record) error {
	if strings.Contains(r.Message, w.substr) {
		w.mu.Lock()
		*w.seen++
		w.mu.Unlock()
	}
	return nil
}

func (w logWatch) count() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return *w.seen
}

// runAgent starts a on its own context and returns a function that
// cancels it and returns how long Run then took to return, failing t if
// it takes longer than limit.
func runAgent(t *testing.T, a *agent.Agent) (stop func(limit time.Duration) time.Duration) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	returned := make(chan struct{})
	go func() { _ = a.Run(ctx); close(returned) }()
	t.Cleanup(func() { cancel(); <-returned })
	return func(limit time.Duration) time.Duration {
		start := time.Now()
		cancel()
		select {
		case <-returned:
			return time.Since(start)
		case <-time.After(limit):
			t.Fatalf("Run did not return within %v of its context ending", limit)
			return 0
		}
	}
}

// waitSubscribed waits until node answers dispatches.
func waitSubscribed(t *testing.T, nc *nats.Conn, node string) {
	t.Helper()
	clustertest.WaitFor(t, 10*time.Second, func() error {
		_, err := nc.Request(bus.DispatchSubject(node), []byte("{}"), time.Second)
		return err
	})
}

// dispatch sends node one attempt of trial and fails t unless it is
// accepted.
func dispatch(t *testing.T, nc *nats.Conn, node string, d bus.Dispatch) {
	t.Helper()
	msg, err := nc.Request(bus.DispatchSubject(node), bus.Encode(&bus.DispatchBatch{Dispatches: []bus.Dispatch{d}}), 5*time.Second)
	if err != nil {
		t.Fatalf("dispatch %s: %v", d.Trial, err)
	}
	var r bus.DispatchBatchReply
	if err := bus.Decode(msg.Data, &r); err != nil || len(r.Replies) != 1 || !r.Replies[0].Accepted {
		t.Fatalf("dispatch %s: reply %s (%v)", d.Trial, msg.Data, err)
	}
}

// finished waits for trial's finished event in the events stream.
// eventsOf starts the test servers and returns the cluster, a connection
// for the test's side, and a consumer of the events stream as the leader
// declares it.
func eventsOf(t *testing.T, conn string) (*clustertest.Cluster, *nats.Conn, jetstream.Consumer) {
	t.Helper()
	cl := clustertest.New(t)
	nc := cl.Conn(conn)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	cons, err := bus.Declare(t.Context(), js, 1)
	if err != nil {
		t.Fatal(err)
	}
	return cl, nc, cons
}

func finished(t *testing.T, cons jetstream.Consumer, trial string) *bus.Event {
	t.Helper()
	var got *bus.Event
	clustertest.WaitFor(t, 20*time.Second, func() error {
		batch, err := cons.FetchNoWait(100)
		if err != nil {
			return err
		}
		for m := range batch.Messages() {
			var ev bus.Event
			if err := bus.Decode(m.Data(), &ev); err != nil {
				return err
			}
			_ = m.Ack()
			if ev.Trial == trial && ev.Kind == bus.EventFinished {
				got = &ev
			}
		}
		if got == nil {
			return fmt.Errorf("no finished event for trial %s yet", trial)
		}
		return nil
	})
	return got
}

// publishing reports whether a goroutine is in the agent's publish loop.
func publishing() bool {
	buf := make([]byte, 1<<20)
	n := runtime.Stack(buf, true)
	return bytes.Contains(buf[:n], []byte("agent.(*Agent).publish("))
}

// TestShutdownGraceBoundsPublishing stops agents whose outcomes cannot be
// published: Run must return within the shutdown grace (give or take a
// generous margin) and leave no publish retrying behind it for hours.
// Outcomes that can be published during the grace must still go out.
func TestShutdownGraceBoundsPublishing(t *testing.T) {
	const trial = "aaaaaaaaaaaaaaaaaaaa"
	tests := []struct {
		name string
		// stream declares the events stream before the attempt ends;
		// without it JetStream refuses every publish.
		stream bool
		// declareDuringGrace declares it once the agent is stopping.
		declareDuringGrace bool
		// killNATS shuts the NATS server down before the attempt ends.
		killNATS bool
		// runningAtStop stops the agent while the attempt runs.
		runningAtStop bool
		grace         time.Duration
		// want is the outcome that must reach the stream; "" for none.
		want bus.Outcome
	}{
		{name: "JetStream refuses", grace: time.Second},
		{name: "NATS down", stream: true, killNATS: true, grace: time.Second},
		{name: "stream appears during the grace", declareDuringGrace: true, grace: 30 * time.Second, want: bus.OutcomeSucceeded},
		{name: "attempt running at shutdown", stream: true, runningAtStop: true, grace: 30 * time.Second, want: bus.OutcomePreempted},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cl := clustertest.New(t)
			nc := cl.Conn("leader")
			js, err := jetstream.New(nc)
			if err != nil {
				t.Fatal(err)
			}
			var cons jetstream.Consumer
			if tt.stream {
				if cons, err = bus.Declare(t.Context(), js, 1); err != nil {
					t.Fatal(err)
				}
			}
			retrying := newLogWatch("publish event failed; retrying")
			g := &gate{release: map[string]chan struct{}{}}
			a, err := agent.New(agent.Config{
				NodeID: "n1", NATS: cl.Conn("agent"), Methods: g,
				Resources:         bus.Resources{CPU: 1, Memory: 1 << 30},
				HeartbeatInterval: 100 * time.Millisecond, ShutdownGrace: tt.grace,
				Logger: slog.New(retrying),
			})
			if err != nil {
				t.Fatal(err)
			}
			stop := runAgent(t, a)
			waitSubscribed(t, nc, "n1")
			dispatch(t, nc, "n1", bus.Dispatch{
				AttemptRef: bus.AttemptRef{Study: "q", Trial: trial, Attempt: 1},
				Method:     "gate", Threads: 1, Params: map[string]any{},
				Resources: bus.Resources{CPU: 1, Memory: 1 << 20},
			})
			clustertest.WaitFor(t, 10*time.Second, func() error {
				if g.startedList() != trial {
					return fmt.Errorf("trial not started")
				}
				return nil
			})
			if tt.killNATS {
				cl.Servers.NATS.Shutdown()
			}
			if !tt.runningAtStop {
				g.done(trial)
			}
			if !tt.stream && !tt.killNATS {
				// The outcome is being retried when the agent stops.
				clustertest.WaitFor(t, 10*time.Second, func() error {
					if retrying.count() == 0 {
						return fmt.Errorf("no failed publish yet")
					}
					return nil
				})
			}
			if tt.declareDuringGrace {
				// Declared as the agent stops: its retries must
				// carry on into the grace and succeed.
				go func() {
					time.Sleep(200 * time.Millisecond)
					_, _ = bus.Declare(context.Background(), js, 1)
				}()
			}
			// A margin well above the grace: Run may overrun it by a
			// last request's round trip, never by a retry loop.
			took := stop(tt.grace + 10*time.Second)
			t.Logf("Run returned %v after its context ended (grace %v)", took, tt.grace)
			// And nothing of the agent retries on after it.
			clustertest.WaitFor(t, 5*time.Second, func() error {
				if publishing() {
					return fmt.Errorf("a publish of the agent still retries after Run returned")
				}
				return nil
			})
			if tt.want == "" {
				return
			}
			if cons == nil {
				if cons, err = bus.Declare(t.Context(), js, 1); err != nil {
					t.Fatal(err)
				}
			}
			if ev := finished(t, cons, trial); ev.Outcome != tt.want {
				t.Errorf("outcome %s (%s), want %s", ev.Outcome, ev.Error, tt.want)
			}
		})
	}
}

// TestTrialThreadsBoundNumericLibraries runs a real plugin process and
// checks the thread variables it sees: the dispatch's thread budget, not
// the agent's own environment or the host's core count.
func TestTrialThreadsBoundNumericLibraries(t *testing.T) {
	// The agent's own value, which trials must not inherit.
	t.Setenv("OMP_NUM_THREADS", "64")
	cl, nc, cons := eventsOf(t, "leader")
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	// A short work directory keeps the plugins' sockets in it.
	dir, err := os.MkdirTemp("", "agt")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	mgr, err := methodmgr.New(methodmgr.Config{Executable: exe, Builtins: []string{"envprobe"}, WorkDir: dir, Logger: clustertest.Logger(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = mgr.Close() })
	a, err := agent.New(agent.Config{
		NodeID: "n1", NATS: cl.Conn("agent"), Methods: mgr,
		Resources:         bus.Resources{CPU: 4, Memory: 1 << 30},
		HeartbeatInterval: 100 * time.Millisecond, ShutdownGrace: 3 * time.Second,
		Logger: clustertest.Logger(t),
	})
	if err != nil {
		t.Fatal(err)
	}
	runAgent(t, a)
	waitSubscribed(t, nc, "n1")
	tests := []struct {
		trial   string
		threads int
	}{
		{"aaaaaaaaaaaaaaaaaaaa", 3},
		{"bbbbbbbbbbbbbbbbbbbb", 1},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprint(tt.threads), func(t *testing.T) {
			dispatch(t, nc, "n1", bus.Dispatch{
				AttemptRef: bus.AttemptRef{Study: "q", Trial: tt.trial, Attempt: 1},
				Method:     "envprobe", Threads: tt.threads, Params: map[string]any{},
				Resources: bus.Resources{CPU: float64(tt.threads), Memory: 1 << 20},
			})
			ev := finished(t, cons, tt.trial)
			if ev.Outcome != bus.OutcomeSucceeded {
				t.Fatalf("outcome %s: %s", ev.Outcome, ev.Error)
			}
			for _, k := range threadVars {
				if got := ev.Metrics[k]; got != float64(tt.threads) {
					t.Errorf("the method saw %s=%v, want %d (-1: unset)", k, got, tt.threads)
				}
			}
		})
	}
}

package bench

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"asymptote.dev/asymptote/internal/clustertest"
	"asymptote.dev/asymptote/plugins/methods"
	"asymptote.dev/asymptote/plugins/sdk"
)

// TestMain doubles as the plugin: agents re-execute this test binary as
// `<test binary> method <name>`, and go-plugin's cookie in the environment
// tells it to serve the method instead of running tests.
func TestMain(m *testing.M) {
	if os.Getenv(sdk.Handshake.MagicCookieKey) != "" && len(os.Args) == 3 && os.Args[1] == "method" {
		meth, ok := methods.Lookup(os.Args[2])
		if !ok {
			fmt.Fprintf(os.Stderr, "bench plugin: unknown method %q\n", os.Args[2])
			os.Exit(2)
		}
		sdk.Serve(meth)
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func testOptions(t testing.TB) Options {
	return Options{TempDir: t.TempDir(), Logger: clustertest.Logger(t), RunTimeout: time.Minute}
}

// TestSmoke runs one tiny iteration of every measurement.
func TestSmoke(t *testing.T) {
	if testing.Short() {
		t.Skip("starts clusters")
	}
	ctx := t.Context()
	o := testOptions(t)
	tests := []struct {
		name string
		run  func() error
	}{
		{"dispatch", func() error {
			r, err := Dispatch(ctx, o, 2, 30)
			if err == nil && r.TrialsPerSec <= 0 {
				err = fmt.Errorf("got %v trials/s", r.TrialsPerSec)
			}
			return err
		}},
		{"overhead", func() error {
			r, err := Overhead(ctx, o, 8, 1, 4, 100*time.Millisecond)
			if err == nil && r.Wall < r.Ideal {
				err = fmt.Errorf("wall %s below the ideal %s", r.Wall, r.Ideal)
			}
			return err
		}},
		{"scale", func() error {
			r, err := Scale(ctx, o, 50, 1)
			if err == nil && (r.PeakRSS <= 0 || r.EtcdDB <= 0) {
				err = fmt.Errorf("peak RSS %d, etcd db %d", r.PeakRSS, r.EtcdDB)
			}
			return err
		}},
		{"heartbeats", func() error {
			r, err := Heartbeats(ctx, o, 20, 2*time.Second)
			if err == nil && (r.Answered == 0 || r.FalseDead != 0) {
				err = fmt.Errorf("%d answered, %d false alarms", r.Answered, r.FalseDead)
			}
			return err
		}},
		{"plugins", func() error {
			r, err := Plugins(ctx, o, 1, 50, 100)
			if err == nil && (r.Cold <= 0 || r.Warm <= 0 || r.StreamPerSec <= 0) {
				err = fmt.Errorf("got %+v", r)
			}
			return err
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.run(); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// TestReport renders a table and a plot from a hand-made report.
func TestReport(t *testing.T) {
	r := &Report{
		Machine:  "test",
		Dispatch: map[int][]DispatchResult{1: {{TrialsPerSec: 900}}, 2: {{TrialsPerSec: 1000}}},
		Optuna: []OptunaRun{
			{Storage: "postgresql", Workers: 1, TrialsPerSec: 30},
			{Storage: "journal", Workers: 2, FailedWorkers: 1, TrialsPerSec: 400},
		},
		Failover: []time.Duration{3 * time.Second},
	}
	var b strings.Builder
	if err := r.WriteTable(&b); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"| 1 | **900** |", "30.0×", "crashed (1/1)"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, b.String())
		}
	}
	png := filepath.Join(t.TempDir(), "p.png")
	if err := r.Plot(png); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(png); err != nil || fi.Size() == 0 {
		t.Fatalf("plot not written: %v", err)
	}
}

func BenchmarkDispatch(b *testing.B) {
	for _, agents := range []int{1, 2, 4, 8} {
		b.Run(fmt.Sprintf("agents=%d", agents), func(b *testing.B) {
			var tps []float64
			stale := 0
			for b.Loop() {
				r, err := Dispatch(context.Background(), testOptions(b), agents, 2000)
				if err != nil {
					b.Fatal(err)
				}
				tps = append(tps, r.TrialsPerSec)
				stale += r.Stale
			}
			b.ReportMetric(median(tps), "trials/s")
			b.ReportMetric(float64(stale)/float64(len(tps)), "stale/op")
		})
	}
}

func BenchmarkOverhead(b *testing.B) {
	for b.Loop() {
		r, err := Overhead(context.Background(), testOptions(b), 2000, 4, 100, time.Second)
		if err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(r.Percent, "overhead-%")
	}
}

// BenchmarkOverheadRaySetup is the overhead on Ray Tune's published setup,
// as many slots as its 16 CPUs (about 2 minutes).
func BenchmarkOverheadRaySetup(b *testing.B) {
	opts := testOptions(b)
	opts.RunTimeout = 5 * time.Minute
	for b.Loop() {
		r, err := Overhead(context.Background(), opts, 2000, 4, RayTuneSlots, time.Second)
		if err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(r.Percent, "overhead-%")
	}
}

func BenchmarkPluginWarm(b *testing.B) {
	for b.Loop() {
		r, err := Plugins(context.Background(), testOptions(b), 3, 500, 10000)
		if err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(float64(r.Cold.Microseconds()), "cold-µs")
		b.ReportMetric(float64(r.Warm.Microseconds()), "warm-µs/trial")
		b.ReportMetric(r.StreamPerSec, "reports/s")
	}
}

func BenchmarkFailover(b *testing.B) {
	for b.Loop() {
		d, err := Failover(context.Background(), testOptions(b), 0)
		if err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(d.Seconds(), "failover-s")
	}
}

func BenchmarkHeartbeats1000(b *testing.B) {
	for b.Loop() {
		r, err := Heartbeats(context.Background(), testOptions(b), 1000, 20*time.Second)
		if err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(float64(r.P99.Microseconds()), "p99-µs")
		b.ReportMetric(float64(r.FalseDead), "false-dead")
	}
}

func BenchmarkScale100k(b *testing.B) {
	for b.Loop() {
		r, err := Scale(context.Background(), testOptions(b), 100_000, 2)
		if err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(float64(r.PeakRSS>>20), "peak-RSS-MiB")
		b.ReportMetric(float64(r.Status.Milliseconds()), "status-ms")
	}
}

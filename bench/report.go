package bench

import (
	"bufio"
	"fmt"
	"image/color"
	"io"
	"os"
	"runtime"
	"strings"
	"time"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
)

// Published peer figures quoted, not measured here.
const (
	// rayTuneOverheadPct is Ray Tune's published bookkeeping overhead:
	// 10,000 one-second trials on 16 CPUs took 715 s against a 625 s
	// floor.
	rayTuneOverheadPct = 14.0
	// RayTuneSlots is the concurrency of that figure: 10,000 one-second
	// trials on 16 CPUs, one trial per CPU.
	RayTuneSlots = 16
	// rayTuneResultsPerSec is Ray Tune's published controller limit
	// with logging off.
	rayTuneResultsPerSec = 500.0
)

// WriteTable prints the report as Markdown tables.
func (r *Report) WriteTable(w io.Writer) error {
	bw := bufio.NewWriter(w)
	p := func(format string, a ...any) { fmt.Fprintf(bw, format, a...) }
	p("Machine: %s. Suite took %s%s.\n\n", r.Machine, r.Took.Round(time.Second), map[bool]string{true: " (quick mode: smoke sizes, not comparable)"}[r.Quick])

	p("### Dispatch throughput with durable state (no-op trials/s, median of %d)\n\n", len(r.Dispatch[firstKey(r.agentCounts())]))
	p("| agents / workers | asymptote | Optuna SQLite | Optuna PostgreSQL | Optuna JournalFile | × PostgreSQL (target ≥ 40) | × JournalFile (target ≥ 5) | × Ray Tune's 500 results/s |\n")
	p("|---|---|---|---|---|---|---|---|\n")
	for _, n := range r.agentCounts() {
		ours := r.medianDispatch(n)
		cell := func(storage string) (string, float64) {
			v, clean, all := r.medianOptuna(storage, n)
			switch {
			case all == 0:
				return "–", 0
			case clean == 0:
				return fmt.Sprintf("crashed (%d/%d)", all-clean, all), 0
			case clean < all:
				return fmt.Sprintf("%.0f (%d of %d runs crashed)", v, all-clean, all), v
			}
			return fmt.Sprintf("%.0f", v), v
		}
		sq, _ := cell("sqlite")
		pg, pgv := cell("postgresql")
		jf, jfv := cell("journal")
		p("| %d | **%.0f** | %s | %s | %s | %s | %s | %.1f× |\n", n, ours, sq, pg, jf, ratio(ours, pgv), ratio(ours, jfv), ours/rayTuneResultsPerSec)
	}
	stale := 0
	for _, ds := range r.Dispatch {
		for _, d := range ds {
			stale += d.Stale
		}
	}
	p("\nStale attempts (refused or lost dispatches, each retried a second later) over all asymptote runs: %d.\n", stale)
	if ns := r.agentCounts(); len(ns) > 0 && len(r.Dispatch[ns[0]]) > 0 {
		d := r.Dispatch[ns[0]][len(r.Dispatch[ns[0]])-1]
		p("\nWhere a trial's time goes (last run with %d agent(s), %.0f trials/s):\n\n| stage | p50 | p90 | p99 |\n|---|---|---|---|\n", d.Agents, d.TrialsPerSec)
		for _, s := range d.Stages {
			p("| %s | %s | %s | %s |\n", s.Name, s.P50.Round(10*time.Microsecond), s.P90.Round(10*time.Microsecond), s.P99.Round(10*time.Microsecond))
		}
	}
	if r.OptunaErr != "" {
		p("\nOptuna: %s\n", r.OptunaErr)
	}

	o := r.Overhead
	p("\n### Everything else\n\n")
	p("| measurement | asymptote | peer or target | ratio / verdict |\n|---|---|---|---|\n")
	overheadRow := func(o OverheadResult, setup string) {
		if o.Trials == 0 {
			return
		}
		p("| overhead, %d trials of %s on %d slots%s (ideal %s) | **%.2f %%** (wall %s, of which submit %s; %d stale attempts) | Ray Tune 14 %% published; target < 1 %% | %s |\n",
			o.Trials, o.Sleep, o.Slots, setup, o.Ideal, o.Percent, o.Wall.Round(10*time.Millisecond), o.Expand.Round(time.Millisecond), o.Stale, verdict(o.Percent < 1, fmt.Sprintf("%.0f× less than Ray Tune", rayTuneOverheadPct/max(o.Percent, 0.01))))
	}
	overheadRow(r.OverheadRay, ", as Ray Tune's 16 CPUs")
	overheadRow(o, "")
	s := r.Scale
	p("| %d-trial study: expand + submit | **%s** | – | – |\n", s.Trials, s.Submit.Round(time.Millisecond))
	p("| %d-trial study: run to the last result (2 agents) | **%s** (%.0f trials/s) | – | – |\n", s.Trials, s.Run.Round(100*time.Millisecond), float64(s.Trials)/max(s.Run.Seconds(), 1e-9))
	p("| %d-trial study: peak memory | **%s RSS** of the whole process (coordinator + etcd + NATS + agents); Go heap peak %s | target coordinator < 1 GiB | %s |\n",
		s.Trials, bytesStr(s.PeakRSS), bytesStr(s.PeakHeap), verdict(s.PeakRSS < 1<<30, "upper bound"))
	p("| %d-trial study: etcd database | **%s** | – | – |\n", s.Trials, bytesStr(s.EtcdDB))
	p("| %d-trial study: `status` | **%s** | target < 1 s | %s |\n", s.Trials, s.Status.Round(time.Millisecond), verdict(s.Status < time.Second, ""))
	p("| %d-trial study: `results` (every record, paged) | **%s** | – | – |\n", s.Trials, s.Results.Round(time.Millisecond))
	h := r.Swarm
	p("| %d simulated agents at 1 heartbeat/s for %s: heartbeat round trip | **p50 %s, p99 %s, max %s** (%d of %d answered) | – | – |\n",
		h.Agents, h.Duration, h.P50.Round(10*time.Microsecond), h.P99.Round(10*time.Microsecond), h.Max.Round(10*time.Microsecond), h.Answered, h.Sent)
	p("| %d simulated agents: CPU and heap | **%.2f cores** (coordinator + NATS + etcd + simulators), Go heap peak %s | – | – |\n", h.Agents, h.CPU, bytesStr(h.PeakHeap))
	p("| %d simulated agents: false dead-agent alarms | **%d** | target 0 | %s |\n", h.Agents, h.FalseDead, verdict(h.FalseDead == 0, ""))
	pl := r.Plugins
	p("| plugin cold start to first result | **%s** | go-plugin floor 6.6 ms (perf.md §4) | %.2f× the floor |\n", pl.Cold.Round(10*time.Microsecond), pl.Cold.Seconds()/0.0066)
	p("| plugin warm per-trial overhead (reused process) | **%s** | target < 2 ms | %s |\n", pl.Warm.Round(time.Microsecond), verdict(pl.Warm < 2*time.Millisecond, ""))
	p("| metric streaming, one trial reporting every step | **%.0f reports/s** | – | – |\n", pl.StreamPerSec)
	var fo []float64
	for _, d := range r.Failover {
		fo = append(fo, d.Seconds())
	}
	p("| failover: leader killed → first dispatch by the standby (default 4 s lease) | **%.2f s** (median of %d) | target < 5 s | %s |\n", median(fo), len(fo), verdict(median(fo) < 5, ""))
	if len(r.Failover3s) > 0 {
		var f3 []float64
		for _, d := range r.Failover3s {
			f3 = append(f3, d.Seconds())
		}
		p("| failover with `-lease-ttl 3s` | **%.2f s** (median of %d) | target < 5 s | %s |\n", median(f3), len(f3), verdict(median(f3) < 5, "not the default"))
	}
	return bw.Flush()
}

func firstKey(ns []int) int {
	if len(ns) == 0 {
		return 0
	}
	return ns[0]
}

func ratio(ours, peer float64) string {
	if peer <= 0 {
		return "–"
	}
	return fmt.Sprintf("%.1f×", ours/peer)
}

func verdict(ok bool, note string) string {
	s := "missed"
	if ok {
		s = "met"
	}
	if note != "" {
		s += ", " + note
	}
	return s
}

func bytesStr(b int64) string {
	switch {
	case b >= 1<<30:
		return fmt.Sprintf("%.2f GiB", float64(b)/(1<<30))
	case b >= 1<<20:
		return fmt.Sprintf("%.0f MiB", float64(b)/(1<<20))
	}
	return fmt.Sprintf("%d KiB", b>>10)
}

// Plot writes a PNG of dispatch throughput against the number of agents
// (or Optuna workers), on a log scale.
func (r *Report) Plot(path string) error {
	p := plot.New()
	p.Title.Text = "No-op trials per second with durable state"
	p.X.Label.Text = "agents (asymptote) / worker processes (Optuna)"
	p.Y.Label.Text = "trials/s (log scale)"
	p.Y.Scale = plot.LogScale{}
	p.Y.Tick.Marker = plot.LogTicks{Prec: -1}
	p.Add(plotter.NewGrid())
	p.Legend.Top = true
	p.Legend.Left = true
	series := []struct {
		name string
		c    color.RGBA
		get  func(n int) float64
	}{
		{"asymptote (etcd + NATS + plugins)", color.RGBA{R: 0x1f, G: 0x77, B: 0xb4, A: 0xff}, r.medianDispatch},
		{"Optuna JournalFile", color.RGBA{R: 0x2c, G: 0xa0, B: 0x2c, A: 0xff}, func(n int) float64 { v, _, _ := r.medianOptuna("journal", n); return v }},
		{"Optuna PostgreSQL", color.RGBA{R: 0xd6, G: 0x27, B: 0x28, A: 0xff}, func(n int) float64 { v, _, _ := r.medianOptuna("postgresql", n); return v }},
		{"Optuna SQLite", color.RGBA{R: 0xff, G: 0x7f, B: 0x0e, A: 0xff}, func(n int) float64 { v, _, _ := r.medianOptuna("sqlite", n); return v }},
	}
	for i, s := range series {
		var xys plotter.XYs
		for _, n := range r.agentCounts() {
			if v := s.get(n); v > 0 {
				xys = append(xys, plotter.XY{X: float64(n), Y: v})
			}
		}
		if len(xys) == 0 {
			continue
		}
		ln, sc, err := plotter.NewLinePoints(xys)
		if err != nil {
			return fmt.Errorf("bench: plot: %w", err)
		}
		ln.Color, sc.Color = s.c, s.c
		ln.Width = vg.Points(2)
		sc.Shape = draw.CircleGlyph{}
		if i > 0 {
			ln.Dashes = []vg.Length{vg.Points(4), vg.Points(3)}
		}
		p.Add(ln, sc)
		p.Legend.Add(s.name, ln, sc)
	}
	// Room above the highest point for the legend.
	top := 0.0
	for _, s := range series {
		for _, n := range r.agentCounts() {
			top = max(top, s.get(n))
		}
	}
	target := r.targetLine()
	for _, xy := range target {
		top = max(top, xy.Y)
	}
	if top > 0 {
		p.Y.Min, p.Y.Max = 10, top*6
	}
	if len(target) > 0 {
		ln, err := plotter.NewLine(target)
		if err == nil {
			ln.Color = color.Gray{Y: 0x80}
			ln.Dashes = []vg.Length{vg.Points(1), vg.Points(3)}
			p.Add(ln)
			p.Legend.Add("target: 40× PostgreSQL, 5× JournalFile", ln)
		}
	}
	var ticks []plot.Tick
	for _, n := range r.agentCounts() {
		ticks = append(ticks, plot.Tick{Value: float64(n), Label: fmt.Sprint(n)})
	}
	p.X.Tick.Marker = plot.ConstantTicks(ticks)
	p.X.Scale = plot.LogScale{}
	if err := p.Save(7*vg.Inch, 4.5*vg.Inch, path); err != nil {
		return fmt.Errorf("bench: plot: %w", err)
	}
	return nil
}

// targetLine is max(40 × PostgreSQL, 5 × JournalFile) per worker count.
func (r *Report) targetLine() plotter.XYs {
	var xys plotter.XYs
	for _, n := range r.agentCounts() {
		pg, _, _ := r.medianOptuna("postgresql", n)
		jf, _, _ := r.medianOptuna("journal", n)
		if t := max(40*pg, 5*jf); t > 0 {
			xys = append(xys, plotter.XY{X: float64(n), Y: t})
		}
	}
	return xys
}

func numCPU() int { return runtime.NumCPU() }

// cpuModel reads the CPU model name from /proc/cpuinfo.
func cpuModel() string {
	b, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return runtime.GOARCH
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v) + ", " + runtime.GOOS + "/" + runtime.GOARCH
		}
	}
	return runtime.GOARCH
}

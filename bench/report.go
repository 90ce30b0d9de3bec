package bench

import (
	"bufio"
	"fmt"
	"image/color"
	"io"
	"os"
	"runtime"
	"slices"
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

	if r.ran("dispatch") {
		r.writeDispatch(p)
		if r.OptunaErr != "" {
			p("\nOptuna: %s\n", r.OptunaErr)
		}
	}
	if r.ran("secure") {
		r.writeSecure(p)
	}
	if r.ran("overhead") || r.ran("scale") || r.ran("heartbeats") || r.ran("plugins") || r.ran("failover") || r.ran("api") || r.ran("history") {
		r.writeElse(p)
	}
	if r.ran("checkpoints") {
		r.writeCheckpoints(p)
	}
	return bw.Flush()
}

// writeSecure prints what TLS and identities cost dispatch.
func (r *Report) writeSecure(p func(string, ...any)) {
	p("\n### A secure cluster: TLS with client certificates and identities, against plain\n\n")
	p("| configuration | plain, trials/s (each repetition) | secure, trials/s | lost (median of the paired ratios) | goal < 10 %% |\n|---|---|---|---|---|\n")
	rates := func(xs []float64) string {
		out := make([]string, len(xs))
		for i, x := range xs {
			out[i] = fmt.Sprintf("%.0f", x)
		}
		return strings.Join(out, ", ")
	}
	for _, row := range r.Secure {
		lost := row.Lost()
		p("| %s | %s | %s | **%.1f %%** | %s |\n", row.Config, rates(row.Plain), rates(row.Secure), 100*lost, verdict(lost < 0.10, ""))
	}
}

// writeElse prints the table of everything but throughput and
// checkpoints, each row only when its section ran.
func (r *Report) writeElse(p func(string, ...any)) {
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
	if r.ran("overhead") {
		overheadRow(r.OverheadRay, ", as Ray Tune's 16 CPUs")
		overheadRow(o, "")
	}
	if r.ran("scale") {
		s := r.Scale
		p("| %d-trial study: expand + submit | **%s** | – | – |\n", s.Trials, s.Submit.Round(time.Millisecond))
		p("| %d-trial study: run to the last result (2 agents) | **%s** (%.0f trials/s) | – | – |\n", s.Trials, s.Run.Round(100*time.Millisecond), float64(s.Trials)/max(s.Run.Seconds(), 1e-9))
		p("| %d-trial study: peak memory | **%s RSS** of the whole process (coordinator + etcd + NATS + agents); Go heap peak %s | target coordinator < 1 GiB | %s |\n",
			s.Trials, bytesStr(s.PeakRSS), bytesStr(s.PeakHeap), verdict(s.PeakRSS < 1<<30, "upper bound"))
		p("| %d-trial study: etcd database | **%s** | – | – |\n", s.Trials, bytesStr(s.EtcdDB))
		p("| %d-trial study: `status` | **%s** | target < 1 s | %s |\n", s.Trials, s.Status.Round(time.Millisecond), verdict(s.Status < time.Second, ""))
		p("| %d-trial study: `results` (every record, paged) | **%s** | – | – |\n", s.Trials, s.Results.Round(time.Millisecond))
	}
	if r.ran("heartbeats") {
		h := r.Swarm
		p("| %d simulated agents at 1 heartbeat/s for %s: heartbeat round trip | **p50 %s, p99 %s, max %s** (%d of %d answered) | – | – |\n",
			h.Agents, h.Duration, h.P50.Round(10*time.Microsecond), h.P99.Round(10*time.Microsecond), h.Max.Round(10*time.Microsecond), h.Answered, h.Sent)
		p("| %d simulated agents: CPU and heap | **%.2f cores** (coordinator + NATS + etcd + simulators), Go heap peak %s | – | – |\n", h.Agents, h.CPU, bytesStr(h.PeakHeap))
		p("| %d simulated agents: false dead-agent alarms | **%d** | target 0 | %s |\n", h.Agents, h.FalseDead, verdict(h.FalseDead == 0, ""))
	}
	if r.ran("plugins") {
		pl := r.Plugins
		p("| plugin cold start to first result | **%s** | go-plugin floor 6.6 ms (perf.md §4) | %.2f× the floor |\n", pl.Cold.Round(10*time.Microsecond), pl.Cold.Seconds()/0.0066)
		p("| plugin warm per-trial overhead (reused process) | **%s** | target < 2 ms | %s |\n", pl.Warm.Round(time.Microsecond), verdict(pl.Warm < 2*time.Millisecond, ""))
		p("| metric streaming, one trial reporting every step | **%.0f reports/s** | – | – |\n", pl.StreamPerSec)
	}
	if r.ran("api") {
		a := r.API
		p("| API: %d trials as columns (the dashboard's table), first read after the server starts | **%s** (%s) | target < 2 s | %s |\n",
			a.Trials, a.ColumnsFirst.Round(time.Millisecond), bytesStr(a.ColumnsBytes), verdict(a.ColumnsFirst < 2*time.Second, ""))
		p("| API: %d trials as columns, from the server's cache | **%s** | target < 2 s | %s |\n", a.Trials, a.Columns.Round(time.Millisecond), verdict(a.Columns < 2*time.Second, ""))
		p("| API: the server's cache of %d trials | **%s** of Go heap (the growth over the first read) | – | – |\n", a.Trials, bytesStr(a.CacheHeap))
		p("| API: %d trials as CSV (the Python client's `trials()`), from the same cache | **%s** (%s) | target < 2 s | %s |\n", a.Trials, a.CSV.Round(time.Millisecond), bytesStr(a.CSVBytes), verdict(a.CSV < 2*time.Second, ""))
		p("| API: %d trials as full JSON records | **%s** (%s) | target < 2 s | %s |\n", a.Trials, a.JSON.Round(time.Millisecond), bytesStr(a.JSONBytes), verdict(a.JSON < 2*time.Second, ""))
	}
	if r.ran("history") {
		h := r.History
		per := func(d time.Duration) time.Duration { return d / time.Duration(max(h.Streamed, 1)) }
		p("| history: %d metric reports of %d values from %d trials at once, write | **%s a report** wall, %s CPU (writers + NATS; %s in all) | – | – |\n",
			h.Streamed, h.Values, h.Writers, per(h.Write).Round(time.Microsecond), per(h.CPU).Round(time.Microsecond), h.Write.Round(time.Millisecond))
		p("| history: stored size under that load (reports and their curve chunks) | **%.0f bytes a report** (%.0f a value; %s in all) | – | – |\n",
			float64(h.StreamBytes)/float64(max(h.Streamed, 1)), float64(h.StreamBytes)/float64(max(h.Streamed*h.Values, 1)), bytesStr(h.StreamBytes))
		p("| history: full histories of %d trials × %d steps through the API (columns; the stream holding the other trials' chunks only) | **%s** (%s) | target < 5 s | %s |\n",
			h.ReadTrials, h.ReadSteps, h.Read.Round(time.Millisecond), bytesStr(h.ReadBytes), verdict(h.Read < 5*time.Second, ""))
	}
	if !r.ran("failover") {
		return
	}
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
}

// writeDispatch prints the throughput tables: the two comparisons with
// Optuna, every asymptote configuration, the cost of synchronous JetStream
// writes and where a trial's time goes.
func (r *Report) writeDispatch(p func(string, ...any)) {
	same, best, syncs := r.sameConcurrency(), r.best(), r.syncCost()
	reps := 0
	for _, d := range r.Dispatch {
		reps = max(reps, d.Rep+1)
	}
	p("### Dispatch throughput with durable state (no-op trials/s, medians of %d interleaved repetition(s))\n\n", reps)
	trials := map[string]int{}
	for _, d := range r.Dispatch {
		trials["asymptote"] = d.Trials
	}
	for _, o := range r.Optuna {
		trials[o.Storage] = o.Trials
	}
	counts := fmt.Sprintf("asymptote %d trials a run", trials["asymptote"])
	if len(r.Optuna) > 0 {
		counts += fmt.Sprintf(", Optuna %d on SQLite and PostgreSQL and %d on JournalFile", max(trials["sqlite"], trials["postgresql"]), trials["journal"])
	}
	p("Each repetition runs every configuration of both systems, asymptote's run at each concurrency right before Optuna's at the same worker count; ratios are of the medians, with the range of the per-repetition ratios in brackets. Windows (in brackets after each figure) run from the submission, or the release of Optuna's workers from their barrier, to the return of the last result's commit (for asymptote, seen by an etcd watch). The trial counts are not the same on both sides (%s): each is sized for windows of about a second or more in a full run, and the windows and ratio ranges show whether that was long enough.\n\n", counts)

	p("**(a) The same concurrency:** asymptote running as many trials at once as Optuna has worker processes (k agents of one slot each, with the default queue of one more trial per slot).\n\n")
	p("| concurrency (asymptote slots = Optuna workers) | asymptote | Optuna SQLite | Optuna PostgreSQL | Optuna JournalFile | × PostgreSQL (target ≥ 40) | × JournalFile (target ≥ 5) | verdict |\n")
	p("|---|---|---|---|---|---|---|---|\n")
	for _, row := range same {
		p("| %d | %s | %s | %s | %s | %s | %s | %s |\n", row.Concurrency, oursCell(row.Asymptote),
			peerCell(row.Optuna["sqlite"]), peerCell(row.Optuna["postgresql"]), peerCell(row.Optuna["journal"]),
			ratioCell(row.Ratios["postgresql"]), ratioCell(row.Ratios["journal"]), row.Verdict)
	}

	p("\n**(b) Each system at its best configuration on this machine:** asymptote's fastest configuration of those below (JetStream synced, the default), Optuna's fastest worker count on each storage.\n\n")
	p("| peer | peer at its best | asymptote at its best | ratio | target | verdict |\n|---|---|---|---|---|---|\n")
	for _, b := range best {
		target, v := "–", "–"
		if b.Target > 0 {
			target = fmt.Sprintf("≥ %g×", b.Target)
			v = verdict(b.Met, "")
			if b.Ratio.Ratio <= 0 {
				v = "no figure"
			}
		}
		peer := "–"
		if b.Optuna.TrialsPerSec > 0 {
			peer = fmt.Sprintf("%s, %d worker(s)", peerCell(b.Optuna), b.Workers)
		}
		p("| Optuna %s | %s | %s, %s | %s | %s | %s |\n", storageNames[b.Storage], peer, oursCell(b.Asymptote), b.Config, ratioCell(b.Ratio), target, v)
	}
	if cfg, ours, _ := r.bestOurs(); ours.TrialsPerSec > 0 {
		p("| Ray Tune (published controller limit, logging off) | %.0f results/s | %s, %s | %.1f× | – | – |\n", rayTuneResultsPerSec, oursCell(ours), cfg, ours.TrialsPerSec/rayTuneResultsPerSec)
	}

	p("\nEvery asymptote configuration run (%d slots in all is its own configuration on this machine: 20 no-op trials per core):\n\n", DefaultSlots())
	p("| asymptote configuration | trials/s (median, range) | window (median) | runs | stale attempts | leader's `finished` before the commit returned (median) |\n|---|---|---|---|---|---|\n")
	for _, c := range r.configs() {
		var tps []float64
		var lf []time.Duration
		stale := 0
		for _, d := range r.Dispatch {
			if d.DispatchConfig == c {
				tps = append(tps, d.TrialsPerSec)
				lf = append(lf, d.LeaderFinished)
				stale += d.Stale
			}
		}
		f, _ := r.oursByRep(c)
		p("| %s | **%.0f** (%.0f–%.0f) | %s | %d | %d | %s |\n", c, f.TrialsPerSec, slices.Min(tps), slices.Max(tps), secondsStr(f.Seconds), len(tps), stale, median(lf).Round(10*time.Microsecond))
	}

	if len(syncs) > 0 {
		p("\nWhat synchronous JetStream writes cost (the default syncs every write before acknowledging it; the other runs flush every %s, nats-server's default; pairs run back to back, alternating which goes first):\n\n", syncs[0].Interval)
		p("| configuration | synced (default) | flushed on an interval | synced / flushed (range over pairs) | cost of syncing |\n|---|---|---|---|---|\n")
		for _, sc := range syncs {
			cost := "–"
			if sc.Ratio.Ratio > 0 {
				cost = fmt.Sprintf("%.1f %%", sc.Cost)
			}
			p("| %s | %s | %s | %s | %s |\n", sc.Config, oursCell(sc.Synced), oursCell(sc.Flushed), ratioCellPrec(sc.Ratio, 2), cost)
		}
	}

	stale := 0
	for _, d := range r.Dispatch {
		stale += d.Stale
	}
	p("\nStale attempts (refused or lost dispatches, each retried a second later) over all asymptote runs: %d.\n", stale)
	var shown []DispatchConfig
	if len(same) > 0 {
		shown = append(shown, same[0].Config)
	}
	if cfg, ours, _ := r.bestOurs(); ours.TrialsPerSec > 0 && !slices.Contains(shown, cfg) {
		shown = append(shown, cfg)
	}
	for _, cfg := range shown {
		var last *DispatchResult
		for i := range r.Dispatch {
			if r.Dispatch[i].DispatchConfig == cfg {
				last = &r.Dispatch[i]
			}
		}
		if last == nil || len(last.Stages) == 0 {
			continue
		}
		p("\nWhere a trial's time goes (last run with %s, %.0f trials/s):\n\n| stage | p50 | p90 | p99 |\n|---|---|---|---|\n", cfg, last.TrialsPerSec)
		for _, s := range last.Stages {
			p("| %s | %s | %s | %s |\n", s.Name, s.P50.Round(10*time.Microsecond), s.P90.Round(10*time.Microsecond), s.P99.Round(10*time.Microsecond))
		}
	}
}

// oursCell is an asymptote figure and its window.
func oursCell(f Figure) string {
	if f.Clean == 0 {
		return "–"
	}
	return fmt.Sprintf("**%.0f** (%s)", f.TrialsPerSec, secondsStr(f.Seconds))
}

// peerCell is an Optuna figure, its window and its crashed runs.
func peerCell(f Figure) string {
	switch {
	case f.All == 0:
		return "–"
	case f.Clean == 0:
		return fmt.Sprintf("crashed (%d/%d)", f.All, f.All)
	case f.Clean < f.All:
		return fmt.Sprintf("%.0f (%s; %d of %d runs crashed)", f.TrialsPerSec, secondsStr(f.Seconds), f.All-f.Clean, f.All)
	}
	return fmt.Sprintf("%.0f (%s)", f.TrialsPerSec, secondsStr(f.Seconds))
}

// ratioCell is a ratio of medians and its range over repetitions.
func ratioCell(q Ratio) string { return ratioCellPrec(q, 1) }

func ratioCellPrec(q Ratio, prec int) string {
	switch {
	case q.Ratio <= 0:
		return "–"
	case q.Pairs > 1:
		return fmt.Sprintf("%.*f× (%.*f–%.*f)", prec, q.Ratio, prec, q.Min, prec, q.Max)
	}
	return fmt.Sprintf("%.*f×", prec, q.Ratio)
}

func secondsStr(s float64) string {
	if s < 10 {
		return fmt.Sprintf("%.2f s", s)
	}
	return fmt.Sprintf("%.1f s", s)
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

// Plot writes a PNG of dispatch throughput against concurrency (asymptote's
// slots, Optuna's worker processes) on a log scale, with asymptote's best
// configuration as a horizontal line.
func (r *Report) Plot(path string) error {
	p := plot.New()
	p.Title.Text = "No-op trials per second with durable state"
	p.X.Label.Text = "trials at once (asymptote slots = Optuna worker processes)"
	p.Y.Label.Text = "trials/s (log scale)"
	p.Y.Scale = plot.LogScale{}
	p.Y.Tick.Marker = plot.LogTicks{Prec: -1}
	p.Add(plotter.NewGrid())
	p.Legend.Top = true
	p.Legend.Left = true
	same := r.sameConcurrency()
	peer := func(st string) func(SameConcurrencyRow) float64 {
		return func(row SameConcurrencyRow) float64 { return row.Optuna[st].TrialsPerSec }
	}
	series := []struct {
		name string
		c    color.RGBA
		get  func(SameConcurrencyRow) float64
	}{
		{"asymptote at the same concurrency (etcd + NATS + plugins)", color.RGBA{R: 0x1f, G: 0x77, B: 0xb4, A: 0xff}, func(row SameConcurrencyRow) float64 { return row.Asymptote.TrialsPerSec }},
		{"Optuna JournalFile", color.RGBA{R: 0x2c, G: 0xa0, B: 0x2c, A: 0xff}, peer("journal")},
		{"Optuna PostgreSQL", color.RGBA{R: 0xd6, G: 0x27, B: 0x28, A: 0xff}, peer("postgresql")},
		{"Optuna SQLite", color.RGBA{R: 0xff, G: 0x7f, B: 0x0e, A: 0xff}, peer("sqlite")},
	}
	top := 0.0
	for i, s := range series {
		var xys plotter.XYs
		for _, row := range same {
			if v := s.get(row); v > 0 {
				xys = append(xys, plotter.XY{X: float64(row.Concurrency), Y: v})
				top = max(top, v)
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
	if cfg, best, _ := r.bestOurs(); best.TrialsPerSec > 0 && len(same) > 0 {
		top = max(top, best.TrialsPerSec)
		lo, hi := float64(same[0].Concurrency), float64(same[len(same)-1].Concurrency)
		ln, err := plotter.NewLine(plotter.XYs{{X: lo, Y: best.TrialsPerSec}, {X: hi, Y: best.TrialsPerSec}})
		if err == nil {
			ln.Color = color.RGBA{R: 0x1f, G: 0x77, B: 0xb4, A: 0xff}
			ln.Dashes = []vg.Length{vg.Points(8), vg.Points(4)}
			p.Add(ln)
			p.Legend.Add(fmt.Sprintf("asymptote at its best (%d agent(s) × %d slots)", cfg.Agents, cfg.Slots), ln)
		}
	}
	target := r.targetLine(same)
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
			p.Legend.Add("target at the same concurrency: 40× PostgreSQL, 5× JournalFile", ln)
		}
	}
	var ticks []plot.Tick
	for _, row := range same {
		ticks = append(ticks, plot.Tick{Value: float64(row.Concurrency), Label: fmt.Sprint(row.Concurrency)})
	}
	p.X.Tick.Marker = plot.ConstantTicks(ticks)
	p.X.Scale = plot.LogScale{}
	if err := p.Save(7*vg.Inch, 4.5*vg.Inch, path); err != nil {
		return fmt.Errorf("bench: plot: %w", err)
	}
	return nil
}

// targetLine is max(40 × PostgreSQL, 5 × JournalFile) per concurrency.
func (r *Report) targetLine(same []SameConcurrencyRow) plotter.XYs {
	var xys plotter.XYs
	for _, row := range same {
		t := 0.0
		for _, tg := range dispatchTargets {
			t = max(t, tg.Times*row.Optuna[tg.Storage].TrialsPerSec)
		}
		if t > 0 {
			xys = append(xys, plotter.XY{X: float64(row.Concurrency), Y: t})
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

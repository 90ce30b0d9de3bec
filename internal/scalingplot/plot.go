// Package scalingplot draws scaling-law fits with gonum/plot: the observed
// points, the fitted curve with its bootstrap band, the asymptote and any
// crossovers, on log axes, with the curves labelled where they end so the
// plot reads without a legend. It is kept apart from package scaling so
// that the fitting code imports only the standard library and gonum.
package scalingplot

import (
	"fmt"
	"image/color"
	"math"
	"sort"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"

	"asymptote.dev/asymptote/scaling"
)

// Options label a plot.
type Options struct {
	// Title is the plot's title; empty means one derived from the law.
	Title string
	// XLabel names the scale variable (compute for the Chinchilla laws).
	XLabel string
	// Names label the fits of a crossover plot.
	Names [2]string
}

var palette = []color.RGBA{
	{R: 0x1f, G: 0x77, B: 0xb4, A: 0xff},
	{R: 0xd6, G: 0x27, B: 0x28, A: 0xff},
}

// faded is c at a quarter opacity (non-premultiplied, as color.RGBA is
// premultiplied and would shift the hue).
func faded(c color.RGBA) color.NRGBA { return color.NRGBA{R: c.R, G: c.G, B: c.B, A: 0x40} }

// xOf returns the x coordinate of an observation for fit's law: X for the
// one-dimensional laws, compute 6ND for the Chinchilla laws.
func xOf(f *scaling.Fit, o scaling.Obs) float64 {
	if f.Law == scaling.Chinchilla || f.Law == scaling.DataConstrained {
		return 6 * o.N * o.D
	}
	return o.X
}

// span returns the range to draw: the data's, widened by half a decade on
// each side to show the extrapolation.
func span(fits ...*scaling.Fit) (lo, hi float64) {
	lo, hi = math.Inf(1), math.Inf(-1)
	for _, f := range fits {
		for _, o := range f.Obs() {
			x := xOf(f, o)
			lo, hi = math.Min(lo, x), math.Max(hi, x)
		}
	}
	return lo / math.Sqrt(10), hi * math.Sqrt(10)
}

// band returns the fitted curve and, with a bootstrap, its pointwise
// percentile band on a log grid over [lo, hi].
func band(f *scaling.Fit, lo, hi float64) (curve, lower, upper plotter.XYs) {
	const n = 160
	c := scaling.CurveOf(f.Law, f.Params)
	var reps []scaling.Curve
	level := 0.95
	if b := f.Bootstrap; b != nil {
		level = b.Level
		for _, s := range b.Samples {
			if s != nil {
				reps = append(reps, scaling.CurveOf(f.Law, s))
			}
		}
	}
	vals := make([]float64, 0, len(reps))
	for i := 0; i <= n; i++ {
		x := math.Exp(math.Log(lo) + (math.Log(hi)-math.Log(lo))*float64(i)/n)
		curve = append(curve, plotter.XY{X: x, Y: c(x)})
		if len(reps) == 0 {
			continue
		}
		vals = vals[:0]
		for _, r := range reps {
			if v := r(x); v > 0 && !math.IsInf(v, 0) {
				vals = append(vals, v)
			}
		}
		sort.Float64s(vals)
		q := (1 - level) / 2
		lower = append(lower, plotter.XY{X: x, Y: pick(vals, q)})
		upper = append(upper, plotter.XY{X: x, Y: pick(vals, 1-q)})
	}
	return curve, lower, upper
}

func pick(v []float64, q float64) float64 {
	if len(v) == 0 {
		return math.NaN()
	}
	return v[int(math.Round(q*float64(len(v)-1)))]
}

func newPlot(title, xlabel string) *plot.Plot {
	p := plot.New()
	p.Title.Text = title
	p.X.Label.Text = xlabel
	p.Y.Label.Text = "loss"
	p.X.Scale = plot.LogScale{}
	p.X.Tick.Marker = inRange{plot.LogTicks{Prec: -1}}
	p.Y.Scale = plot.LogScale{}
	p.Y.Tick.Marker = ticksWithMinor{}
	p.Add(plotter.NewGrid())
	return p
}

// inRange drops ticks outside the axis range, which would otherwise pad the
// plot with room for labels that are never drawn.
type inRange struct{ plot.Ticker }

func (t inRange) Ticks(min, max float64) []plot.Tick {
	var out []plot.Tick
	for _, tk := range t.Ticker.Ticks(min, max) {
		if tk.Value >= min && tk.Value <= max {
			out = append(out, tk)
		}
	}
	return out
}

// ticksWithMinor labels a log loss axis, whose range is usually well under
// a decade, with round values.
type ticksWithMinor struct{}

func (ticksWithMinor) Ticks(min, max float64) []plot.Tick {
	return plot.DefaultTicks{}.Ticks(min, max)
}

// addBand fills the region between lower and upper (same x values) in a
// faded c.
func addBand(p *plot.Plot, lower, upper plotter.XYs, c color.RGBA) error {
	poly := append(plotter.XYs{}, lower...)
	for i := len(upper) - 1; i >= 0; i-- {
		poly = append(poly, upper[i])
	}
	pg, err := plotter.NewPolygon(poly)
	if err != nil {
		return err
	}
	pg.Color = faded(c)
	pg.LineStyle.Width = 0
	p.Add(pg)
	return nil
}

// addFit draws one fit in colour c and returns the label position.
func addFit(p *plot.Plot, f *scaling.Fit, c color.RGBA, name string, lo, hi float64, row int) error {
	curve, lower, upper := band(f, lo, hi)
	if len(lower) > 0 {
		if err := addBand(p, lower, upper, c); err != nil {
			return err
		}
	}
	var pts plotter.XYs
	for _, o := range f.Obs() {
		pts = append(pts, plotter.XY{X: xOf(f, o), Y: o.Loss})
	}
	sc, err := plotter.NewScatter(pts)
	if err != nil {
		return err
	}
	sc.GlyphStyle.Color = c
	sc.GlyphStyle.Radius = vg.Points(2.2)
	sc.GlyphStyle.Shape = draw.CircleGlyph{}
	if err := addNoiseBars(p, f, c); err != nil {
		return err
	}
	ln, err := plotter.NewLine(curve)
	if err != nil {
		return err
	}
	ln.LineStyle.Color = c
	ln.LineStyle.Width = vg.Points(1.6)
	p.Add(sc, ln)
	if f.Law == scaling.DataConstrained {
		// The frontier ignores repetition; rings show what the law
		// predicts for each run, repeats included.
		var pred plotter.XYs
		for _, o := range f.Obs() {
			pred = append(pred, plotter.XY{X: xOf(f, o), Y: f.Predict(o)})
		}
		rs, err := plotter.NewScatter(pred)
		if err != nil {
			return err
		}
		rs.GlyphStyle.Color, rs.GlyphStyle.Shape, rs.GlyphStyle.Radius = c, draw.RingGlyph{}, vg.Points(3.5)
		p.Add(rs)
	}
	// The asymptote E, dashed, labelled with its interval.
	e := f.Params[0]
	asym, err := plotter.NewLine(plotter.XYs{{X: lo, Y: e}, {X: hi, Y: e}})
	if err != nil {
		return err
	}
	asym.LineStyle.Color = c
	asym.LineStyle.Dashes = []vg.Length{vg.Points(5), vg.Points(3)}
	asym.LineStyle.Width = vg.Points(1)
	p.Add(asym)
	label := asymptoteLabel(f, name)
	// Label the fit in the top right corner, which a falling curve leaves
	// empty, and the asymptote at its left end: no legend to hunt for.
	top := curve[0].Y
	for _, q := range pts {
		top = math.Max(top, q.Y)
	}
	labels, err := plotter.NewLabels(plotter.XYLabels{
		XYs:    []plotter.XY{{X: lo, Y: e}, {X: hi, Y: top * (1 - 0.03*float64(row))}},
		Labels: []string{label, name + fitSummary(f)},
	})
	if err != nil {
		return err
	}
	for i := range labels.TextStyle {
		labels.TextStyle[i].Color = c
		labels.TextStyle[i].YAlign = draw.YBottom
	}
	labels.TextStyle[1].YAlign = draw.YTop
	labels.TextStyle[1].XAlign = draw.XRight
	labels.Offset = vg.Point{X: -vg.Points(4), Y: 0}
	p.Add(labels)
	return nil
}

// addNoiseBars draws, when f has a seed-noise model, each point's ±1σ seed
// noise as a vertical bar: the weights of a noise-weighted fit.
func addNoiseBars(p *plot.Plot, f *scaling.Fit, c color.RGBA) error {
	nz := f.Noise()
	if nz == nil {
		return nil
	}
	for _, o := range f.Obs() {
		x, sd := xOf(f, o), nz.At(o.Loss)
		bar, err := plotter.NewLine(plotter.XYs{{X: x, Y: o.Loss * math.Exp(-sd)}, {X: x, Y: o.Loss * math.Exp(sd)}})
		if err != nil {
			return err
		}
		bar.LineStyle.Color, bar.LineStyle.Width = faded(c), vg.Points(1.5)
		p.Add(bar)
	}
	return nil
}

// asymptoteLabel names the fitted asymptote with its interval, or says why
// there is none: a fit with no residual degrees of freedom is not
// identified, and its bootstrap gives NaN bounds, not an interval.
func asymptoteLabel(f *scaling.Fit, name string) string {
	label := fmt.Sprintf("%sasymptote E = %.4g", name, f.Params[0])
	b := f.Bootstrap
	switch {
	case b == nil || f.Fixed[0]:
	case b.NotIdentified || math.IsNaN(b.Intervals[0].Lo) || math.IsNaN(b.Intervals[0].Hi):
		label += " (not identified: no interval)"
	default:
		iv := b.Intervals[0]
		label += fmt.Sprintf(" (%.0f%% CI %.4g–%.4g)", b.Level*100, iv.Lo, iv.Hi)
	}
	return label
}

func fitSummary(f *scaling.Fit) string {
	var parts []string
	for j, n := range f.Names {
		if n == "E" {
			continue
		}
		parts = append(parts, fmt.Sprintf("%s=%.3g", n, f.Params[j]))
	}
	s := ""
	for i, p := range parts {
		if i > 0 {
			s += " "
		}
		s += p
	}
	return "fit: " + s
}

func xlabel(f *scaling.Fit, given string) string {
	if f.Law == scaling.Chinchilla || f.Law == scaling.DataConstrained {
		return "compute C = 6ND (FLOP)"
	}
	if given == "" {
		return "x"
	}
	return given
}

// Fit writes a plot of f to path (.png, .svg or .pdf, chosen by extension).
func Fit(path string, f *scaling.Fit, o Options) error {
	title := o.Title
	if title == "" {
		title = fmt.Sprintf("%s law, %d points", f.Law.Name(), f.N)
		switch f.Law {
		case scaling.Chinchilla:
			title += "; curve: compute-optimal frontier L*(C)"
		case scaling.DataConstrained:
			title += "; curve: frontier with unique data; rings: fit per run"
		}
		if f.Bootstrap != nil {
			title += fmt.Sprintf(", band: %.0f%% bootstrap CI", f.Bootstrap.Level*100)
		}
		if f.Noise() != nil {
			title += "; bars: ±1σ seed noise"
		}
	}
	p := newPlot(title, xlabel(f, o.XLabel))
	lo, hi := span(f)
	if err := addFit(p, f, palette[0], "", lo, hi, 0); err != nil {
		return err
	}
	return p.Save(8*vg.Inch, 5*vg.Inch, path)
}

// Crossover writes a plot of two fits and their crossings to path.
func Crossover(path string, f1, f2 *scaling.Fit, r *scaling.CrossoverResult, o Options) error {
	title := o.Title
	if title == "" {
		title = fmt.Sprintf("crossover: %d crossing(s) of the fitted curves", len(r.Roots))
		if r.Replicates > 0 {
			title += fmt.Sprintf("; P(0,1,2) = %.2f, %.2f, %.2f", r.PCount[0], r.PCount[1], r.PCount[2])
		}
	}
	p := newPlot(title, xlabel(f1, o.XLabel))
	lo, hi := span(f1, f2)
	// Show every crossing and its whole interval.
	for _, root := range r.Roots {
		lo = math.Min(lo, math.Min(root.X, root.Interval.Lo)/2)
		hi = math.Max(hi, math.Max(root.X, root.Interval.Hi)*2)
	}
	for k, f := range []*scaling.Fit{f1, f2} {
		name := o.Names[k]
		if name == "" {
			name = fmt.Sprintf("curve %d", k+1)
		}
		if err := addFit(p, f, palette[k], name+": ", lo, hi, k); err != nil {
			return err
		}
	}
	c1 := scaling.CurveOf(f1.Law, f1.Params)
	for _, root := range r.Roots {
		y := c1(root.X)
		pts := plotter.XYs{{X: root.X, Y: y}}
		sc, err := plotter.NewScatter(pts)
		if err != nil {
			return err
		}
		sc.GlyphStyle.Shape = draw.CrossGlyph{}
		sc.GlyphStyle.Radius = vg.Points(6)
		sc.GlyphStyle.Color = color.Black
		p.Add(sc)
		iv, err := plotter.NewLine(plotter.XYs{{X: root.Interval.Lo, Y: y}, {X: root.Interval.Hi, Y: y}})
		if err != nil {
			return err
		}
		iv.LineStyle.Width = vg.Points(3)
		iv.LineStyle.Color = color.Black
		p.Add(iv)
		note := fmt.Sprintf("crossing x = %.3g", root.X)
		if r.Replicates > 0 {
			note += fmt.Sprintf(" (%.3g–%.3g)", root.Interval.Lo, root.Interval.Hi)
		}
		if root.Extrapolated {
			note += " extrapolated"
		}
		if r.WithinNoise {
			note += " within noise"
		}
		lb, err := plotter.NewLabels(plotter.XYLabels{XYs: []plotter.XY{{X: root.X, Y: y}}, Labels: []string{note}})
		if err != nil {
			return err
		}
		lb.TextStyle[0].YAlign = draw.YTop
		lb.TextStyle[0].XAlign = draw.XCenter
		lb.Offset = vg.Point{Y: -vg.Points(6)}
		p.Add(lb)
	}
	return p.Save(9*vg.Inch, 5.5*vg.Inch, path)
}

// seriesPalette colours epoch series.
var seriesPalette = []color.RGBA{
	{R: 0x1f, G: 0x77, B: 0xb4, A: 0xff},
	{R: 0xd6, G: 0x27, B: 0x28, A: 0xff},
	{R: 0x2c, G: 0xa0, B: 0x2c, A: 0xff},
	{R: 0x94, G: 0x67, B: 0xbd, A: 0xff},
	{R: 0xff, G: 0x7f, B: 0x0e, A: 0xff},
	{R: 0x8c, G: 0x56, B: 0x4b, A: 0xff},
}

// Epochs writes a plot of loss against epochs for the series of r with the
// most epoch counts (at most six), each with the data-constrained law's
// prediction from fit when fit is not nil, its best epoch count ringed and
// its first degradation marked with a cross.
func Epochs(path string, r *scaling.EpochReport, fit *scaling.Fit, o Options) error {
	series := append([]scaling.EpochSeries(nil), r.Series...)
	sort.SliceStable(series, func(i, j int) bool { return len(series[i].Points) > len(series[j].Points) })
	if len(series) > len(seriesPalette) {
		series = series[:len(seriesPalette)]
	}
	title := o.Title
	if title == "" {
		title = fmt.Sprintf("loss over repeated epochs (σ_seed %.3g); ring: best, cross: degradation beyond %.3g·σ", r.Sigma, r.Z)
	}
	p := newPlot(title, "epochs over the unique tokens")
	for k, s := range series {
		c := seriesPalette[k]
		var pts plotter.XYs
		for _, q := range s.Points {
			pts = append(pts, plotter.XY{X: q.Epochs, Y: q.Loss})
		}
		sc, err := plotter.NewScatter(pts)
		if err != nil {
			return err
		}
		sc.GlyphStyle.Color, sc.GlyphStyle.Shape, sc.GlyphStyle.Radius = c, draw.CircleGlyph{}, vg.Points(2.5)
		p.Add(sc)
		last := pts[len(pts)-1]
		if fit != nil {
			lo, hi := pts[0].X, pts[len(pts)-1].X
			var curve plotter.XYs
			for i := 0; i <= 100; i++ {
				e := math.Exp(math.Log(lo) + (math.Log(hi)-math.Log(lo))*float64(i)/100)
				curve = append(curve, plotter.XY{X: e, Y: fit.Predict(scaling.Obs{N: s.N, D: s.U * e, U: s.U})})
			}
			ln, err := plotter.NewLine(curve)
			if err != nil {
				return err
			}
			ln.LineStyle.Color, ln.LineStyle.Width = c, vg.Points(1.2)
			p.Add(ln)
		}
		marks := plotter.XYs{}
		for _, q := range s.Points {
			if q.Epochs == s.Best {
				marks = append(marks, plotter.XY{X: q.Epochs, Y: q.Loss})
			}
		}
		ring, err := plotter.NewScatter(marks)
		if err != nil {
			return err
		}
		ring.GlyphStyle.Color, ring.GlyphStyle.Shape, ring.GlyphStyle.Radius = c, draw.RingGlyph{}, vg.Points(6)
		p.Add(ring)
		if s.Degrades > 0 {
			for _, q := range s.Points {
				if q.Epochs == s.Degrades {
					x, err := plotter.NewScatter(plotter.XYs{{X: q.Epochs, Y: q.Loss}})
					if err != nil {
						return err
					}
					x.GlyphStyle.Color, x.GlyphStyle.Shape, x.GlyphStyle.Radius = c, draw.CrossGlyph{}, vg.Points(7)
					p.Add(x)
				}
			}
		}
		lb, err := plotter.NewLabels(plotter.XYLabels{XYs: []plotter.XY{last},
			Labels: []string{fmt.Sprintf("N=%.3g U=%.3g", s.N, s.U)}})
		if err != nil {
			return err
		}
		lb.TextStyle[0].Color = c
		lb.TextStyle[0].XAlign = draw.XRight
		lb.TextStyle[0].YAlign = draw.YBottom
		lb.Offset = vg.Point{Y: vg.Points(4)}
		p.Add(lb)
	}
	return p.Save(9*vg.Inch, 5.5*vg.Inch, path)
}

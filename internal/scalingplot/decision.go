package scalingplot

import (
	"fmt"
	"image/color"
	"math"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"

	"asymptote.dev/asymptote/scaling"
)

// IsoFLOP writes Hoffmann et al.'s Approach 2 to path: loss against
// parameters for each budget, its fitted parabola in log N, and its
// minimum with the bootstrap interval of N_opt as a bar; refused budgets
// are drawn as hollow points without a parabola.
func IsoFLOP(path string, r *scaling.IsoFLOP, o Options) error {
	title := o.Title
	if title == "" {
		title = fmt.Sprintf("IsoFLOP profiles: N_opt = k·C^a, a = %.3f over %d of %d budgets", r.A, r.Used, len(r.Budgets))
		if r.Replicates > 0 {
			title += fmt.Sprintf(" (%.0f%% CI %.3f–%.3f)", r.Level*100, r.ACI.Lo, r.ACI.Hi)
		}
		title += "; cross: minimum"
	}
	p := newPlot(title, "parameters N")
	for k, b := range r.Budgets {
		c := seriesPalette[k%len(seriesPalette)]
		var pts plotter.XYs
		lo, hi := math.Inf(1), math.Inf(-1)
		for _, q := range b.Points {
			pts = append(pts, plotter.XY{X: q.N, Y: q.Loss})
			lo, hi = math.Min(lo, q.N), math.Max(hi, q.N)
		}
		sc, err := plotter.NewScatter(pts)
		if err != nil {
			return err
		}
		sc.GlyphStyle.Color, sc.GlyphStyle.Radius, sc.GlyphStyle.Shape = c, vg.Points(2.5), draw.CircleGlyph{}
		if b.Refused != "" {
			sc.GlyphStyle.Shape = draw.RingGlyph{}
		}
		p.Add(sc)
		label := fmt.Sprintf("C=%.2g", b.C)
		if b.Refused != "" {
			label += " refused"
		} else {
			var curve plotter.XYs
			for i := 0; i <= 60; i++ {
				n := math.Exp(math.Log(lo) + (math.Log(hi)-math.Log(lo))*float64(i)/60)
				u := math.Log(n) - b.Center
				curve = append(curve, plotter.XY{X: n, Y: b.Coef[0] + b.Coef[1]*u + b.Coef[2]*u*u})
			}
			ln, err := plotter.NewLine(curve)
			if err != nil {
				return err
			}
			ln.LineStyle.Color, ln.LineStyle.Width = c, vg.Points(1.2)
			mk, err := plotter.NewScatter(plotter.XYs{{X: b.NOpt, Y: b.LOpt}})
			if err != nil {
				return err
			}
			mk.GlyphStyle.Color, mk.GlyphStyle.Shape, mk.GlyphStyle.Radius = color.Black, draw.CrossGlyph{}, vg.Points(5)
			p.Add(ln, mk)
			if r.Replicates > 0 {
				bar, err := plotter.NewLine(plotter.XYs{{X: b.NOptCI.Lo, Y: b.LOpt}, {X: b.NOptCI.Hi, Y: b.LOpt}})
				if err != nil {
					return err
				}
				bar.LineStyle.Color, bar.LineStyle.Width = color.Black, vg.Points(2)
				p.Add(bar)
			}
		}
		lb, err := plotter.NewLabels(plotter.XYLabels{XYs: []plotter.XY{pts[len(pts)-1]}, Labels: []string{label}})
		if err != nil {
			return err
		}
		lb.TextStyle[0].Color, lb.TextStyle[0].XAlign = c, draw.XLeft
		lb.Offset = vg.Point{X: vg.Points(4)}
		p.Add(lb)
	}
	return p.Save(9*vg.Inch, 5.5*vg.Inch, path)
}

// Multiplier writes the compute multiplier of fb over fa along the scale to
// path: m(x) with its paired-bootstrap band, the gate as a dashed line when
// gate is positive, and the stretch outside the data marked as
// extrapolated.
func Multiplier(path string, fa, fb *scaling.Fit, gate float64, o Options) error {
	lo, hi := span(fa, fb)
	var xs []float64
	for i := 0; i <= 60; i++ {
		xs = append(xs, math.Exp(math.Log(lo)+(math.Log(hi)-math.Log(lo))*float64(i)/60))
	}
	m, err := scaling.ComputeMultiplier(fa, fb, scaling.MultiplierOptions{At: xs})
	if err != nil {
		return err
	}
	a, b := o.Names[0], o.Names[1]
	if a == "" {
		a, b = "first", "second"
	}
	title := o.Title
	if title == "" {
		title = fmt.Sprintf("compute multiplier: %s needs m× %s's compute for the same loss", a, b)
		if m.Replicates > 0 {
			title += fmt.Sprintf("; band: %.0f%% paired bootstrap", m.Level*100)
		}
	}
	p := plot.New()
	p.Title.Text = title
	p.X.Label.Text = xlabel(fa, o.XLabel)
	p.Y.Label.Text = "m = x / x_B"
	p.X.Scale = plot.LogScale{}
	p.X.Tick.Marker = inRange{plot.LogTicks{Prec: -1}}
	p.Add(plotter.NewGrid())
	var line, lower, upper, extra plotter.XYs
	for _, q := range m.At {
		if math.IsInf(q.M, 0) || q.M == 0 {
			continue
		}
		line = append(line, plotter.XY{X: q.X, Y: q.M})
		if m.Replicates > 0 && !math.IsInf(q.CI.Hi, 0) {
			lower, upper = append(lower, plotter.XY{X: q.X, Y: q.CI.Lo}), append(upper, plotter.XY{X: q.X, Y: q.CI.Hi})
		}
		if q.Extrapolated {
			extra = append(extra, plotter.XY{X: q.X, Y: q.M})
		}
	}
	if len(line) == 0 {
		return fmt.Errorf("the second recipe reaches the first's loss nowhere in [%g, %g]: no multiplier to draw", lo, hi)
	}
	if len(lower) > 1 {
		if err := addBand(p, lower, upper, palette[0]); err != nil {
			return err
		}
	}
	ln, err := plotter.NewLine(line)
	if err != nil {
		return err
	}
	ln.LineStyle.Color, ln.LineStyle.Width = palette[0], vg.Points(1.6)
	p.Add(ln)
	if len(extra) > 0 {
		ex, err := plotter.NewScatter(extra)
		if err != nil {
			return err
		}
		ex.GlyphStyle.Color, ex.GlyphStyle.Shape, ex.GlyphStyle.Radius = palette[1], draw.RingGlyph{}, vg.Points(2)
		lb, err := plotter.NewLabels(plotter.XYLabels{XYs: []plotter.XY{extra[len(extra)-1]}, Labels: []string{"rings: extrapolated"}})
		if err != nil {
			return err
		}
		lb.TextStyle[0].Color, lb.TextStyle[0].XAlign, lb.TextStyle[0].YAlign = palette[1], draw.XRight, draw.YBottom
		p.Add(ex, lb)
	}
	// The reference lines are labelled at opposite ends, so a gate near
	// 1 does not print over m = 1.
	for _, ref := range []struct {
		y     float64
		label string
		x     float64
		align draw.XAlignment
	}{{1, "m = 1: no difference", lo, draw.XLeft}, {gate, fmt.Sprintf("gate m = %g", gate), hi, draw.XRight}} {
		if !(ref.y > 0) {
			continue
		}
		g, err := plotter.NewLine(plotter.XYs{{X: lo, Y: ref.y}, {X: hi, Y: ref.y}})
		if err != nil {
			return err
		}
		g.LineStyle.Color, g.LineStyle.Dashes = color.Black, []vg.Length{vg.Points(5), vg.Points(3)}
		lb, err := plotter.NewLabels(plotter.XYLabels{XYs: []plotter.XY{{X: ref.x, Y: ref.y}}, Labels: []string{ref.label}})
		if err != nil {
			return err
		}
		lb.TextStyle[0].YAlign, lb.TextStyle[0].XAlign = draw.YBottom, ref.align
		p.Add(g, lb)
	}
	if last := m.At[len(m.At)-1]; last.M == 0 {
		lb, err := plotter.NewLabels(plotter.XYLabels{XYs: []plotter.XY{line[len(line)-1]},
			Labels: []string{fmt.Sprintf("beyond: %s never reaches %s's loss", b, a)}})
		if err != nil {
			return err
		}
		lb.TextStyle[0].YAlign = draw.YTop
		lb.Offset = vg.Point{X: vg.Points(4), Y: -vg.Points(10)}
		p.Add(lb)
	}
	return p.Save(9*vg.Inch, 5.5*vg.Inch, path)
}

// Envelope writes Hoffmann et al.'s Approach 1 to path: every training
// curve's loss against compute, faded, and the lower envelope at each
// budget, filled where it is fitted and hollow where it is left out (its
// minimum on the smallest or largest size reaching the budget).
func Envelope(path string, r *scaling.Envelope, o Options) error {
	title := o.Title
	if title == "" {
		title = fmt.Sprintf("lower envelope of %d training curves: N_opt = k·C^a, a = %.3f over %d budgets", len(r.Curves), r.A, r.Used)
		if r.Replicates > 0 {
			title += fmt.Sprintf(" (%.0f%% CI %.3f–%.3f)", r.Level*100, r.ACI.Lo, r.ACI.Hi)
		}
	}
	p := newPlot(title, "compute C = 6ND (FLOP)")
	for k, c := range r.Curves {
		var pts plotter.XYs
		for j := range c.C {
			pts = append(pts, plotter.XY{X: c.C[j], Y: c.Loss[j]})
		}
		ln, err := plotter.NewLine(pts)
		if err != nil {
			return err
		}
		ln.LineStyle.Color, ln.LineStyle.Width = faded(seriesPalette[k%len(seriesPalette)]), vg.Points(1.2)
		p.Add(ln)
	}
	var used, edge plotter.XYs
	for _, q := range r.Points {
		if q.Edge == "" {
			used = append(used, plotter.XY{X: q.C, Y: q.Loss})
		} else {
			edge = append(edge, plotter.XY{X: q.C, Y: q.Loss})
		}
	}
	for _, s := range []struct {
		pts   plotter.XYs
		shape draw.GlyphDrawer
	}{{used, draw.CircleGlyph{}}, {edge, draw.RingGlyph{}}} {
		if len(s.pts) == 0 {
			continue
		}
		sc, err := plotter.NewScatter(s.pts)
		if err != nil {
			return err
		}
		sc.GlyphStyle.Color, sc.GlyphStyle.Radius, sc.GlyphStyle.Shape = color.Black, vg.Points(1.8), s.shape
		p.Add(sc)
	}
	return p.Save(9*vg.Inch, 5.5*vg.Inch, path)
}

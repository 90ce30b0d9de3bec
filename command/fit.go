package command

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"math"
	"path/filepath"
	"sort"
	"strings"
	"text/tabwriter"
	"unicode"

	"asymptote.dev/asymptote/internal/scalingplot"
	"asymptote.dev/asymptote/scaling"
)

// fitCommand is `asymptote fit`.
type fitCommand struct {
	invocation
	scalingFlags
	plot, at, lrTest string
	residuals        bool
	holdout          int
	nested           bool
	identify         bool
	certainty        string
	candidates       string
}

// flags declares fit's flags.
func (cmd *fitCommand) flags() *flag.FlagSet {
	fs := newFlagSet(cmd.env, "fit", "--law LAW (--data FILE.csv | --study NAME [--spec NAME.yaml]) [flags]")
	cmd.scalingFlags.register(fs, "", "power")
	cmd.data.registerPlan(fs)
	fs.StringVar(&cmd.plot, "plot", "", "write a plot to `FILE`.png or FILE.svg (FILE-GROUP.png for each group of a study's plan)")
	fs.StringVar(&cmd.at, "at", "", "predict at `POINTS`: x values for power/ensemble, N:D (chinchilla) or N:D:U (datablations), comma-separated")
	fs.StringVar(&cmd.lrTest, "lr-test", "", "likelihood-ratio test of given parameters `NAME=VALUE,...` against the fit")
	fs.BoolVar(&cmd.residuals, "residuals", false, "print the residual table (always in json)")
	fs.IntVar(&cmd.holdout, "holdout", 0, "fit without the `K` largest-scale runs and report how well the fit predicts them")
	fs.BoolVar(&cmd.identify, "identify", false, "say which parameters the data pin down: Fisher-information directions in words, profile intervals, and the fit's sensitivity to the loss and to each point")
	fs.StringVar(&cmd.certainty, "certainty", "", "cost of certainty: the cheapest runs from --candidates that narrow a parameter's interval to a width, `NAME=WIDTH`")
	fs.StringVar(&cmd.candidates, "candidates", "", "with --certainty: the runs that may be added, `POINTS` as --at takes them (x, N:D or N:D:U), each priced at its scale (x or 6ND)")
	fs.BoolVar(&cmd.nested, "nested", false, "ensemble law: fit L(K) for each model size (--params), then a power law in N to the K → ∞ asymptotes, and report lim_N lim_K (Kim et al. 2025)")
	return fs
}

// Run runs the command.
func (cmd *fitCommand) Run(ctx context.Context) error {
	env := cmd.env
	ctx, err := cmd.parseWith(ctx, &cmd.invocation, cmd.flags())
	if err != nil {
		return err
	}
	curves, given, err := cmd.curves(ctx)
	if err != nil {
		return err
	}
	// A plan with a group has one fit per group: its JSON is a list of
	// them, whatever number of groups have results yet.
	grouped := curves[0].plan != nil && curves[0].plan.Group != ""
	var reports []any
	var tables []func(io.Writer)
	for _, c := range curves {
		rep, table, err := cmd.fitOne(ctx, c, given, grouped)
		if err != nil {
			return err
		}
		reports, tables = append(reports, rep), append(tables, table)
	}
	if cmd.format == "json" {
		if grouped {
			return writeJSON(env.Stdout, reports)
		}
		return writeJSON(env.Stdout, reports[0])
	}
	for i, print := range tables {
		if i > 0 {
			fmt.Fprintln(env.Stdout)
		}
		print(env.Stdout)
	}
	return nil
}

// curves reads the curves to fit, with --x defaulting to the law's scale
// variable, and the parameters --lr-test gives.
func (cmd *fitCommand) curves(ctx context.Context) ([]curve, map[string]float64, error) {
	df, ff := &cmd.data, &cmd.fit
	study, err := df.oneStudy()
	if err != nil {
		return nil, nil, err
	}
	if df.x == "" {
		df.x = "params"
		if law, err := scaling.LawByName(ff.law); err == nil && law == scaling.Ensemble {
			df.x = "members"
		}
	}
	given, err := parseAssignments(cmd.lrTest)
	if err != nil {
		return nil, nil, usagef("--lr-test: %v", err)
	}
	df.withParams = cmd.nested
	curves, err := df.curves(ctx, ff, df.data, study)
	return curves, given, err
}

// fitOne fits curve c, nested or not, plots it when asked, and returns
// its report and the function that prints it as a table.
func (cmd *fitCommand) fitOne(ctx context.Context, c curve, given map[string]float64, grouped bool) (any, func(io.Writer), error) {
	if cmd.nested && c.law != scaling.Ensemble {
		return nil, nil, usagef("--nested needs --law ensemble")
	}
	points, err := parsePoints(c.law, cmd.at)
	if err != nil {
		return nil, nil, usagef("--at: %v", err)
	}
	if cmd.nested {
		rep, err := nestedReport(ctx, c)
		if err != nil {
			return nil, nil, c.wrap(err)
		}
		return rep, rep.printTable, nil
	}
	fit, rep, err := fitCurve(ctx, c, points, given, cmd.holdout)
	if err != nil {
		return nil, nil, c.wrap(err)
	}
	if cmd.identify {
		id, err := scaling.Identify(ctx, fit, scaling.IdentifyOptions{Level: cmd.fit.level, Profile: true, Sensitivity: true})
		if err != nil {
			return nil, nil, c.wrap(err)
		}
		rep.Identify = newIdentifyJSON(fit, id)
	}
	if cmd.certainty != "" || cmd.candidates != "" {
		if rep.Certainty, err = cmd.costOfCertainty(fit); err != nil {
			return nil, nil, c.wrap(err)
		}
	}
	if cmd.plot != "" {
		file := cmd.plot
		if grouped {
			file = groupFile(file, c.label)
		}
		if err := scalingplot.Fit(file, fit, scalingplot.Options{XLabel: c.x}); err != nil {
			return nil, nil, fmt.Errorf("plot: %w", err)
		}
	}
	return rep, func(w io.Writer) { rep.printTable(w, cmd.residuals) }, nil
}

// fitCurve fits c, holding out its holdout largest-scale runs, and reports
// the fit with its predictions at the points at and the likelihood-ratio
// test of the parameters given.
func fitCurve(ctx context.Context, c curve, at []scaling.Obs, given map[string]float64, holdout int) (*scaling.Fit, *fitReport, error) {
	law := c.law
	obs, held := scaling.SplitLargest(law, c.obs, holdout)
	c.obs = obs
	fit, err := c.fit(ctx)
	if err != nil {
		return nil, nil, err
	}
	rep := newFitReport(fit, c.dropped)
	rep.Plan = c.plan
	for _, h := range held {
		pr := fit.PredictInterval(h)
		rep.Holdout = append(rep.Holdout, holdoutJSON{Scale: jnum(scaling.Scale(law, h)), Observed: jnum(h.Loss),
			Predicted: jnum(pr.Value), RelErrPct: jnum(100 * (pr.Value - h.Loss) / h.Loss), PI: intervalOrNil(fit, pr.Range),
			InPI: fit.Bootstrap != nil && pr.Range.Contains(h.Loss)})
	}
	for _, p := range at {
		pr := fit.PredictInterval(p)
		pj := predictionJSON{At: pointLabel(law, p), Value: jnum(pr.Value),
			CI: intervalOrNil(fit, pr.Mean), PI: intervalOrNil(fit, pr.Range)}
		if fit.Noise() != nil {
			pj.SeedPI = intervalOrNil(fit, pr.Seed)
		}
		rep.Predictions = append(rep.Predictions, pj)
	}
	if len(given) > 0 {
		t, err := scaling.LikelihoodRatio(fit, given)
		if err != nil {
			return nil, nil, fmt.Errorf("likelihood-ratio test: %w", err)
		}
		rep.LRTest = &lrJSON{LogLikFree: jnum(t.LogLikFree), LogLikGiven: jnum(t.LogLikGiven), Stat: jnum(t.Stat), DF: t.DF, P: jnum(t.P)}
		if fit.Bootstrap != nil && !fit.Bootstrap.NotIdentified {
			c, err := scaling.ChiSquare(fit, given)
			if err != nil {
				return nil, nil, fmt.Errorf("χ² test: %w", err)
			}
			rep.ChiSquare = &chiJSON{Stat: jnum(c.Stat), DF: c.DF, P: jnum(c.P)}
		}
	}
	return fit, rep, nil
}

// wrap names the curve in an error where a command fits several.
func (c *curve) wrap(err error) error {
	if c.plan != nil && c.plan.Group != "" {
		return fmt.Errorf("%s=%s: %w", c.plan.Group, c.plan.GroupValue, err)
	}
	return err
}

// groupFile is file with the group's value before its extension, so each
// group of a plan gets its own plot.
func groupFile(file, group string) string {
	ext := filepath.Ext(file)
	safe := strings.Map(func(r rune) rune {
		if r == '-' || r == '_' || r == '.' || unicode.IsLetter(r) || unicode.IsDigit(r) {
			return r
		}
		return '_'
	}, group)
	return strings.TrimSuffix(file, ext) + "-" + safe + ext
}

// nestedReport fits the nested ensemble asymptote of c.
func nestedReport(ctx context.Context, c curve) (*nestedJSON, error) {
	nest, err := scaling.NestedAsymptote(ctx, c.obs, c.opts, c.boot)
	if err != nil {
		return nil, err
	}
	level := c.boot.Level
	if level == 0 {
		level = 0.95 // scaling.Bootstrap's default
	}
	rep := &nestedJSON{Asymptote: jnum(nest.Asymptote), Outer: newFitReport(nest.Outer, 0), level: level}
	rep.Outer.Residuals = nil
	rep.Outer.Plan = c.plan
	// NaN ends mean an inner fit is not identified: no interval.
	if c.boot.Resamples > 0 && !math.IsNaN(nest.Interval.Lo) && !math.IsNaN(nest.Interval.Hi) {
		rep.CI = jivl(nest.Interval)
	}
	for k, f := range nest.PerN {
		row := nestedRow{Params: jnum(nest.Sizes[k]), Members: f.N, E: jnum(f.Params[0]), Warnings: f.Warnings}
		if f.Bootstrap != nil && !f.Bootstrap.NotIdentified {
			row.CI = jivl(f.Bootstrap.Intervals[0])
		}
		rep.PerN = append(rep.PerN, row)
	}
	return rep, nil
}

// printTable prints the nested asymptote.
func (rep *nestedJSON) printTable(w io.Writer) {
	if p := rep.Outer.Plan; p != nil {
		fmt.Fprintln(w, p.line())
	}
	fmt.Fprintln(w, "K → ∞ asymptote of L(K) = E_N + A·K^−alpha for each model size:")
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "PARAMS\tPOINTS\tE_N\tCI")
	for _, r := range rep.PerN {
		ci := "-"
		if r.CI != nil {
			ci = fmt.Sprintf("(%s, %s)", num(float64(r.CI[0])), num(float64(r.CI[1])))
		}
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\n", num(float64(r.Params)), r.Members, num(float64(r.E)), ci)
	}
	tw.Flush()
	fmt.Fprintln(w, "\nN → ∞: power law E_N = E + A·N^−alpha over the sizes:")
	outer := *rep.Outer
	outer.Plan = nil // said above
	outer.printTable(w, false)
	fmt.Fprintf(w, "\nnested asymptote lim_N lim_K L = %s", num(float64(rep.Asymptote)))
	if rep.CI != nil {
		fmt.Fprintf(w, ", %d%% CI (%s, %s) from the nested bootstrap", int(rep.level*100+0.5), num(float64(rep.CI[0])), num(float64(rep.CI[1])))
	}
	fmt.Fprintln(w)
}

type nestedJSON struct {
	PerN      []nestedRow `json:"per_size"`
	Outer     *fitReport  `json:"outer"`
	Asymptote jnum        `json:"asymptote"`
	CI        []jnum      `json:"ci,omitempty"`
	level     float64     // of CI, for the table
}

type nestedRow struct {
	Params   jnum     `json:"params"`
	Members  int      `json:"points"`
	E        jnum     `json:"E"`
	CI       []jnum   `json:"ci,omitempty"`
	Warnings []string `json:"warnings,omitempty"`
}

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// parsePoints reads --at for law.
func parsePoints(law scaling.Law, s string) ([]scaling.Obs, error) {
	var out []scaling.Obs
	if strings.TrimSpace(s) == "" {
		return nil, nil
	}
	for _, item := range strings.Split(s, ",") {
		vs, err := parseFloats(strings.ReplaceAll(item, ":", ","))
		if err != nil {
			return nil, err
		}
		want := len(law.Inputs())
		if len(vs) != want {
			return nil, fmt.Errorf("%q: law %s wants %d value(s) per point (%s)", item, law.Name(), want, strings.Join(law.Inputs(), ":"))
		}
		var o scaling.Obs
		switch law {
		case scaling.Power, scaling.Ensemble:
			o.X = vs[0]
		case scaling.Chinchilla:
			o.N, o.D = vs[0], vs[1]
		default:
			o.N, o.D, o.U = vs[0], vs[1], vs[2]
		}
		out = append(out, o)
	}
	return out, nil
}

func pointLabel(law scaling.Law, o scaling.Obs) string {
	switch law {
	case scaling.Power, scaling.Ensemble:
		return num(o.X)
	case scaling.Chinchilla:
		return num(o.N) + ":" + num(o.D)
	}
	return num(o.N) + ":" + num(o.D) + ":" + num(o.U)
}

// fitReport is the JSON form of a fit.
type fitReport struct {
	// Plan is set when a study's analysis plan chose the points and the
	// fit's settings.
	Plan        *planJSON            `json:"plan,omitempty"`
	Law         string               `json:"law"`
	Loss        string               `json:"loss"`
	N           int                  `json:"n"`
	Dropped     int                  `json:"dropped,omitempty"`
	Free        int                  `json:"free_parameters"`
	Objective   jnum                 `json:"objective"`
	Starts      int                  `json:"starts"`
	Agree       int                  `json:"agreeing_starts"`
	Statuses    map[string]int       `json:"statuses"`
	Order       []string             `json:"order"`
	Params      map[string]paramJSON `json:"params"`
	LogSigma    *jnum                `json:"log_sigma,omitempty"`
	SeedNoise   *noiseJSON           `json:"seed_noise,omitempty"`
	Bootstrap   *bootJSON            `json:"bootstrap,omitempty"`
	Goodness    goodJSON             `json:"goodness"`
	Optima      []optimumJSON        `json:"optima"`
	Warnings    []string             `json:"warnings"`
	Predictions []predictionJSON     `json:"predictions,omitempty"`
	LRTest      *lrJSON              `json:"lr_test,omitempty"`
	Holdout     []holdoutJSON        `json:"holdout,omitempty"`
	ChiSquare   *chiJSON             `json:"chi2_test,omitempty"`
	Identify    *identifyJSON        `json:"identify,omitempty"`
	Certainty   *certaintyJSON       `json:"certainty,omitempty"`
	Residuals   []residualJSON       `json:"residuals"`
}

type paramJSON struct {
	Value  jnum   `json:"value"`
	Fixed  bool   `json:"fixed,omitempty"`
	CI     []jnum `json:"ci,omitempty"`
	Median *jnum  `json:"median,omitempty"`
	SE     *jnum  `json:"se,omitempty"`
}

type bootJSON struct {
	Resamples int  `json:"resamples"`
	Level     jnum `json:"level"`
	Failed    int  `json:"failed"`
	ByRun     bool `json:"by_run"`
	// Hierarchical: the seed noise resampled by configuration in two stages.
	Hierarchical bool `json:"hierarchical,omitempty"`
	Configs      int  `json:"configurations,omitempty"`
	// NotIdentified: the fit has no residual degrees of freedom, so no
	// refit was run and no interval is given.
	NotIdentified bool `json:"not_identified,omitempty"`
}

type goodJSON struct {
	R2      jnum `json:"r2"`
	R2Log   jnum `json:"r2_log"`
	RMSE    jnum `json:"rmse"`
	RMSELog jnum `json:"rmse_log"`
	MAE     jnum `json:"mae"`
	MRE     jnum `json:"mre_pct"`
	MRELog  jnum `json:"mre_log_pct"`
	LogLik  jnum `json:"loglik"`
	AIC     jnum `json:"aic"`
	BIC     jnum `json:"bic"`
	DoF     int  `json:"dof"`
}

type optimumJSON struct {
	Objective jnum            `json:"objective"`
	Starts    int             `json:"starts"`
	Params    map[string]jnum `json:"params"`
}

type predictionJSON struct {
	At    string `json:"at"`
	Value jnum   `json:"value"`
	CI    []jnum `json:"ci"` // null when the fit is not identified
	PI    []jnum `json:"pi"`
	// SeedPI is the new-seed interval under the seed-noise model.
	SeedPI []jnum `json:"seed_pi,omitempty"`
}

// noiseJSON is the seed-noise model a fit used.
type noiseJSON struct {
	Measured bool   `json:"measured"`
	Source   string `json:"source"`
	// Pooled is the SD of log loss; PooledCI its χ² interval.
	Pooled   jnum   `json:"pooled_log_sd"`
	PooledCI []jnum `json:"pooled_ci,omitempty"`
	DoF      int    `json:"dof,omitempty"`
	Median   jnum   `json:"median_log_sd"`
	Configs  int    `json:"configurations"`
	Slope    *jnum  `json:"slope,omitempty"`
	SlopeSE  *jnum  `json:"slope_se,omitempty"`
	Trend    bool   `json:"trend"`
	// RefSD and RefLoss, with a trend, are its level: σ(L) =
	// RefSD·(L/RefLoss)^Slope.
	RefSD   *jnum `json:"ref_log_sd,omitempty"`
	RefLoss *jnum `json:"ref_loss,omitempty"`
}

func newNoiseJSON(n *scaling.Noise) *noiseJSON {
	j := &noiseJSON{Measured: n.Measured, Source: n.Source, Pooled: jnum(n.Pooled), Median: jnum(n.Median),
		Configs: len(n.Configs), DoF: n.DoF, Trend: n.Trend}
	if n.Measured {
		j.PooledCI = jivl(n.PooledCI)
		if len(n.Configs) >= 3 {
			s, se := jnum(n.Slope), jnum(n.SlopeSE)
			j.Slope, j.SlopeSE = &s, &se
		}
		if n.Trend {
			sd, l := jnum(n.RefSD), jnum(n.RefLoss)
			j.RefSD, j.RefLoss = &sd, &l
		}
	}
	return j
}

// printNoise says which seed noise the fit used and how it was used.
func (r *fitReport) printNoise(w io.Writer) {
	n := r.SeedNoise
	if n == nil {
		return
	}
	fmt.Fprintf(w, "seed noise: SD of log loss %s", num(float64(n.Pooled)))
	if n.PooledCI != nil {
		fmt.Fprintf(w, " (%s, %s)", num(float64(n.PooledCI[0])), num(float64(n.PooledCI[1])))
	}
	fmt.Fprintf(w, ", %s", n.Source)
	switch {
	case n.Trend:
		fmt.Fprintf(w, "; σ ∝ L^%s ± %s (σ = %s at L = %s), so the fit is weighted by it", num(float64(*n.Slope)), num(float64(*n.SlopeSE)), num(float64(*n.RefSD)), num(float64(*n.RefLoss)))
	case n.Slope != nil:
		fmt.Fprintf(w, "; no trend with the loss resolved (σ ∝ L^%s ± %s), so equal weights", num(float64(*n.Slope)), num(float64(*n.SlopeSE)))
	}
	fmt.Fprintln(w)
}

type chiJSON struct {
	Stat jnum `json:"stat"`
	DF   int  `json:"df"`
	P    jnum `json:"p"`
}

type holdoutJSON struct {
	Scale     jnum   `json:"scale"`
	Observed  jnum   `json:"observed"`
	Predicted jnum   `json:"predicted"`
	RelErrPct jnum   `json:"rel_err_pct"`
	PI        []jnum `json:"pi"`
	InPI      bool   `json:"in_pi"`
}

type lrJSON struct {
	LogLikFree  jnum `json:"loglik_free"`
	LogLikGiven jnum `json:"loglik_given"`
	Stat        jnum `json:"stat"`
	DF          int  `json:"df"`
	P           jnum `json:"p"`
}

type residualJSON struct {
	Index     int  `json:"index"`
	Observed  jnum `json:"observed"`
	Predicted jnum `json:"predicted"`
	Resid     jnum `json:"resid"`
	LogResid  jnum `json:"log_resid"`
}

func newFitReport(f *scaling.Fit, dropped int) *fitReport {
	r := &fitReport{Law: f.Law.Name(), Loss: f.Loss.String(), N: f.N, Dropped: dropped, Free: f.Free,
		Objective: jnum(f.Objective), Starts: f.Starts, Agree: f.Agree, Statuses: f.Statuses,
		Order: f.Names, Params: map[string]paramJSON{}, Warnings: f.Warnings}
	if r.Warnings == nil {
		r.Warnings = []string{}
	}
	for j, name := range f.Names {
		p := paramJSON{Value: jnum(f.Params[j]), Fixed: f.Fixed[j]}
		if b := f.Bootstrap; b != nil && !b.NotIdentified && !f.Fixed[j] {
			p.CI = jivl(b.Intervals[j])
			m, se := jnum(b.Median[j]), jnum(b.StdErr[j])
			p.Median, p.SE = &m, &se
		}
		r.Params[name] = p
	}
	if f.Loss.Kind == scaling.HuberLikelihood {
		ls := jnum(f.LogSigma)
		r.LogSigma = &ls
	}
	if n := f.Noise(); n != nil {
		r.SeedNoise = newNoiseJSON(n)
	}
	if b := f.Bootstrap; b != nil {
		r.Bootstrap = &bootJSON{Resamples: b.Resamples, Level: jnum(b.Level), Failed: b.Failed, ByRun: b.ByGroup,
			NotIdentified: b.NotIdentified, Hierarchical: b.Hierarchical, Configs: b.Configs}
	}
	g := f.Goodness
	r.Goodness = goodJSON{R2: jnum(g.R2), R2Log: jnum(g.R2Log), RMSE: jnum(g.RMSE), RMSELog: jnum(g.RMSELog),
		MAE: jnum(g.MAE), MRE: jnum(g.MRE), MRELog: jnum(g.MRELog), LogLik: jnum(g.LogLik), AIC: jnum(g.AIC), BIC: jnum(g.BIC), DoF: g.DoF}
	for _, o := range f.Optima {
		oj := optimumJSON{Objective: jnum(o.Objective), Starts: o.Starts, Params: map[string]jnum{}}
		for j, name := range f.Names {
			oj.Params[name] = jnum(o.Params[j])
		}
		r.Optima = append(r.Optima, oj)
	}
	for _, res := range f.Residuals {
		r.Residuals = append(r.Residuals, residualJSON{Index: res.Index, Observed: jnum(res.Observed),
			Predicted: jnum(res.Predicted), Resid: jnum(res.Resid), LogResid: jnum(res.LogResid)})
	}
	return r
}

func (r *fitReport) printTable(w io.Writer, residuals bool) {
	intervals := r.Bootstrap != nil && !r.Bootstrap.NotIdentified
	r.printHead(w)
	r.printParams(w, intervals)
	r.printQuality(w, intervals)
	r.printNoise(w)
	r.printPredictions(w, intervals)
	r.printTests(w)
	r.printIdentify(w)
	r.printCertainty(w)
	if residuals {
		r.printResiduals(w)
	}
}

// printHead says what was fitted and how the starts fared.
func (r *fitReport) printHead(w io.Writer) {
	if r.Plan != nil {
		fmt.Fprintln(w, r.Plan.line())
	}
	fmt.Fprintf(w, "law %s, loss %s, %d points", r.Law, r.Loss, r.N)
	if r.Dropped > 0 {
		fmt.Fprintf(w, " (%d highest dropped)", r.Dropped)
	}
	fmt.Fprintf(w, ", %d free parameters\n", r.Free)
	fmt.Fprintf(w, "objective %s; %d of %d starts reached it", num(float64(r.Objective)), r.Agree, r.Starts)
	if len(r.Statuses) > 0 {
		var ks []string
		for k, v := range r.Statuses {
			ks = append(ks, fmt.Sprintf("%d %s", v, k))
		}
		sort.Strings(ks)
		fmt.Fprintf(w, " (%s)", strings.Join(ks, ", "))
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w)
}

// printParams prints the parameter table, with the bootstrap's intervals
// when there are any.
func (r *fitReport) printParams(w io.Writer, intervals bool) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	head := "PARAM\tVALUE"
	if intervals {
		head += fmt.Sprintf("\t%d%% CI\tMEDIAN\tSE", int(float64(r.Bootstrap.Level)*100+0.5))
	}
	fmt.Fprintln(tw, head)
	for _, name := range r.Order {
		p := r.Params[name]
		line := name + "\t" + num(float64(p.Value))
		if p.Fixed {
			line += " (fixed)"
		}
		if intervals && p.CI != nil {
			line += fmt.Sprintf("\t(%s, %s)\t%s\t%s", num(float64(p.CI[0])), num(float64(p.CI[1])), num(float64(*p.Median)), num(float64(*p.SE)))
		}
		fmt.Fprintln(tw, line)
	}
	if r.LogSigma != nil {
		fmt.Fprintf(tw, "log_sigma\t%s\n", num(float64(*r.LogSigma)))
	}
	tw.Flush()
}

// printQuality prints the goodness of fit, the bootstrap that was run and
// the other local optima the starts reached.
func (r *fitReport) printQuality(w io.Writer, intervals bool) {
	g := r.Goodness
	fmt.Fprintf(w, "\nR² %s (log %s)  RMSE %s (log %s)  MRE %s%% (log %s%%)  AIC %s  BIC %s  dof %d\n",
		num(float64(g.R2)), num(float64(g.R2Log)), num(float64(g.RMSE)), num(float64(g.RMSELog)),
		num(float64(g.MRE)), num(float64(g.MRELog)), num(float64(g.AIC)), num(float64(g.BIC)), g.DoF)
	switch {
	case intervals:
		by := "rows"
		if r.Bootstrap.ByRun {
			by = "runs"
		}
		what := "resamples of " + by
		if r.Bootstrap.Hierarchical {
			what = fmt.Sprintf("two-stage resamples of the seed noise in %d configurations (between them, then within)", r.Bootstrap.Configs)
		}
		fmt.Fprintf(w, "bootstrap: %d %s, %d failed\n", r.Bootstrap.Resamples, what, r.Bootstrap.Failed)
	case r.Bootstrap != nil:
		fmt.Fprintln(w, "bootstrap: not run: with no residual degrees of freedom every refit would return the fit itself; no interval is given")
	}
	if len(r.Optima) > 1 {
		fmt.Fprintln(w, "\nother local optima reached:")
		for _, o := range r.Optima[1:] {
			var ps []string
			for _, name := range r.Order {
				ps = append(ps, name+"="+num(float64(o.Params[name])))
			}
			fmt.Fprintf(w, "  objective %s (%d starts): %s\n", num(float64(o.Objective)), o.Starts, strings.Join(ps, " "))
		}
	}
}

// printPredictions prints the predictions at --at and those of the
// held-out runs.
func (r *fitReport) printPredictions(w io.Writer, intervals bool) {
	if len(r.Predictions) > 0 {
		fmt.Fprintln(w)
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		head := "AT\tPREDICTED\tCURVE CI\tPREDICTION INTERVAL"
		if r.SeedNoise != nil {
			head += "\tNEW SEED"
		}
		fmt.Fprintln(tw, head)
		for _, p := range r.Predictions {
			line := fmt.Sprintf("%s\t%s\t%s\t%s", p.At, num(float64(p.Value)), ivl(p.CI), ivl(p.PI))
			if r.SeedNoise != nil {
				line += "\t" + ivl(p.SeedPI)
			}
			fmt.Fprintln(tw, line)
		}
		tw.Flush()
	}
	if len(r.Holdout) > 0 {
		fmt.Fprintf(w, "\nheld out: the %d largest-scale runs, predicted by the fit to the rest\n", len(r.Holdout))
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "SCALE\tOBSERVED\tPREDICTED\tERROR\tPREDICTION INTERVAL")
		for _, h := range r.Holdout {
			pi := "-"
			if intervals {
				pi = ivl(h.PI)
				if !h.InPI {
					pi += " missed"
				}
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s%%\t%s\n", num(float64(h.Scale)), num(float64(h.Observed)), num(float64(h.Predicted)), num(float64(h.RelErrPct)), pi)
		}
		tw.Flush()
	}
}

// printTests prints the likelihood-ratio and χ² tests and the warnings.
func (r *fitReport) printTests(w io.Writer) {
	if t := r.LRTest; t != nil {
		fmt.Fprintf(w, "\nlikelihood-ratio test: loglik %s (free) vs %s (given), LR %s, df %d, p %s\n",
			num(float64(t.LogLikFree)), num(float64(t.LogLikGiven)), num(float64(t.Stat)), t.DF, num(float64(t.P)))
	}
	if c := r.ChiSquare; c != nil {
		fmt.Fprintf(w, "χ² test with the bootstrap covariance: χ² %s, df %d, p %s\n", num(float64(c.Stat)), c.DF, num(float64(c.P)))
	}
	for _, warn := range r.Warnings {
		fmt.Fprintf(w, "\nwarning: %s", warn)
	}
	if len(r.Warnings) > 0 {
		fmt.Fprintln(w)
	}
}

// printResiduals prints the residual table.
func (r *fitReport) printResiduals(w io.Writer) {
	fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "ROW\tOBSERVED\tPREDICTED\tRESID\tLOG RESID")
	for _, res := range r.Residuals {
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\n", res.Index, num(float64(res.Observed)), num(float64(res.Predicted)), num(float64(res.Resid)), num(float64(res.LogResid)))
	}
	tw.Flush()
}

// intervalOrNil is iv for JSON, or nil when fit's bootstrap found the fit
// not identified (iv is then NaN).
func intervalOrNil(fit *scaling.Fit, iv scaling.Interval) []jnum {
	if fit.Bootstrap != nil && fit.Bootstrap.NotIdentified {
		return nil
	}
	return jivl(iv)
}

// ivl formats an interval for tables, "-" for none.
func ivl(v []jnum) string {
	if v == nil {
		return "-"
	}
	return fmt.Sprintf("(%s, %s)", num(float64(v[0])), num(float64(v[1])))
}

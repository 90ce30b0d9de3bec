package command

import (
	"bytes"
	"context"
	"encoding/csv"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"slices"
	"sort"
	"strconv"
	"strings"

	"asymptote.dev/asymptote/internal/analysis"
	"asymptote.dev/asymptote/scaling"
)

// scalingFlags are the flags fit, crossover, epochs and frontier share:
// their input, its fit, the cluster --study reads from, and the output
// format.
type scalingFlags struct {
	data   dataFlags
	fit    fitFlags
	source clientFlags // -nats-url and -timeout for --study
	format string
}

// register declares the shared flags on fs, with the default --x and
// --law of the command.
func (f *scalingFlags) register(fs *flag.FlagSet, xDefault, lawDefault string) {
	f.data.register(fs, xDefault)
	f.source.register(fs)
	f.fit.register(fs, lawDefault)
	fs.StringVar(&f.format, "format", "table", "output `FORMAT`: table or json")
}

// parseWith parses the invocation with fs, checks --format and returns ctx
// carrying the cluster --study reads from.
func (f *scalingFlags) parseWith(ctx context.Context, inv *invocation, fs *flag.FlagSet) (context.Context, error) {
	if _, err := inv.parse(fs); err != nil {
		return ctx, err
	}
	if err := checkFormat(f.format); err != nil {
		return ctx, err
	}
	return withStudySource(ctx, inv.env, &f.source), nil
}

// dataFlags select and map the input of a scaling command.
type dataFlags struct {
	data                      string
	studies                   listFlag
	x, params, tokens, unique string
	compute                   string
	loss, group               string
	dropHighest               int
	// specs and allRuns say how fit and crossover read a study: by its
	// analysis plan, from the spec it was submitted with, or every
	// succeeded trial (registerPlan).
	specs   listFlag
	allRuns bool
	// withParams also reads the parameter column for the ensemble law
	// (the nested asymptote groups by it).
	withParams bool
	// fs tells which flags were given: a flag replaces a study plan's
	// setting, and --y replaces the objective of a results CSV, only when
	// set.
	fs *flag.FlagSet
}

func (d *dataFlags) register(fs *flag.FlagSet, xDefault string) {
	d.fs = fs
	fs.StringVar(&d.data, "data", "", "CSV `FILE` with a header line; `asymptote results STUDY --format csv` output is read as it is (its succeeded trials, the objective as the loss)")
	fs.Var(&d.studies, "study", "read the results of study `NAME` from the coordinator (crossover: two, --study A --study B or --study A,B)")
	fs.StringVar(&d.x, "x", xDefault, "`COLUMN` of the scale variable of one-dimensional laws (power: params, tokens, compute; ensemble: members)")
	fs.StringVar(&d.params, "params", "params", "`COLUMN` of the parameter count N")
	fs.StringVar(&d.tokens, "tokens", "tokens", "`COLUMN` of the training tokens D")
	fs.StringVar(&d.unique, "unique-tokens", "unique_tokens", "`COLUMN` of the unique tokens U_D")
	fs.StringVar(&d.compute, "compute", "compute", "`COLUMN` of training compute in FLOP; tokens are C/(6N) when the tokens column is absent")
	fs.StringVar(&d.loss, "y", "loss", "`COLUMN` of the loss (a results CSV without one: objective)")
	fs.StringVar(&d.group, "group", "", "`COLUMN` naming the run of each row; the bootstrap resamples runs, not rows")
	fs.IntVar(&d.dropHighest, "drop-highest", 0, "drop the `K` highest losses before fitting (Besiroglu et al. drop 5)")
}

// registerPlan adds the flags with which fit and crossover read a study by
// its analysis plan.
func (d *dataFlags) registerPlan(fs *flag.FlagSet) {
	fs.Var(&d.specs, "spec", "the spec `FILE.yaml` a --study was submitted with: fit the study by its analysis plan, as status does (repeat for two studies)")
	fs.BoolVar(&d.allRuns, "all-runs", false, "with --study, fit every succeeded trial instead of the best runs its analysis plan picks")
}

func (d *dataFlags) columns() scaling.Columns {
	return scaling.Columns{X: d.x, N: d.params, D: d.tokens, U: d.unique, C: d.compute, Loss: d.loss, Group: d.group}
}

// inputs are the columns law needs.
func (d *dataFlags) inputs(law scaling.Law) []string {
	inputs := law.Inputs()
	if d.withParams && law == scaling.Ensemble {
		inputs = append(inputs, "N")
	}
	return inputs
}

// oneStudy returns the one --study of a command that reads one.
func (d *dataFlags) oneStudy() (string, error) {
	if len(d.studies) > 1 {
		return "", usagef("--study: this command reads one study, got %d (%s); crossover compares two", len(d.studies), strings.Join(d.studies, ", "))
	}
	if len(d.studies) == 1 {
		return d.studies[0], nil
	}
	return "", nil
}

// read loads the observations law needs, from --data or --study; a study
// is read from its trial records, every succeeded trial an observation.
func (d *dataFlags) read(ctx context.Context, law scaling.Law, file string) ([]scaling.Obs, int, error) {
	study, err := d.oneStudy()
	if err != nil {
		return nil, 0, err
	}
	var obs []scaling.Obs
	switch {
	case file != "" && study != "":
		return nil, 0, usagef("give --data or --study, not both")
	case file != "":
		raw, err := os.ReadFile(file)
		if err != nil {
			return nil, 0, err
		}
		if obs, err = d.readObs(raw, d.inputs(law)); err != nil {
			return nil, 0, fmt.Errorf("%s: %w", file, err)
		}
	case study != "":
		st, err := loadStudy(ctx, study)
		if err != nil {
			return nil, 0, fmt.Errorf("study %s: %w", study, err)
		}
		if obs, err = d.studyObs(st.Results.Trials, d.inputs(law)); err != nil {
			return nil, 0, fmt.Errorf("study %s: %w", study, err)
		}
	default:
		return nil, 0, usagef("want --data FILE.csv or --study NAME")
	}
	obs, dropped := dropHighest(obs, d.dropHighest)
	return obs, dropped, nil
}

// curve is one curve a scaling command fits: its observations, and the law
// and options to fit them with.
type curve struct {
	// label names the curve where a command fits several: the study, or
	// the group's value; "" for a file.
	label   string
	x       string
	obs     []scaling.Obs
	dropped int
	law     scaling.Law
	opts    scaling.Options
	boot    scaling.BootstrapOptions // Resamples 0: no bootstrap
	// plan is set when a study's analysis plan chose the points (points)
	// and the options.
	plan   *planJSON
	points []analysis.Point
}

// withNoise applies --seed-noise to the curve: the noise model measured
// from its replicates (weights, a hierarchical bootstrap) or assumed at a
// level (new-seed prediction intervals only).
func (c *curve) withNoise(mode string) error {
	var nz *scaling.Noise
	switch mode {
	case "":
		return nil
	case "measure":
		var err error
		if nz, err = scaling.SeedNoise(c.law, c.obs, c.boot.Level); err != nil {
			return usagef("--seed-noise measure: %v", err)
		}
		c.obs = nz.Weigh(c.obs, c.opts.Loss)
		c.boot.Hierarchical = true
	default:
		v, err := strconv.ParseFloat(mode, 64)
		if err != nil {
			return usagef("--seed-noise: want measure or a level on the loss such as %g, got %q", scaling.DefaultNoiseFloor, mode)
		}
		if nz, err = scaling.AssumedNoise(c.obs, v, fmt.Sprintf("assumed: %g on the loss (--seed-noise)", v)); err != nil {
			return usagef("--seed-noise: %v", err)
		}
	}
	c.opts.Noise = nz
	return nil
}

// fit fits the curve and, when it asks for one, bootstraps it.
func (c *curve) fit(ctx context.Context) (*scaling.Fit, error) {
	fit, err := scaling.FitLaw(ctx, c.law, c.obs, c.opts)
	if err != nil {
		return nil, err
	}
	if c.boot.Resamples > 0 {
		if _, err := scaling.Bootstrap(ctx, fit, c.boot); err != nil {
			return nil, err
		}
	}
	return fit, nil
}

// curves reads the curves of --data FILE (one) or of --study NAME (one, or
// one per group of its analysis plan).
func (d *dataFlags) curves(ctx context.Context, ff *fitFlags, file, study string) ([]curve, error) {
	switch {
	case file != "" && study != "":
		return nil, usagef("give --data or --study, not both")
	case study != "":
		return d.studyCurves(ctx, ff, study)
	case file == "":
		return nil, usagef("want --data FILE.csv or --study NAME")
	}
	if len(d.specs) > 0 {
		return nil, usagef("--spec gives a study's analysis plan; it needs --study NAME, not --data")
	}
	raw, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	c, err := d.flagCurve(ff, file, func(inputs []string) ([]scaling.Obs, error) { return d.readObs(raw, inputs) })
	if err != nil {
		return nil, err
	}
	return []curve{c}, nil
}

// flagCurve reads the observations of src, a file or a study, into a
// curve fitted as the flags say; read reads the columns of the law's
// inputs.
func (d *dataFlags) flagCurve(ff *fitFlags, src string, read func(inputs []string) ([]scaling.Obs, error)) (curve, error) {
	law, o, err := ff.options()
	if err != nil {
		return curve{}, err
	}
	obs, err := read(d.inputs(law))
	if err != nil {
		return curve{}, fmt.Errorf("%s: %w", src, err)
	}
	obs, dropped := dropHighest(obs, d.dropHighest)
	c := curve{x: d.x, obs: obs, dropped: dropped, law: law, opts: o, boot: ff.bootstrapOptions(ff.seed)}
	return c, c.withNoise(ff.seedNoise)
}

// A results CSV, as `asymptote results --format csv` writes it, starts its
// header with these columns.
var resultsHead = []string{"trial", "index", "state"}

// readObs reads the observations of inputs from a CSV. A study's results
// CSV is read as it is: only its succeeded trials' rows (the others have
// no objective), and its objective as the loss, unless it has a loss
// column (a metric of that name) or --y names another. Errors name the
// lines of the file.
func (d *dataFlags) readObs(raw []byte, inputs []string) ([]scaling.Obs, error) {
	cols := d.columns()
	kept, lines, header, err := succeededRows(raw)
	if err != nil {
		return nil, err
	}
	if kept == nil {
		return scaling.ReadCSVInputs(bytes.NewReader(raw), inputs, cols)
	}
	if !flagsSet(d.fs)["y"] && !slices.Contains(header, cols.Loss) {
		cols.Loss = "objective"
	}
	obs, err := scaling.ReadCSVInputs(bytes.NewReader(kept), inputs, cols)
	return obs, fileLines(err, lines)
}

// succeededRows returns the header and the succeeded trials' rows of a
// results CSV, with the file line each row starts on; kept is nil for any
// other CSV.
func succeededRows(raw []byte) (kept []byte, lines []int, header []string, err error) {
	cr := csv.NewReader(bytes.NewReader(raw))
	cr.TrimLeadingSpace = true
	header, err = cr.Read()
	if err != nil || len(header) < len(resultsHead) || !slices.Equal(header[:len(resultsHead)], resultsHead) {
		// Not a results CSV (or not one csv can read): left for
		// ReadCSVInputs to read or report.
		return nil, nil, nil, nil
	}
	state := slices.Index(header, "state")
	var buf bytes.Buffer
	w := csv.NewWriter(&buf)
	_ = w.Write(header)
	counts := map[string]int{}
	rows := 0
	for {
		rec, err := cr.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, nil, nil, err
		}
		rows++
		if rec[state] != "succeeded" {
			counts[rec[state]]++
			continue
		}
		line, _ := cr.FieldPos(0)
		lines = append(lines, line)
		_ = w.Write(rec)
	}
	w.Flush()
	if len(lines) == 0 {
		return nil, nil, nil, noSucceeded(rows, counts)
	}
	return buf.Bytes(), lines, header, nil
}

// fileLines renumbers the lines ReadCSVInputs's errors name, lines of the
// succeeded rows alone, as lines of the file.
func fileLines(err error, lines []int) error {
	if err == nil {
		return nil
	}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		errs := j.Unwrap()
		out := make([]error, len(errs))
		for i, e := range errs {
			out[i] = fileLines(e, lines)
		}
		return errors.Join(out...)
	}
	// ReadCSVInputs numbers the header 1 and the first row 2.
	if ce, ok := err.(*scaling.CSVError); ok && ce.Line >= 2 && ce.Line-2 < len(lines) {
		c := *ce
		c.Line = lines[ce.Line-2]
		return &c
	}
	return err
}

// dropHighest applies Besiroglu et al.'s rule: keep i if
// loss_i < sorted(losses)[−k], which also drops ties with the k-th highest.
func dropHighest(obs []scaling.Obs, k int) ([]scaling.Obs, int) {
	if k <= 0 || k > len(obs) {
		return obs, 0
	}
	ls := make([]float64, len(obs))
	for i, o := range obs {
		ls[i] = o.Loss
	}
	sort.Float64s(ls)
	cut := ls[len(ls)-k]
	var kept []scaling.Obs
	for _, o := range obs {
		if o.Loss < cut {
			kept = append(kept, o)
		}
	}
	return kept, len(obs) - len(kept)
}

// checkFormat validates --format for the scaling commands.
func checkFormat(f string) error {
	if f != "table" && f != "json" {
		return usagef("--format: want table or json, got %q", f)
	}
	return nil
}

// parseAssignments reads NAME=VALUE,... ("inf" allowed).
func parseAssignments(s string) (map[string]float64, error) {
	out := map[string]float64{}
	if strings.TrimSpace(s) == "" {
		return out, nil
	}
	for _, kv := range strings.Split(s, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(kv), "=")
		if !ok || k == "" {
			return nil, fmt.Errorf("%q: want NAME=VALUE", kv)
		}
		f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
		if err != nil || math.IsNaN(f) {
			return nil, fmt.Errorf("%s: %q is not a number", k, v)
		}
		out[strings.TrimSpace(k)] = f
	}
	return out, nil
}

// parseFloats reads a comma-separated list of numbers.
func parseFloats(s string) ([]float64, error) {
	var out []float64
	for _, f := range strings.Split(s, ",") {
		if strings.TrimSpace(f) == "" {
			continue
		}
		v, err := strconv.ParseFloat(strings.TrimSpace(f), 64)
		if err != nil {
			return nil, fmt.Errorf("%q is not a number", f)
		}
		out = append(out, v)
	}
	return out, nil
}

// fitFlags are the fitting options shared by the scaling commands.
type fitFlags struct {
	law, loss, fix, starts string
	// seedNoise is --seed-noise: "" (none), "measure" or a level.
	seedNoise            string
	delta, level, screen float64
	bootstrap, workers   int
	seed                 uint64
	tie                  bool
}

func (f *fitFlags) register(fs *flag.FlagSet, lawDefault string) {
	fs.StringVar(&f.law, "law", lawDefault, "`LAW`: power, chinchilla, datablations or ensemble")
	fs.StringVar(&f.loss, "loss", "huber", "objective: huber (summed, on log loss), ls (least squares, linear loss) or likelihood (Huber likelihood with free scale)")
	fs.Float64Var(&f.delta, "delta", scaling.DefaultDelta, "Huber `threshold` on log residuals")
	fs.StringVar(&f.fix, "fix", "", "hold parameters at values: `NAME=VALUE,...` (E, A, B, alpha, beta, RD_star, RN_star; inf allowed for RD_star, RN_star)")
	fs.StringVar(&f.starts, "starts", "grid", "starts: grid (Hoffmann et al.'s grid) or a `COUNT` of random starts")
	fs.IntVar(&f.bootstrap, "bootstrap", 0, "bootstrap over runs with `N` resamples for percentile intervals")
	fs.Float64Var(&f.level, "level", 0.95, "interval coverage")
	fs.Uint64Var(&f.seed, "seed", 1, "seed for random starts and resamples (for a study fitted by its plan: the plan's seed)")
	fs.IntVar(&f.workers, "workers", 0, "parallel starts and refits (default: all cores)")
	fs.BoolVar(&f.tie, "tie", false, "fit alpha = beta as one parameter")
	fs.StringVar(&f.seedNoise, "seed-noise", "", "seed noise: `measure` it from replicate runs (identical sizes; --group names runs) to weight the fit, bootstrap configurations then seeds, and give new-seed prediction intervals; or a LEVEL on the loss to assume (0.004 is the datablations median)")
	fs.Float64Var(&f.screen, "screen", 1e-5, "relative `TOLERANCE` of the screening pass over all starts; starts within twice the best objective are then converged to 1e-12 (negative: converge every start fully)")
}

func (f *fitFlags) options() (scaling.Law, scaling.Options, error) {
	law, err := scaling.LawByName(f.law)
	if err != nil {
		return nil, scaling.Options{}, &UsageError{Err: err}
	}
	loss, err := scaling.ParseLoss(f.loss, f.delta)
	if err != nil {
		return nil, scaling.Options{}, &UsageError{Err: err}
	}
	fixed, err := parseAssignments(f.fix)
	if err != nil {
		return nil, scaling.Options{}, usagef("--fix: %v", err)
	}
	o := scaling.Options{Loss: loss, Fixed: fixed, Seed: f.seed, Workers: f.workers, TieExponents: f.tie, Screen: f.screen}
	if f.starts != "grid" && f.starts != "" {
		n, err := strconv.Atoi(f.starts)
		if err != nil || n <= 0 {
			return nil, o, usagef("--starts: want grid or a positive count, got %q", f.starts)
		}
		o.RandomStarts = n
	}
	if f.level <= 0 || f.level >= 1 {
		return nil, o, usagef("--level must be in (0, 1), got %g", f.level)
	}
	return law, o, nil
}

func (f *fitFlags) bootstrapOptions(seed uint64) scaling.BootstrapOptions {
	return scaling.BootstrapOptions{Resamples: f.bootstrap, Level: f.level, Seed: seed, Workers: f.workers}
}

// fitAndBootstrap runs a fit and, when asked, its bootstrap.
func (f *fitFlags) fitAndBootstrap(ctx context.Context, law scaling.Law, o scaling.Options, obs []scaling.Obs, seed uint64) (*scaling.Fit, error) {
	fit, err := scaling.FitLaw(ctx, law, obs, o)
	if err != nil {
		return nil, err
	}
	if f.bootstrap > 0 {
		if _, err := scaling.Bootstrap(ctx, fit, f.bootstrapOptions(seed)); err != nil {
			return nil, err
		}
	}
	return fit, nil
}

// num formats a number for tables: 5 significant digits.
func num(v float64) string {
	switch {
	case math.IsInf(v, 1):
		return "inf"
	case math.IsNaN(v):
		return "-"
	}
	return strconv.FormatFloat(v, 'g', 5, 64)
}

// jnum is a float that marshals with 8 significant digits (and null for
// NaN or infinities), so reports are stable and valid JSON.
type jnum float64

// MarshalJSON writes 8 significant digits, null for NaN and infinities.
func (v jnum) MarshalJSON() ([]byte, error) {
	f := float64(v)
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return []byte("null"), nil
	}
	return []byte(strconv.FormatFloat(f, 'g', 8, 64)), nil
}

func jivl(iv scaling.Interval) []jnum { return []jnum{jnum(iv.Lo), jnum(iv.Hi)} }

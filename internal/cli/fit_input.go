package cli

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"math"
	"os"
	"sort"
	"strconv"
	"strings"

	"asymptote.dev/asymptote/scaling"
)

// loadStudyCSV, when set, returns a study's results as CSV with the
// columns the scaling commands read (params, tokens, unique_tokens,
// compute, members, loss). The coordinator wires it; until then --study
// reports that it is not available.
var loadStudyCSV func(ctx context.Context, name string) ([]byte, error)

// errStudyNotWired is returned for --study while loadStudyCSV is nil.
var errStudyNotWired = errors.New("--study needs a running coordinator (not wired yet); export the results and pass --data FILE.csv")

// dataFlags select and map the input of a scaling command.
type dataFlags struct {
	data, study               string
	x, params, tokens, unique string
	compute                   string
	loss, group               string
	dropHighest               int
	// withParams also reads the parameter column for the ensemble law
	// (the nested asymptote groups by it).
	withParams bool
}

func (d *dataFlags) register(fs *flag.FlagSet, xDefault string) {
	fs.StringVar(&d.data, "data", "", "CSV `FILE` with a header line")
	fs.StringVar(&d.study, "study", "", "read the results of study `NAME` from the coordinator")
	fs.StringVar(&d.x, "x", xDefault, "`COLUMN` of the scale variable of one-dimensional laws (power: params, tokens, compute; ensemble: members)")
	fs.StringVar(&d.params, "params", "params", "`COLUMN` of the parameter count N")
	fs.StringVar(&d.tokens, "tokens", "tokens", "`COLUMN` of the training tokens D")
	fs.StringVar(&d.unique, "unique-tokens", "unique_tokens", "`COLUMN` of the unique tokens U_D")
	fs.StringVar(&d.compute, "compute", "compute", "`COLUMN` of training compute in FLOP; tokens are C/(6N) when the tokens column is absent")
	fs.StringVar(&d.loss, "y", "loss", "`COLUMN` of the loss")
	fs.StringVar(&d.group, "group", "", "`COLUMN` naming the run of each row; the bootstrap resamples runs, not rows")
	fs.IntVar(&d.dropHighest, "drop-highest", 0, "drop the `K` highest losses before fitting (Besiroglu et al. drop 5)")
}

func (d *dataFlags) columns() scaling.Columns {
	return scaling.Columns{X: d.x, N: d.params, D: d.tokens, U: d.unique, C: d.compute, Loss: d.loss, Group: d.group}
}

// read loads the observations law needs, from --data or --study.
func (d *dataFlags) read(ctx context.Context, law scaling.Law, file string) ([]scaling.Obs, int, error) {
	var raw []byte
	var src string
	switch {
	case file != "" && d.study != "":
		return nil, 0, usagef("give --data or --study, not both")
	case file != "":
		b, err := os.ReadFile(file)
		if err != nil {
			return nil, 0, err
		}
		raw, src = b, file
	case d.study != "":
		if loadStudyCSV == nil {
			return nil, 0, errStudyNotWired
		}
		b, err := loadStudyCSV(ctx, d.study)
		if err != nil {
			return nil, 0, fmt.Errorf("study %s: %w", d.study, err)
		}
		raw, src = b, "study "+d.study
	default:
		return nil, 0, usagef("want --data FILE.csv or --study NAME")
	}
	inputs := law.Inputs()
	if d.withParams && law == scaling.Ensemble {
		inputs = append(inputs, "N")
	}
	obs, err := scaling.ReadCSVInputs(bytes.NewReader(raw), inputs, d.columns())
	if err != nil {
		return nil, 0, fmt.Errorf("%s: %w", src, err)
	}
	obs, dropped := dropHighest(obs, d.dropHighest)
	return obs, dropped, nil
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
	delta, level, screen   float64
	bootstrap, workers     int
	seed                   uint64
	tie                    bool
}

func (f *fitFlags) register(fs *flag.FlagSet, lawDefault string) {
	fs.StringVar(&f.law, "law", lawDefault, "`LAW`: power, chinchilla, datablations or ensemble")
	fs.StringVar(&f.loss, "loss", "huber", "objective: huber (summed, on log loss), ls (least squares, linear loss) or likelihood (Huber likelihood with free scale)")
	fs.Float64Var(&f.delta, "delta", scaling.DefaultDelta, "Huber `threshold` on log residuals")
	fs.StringVar(&f.fix, "fix", "", "hold parameters at values: `NAME=VALUE,...` (E, A, B, alpha, beta, RD_star, RN_star; inf allowed for RD_star, RN_star)")
	fs.StringVar(&f.starts, "starts", "grid", "starts: grid (Hoffmann et al.'s grid) or a `COUNT` of random starts")
	fs.IntVar(&f.bootstrap, "bootstrap", 0, "bootstrap over runs with `N` resamples for percentile intervals")
	fs.Float64Var(&f.level, "level", 0.95, "interval coverage")
	fs.Uint64Var(&f.seed, "seed", 1, "seed for random starts and resamples")
	fs.IntVar(&f.workers, "workers", 0, "parallel starts and refits (default: all cores)")
	fs.BoolVar(&f.tie, "tie", false, "fit alpha = beta as one parameter")
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

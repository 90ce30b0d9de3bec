package command

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"os"
	"slices"
	"strings"
	"time"

	"asymptote.dev/asymptote/internal/analysis"
	"asymptote.dev/asymptote/internal/api"
	"asymptote.dev/asymptote/internal/export"
	"asymptote.dev/asymptote/scaling"
	"asymptote.dev/asymptote/sweep"
)

// studyData is what a scaling command reads of a study.
type studyData struct {
	Name    string
	Results *api.ResultsReply
	// Analysis is the leader's current fit of the study's analysis plan;
	// that it is there says the study has a plan.
	Analysis []api.FitSummary
	// Spec is the spec the study runs, whose analysis plan fit --study
	// applies: the leader's (with the values it added), or --spec's, which
	// must have the same plan.
	Spec *sweep.Spec
}

// studySource is where a scaling command's --study reads from: the
// cluster at its -nats-url and -timeout, unless a test gave a loader.
type studySource struct {
	flags   *clientFlags
	load    func(ctx context.Context, name string) (*studyData, error)
	history func(ctx context.Context, name string, checkpoints bool) ([]byte, error)
}

// studySourceKey is the context key under which a scaling command passes
// its study source to loadStudy, which takes only a context and a study
// name.
type studySourceKey struct{}

// withStudySource returns ctx carrying the cluster --study reads from, at
// cf's -nats-url and -timeout (and env's study loader, when a test set
// one), for loadStudy. cf is read when the study is fetched, after
// parsing.
func withStudySource(ctx context.Context, env Env, cf *clientFlags) context.Context {
	return context.WithValue(ctx, studySourceKey{}, &studySource{flags: cf, load: env.loadStudy, history: env.loadHistory})
}

// loadHistory returns a study's metric history from the command's study
// source, in `results -history` csv: the records saved with a checkpoint,
// or every report when checkpoints is false.
func loadHistory(ctx context.Context, name string, checkpoints bool) ([]byte, error) {
	src, _ := ctx.Value(studySourceKey{}).(*studySource)
	if src != nil && src.history != nil {
		return src.history(ctx, name, checkpoints)
	}
	cf := &clientFlags{natsURL: defaultNATSURL, timeout: 15 * time.Second}
	if src != nil {
		cf = src.flags
	}
	c, nc, err := cf.connect(Env{})
	if err != nil {
		return nil, err
	}
	defer nc.Close()
	rows, err := readHistory(ctx, c, nc, name, nil, checkpoints)
	if err != nil {
		return nil, err
	}
	var b bytes.Buffer
	if err := export.HistoryCSV(&b, rows); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

// loadStudy returns the study name from the command's study source.
func loadStudy(ctx context.Context, name string) (*studyData, error) {
	if src, ok := ctx.Value(studySourceKey{}).(*studySource); ok && src.load != nil {
		return src.load(ctx, name)
	}
	return fetchStudy(ctx, name)
}

// fetchStudy returns a study's trials and the leader's fit of its
// analysis plan, from the coordinator at the command's -nats-url (or
// ASYMPTOTE_NATS_URL; default nats://127.0.0.1:4222).
func fetchStudy(ctx context.Context, name string) (*studyData, error) {
	cf := &clientFlags{natsURL: defaultNATSURL, timeout: 15 * time.Second}
	if src, ok := ctx.Value(studySourceKey{}).(*studySource); ok {
		cf = src.flags
	}
	c, nc, err := cf.connect(Env{})
	if err != nil {
		return nil, err
	}
	defer nc.Close()
	r, err := c.Results(ctx, name)
	if err != nil {
		return nil, err
	}
	st, err := c.Status(ctx, name)
	if err != nil {
		return nil, err
	}
	d := &studyData{Name: name, Results: r}
	for _, s := range st.Studies {
		if s.Name == name {
			d.Analysis = s.Analysis
		}
	}
	if r.Spec != "" {
		spec, err := sweep.Parse(r.SpecFile, []byte(r.Spec))
		if err != nil {
			return nil, fmt.Errorf("the leader's spec of study %s does not parse here (is this asymptote older than the coordinator?): %w", name, err)
		}
		// The values the leader added past a grid's edge belong to the
		// study, as they do in its refit.
		for _, x := range r.Extensions {
			if next, err := spec.Extend(x.Axis, x.Value); err == nil {
				spec = next
			}
		}
		d.Spec = spec
	}
	return d, nil
}

// specEntry is a --spec file and the spec it holds.
type specEntry struct {
	file string
	spec *sweep.Spec
}

// readSpecs parses the --spec files, by the name of the study each
// defines, and refuses one that defines none of studies: it was meant for
// a study the command does not read.
func readSpecs(files, studies []string) (map[string]specEntry, error) {
	out := map[string]specEntry{}
	for _, f := range files {
		src, err := os.ReadFile(f)
		if err != nil {
			return nil, usagef("--spec: %v", err)
		}
		s, err := sweep.Parse(f, src)
		if err != nil {
			return nil, usagef("--spec %s: %v", f, err)
		}
		if prev, dup := out[s.Name]; dup {
			return nil, usagef("--spec: %s and %s both define study %s", prev.file, f, s.Name)
		}
		if !slices.Contains(studies, s.Name) {
			return nil, usagef("--spec %s defines study %s, which no --study names (--study %s)", f, s.Name, strings.Join(studies, ","))
		}
		out[s.Name] = specEntry{file: f, spec: s}
	}
	return out, nil
}

// checkPlan refuses a --spec whose analysis plan is not the one the leader
// fits: its fit would not be the study's.
func checkPlan(st *studyData, file string) error {
	plan := st.Spec.Analysis
	for _, s := range st.Analysis {
		if plan == nil || plan.Fit == nil {
			return usagef("--spec %s has no analysis plan, but the leader fits study %s's (%s law over %s); pass the spec %s was submitted with", file, st.Name, s.Law, s.X, st.Name)
		}
		p := plan.Fit
		if p.Law != s.Law || p.X != s.X || (p.Group == "") != (s.Group == "") {
			return usagef("--spec %s: its analysis plan fits the %s law over %s%s, but the leader fits study %s's %s law over %s%s; pass the spec %s was submitted with",
				file, p.Law, p.X, groupNote(p.Group != ""), st.Name, s.Law, s.X, groupNote(s.Group != ""), st.Name)
		}
	}
	return nil
}

func groupNote(grouped bool) string {
	if grouped {
		return " by group"
	}
	return ""
}

// planJSON says how a study's analysis plan chose a curve's points and
// fitted them, and which flags made the fit differ from the leader's.
type planJSON struct {
	Study      string   `json:"study"`
	Law        string   `json:"law"`
	X          string   `json:"x"`
	Group      string   `json:"group,omitempty"`
	GroupValue string   `json:"group_value,omitempty"`
	BestOver   []string `json:"best_over,omitempty"`
	Bootstrap  int      `json:"bootstrap"`
	Seed       int64    `json:"seed"`
	// Points is the number of best runs, Trials the succeeded trials they
	// were chosen from.
	Points int `json:"points"`
	Trials int `json:"trials"`
	// Flags are the flags given that change the fit from the leader's,
	// such as "--bootstrap 50".
	Flags []string `json:"flags,omitempty"`
}

// line describes the plan for the table output.
func (p *planJSON) line() string {
	var b strings.Builder
	fmt.Fprintf(&b, "study %s, fitted by its analysis plan: %s law over %s", p.Study, p.Law, p.X)
	if p.Group != "" {
		fmt.Fprintf(&b, " for %s=%s", p.Group, p.GroupValue)
	}
	fmt.Fprintf(&b, ", best run at each point")
	if len(p.BestOver) > 0 {
		fmt.Fprintf(&b, " over %s", strings.Join(p.BestOver, ", "))
	}
	fmt.Fprintf(&b, " (%d points from the study's %d succeeded trials), bootstrap %d, seed %d", p.Points, p.Trials, p.Bootstrap, p.Seed)
	if len(p.Flags) > 0 {
		fmt.Fprintf(&b, "\nflags that make it differ from the leader's fit: %s", strings.Join(p.Flags, " "))
	}
	return b.String()
}

// planFlags are the flags that make a plan's fit differ from the
// leader's: they replace a setting of the plan (law, x, bootstrap, seed) or
// one of the leader's fit options, or drop points.
var planFlags = []string{"law", "x", "bootstrap", "seed", "loss", "delta", "fix", "starts", "tie", "screen", "level", "drop-highest", "holdout"}

// columnFlags map the columns of a CSV; a plan reads the objective and the
// params, tokens and unique_tokens of each best run instead.
var columnFlags = []string{"y", "params", "tokens", "unique-tokens", "compute", "group"}

// planCurves are the curves of a study's analysis plan, one per group: at
// each point the best run, chosen by analysis.Points, fitted with the
// options of analysis.FitOptions and BootstrapOptions, exactly as the
// leader's refit does. Flags the command line (or the environment) set
// replace the plan's settings; set names them.
func planCurves(st *studyData, ff *fitFlags, d *dataFlags, set map[string]bool) ([]curve, error) {
	for _, name := range columnFlags {
		if set[name] {
			return nil, usagef("--%s: study %s is fitted by its analysis plan, which reads the objective and the params, tokens and unique_tokens of each best run; pass --all-runs to fit the columns of every succeeded trial instead", name, st.Name)
		}
	}
	plan := planWithFlags(*st.Spec.Analysis.Fit, ff, d, set)
	law, o, bo, err := planOptions(&plan, ff, set)
	if err != nil {
		return nil, err
	}
	var flags []string
	for _, name := range planFlags {
		if set[name] {
			flags = append(flags, "--"+name+" "+d.fs.Lookup(name).Value.String())
		}
	}
	groups, err := analysis.Points(&plan, st.Results.Trials, st.Results.Direction)
	if err != nil {
		return nil, fmt.Errorf("study %s: %w", st.Name, err)
	}
	succeeded := 0
	for _, t := range st.Results.Trials {
		if t.State == sweep.Succeeded {
			succeeded++
		}
	}
	if len(groups) == 0 {
		return nil, fmt.Errorf("study %s: no succeeded trials to fit yet (%d trials in all)", st.Name, len(st.Results.Trials))
	}
	var out []curve
	for _, g := range analysis.GroupNames(groups) {
		obs, dropped := dropHighest(analysis.Observations(groups[g]), d.dropHighest)
		label := st.Name
		if plan.Group != "" {
			label = g
		}
		c := curve{label: label, x: plan.X, obs: obs, dropped: dropped, law: law, opts: o, boot: bo,
			plan: &planJSON{Study: st.Name, Law: plan.Law, X: plan.X, Group: plan.Group, GroupValue: g, BestOver: plan.BestOver,
				Bootstrap: plan.Bootstrap, Seed: plan.Seed, Points: len(groups[g]), Trials: succeeded, Flags: flags},
			points: groups[g]}
		if err := c.withNoise(ff.seedNoise); err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	return out, nil
}

// planWithFlags is plan with the settings the flags set replace: law, x,
// bootstrap and seed.
func planWithFlags(plan sweep.FitPlan, ff *fitFlags, d *dataFlags, set map[string]bool) sweep.FitPlan {
	if set["law"] {
		plan.Law = ff.law
	}
	if set["x"] {
		plan.X = d.x
	}
	if set["bootstrap"] {
		plan.Bootstrap = ff.bootstrap
	}
	if set["seed"] {
		// The plan's seed, as a spec gives it: the fit uses seed+1 and its
		// bootstrap seed+2, as the leader does.
		plan.Seed = int64(ff.seed)
	}
	return plan
}

// planOptions are the law of plan and the options the leader fits and
// bootstraps it with, but for the fit options the flags set.
func planOptions(plan *sweep.FitPlan, ff *fitFlags, set map[string]bool) (scaling.Law, scaling.Options, scaling.BootstrapOptions, error) {
	pf := *ff
	pf.law = plan.Law
	law, given, err := pf.options()
	if err != nil {
		return nil, scaling.Options{}, scaling.BootstrapOptions{}, err
	}
	ao := analysis.Options{Workers: ff.workers}
	o, bo := analysis.FitOptions(plan, ao), analysis.BootstrapOptions(plan, ao)
	if set["loss"] || set["delta"] {
		o.Loss = given.Loss
	}
	if set["fix"] {
		o.Fixed = given.Fixed
	}
	if set["starts"] {
		o.RandomStarts = given.RandomStarts
	}
	if set["tie"] {
		o.TieExponents = given.TieExponents
	}
	if set["screen"] {
		o.Screen = given.Screen
	}
	if set["level"] {
		bo.Level = ff.level
	}
	return law, o, bo, nil
}

// studyCurves reads the curves of a study: its analysis plan's, one per
// group, when --spec gives the plan and --all-runs is not set; otherwise
// one curve of every succeeded trial, read from its trial records.
func (d *dataFlags) studyCurves(ctx context.Context, ff *fitFlags, name string) ([]curve, error) {
	specs, err := readSpecs(d.specs, d.studies)
	if err != nil {
		return nil, err
	}
	st, err := loadStudy(ctx, name)
	if err != nil {
		return nil, fmt.Errorf("study %s: %w", name, err)
	}
	st.Name = name
	if e, ok := specs[name]; ok {
		st.Spec = e.spec
		if err := checkPlan(st, e.file); err != nil {
			return nil, err
		}
	}
	set := flagsSet(d.fs)
	hasPlan := st.Spec != nil && st.Spec.Analysis != nil && st.Spec.Analysis.Fit != nil
	switch {
	case d.allRuns:
	case hasPlan:
		return planCurves(st, ff, d, set)
	case len(st.Analysis) > 0:
		// Fitting every run here would print a fit other than the one
		// status shows, with no sign of it.
		s := st.Analysis[0]
		return nil, usagef("study %s has an analysis plan (the leader fits the %s law over %s), but its leader did not send the spec (an older coordinator): pass --spec FILE.yaml, the spec %s was submitted with, to fit it as status does, or --all-runs to fit every succeeded trial", name, s.Law, s.X, name)
	}
	c, err := d.flagCurve(ff, "study "+name, func(inputs []string) ([]scaling.Obs, error) { return d.studyObs(st.Results.Trials, inputs) })
	if err != nil {
		return nil, err
	}
	c.label = name
	return []curve{c}, nil
}

// flagsSet names the flags of fs that the command line or the
// environment set.
func flagsSet(fs *flag.FlagSet) map[string]bool {
	set := map[string]bool{}
	if fs != nil {
		fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	}
	return set
}

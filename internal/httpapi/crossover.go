package httpapi

import (
	"fmt"
	"math"
	"net/http"
	"strconv"

	"asymptote.dev/asymptote/internal/analysis"
	"asymptote.dev/asymptote/scaling"
	"asymptote.dev/asymptote/sweep"
)

// CrossoverReply says where two recipes' fitted curves cross.
type CrossoverReply struct {
	// Names are the two recipes: the studies, or the two values of one
	// study's group parameter.
	Names []string `json:"names"`
	Law   string   `json:"law"`
	X     string   `json:"x"`
	Lo    float64  `json:"lo"`
	Hi    float64  `json:"hi"`
	Roots []Root   `json:"roots"`
	// PCount is the share of paired bootstrap replicates with 0, 1, 2 and
	// 3 or more crossings; empty without a bootstrap.
	PCount      []float64 `json:"p_count,omitempty"`
	Replicates  int       `json:"replicates"`
	MaxGap      float64   `json:"max_gap"`
	WithinNoise bool      `json:"within_noise"`
	// Fits are the two recipes' fitted parameters, as in the fit endpoint.
	Fits []FitParams `json:"fits"`
}

// Root is one crossing with its bootstrap interval (absent when a fit is
// not identified or there is no bootstrap).
type Root struct {
	X            float64  `json:"x"`
	Lo           *float64 `json:"lo,omitempty"`
	Hi           *float64 `json:"hi,omitempty"`
	Extrapolated bool     `json:"extrapolated"`
}

// FitParams is one recipe's fit: its parameters by name.
type FitParams struct {
	Name   string             `json:"name"`
	Points int                `json:"points"`
	Params map[string]float64 `json:"params"`
}

// recipe is one curve to compare.
type recipe struct {
	name string
	plan sweep.FitPlan
	obs  []scaling.Obs
}

// crossover finds where two recipes cross: study=A&study=B (each fitted
// by its analysis plan), or one study whose plan has a group of two
// values; lo and hi bound the search; bootstrap= overrides the plan's
// resamples, noise= the seed-noise level.
func (s *Server) crossover(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	studies := q["study"]
	if len(studies) < 1 || len(studies) > 2 {
		return badField("study", "give one study whose analysis plan groups two recipes, or two studies (study=A&study=B); got %d", len(studies))
	}
	lo, err1 := strconv.ParseFloat(q.Get("lo"), 64)
	hi, err2 := strconv.ParseFloat(q.Get("hi"), 64)
	if err1 != nil || err2 != nil || !(lo < hi) || lo <= 0 || math.IsInf(hi, 0) {
		return badField("lo", "lo=%q, hi=%q: want the search range of the scale variable, 0 < lo < hi", q.Get("lo"), q.Get("hi"))
	}
	noise := scaling.DefaultNoiseFloor
	if v := q.Get("noise"); v != "" {
		n, err := strconv.ParseFloat(v, 64)
		if err != nil || n < 0 || math.IsNaN(n) || math.IsInf(n, 0) {
			return badField("noise", "noise=%q: want the seed-noise level of the loss, a number of at least 0", v)
		}
		noise = n
	}
	var recipes []recipe
	for _, name := range studies {
		st, err := s.loadStudy(r.Context(), name)
		if err != nil {
			return err
		}
		spec, err := sweep.Parse(st.SpecFile, []byte(st.Spec))
		if err != nil {
			return fmt.Errorf("study %s: its stored spec no longer parses: %w", name, err)
		}
		if spec.Analysis == nil || spec.Analysis.Fit == nil {
			return badField("study", "study %s has no analysis plan, so it has no law to fit; add analysis: {fit: ...} to its spec", name)
		}
		plan := *spec.Analysis.Fit
		if b := q.Get("bootstrap"); b != "" {
			n, err := intParam(q, "bootstrap", 0)
			if err != nil {
				return err
			}
			plan.Bootstrap = n
		}
		trials, err := s.loadTrials(r.Context(), name)
		if err != nil {
			return err
		}
		groups, err := analysis.Points(&plan, trials, st.Direction)
		if err != nil {
			return badField("study", "study %s: %v", name, err)
		}
		names := analysis.GroupNames(groups)
		switch {
		case len(studies) == 2 && plan.Group != "":
			return badField("study", "study %s's plan groups its trials by %s; compare its groups with study=%s alone, or two studies without groups", name, plan.Group, name)
		case len(studies) == 1 && len(names) != 2:
			return badField("study", "study %s's analysis plan has %d groups with results (%v); a crossover compares two", name, len(names), names)
		}
		for _, g := range names {
			label := g
			if plan.Group == "" {
				label = name
			}
			recipes = append(recipes, recipe{name: label, plan: plan, obs: analysis.Observations(groups[g])})
		}
	}
	if a, b := recipes[0].plan, recipes[1].plan; a.Law != b.Law || a.X != b.X {
		return badField("study", "the recipes are fitted differently (%s: %s over %s; %s: %s over %s)", recipes[0].name, a.Law, a.X, recipes[1].name, b.Law, b.X)
	}
	var fits [2]*scaling.Fit
	reply := CrossoverReply{Law: recipes[0].plan.Law, X: recipes[0].plan.X, Lo: lo, Hi: hi}
	for k, rc := range recipes {
		law, err := scaling.LawByName(rc.plan.Law)
		if err != nil {
			return badField("law", "%v", err)
		}
		if err := scaling.Validate(law, rc.obs); err != nil {
			return badField("study", "%s: %v", rc.name, err)
		}
		f, err := scaling.FitLaw(r.Context(), law, rc.obs, analysis.FitOptions(&rc.plan, analysis.Options{}))
		if err != nil {
			return badField("study", "%s: %v", rc.name, err)
		}
		if bo := analysis.BootstrapOptions(&rc.plan, analysis.Options{}); bo.Resamples > 0 {
			if _, err := scaling.Bootstrap(r.Context(), f, bo); err != nil {
				return fmt.Errorf("%s: bootstrap: %w", rc.name, err)
			}
		}
		fits[k] = f
		fp := FitParams{Name: rc.name, Points: len(rc.obs), Params: map[string]float64{}}
		for j, n := range f.Names {
			fp.Params[n] = f.Params[j]
		}
		reply.Names = append(reply.Names, rc.name)
		reply.Fits = append(reply.Fits, fp)
	}
	res, err := scaling.Crossovers(fits[0], fits[1], scaling.CrossoverOptions{Lo: lo, Hi: hi, Noise: noise})
	if err != nil {
		return badField("lo", "%v", err)
	}
	reply.Replicates, reply.MaxGap, reply.WithinNoise = res.Replicates, res.MaxGap, res.WithinNoise
	if res.Replicates > 0 {
		reply.PCount = res.PCount[:]
	}
	reply.Roots = []Root{}
	for _, root := range res.Roots {
		rt := Root{X: root.X, Extrapolated: root.Extrapolated}
		if ivl := root.Interval; res.Replicates > 0 && !math.IsNaN(ivl.Lo) && !math.IsNaN(ivl.Hi) && !math.IsInf(ivl.Lo, 0) && !math.IsInf(ivl.Hi, 0) {
			lo, hi := ivl.Lo, ivl.Hi
			rt.Lo, rt.Hi = &lo, &hi
		}
		reply.Roots = append(reply.Roots, rt)
	}
	if math.IsNaN(reply.MaxGap) || math.IsInf(reply.MaxGap, 0) {
		reply.MaxGap = 0
	}
	writeJSON(w, http.StatusOK, reply)
	return nil
}

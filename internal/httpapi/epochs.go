package httpapi

import (
	"cmp"
	"math"
	"net/http"
	"slices"
	"strconv"

	"asymptote.dev/asymptote/internal/analysis"
	"asymptote.dev/asymptote/internal/api"
	"asymptote.dev/asymptote/scaling"
	"asymptote.dev/asymptote/sweep"
)

// EpochsReply is the repeated-data analysis of a study (`asymptote
// epochs` over its results): each (params, unique tokens) series of loss
// against epochs, where it is best and where repetition starts to hurt,
// and the data-constrained law fitted to every point.
type EpochsReply struct {
	Study string `json:"study"`
	// Sigma is the seed noise degradation is measured in, SigmaSource
	// where it came from, and Z the threshold in multiples of it.
	Sigma       float64        `json:"sigma_seed"`
	SigmaSource string         `json:"sigma_source"`
	Z           float64        `json:"z"`
	Series      []EpochsSeries `json:"series"`
	// Fit is Muennighoff et al.'s data-constrained law fitted to every
	// point; FitError says why there is none.
	Fit      map[string]float64 `json:"fit,omitempty"`
	FitError string             `json:"fit_error,omitempty"`
}

// EpochsSeries is one (params, unique tokens) series: the mean loss over
// seeds at each epoch count, and the fitted law on a grid over them.
type EpochsSeries struct {
	Params       float64   `json:"params"`
	UniqueTokens float64   `json:"unique_tokens"`
	Epochs       []float64 `json:"epochs"`
	Loss         []float64 `json:"loss"`
	Seeds        []int     `json:"seeds"`
	// Best is the epoch count with the lowest loss; DegradesAt the first
	// whose loss exceeds the running minimum by more than z·σ (absent when
	// none does).
	Best       float64   `json:"best_epochs"`
	DegradesAt *float64  `json:"degrades_at,omitempty"`
	FitEpochs  []float64 `json:"fit_epochs,omitempty"`
	FitLoss    []float64 `json:"fit_loss,omitempty"`
}

// epochs analyses a study over repeated data: z= is the degradation
// threshold in seed standard deviations (default 2), noise= the seed
// noise when the study has no replicate seeds (a floor when it has).
func (s *Server) epochs(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	st, err := s.loadStudy(r.Context(), r.PathValue("study"))
	if err != nil {
		return err
	}
	var o scaling.EpochOptions
	for _, p := range []struct {
		name, want string
		v          *float64
	}{{"z", "the degradation threshold in seed standard deviations, above 0", &o.Z}, {"noise", "the seed-noise level of the loss, at least 0", &o.NoiseFloor}} {
		v := q.Get(p.name)
		if v == "" {
			continue
		}
		f, err := strconv.ParseFloat(v, 64)
		if err != nil || math.IsNaN(f) || math.IsInf(f, 0) || f < 0 || (p.name == "z" && f == 0) {
			return badField(p.name, "%s=%q: want %s", p.name, v, p.want)
		}
		*p.v = f
	}
	trials, err := s.loadTrials(r.Context(), st.Name)
	if err != nil {
		return err
	}
	obs := epochObs(trials, st.Direction)
	if len(obs) == 0 {
		return badField("study", "study %s has no succeeded trial with params, unique_tokens and tokens (or epochs) to analyse over epochs", st.Name)
	}
	rep, err := scaling.EpochAnalysis(obs, o)
	if err != nil {
		return badField("study", "study %s: %v", st.Name, err)
	}
	reply := EpochsReply{Study: st.Name, Sigma: rep.Sigma, SigmaSource: rep.SigmaSource, Z: rep.Z}
	fit, err := scaling.FitLaw(r.Context(), scaling.DataConstrained, obs, scaling.Options{Seed: 1})
	if err != nil {
		reply.FitError = err.Error()
	} else {
		reply.Fit = map[string]float64{}
		for i, n := range fit.Names {
			reply.Fit[n] = finiteOr(fit.Params[i])
		}
	}
	for _, ser := range rep.Series {
		out := EpochsSeries{Params: ser.N, UniqueTokens: ser.U, Best: ser.Best}
		for _, p := range ser.Points {
			out.Epochs, out.Loss, out.Seeds = append(out.Epochs, p.Epochs), append(out.Loss, p.Loss), append(out.Seeds, p.Seeds)
		}
		if ser.Degrades > 0 {
			d := ser.Degrades
			out.DegradesAt = &d
		}
		if fit != nil {
			lo, hi := math.Log(out.Epochs[0]), math.Log(out.Epochs[len(out.Epochs)-1])
			const n = 60
			for i := range n {
				e := math.Exp(lo + (hi-lo)*float64(i)/(n-1))
				out.FitEpochs = append(out.FitEpochs, e)
				out.FitLoss = append(out.FitLoss, finiteOr(fit.Predict(scaling.Obs{N: ser.N, D: e * ser.U, U: ser.U})))
			}
		}
		reply.Series = append(reply.Series, out)
	}
	writeJSON(w, http.StatusOK, reply)
	return nil
}

// epochObs returns one observation for each (params, tokens, unique
// tokens, seed) of the succeeded trials: the best objective over whatever
// else they vary (a tuned weight decay), so that seeds of one
// configuration are what EpochAnalysis averages. Tokens are
// epochs·unique_tokens when a trial names only its epochs.
func epochObs(trials []api.Trial, direction string) []scaling.Obs {
	type key struct {
		n, d, u float64
		seed    int64
	}
	best := map[key]float64{}
	var order []key
	for _, t := range trials {
		if t.State != sweep.Succeeded || t.Result == nil || t.Result.Objective == nil {
			continue
		}
		n, okN := analysis.Lookup(t, "params")
		u, okU := analysis.Lookup(t, "unique_tokens")
		d, okD := analysis.Lookup(t, "tokens")
		if e, ok := analysis.Lookup(t, "epochs"); !okD && ok {
			d, okD = e*u, true
		}
		if !okN || !okU || !okD || !(n > 0 && u > 0 && d > 0) {
			continue
		}
		k := key{n, d, u, t.Seed}
		obj := *t.Result.Objective
		b, seen := best[k]
		if !seen {
			order = append(order, k)
		}
		if !seen || (direction == string(sweep.Maximize) && obj > b) || (direction != string(sweep.Maximize) && obj < b) {
			best[k] = obj
		}
	}
	slices.SortFunc(order, func(a, b key) int {
		return cmp.Or(cmp.Compare(a.n, b.n), cmp.Compare(a.u, b.u), cmp.Compare(a.d, b.d), cmp.Compare(a.seed, b.seed))
	})
	obs := make([]scaling.Obs, len(order))
	for i, k := range order {
		obs[i] = scaling.Obs{N: k.n, D: k.d, U: k.u, X: k.d, Loss: best[k]}
	}
	return obs
}

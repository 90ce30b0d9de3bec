package coordinator

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math"
	"slices"

	"asymptote.dev/asymptote/internal/bus"
)

// Quota bounds what one team's studies may hold at once, and weighs the
// team's share of the cluster against other teams'.
type Quota struct {
	// CPU bounds the cores the team's running attempts reserve; zero is
	// no bound.
	CPU float64 `json:"cpu,omitempty"`
	// GPUs bounds the GPUs they reserve; zero is no bound.
	GPUs int `json:"gpus,omitempty"`
	// Trials bounds the team's running attempts; zero is no bound.
	Trials int `json:"trials,omitempty"`
	// Weight is the team's share of the cluster against other teams
	// (default 1): a team of weight 2 runs twice the attempts of a team
	// of weight 1 when both have work waiting.
	Weight float64 `json:"weight,omitempty"`
}

// weight returns the quota's weight, 1 when unset.
func (q Quota) weight() float64 {
	if q.Weight <= 0 {
		return 1
	}
	return q.Weight
}

// ParseQuotas decodes a file of team quotas, a JSON object from team
// name to Quota, and reports every problem at once with the field at
// fault.
func ParseQuotas(file string, data []byte) (map[string]Quota, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var qs map[string]Quota
	if err := dec.Decode(&qs); err != nil {
		return nil, fmt.Errorf("%s: %w; want an object such as {\"vision\": {\"cpu\": 64, \"gpus\": 8, \"trials\": 32, \"weight\": 1}}", file, err)
	}
	var errs []error
	for _, team := range slices.Sorted(maps.Keys(qs)) {
		q := qs[team]
		if err := bus.ValidTeam(team); err != nil {
			errs = append(errs, fmt.Errorf("%s: team name: %w", file, err))
		}
		for _, f := range []struct {
			name string
			v    float64
		}{{"cpu", q.CPU}, {"gpus", float64(q.GPUs)}, {"trials", float64(q.Trials)}, {"weight", q.Weight}} {
			if f.v < 0 || math.IsNaN(f.v) || math.IsInf(f.v, 0) {
				errs = append(errs, fmt.Errorf("%s: %s.%s: %v; give a positive number, or leave it out for no bound (weight: 1)", file, team, f.name, f.v))
			}
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return qs, nil
}

// teamUse is what a team's running attempts reserve.
type teamUse struct {
	cpu    float64
	gpus   int
	trials int
}

// add counts n attempts that each reserve needs.
func (u *teamUse) add(needs bus.Resources, n int) {
	u.cpu += needs.CPU * float64(n)
	u.gpus += needs.GPUCount * n
	u.trials += n
}

// quotaFull says why one more attempt reserving needs would take team
// past q with use already running, or "" when it would not.
func quotaFull(team string, q Quota, use teamUse, needs bus.Resources) string {
	switch {
	case q.Trials > 0 && use.trials+1 > q.Trials:
		return fmt.Sprintf("team %s is at its quota of %d running trials", team, q.Trials)
	case q.CPU > 0 && use.cpu+needs.CPU > q.CPU+1e-9:
		return fmt.Sprintf("team %s is at its quota of %g CPUs (%g in use, a trial needs %g)", team, q.CPU, use.cpu, needs.CPU)
	case q.GPUs > 0 && use.gpus+needs.GPUCount > q.GPUs:
		return fmt.Sprintf("team %s is at its quota of %d GPUs (%d in use, a trial needs %d)", team, q.GPUs, use.gpus, needs.GPUCount)
	}
	return ""
}

// share is a team's running attempts per unit of its weight: the team with
// the least goes next.
func share(q Quota, use teamUse) float64 { return float64(use.trials) / q.weight() }

// visible reports whether the caller may see and touch study s: a team's
// identities only their own team's studies; an operator, and an unscoped
// request (an open bus), every study.
func visible(s *study, who bus.Caller) bool {
	return !who.Scoped() || s.rec.TeamOf() == who.Team
}

// operatorOnly refuses an operator's verb from a team's identity. A
// secured bus never lets one publish it; an open one might, and the leader
// refuses it all the same.
func operatorOnly(who bus.Caller, verb string) error {
	if who.Scoped() {
		return fmt.Errorf("%s is an operator's verb: %s of team %s may not call it (an operator calls it on team %s)", verb, who.Who(), who.Team, bus.AllTeams)
	}
	return nil
}

// teamUsage returns what each team's running attempts reserve.
func (l *leaderState) teamUsage() map[string]teamUse {
	out := map[string]teamUse{}
	for _, s := range l.order {
		if s.running > 0 {
			u := out[s.rec.TeamOf()]
			u.add(s.needs, s.running)
			out[s.rec.TeamOf()] = u
		}
	}
	return out
}

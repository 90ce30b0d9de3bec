package command

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"slices"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"asymptote.dev/asymptote/internal/api"
	"asymptote.dev/asymptote/internal/export"
	"asymptote.dev/asymptote/sweep"
)

// progressLine renders one line of a study's progress.
func progressLine(s *api.StudyStatus) string {
	done := 0
	for st, n := range s.Counts {
		if sweep.State(st).Terminal() {
			done += n
		}
	}
	const width = 24
	filled := 0
	if s.Total > 0 {
		filled = done * width / s.Total
	}
	bar := strings.Repeat("#", filled) + strings.Repeat("-", width-filled)
	parts := []string{
		fmt.Sprintf("%s [%s] %d/%d done", s.Name, bar, done, s.Total),
		fmt.Sprintf("%d running", s.Counts[string(sweep.Running)]+s.Counts[string(sweep.Dispatched)]),
	}
	if s.Paused > 0 {
		parts = append(parts, fmt.Sprintf("%d paused", s.Paused))
	}
	if n := s.Counts[string(sweep.Failed)]; n > 0 {
		parts = append(parts, fmt.Sprintf("%d failed", n))
	}
	if n := s.Counts[string(sweep.Cancelled)]; n > 0 {
		parts = append(parts, fmt.Sprintf("%d cancelled", n))
	}
	if s.StaleAttempts > 0 {
		parts = append(parts, fmt.Sprintf("%d stale", s.StaleAttempts))
	}
	if s.PreemptedAttempts > 0 {
		parts = append(parts, fmt.Sprintf("%d preempted", s.PreemptedAttempts))
	}
	if n := len(s.Resuming); n > 0 {
		parts = append(parts, fmt.Sprintf("%d resumed", n))
	}
	if s.Checkpoints > 0 {
		c := fmt.Sprintf("%d checkpoints (%s", s.Checkpoints, humanBytes(s.CheckpointBytes))
		if s.CheckpointQuota > 0 {
			c += " of " + humanBytes(s.CheckpointQuota)
		}
		parts = append(parts, c+")")
	}
	if s.Rate > 0 {
		parts = append(parts, fmt.Sprintf("%.1f trials/s", s.Rate))
	}
	if s.ETA > 0 && !s.Done() {
		parts = append(parts, "ETA "+time.Duration(s.ETA).Round(time.Second).String())
	}
	if s.Best != nil && s.Best.Result != nil && s.Best.Result.Objective != nil {
		parts = append(parts, fmt.Sprintf("best %s %.5g", s.Objective, *s.Best.Result.Objective))
	}
	if f := fitLine(s.Analysis); f != "" {
		parts = append(parts, "fit "+f)
	}
	return strings.Join(parts, " · ")
}

// printProblems says why a study is quarantined, and what to do, or what
// part of its status could not be reported.
func printProblems(w io.Writer, s *api.StudyStatus) {
	if q := s.Quarantine; q != nil {
		fmt.Fprintf(w, "\n%s is quarantined (by the %s, %s): %s\n", s.Name, q.By, q.Time.Format(time.RFC3339), q.Reason)
		fmt.Fprintf(w, "  nothing of it runs or is written; every other study carries on.\n")
		fmt.Fprintf(w, "  fix the cause, then 'asymptote study resume %s'; or remove it with 'asymptote study delete %s'\n", s.Name, s.Name)
	}
	if len(s.MethodVersions) > 1 {
		fmt.Fprintf(w, "\n%s: results come from method versions %s; they may not be comparable\n", s.Name, strings.Join(s.MethodVersions, ", "))
	}
	if s.Waiting != "" {
		fmt.Fprintf(w, "\n%s: %s\n", s.Name, s.Waiting)
	}
	if s.Quota != "" {
		fmt.Fprintf(w, "\n%s: %s\n", s.Name, s.Quota)
	}
	if s.Error != "" {
		fmt.Fprintf(w, "\n%s: %s\n", s.Name, s.Error)
	}
}

func printStatus(w io.Writer, r *api.StatusReply, detail bool, now time.Time) {
	fmt.Fprintf(w, "leader: %s (since %s)\n\n", r.Leader, r.Since.Format(time.RFC3339))
	printStudies(w, r.Studies)
	for _, s := range r.Studies {
		printProblems(w, &s)
	}
	if r.Orphans > 0 {
		fmt.Fprintf(w, "\n%d trial events were kept because they could not be applied (docs/operations.md); the latest:\n", r.Orphans)
		for _, o := range r.RecentOrphans {
			fmt.Fprintf(w, "  %s/%s#%d from %s (%s): %s\n", o.Study, o.Trial, o.Attempt, o.Node, o.Outcome, o.Reason)
		}
	}
	fmt.Fprintln(w)
	printAgents(w, r.Nodes, now)
	if !detail {
		return
	}
	for _, s := range r.Studies {
		printStudyDetail(w, &s)
	}
}

// printStudies prints the table of studies and their progress.
func printStudies(w io.Writer, studies []api.StudyStatus) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "STUDY\tSTATE\tDONE\tRUNNING\tPENDING\tFAILED\tCANCELLED\tSTALE\tLATE\tRATE\tETA")
	for _, s := range studies {
		done := s.Counts["succeeded"] + s.Counts["failed"] + s.Counts["cancelled"]
		eta := "-"
		if s.ETA > 0 && !s.Done() {
			eta = time.Duration(s.ETA).Round(time.Second).String()
		}
		fmt.Fprintf(tw, "%s\t%s\t%d/%d\t%d\t%d\t%d\t%d\t%d\t%d\t%.1f/s\t%s\n", s.Name, s.State, done, s.Total,
			s.Counts["running"]+s.Counts["dispatched"], s.Counts["pending"], s.Counts["failed"], s.Counts["cancelled"],
			s.StaleAttempts, s.LateResults, s.Rate, eta)
	}
	tw.Flush()
}

// printAgents prints the table of agents, their state and free resources.
func printAgents(w io.Writer, nodes []api.NodeStatus, now time.Time) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "AGENT\tSTATE\tRUNNING\tCPU FREE\tMEMORY FREE\tGPUS\tLAST SEEN")
	for _, n := range nodes {
		seen := now.Sub(n.LastSeen).Round(time.Second).String() + " ago"
		state := string(n.State)
		if n.DeadSince != nil {
			state += " since " + n.DeadSince.Format(time.TimeOnly)
		}
		if n.Held {
			state += ", unreachable"
		}
		if n.Superseded > 0 {
			state += fmt.Sprintf(", cancelling %d", n.Superseded)
		}
		running := strconv.Itoa(n.Running)
		if n.Waiting > 0 {
			running += fmt.Sprintf(" (+%d waiting)", n.Waiting)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%.2g/%.2g\t%s/%s\t%d\t%s\n", n.ID, state, running, n.FreeCPU, n.CPU,
			humanBytes(n.FreeMemory), humanBytes(n.Memory), len(n.GPUs), seen)
	}
	tw.Flush()
}

// printStudyDetail prints what status STUDY adds for one study: its
// settings, best trial, failures, fit, budget and decisions.
func printStudyDetail(w io.Writer, s *api.StudyStatus) {
	fmt.Fprintf(w, "\n%s: method %s, objective %s (%s), priority %d, %d retries used\n", s.Name, s.Method, s.Objective, s.Direction, s.Priority, s.Retries)
	if s.Best != nil && s.Best.Result != nil && s.Best.Result.Objective != nil {
		fmt.Fprintf(w, "best: trial %s %s = %.6g with %s (seed %d)\n", s.Best.ID, s.Objective, *s.Best.Result.Objective, formatParams(s.Best.Params), s.Best.Seed)
	}
	printWho(w, s)
	for _, f := range s.Failures {
		fmt.Fprintf(w, "failed: trial %s %s: %s\n", f.ID, formatParams(f.Params), f.Error)
	}
	for _, r := range s.Resuming {
		fmt.Fprintf(w, "running: trial %s attempt %d on %s, resumed after step %d\n", r.Trial, r.Attempt, r.Node, r.StartStep)
	}
	printAnalysis(w, s.Analysis)
	printBudget(w, s.Budget)
	printDecisions(w, s)
}

// printWho prints the study's team and who submitted and cancelled it.
func printWho(w io.Writer, s *api.StudyStatus) {
	if s.Team != "" {
		fmt.Fprintf(w, "team: %s\n", s.Team)
	}
	for _, sub := range s.Submissions {
		if sub.By == "" {
			continue // the coordinator's own addition, or a record from before
		}
		fmt.Fprintf(w, "submitted: by %s at %s, %d new trials (%d in all)\n", sub.By, sub.Time.Format(time.RFC3339), sub.Added, sub.Total)
	}
	for _, c := range s.Cancellations {
		what := fmt.Sprintf("%d trials", c.Trials)
		if c.Whole {
			what = fmt.Sprintf("the study (%d trials)", c.Trials)
		}
		reason := ""
		if c.Reason != "" {
			reason = ": " + c.Reason
		}
		fmt.Fprintf(w, "cancelled: by %s at %s, %s%s\n", c.By, c.Time.Format(time.RFC3339), what, reason)
	}
}

func humanBytes(b int64) string {
	switch {
	case b >= 1<<30:
		return fmt.Sprintf("%.1fGiB", float64(b)/(1<<30))
	case b >= 1<<20:
		return fmt.Sprintf("%.0fMiB", float64(b)/(1<<20))
	default:
		return fmt.Sprintf("%dB", b)
	}
}

func formatParams(p map[string]any) string {
	keys := make([]string, 0, len(p))
	for k := range p {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = k + "=" + formatValue(p[k])
	}
	return strings.Join(parts, " ")
}

func formatValue(v any) string { return export.Format(v, 6) }

// varyingParams returns the parameter names whose values differ between
// trials, so a table shows what the study varies.
func varyingParams(trials []api.Trial) []string {
	first := map[string]string{}
	vary := map[string]bool{}
	for i, t := range trials {
		for k, v := range t.Params {
			s := formatValue(v)
			if i == 0 {
				first[k] = s
			} else if f, ok := first[k]; !ok || f != s {
				vary[k] = true
			}
		}
	}
	out := make([]string, 0, len(vary))
	for k := range vary {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// allParams returns every parameter name of the trials, sorted.
func allParams(trials []api.Trial) []string { return export.Params(trials) }

// sortByObjective orders trials best first; trials without a result go
// last in expansion order.
func sortByObjective(trials []api.Trial, direction string) []api.Trial {
	out := slices.Clone(trials)
	key := func(t api.Trial) float64 {
		if t.Result == nil || t.Result.Objective == nil {
			return math.Inf(1)
		}
		if direction == string(sweep.Maximize) {
			return -*t.Result.Objective
		}
		return *t.Result.Objective
	}
	slices.SortStableFunc(out, func(a, b api.Trial) int {
		ka, kb := key(a), key(b)
		switch {
		case ka < kb:
			return -1
		case ka > kb:
			return 1
		}
		return a.Index - b.Index
	})
	return out
}

// writeResults prints a study's trials; limit > 0 shows only the best
// limit rows of a table.
func writeResults(w io.Writer, r *api.ResultsReply, format string, limit int) error {
	switch format {
	case "json":
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(r)
	case "jsonl":
		// One trial record a line, as stored: a reader streams a study of
		// any size without holding one document, and keeps every field
		// (attempts, late results, non-finite metrics) the CSV flattens.
		enc := json.NewEncoder(w)
		for i := range r.Trials {
			if err := enc.Encode(&r.Trials[i]); err != nil {
				return err
			}
		}
		return nil
	case "csv":
		return export.TrialsCSV(w, r.Trials)
	}
	trials := sortByObjective(r.Trials, r.Direction)
	vary := varyingParams(r.Trials)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	head := []string{"#", "TRIAL"}
	for _, p := range vary {
		head = append(head, strings.ToUpper(p))
	}
	head = append(head, "SEED", "STATE", "ATTEMPTS", strings.ToUpper(r.Objective))
	fmt.Fprintln(tw, strings.Join(head, "\t"))
	shown := 0
	for _, t := range trials {
		if limit > 0 && shown == limit {
			break
		}
		shown++
		row := []string{strconv.Itoa(shown), t.ID}
		for _, p := range vary {
			row = append(row, formatValue(t.Params[p]))
		}
		obj := "-"
		if t.Result != nil && t.Result.Objective != nil {
			obj = strconv.FormatFloat(*t.Result.Objective, 'f', 5, 64)
		} else if t.Error != "" {
			obj = truncate(t.Error, 60)
		}
		row = append(row, strconv.FormatInt(t.Seed, 10), t.Shown(), strconv.Itoa(t.Attempt), obj)
		fmt.Fprintln(tw, strings.Join(row, "\t"))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if limit > 0 && len(trials) > limit {
		fmt.Fprintf(w, "... %d more trials; 'asymptote results %s --format csv' prints them all\n", len(trials)-limit, r.Study)
	}
	return nil
}

func truncate(s string, n int) string {
	s = strings.ReplaceAll(s, "\n", " ")
	if len(s) <= n {
		return s
	}
	return s[:n-3] + "..."
}

// printBudget shows a study's budget and where it went.
func printBudget(w io.Writer, b *api.BudgetStatus) {
	if b == nil {
		return
	}
	fmt.Fprintf(w, "budget: %.4g of %.4g %s used (%.0f%%)\n", b.Used, b.Limit, b.Kind, 100*b.Used/b.Limit)
	for _, a := range b.ByAxis {
		parts := make([]string, len(a.Values))
		for i, v := range a.Values {
			share := 0.0
			if b.Used > 0 {
				share = 100 * v.Used / b.Used
			}
			parts[i] = fmt.Sprintf("%s %.0f%%", v.Value, share)
		}
		fmt.Fprintf(w, "  by %s: %s\n", a.Axis, strings.Join(parts, ", "))
	}
}

// printDecisions lists what a study's adaptive steps added and why, in
// order.
func printDecisions(w io.Writer, s *api.StudyStatus) {
	if len(s.Decisions) == 0 && len(s.Extensions) == 0 {
		return
	}
	fmt.Fprintln(w, "\nadaptive decisions:")
	if len(s.Decisions) == 0 {
		// Edge extensions and the degradation search record their steps
		// as extensions only.
		for _, x := range s.Extensions {
			fmt.Fprintf(w, "  %s added %s=%g: %s\n", x.Time.Format(time.TimeOnly), x.Axis, x.Value, x.Reason)
		}
		return
	}
	for _, d := range s.Decisions {
		fmt.Fprintf(w, "  %s %s (%d trials added)\n", d.Time.Format(time.TimeOnly), d.Reason, d.Added)
	}
}

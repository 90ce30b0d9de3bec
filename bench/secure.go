package bench

import (
	"context"
	"fmt"
)

// SecureRow compares dispatch throughput of one configuration with TLS
// and identities against without, run back to back in each repetition
// (the order alternating, so a drift in load cancels over the pairs).
type SecureRow struct {
	Config DispatchConfig
	// Plain and Secure are trials per second, one per repetition.
	Plain, Secure []float64
}

// Lost is the share of throughput the secure runs lose: 1 − median of
// the per-repetition ratios secure/plain.
func (r SecureRow) Lost() float64 {
	ratios := make([]float64, 0, len(r.Plain))
	for i := range min(len(r.Plain), len(r.Secure)) {
		ratios = append(ratios, r.Secure[i]/r.Plain[i])
	}
	return 1 - median(ratios)
}

// secureConfigs are the configurations measured with and without TLS: one
// trial at a time (latency-bound, where a handshake or a per-message cost
// shows most) and the default slots on one agent.
func secureConfigs(sz sizes) []DispatchConfig {
	return []DispatchConfig{sameConcurrency(1), {Agents: 1, Slots: sz.defaultSlots}}
}

// Secure measures the cost of a secure cluster on dispatch: each
// configuration runs plain and secure in every repetition, interleaved.
func Secure(ctx context.Context, opts Options, sz sizes) ([]SecureRow, error) {
	var rows []SecureRow
	for _, cfg := range secureConfigs(sz) {
		rows = append(rows, SecureRow{Config: cfg})
	}
	for rep := range sz.repeats {
		for i := range rows {
			order := []bool{false, true}
			if rep%2 == 1 {
				order = []bool{true, false}
			}
			for _, secure := range order {
				cfg := rows[i].Config
				cfg.Secure = secure
				r, err := Dispatch(ctx, opts, cfg, sz.dispatchTrials)
				if err != nil {
					return rows, fmt.Errorf("%s: %w", cfg, err)
				}
				opts.Logger.Info("bench: secure", "config", cfg.String(), "trials_per_s", r.TrialsPerSec)
				if secure {
					rows[i].Secure = append(rows[i].Secure, r.TrialsPerSec)
				} else {
					rows[i].Plain = append(rows[i].Plain, r.TrialsPerSec)
				}
			}
		}
	}
	return rows, nil
}

package cli

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"time"

	"asymptote.dev/asymptote/internal/api"
	"asymptote.dev/asymptote/sweep"
)

func init() { loadStudyCSV = fetchStudyCSV }

// fetchStudyCSV returns a study's succeeded trials as CSV for the scaling
// commands, from the coordinator at ASYMPTOTE_NATS_URL (default
// nats://127.0.0.1:4222). The study's objective is also written as "loss"
// unless a metric already has that name.
func fetchStudyCSV(ctx context.Context, name string) ([]byte, error) {
	cf := clientFlags{natsURL: defaultNATSURL, timeout: 15 * time.Second}
	if u := os.Getenv("ASYMPTOTE_NATS_URL"); u != "" {
		cf.natsURL = u
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
	return analysisCSV(r)
}

// analysisCSV writes the succeeded trials of r as CSV with a "loss" column.
func analysisCSV(r *api.ResultsReply) ([]byte, error) {
	ok := &api.ResultsReply{Study: r.Study, Objective: r.Objective, Direction: r.Direction}
	for _, t := range r.Trials {
		if t.State == sweep.Succeeded && t.Result != nil {
			ok.Trials = append(ok.Trials, t)
		}
	}
	if len(ok.Trials) == 0 {
		return nil, fmt.Errorf("no succeeded trials yet (%d trials in all)", len(r.Trials))
	}
	var buf bytes.Buffer
	if err := writeResults(&buf, ok, "csv", 0); err != nil {
		return nil, err
	}
	b := buf.Bytes()
	head, rest, _ := bytes.Cut(b, []byte("\n"))
	cols := bytes.Split(head, []byte(","))
	hasLoss := false
	for _, c := range cols {
		if string(c) == "loss" {
			hasLoss = true
		}
	}
	if !hasLoss {
		for i, c := range cols {
			if string(c) == "objective" {
				cols[i] = []byte("loss")
			}
		}
	}
	return append(append(bytes.Join(cols, []byte(",")), '\n'), rest...), nil
}

package cli

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"time"

	"asymptote.dev/asymptote/internal/api"
	"asymptote.dev/asymptote/sweep"
)

func init() { loadStudyCSV = fetchStudyCSV }

// studySourceKey is the context key under which a scaling command passes
// its coordinator flags to fetchStudyCSV: loadStudyCSV takes only a
// context and a study name.
type studySourceKey struct{}

// withStudySource registers -nats-url and -timeout on fs, the cluster
// --study reads from, and returns ctx carrying them for fetchStudyCSV. The
// flags are read when the study is fetched, after parsing.
func withStudySource(ctx context.Context, fs *flag.FlagSet) context.Context {
	cf := &clientFlags{}
	cf.register(fs)
	return context.WithValue(ctx, studySourceKey{}, cf)
}

// fetchStudyCSV returns a study's succeeded trials as CSV for the scaling
// commands, from the coordinator at the command's -nats-url (or
// ASYMPTOTE_NATS_URL; default nats://127.0.0.1:4222). The study's
// objective is also written as "loss" unless a metric already has that
// name.
func fetchStudyCSV(ctx context.Context, name string) ([]byte, error) {
	cf, ok := ctx.Value(studySourceKey{}).(*clientFlags)
	if !ok {
		// A command that did not register the flags.
		cf = &clientFlags{natsURL: defaultNATSURL, timeout: 15 * time.Second}
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

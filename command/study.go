package command

import (
	"context"
	"flag"
	"fmt"

	"asymptote.dev/asymptote/internal/api"
)

// studyVerbs maps each `asymptote study` verb to its API verb and what it
// says when done.
var studyVerbs = map[string]string{
	"quarantine": api.VerbQuarantine,
	"resume":     api.VerbResume,
	"delete":     api.VerbDelete,
}

// studyCommand is `asymptote study`.
type studyCommand struct {
	clientCommand
	reason string
}

// flags declares study's flags.
func (cmd *studyCommand) flags() *flag.FlagSet {
	fs := cmd.newFlags("study", "quarantine|resume|delete STUDY [flags]")
	fs.StringVar(&cmd.reason, "reason", "", "why, kept with a quarantine and shown in status")
	return fs
}

// Run runs the command.
func (cmd *studyCommand) Run(ctx context.Context) error {
	env := cmd.env
	pos, err := cmd.parse(cmd.flags())
	if err != nil {
		return err
	}
	if len(pos) != 2 {
		return usagef("want a verb (quarantine, resume or delete) and a study name, e.g. 'asymptote study resume my-study'")
	}
	verb, ok := studyVerbs[pos[0]]
	if !ok {
		return usagef("unknown verb %q: want quarantine, resume or delete", pos[0])
	}
	c, nc, err := cmd.connect()
	if err != nil {
		return err
	}
	defer nc.Close()
	r, err := c.Study(ctx, verb, api.StudyRequest{Study: pos[1], Reason: cmd.reason})
	if err != nil {
		return err
	}
	switch verb {
	case api.VerbDelete:
		fmt.Fprintf(env.Stdout, "deleted study %s and its %d trials\n", r.Study, r.Deleted)
	case api.VerbQuarantine:
		fmt.Fprintf(env.Stdout, "quarantined study %s: nothing of it runs or is written until 'asymptote study resume %s'\n", r.Study, r.Study)
	default:
		fmt.Fprintf(env.Stdout, "resumed study %s (%s)\n", r.Study, r.State)
	}
	return nil
}

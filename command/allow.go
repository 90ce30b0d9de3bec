package command

import (
	"context"
	"flag"
	"fmt"
	"io"
	"slices"
	"text/tabwriter"

	"asymptote.dev/asymptote/internal/api"
	"asymptote.dev/asymptote/plugins/methods/command"
)

// allowCommand is `asymptote allow`: the cluster's allowlist of external
// methods and of the command method's programs.
type allowCommand struct {
	clientCommand
	program bool
	revoke  bool
	file    string
	json    bool
}

// flags declares allow's flags.
func (cmd *allowCommand) flags() *flag.FlagSet {
	fs := cmd.newFlags("allow", "[NAME SHA256 | -file FILE NAME | -revoke NAME] [flags]")
	fs.BoolVar(&cmd.program, "program", false, "NAME is a program or interpreter the command method may run (an absolute path on the agents), not an external method")
	fs.BoolVar(&cmd.revoke, "revoke", false, "take NAME off the cluster's allowlist")
	fs.StringVar(&cmd.file, "file", "", "pin the SHA-256 of this local `FILE` (a copy of what the agents have) instead of giving SHA256")
	fs.BoolVar(&cmd.json, "json", false, "print the allowlist as JSON")
	return fs
}

// Run runs the command.
func (cmd *allowCommand) Run(ctx context.Context) error {
	pos, err := cmd.parse(cmd.flags())
	if err != nil {
		return err
	}
	req, err := cmd.request(pos)
	if err != nil {
		return err
	}
	c, nc, err := cmd.connect()
	if err != nil {
		return err
	}
	defer nc.Close()
	r, err := c.Allow(ctx, req)
	if err != nil {
		return err
	}
	if cmd.json {
		return writeJSON(cmd.env.Stdout, r)
	}
	if r.Note != "" {
		fmt.Fprintln(cmd.env.Stdout, r.Note+"; agents apply it with their next heartbeat")
	}
	if req.Name == "" {
		printAllowlist(cmd.env.Stdout, r.Allowlist)
	}
	return nil
}

// request builds the API request from the arguments.
func (cmd *allowCommand) request(pos []string) (api.AllowRequest, error) {
	kind := api.AllowMethod
	if cmd.program {
		kind = api.AllowProgram
	}
	switch {
	case len(pos) == 0 && !cmd.revoke && cmd.file == "":
		return api.AllowRequest{}, nil
	case cmd.revoke:
		if len(pos) != 1 || cmd.file != "" {
			return api.AllowRequest{}, usagef("-revoke takes one NAME and no hash, e.g. 'asymptote allow -revoke my_method'")
		}
		return api.AllowRequest{Kind: kind, Name: pos[0], Revoke: true}, nil
	case cmd.file != "":
		if len(pos) != 1 {
			return api.AllowRequest{}, usagef("-file %s takes one NAME, e.g. 'asymptote allow -file ./plugins/my_method my_method'", cmd.file)
		}
		sum, err := command.Hash(cmd.file)
		if err != nil {
			return api.AllowRequest{}, usagef("-file: %v", err)
		}
		return api.AllowRequest{Kind: kind, Name: pos[0], SHA256: sum}, nil
	case len(pos) != 2:
		return api.AllowRequest{}, usagef("want NAME SHA256 (the executable's 'sha256sum'), -file FILE NAME, -revoke NAME, or nothing to list the allowlist")
	}
	return api.AllowRequest{Kind: kind, Name: pos[0], SHA256: pos[1]}, nil
}

// printAllowlist writes the allowlist as a table.
func printAllowlist(w io.Writer, l api.Allowlist) {
	if len(l.Methods)+len(l.Programs) == 0 {
		fmt.Fprintln(w, "the cluster's allowlist is empty: agents run their built-in methods and what their own -allow and -allow-program flags allow")
		return
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "KIND\tNAME\tSHA256\tSINCE\tBY")
	for _, kind := range []struct {
		name    string
		entries map[string]api.AllowEntry
	}{{api.AllowMethod, l.Methods}, {api.AllowProgram, l.Programs}} {
		names := make([]string, 0, len(kind.entries))
		for n := range kind.entries {
			names = append(names, n)
		}
		slices.Sort(names)
		for _, n := range names {
			e := kind.entries[n]
			by := e.By
			if by == "" {
				by = "-"
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", kind.name, n, e.SHA256, e.Time.UTC().Format("2006-01-02 15:04:05"), by)
		}
	}
	tw.Flush()
}

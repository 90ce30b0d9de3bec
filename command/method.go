package command

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"text/tabwriter"

	"asymptote.dev/asymptote/plugins/methods"
	"asymptote.dev/asymptote/plugins/sdk"
)

// methodCommand serves a built-in method over go-plugin: the agent re-executes
// its own binary as `asymptote method <name>` to run built-in methods in a
// process of their own.
type methodCommand struct{ invocation }

// Run runs the command.
func (cmd *methodCommand) Run(_ context.Context) error {
	args := cmd.args
	if len(args) != 1 {
		return usagef("usage: asymptote method <name> (started by the agent, not by hand)")
	}
	m, ok := methods.Lookup(args[0])
	if !ok {
		return usagef("unknown built-in method %q", args[0])
	}
	sdk.Serve(m)
	return nil
}

// methodsCommand lists the built-in methods with their parameters.
type methodsCommand struct {
	invocation
	testMethods bool
}

// flags declares methods' flags.
func (cmd *methodsCommand) flags() *flag.FlagSet {
	fs := newFlagSet(cmd.env, "methods", "[flags]")
	fs.BoolVar(&cmd.testMethods, "test-methods", false, "also list the methods an agent offers with -test-methods (faulty)")
	return fs
}

// Run runs the command.
func (cmd *methodsCommand) Run(ctx context.Context) error {
	env := cmd.env
	if _, err := cmd.parse(cmd.flags()); err != nil {
		return err
	}
	tw := tabwriter.NewWriter(env.Stdout, 0, 4, 2, ' ', 0)
	names := methods.Names()
	if cmd.testMethods {
		names = append(names, methods.TestNames()...)
	}
	for i, name := range names {
		m, _ := methods.Lookup(name)
		info, err := m.Info(ctx)
		if err != nil {
			return fmt.Errorf("describe method %s: %w", name, err)
		}
		if i > 0 {
			fmt.Fprintln(tw)
		}
		fmt.Fprintf(tw, "%s (version %s): %s\n", info.Name, info.Version, info.Description)
		for _, p := range info.Params {
			def := "required"
			if p.Optional {
				def = "optional"
			}
			if p.Default != nil {
				b, err := json.Marshal(p.Default)
				if err != nil {
					return err
				}
				def = "default " + string(b)
			}
			fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\n", p.Name, p.Type, def, p.Description)
		}
	}
	return tw.Flush()
}

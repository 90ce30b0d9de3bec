package command

import (
	"context"
	"flag"
)

// commands is the command table: every subcommand of asymptote, by name.
// The usage listing shows them in this order.
var commands = []Command{
	{Name: "agent", Summary: "run an agent that executes trials on this host", New: func() Runner { return new(agentCommand) }},
	{Name: "allow", Summary: "list or change the cluster's allowlist of external methods and programs (operators)", New: func() Runner { return new(allowCommand) }},
	{Name: "bench", Summary: "run the performance suite against Optuna and print the table (about 10 minutes)", New: func() Runner { return new(benchCommand) }},
	{Name: "cancel", Summary: "cancel a study or some of its trials", New: func() Runner { return new(cancelCommand) }},
	{Name: "coordinator", Summary: "run a coordinator (leader or standby)", New: func() Runner { return new(coordinatorCommand) }},
	{Name: "crossover", Summary: "find where two recipes' scaling curves cross, with bootstrap probabilities", New: func() Runner { return new(crossoverCommand) }},
	{Name: "dev", Summary: "run embedded NATS and etcd, a coordinator and agents; optionally run a study to completion", New: func() Runner { return new(devCommand) }},
	{Name: "drain", Summary: "ask an agent to stop taking work, preempt what it runs, and exit", New: func() Runner { return new(drainCommand) }},
	{Name: "epochs", Summary: "repeated-data analysis: best epoch count, degradation, R_D* and the value of a repeated token", New: func() Runner { return new(epochsCommand) }},
	{Name: "fit", Summary: "fit a scaling law to results, with bootstrap intervals", New: func() Runner { return new(fitCommand) }},
	{Name: "frontier", Summary: "compute-optimal parameters and tokens for a budget", New: func() Runner { return new(frontierCommand) }},
	{Name: "method", Hidden: true, New: func() Runner { return new(methodCommand) }},
	{Name: "methods", Summary: "list the built-in methods and their parameters", New: func() Runner { return new(methodsCommand) }},
	{Name: "results", Summary: "print a study's trials and results", New: func() Runner { return new(resultsCommand) }},
	{Name: "secure", Summary: "write a CA, certificates, nkeys and NATS and etcd permissions for a secure cluster (secure init DIR)", New: func() Runner { return new(secureCommand) }},
	{Name: "slurm", Summary: "keep a SLURM partition's allocations sized to the waiting trials (docs/slurm.md)", New: func() Runner { return new(slurmCommand) }},
	{Name: "status", Summary: "show studies, agents and the leader", New: func() Runner { return new(statusCommand) }},
	{Name: "study", Summary: "quarantine, resume or delete a study (recovery; see docs/operations.md)", New: func() Runner { return new(studyCommand) }},
	{Name: "submit", Summary: "submit or extend a study", New: func() Runner { return new(submitCommand) }},
	{Name: "watch", Summary: "follow a study's progress until it finishes", New: func() Runner { return new(watchCommand) }},
}

// Command is one entry of the command table.
type Command struct {
	// Name is the word that selects the command.
	Name string
	// Summary is one line for the usage listing.
	Summary string
	// Hidden commands are left out of the usage listing (for example the
	// re-exec target that serves built-in methods).
	Hidden bool
	// New returns the command, ready to be given its invocation.
	New func() Runner
}

// Runner is a command: a small type whose fields are its flags, declared
// on a flag set by its flags method, and parsed from its invocation when
// it runs.
type Runner interface {
	// Run runs the command with the invocation it was given.
	Run(ctx context.Context) error
	invoke(env Env, args []string)
}

// invocation is what every command is run with: the process's streams and
// the arguments after the command's name. Command types embed it.
type invocation struct {
	env  Env
	args []string
}

func (i *invocation) invoke(env Env, args []string) { i.env, i.args = env, args }

// parse parses the invocation's arguments with fs, the command's flags,
// and returns its positional arguments.
func (i *invocation) parse(fs *flag.FlagSet) ([]string, error) {
	return parseFlags(i.env, fs, i.args)
}

// lookup returns the command named name.
func lookup(name string) (*Command, bool) {
	for i := range commands {
		if commands[i].Name == name {
			return &commands[i], true
		}
	}
	return nil, false
}

// run runs the command c with env and args.
func (c *Command) run(ctx context.Context, env Env, args []string) error {
	r := c.New()
	r.invoke(env, args)
	return r.Run(ctx)
}

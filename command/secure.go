package command

import (
	"context"
	"flag"
	"fmt"
	"strings"
	"time"

	"asymptote.dev/asymptote/internal/security"
)

// secureCommand is `asymptote secure init DIR`.
type secureCommand struct {
	invocation
	hosts, agents, teams, rotate, revoke listFlag
	natsURL                              string
	valid                                time.Duration
}

// flags declares secure's flags.
func (cmd *secureCommand) flags() *flag.FlagSet {
	fs := newFlagSet(cmd.env, "secure", "init DIR [flags]")
	fs.Var(&cmd.hosts, "hosts", "host `names` and addresses the servers' certificate is valid for, comma-separated (default localhost,127.0.0.1)")
	fs.Var(&cmd.agents, "agents", "node `IDs` to write agent identities for, comma-separated (repeatable; those already in DIR are kept)")
	fs.Var(&cmd.teams, "teams", "`teams` to write submitter-TEAM and viewer-TEAM identities for, comma-separated (repeatable; those already in DIR are kept); the default team's submitter and viewer are always written")
	fs.Var(&cmd.rotate, "rotate", "`identity` whose nkey and client certificate to make anew, such as agent-gpu-01 or submitter (repeatable)")
	fs.Var(&cmd.revoke, "revoke", "agent `identity` to remove, such as agent-gpu-02 (repeatable)")
	fs.StringVar(&cmd.natsURL, "nats-url", "", "NATS `URL` written into the identities' environment files (default tls://FIRST-HOST:4222)")
	fs.DurationVar(&cmd.valid, "valid", 365*24*time.Hour, "how long new client and server certificates last")
	return fs
}

// Run runs the command.
func (cmd *secureCommand) Run(ctx context.Context) error {
	pos, err := cmd.parse(cmd.flags())
	if err != nil {
		return err
	}
	if len(pos) != 2 || pos[0] != "init" {
		return usagef("want: asymptote secure init DIR [flags]")
	}
	if cmd.valid <= 0 {
		return usagef("-valid %s: want a positive duration such as 8760h", cmd.valid)
	}
	b, err := security.Init(security.Plan{
		Dir: pos[1], Hosts: cmd.hosts, Agents: cmd.agents, Teams: cmd.teams, Rotate: cmd.rotate, Revoke: cmd.revoke,
		NATSURL: cmd.natsURL, Valid: cmd.valid,
	})
	if err != nil {
		return usagef("%v", err)
	}
	w := cmd.env.Stdout
	fmt.Fprintf(w, "wrote %d files in %s\n", len(b.Written), b.Dir)
	names := make([]string, len(b.Identities))
	for i, id := range b.Identities {
		names[i] = id.Name
	}
	fmt.Fprintf(w, "identities: %s\n\n", strings.Join(names, ", "))
	fmt.Fprintf(w, "NATS server: include %s from its configuration, then start or reload it (nats-server --signal reload)\n", b.Dir+"/"+security.NATSAuthFile)
	fmt.Fprintf(w, "etcd: start it with TLS and --client-cert-auth, then run %s once (its comments give the flags)\n", b.Dir+"/"+security.EtcdScriptFile)
	fmt.Fprintf(w, "each process: set -a; . %s/IDENTITY.env; set +a   (or systemd EnvironmentFile=)\n", b.Dir)
	return nil
}

package command

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"asymptote.dev/asymptote/internal/api"
	"asymptote.dev/asymptote/internal/bus"
	"asymptote.dev/asymptote/internal/devcluster"
	"asymptote.dev/asymptote/internal/node"
	"asymptote.dev/asymptote/internal/security"
	"asymptote.dev/asymptote/sweep"
)

// devCommand is `asymptote dev`.
type devCommand struct {
	invocation
	dataDir                string
	natsPort, agents, show int
	secure                 bool
	jsSync                 natsSync
	copts                  coordinatorOptions
	aopts                  agentOptions
}

// flags declares dev's flags.
func (cmd *devCommand) flags() *flag.FlagSet {
	fs := newFlagSet(cmd.env, "dev", "[STUDY.yaml] [flags]")
	fs.StringVar(&cmd.dataDir, "data-dir", ".asymptote", "`directory` for all state; running again on it resumes")
	fs.IntVar(&cmd.natsPort, "nats-port", 4222, "port of the embedded NATS server (-1 picks a free one)")
	cmd.jsSync.register(fs)
	fs.IntVar(&cmd.agents, "agents", 1, "number of local agents; they split the host's CPUs, memory and GPUs between them (-cpus and -memory, when given, are what each offers)")
	fs.IntVar(&cmd.show, "show", 20, "rows of the results table to print (best first)")
	fs.BoolVar(&cmd.secure, "secure", false, "run as a secure cluster does: TLS with client certificates on NATS and etcd, and each process connecting as its own identity, from `asymptote secure init` in DATA_DIR/secure (docs/security.md)")
	cmd.copts.register(fs)
	cmd.aopts.register(fs)
	return fs
}

// Run runs the command.
func (cmd *devCommand) Run(ctx context.Context) error {
	env := cmd.env
	req, err := cmd.request()
	if err != nil {
		return err
	}
	log := newLogger(env.Stderr, slog.LevelWarn)
	bundle, err := cmd.bundle("")
	if err != nil {
		return err
	}
	n, err := node.Start(ctx, node.Config{
		Servers: &devcluster.Config{DataDir: cmd.dataDir, NATSPort: cmd.natsPort, Logger: log, NATSSyncInterval: cmd.jsSync.interval, Security: bundle},
		Logger:  log,
	})
	if err != nil {
		return err
	}
	// On any return, stop every component before the connections and
	// servers they use are closed.
	defer n.Close()
	fmt.Fprintf(env.Stderr, "asymptote dev: NATS at %s, etcd at %s, state in %s\n", n.NATSURL, strings.Join(n.EtcdEndpoints, ","), cmd.dataDir)
	client := &clientFlags{natsURL: n.NATSURL, timeout: 30 * time.Second}
	if bundle != nil {
		// Again, now that the URL is known, for the environment files.
		if bundle, err = cmd.bundle(n.NATSURL); err != nil {
			return err
		}
		client.sec.NATS = bundle.NATS("submitter")
		client.team, client.identity = bus.DefaultTeam, "submitter"
		fmt.Fprintf(env.Stderr, "asymptote dev: secure; each process is its own identity; to connect: set -a; . %s; set +a\n", filepath.Join(bundle.Dir, security.EnvFile("submitter")))
	}
	if err := startDevNode(env, n, cmd.copts, cmd.aopts, cmd.agents, cmd.dataDir, log, bundle); err != nil {
		return err
	}
	c, nc, err := client.connect(env)
	if err != nil {
		return err
	}
	defer nc.Close()
	if req == nil {
		fmt.Fprintf(env.Stderr, "serving; submit studies with 'asymptote submit STUDY.yaml -nats-url %s'; Ctrl-C stops\n", n.NATSURL)
		<-n.Context().Done()
		return n.Close()
	}
	return cmd.runStudy(ctx, n, c, *req)
}

// bundle writes (or completes) DATA_DIR/secure with an identity for each
// of dev's agents when -secure is given, with natsURL in the identities'
// environment files; nil without -secure.
func (cmd *devCommand) bundle(natsURL string) (*security.Bundle, error) {
	if !cmd.secure {
		return nil, nil
	}
	agents := make([]string, cmd.agents)
	for i := range agents {
		agents[i] = devNodeID(i + 1)
	}
	return security.Init(security.Plan{Dir: filepath.Join(cmd.dataDir, "secure"), Agents: agents, NATSURL: natsURL})
}

func devNodeID(i int) string { return fmt.Sprintf("dev-%d", i) }

// request parses and checks the command line and reads the study spec it
// names, if any (nil: dev only serves).
func (cmd *devCommand) request() (*api.SubmitRequest, error) {
	pos, err := cmd.parse(cmd.flags())
	if err != nil {
		return nil, err
	}
	if len(pos) > 1 {
		return nil, usagef("want at most one study spec, got %d", len(pos))
	}
	if cmd.agents < 1 {
		return nil, usagef("-agents %d: want at least 1", cmd.agents)
	}
	if err := cmd.copts.validate(); err != nil {
		return nil, err
	}
	if err := cmd.aopts.validate(); err != nil {
		return nil, err
	}
	if len(pos) == 0 {
		return nil, nil
	}
	r, err := readSpec(pos[0])
	if err != nil {
		return nil, err
	}
	// dev's agents are all there is: a study of programs none of them may
	// run would wait forever.
	if spec, err := sweep.Parse(r.SpecFile, []byte(r.Spec)); err == nil && spec.Command != nil && len(cmd.aopts.programs) == 0 {
		return nil, usagef("%s runs method: command, and this agent allows no program; add -allow-program %s and the same for its interpreter (docs/scripts.md)", r.SpecFile, spec.Command.Program)
	}
	return &r, nil
}

// runStudy submits the study, follows it until it finishes, and prints
// its results, what was decided and the fit of its analysis plan.
func (cmd *devCommand) runStudy(ctx context.Context, n *node.Node, client *bus.Client, req api.SubmitRequest) error {
	env, gctx := cmd.env, n.Context()
	sub, err := client.Submit(gctx, req)
	if err != nil {
		return err
	}
	printSubmit(env, sub)
	if err := watch(gctx, env, client, sub.Study, watchOptions{interval: 500 * time.Millisecond}); err != nil {
		if ctx.Err() != nil {
			fmt.Fprintf(env.Stderr, "interrupted; run the same command again to resume the study where it stopped\n")
		}
		return errors.Join(err, n.Close())
	}
	res, err := client.Results(gctx, sub.Study)
	if err != nil {
		return err
	}
	st, err := client.Status(gctx, sub.Study)
	if err != nil {
		return err
	}
	fmt.Fprintln(env.Stdout)
	if err := writeResults(env.Stdout, res, "table", cmd.show); err != nil {
		return err
	}
	if err := n.Close(); err != nil {
		return err
	}
	outcome := studyOutcome(env, &st.Studies[0], res)
	printDecisions(env.Stdout, &st.Studies[0])
	if spec, err := sweep.Parse(req.SpecFile, []byte(req.Spec)); err == nil {
		if err := analyze(ctx, env, spec, res); err != nil {
			fmt.Fprintf(env.Stdout, "analysis: %v\n", err)
		}
	}
	return outcome
}

// startDevNode starts dev's coordinator, its HTTP API and its agents,
// which split the host between them.
func startDevNode(env Env, n *node.Node, copts coordinatorOptions, aopts agentOptions, agents int, dataDir string, log *slog.Logger, bundle *security.Bundle) error {
	if copts.id == "" {
		copts.id = "dev"
	}
	c := copts.coordinator(log)
	dashboard := "/"
	if bundle != nil {
		nc, ec := bundle.NATS("coordinator"), bundle.Etcd("coordinator")
		c.NATSSecurity, c.EtcdSecurity = &nc, &ec
		// The HTTP API takes the bundle's tokens, and the dashboard's
		// address carries the operator's once (it becomes a cookie).
		if copts.httpSec.tokens == "" {
			copts.httpSec.tokens = filepath.Join(bundle.Dir, security.HTTPTokensFile)
		}
		token, err := os.ReadFile(filepath.Join(bundle.Dir, security.HTTPTokenFile("operator")))
		if err != nil {
			return err
		}
		dashboard = "/?token=" + strings.TrimSpace(string(token))
	}
	var err error
	if c.HTTP, err = copts.http.listen(env.Stderr); err == nil {
		c.HTTP, c.HTTPTokens, err = copts.httpSec.apply(c.HTTP)
	}
	if err != nil {
		return err
	}
	if _, err := n.StartCoordinator(c); err != nil {
		return err
	}
	if u := httpURL(c.HTTP); u != "" {
		fmt.Fprintf(env.Stderr, "asymptote dev: dashboard at %s%s, HTTP API at %s/api/v1/studies\n", u, dashboard, u)
	}
	for i := 1; i <= agents; i++ {
		o := aopts
		o.checkpoints = copts.checkpoints
		o.nodeID = devNodeID(i)
		o.dataDir = filepath.Join(dataDir, "agents", o.nodeID)
		a, err := o.agent(n.Context(), log, hostShare{index: i - 1, of: agents})
		if err != nil {
			return err
		}
		if bundle != nil {
			sec := bundle.NATS("agent-" + o.nodeID)
			a.NATSSecurity = &sec
		}
		if _, err := n.StartAgent(a); err != nil {
			return err
		}
	}
	return nil
}

// studyOutcome summarises a finished study and fails when any trial did
// not succeed, naming which and why.
func studyOutcome(env Env, st *api.StudyStatus, res *api.ResultsReply) error {
	var bad []api.Trial
	for _, t := range res.Trials {
		if t.State != sweep.Succeeded {
			bad = append(bad, t)
		}
	}
	took := ""
	if st.Finished != nil {
		took = fmt.Sprintf(" in %s", st.Finished.Sub(st.Created).Round(100*time.Millisecond))
	}
	fmt.Fprintf(env.Stdout, "\nstudy %s: %d of %d trials succeeded%s; %d retries, %d stale attempts, %d late results\n",
		st.Name, len(res.Trials)-len(bad), len(res.Trials), took, st.Retries, st.StaleAttempts, st.LateResults)
	if len(bad) == 0 {
		return nil
	}
	for i, t := range bad {
		if i == 10 {
			fmt.Fprintf(env.Stdout, "... and %d more\n", len(bad)-10)
			break
		}
		fmt.Fprintf(env.Stdout, "%s trial %s (%s): %s\n", t.State, t.ID, formatParams(t.Params), t.Error)
	}
	return &ExitError{Code: 1, Err: fmt.Errorf("%d of %d trials did not succeed", len(bad), len(res.Trials))}
}

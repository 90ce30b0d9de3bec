package command

import (
	"cmp"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/nats-io/nats.go"

	"asymptote.dev/asymptote/internal/api"
	"asymptote.dev/asymptote/internal/bus"
	"asymptote.dev/asymptote/internal/node"
	"asymptote.dev/asymptote/slurm"
)

// slurmCommand is `asymptote slurm`: one queue's provisioner.
type slurmCommand struct {
	clientCommand
	queue        slurm.Queue
	memory       string
	agentNATSURL string
	binary       string
	output       string
	agentEnv     listFlag
	interval     time.Duration
}

// flags declares slurm's flags.
func (cmd *slurmCommand) flags() *flag.FlagSet {
	fs := cmd.newFlags("slurm", "[flags]")
	q := &cmd.queue
	fs.StringVar(&q.Name, "queue-name", "gpu", "`name` of this queue: allocations are SLURM jobs asymptote-NAME, agents slurm-NAME-JOBID-RANK")
	fs.StringVar(&q.Partition, "partition", "", "SLURM `partition` (sbatch --partition; default: SLURM's)")
	fs.StringVar(&q.Account, "account", "", "SLURM `account` to charge (sbatch --account)")
	fs.StringVar(&q.QoS, "qos", "", "SLURM `QoS` (sbatch --qos)")
	fs.DurationVar(&q.TimeLimit, "time", 4*time.Hour, "each allocation's time limit (sbatch --time; whole minutes)")
	fs.IntVar(&q.CPUs, "cpus", 8, "CPUs of each agent (sbatch --cpus-per-task)")
	fs.StringVar(&cmd.memory, "memory", "32GiB", "memory of each agent (sbatch --mem)")
	fs.IntVar(&q.GPUs, "gpus", 0, "GPUs of each agent (sbatch --gres=gpu:N)")
	fs.IntVar(&q.AgentsPerAllocation, "agents-per-allocation", 1, "nodes of each allocation, one agent on each (sbatch --nodes)")
	fs.IntVar(&q.TrialsPerAgent, "trials-per-agent", 1, "trials one agent runs at once: sizes the allocations to the waiting trials")
	fs.IntVar(&q.MaxAllocations, "max-allocations", 4, "most allocations held at once, pending ones included")
	fs.DurationVar(&q.IdleRelease, "idle-release", 5*time.Minute, "release an allocation whose agents ran nothing this long while nothing waits")
	fs.DurationVar(&q.StartTimeout, "start-timeout", 10*time.Minute, "release a running allocation whose agents did not join within this")
	fs.DurationVar(&q.SignalBefore, "signal-before", 2*time.Minute, "send the agents SIGTERM this long before the time limit (sbatch --signal), so they hand their trials back first")
	fs.StringVar(&cmd.agentNATSURL, "agent-nats-url", "", "NATS `URL` the agents dial from the compute nodes (default: -nats-url)")
	fs.StringVar(&cmd.binary, "binary", "", "`path` of the asymptote binary on the compute nodes (default: this binary's path)")
	fs.StringVar(&cmd.output, "output", "", "sbatch --output `pattern` of the allocations' logs (default: SLURM's slurm-%j.out)")
	fs.Var(&cmd.agentEnv, "agent-env", "set an agent flag through its variable: `NAME=VALUE`, such as ASYMPTOTE_ALLOW_PROGRAM=/usr/bin/python3 (repeatable)")
	fs.DurationVar(&cmd.interval, "interval", 10*time.Second, "time between planning rounds")
	return fs
}

// slurmFlagNames turns the queue's field names in its errors into the
// flags that set them.
var slurmFlagNames = strings.NewReplacer(
	": name:", ": -queue-name:", ": partition:", ": -partition:", ": account:", ": -account:", ": qos:", ": -qos:",
	": time_limit:", ": -time:", ": cpus:", ": -cpus:", ": memory:", ": -memory:", ": gpus:", ": -gpus:",
	": agents_per_allocation:", ": -agents-per-allocation:", ": trials_per_agent:", ": -trials-per-agent:",
	": max_allocations:", ": -max-allocations:", ": idle_release:", ": -idle-release:",
	": start_timeout:", ": -start-timeout:", ": signal_before:", ": -signal-before:",
)

// Run runs the command.
func (cmd *slurmCommand) Run(ctx context.Context) error {
	if _, err := cmd.parse(cmd.flags()); err != nil {
		return err
	}
	mem, err := parseBytes(cmd.memory)
	if err != nil {
		return usagef("-memory: %v", err)
	}
	cmd.queue.Memory = mem
	if err := cmd.queue.Validate(); err != nil {
		return usagef("%s", slurmFlagNames.Replace(err.Error()))
	}
	agent := slurm.Agent{Binary: cmd.binary, NATSURL: cmp.Or(cmd.agentNATSURL, cmd.client.natsURL), Output: cmd.output, Env: map[string]string{}}
	if agent.Binary == "" {
		if agent.Binary, err = os.Executable(); err != nil {
			return fmt.Errorf("-binary: %w; give the asymptote binary's path on the compute nodes", err)
		}
	}
	for _, kv := range cmd.agentEnv {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || !strings.HasPrefix(k, "ASYMPTOTE_") {
			return usagef("-agent-env %q: want ASYMPTOTE_NAME=VALUE", kv)
		}
		agent.Env[k] = v
	}
	log := newLogger(cmd.env.Stderr, slog.LevelInfo)
	nc, err := node.DialNATS(cmd.client.natsURL, "asymptote-slurm-"+cmd.queue.Name, log, time.Second, cmd.client.sec.NATS)
	if err != nil {
		return err
	}
	defer nc.Close()
	team, id := cmd.client.caller()
	client, err := bus.NewClient(nc, cmd.client.timeout).As(team, id)
	if err != nil {
		return usagef("-%v", err)
	}
	p, err := slurm.New(slurm.Config{
		Queue: cmd.queue, Agent: agent, SLURM: &slurm.Commands{}, Interval: cmd.interval, Logger: log,
		Status: func(ctx context.Context) (*api.StatusReply, error) { return client.Status(ctx, "") },
	})
	if err != nil {
		return err
	}
	sub, err := nc.Subscribe(bus.SubjectSLURMStatus, func(m *nats.Msg) {
		b, _ := json.Marshal(p.Last())
		_ = m.Respond(b)
	})
	if err != nil {
		return err
	}
	defer sub.Unsubscribe()
	log.Info("provisioning", "queue", cmd.queue.Name, "partition", cmd.queue.Partition, "max_allocations", cmd.queue.MaxAllocations)
	return p.Run(ctx)
}

// slurmReports asks every provisioner for its report, waiting wait for
// the answers (there is one per queue, or none; with none, the server
// says so at once).
func slurmReports(ctx context.Context, nc *nats.Conn, wait time.Duration) []slurm.Report {
	inbox := nc.NewRespInbox()
	ch := make(chan *nats.Msg, 64)
	sub, err := nc.ChanSubscribe(inbox, ch)
	if err != nil {
		return nil
	}
	defer sub.Unsubscribe()
	if err := nc.PublishRequest(bus.SubjectSLURMStatus, inbox, nil); err != nil {
		return nil
	}
	var reports []slurm.Report
	timer := time.NewTimer(wait)
	defer timer.Stop()
	for {
		select {
		case m := <-ch:
			if len(m.Data) == 0 && m.Header.Get("Status") == "503" {
				return reports // no provisioner listens: no need to wait
			}
			var r slurm.Report
			if json.Unmarshal(m.Data, &r) == nil {
				reports = append(reports, r)
			}
		case <-timer.C:
			return reports
		case <-ctx.Done():
			return reports
		}
	}
}

// printSLURM shows each queue's allocations and why work waits.
func printSLURM(w io.Writer, reports []slurm.Report, now time.Time) {
	for _, r := range reports {
		where := "default partition"
		if r.Partition != "" {
			where = "partition " + r.Partition
		}
		fmt.Fprintf(w, "\nSLURM queue %s (%s): %d allocations, %d trials waiting\n", r.Queue, where, len(r.Allocations), r.Waiting)
		if r.Why != "" {
			fmt.Fprintf(w, "  work waits: %s\n", r.Why)
		}
		if r.Error != "" {
			fmt.Fprintf(w, "  last round failed: %s\n", r.Error)
		}
		for _, a := range r.Allocations {
			age := "-"
			if !a.Submitted.IsZero() {
				age = now.Sub(a.Submitted).Round(time.Second).String()
			}
			state := string(a.State)
			if a.State == slurm.JobPending && a.Reason != "" {
				state += " (" + a.Reason + ")"
			}
			fmt.Fprintf(w, "  job %-10s %-24s age %-8s agents %d  trials %d\n", a.JobID, state, age, a.Agents, a.Busy)
		}
	}
}

package slurm

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"
)

// Agent is what an allocation's job runs on each of its nodes.
type Agent struct {
	// Binary is the asymptote binary's path on the compute nodes.
	Binary string
	// NATSURL is where the agents reach NATS from the compute nodes.
	NATSURL string
	// Env sets more of the agent's flags through their variables, such
	// as ASYMPTOTE_ALLOW_PROGRAM or ASYMPTOTE_PLUGIN_DIR.
	Env map[string]string
	// Output is sbatch's --output pattern (default: SLURM's
	// slurm-%j.out in the provisioner's directory).
	Output string
}

// JobName is the SLURM job name of q's allocations.
func JobName(q Queue) string { return "asymptote-" + q.Name }

// NodePrefix starts the node ID of every agent of job id: the agent on
// the allocation's node with task rank N is NodePrefix(q, id)+N.
func NodePrefix(q Queue, id string) string { return nodeBase(q) + "-" + id + "-" }

func nodeBase(q Queue) string { return "slurm-" + q.Name }

// Script is the batch script of one allocation of q: one agent per node,
// each given the allocation's CPUs, memory and GPUs, named by the job ID
// and its rank, and sent SIGTERM SignalBefore the time limit so it
// reports its attempts preempted before SLURM kills it.
func Script(q Queue, a Agent) string {
	var b strings.Builder
	line := func(format string, args ...any) { fmt.Fprintf(&b, format+"\n", args...) }
	line("#!/bin/sh")
	line("#SBATCH --job-name=%s", JobName(q))
	for _, o := range []struct{ flag, v string }{{"partition", q.Partition}, {"account", q.Account}, {"qos", q.QoS}, {"output", a.Output}} {
		if o.v != "" {
			line("#SBATCH --%s=%s", o.flag, o.v)
		}
	}
	line("#SBATCH --time=%d", int((q.TimeLimit+time.Minute-1)/time.Minute))
	line("#SBATCH --nodes=%d", q.AgentsPerAllocation)
	line("#SBATCH --ntasks-per-node=1")
	line("#SBATCH --cpus-per-task=%d", q.CPUs)
	line("#SBATCH --mem=%dM", (q.Memory+(1<<20)-1)>>20)
	if q.GPUs > 0 {
		line("#SBATCH --gres=gpu:%d", q.GPUs)
	}
	if q.SignalBefore > 0 {
		line("#SBATCH --signal=TERM@%d", int(q.SignalBefore/time.Second))
	}
	line("# Written by asymptote slurm (queue %s); each agent's node ID is", q.Name)
	line("# %s-<job ID>-<rank>.", nodeBase(q))
	env := map[string]string{
		"ASYMPTOTE_NATS_URL": a.NATSURL,
		"ASYMPTOTE_CPUS":     fmt.Sprint(q.CPUs),
		"ASYMPTOTE_MEMORY":   fmt.Sprint(q.Memory),
	}
	maps.Copy(env, a.Env)
	for _, k := range slices.Sorted(maps.Keys(env)) {
		line("export %s=%s", k, quote(env[k]))
	}
	// srun is told the CPUs again: SLURM 22.05 does not pass sbatch's
	// --cpus-per-task on to its steps.
	line("exec srun --kill-on-bad-exit=0 --ntasks-per-node=1 --cpus-per-task=%d sh -c %s %s", q.CPUs,
		quote(`exec "$0" agent -node-id "`+nodeBase(q)+`-${SLURM_JOB_ID}-${SLURM_PROCID}" -data-dir "${TMPDIR:-/tmp}/asymptote-agent-${SLURM_JOB_ID}-${SLURM_PROCID}"`), quote(a.Binary))
	return b.String()
}

// quote quotes s for the shell.
func quote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

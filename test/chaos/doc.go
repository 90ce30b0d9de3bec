// Package chaos proves asymptote's fault-tolerance promise against real
// processes: it builds the asymptote binary, starts real nats-server and
// etcd clusters on loopback as OS processes, runs coordinators and agents
// as separate `asymptote` processes, kills, pauses and restarts them at
// moments drawn from a seed while a study of a few hundred synthetic
// trials runs, and then checks the invariants by reading etcd directly:
// every trial terminal with exactly one result, a consistent attempt
// history, and the same results as a run without faults.
//
// The package has no code outside its tests. Run it with
//
//	go test ./test/chaos/                        # the CI pass, a few minutes
//	go test ./test/chaos/ -run Chaos -chaos.seed=N -v   # repeat a failing seed
//	go test ./test/chaos/ -run Soak -chaos.soak=20m -v -timeout 30m
//
// It needs nats-server and etcd on PATH (scripts/install-test-deps.sh
// installs them); without them the tests fail and say so.
package chaos

// Package poison drives adversarial input through every entry point of a
// real embedded cluster (NATS with JetStream, etcd, a leader and a standby
// coordinator, an agent) and proves the rule of docs/operations.md: no
// input, however bad, from any user or any method, stops the control plane
// or an agent. After each input a healthy study must run to completion
// and `status` must answer, and the bad input must have got a clear error
// or a quarantine with its reason.
//
// The entry points: the client API (submit, status, results, cancel,
// quarantine, resume, delete) with malformed, truncated, oversized and
// mistyped requests and with hostile specs; heartbeats, started events and
// durable trial events on the bus; dispatch and cancel messages to an
// agent; and a method's output (NaN, ±Inf and huge metrics, thousands of
// metric names, enormous names and error texts, metric reports alike).
//
// The package has no code outside its tests. Run it with
//
//	go test ./test/poison/                      # the CI pass, well under a minute
//	POISON_LONG=1 go test ./test/poison/ -v     # adds thousands of random mutations of valid messages
package poison

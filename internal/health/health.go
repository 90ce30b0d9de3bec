// Package health serves a process's liveness and readiness over HTTP, for
// the probes of a scheduler such as Kubernetes.
//
// GET /livez answers 200 while the process serves at all: it reports no
// dependency, so an outage of NATS or etcd never makes a scheduler restart
// every coordinator and agent at once. GET /readyz runs the process's
// checks (for a coordinator: NATS connected and etcd answering; for an
// agent: NATS connected) and answers 200 when every one passes, else 503;
// both bodies are JSON naming each check and, for a failing one, why.
package health

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"time"
)

// Check is one readiness condition: Probe returns nil when it holds, or
// what is wrong.
type Check struct {
	Name  string
	Probe func(ctx context.Context) error
}

// DefaultTimeout bounds each probe when Handler's timeout is zero.
const DefaultTimeout = 2 * time.Second

// Report is the body of both endpoints.
type Report struct {
	// Status is "ok" or "unavailable".
	Status string `json:"status"`
	// Checks are the readiness checks in the order given, with their
	// errors; absent on /livez.
	Checks []Result `json:"checks,omitempty"`
}

// Result is one check's outcome.
type Result struct {
	Name  string `json:"name"`
	OK    bool   `json:"ok"`
	Error string `json:"error,omitempty"`
}

// Handler serves /livez and /readyz. Each probe gets timeout (default
// DefaultTimeout), and all of them run at once, so a slow dependency
// delays the answer by one timeout at most.
func Handler(timeout time.Duration, checks ...Check) http.Handler {
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /livez", func(w http.ResponseWriter, _ *http.Request) {
		write(w, http.StatusOK, Report{Status: "ok"})
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		rep := Ready(r.Context(), timeout, checks...)
		code := http.StatusOK
		if rep.Status != "ok" {
			code = http.StatusServiceUnavailable
		}
		write(w, code, rep)
	})
	return mux
}

// Ready runs checks at once, each bounded by timeout, and reports them.
func Ready(ctx context.Context, timeout time.Duration, checks ...Check) Report {
	rep := Report{Status: "ok", Checks: make([]Result, len(checks))}
	var wg sync.WaitGroup
	for i, c := range checks {
		wg.Go(func() {
			cctx, cancel := context.WithTimeout(ctx, timeout)
			defer cancel()
			rep.Checks[i] = Result{Name: c.Name, OK: true}
			if err := probe(cctx, c, timeout); err != nil {
				rep.Checks[i] = Result{Name: c.Name, Error: err.Error()}
			}
		})
	}
	wg.Wait()
	for _, r := range rep.Checks {
		if !r.OK {
			rep.Status = "unavailable"
		}
	}
	return rep
}

// probe runs c.Probe, and gives up when ctx ends first: a probe that
// ignores its context must not hold the answer.
func probe(ctx context.Context, c Check, timeout time.Duration) error {
	done := make(chan error, 1)
	go func() { done <- c.Probe(ctx) }()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			return fmt.Errorf("%s: no answer within %s", c.Name, timeout)
		}
		return ctx.Err()
	}
}

func write(w http.ResponseWriter, code int, rep Report) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(rep)
}

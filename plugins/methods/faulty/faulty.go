// Package faulty is a method that misbehaves on request, for testing the
// agent's handling of broken methods (Nomad's mock driver, for methods).
//
// The trial parameter mode picks the behaviour:
//
//	ok         succeed at once
//	crash      report one step, then exit the process with exit_code (default 3)
//	panic      report one step, then panic
//	hang       report one step, then block forever, ignoring cancellation
//	garbage    write junk to the process's real stdout, then succeed
//	slow       sleep seconds (default 1), honouring cancellation, then succeed
//	fail       return an error
//	bad_param  reject the parameter "mode" with a *sdk.ParamError
//	flood      write bytes (default 32 MiB) to stderr, then succeed
//	fork       start a child `sleep 1000`, report its pid, then hang
//
// With fail_attempts N, attempts 1..N fail (as mode fail) and later ones
// behave as mode says: a way to test retries.
//
// Faults that must strike before the handshake cannot come from a trial's
// parameters. The environment variable ASYMPTOTE_FAULTY_STARTUP, set in the
// plugin process's environment, makes the process exit with status 1
// before the handshake (exit_early) or print junk where the handshake line
// belongs (garbage).
//
// Every successful result carries the plugin's pid as metric "pid", so
// tests can tell whether processes are reused.
package faulty

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"time"

	"asymptote.dev/asymptote/plugins/methods/internal/params"
	"asymptote.dev/asymptote/plugins/sdk"
)

// StartupEnv names the environment variable that selects a startup fault.
const StartupEnv = "ASYMPTOTE_FAULTY_STARTUP"

// ErrInjected is the error mode fail returns.
var ErrInjected = errors.New("injected failure")

// Method is the faulty method. The zero value is ready to use.
type Method struct{}

var (
	_ sdk.Method  = Method{}
	_ sdk.Starter = Method{}
)

// New returns the faulty method.
func New() Method { return Method{} }

var paramInfo = []sdk.ParamInfo{
	{Name: "mode", Type: "string", Default: "ok", Description: "ok, crash, panic, hang, garbage, slow, fail, bad_param, flood or fork"},
	{Name: "fail_attempts", Type: "int", Default: 0.0, Description: "fail attempts up to this number, then behave as mode says"},
	{Name: "seconds", Type: "float", Default: 1.0, Description: "how long mode slow sleeps"},
	{Name: "exit_code", Type: "int", Default: 3.0, Description: "exit status for mode crash"},
	{Name: "bytes", Type: "int", Default: float64(32 << 20), Description: "how much mode flood writes"},
}

// Info describes the method.
func (Method) Info(context.Context) (*sdk.Info, error) {
	return &sdk.Info{
		Name:        "faulty",
		Version:     "1",
		Description: "misbehaves on request (crash, hang, panic, flood, ...) to test the agent",
		Params:      paramInfo,
	}, nil
}

// Start applies the startup fault named by ASYMPTOTE_FAULTY_STARTUP.
func (Method) Start() error {
	switch v := os.Getenv(StartupEnv); v {
	case "":
		return nil
	case "exit_early":
		return errors.New("faulty: exiting before the handshake as asked")
	case "garbage":
		// Serve prints the handshake line after this: the host reads
		// this line first and gives up.
		fmt.Println("this is not a go-plugin handshake line")
		return nil
	default:
		return fmt.Errorf("faulty: unknown %s %q", StartupEnv, v)
	}
}

// Run misbehaves as the parameters say.
func (Method) Run(ctx context.Context, req *sdk.TrialRequest, report func(sdk.Metrics) error) (*sdk.Result, error) {
	// A misspelt parameter must not quietly become mode ok.
	if err := params.Unknown(req, paramInfo); err != nil {
		return nil, err
	}
	mode, err := req.String("mode", "ok")
	if err != nil {
		return nil, err
	}
	failAttempts, err := req.Int("fail_attempts", 0)
	if err != nil {
		return nil, err
	}
	if failAttempts > 0 && int64(req.Attempt) <= failAttempts {
		mode = "fail"
	}
	ok := &sdk.Result{Metrics: map[string]float64{"pid": float64(os.Getpid()), sdk.MetricValLoss: 1}}
	step := func(values map[string]float64) error {
		return report(sdk.Metrics{Step: 1, Values: values})
	}
	log := sdk.Logger().With("trial_id", req.TrialID, "attempt", req.Attempt)
	switch mode {
	case "ok":
		return ok, nil
	case "crash":
		code, err := req.Int("exit_code", 3)
		if err != nil {
			return nil, err
		}
		if err := step(map[string]float64{"pid": float64(os.Getpid())}); err != nil {
			return nil, err
		}
		// Give the report time to reach the host: the crash should come
		// mid-trial, after progress was seen.
		time.Sleep(50 * time.Millisecond)
		log.Error("faulty: crashing as asked", "exit_code", code)
		os.Exit(int(code))
	case "panic":
		if err := step(map[string]float64{"pid": float64(os.Getpid())}); err != nil {
			return nil, err
		}
		panic("faulty: panicking as asked")
	case "hang":
		if err := step(map[string]float64{"pid": float64(os.Getpid())}); err != nil {
			return nil, err
		}
		log.Info("faulty: hanging, ignoring cancellation")
		<-make(chan struct{})
	case "garbage":
		// The real stdout, not os.Stdout, which go-plugin redirects.
		out := os.NewFile(1, "stdout")
		fmt.Fprintln(out, "garbage on stdout \x00\xff|1|2|unix|nowhere|grpc")
		return ok, nil
	case "slow":
		secs, err := req.Float("seconds", 1)
		if err != nil {
			return nil, err
		}
		t := time.NewTimer(time.Duration(secs * float64(time.Second)))
		defer t.Stop()
		select {
		case <-t.C:
			return ok, nil
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	case "fail":
		return nil, fmt.Errorf("attempt %d: %w", req.Attempt, ErrInjected)
	case "bad_param":
		return nil, &sdk.ParamError{Param: "mode", Reason: "bad_param rejects itself"}
	case "flood":
		n, err := req.Int("bytes", 32<<20)
		if err != nil {
			return nil, err
		}
		line := strings.Repeat("flood ", 170) + "\n" // about 1 KiB
		for written := int64(0); written < n; written += int64(len(line)) {
			if _, err := os.Stderr.WriteString(line); err != nil {
				return nil, err
			}
		}
		return ok, nil
	case "fork":
		child := exec.Command("sleep", "1000")
		if err := child.Start(); err != nil {
			return nil, err
		}
		if err := step(map[string]float64{"child_pid": float64(child.Process.Pid)}); err != nil {
			return nil, err
		}
		<-make(chan struct{})
	case "exit_early":
		return nil, &sdk.ParamError{Param: "mode", Reason: "exit_early acts at process start: set " + StartupEnv + "=exit_early in the plugin's environment"}
	default:
		return nil, &sdk.ParamError{Param: "mode", Reason: fmt.Sprintf("unknown mode %q", mode)}
	}
	panic("unreachable")
}

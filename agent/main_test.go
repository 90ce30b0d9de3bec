package agent_test

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"testing"

	"asymptote.dev/asymptote/plugins/sdk"
)

// TestMain lets the test binary serve methods as a plugin: a method
// manager under test re-executes it as `<test binary> method <name>`, and
// go-plugin's cookie in the environment says to serve instead of testing.
func TestMain(m *testing.M) {
	if os.Getenv(sdk.Handshake.MagicCookieKey) != "" {
		if len(os.Args) != 3 || os.Args[1] != "method" || os.Args[2] != "envprobe" {
			fmt.Fprintf(os.Stderr, "test plugin: bad arguments %q\n", os.Args[1:])
			os.Exit(2)
		}
		sdk.Serve(envProbe{})
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// threadVars are the variables that bound numeric libraries' threads.
var threadVars = []string{"OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "VECLIB_MAXIMUM_THREADS", "NUMEXPR_NUM_THREADS"}

// envProbe is a method that reports, as metrics, the thread variables of
// the environment of the process it runs in (-1 for one that is unset).
type envProbe struct{}

func (envProbe) Info(context.Context) (*sdk.Info, error) {
	return &sdk.Info{Name: "envprobe", Version: "1", Description: "reports its process's thread variables"}, nil
}

func (envProbe) Run(_ context.Context, req *sdk.TrialRequest, _ func(sdk.Metrics) error) (*sdk.Result, error) {
	m := map[string]float64{"threads": float64(req.Threads)}
	for _, k := range threadVars {
		m[k] = -1
		if v, ok := os.LookupEnv(k); ok {
			n, err := strconv.Atoi(v)
			if err != nil {
				return nil, fmt.Errorf("%s=%q: %w", k, v, err)
			}
			m[k] = float64(n)
		}
	}
	return &sdk.Result{Metrics: m}, nil
}

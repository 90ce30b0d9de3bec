package methodmgr

import (
	"errors"
	"slices"
	"testing"

	"asymptote.dev/asymptote/plugins/methods/faulty"
)

// TestScrubEnv: a method inherits the base list and what the operator
// passes, and nothing else of the agent's environment.
func TestScrubEnv(t *testing.T) {
	environ := []string{
		"PATH=/usr/bin", "HOME=/home/a", "LC_ALL=C", "CUDA_HOME=/usr/local/cuda", "ASYMPTOTE_DATA_DIR=/data",
		"ASYMPTOTE_NATS_URL=tls://nats:4222", "ASYMPTOTE_NATS_NKEY=/etc/asymptote/agent.nk", "ASYMPTOTE_ETCD_PASSWORD_FILE=/pw",
		"AWS_SECRET_ACCESS_KEY=x", "WANDB_API_KEY=y", "HF_HOME=/hf", "HF_TOKEN=z", "NOEQUALS",
	}
	tests := []struct {
		name string
		pass []string
		want []string
	}{
		{"base only", nil, []string{"PATH=/usr/bin", "HOME=/home/a", "LC_ALL=C", "CUDA_HOME=/usr/local/cuda", "ASYMPTOTE_DATA_DIR=/data"}},
		{"a name and a prefix", []string{"WANDB_API_KEY", "HF_*"}, []string{"PATH=/usr/bin", "HOME=/home/a", "LC_ALL=C", "CUDA_HOME=/usr/local/cuda", "ASYMPTOTE_DATA_DIR=/data", "WANDB_API_KEY=y", "HF_HOME=/hf", "HF_TOKEN=z"}},
		{"a name is not a prefix", []string{"HF"}, []string{"PATH=/usr/bin", "HOME=/home/a", "LC_ALL=C", "CUDA_HOME=/usr/local/cuda", "ASYMPTOTE_DATA_DIR=/data"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := scrubEnv(environ, tt.pass); !slices.Equal(got, tt.want) {
				t.Errorf("scrubEnv(%v) = %v, want %v", tt.pass, got, tt.want)
			}
		})
	}
}

// TestPluginEnvScrubbed runs a real method process with a variable in the
// agent's environment that makes faulty exit before its handshake: left
// out by default, the method runs; passed with PassEnv, it takes effect.
func TestPluginEnvScrubbed(t *testing.T) {
	t.Setenv(faulty.StartupEnv, "exit_early")
	for _, tt := range []struct {
		name string
		pass []string
		want error
	}{
		{"not passed", nil, nil},
		{"passed", []string{"ASYMPTOTE_FAULTY_*"}, ErrExited},
	} {
		t.Run(tt.name, func(t *testing.T) {
			m := newManager(t, func(c *Config) { c.PassEnv = tt.pass })
			_, err := m.Run(t.Context(), faultyRun("env", map[string]any{"mode": "ok"}), nil)
			if !errors.Is(err, tt.want) && (tt.want != nil || err != nil) {
				t.Errorf("run: %v, want %v", err, tt.want)
			}
		})
	}
}

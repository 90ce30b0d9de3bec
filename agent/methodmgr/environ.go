package methodmgr

import (
	"strings"

	"asymptote.dev/asymptote/plugins/methods/corpus"
)

// baseEnv lists what a method process inherits of the agent's
// environment, besides Config.PassEnv: what finding programs, libraries,
// locales, a temporary directory and GPUs needs. A trailing * matches a
// prefix. The agent's own settings, such as its NATS URL and credentials
// (ASYMPTOTE_NATS_*), are not passed on: a method never needs the bus.
var baseEnv = []string{
	"PATH", "HOME", "USER", "LOGNAME", "SHELL", "LANG", "LANGUAGE", "LC_*", "TZ", "TMPDIR",
	// The cache and data directories (the built-in methods' data may sit
	// under XDG_CACHE_HOME).
	"XDG_*",
	"LD_LIBRARY_PATH", "CUDA_*", "NVIDIA_*", "ROCR_*", "HIP_*",
	"VIRTUAL_ENV", "CONDA_*", "PYTHONPATH", "PYTHONHOME",
	// The built-in methods look here first for their training data.
	corpus.DataDirEnv,
	// Coverage builds of the binary write their profiles here.
	"GOCOVERDIR",
}

// scrubEnv returns the entries of environ (KEY=VALUE) whose key baseEnv or
// pass lists.
func scrubEnv(environ, pass []string) []string {
	keep := func(key string) bool {
		for _, lists := range [][]string{baseEnv, pass} {
			for _, p := range lists {
				if prefix, ok := strings.CutSuffix(p, "*"); ok && strings.HasPrefix(key, prefix) || p == key {
					return true
				}
			}
		}
		return false
	}
	var out []string
	for _, kv := range environ {
		if key, _, ok := strings.Cut(kv, "="); ok && keep(key) {
			out = append(out, kv)
		}
	}
	return out
}

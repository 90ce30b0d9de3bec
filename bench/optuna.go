package bench

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
)

// OptunaRun is one run of bench/optuna/optuna_bench.py.
type OptunaRun struct {
	Storage       string  `json:"storage"`
	Workers       int     `json:"workers"`
	Trials        int     `json:"trials"`
	Seconds       float64 `json:"seconds"`
	TrialsPerSec  float64 `json:"trials_per_s"`
	FailedWorkers int     `json:"failed_workers"`
	Error         string  `json:"error"`
}

// optunaScript is the peer benchmark's path relative to the module root.
const optunaScript = "bench/optuna/optuna_bench.py"

// findOptunaScript looks for the script in dir and its parents.
func findOptunaScript(dir string) (string, error) {
	for d := dir; ; d = filepath.Dir(d) {
		p := filepath.Join(d, optunaScript)
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
		if filepath.Dir(d) == d {
			return "", fmt.Errorf("bench: %s not found above %s", optunaScript, dir)
		}
	}
}

// Optuna runs the peer benchmark with Debian's python3 and python3-optuna.
// It returns an error, and the suite reports the peer as missing, when
// Optuna is not installed.
func Optuna(ctx context.Context, opts Options, storages []string, workers []int, rdbTrials, journalTrials, repeats int) ([]OptunaRun, error) {
	opts.setDefaults()
	script := opts.OptunaScript
	if script == "" {
		wd, _ := os.Getwd()
		var err error
		if script, err = findOptunaScript(wd); err != nil {
			return nil, err
		}
	}
	ws := make([]string, len(workers))
	for i, w := range workers {
		ws[i] = strconv.Itoa(w)
	}
	cmd := exec.CommandContext(ctx, opts.Python, script,
		"--storages", strings.Join(storages, ","), "--workers", strings.Join(ws, ","),
		"--trials", strconv.Itoa(rdbTrials), "--journal-trials", strconv.Itoa(journalTrials),
		"--repeats", strconv.Itoa(repeats), "--tmp", opts.TempDir)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, fmt.Errorf("bench: optuna: %w", err)
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("bench: optuna: %w", err)
	}
	var runs []OptunaRun
	sc := bufio.NewScanner(out)
	for sc.Scan() {
		var r OptunaRun
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			continue
		}
		opts.Logger.Info("optuna run", "storage", r.Storage, "workers", r.Workers, "trials_per_s", r.TrialsPerSec, "error", r.Error)
		runs = append(runs, r)
	}
	if err := cmd.Wait(); err != nil {
		return runs, fmt.Errorf("bench: optuna: %w: %s", err, lastLines(stderr.String(), 5))
	}
	return runs, nil
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

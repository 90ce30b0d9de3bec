// Package fingerprint measures what a host can offer to trials: CPU cores,
// memory and NVIDIA GPUs. It reads /proc, the cgroup files of the current
// process and the output of nvidia-smi, so it needs neither cgo nor a GPU
// library, and a host without nvidia-smi simply has no GPUs.
package fingerprint

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"runtime"
	"time"
)

// GPU is one NVIDIA GPU as nvidia-smi reports it. It has the fields of
// resource.GPU, so resource.GPU(g) converts it.
type GPU struct {
	// Index is nvidia-smi's index, the number CUDA_VISIBLE_DEVICES uses.
	Index int `json:"index"`
	// UUID is the GPU's stable identity, such as "GPU-5a3c…".
	UUID string `json:"uuid"`
	// Model is the product name, such as "NVIDIA H100 80GB HBM3".
	Model string `json:"model"`
	// MemoryMiB is the total memory; 0 when nvidia-smi reports [N/A].
	MemoryMiB int64 `json:"memory_mib"`
}

// Resources is what a host offers. Its fields mirror resource.Resources,
// so the agent converts with a plain struct conversion per GPU.
type Resources struct {
	// CPU is the number of cores this process may use: the CPU count,
	// lowered by a cgroup CPU quota if there is one.
	CPU float64
	// Memory is in bytes: MemTotal, lowered by a cgroup memory limit.
	Memory int64
	// GPUs are sorted by index; nil on a host without nvidia-smi.
	GPUs []GPU
}

// Runner runs a command and returns its standard output. It exists so
// tests can replay recorded nvidia-smi output.
type Runner func(ctx context.Context, name string, args ...string) ([]byte, error)

// Probe measures a host. The zero Probe measures the real one; tests set
// the fields to fakes.
type Probe struct {
	// FS is the host's file system root, where proc/meminfo,
	// proc/self/cgroup and sys/fs/cgroup are read; os.DirFS("/") if nil.
	FS fs.FS
	// NumCPU returns the usable CPU count; runtime.NumCPU if nil.
	NumCPU func() int
	// LookPath finds nvidia-smi; exec.LookPath if nil.
	LookPath func(file string) (string, error)
	// Run runs nvidia-smi; exec.CommandContext if nil.
	Run Runner
	// Timeout bounds the nvidia-smi call; 10s if zero.
	Timeout time.Duration
}

// gpuQuery is the nvidia-smi invocation whose output ParseGPUs reads.
var gpuQuery = []string{"--query-gpu=index,uuid,name,memory.total", "--format=csv,noheader,nounits"}

// Host measures the real host. See Probe.Host.
func Host(ctx context.Context) (Resources, error) {
	return Probe{}.Host(ctx)
}

// Host measures the host. It returns what it could measure together with
// an error for the parts it could not: a broken nvidia-smi (a driver that
// is not loaded, say) gives CPU and memory with an error, so the caller
// chooses between refusing to start and running without GPUs. A missing
// nvidia-smi is not an error.
func (p Probe) Host(ctx context.Context) (Resources, error) {
	fsys := p.FS
	if fsys == nil {
		fsys = os.DirFS("/")
	}
	numCPU := p.NumCPU
	if numCPU == nil {
		numCPU = runtime.NumCPU
	}
	cg := readCgroups(fsys)
	var errs []error
	res := Resources{CPU: float64(numCPU())}
	if quota, ok := cg.cpuLimit(); ok && quota < res.CPU {
		res.CPU = quota
	}
	mem, err := memTotal(fsys)
	if err != nil {
		errs = append(errs, err)
	}
	if limit, ok := cg.memoryLimit(); ok && (mem == 0 || limit < mem) {
		mem = limit
	}
	res.Memory = mem
	gpus, err := p.gpus(ctx)
	if err != nil {
		errs = append(errs, err)
	}
	res.GPUs = gpus
	return res, errors.Join(errs...)
}

func (p Probe) gpus(ctx context.Context) ([]GPU, error) {
	lookPath := p.LookPath
	if lookPath == nil {
		lookPath = exec.LookPath
	}
	path, err := lookPath("nvidia-smi")
	if err != nil {
		return nil, nil // no NVIDIA tooling: a CPU host
	}
	run := p.Run
	if run == nil {
		run = runCommand
	}
	timeout := p.Timeout
	if timeout == 0 {
		timeout = 10 * time.Second
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	out, runErr := run(ctx, path, gpuQuery...)
	if noDevices(out) {
		return nil, nil
	}
	if runErr != nil {
		return nil, fmt.Errorf("query GPUs with %s: %w%s", path, runErr, excerpt(out))
	}
	gpus, err := ParseGPUs(out)
	if err != nil {
		return nil, fmt.Errorf("query GPUs with %s: %w", path, err)
	}
	return gpus, nil
}

// runCommand runs name and returns its standard output. On failure the
// error carries what the command wrote to standard error.
func runCommand(ctx context.Context, name string, args ...string) ([]byte, error) {
	out, err := exec.CommandContext(ctx, name, args...).Output()
	var ee *exec.ExitError
	if errors.As(err, &ee) && len(ee.Stderr) > 0 {
		err = fmt.Errorf("%w: %s", err, firstLine(ee.Stderr))
	}
	return out, err
}

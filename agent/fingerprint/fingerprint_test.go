package fingerprint

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"testing/fstest"
)

const meminfo = "MemTotal:       16384000 kB\nMemFree:         1000000 kB\n"

// fakeSMI returns a Probe whose nvidia-smi prints out and fails with err.
func fakeSMI(t *testing.T, fsys fstest.MapFS, out string, err error) Probe {
	t.Helper()
	return Probe{
		FS:       fsys,
		NumCPU:   func() int { return 8 },
		LookPath: func(string) (string, error) { return "/usr/bin/nvidia-smi", nil },
		Run: func(_ context.Context, name string, args ...string) ([]byte, error) {
			if name != "/usr/bin/nvidia-smi" || strings.Join(args, " ") != strings.Join(gpuQuery, " ") {
				t.Errorf("ran %s %v, want nvidia-smi %v", name, args, gpuQuery)
			}
			return []byte(out), err
		},
	}
}

func noSMI(fsys fstest.MapFS) Probe {
	return Probe{
		FS:       fsys,
		NumCPU:   func() int { return 8 },
		LookPath: func(string) (string, error) { return "", exec.ErrNotFound },
	}
}

func TestHostCPUAndMemory(t *testing.T) {
	t.Parallel()
	base := func(files map[string]string) fstest.MapFS {
		fsys := fstest.MapFS{"proc/meminfo": {Data: []byte(meminfo)}}
		for name, data := range files {
			fsys[name] = &fstest.MapFile{Data: []byte(data)}
		}
		return fsys
	}
	const memTotal = 16384000 << 10
	tests := []struct {
		name    string
		files   map[string]string
		wantCPU float64
		wantMem int64
	}{
		{"no cgroup files", nil, 8, memTotal},
		{"v2 unlimited", map[string]string{
			"proc/self/cgroup":         "0::/\n",
			"sys/fs/cgroup/cpu.max":    "max 100000\n",
			"sys/fs/cgroup/memory.max": "max\n",
		}, 8, memTotal},
		{"v2 container limits", map[string]string{
			"proc/self/cgroup":         "0::/\n",
			"sys/fs/cgroup/cpu.max":    "250000 100000\n",
			"sys/fs/cgroup/memory.max": "4294967296\n",
		}, 2.5, 4 << 30},
		{"v2 nested: the tightest ancestor wins", map[string]string{
			"proc/self/cgroup": "0::/system.slice/agent.service\n",
			"sys/fs/cgroup/system.slice/agent.service/cpu.max":    "max 100000\n",
			"sys/fs/cgroup/system.slice/cpu.max":                  "300000 100000\n",
			"sys/fs/cgroup/system.slice/agent.service/memory.max": "8589934592\n",
			"sys/fs/cgroup/system.slice/memory.max":               "2147483648\n",
		}, 3, 2 << 30},
		{"v2 path not mounted in container", map[string]string{
			"proc/self/cgroup":         "0::/kubepods/burstable/pod1/c1\n",
			"sys/fs/cgroup/cpu.max":    "50000 100000\n",
			"sys/fs/cgroup/memory.max": "1073741824\n",
		}, 0.5, 1 << 30},
		{"quota above the CPU count", map[string]string{
			"proc/self/cgroup":      "0::/\n",
			"sys/fs/cgroup/cpu.max": "1600000 100000\n",
		}, 8, memTotal},
		{"limit above MemTotal", map[string]string{
			"proc/self/cgroup":         "0::/\n",
			"sys/fs/cgroup/memory.max": "68719476736\n",
		}, 8, memTotal},
		{"v1 limits", map[string]string{
			"proc/self/cgroup": "12:memory:/docker/abc\n4:cpu,cpuacct:/docker/abc\n1:name=systemd:/docker/abc\n",
			"sys/fs/cgroup/cpu,cpuacct/docker/abc/cpu.cfs_quota_us":  "150000\n",
			"sys/fs/cgroup/cpu,cpuacct/docker/abc/cpu.cfs_period_us": "100000\n",
			"sys/fs/cgroup/memory/docker/abc/memory.limit_in_bytes":  "536870912\n",
		}, 1.5, 512 << 20},
		{"v1 unlimited", map[string]string{
			"proc/self/cgroup":                            "12:memory:/\n4:cpu,cpuacct:/\n",
			"sys/fs/cgroup/cpu,cpuacct/cpu.cfs_quota_us":  "-1\n",
			"sys/fs/cgroup/cpu,cpuacct/cpu.cfs_period_us": "100000\n",
			"sys/fs/cgroup/memory/memory.limit_in_bytes":  "9223372036854771712\n",
		}, 8, memTotal},
		{"garbage cgroup files are ignored", map[string]string{
			"proc/self/cgroup":         "0::/\nnonsense\n",
			"sys/fs/cgroup/cpu.max":    "lots\n",
			"sys/fs/cgroup/memory.max": "-5\n",
		}, 8, memTotal},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			res, err := noSMI(base(tt.files)).Host(t.Context())
			if err != nil {
				t.Fatal(err)
			}
			if res.CPU != tt.wantCPU || res.Memory != tt.wantMem || res.GPUs != nil {
				t.Errorf("Host = %+v, want CPU %v, Memory %d, no GPUs", res, tt.wantCPU, tt.wantMem)
			}
		})
	}
}

func TestHostMeminfoErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		fsys fstest.MapFS
		want string
	}{
		{"missing", fstest.MapFS{}, "read memory size:"},
		{"no MemTotal", fstest.MapFS{"proc/meminfo": {Data: []byte("MemFree: 1 kB\n")}}, "no MemTotal"},
		{"malformed", fstest.MapFS{"proc/meminfo": {Data: []byte("MemTotal: lots\n")}}, "malformed /proc/meminfo line"},
	}
	for _, tt := range tests {
		res, err := noSMI(tt.fsys).Host(t.Context())
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: Host error = %v, want one containing %q", tt.name, err, tt.want)
		}
		if res.CPU != 8 {
			t.Errorf("%s: Host CPU = %v, want 8 even when memory is unknown", tt.name, res.CPU)
		}
	}
	// A cgroup limit still gives a memory size when meminfo is unreadable.
	fsys := fstest.MapFS{"proc/self/cgroup": {Data: []byte("0::/\n")}, "sys/fs/cgroup/memory.max": {Data: []byte("1048576\n")}}
	if res, _ := noSMI(fsys).Host(t.Context()); res.Memory != 1<<20 {
		t.Errorf("Host Memory = %d, want the cgroup limit 1048576", res.Memory)
	}
}

func TestHostGPUs(t *testing.T) {
	t.Parallel()
	fsys := fstest.MapFS{"proc/meminfo": {Data: []byte(meminfo)}}
	eight, err := os.ReadFile(filepath.Join("testdata", "nvidia-smi", "a100x8.csv"))
	if err != nil {
		t.Fatal(err)
	}
	driverDown := errors.New("exit status 9")
	tests := []struct {
		name     string
		probe    Probe
		wantGPUs int
		wantErr  string
	}{
		{"no nvidia-smi", noSMI(fsys), 0, ""},
		{"eight GPUs", fakeSMI(t, fsys, string(eight), nil), 8, ""},
		{"no devices", fakeSMI(t, fsys, "No devices were found\n", errors.New("exit status 6")), 0, ""},
		{"driver not loaded", fakeSMI(t, fsys, "NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver.\n", driverDown),
			0, "query GPUs with /usr/bin/nvidia-smi: exit status 9: NVIDIA-SMI has failed"},
		{"malformed output", fakeSMI(t, fsys, "index, uuid\n", nil), 0, "query GPUs with /usr/bin/nvidia-smi: nvidia-smi line 1:"},
	}
	for _, tt := range tests {
		res, err := tt.probe.Host(t.Context())
		if tt.wantErr == "" && err != nil {
			t.Errorf("%s: Host error = %v", tt.name, err)
		}
		if tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)) {
			t.Errorf("%s: Host error = %v, want one containing %q", tt.name, err, tt.wantErr)
		}
		if len(res.GPUs) != tt.wantGPUs {
			t.Errorf("%s: Host found %d GPUs, want %d", tt.name, len(res.GPUs), tt.wantGPUs)
		}
		if res.CPU != 8 || res.Memory != 16384000<<10 {
			t.Errorf("%s: Host = CPU %v, Memory %d; CPU and memory must survive a GPU problem", tt.name, res.CPU, res.Memory)
		}
	}
	if _, err := fakeSMI(t, fsys, "", driverDown).Host(t.Context()); !errors.Is(err, driverDown) {
		t.Errorf("Host error %v does not wrap the runner's error", err)
	}
}

func TestHostTimeout(t *testing.T) {
	t.Parallel()
	p := noSMI(fstest.MapFS{"proc/meminfo": {Data: []byte(meminfo)}})
	p.LookPath = func(string) (string, error) { return "nvidia-smi", nil }
	p.Timeout = 1 // a nanosecond: the runner must see an expired context
	p.Run = func(ctx context.Context, _ string, _ ...string) ([]byte, error) {
		<-ctx.Done()
		return nil, ctx.Err()
	}
	if _, err := p.Host(t.Context()); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Host error = %v, want context.DeadlineExceeded", err)
	}
}

// TestHostReal measures this machine. Without nvidia-smi on PATH it must
// find no GPUs and no error; with it, at least one GPU.
func TestHostReal(t *testing.T) {
	t.Parallel()
	res, err := Host(t.Context())
	_, lookErr := exec.LookPath("nvidia-smi")
	if lookErr != nil && (err != nil || res.GPUs != nil) {
		t.Errorf("Host() on a host without nvidia-smi = %+v, %v; want no GPUs and no error", res, err)
	}
	if lookErr == nil && (err != nil || len(res.GPUs) == 0) {
		t.Errorf("Host() with nvidia-smi on PATH = %+v, %v; want at least one GPU", res, err)
	}
	if res.CPU <= 0 || res.Memory <= 0 {
		t.Errorf("Host() = CPU %v, Memory %d; want both positive", res.CPU, res.Memory)
	}
	t.Logf("this host: %+v", res)
}

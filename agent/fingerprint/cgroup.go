package fingerprint

import (
	"bytes"
	"fmt"
	"io/fs"
	"path"
	"slices"
	"strconv"
	"strings"
)

// cgroups locates the cgroup directories whose limits apply to this
// process: its own and each ancestor, for cgroup v2 and for the v1 cpu and
// memory controllers. A limit anywhere up the tree binds, so each lookup
// takes the smallest.
type cgroups struct {
	fsys  fs.FS
	v2    []string
	cpuV1 []string
	memV1 []string
}

const cgroupRoot = "sys/fs/cgroup"

// readCgroups reads proc/self/cgroup. When it cannot, it falls back to the
// roots of the hierarchies, which is what a container sees.
func readCgroups(fsys fs.FS) cgroups {
	cg := cgroups{fsys: fsys}
	data, err := fs.ReadFile(fsys, "proc/self/cgroup")
	if err != nil {
		cg.v2 = []string{cgroupRoot}
		cg.cpuV1 = []string{path.Join(cgroupRoot, "cpu")}
		cg.memV1 = []string{path.Join(cgroupRoot, "memory")}
		return cg
	}
	for _, line := range strings.Split(string(data), "\n") {
		// hierarchy-ID:controller-list:path
		f := strings.SplitN(line, ":", 3)
		if len(f) != 3 {
			continue
		}
		switch {
		case f[0] == "0" && f[1] == "":
			cg.v2 = ancestors(cgroupRoot, f[2])
		case hasController(f[1], "cpu"):
			cg.cpuV1 = ancestors(path.Join(cgroupRoot, f[1]), f[2])
		case hasController(f[1], "memory"):
			cg.memV1 = ancestors(path.Join(cgroupRoot, f[1]), f[2])
		}
	}
	return cg
}

func hasController(list, c string) bool {
	return slices.Contains(strings.Split(list, ","), c)
}

// ancestors returns mount/p and every parent up to mount itself. Inside a
// container the path may name the host's hierarchy, which is not mounted
// there; the mount root is then the container's own cgroup.
func ancestors(mount, p string) []string {
	var dirs []string
	for p = path.Clean("/" + p); ; p = path.Dir(p) {
		dirs = append(dirs, path.Join(mount, p))
		if p == "/" {
			return dirs
		}
	}
}

// cpuLimit returns the CPU quota in cores, if any cgroup sets one.
func (cg cgroups) cpuLimit() (float64, bool) {
	best, found := 0.0, false
	consider := func(quota, period float64) {
		if quota > 0 && period > 0 && (!found || quota/period < best) {
			best, found = quota/period, true
		}
	}
	for _, dir := range cg.v2 {
		// cpu.max: "$MAX $PERIOD", where $MAX may be "max".
		f := strings.Fields(cg.read(dir, "cpu.max"))
		if len(f) == 2 && f[0] != "max" {
			consider(parseFloat(f[0]), parseFloat(f[1]))
		}
	}
	for _, dir := range cg.cpuV1 {
		// cfs_quota_us is -1 when unlimited.
		consider(parseFloat(cg.read(dir, "cpu.cfs_quota_us")), parseFloat(cg.read(dir, "cpu.cfs_period_us")))
	}
	return best, found
}

// unlimitedV1 is the smallest memory.limit_in_bytes treated as no limit;
// the kernel reports "unlimited" as a value near the int64 maximum.
const unlimitedV1 = 1 << 62

// memoryLimit returns the memory limit in bytes, if any cgroup sets one.
func (cg cgroups) memoryLimit() (int64, bool) {
	var best int64
	found := false
	consider := func(s string) {
		v, err := strconv.ParseInt(s, 10, 64)
		if err == nil && v > 0 && v < unlimitedV1 && (!found || v < best) {
			best, found = v, true
		}
	}
	for _, dir := range cg.v2 {
		consider(cg.read(dir, "memory.max")) // "max" when unlimited
	}
	for _, dir := range cg.memV1 {
		consider(cg.read(dir, "memory.limit_in_bytes"))
	}
	return best, found
}

// read returns a cgroup file's trimmed content, or "" if it is absent.
func (cg cgroups) read(dir, file string) string {
	b, err := fs.ReadFile(cg.fsys, path.Join(dir, file))
	if err != nil {
		return ""
	}
	return string(bytes.TrimSpace(b))
}

func parseFloat(s string) float64 {
	f, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return 0
	}
	return f
}

// memTotal reads MemTotal from proc/meminfo, in bytes.
func memTotal(fsys fs.FS) (int64, error) {
	data, err := fs.ReadFile(fsys, "proc/meminfo")
	if err != nil {
		return 0, fmt.Errorf("read memory size: %w", err)
	}
	for _, line := range strings.Split(string(data), "\n") {
		rest, ok := strings.CutPrefix(line, "MemTotal:")
		if !ok {
			continue
		}
		f := strings.Fields(rest)
		if len(f) == 2 && f[1] == "kB" {
			if kb, err := strconv.ParseInt(f[0], 10, 64); err == nil && kb > 0 {
				return kb << 10, nil
			}
		}
		return 0, fmt.Errorf("read memory size: malformed /proc/meminfo line %q", line)
	}
	return 0, fmt.Errorf("read memory size: no MemTotal in /proc/meminfo")
}

package fingerprint

import (
	"bytes"
	"fmt"
	"sort"
	"strconv"
	"strings"
)

// ParseGPUs parses the output of
//
//	nvidia-smi --query-gpu=index,uuid,name,memory.total --format=csv,noheader,nounits
//
// one GPU per line, such as "0, GPU-5a3c…, NVIDIA H100 80GB HBM3, 81559".
// A memory of [N/A] (reported by some virtualised and MIG setups) is 0.
// Any other malformed line is an error naming its line number. Empty
// output means no GPUs.
func ParseGPUs(out []byte) ([]GPU, error) {
	var gpus []GPU
	seen := map[int]int{}
	for i, raw := range strings.Split(string(out), "\n") {
		num := i + 1
		line := strings.TrimSpace(strings.TrimSuffix(raw, "\r"))
		if line == "" {
			continue
		}
		f := strings.Split(line, ",")
		if len(f) < 4 {
			return nil, fmt.Errorf("nvidia-smi line %d: %q: want 4 comma-separated fields (index, uuid, name, memory.total), got %d", num, line, len(f))
		}
		for j := range f {
			f[j] = strings.TrimSpace(f[j])
		}
		// A product name could contain a comma; index, uuid and memory
		// cannot, so the name is everything between them.
		idxField, uuid, model, memField := f[0], f[1], strings.Join(f[2:len(f)-1], ", "), f[len(f)-1]
		idx, err := strconv.Atoi(idxField)
		if err != nil || idx < 0 {
			return nil, fmt.Errorf("nvidia-smi line %d: %q: index %q is not a GPU index (is the output in --format=csv,noheader,nounits?)", num, line, idxField)
		}
		if first, dup := seen[idx]; dup {
			return nil, fmt.Errorf("nvidia-smi line %d: GPU index %d repeats line %d", num, idx, first)
		}
		seen[idx] = num
		if uuid == "" || uuid == "[N/A]" {
			return nil, fmt.Errorf("nvidia-smi line %d: %q: GPU %d has no UUID", num, line, idx)
		}
		var mem int64
		if memField != "[N/A]" {
			mem, err = strconv.ParseInt(memField, 10, 64)
			if err != nil || mem < 0 {
				return nil, fmt.Errorf("nvidia-smi line %d: %q: memory.total %q is not a number of MiB (is the output in nounits?)", num, line, memField)
			}
		}
		gpus = append(gpus, GPU{Index: idx, UUID: uuid, Model: model, MemoryMiB: mem})
	}
	sort.Slice(gpus, func(i, j int) bool { return gpus[i].Index < gpus[j].Index })
	return gpus, nil
}

// noDevices recognises nvidia-smi's report of a host whose driver works
// but has no GPU attached; it exits non-zero, yet the host simply has none.
func noDevices(out []byte) bool {
	return bytes.Contains(out, []byte("No devices were found"))
}

// excerpt returns the first line of out, for error messages.
func excerpt(out []byte) string {
	if l := firstLine(out); l != "" {
		return ": " + l
	}
	return ""
}

func firstLine(b []byte) string {
	s := strings.TrimSpace(string(b))
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[:i]
	}
	const max = 200
	if len(s) > max {
		s = s[:max] + "…"
	}
	return s
}

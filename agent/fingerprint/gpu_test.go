package fingerprint

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite testdata/nvidia-smi/*.golden")

// TestParseGPUsGolden parses every testdata/nvidia-smi/*.csv and compares
// the result, GPUs or error, with the .golden file beside it.
func TestParseGPUsGolden(t *testing.T) {
	t.Parallel()
	files, err := filepath.Glob(filepath.Join("testdata", "nvidia-smi", "*.csv"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no recorded outputs: %v", err)
	}
	for _, file := range files {
		t.Run(filepath.Base(file), func(t *testing.T) {
			t.Parallel()
			out, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			got := renderParse(t, out)
			golden := strings.TrimSuffix(file, ".csv") + ".golden"
			if *update {
				if err := os.WriteFile(golden, got, 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run with -update to create it)", err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("ParseGPUs(%s) =\n%s\nwant\n%s", file, got, want)
			}
		})
	}
}

func renderParse(t *testing.T, out []byte) []byte {
	t.Helper()
	gpus, err := ParseGPUs(out)
	if err != nil {
		if gpus != nil {
			t.Errorf("ParseGPUs returned GPUs with error %v", err)
		}
		return []byte("error: " + err.Error() + "\n")
	}
	var buf bytes.Buffer
	for _, g := range gpus {
		b, err := json.Marshal(g)
		if err != nil {
			t.Fatal(err)
		}
		buf.Write(b)
		buf.WriteByte('\n')
	}
	return buf.Bytes()
}

func TestParseGPUs(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, in string
		want     []GPU
		wantErr  string
	}{
		{"one", "0, GPU-a, NVIDIA H100 80GB HBM3, 81559\n", []GPU{{0, "GPU-a", "NVIDIA H100 80GB HBM3", 81559}}, ""},
		{"crlf and blank lines", "\r\n0, GPU-a, T4, 15360\r\n\r\n", []GPU{{0, "GPU-a", "T4", 15360}}, ""},
		{"comma in name", "3, GPU-c, Vendor, Model X, 1024\n", []GPU{{3, "GPU-c", "Vendor, Model X", 1024}}, ""},
		{"empty", "", nil, ""},
		{"bad index", "x, GPU-a, T4, 1\n", nil, `line 1: "x, GPU-a, T4, 1": index "x" is not a GPU index`},
		{"negative index", "-1, GPU-a, T4, 1\n", nil, `index "-1" is not a GPU index`},
		{"no uuid", "0, [N/A], T4, 1\n", nil, "line 1: \"0, [N/A], T4, 1\": GPU 0 has no UUID"},
		{"units left in", "0, GPU-a, T4, 15360 MiB\n", nil, `memory.total "15360 MiB" is not a number of MiB`},
		{"error on second line", "0, GPU-a, T4, 1\n1, GPU-b\n", nil, "nvidia-smi line 2:"},
	}
	for _, tt := range tests {
		got, err := ParseGPUs([]byte(tt.in))
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("%s: ParseGPUs error = %v, want one containing %q", tt.name, err, tt.wantErr)
			}
			continue
		}
		if err != nil || !equalGPUs(got, tt.want) {
			t.Errorf("%s: ParseGPUs = %+v, %v; want %+v", tt.name, got, err, tt.want)
		}
	}
}

func equalGPUs(a, b []GPU) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

package corpus

import (
	"bytes"
	"compress/gzip"
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestFindSearchesInOrderAndExplainsMissing(t *testing.T) {
	a, b := t.TempDir(), t.TempDir()
	if err := os.WriteFile(filepath.Join(b, "x.txt"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if got, err := Find([]string{a, b}, "x.txt"); err != nil || got != filepath.Join(b, "x.txt") {
		t.Errorf("Find = %q, %v; want the file in the second directory", got, err)
	}
	_, err := Find([]string{a}, "kjv.txt")
	if !errors.Is(err, ErrMissing) || !strings.Contains(err.Error(), "scripts/install-data.sh") || !strings.Contains(err.Error(), a) {
		t.Errorf("missing file: %v; want ErrMissing naming %s and the install script", err, a)
	}
}

func TestDefaultDirsStartWithEnv(t *testing.T) {
	t.Setenv(DataDirEnv, "/somewhere")
	if d := DefaultDirs(); d[0] != "/somewhere" || d[1] != "/var/lib/asymptote/data" {
		t.Errorf("DefaultDirs = %v", d)
	}
}

func TestSplitIsFixedAndCoversText(t *testing.T) {
	raw := bytes.Repeat([]byte("abcdefghij"), 3072) // 30 blocks of 1 KiB
	a, err := Split(raw)
	if err != nil {
		t.Fatal(err)
	}
	if string(a.Vocab) != "abcdefghij" {
		t.Errorf("vocab %q", a.Vocab)
	}
	if len(a.Val) != 3*BlockSize || len(a.Train)+len(a.Val) != len(raw) {
		t.Errorf("split %d train + %d val of %d", len(a.Train), len(a.Val), len(raw))
	}
	b, _ := Split(raw)
	if !bytes.Equal(a.Train, b.Train) || !bytes.Equal(a.Val, b.Val) {
		t.Error("two splits of the same text differ")
	}
	if got := a.String(a.Val[:3]); len(got) != 3 || !strings.Contains("abcdefghij", got[:1]) {
		t.Errorf("String = %q", got)
	}
}

func TestLoadKJVChecksSize(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, KJVFile), []byte("In the beginning"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadKJV([]string{dir}); err == nil || !strings.Contains(err.Error(), "install-data.sh") {
		t.Errorf("short kjv.txt: %v; want a size error naming the install script", err)
	}
}

func idx(dims []uint32, data []byte) []byte {
	var buf bytes.Buffer
	buf.Write([]byte{0, 0, 8, byte(len(dims))})
	for _, d := range dims {
		_ = binary.Write(&buf, binary.BigEndian, d)
	}
	buf.Write(data)
	return buf.Bytes()
}

func TestReadIDX(t *testing.T) {
	tests := []struct {
		name    string
		in      []byte
		dims    []int
		wantErr string
	}{
		{"images", idx([]uint32{2, 2, 3}, []byte{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12}), []int{2, 2, 3}, ""},
		{"labels", idx([]uint32{3}, []byte{7, 8, 9}), []int{3}, ""},
		{"float type", []byte{0, 0, 0x0d, 1, 0, 0, 0, 1, 0, 0, 0, 0}, nil, "not an unsigned-byte IDX"},
		{"short data", idx([]uint32{4}, []byte{1}), nil, "read IDX data"},
		{"empty", nil, nil, "read IDX header"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dims, data, err := ReadIDX(bytes.NewReader(tc.in))
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(dims) != len(tc.dims) || len(data) != len(tc.in)-4-4*len(dims) {
				t.Errorf("dims %v data %d bytes", dims, len(data))
			}
		})
	}
}

func TestLoadFashionMNISTFromDir(t *testing.T) {
	dir := filepath.Join(t.TempDir(), FashionDir)
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	write := func(name string, content []byte) {
		var buf bytes.Buffer
		zw := gzip.NewWriter(&buf)
		_, _ = zw.Write(content)
		_ = zw.Close()
		if err := os.WriteFile(filepath.Join(dir, name), buf.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("train-images-idx3-ubyte.gz", idx([]uint32{2, 1, 2}, []byte{0, 255, 128, 1}))
	write("train-labels-idx1-ubyte.gz", idx([]uint32{2}, []byte{3, 9}))
	write("t10k-images-idx3-ubyte.gz", idx([]uint32{1, 1, 2}, []byte{5, 6}))
	if _, _, err := LoadFashionMNIST([]string{filepath.Dir(dir)}); !errors.Is(err, ErrMissing) {
		t.Errorf("without test labels: %v, want ErrMissing", err)
	}
	write("t10k-labels-idx1-ubyte.gz", idx([]uint32{1}, []byte{4}))
	train, test, err := LoadFashionMNIST([]string{filepath.Dir(dir)})
	if err != nil {
		t.Fatal(err)
	}
	if train.Len() != 2 || train.Size() != 2 || train.Labels[1] != 9 || test.Len() != 1 || test.Pixels[1] != 6 {
		t.Errorf("train %+v test %+v", train, test)
	}
}

// TestRealData checks the installed data's shape.
func TestRealData(t *testing.T) {
	text, err := LoadKJV(nil)
	if err != nil {
		t.Fatalf("%v (scripts/install-data.sh installs the data)", err)
	}
	// The sizes the methods' parameter ranges and docs/methods.md quote.
	if len(text.Vocab) != 73 || len(text.Train) != 3869183 || len(text.Val) != 429056 || text.EvalSize() != 428992 {
		t.Errorf("KJV: %d symbols, %d train, %d val", len(text.Vocab), len(text.Train), len(text.Val))
	}
	if !strings.Contains(text.String(text.Train[:2000]), " the ") {
		t.Errorf("train prefix does not look like English: %q", text.String(text.Train[:200]))
	}
}

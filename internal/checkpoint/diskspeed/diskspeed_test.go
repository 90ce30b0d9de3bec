package diskspeed

import (
	"bytes"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestData(t *testing.T) {
	for _, n := range []int64{0, 1, 1<<20 - 1, 1 << 20, 3<<20 + 7} {
		b, err := io.ReadAll(Data(n))
		if err != nil || int64(len(b)) != n {
			t.Fatalf("Data(%d): %d bytes, %v", n, len(b), err)
		}
		// The stream repeats one MiB: byte i is byte i mod 1 MiB.
		if n > 1<<20 && !bytes.Equal(b[1<<20:min(n, 2<<20)], b[:min(n, 2<<20)-1<<20]) {
			t.Errorf("Data(%d) does not repeat its first MiB", n)
		}
	}
	a, _ := io.ReadAll(Data(64))
	if bytes.Count(a, a[:1]) == len(a) {
		t.Errorf("Data is not random: %x", a)
	}
}

func TestWriteRead(t *testing.T) {
	path := filepath.Join(t.TempDir(), "f")
	const n = 2<<20 + 5
	if d, err := Write(path, n); err != nil || d <= 0 {
		t.Fatalf("Write: %s, %v", d, err)
	}
	if d, err := Read(path, n); err != nil || d <= 0 {
		t.Fatalf("Read: %s, %v", d, err)
	}
	if _, err := Read(path, n+1); err == nil {
		t.Error("Read of a file one byte short: no error")
	}
	if _, err := Write(filepath.Join(t.TempDir(), "missing", "f"), 1); err == nil {
		t.Error("Write into a missing directory: no error")
	}
}

func TestMBps(t *testing.T) {
	if got := MBps(250e6, 2*time.Second); got != 125 {
		t.Errorf("MBps(250e6, 2s) = %g, want 125", got)
	}
	if got := MBps(1, 0); got != 0 {
		t.Errorf("MBps over no time = %g, want 0", got)
	}
}

// TestEvict checks that Evict runs over a tree (what it drops is the
// kernel's to decide, so only its errors can be asserted) and that a
// missing root is an error.
func TestEvict(t *testing.T) {
	dir := t.TempDir()
	if _, err := Write(filepath.Join(dir, "a"), 1<<20); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(dir, "sub"), 0o700); err != nil {
		t.Fatal(err)
	}
	if _, err := Write(filepath.Join(dir, "sub", "b"), 10); err != nil {
		t.Fatal(err)
	}
	if err := Evict(dir); err != nil {
		t.Fatalf("Evict: %v", err)
	}
	if _, err := Read(filepath.Join(dir, "a"), 1<<20); err != nil {
		t.Fatalf("read after Evict: %v", err)
	}
	if err := Evict(filepath.Join(dir, "missing")); err == nil {
		t.Error("Evict of a missing directory: no error")
	}
}

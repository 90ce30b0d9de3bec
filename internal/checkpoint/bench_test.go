package checkpoint

import (
	"flag"
	"io"
	"os"
	"path/filepath"
	"sync"
	"testing"
)

var big = flag.Bool("ckpt.big", false, "also benchmark 1 GiB checkpoints")

type benchSize struct {
	name string
	n    int64
}

func benchSizes() []benchSize {
	sizes := []benchSize{{"10MiB", 10 << 20}, {"100MiB", 100 << 20}}
	if *big {
		sizes = append(sizes, benchSize{"1GiB", 1 << 30})
	}
	return sizes
}

// repeating returns n bytes made of one random MiB over and over, so a
// benchmark streams a large checkpoint without holding it in memory.
// Neither store compresses, so the repetition does not flatter them.
func repeating(n int64) io.Reader {
	return io.LimitReader(&cycle{b: benchBlock()}, n)
}

var benchBlock = sync.OnceValue(func() []byte { return randomBytes(1 << 20) })

type cycle struct {
	b   []byte
	off int
}

func (c *cycle) Read(p []byte) (int, error) {
	n := copy(p, c.b[c.off:])
	c.off = (c.off + n) % len(c.b)
	return n, nil
}

func benchFixtures(b *testing.B) []fixture {
	return []fixture{dirFixture(b), objectFixture(b, 0)}
}

func BenchmarkPut(b *testing.B) {
	for _, f := range benchFixtures(b) {
		for _, sz := range benchSizes() {
			b.Run(f.name+"/"+sz.name, func(b *testing.B) {
				b.SetBytes(sz.n)
				for b.Loop() {
					if _, err := f.store.Put(b.Context(), "bench/put/"+sz.name, repeating(sz.n)); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}

func BenchmarkGet(b *testing.B) {
	for _, f := range benchFixtures(b) {
		for _, sz := range benchSizes() {
			b.Run(f.name+"/"+sz.name, func(b *testing.B) {
				key := "bench/get/" + sz.name
				want, err := f.store.Put(b.Context(), key, repeating(sz.n))
				if err != nil {
					b.Fatal(err)
				}
				buf := make([]byte, copyBuf)
				b.SetBytes(sz.n)
				for b.Loop() {
					rc, err := f.store.Get(b.Context(), key, want)
					if err != nil {
						b.Fatal(err)
					}
					if _, err := io.CopyBuffer(io.Discard, rc, buf); err != nil {
						b.Fatal(err)
					}
					rc.Close()
				}
			})
		}
	}
}

// BenchmarkDisk is the floor the stores stand on: the same sizes written
// and fsynced, then read back, with plain files in the same temporary
// directory as the Dir store's.
func BenchmarkDisk(b *testing.B) {
	dir := b.TempDir()
	buf := make([]byte, copyBuf)
	for _, sz := range benchSizes() {
		path := filepath.Join(dir, "disk-"+sz.name)
		b.Run("write/"+sz.name, func(b *testing.B) {
			b.SetBytes(sz.n)
			for b.Loop() {
				f, err := os.Create(path)
				if err != nil {
					b.Fatal(err)
				}
				if _, err := io.CopyBuffer(struct{ io.Writer }{f}, repeating(sz.n), buf); err != nil {
					b.Fatal(err)
				}
				if err := f.Sync(); err != nil {
					b.Fatal(err)
				}
				if err := f.Close(); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run("read/"+sz.name, func(b *testing.B) {
			b.SetBytes(sz.n)
			for b.Loop() {
				f, err := os.Open(path)
				if err != nil {
					b.Fatal(err)
				}
				n, err := io.CopyBuffer(io.Discard, struct{ io.Reader }{f}, buf)
				if err != nil || n != sz.n {
					b.Fatalf("read %d bytes of %d: %v", n, sz.n, err)
				}
				f.Close()
			}
		})
	}
}

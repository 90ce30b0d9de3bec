package nn

import (
	"bufio"
	"bytes"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
)

// learner is a small trained learner: a tensor with moments, an optimizer
// that has stepped, a generator and a data order part-way through.
func learner(seed uint64, size int) Learner {
	src := rand.NewPCG(seed, 1)
	rng := rand.New(src)
	t := NewTensor(size, true)
	t.Normal(rng, 1)
	l := Learner{Tensors: []*Tensor{t}, Opt: NewAdamW(0.1), Src: src, Epochs: NewEpochs(7, rng)}
	for range 3 {
		t.Normal(rng, 1)
		copy(t.G, t.W)
		l.Opt.Step(l.Tensors, 0.01)
		l.Epochs.Next(nil, 3)
	}
	return l
}

func TestLearnersRoundTrip(t *testing.T) {
	var buf bytes.Buffer
	if err := writeLearners(&buf, []Learner{learner(1, 5), learner(2, 5)}); err != nil {
		t.Fatal(err)
	}
	got := []Learner{learner(3, 5), learner(4, 5)}
	if err := readLearners(bytes.NewReader(buf.Bytes()), got); err != nil {
		t.Fatal(err)
	}
	for k, want := range []Learner{learner(1, 5), learner(2, 5)} {
		g := got[k]
		w, gt := want.Tensors[0], g.Tensors[0]
		if !slices.Equal(w.W, gt.W) || !slices.Equal(w.m, gt.m) || !slices.Equal(w.v, gt.v) {
			t.Errorf("member %d: tensor differs after the round trip", k)
		}
		if g.Opt.t != want.Opt.t || g.Epochs.next != want.Epochs.next || !slices.Equal(g.Epochs.order, want.Epochs.order) {
			t.Errorf("member %d: optimizer or data position differs", k)
		}
		if a, b := g.Src.Uint64(), want.Src.Uint64(); a != b {
			t.Errorf("member %d: generator draws %d, want %d", k, a, b)
		}
	}
}

func TestLearnersRefuseBadFiles(t *testing.T) {
	var buf bytes.Buffer
	if err := writeLearners(&buf, []Learner{learner(1, 5)}); err != nil {
		t.Fatal(err)
	}
	good := buf.Bytes()
	tests := []struct {
		name string
		data []byte
		size int
		want string
	}{
		{"truncated in the tensor", good[:len(good)-3], 5, "truncated"},
		{"truncated in the header", good[:10], 5, "truncated"},
		{"empty", nil, 5, "truncated"},
		{"not ours", append([]byte("something else entirely"), good...), 5, "not a learners file"},
		{"trailing bytes", append(slices.Clone(good), 0), 5, "bytes after the last member"},
		{"another model", good, 6, "other parameters"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := readLearners(bytes.NewReader(tt.data), []Learner{learner(2, tt.size)})
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("readLearners = %v, want an error containing %q", err, tt.want)
			}
		})
	}
}

// BenchmarkLearners writes and reads the state of one member of charlm's
// default trial: 27,097 parameters and a data order over 999,992
// positions (go test -bench Learners -benchtime 20x ./plugins/methods/internal/nn).
func BenchmarkLearners(b *testing.B) {
	mk := func(seed uint64) []Learner {
		src := rand.NewPCG(seed, 1)
		rng := rand.New(src)
		t := NewTensor(27097, true)
		t.Normal(rng, 1)
		e := NewEpochs(999992, rng)
		e.Next(nil, 1)
		return []Learner{{Tensors: []*Tensor{t}, Opt: NewAdamW(0), Src: src, Epochs: e}}
	}
	var buf bytes.Buffer
	if err := writeLearners(&buf, mk(1)); err != nil {
		b.Fatal(err)
	}
	b.Run("write", func(b *testing.B) {
		ls := mk(1)
		b.SetBytes(int64(buf.Len()))
		for b.Loop() {
			var w bytes.Buffer
			w.Grow(buf.Len())
			if err := writeLearners(&w, ls); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("read", func(b *testing.B) {
		ls := mk(2)
		b.SetBytes(int64(buf.Len()))
		for b.Loop() {
			if err := readLearners(bufio.NewReader(bytes.NewReader(buf.Bytes())), ls); err != nil {
				b.Fatal(err)
			}
		}
	})
}

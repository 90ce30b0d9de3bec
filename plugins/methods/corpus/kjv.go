package corpus

import (
	"fmt"
	"math/rand/v2"
	"os"
)

// KJV file facts: the name searched for, and the size that
// `bible -l79 'Gen1:1-Rev22:21'` (Debian bible-kjv 4.38) writes.
const (
	KJVFile = "kjv.txt"
	KJVSize = 4298239
)

// Split layout. The text is cut into BlockSize-byte blocks; every
// ValEvery-th block (the last of each run of ValEvery) goes to the
// validation split, so both splits span the whole book. Both splits' blocks
// are then put in a fixed shuffled order, so that a prefix of the training
// split (unique_tokens) and a prefix of the validation split (the
// evaluation set) sample the whole book rather than Genesis.
const (
	BlockSize = 1024
	ValEvery  = 10
	// MaxContext is the longest history a model may condition on. Evaluation
	// predicts the validation split from position MaxContext on, so every
	// model, whatever its context, is scored on the same characters.
	MaxContext = 64
)

// splitSeed fixes the block order; it is part of the data's definition.
const splitSeed = 0x6b6a76

// Text is a character corpus split for training and validation, as
// symbol ids into Vocab.
type Text struct {
	// Vocab maps a symbol id to its byte: the distinct bytes of the whole
	// file, sorted.
	Vocab []byte
	// Train and Val are the splits as symbol ids.
	Train, Val []uint8
}

var kjvCache cache[*Text]

// LoadKJV finds kjv.txt in dirs (nil: DefaultDirs), checks its size and
// returns it split. Loads are cached per path for the process's life; the
// result is shared and must not be modified.
func LoadKJV(dirs []string) (*Text, error) {
	path, err := Find(dirs, KJVFile)
	if err != nil {
		return nil, err
	}
	return kjvCache.get(path, func() (*Text, error) {
		raw, err := os.ReadFile(path)
		if err != nil {
			return nil, fmt.Errorf("read KJV text: %w", err)
		}
		if len(raw) != KJVSize {
			return nil, fmt.Errorf("%s has %d bytes, want %d (bible -l79 from bible-kjv 4.38); %s", path, len(raw), KJVSize, InstallHint)
		}
		return Split(raw)
	})
}

// Split maps raw to symbol ids and splits it into training and validation
// blocks as the package comment of the split layout describes.
func Split(raw []byte) (*Text, error) {
	var seen [256]bool
	for _, b := range raw {
		seen[b] = true
	}
	var id [256]uint8
	t := &Text{}
	for b := range 256 {
		if seen[b] {
			id[b] = uint8(len(t.Vocab))
			t.Vocab = append(t.Vocab, byte(b))
		}
	}
	if len(t.Vocab) > 127 {
		return nil, fmt.Errorf("text has %d distinct bytes; at most 127 are supported", len(t.Vocab))
	}
	var train, val [][]byte
	for i := 0; i*BlockSize < len(raw); i++ {
		blk := raw[i*BlockSize : min((i+1)*BlockSize, len(raw))]
		if i%ValEvery == ValEvery-1 {
			val = append(val, blk)
		} else {
			train = append(train, blk)
		}
	}
	rng := rand.NewPCG(splitSeed, 1)
	shuffle(rng, train)
	shuffle(rng, val)
	join := func(blocks [][]byte) []uint8 {
		out := make([]uint8, 0, len(blocks)*BlockSize)
		for _, blk := range blocks {
			for _, b := range blk {
				out = append(out, id[b])
			}
		}
		return out
	}
	t.Train, t.Val = join(train), join(val)
	if len(t.Val) < MaxContext+1 {
		return nil, fmt.Errorf("text too short: %d bytes", len(raw))
	}
	return t, nil
}

// shuffle permutes s with Fisher–Yates driven by src's raw output, so the
// order does not depend on math/rand's helper algorithms.
func shuffle[T any](src *rand.PCG, s []T) {
	for i := len(s) - 1; i > 0; i-- {
		j := int(src.Uint64() % uint64(i+1))
		s[i], s[j] = s[j], s[i]
	}
}

// EvalSize returns how many validation targets exist: positions MaxContext
// to the end of Val.
func (t *Text) EvalSize() int { return len(t.Val) - MaxContext }

// String decodes symbol ids back to text.
func (t *Text) String(ids []uint8) string {
	b := make([]byte, len(ids))
	for i, c := range ids {
		b[i] = t.Vocab[c]
	}
	return string(b)
}

package ngram

import (
	"context"
	"math"
	"testing"
)

// TestDistributionsSumToOne checks that every history's predicted
// distribution is normalised, for both smoothings and every order, on
// histories seen and unseen in training.
func TestDistributionsSumToOne(t *testing.T) {
	train := []uint8{0, 1, 2, 0, 1, 3, 0, 1, 2, 2, 1, 0, 3, 3, 0, 1}
	probe := []uint8{0, 1, 2, 3, 3, 2, 1, 0, 0, 0, 1}
	const vocab = 5 // symbol 4 never occurs
	for _, kn := range []bool{false, true} {
		for order := 1; order <= 4; order++ {
			m, err := build(context.Background(), train, order, vocab, kn, 0.6, 2)
			if err != nil {
				t.Fatal(err)
			}
			for i := order; i < len(probe); i++ {
				text := append([]uint8(nil), probe[:i+1]...)
				sum := 0.0
				for s := range uint8(vocab) {
					text[i] = s
					sum += m.prob(text, i, order)
				}
				if math.Abs(sum-1) > 1e-12 {
					t.Errorf("kn=%v order %d, history ending at %d: probabilities sum to %v", kn, order, i, sum)
				}
			}
		}
	}
}

// TestWittenBellByHand checks a bigram against a hand computation.
func TestWittenBellByHand(t *testing.T) {
	train := []uint8{0, 1, 0, 1, 0, 2} // bigrams 01 10 01 10 02
	m, err := build(context.Background(), train, 2, 3, false, 0, 1)
	if err != nil {
		t.Fatal(err)
	}
	// Unigram: counts 3,2,1 of 6 with 3 types: P(1) = (2 + 3·⅓)/(6+3) = 1/3.
	// After 0: counts 1→2, 2→1, total 3, 2 types: P(1|0) = (2 + 2·⅓)/5.
	want := (2 + 2.0/3) / 5
	if got := m.prob([]uint8{0, 1}, 1, 2); math.Abs(got-want) > 1e-15 {
		t.Errorf("P(1|0) = %v, want %v", got, want)
	}
}

package ngram

import (
	"context"
	"sync"
	"sync/atomic"
)

// Keys pack a history and a symbol into a uint64, 7 bits a symbol, each
// stored as its id + 1 so that keys of different lengths never collide:
// the predicted symbol in the lowest bits, then the nearest history symbol,
// and so on back. Dropping the oldest symbol is a mask; the key of the
// history alone is the key shifted right by 7.
const (
	symBits  = 7
	maxOrder = 64 / symBits // 9
)

// stat holds a history's totals: the sum of its counts and the number of
// distinct symbols seen after it.
type stat struct{ total, types uint32 }

// level holds the counts for histories of one length k (an order-(k+1)
// model's own terms).
type level struct {
	pairs map[uint64]uint32 // (history, symbol) → count (continuation count for KN's lower levels)
	ctxs  map[uint64]stat   // history → totals over pairs
}

// model is an interpolated character n-gram of some order over a
// vocabulary of vocab symbols.
type model struct {
	order, vocab int
	kn           bool
	discount     float64
	levels       []level
}

// checkEvery is how many positions a counting loop handles between checks
// of its context.
const checkEvery = 1 << 16

// build counts text's n-grams. Levels are counted concurrently on at most
// threads goroutines; each level's maps are built by one goroutine, so the
// result does not depend on threads.
func build(ctx context.Context, text []uint8, order, vocab int, kn bool, discount float64, threads int) (*model, error) {
	m := &model{order: order, vocab: vocab, kn: kn, discount: discount, levels: make([]level, order)}
	err := parallel(ctx, order, threads, func(k int) error {
		pairs := make(map[uint64]uint32)
		for i := k; i < len(text); i++ {
			if i%checkEvery == 0 {
				if err := ctx.Err(); err != nil {
					return err
				}
			}
			key := uint64(0)
			for j := i - k; j <= i; j++ { // oldest first, so text[i] lands lowest
				key = key<<symBits | uint64(text[j]+1)
			}
			pairs[key]++
		}
		m.levels[k].pairs = pairs
		return nil
	})
	if err != nil {
		return nil, err
	}
	if kn {
		// Lower levels count distinct left extensions: N1+(• h w) for each
		// (h, w), read off the raw counts of the level above.
		cont := make([]map[uint64]uint32, order-1)
		err := parallel(ctx, order-1, threads, func(k int) error {
			mask := uint64(1)<<(symBits*(k+1)) - 1
			c := make(map[uint64]uint32)
			n := 0
			for key := range m.levels[k+1].pairs {
				if n++; n%checkEvery == 0 {
					if err := ctx.Err(); err != nil {
						return err
					}
				}
				c[key&mask]++
			}
			cont[k] = c
			return nil
		})
		if err != nil {
			return nil, err
		}
		for k, c := range cont {
			m.levels[k].pairs = c
		}
	}
	err = parallel(ctx, order, threads, func(k int) error {
		ctxs := make(map[uint64]stat)
		n := 0
		for key, c := range m.levels[k].pairs {
			if n++; n%checkEvery == 0 {
				if err := ctx.Err(); err != nil {
					return err
				}
			}
			s := ctxs[key>>symBits]
			s.total += c
			s.types++
			ctxs[key>>symBits] = s
		}
		m.levels[k].ctxs = ctxs
		return nil
	})
	if err != nil {
		return nil, err
	}
	return m, nil
}

// size returns the number of stored n-gram counts.
func (m *model) size() int {
	n := 0
	for _, l := range m.levels {
		n += len(l.pairs)
	}
	return n
}

// prob returns P(text[i] | the up to order-1 symbols before it), using at
// most upto levels (upto ≤ order).
func (m *model) prob(text []uint8, i, upto int) float64 {
	p := 1 / float64(m.vocab)
	hist := uint64(0) // history key, nearest symbol lowest
	sym := uint64(text[i] + 1)
	for k := 0; k < upto && k <= i; k++ {
		if k > 0 {
			hist |= uint64(text[i-k]+1) << (symBits * (k - 1))
		}
		s, ok := m.levels[k].ctxs[hist]
		if !ok {
			break // a longer history is unseen too
		}
		c := float64(m.levels[k].pairs[hist<<symBits|sym])
		tot, types := float64(s.total), float64(s.types)
		if m.kn {
			p = (max(c-m.discount, 0) + m.discount*types*p) / tot
		} else {
			p = (c + types*p) / (tot + types)
		}
	}
	return p
}

// parallel runs f(0) … f(n-1) on at most threads goroutines and returns the
// first error in index order.
func parallel(ctx context.Context, n, threads int, f func(int) error) error {
	errs := make([]error, n)
	var next atomic.Int64
	var wg sync.WaitGroup
	for range max(1, min(threads, n)) {
		wg.Go(func() {
			for {
				i := int(next.Add(1)) - 1
				if i >= n || ctx.Err() != nil {
					return
				}
				errs[i] = f(i)
			}
		})
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return ctx.Err()
}

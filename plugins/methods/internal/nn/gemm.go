// Package nn holds the small neural-network kit the built-in training
// methods share: a thread-bounded matrix multiply, dense ReLU layers with
// dropout, softmax cross-entropy, AdamW and ensemble evaluation. Everything
// is float64 on gonum's pure-Go BLAS and deterministic for a seed whatever
// the thread budget: work is split into fixed tiles, each computed the same
// way by whichever worker takes it.
package nn

import (
	"sync"
	"sync/atomic"

	"gonum.org/v1/gonum/blas"
	"gonum.org/v1/gonum/blas/gonum"
)

// Tile sizes for Gemm. gonum's Dgemm starts its own goroutines (up to
// GOMAXPROCS) once the output has four or more 64×64 blocks; a 64×192 tile
// has three, so every call below stays serial and the thread budget is ours
// to enforce.
const (
	tileRows = 64
	tileCols = 192
)

var impl gonum.Implementation

// Pool runs matrix multiplies on at most Threads goroutines. The zero value
// (or Threads ≤ 1) runs everything on the caller's goroutine.
type Pool struct {
	// Threads bounds the worker goroutines.
	Threads int
}

// Gemm computes C = alpha·op(A)·op(B) + beta·C for row-major matrices, where
// op(A) is m×k and op(B) is k×n, as BLAS's dgemm does. The output is split
// into fixed tiles that the pool's workers share; each element's sum runs in
// the same order whichever worker computes it, so results do not depend on
// the number of threads.
func (p Pool) Gemm(tA, tB bool, m, n, k int, alpha float64, a []float64, lda int, b []float64, ldb int, beta float64, c []float64, ldc int) {
	if m == 0 || n == 0 {
		return
	}
	rt, ct := (m+tileRows-1)/tileRows, (n+tileCols-1)/tileCols
	tiles := rt * ct
	ta, tb := blas.NoTrans, blas.NoTrans
	if tA {
		ta = blas.Trans
	}
	if tB {
		tb = blas.Trans
	}
	tile := func(t int) {
		i0, j0 := (t/ct)*tileRows, (t%ct)*tileCols
		mm, nn := min(tileRows, m-i0), min(tileCols, n-j0)
		aoff := i0 * lda // rows of A
		if tA {
			aoff = i0 // columns of Aᵀ's storage
		}
		boff := j0 // columns of B
		if tB {
			boff = j0 * ldb // rows of Bᵀ's storage
		}
		impl.Dgemm(ta, tb, mm, nn, k, alpha, a[aoff:], lda, b[boff:], ldb, beta, c[i0*ldc+j0:], ldc)
	}
	workers := min(p.Threads, tiles)
	if workers <= 1 {
		for t := range tiles {
			tile(t)
		}
		return
	}
	var next atomic.Int64
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for {
				t := int(next.Add(1)) - 1
				if t >= tiles {
					return
				}
				tile(t)
			}
		})
	}
	wg.Wait()
}

package nn

import (
	"math"
	"math/rand/v2"
	"testing"
)

// naiveGemm is the textbook triple loop, for reference.
func naiveGemm(tA, tB bool, m, n, k int, alpha float64, a []float64, lda int, b []float64, ldb int, beta float64, c []float64, ldc int) {
	for i := range m {
		for j := range n {
			s := 0.0
			for l := range k {
				ai, bi := i*lda+l, l*ldb+j
				if tA {
					ai = l*lda + i
				}
				if tB {
					bi = j*ldb + l
				}
				av, bv := a[ai], b[bi]
				s += av * bv
			}
			c[i*ldc+j] = alpha*s + beta*c[i*ldc+j]
		}
	}
}

func randSlice(rng *rand.Rand, n int) []float64 {
	s := make([]float64, n)
	for i := range s {
		s[i] = rng.NormFloat64()
	}
	return s
}

func TestGemmMatchesNaiveAndIgnoresThreads(t *testing.T) {
	tests := []struct {
		name    string
		tA, tB  bool
		m, n, k int
	}{
		{"NN small", false, false, 3, 5, 7},
		{"NN tiled", false, false, 130, 400, 33},
		{"TN tiled", true, false, 200, 70, 129},
		{"NT tiled", false, true, 129, 193, 65},
		{"TT", true, true, 65, 200, 10},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rng := rand.New(rand.NewPCG(1, 2))
			lda, ldb := tc.k, tc.n
			if tc.tA {
				lda = tc.m
			}
			if tc.tB {
				ldb = tc.k
			}
			a, b := randSlice(rng, tc.m*tc.k), randSlice(rng, tc.k*tc.n)
			c0 := randSlice(rng, tc.m*tc.n)
			want := append([]float64(nil), c0...)
			naiveGemm(tc.tA, tc.tB, tc.m, tc.n, tc.k, 0.5, a, lda, b, ldb, 2, want, tc.n)
			var first []float64
			for _, threads := range []int{1, 2, 3} {
				c := append([]float64(nil), c0...)
				Pool{Threads: threads}.Gemm(tc.tA, tc.tB, tc.m, tc.n, tc.k, 0.5, a, lda, b, ldb, 2, c, tc.n)
				for i := range c {
					if math.Abs(c[i]-want[i]) > 1e-9*(1+math.Abs(want[i])) {
						t.Fatalf("threads %d: c[%d] = %v, want %v", threads, i, c[i], want[i])
					}
				}
				if first == nil {
					first = c
					continue
				}
				for i := range c {
					if c[i] != first[i] {
						t.Fatalf("threads %d: c[%d] = %v differs from 1 thread's %v", threads, i, c[i], first[i])
					}
				}
			}
		})
	}
}

package scaling

import "math"

// fastExp and fastLog are table-driven exp and log for the fitting hot
// loops. Within their fast ranges they agree with math.Exp to about 2 ulp
// and with math.Log to 4e-16 absolute (TestFastMath), which is far below
// the 1e-12 relative tolerance of the optimiser, at about half the cost.
const (
	expTabN = 64
	ln2Hi   = 6.93147180369123816490e-01
	ln2Lo   = 1.90821492927058770002e-10
	shifter = 0x1.8p52
	// shifterBits is math.Float64bits(shifter).
	shifterBits = 0x4338000000000000
)

var (
	expTab [expTabN]float64 // 2^(j/64)
	logInv [256]float64     // 1/c_j, c_j = 1 + j/128 (j ≤ 128; sized for bounds-check-free indexing)
	logC   [256]float64     // −log(1/c_j), so log(m) = logC + log1p(m/c_j − 1)
)

func init() {
	for j := range expTab {
		expTab[j] = math.Exp2(float64(j) / expTabN)
	}
	for j := 0; j <= 128; j++ {
		inv := 1 / (1 + float64(j)/128)
		logInv[j], logC[j] = inv, -math.Log(inv)
	}
}

// fastExp returns e^x: x = (64k + j)·ln2/64 + r, e^x = 2^k·2^(j/64)·e^r with
// |r| ≤ ln2/128 and e^r from its degree-6 Taylor polynomial.
func fastExp(x float64) float64 {
	if !(x > -700 && x < 700) {
		return math.Exp(x)
	}
	kt := x*(expTabN/math.Ln2) + shifter
	k := int64(math.Float64bits(kt)) - int64(math.Float64bits(shifter))
	kf := kt - shifter
	r := (x - kf*(ln2Hi/expTabN)) - kf*(ln2Lo/expTabN)
	p := r * (1 + r*(0.5+r*(1.0/6+r*(1.0/24+r*(1.0/120+r*(1.0/720))))))
	t := expTab[k&(expTabN-1)]
	return (t + t*p) * math.Float64frombits(uint64((k>>6)+1023)<<52)
}

// fastLog returns log x for positive x: x = 2^e·m, m ∈ [1, 2), c_j the
// nearest of 129 centres, log m = log c_j + log1p(m/c_j − 1) with
// |m/c_j − 1| ≤ 1/256 and log1p from its degree-7 series.
func fastLog(x float64) float64 {
	bits := math.Float64bits(x)
	ex := int64(bits >> 52)
	if ex == 0 || ex >= 0x7ff {
		return math.Log(x)
	}
	m := math.Float64frombits(bits&(1<<52-1) | 1023<<52)
	j := (bits>>45)&127 + (bits>>44)&1
	r := math.FMA(m, logInv[j], -1)
	p := r - r*r*(0.5-r*(1.0/3-r*(0.25-r*(0.2-r*(1.0/6-r*(1.0/7))))))
	e := float64(ex - 1023)
	return e*ln2Hi + (logC[j] + (p + e*ln2Lo))
}

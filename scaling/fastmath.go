package scaling

import "math"

// fastExp and fastLog are table-driven exp and log for the fitting hot
// loops. Within their fast ranges they agree with math.Exp to about 2 ulp
// and with math.Log to 4e-16 absolute (TestFastMath), which is far below
// the 1e-12 relative tolerance of the optimiser, at about half the cost.
const (
	expBits = 8
	expTabN = 1 << expBits
	logBits = 8
	logTabN = 1 << logBits
	ln2Hi   = 6.93147180369123816490e-01
	ln2Lo   = 1.90821492927058770002e-10
	shifter = 0x1.8p52
	// shifterBits is math.Float64bits(shifter).
	shifterBits = 0x4338000000000000
)

var (
	expTab [expTabN]float64     // 2^(j/256)
	logInv [2 * logTabN]float64 // 1/c_j, c_j = 1 + j/256 (j ≤ 256; sized for bounds-check-free indexing)
	logC   [2 * logTabN]float64 // −log(1/c_j), so log(m) = logC + log1p(m/c_j − 1)
)

func init() {
	for j := range expTab {
		expTab[j] = math.Exp2(float64(j) / expTabN)
	}
	for j := 0; j <= logTabN; j++ {
		inv := 1 / (1 + float64(j)/logTabN)
		logInv[j], logC[j] = inv, -math.Log(inv)
	}
}

// fastExp returns e^x: x = (256k + j)·ln2/256 + r, e^x = 2^k·2^(j/256)·e^r
// with |r| ≤ ln2/512 and e^r from its degree-4 Taylor polynomial (the
// truncation error r⁵/120 is below 5e-17).
func fastExp(x float64) float64 {
	if !(x > -700 && x < 700) {
		return math.Exp(x)
	}
	kt := x*(expTabN/math.Ln2) + shifter
	k := int64(math.Float64bits(kt)) - int64(math.Float64bits(shifter))
	kf := kt - shifter
	r := (x - kf*(ln2Hi/expTabN)) - kf*(ln2Lo/expTabN)
	p := r * (1 + r*(0.5+r*(1.0/6+r*(1.0/24))))
	t := expTab[k&(expTabN-1)]
	return (t + t*p) * math.Float64frombits(uint64((k>>expBits)+1023)<<52)
}

// fastLog returns log x for positive x: x = 2^e·m, m ∈ [1, 2), c_j the
// nearest of 257 centres, log m = log c_j + log1p(m/c_j − 1) with
// |m/c_j − 1| ≤ 1/512 and log1p from its degree-5 series (the truncation
// error u⁶/6 is below 1e-17).
func fastLog(x float64) float64 {
	bits := math.Float64bits(x)
	ex := int64(bits >> 52)
	if ex == 0 || ex >= 0x7ff {
		return math.Log(x)
	}
	m := math.Float64frombits(bits&(1<<52-1) | 1023<<52)
	j := ((bits>>(52-logBits))&(logTabN-1) + (bits>>(51-logBits))&1) & (2*logTabN - 1)
	r := m*logInv[j] - 1
	p := r - r*r*(0.5-r*(1.0/3-r*(0.25-r*0.2)))
	e := float64(ex - 1023)
	return e*ln2Hi + (logC[j] + (p + e*ln2Lo))
}

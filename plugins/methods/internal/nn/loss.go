package nn

import "math"

// Softmax turns each row of logits (rows × classes) into probabilities in
// place.
func Softmax(logits []float64, classes int) {
	for r := 0; r < len(logits); r += classes {
		row := logits[r : r+classes]
		hi := math.Inf(-1)
		for _, v := range row {
			hi = max(hi, v)
		}
		sum := 0.0
		for j, v := range row {
			e := math.Exp(v - hi)
			row[j] = e
			sum += e
		}
		inv := 1 / sum
		for j := range row {
			row[j] *= inv
		}
	}
}

// SoftmaxXent computes the mean cross-entropy of logits (rows × classes)
// against targets and writes its gradient with respect to the logits into
// dlogits (which may alias logits). It returns the summed (not mean) loss
// in nats.
func SoftmaxXent(logits []float64, classes int, targets []int32, dlogits []float64) float64 {
	rows := len(targets)
	copy(dlogits, logits[:rows*classes])
	Softmax(dlogits[:rows*classes], classes)
	loss := 0.0
	inv := 1 / float64(rows)
	for i, t := range targets {
		row := dlogits[i*classes : (i+1)*classes]
		loss -= math.Log(max(row[t], math.SmallestNonzeroFloat64))
		row[t]--
		for j := range row {
			row[j] *= inv
		}
	}
	return loss
}

// Mixture accumulates the predicted distributions of an ensemble's members
// over a fixed evaluation set, so the ensemble predicts their average.
type Mixture struct {
	classes int
	members int
	sum     []float64
}

// NewMixture returns an empty mixture over rows examples of classes
// classes.
func NewMixture(rows, classes int) *Mixture {
	return &Mixture{classes: classes, sum: make([]float64, rows*classes)}
}

// Reset forgets all members.
func (x *Mixture) Reset() {
	clear(x.sum)
	x.members = 0
}

// Add adds probabilities for rows starting at row0 of the current member.
// Call Done once a member's rows are all added.
func (x *Mixture) Add(row0 int, probs []float64) {
	dst := x.sum[row0*x.classes : row0*x.classes+len(probs)]
	for i, p := range probs {
		dst[i] += p
	}
}

// Done marks the end of one member's rows.
func (x *Mixture) Done() { x.members++ }

// Score returns the ensemble's mean negative log-likelihood (nats) and its
// accuracy (the share of rows whose most probable class is the target).
func (x *Mixture) Score(targets []int32) (nll, accuracy float64) {
	inv := 1 / float64(max(x.members, 1))
	correct := 0
	for i, t := range targets {
		row := x.sum[i*x.classes : (i+1)*x.classes]
		nll -= math.Log(max(row[t]*inv, math.SmallestNonzeroFloat64))
		best := 0
		for j, p := range row {
			if p > row[best] {
				best = j
			}
		}
		if best == int(t) {
			correct++
		}
	}
	n := float64(len(targets))
	return nll / n, float64(correct) / n
}

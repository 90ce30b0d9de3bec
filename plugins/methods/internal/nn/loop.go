package nn

import (
	"context"
	"maps"
	"math/rand/v2"

	"asymptote.dev/asymptote/plugins/sdk"
)

// Epochs deals the indices 0…n-1 in a fresh shuffled order each epoch, so
// every training example is seen once per epoch.
type Epochs struct {
	rng   *rand.Rand
	order []int32
	next  int
}

// NewEpochs returns an Epochs over n examples shuffled with rng.
func NewEpochs(n int, rng *rand.Rand) *Epochs {
	return &Epochs{rng: rng, order: make([]int32, n), next: n}
}

// Next returns the next k indices, appended to dst[:0], starting a new
// shuffled epoch whenever the current one runs out.
func (e *Epochs) Next(dst []int32, k int) []int32 {
	dst = dst[:0]
	for len(dst) < k {
		if e.next == len(e.order) {
			for i := range e.order {
				e.order[i] = int32(i)
			}
			// Fisher–Yates on the raw stream, independent of math/rand's
			// helpers.
			for i := len(e.order) - 1; i > 0; i-- {
				j := int(e.rng.Uint64() % uint64(i+1))
				e.order[i], e.order[j] = e.order[j], e.order[i]
			}
			e.next = 0
		}
		take := min(k-len(dst), len(e.order)-e.next)
		dst = append(dst, e.order[e.next:e.next+take]...)
		e.next += take
	}
	return dst
}

// Loop is a training run of Steps optimizer steps that reports every Every
// steps (0: about eight reports) and after the last.
type Loop struct {
	// Steps is the number of optimizer steps; Every the steps between
	// reports (0: about eight reports).
	Steps, Every int
	// Members is the number of ensemble members each step trains.
	Members int
	// Step runs optimizer step i and returns its summed training loss and
	// the number of examples summed over all members.
	Step func(i int) (loss float64, n int)
	// Eval returns the values to report besides train_loss.
	Eval func(ctx context.Context) (map[string]float64, error)
}

// Run runs the loop, checking ctx before every step, and returns the last
// report's values. Each report carries train_loss, the mean training loss since
// the previous report, tokens, the examples each member has seen so far,
// and Eval's values.
func (l Loop) Run(ctx context.Context, report func(sdk.Metrics) error) (map[string]float64, error) {
	every := l.Every
	if every <= 0 {
		every = max(1, l.Steps/8)
	}
	var (
		sum   float64
		n     int
		total float64 // examples seen, over all members
		last  map[string]float64
	)
	for i := range l.Steps {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		s, k := l.Step(i)
		sum, n, total = sum+s, n+k, total+float64(k)
		if (i+1)%every != 0 && i+1 != l.Steps {
			continue
		}
		vals, err := l.Eval(ctx)
		if err != nil {
			return nil, err
		}
		m := map[string]float64{
			sdk.MetricTrainLoss: sum / float64(n),
			sdk.MetricTokens:    total / float64(max(l.Members, 1)),
		}
		for k, v := range vals {
			m[k] = v
		}
		last = m
		if report != nil {
			if err := report(sdk.Metrics{Step: int64(i + 1), Values: maps.Clone(m)}); err != nil {
				return nil, err
			}
		}
		sum, n = 0, 0
	}
	return last, nil
}

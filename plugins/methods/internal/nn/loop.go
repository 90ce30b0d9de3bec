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
	// FLOPsPerExample, when set, adds flops (the training compute so
	// far, over all members) to each report, so a checkpoint's record
	// says what the run had spent at its step.
	FLOPsPerExample float64
	// Step runs optimizer step i and returns its summed training loss and
	// the number of examples summed over all members.
	Step func(i int) (loss float64, n int)
	// Eval returns the values to report besides train_loss.
	Eval func(ctx context.Context) (map[string]float64, error)
	// Checkpoints, when set, saves checkpoints and resumes from the one
	// its request carries. Nil saves none and always starts at step 0.
	Checkpoints *Checkpoints
}

// Run runs the loop, checking ctx before every step, and returns the last
// report's values. Each report carries train_loss, the mean training loss
// since the previous report, tokens, the examples each member has seen so
// far, and Eval's values.
//
// With Checkpoints, a run resumed from a checkpoint carries on after its
// step with the loop's counters restored, and a checkpoint is saved after
// each step it is due (after the last only for a run that may be continued). A checkpoint that falls on a
// report step rides on that report; one between reports gets a report of
// its own with tokens and Eval's values but no train_loss, which keeps
// accumulating into the next regular report, so checkpoints add reports
// without changing the others or the result.
func (l Loop) Run(ctx context.Context, report func(sdk.Metrics) error) (map[string]float64, error) {
	every := l.Every
	if every <= 0 {
		every = max(1, l.Steps/8)
	}
	var (
		st    loopState // sum and n since the last report; examples seen over all members
		last  map[string]float64
		first int
	)
	st.Steps = l.Steps
	if c := l.Checkpoints; c != nil && c.Request.Resume != nil {
		var err error
		if st, err = c.restore(l.Steps); err != nil {
			return nil, err
		}
		first = st.Step
		st.Steps = l.Steps
		if first == l.Steps {
			// Resumed after the last step: the result is the model's
			// as it stands.
			vals, err := l.Eval(ctx)
			if err != nil {
				return nil, err
			}
			last = map[string]float64{sdk.MetricTokens: st.Seen / float64(max(l.Members, 1)), sdk.MetricTrainLoss: st.TrainLoss}
			for k, v := range vals {
				last[k] = v
			}
			return last, nil
		}
	}
	for i := first; i < l.Steps; i++ {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		s, k := l.Step(i)
		st.Step, st.LossSum, st.LossN, st.Seen = i+1, st.LossSum+s, st.LossN+k, st.Seen+float64(k)
		regular := (i+1)%every == 0 || i+1 == l.Steps
		save := l.Checkpoints.due(i+1, l.Steps)
		if !regular && !save {
			continue
		}
		vals, err := l.Eval(ctx)
		if err != nil {
			return nil, err
		}
		m := map[string]float64{sdk.MetricTokens: st.Seen / float64(max(l.Members, 1))}
		if l.FLOPsPerExample > 0 {
			m[sdk.MetricFLOPs] = l.FLOPsPerExample * st.Seen
		}
		if regular {
			m[sdk.MetricTrainLoss] = st.LossSum / float64(st.LossN)
			st.TrainLoss = m[sdk.MetricTrainLoss]
			st.LossSum, st.LossN = 0, 0
		}
		for k, v := range vals {
			m[k] = v
		}
		out := sdk.Metrics{Step: int64(i + 1), Values: maps.Clone(m)}
		if save {
			if out.Checkpoint, err = l.Checkpoints.save(st); err != nil {
				return nil, err
			}
		}
		if regular {
			last = m
		}
		if report != nil {
			if err := report(out); err != nil {
				return nil, err
			}
		}
	}
	return last, nil
}

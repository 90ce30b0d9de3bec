package sweep_test

import (
	"errors"
	"fmt"

	"asymptote.dev/asymptote/sweep"
)

func Example() {
	src := []byte(`
name: tiny
method: synthetic
space:
  params: [1e6, 1e7]
  lr: {range: [1e-4, 1e-2], count: 3, scale: log}
fixed: {ratio: 20}
derived:
  tokens: ratio * params
`)
	spec, err := sweep.Parse("tiny.yaml", src)
	if err != nil {
		fmt.Println(err)
		return
	}
	trials, err := spec.Expand()
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, t := range trials {
		fmt.Println(t.Index, t.Params["params"], t.Params["lr"], t.Params["tokens"], t.Seed)
	}
	// Output:
	// 0 1e+06 0.0001 2e+07 0
	// 1 1e+07 0.0001 2e+08 0
	// 2 1e+06 0.001 2e+07 0
	// 3 1e+07 0.001 2e+08 0
	// 4 1e+06 0.01 2e+07 0
	// 5 1e+07 0.01 2e+08 0
}

func ExampleParse_errors() {
	src := []byte(`name: tiny
method: synthetic
space:
  lr: {range: [1e-4, 1e-2], count: 5, scale: logg}
retries: -1
`)
	_, err := sweep.Parse("tiny.yaml", src)
	fmt.Println(err)
	var se *sweep.SpecError
	if errors.As(err, &se) {
		fmt.Printf("first problem: line %d, field %s\n", se.Line, se.Field)
	}
	// Output:
	// tiny.yaml:4: space.lr.scale: unknown scale "logg" (did you mean "log"?); allowed: linear, log
	// tiny.yaml:5: retries: want a whole number from 0 to 2147483647, got -1
	// first problem: line 4, field space.lr.scale
}

func ExampleTrialID() {
	a := sweep.TrialID("charlm", "", map[string]any{"params": 1e6, "lr": 3e-4}, 0)
	b := sweep.TrialID("charlm", "", map[string]any{"lr": 0.0003, "params": 1000000.0}, 0)
	fmt.Println(a == b, len(a))
	// Output: true 20
}

func ExampleTransition() {
	fmt.Println(sweep.Transition(sweep.Pending, sweep.Dispatched))
	fmt.Println(sweep.Transition(sweep.Succeeded, sweep.Pending))
	// Output:
	// <nil>
	// trial state succeeded -> pending: succeeded is terminal and never changes
}

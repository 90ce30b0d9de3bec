// Package sweep defines study specs: the YAML a user submits, the parameter
// space it describes, the trials it expands to and the states a trial moves
// through.
//
// Parse reads a spec and validates all of it, reporting every problem as a
// *SpecError with file, line, field, what is allowed and the fix. Expand
// lists the trials in a deterministic order, and TrialID gives each one an
// identity derived from its content alone, so resubmitting a spec, or
// extending its grid, never reruns a finished trial. Transition holds the
// trial state machine the coordinator enforces.
//
// Besides the standard library the package uses only the go-yaml v3
// library, which reads specs; the package holds them to the subset of YAML
// that specs use. docs/spec.md is the reference for the spec format.
//
//	spec, err := sweep.ParseFile("study.yaml")
//	if err != nil {
//		return err // every problem, one per line
//	}
//	trials, err := spec.Expand()
package sweep

// Package datatest lets tests of the built-in methods require the real
// data: they skip when it is not installed, except under CI (CI set), where
// missing data is a failure because .ci/run installs it.
package datatest

import (
	"errors"
	"os"
	"testing"

	"asymptote.dev/asymptote/plugins/methods/corpus"
)

// RequireKJV skips or fails t unless the KJV text is installed.
func RequireKJV(t testing.TB) {
	t.Helper()
	_, err := corpus.LoadKJV(nil)
	check(t, err)
}

// RequireFashion skips or fails t unless Fashion-MNIST is installed.
func RequireFashion(t testing.TB) {
	t.Helper()
	_, _, err := corpus.LoadFashionMNIST(nil)
	check(t, err)
}

func check(t testing.TB, err error) {
	t.Helper()
	switch {
	case err == nil:
	case errors.Is(err, corpus.ErrMissing) && os.Getenv("CI") == "":
		t.Skip(err)
	default:
		t.Fatal(err)
	}
}

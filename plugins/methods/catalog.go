// Package methods is the catalog of built-in methods: compiled into the
// asymptote binary and served by its hidden `asymptote method <name>`
// command, which the agent re-executes to run them in their own process.
package methods

import (
	"maps"
	"slices"

	"asymptote.dev/asymptote/plugins/methods/charlm"
	"asymptote.dev/asymptote/plugins/methods/command"
	"asymptote.dev/asymptote/plugins/methods/faulty"
	"asymptote.dev/asymptote/plugins/methods/imgmlp"
	"asymptote.dev/asymptote/plugins/methods/ngram"
	"asymptote.dev/asymptote/plugins/methods/synthetic"
	"asymptote.dev/asymptote/plugins/sdk"
)

// catalog maps each built-in method's name to its constructor. Add a line
// per method.
var catalog = map[string]func() sdk.Method{
	"charlm":    func() sdk.Method { return charlm.New() },
	"command":   func() sdk.Method { return command.New() },
	"imgmlp":    func() sdk.Method { return imgmlp.New() },
	"ngram":     func() sdk.Method { return ngram.New() },
	"synthetic": func() sdk.Method { return synthetic.New() },
}

// testCatalog holds the methods that misbehave on request, for testing
// fault handling. An agent offers them only when asked (agent
// -test-methods): nothing runs that nobody asked for.
var testCatalog = map[string]func() sdk.Method{
	"faulty": func() sdk.Method { return faulty.New() },
}

// Lookup returns a new instance of the built-in or test method name. It
// serves what the agent's method manager launches, and the manager
// launches only the names it was configured with.
func Lookup(name string) (sdk.Method, bool) {
	f, ok := catalog[name]
	if !ok {
		f, ok = testCatalog[name]
	}
	if !ok {
		return nil, false
	}
	return f(), true
}

// Names returns the built-in methods' names, sorted; the test methods are
// not among them.
func Names() []string {
	return slices.Sorted(maps.Keys(catalog))
}

// TestNames returns the test methods' names, sorted.
func TestNames() []string {
	return slices.Sorted(maps.Keys(testCatalog))
}

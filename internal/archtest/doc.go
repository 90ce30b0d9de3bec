// Package archtest holds no code: its test enforces the module's
// dependency rules, such as "sweep imports only the standard library,
// gonum and the YAML library", by asking go list for each package's transitive imports.
package archtest

// Package python holds asymptote's Python client (the asymptote package:
// studies, trials and metric histories as pandas DataFrames over a
// coordinator's HTTP API). There is no Go code here besides the test,
// which starts a real `asymptote dev` and runs the client's pytest suite
// against it. See docs/python.md.
package python

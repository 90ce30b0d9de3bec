// Package python holds asymptote's Python SDK for method plugins
// (asymptote_method) and the PyTorch reference method (torch_charlm, run
// as plugins/python/bin/torch_charlm). There is no Go code here besides
// the tests, which run the Python methods through the agent's method
// manager exactly as an agent does, and the Python unit tests.
//
// See docs/plugins.md, "Writing a method in Python (PyTorch)".
package python

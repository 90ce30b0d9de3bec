"""asymptote's Python client: studies, trials and metric histories as pandas
DataFrames, fits and crossovers with their intervals, and live updates.

    import asymptote
    c = asymptote.Client()                      # $ASYMPTOTE_URL or http://127.0.0.1:8470
    c.submit("examples/quickstart.yaml")
    for event in c.watch("quickstart"): ...
    trials = c.trials("quickstart")             # one row per trial
    curves = c.history("quickstart")            # one row per (trial, attempt, step, metric)
    fit = c.fit("quickstart")                   # parameters with bootstrap intervals
    asymptote.replicates(trials)                # seeds grouped into means and spreads

Pure Python: the standard library and pandas. It talks to a coordinator's
HTTP API (asymptote coordinator -http, or asymptote dev); see docs/python.md.
"""

from .client import AsymptoteError, Client, Crossover, Fit, replicates, spec_yaml

__all__ = ["AsymptoteError", "Client", "Crossover", "Fit", "replicates", "spec_yaml"]
__version__ = "0.1.0"

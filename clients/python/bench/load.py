"""Times how long the Python client takes to load a study into pandas: its
trials (one row each) and its whole metric history (one row a metric value).

    python3 clients/python/bench/load.py STUDY [--url URL] [--repeat N]

scripts/bench-python-client.sh runs it on a 100,000-trial study."""

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
import asymptote  # noqa: E402


def main():
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("study")
    p.add_argument("--url", default=None)
    p.add_argument("--repeat", type=int, default=3)
    a = p.parse_args()
    c = asymptote.Client(a.url, timeout=1800)
    for i in range(a.repeat):
        t0 = time.perf_counter()
        trials = c.trials(a.study)
        t1 = time.perf_counter()
        hist = c.history(a.study)
        t2 = time.perf_counter()
        steps = hist.drop_duplicates(["trial", "attempt", "step"])
        values = len(hist) + int(steps["tokens"].notna().sum()) + int(steps["flops"].notna().sum())
        print(f"run {i + 1}: trials {len(trials):,} rows in {t1 - t0:.2f}s; history {len(hist):,} rows "
              f"({values:,} values) in {t2 - t1:.2f}s; total {t2 - t0:.2f}s; "
              f"memory {trials.memory_usage(deep=True).sum() / 2**20 + hist.memory_usage(deep=True).sum() / 2**20:.0f} MiB",
              flush=True)


if __name__ == "__main__":
    main()

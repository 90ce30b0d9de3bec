#!/usr/bin/python3
"""Times SciPy's L-BFGS-B on the benchmark jobs and, in the same run, the Go
implementation, and prints the ratio.

Jobs (on scaling/testdata/chinchilla_synthetic_240.csv, 240 runs):
  grid       Hoffmann et al.'s 4,500-start grid, summed Huber loss (delta 1e-3)
             on log residuals, L-BFGS-B with the analytic gradient, SciPy's
             default tolerances (Besiroglu et al.'s "replicate exactly",
             with the gradient supplied).
  bootstrap  4,000 resamples (np.random.seed(42)), each refitted from
             Hoffmann et al.'s parameters with the same objective.

Run from the repository root with Debian's python3-scipy:

    /usr/bin/python3 bench/scaling/scipy_ref.py            # both, then Go
    /usr/bin/python3 bench/scaling/scipy_ref.py --quick    # 10% of each job

The Go side is the benchmarks BenchmarkChinchillaGrid and
BenchmarkChinchillaBootstrap (scaling/bench_test.go), built once and run
--go-count times each; the median wall time and the mean CPU time (user +
system, all threads) are compared with SciPy's wall and CPU time. SciPy is
single-threaded and Go uses every core, so on an idle machine the wall ratio
is about the CPU ratio times the number of cores. The machine is shared:
wall times move with other users' load, CPU times much less, so read both.
With --quick the SciPy times are scaled up tenfold.
"""
import argparse
import itertools
import os
import re
import resource
import subprocess
import sys
import tempfile
import time

import numpy as np
from scipy.optimize import minimize
from scipy.special import huber, logsumexp

DELTA = 1e-3
HOFFMANN = dict(E=1.69, A=406.4, B=410.7, alpha=0.34, beta=0.28)


def load(path):
    data = np.genfromtxt(path, delimiter=",", names=True)
    return np.log(data["params"]), np.log(data["tokens"]), np.log(data["loss"])


def objective(theta, ln, ld, ly):
    """Summed Huber loss of log residuals and its analytic gradient."""
    e, a, b, alpha, beta = theta
    terms = np.stack([a - alpha * ln, b - beta * ld, np.full_like(ln, e)])
    lp = logsumexp(terms, axis=0)
    w = np.exp(terms - lp)
    r = lp - ly
    f = huber(DELTA, r).sum()
    d = np.clip(r, -DELTA, DELTA)
    grad = np.array([
        (d * w[2]).sum(),
        (d * w[0]).sum(),
        (d * w[1]).sum(),
        -(d * w[0] * ln).sum(),
        -(d * w[1] * ld).sum(),
    ])
    return f, grad


def hoffmann_theta():
    h = HOFFMANN
    return np.array([np.log(h["E"]), np.log(h["A"]), np.log(h["B"]), h["alpha"], h["beta"]])


def grid_fit(ln, ld, ly, limit=None):
    grid = itertools.product(
        np.linspace(-1, 1, 5),  # e
        np.arange(0, 30, 5),  # a
        np.arange(0, 30, 5),  # b
        np.linspace(0, 2, 5),  # alpha
        np.linspace(0, 2, 5),  # beta
    )
    best, nfev, n = None, 0, 0
    for e, a, b, alpha, beta in itertools.islice(grid, limit):
        res = minimize(objective, np.array([e, a, b, alpha, beta]), args=(ln, ld, ly), jac=True, method="L-BFGS-B")
        nfev += res.nfev
        n += 1
        if res.success and (best is None or res.fun < best.fun):
            best = res
    return best, n, nfev


def bootstrap(ln, ld, ly, resamples):
    np.random.seed(42)
    n = len(ly)
    x0 = hoffmann_theta()
    alphas = []
    for _ in range(resamples):
        idx = np.random.choice(n, n, replace=True)
        res = minimize(objective, x0, args=(ln[idx], ld[idx], ly[idx]), jac=True, method="L-BFGS-B")
        alphas.append(res.x[3])
    return np.percentile(alphas, [2.5, 97.5])


def go_bench(count):
    """Builds the Go benchmarks once, then runs each count times.

    Returns {name: (median wall seconds, CPU seconds per run)}; CPU time is
    the children's user+system time, which other users of a shared machine
    disturb far less than wall time.
    """
    binary = os.path.join(tempfile.mkdtemp(), "scaling.test")
    subprocess.run(["go", "test", "-c", "-o", binary, "./scaling"], check=True)
    results, raw = {}, ""
    for name in ("ChinchillaGrid", "ChinchillaBootstrap"):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        out = subprocess.run(
            [binary, "-test.run", "^$", "-test.bench", f"^Benchmark{name}$", "-test.benchtime", "1x",
             "-test.count", str(count)],
            check=True, capture_output=True, text=True, cwd="scaling",
        ).stdout
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu = (after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime) / count
        walls = sorted(int(m.group(1)) / 1e9 for m in re.finditer(r"\s(\d+) ns/op", out))
        results[name] = (walls[len(walls) // 2], cpu)
        raw += out
    return results, raw


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default="scaling/testdata/chinchilla_synthetic_240.csv")
    ap.add_argument("--quick", action="store_true", help="run a tenth of each SciPy job")
    ap.add_argument("--skip-go", action="store_true")
    ap.add_argument("--go-count", type=int, default=5, help="Go runs per benchmark; the median is compared")
    args = ap.parse_args()
    ln, ld, ly = load(args.data)

    t0, c0 = time.perf_counter(), time.process_time()
    best, starts, nfev = grid_fit(ln, ld, ly, 450 if args.quick else None)
    t_grid, c_grid = time.perf_counter() - t0, time.process_time() - c0
    e, a, b, alpha, beta = best.x
    print(f"scipy grid: {starts} starts, {nfev} evaluations, {t_grid:.2f} s ({c_grid:.2f} s CPU); best objective {best.fun:.12g}: "
          f"E={np.exp(e):.4f} A={np.exp(a):.1f} B={np.exp(b):.1f} alpha={alpha:.4f} beta={beta:.4f}")
    resamples = 400 if args.quick else 4000
    t0, c0 = time.perf_counter(), time.process_time()
    ci = bootstrap(ln, ld, ly, resamples)
    t_boot, c_boot = time.perf_counter() - t0, time.process_time() - c0
    print(f"scipy bootstrap: {resamples} resamples, {t_boot:.2f} s ({c_boot:.2f} s CPU); alpha 95% CI ({ci[0]:.4f}, {ci[1]:.4f})")
    if args.quick:
        t_grid *= 10
        t_boot *= 10
        c_grid *= 10
        c_boot *= 10
        print(f"(quick: scaled to the full jobs: grid {t_grid:.1f} s, bootstrap {t_boot:.1f} s)")
    if args.skip_go:
        return
    times, raw = go_bench(args.go_count)
    sys.stdout.write(raw)
    for label, name, wall, cpu in (("grid", "ChinchillaGrid", t_grid, c_grid),
                                   ("bootstrap", "ChinchillaBootstrap", t_boot, c_boot)):
        if name not in times:
            continue
        gw, gc = times[name]
        print(f"{label + ':':10s} scipy {wall:.2f} s wall, {cpu:.2f} s CPU; go {gw:.3f} s wall (median of "
              f"{args.go_count}), {gc:.3f} s CPU; ratio {wall / gw:.1f}x wall, {cpu / gc:.1f}x CPU")

if __name__ == "__main__":
    main()

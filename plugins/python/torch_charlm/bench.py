"""Training throughput of torch_charlm: characters per second over
optimizer steps (one member, evaluation excluded; the median of five
chunks of steps), like charlm's BenchmarkTrain.

    cd plugins/python && /usr/bin/python3 -m torch_charlm.bench --width 64 --depth 2 --threads 1

prints one line: "tokens/s=<rate> params=<count> device=<device>". Go's
BenchmarkTorchCharlm (plugins/python/python_test.go) runs it for several
sizes.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from asymptote_method import TrialRequest

from . import corpus
from .method import Trainer, parse, pick_device


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--width", type=int, default=64)
    ap.add_argument("--depth", type=int, default=2)
    ap.add_argument("--heads", type=int, default=4)
    ap.add_argument("--context", type=int, default=64)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--steps", type=int, default=40,
                    help="timed steps (five chunks; the median chunk's rate is printed), after --warmup untimed ones")
    ap.add_argument("--warmup", type=int, default=5)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    req = TrialRequest(params={"width": a.width, "depth": a.depth, "heads": a.heads, "context": a.context,
                               "batch": a.batch, "tokens": 10**9}, threads=a.threads, seed=1)
    device = pick_device(req)
    tr = Trainer(parse(req, corpus.load_kjv()), corpus.load_kjv(), 1, device)
    for i in range(a.warmup):
        tr.step(i, a.batch)
    if device.type == "cuda":
        torch.cuda.synchronize()
    # The median over five chunks of steps damps other jobs' load.
    chunk, rates, step = max(1, a.steps // 5), [], a.warmup
    for _ in range(5):
        t0 = time.perf_counter()
        for _ in range(chunk):
            tr.step(step, a.batch)
            step += 1
        if device.type == "cuda":
            torch.cuda.synchronize()
        rates.append(chunk * a.batch * a.context / (time.perf_counter() - t0))
    print(f"tokens/s={statistics.median(rates):.0f} params={tr.num_params()} device={device}")


if __name__ == "__main__":
    main()

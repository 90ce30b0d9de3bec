#!/usr/bin/env python3
"""Writes the synthetic Chinchilla-like benchmark data set (240 runs).

Parameters are Besiroglu et al.'s MLE (E=1.8172, A=482.01, B=2085.43,
alpha=0.3478, beta=0.3658); model sizes are log-uniform in [4.4e7, 1.6e10],
compute log-uniform in [6e18, 3e21], D = C/(6N), and log losses get Laplace
noise with scale 0.0047 (the mean absolute log residual of the real fit).
Deterministic: the same file on every run.
"""
import math
import random
import sys

E, A, B, ALPHA, BETA = 1.8172, 482.01, 2085.43, 0.3478, 0.3658
rng = random.Random(20240417)
out = sys.stdout
out.write("params,tokens,compute,loss\n")
for _ in range(240):
    n = math.exp(rng.uniform(math.log(4.4e7), math.log(1.6e10)))
    c = math.exp(rng.uniform(math.log(6e18), math.log(3e21)))
    d = c / (6 * n)
    loss = E + A / n**ALPHA + B / d**BETA
    u = rng.random() - 0.5
    noise = -0.0047 * math.copysign(1, u) * math.log(1 - 2 * abs(u))
    out.write(f"{n:.6g},{d:.6g},{c:.6g},{loss * math.exp(noise):.6f}\n")

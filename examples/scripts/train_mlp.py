#!/usr/bin/env python3
"""Trains a small MLP on a teacher-student regression task with PyTorch.

A plain training script, as people write them: argparse flags in, progress
lines out. It knows nothing of asymptote; examples/script-torch.yaml runs it
as a study with the command method, reading its metrics from the lines it
prints.
"""
import argparse
import math

import torch


def main():
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--hidden", type=int, default=32, help="hidden units")
    p.add_argument("--lr", type=float, default=1e-2, help="learning rate")
    p.add_argument("--weight-decay", type=float, default=0.0)
    p.add_argument("--epochs", type=int, default=20)
    p.add_argument("--samples", type=int, default=2048, help="training examples")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()

    torch.manual_seed(args.seed)
    dim = 16
    # The teacher: a fixed random two-layer network (the same for every
    # seed, so seeds vary only the student and the data draw).
    g = torch.Generator().manual_seed(1234)
    w1 = torch.randn(dim, 64, generator=g) / math.sqrt(dim)
    w2 = torch.randn(64, 1, generator=g) / 8.0

    def teacher(x):
        return torch.tanh(x @ w1) @ w2

    x_train = torch.randn(args.samples, dim)
    y_train = teacher(x_train) + 0.05 * torch.randn(args.samples, 1)
    x_val = torch.randn(1024, dim)
    y_val = teacher(x_val)

    model = torch.nn.Sequential(
        torch.nn.Linear(dim, args.hidden), torch.nn.Tanh(), torch.nn.Linear(args.hidden, 1)
    )
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=args.weight_decay)
    params = sum(t.numel() for t in model.parameters())
    print(f"model has {params} parameters", flush=True)
    batch = 128
    for epoch in range(1, args.epochs + 1):
        perm = torch.randperm(args.samples)
        total = 0.0
        for i in range(0, args.samples, batch):
            idx = perm[i : i + batch]
            opt.zero_grad()
            loss = torch.nn.functional.mse_loss(model(x_train[idx]), y_train[idx])
            loss.backward()
            opt.step()
            total += loss.item() * len(idx)
        with torch.no_grad():
            val = torch.nn.functional.mse_loss(model(x_val), y_val).item()
        print(f"epoch {epoch} train_loss {total / args.samples:.6f} val_loss {val:.6f}", flush=True)


if __name__ == "__main__":
    main()

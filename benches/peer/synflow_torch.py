#!/usr/bin/env python3
"""PyTorch peer of `nasforge proxies`: SynFlow on NAS-Bench-201 cells, the published way.

For each arch of the sample file (the per-cell CSV `nasforge proxies --out` writes, so both
score the same cells), builds the NB201 network of torch_step.py (TinyNetwork, C=16, N=5,
32x32x3, 10 classes) with batch norm left out, initialises it from the seed, then as in
Abdelfattah et al. 2021 (zero-cost-nas, `synflow`): net.double(), every parameter replaced by
its absolute value, an all-ones input of batch 1, R = sum of the output, backward, and
score = sum over Conv2d and Linear layers of (weight * weight.grad).sum().

Prints Spearman's rho and Kendall's tau-b against the sample's objective column and the time
per cell (network build included, as nasforge's figure includes its own build).

Run through run_synflow.sh, which sets up the venv.
"""

import argparse
import csv
import json
import sys
import time

import numpy as np
import torch
import torch.nn as nn

import torch_step


def no_bn(module):
    """Replaces every BatchNorm2d by Identity (the published synflow builds the net with bn=False)."""
    for name, child in module.named_children():
        if isinstance(child, nn.BatchNorm2d):
            setattr(module, name, nn.Identity())
        else:
            no_bn(child)
    return module


def synflow(arch, seed):
    torch.manual_seed(seed)
    C, N, cin, hw, classes, _ = torch_step.NETS["nb201"]
    net = no_bn(torch_step.TinyNetwork(C, N, cin, classes, arch)).double()
    with torch.no_grad():
        for p in net.parameters():
            p.abs_()
    out = net(torch.ones(1, cin, hw, hw, dtype=torch.float64))
    out.sum().backward()
    return sum(
        (m.weight * m.weight.grad).sum().item()
        for m in net.modules()
        if isinstance(m, (nn.Conv2d, nn.Linear)) and m.weight.grad is not None
    )


def ranks(x):
    x = np.asarray(x, dtype=float)
    order = np.argsort(x, kind="mergesort")
    r = np.empty(len(x))
    i = 0
    while i < len(x):
        j = i
        while j + 1 < len(x) and x[order[j + 1]] == x[order[i]]:
            j += 1
        r[order[i : j + 1]] = (i + j) / 2 + 1
        i = j + 1
    return r


def spearman(x, y):
    return float(np.corrcoef(ranks(x), ranks(y))[0, 1])


def kendall(x, y):
    """Kendall's tau-b, O(n^2)."""
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    dx = np.sign(x[:, None] - x[None, :])
    dy = np.sign(y[:, None] - y[None, :])
    iu = np.triu_indices(len(x), 1)
    dx, dy = dx[iu], dy[iu]
    s = (dx * dy).sum()
    return float(s / np.sqrt((dx != 0).sum() * (dy != 0).sum()))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("sample", help="CSV with `arch` and objective columns (nasforge proxies --out)")
    ap.add_argument("--objective", default="test_acc_200ep")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    with open(args.sample, newline="") as f:
        rows = list(csv.DictReader(f))
    scores, objective = [], []
    t0 = time.perf_counter()
    for row in rows:
        scores.append(synflow(row["arch"], args.seed))
        objective.append(float(row[args.objective]))
    ms = (time.perf_counter() - t0) * 1e3 / len(rows)
    result = {
        "name": "synflow",
        "cells": len(rows),
        "spearman": spearman(scores, objective),
        "kendall": kendall(scores, objective),
        "ms_per_cell": ms,
        "torch": torch.__version__,
        "threads": args.threads,
    }
    if args.json:
        print(json.dumps(result))
    else:
        print(
            f"synflow (PyTorch {torch.__version__}, {args.threads} threads): {len(rows)} cells, "
            f"spearman {result['spearman']:.4f}, kendall {result['kendall']:.4f}, "
            f"{ms:.2f} ms/cell",
            file=sys.stdout,
        )


if __name__ == "__main__":
    main()

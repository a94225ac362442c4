#!/usr/bin/env python3
"""PyTorch peer of `nasforge search --method darts|spos`: time per supernet epoch.

The NAS-Bench-201 supernet of the embedded digits' search (C=16, one cell per stage, 8x8x1
input, 10 classes; torch_step.py's stem, reduction blocks and head), every cell edge a mixed
op of the five NB201 ops weighted by softmax(alpha) (`none` as x * 0, as NB201's DARTS code
does). One epoch is nasforge's: ceil(train_rows / batch) steps (a final batch of fewer than
2 rows skipped), each an alpha step on a validation batch (Adam lr 3e-3, betas (0.5, 0.999),
weight decay 1e-3; gradients for alpha only, torch.autograd.grad) then a weight step on the
training batch with alpha fixed (SGD lr 0.05, Nesterov momentum 0.9, weight decay 5e-4).
With --method spos a step instead trains one path, an op per edge drawn uniformly, the other
ops not computed (no alpha step). Data are random tensors of the digits' shape (time does not
depend on values).

Run through run_torch.sh, which sets up the venv:
  NASFORGE_TORCH_SCRIPT=darts_torch.py benches/peer/run_torch.sh --threads 2 --epochs 5 --json
  NASFORGE_TORCH_SCRIPT=darts_torch.py benches/peer/run_torch.sh --method spos --epochs 5 --json
"""

import argparse
import json
import statistics
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

from torch_step import OP_NAMES, ResNetBasicBlock, make_op


class Zero(nn.Module):
    def forward(self, x):
        return x.mul(0.0)


class MixedOp(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.ops = nn.ModuleList(
            Zero() if name == "none" else make_op(name, c) for name in OP_NAMES
        )

    def forward(self, x, w):
        if isinstance(w, int):  # one path: only the chosen op runs
            return self.ops[w](x)
        return sum(wk * op(x) for wk, op in zip(w, self.ops))


class SearchCell(nn.Module):
    """node j = sum_{i<j} mixed_{j<-i}(node i); edges in NB201's order (1<-0, 2<-0, 2<-1,
    3<-0, 3<-1, 3<-2), edge e weighted by weights[e]."""

    EDGES = [(1, 0), (2, 0), (2, 1), (3, 0), (3, 1), (3, 2)]

    def __init__(self, c):
        super().__init__()
        self.mixed = nn.ModuleList(MixedOp(c) for _ in self.EDGES)

    def forward(self, x, weights):
        states = [x]
        for j in (1, 2, 3):
            states.append(
                sum(
                    self.mixed[e](states[i], weights[e])
                    for e, (t, i) in enumerate(self.EDGES)
                    if t == j
                )
            )
        return states[3]


class SuperNetwork(nn.Module):
    def __init__(self, C=16, N=1, in_channels=1, classes=10):
        super().__init__()
        self.stem = nn.Sequential(
            nn.Conv2d(in_channels, C, 3, padding=1, bias=False), nn.BatchNorm2d(C)
        )
        self.layers = nn.ModuleList()
        c = C
        for stage, width in enumerate((C, 2 * C, 4 * C)):
            if stage > 0:
                self.layers.append(ResNetBasicBlock(c, width))
                c = width
            self.layers.extend(SearchCell(c) for _ in range(N))
        self.lastact = nn.Sequential(nn.BatchNorm2d(c), nn.ReLU(inplace=True))
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(c, classes)

    def forward(self, x, weights):
        x = self.stem(x)
        for layer in self.layers:
            x = layer(x, weights) if isinstance(layer, SearchCell) else layer(x)
        x = self.lastact(x)
        return self.classifier(self.pool(x).flatten(1))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--epochs", type=int, default=5)
    ap.add_argument("--train-rows", type=int, default=1259)
    ap.add_argument("--valid-rows", type=int, default=269)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--method", choices=("darts", "spos"), default="darts")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)

    net = SuperNetwork()
    alpha = (1e-3 * torch.randn(6, len(OP_NAMES))).requires_grad_()
    w_opt = torch.optim.SGD(
        net.parameters(), lr=0.05, momentum=0.9, nesterov=True, weight_decay=5e-4
    )
    a_opt = torch.optim.Adam([alpha], lr=3e-3, betas=(0.5, 0.999), weight_decay=1e-3)
    xt = torch.randn(args.train_rows, 1, 8, 8)
    yt = torch.randint(0, 10, (args.train_rows,))
    xv = torch.randn(args.valid_rows, 1, 8, 8)
    yv = torch.randint(0, 10, (args.valid_rows,))
    net.train()
    epochs = []
    for _ in range(args.epochs):
        t0 = time.perf_counter()
        order = torch.randperm(args.train_rows)
        for k in range(0, args.train_rows, args.batch):
            rows = order[k : k + args.batch]
            if len(rows) < 2:
                continue
            if args.method == "spos":
                weights = [int(k) for k in torch.randint(0, len(OP_NAMES), (6,))]
            else:
                v = torch.randint(0, args.valid_rows, (args.batch,))
                a_loss = F.cross_entropy(net(xv[v], F.softmax(alpha, dim=-1)), yv[v])
                (g,) = torch.autograd.grad(a_loss, [alpha])
                alpha.grad = g
                a_opt.step()
                weights = F.softmax(alpha, dim=-1).detach()
            w_opt.zero_grad(set_to_none=True)
            loss = F.cross_entropy(net(xt[rows], weights), yt[rows])
            loss.backward()
            w_opt.step()
        epochs.append(time.perf_counter() - t0)
    res = {
        "method": args.method,
        "threads": args.threads,
        "epochs": len(epochs),
        "epoch_s": [round(e, 3) for e in epochs],
        "epoch_s_median": round(statistics.median(epochs), 3),
        "steps_per_epoch": -(-args.train_rows // args.batch),
        "params": sum(p.numel() for p in net.parameters()),
        "torch": torch.__version__,
    }
    if args.json:
        print(json.dumps(res))
    else:
        print(res, file=sys.stdout)


if __name__ == "__main__":
    main()

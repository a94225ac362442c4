#!/usr/bin/env python3
"""PyTorch reference timings for the networks nasforge builds.

Builds the NAS-Bench-201 network (Dong & Yang, 2020; the `InferCell` /
`TinyNetwork` construction of the NB201 release) for one cell, then times

* one training step: forward on a fixed random batch, CrossEntropyLoss,
  backward, SGD(lr=0.05, momentum=0.9, nesterov=True, weight_decay=5e-4) step,
  with model.train();
* inference: model.eval() under torch.no_grad(), batch 64 and batch 1.

Nets:
  nb201  : C=16, N=5 cells per stage, 32x32x3 input, 10 classes
           (1,531,546 parameters for the all-nor_conv_3x3 cell)
  digits : C=16, N=1 cell per stage, 8x8x1 input, 10 classes
           (175,834 parameters for its default cell)

Run through run_torch.sh, which sets up the venv:
  nice -n 10 benches/peer/run_torch.sh --net nb201 --threads 2 --json
"""

import argparse
import json
import resource
import statistics
import sys
import time

import torch
import torch.nn as nn

NETS = {
    # name: (C, N, in_channels, hw, classes, default cell)
    "nb201": (
        16,
        5,
        3,
        32,
        10,
        "|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|"
        "+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|",
    ),
    "digits": (
        16,
        1,
        1,
        8,
        10,
        "|none~0|+|nor_conv_3x3~0|none~1|+|nor_conv_1x1~0|none~1|nor_conv_3x3~2|",
    ),
}

ALL_CONV3 = (
    "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|"
    "+|nor_conv_3x3~0|nor_conv_3x3~1|nor_conv_3x3~2|"
)

# Known parameter counts, checked whenever net and cell match.
EXPECTED_PARAMS = {
    ("nb201", ALL_CONV3): 1_531_546,
    ("digits", NETS["digits"][5]): 175_834,
}

OP_NAMES = ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")


def parse_cell(arch):
    """'|op~i|+|op~i|op~i|+...' -> [[(op, i), ...] for node 1, node 2, node 3]."""
    nodes = []
    for j, part in enumerate(arch.split("+"), start=1):
        edges = []
        for tok in part.strip("|").split("|"):
            op, src = tok.split("~")
            src = int(src)
            if op not in OP_NAMES:
                raise ValueError(f"unknown op {op!r} in {arch!r}")
            if not 0 <= src < j:
                raise ValueError(f"node {j} cannot take input {src} in {arch!r}")
            edges.append((op, src))
        nodes.append(edges)
    if len(nodes) != 3:
        raise ValueError(f"expected 3 intermediate nodes in {arch!r}")
    return nodes


class ReLUConvBN(nn.Sequential):
    def __init__(self, c_in, c_out, k, stride, padding):
        super().__init__(
            nn.ReLU(inplace=False),
            nn.Conv2d(c_in, c_out, k, stride=stride, padding=padding, bias=False),
            nn.BatchNorm2d(c_out, affine=True),
        )


def make_op(name, c):
    if name == "nor_conv_3x3":
        return ReLUConvBN(c, c, 3, 1, 1)
    if name == "nor_conv_1x1":
        return ReLUConvBN(c, c, 1, 1, 0)
    if name == "avg_pool_3x3":
        return nn.AvgPool2d(3, stride=1, padding=1, count_include_pad=False)
    if name == "skip_connect":
        return nn.Identity()
    raise ValueError(name)


class Cell(nn.Module):
    """NB201 cell: node0 = input, node j = sum_{i<j} op_{j<-i}(node i),
    `none` edges omitted from the sum; output = node 3."""

    def __init__(self, nodes, c):
        super().__init__()
        self.ops = nn.ModuleList()
        self.edges = []  # per node: [(index into self.ops, source node)]
        for edges in nodes:
            mine = []
            for op, src in edges:
                if op == "none":
                    continue
                mine.append((len(self.ops), src))
                self.ops.append(make_op(op, c))
            self.edges.append(mine)

    def forward(self, x):
        states = [x]
        for mine in self.edges:
            acc = None
            for k, src in mine:
                if states[src] is None:  # a node that is all-`none` is zero
                    continue
                y = self.ops[k](states[src])
                acc = y if acc is None else acc + y
            states.append(acc)
        out = states[-1]
        return torch.zeros_like(x) if out is None else out


class ResNetBasicBlock(nn.Module):
    def __init__(self, c_in, c_out):
        super().__init__()
        self.conv_a = ReLUConvBN(c_in, c_out, 3, 2, 1)
        self.conv_b = ReLUConvBN(c_out, c_out, 3, 1, 1)
        self.downsample = nn.Sequential(
            nn.AvgPool2d(kernel_size=2, stride=2, padding=0),
            nn.Conv2d(c_in, c_out, kernel_size=1, stride=1, padding=0, bias=False),
        )

    def forward(self, x):
        return self.conv_b(self.conv_a(x)) + self.downsample(x)


class TinyNetwork(nn.Module):
    def __init__(self, C, N, in_channels, classes, cell):
        super().__init__()
        nodes = parse_cell(cell)
        self.stem = nn.Sequential(
            nn.Conv2d(in_channels, C, 3, padding=1, bias=False), nn.BatchNorm2d(C)
        )
        layers = []
        c = C
        for stage, width in enumerate((C, 2 * C, 4 * C)):
            if stage > 0:
                layers.append(ResNetBasicBlock(c, width))
                c = width
            layers.extend(Cell(nodes, c) for _ in range(N))
        self.cells = nn.Sequential(*layers)
        self.lastact = nn.Sequential(nn.BatchNorm2d(c), nn.ReLU(inplace=True))
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(c, classes)

    def forward(self, x):
        x = self.lastact(self.cells(self.stem(x)))
        return self.classifier(self.pool(x).flatten(1))


def build(net, cell):
    C, N, cin, hw, classes, default_cell = NETS[net]
    cell = cell or default_cell
    model = TinyNetwork(C, N, cin, classes, cell)
    params = sum(p.numel() for p in model.parameters())
    want = EXPECTED_PARAMS.get((net, cell))
    if want is not None:
        assert params == want, f"{net} {cell}: {params} parameters, expected {want}"
    return model, params, cell, (cin, hw, hw), classes


def time_ms(fn, n, warmup):
    for _ in range(warmup):
        fn()
    out = []
    for _ in range(n):
        t0 = time.perf_counter()
        fn()
        out.append((time.perf_counter() - t0) * 1e3)
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--net", choices=sorted(NETS), default="nb201")
    ap.add_argument("--cell", default=None, help="NB201 arch string (default per net)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--json", action="store_true", help="print one JSON object")
    ap.add_argument(
        "--params-only", action="store_true", help="print the parameter count and exit"
    )
    args = ap.parse_args()

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)

    model, params, cell, shape, classes = build(args.net, args.cell)
    log = sys.stderr if args.json else sys.stdout
    print(f"{args.net}: cell {cell}", file=log)
    print(f"{args.net}: {params:,} parameters", file=log)
    if args.params_only:
        return

    # Training step on one fixed random batch.
    x = torch.randn(args.batch, *shape)
    y = torch.randint(0, classes, (args.batch,))
    loss_fn = nn.CrossEntropyLoss()
    opt = torch.optim.SGD(
        model.parameters(), lr=0.05, momentum=0.9, nesterov=True, weight_decay=5e-4
    )
    model.train()

    def step():
        opt.zero_grad(set_to_none=True)
        loss = loss_fn(model(x), y)
        loss.backward()
        opt.step()
        return loss

    train = time_ms(step, args.steps, args.warmup)

    # Inference.
    model.eval()
    x64 = torch.randn(64, *shape)
    x1 = torch.randn(1, *shape)
    with torch.no_grad():
        inf64 = time_ms(lambda: model(x64), 30, 5)
        inf1 = time_ms(lambda: model(x1), 30, 5)

    peak_rss_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    res = {
        "net": args.net,
        "threads": args.threads,
        "batch": args.batch,
        "params": params,
        "train_step_ms_median": round(statistics.median(train), 3),
        "train_step_ms_mean": round(statistics.fmean(train), 3),
        "infer_b64_ms": round(statistics.median(inf64), 3),
        "infer_b1_ms": round(statistics.median(inf1), 3),
        "peak_rss_mib": round(peak_rss_mib, 1),
        "torch": torch.__version__,
    }
    if args.json:
        print(json.dumps(res))
    else:
        print(
            f"train step (batch {args.batch}, {args.steps} after {args.warmup} warm-up): "
            f"median {res['train_step_ms_median']:.2f} ms, mean {res['train_step_ms_mean']:.2f} ms"
        )
        print(
            f"inference (median of 30): batch 64 {res['infer_b64_ms']:.2f} ms, "
            f"batch 1 {res['infer_b1_ms']:.2f} ms"
        )
        print(f"peak RSS {res['peak_rss_mib']:.1f} MiB, torch {res['torch']}, threads {args.threads}")


if __name__ == "__main__":
    main()

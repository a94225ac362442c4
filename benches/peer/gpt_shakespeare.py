"""PyTorch peer of `nasforge train --task lm` on Shakespeare: nanoGPT's CPU configuration (4
layers, 4 heads, width 128, block 64, batch 12) trained for one pass over the same windows
nasforge trains on, then its cross-entropy on the same test windows.

The data is cut as nasforge cuts it (crates/nasforge-nn/src/data/text.rs, `Corpus`): the first
--chars characters of the corpus, three contiguous blocks by characters (train, validation,
test: the last two rounded from --valid and --test), the character vocabulary of the training
block (id 0 pads, 1 is unknown, characters from 2 in code-point order), each block cut into
non-overlapping windows of --block tokens whose targets are the next tokens. As in nasforge's
final training, the model trains on the training and validation windows together, one epoch
in a seeded shuffled order, and is scored on the test windows.

The model is transformer_params.Transformer (nanoGPT's block) with nanoGPT's initialisation:
N(0, 0.02) weights, zero biases, the residual projections at 0.02 / sqrt(2 * layers). The
recipe is nasforge's flags in docs/BENCHMARKS.md: AdamW (betas 0.9/0.999, eps 1e-8, weight
decay on every parameter), constant learning rate, global gradient-norm clipping.

Run: NASFORGE_TORCH_SCRIPT=gpt_shakespeare.py benches/peer/run_torch.sh --data FILE ...
"""
import argparse
import gzip
import json
import math
import random
import time

import torch
from torch import nn

from transformer_params import Transformer


def read(path, chars):
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rt", encoding="utf-8") as f:
        return f.read()[:chars]


def windows(ids, block):
    n = (len(ids) - 1) // block
    x = [ids[w * block:w * block + block] for w in range(n)]
    y = [ids[w * block + 1:w * block + block + 1] for w in range(n)]
    return x, y


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", required=True)
    ap.add_argument("--chars", type=int, required=True)
    ap.add_argument("--valid", type=float, default=0.05)
    ap.add_argument("--test", type=float, default=0.05)
    ap.add_argument("--block", type=int, default=64)
    ap.add_argument("--batch", type=int, default=12)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--weight-decay", type=float, default=0.1)
    ap.add_argument("--clip", type=float, default=1.0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    text = read(args.data, args.chars)
    n = len(text)
    n_valid, n_test = round(n * args.valid), round(n * args.test)
    n_train = n - n_valid - n_test
    blocks = [text[:n_train], text[n_train:n_train + n_valid], text[n_train + n_valid:]]
    chars = sorted(set(blocks[0]))
    index = {c: 2 + i for i, c in enumerate(chars)}
    vocab = len(chars) + 2
    encode = lambda s: [index.get(c, 1) for c in s]
    (tx, ty), (vx, vy), (sx, sy) = (windows(encode(b), args.block) for b in blocks)
    train_x, train_y = tx + vx, ty + vy

    depth = 4
    model = Transformer(vocab=vocab, t=args.block, d=128, heads=4, ratio=4, depth=depth)
    for name, p in model.named_parameters():
        if name.endswith("bias"):
            nn.init.zeros_(p)
        elif p.dim() == 2:
            residual = name.endswith("c_proj.weight") or name.endswith("mlp.2.weight")
            nn.init.normal_(p, 0.0, 0.02 / math.sqrt(2 * depth) if residual else 0.02)
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, betas=(0.9, 0.999), eps=1e-8,
                            weight_decay=args.weight_decay)
    order = list(range(len(train_x)))
    random.Random(args.seed).shuffle(order)
    start = time.perf_counter()
    steps = 0
    for at in range(0, len(order), args.batch):
        rows = order[at:at + args.batch]
        x = torch.tensor([train_x[r] for r in rows])
        y = torch.tensor([train_y[r] for r in rows])
        loss = nn.functional.cross_entropy(model(x).view(-1, vocab), y.view(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if args.clip > 0:
            nn.utils.clip_grad_norm_(model.parameters(), args.clip)
        opt.step()
        steps += 1
    seconds = time.perf_counter() - start
    model.eval()
    total, count = 0.0, 0
    with torch.no_grad():
        for at in range(0, len(sx), 256):
            x = torch.tensor(sx[at:at + 256])
            y = torch.tensor(sy[at:at + 256])
            total += nn.functional.cross_entropy(
                model(x).view(-1, vocab), y.view(-1), reduction="sum").item()
            count += y.numel()
    nats = total / count
    print(json.dumps({
        "peer": "torch " + torch.__version__, "threads": args.threads, "chars": n,
        "vocab": vocab, "train_windows": len(train_x), "test_windows": len(sx),
        "steps": steps, "train_seconds": round(seconds, 1),
        "step_ms": round(1e3 * seconds / max(steps, 1), 2),
        "test_nats": round(nats, 4), "test_bits": round(nats / math.log(2), 4),
    }))


if __name__ == "__main__":
    main()

"""PyTorch peer of crates/nasforge-nn/benches/gpt_step.rs: one training step of nanoGPT's
documented CPU configuration (4 layers, 4 heads, width 128, block 64, batch 12, vocabulary 65;
the Transformer of transformer_params.py), next-token cross-entropy at every position, AdamW
(lr 1e-3, betas 0.9/0.99, weight decay 0.1), no gradient clipping; the same fixed token ids.
Run: NASFORGE_TORCH_SCRIPT=gpt_step.py benches/peer/run_torch.sh --threads 2
"""
import argparse
import json
import time

import torch

from transformer_params import Transformer


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--batch", type=int, default=12)
    ap.add_argument("--block", type=int, default=64)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    vocab, b, t = 65, args.batch, args.block
    model = Transformer(vocab=vocab, t=t, d=128, heads=4, ratio=4, depth=4)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, betas=(0.9, 0.99), weight_decay=0.1)
    ids = torch.tensor([(i * 7919 + 13) % vocab for i in range(b * (t + 1))]).view(b, t + 1)
    x, y = ids[:, :t].contiguous(), ids[:, 1:].contiguous()
    times, fwd, bwd = [], [], []
    for i in range(args.warmup + args.steps):
        s = time.perf_counter()
        logits = model(x)
        loss = torch.nn.functional.cross_entropy(logits.view(-1, vocab), y.view(-1))
        last = loss.item()
        f = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        g = time.perf_counter()
        opt.step()
        e = time.perf_counter()
        if i >= args.warmup:
            times.append((e - s) * 1e3)
            fwd.append((f - s) * 1e3)
            bwd.append((g - f) * 1e3)
    med = lambda v: sorted(v)[len(v) // 2]
    print(json.dumps({
        "net": "gpt", "peer": "torch " + torch.__version__, "threads": args.threads,
        "batch": b, "block": t, "params": sum(p.numel() for p in model.parameters()),
        "train_step_ms_median": round(med(times), 2), "forward_ms": round(med(fwd), 2),
        "backward_ms": round(med(bwd), 2), "last_loss": round(last, 4),
    }))


if __name__ == "__main__":
    main()

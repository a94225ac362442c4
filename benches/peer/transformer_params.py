"""Parameter counts of three Transformers built from torch.nn modules, the reference for
crates/nasforge-nn/tests/transformer.rs (`parameter_counts_equal_pytorchs`).

Each block is nanoGPT's (model.py of karpathy/nanoGPT, rewritten here from its description):
pre-norm LayerNorm, causal self-attention with one D -> 3D projection for queries, keys and
values and a D -> D output projection, then LayerNorm and Linear(D, r*D)-GELU-Linear(r*D, D),
biases everywhere; token and learned position embeddings; a final LayerNorm; a language model's
head is a bias-free Linear tied to the token embedding, a classifier's a mean over positions
and a Linear. Run: NASFORGE_TORCH_SCRIPT=transformer_params.py benches/peer/run_torch.sh
"""
import json

import torch
from torch import nn


class Block(nn.Module):
    def __init__(self, d, heads, ratio):
        super().__init__()
        self.ln_1 = nn.LayerNorm(d)
        self.c_attn = nn.Linear(d, 3 * d)
        self.c_proj = nn.Linear(d, d)
        self.heads = heads
        self.ln_2 = nn.LayerNorm(d)
        self.mlp = nn.Sequential(nn.Linear(d, ratio * d), nn.GELU(), nn.Linear(ratio * d, d))

    def forward(self, x):
        n, t, d = x.shape
        q, k, v = self.c_attn(self.ln_1(x)).split(d, dim=2)
        split = lambda z: z.view(n, t, self.heads, d // self.heads).transpose(1, 2)
        y = nn.functional.scaled_dot_product_attention(split(q), split(k), split(v), is_causal=True)
        x = x + self.c_proj(y.transpose(1, 2).reshape(n, t, d))
        return x + self.mlp(self.ln_2(x))


class Transformer(nn.Module):
    def __init__(self, vocab, t, d, heads, ratio, depth, classes=None):
        super().__init__()
        self.wte = nn.Embedding(vocab, d)
        self.wpe = nn.Embedding(t, d)
        self.blocks = nn.ModuleList(Block(d, heads, ratio) for _ in range(depth))
        self.ln_f = nn.LayerNorm(d)
        if classes is None:
            self.head = nn.Linear(d, vocab, bias=False)
            self.head.weight = self.wte.weight  # tied
        else:
            self.head = nn.Linear(d, classes)
        self.classes = classes

    def forward(self, idx):
        t = idx.shape[1]
        x = self.wte(idx) + self.wpe(torch.arange(t, device=idx.device))
        for block in self.blocks:
            x = block(x)
        x = self.ln_f(x)
        return self.head(x if self.classes is None else x.mean(dim=1))


CONFIGS = {
    "nanoGPT CPU": dict(vocab=65, t=64, d=128, heads=4, ratio=4, depth=4),
    "classifier": dict(vocab=256, t=32, d=64, heads=2, ratio=2, depth=2, classes=3),
    "wide lm": dict(vocab=1000, t=16, d=192, heads=3, ratio=1, depth=1),
}

if __name__ == "__main__":
    out = {}
    for name, cfg in CONFIGS.items():
        model = Transformer(**cfg)
        # parameters() yields a tied tensor once.
        out[name] = sum(p.numel() for p in model.parameters())
    print(json.dumps({"torch": torch.__version__, "params": out}))

"""The `minigrad train` default run in PyTorch eager: the yardstick for its loss and speed.

Same model layout (tests/torch_gpt.py, nanoGPT's), init, AdamW groups, schedule, clipping,
batches and evaluation estimator as models/train.py; only the framework differs. It does
not import minigrad (benchmarks.chardata reads the corpus), so PyTorch runs as it would
in a plain process.

    python -m benchmarks.train_torch_reference [--max-iters 2000] [--eval-iters 200]
"""

import argparse
import json
import math
import time

import numpy as np
import torch

from benchmarks.chardata import SPLITS, Shakespeare
from tests.torch_gpt import TorchGPT

# Tokens per evaluation forward: models/train.py's _EVAL_TOKENS (this module does not import
# minigrad; tests/test_benchmarks.py checks that the two agree).
EVAL_TOKENS = 1536


def init_like_nanogpt(model, n_layer, seed):
    """nanoGPT's init: N(0, 0.02), residual projections scaled by 1/sqrt(2 n_layer)."""
    torch.manual_seed(seed)
    for name, p in model.named_parameters():
        if name.endswith("bias"):
            torch.nn.init.zeros_(p)
        elif "ln_" in name:
            torch.nn.init.ones_(p)
        elif name.endswith("c_proj.weight"):
            torch.nn.init.normal_(p, 0.0, 0.02 / math.sqrt(2 * n_layer))
        else:
            torch.nn.init.normal_(p, 0.0, 0.02)


def optimizer(model, lr, betas, weight_decay):
    """nanoGPT's configure_optimizers: AdamW, decay on 2-D weights only."""
    params = [p for p in model.parameters() if p.requires_grad]
    groups = [{"params": [p for p in params if p.dim() >= 2], "weight_decay": weight_decay},
              {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=lr, betas=betas)


def lr_at(it, lr, min_lr, warmup_iters, decay_iters):
    """nanoGPT's get_lr (as minigrad.optim.lr_warmup_cosine): warmup, then cosine."""
    if it < warmup_iters:
        return lr * (it + 1) / (warmup_iters + 1)
    if it >= decay_iters:
        return min_lr
    ratio = (it - warmup_iters) / (decay_iters - warmup_iters)
    return min_lr + 0.5 * (1.0 + math.cos(math.pi * ratio)) * (lr - min_lr)


@torch.no_grad()
def estimate_loss(model, data, batch_size, block_size, eval_iters, seed):
    """Mean loss over eval_iters batches of each split, from a generator seeded afresh,
    in groups of up to EVAL_TOKENS tokens per forward (as models/train.py)."""
    model.eval()
    out = {}
    group = max(1, EVAL_TOKENS // (batch_size * block_size))
    for split in SPLITS:
        rng = np.random.default_rng([seed, 1])
        total = 0.0
        for start in range(0, eval_iters, group):
            n = min(group, eval_iters - start)
            xs, ys = zip(*(data.get_batch(split, batch_size, block_size, rng)
                           for _ in range(n)), strict=True)
            x, y = torch.from_numpy(np.concatenate(xs)), torch.from_numpy(np.concatenate(ys))
            total += n * model(x, y)[1].item()
        out[split] = total / eval_iters
    model.train()
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--max-iters", type=int, default=2000)
    parser.add_argument("--eval-interval", type=int, default=250)
    parser.add_argument("--eval-iters", type=int, default=200)
    parser.add_argument("--seed", type=int, default=1337)
    args = parser.parse_args()
    batch_size, block_size, n_layer, n_head, n_embd = 12, 64, 4, 4, 128
    lr, min_lr, warmup = 1e-3, 1e-4, 100

    data = Shakespeare()
    model = TorchGPT(data.vocab_size, block_size, n_layer, n_head, n_embd, flash=True)
    init_like_nanogpt(model, n_layer, args.seed)
    params = list(model.parameters())
    opt = optimizer(model, lr, (0.9, 0.99), 0.1)
    rng = np.random.default_rng(args.seed)
    t0 = time.perf_counter()
    for it in range(args.max_iters + 1):
        if it % args.eval_interval == 0 or it == args.max_iters:
            losses = estimate_loss(model, data, batch_size, block_size, args.eval_iters,
                                   args.seed)
            print(json.dumps({"iter": it, "train_loss": losses["train"],
                              "val_loss": losses["val"],
                              "elapsed": round(time.perf_counter() - t0, 1)}), flush=True)
        if it == args.max_iters:
            break
        for g in opt.param_groups:
            g["lr"] = lr_at(it, lr, min_lr, warmup, args.max_iters)
        x, y = data.get_batch("train", batch_size, block_size, rng)
        _, loss = model(torch.from_numpy(x), torch.from_numpy(y))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()


if __name__ == "__main__":
    main()

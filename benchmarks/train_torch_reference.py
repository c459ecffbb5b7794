"""The `minigrad train` default run in PyTorch eager: the yardstick for its loss and speed.

Same model layout (tests/torch_gpt.py, nanoGPT's), init, AdamW groups, schedule, clipping,
batches and evaluation estimator as models/train.py; only the framework differs.

    python -m benchmarks.train_torch_reference [--max-iters 2000] [--seed 1337]
"""

import argparse
import json
import math
import time

import numpy as np
import torch
from minigrad.models.data import CharDataset, load_text

from minigrad import optim as mg_optim
from tests.torch_gpt import TorchGPT


def init_like_nanogpt(model, n_layer, seed):
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


@torch.no_grad()
def estimate_loss(model, data, batch_size, block_size, eval_iters, seed):
    model.eval()
    out = {}
    for split in CharDataset.SPLITS:
        rng = np.random.default_rng([seed, 1])
        losses = []
        for _ in range(eval_iters):
            x, y = data.get_batch(split, batch_size, block_size, rng)
            losses.append(model(torch.from_numpy(x), torch.from_numpy(y))[1].item())
        out[split] = float(np.mean(losses))
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

    torch.set_num_threads(2)
    data = CharDataset(load_text("shakespeare"))
    model = TorchGPT(data.vocab_size, block_size, n_layer, n_head, n_embd, flash=True)
    init_like_nanogpt(model, n_layer, args.seed)
    params = list(model.parameters())
    groups = [{"params": [p for p in params if p.dim() >= 2], "weight_decay": 0.1},
              {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0}]
    opt = torch.optim.AdamW(groups, lr=lr, betas=(0.9, 0.99))
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
            g["lr"] = mg_optim.lr_warmup_cosine(it, lr, min_lr, warmup, args.max_iters)
        x, y = data.get_batch("train", batch_size, block_size, rng)
        _, loss = model(torch.from_numpy(x), torch.from_numpy(y))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()


if __name__ == "__main__":
    main()

"""One PyTorch measurement in this process (run by benchmarks.step, one fresh process each).

    python -m benchmarks.job_torch step --config baby --steps 10 --warmup 3
    python -m benchmarks.job_torch eval --config baby
    python -m benchmarks.job_torch cold --t0 <time.time() at launch>
    python -m benchmarks.job_torch step --host-minigrad   # the "hosted" row (see step.py)

Prints one JSON line. Nothing here imports minigrad, except with --host-minigrad, whose
whole point is to measure PyTorch in a process that imported and ran minigrad.
"""

import json
import time

import torch

from benchmarks.common import (
    BETAS,
    CLIP,
    CONFIGS,
    LR,
    VOCAB,
    WEIGHT_DECAY,
    batches,
    job_parser,
    median_ms,
)
from benchmarks.train_torch_reference import init_like_nanogpt, optimizer
from tests.torch_gpt import TorchGPT


def model_and_optimizer(config):
    """nanoGPT's GPT and AdamW (decay on 2-D weights) for a benchmark config."""
    model = TorchGPT(VOCAB, config["block_size"], config["n_layer"], config["n_head"],
                     config["n_embd"], flash=True)
    init_like_nanogpt(model, config["n_layer"], seed=0)
    return model, optimizer(model, LR, BETAS, WEIGHT_DECAY)


def train_step(model, opt, x, y):
    """Forward, backward, clip, AdamW step, zero_grad: one training step."""
    _, loss = model(torch.from_numpy(x), torch.from_numpy(y))
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), CLIP)
    opt.step()
    opt.zero_grad(set_to_none=True)
    return loss.item()


@torch.no_grad()
def eval_batch(model, x, y):
    """One evaluation batch: forward and loss, no graph."""
    return model(torch.from_numpy(x), torch.from_numpy(y))[1].item()


def host_minigrad(config):
    """Import minigrad and run two of its training steps in this process."""
    from benchmarks.job_minigrad import model_and_optimizer as mg_model
    from benchmarks.job_minigrad import train_step as mg_step

    gpt, opt = mg_model(config)
    params = list(gpt.parameters())
    for x, y in batches(config, 2, seed=1):
        mg_step(gpt, opt, params, x, y)


def main():
    parser = job_parser(__doc__.splitlines()[0])
    parser.add_argument("--host-minigrad", action="store_true")
    args = parser.parse_args()
    config = CONFIGS[args.config]
    if args.host_minigrad:
        host_minigrad(config)
    model, opt = model_and_optimizer(config)
    data = batches(config, args.warmup + args.steps)
    result = {"framework": "torch", "threads": torch.get_num_threads()}
    if args.task == "step":
        result["ms"] = median_ms(lambda x, y: train_step(model, opt, x, y), data, args.warmup)
    elif args.task == "eval":
        model.eval()
        result["ms"] = median_ms(lambda x, y: eval_batch(model, x, y), data, args.warmup)
    else:
        train_step(model, opt, *data[0])
        result["seconds"] = time.time() - args.t0
    print(json.dumps(result))


if __name__ == "__main__":
    main()

"""One minigrad measurement in this process (run by benchmarks.step, one fresh process each).

    python -m benchmarks.job_minigrad step --config baby --steps 10 --warmup 3
    python -m benchmarks.job_minigrad eval --config baby
    python -m benchmarks.job_minigrad cold --t0 <time.time() at launch>

Prints one JSON line: the same measurements as benchmarks.job_torch, same batches.
"""

import json
import time

from minigrad.models.gpt import GPT, GPTConfig

import minigrad as mg
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
from minigrad import optim


def model_and_optimizer(config):
    """minigrad's GPT and its nanoGPT AdamW groups for a benchmark config."""
    mg.manual_seed(0)
    gpt = GPT(GPTConfig(vocab_size=VOCAB, block_size=config["block_size"],
                        n_layer=config["n_layer"], n_head=config["n_head"],
                        n_embd=config["n_embd"]))
    return gpt, gpt.configure_optimizers(WEIGHT_DECAY, LR, BETAS)


def train_step(model, opt, params, x, y):
    """Forward, backward, clip, AdamW step, zero_grad: one training step."""
    _, loss = model(x, y)
    loss.backward()
    optim.clip_grad_norm_(params, CLIP)
    opt.step()
    opt.zero_grad()
    return loss.item()


def eval_batch(model, x, y):
    """One evaluation batch: forward and loss, no graph."""
    with mg.no_grad():
        return model(x, y)[1].item()


def main():
    parser = job_parser(__doc__.splitlines()[0])
    args = parser.parse_args()
    config = CONFIGS[args.config]
    model, opt = model_and_optimizer(config)
    params = list(model.parameters())
    data = batches(config, args.warmup + args.steps)
    result = {"framework": "minigrad"}
    if args.task == "step":
        result["ms"] = median_ms(lambda x, y: train_step(model, opt, params, x, y), data,
                                 args.warmup)
    elif args.task == "eval":
        model.eval()
        result["ms"] = median_ms(lambda x, y: eval_batch(model, x, y), data, args.warmup)
    else:
        train_step(model, opt, params, *data[0])
        result["seconds"] = time.time() - args.t0
    print(json.dumps(result))


if __name__ == "__main__":
    main()

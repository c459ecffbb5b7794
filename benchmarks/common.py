"""What the benchmark jobs share: models, settings, batches, timing. NumPy only, so that
importing it brings neither framework into a process."""

import argparse
import statistics
import time

import numpy as np

from benchmarks.chardata import Shakespeare

CONFIGS = {
    # nanoGPT's shakespeare_char "baby GPT" on the CPU (minigrad train's default), and a
    # medium model.
    "baby": dict(batch_size=12, block_size=64, n_layer=4, n_head=4, n_embd=128),
    "medium": dict(batch_size=8, block_size=256, n_layer=6, n_head=6, n_embd=384),
}
LR, BETAS, WEIGHT_DECAY, CLIP = 1e-3, (0.9, 0.99), 0.1, 1.0
VOCAB = 65  # tiny Shakespeare's characters


def batches(config, n, seed=0):
    """n training batches of the config's shape, the same in every process."""
    data, rng = Shakespeare(), np.random.default_rng(seed)
    return [data.get_batch("train", config["batch_size"], config["block_size"], rng)
            for _ in range(n)]


def median_ms(fn, data, warmup):
    """Median wall time of fn(x, y) over the batches after the first `warmup`, in ms."""
    times = []
    for i, (x, y) in enumerate(data):
        start = time.perf_counter()
        fn(x, y)
        if i >= warmup:
            times.append(time.perf_counter() - start)
    return 1000 * statistics.median(times)


def job_parser(description):
    """The command line both per-framework jobs share: task, config, steps, warmup, t0."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("task", choices=["step", "eval", "cold"])
    parser.add_argument("--config", choices=sorted(CONFIGS), default="baby")
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--t0", type=float, help="time.time() when the process was launched")
    return parser

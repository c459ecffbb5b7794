"""Generation speed of the GPT with and without the key/value cache, in interleaved rounds.

    python -m benchmarks.generate                    # baby and medium GPT, 5 rounds
    python -m benchmarks.generate --config medium --rounds 3

One run = `model.generate` of `--new-tokens` ids (255 by default) from a one-id prompt,
batch 1, in eval mode, from the same seed. Each round times one run with the cache and one
without (the order alternates between rounds), so that a noisy machine slows both alike;
it also checks that both runs returned the same ids. The result is the median over rounds
of each rate (tokens/s) and of the per-round speed-up.
"""

import argparse
import json
import platform
import statistics
import time

import numpy as np
from minigrad.models.gpt import GPT, GPTConfig

import minigrad as mg

CONFIGS = {
    # nanoGPT's shakespeare_char "baby GPT" on the CPU, and its GPU model (as benchmarks/step).
    "baby": dict(block_size=64, n_layer=4, n_head=4, n_embd=128),
    "medium": dict(block_size=256, n_layer=6, n_head=6, n_embd=384),
}


def _model(config):
    mg.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=65, **config))
    model.eval()
    return model


def _run(model, new_tokens, use_cache):
    """(seconds, ids) of one generation from a one-id prompt."""
    mg.manual_seed(1)
    t0 = time.perf_counter()
    ids = model.generate(np.zeros((1, 1), dtype=np.int64), new_tokens, use_cache=use_cache)
    return time.perf_counter() - t0, ids.data


def bench(name, rounds, new_tokens):
    """Median tokens/s with and without the cache, and the median per-round speed-up."""
    model = _model(CONFIGS[name])
    _run(model, 8, True)  # compile the Numba kernels and warm the caches
    _run(model, 8, False)
    cached, uncached, ratios = [], [], []
    for r in range(rounds):
        order = (True, False) if r % 2 == 0 else (False, True)
        times = {}
        for use_cache in order:
            times[use_cache], ids = _run(model, new_tokens, use_cache)
            if use_cache == order[0]:
                first = ids
        if not np.array_equal(first, ids):
            raise AssertionError(f"{name}: the cache changed the generated ids")
        cached.append(new_tokens / times[True])
        uncached.append(new_tokens / times[False])
        ratios.append(times[False] / times[True])
    return {"config": name, **CONFIGS[name], "new_tokens": new_tokens, "rounds": rounds,
            "cache_tokens_per_s": statistics.median(cached),
            "no_cache_tokens_per_s": statistics.median(uncached),
            "speedup": statistics.median(ratios), "speedup_min": min(ratios),
            "speedup_max": max(ratios)}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--config", choices=[*CONFIGS, "all"], default="all")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--new-tokens", type=int, default=255)
    parser.add_argument("--json", action="store_true", help="print one JSON object per row")
    args = parser.parse_args(argv)
    names = list(CONFIGS) if args.config == "all" else [args.config]
    print(f"# {platform.processor() or platform.machine()}, numpy {np.__version__}, "
          f"{args.new_tokens} new tokens, batch 1, median of {args.rounds} rounds")
    for name in names:
        row = bench(name, args.rounds, args.new_tokens)
        if args.json:
            print(json.dumps(row))
        else:
            print(f"{name:>6} (block {row['block_size']}): cache "
                  f"{row['cache_tokens_per_s']:8.1f} tok/s, no cache "
                  f"{row['no_cache_tokens_per_s']:8.1f} tok/s, speed-up "
                  f"{row['speedup']:.1f}x (rounds {row['speedup_min']:.1f}-"
                  f"{row['speedup_max']:.1f}x), same ids")


if __name__ == "__main__":
    main()

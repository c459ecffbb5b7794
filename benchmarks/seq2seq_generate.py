"""Encoder-decoder generation with and without the decoder's key/value cache.

    python -m benchmarks.seq2seq_generate

A random (untrained) encoder-decoder (2 + 2 layers, 4 heads, 64 dims, block_size 64)
samples 64 ids for 16 sources of 64 characters, with use_cache=True and use_cache=False in
interleaved rounds (after one warm-up call each); it prints the median seconds of each and
checks that both return the same ids.
"""

import statistics
import time

import numpy as np
from minigrad.models.seq2seq import Seq2Seq, Seq2SeqConfig

import minigrad as mg


def main(rounds=5):
    mg.manual_seed(0)
    config = Seq2SeqConfig(vocab_size=32, block_size=64, n_layer=2, n_head=4, n_embd=64)
    model = Seq2Seq(config)
    model.eval()
    src = np.random.default_rng(0).integers(3, config.vocab_size, size=(16, 64))
    times, ids = {True: [], False: []}, {}
    for r in range(rounds + 1):
        for use_cache in (True, False):
            mg.manual_seed(1)
            t0 = time.perf_counter()
            ids[use_cache] = model.generate(src, 64, temperature=1.0,
                                            use_cache=use_cache).data
            if r > 0:  # round 0 warms up (compiles, caches)
                times[use_cache].append(time.perf_counter() - t0)
    same = np.array_equal(ids[True], ids[False])
    cached, full = (statistics.median(times[k]) for k in (True, False))
    print(f"16 x 64 ids, median of {rounds}: use_cache=True {cached:.3f} s, "
          f"use_cache=False {full:.3f} s ({full / cached:.1f}x); same ids: {same}")


if __name__ == "__main__":
    main()

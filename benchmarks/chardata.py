"""Tiny Shakespeare as token batches, with NumPy only: what the PyTorch processes use.

A PyTorch process of a fair benchmark must not import minigrad (importing a package runs
its __init__), so this module reads the corpus file itself. It gives exactly the batches
of minigrad.models.data.CharDataset (sorted characters, int(0.9 n) train tokens, offsets
from `rng.integers(0, len - block_size, batch_size)`); tests/test_benchmarks.py checks it.
"""

import os

import numpy as np

CORPUS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                      "models", "corpora", "tinyshakespeare.txt")
SPLITS = ("train", "val")


class Shakespeare:
    """Token ids of tiny Shakespeare, split 90/10 as nanoGPT; `get_batch` as CharDataset's."""

    def __init__(self, path=CORPUS):
        with open(path, encoding="utf-8", newline="") as f:
            text = f.read()
        chars = sorted(set(text))
        self.vocab_size = len(chars)
        lookup = np.zeros(max(map(ord, chars)) + 1, np.uint16)
        lookup[[ord(c) for c in chars]] = np.arange(len(chars))
        ids = lookup[np.frombuffer(text.encode("utf-32-le"), dtype="<u4")]
        n_train = int(len(ids) * 0.9)
        self.splits = {"train": ids[:n_train], "val": ids[n_train:]}

    def get_batch(self, split, batch_size, block_size, rng):
        """(x, y) int64 (batch_size, block_size), y shifted by one token."""
        data = self.splits[split]
        offsets = rng.integers(0, len(data) - block_size, size=batch_size)
        windows = data[offsets[:, None] + np.arange(block_size + 1)].astype(np.int64)
        return np.ascontiguousarray(windows[:, :-1]), np.ascontiguousarray(windows[:, 1:])

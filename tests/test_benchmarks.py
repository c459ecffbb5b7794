"""The fair benchmark's plumbing: PyTorch processes see exactly minigrad's batches."""

import numpy as np
from minigrad.models.data import CharDataset, load_text

from benchmarks.chardata import Shakespeare


def test_chardata_batches_match_chardataset():
    ours, theirs = Shakespeare(), CharDataset(load_text("shakespeare"))
    assert ours.vocab_size == theirs.vocab_size
    for split in ("train", "val"):
        rng_a, rng_b = np.random.default_rng(3), np.random.default_rng(3)
        for _ in range(3):
            xa, ya = ours.get_batch(split, 5, 16, rng_a)
            xb, yb = theirs.get_batch(split, 5, 16, rng_b)
            np.testing.assert_array_equal(xa, xb)
            np.testing.assert_array_equal(ya, yb)

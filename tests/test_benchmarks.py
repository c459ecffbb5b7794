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


def test_step_profile_reports_kernels_and_both_replays():
    """benchmarks.step_profile runs end to end: a kernel table for a minigrad step, then the
    step's products replayed by NumPy and by PyTorch, each in its own process."""
    import os
    import subprocess
    import sys

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    out = subprocess.run([sys.executable, "-m", "benchmarks.step_profile", "--steps", "2",
                          "--rounds", "1"], cwd=root, check=True, text=True,
                         capture_output=True).stdout
    lines = out.splitlines()
    assert lines[0].startswith("baby GPT, minigrad: ") and "ms per step" in lines[0]
    kernels = {line.split()[0] for line in lines[1:] if line.startswith("  ")}
    assert {"matmul", "qkv_attention_forward", "qkv_attention_backward", "gelu",
            "adamw_step"} <= kernels
    count = next(line for line in lines if line.startswith("the ")).split()[1]
    assert int(count) > 0
    median = lines[-1].split()
    assert median[0] == "median" and all(float(v) > 0 for v in median[1:3])


def test_reference_pipeline_evaluates_in_the_same_groups():
    """The PyTorch reference pipeline forwards as many tokens per evaluation batch group as
    minigrad train (the same work in the whole-run row)."""
    from minigrad.models.train import _EVAL_TOKENS

    from benchmarks.train_torch_reference import EVAL_TOKENS

    assert EVAL_TOKENS == _EVAL_TOKENS


def test_llvm_mapped_mib_is_a_part_of_the_library():
    """The rss row's note: loading libllvmlite.so alone maps some of the file into a bare
    process, and not much more than all of it (the loader's own data on top)."""
    import os

    from benchmarks.step import llvm_mapped_mib, llvmlite_library

    file_mib = os.path.getsize(llvmlite_library()) / 2**20
    assert 1 < llvm_mapped_mib() < file_mib + 16

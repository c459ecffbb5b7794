"""Fixtures shared by the training, CLI and fault tests."""

import pytest
from minigrad.models.data import load_text
from minigrad.models.train import TrainConfig


@pytest.fixture
def corpus(tmp_path):
    """A 20,000-character slice of tiny Shakespeare as a text file; returns its path."""
    path = tmp_path / "tiny.txt"
    path.write_text(load_text("shakespeare")[:20_000], encoding="utf-8")
    return str(path)


def tiny_config(corpus, out_dir, **overrides):
    """A TrainConfig for a model small enough to train in a second or two."""
    settings = dict(data=corpus, out_dir=str(out_dir), block_size=16, n_layer=2, n_head=2,
                    n_embd=16, batch_size=4, max_iters=20, warmup_iters=5, eval_interval=10,
                    eval_iters=2, progress=False, seed=7)
    return TrainConfig(**{**settings, **overrides})

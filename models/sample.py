"""Sample text from a trained character GPT checkpoint, printing as it generates.

    sample("out/ckpt", prompt="ROMEO:", num_chars=500, temperature=0.8, top_k=40, seed=1)
"""

from __future__ import annotations

import sys

import numpy as np
from minigrad.models.checkpoint import model_from_checkpoint
from minigrad.models.errors import UserError

import minigrad as mg

__all__ = ["sample"]


def sample(ckpt, prompt="\n", num_chars=500, temperature=0.8, top_k=None, seed=1337,
           out=None):
    """Write `prompt` and then `num_chars` sampled characters to `out` (stdout by default),
    flushing after each character; returns the generated text (without the prompt).

    Raises UserError for a missing checkpoint, an empty prompt, a prompt character
    outside the checkpoint's vocabulary, or a bad temperature, top_k or num_chars.
    """
    out = sys.stdout if out is None else out
    if num_chars < 0:
        raise UserError(f"--num-chars must be >= 0, got {num_chars}")
    if not temperature > 0:
        raise UserError(f"--temperature must be > 0, got {temperature}")
    if top_k is not None and top_k < 1:
        raise UserError(f"--top-k must be >= 1, got {top_k}")
    if not prompt:
        raise UserError("the prompt is empty (the model needs at least one character)")
    model, tokenizer = model_from_checkpoint(ckpt)
    try:
        ids = tokenizer.encode(prompt)
    except ValueError as e:
        raise UserError(f"prompt: {e}") from None
    model.eval()
    mg.manual_seed(seed)
    out.write(prompt)
    out.flush()
    pieces = []
    for next_ids in model.stream(ids[None, :], num_chars, temperature, top_k):
        piece = tokenizer.decode(np.asarray(next_ids))
        pieces.append(piece)
        out.write(piece)
        out.flush()
    out.write("\n")
    out.flush()
    return "".join(pieces)

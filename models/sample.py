"""Sample text from a trained character GPT checkpoint, printing as it generates.

    sample("out", prompt="ROMEO:", num_chars=500, temperature=0.8, top_k=40, seed=1)

`ckpt` is a checkpoint directory or a run directory (its ckpt/, or best/ with best=True);
a prompt "FILE:path" is read from that file, as in nanoGPT's sample.py.
"""

from __future__ import annotations

import sys
import time

import numpy as np
from minigrad.models.checkpoint import model_from_checkpoint
from minigrad.models.errors import UserError
from minigrad.models.gpt import check_sampling

import minigrad as mg

__all__ = ["SEPARATOR", "read_prompt", "sample"]

# Printed between two samples (nanoGPT's sample.py prints it after each).
SEPARATOR = "---------------"


def read_prompt(prompt):
    """The prompt text: `prompt` itself, or the content of the UTF-8 file it names as
    "FILE:path". Raises UserError for an unreadable file."""
    if not prompt.startswith("FILE:"):
        return prompt
    path = prompt[len("FILE:"):]
    try:
        with open(path, encoding="utf-8") as f:
            return f.read()
    except OSError as e:
        raise UserError(f"--prompt FILE:{path}: cannot read it ({e.strerror})") from None
    except UnicodeDecodeError as e:
        raise UserError(f"--prompt FILE:{path}: not valid UTF-8 ({e.reason} at byte "
                        f"{e.start})") from None


def _check(num_chars, temperature, top_k, num_samples):
    """Refuse bad settings before anything is loaded or written."""
    if num_chars < 0:
        raise UserError(f"--num-chars must be >= 0, got {num_chars}")
    check_sampling(temperature, top_k)  # a ConfigError: the CLI names the flag
    if num_samples < 1:
        raise UserError(f"--num-samples must be >= 1, got {num_samples}")


def sample(ckpt, prompt="\n", num_chars=500, temperature=0.8, top_k=None, seed=1337,
           out=None, num_samples=1, best=False, use_cache=True, err=None):
    """Write `num_samples` samples to `out` (stdout by default), each the prompt and then
    `num_chars` sampled characters, flushing after each character, with SEPARATOR between
    samples; at the end write the rate (tokens/s) to `err` (stderr by default). Returns the
    generated texts (without the prompt), one per sample.

    Raises UserError, before writing anything, for a missing or bad checkpoint, an empty or
    unreadable prompt, a prompt character outside the checkpoint's vocabulary, or a bad
    temperature, top_k, num_chars or num_samples.
    """
    out = sys.stdout if out is None else out
    err = sys.stderr if err is None else err
    _check(num_chars, temperature, top_k, num_samples)
    prompt = read_prompt(prompt)
    if not prompt:
        raise UserError("the prompt is empty (the model needs at least one character)")
    model, tokenizer = model_from_checkpoint(ckpt, best=best)
    try:
        ids = tokenizer.encode(prompt)
    except ValueError as e:
        raise UserError(f"prompt: {e}") from None
    model.eval()
    mg.manual_seed(seed)
    texts = []
    start = time.perf_counter()
    for i in range(num_samples):
        if i:
            out.write(SEPARATOR + "\n")
        out.write(prompt)
        out.flush()
        pieces = []
        for next_ids in model.stream(ids[None, :], num_chars, temperature, top_k, use_cache):
            piece = tokenizer.decode(np.asarray(next_ids))
            pieces.append(piece)
            out.write(piece)
            out.flush()
        out.write("\n")
        out.flush()
        texts.append("".join(pieces))
    seconds = time.perf_counter() - start
    tokens = num_samples * num_chars
    rate = tokens / seconds if seconds > 0 else float("inf")
    cache = "with" if use_cache else "without"
    err.write(f"{tokens} tokens in {seconds:.2f} s: {rate:,.1f} tokens/s ({cache} the "
              "key/value cache)\n")
    err.flush()
    return texts

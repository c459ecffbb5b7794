"""The encoder-decoder's inputs for the study commands (`minigrad attention`, `minigrad
explore`): a source text and a target text (by default the model's greedy output), checked
and encoded, with the decoder input BOS + target."""

from dataclasses import dataclass

import numpy as np
from minigrad.models.errors import UserError
from minigrad.models.tasks import decode_ids, encode_text

__all__ = ["BOS_MARK", "EOS_MARK", "Seq2SeqInput", "seq2seq_input"]

# How the decoder's special tokens read on a plot, a page or in a report (one character each).
BOS_MARK = "\u25b8"  # the decoder input starts with BOS, drawn as ▸
EOS_MARK = "\u25c2"  # the target ends with EOS, drawn as ◂


@dataclass
class Seq2SeqInput:
    """A checked (source, target) pair: the texts, whether the target is the model's greedy
    output, and their ids: src (S,), tgt_in (1 + T,) = BOS + target and
    targets (1 + T,) = target + EOS (what each decoder position predicts)."""

    source: str
    target: str
    greedy: bool
    src: np.ndarray
    tgt_in: np.ndarray
    targets: np.ndarray

    @property
    def decoder_input(self):
        """The decoder's input as characters, one per position: BOS_MARK + target."""
        return BOS_MARK + self.target

    def __str__(self):
        return (f"source {self.source!r} -> target {self.target!r}"
                + (" (the model's greedy output)" if self.greedy else ""))


def seq2seq_input(model, tokenizer, source, target=None):
    """Check and encode `source` (--text) and `target` (--target; None: the model's greedy
    output for the source) for the encoder-decoder `model`; returns a Seq2SeqInput. Raises
    UserError (one line) for an empty or too long text or one with an unknown or reserved
    character, and when the model's output is empty."""
    block = model.config.block_size
    src = encode_text(tokenizer, source, "--text (the source)", block)
    if target is None:
        model.eval()
        # at most block_size - 1 ids, so that BOS + target fits the decoder
        ids = model.generate(src[None, :], block - 1, temperature=0.0).data[0]
        target = decode_ids(tokenizer, ids)
        if not target:
            raise UserError(f"the model's output for {source!r} is empty; give --target")
        greedy = True
    else:
        greedy = False
    tgt = encode_text(tokenizer, target, "--target", block - 1,
                      f"block_size {block}, less one for BOS")
    return Seq2SeqInput(source, target, greedy, src,
                        np.concatenate([[model.config.bos_id], tgt]).astype(np.int64),
                        np.concatenate([tgt, [model.config.eos_id]]).astype(np.int64))

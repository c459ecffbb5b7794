"""Toy sequence-to-sequence tasks for the encoder-decoder, generated on the fly from a seed.

- reverse: "hello" -> "olleh"
- copy:    "hello" -> "hello"
- sort:    "hello" -> "ehllo"
- dates:   "3 de maio de 2025" -> "2025-05-03" (Portuguese dates in words to ISO 8601)

Every task is character level, with one vocabulary for source and target: the three special
tokens first (PAD "\\x00", BOS "\\x02", EOS "\\x03", ids 0, 1, 2), then the task's characters.
`task.heldout(n, seed)` draws n distinct examples that `task.batch` never trains on (it
redraws any source in the held-out set), so the exact match measured on them is on unseen
inputs.
"""

from __future__ import annotations

import calendar

import numpy as np
from minigrad.models.data import CharTokenizer
from minigrad.models.errors import UserError

__all__ = ["BOS", "EOS", "PAD", "SPECIALS", "TASKS", "Task", "decode_ids", "encode_text",
           "get_task", "make_batch"]

PAD, BOS, EOS = "\x00", "\x02", "\x03"
SPECIALS = (PAD, BOS, EOS)  # ids 0, 1, 2
LETTERS = "abcdefghijklmnopqrstuvwxyz"
MONTHS = ("janeiro", "fevereiro", "março", "abril", "maio", "junho", "julho", "agosto",
          "setembro", "outubro", "novembro", "dezembro")


class Task:
    """A task: `example(rng) -> (source, target)` strings, its characters, and the longest
    source and target it makes (which set the model's block_size)."""

    name = ""
    description = ""
    chars = ""
    max_src_len = 0
    max_tgt_len = 0

    def example(self, rng):
        raise TypeError(f"{type(self).__name__} must define example(rng)")

    @property
    def block_size(self):
        """Positions the model needs: the longest source, and BOS + the longest target."""
        return max(self.max_src_len, self.max_tgt_len + 1)

    def tokenizer(self):
        """The vocabulary: PAD, BOS, EOS, then the task's characters, sorted."""
        return CharTokenizer(SPECIALS + tuple(sorted(set(self.chars))))

    def heldout(self, n, seed):
        """n distinct examples [(source, target)], the same for the same seed."""
        rng = np.random.default_rng([seed, 7])
        pairs, seen = [], set()
        for _ in range(200 * n):
            src, tgt = self.example(rng)
            if src not in seen:
                seen.add(src)
                pairs.append((src, tgt))
                if len(pairs) == n:
                    return pairs
        raise UserError(f"task {self.name}: could not draw {n} distinct held-out examples")

    def batch(self, rng, size, exclude):
        """size training examples [(source, target)], none with a source in `exclude`."""
        pairs = []
        while len(pairs) < size:
            src, tgt = self.example(rng)
            if src not in exclude:
                pairs.append((src, tgt))
        return pairs


class _Letters(Task):
    """Strings of min_len..max_len lowercase letters, mapped by `transform`."""

    chars = LETTERS
    min_len, max_len = 4, 12

    def __init__(self):
        self.max_src_len = self.max_tgt_len = self.max_len

    def example(self, rng):
        n = int(rng.integers(self.min_len, self.max_len + 1))
        src = "".join(LETTERS[i] for i in rng.integers(0, len(LETTERS), n))
        return src, self.transform(src)


class Reverse(_Letters):
    name, description = "reverse", "reverse a string of letters: hello -> olleh"

    @staticmethod
    def transform(s):
        return s[::-1]


class Copy(_Letters):
    name, description = "copy", "copy a string of letters: hello -> hello"

    @staticmethod
    def transform(s):
        return s


class Sort(_Letters):
    name, description = "sort", "sort the letters of a string: hello -> ehllo"

    @staticmethod
    def transform(s):
        return "".join(sorted(s))


class Dates(Task):
    """A date between 1900 and 2099 in Portuguese words, to ISO 8601."""

    name = "dates"
    description = "Portuguese date to ISO: 3 de maio de 2025 -> 2025-05-03"
    chars = "0123456789- de" + "".join(MONTHS)
    max_src_len = len("28 de fevereiro de 2025")
    max_tgt_len = len("2025-05-03")

    def example(self, rng):
        year = int(rng.integers(1900, 2100))
        month = int(rng.integers(1, 13))
        day = int(rng.integers(1, calendar.monthrange(year, month)[1] + 1))
        return f"{day} de {MONTHS[month - 1]} de {year}", f"{year:04d}-{month:02d}-{day:02d}"


TASKS = {task.name: task for task in (Reverse(), Copy(), Sort(), Dates())}


def get_task(name):
    """The task called `name`; an unknown name raises UserError listing the known ones."""
    if name not in TASKS:
        raise UserError(f"unknown task {name!r} (known: {', '.join(TASKS)})")
    return TASKS[name]


def encode_text(tokenizer, text, what, limit, limit_note="block_size"):
    """The ids of `text`, checked: not empty, no character outside the task's vocabulary
    (nor a special token), at most `limit` characters. Raises UserError naming `what`."""
    if not text:
        raise UserError(f"{what} is empty")
    specials = [c for c in text if c in SPECIALS]
    if specials:
        raise UserError(f"{what} {text!r} holds a reserved control character "
                        f"{specials[0]!r}")
    try:
        ids = tokenizer.encode(text)
    except ValueError as e:
        raise UserError(f"{what} {text!r}: {e}") from None
    if len(ids) > limit:
        raise UserError(f"{what} {text!r} has {len(ids)} characters; the model takes at most "
                        f"{limit} ({limit_note})")
    return ids


def make_batch(pairs, tokenizer, block_size):
    """Arrays for the model from [(source, target)]: src (B, S), decoder input tgt_in
    (B, T) = BOS + target and targets (B, T) = target + EOS, padded with PAD (id 0) to the
    longest of the batch."""
    srcs = [encode_text(tokenizer, s, "source", block_size) for s, _ in pairs]
    tgts = [encode_text(tokenizer, t, "target", block_size - 1,
                        f"block_size {block_size}, less one for BOS") for _, t in pairs]
    B, S, T = len(pairs), max(map(len, srcs)), max(map(len, tgts)) + 1
    src = np.zeros((B, S), np.int64)
    tgt_in, targets = np.zeros((B, T), np.int64), np.zeros((B, T), np.int64)
    for b, (s, t) in enumerate(zip(srcs, tgts, strict=True)):
        src[b, :len(s)] = s
        tgt_in[b, 0] = 1  # BOS
        tgt_in[b, 1:len(t) + 1] = t
        targets[b, :len(t)] = t
        targets[b, len(t)] = 2  # EOS
    return src, tgt_in, targets


def decode_ids(tokenizer, ids):
    """The string of generated ids, up to (not including) the first EOS or PAD."""
    out = []
    for i in np.asarray(ids).tolist():
        if i in (0, 2):
            break
        out.append(i)
    return tokenizer.decode(out) if out else ""

"""Character-level data for the GPT: a tokenizer, the bundled corpora and a batch sampler.

A character model needs very little: the vocabulary is the set of characters in the text,
a token id is a character's position in that sorted set, and a training example is a random
window of ``block_size + 1`` consecutive tokens (inputs, and the same window shifted by one as
targets). This follows nanoGPT's ``data/shakespeare_char/prepare.py`` and ``get_batch``.

    text = load_text("shakespeare")            # or a path to any UTF-8 text file
    data = CharDataset(text)                   # 90% train / 10% validation
    x, y = data.get_batch("train", 12, 64, np.random.default_rng(0))   # int64 (12, 64)
    tok = CharTokenizer.from_list(data.tokenizer.to_list())   # e.g. via a checkpoint's JSON

The module needs NumPy only: batches are plain int64 arrays that the model turns into tensors.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Iterable
from importlib import resources
from pathlib import Path

import numpy as np

__all__ = ["BUNDLED", "CharDataset", "CharTokenizer", "load_text"]

# Named corpora shipped inside the package (pyproject.toml packages models/corpora/*.txt).
# importlib.resources finds them both in a source checkout and in an installed wheel, so
# nothing is ever downloaded.
BUNDLED = {
    "shakespeare": resources.files("minigrad.models") / "corpora" / "tinyshakespeare.txt",
}

# How many offending characters an error message shows before it says "...".
_MAX_SHOWN = 5


def _code_points(text: str) -> np.ndarray:
    """Return the Unicode code points of ``text`` as a uint32 array, without a Python loop.

    UTF-32 stores every character in exactly four bytes, so the encoded buffer *is* the
    array of code points. "surrogatepass" keeps lone surrogates (which a str may hold)
    from raising here; they simply become characters like any other.
    """
    return np.frombuffer(text.encode("utf-32-le", "surrogatepass"), dtype="<u4")


class CharTokenizer:
    """Map characters to integer ids and back; id ``i`` is the character ``chars[i]``.

    ``CharTokenizer.from_text(text)`` builds the usual vocabulary (the sorted unique
    characters of the text, as nanoGPT does); the constructor takes any sequence of
    distinct single characters and keeps its order, so a vocabulary saved with
    :meth:`to_list` is restored exactly by :meth:`from_list`.
    """

    def __init__(self, chars: Iterable[str]):
        chars = tuple(chars)
        if not chars:
            raise ValueError("CharTokenizer: the vocabulary is empty")
        bad = [c for c in chars if not (isinstance(c, str) and len(c) == 1)]
        if bad:
            shown = ", ".join(repr(c) for c in bad[:_MAX_SHOWN])
            raise ValueError(
                f"CharTokenizer: vocabulary entries must be single characters, got {shown}"
            )
        if len(set(chars)) != len(chars):
            dupes = [c for c, n in Counter(chars).items() if n > 1]
            shown = ", ".join(repr(c) for c in dupes[:_MAX_SHOWN])
            raise ValueError(f"CharTokenizer: duplicate characters in the vocabulary: {shown}")
        self._chars = chars
        # The code point of each id, used by decode (ids -> code points -> str in one step).
        self._codes = _code_points("".join(chars))
        # encode looks characters up with a binary search over the sorted code points;
        # _sorted_ids maps a position in that sorted order back to the token id.
        self._sorted_ids = np.argsort(self._codes, kind="stable").astype(np.int64)
        self._sorted_codes = self._codes[self._sorted_ids]

    @classmethod
    def from_text(cls, text: str) -> CharTokenizer:
        """Build the vocabulary of ``text``: its unique characters, sorted by code point."""
        if not isinstance(text, str):
            raise TypeError(
                f"CharTokenizer.from_text: text must be a str, got {type(text).__name__}"
            )
        if not text:
            raise ValueError("CharTokenizer.from_text: the text is empty")
        codes = np.unique(_code_points(text))
        return cls(codes.astype("<u4").tobytes().decode("utf-32-le", "surrogatepass"))

    @classmethod
    def from_list(cls, chars: list[str]) -> CharTokenizer:
        """Restore a tokenizer saved with :meth:`to_list` (e.g. from a checkpoint's JSON)."""
        if isinstance(chars, str) or not isinstance(chars, (list, tuple)):
            raise TypeError(
                "CharTokenizer.from_list: expected a list of characters, "
                f"got {type(chars).__name__}"
            )
        return cls(chars)

    def to_list(self) -> list[str]:
        """The vocabulary as a JSON-friendly list of characters, in id order."""
        return list(self._chars)

    @property
    def vocab_size(self) -> int:
        """Number of distinct tokens (characters)."""
        return len(self._chars)

    @property
    def chars(self) -> tuple[str, ...]:
        """The vocabulary in id order."""
        return self._chars

    def __len__(self) -> int:
        return len(self._chars)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, CharTokenizer):
            return NotImplemented
        return self._chars == other._chars

    def __hash__(self) -> int:
        return hash(self._chars)

    def __repr__(self) -> str:
        preview = "".join(self._chars[:20]) + ("..." if len(self._chars) > 20 else "")
        return f"CharTokenizer(vocab_size={self.vocab_size}, chars={preview!r})"

    def encode(self, text: str) -> np.ndarray:
        """Turn ``text`` into a 1-D int64 array of token ids (one per character).

        Raises ValueError naming the first few characters that are not in the vocabulary
        and where they occur, rather than silently dropping or mapping them.
        """
        if not isinstance(text, str):
            raise TypeError(f"encode: text must be a str, got {type(text).__name__}")
        codes = _code_points(text)
        pos = np.searchsorted(self._sorted_codes, codes)
        # searchsorted returns where a code *would* go; it is a hit only if the code is there.
        pos_clipped = np.minimum(pos, len(self._sorted_codes) - 1)
        known = self._sorted_codes[pos_clipped] == codes
        if not known.all():
            where = np.flatnonzero(~known)
            n_distinct = len({text[i] for i in where.tolist()})
            shown = ", ".join(f"{text[i]!r} at position {i}" for i in where[:_MAX_SHOWN].tolist())
            more = f", ... ({len(where)} in all)" if len(where) > _MAX_SHOWN else ""
            raise ValueError(
                f"encode: {n_distinct} distinct character(s) not in the vocabulary of "
                f"{self.vocab_size}: {shown}{more}"
            )
        return self._sorted_ids[pos_clipped]

    def decode(self, ids) -> str:
        """Turn a 1-D sequence of token ids (a list, an ndarray or a Tensor) into text.

        Raises ValueError for an id outside ``[0, vocab_size)`` and TypeError for non-integer
        ids (a float array is almost always a bug, e.g. logits passed instead of samples).
        """
        arr = np.asarray(ids)
        if arr.ndim > 1:
            raise ValueError(f"decode: expected a 1-D sequence of ids, got shape {arr.shape}")
        arr = arr.reshape(-1)
        if arr.size == 0:
            return ""
        if arr.dtype.kind not in "iu":
            raise TypeError(f"decode: ids must be integers, got dtype {arr.dtype}")
        bad = np.flatnonzero((arr < 0) | (arr >= self.vocab_size))
        if bad.size:
            shown = ", ".join(f"{arr[i]} at position {i}" for i in bad[:_MAX_SHOWN].tolist())
            raise ValueError(
                f"decode: id(s) outside the vocabulary [0, {self.vocab_size}): {shown}"
            )
        return self._codes[arr].tobytes().decode("utf-32-le", "surrogatepass")


def load_text(data: str | os.PathLike = "shakespeare") -> str:
    """Return the text of a bundled corpus (by name, see ``BUNDLED``) or of a UTF-8 file.

    A string that is a key of ``BUNDLED`` names a corpus; anything else is a path. The
    bytes are decoded strictly as UTF-8 with no newline translation, so the text is exactly
    the file's content. Errors name the path: FileNotFoundError for a missing file,
    ValueError for a directory, an empty file or bytes that are not valid UTF-8 (with the
    byte offset of the first bad byte).
    """
    if isinstance(data, str) and data in BUNDLED:
        source = BUNDLED[data]
        label = f"bundled corpus {data!r} ({source})"
        if not source.is_file():
            # Only a broken installation gets here (package data left out of the wheel).
            raise FileNotFoundError(f"load_text: {label} is missing from the installed package")
    elif isinstance(data, (str, os.PathLike)):
        source = Path(data).expanduser()
        label = str(source)
        if not source.exists():
            names = ", ".join(repr(n) for n in BUNDLED)
            raise FileNotFoundError(
                f"load_text: no such file: {label} (bundled corpus names are {names})"
            )
        if source.is_dir():
            raise ValueError(f"load_text: {label} is a directory, not a text file")
    else:
        raise TypeError(f"load_text: expected a corpus name or a path, got {type(data).__name__}")

    raw = source.read_bytes()
    if not raw:
        raise ValueError(f"load_text: {label} is empty")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as e:
        bad = raw[e.start : e.end].hex(" ")
        raise ValueError(
            f"load_text: {label} is not valid UTF-8: byte offset {e.start} "
            f"(bytes {bad}: {e.reason})"
        ) from None


def _check_positive_int(where: str, name: str, value) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{where}: {name} must be an int, got {type(value).__name__}")
    if value <= 0:
        raise ValueError(f"{where}: {name} must be positive, got {value}")
    return int(value)


class CharDataset:
    """A text encoded once into token ids and split into train and validation parts.

    The first ``1 - val_fraction`` of the tokens are for training and the rest for
    validation, as nanoGPT's shakespeare_char ``prepare.py`` does (a contiguous split, so
    validation text is never seen in training windows). Attributes: ``tokenizer``,
    ``data`` (all ids), ``train_data`` and ``val_data`` (int64 views of ``data``).
    """

    SPLITS = ("train", "val")

    def __init__(
        self, text: str, tokenizer: CharTokenizer | None = None, val_fraction: float = 0.1
    ):
        if not isinstance(text, str):
            raise TypeError(f"CharDataset: text must be a str, got {type(text).__name__}")
        if not text:
            raise ValueError("CharDataset: the text is empty")
        if not 0.0 <= val_fraction < 1.0:
            raise ValueError(f"CharDataset: val_fraction must be in [0, 1), got {val_fraction}")
        self.tokenizer = tokenizer if tokenizer is not None else CharTokenizer.from_text(text)
        self.val_fraction = val_fraction
        ids = self.tokenizer.encode(text)
        # Kept as uint16 (as nanoGPT's train.bin) when the vocabulary allows: a quarter of
        # the memory of int64 for the 1.1M-character corpus. Batches come out as int64.
        small = self.tokenizer.vocab_size <= np.iinfo(np.uint16).max + 1
        self.data = ids.astype(np.uint16) if small else ids
        # int(n * 0.9) as in nanoGPT: 1,003,854 train / 111,540 val tokens for tiny Shakespeare.
        n_train = int(len(self.data) * (1.0 - val_fraction))
        self.train_data = self.data[:n_train]
        self.val_data = self.data[n_train:]

    @property
    def vocab_size(self) -> int:
        """Size of the tokenizer's vocabulary (the model's ``vocab_size``)."""
        return self.tokenizer.vocab_size

    def __repr__(self) -> str:
        return (
            f"CharDataset(tokens={len(self.data)}, train={len(self.train_data)}, "
            f"val={len(self.val_data)}, vocab_size={self.vocab_size})"
        )

    def split_data(self, split: str) -> np.ndarray:
        """The token ids of one split, ``"train"`` or ``"val"``."""
        if split == "train":
            return self.train_data
        if split == "val":
            return self.val_data
        raise ValueError(f"CharDataset: split must be 'train' or 'val', got {split!r}")

    def get_batch(
        self, split: str, batch_size: int, block_size: int, rng: np.random.Generator
    ) -> tuple[np.ndarray, np.ndarray]:
        """Sample ``batch_size`` random windows of one split: inputs x and targets y.

        Returns int64 arrays of shape (batch_size, block_size) with ``y[:, t] == x[:, t + 1]``
        inside the window and ``y[:, -1]`` the token after it. Offsets come from ``rng``
        only, so a generator seeded the same way gives the same batches. A split shorter
        than ``block_size + 1`` tokens raises ValueError.
        """
        data = self.split_data(split)
        batch_size = _check_positive_int("get_batch", "batch_size", batch_size)
        block_size = _check_positive_int("get_batch", "block_size", block_size)
        if not isinstance(rng, np.random.Generator):
            raise TypeError(
                "get_batch: rng must be a numpy.random.Generator (np.random.default_rng(seed)), "
                f"got {type(rng).__name__}"
            )
        if len(data) < block_size + 1:
            raise ValueError(
                f"get_batch: the {split!r} split has {len(data)} tokens, but block_size="
                f"{block_size} needs at least {block_size + 1} (a window plus its next token)"
            )
        # Every start in [0, len - block_size) leaves room for the shifted target window.
        offsets = rng.integers(0, len(data) - block_size, size=batch_size)
        # One fancy-indexing gather for the whole batch instead of a Python loop over rows.
        windows = data[offsets[:, None] + np.arange(block_size + 1)].astype(np.int64)
        x = np.ascontiguousarray(windows[:, :-1])
        y = np.ascontiguousarray(windows[:, 1:])
        return x, y

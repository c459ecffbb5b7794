"""Saving and loading tensors in the safetensors format, and atomic file writes.

A safetensors file is simple enough to describe in three lines:

    8 bytes      N, the header length, a little-endian unsigned 64-bit integer
    N bytes      a UTF-8 JSON object: {name: {"dtype", "shape", "data_offsets"}, "__metadata__"}
    the rest     the data buffer: each tensor's bytes are buffer[begin:end], row-major,
                 little endian, and the tensors tile the buffer exactly

It holds only numbers and strings, so loading one can never run code (unlike pickle), and
PyTorch, JAX and others read it. We write it with the `safetensors` library and, before
the library parses a file, check the header ourselves so that a truncated, corrupt or
foreign file fails with a `ValueError` that names the path and says what is wrong.

Every write goes through `atomic_write_bytes`: the bytes go to a temporary file in the
target's directory, are flushed to disk, and the temporary file is renamed over the
target. A crash at any moment leaves either the old file or the new one, never half of one.
"""

from __future__ import annotations

import json
import math
import os
import secrets
from collections.abc import Mapping
from typing import Any

import numpy as np

__all__ = ["save", "load", "load_metadata", "atomic_write_bytes", "atomic_write_text",
           "fsync_directory"]

# The dtypes `save` accepts: the ones PyTorch and NumPy both read without surprises.
_SAVE_DTYPES = {
    np.dtype(np.float16): "F16",
    np.dtype(np.float32): "F32",
    np.dtype(np.float64): "F64",
    np.dtype(np.int8): "I8",
    np.dtype(np.int16): "I16",
    np.dtype(np.int32): "I32",
    np.dtype(np.int64): "I64",
    np.dtype(np.uint8): "U8",
    np.dtype(np.bool_): "BOOL",
}

# The dtypes `load` accepts: every safetensors dtype that has a NumPy equivalent, so that
# files written by other tools (which may use unsigned types) still load.
_LOAD_ITEMSIZE = {
    "F16": 2, "F32": 4, "F64": 8,
    "I8": 1, "I16": 2, "I32": 4, "I64": 8,
    "U8": 1, "U16": 2, "U32": 4, "U64": 8,
    "BOOL": 1,
}  # fmt: skip

# The safetensors library refuses headers above 100 MB; we refuse them first, with a message.
_MAX_HEADER_BYTES = 100_000_000
_METADATA_KEY = "__metadata__"


# ---------------------------------------------------------------------------------------
# Atomic writes
# ---------------------------------------------------------------------------------------


def _open_temp_beside(path: str) -> tuple[int, str]:
    """Create and open a new, uniquely named temporary file in the directory of `path`.

    The temporary file must live in the same directory (hence the same filesystem) as the
    target, or `os.replace` could not rename it atomically. We create it with `os.open`
    and mode 0o666 rather than `tempfile.mkstemp` (mode 0o600) so that the final file gets
    the usual permissions from the umask, like any file opened with `open(path, "w")`.
    """
    directory, name = os.path.split(path)
    directory = directory or "."
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    for _ in range(100):
        tmp = os.path.join(directory, f".{name}.{secrets.token_hex(6)}.tmp")
        try:
            return os.open(tmp, flags, 0o666), tmp
        except FileExistsError:
            continue  # a name clash with another writer; draw a new name
        except OSError as e:
            # Re-raise the same kind of error (FileNotFoundError, PermissionError, ...) but
            # naming the file the caller asked for, not our temporary name.
            if not os.path.isdir(directory):
                reason = f"directory {directory!r} does not exist"
            else:
                reason = f"cannot create a file in directory {directory!r}: {e.strerror}"
            raise type(e)(e.errno, f"cannot write {path!r}: {reason}", path) from e
    raise FileExistsError(f"cannot write {path!r}: could not find a free temporary file name")


def fsync_directory(directory: str) -> None:
    """Flush a directory entry to disk so that a finished rename survives a power cut.

    Best effort: some platforms (Windows) and filesystems cannot open or fsync a
    directory, and the rename itself has already happened, so failures are ignored.
    """
    try:
        fd = os.open(directory or ".", os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write `data` to `path` atomically: afterwards `path` holds either the old or the new bytes.

    The bytes are written to a temporary file in the same directory, flushed and fsynced,
    then renamed onto `path` with `os.replace` (atomic on POSIX and Windows), and finally
    the directory is fsynced so the rename itself is durable. If anything fails, the
    temporary file is removed, the exception propagates, and an existing file at `path` is
    untouched. A missing or unwritable parent directory raises `FileNotFoundError` or
    `PermissionError` naming `path`.
    """
    path = os.fspath(path)
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise TypeError(f"atomic_write_bytes: data must be bytes, got {type(data).__name__}")
    fd, tmp = _open_temp_beside(path)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        # Also on KeyboardInterrupt: never leave a stray temporary file behind.
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    fsync_directory(os.path.dirname(path))


def atomic_write_text(path: str | os.PathLike, text: str, encoding: str = "utf-8") -> None:
    """Write the string `text` to `path` atomically (UTF-8 by default); see `atomic_write_bytes`.

    Line endings are written as given ("\\n" stays "\\n" on every platform), so files such
    as `config.json` and `log.jsonl` are byte-identical wherever they were written.
    """
    if not isinstance(text, str):
        raise TypeError(f"atomic_write_text: text must be a str, got {type(text).__name__}")
    atomic_write_bytes(path, text.encode(encoding))


# ---------------------------------------------------------------------------------------
# Saving
# ---------------------------------------------------------------------------------------


def _as_array(name: str, value: Any) -> np.ndarray:
    """Return the ndarray behind `value` (an ndarray, or a Tensor-like with a `.data` array)."""
    # Duck typing instead of isinstance(value, Tensor): this module must not import the
    # tensor module (which imports much more), and any object holding its values in a
    # `.data` ndarray (a Tensor, a Parameter) should save the same way.
    array = value if isinstance(value, np.ndarray) else getattr(value, "data", None)
    if not isinstance(array, np.ndarray):
        raise TypeError(
            f"save: tensor {name!r} must be a numpy array or a Tensor, got {type(value).__name__}"
        )
    dtype = array.dtype
    if dtype.newbyteorder("=") not in _SAVE_DTYPES:
        supported = ", ".join(str(d) for d in _SAVE_DTYPES)
        raise TypeError(
            f"save: tensor {name!r} has dtype {dtype}, which cannot be saved "
            f"(supported: {supported})"
        )
    # safetensors wants contiguous little-endian bytes; this copies only if needed
    # (a transposed view, a slice, a big-endian array). Not np.ascontiguousarray: it turns
    # a 0-d array into shape (1,).
    return np.asarray(array, dtype=dtype.newbyteorder("<"), order="C")


def _check_metadata(metadata: Any) -> dict[str, str] | None:
    if metadata is None:
        return None
    if not isinstance(metadata, Mapping):
        raise TypeError(
            f"save: metadata must be a dict of str -> str, got {type(metadata).__name__}"
        )
    for key, value in metadata.items():
        if not isinstance(key, str):
            raise TypeError(f"save: metadata key {key!r} must be a str, got {type(key).__name__}")
        if not isinstance(value, str):
            raise TypeError(
                f"save: metadata value for key {key!r} must be a str, got "
                f"{type(value).__name__} (serialize it, e.g. with json.dumps)"
            )
    return dict(metadata)


def save(
    tensors: Mapping[str, Any], path: str | os.PathLike, metadata: Mapping[str, str] | None = None
) -> None:
    """Save a flat dict of named arrays or Tensors to `path` in the safetensors format.

    `tensors` maps str names to NumPy arrays or Tensors (anything with a `.data` ndarray);
    dtypes float16/32/64, int8/16/32/64, uint8 and bool are supported, and non-contiguous
    arrays are fine. `metadata` is an optional dict of str -> str stored in the file's
    `__metadata__` (read it back with `load_metadata`). The file can be read by `load` and
    by PyTorch (`safetensors.torch.load_file`). The write is atomic: on any error the old
    file at `path`, if any, is left as it was.

    Raises TypeError, naming the key, for a non-str name, a value that is not an array or
    Tensor, an unsupported dtype, or a non-str metadata key or value.

    Example:
        >>> save({"w": np.ones((2, 3), np.float32)}, "model.safetensors", {"step": "10"})
    """
    if not isinstance(tensors, Mapping):
        raise TypeError(
            f"save: tensors must be a dict of name -> array, got {type(tensors).__name__}"
        )
    arrays = {}
    for name, value in tensors.items():
        if not isinstance(name, str):
            raise TypeError(f"save: tensor name {name!r} must be a str, got {type(name).__name__}")
        if name == _METADATA_KEY:
            raise ValueError(f"save: {_METADATA_KEY!r} is reserved and cannot name a tensor")
        arrays[name] = _as_array(name, value)
    meta = _check_metadata(metadata)

    import safetensors.numpy  # imported lazily: `import minigrad` stays fast

    data = safetensors.numpy.save(arrays, metadata=meta)
    atomic_write_bytes(path, data)


# ---------------------------------------------------------------------------------------
# Loading
# ---------------------------------------------------------------------------------------


def _foreign_hint(head: bytes) -> str:
    """Guess what a file that is not safetensors is, from its first bytes, for the message."""
    if head.startswith(b"PK\x03\x04") or head.startswith(b"PK\x05\x06"):
        return " (it looks like a zip archive, e.g. a torch.save .pt or NumPy .npz file)"
    if len(head) >= 2 and head[0] == 0x80 and 2 <= head[1] <= 5:
        return " (it looks like a Python pickle, which minigrad never loads)"
    if head.startswith(b"\x93NUMPY"):
        return " (it looks like a NumPy .npy file)"
    if head.lstrip()[:1] in (b"{", b"["):
        return " (it looks like JSON text)"
    return ""


def _check_entry(name: str, entry: Any) -> tuple[int, int]:
    """Check one tensor's header entry; return its (begin, end) offsets into the buffer."""
    if not isinstance(entry, dict):
        raise ValueError(f"entry {name!r} is not a JSON object")
    missing = [k for k in ("dtype", "shape", "data_offsets") if k not in entry]
    if missing:
        raise ValueError(f"entry {name!r} has no {', '.join(missing)}")
    dtype, shape, offsets = entry["dtype"], entry["shape"], entry["data_offsets"]
    if dtype not in _LOAD_ITEMSIZE:
        raise ValueError(f"entry {name!r} has unsupported dtype {dtype!r}")

    # bool is a subclass of int in Python; JSON `true` is not a dimension or an offset.
    def is_count(x: Any) -> bool:
        return isinstance(x, int) and not isinstance(x, bool) and x >= 0

    if not isinstance(shape, list) or not all(is_count(d) for d in shape):
        raise ValueError(f"entry {name!r} has invalid shape {shape!r}")
    if not (
        isinstance(offsets, list)
        and len(offsets) == 2
        and all(map(is_count, offsets))
        and offsets[0] <= offsets[1]
    ):
        raise ValueError(f"entry {name!r} has invalid data_offsets {offsets!r}")
    begin, end = offsets
    expected = math.prod(shape) * _LOAD_ITEMSIZE[dtype]
    if end - begin != expected:
        raise ValueError(
            f"entry {name!r} with dtype {dtype} and shape {tuple(shape)} needs "
            f"{expected} bytes but data_offsets {offsets} span {end - begin}"
        )
    return begin, end


def _read_header(f: Any, path: str) -> tuple[dict[str, Any], dict[str, str], int]:
    """Read and check the header of the open file `f`.

    Returns (tensor entries, metadata, buffer start). Raises ValueError naming `path` if
    the file is not a well-formed safetensors file.
    """

    def bad(reason: str) -> ValueError:
        return ValueError(f"{path}: not a safetensors file: {reason}")

    size = os.fstat(f.fileno()).st_size
    if size == 0:
        raise bad("file is empty")
    head = f.read(8)
    if len(head) < 8:
        raise bad(
            f"file is only {size} bytes, shorter than the 8-byte header length{_foreign_hint(head)}"
        )
    n = int.from_bytes(head, "little")
    if n > size - 8:
        raise bad(f"header length {n} exceeds file size {size}{_foreign_hint(head)}")
    if n > _MAX_HEADER_BYTES:
        raise bad(f"header length {n} exceeds the {_MAX_HEADER_BYTES}-byte limit")
    raw = f.read(n)
    if len(raw) != n:
        raise bad(f"file ended while reading the {n}-byte header")
    try:
        header = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as e:
        raise bad(f"header is not UTF-8 ({e.reason} at byte {8 + e.start})") from e
    except json.JSONDecodeError as e:
        raise bad(f"header is not valid JSON ({e.msg} at byte {8 + e.pos})") from e
    if not isinstance(header, dict):
        raise bad(f"header is a JSON {type(header).__name__}, not an object")

    metadata = header.pop(_METADATA_KEY, None)
    if metadata is None:  # absent, or JSON null (which the library also accepts)
        metadata = {}
    if not isinstance(metadata, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in metadata.items()
    ):
        raise bad(f"{_METADATA_KEY} is not an object of strings to strings")

    start = 8 + n
    buffer_size = size - start
    spans = []
    for name, entry in header.items():
        try:
            begin, end = _check_entry(name, entry)
        except ValueError as e:
            raise bad(str(e)) from None
        if end > buffer_size:
            raise bad(
                f"entry {name!r} data_offsets [{begin}, {end}] point past the end "
                f"of the {buffer_size}-byte data buffer (file truncated?)"
            )
        spans.append((begin, end, name))
    # The tensors must tile the buffer exactly: no overlaps (one tensor's bytes read as
    # another's), no gaps and no trailing bytes (hidden data). The library checks this
    # too; checking here gives a clear message.
    spans.sort()
    position = 0
    for begin, end, name in spans:
        if begin != position:
            kind = "overlaps the previous tensor" if begin < position else "leaves a gap"
            raise bad(
                f"entry {name!r} data_offsets [{begin}, {end}] {kind} "
                f"(expected to start at {position})"
            )
        position = end
    if position != buffer_size:
        raise bad(f"tensors cover {position} bytes but the data buffer has {buffer_size}")
    return header, metadata, start


def load(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Load a safetensors file written by `save` (or by PyTorch, etc.) as a dict of arrays.

    Returns a new dict name -> writable, C-contiguous NumPy array in the file's order of
    names. Raises FileNotFoundError if `path` does not exist, and ValueError naming the path
    and the problem if the file is empty, truncated, corrupt, or not a safetensors file
    (a pickle, a zip, JSON text, ...). Never unpickles anything.
    """
    path = os.fspath(path)
    # open() raises FileNotFoundError / IsADirectoryError / PermissionError naming the path.
    with open(path, "rb") as f:
        header, _, _ = _read_header(f, path)
        f.seek(0)
        data = f.read()

    import safetensors.numpy

    try:
        arrays = safetensors.numpy.load(data)
    except Exception as e:  # the library raises its own error types; we promise ValueError
        raise ValueError(f"{path}: not a valid safetensors file: {e}") from e

    result = {}
    for name in header:
        # np.frombuffer views of immutable bytes are read-only; callers will update
        # parameters in place, so hand back owned, writable copies.
        array = np.array(arrays[name], copy=True)
        if array.dtype == np.bool_ and array.size and array.view(np.uint8).max() > 1:
            raise ValueError(
                f"{path}: corrupt safetensors file: bool tensor {name!r} holds bytes other "
                f"than 0 and 1"
            )
        result[name] = array
    return result


def load_metadata(path: str | os.PathLike) -> dict[str, str]:
    """Return the str -> str metadata stored in the safetensors file at `path` ({} if none).

    Reads and checks only the header, not the tensor data. Raises FileNotFoundError if the
    file does not exist and ValueError naming the path if it is not a valid safetensors file.
    """
    path = os.fspath(path)
    with open(path, "rb") as f:
        _, metadata, _ = _read_header(f, path)
    return dict(metadata)

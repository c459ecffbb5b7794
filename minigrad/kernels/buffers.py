"""Memory the fast kernels reuse for their large outputs, instead of asking the OS again.

A large NumPy array is a fresh mapping of zeroed pages: when it is freed the pages go back
to the operating system, and the next step's array of the same size faults them in again,
page by page. A training step makes the same large arrays every time, so that cost comes
back at every step. Measured on the 2-core machine, the medium GPT step took about 43,000
page faults and 0.5 s of kernel (system) time per step, and ran in 1.2 s instead of 2.1 s
when the process kept its freed memory (an experiment with glibc's `mallopt`, which
minigrad must not do to its host process).

So the kernels take their large outputs from this pool: `empty(shape, dtype)` returns an
array whose memory is a block the pool keeps. Every array made from a block, views
included, holds the block as its NumPy `base`, so a block whose only references are the
pool's own is free, and is handed out again for the next array of the same size.

When it makes a new block, the pool keeps no more free bytes than it ever had in use at
once (a training step's working set, held between steps as PyTorch's caching allocator
holds its memory); beyond that, the free blocks unused longest are released.

Each block is its own anonymous memory mapping, so a released block goes back to the
operating system at once. From malloc, a released block would stay in the process's heap
whenever glibc had raised its mmap threshold (it does after freeing a large array), and
arrays of other sizes, such as an evaluation's, could rarely reuse it: a default
`minigrad train` peaked 5 MiB higher at its last evaluation than in training.
"""

import ctypes
import math
import mmap
import sys
import threading

import numpy as np

# Smaller arrays come from malloc, which reuses their memory well enough once the large ones
# stop going back and forth: on the baby GPT step, pooling from 256 KiB or from 1 MiB both
# took page faults from 2,084 a step to 1, and 1 MiB keeps 18 MB against 26 MB (a default
# `minigrad train` peaked at 200.5 MB against 205.2 MB).
MIN_BYTES = 1 << 20

_lock = threading.Lock()
_blocks = {}  # nbytes -> [[block, last use], ...]; a block is a 1-D uint8 array
_clock = 0  # counts hand-outs, to find the free blocks unused longest
_peak_in_use = 0  # the most bytes ever in use at once


def _is_free(entry):
    # References to a free block: the entry's list slot and getrefcount's argument. Every
    # array made from a block holds the block itself as its base (the mapping is the
    # block's base, behind a memoryview).
    return sys.getrefcount(entry[0]) == 2


def empty(shape, dtype):
    """An uninitialised C-contiguous array, as np.empty; large ones reuse a free block."""
    dtype = np.dtype(dtype)
    nbytes = math.prod(shape) * dtype.itemsize
    if nbytes < MIN_BYTES or nbytes == 0:  # (an empty mapping does not exist)
        return np.empty(shape, dtype)
    global _clock
    with _lock:
        _clock += 1
        entries = _blocks.setdefault(nbytes, [])
        for entry in entries:
            if _is_free(entry):
                entry[1] = _clock
                return entry[0].view(dtype).reshape(shape)
        _make_room(nbytes)
        mapping = mmap.mmap(-1, nbytes, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
        entry = [np.frombuffer(mapping, np.uint8), _clock]
        entries.append(entry)
        return entry[0].view(dtype).reshape(shape)


def _make_room(nbytes):
    """Before a new block of nbytes: note the bytes in use, and release the free blocks
    unused longest while the free bytes exceed the most ever in use."""
    global _peak_in_use
    free = [(entry[1], size, entry) for size, entries in _blocks.items()
            for entry in entries if _is_free(entry)]
    total = sum(size * len(entries) for size, entries in _blocks.items())
    free_bytes = sum(size for _, size, _ in free)
    _peak_in_use = max(_peak_in_use, total - free_bytes + nbytes)
    for _, size, entry in sorted(free, key=lambda item: item[0]):
        if free_bytes <= _peak_in_use:
            break
        _blocks[size] = [kept for kept in _blocks[size] if kept is not entry]
        free_bytes -= size


# glibc's malloc_trim (None elsewhere): hands the free memory of the C heap back to the OS.
_malloc_trim = getattr(ctypes.CDLL(None), "malloc_trim", None)


def trim_heap():
    """Give the C heap's free memory back to the operating system (glibc; elsewhere a no-op).

    Memory that other code frees into the heap (a checkpoint's bytes, the state dicts it is
    built from) otherwise stays with the process: the pool's blocks are mappings of their
    own and never reuse it, so the next steps would add their blocks on top of it (a
    default `minigrad train` peaked 10 MiB higher after its first checkpoint).
    """
    if _malloc_trim is not None:
        _malloc_trim(0)


def clear():
    """Release every free block (blocks still in use stay until their arrays are gone)."""
    with _lock:
        for size in list(_blocks):
            _blocks[size] = [entry for entry in _blocks[size] if not _is_free(entry)]
            if not _blocks[size]:
                del _blocks[size]


def cached_bytes():
    """(bytes in use, bytes free) in the pool's blocks."""
    with _lock:
        sizes = [(size, _is_free(entry)) for size, entries in _blocks.items()
                 for entry in entries]
    return (sum(size for size, free in sizes if not free),
            sum(size for size, free in sizes if free))

"""minigrad's threads: how the fast kernels use every core without touching the host.

The kernels run their large work on Numba's thread pool (`parallel=True` kernels, one
piece per thread), and the products call NumPy's own OpenBLAS from those threads, one
piece each, on one thread each. So one pool does all the work of a step, and its threads
wait for the next piece by spinning for a moment before they sleep: PyTorch's arrangement.

Two pools that both spin fight over the cores. OpenBLAS's own workers keep spinning for a
while after each product: in a prototype on the 2-core machine, a (768, 512) GELU split
over two threads took 2.9-3.3 ms (median) right after a product while they spun, against
0.10-0.12 ms with OpenBLAS held to one thread (0.19-0.21 ms whole, on one thread). So
inside each of minigrad's products (and clip_grad_norm_'s dot product) OpenBLAS is held to
one thread, and its setting is put back when the call returns (`hold_blas`,
`release_blas`, `blas_on_one_thread`). The host's own BLAS calls run with the host's
setting; only one made from another thread during a minigrad call would run on one thread.

minigrad starts no thread at import: Numba starts its pool at the first parallel kernel.
`PARALLEL` is False (every kernel on the calling thread, BLAS with its own threads) on one
core, or when NumPy's OpenBLAS cannot be found (a NumPy built on another BLAS).
"""

import ctypes
import glob
import os

import llvmlite.binding as llvm
import numpy as np


def _cores():
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover (not Linux)
        return os.cpu_count() or 1


THREADS = max(1, _cores())


def _numpy_openblas():
    """(ctypes library, symbol suffix) of the OpenBLAS in NumPy's wheel, or None."""
    libs = os.path.join(os.path.dirname(np.__file__), os.pardir, "numpy.libs")
    for path in sorted(glob.glob(os.path.join(libs, "libscipy_openblas*.so*"))):
        lib = ctypes.CDLL(path)
        suffix = "64_" if "openblas64" in os.path.basename(path) else ""
        if hasattr(lib, f"scipy_cblas_sgemm{suffix}"):
            # The kernels call its cblas from compiled code: LLVM must see its symbols.
            llvm.load_library_permanently(path)
            return lib, suffix
    return None


_openblas = _numpy_openblas()
PARALLEL = _openblas is not None and THREADS > 1
# cblas gemm symbols by dtype.char, for the Numba kernels (fast.py) to call
CBLAS = {}
if _openblas is not None:
    _lib, _suffix = _openblas
    CBLAS = {"f": f"scipy_cblas_sgemm{_suffix}", "d": f"scipy_cblas_dgemm{_suffix}"}
    _get_threads = getattr(_lib, f"scipy_openblas_get_num_threads{_suffix}")
    _get_threads.restype = ctypes.c_int
    _set_threads = getattr(_lib, f"scipy_openblas_set_num_threads{_suffix}")
    _set_threads.argtypes = [ctypes.c_int]
    _set_threads.restype = None


def hold_blas():
    """Hold NumPy's OpenBLAS to one thread; returns what release_blas needs to restore it."""
    if not PARALLEL:
        return 1
    previous = _get_threads()
    if previous != 1:
        _set_threads(1)
    return previous


def release_blas(previous):
    """Give OpenBLAS back the thread count hold_blas found."""
    if previous != 1:
        _set_threads(previous)


class blas_on_one_thread:
    """Context: NumPy's OpenBLAS on one thread inside, the host's setting restored after."""

    __slots__ = ("previous",)

    def __enter__(self):
        self.previous = hold_blas()

    def __exit__(self, *exc):
        release_blas(self.previous)

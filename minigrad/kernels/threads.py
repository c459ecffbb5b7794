"""minigrad's threads: how the fast kernels use every core without touching the host.

The kernels run their large work on Numba's thread pool (`parallel=True` kernels, one
piece per thread), and the products call NumPy's own OpenBLAS from those threads, one
matrix piece per thread. This is PyTorch's arrangement: one pool for all the work of a
step, whose threads wait for the next piece by spinning for a moment, then sleep.

Two pools that both spin would fight over the cores: OpenBLAS's own workers keep spinning
after each product (about 0.1 s), and a Numba thread that wanted the core waited out the
scheduler's time slice (GELU (768, 512) took 3.3 ms instead of 0.1 ms). So inside each of
minigrad's products and row kernels OpenBLAS is held to one thread, and its own setting is
put back when the call returns: `blas_on_one_thread()`. The host's own BLAS calls, before
and after, run with the host's setting.

minigrad starts no thread at import; Numba starts its pool at the first parallel kernel.
`PARALLEL` is False (everything runs on the calling thread, BLAS with its own threads) on
one core, or when NumPy's OpenBLAS cannot be found (NumPy built on another BLAS).
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
    """(ctypes library, symbol prefix, suffix) of the OpenBLAS in NumPy's wheel, or None."""
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

"""minigrad's own threads: how the fast kernels use both cores without touching the host.

minigrad starts no thread at import and sets no process-wide thread limit. Its parallel
work (the row kernels) runs on the calling thread plus a small pool of its own
threads (`minigrad-worker-*`), created at the first parallel call, which sleep when idle.
Nothing spins: an OpenMP or OpenBLAS worker that busy-waits after its call steals a core
from whatever runs next, and on a 2-core machine that was the difference between 50 and
300+ ms per baby-GPT step under load (benchmarks/RESULTS.md).

- `run(calls)` runs calls (fn, *args) at once, e.g. one Numba kernel per piece of rows
  (`pieces(n)`); the kernels release the GIL (nogil), so the pieces truly run at once.
"""

import os
import threading
from concurrent.futures import ThreadPoolExecutor


def _cores():
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover (not Linux)
        return os.cpu_count() or 1


THREADS = max(1, _cores())
_pool = None
_pool_lock = threading.Lock()


def _get_pool():
    global _pool
    if _pool is None:
        with _pool_lock:
            if _pool is None:
                _pool = ThreadPoolExecutor(THREADS - 1, "minigrad-worker")
    return _pool


def pieces(n, parts=THREADS):
    """Up to `parts` (lo, hi) bounds of nearly equal length that cover range(n)."""
    bounds = [n * i // parts for i in range(parts + 1)]
    return [(lo, hi) for lo, hi in zip(bounds[:-1], bounds[1:], strict=True) if hi > lo]


def run(calls):
    """Run the calls (fn, *args) at once: the first on this thread, the rest on the pool."""
    if not calls:  # nothing to do (an empty array)
        return
    if len(calls) == 1:
        fn, *args = calls[0]
        fn(*args)
        return
    pool = _get_pool()
    pending = [pool.submit(*call) for call in calls[1:]]
    fn, *args = calls[0]
    try:
        fn(*args)
    finally:
        for job in pending:
            job.result()

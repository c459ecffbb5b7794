"""The compute under the ops.

`reference.py` is plain NumPy: the readable specification of every kernel. `fast.py` has the
same functions, signature for signature, compiled with Numba. The environment variable
`MINIGRAD_BACKEND=numpy|numba` picks one when minigrad is imported (numba by default);
`use_backend(name)` switches at run time, e.g. in tests that compare the two.

Ops call kernels through this module (`kernels.K.softmax(x)`), never by importing a backend
directly, so that switching backends switches every op.
"""

import os

from minigrad.kernels import reference

BACKENDS = ("numpy", "numba")


def _load(name):
    if name == "numpy":
        return reference
    if name == "numba":
        from minigrad.kernels import fast

        return fast
    raise ValueError(f"MINIGRAD_BACKEND: unknown backend {name!r}; choose one of {BACKENDS}")


class _Backend:
    """Holds the active kernel module; `K.softmax` forwards to it."""

    def __init__(self, name):
        self.use(name)

    def use(self, name):
        self.name = name
        self.module = _load(name)

    def __getattr__(self, attr):
        return getattr(self.module, attr)


K = _Backend(os.environ.get("MINIGRAD_BACKEND", "numba"))


def use_backend(name):
    """Switch every op to the kernels of backend `name` ('numpy' or 'numba')."""
    K.use(name)


def backend():
    """The name of the active kernel backend."""
    return K.name


def release_buffers():
    """Give back to the operating system the memory the fast kernels keep between steps for
    their large outputs (see kernels/buffers.py), and the free memory of the C heap. Call
    it between phases: before and after an evaluation, after a checkpoint. Arrays still in
    use keep theirs; the next step takes what it needs again."""
    from minigrad.kernels import buffers

    buffers.clear()
    buffers.trim_heap()

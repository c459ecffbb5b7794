"""Reference kernels in plain NumPy: the readable specification of every kernel.

Each function takes and returns ndarrays. `fast.py` mirrors these signatures with Numba and
the tests compare the two. Reductions such as softmax work over the last axis; the ops move
the axis they are asked for to the end before calling a kernel.
"""

import numpy as np


def matmul(a, b):
    """a (..., n, k) @ b (..., k, m) -> (..., n, m), batch dims broadcast as NumPy's."""
    return np.matmul(a, b)


def _safe_max(x):
    """Row max over the last axis, with rows that are entirely -inf given max 0 (no NaN)."""
    m = np.max(x, axis=-1, keepdims=True)
    return np.where(np.isfinite(m), m, 0).astype(x.dtype, copy=False)


def softmax(x):
    """Softmax over the last axis; a row that is entirely -inf becomes all zeros."""
    e = np.exp(x - _safe_max(x))
    s = np.sum(e, axis=-1, keepdims=True)
    return e / np.where(s == 0, 1, s)


def softmax_backward(y, grad):
    """dL/dx from the softmax output y and dL/dy: y * (grad - sum(grad * y))."""
    return y * (grad - np.sum(grad * y, axis=-1, keepdims=True))


def log_softmax(x):
    """Log-softmax over the last axis; a row that is entirely -inf stays -inf."""
    shifted = x - _safe_max(x)
    s = np.sum(np.exp(shifted), axis=-1, keepdims=True)
    with np.errstate(divide="ignore"):
        return shifted - np.log(s)


def log_softmax_backward(y, grad):
    """dL/dx from the log-softmax output y: grad - softmax * sum(grad); zero on -inf rows."""
    p = np.exp(y)
    dx = grad - p * np.sum(grad, axis=-1, keepdims=True)
    dead = np.all(np.isneginf(y), axis=-1, keepdims=True)
    return np.where(dead, 0, dx).astype(y.dtype, copy=False)

"""Creation functions: zeros, ones, full, the *_like forms, arange, eye and random tensors."""

import numpy as np

from minigrad import random
from minigrad.tensor import Tensor


def _shape(shape):
    if len(shape) == 1 and isinstance(shape[0], tuple | list):
        shape = tuple(shape[0])
    if any(not isinstance(n, int | np.integer) or n < 0 for n in shape):
        raise ValueError(f"shape must be non-negative ints, got {shape}")
    return tuple(int(n) for n in shape)


def _float(dtype):
    return np.dtype(np.float32 if dtype is None else dtype)


def zeros(*shape, dtype=None, requires_grad=False):
    """A tensor of zeros (float32 unless dtype is given)."""
    return Tensor(np.zeros(_shape(shape), _float(dtype)), requires_grad=requires_grad)


def ones(*shape, dtype=None, requires_grad=False):
    """A tensor of ones (float32 unless dtype is given)."""
    return Tensor(np.ones(_shape(shape), _float(dtype)), requires_grad=requires_grad)


def full(shape, fill_value, dtype=None, requires_grad=False):
    """A tensor of `shape` filled with `fill_value`."""
    shape = _shape((shape,) if isinstance(shape, int) else (tuple(shape),))
    return Tensor(np.full(shape, fill_value, _float(dtype)), requires_grad=requires_grad)


def zeros_like(t, dtype=None, requires_grad=False):
    """Zeros with the shape (and dtype unless given) of t."""
    return Tensor(np.zeros(np.shape(t), dtype or np.asarray(t).dtype),
                  requires_grad=requires_grad)


def ones_like(t, dtype=None, requires_grad=False):
    """Ones with the shape (and dtype unless given) of t."""
    return Tensor(np.ones(np.shape(t), dtype or np.asarray(t).dtype), requires_grad=requires_grad)


def arange(start, stop=None, step=1, dtype=None):
    """Evenly spaced values as np.arange (integers stay integer)."""
    values = np.arange(start, stop, step) if stop is not None else np.arange(start)
    if dtype is not None:
        values = values.astype(dtype)
    elif np.issubdtype(values.dtype, np.floating):
        values = values.astype(np.float32)
    return Tensor(values)


def eye(n, m=None, dtype=None, requires_grad=False):
    """The identity matrix (n, m)."""
    return Tensor(np.eye(n, m, dtype=_float(dtype)), requires_grad=requires_grad)


def randn(*shape, dtype=None, requires_grad=False):
    """Standard normal samples from minigrad's seeded generator."""
    values = random.generator().standard_normal(_shape(shape), dtype=_float(dtype))
    return Tensor(values, requires_grad=requires_grad)


def rand(*shape, dtype=None, requires_grad=False):
    """Uniform samples in [0, 1) from minigrad's seeded generator."""
    values = random.generator().random(_shape(shape), dtype=_float(dtype))
    return Tensor(values, requires_grad=requires_grad)


def randint(low, high, shape, dtype=np.int64):
    """Random integers in [low, high) of the given shape."""
    shape = _shape((shape,) if isinstance(shape, int) else (tuple(shape),))
    return Tensor(random.generator().integers(low, high, shape, dtype=dtype))


def tensor(data, requires_grad=False, dtype=None):
    """Same as Tensor(data, requires_grad, dtype)."""
    return Tensor(data, requires_grad=requires_grad, dtype=dtype)

"""Creation functions: zeros, ones, full, the *_like forms, arange, eye and random tensors."""

import numpy as np

from minigrad import random
from minigrad.ops._util import shape_arg
from minigrad.tensor import Tensor


def _float(dtype):
    return np.dtype(np.float32 if dtype is None else dtype)


def zeros(*shape, dtype=None, requires_grad=False):
    """A tensor of zeros (float32 unless dtype is given)."""
    return Tensor(np.zeros(shape_arg("zeros", shape), _float(dtype)), requires_grad=requires_grad)


def ones(*shape, dtype=None, requires_grad=False):
    """A tensor of ones (float32 unless dtype is given)."""
    return Tensor(np.ones(shape_arg("ones", shape), _float(dtype)), requires_grad=requires_grad)


def full(shape, fill_value, dtype=None, requires_grad=False):
    """A tensor of `shape` filled with `fill_value`."""
    shape = shape_arg("full", (shape,) if isinstance(shape, int | np.integer) else tuple(shape))
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
    values = random.generator().standard_normal(shape_arg("randn", shape), dtype=_float(dtype))
    return Tensor(values, requires_grad=requires_grad)


def rand(*shape, dtype=None, requires_grad=False):
    """Uniform samples in [0, 1) from minigrad's seeded generator."""
    values = random.generator().random(shape_arg("rand", shape), dtype=_float(dtype))
    return Tensor(values, requires_grad=requires_grad)


def randint(low, high, shape, dtype=np.int64):
    """Random integers in [low, high) of the given shape."""
    shape = shape_arg("randint", (shape,) if isinstance(shape, int | np.integer) else tuple(shape))
    return Tensor(random.generator().integers(low, high, shape, dtype=dtype))


def tensor(data, requires_grad=False, dtype=None):
    """Same as Tensor(data, requires_grad, dtype)."""
    return Tensor(data, requires_grad=requires_grad, dtype=dtype)

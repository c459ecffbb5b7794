"""Small helpers shared by the op families: operand conversion, shape and axis checks."""

import numpy as np

from minigrad.tensor import Tensor


def constant(value, like=None):
    """A non-Tensor operand as an ndarray whose dtype follows minigrad's rules.

    A Python number next to a floating tensor takes that tensor's dtype (so float32 stays
    float32); a Python float next to an integer tensor, or on its own, becomes float32.
    """
    if isinstance(value, Tensor | np.ndarray):
        return value
    array = np.asarray(value)
    if array.dtype == object:
        raise TypeError(f"unsupported operand of type {type(value).__name__}")
    if like is not None and np.issubdtype(like.dtype, np.floating) and array.ndim == 0:
        return array.astype(like.dtype)
    if np.issubdtype(array.dtype, np.floating):
        return array.astype(np.float32)
    return array


def operands(a, b):
    """Turn a binary op's operands into (Tensor or ndarray, Tensor or ndarray), one a Tensor."""
    if not isinstance(a, Tensor) and not isinstance(b, Tensor):
        a = Tensor(a)
    if isinstance(a, Tensor):
        return _int_with_float(a, constant(b, a))
    b, a = _int_with_float(b, constant(a, b))
    return a, b


def _int_with_float(t, other):
    # An integer tensor meeting a Python float computes in float32, the default, not in the
    # float64 that NumPy would promote int64 + float32 to.
    is_number = isinstance(other, np.ndarray) and other.ndim == 0
    if is_number and other.dtype == np.float32 and np.issubdtype(t.dtype, np.integer):
        t = Tensor(t.data.astype(np.float32))
    return t, other


def as_tensor(x):
    """`x` as a Tensor (a Tensor is returned as is)."""
    return x if isinstance(x, Tensor) else Tensor(x)


def shape_arg(op, shape, lowest=0):
    """A shape given as f(2, 3) or f((2, 3)), as a tuple of ints each >= `lowest`.

    reshape and expand pass lowest=-1 (a dim to infer or keep), permute lowest=None (axes,
    checked by the op). A non-int is a TypeError and a dim below `lowest` a ValueError,
    both naming the op.
    """
    if len(shape) == 1 and isinstance(shape[0], tuple | list):
        shape = tuple(shape[0])
    if any(not isinstance(n, int | np.integer) for n in shape):
        raise TypeError(f"{op}: shape must be ints, got {shape}")
    if lowest is not None and any(n < lowest for n in shape):
        kind = "non-negative ints" if lowest == 0 else f"ints >= {lowest}"
        raise ValueError(f"{op}: shape must be {kind}, got {tuple(int(n) for n in shape)}")
    return tuple(int(n) for n in shape)


def check_choice(op, name, value, choices):
    """ValueError naming `op` unless `value` is one of `choices` (an option such as gelu's)."""
    if value not in choices:
        listed = ", ".join(repr(c) for c in choices[:-1]) + f" or {choices[-1]!r}"
        raise ValueError(f"{op}: {name} must be {listed}, got {value!r}")


def shape_of(x):
    return x.shape if hasattr(x, "shape") else ()


def broadcast_shapes(op, *shapes):
    """The broadcast shape of `shapes`, or a ValueError that names the op and the shapes."""
    try:
        return np.broadcast_shapes(*shapes)
    except ValueError:
        listed = " and ".join(str(tuple(s)) for s in shapes)
        raise ValueError(f"{op}: shapes {listed} cannot be broadcast together") from None


def normalize_axis(op, axis, ndim):
    """A non-negative axis for a tensor of `ndim` dims, or a ValueError naming the op."""
    if not isinstance(axis, int | np.integer):
        raise TypeError(f"{op}: axis must be an int, got {type(axis).__name__}")
    if not -max(ndim, 1) <= axis < max(ndim, 1):
        raise ValueError(f"{op}: axis {axis} is out of range for a tensor with {ndim} dims")
    return int(axis) % max(ndim, 1)


def normalize_axes(op, axis, ndim):
    """axis=None|int|tuple as a sorted tuple of non-negative axes (None = all axes)."""
    if axis is None:
        return tuple(range(ndim))
    if isinstance(axis, int | np.integer):
        axis = (axis,)
    axes = tuple(sorted(normalize_axis(op, a, ndim) for a in axis))
    if len(set(axes)) != len(axes):
        raise ValueError(f"{op}: axis {axis} repeats an axis")
    return axes

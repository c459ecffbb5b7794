"""softmax and log_softmax over one axis, numerically stable, backed by kernels."""

import numpy as np

from minigrad.autograd import Function
from minigrad.kernels import K
from minigrad.ops._util import as_tensor, normalize_axis


def _to_last(x, axis):
    return np.ascontiguousarray(np.moveaxis(x, axis, -1)) if axis != x.ndim - 1 else x


def _rows_forward(ctx, kernel, x, axis):
    """Run a row kernel along `axis` (moved last) and save its output for backward."""
    y = kernel(_to_last(x, axis))
    ctx.save_for_backward(y)
    ctx.axis = axis
    return np.moveaxis(y, -1, axis)


def _rows_backward(ctx, kernel, grad):
    """Run a row kernel's backward on the saved output; no gradient for the axis."""
    (y,) = ctx.saved_tensors
    dx = kernel(y, _to_last(grad, ctx.axis))
    return np.moveaxis(dx, -1, ctx.axis), None


class Softmax(Function):
    """p = softmax(s) along an axis. The Jacobian is diag(p) - p p^T, so the gradient is p times (g
    minus its p-weighted mean): a row that is nearly one-hot (saturated) passes almost no gradient.

    backward: ds = p * (g - sum(g * p, axis))
    saves: the output p
    """

    @staticmethod
    def forward(ctx, x, axis):
        return _rows_forward(ctx, K.softmax, x, axis)

    @staticmethod
    def backward(ctx, grad):
        return _rows_backward(ctx, K.softmax_backward, grad)


class LogSoftmax(Function):
    """y = s - logsumexp(s): the gradient minus the softmax times its sum.

    backward: ds = g - exp(y) * sum(g, axis)
    saves: the output y
    """

    @staticmethod
    def forward(ctx, x, axis):
        return _rows_forward(ctx, K.log_softmax, x, axis)

    @staticmethod
    def backward(ctx, grad):
        return _rows_backward(ctx, K.log_softmax_backward, grad)


def _check(op, x, axis):
    x = as_tensor(x)
    if not np.issubdtype(x.dtype, np.floating):
        raise TypeError(f"{op}: needs a floating tensor, got dtype {x.dtype}")
    return x, normalize_axis(op, axis, x.ndim)


def softmax(x, axis=-1):
    """exp(x) / sum(exp(x)) along `axis`; a row of all -inf gives zeros."""
    x, axis = _check("softmax", x, axis)
    if x.size == 0:
        return x * 0  # nothing to normalise; keeps the graph and the dtype
    if x.ndim == 0:
        return Softmax.apply(x.reshape(1), 0).reshape(())
    return Softmax.apply(x, axis)


def log_softmax(x, axis=-1):
    """x - logsumexp(x) along `axis`; a row of all -inf stays -inf with zero gradient."""
    x, axis = _check("log_softmax", x, axis)
    if x.size == 0:
        return x * 0
    if x.ndim == 0:
        return LogSoftmax.apply(x.reshape(1), 0).reshape(())
    return LogSoftmax.apply(x, axis)

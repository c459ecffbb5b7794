"""Reductions over axis=None|int|tuple with keepdims, NumPy's names and meaning."""

import builtins
import math

import numpy as np

from minigrad.autograd import Function
from minigrad.ops._util import as_tensor, normalize_axes
from minigrad.tensor import Tensor


def _expand(grad, axes, keepdims, shape):
    """Bring a reduced gradient back to the input's shape (a broadcast view, no copy)."""
    if not keepdims:
        grad = np.expand_dims(grad, axes)
    return np.broadcast_to(grad, shape)


class Sum(Function):
    """Every summed element contributed with weight 1: the gradient is broadcast back.

    backward: dx = broadcast(g)
    saves: input shape and axes
    """

    @staticmethod
    def forward(ctx, x, axes, keepdims):
        ctx.shape, ctx.axes, ctx.keepdims = x.shape, axes, keepdims
        return np.sum(x, axis=axes, keepdims=keepdims)

    @staticmethod
    def backward(ctx, grad):
        return _expand(grad, ctx.axes, ctx.keepdims, ctx.shape), None, None


class Mean(Function):
    """Like Sum, divided by the count.

    backward: dx = broadcast(g) / n
    saves: input shape, axes and count
    """

    @staticmethod
    def forward(ctx, x, axes, keepdims):
        ctx.shape, ctx.axes, ctx.keepdims = x.shape, axes, keepdims
        ctx.count = builtins.max(math.prod(x.shape[a] for a in axes), 1)
        return np.mean(x, axis=axes, keepdims=keepdims)

    @staticmethod
    def backward(ctx, grad):
        return _expand(grad / ctx.count, ctx.axes, ctx.keepdims, ctx.shape), None, None


class Max(Function):
    """Max (or min, with `np.min`): the gradient goes to the winners, split evenly on ties.

    Only the winning element moved the output: it takes the gradient (split on ties).

    backward: dx = g * [x == max] / (number of winners)
    saves: the winners mask
    """

    reducer = staticmethod(np.max)

    @classmethod
    def forward(cls, ctx, x, axes, keepdims):
        y = cls.reducer(x, axis=axes, keepdims=True)
        winners = x == y
        ctx.save_for_backward(winners)
        ctx.axes, ctx.keepdims = axes, keepdims
        return y if keepdims else np.squeeze(y, axis=axes)

    @staticmethod
    def backward(ctx, grad):
        (winners,) = ctx.saved_tensors
        if not ctx.keepdims:
            grad = np.expand_dims(grad, ctx.axes)
        counts = np.sum(winners, axis=ctx.axes, keepdims=True)
        return grad * winners / counts, None, None


class Min(Max):
    """Only the smallest element moved the output: it takes the gradient (split on ties).

    backward: dx = g * [x == min] / (number of winners)
    saves: the winners mask
    """

    reducer = staticmethod(np.min)


class Var(Function):
    """Variance (1/n') sum (x - mean)^2.

    backward: dx = g * 2 (x - mean) / n'
    saves: x - mean and the degrees of freedom
    """

    @staticmethod
    def forward(ctx, x, axes, keepdims, ddof):
        mean = np.mean(x, axis=axes, keepdims=True)
        ctx.save_for_backward(x - mean)
        ctx.axes, ctx.keepdims = axes, keepdims
        ctx.dof = builtins.max(math.prod(x.shape[a] for a in axes) - ddof, 0)
        return np.var(x, axis=axes, keepdims=keepdims, ddof=ddof)

    @staticmethod
    def backward(ctx, grad):
        (centered,) = ctx.saved_tensors
        if not ctx.keepdims:
            grad = np.expand_dims(grad, ctx.axes)
        return grad * 2 * centered / ctx.dof, None, None, None


class LogSumExp(Function):
    """y = log sum exp(x): its gradient is the softmax of x.

    backward: dx = g * exp(x - y)
    saves: the input x and output y
    """

    @staticmethod
    def forward(ctx, x, axes, keepdims):
        m = np.max(x, axis=axes, keepdims=True)
        m = np.where(np.isfinite(m), m, 0).astype(x.dtype)  # all -inf stays -inf, no NaN
        with np.errstate(divide="ignore"):
            y = m + np.log(np.sum(np.exp(x - m), axis=axes, keepdims=True))
        ctx.save_for_backward(x, y)
        ctx.axes, ctx.keepdims = axes, keepdims
        return y if keepdims else np.squeeze(y, axis=axes)

    @staticmethod
    def backward(ctx, grad):
        x, y = ctx.saved_tensors
        if not ctx.keepdims:
            grad = np.expand_dims(grad, ctx.axes)
        # softmax(x) = exp(x - lse); a row of all -inf gets weight 0 instead of NaN.
        weights = np.exp(x - np.where(np.isneginf(y), 0, y))
        return grad * weights, None, None


def _reduce(fn, name, x, axis, keepdims, *extra):
    x = as_tensor(x)
    axes = normalize_axes(name, axis, x.ndim)
    if name in ("max", "min") and builtins.any(x.shape[a] == 0 for a in axes):
        raise ValueError(f"{name}: cannot reduce an empty axis of a tensor of shape {x.shape}")
    return fn.apply(x, axes, keepdims, *extra)


def sum(x, axis=None, keepdims=False):
    """Sum over `axis` (None = all)."""
    return _reduce(Sum, "sum", x, axis, keepdims)


def mean(x, axis=None, keepdims=False):
    """Mean over `axis` (None = all)."""
    return _reduce(Mean, "mean", x, axis, keepdims)


def max(x, axis=None, keepdims=False):
    """Maximum over `axis`; the gradient is split evenly between tied maxima."""
    return _reduce(Max, "max", x, axis, keepdims)


def min(x, axis=None, keepdims=False):
    """Minimum over `axis`; the gradient is split evenly between tied minima."""
    return _reduce(Min, "min", x, axis, keepdims)


def var(x, axis=None, keepdims=False, ddof=0):
    """Variance over `axis` with `ddof` delta degrees of freedom (0 = population)."""
    return _reduce(Var, "var", x, axis, keepdims, ddof)


def logsumexp(x, axis=None, keepdims=False):
    """log(sum(exp(x))) over `axis`, computed stably."""
    return _reduce(LogSumExp, "logsumexp", x, axis, keepdims)


def argmax(x, axis=None, keepdims=False):
    """Index of the maximum (an integer tensor, no gradient)."""
    data = x.data if isinstance(x, Tensor) else np.asarray(x)
    return Tensor(np.argmax(data, axis=axis, keepdims=keepdims))

"""Matrix multiplication with NumPy's rules: batch dims broadcast, 1-D operands promoted."""

import math

import numpy as np

from minigrad.autograd import Function
from minigrad.kernels import K
from minigrad.ops._util import constant
from minigrad.tensor import Tensor


class MatMul(Function):
    """a (..., n, k) @ b (..., k, m) -> (..., n, m); operands have at least 2 dims.

    Y = A B: each operand's gradient is g times the other operand transposed (for S = Q K^T this
    gives dQ = dS K and dK = dS^T Q).

    backward: dA = g B^T, dB = A^T g
    saves: both operands A, B
    """

    @staticmethod
    def forward(ctx, a, b):
        ctx.save_for_backward(a, b)
        if b.ndim == 2 and a.ndim > 2:
            # (B, T, k) @ (k, m) is one (B*T, k) @ (k, m) product: one BLAS call, not B.
            rows = math.prod(a.shape[:-1])
            return K.matmul(a.reshape(rows, a.shape[-1]), b).reshape(*a.shape[:-1], b.shape[-1])
        return K.matmul(a, b)

    @staticmethod
    def backward(ctx, grad):
        a, b = ctx.saved_tensors
        da = db = None
        if ctx.needs_input_grad[0]:
            da = K.matmul(grad, np.swapaxes(b, -1, -2))  # (..., n, k)
        if ctx.needs_input_grad[1]:
            if b.ndim == 2 and a.ndim > 2:
                # Sum over the batch inside one product instead of B products then a sum.
                rows = math.prod(a.shape[:-1])
                db = K.matmul(a.reshape(rows, a.shape[-1]).T, grad.reshape(rows, grad.shape[-1]))
            else:
                db = K.matmul(np.swapaxes(a, -1, -2), grad)  # (..., k, m)
        return da, db


def matmul(a, b):
    """a @ b as np.matmul: 1-D operands are promoted to matrices and the extra dim removed."""
    if not isinstance(a, Tensor):
        a = Tensor(constant(a, b if isinstance(b, Tensor) else None))
    if not isinstance(b, Tensor):
        b = Tensor(constant(b, a))
    if a.ndim == 0 or b.ndim == 0:
        raise ValueError(f"matmul: operands must have at least 1 dim, got shapes "
                         f"{a.shape} and {b.shape}")
    k_a = a.shape[-1]
    k_b = b.shape[-2] if b.ndim > 1 else b.shape[0]
    if k_a != k_b:
        raise ValueError(f"matmul: shapes {a.shape} and {b.shape} do not align "
                         f"({k_a} != {k_b})")
    try:
        np.broadcast_shapes(a.shape[:-2], b.shape[:-2])
    except ValueError:
        raise ValueError(f"matmul: batch dims of shapes {a.shape} and {b.shape} cannot be "
                         "broadcast together") from None
    a2 = a.unsqueeze(0) if a.ndim == 1 else a
    b2 = b.unsqueeze(-1) if b.ndim == 1 else b
    out = MatMul.apply(a2, b2)
    if b.ndim == 1:
        out = out.squeeze(-1)
    if a.ndim == 1:
        out = out.squeeze(-2 if b.ndim > 1 else -1)
    return out


def check_in_features(op, x, in_features):
    """ValueError naming `op` unless `x` is (..., in_features), the input of a linear map."""
    if x.ndim == 0 or x.shape[-1] != in_features:
        raise ValueError(f"{op}: expected input (..., {in_features}), got shape {tuple(x.shape)}")


class Linear(Function):
    """x (..., in) @ weight (out, in)^T + bias (out,): three ops of the graph as one node.

    Y = X W^T + b in one node: the three gradients of a dense layer.

    backward: dX = g W, dW = g^T X, db = sum of g over rows
    saves: X (as rows) and W
    """

    @staticmethod
    def forward(ctx, x, weight, bias):
        x2 = x.reshape(math.prod(x.shape[:-1]), x.shape[-1])  # (N, in)
        ctx.save_for_backward(x2, weight)
        ctx.shape = x.shape
        return K.dense(x2, weight, bias).reshape(*x.shape[:-1], weight.shape[0])

    @staticmethod
    def backward(ctx, grad):
        x2, weight = ctx.saved_tensors
        g2 = grad.reshape(x2.shape[0], grad.shape[-1])  # (N, out)
        dx = K.matmul(g2, weight).reshape(ctx.shape) if ctx.needs_input_grad[0] else None
        dweight = K.matmul(g2.T, x2) if ctx.needs_input_grad[1] else None
        dbias = K.bias_grad(g2) if ctx.needs_input_grad[2] else None
        return dx, dweight, dbias


class GeluLinear(Function):
    """gelu(h) (..., in) @ weight (out, in)^T + bias: a GELU and the dense layer after it.

    A = gelu(H); Y = A W^T + b, in one node that keeps H but not A: backward makes A again
    (one elementwise pass) instead of holding it from forward to backward. In a GPT's MLP
    A is the widest activation, 4C floats a token in every block.

    backward: dA = g W, dW = g^T A, db = sum of g over rows, dH = dA * gelu'(H)
    saves: H (as rows) and W
    """

    @staticmethod
    def forward(ctx, h, approximate, weight, bias):
        h2 = h.reshape(math.prod(h.shape[:-1]), h.shape[-1])  # (N, in)
        ctx.save_for_backward(h2, weight)
        ctx.shape, ctx.approximate = h.shape, approximate
        out = K.dense(K.gelu(h2, approximate), weight, bias)  # (N, out); A is freed here
        return out.reshape(*h.shape[:-1], weight.shape[0])

    @staticmethod
    def backward(ctx, grad):
        h2, weight = ctx.saved_tensors
        g2 = grad.reshape(h2.shape[0], grad.shape[-1])  # (N, out)
        need_h, _, need_w, need_b = ctx.needs_input_grad
        # A again, used and let go before dA is made: one (N, in) array at a time
        dweight = K.matmul(g2.T, K.gelu(h2, ctx.approximate)) if need_w else None
        dbias = K.bias_grad(g2) if need_b else None
        dh = None
        if need_h:
            da = K.matmul(g2, weight)  # (N, in), this op's own: dH is written over it
            dh = K.gelu_backward(h2, da, ctx.approximate, out=da).reshape(ctx.shape)
        return dh, None, dweight, dbias

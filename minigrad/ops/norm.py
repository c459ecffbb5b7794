"""Layer normalisation as one fused op (the composite in functional.py is its oracle)."""

from minigrad.autograd import Function
from minigrad.kernels import K


class LayerNorm(Function):
    """(x - mean) / sqrt(var + eps) * weight + bias over the last axis; weight, bias optional.

    y = xhat * w + b with xhat = (x - mean) * rstd over the last axis. The input gradient removes
    the mean and the xhat-component of g * w.

    backward: dx = rstd * (gw - mean(gw) - xhat * mean(gw * xhat)), gw = g * w; dw = sum(g * xhat),
        db = sum(g)
    saves: x, w, mean and rstd
    """

    @staticmethod
    def forward(ctx, x, weight, bias, eps):
        y, mean, rstd = K.layer_norm_forward(x, weight, bias, eps)  # mean, rstd (..., 1)
        ctx.save_for_backward(x, weight, mean, rstd)
        ctx.has_bias = bias is not None
        return y

    @staticmethod
    def backward(ctx, grad):
        x, weight, mean, rstd = ctx.saved_tensors
        dx, dweight, dbias = K.layer_norm_backward(grad, x, weight, mean, rstd)
        return dx, dweight, dbias if ctx.has_bias else None, None

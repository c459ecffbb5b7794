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


class LayerNormLinear(Function):
    """layer_norm(x) (..., C) @ weight (out, C)^T + bias: a LayerNorm and the dense layer after
    it, in one node that keeps x but not the normalised rows.

    N = xhat * w + b; Y = N W^T + c. Backward makes N again from x (one pass, as the
    forward) instead of holding it from forward to backward (C floats a token).

    backward: dW = g^T N, dc = sum of g over rows; then LayerNorm's backward of dN = g W
    saves: x, w, b, mean, rstd and W
    """

    @staticmethod
    def forward(ctx, x, ln_weight, ln_bias, eps, weight, bias):
        n, mean, rstd = K.layer_norm_forward(x, ln_weight, ln_bias, eps)  # n like x
        ctx.save_for_backward(x, ln_weight, ln_bias, mean, rstd, weight)
        ctx.eps = eps
        out = K.dense(n.reshape(-1, n.shape[-1]), weight, bias)  # (rows, out); n is let go here
        return out.reshape(*x.shape[:-1], weight.shape[0])

    @staticmethod
    def backward(ctx, grad):
        x, ln_weight, ln_bias, mean, rstd, weight = ctx.saved_tensors
        g2 = grad.reshape(-1, grad.shape[-1])  # (rows, out)
        need = ctx.needs_input_grad
        dweight = dbias = None
        if need[4]:
            n = K.layer_norm_forward(x, ln_weight, ln_bias, ctx.eps)[0]  # N again
            dweight = K.matmul(g2.T, n.reshape(-1, n.shape[-1]))
        if need[5]:
            dbias = K.bias_grad(g2)
        dn = K.matmul(g2, weight).reshape(x.shape)
        dx, dln_weight, dln_bias = K.layer_norm_backward(dn, x, ln_weight, mean, rstd)
        return dx, dln_weight, dln_bias if ln_bias is not None else None, None, dweight, dbias

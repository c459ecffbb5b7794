"""Cross-entropy from logits as one fused op: log-softmax and NLL in one pass."""

import numpy as np

from minigrad.autograd import Function
from minigrad.kernels import K


class CrossEntropy(Function):
    """Softmax cross-entropy of logits (..., C) against integer targets (...).

    Softmax cross-entropy from logits: the gradient is the predicted probabilities minus the one-hot
    target (divided by the count for 'mean'; ignored targets get 0).

    backward: dlogits = g * (softmax(logits) - onehot(target)) / N
    saves: the logits, targets and logsumexp
    """

    @staticmethod
    def forward(ctx, logits, targets, ignore_index, reduction):
        C = logits.shape[-1]
        flat_logits = logits.reshape(-1, C)  # (N, C)
        flat_targets = targets.reshape(-1)  # (N,)
        losses, lse = K.cross_entropy_forward(flat_logits, flat_targets, ignore_index)
        ctx.save_for_backward(flat_logits, flat_targets, lse)
        ctx.ignore_index, ctx.reduction, ctx.shape = ignore_index, reduction, logits.shape
        ctx.count = max(int(np.count_nonzero(flat_targets != ignore_index)), 1)
        if reduction == "none":
            return losses.reshape(targets.shape)
        total = losses.sum(dtype=logits.dtype)
        return total / logits.dtype.type(ctx.count) if reduction == "mean" else total

    @staticmethod
    def backward(ctx, grad):
        logits, targets, lse = ctx.saved_tensors
        if ctx.reduction == "none":
            grad_losses = grad.reshape(-1)
        else:
            scale = ctx.count if ctx.reduction == "mean" else 1
            grad_losses = np.full(targets.shape, grad / scale, dtype=logits.dtype)
        dlogits = K.cross_entropy_backward(logits, targets, lse, grad_losses, ctx.ignore_index)
        return dlogits.reshape(ctx.shape), None, None, None

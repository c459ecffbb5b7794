"""Embedding lookup: rows of a weight matrix picked by integer ids."""

from minigrad.autograd import Function
from minigrad.kernels import K


class Embedding(Function):
    """weight (n, D)[idx (...)] -> (..., D); the backward scatter-adds rows (repeats add up).

    Row lookup W[idx]: the gradient rows are added back into the rows of W that were used (repeated
    ids add up).

    backward: dW = zeros; dW[idx] += g
    saves: the ids and the table size
    """

    @staticmethod
    def forward(ctx, weight, idx):
        ctx.save_for_backward(idx)
        ctx.n = weight.shape[0]
        return weight[idx]

    @staticmethod
    def backward(ctx, grad):
        (idx,) = ctx.saved_tensors
        return K.embedding_backward(idx, grad, ctx.n), None

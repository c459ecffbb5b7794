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


def ids_out_of_range(ids, n):
    """The first five ids (an integer ndarray) outside [0, n), as a list; [] if all are in.

    The one check of token ids: `F.embedding` raises IndexError with them, and a model may
    raise its own error type (the GPT's ValueError for a token outside its vocabulary).
    """
    if ids.size == 0 or (ids.min() >= 0 and ids.max() < n):
        return []
    return ids[(ids < 0) | (ids >= n)][:5].tolist()

"""Break it: ops with a deliberately wrong backward, and what gradcheck says about each.

Each op below has a correct forward and a backward with one classic mistake. gradcheck
compares the backward with central finite differences, (L(x + eps) - L(x - eps)) / 2eps,
element by element, and its message names the input, the element and both values, which
is usually enough to guess the bug. Try to find each bug from the message before reading
the comment; then fix it and watch gradcheck pass.

    python examples/05_break_it.py
"""

import argparse
import sys

import numpy as np

import minigrad as mg


class SigmoidForgotOneMinus(mg.Function):
    """Bug: dy/dx = y instead of y (1 - y)."""

    @staticmethod
    def forward(ctx, x):
        y = 1 / (1 + np.exp(-x))
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx, grad):
        (y,) = ctx.saved_tensors
        return grad * y  # should be grad * y * (1 - y)


class SoftmaxNoCentering(mg.Function):
    """Bug: the softmax Jacobian taken as diag(p), forgetting the - p p^T part."""

    @staticmethod
    def forward(ctx, x):
        e = np.exp(x - x.max(axis=-1, keepdims=True))
        p = e / e.sum(axis=-1, keepdims=True)
        ctx.save_for_backward(p)
        return p

    @staticmethod
    def backward(ctx, grad):
        (p,) = ctx.saved_tensors
        return p * grad  # should be p * (grad - (grad * p).sum(axis=-1, keepdims=True))


class MatMulUntransposed(mg.Function):
    """Bug: dA = g B instead of g B^T (square matrices, so the shapes do not complain)."""

    @staticmethod
    def forward(ctx, a, b):
        ctx.save_for_backward(a, b)
        return a @ b

    @staticmethod
    def backward(ctx, grad):
        a, b = ctx.saved_tensors
        return grad @ b, a.T @ grad  # should be grad @ b.T, a.T @ grad


class MeanForgotCount(mg.Function):
    """Bug: the mean's gradient not divided by the number of elements averaged."""

    @staticmethod
    def forward(ctx, x):
        ctx.shape = x.shape
        return x.mean(axis=-1)

    @staticmethod
    def backward(ctx, grad):
        return np.broadcast_to(grad[..., None], ctx.shape)  # should be / ctx.shape[-1]


class AttentionScoresNoScale(mg.Function):
    """Bug: S = Q K^T / sqrt(d) in forward, but backward forgets the 1/sqrt(d) on dQ."""

    @staticmethod
    def forward(ctx, q, k):
        ctx.save_for_backward(q, k)
        return q @ k.T / np.sqrt(q.shape[-1])

    @staticmethod
    def backward(ctx, grad):
        q, k = ctx.saved_tensors
        scale = 1 / np.sqrt(q.shape[-1])
        return grad @ k, grad.T @ q * scale  # dQ should be grad @ k * scale


BROKEN = [
    (SigmoidForgotOneMinus, 1, "sigmoid: dy/dx = y(1 - y), not y"),
    (SoftmaxNoCentering, 1, "softmax: the Jacobian is diag(p) - p p^T"),
    (MatMulUntransposed, 2, "matmul: dA = g B^T"),
    (MeanForgotCount, 1, "mean: divide by the count"),
    (AttentionScoresNoScale, 2, "scores: the 1/sqrt(d) scales dQ too"),
]


def main(argv=None):
    """Run gradcheck on every broken op and print what it says; returns the number caught."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--fast", action="store_true", help="(no effect: this one is fast)")
    parser.add_argument("--out", default=None, help="(no files are written)")
    parser.parse_args(argv)
    mg.manual_seed(0)
    caught = 0
    for op, n_inputs, lesson in BROKEN:
        inputs = tuple(mg.randn(4, 4, dtype=np.float64, requires_grad=True)
                       for _ in range(n_inputs))
        try:
            mg.gradcheck(op.apply, inputs)
        except mg.GradcheckError as e:
            caught += 1
            print(f"{op.__name__}: caught\n  {e}\n  the bug: {lesson}\n")
        else:
            print(f"{op.__name__}: NOT caught (gradcheck passed)\n")
    print(f"gradcheck caught {caught} of {len(BROKEN)} broken backward rules")
    return 0


if __name__ == "__main__":
    sys.exit(main())

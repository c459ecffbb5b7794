"""Writing a new op: Swish (x * sigmoid(x), "SiLU"), from Function to gradcheck.

An op is one `mg.Function` subclass with `forward(ctx, *arrays)` and `backward(ctx, grad)`
side by side. forward gets ndarrays and saves what backward needs; backward gets dL/dy
(the gradient at the output) and returns dL/dx, one gradient per forward input. Here:

    y = x * s,  s = sigmoid(x)
    dy/dx = s + x * s * (1 - s)          so   dL/dx = g * (s + x s (1 - s))

Then: check it with finite differences (`mg.gradcheck`), test it as minigrad tests its own
ops with `mg.testing.check_op` (forward and backward against a reference, PyTorch's SiLU
when PyTorch is installed and a NumPy function otherwise, gradcheck, broadcasting, float32
and float64), see what that reports for a broken backward, and give `mg.viz.explain` its
entry. In your own project, the check_op call is the body of a test.

    python examples/04_new_op_swish.py
"""

import argparse
import sys

import numpy as np

import minigrad as mg
from minigrad import viz


class Swish(mg.Function):
    """y = x * sigmoid(x)."""

    @staticmethod
    def forward(ctx, x):  # ndarrays in, ndarray out
        s = 1.0 / (1.0 + np.exp(-x))
        ctx.save_for_backward(x, s)  # both are needed by backward; y is not
        return x * s

    @staticmethod
    def backward(ctx, grad):  # grad = dL/dy, same shape as y
        x, s = ctx.saved_tensors
        return grad * (s + x * s * (1.0 - s))


def swish(x):
    """The public function: what a Tensor method or `F.swish` would call."""
    return Swish.apply(x)


class SwishForgotProduct(Swish):
    """A broken backward, to show what the harness reports: the x s (1 - s) term is lost."""

    @staticmethod
    def backward(ctx, grad):
        x, s = ctx.saved_tensors
        return grad * s


def swish_numpy(x):
    """The reference without PyTorch: x * sigmoid(x) on ndarrays."""
    return x / (1.0 + np.exp(-x))


# The shapes to try: the harness draws inputs from [-2, 2] (low=, high= change that).
SHAPES = [(3, 4), (2, 1, 5), ()]


def main(argv=None):
    """Build, check and explain Swish; returns 0."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--fast", action="store_true", help="(no effect: this one is fast)")
    parser.add_argument("--out", default=None, help="(no files are written)")
    parser.parse_args(argv)

    x = mg.tensor([[-3.0, -1.0, 0.0], [0.5, 1.0, 4.0]], dtype=np.float64, requires_grad=True)
    y = swish(x)
    print("x =\n", x.data, "\nswish(x) =\n", y.data.round(4))
    print("graph:", y.grad_fn, "; what it saved:")
    print(viz.explain(y))  # no `backward:` line yet: explain shows the backward's source
    y.sum().backward()
    print("dL/dx for L = sum(swish(x)):\n", x.grad.round(4))

    # Finite differences in float64: raises GradcheckError if backward is wrong.
    ok = mg.gradcheck(Swish.apply, (mg.randn(3, 4, dtype=np.float64, requires_grad=True),))
    print("gradcheck passed:", ok)

    try:
        import torch
    except ImportError:
        reference, ref_name = swish_numpy, "swish_numpy"
        print("(PyTorch not installed: the reference is a NumPy function)")
    else:
        reference, ref_name = torch.nn.functional.silu, "torch.nn.functional.silu"
    # What a test in your project would hold: forward and backward against the reference,
    # gradcheck, broadcasting and both float dtypes, on every shape. Raises OpCheckError.
    mg.testing.check_op(swish, reference, shapes=SHAPES)
    print(f"mg.testing.check_op(swish, {ref_name}, shapes={SHAPES}) passed")
    try:
        mg.testing.check_op(SwishForgotProduct.apply, reference, shapes=SHAPES)
    except mg.testing.OpCheckError as error:
        print("with a broken backward it reports:\n  " + str(error).replace("\n", "\n  "))

    # An op explains itself in its docstring: words, then `backward:` and `saves:` lines.
    Swish.__doc__ = """y = x * sigmoid(x): the product rule on x and s = sigmoid(x).

    backward: dx = g * (s + x * s * (1 - s))
    saves: the input x and s
    """
    print("\nwith its explain entry:\n" + viz.explain(Swish))
    return 0


if __name__ == "__main__":
    sys.exit(main())

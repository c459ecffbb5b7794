"""Elementwise ops: arithmetic, unary math, comparisons, where and masked_fill.

Binary ops return their gradients in the broadcast shape of the output; the engine sums
them back to each input's shape.
"""

import numpy as np

from minigrad.autograd import Function
from minigrad.kernels import K
from minigrad.ops._util import (
    as_tensor,
    broadcast_shapes,
    check_choice,
    constant,
    operands,
    shape_of,
)
from minigrad.tensor import Tensor


class Add(Function):
    """Sum: both inputs receive the gradient unchanged (summed over broadcast axes).

    backward: da = g, db = g
    saves: nothing
    """

    @staticmethod
    def forward(ctx, a, b):
        return a + b

    @staticmethod
    def backward(ctx, grad):
        return grad, grad


class Sub(Function):
    """Difference: a gets g, b gets -g.

    backward: da = g, db = -g
    saves: nothing
    """

    @staticmethod
    def forward(ctx, a, b):
        return a - b

    @staticmethod
    def backward(ctx, grad):
        return grad, -grad if ctx.needs_input_grad[1] else None


class Mul(Function):
    """Product: each input's gradient is g times the other input.

    backward: da = g * b, db = g * a
    saves: both inputs a, b
    """

    @staticmethod
    def forward(ctx, a, b):
        ctx.save_for_backward(a, b)
        return a * b

    @staticmethod
    def backward(ctx, grad):
        a, b = ctx.saved_tensors
        da = grad * b if ctx.needs_input_grad[0] else None
        db = grad * a if ctx.needs_input_grad[1] else None
        return da, db


class Div(Function):
    """Quotient y = a / b.

    backward: da = g / b, db = -g * a / b^2
    saves: both inputs a, b
    """

    @staticmethod
    def forward(ctx, a, b):
        ctx.save_for_backward(a, b)
        return a / b

    @staticmethod
    def backward(ctx, grad):
        a, b = ctx.saved_tensors
        da = grad / b if ctx.needs_input_grad[0] else None
        db = -grad * a / (b * b) if ctx.needs_input_grad[1] else None
        return da, db


class Pow(Function):
    """Power y = x^p.

    backward: dx = g * p * x^(p-1), dp = g * y * log(x)
    saves: x, the exponent and y
    """

    @staticmethod
    def forward(ctx, x, exponent):
        y = x**exponent
        ctx.save_for_backward(x, exponent, y)
        return y

    @staticmethod
    def backward(ctx, grad):
        x, exponent, y = ctx.saved_tensors
        dx = grad * exponent * x ** (exponent - 1) if ctx.needs_input_grad[0] else None
        de = None
        if ctx.needs_input_grad[1]:
            # d(x^e)/de = x^e log x; taken as 0 where x == 0 (the limit for e > 0), as PyTorch.
            with np.errstate(divide="ignore", invalid="ignore"):
                de = np.where(x == 0, 0, grad * y * np.log(np.where(x == 0, 1, x)))
        return dx, de


class Neg(Function):
    """Negation flips the gradient's sign.

    backward: dx = -g
    saves: nothing
    """

    @staticmethod
    def forward(ctx, x):
        return -x

    @staticmethod
    def backward(ctx, grad):
        return -grad


class Exp(Function):
    """y = exp(x) is its own derivative, so backward reuses the output.

    backward: dx = g * y
    saves: the output y
    """

    @staticmethod
    def forward(ctx, x):
        y = np.exp(x)
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx, grad):
        (y,) = ctx.saved_tensors
        return grad * y


class Log(Function):
    """y = log(x).

    backward: dx = g / x
    saves: the input x
    """

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.log(x)

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        return grad / x


class Sqrt(Function):
    """y = sqrt(x).

    backward: dx = g / (2 y)
    saves: the output y
    """

    @staticmethod
    def forward(ctx, x):
        with np.errstate(invalid="ignore"):
            y = np.sqrt(x)
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx, grad):
        (y,) = ctx.saved_tensors
        with np.errstate(divide="ignore"):
            return grad / (2 * y)


class Abs(Function):
    """y = |x|: the gradient's sign follows x (0 at 0).

    backward: dx = g * sign(x)
    saves: the input x
    """

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return np.abs(x)

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        return grad * np.sign(x)


class Tanh(Function):
    """y = tanh(x).

    backward: dx = g * (1 - y^2)
    saves: the output y
    """

    @staticmethod
    def forward(ctx, x):
        y = np.tanh(x)
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx, grad):
        (y,) = ctx.saved_tensors
        return grad * (1 - y * y)


class Sigmoid(Function):
    """y = 1 / (1 + exp(-x)).

    backward: dx = g * y * (1 - y)
    saves: the output y
    """

    @staticmethod
    def forward(ctx, x):
        # exp of a negative argument only, so large |x| neither overflows nor warns.
        e = np.exp(-np.abs(x))
        y = np.where(x >= 0, 1 / (1 + e), e / (1 + e))
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx, grad):
        (y,) = ctx.saved_tensors
        return grad * y * (1 - y)


class ReLU(Function):
    """y = max(x, 0): the gradient passes where x > 0 and stops elsewhere.

    backward: dx = g * (x > 0)
    saves: the input x
    """

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return np.maximum(x, 0)

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        return grad * (x > 0)


GELU_APPROXIMATIONS = ("none", "tanh")  # exact, or the tanh approximation


class GELU(Function):
    """x * Phi(x), exact (erf) or with PyTorch's tanh approximation.

    y = x * Phi(x) (Phi = standard normal CDF, or its tanh approximation).

    backward: dx = g * (Phi(x) + x * phi(x))
    saves: the input x and the approximation
    """

    @staticmethod
    def forward(ctx, x, approximate):
        ctx.save_for_backward(x)
        ctx.approximate = approximate
        return K.gelu(x, approximate)

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        return K.gelu_backward(x, grad, ctx.approximate), None


class Maximum(Function):
    """Elementwise max (or min, with `np.minimum`): the larger input takes the gradient, and
    on ties each takes half, as PyTorch.

    Elementwise max: the larger input takes the gradient, ties split it.

    backward: da = g * [a > b] (+ g/2 on ties), db = the rest
    saves: both inputs
    """

    pick = staticmethod(np.maximum)

    @classmethod
    def forward(cls, ctx, a, b):
        y = cls.pick(a, b)
        ctx.save_for_backward(a, b, y)
        return y

    @staticmethod
    def backward(ctx, grad):
        a, b, y = ctx.saved_tensors
        share = np.where(a == b, 0.5, (a == y).astype(grad.dtype))  # a's part of the gradient
        da = grad * share if ctx.needs_input_grad[0] else None
        db = grad * (1 - share) if ctx.needs_input_grad[1] else None
        return da, db


class Minimum(Maximum):
    """Elementwise min: the smaller input takes the gradient, ties split it.

    backward: da = g * [a < b] (+ g/2 on ties), db = the rest
    saves: both inputs
    """

    pick = staticmethod(np.minimum)


class Clip(Function):
    """Clamp to [low, high]: the gradient passes inside the range only.

    backward: dx = g * [low <= x <= high]
    saves: the input x and the bounds
    """

    @staticmethod
    def forward(ctx, x, low, high):
        ctx.save_for_backward(x)
        ctx.low, ctx.high = low, high
        return np.clip(x, low, high)

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        # The gradient passes where x is inside [low, high], bounds included, as PyTorch.
        inside = np.ones(x.shape, dtype=bool)
        if ctx.low is not None:
            inside &= x >= ctx.low
        if ctx.high is not None:
            inside &= x <= ctx.high
        return grad * inside, None, None


class Where(Function):
    """Select a or b by cond: each gets the gradient where it was chosen.

    backward: da = g * cond, db = g * (1 - cond)
    saves: the condition
    """

    @staticmethod
    def forward(ctx, cond, a, b):
        ctx.save_for_backward(cond)
        return np.where(cond, a, b)

    @staticmethod
    def backward(ctx, grad):
        (cond,) = ctx.saved_tensors
        da = np.where(cond, grad, 0) if ctx.needs_input_grad[1] else None
        db = np.where(cond, 0, grad) if ctx.needs_input_grad[2] else None
        return None, da, db


class MaskedFill(Function):
    """Masked entries were replaced by a constant (-inf for attention masks), so they get no
    gradient: this is what stops the future leaking back.

    backward: dx = g * (1 - mask)
    saves: the mask
    """

    @staticmethod
    def forward(ctx, x, mask, value):
        ctx.save_for_backward(mask)
        return np.where(mask, np.asarray(value, dtype=x.dtype), x)

    @staticmethod
    def backward(ctx, grad):
        (mask,) = ctx.saved_tensors
        return np.where(mask, 0, grad), None, None


class AsType(Function):
    """A dtype cast: the gradient is cast back to the input's dtype.

    backward: dx = g.astype(x.dtype)
    saves: nothing
    """

    @staticmethod
    def forward(ctx, x, dtype):
        return x.astype(dtype)

    @staticmethod
    def backward(ctx, grad):
        return grad, None  # the engine casts it back to the input's dtype


# ----- public functions ------------------------------------------------------------------
def _binary(fn, name, a, b):
    if not (isinstance(a, Tensor) and isinstance(b, Tensor)):
        a, b = operands(a, b)
    try:
        return fn.apply(a, b)
    except ValueError:
        # Name the op and the shapes instead of NumPy's broadcasting message.
        broadcast_shapes(name, shape_of(a), shape_of(b))
        raise


def add(a, b):
    """a + b with broadcasting."""
    return _binary(Add, "add", a, b)


def sub(a, b):
    """a - b with broadcasting."""
    return _binary(Sub, "sub", a, b)


def mul(a, b):
    """a * b with broadcasting."""
    return _binary(Mul, "mul", a, b)


def div(a, b):
    """a / b with broadcasting."""
    return _binary(Div, "div", a, b)


def pow(x, exponent):
    """x ** exponent; the exponent may be a number or a tensor."""
    return _binary(Pow, "pow", x, exponent)


def maximum(a, b):
    """Elementwise maximum; ties share the gradient evenly."""
    return _binary(Maximum, "maximum", a, b)


def minimum(a, b):
    """Elementwise minimum; ties share the gradient evenly."""
    return _binary(Minimum, "minimum", a, b)


def neg(x):
    """-x."""
    return Neg.apply(x)


def exp(x):
    """e ** x."""
    return Exp.apply(x)


def log(x):
    """Natural logarithm."""
    return Log.apply(x)


def sqrt(x):
    """Square root."""
    return Sqrt.apply(x)


def abs(x):
    """Absolute value (gradient 0 at 0)."""
    return Abs.apply(x)


def tanh(x):
    """Hyperbolic tangent."""
    return Tanh.apply(x)


def sigmoid(x):
    """1 / (1 + e ** -x), computed without overflow."""
    return Sigmoid.apply(x)


def relu(x):
    """max(x, 0)."""
    return ReLU.apply(x)


def gelu(x, approximate="none"):
    """Gaussian error linear unit: exact ('none') or tanh approximation ('tanh')."""
    check_choice("gelu", "approximate", approximate, GELU_APPROXIMATIONS)
    return GELU.apply(as_tensor(x), approximate)


def clip(x, min=None, max=None):
    """Limit x to [min, max]; either bound may be None."""
    if min is None and max is None:
        raise ValueError("clip: give at least one of min and max")
    return Clip.apply(as_tensor(x), min, max)


def where(cond, a, b):
    """Elements of a where cond is True, else of b (cond is not differentiated)."""
    cond = np.asarray(cond.data if isinstance(cond, Tensor) else cond)
    if cond.dtype != bool:
        raise TypeError(f"where: cond must be a bool tensor, got dtype {cond.dtype}")
    like = a if isinstance(a, Tensor) else b if isinstance(b, Tensor) else None
    a, b = constant(a, like), constant(b, like)
    if not isinstance(a, Tensor) and not isinstance(b, Tensor):
        a = Tensor(a)
    broadcast_shapes("where", cond.shape, shape_of(a), shape_of(b))
    return Where.apply(cond, a, b)


def masked_fill(x, mask, value):
    """x with `value` where mask is True (mask broadcasts against x)."""
    mask = np.asarray(mask.data if isinstance(mask, Tensor) else mask)
    if mask.dtype != bool:
        raise TypeError(f"masked_fill: mask must be a bool tensor, got dtype {mask.dtype}")
    x = as_tensor(x)
    out_shape = broadcast_shapes("masked_fill", x.shape, mask.shape)
    if out_shape != x.shape:
        raise ValueError(f"masked_fill: mask of shape {mask.shape} does not broadcast to the "
                         f"tensor's shape {x.shape}")
    return MaskedFill.apply(x, mask, value)


def astype(x, dtype):
    """x converted to dtype; differentiable between floating dtypes."""
    return AsType.apply(as_tensor(x), np.dtype(dtype))


def _compare(fn, a, b):
    a, b = operands(a, b)
    a = a.data if isinstance(a, Tensor) else a
    b = b.data if isinstance(b, Tensor) else b
    return Tensor(fn(a, b))


def lt(a, b):
    """a < b as a bool tensor (no gradient)."""
    return _compare(np.less, a, b)


def le(a, b):
    """a <= b as a bool tensor (no gradient)."""
    return _compare(np.less_equal, a, b)


def gt(a, b):
    """a > b as a bool tensor (no gradient)."""
    return _compare(np.greater, a, b)


def ge(a, b):
    """a >= b as a bool tensor (no gradient)."""
    return _compare(np.greater_equal, a, b)


def eq(a, b):
    """a == b as a bool tensor (no gradient)."""
    return _compare(np.equal, a, b)


def ne(a, b):
    """a != b as a bool tensor (no gradient)."""
    return _compare(np.not_equal, a, b)

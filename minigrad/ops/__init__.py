"""Every differentiable op, one Function each, grouped by family.

The public functions here are also Tensor methods (tensor.py) and live in `minigrad` and
`minigrad.functional`.
"""

from minigrad.ops.elementwise import (
    abs,
    add,
    astype,
    clip,
    div,
    eq,
    exp,
    ge,
    gelu,
    gt,
    le,
    log,
    lt,
    masked_fill,
    maximum,
    minimum,
    mul,
    ne,
    neg,
    pow,
    relu,
    sigmoid,
    sqrt,
    sub,
    tanh,
    where,
)
from minigrad.ops.matmul import matmul
from minigrad.ops.reduce import argmax, logsumexp, max, mean, min, sum, var
from minigrad.ops.shape import (
    cat,
    chunk,
    expand,
    flatten,
    getitem,
    permute,
    reshape,
    split,
    squeeze,
    stack,
    swapaxes,
    transpose,
    unsqueeze,
    view,
)
from minigrad.ops.softmax import log_softmax, softmax

__all__ = [
    "abs", "add", "argmax", "astype", "cat", "chunk", "clip", "div", "eq", "exp", "expand",
    "flatten", "ge", "gelu", "getitem", "gt", "le", "log", "log_softmax", "logsumexp", "lt",
    "masked_fill", "matmul", "max", "maximum", "mean", "min", "minimum", "mul", "ne", "neg",
    "permute", "pow", "relu", "reshape", "sigmoid", "softmax", "split", "sqrt", "squeeze",
    "stack", "sub", "sum", "swapaxes", "tanh", "transpose", "unsqueeze", "var", "view", "where",
]

"""Shape ops: reshape, permute, expand, indexing, cat, stack, and the composites on them."""

import math

import numpy as np

from minigrad.autograd import Function, IndexedGrad
from minigrad.ops._util import as_tensor, normalize_axis, shape_arg
from minigrad.tensor import Tensor


class Identity(Function):
    """Returns its input: gives a tensor a node of its own (e.g. to label it for study).

    Passes the gradient through unchanged; exists to give a tensor its own labelled node (q, k, v in
    study mode).

    backward: dx = g
    saves: nothing
    """

    @staticmethod
    def forward(ctx, x):
        return x

    @staticmethod
    def backward(ctx, grad):
        return grad


class Reshape(Function):
    """Same numbers, new shape: the gradient is reshaped back.

    backward: dx = g.reshape(x.shape)
    saves: the input shape
    """

    @staticmethod
    def forward(ctx, x, shape):
        ctx.shape = x.shape
        return x.reshape(shape)

    @staticmethod
    def backward(ctx, grad):
        return grad.reshape(ctx.shape), None


class Permute(Function):
    """Axes reordered: the gradient gets the inverse permutation.

    backward: dx = g.transpose(argsort(axes))
    saves: the axes
    """

    @staticmethod
    def forward(ctx, x, axes):
        ctx.axes = axes
        return np.transpose(x, axes)

    @staticmethod
    def backward(ctx, grad):
        return np.transpose(grad, np.argsort(ctx.axes)), None


class Expand(Function):
    """A broadcast view: every copy's gradient adds up in the original element (the engine's
    unbroadcast sums them).

    backward: dx = sum of g over broadcast axes
    saves: nothing
    """

    @staticmethod
    def forward(ctx, x, shape):
        return np.broadcast_to(x, shape)

    @staticmethod
    def backward(ctx, grad):
        return grad, None  # the engine sums the broadcast dims back


class GetItem(Function):
    """Indexing picks elements; the gradient goes back to where they came from, zeros elsewhere;
    repeated indices accumulate.

    backward: dx = zeros(x.shape); dx[index] += g
        (basic indexing returns just (index, g): the engine adds g into dx[index], so the
        pieces of a split share one dx)
    saves: input shape, dtype and the index
    """

    @staticmethod
    def forward(ctx, x, index, advanced):
        ctx.shape, ctx.dtype, ctx.index, ctx.advanced = x.shape, x.dtype, index, advanced
        return x[index]

    @staticmethod
    def backward(ctx, grad):
        if not ctx.advanced:
            return IndexedGrad(ctx.index, grad), None, None
        dx = np.zeros(ctx.shape, dtype=ctx.dtype)
        np.add.at(dx, ctx.index, grad)  # repeated indices accumulate
        return dx, None, None


class Cat(Function):
    """Concatenation: the gradient is cut into the pieces' sizes.

    backward: dx_i = g[bounds_i : bounds_i+1] along axis
    saves: the axis and the cut points
    """

    @staticmethod
    def forward(ctx, *arrays, axis):
        ctx.axis = axis
        ctx.bounds = np.cumsum([a.shape[axis] for a in arrays])[:-1]
        return np.concatenate(arrays, axis=axis)

    @staticmethod
    def backward(ctx, grad):
        return tuple(np.split(grad, ctx.bounds, axis=ctx.axis))


class Stack(Function):
    """Stacking: each input gets its slice of the gradient.

    backward: dx_i = g[..., i, ...] along axis
    saves: the axis
    """

    @staticmethod
    def forward(ctx, *arrays, axis):
        ctx.axis = axis
        return np.stack(arrays, axis=axis)

    @staticmethod
    def backward(ctx, grad):
        return tuple(np.moveaxis(grad, ctx.axis, 0))


# ----- public functions ------------------------------------------------------------------
def reshape(x, *shape):
    """The same elements in a new shape; one dim may be -1."""
    x = as_tensor(x)
    shape = shape_arg("reshape", shape, lowest=-1)
    known = math.prod(s for s in shape if s != -1)
    if shape.count(-1) > 1:
        bad = True
    elif -1 in shape:
        bad = known == 0 or x.size % known != 0
    else:
        bad = known != x.size
    if bad:
        raise ValueError(f"reshape: cannot reshape a tensor of shape {x.shape} "
                         f"({x.size} elements) into shape {shape}")
    return Reshape.apply(x, shape)


def view(x, *shape):
    """Same as reshape (minigrad has no separate storage views)."""
    return reshape(x, *shape)


def permute(x, *axes):
    """Reorder the axes: permute(x, 2, 0, 1) or permute(x, (2, 0, 1))."""
    x = as_tensor(x)
    axes = shape_arg("permute", axes, lowest=None)
    if sorted(normalize_axis("permute", a, x.ndim) for a in axes) != list(range(x.ndim)):
        raise ValueError(f"permute: axes {axes} are not a permutation of the "
                         f"{x.ndim} dims of a tensor of shape {x.shape}")
    return Permute.apply(x, tuple(normalize_axis("permute", a, x.ndim) for a in axes))


def transpose(x, axis0=-2, axis1=-1):
    """Swap two axes (the last two by default)."""
    x = as_tensor(x)
    axes = list(range(x.ndim))
    a, b = normalize_axis("transpose", axis0, x.ndim), normalize_axis("transpose", axis1, x.ndim)
    axes[a], axes[b] = axes[b], axes[a]
    return Permute.apply(x, tuple(axes))


def swapaxes(x, axis0, axis1):
    """Swap two axes (NumPy's name for transpose)."""
    return transpose(x, axis0, axis1)


def squeeze(x, axis=None):
    """Drop dims of size 1 (all of them, or the given axis/axes)."""
    x = as_tensor(x)
    if axis is None:
        axes = [a for a, n in enumerate(x.shape) if n == 1]
    else:
        axes = [normalize_axis("squeeze", a, x.ndim)
                for a in (axis if isinstance(axis, tuple | list) else (axis,))]
        for a in axes:
            if x.shape[a] != 1:
                raise ValueError(f"squeeze: axis {a} has size {x.shape[a]}, not 1, "
                                 f"in a tensor of shape {x.shape}")
    return Reshape.apply(x, tuple(n for a, n in enumerate(x.shape) if a not in axes))


def unsqueeze(x, axis):
    """Insert a dim of size 1 at `axis` (negative axes count from the new end)."""
    x = as_tensor(x)
    axis = normalize_axis("unsqueeze", axis, x.ndim + 1)
    return Reshape.apply(x, x.shape[:axis] + (1,) + x.shape[axis:])


def flatten(x, start_axis=0, end_axis=-1):
    """Merge the dims from start_axis to end_axis (inclusive) into one."""
    x = as_tensor(x)
    if x.ndim == 0:
        return Reshape.apply(x, (1,))
    start = normalize_axis("flatten", start_axis, x.ndim)
    end = normalize_axis("flatten", end_axis, x.ndim)
    if start > end:
        raise ValueError(f"flatten: start_axis {start_axis} comes after end_axis {end_axis}")
    merged = math.prod(x.shape[start:end + 1])
    return Reshape.apply(x, x.shape[:start] + (merged,) + x.shape[end + 1:])


def expand(x, *shape):
    """Broadcast to a larger shape without copying; -1 keeps a dim."""
    x = as_tensor(x)
    shape = shape_arg("expand", shape, lowest=-1)
    lead = len(shape) - x.ndim
    if lead < 0:
        raise ValueError(f"expand: shape {shape} has fewer dims than the tensor {x.shape}")
    full = tuple(x.shape[i - lead] if s == -1 and i >= lead else s for i, s in enumerate(shape))
    ok = all(n in (1, s) for n, s in zip(x.shape, full[lead:], strict=True)) and -1 not in full
    if not ok:
        raise ValueError(f"expand: cannot expand a tensor of shape {x.shape} to {shape}")
    return Expand.apply(x, full)


def _index_parts(index):
    """Normalise an index: Tensors to arrays, and whether it uses advanced indexing."""
    parts = index if isinstance(index, tuple) else (index,)
    clean = []
    advanced = False
    for p in parts:
        if isinstance(p, Tensor):
            p = p.data
        if isinstance(p, list):
            p = np.asarray(p)
        if isinstance(p, np.ndarray):
            if p.dtype != bool and not np.issubdtype(p.dtype, np.integer):
                raise IndexError(f"getitem: index arrays must be integer or bool, "
                                 f"got dtype {p.dtype}")
            advanced = True
        elif not (p is None or p is Ellipsis or isinstance(p, int | np.integer | slice)):
            raise IndexError(f"getitem: unsupported index of type {type(p).__name__}")
        clean.append(p)
    return tuple(clean), advanced


def getitem(x, index):
    """x[index] with ints, slices, None, Ellipsis, int arrays and bool masks."""
    x = as_tensor(x)
    index, advanced = _index_parts(index)
    try:
        x.data[index]
    except IndexError as err:
        shown = tuple(p.shape if isinstance(p, np.ndarray) else p for p in index)
        raise IndexError(f"getitem: index {shown} is out of range for a tensor of shape "
                         f"{x.shape} ({err})") from None
    return GetItem.apply(x, index, advanced)


def _check_joinable(op, tensors, axis, same_shape):
    if not tensors:
        raise ValueError(f"{op}: needs at least one tensor")
    tensors = [as_tensor(t) for t in tensors]
    first = tensors[0].shape
    for t in tensors[1:]:
        if t.ndim != len(first):
            raise ValueError(f"{op}: tensors have different numbers of dims: "
                             f"{[u.shape for u in tensors]}")
        differ = [i for i in range(len(first)) if t.shape[i] != first[i]]
        if (same_shape and differ) or (not same_shape and differ not in ([], [axis])):
            raise ValueError(f"{op}: shapes {[u.shape for u in tensors]} do not match "
                             f"{'' if same_shape else f'outside axis {axis}'}".rstrip())
    return tensors


def cat(tensors, axis=0):
    """Join tensors along an existing axis."""
    tensors = list(tensors)
    ndim = as_tensor(tensors[0]).ndim if tensors else 1
    axis = normalize_axis("cat", axis, ndim)
    return Cat.apply(*_check_joinable("cat", tensors, axis, False), axis=axis)


def stack(tensors, axis=0):
    """Join same-shaped tensors along a new axis."""
    tensors = list(tensors)
    ndim = as_tensor(tensors[0]).ndim if tensors else 0
    axis = normalize_axis("stack", axis, ndim + 1)
    return Stack.apply(*_check_joinable("stack", tensors, axis, True), axis=axis)


def split(x, split_size_or_sections, axis=0):
    """Pieces of size `split_size` (the last may be smaller), or of the listed sizes."""
    x = as_tensor(x)
    axis = normalize_axis("split", axis, x.ndim)
    n = x.shape[axis]
    if isinstance(split_size_or_sections, int | np.integer):
        size = int(split_size_or_sections)
        if size <= 0:
            raise ValueError(f"split: split size must be positive, got {size}")
        sizes = [min(size, n - start) for start in range(0, n, size)]
    else:
        sizes = [int(s) for s in split_size_or_sections]
        if sum(sizes) != n or any(s < 0 for s in sizes):
            raise ValueError(f"split: sizes {sizes} do not add up to {n}, the length of "
                             f"axis {axis} of a tensor of shape {x.shape}")
    pieces = []
    start = 0
    for size in sizes:
        index = (slice(None),) * axis + (slice(start, start + size),)
        pieces.append(GetItem.apply(x, index, False))
        start += size
    return pieces


def chunk(x, chunks, axis=0):
    """Split into `chunks` pieces of ceil(len / chunks), as PyTorch (maybe fewer pieces)."""
    x = as_tensor(x)
    if chunks <= 0:
        raise ValueError(f"chunk: number of chunks must be positive, got {chunks}")
    axis = normalize_axis("chunk", axis, x.ndim)
    size = max(math.ceil(x.shape[axis] / chunks), 1)
    return split(x, size, axis)

"""Function, the graph node, and the backward engine.

A differentiable op is a `Function` subclass with two static methods side by side:
`forward(ctx, *arrays)` computes the output from ndarrays, and `backward(ctx, grad)` returns
one gradient per forward input. `Function.apply` runs forward on the inputs' arrays and, when
any input needs a gradient, records a `Node` (which is also the `ctx` that forward saw) as
the output's `grad_fn`.

`backward(tensor)` walks the recorded nodes in reverse topological order, without
recursion, so a 10,000-op chain works. The engine checks what every backward returns (one
gradient per input, each None or an ndarray of the input's shape or of a shape the input
broadcasts to), so a wrong backward is a RuntimeError naming the op, never a wrong gradient.
Gradients may come back in the broadcast shape of the output; the engine sums them back to
each input's shape in one place (`unbroadcast`).
"""

import contextlib
import threading
import traceback
import weakref

import numpy as np

from minigrad.kernels import K


class _State(threading.local):
    """Per-thread switches (as PyTorch's grad mode); the class attributes are the defaults."""

    grad_enabled = True
    anomaly = False
    study = False


_state = _State()


def is_grad_enabled():
    """True unless inside `no_grad()`."""
    return _state.grad_enabled


class _Switch(contextlib.ContextDecorator):
    """Set one per-thread switch for a block (or a decorated call), then restore it."""

    switch = ""
    value = True

    def __enter__(self):
        self._prev = getattr(_state, self.switch)
        setattr(_state, self.switch, self.value)
        return self

    def __exit__(self, *exc):
        setattr(_state, self.switch, self._prev)
        return False


class no_grad(_Switch):
    """Context manager and decorator: ops inside record no graph (as torch.no_grad)."""

    switch, value = "grad_enabled", False


class enable_grad(_Switch):
    """Context manager and decorator: record the graph again inside a `no_grad` block."""

    switch, value = "grad_enabled", True


def is_study_mode():
    """True inside `study_mode()`."""
    return _state.study


class study_mode(_Switch):
    """Build graphs for reading: fused ops run as their labelled composites.

    Inside it, `F.scaled_dot_product_attention` records q, k, v, scores, probabilities and
    output as separate labelled nodes (instead of one fused node), so that `minigrad.viz`
    can show the gradient of each. The numbers are the same either way.
    """

    switch = "study"


def label(tensor, text):
    """Name the node that made `tensor` (shown by minigrad.viz); returns the tensor.

    In study mode the node also keeps the tensor alive, so that its values can be read
    from the graph after the forward pass (e.g. the attention scores).
    """
    if tensor.grad_fn is not None:
        tensor.grad_fn.label = text
        if _state.study:
            tensor.grad_fn._labelled = tensor
    return tensor


class AnomalyError(FloatingPointError):
    """Raised in `detect_anomaly()` by the first op whose forward or backward is not finite."""


def is_anomaly_enabled():
    """True inside `detect_anomaly()`."""
    return _state.anomaly


class detect_anomaly(_Switch):
    """Raise at the first op whose forward output or backward gradient holds NaN or Inf.

    The error names the op and shows where in user code the op was created, so a NaN is
    traced to its source instead of surfacing as a NaN loss many steps later. Slower than
    normal mode (it checks every array and records a stack per op): use it to debug.
    """

    switch = "anomaly"


def _user_frame():
    """The innermost stack frame outside minigrad itself, as 'file:line in func'."""
    for frame in reversed(traceback.extract_stack()[:-2]):
        if "/minigrad/" not in frame.filename.replace("\\", "/"):
            return f"{frame.filename}:{frame.lineno} in {frame.name}"
    return "<unknown>"


def _check_finite(array, op_name, where, created_at):
    if np.issubdtype(array.dtype, np.floating) and not np.all(np.isfinite(array)):
        n_nan = int(np.isnan(array).sum())
        n_inf = int(np.isinf(array).sum())
        raise AnomalyError(
            f"{op_name}: {where} produced {n_nan} NaN and {n_inf} Inf values "
            f"(shape {array.shape}); op created at {created_at}"
        )


class Node:
    """A recorded op: the `ctx` its forward saw, and the `grad_fn` of its output.

    Forward stores what backward needs with `save_for_backward` (or as attributes).
    `needs_input_grad` tells backward which inputs want a gradient. `inputs` holds, for each
    forward argument, the Tensor it came from (None for non-tensor arguments); it is used
    to walk the graph, e.g. by `minigrad.viz`.
    """

    # Class-level defaults keep the per-op cost of making a node low.
    saved_tensors = ()
    label = None
    _inputs = ()
    _out_ref = None
    _out_shape = ()
    _hooks = ()
    _freed = False
    _created_at = None
    _labelled = None

    def __init__(self, fn, needs_input_grad):
        self._fn = fn
        self.needs_input_grad = needs_input_grad

    @property
    def name(self):
        """The op's name, e.g. 'MatMul'."""
        return self._fn.__name__

    @property
    def inputs(self):
        """The tensors this op consumed (None for non-tensor arguments)."""
        return self._inputs

    @property
    def out_shape(self):
        """Shape of the op's output."""
        return self._out_shape

    @property
    def function(self):
        """The Function subclass this node ran, e.g. minigrad.ops.matmul.MatMul."""
        return self._fn

    @property
    def freed(self):
        """True once backward has released what forward saved (unless retain_graph)."""
        return self._freed

    @property
    def output(self):
        """The op's output Tensor while it is alive, else None (the graph keeps no outputs,
        except labelled ones in study mode)."""
        return None if self._out_ref is None else self._out_ref()

    def save_for_backward(self, *arrays):
        """Keep arrays for backward; they are freed after backward unless retain_graph."""
        self.saved_tensors = arrays

    def _free(self):
        # Drop everything forward stored for backward (attributes included), so that the
        # activations of a step are released as soon as its backward is done, even while
        # the loss is still referenced. What remains is the graph's shape.
        kept = ("needs_input_grad", "label")
        for key in [k for k in vars(self) if not k.startswith("_") and k not in kept]:
            delattr(self, key)
        self.saved_tensors = ()
        self._freed = True

    def __repr__(self):
        return f"<{self.name}>" if self.label is None else f"<{self.name} '{self.label}'>"


def _tensor_class():
    # tensor.py imports this module, so the Tensor class is looked up on first use.
    global _Tensor
    if _Tensor is None:
        from minigrad.tensor import Tensor

        _Tensor = Tensor
    return _Tensor


_Tensor = None


class _InputRef:
    """What a node keeps of an input made by another op: its node, shape and dtype.

    Not the tensor itself: its array would stay alive as long as the graph does, although
    only the arrays an op saves for backward are needed (as in PyTorch's graph).
    """

    __slots__ = ("grad_fn", "shape", "dtype", "requires_grad", "grad")

    def __init__(self, tensor):
        self.grad_fn = tensor.grad_fn
        self.shape = tensor.shape
        self.dtype = tensor.dtype
        self.requires_grad = tensor.requires_grad
        self.grad = None

    @property
    def is_leaf(self):
        return False


class Function:
    """Base class of every differentiable op. Subclasses define static forward/backward.

    A subclass's docstring explains its backward for `minigrad.viz.explain`: what backward
    does in words, then a line `backward: <the rule>` (g is the gradient arriving at the
    output) and a line `saves: <what forward saves>`.
    """

    @staticmethod
    def forward(ctx, *args):
        """Compute the output ndarray from the input ndarrays (every subclass defines it)."""
        raise TypeError("a Function subclass must define forward(ctx, *arrays)")

    @staticmethod
    def backward(ctx, grad):
        """Return one gradient per forward input, None where no gradient is needed."""
        raise TypeError("a Function subclass must define backward(ctx, grad)")

    @classmethod
    def apply(cls, *args, **kwargs):
        """Run the op on Tensors (or plain values) and record it in the graph if needed."""
        Tensor = _tensor_class()
        raw = []
        needs = []
        for a in args:
            if isinstance(a, Tensor):
                raw.append(a.data)
                needs.append(a._requires_grad)
            else:
                raw.append(a)
                needs.append(False)
        record = True in needs and _state.grad_enabled
        ctx = Node(cls, tuple(needs))
        out = cls.forward(ctx, *raw, **kwargs)
        if not isinstance(out, np.ndarray):
            out = np.asarray(out)
        result = Tensor._from_op(out, record)
        if _state.anomaly:
            ctx._created_at = _user_frame()
            _check_finite(out, cls.__name__, "forward", ctx._created_at)
        if record:
            ctx._inputs = tuple(
                (a if a.grad_fn is None else _InputRef(a)) if isinstance(a, Tensor) else None
                for a in args)
            ctx._out_ref = weakref.ref(result)
            ctx._out_shape = out.shape
            result.grad_fn = ctx
        return result


def unbroadcast(grad, shape, dtype):
    """Sum `grad` down to `shape` (undoing NumPy broadcasting) and cast it to `dtype`.

    `shape` must broadcast to `grad.shape` (the engine checks that first).
    """
    if grad.shape != shape:
        extra = grad.ndim - len(shape)
        if extra > 0:
            grad = grad.sum(axis=tuple(range(extra)))
        axes = tuple(i for i, n in enumerate(shape) if n == 1 and grad.shape[i] != 1)
        if axes:
            grad = grad.sum(axis=axes, keepdims=True)
    if grad.dtype != dtype:
        grad = grad.astype(dtype)
    return grad


def _plural(n, word):
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def _returned_grads(node, returned):
    """What `node`'s backward returned, as a tuple of one entry per forward input.

    A single input may get a bare array; otherwise backward returns a tuple or a list with
    exactly one entry per input. Anything else is a RuntimeError naming the op.
    """
    if type(returned) is tuple:
        grads = returned
    elif isinstance(returned, tuple | list):
        grads = tuple(returned)
    else:
        grads = (returned,)
    if len(grads) != len(node._inputs):
        raise RuntimeError(
            f"{node.name}.backward returned {_plural(len(grads), 'gradient')} for "
            f"{_plural(len(node._inputs), 'input')}"
        )
    return grads


def _checked_grad(node, i, inp, grad):
    """Gradient `i` that `node`'s backward returned, as an ndarray, once it is checked.

    It must be an ndarray (or a NumPy scalar) of a floating dtype whose shape is input `i`'s,
    or a shape the input's broadcasts to; anything else is a RuntimeError naming the op, the
    input index and both shapes, so that a wrong backward fails at once instead of giving a
    wrong gradient. `inp` is None for an argument that is not a Tensor (no shape to check).
    """
    if isinstance(grad, IndexedGrad):
        return _checked_indexed_grad(node, i, inp, grad)
    if not isinstance(grad, np.ndarray):
        if not isinstance(grad, np.generic):
            raise RuntimeError(
                f"{node.name}.backward: gradient {i} is a {type(grad).__name__}, "
                "not an ndarray or None"
            )
        grad = np.asarray(grad)
    if grad.dtype.kind != "f":
        raise RuntimeError(
            f"{node.name}.backward: gradient {i} has dtype {grad.dtype}, not a floating dtype"
        )
    if inp is None:  # a non-tensor argument: nothing to check it against or to send it to
        return grad
    shape = inp.shape
    if grad.shape != shape and not _broadcasts_to(shape, grad.shape):
        raise RuntimeError(
            f"{node.name}.backward: gradient {i} has shape {grad.shape}, "
            f"input {i} has shape {shape}"
        )
    return grad


def _checked_indexed_grad(node, i, inp, grad):
    """An IndexedGrad, once its values are checked against the input's elements at its index."""
    values = np.asarray(grad.values)
    if values.dtype.kind != "f":
        raise RuntimeError(
            f"{node.name}.backward: gradient {i} has dtype {values.dtype}, not a floating dtype"
        )
    # The shape of inp[index], from a zero-strided stand-in (no memory).
    want = np.broadcast_to(np.empty((), values.dtype), inp.shape)[grad.index].shape
    if values.shape != want:
        raise RuntimeError(
            f"{node.name}.backward: gradient {i} has shape {values.shape} at index "
            f"{grad.index}, input {i}[index] has shape {want}"
        )
    return IndexedGrad(grad.index, values)


def _broadcasts_to(shape, target):
    """True if an array of `shape` broadcasts to `target` (NumPy's rules)."""
    extra = len(target) - len(shape)
    return extra >= 0 and all(
        n == m or n == 1 for n, m in zip(shape, target[extra:], strict=True))


class IndexedGrad:
    """A gradient that is zero except at `index` (basic indexing), where it is `values`.

    GetItem's backward returns one, so that the pieces of a split (q, k and v cut from one
    projection) add their gradients into one array of the input's shape, instead of each
    filling a full-size array of zeros that the engine then sums.
    """

    __slots__ = ("index", "values")

    def __init__(self, index, values):
        self.index = index
        self.values = values

    def dense(self, shape, dtype):
        """The whole gradient: a new array, `values` at `index` and zeros elsewhere."""
        full = K.empty(shape, dtype)
        rest = _rest_of_axis(self.index, shape)
        if rest is None:
            full.fill(0)
        else:
            for part in rest:
                full[part] = 0  # only what the piece leaves (q's gradient: k's and v's columns)
        full[self.index] = self.values
        return full


def _rest_of_axis(index, shape):
    """For an index that cuts one axis with a step-1 slice (a piece of a split): the two
    indexes of what it leaves of that axis; None for any other index."""
    if not isinstance(index, tuple) or not all(isinstance(i, slice) for i in index):
        return None
    cut = [axis for axis, i in enumerate(index) if i != slice(None)]
    if len(cut) != 1 or index[cut[0]].step not in (None, 1):
        return None
    axis = cut[0]
    start, stop, _ = index[axis].indices(shape[axis])
    before = (slice(None),) * axis
    return [before + (slice(0, start),), before + (slice(max(start, stop), None),)]


def graph_nodes(tensor):
    """The nodes of the graph that made `tensor`, each after every node that consumes its
    output (the order backward visits them); [] for a leaf."""
    return [] if tensor.grad_fn is None else _topological_order(tensor.grad_fn)


def _topological_order(root):
    """Nodes reachable from `root`, each after every node that consumes its output."""
    # Iterative depth-first post-order, reversed. A node is marked when it is expanded (not
    # when pushed), so that it is finished only after every node it consumes.
    order = []
    visited = set()
    stack = [(root, False)]
    while stack:
        node, expanded = stack.pop()
        if expanded:
            order.append(node)
            continue
        if id(node) in visited:
            continue
        visited.add(id(node))
        stack.append((node, True))
        for inp in node._inputs:
            parent = None if inp is None else inp.grad_fn
            if parent is not None and id(parent) not in visited:
                stack.append((parent, False))
    order.reverse()
    return order


_observers = []


def add_backward_observer(fn):
    """Call fn(node, grad) for every node during backward (used by minigrad.viz.trace)."""
    _observers.append(fn)


def remove_backward_observer(fn):
    """Stop calling a function given to `add_backward_observer`."""
    _observers.remove(fn)


def _run_hooks(hooks, grad):
    for hook in hooks:
        replaced = hook(grad)
        if replaced is not None:
            grad = np.asarray(replaced)
    return grad


def _accumulate_leaf(tensor, grad):
    grad = _run_hooks(tensor._hooks, grad)
    if tensor.grad is None:
        # Own the memory: grad may be a view of another op's array or a broadcast. A
        # parameter that an optimizer laid out flat gets it in its slot of the flat buffer.
        flat = tensor._flat  # (data view, grad view, unused)
        if flat is not None and flat[2] and tensor.data is flat[0] and grad.shape == flat[1].shape:
            np.copyto(flat[1], grad, casting="unsafe")
            tensor.grad = flat[1]
            tensor._flat = (flat[0], flat[1], False)  # a kept .grad is never overwritten
        else:
            tensor.grad = np.array(grad, dtype=tensor.dtype, copy=True)
    else:
        tensor.grad += grad


def backward(tensor, grad=None, retain_graph=False):
    """Backpropagate from `tensor`, accumulating `.grad` on every leaf that requires it."""
    if not tensor.requires_grad:
        raise RuntimeError(
            "backward: tensor does not require grad and has no grad_fn "
            "(did you create it inside no_grad() or from inputs without requires_grad?)"
        )
    if grad is None:
        if tensor.size != 1:
            raise RuntimeError(
                f"backward: grad can be implicitly created only for scalar outputs; "
                f"got shape {tensor.shape}: pass grad= of that shape"
            )
        grad = np.ones(tensor.shape, dtype=tensor.dtype)
    else:
        grad = np.asarray(grad.data if hasattr(grad, "grad_fn") else grad)
        if grad.shape != tensor.shape:
            raise ValueError(
                f"backward: grad shape {grad.shape} does not match tensor shape {tensor.shape}"
            )
        grad = grad.astype(tensor.dtype, copy=False)
    root = tensor.grad_fn
    if root is None:
        _accumulate_leaf(tensor, grad)
        return
    anomaly = _state.anomaly
    grads = {id(root): grad}
    owned = set()
    for node in _topological_order(root):
        g = grads.pop(id(node), None)
        if g is None:
            continue
        if node._freed:
            raise RuntimeError(
                f"backward: trying to backward through {node.name} a second time; its saved "
                "arrays were freed after the first backward. Pass retain_graph=True to the "
                "first backward if you need to call it twice."
            )
        out = node._out_ref()
        if node._hooks:
            g = _run_hooks(node._hooks, g)
        if out is not None and out._retain:
            out.grad = g.copy() if out.grad is None else out.grad + g
        for observer in _observers:
            observer(node, g)
        input_grads = _returned_grads(node, node._fn.backward(node, g))
        for i, ig in enumerate(input_grads):
            if ig is None:
                continue
            inp = node._inputs[i]
            ig = _checked_grad(node, i, inp, ig)
            if not node.needs_input_grad[i]:
                continue
            parent = inp.grad_fn
            fresh = isinstance(ig, IndexedGrad)
            if fresh:
                if anomaly:
                    _check_finite(ig.values, node.name, "backward", node._created_at)
                if parent is not None and id(parent) in owned:
                    grads[id(parent)][ig.index] += ig.values  # into the array this loop made
                    continue
                ig = ig.dense(inp.shape, inp.dtype)
            else:
                ig = unbroadcast(ig, inp.shape, inp.dtype)
                if anomaly:
                    _check_finite(ig, node.name, "backward", node._created_at)
            if parent is None:
                _accumulate_leaf(inp, ig)
            elif id(parent) in owned:
                grads[id(parent)] += ig  # an array this loop made: add in place
            elif id(parent) in grads:
                # The first gradient may be a view of an op's array: sum into a new one.
                if fresh:
                    ig += grads[id(parent)]
                    grads[id(parent)] = ig
                else:
                    grads[id(parent)] = grads[id(parent)] + ig
                owned.add(id(parent))
            else:
                grads[id(parent)] = ig
                if fresh:
                    owned.add(id(parent))
        if not retain_graph:
            node._free()

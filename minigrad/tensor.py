"""Tensor: an ndarray, its gradient, and the node that made it.

Every operator and method here calls an op from `minigrad.ops`; the Tensor itself holds no
math. Floating data defaults to float32; float64 arrays (or dtype=np.float64) stay float64;
integer and bool data keep their dtype (indices and masks).
"""

import numpy as np

from minigrad import autograd


def _as_array(data, dtype=None):
    """The ndarray for Tensor(data): float32 by default, float64 kept when given as such."""
    if isinstance(data, Tensor):
        data = data.data
    if dtype is not None:
        return np.asarray(data, dtype=dtype)
    was_array = isinstance(data, np.ndarray | np.generic)
    array = np.asarray(data)
    if array.dtype.kind not in "biuf":
        raise TypeError(f"Tensor: needs numbers or bools, got {type(data).__name__} data of "
                        f"dtype {array.dtype}")
    if np.issubdtype(array.dtype, np.floating) and not was_array:
        # Python floats and lists become float32, the default; arrays keep their precision.
        return array.astype(np.float32)
    if array.dtype == np.float16:
        return array.astype(np.float32)
    return array


class Tensor:
    """An n-dimensional array that records the ops applied to it for reverse-mode autograd."""

    # _flat: (data view, grad view, unused) when an optimizer laid the tensor out in its flat
    # buffers (minigrad.optim); backward then writes the gradient into the grad view.
    __slots__ = ("data", "grad", "_requires_grad", "grad_fn", "_hooks", "_retain", "_flat",
                 "__weakref__")
    # Let `ndarray + Tensor` call Tensor.__radd__ instead of NumPy converting the Tensor.
    __array_ufunc__ = None

    def __init__(self, data, requires_grad=False, dtype=None):
        self.data = _as_array(data, dtype)
        self.grad = None
        self.grad_fn = None
        self._hooks = []
        self._retain = False
        self._flat = None
        self._requires_grad = False
        self.requires_grad = requires_grad

    @classmethod
    def _from_op(cls, array, requires_grad):
        # Fast path for op outputs: the array is already final, skip the dtype rules.
        t = cls.__new__(cls)
        t.data = array
        t.grad = None
        t.grad_fn = None
        t._hooks = []
        t._retain = False
        t._flat = None
        t._requires_grad = requires_grad
        return t

    # ----- autograd state -------------------------------------------------------------
    @property
    def requires_grad(self):
        """Whether ops on this tensor are recorded for backward."""
        return self._requires_grad

    @requires_grad.setter
    def requires_grad(self, flag):
        flag = bool(flag)
        if flag and not np.issubdtype(self.data.dtype, np.floating):
            raise TypeError(
                f"requires_grad: only floating tensors can require grad, got dtype {self.dtype}"
            )
        if not flag and self.grad_fn is not None:
            raise RuntimeError("requires_grad: cannot turn off grad on a non-leaf tensor; "
                               "use .detach()")
        self._requires_grad = flag

    def requires_grad_(self, flag=True):
        """Set requires_grad in place and return self."""
        self.requires_grad = flag
        return self

    @property
    def is_leaf(self):
        """True for tensors not made by a recorded op (inputs and parameters)."""
        return self.grad_fn is None

    def backward(self, grad=None, retain_graph=False):
        """Compute gradients of this tensor w.r.t. every leaf that requires grad."""
        autograd.backward(self, grad, retain_graph=retain_graph)

    def retain_grad(self):
        """Keep `.grad` on this non-leaf tensor after backward (leaves always keep it)."""
        if self.grad_fn is None and not self.requires_grad:
            raise RuntimeError("retain_grad: tensor does not require grad")
        self._retain = self.grad_fn is not None
        return self

    def register_hook(self, fn):
        """Call fn(grad) when this tensor's gradient is computed; a returned array replaces it."""
        if not self.requires_grad:
            raise RuntimeError("register_hook: tensor does not require grad")
        if self.grad_fn is None:
            self._hooks.append(fn)
        else:
            self.grad_fn._hooks = [*self.grad_fn._hooks, fn]
        return fn

    def detach(self):
        """A new leaf tensor sharing this data, cut from the graph."""
        return Tensor._from_op(self.data, False)

    def zero_grad(self):
        """Forget the accumulated gradient."""
        self.grad = None

    # ----- array facts ----------------------------------------------------------------
    @property
    def shape(self):
        return self.data.shape

    @property
    def ndim(self):
        return self.data.ndim

    @property
    def dtype(self):
        return self.data.dtype

    @property
    def size(self):
        """Number of elements (NumPy's meaning)."""
        return self.data.size

    def numpy(self):
        """The underlying ndarray (shared, not copied)."""
        return self.data

    def item(self):
        """The value of a one-element tensor as a Python number."""
        if self.data.size != 1:
            raise ValueError(f"item: only one-element tensors convert to a number, "
                             f"got shape {self.shape}")
        return self.data.item()

    def tolist(self):
        return self.data.tolist()

    def astype(self, dtype):
        """A copy with another dtype (differentiable between floating dtypes)."""
        return ops.astype(self, dtype)

    def float(self):
        return self.astype(np.float32)

    def double(self):
        return self.astype(np.float64)

    def __array__(self, dtype=None, copy=None):
        if dtype is not None and dtype != self.data.dtype:
            return self.data.astype(dtype)
        return self.data.copy() if copy else self.data

    def __len__(self):
        if self.data.ndim == 0:
            raise TypeError("len() of a 0-d tensor")
        return len(self.data)

    def __bool__(self):
        if self.data.size != 1:
            raise ValueError(f"bool: the truth value of a tensor of shape {self.shape} "
                             "is ambiguous; use .any() or .all()")
        return bool(self.data)

    def __float__(self):
        return float(self.item())

    def __int__(self):
        return int(self.item())

    def __iter__(self):
        for i in range(len(self)):
            yield self[i]

    def __hash__(self):
        return id(self)

    def __repr__(self):
        body = np.array2string(self.data, separator=", ", prefix="tensor(", precision=4)
        extras = [f"shape={self.shape}", f"dtype={self.dtype}"]
        if self.grad_fn is not None:
            extras.append(f"grad_fn=<{self.grad_fn.name}>")
        elif self.requires_grad:
            extras.append("requires_grad=True")
        return f"tensor({body}, {', '.join(extras)})"

    # ----- operators ------------------------------------------------------------------
    def __add__(self, other):
        return ops.add(self, other)

    def __radd__(self, other):
        return ops.add(other, self)

    def __sub__(self, other):
        return ops.sub(self, other)

    def __rsub__(self, other):
        return ops.sub(other, self)

    def __mul__(self, other):
        return ops.mul(self, other)

    def __rmul__(self, other):
        return ops.mul(other, self)

    def __truediv__(self, other):
        return ops.div(self, other)

    def __rtruediv__(self, other):
        return ops.div(other, self)

    def __pow__(self, other):
        return ops.pow(self, other)

    def __rpow__(self, other):
        return ops.pow(other, self)

    def __matmul__(self, other):
        return ops.matmul(self, other)

    def __rmatmul__(self, other):
        return ops.matmul(other, self)

    def __neg__(self):
        return ops.neg(self)

    def __pos__(self):
        return self

    def __lt__(self, other):
        return ops.lt(self, other)

    def __le__(self, other):
        return ops.le(self, other)

    def __gt__(self, other):
        return ops.gt(self, other)

    def __ge__(self, other):
        return ops.ge(self, other)

    def __eq__(self, other):
        return ops.eq(self, other)

    def __ne__(self, other):
        return ops.ne(self, other)

    def __getitem__(self, index):
        return ops.getitem(self, index)

    # ----- elementwise ----------------------------------------------------------------
    def exp(self):
        return ops.exp(self)

    def log(self):
        return ops.log(self)

    def sqrt(self):
        return ops.sqrt(self)

    def abs(self):
        return ops.abs(self)

    def tanh(self):
        return ops.tanh(self)

    def sigmoid(self):
        return ops.sigmoid(self)

    def relu(self):
        return ops.relu(self)

    def gelu(self, approximate="none"):
        return ops.gelu(self, approximate)

    def pow(self, exponent):
        return ops.pow(self, exponent)

    def maximum(self, other):
        return ops.maximum(self, other)

    def minimum(self, other):
        return ops.minimum(self, other)

    def clip(self, min=None, max=None):
        return ops.clip(self, min, max)

    def masked_fill(self, mask, value):
        return ops.masked_fill(self, mask, value)

    def softmax(self, axis=-1):
        return ops.softmax(self, axis)

    def log_softmax(self, axis=-1):
        return ops.log_softmax(self, axis)

    # ----- reductions -----------------------------------------------------------------
    def sum(self, axis=None, keepdims=False):
        return ops.sum(self, axis, keepdims)

    def mean(self, axis=None, keepdims=False):
        return ops.mean(self, axis, keepdims)

    def max(self, axis=None, keepdims=False):
        return ops.max(self, axis, keepdims)

    def min(self, axis=None, keepdims=False):
        return ops.min(self, axis, keepdims)

    def var(self, axis=None, keepdims=False, ddof=0):
        return ops.var(self, axis, keepdims, ddof)

    def logsumexp(self, axis=None, keepdims=False):
        return ops.logsumexp(self, axis, keepdims)

    def argmax(self, axis=None, keepdims=False):
        return ops.argmax(self, axis, keepdims)

    def any(self, axis=None, keepdims=False):
        return Tensor(self.data.any(axis=axis, keepdims=keepdims))

    def all(self, axis=None, keepdims=False):
        return Tensor(self.data.all(axis=axis, keepdims=keepdims))

    # ----- shape ----------------------------------------------------------------------
    def reshape(self, *shape):
        return ops.reshape(self, *shape)

    def view(self, *shape):
        return ops.view(self, *shape)

    def transpose(self, axis0=-2, axis1=-1):
        return ops.transpose(self, axis0, axis1)

    def swapaxes(self, axis0, axis1):
        return ops.swapaxes(self, axis0, axis1)

    def permute(self, *axes):
        return ops.permute(self, *axes)

    @property
    def T(self):
        """All axes reversed, as NumPy's .T."""
        return ops.permute(self, tuple(reversed(range(self.ndim))))

    def squeeze(self, axis=None):
        return ops.squeeze(self, axis)

    def unsqueeze(self, axis):
        return ops.unsqueeze(self, axis)

    def expand(self, *shape):
        return ops.expand(self, *shape)

    def flatten(self, start_axis=0, end_axis=-1):
        return ops.flatten(self, start_axis, end_axis)

    def split(self, split_size_or_sections, axis=0):
        return ops.split(self, split_size_or_sections, axis)

    def chunk(self, chunks, axis=0):
        return ops.chunk(self, chunks, axis)


from minigrad import ops  # noqa: E402  (ops import Tensor, so they load after it)

"""The op-test harness: check an op against a reference, for ops written anywhere.

This is what runs minigrad's own table of ops (tests/op_db.py), made public so that an op
written in another project is tested the same way:

    import minigrad as mg, torch
    mg.testing.check_op(swish, torch.nn.functional.silu, shapes=[(3, 4), (2, 1, 3), ()])

`check_op` returns True, or raises `OpCheckError` listing every failed check, one line each
(`swish[1] (2, 1, 3): backward: ...`: the op, the sample's index and what it holds, the
check, what differs). The reference is a function of NumPy arrays or of PyTorch tensors
(which one is inferred: a function that refuses NumPy arrays or returns a torch tensor is
taken for PyTorch; pass `framework=` to say). For an op of several arrays, each entry of
`shapes` is a tuple of shapes: `shapes=[((3, 4), (3, 4)), ((3, 1), (4,))]`. Inputs are drawn
uniformly from [low, high]. Arguments that are not float arrays (indices, masks, axes,
options) are given by `Sample`s instead: `samples=[Sample((x, Const(idx)), {"axis": 1})]`.

Four checks run on every sample, in float64 unless said otherwise:
- forward: every output has the reference's shape and values;
- backward: with a random gradient at the output, every float input's gradient equals the
  reference's (PyTorch's autograd, or central differences of a NumPy reference), in the
  input's shape and dtype;
- gradcheck: `mg.gradcheck`, the op's backward against differences of its own forward;
- dtypes: float32 inputs give float32 outputs and gradients close to the float64 ones,
  float64 inputs give float64 outputs.
Broadcasting is checked by more samples: a sample whose float inputs (two or more) share
one shape yields samples in which one or two of them are broadcast (a size-1 axis, fewer
axes, 0-d); each that the reference accepts runs the four checks (`broadcast=False` turns
them off).

The checks are also separate functions (`check_forward(info, i)`, ...; `CHECKS` holds them)
on an `OpInfo` and a sample index, so that a test suite can make each a test case of its own.
"""

import importlib.util
import math
from dataclasses import dataclass, field

import numpy as np

from minigrad.gradcheck import GradcheckError, central_differences, gradcheck
from minigrad.tensor import Tensor

__all__ = [
    "CHECKS", "Const", "OpCheckError", "OpInfo", "Sample", "check_backward", "check_dtypes",
    "check_forward", "check_gradcheck", "check_op",
]


class OpCheckError(AssertionError):
    """An op disagrees with its reference (or fails on a sample); the message says where."""


@dataclass(frozen=True)
class Const:
    """An argument passed unconverted: to the op as `value`, to the reference as `ref`.

    Without `ref`, a PyTorch reference gets `value` with its ndarrays (also inside a tuple)
    as torch tensors, and a NumPy reference gets `value` itself.
    """

    value: object
    ref: object = None


@dataclass
class Sample:
    """One call of the op: positional `args` and keyword `kwargs`.

    A float ndarray becomes a Tensor that requires grad (and a torch tensor that requires
    grad, or a float64 array, for the reference); an integer or bool ndarray becomes a
    Tensor without grad; a list is converted item by item; `Const` is passed unconverted;
    anything else (numbers, tuples, slices) as is. `ref_kwargs` replaces `kwargs` for the
    reference when it names them differently.
    """

    args: tuple
    kwargs: dict = field(default_factory=dict)
    ref_kwargs: dict | None = None
    note: str = ""


@dataclass
class OpInfo:
    """An op, its reference, its samples and its tolerances: one row of an op table.

    `samples` is a list of `Sample`s or a function of a NumPy Generator returning one;
    `shapes` adds one sample per entry (arrays drawn from [low, high], with `kwargs`).
    `framework` is "torch", "numpy" or None (inferred from the reference on first use).
    `atol`/`rtol` bound the forward, `grad_atol`/`grad_rtol` the backward against PyTorch,
    `gc_atol`/`gc_rtol` gradcheck and the backward against differences of a NumPy
    reference, `f32_atol`/`f32_rtol` the float32 results against the float64 ones.
    """

    name: str
    op: object
    ref: object
    samples: object = None
    shapes: list | None = None
    kwargs: dict = field(default_factory=dict)
    low: float = -2.0
    high: float = 2.0
    framework: str | None = None
    differentiable: bool = True
    broadcast: bool = True
    atol: float = 1e-10
    rtol: float = 1e-7
    grad_atol: float = 1e-9
    grad_rtol: float = 1e-7
    gc_atol: float = 1e-5
    gc_rtol: float = 1e-3
    f32_atol: float = 1e-5
    f32_rtol: float = 1e-4
    _samples: list | None = field(default=None, init=False, repr=False, compare=False)

    def sample_list(self):
        """Every sample of this op, in a fixed order: given, from shapes, then broadcast."""
        if self._samples is None:
            rng = np.random.default_rng(0)
            given = self.samples(rng) if callable(self.samples) else list(self.samples or ())
            made = [Sample(tuple(rng.uniform(self.low, self.high, s) for s in shapes),
                           dict(self.kwargs)) for shapes in _input_shapes(self.shapes or ())]
            samples = given + made
            if self.framework is None and samples:
                self.framework = _infer_framework(self, samples[0])
            if self.broadcast:
                samples += [s for sample in samples for s in _broadcast_variants(sample)
                            if _reference_accepts(self, s)]
            self._samples = samples
        return self._samples

    def describe(self, i):
        """'name[i] what-the-sample-holds', as failures are reported."""
        sample = self.sample_list()[i]
        shapes = ", ".join(str(a.shape) for a in sample.args if isinstance(a, np.ndarray))
        return f"{self.name}[{i}] {sample.note or shapes}"


def _input_shapes(shapes):
    """Each entry of `shapes` as a tuple of input shapes: (3, 4) is one input's shape."""
    out = []
    for entry in shapes:
        entry = tuple(entry)
        one_input = all(isinstance(n, int | np.integer) for n in entry)
        out.append((entry,) if one_input else tuple(tuple(s) for s in entry))
    return out


def _is_float_array(value):
    return isinstance(value, np.ndarray) and value.dtype.kind == "f"


def _broadcast_variants(sample):
    """Samples in which float inputs of one shared shape are broadcast against the others."""
    positions = [k for k, a in enumerate(sample.args) if _is_float_array(a)]
    if len(positions) < 2:
        return []
    shape = sample.args[positions[0]].shape
    if not shape or any(sample.args[k].shape != shape for k in positions):
        return []

    def variant(changes, note):
        args = list(sample.args)
        for k, array in changes.items():
            args[k] = np.array(array)  # a copy, not a view of the sample's array
        return Sample(tuple(args), sample.kwargs, sample.ref_kwargs, f"broadcast: {note}")

    variants = []
    for k in positions:
        a = sample.args[k]
        if shape[-1] != 1:
            variants.append(variant({k: a[..., :1]}, f"input {k} of shape {a[..., :1].shape}"))
        if len(shape) >= 2:
            variants.append(variant({k: a[0]}, f"input {k} of shape {a[0].shape}"))
        variants.append(variant({k: a.reshape(-1)[0]}, f"input {k} 0-d"))
    if len(shape) >= 2 and shape[0] != 1 and shape[-1] != 1:
        first, second = positions[:2]
        a, b = sample.args[first][..., :1], sample.args[second][:1]
        variants.append(variant({first: a, second: b},
                                f"inputs {first} {a.shape} and {second} {b.shape}"))
    return variants


# ----- running the op and the reference ---------------------------------------------------
def _to_mg(value, dtype, leaves=None):
    """`value` as the op gets it; float Tensors made from arrays are added to `leaves`."""
    if isinstance(value, Const):
        return value.value
    if isinstance(value, list):
        return [_to_mg(v, dtype, leaves) for v in value]
    if isinstance(value, np.ndarray):
        if value.dtype.kind != "f":
            return Tensor(value)
        tensor = Tensor(value.astype(dtype), requires_grad=True)
        if leaves is not None:
            leaves.append(tensor)
        return tensor
    return value


def _torch():
    try:
        import torch
    except ImportError:
        raise ImportError("minigrad.testing: this reference needs PyTorch, which is not "
                          "installed") from None
    return torch


def _torch_const(value):
    if isinstance(value, np.ndarray):
        return _torch().from_numpy(value)
    if isinstance(value, tuple):
        return tuple(_torch_const(v) for v in value)
    return value


def _to_ref(value, framework, leaves=None):
    """`value` as the reference gets it (float64); its float inputs are added to `leaves`.

    For a NumPy reference the arrays are copies, which the backward check perturbs.
    """
    if isinstance(value, Const):
        if value.ref is not None:
            return value.ref
        return _torch_const(value.value) if framework == "torch" else value.value
    if isinstance(value, list):
        return [_to_ref(v, framework, leaves) for v in value]
    if not isinstance(value, np.ndarray):
        return value
    is_float = value.dtype.kind == "f"
    value = value.astype(np.float64) if is_float else value.copy()
    if framework == "torch":
        value = _torch().from_numpy(value)
        if is_float:
            value.requires_grad_()
    if is_float and leaves is not None:
        leaves.append(value)
    return value


def _outputs(out):
    return list(out) if isinstance(out, list | tuple) else [out]


def _as_array(out):
    if isinstance(out, Tensor):
        return out.data
    if hasattr(out, "detach"):  # a torch tensor
        return out.detach().numpy()
    return np.asarray(out)


def _ref_call(info, sample, framework):
    """(function of no arguments that calls the reference, its float inputs) for `sample`."""
    leaves = []
    args = [_to_ref(a, framework, leaves) for a in sample.args]
    kwargs = sample.kwargs if sample.ref_kwargs is None else sample.ref_kwargs
    kwargs = {k: _to_ref(v, framework) for k, v in kwargs.items()}
    return (lambda: _outputs(info.ref(*args, **kwargs))), leaves


def _infer_framework(info, sample):
    """"torch" if the reference refuses NumPy arrays or returns a torch tensor, else "numpy"."""
    call, _ = _ref_call(info, sample, "numpy")
    try:
        outs = call()
    except Exception:  # a torch function refuses ndarrays; without torch, show the error
        return "torch" if importlib.util.find_spec("torch") is not None else "numpy"
    return "torch" if any(hasattr(o, "detach") for o in outs) else "numpy"


def _reference_accepts(info, sample):
    """True if the reference runs on `sample` (a derived broadcast sample may not fit it)."""
    try:
        _ref_call(info, sample, info.framework)[0]()
    except Exception:
        return False
    return True


def _run_mg(info, sample, dtype):
    """(outputs, float input Tensors) of the op on `sample` with float inputs of `dtype`."""
    leaves = []
    args = [_to_mg(a, dtype, leaves) for a in sample.args]
    kwargs = {k: _to_mg(v, dtype) for k, v in sample.kwargs.items()}
    return _outputs(info.op(*args, **kwargs)), leaves


def _number(value):
    value = value.item()
    return f"{value:.8g}" if isinstance(value, float) else repr(value)


class _Checking:
    """Turn anything a check raises into an OpCheckError that names the op and sample."""

    def __init__(self, info, i, check):
        self.prefix = f"{info.describe(i)}: {check}"

    def __enter__(self):
        return self

    def __exit__(self, kind, error, tb):
        if error is None or isinstance(error, OpCheckError):
            return False
        if isinstance(error, AssertionError | GradcheckError):
            message = str(error).strip().removeprefix("gradcheck: ")
            raise OpCheckError(f"{self.prefix}: {message}") from error
        if isinstance(error, Exception):
            raise OpCheckError(f"{self.prefix}: raised {kind.__name__}: {error}") from error
        return False

    def close(self, got, expected, what, atol, rtol):
        """Raise unless `got` has `expected`'s shape and values (within atol, rtol)."""
        got, expected = np.asarray(got), np.asarray(expected)
        if got.shape != expected.shape:
            self.fail(f"{what} has shape {got.shape}, the reference's has shape "
                      f"{expected.shape}")
        if got.dtype.kind in "fc" or expected.dtype.kind in "fc":
            bad = ~np.isclose(got, expected, atol=atol, rtol=rtol, equal_nan=True)
            with np.errstate(invalid="ignore"):
                gap = np.where(bad, np.nan_to_num(np.abs(got - expected), nan=np.inf), -1.0)
            bound = f" (atol={atol}, rtol={rtol})"
        else:  # bool or integer results are exact
            bad = got != expected
            gap, bound = bad.astype(float), ""
        if bad.any():
            worst = np.unravel_index(int(np.argmax(gap)), got.shape)
            self.fail(f"{what} differs from the reference at {int(bad.sum())} of {bad.size} "
                      f"elements; the worst at {tuple(int(k) for k in worst)}: "
                      f"{_number(got[worst])} != {_number(expected[worst])}{bound}")

    def fail(self, message):
        raise OpCheckError(f"{self.prefix}: {message}")


# ----- the checks ---------------------------------------------------------------------------
def check_forward(info, i):
    """Sample `i`'s outputs in float64 equal the reference's (shape and values)."""
    sample = info.sample_list()[i]
    with _Checking(info, i, "forward") as check:
        outs, _ = _run_mg(info, sample, np.float64)
        refs = _ref_call(info, sample, info.framework)[0]()
        if len(outs) != len(refs):
            check.fail(f"{len(outs)} outputs, the reference gives {len(refs)}")
        for k, (out, ref) in enumerate(zip(outs, refs, strict=True)):
            check.close(_as_array(out), _as_array(ref), f"output {k}", info.atol, info.rtol)


def _mg_gradients(info, sample, dtype):
    """(gradients of the float inputs, cotangents) of sample's outputs in `dtype`."""
    outs, leaves = _run_mg(info, sample, dtype)
    rng = np.random.default_rng(1)
    cotangents = [rng.standard_normal(o.shape) for o in outs]
    for out, g in zip(outs, cotangents, strict=True):
        out.backward(g.astype(dtype), retain_graph=True)
    return leaves, cotangents


def _reference_gradients(info, sample, cotangents):
    """The reference's gradients of sum(cotangent * output) with respect to its float inputs."""
    call, leaves = _ref_call(info, sample, info.framework)
    refs = call()
    if info.framework == "torch":
        torch = _torch()
        torch.autograd.backward(refs, [torch.from_numpy(g) for g in cotangents])
        return [np.zeros(t.shape) if t.grad is None else t.grad.numpy() for t in leaves]
    # A NumPy reference: central differences. An output that is not finite has no
    # derivative there: it gets weight 0 (as in gradcheck).
    weights = [np.where(np.isfinite(_as_array(r)), g, 0.0)
               for r, g in zip(refs, cotangents, strict=True)]

    def loss():
        return math.fsum(float(np.sum(np.where(w != 0, _as_array(o), 0.0) * w))
                         for o, w in zip(call(), weights, strict=True))

    return [central_differences(loss, a) for a in leaves]


def check_backward(info, i):
    """Sample `i`'s input gradients in float64 equal the reference's, in each input's shape."""
    if not info.differentiable:
        return
    sample = info.sample_list()[i]
    with _Checking(info, i, "backward") as check:
        leaves, cotangents = _mg_gradients(info, sample, np.float64)
        expected = _reference_gradients(info, sample, cotangents)
        if not leaves or len(leaves) != len(expected):
            check.fail(f"{len(leaves)} float inputs, the reference has {len(expected)}")
        numeric = info.framework == "numpy"
        atol = info.gc_atol if numeric else info.grad_atol
        rtol = info.gc_rtol if numeric else info.grad_rtol
        for k, (leaf, ref) in enumerate(zip(leaves, expected, strict=True)):
            if leaf.grad is None:
                check.fail(f"input {k} got no gradient")
            if leaf.grad.dtype != leaf.dtype:
                check.fail(f"input {k}'s gradient is {leaf.grad.dtype}, the input {leaf.dtype}")
            check.close(leaf.grad, ref, f"input {k}'s gradient", atol, rtol)


def check_gradcheck(info, i):
    """`mg.gradcheck` passes on sample `i` (backward against differences of the forward)."""
    if not info.differentiable:
        return
    sample = info.sample_list()[i]
    with _Checking(info, i, "gradcheck"):
        leaves = []
        args = [_to_mg(a, np.float64, leaves) for a in sample.args]
        kwargs = {k: _to_mg(v, np.float64) for k, v in sample.kwargs.items()}

        def fn(*tensors):
            # gradcheck perturbs a flat list of tensors; rebuild list arguments around it.
            it = iter(tensors)
            perturbed = {id(t) for t in leaves}

            def fill(a):
                if isinstance(a, list):
                    return [fill(v) for v in a]
                return next(it) if id(a) in perturbed else a

            return info.op(*[fill(a) for a in args], **kwargs)

        gradcheck(fn, tuple(leaves), atol=info.gc_atol, rtol=info.gc_rtol)


def check_dtypes(info, i):
    """float64 in gives float64 out; float32 in gives float32 outputs (and gradients) close
    to the float64 ones."""
    sample = info.sample_list()[i]
    with _Checking(info, i, "dtypes") as check:
        results = {}
        for dtype in (np.float64, np.float32):
            outs, _ = _run_mg(info, sample, dtype)
            for k, out in enumerate(outs):
                if out.dtype.kind == "f" and out.dtype != dtype:
                    check.fail(f"{np.dtype(dtype).name} in, output {k} is {out.dtype}")
            results[dtype] = outs
        for k, (out32, out64) in enumerate(zip(results[np.float32], results[np.float64],
                                               strict=True)):
            check.close(out32.data, out64.data, f"float32 output {k}", info.f32_atol,
                        info.f32_rtol)
        if info.differentiable:
            leaves32, _ = _mg_gradients(info, sample, np.float32)
            leaves64, _ = _mg_gradients(info, sample, np.float64)
            for k, (leaf32, leaf64) in enumerate(zip(leaves32, leaves64, strict=True)):
                if leaf32.grad is None or leaf32.grad.dtype != np.float32:
                    got = None if leaf32.grad is None else leaf32.grad.dtype
                    check.fail(f"float32 in, input {k}'s gradient is {got}")
                check.close(leaf32.grad, leaf64.grad, f"float32 input {k}'s gradient",
                            info.f32_atol, info.f32_rtol)


CHECKS = (check_forward, check_backward, check_gradcheck, check_dtypes)


def _name_of(op):
    name = getattr(op, "__name__", type(op).__name__)
    owner = getattr(op, "__self__", None)
    return owner.__name__ if name == "apply" and isinstance(owner, type) else name


def check_op(op, reference=None, *, shapes=None, samples=None, name=None, **options):
    """Check `op` against `reference` on every sample; return True or raise OpCheckError.

    `op` is a minigrad callable (e.g. `MyOp.apply` or a function around it) and `reference`
    a NumPy or PyTorch function with the same arguments; or `op` is an `OpInfo` on its own.
    `shapes` (one entry per sample: a shape, or a tuple of shapes for several inputs) and
    `samples` (a list of `Sample`) say what to try; `name` defaults to the op's name;
    `options` are `OpInfo`'s other fields (low, high, kwargs, framework, differentiable,
    broadcast and the tolerances). The error lists every failed check, one per line.
    """
    if isinstance(op, OpInfo):
        if reference is not None or shapes is not None or samples is not None or options:
            raise TypeError("check_op: give an OpInfo alone, or an op and its reference")
        info = op
    else:
        if shapes is None and samples is None:
            raise ValueError("check_op: give shapes=[...] or samples=[...] to try the op on")
        info = OpInfo(name or _name_of(op), op, reference, samples=samples, shapes=shapes,
                      **options)
    failures, total = [], 0
    for i in range(len(info.sample_list())):
        for check in CHECKS:
            total += 1
            try:
                check(info, i)
            except OpCheckError as error:
                failures.append(str(error))
    if failures:
        raise OpCheckError(f"{info.name}: {len(failures)} of {total} checks failed\n"
                           + "\n".join(failures))
    return True

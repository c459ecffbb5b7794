"""Generic op tests driven by tests/op_db.py: every row, every sample, against PyTorch."""

import numpy as np
import pytest
import torch

import minigrad as mg
import minigrad.functional as F
from tests.op_db import OPS, Const

CASES = [(op, i) for op in OPS for i in range(len(op.samples(np.random.default_rng(0))))]
IDS = [f"{op.name}-{i}" for op, i in CASES]


def sample_of(op, i):
    return op.samples(np.random.default_rng(0))[i]


def _to_mg(value, dtype):
    if isinstance(value, Const):
        return value.value
    if isinstance(value, list):
        return [_to_mg(v, dtype) for v in value]
    if isinstance(value, np.ndarray):
        if np.issubdtype(value.dtype, np.floating):
            return mg.Tensor(value.astype(dtype), requires_grad=True)
        return mg.Tensor(value)
    return value


def _torch_const(value):
    if isinstance(value, np.ndarray):
        return torch.from_numpy(value)
    if isinstance(value, tuple):
        return tuple(_torch_const(v) for v in value)
    return value


def _to_torch(value):
    if isinstance(value, Const):
        return value.torch if value.torch is not None else _torch_const(value.value)
    if isinstance(value, list):
        return [_to_torch(v) for v in value]
    if isinstance(value, np.ndarray):
        t = torch.from_numpy(value.copy())
        return t.requires_grad_() if value.dtype.kind == "f" else t
    return value


def _leaves(args):
    """The tensors that require grad among converted arguments, in order."""
    found = []
    for a in args:
        if isinstance(a, list):
            found += _leaves(a)
        elif getattr(a, "requires_grad", False):
            found.append(a)
    return found


def _outputs(out):
    return list(out) if isinstance(out, list | tuple) else [out]


def run_both(op, sample, dtype=np.float64):
    mg_args = [_to_mg(a, dtype) for a in sample.args]
    th_args = [_to_torch(a) for a in sample.args]
    mg_kwargs = {k: _to_mg(v, dtype) for k, v in sample.kwargs.items()}
    th_kwargs = sample.torch_kwargs if sample.torch_kwargs is not None else sample.kwargs
    th_kwargs = {k: _to_torch(v) for k, v in th_kwargs.items()}
    return (op.op(*mg_args, **mg_kwargs), mg_args), (op.ref(*th_args, **th_kwargs), th_args)


@pytest.mark.parametrize("op,i", CASES, ids=IDS)
def test_forward_matches_torch(op, i):
    (mg_out, _), (th_out, _) = run_both(op, sample_of(op, i))
    mg_outs, th_outs = _outputs(mg_out), _outputs(th_out)
    assert len(mg_outs) == len(th_outs)
    for m, t in zip(mg_outs, th_outs):
        expected = t.detach().numpy()
        assert m.shape == expected.shape
        np.testing.assert_allclose(m.data, expected, atol=op.atol, rtol=op.rtol)


@pytest.mark.parametrize("op,i", [c for c in CASES if c[0].differentiable],
                         ids=[n for c, n in zip(CASES, IDS) if c[0].differentiable])
def test_backward_matches_torch(op, i):
    (mg_out, mg_args), (th_out, th_args) = run_both(op, sample_of(op, i))
    rng = np.random.default_rng(1)
    mg_outs, th_outs = _outputs(mg_out), _outputs(th_out)
    cotangents = [rng.standard_normal(m.shape) for m in mg_outs]
    for m, g in zip(mg_outs, cotangents):
        m.backward(g, retain_graph=True)
    torch.autograd.backward(th_outs, [torch.from_numpy(g) for g in cotangents])
    mg_leaves, th_leaves = _leaves(mg_args), _leaves(th_args)
    assert len(mg_leaves) == len(th_leaves) > 0
    for m, t in zip(mg_leaves, th_leaves):
        expected = np.zeros(t.shape) if t.grad is None else t.grad.numpy()
        assert m.grad is not None and m.grad.shape == m.shape
        assert m.grad.dtype == m.dtype
        np.testing.assert_allclose(m.grad, expected, atol=op.grad_atol, rtol=op.grad_rtol)


@pytest.mark.parametrize("op,i", [c for c in CASES if c[0].differentiable],
                         ids=[n for c, n in zip(CASES, IDS) if c[0].differentiable])
def test_gradcheck(op, i):
    sample = sample_of(op, i)
    (_, mg_args), _ = run_both(op, sample)
    kwargs = {k: _to_mg(v, np.float64) for k, v in sample.kwargs.items()}
    # gradcheck perturbs a flat list of tensors; rebuild nested (list) arguments around it.
    flat = _leaves(mg_args)

    def fn(*tensors):
        it = iter(tensors)

        def fill(a):
            if isinstance(a, list):
                return [fill(v) for v in a]
            return next(it) if getattr(a, "requires_grad", False) else a

        return op.op(*[fill(a) for a in mg_args], **kwargs)

    assert mg.gradcheck(fn, tuple(flat), atol=op.gc_atol, rtol=op.gc_rtol)


@pytest.mark.parametrize("op,i", CASES, ids=IDS)
def test_dtypes_float32_default_float64_kept(op, i):
    sample = sample_of(op, i)
    for dtype in (np.float32, np.float64):
        (out, _), _ = run_both(op, sample, dtype)
        for o in _outputs(out):
            if o.dtype.kind == "f":
                assert o.dtype == dtype, f"{op.name}: {dtype.__name__} in, {o.dtype} out"


@pytest.mark.parametrize("op", [o for o in OPS if o.in_namespaces], ids=lambda o: o.name)
def test_op_reachable_everywhere(op):
    assert callable(getattr(mg, op.name))
    assert callable(getattr(F, op.name))
    if op.method is not None:
        assert callable(getattr(mg.Tensor, op.method))


def test_every_public_op_has_a_row():
    from minigrad.ops import __all__ as public
    from tests.op_db import OPS_BY_NAME

    no_grad_helpers = {"argmax", "astype"}
    missing = [name for name in public if name not in OPS_BY_NAME and name not in no_grad_helpers]
    assert missing == []

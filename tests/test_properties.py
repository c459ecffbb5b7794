"""Property tests: ops against PyTorch on random shapes, broadcasting pairs and values.

Shapes include size-0 and size-1 dims; values are drawn by hypothesis. Each test checks the
forward values and the gradient of a random weighted sum against torch in float64.
"""

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import minigrad as mg

SETTINGS = settings(max_examples=40, deadline=None)

shapes = hnp.array_shapes(min_dims=0, max_dims=4, min_side=0, max_side=4)


def values(shape, low=-5.0, high=5.0):
    return hnp.arrays(np.float64, shape, elements=st.floats(low, high, width=64))


def check(mg_fn, torch_fn, *arrays, atol=1e-10):
    """Forward and backward of mg_fn and torch_fn agree on the given float64 arrays."""
    xs = [mg.Tensor(a, requires_grad=True) for a in arrays]
    ts = [torch.tensor(a, requires_grad=True) for a in arrays]
    out = mg_fn(*xs)
    ref = torch_fn(*ts)
    assert out.shape == tuple(ref.shape)
    np.testing.assert_allclose(out.data, ref.detach().numpy(), atol=atol, rtol=1e-9)
    weights = np.random.default_rng(0).standard_normal(out.shape)
    (out * weights).sum().backward()
    (ref * torch.from_numpy(weights)).sum().backward()
    for x, t in zip(xs, ts, strict=True):
        assert x.grad.shape == x.shape
        np.testing.assert_allclose(x.grad, t.grad.numpy(), atol=atol, rtol=1e-9)


BINARY = {
    "add": (mg.add, torch.add),
    "sub": (mg.sub, torch.sub),
    "mul": (mg.mul, torch.mul),
    "maximum": (mg.maximum, torch.maximum),
    "minimum": (mg.minimum, torch.minimum),
}


@SETTINGS
@given(st.sampled_from(sorted(BINARY)),
       hnp.mutually_broadcastable_shapes(num_shapes=2, min_dims=0, max_dims=4, min_side=0,
                                         max_side=3),
       st.data())
def test_binary_ops_broadcast_like_torch(name, shapes_pair, data):
    a = data.draw(values(shapes_pair.input_shapes[0]))
    b = data.draw(values(shapes_pair.input_shapes[1]))
    check(*BINARY[name], a, b)


@SETTINGS
@given(hnp.mutually_broadcastable_shapes(num_shapes=2, min_dims=0, max_dims=3, max_side=3),
       st.data())
def test_division_broadcasts_like_torch(shapes_pair, data):
    a = data.draw(values(shapes_pair.input_shapes[0]))
    b = data.draw(values(shapes_pair.input_shapes[1], 0.5, 4.0))
    check(mg.div, torch.div, a, b, atol=1e-9)


UNARY = {
    "exp": (mg.exp, torch.exp),
    "tanh": (mg.tanh, torch.tanh),
    "sigmoid": (mg.sigmoid, torch.sigmoid),
    "relu": (mg.relu, torch.relu),
    "abs": (mg.abs, torch.abs),
    "neg": (mg.neg, torch.neg),
    "gelu": (mg.gelu, torch.nn.functional.gelu),
}


@SETTINGS
@given(st.sampled_from(sorted(UNARY)), shapes, st.data())
def test_unary_ops_like_torch(name, shape, data):
    check(*UNARY[name], data.draw(values(shape)), atol=1e-9)


@SETTINGS
@given(shapes.filter(lambda s: len(s) > 0), st.data(), st.booleans())
def test_sum_and_mean_over_random_axes(shape, data, keepdims):
    x = data.draw(values(shape))
    axes = data.draw(st.lists(st.integers(0, len(shape) - 1), min_size=1, unique=True))
    axes = tuple(axes)
    check(lambda t: t.sum(axis=axes, keepdims=keepdims),
          lambda t: t.sum(dim=axes, keepdim=keepdims), x)
    if all(shape[a] > 0 for a in axes):
        check(lambda t: t.mean(axis=axes, keepdims=keepdims),
              lambda t: t.mean(dim=axes, keepdim=keepdims), x)


@SETTINGS
@given(hnp.mutually_broadcastable_shapes(num_shapes=2, min_dims=0, max_dims=2, max_side=3),
       st.integers(1, 4), st.integers(1, 4), st.integers(0, 4), st.data())
def test_matmul_with_broadcast_batch_dims(batch, n, k, m, data):
    a = data.draw(values(batch.input_shapes[0] + (n, k)))
    b = data.draw(values(batch.input_shapes[1] + (k, m)))
    check(mg.matmul, torch.matmul, a, b, atol=1e-9)


@SETTINGS
@given(shapes.filter(lambda s: len(s) > 0), st.data(), st.booleans())
def test_softmax_family_on_random_axes(shape, data, log):
    x = data.draw(values(shape, -50.0, 50.0))
    axis = data.draw(st.integers(-len(shape), len(shape) - 1))
    if log:
        check(lambda t: t.log_softmax(axis), lambda t: torch.log_softmax(t, axis), x, atol=1e-9)
    else:
        check(lambda t: t.softmax(axis), lambda t: torch.softmax(t, axis), x, atol=1e-9)


@SETTINGS
@given(shapes.filter(lambda s: 0 < len(s) and all(n > 0 for n in s)), st.data())
def test_reshape_and_permute_round_trip(shape, data):
    x = data.draw(values(shape))
    perm = tuple(data.draw(st.permutations(range(len(shape)))))
    check(lambda t: t.permute(perm).reshape(-1), lambda t: t.permute(perm).reshape(-1), x)


# ----- reductions with a winner or a shift, indexing, joining, layer norm, cross-entropy --

REDUCTIONS = {
    "max": (lambda t, axes, k: t.max(axis=axes, keepdims=k),
            lambda t, axes, k: torch.amax(t, dim=axes, keepdim=k)),  # amax splits ties evenly
    "min": (lambda t, axes, k: t.min(axis=axes, keepdims=k),
            lambda t, axes, k: torch.amin(t, dim=axes, keepdim=k)),
    "var": (lambda t, axes, k: t.var(axis=axes, keepdims=k),
            lambda t, axes, k: torch.var(t, dim=axes, keepdim=k, correction=0)),
    "logsumexp": (lambda t, axes, k: t.logsumexp(axis=axes, keepdims=k),
                  lambda t, axes, k: torch.logsumexp(t, dim=axes, keepdim=k)),
}


# torch warns when an empty tensor (a size-0 dim that is kept) is reduced by var.
@pytest.mark.filterwarnings("ignore:.*degrees of freedom is <= 0:UserWarning")
@SETTINGS
@given(st.sampled_from(sorted(REDUCTIONS)), shapes.filter(lambda s: len(s) > 0), st.data(),
       st.booleans())
def test_max_min_var_logsumexp_over_random_axes(name, shape, data, keepdims):
    # Small integers as values: ties for max/min are common, and must split the gradient.
    x = data.draw(hnp.arrays(np.float64, shape, elements=st.integers(-3, 3).map(float)))
    axes = data.draw(st.lists(st.sampled_from(range(len(shape))), min_size=1, unique=True)
                     .filter(lambda a: all(shape[i] > 0 for i in a)))  # not empty slices
    ours, theirs = REDUCTIONS[name]
    check(lambda t: ours(t, tuple(axes), keepdims), lambda t: theirs(t, tuple(axes), keepdims),
          x, atol=1e-9)


def _basic_index(shape):
    """A tuple of ints and positive-step slices (torch has no negative steps) for a prefix
    of the dims of shape."""
    def one(n):
        bound = st.none() | st.integers(-n - 1, n + 1)
        as_slice = st.builds(slice, bound, bound, st.none() | st.integers(1, 3))
        return as_slice if n == 0 else st.integers(-n, n - 1) | as_slice
    return st.integers(0, len(shape)).flatmap(
        lambda k: st.tuples(*[one(n) for n in shape[:k]]))


@SETTINGS
@given(shapes, st.data())
def test_getitem_basic_indices(shape, data):
    x = data.draw(values(shape))
    index = data.draw(_basic_index(shape))
    check(lambda t: t[index], lambda t: t[index], x)


@SETTINGS
@given(shapes.filter(lambda s: len(s) > 0 and s[0] > 0), st.data())
def test_getitem_int_array_and_bool_mask(shape, data):
    x = data.draw(values(shape))
    # Repeated ids: the gradient must accumulate on them.
    ids = np.array(data.draw(st.lists(st.integers(-shape[0], shape[0] - 1), max_size=6)),
                   dtype=np.int64)
    check(lambda t: t[ids], lambda t: t[torch.from_numpy(ids)], x)
    mask = data.draw(hnp.arrays(np.bool_, shape))
    check(lambda t: t[mask], lambda t: t[torch.from_numpy(mask)], x)


@SETTINGS
@given(shapes.filter(lambda s: len(s) > 0), st.integers(1, 3), st.data())
def test_cat_and_stack(shape, n, data):
    axis = data.draw(st.integers(-len(shape), len(shape) - 1))
    # cat: each piece has its own size (0 included) along the axis.
    pieces = [data.draw(values(shape[:axis % len(shape)] + (data.draw(st.integers(0, 3)),)
                               + shape[axis % len(shape) + 1:])) for _ in range(n)]
    check(lambda *ts: mg.cat(list(ts), axis), lambda *ts: torch.cat(ts, axis), *pieces)
    same = [data.draw(values(shape)) for _ in range(n)]
    stack_axis = data.draw(st.integers(-len(shape) - 1, len(shape)))
    check(lambda *ts: mg.stack(list(ts), stack_axis), lambda *ts: torch.stack(ts, stack_axis),
          *same)


@SETTINGS
@given(hnp.array_shapes(min_dims=1, max_dims=3, min_side=0, max_side=4)
       .filter(lambda s: s[-1] > 0), st.data())
def test_layer_norm_like_torch(shape, data):
    x = data.draw(values(shape))
    w, b = data.draw(values(shape[-1:])), data.draw(values(shape[-1:]))
    C = (shape[-1],)
    check(lambda t, w, b: mg.functional.layer_norm(t, C, w, b),
          lambda t, w, b: torch.nn.functional.layer_norm(t, C, w, b), x, w, b, atol=1e-7)


@SETTINGS
@given(st.integers(1, 5), st.integers(1, 5), st.sampled_from(["mean", "sum", "none"]),
       st.data())
def test_cross_entropy_like_torch(n, c, reduction, data):
    logits = data.draw(values((n, c), -20.0, 20.0))
    targets = np.array(data.draw(st.lists(st.integers(0, c - 1) | st.just(-100),
                                          min_size=n, max_size=n)), dtype=np.int64)
    if reduction == "mean" and np.all(targets == -100):
        targets[0] = 0  # the mean over no targets is 0/0 (NaN) in torch
    check(lambda t: mg.functional.cross_entropy(t, targets, reduction=reduction),
          lambda t: torch.nn.functional.cross_entropy(t, torch.from_numpy(targets),
                                                      reduction=reduction), logits, atol=1e-9)

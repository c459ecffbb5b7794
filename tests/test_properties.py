"""Property tests: ops against PyTorch on random shapes, broadcasting pairs and values.

Shapes include size-0 and size-1 dims; values are drawn by hypothesis. Each test checks the
forward values and the gradient of a random weighted sum against torch in float64.
"""

import numpy as np
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
    for x, t in zip(xs, ts):
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

"""The backward engine and the Tensor's autograd surface."""

import numpy as np
import pytest
import torch

import minigrad as mg


def leaf(*shape, seed=0):
    values = np.random.default_rng(seed).standard_normal(shape)
    return mg.Tensor(values, requires_grad=True)


def test_gradients_accumulate_across_backward_calls():
    x = leaf(3)
    (x * 2).sum().backward()
    (x * 3).sum().backward()
    np.testing.assert_allclose(x.grad, np.full(3, 5.0))
    x.zero_grad()
    assert x.grad is None


def test_diamond_graph_sums_both_paths():
    x = leaf(4)
    a = x.exp()
    b = a * x  # x used twice, a used twice
    loss = (a + b).sum()
    loss.backward()
    expected = np.exp(x.data) + np.exp(x.data) * x.data + np.exp(x.data)
    np.testing.assert_allclose(x.grad, expected)


def test_topological_order_when_a_consumer_is_reached_first():
    # b consumes a, and the root consumes both: a's gradient must be complete (from the
    # root and from b) before a's own backward runs.
    x = leaf(3)
    a = x * 2
    b = a * a
    root = (b + a).sum()
    root.backward()
    np.testing.assert_allclose(x.grad, 2 * (2 * a.data + 1))


def test_deep_chain_needs_no_recursion():
    x = mg.tensor(1.0, dtype=np.float64, requires_grad=True)
    y = x
    for _ in range(10_000):
        y = y * 1.0001 + 0.0
    y.backward()
    assert x.grad == pytest.approx(1.0001**10_000)


def test_second_backward_through_freed_graph_raises():
    x = leaf(3)
    y = (x * x).sum()
    y.backward()
    with pytest.raises(RuntimeError, match="second time.*retain_graph=True"):
        y.backward()


def test_retain_graph_allows_second_backward():
    x = leaf(3)
    y = (x * x).sum()
    y.backward(retain_graph=True)
    y.backward()
    np.testing.assert_allclose(x.grad, 4 * x.data)


def test_non_scalar_backward_needs_grad():
    x = leaf(2, 3)
    with pytest.raises(RuntimeError, match=r"scalar outputs.*\(2, 3\)"):
        (x * 2).backward()
    (x * 2).backward(np.ones((2, 3)))
    np.testing.assert_allclose(x.grad, np.full((2, 3), 2.0))


def test_backward_grad_of_wrong_shape_raises():
    x = leaf(2, 3)
    with pytest.raises(ValueError, match=r"grad shape \(3,\) does not match tensor shape"):
        (x * 2).backward(np.ones(3))


def test_backward_on_tensor_without_grad_raises():
    with pytest.raises(RuntimeError, match="does not require grad"):
        mg.ones(3).sum().backward()


def test_retain_grad_keeps_non_leaf_gradient():
    x = leaf(3)
    h = x * 3
    h.retain_grad()
    k = x * 2  # not retained
    (h * h + k).sum().backward()
    np.testing.assert_allclose(h.grad, 2 * h.data)
    assert k.grad is None


def test_hooks_see_and_replace_gradients():
    x = leaf(3)
    seen = []
    x.register_hook(lambda g: seen.append(g.copy()))
    h = x * 2
    h.register_hook(lambda g: g * 10)  # replaces the gradient flowing into h's op
    h.sum().backward()
    np.testing.assert_allclose(seen[0], np.full(3, 20.0))
    np.testing.assert_allclose(x.grad, np.full(3, 20.0))


def test_no_grad_context_and_decorator():
    x = leaf(3)
    with mg.no_grad():
        y = x * 2
    assert not y.requires_grad and y.grad_fn is None

    @mg.no_grad()
    def f(t):
        return t * 2

    assert f(x).grad_fn is None
    assert (x * 2).grad_fn is not None  # restored after the block
    assert mg.is_grad_enabled()


def test_enable_grad_inside_no_grad():
    x = leaf(3)
    with mg.no_grad(), mg.enable_grad():
        y = x * 2
    assert y.requires_grad


def test_detach_cuts_the_graph():
    x = leaf(3)
    y = (x * 2).detach()
    assert y.is_leaf and not y.requires_grad
    z = (y * x).sum()
    z.backward()
    np.testing.assert_allclose(x.grad, y.data)


def test_needs_input_grad_lets_backward_skip_work():
    calls = []

    class Scale(mg.Function):
        @staticmethod
        def forward(ctx, x, w):
            ctx.save_for_backward(x, w)
            return x * w

        @staticmethod
        def backward(ctx, grad):
            x, w = ctx.saved_tensors
            calls.append(ctx.needs_input_grad)
            dx = grad * w if ctx.needs_input_grad[0] else None
            dw = grad * x if ctx.needs_input_grad[1] else None
            return dx, dw

    x = leaf(3)
    w = mg.Tensor(np.ones(3))
    Scale.apply(x, w).sum().backward()
    assert calls == [(True, False)]
    assert w.grad is None


def test_user_function_as_in_design_doc():
    class Swish(mg.Function):
        @staticmethod
        def forward(ctx, x):
            s = 1 / (1 + np.exp(-x))
            ctx.save_for_backward(x, s)
            return x * s

        @staticmethod
        def backward(ctx, grad):
            x, s = ctx.saved_tensors
            return grad * (s + x * s * (1 - s))

    x = mg.randn(3, 4, dtype=np.float64, requires_grad=True)
    y = Swish.apply(x)
    assert y.grad_fn.name == "Swish"
    assert mg.gradcheck(Swish.apply, (x,))


def test_gradcheck_reports_input_index_and_values():
    class Wrong(mg.Function):
        @staticmethod
        def forward(ctx, x):
            return x * x

        @staticmethod
        def backward(ctx, grad):
            return grad  # should be 2 x grad

    x = mg.Tensor(np.array([1.0, 2.0]), requires_grad=True)
    with pytest.raises(mg.GradcheckError, match=r"input 0, index \(0,\).*analytic.*numeric"):
        mg.gradcheck(Wrong.apply, (x,))


def test_broadcast_gradients_are_summed_to_input_shape():
    a = leaf(3, 1)
    b = leaf(1, 4, seed=1)
    (a * b).sum().backward()
    assert a.grad.shape == (3, 1) and b.grad.shape == (1, 4)
    np.testing.assert_allclose(a.grad[:, 0], np.full(3, b.data.sum()))


def test_gradient_dtype_follows_input_dtype():
    x = mg.randn(3, requires_grad=True)  # float32
    (x * np.float64(2.0)).sum().backward()
    assert x.grad.dtype == np.float32


def test_ndarray_on_the_left_gives_a_tensor():
    x = leaf(3)
    y = np.ones(3) + x
    assert isinstance(y, mg.Tensor) and y.requires_grad
    z = np.ones((2, 3)) @ x
    assert isinstance(z, mg.Tensor) and z.shape == (2,)


def test_matches_torch_on_a_small_network():
    rng = np.random.default_rng(3)
    xv, wv, bv = rng.standard_normal((5, 4)), rng.standard_normal((4, 3)), rng.standard_normal(3)
    x, w, b = (mg.Tensor(v, requires_grad=True) for v in (xv, wv, bv))
    loss = ((x @ w + b).tanh().softmax(axis=0) * np.arange(3)).sum()
    loss.backward()
    tx, tw, tb = (torch.tensor(v, requires_grad=True) for v in (xv, wv, bv))
    tloss = ((tx @ tw + tb).tanh().softmax(dim=0) * torch.arange(3)).sum()
    tloss.backward()
    assert loss.item() == pytest.approx(tloss.item(), rel=1e-12)
    for m, t in ((x, tx), (w, tw), (b, tb)):
        np.testing.assert_allclose(m.grad, t.grad.numpy(), rtol=1e-10, atol=1e-12)


def _op(name, backward):
    """A Function subclass called `name`: forward multiplies its inputs, `backward` is given."""

    def forward(ctx, *arrays):
        ctx.save_for_backward(*arrays)
        out = arrays[0]
        for a in arrays[1:]:
            out = out * a
        return out

    return type(name, (mg.Function,), {"forward": staticmethod(forward),
                                       "backward": staticmethod(backward)})


def test_backward_may_return_a_list_one_entry_per_input():
    def backward(ctx, grad):
        a, b = ctx.saved_tensors
        return [grad * b, grad * a]

    a, b = leaf(3, 4), leaf(3, 4, seed=1)
    _op("ListMul", backward).apply(a, b).sum().backward()
    np.testing.assert_array_equal(a.grad, b.data)
    np.testing.assert_array_equal(b.grad, a.data)


def test_backward_with_too_many_gradients_raises():
    op = _op("TwoForOne", lambda ctx, grad: (grad, grad))
    with pytest.raises(RuntimeError, match=r"^TwoForOne\.backward returned 2 gradients for "
                                           r"1 input$"):
        op.apply(leaf(3)).sum().backward()


def test_backward_with_too_few_gradients_raises():
    op = _op("OneForTwo", lambda ctx, grad: grad * ctx.saved_tensors[1])
    with pytest.raises(RuntimeError, match=r"^OneForTwo\.backward returned 1 gradient for "
                                           r"2 inputs$"):
        op.apply(leaf(3), leaf(3, seed=1)).sum().backward()


def test_backward_returning_a_scalar_for_a_vector_input_raises():
    op = _op("ScalarGrad", lambda ctx, grad: grad.sum())
    with pytest.raises(RuntimeError, match=r"^ScalarGrad\.backward: gradient 0 has shape \(\), "
                                           r"input 0 has shape \(3,\)$"):
        op.apply(leaf(3)).sum().backward()
    op = _op("FloatGrad", lambda ctx, grad: 1.0)
    with pytest.raises(RuntimeError, match=r"^FloatGrad\.backward: gradient 0 is a float, "
                                           r"not an ndarray or None$"):
        op.apply(leaf(3)).sum().backward()


def test_backward_gradient_of_another_shape_raises():
    op = _op("WrongShape", lambda ctx, grad: np.ones((5, 7)))
    with pytest.raises(RuntimeError, match=r"^WrongShape\.backward: gradient 0 has shape "
                                           r"\(5, 7\), input 0 has shape \(3, 4\)$"):
        op.apply(leaf(3, 4)).sum().backward()


def test_backward_gradient_for_an_input_without_grad_is_checked_too():
    op = _op("BadSecond", lambda ctx, grad: (grad, np.ones(2)))
    with pytest.raises(RuntimeError, match=r"^BadSecond\.backward: gradient 1 has shape "
                                           r"\(2,\), input 1 has shape \(3,\)$"):
        op.apply(leaf(3), mg.Tensor(np.ones(3))).sum().backward()


def test_backward_returning_a_string_raises():
    op = _op("Stringly", lambda ctx, grad: "grad")
    with pytest.raises(RuntimeError, match=r"^Stringly\.backward: gradient 0 is a str, "
                                           r"not an ndarray or None$"):
        op.apply(leaf(3)).sum().backward()


def test_backward_gradient_of_an_integer_dtype_raises():
    op = _op("IntGrad", lambda ctx, grad: np.ones(3, dtype=np.int64))
    with pytest.raises(RuntimeError, match=r"^IntGrad\.backward: gradient 0 has dtype int64, "
                                           r"not a floating dtype$"):
        op.apply(leaf(3)).sum().backward()


def test_backward_gradient_in_a_broadcast_shape_is_summed_back():
    # The input (3, 1) was broadcast to (2, 3, 4): its gradient may come back in that shape.
    op = _op("Spread", lambda ctx, grad: np.ones((2, 3, 4)))
    x = leaf(3, 1)
    op.apply(x).sum().backward()
    np.testing.assert_array_equal(x.grad, np.full((3, 1), 8.0))


def test_backward_gradient_of_another_float_dtype_is_cast():
    op = _op("Float64Grad", lambda ctx, grad: np.full(3, 0.1, dtype=np.float64))
    x = mg.randn(3, requires_grad=True)  # float32
    op.apply(x).sum().backward()
    assert x.grad.dtype == np.float32
    np.testing.assert_array_equal(x.grad, np.full(3, 0.1, dtype=np.float32))


def test_backward_numpy_scalar_for_a_0d_input_is_accepted():
    op = _op("Scalar0d", lambda ctx, grad: np.float64(2.0) * grad)
    x = mg.tensor(3.0, dtype=np.float64, requires_grad=True)
    op.apply(x).backward()
    assert x.grad.shape == () and x.grad == 2.0


def _torch_leaf(t):
    return torch.tensor(t.data, requires_grad=True)


@pytest.mark.parametrize("case", ["all pieces", "one piece unused", "piece used twice",
                                  "split and another consumer", "other consumer first",
                                  "split a leaf"])
def test_split_pieces_share_one_gradient(case):
    # GetItem returns its gradient as (index, values); the engine adds the pieces into one
    # array. Every order of arrival must give torch's gradient.
    x = leaf(2, 5, 12, seed=3)
    tx = _torch_leaf(x)

    def loss(fw, x):
        scale = x * 1.5 if case != "split a leaf" else x
        q, k, v = scale.split(4, 2) if fw is mg else scale.split(4, dim=2)
        if case == "all pieces":
            out = (q * k).sum() + v.sum()
        elif case == "one piece unused":
            out = (q * 2).sum() + (q * k).sum()
        elif case == "piece used twice":
            out = (q * q).sum() + (k * v).sum() + q.sum()
        elif case == "split and another consumer":
            out = (q * v).sum() + (scale ** 2).sum()
        elif case == "other consumer first":
            out = (scale ** 2).sum() + (k.exp()).sum()
        else:
            out = (q * k * v).sum()
        return out

    loss(mg, x).backward()
    loss(torch, tx).backward()
    np.testing.assert_allclose(x.grad, tx.grad.numpy(), rtol=1e-12, atol=1e-12)


def test_an_indexed_gradient_of_the_wrong_shape_names_the_op():
    class BadSlice(mg.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            return x[:, :2].copy()

        @staticmethod
        def backward(ctx, grad):
            return mg.autograd.IndexedGrad((slice(None), slice(0, 3)), grad)

    x = leaf(4, 5)
    with pytest.raises(RuntimeError, match=r"BadSlice.backward: gradient 0 has shape \(4, 2\)"):
        BadSlice.apply(x).sum().backward()


@pytest.mark.parametrize("index", [np.s_[:, 1024:2048], np.s_[:, :1024], np.s_[:, 2048:],
                                   np.s_[10:20], np.s_[:, 5:5], np.s_[1:3, ::2],
                                   np.s_[..., 7], np.s_[::3, 100:200]])
def test_an_indexed_gradient_is_zero_outside_its_index_in_reused_memory(index):
    # The engine builds a piece's gradient in memory from the kernels' pool, which holds
    # old values: everything outside the index must still come out exactly zero.
    from minigrad.kernels import K

    shape = (300, 3072)  # 7 MB of float64: from the pool
    for _ in range(3):
        K.empty(shape, np.float64).fill(np.nan)  # dirty the pool's free blocks
    x = leaf(*shape, seed=5)
    tx = _torch_leaf(x)
    (x[index] * 2.0).sum().backward()
    (tx[index] * 2.0).sum().backward()
    np.testing.assert_array_equal(x.grad, tx.grad.numpy())

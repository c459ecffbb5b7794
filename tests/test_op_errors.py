"""Bad input raises an error that names the op and the shapes or values involved."""

import numpy as np
import pytest

import minigrad as mg
import minigrad.functional as F

CASES = [
    # (call, exception type, words the message must contain)
    (lambda: mg.ones(3, 4) @ mg.ones(5, 6), ValueError,
     ["matmul", "(3, 4)", "(5, 6)", "do not align", "4 != 5"]),
    (lambda: mg.ones(2, 3, 4) @ mg.ones(3, 4, 2), ValueError,
     ["matmul", "batch dims", "(2, 3, 4)", "(3, 4, 2)"]),
    (lambda: mg.matmul(mg.ones(3), mg.tensor(2.0)), ValueError, ["matmul", "at least 1 dim"]),
    (lambda: mg.ones(2, 3).reshape(4, 2), ValueError,
     ["reshape", "(2, 3)", "6 elements", "(4, 2)"]),
    (lambda: mg.ones(2, 3).reshape(-1, -1), ValueError, ["reshape", "(-1, -1)"]),
    (lambda: mg.ones(2, 3).sum(axis=2), ValueError, ["sum", "axis 2", "2 dims"]),
    (lambda: mg.ones(2, 3).mean(axis=(0, 0)), ValueError, ["mean", "repeats"]),
    (lambda: mg.ones(2, 3).softmax(axis=-3), ValueError, ["softmax", "axis -3"]),
    (lambda: mg.ones(2, 3)[5], IndexError, ["getitem", "(2, 3)", "out of range"]),
    (lambda: mg.ones(2, 3)[:, np.array([0, 7])], IndexError, ["getitem", "(2, 3)"]),
    (lambda: mg.ones(2, 3)[np.array([0.5])], IndexError, ["getitem", "integer or bool"]),
    (lambda: mg.ones(2, 3) + mg.ones(4), ValueError, ["add", "(2, 3)", "(4,)", "broadcast"]),
    (lambda: mg.ones(2, 3) * mg.ones(3, 2), ValueError, ["mul", "(2, 3)", "(3, 2)"]),
    (lambda: mg.cat([mg.ones(2, 3), mg.ones(2, 4)], axis=0), ValueError,
     ["cat", "(2, 3)", "(2, 4)"]),
    (lambda: mg.stack([mg.ones(2), mg.ones(3)]), ValueError, ["stack", "(2,)", "(3,)"]),
    (lambda: mg.ones(2, 3).permute(0, 0), ValueError, ["permute", "(0, 0)"]),
    (lambda: mg.ones(2, 3).squeeze(0), ValueError, ["squeeze", "axis 0", "size 2"]),
    (lambda: mg.ones(2, 3).expand(4, 3), ValueError, ["expand", "(2, 3)", "(4, 3)"]),
    (lambda: mg.ones(5).split([2, 2]), ValueError, ["split", "[2, 2]", "5"]),
    (lambda: mg.ones(3).masked_fill(np.ones(3), 0.0), TypeError, ["masked_fill", "bool"]),
    (lambda: mg.where(np.ones(3), mg.ones(3), 0.0), TypeError, ["where", "bool"]),
    (lambda: mg.ones(3).gelu("fast"), ValueError,
     ["gelu", "approximate must be 'none' or 'tanh'", "'fast'"]),
    (lambda: mg.zeros(2.5), TypeError, ["zeros", "shape must be ints", "2.5"]),
    (lambda: mg.randn(2, -1), ValueError, ["randn", "non-negative", "(2, -1)"]),
    (lambda: mg.ones(2, 3).reshape(-2, -3), ValueError, ["reshape", ">= -1", "(-2, -3)"]),
    (lambda: F.linear(mg.tensor(1.0), mg.ones(4, 5)), ValueError,
     ["linear", "(4, 5)", "(..., 5)", "got shape ()"]),
    (lambda: F.cross_entropy(mg.ones(2, 3), np.array([0, 1]), reduction="avg"), ValueError,
     ["cross_entropy", "reduction must be 'mean', 'sum' or 'none'", "'avg'"]),
    (lambda: mg.tensor([1, 2]).softmax(), TypeError, ["softmax", "floating", "int"]),
    (lambda: mg.ones(0).max(), ValueError, ["max", "empty"]),
    (lambda: F.linear(mg.ones(2, 3), mg.ones(4, 5)), ValueError,
     ["linear", "(2, 3)", "(4, 5)"]),
    (lambda: F.embedding(np.array([0, 9]), mg.ones(5, 2)), IndexError,
     ["embedding", "[0, 5)", "9"]),
    (lambda: F.embedding(np.array([0.5]), mg.ones(5, 2)), TypeError, ["embedding", "integer"]),
    (lambda: F.cross_entropy(mg.ones(4, 3), np.array([0, 1, 2, 3])), IndexError,
     ["cross_entropy", "[0, 3)", "3"]),
    (lambda: F.cross_entropy(mg.ones(4, 3), np.array([0, 1])), ValueError,
     ["cross_entropy", "(4, 3)", "(4,)", "(2,)"]),
    (lambda: F.layer_norm(mg.ones(2, 3), 4), ValueError, ["layer_norm", "(2, 3)", "(4,)"]),
    (lambda: F.dropout(mg.ones(3), 1.5), ValueError, ["dropout", "1.5"]),
    (lambda: F.scaled_dot_product_attention(mg.ones(2, 4), mg.ones(3, 5), mg.ones(3, 5)),
     ValueError, ["scaled_dot_product_attention", "(2, 4)", "(3, 5)"]),
    (lambda: F.self_attention(mg.ones(2, 4, 10), 2), ValueError,
     ["self_attention", "(2, 4, 10)", "(B, T, 3C)", "n_head=2"]),
    (lambda: F.self_attention(mg.ones(2, 4, 12), 0), ValueError,
     ["self_attention", "n_head must be a positive int", "0"]),
    (lambda: F.self_attention(mg.ones(2, 4, 12), 2, attn_mask=np.ones((3, 4), bool)),
     ValueError, ["self_attention", "(3, 4)", "(2, 2, 4, 4)"]),
    (lambda: mg.tensor(np.ones(3, dtype=int), requires_grad=True), TypeError,
     ["requires_grad", "floating"]),
    (lambda: mg.manual_seed(-1), ValueError, ["manual_seed", "-1"]),
]


@pytest.mark.parametrize("call,exc,words", CASES, ids=[w[2][0] + f"-{i}" for i, w in
                                                        enumerate(CASES)])
def test_error_names_op_and_shapes(call, exc, words):
    with pytest.raises(exc) as info:
        call()
    message = str(info.value)
    for word in words:
        assert word in message, f"{word!r} not in {message!r}"


def _finite(*arrays):
    return all(np.all(np.isfinite(a)) for a in arrays)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_softmax_of_huge_inputs_is_finite(dtype):
    x = mg.Tensor(np.array([[1e4, -1e4, 5e3], [1e4, 1e4, 1e4]], dtype=dtype), requires_grad=True)
    y = x.softmax()
    (y * np.arange(3)).sum().backward()
    assert _finite(y.data, x.grad)
    np.testing.assert_allclose(y.data[0], [1, 0, 0], atol=1e-6)
    np.testing.assert_allclose(y.data[1], [1 / 3] * 3, rtol=1e-5)
    z = mg.Tensor(x.data, requires_grad=True)
    lz = z.log_softmax()
    (lz * np.arange(3)).sum().backward()
    assert _finite(lz.data, z.grad)
    assert lz.data[0, 1] == pytest.approx(-2e4, rel=1e-6)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_softmax_rows_entirely_masked_give_zeros_and_zero_gradient(dtype):
    data = np.array([[-np.inf, -np.inf, -np.inf], [0.0, 1.0, -np.inf]], dtype=dtype)
    x = mg.Tensor(data, requires_grad=True)
    y = x.softmax()
    (y * np.arange(3)).sum().backward()
    np.testing.assert_array_equal(y.data[0], 0.0)
    assert y.data[1].sum() == pytest.approx(1.0) and y.data[1, 2] == 0.0
    assert not np.isnan(x.grad).any()
    np.testing.assert_array_equal(x.grad[0], 0.0)

    z = mg.Tensor(data, requires_grad=True)
    lz = z.log_softmax()
    assert np.all(np.isneginf(lz.data[0]))
    (lz[1, :2] * 2).sum().backward()
    assert not np.isnan(z.grad).any()
    np.testing.assert_array_equal(z.grad[0], 0.0)


def test_attention_with_a_fully_masked_row_has_no_nan():
    q = mg.randn(1, 3, 4, dtype=np.float64, requires_grad=True)
    mask = np.array([[False, False, False], [True, False, False], [True, True, True]])
    out = F.scaled_dot_product_attention(q, q, q, attn_mask=mask)
    out.sum().backward()
    assert _finite(out.data, q.grad)
    np.testing.assert_array_equal(out.data[0, 0], 0.0)

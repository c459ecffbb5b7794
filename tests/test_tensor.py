"""Tensor creation, dtype rules, array facts, repr and seeding."""

import numpy as np
import pytest

import minigrad as mg


def test_float_data_defaults_to_float32():
    assert mg.tensor([1.0, 2.0]).dtype == np.float32
    assert mg.tensor(3.5).dtype == np.float32
    assert mg.tensor(np.ones(2, dtype=np.float32)).dtype == np.float32


def test_float64_is_kept_when_asked_for():
    assert mg.tensor(np.ones(2)).dtype == np.float64
    assert mg.tensor([1.0], dtype=np.float64).dtype == np.float64
    assert mg.zeros(2, dtype=np.float64).dtype == np.float64


def test_integer_and_bool_data_keep_their_dtype():
    assert np.issubdtype(mg.tensor([1, 2]).dtype, np.integer)
    assert mg.tensor([True, False]).dtype == bool


def test_integer_tensor_cannot_require_grad():
    with pytest.raises(TypeError, match="only floating tensors can require grad.*int"):
        mg.tensor([1, 2], requires_grad=True)


def test_python_scalars_do_not_upcast_float32():
    x = mg.ones(3)
    assert (x * 2.5).dtype == np.float32
    assert (2.5 - x).dtype == np.float32
    assert (x**2).dtype == np.float32
    assert (mg.tensor([1, 2]) * 0.5).dtype == np.float32


def test_array_facts():
    t = mg.tensor(np.arange(6.0).reshape(2, 3))
    assert t.shape == (2, 3) and t.ndim == 2 and t.size == 6 and len(t) == 2
    assert isinstance(t.numpy(), np.ndarray)
    np.testing.assert_array_equal(np.asarray(t), t.data)
    assert mg.tensor([[4.0]]).item() == 4.0
    with pytest.raises(ValueError, match="one-element"):
        t.item()


def test_repr_shows_values_shape_dtype_and_grad_fn():
    x = mg.tensor([1.0, 2.0], requires_grad=True)
    text = repr(x * 2)
    assert "2." in text and "4." in text
    assert "shape=(2,)" in text and "float32" in text and "grad_fn=<Mul>" in text
    assert "requires_grad=True" in repr(x)


def test_creation_functions():
    assert mg.zeros(2, 3).shape == (2, 3) and mg.zeros((2, 3)).data.sum() == 0
    assert mg.ones(4).data.sum() == 4
    assert mg.full((2, 2), 7.0).data.tolist() == [[7.0, 7.0], [7.0, 7.0]]
    assert mg.zeros_like(mg.ones(3, dtype=np.float64)).dtype == np.float64
    assert mg.ones_like(np.zeros((2, 1))).shape == (2, 1)
    assert mg.arange(5).data.tolist() == [0, 1, 2, 3, 4]
    assert mg.arange(0, 1, 0.5).dtype == np.float32
    np.testing.assert_array_equal(mg.eye(3).data, np.eye(3))
    assert mg.randint(0, 5, (10,)).data.max() < 5
    assert mg.rand(100).data.min() >= 0
    with pytest.raises(ValueError, match="non-negative"):
        mg.zeros(-1)


def test_manual_seed_makes_random_ops_repeatable():
    mg.manual_seed(7)
    a = mg.randn(5).data.copy()
    mg.manual_seed(7)
    b = mg.randn(5).data
    mg.manual_seed(8)
    c = mg.randn(5).data
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_comparisons_return_bool_tensors_without_grad():
    x = mg.tensor([1.0, 2.0, 3.0], requires_grad=True)
    m = x > 1.5
    assert m.dtype == bool and not m.requires_grad
    assert m.data.tolist() == [False, True, True]
    assert (x == 2.0).data.tolist() == [False, True, False]


def test_iteration_and_len():
    t = mg.tensor(np.arange(6.0).reshape(3, 2))
    rows = list(t)
    assert len(rows) == 3 and rows[1].data.tolist() == [2.0, 3.0]
    with pytest.raises(TypeError):
        len(mg.tensor(1.0))


def test_astype_is_differentiable():
    x = mg.tensor(np.ones(3), requires_grad=True)
    y = x.float()
    assert y.dtype == np.float32
    (y * 2).sum().backward()
    assert x.grad.dtype == np.float64
    np.testing.assert_allclose(x.grad, 2.0)

"""minigrad.testing, the public op-test harness: it passes right ops and names wrong ones."""

import numpy as np
import pytest
import torch

import minigrad as mg
from minigrad.testing import Const, OpCheckError, OpInfo, Sample, check_op


class XExp(mg.Function):
    """y = x e^x."""

    @staticmethod
    def forward(ctx, x):
        e = np.exp(x)
        ctx.save_for_backward(x, e)
        return x * e

    @staticmethod
    def backward(ctx, grad):
        x, e = ctx.saved_tensors
        return grad * e * (1 + x)


class XExpWrongBackward(XExp):
    @staticmethod
    def backward(ctx, grad):
        x, e = ctx.saved_tensors
        return grad * e * x  # forgets the e term of the product rule


class Hypot(mg.Function):
    """sqrt(a^2 + b^2); `exact_shapes` makes it refuse to broadcast (a bug to catch)."""

    exact_shapes = False

    @classmethod
    def forward(cls, ctx, a, b):
        if cls.exact_shapes and a.shape != b.shape:
            raise ValueError(f"hypot: shapes {a.shape} and {b.shape} differ")
        out = np.hypot(a, b)
        ctx.save_for_backward(a, b, out)
        return out

    @staticmethod
    def backward(ctx, grad):
        a, b, out = ctx.saved_tensors
        return grad * a / out, grad * b / out


class HypotExact(Hypot):
    exact_shapes = True


def xexp_torch(x):
    return x * torch.exp(x)


def xexp_numpy(x):
    return x * np.exp(x)


SHAPES = [(3, 4), (2, 1, 3), ()]


def test_right_op_passes_against_torch_and_numpy():
    assert check_op(XExp.apply, xexp_torch, shapes=SHAPES) is True
    assert check_op(XExp.apply, xexp_numpy, shapes=SHAPES) is True
    assert check_op(Hypot.apply, np.hypot, shapes=[((3, 4), (3, 4))], low=0.5) is True


def test_reference_framework_is_inferred():
    torch_row = OpInfo("xexp", XExp.apply, xexp_torch, shapes=[(3,)])
    numpy_row = OpInfo("xexp", XExp.apply, xexp_numpy, shapes=[(3,)])
    torch_row.sample_list(), numpy_row.sample_list()
    assert (torch_row.framework, numpy_row.framework) == ("torch", "numpy")


def test_wrong_forward_is_reported_with_op_sample_and_check():
    def xexp_off(x):
        return XExp.apply(x) * 1.001

    with pytest.raises(OpCheckError) as caught:
        check_op(xexp_off, xexp_torch, shapes=SHAPES)
    message = str(caught.value)
    assert message.startswith("xexp_off: ")
    assert "xexp_off[0] (3, 4): forward: output 0 differs from the reference" in message
    assert "xexp_off[2] (): forward" in message
    assert isinstance(caught.value, AssertionError)


@pytest.mark.parametrize("reference", [xexp_torch, xexp_numpy], ids=["torch", "numpy"])
def test_wrong_backward_is_reported(reference):
    with pytest.raises(OpCheckError) as caught:
        check_op(XExpWrongBackward.apply, reference, shapes=[(3, 4)])
    message = str(caught.value)
    # The name of a Function's apply is the Function's.
    assert "XExpWrongBackward[0] (3, 4): backward: input 0's gradient differs" in message
    assert "XExpWrongBackward[0] (3, 4): gradcheck: input 0, index (0, 0)" in message
    assert "forward" not in message


def test_op_that_does_not_broadcast_is_reported():
    with pytest.raises(OpCheckError) as caught:
        check_op(HypotExact.apply, np.hypot, shapes=[((3, 4), (3, 4))], low=0.5)
    message = str(caught.value)
    assert ("HypotExact[7] broadcast: inputs 0 (3, 1) and 1 (1, 4): forward: raised "
            "ValueError: hypot: shapes (3, 1) and (1, 4) differ") in message
    assert "HypotExact[0]" not in message  # the equal shapes pass
    check_op(HypotExact.apply, np.hypot, shapes=[((3, 4), (3, 4))], low=0.5, broadcast=False)


def test_op_that_loses_float32_is_reported():
    def xexp64(x):
        return XExp.apply(x.astype(np.float64))

    with pytest.raises(OpCheckError, match=r"xexp64\[0\] \(3, 4\): dtypes: float32 in, "
                                           r"output 0 is float64"):
        check_op(xexp64, xexp_torch, shapes=[(3, 4)])


def test_samples_with_constants_and_keywords():
    def take(x, idx, axis=0):
        return mg.getitem(x, (slice(None),) * axis + (idx,))

    samples = [Sample((np.arange(12.0).reshape(3, 4), Const(np.array([2, 0, 2]))),
                      {"axis": 1}, note="columns")]
    assert check_op(take, lambda x, idx, axis=0: np.take(x, idx, axis=axis), samples=samples)
    with pytest.raises(OpCheckError, match=r"take\[0\] columns: forward"):
        check_op(take, lambda x, idx, axis=0: np.take(x, idx, axis=0), samples=samples)


def test_check_op_takes_an_opinfo_alone():
    row = OpInfo("xexp", XExp.apply, xexp_torch, shapes=[(2, 3)])
    assert check_op(row)
    with pytest.raises(TypeError, match="OpInfo alone"):
        check_op(row, xexp_torch)
    with pytest.raises(ValueError, match="shapes"):
        check_op(XExp.apply, xexp_torch)

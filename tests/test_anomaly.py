"""detect_anomaly(): the first op that makes a NaN or Inf is named, with where it was made."""

import numpy as np
import pytest

import minigrad as mg


def test_forward_nan_names_the_op_and_the_user_line():
    x = mg.tensor(np.array([1.0, -1.0, 2.0]), requires_grad=True)
    with mg.detect_anomaly(), pytest.raises(mg.AnomalyError) as info:
        y = x * 2
        y.log()  # log of a negative input: the first NaN
    message = str(info.value)
    assert message.startswith("Log: forward produced 1 NaN")
    assert "test_anomaly.py" in message and "shape (3,)" in message


def test_backward_inf_names_the_op():
    x = mg.tensor(np.array([0.0, 1.0]), requires_grad=True)
    with mg.detect_anomaly():
        y = x.sqrt()  # finite forward, infinite derivative at 0
        with pytest.raises(mg.AnomalyError, match=r"Sqrt: backward produced 0 NaN and 1 Inf"):
            y.sum().backward()


def test_no_error_without_anomaly_mode_and_mode_is_restored():
    x = mg.tensor(np.array([-1.0]), requires_grad=True)
    with mg.detect_anomaly():
        pass
    y = x.log()  # NaN, silently, as NumPy and PyTorch do outside anomaly mode
    assert np.isnan(y.data).all()


def test_clean_graph_passes_in_anomaly_mode():
    x = mg.randn(3, 4, requires_grad=True)
    with mg.detect_anomaly():
        loss = (x @ x.T).softmax().sum()
        loss.backward()
    assert np.isfinite(x.grad).all()

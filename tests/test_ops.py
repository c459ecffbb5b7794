"""Generic op tests driven by tests/op_db.py: every row, every sample, against PyTorch.

Each test is one of `minigrad.testing`'s checks on one sample of one row, so that a failure
names the op, the sample and the check (e.g. `div[8] broadcast: input 1 0-d: backward: ...`).
"""

import pytest

import minigrad as mg
import minigrad.functional as F
from minigrad import testing
from tests.op_db import OPS, OPS_BY_NAME

CASES = [(op, i) for op in OPS for i in range(len(op.sample_list()))]
IDS = [f"{op.name}-{i}" for op, i in CASES]
GRAD_CASES = [(c, n) for c, n in zip(CASES, IDS, strict=True) if c[0].differentiable]


@pytest.mark.parametrize("op,i", CASES, ids=IDS)
def test_forward_matches_torch(op, i):
    testing.check_forward(op, i)


@pytest.mark.parametrize("op,i", [c for c, _ in GRAD_CASES], ids=[n for _, n in GRAD_CASES])
def test_backward_matches_torch(op, i):
    testing.check_backward(op, i)


@pytest.mark.parametrize("op,i", [c for c, _ in GRAD_CASES], ids=[n for _, n in GRAD_CASES])
def test_gradcheck(op, i):
    testing.check_gradcheck(op, i)


@pytest.mark.parametrize("op,i", CASES, ids=IDS)
def test_dtypes_float32_default_float64_kept(op, i):
    testing.check_dtypes(op, i)


@pytest.mark.parametrize("op", [o for o in OPS if o.in_namespaces], ids=lambda o: o.name)
def test_op_reachable_everywhere(op):
    assert callable(getattr(mg, op.name))
    assert callable(getattr(F, op.name))
    if op.method is not None:
        assert callable(getattr(mg.Tensor, op.method))


def test_every_public_op_has_a_row():
    from minigrad.ops import __all__ as public

    no_grad_helpers = {"argmax", "astype"}
    missing = [name for name in public if name not in OPS_BY_NAME and name not in no_grad_helpers]
    assert missing == []


def test_broadcast_samples_are_derived():
    # The table gives add one sample of two equal shapes; the harness adds broadcast ones.
    notes = [s.note for s in OPS_BY_NAME["add"].sample_list()]
    assert "broadcast: inputs 0 (3, 1) and 1 (1, 4)" in notes
    assert "broadcast: input 1 0-d" in notes

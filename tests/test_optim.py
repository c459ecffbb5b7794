"""Tests for minigrad.optim: optimizers vs torch.optim in float64, clipping, LR schedule."""

import json
import math

import numpy as np
import pytest
import torch

import minigrad as mg
from minigrad import optim
from minigrad.nn import Parameter

SHAPES = [(4, 3), (3,), (2, 2, 2)]


def make_params(seed=0):
    rng = np.random.default_rng(seed)
    arrays = [rng.standard_normal(s) for s in SHAPES]
    ours = [Parameter(a.copy()) for a in arrays]
    theirs = [torch.tensor(a.copy(), requires_grad=True) for a in arrays]
    return ours, theirs


def set_grads(ours, theirs, step):
    rng = np.random.default_rng(100 + step)
    for p, q in zip(ours, theirs, strict=True):
        g = rng.standard_normal(p.shape)
        p.grad = g.copy()
        q.grad = torch.tensor(g)


def set_grads_one(params, step):
    """The same random gradients as set_grads gives for `step`, on our params only."""
    rng = np.random.default_rng(100 + step)
    for p in params:
        p.grad = rng.standard_normal(p.shape)


def run_both(make_ours, make_theirs, steps=5, ours=None, theirs=None):
    """Run both optimizers for `steps` steps on identical params and grads; compare each step."""
    if ours is None:
        ours, theirs = make_params()
    opt_ours, opt_theirs = make_ours(ours), make_theirs(theirs)
    for step in range(steps):
        set_grads(ours, theirs, step)
        opt_ours.step()
        opt_theirs.step()
        for p, q in zip(ours, theirs, strict=True):
            np.testing.assert_allclose(p.data, q.detach().numpy(), rtol=1e-12, atol=1e-14)
    return opt_ours, ours


@pytest.mark.parametrize("kwargs", [
    dict(lr=0.1),
    dict(lr=0.1, momentum=0.9),
    dict(lr=0.1, momentum=0.9, nesterov=True),
    dict(lr=0.05, momentum=0.5, weight_decay=0.1),
    dict(lr=0.05, weight_decay=0.1),
])
def test_sgd_matches_torch(kwargs):
    run_both(lambda ps: optim.SGD(ps, **kwargs), lambda ps: torch.optim.SGD(ps, **kwargs))


@pytest.mark.parametrize("kwargs", [
    dict(),
    dict(lr=0.01, betas=(0.8, 0.99), eps=1e-6),
    dict(lr=0.01, weight_decay=0.1),
])
def test_adam_matches_torch(kwargs):
    run_both(lambda ps: optim.Adam(ps, **kwargs), lambda ps: torch.optim.Adam(ps, **kwargs))


@pytest.mark.parametrize("kwargs", [
    dict(),
    dict(lr=0.01, betas=(0.9, 0.95), weight_decay=0.1),
    dict(lr=0.02, weight_decay=0.0),
])
def test_adamw_matches_torch(kwargs):
    run_both(lambda ps: optim.AdamW(ps, **kwargs), lambda ps: torch.optim.AdamW(ps, **kwargs))


def test_adamw_param_groups_with_different_weight_decay():
    def groups(ps):
        return [{"params": ps[:1], "weight_decay": 0.1}, {"params": ps[1:], "weight_decay": 0.0}]

    opt, _ = run_both(lambda ps: optim.AdamW(groups(ps), lr=0.01, betas=(0.9, 0.95)),
                      lambda ps: torch.optim.AdamW(groups(ps), lr=0.01, betas=(0.9, 0.95)))
    assert [g["weight_decay"] for g in opt.param_groups] == [0.1, 0.0]
    assert opt.param_groups[1]["lr"] == 0.01  # defaults fill what a group leaves out


def test_parameters_without_grad_are_skipped():
    ours, _ = make_params()
    opt = optim.AdamW(ours, lr=0.1)
    before = [p.data.copy() for p in ours]
    ours[0].grad = np.ones(ours[0].shape)
    opt.step()
    assert not np.array_equal(ours[0].data, before[0])
    for p, b in zip(ours[1:], before[1:], strict=True):
        np.testing.assert_array_equal(p.data, b)


def test_float32_stays_float32_and_in_place():
    p = Parameter(np.ones((3, 3), np.float32))
    opt = optim.AdamW([p], lr=0.1)
    data = p.data  # the optimizer moved it into its flat buffer, keeping its values
    np.testing.assert_array_equal(data, np.ones((3, 3)))
    p.grad = np.ones((3, 3), np.float32)
    opt.step()
    assert p.data is data and p.dtype == np.float32
    assert all(v.dtype == np.float32 for v in opt.state[id(p)].values() if hasattr(v, "dtype"))


def test_zero_grad():
    ours, _ = make_params()
    opt = optim.SGD(ours, lr=0.1)
    for p in ours:
        p.grad = np.ones(p.shape)
    opt.zero_grad()
    assert all(p.grad is None for p in ours)


@pytest.mark.parametrize("make", [
    lambda ps: optim.AdamW(ps, lr=0.01, weight_decay=0.1),
    lambda ps: optim.Adam(ps, lr=0.01),
    lambda ps: optim.SGD(ps, lr=0.1, momentum=0.9),
])
def test_state_dict_round_trip_continues_identically(make):
    a, _ = make_params()
    opt_a = make(a)
    for step in range(3):
        set_grads_one(a, step)
        opt_a.step()
    arrays, meta = opt_a.state_dict()
    meta = json.loads(json.dumps(meta))  # must survive JSON
    b = [Parameter(p.data.copy()) for p in a]
    opt_b = make(b)
    opt_b.load_state_dict(arrays, meta)
    for step in range(3, 6):
        set_grads_one(a, step)
        set_grads_one(b, step)
        opt_a.step()
        opt_b.step()
    for p, q in zip(a, b, strict=True):
        np.testing.assert_array_equal(p.data, q.data)


def test_state_dict_content_and_hyper_parameters_restored():
    ps, _ = make_params()
    opt = optim.AdamW(ps, lr=0.01, betas=(0.9, 0.95))
    set_grads_one(ps, 0)
    opt.step()
    arrays, meta = opt.state_dict()
    assert sorted(arrays) == sorted(f"state.{i}.{n}" for i in range(3)
                                    for n in ("exp_avg", "exp_avg_sq"))
    assert meta["steps"] == {"0": 1, "1": 1, "2": 1}
    assert meta["param_groups"][0]["params"] == [0, 1, 2]
    other = optim.AdamW([Parameter(p.data.copy()) for p in ps], lr=0.5)
    other.load_state_dict(arrays, json.loads(json.dumps(meta)))
    assert other.param_groups[0]["lr"] == 0.01 and other.param_groups[0]["betas"] == (0.9, 0.95)
    with pytest.raises(ValueError, match="sizes"):
        optim.AdamW(ps[:2]).load_state_dict(arrays, meta)


def test_optimizer_validation():
    ps, _ = make_params()
    with pytest.raises(ValueError, match="empty"):
        optim.SGD([], lr=0.1)
    with pytest.raises(ValueError, match="lr"):
        optim.Adam(ps, lr=-1)
    with pytest.raises(ValueError, match="betas"):
        optim.AdamW(ps, betas=(0.9, 1.0))
    with pytest.raises(ValueError, match="more than one"):
        optim.SGD([{"params": ps}, {"params": ps[:1]}], lr=0.1)
    with pytest.raises(TypeError, match="Tensors"):
        optim.SGD([np.zeros(3)], lr=0.1)


@pytest.mark.parametrize("max_norm", [0.5, 1e3])
def test_clip_grad_norm_matches_torch(max_norm):
    ours, theirs = make_params()
    set_grads(ours, theirs, 0)
    ours.append(Parameter(np.zeros(2)))  # no grad: ignored
    total = optim.clip_grad_norm_(ours, max_norm)
    expected = torch.nn.utils.clip_grad_norm_(theirs, max_norm)
    assert isinstance(total, float)
    assert total == pytest.approx(expected.item(), rel=1e-12)
    for p, q in zip(ours, theirs, strict=False):
        np.testing.assert_allclose(p.grad, q.grad.numpy(), rtol=1e-12)
    assert ours[-1].grad is None


def nanogpt_get_lr(it, learning_rate=6e-4, min_lr=6e-5, warmup_iters=2000,
                   lr_decay_iters=600000):
    """nanoGPT's train.py get_lr, verbatim apart from the arguments."""
    if it < warmup_iters:
        return learning_rate * (it + 1) / (warmup_iters + 1)
    if it > lr_decay_iters:
        return min_lr
    decay_ratio = (it - warmup_iters) / (lr_decay_iters - warmup_iters)
    assert 0 <= decay_ratio <= 1
    coeff = 0.5 * (1.0 + math.cos(math.pi * decay_ratio))
    return min_lr + coeff * (learning_rate - min_lr)


@pytest.mark.parametrize("it", [0, 1, 999, 1999, 2000, 2001, 300000, 599999, 600000, 600001,
                                10**7])
def test_lr_warmup_cosine_matches_nanogpt(it):
    got = optim.lr_warmup_cosine(it, 6e-4, 6e-5, 2000, 600000)
    assert got == pytest.approx(nanogpt_get_lr(it), rel=1e-12, abs=1e-18)


def test_lr_warmup_cosine_known_values_and_set_lr():
    assert optim.lr_warmup_cosine(0, 1e-3, 1e-4, 100, 5000) == pytest.approx(1e-3 / 101)
    assert optim.lr_warmup_cosine(100, 1e-3, 1e-4, 100, 5000) == pytest.approx(1e-3)
    assert optim.lr_warmup_cosine(2550, 1e-3, 1e-4, 100, 5000) == pytest.approx(5.5e-4)
    assert optim.lr_warmup_cosine(5000, 1e-3, 1e-4, 100, 5000) == pytest.approx(1e-4)
    assert optim.lr_warmup_cosine(10, 1e-3, 1e-4, 10, 10) == 1e-4  # no division by zero
    ps, _ = make_params()
    opt = optim.AdamW([{"params": ps[:1]}, {"params": ps[1:], "weight_decay": 0.0}])
    optim.set_lr(opt, 0.123)
    assert [g["lr"] for g in opt.param_groups] == [0.123, 0.123]


def test_training_a_linear_model_reduces_loss():
    mg.manual_seed(0)
    from minigrad import nn

    model = nn.Linear(3, 1)
    x = mg.randn(64, 3)
    y = x @ mg.Tensor(np.array([[1.0], [-2.0], [0.5]], np.float32))
    opt = optim.AdamW(model.parameters(), lr=0.05, weight_decay=0.0)
    losses = []
    for _ in range(100):
        loss = ((model(x) - y) ** 2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.01 * losses[0]

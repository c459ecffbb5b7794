"""The optimizers' flat buffers: gradients from backward land in one buffer per dtype, and
step() / clip_grad_norm_ go over it in one pass. Compared with torch.optim in float64, and
with our own per-parameter path (taken when a parameter's .grad or .data was replaced)."""

import json

import numpy as np
import pytest
import torch

import minigrad as mg
from minigrad import optim
from minigrad.kernels import K
from minigrad.nn import Parameter

SHAPES = [(4, 3), (3,), (2, 2, 2), (5,)]
OPTIMIZERS = {
    "adamw": (optim.AdamW, torch.optim.AdamW, dict(lr=0.01, betas=(0.9, 0.95))),
    "adam": (optim.Adam, torch.optim.Adam, dict(lr=0.01)),
    "sgd": (optim.SGD, torch.optim.SGD, dict(lr=0.1, momentum=0.9, nesterov=True)),
}


def make_params(seed=0):
    rng = np.random.default_rng(seed)
    arrays = [rng.standard_normal(s) for s in SHAPES]
    return ([Parameter(a.copy()) for a in arrays],
            [torch.tensor(a.copy(), requires_grad=True) for a in arrays])


def groups(params):
    """Two groups, as nanoGPT's: decay on the first two parameters, none on the others."""
    return [{"params": params[:2], "weight_decay": 0.1},
            {"params": params[2:], "weight_decay": 0.0}]


def backward_both(ours, theirs, step, skip=()):
    """loss = sum_i sum(w_i * p_i**2) with random w_i, backward on both sides; parameters
    whose index is in `skip` take no part (their grad stays None)."""
    backward_ours(ours, step, skip)
    rng = np.random.default_rng(100 + step)
    loss = 0
    for i, q in enumerate(theirs):
        w = rng.standard_normal(q.shape)
        if i not in skip:
            loss = loss + (q * q * torch.tensor(w)).sum()
    loss.backward()


def backward_ours(ours, step, skip=()):
    """backward_both on our side only."""
    rng = np.random.default_rng(100 + step)
    loss = 0
    for i, p in enumerate(ours):
        w = rng.standard_normal(p.shape)
        if i not in skip:
            loss = loss + (p * p * mg.Tensor(w)).sum()
    loss.backward()


def assert_close(ours, theirs):
    for p, q in zip(ours, theirs, strict=True):
        np.testing.assert_allclose(p.data, q.detach().numpy(), rtol=1e-12, atol=1e-14)


def make_both(name, ours, theirs):
    ours_cls, theirs_cls, kwargs = OPTIMIZERS[name]
    return ours_cls(groups(ours), **kwargs), theirs_cls(groups(theirs), **kwargs)


def count_kernel_calls(monkeypatch):
    calls = []
    adamw_step = K.adamw_step

    def counted(*args):
        calls.append(len(args[0]))
        adamw_step(*args)

    monkeypatch.setattr(K, "adamw_step", counted)
    return calls


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
@pytest.mark.parametrize("max_norm", [None, 0.5])
def test_flat_steps_match_torch_and_the_per_parameter_path(name, max_norm):
    ours, theirs = make_params()
    opt, opt_torch = make_both(name, ours, theirs)
    # The same optimizer fed with assigned gradients takes the per-parameter path.
    each, _ = make_params()
    opt_each, _ = make_both(name, each, theirs)
    for step in range(5):
        backward_both(ours, theirs, step)
        if step == 2:  # gradients accumulate into the flat buffer
            backward_both(ours, theirs, 10)
        grads = [p.grad for p in ours]
        assert all(g.base is grads[0].base is not None for g in grads)
        for p, q in zip(each, ours, strict=True):
            p.grad = q.grad.copy()
        if max_norm is not None:
            total = optim.clip_grad_norm_(ours, max_norm)
            expected = torch.nn.utils.clip_grad_norm_(theirs, max_norm).item()
            assert total == pytest.approx(expected, rel=1e-12)
            assert optim.clip_grad_norm_(each, max_norm) == pytest.approx(total, rel=1e-12)
            for p, q in zip(ours, theirs, strict=True):
                np.testing.assert_allclose(p.grad, q.grad.numpy(), rtol=1e-12)
        for o in (opt, opt_torch, opt_each):
            o.step()
            o.zero_grad()
        assert all(p.grad is None for p in ours)
        assert_close(ours, theirs)
        for p, q in zip(each, ours, strict=True):
            np.testing.assert_allclose(p.data, q.data, rtol=1e-13, atol=1e-15)


def test_adamw_is_one_kernel_call_per_group(monkeypatch):
    ours, theirs = make_params()
    opt, _ = make_both("adamw", ours, theirs)
    calls = count_kernel_calls(monkeypatch)
    backward_both(ours, theirs, 0)
    opt.step()
    assert calls == [1, 1]  # one flat array per group
    calls.clear()
    backward_both(ours, theirs, 1)
    ours[1].grad = ours[1].grad.copy()  # the user's own array: that group goes per parameter
    opt.step()
    assert calls == [1, 1, 1]


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_replaced_grad_replaced_data_and_missing_grad_match_torch(name):
    ours, theirs = make_params()
    opt, opt_torch = make_both(name, ours, theirs)
    for step in range(8):
        skip = {3} if step in (1, 2) else ()
        backward_both(ours, theirs, step, skip)
        if step == 3:  # the user puts another array in .grad
            ours[0].grad = ours[0].grad * 2
            theirs[0].grad = theirs[0].grad * 2
        if step == 5:  # ... and in .data, after backward wrote the gradient
            ours[1].data = ours[1].data.copy()
            theirs[1].data = theirs[1].data.clone()
        for o in (opt, opt_torch):
            o.step()
            o.zero_grad()
        assert ours[3].grad is None
        assert_close(ours, theirs)


def test_state_dict_format_and_round_trip_continue_identically():
    ours, theirs = make_params()
    opt, opt_torch = make_both("adamw", ours, theirs)
    for step in range(3):
        backward_both(ours, theirs, step)
        opt.step()
        opt_torch.step()
        opt.zero_grad()
        opt_torch.zero_grad()
    arrays, meta = opt.state_dict()
    assert meta["steps"] == {str(i): 3 for i in range(4)}
    assert [g["params"] for g in meta["param_groups"]] == [[0, 1], [2, 3]]
    for i, q in enumerate(theirs):
        for name in ("exp_avg", "exp_avg_sq"):
            saved = arrays[f"state.{i}.{name}"]
            assert saved.shape == q.shape and saved.base is None  # a copy of its own
            np.testing.assert_allclose(saved, opt_torch.state[q][name].numpy(), rtol=1e-12)
    arrays["state.0.exp_avg"][...] = 1e9  # a copy: the optimizer does not see it
    arrays, meta = opt.state_dict()
    copies = [Parameter(p.data.copy()) for p in ours]
    opt_copy = optim.AdamW(groups(copies), lr=0.5)
    opt_copy.load_state_dict(arrays, json.loads(json.dumps(meta)))
    assert opt_copy.param_groups[0]["lr"] == 0.01
    for step in range(3, 6):
        backward_both(ours, theirs, step)
        backward_ours(copies, step)
        for o in (opt, opt_torch, opt_copy):
            o.step()
            o.zero_grad()
        assert_close(ours, theirs)
        for p, q in zip(copies, ours, strict=True):
            np.testing.assert_array_equal(p.data, q.data)


def test_add_param_group_after_steps_matches_torch():
    ours, theirs = make_params()
    opt = optim.AdamW(ours[:2], lr=0.01)
    opt_torch = torch.optim.AdamW(theirs[:2], lr=0.01)
    for step in range(4):
        if step == 2:
            opt.add_param_group({"params": ours[2:], "weight_decay": 0.0})
            opt_torch.add_param_group({"params": theirs[2:], "weight_decay": 0.0})
        backward_both(ours, theirs, step, skip=() if step >= 2 else (2, 3))
        for o in (opt, opt_torch):
            o.step()
            o.zero_grad()
        assert_close(ours, theirs)


def test_clip_over_part_of_the_buffer_and_hooks_match_torch():
    ours, theirs = make_params()
    opt, opt_torch = make_both("sgd", ours, theirs)
    ours[1].register_hook(lambda g: g * 3)
    theirs[1].register_hook(lambda g: g * 3)
    for step in range(3):
        backward_both(ours, theirs, step)
        total = optim.clip_grad_norm_(ours[1:], 0.1)
        assert total == pytest.approx(
            torch.nn.utils.clip_grad_norm_(theirs[1:], 0.1).item(), rel=1e-12)
        for o in (opt, opt_torch):
            o.step()
            o.zero_grad()
        assert_close(ours, theirs)


def test_building_an_optimizer_keeps_values_shapes_and_dtypes():
    p32 = Parameter(np.arange(6, dtype=np.float32).reshape(2, 3))
    p64 = Parameter(np.arange(4.0))
    base = np.arange(8.0)
    tied = [Parameter(base[:4]), Parameter(base[2:].reshape(2, 3))]  # overlapping views
    params = [p32, p64, *tied]
    arrays = [p.data for p in params]
    optim.SGD([{"params": [p32]}, {"params": [p64]}, {"params": tied}], lr=0.1)
    for p, a in zip(params, arrays, strict=True):
        np.testing.assert_array_equal(p.data, a)
        assert p.dtype == a.dtype and p.shape == a.shape
    assert p32.data is not arrays[0] and p64.data is not arrays[1]  # moved to flat buffers
    assert tied[0].data is arrays[2] and tied[1].data is arrays[3]  # still sharing memory


def test_parameters_cast_after_the_optimizer_was_built_match_torch():
    ours, theirs = make_params()
    for p, q in zip(ours, theirs, strict=True):
        p.data = p.data.astype(np.float32)
        q.data = torch.tensor(p.data.astype(np.float64))
    opt, opt_torch = make_both("adamw", ours, theirs)
    for p in ours:  # as Module.to(np.float64) does
        p.data = p.data.astype(np.float64)
    for step in range(3):
        backward_both(ours, theirs, step)
        assert all(p.grad.dtype == np.float64 for p in ours)
        for o in (opt, opt_torch):
            o.step()
            o.zero_grad()
        assert_close(ours, theirs)
    arrays, meta = opt.state_dict()
    assert all(a.dtype == np.float64 for a in arrays.values())
    opt.load_state_dict(arrays, meta)
    for step in range(3, 5):
        backward_both(ours, theirs, step)
        for o in (opt, opt_torch):
            o.step()
            o.zero_grad()
        assert_close(ours, theirs)
    assert all(a.dtype == np.float64 for a in opt.state_dict()[0].values())


def test_state_loaded_without_some_parameters_starts_them_from_zero():
    ours, _ = make_params()
    opt = optim.AdamW(groups(ours), lr=0.01)
    for step in range(2):  # fills the flat state arrays
        backward_ours(ours, step)
        opt.step()
        opt.zero_grad()
    other, _ = make_params(1)
    opt_other = optim.AdamW(groups(other), lr=0.01)
    backward_ours(other, 0, skip={3})  # the state has nothing for parameter 3
    opt_other.step()
    arrays, meta = opt_other.state_dict()
    fresh, _ = make_params()
    opt_fresh = optim.AdamW(groups(fresh), lr=0.01)
    for p, q in zip(fresh, ours, strict=True):
        p.data[...] = q.data
    for o in (opt, opt_fresh):
        o.load_state_dict(arrays, meta)
    for step in range(2, 4):
        for params, o in ((ours, opt), (fresh, opt_fresh)):
            backward_ours(params, step)
            o.step()
            o.zero_grad()
        for p, q in zip(ours, fresh, strict=True):
            np.testing.assert_array_equal(p.data, q.data)


def test_a_group_appended_by_hand_is_stepped_per_parameter():
    ours, theirs = make_params()
    opt = optim.SGD(ours[:2], lr=0.1, momentum=0.9)
    opt_torch = torch.optim.SGD(theirs[:2], lr=0.1, momentum=0.9)
    opt.param_groups.append({**opt.param_groups[0], "params": ours[2:]})
    opt_torch.param_groups.append({**opt_torch.param_groups[0], "params": theirs[2:]})
    for step in range(3):
        backward_both(ours, theirs, step)
        for o in (opt, opt_torch):
            o.step()
            o.zero_grad()
        assert_close(ours, theirs)


def test_a_kept_grad_keeps_its_values():
    """A .grad kept from one step is not overwritten by later steps: after zero_grad the next
    backward writes into fresh memory; without zero_grad (grads set to None by hand) it does
    not reuse the slot it already handed out. The updates still match torch."""
    ours, theirs = make_params()
    opt = optim.AdamW(groups(ours), lr=0.01)
    topt = torch.optim.AdamW(groups(theirs), lr=0.01)
    kept = []
    for step in range(4):
        backward_both(ours, theirs, step)
        kept.append([(p.grad, p.grad.copy()) for p in ours])
        opt.step()
        topt.step()
        if step % 2 == 0:
            opt.zero_grad()
        else:
            for p in ours:
                p.grad = None
        topt.zero_grad()
    for grads in kept:
        for grad, values in grads:
            np.testing.assert_array_equal(grad, values)
    for p, q in zip(ours, theirs, strict=True):
        np.testing.assert_allclose(p.data, q.detach().numpy(), rtol=1e-12, atol=1e-14)


def test_zero_grad_reuses_the_gradient_buffer_unless_a_grad_is_kept():
    # A large flat gradient buffer comes back from the kernels' pool at every zero_grad
    # (no fresh pages to fault in), but never while a kept .grad still uses it.
    w = Parameter(np.ones((512, 1024), np.float32))  # 2 MiB: pooled
    opt = optim.AdamW([w], lr=0.1)

    def step(value):
        opt.zero_grad()
        (w * value).sum().backward()
        opt.step()
        return w.grad.__array_interface__["data"][0]

    first = step(1.0)
    assert step(2.0) == first
    kept = w.grad
    assert step(3.0) != first
    np.testing.assert_array_equal(kept, np.full((512, 1024), 2.0, np.float32))
    np.testing.assert_array_equal(w.grad, np.full((512, 1024), 3.0, np.float32))

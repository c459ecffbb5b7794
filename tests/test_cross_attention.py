"""MultiHeadAttention with cross-attention and key padding, against torch.nn.MultiheadAttention
in float64: outputs, the input and context gradients, every parameter gradient; padded keys
get exactly zero gradient."""

import numpy as np
import pytest
import torch

import minigrad as mg
import minigrad.functional as F
import minigrad.nn as nn
from minigrad.kernels import backend, use_backend

RTOL, ATOL = 1e-10, 1e-12


@pytest.fixture(params=["numba", "numpy"], autouse=True)
def kernels(request):
    """Run every test with both kernel backends (the fused Numba one and the reference)."""
    before = backend()
    use_backend(request.param)
    mg.manual_seed(0)
    yield request.param
    use_backend(before)


def t64(a, requires_grad=False):
    return torch.tensor(np.asarray(a), dtype=torch.float64, requires_grad=requires_grad)


def mg64(a, requires_grad=False):
    return mg.Tensor(np.asarray(a, dtype=np.float64), requires_grad=requires_grad)


def paired(C, nh, cross, causal=False, bias=True):
    """Our layer and torch's, float64, with the same weights. torch keeps q, k, v stacked in
    in_proj_weight (3C, C): ours is c_attn (self) or q_proj = rows [0, C) and kv_proj = rows
    [C, 3C) (cross); out_proj is c_proj."""
    ours = nn.MultiHeadAttention(C, nh, bias=bias, causal=causal, cross=cross).double()
    theirs = torch.nn.MultiheadAttention(C, nh, bias=bias, batch_first=True,
                                         dtype=torch.float64)
    w = theirs.in_proj_weight.detach().numpy()
    state = {"c_proj.weight": theirs.out_proj.weight.detach().numpy()}
    if cross:
        state.update({"q_proj.weight": w[:C], "kv_proj.weight": w[C:]})
    else:
        state["c_attn.weight"] = w
    if bias:
        b = theirs.in_proj_bias.detach().numpy()
        state["c_proj.bias"] = theirs.out_proj.bias.detach().numpy()
        if cross:
            state.update({"q_proj.bias": b[:C], "kv_proj.bias": b[C:]})
        else:
            state["c_attn.bias"] = b
    ours.load_state_dict({k: np.array(v) for k, v in state.items()})
    return ours, theirs


def torch_param_grads(ours, theirs, C):
    """torch's parameter gradients under our names."""
    g = theirs.in_proj_weight.grad.numpy()
    grads = {"c_proj.weight": theirs.out_proj.weight.grad.numpy()}
    if ours.cross:
        grads.update({"q_proj.weight": g[:C], "kv_proj.weight": g[C:]})
    else:
        grads["c_attn.weight"] = g
    if theirs.in_proj_bias is not None:
        gb = theirs.in_proj_bias.grad.numpy()
        grads["c_proj.bias"] = theirs.out_proj.bias.grad.numpy()
        if ours.cross:
            grads.update({"q_proj.bias": gb[:C], "kv_proj.bias": gb[C:]})
        else:
            grads["c_attn.bias"] = gb
    return grads


def padding(B, S, seed):
    """A bool (B, S) key padding mask, True = padding, padding at the end of each row and
    at least one real key per row (row 0 unpadded)."""
    lengths = np.random.default_rng(seed).integers(1, S + 1, size=B)
    lengths[0] = S
    return np.arange(S)[None, :] >= lengths[:, None]


def compare(ours, theirs, x, context, key_padding_mask, causal=False, attn_mask=None):
    """Forward and backward through both; compare output, input (and context) gradients
    and every parameter gradient. Returns our context (or input) tensor after backward."""
    B, T, C = x.shape
    rng = np.random.default_rng(1)
    xm, xt = mg64(x, True), t64(x, True)
    cm = ct = None
    if context is not None:
        cm, ct = mg64(context, True), t64(context, True)
    kv_t = xt if ct is None else ct
    S = kv_t.shape[1]
    tmask = None
    if causal:
        tmask = torch.ones(T, S, dtype=torch.bool).triu(1)  # torch: True = masked out
    if attn_mask is not None:
        extra = ~torch.from_numpy(attn_mask)
        tmask = extra if tmask is None else tmask | extra
    ym = ours(xm, context=cm, attn_mask=attn_mask, key_padding_mask=key_padding_mask)
    yt, _ = theirs(xt, kv_t, kv_t, attn_mask=tmask, need_weights=False,
                   key_padding_mask=None if key_padding_mask is None
                   else torch.from_numpy(key_padding_mask))
    np.testing.assert_allclose(ym.data, yt.detach().numpy(), rtol=RTOL, atol=ATOL)
    upstream = rng.standard_normal(yt.shape)
    ym.backward(upstream)
    yt.backward(t64(upstream))
    np.testing.assert_allclose(xm.grad, xt.grad.numpy(), rtol=1e-9, atol=1e-11)
    if cm is not None:
        np.testing.assert_allclose(cm.grad, ct.grad.numpy(), rtol=1e-9, atol=1e-11)
    want = torch_param_grads(ours, theirs, C)
    got = dict(ours.named_parameters())
    assert set(got) == set(want)
    for name, p in got.items():
        np.testing.assert_allclose(p.grad, want[name], rtol=1e-9, atol=1e-11, err_msg=name)
    return cm if cm is not None else xm


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("T,S", [(5, 7), (6, 3), (4, 4), (1, 5)])
def test_cross_attention_with_padding_matches_torch(T, S, bias):
    B, C, nh = 3, 12, 3
    ours, theirs = paired(C, nh, cross=True, bias=bias)
    rng = np.random.default_rng(2)
    x, context = rng.standard_normal((B, T, C)), rng.standard_normal((B, S, C))
    pad = padding(B, S, 3)
    cm = compare(ours, theirs, x, context, pad)
    # context only feeds keys and values: padded positions get exactly zero gradient
    assert np.all(cm.grad[pad] == 0.0)
    assert np.all(np.abs(cm.grad[~pad]).sum(-1) > 0)


def test_cross_attention_without_padding_matches_torch():
    ours, theirs = paired(8, 2, cross=True)
    rng = np.random.default_rng(4)
    compare(ours, theirs, rng.standard_normal((2, 3, 8)), rng.standard_normal((2, 6, 8)), None)


@pytest.mark.parametrize("causal", [False, True])
def test_self_attention_with_key_padding_matches_torch(causal):
    B, T, C, nh = 3, 6, 8, 2
    ours, theirs = paired(C, nh, cross=False, causal=causal)
    x = np.random.default_rng(5).standard_normal((B, T, C))
    compare(ours, theirs, x, None, padding(B, T, 6), causal=causal)


def test_key_padding_combines_with_attn_mask():
    B, T, C, nh = 2, 5, 8, 2
    ours, theirs = paired(C, nh, cross=False)
    rng = np.random.default_rng(7)
    allowed = rng.random((T, T)) < 0.7
    allowed[:, 0] = True  # every query keeps key 0, which is never padded
    compare(ours, theirs, rng.standard_normal((B, T, C)), None, padding(B, T, 8),
            attn_mask=allowed)


def test_padded_keys_get_exactly_zero_gradient_in_sdpa():
    rng = np.random.default_rng(9)
    B, nh, T, S, d = 2, 2, 4, 6, 3
    q, k, v = (mg64(rng.standard_normal(s), True) for s in
               ((B, nh, T, d), (B, nh, S, d), (B, nh, S, d)))
    pad = padding(B, S, 10)
    keep = ~pad[:, None, None, :]  # (B, 1, 1, S)
    out = F.scaled_dot_product_attention(q, k, v, attn_mask=keep)
    out.backward(rng.standard_normal(out.shape))
    padded = np.broadcast_to(pad[:, None, :], (B, nh, S))
    assert np.all(k.grad[padded] == 0.0) and np.all(v.grad[padded] == 0.0)
    assert np.all(np.abs(v.grad[~padded]).sum(-1) > 0)


def test_cross_attention_weights_are_b_heads_t_s_with_exact_zeros():
    B, T, S, C, nh = 2, 3, 5, 8, 2
    att = nn.MultiHeadAttention(C, nh, cross=True)
    att.need_weights = True
    pad = padding(B, S, 11)
    att(mg.randn(B, T, C), context=mg.randn(B, S, C), key_padding_mask=pad)
    w = att.attn_weights
    assert w.shape == (B, nh, T, S)
    np.testing.assert_allclose(w.sum(-1), 1.0, rtol=1e-6)
    assert np.all(w.transpose(0, 2, 1, 3)[pad[:, None, None, :].repeat(T, 1).repeat(nh, 2)]
                  == 0.0)
    assert np.all(w[np.broadcast_to(~pad[:, None, None, :], w.shape)] > 0.0)


def test_state_dict_names_and_shapes():
    cross = nn.MultiHeadAttention(8, 2, cross=True)
    assert {k: v.shape for k, v in cross.state_dict().items()} == {
        "q_proj.weight": (8, 8), "q_proj.bias": (8,), "kv_proj.weight": (16, 8),
        "kv_proj.bias": (16,), "c_proj.weight": (8, 8), "c_proj.bias": (8,)}
    assert set(nn.MultiHeadAttention(8, 2).state_dict()) == {
        "c_attn.weight", "c_attn.bias", "c_proj.weight", "c_proj.bias"}


def test_cross_and_padding_errors():
    with pytest.raises(ValueError, match="causal=True needs self-attention"):
        nn.MultiHeadAttention(8, 2, causal=True, cross=True)
    cross, selfatt = nn.MultiHeadAttention(8, 2, cross=True), nn.MultiHeadAttention(8, 2)
    x = mg.randn(2, 3, 8)
    with pytest.raises(ValueError, match=r"cross=True\): forward needs a context"):
        cross(x)
    with pytest.raises(ValueError, match="a context is for cross-attention"):
        selfatt(x, context=mg.randn(2, 4, 8))
    with pytest.raises(ValueError, match=r"expected context \(B, S, 8\), got shape \(2, 4, 6\)"):
        cross(x, context=mg.randn(2, 4, 6))
    with pytest.raises(ValueError, match="input batch 2 and context batch 1 differ"):
        cross(x, context=mg.randn(1, 4, 8))
    with pytest.raises(ValueError, match=r"key_padding_mask must be bool \(B, S\) = \(2, 4\)"):
        cross(x, context=mg.randn(2, 4, 8), key_padding_mask=np.zeros((2, 3), bool))
    with pytest.raises(ValueError, match="key_padding_mask must be bool"):
        selfatt(x, key_padding_mask=np.zeros((2, 3)))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("mask_shape", [(3, 1, 1, 7), (3, 1, 5, 7), (1, 2, 1, 7), (3, 2, 1, 7),
                                        (1, 7), (5, 7)])
@pytest.mark.parametrize("is_causal", [False, True])
def test_fast_sdpa_kernel_padding_masks_match_reference(mask_shape, is_causal, dtype):
    """T != S and masks shared across heads (key padding (B, 1, 1, S)), across queries or
    per head: the Numba kernel reads each without repeating it and matches the reference."""
    from minigrad.kernels import fast, reference

    rng = np.random.default_rng(12)
    B, nh, T, S, d = 3, 2, 5, 7, 4
    q = rng.standard_normal((B, nh, T, d)).astype(dtype)
    k, v = (rng.standard_normal((B, nh, S, d)).astype(dtype) for _ in range(2))
    mask = rng.random(mask_shape) < 0.7
    mask[..., 0] = True  # every query keeps key 0
    go = rng.standard_normal((B, nh, T, d)).astype(dtype)
    out_r, p_r = reference.sdpa_forward(q, k, v, mask, is_causal)
    # the Numba side reads q and k as strided views (as the heads of a projection are)
    q_view = np.ascontiguousarray(q.transpose(0, 2, 1, 3)).transpose(0, 2, 1, 3)
    k_view = np.ascontiguousarray(k.transpose(0, 2, 1, 3)).transpose(0, 2, 1, 3)
    assert not q_view.flags.c_contiguous and not k_view.flags.c_contiguous
    out_f, p_f = fast.sdpa_forward(q_view, k_view, v, mask, is_causal)
    tol = dict(rtol=1e-5, atol=1e-6) if dtype == np.float32 else dict(rtol=1e-12, atol=1e-13)
    np.testing.assert_allclose(out_f, out_r, **tol)
    np.testing.assert_allclose(p_f, p_r, **tol)
    assert np.all(p_f[~np.broadcast_to(mask, p_f.shape)] == 0.0)
    for got, want in zip(fast.sdpa_backward(q, k, v, p_f, go),
                         reference.sdpa_backward(q, k, v, p_r, go), strict=True):
        np.testing.assert_allclose(got, want, **tol)

"""Kernels: fast (Numba) against reference (NumPy), and both against PyTorch.

Every kernel is checked on random shapes (the GPT's, size-1 dims) and on non-contiguous
views, in float32 and float64, with the dtype preserved. Float64 comparisons with PyTorch are
tight; float32 ones compare fast with reference at float32 rounding.
"""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as tF

from minigrad.kernels import buffers, fast, reference, threads

DTYPES = [np.float32, np.float64]
TOL = {np.float32: dict(rtol=2e-4, atol=2e-5), np.float64: dict(rtol=1e-9, atol=1e-11)}


def rnd(rng, shape, dtype, scale=1.0):
    return (rng.standard_normal(shape) * scale).astype(dtype)


def noncontig(a):
    """The same values as `a`, as a non-contiguous view (transposed storage)."""
    v = np.ascontiguousarray(np.swapaxes(a, -1, -2)) if a.ndim >= 2 else np.repeat(a, 2)
    v = np.swapaxes(v, -1, -2) if a.ndim >= 2 else v[::2]
    assert not v.flags.c_contiguous or a.size <= 1 or min(a.shape[-2:]) == 1
    np.testing.assert_array_equal(v, a)
    return v


def check(got, want, dtype):
    got, want = np.asarray(got), np.asarray(want)
    assert got.dtype == dtype, (got.dtype, dtype)
    assert got.shape == want.shape, (got.shape, want.shape)
    np.testing.assert_allclose(got, want, **TOL[dtype])


def t64(a, grad=False):
    return torch.tensor(np.asarray(a, dtype=np.float64), requires_grad=grad)


@pytest.fixture(autouse=True, params=["whole", "split", "no pool"])
def pieces(request, monkeypatch):
    """Every test runs three times: with the kernels' own size rules (the test shapes are
    small, so one piece, and outputs from np.empty); as large arrays go (cut into one piece
    per thread, every output taken from the reused buffers); and as on a machine where
    minigrad uses no thread pool (one core, or a NumPy without its OpenBLAS)."""
    if request.param == "no pool":
        monkeypatch.setattr(threads, "PARALLEL", False)
        monkeypatch.setattr(fast, "_MIN_SPLIT_SIZE", 0)
        monkeypatch.setattr(fast, "_MIN_SPLIT_MACS", 0)
    if request.param == "split":
        monkeypatch.setattr(fast, "_MIN_SPLIT_SIZE", 0)
        monkeypatch.setattr(fast, "_MIN_SPLIT_MACS", 0)
        monkeypatch.setattr(buffers, "MIN_BYTES", 0)
    return request.param


ROW_SHAPES = [(768, 65), (12, 4, 64, 64), (1, 1), (3, 1, 5), (7, 1)]


# ---------------------------------------------------------------------------------------------
# matmul, softmax family


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("sa,sb", [
    ((768, 128), (128, 384)),  # split by rows over the threads
    ((12, 4, 64, 32), (12, 4, 32, 64)),  # split by batch entries
    ((1, 4, 64, 32), (3, 1, 32, 64)),  # broadcast batch dims: split by rows
    ((3, 1, 5, 64), (1, 4, 64, 900)),  # too few rows and a broadcast a: one BLAS call
    ((2, 4, 8, 3), (2, 4, 3, 8)),
    ((1, 1), (1, 1)),
])
def test_matmul(sa, sb, dtype):
    rng = np.random.default_rng(0)
    a, b = rnd(rng, sa, dtype), rnd(rng, sb, dtype)
    check(fast.matmul(noncontig(a), b), reference.matmul(a, b), dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("view", ["reversed rows", "every other column", "five dims",
                                  "empty inner", "mixed dtypes", "broadcast row"])
def test_matmul_views_blas_cannot_read_as_they_are(view, dtype):
    """Operands the BLAS kernel cannot take in place are copied or left to NumPy."""
    rng = np.random.default_rng(1)
    a, b = rnd(rng, (64, 16), dtype), rnd(rng, (16, 48), dtype)
    if view == "reversed rows":  # a negative stride
        a = a[::-1]
    elif view == "every other column":  # no unit stride on either axis
        a = rnd(rng, (64, 32), dtype)[:, ::2]
    elif view == "five dims":  # more than two batch dims
        a, b = rnd(rng, (2, 3, 2, 8, 4), dtype), rnd(rng, (2, 1, 2, 4, 8), dtype)
    elif view == "empty inner":
        a, b = rnd(rng, (6, 0), dtype), rnd(rng, (0, 5), dtype)
    elif view == "mixed dtypes":
        b = b.astype(np.float32 if dtype == np.float64 else np.float64)
    elif view == "broadcast row":  # a zero stride
        a = np.broadcast_to(rnd(rng, (1, 16), dtype), (64, 16))
    check(fast.matmul(a, b), reference.matmul(a, b), np.result_type(a, b).type)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(768, 384), (2, 0, 3), ()])
def test_empty(shape, dtype):
    got, want = fast.empty(shape, dtype), reference.empty(shape, dtype)
    assert got.shape == want.shape and got.dtype == want.dtype
    assert got.flags.c_contiguous and got.flags.writeable


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("shape", [(768, 128, 384), (7, 1, 1), (0, 5, 3), (3, 65, 4),
                                   (5, 0, 2)])
def test_dense_and_bias_grad(shape, bias, dtype):
    """A dense layer's rows x @ W^T + b, from contiguous and non-contiguous x and W."""
    N, n_in, n_out = shape
    rng = np.random.default_rng(4)
    x, w = rnd(rng, (N, n_in), dtype), rnd(rng, (n_out, n_in), dtype)
    b = rnd(rng, (n_out,), dtype) if bias else None
    want = reference.dense(x, w, b)
    check(want, x.astype(np.float64) @ w.T.astype(np.float64) + (b if bias else 0), dtype)
    check(fast.dense(x, w, b), want, dtype)
    check(fast.dense(noncontig(x), noncontig(w), b), want, dtype)
    g = rnd(rng, (N, n_out), dtype)
    check(fast.bias_grad(noncontig(g)), reference.bias_grad(g), dtype)
    check(fast.bias_grad(g), g.astype(np.float64).sum(axis=0).astype(dtype), dtype)


def test_dense_mixed_dtypes_follow_numpy():
    """A float64 bias on float32 rows is added in the rows' dtype, as NumPy's `+=`."""
    x, w = np.ones((4, 2), np.float32), np.ones((3, 2), np.float32)
    got = fast.dense(x, w, np.arange(3.0))
    assert got.dtype == np.float32
    np.testing.assert_array_equal(got, reference.dense(x, w, np.arange(3.0)))
    np.testing.assert_array_equal(got, [[2, 3, 4]] * 4)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", ROW_SHAPES)
@pytest.mark.parametrize("name", ["softmax", "log_softmax"])
def test_softmax_family_fast_vs_reference(name, shape, dtype):
    rng = np.random.default_rng(1)
    x, g = rnd(rng, shape, dtype, 3.0), rnd(rng, shape, dtype)
    fwd_f, fwd_r = getattr(fast, name), getattr(reference, name)
    bwd_f, bwd_r = getattr(fast, name + "_backward"), getattr(reference, name + "_backward")
    y = fwd_r(x)
    check(fwd_f(x), y, dtype)
    check(fwd_f(noncontig(x)), y, dtype)
    check(bwd_f(y, g), bwd_r(y, g), dtype)
    check(bwd_f(noncontig(y), noncontig(g)), bwd_r(y, g), dtype)


@pytest.mark.parametrize("backend", [reference, fast])
def test_softmax_family_vs_torch(backend):
    rng = np.random.default_rng(2)
    x, g = rnd(rng, (6, 9), np.float64, 3.0), rnd(rng, (6, 9), np.float64)
    for name, tfn in [("softmax", torch.softmax), ("log_softmax", torch.log_softmax)]:
        tx = t64(x, True)
        ty = tfn(tx, -1)
        ty.backward(t64(g))
        y = getattr(backend, name)(x)
        check(y, ty.detach().numpy(), np.float64)
        check(getattr(backend, name + "_backward")(y, g), tx.grad.numpy(), np.float64)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("backend", [reference, fast])
def test_softmax_family_extremes(backend, dtype):
    """Magnitude 1e4 stays finite; an all -inf row gives zeros / -inf and zero gradient."""
    x = np.array([[1e4, -1e4, 0.0], [-np.inf, -np.inf, -np.inf], [2.0, -np.inf, 1.0]], dtype)
    g = np.ones_like(x)
    with np.errstate(divide="raise", invalid="raise", over="raise"):  # not even a warning
        p = backend.softmax(x)
        lp = backend.log_softmax(x)
        dp = backend.softmax_backward(p, g)
        dlp = backend.log_softmax_backward(lp, g)
    for a in (p, lp, dp, dlp):
        assert a.dtype == dtype and not np.isnan(a).any()
    np.testing.assert_allclose(p[0], [1, 0, 0], atol=1e-12)
    np.testing.assert_array_equal(p[1], 0)
    assert p[2, 1] == 0
    np.testing.assert_allclose(p.sum(-1), [1, 0, 1], rtol=1e-6)
    assert np.isneginf(lp[1]).all() and np.isneginf(lp[2, 1])
    np.testing.assert_allclose(lp[0], [0, -2e4, -1e4], rtol=1e-6)
    np.testing.assert_array_equal(dp[1], 0)
    np.testing.assert_array_equal(dlp[1], 0)
    assert np.isfinite(dp).all() and np.isfinite(dlp).all()


@pytest.mark.parametrize("dtype", DTYPES)
def test_nan_propagates_through_row_max(dtype):
    """A NaN anywhere in a row (even after its largest value) makes the whole row NaN, as in
    PyTorch, in softmax, cross-entropy and attention; the other rows are untouched."""
    x = np.array([[5.0, 1.0, np.nan] + [0.0] * 29, [1.0, 2.0, 3.0] + [0.0] * 29], dtype)
    want = reference.softmax(x)
    for got in (fast.softmax(x), fast.log_softmax(x)):
        assert np.isnan(got[0]).all() and np.isfinite(got[1]).all()
    np.testing.assert_allclose(fast.softmax(x)[1], want[1], rtol=1e-6)
    losses = fast.cross_entropy_forward(x, np.array([0, 1]), -100)[0]
    assert np.isnan(losses[0]) and np.isfinite(losses[1])
    q = np.zeros((1, 2, 4), dtype)
    k = np.ones((1, 4, 4), dtype)
    k[0, 3, 0] = np.nan  # key 3: every query's score with it is NaN
    probs = fast.sdpa_forward(q, k, np.ones_like(k), None, False)[1]
    assert np.isnan(probs).all()


# ---------------------------------------------------------------------------------------------
# attention


def _qkv(rng, lead, T, S, d, dtype):
    return rnd(rng, lead + (T, d), dtype), rnd(rng, lead + (S, d), dtype), \
        rnd(rng, lead + (S, d), dtype)


MASKS = ["none", "causal", "bool", "additive", "bool_per_head", "causal_additive"]


def _mask(rng, kind, lead, T, S, dtype):
    """(mask, is_causal, torch attn_mask) for one kind of masking."""
    if kind == "none":
        return None, False, None
    if kind == "causal":
        return None, True, None
    if kind == "bool":
        m = rng.random((T, S)) > 0.3
        m[0] = False  # one fully masked row
        return m, False, torch.from_numpy(m)
    if kind == "bool_per_head":
        m = rng.random(lead + (T, S)) > 0.5
        return m, False, torch.from_numpy(m)
    m = rnd(rng, (T, S), dtype)
    if kind == "additive":
        m[-1, 0] = -np.inf
        return m, False, t64(m)
    # causal + additive: torch takes one or the other, so fold the causal part into its mask
    causal = np.where(np.tril(np.ones((T, S), bool)), 0, -np.inf)
    return m, True, t64(m + causal)


@pytest.mark.parametrize("kind", MASKS)
@pytest.mark.parametrize("dims", [((2, 3), 5, 5, 4), ((1,), 1, 1, 1), ((2,), 4, 6, 3),
                                  ((2, 2), 6, 4, 8), ((1, 2), 67, 67, 3)])
def test_sdpa_vs_torch(dims, kind):
    lead, T, S, d = dims
    rng = np.random.default_rng(3)
    q, k, v = _qkv(rng, lead, T, S, d, np.float64)
    mask, is_causal, tmask = _mask(rng, kind, lead, T, S, np.float64)
    go = rnd(rng, lead + (T, d), np.float64)
    tq, tk, tv = t64(q, True), t64(k, True), t64(v, True)
    tout = tF.scaled_dot_product_attention(tq, tk, tv, attn_mask=tmask,
                                           is_causal=is_causal and tmask is None)
    # rows with no key to attend: ours are exactly zero (torch may give NaN), no gradient
    allowed = np.ones(lead + (T, S), bool)
    if mask is not None:
        allowed &= mask if mask.dtype == bool else ~np.isneginf(mask)
    if is_causal:
        allowed &= np.tril(np.ones((T, S), bool))
    dead = ~allowed.any(-1)  # lead + (T,)
    tout = torch.nan_to_num(tout)
    tout.backward(t64(go) * t64(~dead[..., None]))
    for backend in (reference, fast):
        out, probs = backend.sdpa_forward(q, k, v, mask, is_causal)
        check(out, tout.detach().numpy(), np.float64)
        np.testing.assert_array_equal(out[dead], 0)
        np.testing.assert_allclose(probs.sum(-1), np.where(dead, 0, 1), rtol=1e-12)
        if is_causal:
            assert (probs[..., np.triu_indices(T, 1, S)[0], np.triu_indices(T, 1, S)[1]] == 0).all()
        dq, dk, dv = backend.sdpa_backward(q, k, v, probs, go * ~dead[..., None], is_causal)
        for got, want in [(dq, tq), (dk, tk), (dv, tv)]:
            check(got, np.nan_to_num(want.grad.numpy()), np.float64)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("kind", ["none", "causal", "bool", "additive", "bool_per_head",
                                  "causal_additive"])
@pytest.mark.parametrize("dims", [((12, 4), 64, 64, 32), ((1, 1), 1, 3, 2), ((3, 2), 5, 5, 1),
                                  ((2,), 130, 130, 4)])
def test_sdpa_fast_vs_reference(dims, kind, dtype):
    """Causal self-attention from T = 128 on runs by two blocks of query rows (130 makes
    uneven ones); below, whole."""
    lead, T, S, d = dims
    rng = np.random.default_rng(4)
    q, k, v = _qkv(rng, lead, T, S, d, dtype)
    mask, is_causal, _ = _mask(rng, kind, lead, T, S, dtype)
    go = rnd(rng, lead + (T, d), dtype)
    out_r, p_r = reference.sdpa_forward(q, k, v, mask, is_causal)
    out_f, p_f = fast.sdpa_forward(noncontig(q), noncontig(k), v, mask, is_causal)
    check(out_f, out_r, dtype)
    check(p_f, p_r, dtype)
    grads_r = reference.sdpa_backward(q, k, v, p_r, go, is_causal)
    grads_f = fast.sdpa_backward(q, noncontig(k), noncontig(v), noncontig(p_r), go, is_causal)
    for got, want in zip(grads_f, grads_r, strict=True):
        check(got, want, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("kind", MASKS)
@pytest.mark.parametrize("dims", [(12, 64, 4, 32), (1, 1, 1, 2), (3, 5, 2, 1), (2, 37, 3, 4),
                                  (1, 130, 2, 8)])
def test_qkv_attention_fast_vs_reference(dims, kind, dtype):
    """Self-attention from the fused projection (B, T, 3C): causal heads run by blocks of 16
    query rows in fast.py (37 and 130 make an uneven last block); the output, the
    log-sum-exps and dL/dqkv equal the reference's, from non-contiguous inputs too."""
    B, T, nh, hs = dims
    rng = np.random.default_rng(5)
    qkv, go = rnd(rng, (B, T, 3 * nh * hs), dtype), rnd(rng, (B, T, nh * hs), dtype)
    mask, is_causal, _ = _mask(rng, kind, (B, nh), T, T, dtype)
    y_r, lse_r = reference.qkv_attention_forward(qkv, nh, mask, is_causal)
    y_f, lse_f = fast.qkv_attention_forward(noncontig(qkv), nh, mask, is_causal)
    check(y_f, y_r, dtype)
    check(lse_f, lse_r, dtype)  # (-inf where a query may attend no key, in both)
    want = reference.qkv_attention_backward(qkv, lse_r, go, nh, mask, is_causal)
    check(fast.qkv_attention_backward(noncontig(qkv), noncontig(lse_r), noncontig(go), nh,
                                      mask, is_causal), want, dtype)


@pytest.mark.parametrize("kind", MASKS)
def test_qkv_attention_is_sdpa_of_the_heads(kind):
    """The reference: the heads' sdpa, split and merged; lse gives back its probabilities,
    and its backward is sdpa_backward's, merged."""
    B, T, nh, hs = 2, 7, 3, 4
    rng = np.random.default_rng(6)
    qkv, go = rnd(rng, (B, T, 3 * nh * hs), np.float64), rnd(rng, (B, T, nh * hs), np.float64)
    mask, is_causal, _ = _mask(rng, kind, (B, nh), T, T, np.float64)
    y, lse = reference.qkv_attention_forward(qkv, nh, mask, is_causal)

    def heads(a):  # (B, T, nh * hs) -> (B, nh, T, hs)
        return np.swapaxes(a.reshape(B, T, nh, hs), 1, 2)

    def merged(a):
        return np.swapaxes(a, 1, 2).reshape(B, T, nh * hs)

    q, k, v = (heads(a) for a in np.split(qkv, 3, axis=2))
    out, probs = reference.sdpa_forward(q, k, v, mask, is_causal)
    check(y, merged(out), np.float64)
    dead = ~probs.any(-1)  # queries that may attend no key
    assert np.isneginf(lse[dead]).all() and np.isfinite(lse[~dead]).all()
    scores = reference._scores(q, k, mask, is_causal)
    check(np.where(dead[..., None], 0, np.exp(scores - np.where(dead, 0, lse)[..., None])),
          probs, np.float64)
    grads = reference.sdpa_backward(q, k, v, probs, heads(go), is_causal)
    check(reference.qkv_attention_backward(qkv, lse, go, nh, mask, is_causal),
          np.concatenate([merged(g) for g in grads], axis=2), np.float64)


def test_qkv_attention_float16_takes_the_reference():
    """BLAS multiplies float32 and float64 only: other dtypes get the NumPy kernels."""
    rng = np.random.default_rng(6)
    qkv, go = rnd(rng, (2, 5, 12), np.float16), rnd(rng, (2, 5, 4), np.float16)
    y, lse = fast.qkv_attention_forward(qkv, 2, None, True)
    y_r, lse_r = reference.qkv_attention_forward(qkv, 2, None, True)
    assert y.dtype == np.float16
    np.testing.assert_array_equal(y, y_r)
    np.testing.assert_array_equal(lse, lse_r)
    np.testing.assert_array_equal(fast.qkv_attention_backward(qkv, lse, go, 2, None, True),
                                  reference.qkv_attention_backward(qkv, lse_r, go, 2, None,
                                                                   True))


# ---------------------------------------------------------------------------------------------
# layer norm


@pytest.mark.parametrize("affine", [True, False])
@pytest.mark.parametrize("shape", [(4, 7, 16), (768, 128), (1, 1), (5, 1)])
def test_layer_norm_vs_torch(shape, affine):
    rng = np.random.default_rng(5)
    C = shape[-1]
    x, g = rnd(rng, shape, np.float64, 2.0) + 1.0, rnd(rng, shape, np.float64)
    w, b = (rnd(rng, (C,), np.float64), rnd(rng, (C,), np.float64)) if affine else (None, None)
    tx = t64(x, True)
    tw, tb = (t64(w, True), t64(b, True)) if affine else (None, None)
    ty = tF.layer_norm(tx, (C,), tw, tb, 1e-5)
    ty.backward(t64(g))
    for backend in (reference, fast):
        y, mean, rstd = backend.layer_norm_forward(x, w, b, 1e-5)
        check(y, ty.detach().numpy(), np.float64)
        assert mean.shape == rstd.shape == shape[:-1] + (1,)
        dx, dw, db = backend.layer_norm_backward(g, x, w, mean, rstd)
        check(dx, tx.grad.numpy(), np.float64)
        if affine:
            check(dw, tw.grad.numpy(), np.float64)
            check(db, tb.grad.numpy(), np.float64)
        else:
            assert dw is None


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(12, 64, 128), (3, 1, 7), (1, 1)])
def test_layer_norm_fast_vs_reference(shape, dtype):
    rng = np.random.default_rng(6)
    C = shape[-1]
    x, g = rnd(rng, shape, dtype), rnd(rng, shape, dtype)
    w, b = rnd(rng, (C,), dtype), rnd(rng, (C,), dtype)
    want = reference.layer_norm_forward(x, w, b, 1e-5)
    got = fast.layer_norm_forward(noncontig(x), w, b[::-1][::-1], 1e-5)
    for a, e in zip(got, want, strict=True):
        check(a, e, dtype)
    _, mean, rstd = want
    got = fast.layer_norm_backward(noncontig(g), noncontig(x), w, mean, rstd)
    for a, e in zip(got, reference.layer_norm_backward(g, x, w, mean, rstd), strict=True):
        check(a, e, dtype)


# ---------------------------------------------------------------------------------------------
# cross entropy


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("N,C", [(2048, 65), (768, 65), (5, 3), (1, 1)])
def test_cross_entropy(N, C, dtype):
    rng = np.random.default_rng(7)
    logits = rnd(rng, (N, C), dtype, 3.0)
    targets = rng.integers(0, C, N)
    targets[::3] = -100  # ignored rows
    gl = rnd(rng, (N,), dtype)
    tl = t64(logits, True)
    tloss = tF.cross_entropy(tl, torch.from_numpy(targets), ignore_index=-100, reduction="none")
    tloss.backward(t64(gl))
    for backend in (reference, fast):
        for lg in (logits, noncontig(logits)):
            losses, lse = backend.cross_entropy_forward(lg, targets, -100)
            check(losses, tloss.detach().numpy().astype(dtype), dtype)
            check(lse, torch.logsumexp(t64(logits), -1).numpy().astype(dtype), dtype)
            assert (losses[::3] == 0).all()
            d = backend.cross_entropy_backward(lg, targets, lse, gl, -100)
            check(d, tl.grad.numpy().astype(dtype), dtype)
            assert (d[::3] == 0).all()


# ---------------------------------------------------------------------------------------------
# GELU


@pytest.mark.parametrize("approximate", ["none", "tanh"])
def test_gelu_vs_torch(approximate):
    rng = np.random.default_rng(8)
    x, g = rnd(rng, (4, 33), np.float64, 3.0), rnd(rng, (4, 33), np.float64)
    tx = t64(x, True)
    ty = tF.gelu(tx, approximate=approximate)
    ty.backward(t64(g))
    for backend in (reference, fast):
        check(backend.gelu(x, approximate), ty.detach().numpy(), np.float64)
        check(backend.gelu_backward(x, g, approximate), tx.grad.numpy(), np.float64)
    with pytest.raises(ValueError, match="gelu"):
        fast.gelu(x, "fast")


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("approximate", ["none", "tanh"])
@pytest.mark.parametrize("shape", [(768, 512), (1,), (3, 1, 4)])
def test_gelu_fast_vs_reference(shape, approximate, dtype):
    rng = np.random.default_rng(9)
    x, g = rnd(rng, shape, dtype, 3.0), rnd(rng, shape, dtype)
    check(fast.gelu(noncontig(x), approximate), reference.gelu(x, approximate), dtype)
    want = reference.gelu_backward(x, g, approximate)
    check(fast.gelu_backward(noncontig(x), noncontig(g), approximate), want, dtype)
    for backend in (fast, reference):  # out=grad: grad itself becomes dL/dx
        grad = g.copy()
        assert np.shares_memory(backend.gelu_backward(x, grad, approximate, out=grad), grad)
        check(grad, want, dtype)


def test_gelu_backward_out_must_be_grad():
    x = np.ones((2, 3), np.float32)
    for backend in (fast, reference):
        with pytest.raises(ValueError, match="gelu_backward: out must be grad itself"):
            backend.gelu_backward(x, x.copy(), "none", out=np.empty_like(x))


def test_gelu_float32_tail_is_relatively_exact():
    """float32 erf-form GELU stays within 1e-5 relative of exact down to x = -13 (where
    Phi(x) nears float32's smallest normal), where 1 + erf(x / sqrt(2)) would cancel; its
    gradient within 3e-7 absolute. Exact: float64 with erfc (PyTorch's float64 GELU
    cancels to 0 below x = -8)."""
    x = np.linspace(-13, 10, 100001).astype(np.float32)
    x64 = x.astype(np.float64)
    cdf = 0.5 * np.vectorize(math.erfc)(-x64 / math.sqrt(2))
    dgelu = cdf + x64 * np.exp(-0.5 * x64**2) / math.sqrt(2 * math.pi)
    np.testing.assert_allclose(fast.gelu(x, "none"), x64 * cdf, rtol=1e-5, atol=0)
    np.testing.assert_allclose(fast.gelu_backward(x, np.ones_like(x), "none"), dgelu,
                               rtol=0, atol=3e-7)


# ---------------------------------------------------------------------------------------------
# embedding


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("idx_shape,n", [((12, 64), 65), ((5,), 2), ((1, 1), 1)])
def test_embedding_backward(idx_shape, n, dtype):
    rng = np.random.default_rng(10)
    D = 6
    idx = rng.integers(0, n, idx_shape)
    g = rnd(rng, idx_shape + (D,), dtype)
    tw = t64(np.zeros((n, D)), True)
    tF.embedding(torch.from_numpy(idx), tw).backward(t64(g))
    for backend in (reference, fast):
        check(backend.embedding_backward(idx, g, n), tw.grad.numpy().astype(dtype), dtype)
    check(fast.embedding_backward(idx, noncontig(g), n), reference.embedding_backward(idx, g, n),
          dtype)


def test_embedding_backward_repeats_accumulate():
    g = np.ones((4, 3), np.float32)
    for backend in (reference, fast):
        dw = backend.embedding_backward(np.array([2, 2, 0, 2]), g, 3)
        np.testing.assert_array_equal(dw, [[1, 1, 1], [0, 0, 0], [3, 3, 3]])


# ---------------------------------------------------------------------------------------------
# AdamW


@pytest.mark.parametrize("dtype", DTYPES)
def test_adamw_vs_torch(dtype):
    rng = np.random.default_rng(11)
    shapes = [(65, 16), (16,), (300, 300), (1,)]
    hp = dict(lr=3e-3, beta1=0.9, beta2=0.95, eps=1e-8, weight_decay=0.1)
    start = [rnd(rng, s, dtype) for s in shapes]
    tparams = [torch.nn.Parameter(torch.tensor(p)) for p in start]
    opt = torch.optim.AdamW(tparams, lr=hp["lr"], betas=(hp["beta1"], hp["beta2"]),
                            eps=hp["eps"], weight_decay=hp["weight_decay"])
    states = {b: ([p.copy() for p in start], [np.zeros_like(p) for p in start],
                  [np.zeros_like(p) for p in start]) for b in ("reference", "fast")}
    for step in range(1, 6):
        grads = [rnd(rng, s, dtype) for s in shapes]
        for tp, g in zip(tparams, grads, strict=True):
            tp.grad = torch.tensor(g)
        opt.step()
        for name, (ps, ms, vs) in states.items():
            gs = grads if name == "reference" else [noncontig(g) for g in grads]
            assert (fast if name == "fast" else reference).adamw_step(
                ps, gs, ms, vs, step=step, **hp) is None
    tol = dict(rtol=1e-5, atol=1e-6) if dtype == np.float32 else dict(rtol=1e-12, atol=1e-14)
    for name, (ps, ms, vs) in states.items():
        for p, m, v, tp in zip(ps, ms, vs, tparams, strict=True):
            assert p.dtype == m.dtype == v.dtype == dtype, name
            st = opt.state[tp]
            np.testing.assert_allclose(p, tp.detach().numpy(), **tol, err_msg=name)
            np.testing.assert_allclose(m, st["exp_avg"].numpy(), **tol, err_msg=name)
            np.testing.assert_allclose(v, st["exp_avg_sq"].numpy(), **tol, err_msg=name)


def test_adamw_noncontiguous_param_updates_in_place():
    base = np.ones((4, 6), np.float64)
    view = base[:, ::2]  # a non-contiguous parameter view is updated in place too
    g = np.full(view.shape, 0.5)
    m, v = np.zeros(view.shape), np.zeros(view.shape)
    fast.adamw_step([view], [g], [m], [v], lr=0.1, beta1=0.9, beta2=0.999, eps=1e-8,
                    weight_decay=0.0, step=1)
    np.testing.assert_allclose(base[:, ::2], 1 - 0.1, rtol=1e-6)
    np.testing.assert_array_equal(base[:, 1::2], 1)

"""Numba kernels, signature for signature the same as reference.py.

Each public function is a thin Python wrapper: it makes its inputs C-contiguous, reshapes
them to the few ranks the compiled kernels know (rows (N, C), heads (BH, T, S) or flat), casts
scalars to the array dtype (so float32 work stays float32 inside the kernels), allocates the
outputs and calls an `@numba.njit(cache=True)` kernel. Parallel kernels split rows or
batch x heads over the cores with `prange`.

`_FM` is the fastmath we allow: reassociation and contraction, which only reorder rounding
(and let LLVM vectorise reductions), but not 'nnan'/'ninf', since -inf is a real value here
(masks, dead softmax rows).

Three choices shape the speed (benchmarks/kernels.py measures each kernel against its
reference and PyTorch):
- matmul stays in BLAS, single-threaded per call, with large products split over a small
  pool of minigrad's own threads (OpenBLAS's spinning workers fought Numba's threads);
- exp is computed without libm in float32 (`_exp_nonpositive_f32`), so the softmax,
  cross-entropy and GELU loops vectorise;
- attention keeps its two matmuls in BLAS around one fused Numba pass for scale + mask +
  softmax (and softmax backward + scale): a fully fused Numba loop nest lost to BLAS at the
  medium shapes (0.7-0.9x).
A kernel that does not beat its NumPy reference on the GPT shapes is not kept here.
"""

import math
import os

# Numba's OpenMP workers otherwise spin for a while after each parallel kernel, stealing the
# cores from the BLAS matmul that usually comes next (measured: attention 25-40% slower on 2
# cores). Set before Numba starts its thread pool; an explicit setting by the user wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from concurrent.futures import ThreadPoolExecutor  # noqa: E402

import numba  # noqa: E402
import numpy as np  # noqa: E402
from numba import njit, prange, types  # noqa: E402
from numba.extending import overload  # noqa: E402
from threadpoolctl import threadpool_limits  # noqa: E402

from minigrad.kernels import reference  # noqa: E402
from minigrad.kernels.reference import _additive_mask, _check_approximate  # noqa: E402

# ---------------------------------------------------------------------------------------------
# matmul: BLAS on one thread per call, large products split over minigrad's own threads.
#
# OpenBLAS's worker threads busy-wait for a long while after every call, so on a 2-core
# machine they fight Numba's threads and any other busy process: a training step measured 3-6x
# slower under load with NumPy's default threading. So BLAS runs single-threaded and a large
# product is cut in pieces (batch entries, or rows) computed at once by a pool of threads that
# sleep when idle; NumPy releases the GIL inside BLAS. (A Numba prange over the batch calling
# np.dot was slower than BLAS itself.)

threadpool_limits(1, user_api="blas")
_THREADS = max(1, min(numba.config.NUMBA_NUM_THREADS, os.cpu_count() or 1))
_POOL = ThreadPoolExecutor(_THREADS - 1, "minigrad-matmul") if _THREADS > 1 else None
# Below this, handing work to a thread costs more than it saves (measured: the baby GPT's
# (12, 4, 64, 32) attention products, 12.6 MFLOP, ran 0.7x when split).
_MIN_SPLIT_FLOPS = 16e6
# Arrays smaller than this go to the NumPy reference in a few kernels (AdamW on biases and
# norms, cross-entropy backward on the baby GPT's logits): there the cost of a call dominates
# and a (parallel) Numba launch costs more than NumPy's few vectorised passes.
_SMALL = 1 << 16


def _pieces(n):
    """`_THREADS` slices of nearly equal length that cover range(n)."""
    bounds = [n * i // _THREADS for i in range(_THREADS + 1)]
    return [slice(lo, hi) for lo, hi in zip(bounds[:-1], bounds[1:], strict=True) if hi > lo]


def _split(a, b, out, lead):
    """Argument triples (a, b, out) for np.matmul that cover `out` piece by piece."""
    if lead and a.shape[:-2] == lead and b.shape[:-2] == lead and lead[0] >= _THREADS:
        return [(a[s], b[s], out[s]) for s in _pieces(lead[0])]  # batch entries
    if a.shape[:-2] == lead and a.shape[-2] >= 8 * _THREADS:
        return [(a[..., s, :], b, out[..., s, :]) for s in _pieces(a.shape[-2])]  # rows
    return None


def matmul(a, b):
    """a (..., n, k) @ b (..., k, m) -> (..., n, m), batch dims broadcast as NumPy's."""
    lead = np.broadcast_shapes(a.shape[:-2], b.shape[:-2])
    out = np.empty(lead + (a.shape[-2], b.shape[-1]), dtype=np.result_type(a.dtype, b.dtype))
    flops = 2 * out.size * a.shape[-1]
    parts = None if _POOL is None or flops < _MIN_SPLIT_FLOPS else _split(a, b, out, lead)
    if parts is None:
        return np.matmul(a, b, out=out)
    pending = [_POOL.submit(np.matmul, *part) for part in parts[1:]]
    np.matmul(*parts[0])
    for job in pending:
        job.result()
    return out

_FM = {"reassoc", "contract", "nsz", "arcp"}


def _c(a):
    """`a` as a C-contiguous, writeable ndarray (copied only when it is not already).

    Numba compiles one specialisation per layout and per read-only flag, so always handing it
    writeable C arrays keeps it to one compiled signature per dtype.
    """
    a = np.ascontiguousarray(a)
    if not a.flags.writeable:
        a = a.copy()
    return a


def _rows(x):
    """x (..., C) as a C-contiguous (N, C) array."""
    x = _c(x)
    return x.reshape(-1, x.shape[-1]) if x.ndim != 2 else x


# ---------------------------------------------------------------------------------------------
# exp without libm, so that loops over it vectorise
#
# Numba turns math.exp / np.exp into a call to the scalar libm exp per element, which keeps
# LLVM from vectorising the loop around it. Every exp in softmax, cross-entropy and GELU is
# of a number <= 0 (x - max, -z^2), so in float32 it is computed with multiplies, adds and
# selects only: 2^y with y = x log2(e) split as n + f; 2^f by a degree-6 polynomial (least
# squares on [0, 1], relative error < 1e-7) and 2^n by multiplying the powers 2^-1, 2^-2,
# ..., 2^-64 that the bits of -n select. float64 keeps math.exp.

_EXP2_COEFS = tuple(float(c) for c in np.polynomial.polynomial.polyfit(
    (1 - np.cos(np.pi * (np.arange(200) + 0.5) / 200)) / 2,  # Chebyshev nodes on [0, 1]
    2.0 ** ((1 - np.cos(np.pi * (np.arange(200) + 0.5) / 200)) / 2), 6))

@njit(inline="always", fastmath=_FM)
def _exp_nonpositive_f32(x):
    """exp(x) for x <= 0 in float32 (x below -87 gives about 1e-38)."""
    c = np.float32
    e = _EXP2_COEFS
    y = x * c(1.4426950408889634)  # log2(e)
    underflow = y < c(-126.0)  # below float32's normal range (and exp(-inf)): exactly 0
    y = y if not underflow else c(-126.0)
    n = np.floor(y)  # (np.floor, not math.floor: NaN passes through instead of raising)
    f = y - n
    p = c(e[6])
    p = p * f + c(e[5])
    p = p * f + c(e[4])
    p = p * f + c(e[3])
    p = p * f + c(e[2])
    p = p * f + c(e[1])
    p = p * f + c(e[0])
    m = np.int32(-n)  # 2^n = 2^-m, m in [0, 126]: one factor per set bit of m
    p = p * (c(2.0**-1) if m & 1 else c(1))
    p = p * (c(2.0**-2) if m & 2 else c(1))
    p = p * (c(2.0**-4) if m & 4 else c(1))
    p = p * (c(2.0**-8) if m & 8 else c(1))
    p = p * (c(2.0**-16) if m & 16 else c(1))
    p = p * (c(2.0**-32) if m & 32 else c(1))
    p = p * (c(2.0**-64) if m & 64 else c(1))
    return p if not underflow else c(0)


def _exp_nonpositive(x):
    """exp(x) for x <= 0: the vectorisable version in float32, math.exp otherwise."""
    return math.exp(x)


@overload(_exp_nonpositive, jit_options={"fastmath": _FM}, inline="always")
def _exp_nonpositive_overload(x):
    if x == types.float32:
        return lambda x: _exp_nonpositive_f32(x)
    return lambda x: math.exp(x)


# ---------------------------------------------------------------------------------------------
# softmax family (rows in parallel)
@njit(parallel=True, cache=True, fastmath=_FM)
def _softmax_rows(x, out, take_log):
    # x (N, C) -> softmax (or log-softmax) rows; a row of all -inf gives 0 (or -inf)
    N, C = x.shape
    zero = x.dtype.type(0)
    for r in prange(N):
        m = x[r, 0]
        for c in range(1, C):
            m = max(m, x[r, c])
        if m == -np.inf:
            out[r, :] = -np.inf if take_log else zero
            continue
        s = zero
        for c in range(C):
            e = _exp_nonpositive(x[r, c] - m)
            out[r, c] = e
            s += e
        if take_log:
            lse = m + math.log(s)
            for c in range(C):
                out[r, c] = x[r, c] - lse
        else:
            inv = x.dtype.type(1) / s
            for c in range(C):
                out[r, c] *= inv


def _softmax_family(x, take_log):
    x2 = _rows(x)
    out = np.empty_like(x2)
    _softmax_rows(x2, out, take_log)
    return out.reshape(np.shape(x))


def softmax(x):
    """Softmax over the last axis; a row that is entirely -inf becomes all zeros."""
    return _softmax_family(x, False)


def log_softmax(x):
    """Log-softmax over the last axis; a row that is entirely -inf stays -inf."""
    return _softmax_family(x, True)


@njit(parallel=True, cache=True, fastmath=_FM)
def _log_softmax_backward_rows(y, grad, out):
    N, C = y.shape
    for r in prange(N):
        m = y[r, 0]
        for c in range(1, C):
            m = max(m, y[r, c])
        if m == -np.inf:
            out[r, :] = 0  # a dead row (all -inf): zero gradient, never NaN
            continue
        total = y.dtype.type(0)
        for c in range(C):
            total += grad[r, c]
        for c in range(C):
            out[r, c] = grad[r, c] - _exp_nonpositive(y[r, c]) * total


def _rows_backward(kernel, y, grad):
    """Run a (y, grad, out) rows kernel over the last axis of y (..., C) and grad."""
    y2, g2 = _rows(y), _rows(np.asarray(grad, dtype=y.dtype))
    out = np.empty_like(y2)
    kernel(y2, g2, out)
    return out.reshape(y.shape)


def log_softmax_backward(y, grad):
    """dL/dx from the log-softmax output y: grad - softmax * sum(grad); zero on -inf rows."""
    return _rows_backward(_log_softmax_backward_rows, y, grad)


@njit(parallel=True, cache=True, fastmath=_FM)
def _softmax_backward_rows(y, grad, out):
    N, C = y.shape
    for r in prange(N):
        dot = y.dtype.type(0)
        for c in range(C):
            dot += grad[r, c] * y[r, c]
        for c in range(C):
            out[r, c] = y[r, c] * (grad[r, c] - dot)


def softmax_backward(y, grad):
    """dL/dx from the softmax output y and dL/dy: y * (grad - sum(grad * y))."""
    return _rows_backward(_softmax_backward_rows, y, grad)


# ---------------------------------------------------------------------------------------------
# attention: BLAS matmuls around one fused Numba kernel, rows of batch x heads in parallel


@njit(parallel=True, cache=True, fastmath=_FM)
def _attn_softmax(scores, mask, has_mask, is_causal, scale):
    # scores (BH, T, S) -> probs in place: scale, mask, causal mask and softmax in one pass.
    # mask (M, Tm, S): M = 1 (shared), a divisor of BH (one per batch entry, shared by its
    # BH / M heads, e.g. key padding) or BH; Tm = T, or 1 (one row for every query).
    BH, T, S = scores.shape
    zero, one = scores.dtype.type(0), scores.dtype.type(1)
    heads_per_mask = BH // mask.shape[0]
    mask_rows = mask.shape[1] > 1
    for r in prange(BH * T):  # one (head, query) row each
        b, i = np.int64(r) // T, np.int64(r) % T  # (prange's index is unsigned)
        mb, mi = b // heads_per_mask, i if mask_rows else 0
        row = scores[b, i]  # (S,)
        jmax = min(i + 1, S) if is_causal else S  # keys j >= jmax are masked out
        m = scores.dtype.type(-np.inf)  # (a float64 -inf would make every exp float64)
        for j in range(jmax):
            x = row[j] * scale
            if has_mask:
                x += mask[mb, mi, j]
            row[j] = x
            m = max(m, x)
        if m == -np.inf:  # a fully masked row: zero probabilities, no NaN
            row[:] = zero
            continue
        s = zero
        for j in range(jmax):
            e = _exp_nonpositive(row[j] - m)
            row[j] = e
            s += e
        inv = one / s
        for j in range(jmax):
            row[j] *= inv
        row[jmax:] = zero


@njit(parallel=True, cache=True, fastmath=_FM)
def _attn_softmax_backward(probs, dprobs, scale):
    # dprobs (BH, T, S) -> dscores in place: probs * (dprobs - sum(dprobs * probs)) * scale
    BH, T, S = probs.shape
    for r in prange(BH * T):
        b, i = np.int64(r) // T, np.int64(r) % T
        dot = probs.dtype.type(0)
        for j in range(S):
            dot += probs[b, i, j] * dprobs[b, i, j]
        for j in range(S):
            dprobs[b, i, j] = probs[b, i, j] * (dprobs[b, i, j] - dot) * scale


def _mask3(add, lead, T, S):
    """An additive mask broadcastable to lead + (T, S) as the (M, Tm, S) array that
    _attn_softmax reads, without repeating what it shares: M = 1 when it is the same for
    every batch entry and head, M = the product of its leading dims when it varies only on
    the first ones (a key padding mask (B, 1, 1, S): one row per batch entry), else one
    slab per head; Tm = 1 when every query has the same row."""
    add = add.reshape((1,) * (len(lead) + 2 - add.ndim) + add.shape)
    Tm = T if add.shape[-2] > 1 else 1
    varies = [i for i, n in enumerate(add.shape[:-2]) if n > 1]
    n_lead = varies[-1] + 1 if varies else 0  # leading axes up to the last that varies
    if any(add.shape[i] != lead[i] for i in range(n_lead)):  # e.g. (1, nh, ...): per head
        n_lead = len(lead)
    shape = lead[:n_lead] + (1,) * (len(lead) - n_lead) + (Tm, S)
    return _c(np.broadcast_to(add, shape)).reshape(-1, Tm, S)


def sdpa_forward(q, k, v, mask, is_causal, scale):
    """Scaled dot-product attention: softmax(q @ k^T * scale + mask) @ v.

    q (..., T, d), k and v (..., S, d) with the same leading dims (callers broadcast first).
    `mask` is None or broadcastable to (..., T, S): bool (True = may attend) or additive
    float. `is_causal` lets query i attend keys j <= i (top-left aligned, as PyTorch's).
    `scale` None means 1/sqrt(d). Returns (out (..., T, d), probs (..., T, S)); masked
    entries of probs are exactly 0 and a fully masked row gives zeros, never NaN.
    """
    dt = q.dtype
    if scale is None:
        scale = 1.0 / math.sqrt(q.shape[-1])
    lead, T, S = q.shape[:-2], q.shape[-2], k.shape[-2]
    k, v = np.asarray(k, dtype=dt), np.asarray(v, dtype=dt)
    # q, k, v are usually strided views into the fused (B, T, 3C) projection: BLAS reads
    # them in place (each (T, d) slab has unit stride along d), so they are not copied.
    probs = matmul(q, np.swapaxes(k, -1, -2))  # (..., T, S) scores, then probs in place
    probs3 = probs.reshape(-1, T, S)  # (BH, T, S), a view: matmul's output is contiguous
    if mask is None:
        m3 = np.zeros((1, 1, 1), dt)
    else:
        m3 = _mask3(_additive_mask(mask, dt), lead, T, S)
    # The two matmuls go to BLAS (np.matmul beat a hand-written Numba loop nest, see the
    # module docstring); Numba fuses everything between them.
    _attn_softmax(probs3, m3, mask is not None, bool(is_causal), dt.type(scale))
    return matmul(probs, v), probs  # (..., T, dv), (..., T, S)


def sdpa_backward(q, k, v, probs, grad_out, scale):
    """Gradients (dq, dk, dv) of sdpa_forward, from its probs and dL/dout (..., T, d).

    The mask is a constant, so it needs no gradient: it is already folded into probs.
    """
    dt = q.dtype
    if scale is None:
        scale = 1.0 / math.sqrt(q.shape[-1])
    T, S = q.shape[-2], k.shape[-2]
    k, v = np.asarray(k, dtype=dt), np.asarray(v, dtype=dt)
    probs, grad_out = _c(np.asarray(probs, dtype=dt)), np.asarray(grad_out, dtype=dt)
    dv = matmul(np.swapaxes(probs, -1, -2), grad_out)  # (..., S, dv)
    ds = matmul(grad_out, np.swapaxes(v, -1, -2))  # (..., T, S) dprobs, then dscores in place
    _attn_softmax_backward(probs.reshape(-1, T, S), ds.reshape(-1, T, S), dt.type(scale))
    dq = matmul(ds, k)  # (..., T, d)
    dk = matmul(np.swapaxes(ds, -1, -2), q)  # (..., S, d)
    return dq, dk, dv


# ---------------------------------------------------------------------------------------------
# layer norm


@njit(parallel=True, cache=True, fastmath=_FM)
def _ln_fwd(x, w, bias, eps, y, mean, rstd):
    N, C = x.shape
    inv_c, one = x.dtype.type(1.0 / C), x.dtype.type(1)
    for r in prange(N):
        s = x.dtype.type(0)
        for c in range(C):
            s += x[r, c]
        mu = s * inv_c
        var = x.dtype.type(0)
        for c in range(C):  # two passes: no cancellation in E[x^2] - E[x]^2
            d = x[r, c] - mu
            var += d * d
        rs = one / np.sqrt(var * inv_c + eps)
        mean[r] = mu
        rstd[r] = rs
        for c in range(C):
            y[r, c] = (x[r, c] - mu) * rs * w[c] + bias[c]


@njit(parallel=True, cache=True, fastmath=_FM)
def _ln_bwd(grad, x, w, mean, rstd, dx, dw_part, db_part):
    N, C = x.shape
    nchunk = dw_part.shape[0]  # each chunk of rows sums its own dweight/dbias: no races
    inv_c = x.dtype.type(1.0 / C)
    for ch in prange(nchunk):
        for r in range(ch * N // nchunk, (ch + 1) * N // nchunk):
            mu, rs = mean[r], rstd[r]
            sg = x.dtype.type(0)
            sgx = x.dtype.type(0)
            for c in range(C):
                xh = (x[r, c] - mu) * rs
                g = grad[r, c] * w[c]
                sg += g
                sgx += g * xh
                dw_part[ch, c] += grad[r, c] * xh
                db_part[ch, c] += grad[r, c]
            mg, mgx = sg * inv_c, sgx * inv_c
            for c in range(C):
                xh = (x[r, c] - mu) * rs
                dx[r, c] = (grad[r, c] * w[c] - mg - xh * mgx) * rs


def layer_norm_forward(x, weight, bias, eps):
    """LayerNorm over the last axis: (x - mean) * rstd * weight + bias.

    weight and bias (C,) may each be None. Returns (y like x, mean (..., 1), rstd (..., 1)),
    where rstd = 1 / sqrt(var + eps) with the biased variance, as PyTorch's.
    """
    x2 = _rows(x)
    dt, C = x2.dtype, x2.shape[1]
    w = np.ones(C, dt) if weight is None else _c(np.asarray(weight, dtype=dt))
    b = np.zeros(C, dt) if bias is None else _c(np.asarray(bias, dtype=dt))
    y = np.empty_like(x2)
    mean = np.empty(x2.shape[0], dt)
    rstd = np.empty(x2.shape[0], dt)
    _ln_fwd(x2, w, b, dt.type(eps), y, mean, rstd)
    stat_shape = x.shape[:-1] + (1,)
    return y.reshape(x.shape), mean.reshape(stat_shape), rstd.reshape(stat_shape)


def layer_norm_backward(grad, x, weight, mean, rstd):
    """Gradients (dx, dweight, dbias) of layer_norm_forward, from dL/dy.

    dweight is None when weight is None. dbias is always returned (it is sum(grad) over the
    rows); a caller whose layer has no bias ignores it.
    """
    x2 = _rows(x)
    dt, (N, C) = x2.dtype, x2.shape
    g2 = _rows(np.asarray(grad, dtype=dt))
    w = np.ones(C, dt) if weight is None else _c(np.asarray(weight, dtype=dt))
    nchunk = max(1, min(numba.get_num_threads(), N))
    dw_part = np.zeros((nchunk, C), dt)
    db_part = np.zeros((nchunk, C), dt)
    dx = np.empty_like(x2)
    _ln_bwd(g2, x2, w, _c(mean).reshape(-1), _c(rstd).reshape(-1), dx, dw_part, db_part)
    dweight = dw_part.sum(axis=0) if weight is not None else None
    return dx.reshape(x.shape), dweight, db_part.sum(axis=0)


# ---------------------------------------------------------------------------------------------
# cross entropy
# cross_entropy_forward/backward: NumPy's SIMD exp beat Numba's scalar exp on (B*T, 65) logits
# (0.6-0.9x at the medium shapes, benchmarks/kernels.py), so the reference serves both.
@njit(parallel=True, cache=True, fastmath=_FM)
def _cross_entropy_rows(logits, targets, ignore_index, losses, lse):
    # One pass per row: max, logsumexp, and the loss of the target class.
    N, C = logits.shape
    for r in prange(N):
        m = logits[r, 0]
        for c in range(1, C):
            m = max(m, logits[r, c])
        s = logits.dtype.type(0)
        for c in range(C):
            s += _exp_nonpositive(logits[r, c] - m)
        lse[r] = m + math.log(s)
        t = targets[r]
        losses[r] = 0 if t == ignore_index else lse[r] - logits[r, t]


@njit(parallel=True, cache=True, fastmath=_FM)
def _cross_entropy_bwd_rows(logits, targets, lse, grad_losses, ignore_index, out):
    N, C = logits.shape
    for r in prange(N):
        t = targets[r]
        if t == ignore_index:
            out[r, :] = 0
            continue
        g = grad_losses[r]
        for c in range(C):
            out[r, c] = _exp_nonpositive(logits[r, c] - lse[r]) * g
        out[r, t] -= g


def cross_entropy_forward(logits, targets, ignore_index):
    """Per-row cross entropy of logits (N, C) against int targets (N,): (losses, lse)."""
    x = _rows(logits)
    t = _ints(targets)
    losses = np.empty(x.shape[0], dtype=x.dtype)
    lse = np.empty(x.shape[0], dtype=x.dtype)
    _cross_entropy_rows(x, t, ignore_index, losses, lse)
    return losses, lse


def cross_entropy_backward(logits, targets, lse, grad_losses, ignore_index):
    """dL/dlogits = (softmax(logits) - onehot(target)) * grad_losses per row; 0 if ignored."""
    if np.size(logits) < _SMALL:  # NumPy's one vectorised pass wins below a parallel launch
        return reference.cross_entropy_backward(logits, targets, lse, grad_losses, ignore_index)
    x = _rows(logits)
    g = _c(np.broadcast_to(np.asarray(grad_losses, dtype=x.dtype), (x.shape[0],)))
    out = np.empty_like(x)
    _cross_entropy_bwd_rows(x, _ints(targets), _c(np.asarray(lse, dtype=x.dtype)), g,
                            ignore_index, out)
    return out


def _ints(a):
    """Integer indices as a flat C-contiguous int64 array (one compiled signature)."""
    return _c(np.asarray(a, dtype=np.int64)).reshape(-1)


# ---------------------------------------------------------------------------------------------
# GELU (elementwise, flat, in parallel)


# float32 GELU without libm. math.erf is a scalar libm call (about 10 ns an element), which
# made GELU the slowest op of a training step. In float32, erfc(z) for z >= 0 is Numerical
# Recipes' erfcc, t exp(-z^2 + P(t)) with t = 1 / (1 + z/2), relative error < 1.2e-7, with
# the vectorisable exp above: GELU within 2.5e-7 of exact (PyTorch's float32 GELU: 1.1e-6).
# float64 keeps math.erf and math.exp (exact), since float64 is for gradient checks.
_ERFC_COEFS = (-1.26551223, 1.00002368, 0.37409196, 0.09678418, -0.18628806, 0.27886807,
               -1.13520398, 1.48851587, -0.82215223, 0.17087277)


@njit(inline="always", fastmath=_FM)
def _normal_cdf_f32(x):
    """Phi(x) = 0.5 erfc(-x / sqrt(2)) in float32."""
    c = np.float32
    e = _ERFC_COEFS
    z = abs(x) * c(0.7071067811865476)
    t = c(1) / (c(1) + c(0.5) * z)
    p = c(e[9])
    p = p * t + c(e[8])
    p = p * t + c(e[7])
    p = p * t + c(e[6])
    p = p * t + c(e[5])
    p = p * t + c(e[4])
    p = p * t + c(e[3])
    p = p * t + c(e[2])
    p = p * t + c(e[1])
    p = p * t + c(e[0])
    half_erfc = c(0.5) * t * _exp_nonpositive_f32(p - z * z)
    return c(1) - half_erfc if x >= 0 else half_erfc


@njit(inline="always", fastmath=_FM)
def _tanh_f32(u):
    """tanh(u) in float32 from exp(-2|u|)."""
    e = _exp_nonpositive_f32(np.float32(-2) * abs(u))
    t = (np.float32(1) - e) / (np.float32(1) + e)
    return t if u >= 0 else -t


@njit(parallel=True, cache=True, fastmath=_FM)
def _gelu_f32(x, use_tanh, out):
    c = np.float32
    for i in prange(x.size):
        xi = x[i]
        if use_tanh:
            u = c(0.7978845608028654) * (xi + c(0.044715) * xi * xi * xi)  # sqrt(2/pi) (...)
            out[i] = c(0.5) * xi * (c(1) + _tanh_f32(u))
        else:
            out[i] = xi * _normal_cdf_f32(xi)


@njit(parallel=True, cache=True, fastmath=_FM)
def _gelu_bwd_f32(x, grad, use_tanh, out):
    c = np.float32
    for i in prange(x.size):
        xi = x[i]
        if use_tanh:
            t = _tanh_f32(c(0.7978845608028654) * (xi + c(0.044715) * xi * xi * xi))
            dinner = c(0.7978845608028654) * (c(1) + c(3 * 0.044715) * xi * xi)
            out[i] = grad[i] * (c(0.5) * (c(1) + t) + c(0.5) * xi * (c(1) - t * t) * dinner)
        else:
            pdf = _exp_nonpositive_f32(c(-0.5) * xi * xi) * c(0.3989422804014327)
            out[i] = grad[i] * (_normal_cdf_f32(xi) + xi * pdf)


@njit(parallel=True, cache=True)
def _gelu_f64(x, use_tanh, out):
    for i in prange(x.size):
        xi = x[i]
        if use_tanh:
            out[i] = 0.5 * xi * (1.0 + math.tanh(math.sqrt(2 / math.pi) * (xi + 0.044715 * xi**3)))
        else:
            out[i] = 0.5 * xi * (1.0 + math.erf(xi / math.sqrt(2)))


@njit(parallel=True, cache=True)
def _gelu_bwd_f64(x, grad, use_tanh, out):
    k = math.sqrt(2 / math.pi)
    for i in prange(x.size):
        xi = x[i]
        if use_tanh:
            t = math.tanh(k * (xi + 0.044715 * xi**3))
            dinner = k * (1.0 + 3 * 0.044715 * xi * xi)
            out[i] = grad[i] * (0.5 * (1.0 + t) + 0.5 * xi * (1.0 - t * t) * dinner)
        else:
            cdf = 0.5 * (1.0 + math.erf(xi / math.sqrt(2)))
            pdf = math.exp(-0.5 * xi * xi) / math.sqrt(2 * math.pi)
            out[i] = grad[i] * (cdf + xi * pdf)


def gelu(x, approximate):
    """GELU: x * Phi(x) with the erf form ("none") or PyTorch's tanh approximation ("tanh")."""
    _check_approximate(approximate)
    x1 = _c(x).reshape(-1)
    out = np.empty_like(x1)
    kernel = _gelu_f32 if x1.dtype == np.float32 else _gelu_f64
    kernel(x1, approximate == "tanh", out)
    return out.reshape(np.shape(x))


def gelu_backward(x, grad, approximate):
    """dL/dx of gelu from dL/dy."""
    _check_approximate(approximate)
    x1 = _c(x).reshape(-1)
    g1 = _c(np.asarray(grad, dtype=x1.dtype)).reshape(-1)
    out = np.empty_like(x1)
    kernel = _gelu_bwd_f32 if x1.dtype == np.float32 else _gelu_bwd_f64
    kernel(x1, g1, approximate == "tanh", out)
    return out.reshape(np.shape(x))


# ---------------------------------------------------------------------------------------------
# embedding


@njit(cache=True)
def _embedding_bwd(idx, grad, dweight):
    # serial: repeated indices write the same row, and the work (N x D adds) is too small
    # for threads to pay
    for n in range(idx.size):
        row = dweight[idx[n]]
        for d in range(grad.shape[1]):
            row[d] += grad[n, d]


def embedding_backward(idx, grad, num_embeddings):
    """dL/dweight (num_embeddings, D): the rows of grad (..., D) summed by int idx (...)."""
    g2 = _rows(grad)
    dweight = np.zeros((num_embeddings, g2.shape[1]), g2.dtype)
    _embedding_bwd(_ints(idx), g2, dweight)
    return dweight


# ---------------------------------------------------------------------------------------------
# optimizer: one pass over each parameter's four arrays, in place (NumPy makes ~10 passes)


@njit(parallel=True, cache=True, fastmath=_FM)
def _adamw_parallel(p, g, m, v, decay, b1, b2, step_size, inv_bc2_sqrt, eps):
    for i in prange(p.size):
        gi = g[i]
        mi = b1 * m[i] + (1 - b1) * gi
        vi = b2 * v[i] + (1 - b2) * gi * gi
        m[i] = mi
        v[i] = vi
        p[i] = p[i] * decay - step_size * mi / (math.sqrt(vi) * inv_bc2_sqrt + eps)


def adamw_step(params, grads, exp_avgs, exp_avg_sqs, lr, beta1, beta2, eps, weight_decay, step):
    """One in-place AdamW update of lists of arrays, exactly PyTorch's formula. Returns None."""
    for p, g, m, v in zip(params, grads, exp_avgs, exp_avg_sqs, strict=True):
        contiguous = p.flags.c_contiguous and m.flags.c_contiguous and v.flags.c_contiguous
        if p.size < _SMALL or not contiguous:
            reference.adamw_step([p], [g], [m], [v], lr, beta1, beta2, eps, weight_decay, step)
            continue
        f = p.dtype.type
        _adamw_parallel(p.reshape(-1), _c(np.asarray(g, dtype=p.dtype)).reshape(-1),
                        m.reshape(-1), v.reshape(-1), f(1 - lr * weight_decay), f(beta1),
                        f(beta2), f(lr / (1 - beta1**step)), f(1 / math.sqrt(1 - beta2**step)),
                        f(eps))

"""Numba kernels, signature for signature the same as reference.py.

Each public function is a thin Python wrapper: it makes its inputs C-contiguous, reshapes
them to the few ranks the compiled kernels know (rows (N, C), heads (BH, T, d) or flat), casts
scalars to the array dtype (so float32 work stays float32 inside the kernels), allocates the
outputs and calls an `@numba.njit(cache=True)` kernel. Parallel kernels split rows or
batch x heads over the cores with `prange`.

`_FM` is the fastmath we allow: reassociation and contraction, which only reorder rounding
(and let LLVM vectorise reductions), but not 'nnan'/'ninf', since -inf is a real value here
(masks, dead softmax rows).

A kernel that did not beat its NumPy reference on the GPT shapes (see benchmarks/kernels.py)
is re-exported from reference.py instead, with a comment saying why.
"""

import math

import numba
import numpy as np
from numba import njit, prange

from minigrad.kernels import reference
from minigrad.kernels.reference import _additive_mask, _check_approximate

# matmul: NumPy's np.matmul already calls multithreaded BLAS per matrix; a Numba prange over
# the batch calling np.dot was slower on the GPT shapes (benchmarks/kernels.py).
matmul = reference.matmul

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
# softmax family (rows in parallel)


@njit(parallel=True, cache=True, fastmath=_FM)
def _softmax_rows(x, out):
    N, C = x.shape
    zero, one = x.dtype.type(0), x.dtype.type(1)
    for r in prange(N):
        m = x[r, 0]
        for c in range(1, C):
            m = max(m, x[r, c])
        if not np.isfinite(m):  # an all -inf row: exp(-inf - 0) = 0 below, no NaN
            m = zero
        s = zero
        for c in range(C):
            e = np.exp(x[r, c] - m)
            out[r, c] = e
            s += e
        inv = one / s if s != zero else one
        for c in range(C):
            out[r, c] *= inv


@njit(parallel=True, cache=True, fastmath=_FM)
def _log_softmax_rows(x, out):
    N, C = x.shape
    zero = x.dtype.type(0)
    for r in prange(N):
        m = x[r, 0]
        for c in range(1, C):
            m = max(m, x[r, c])
        if not np.isfinite(m):
            m = zero
        s = zero
        for c in range(C):
            s += np.exp(x[r, c] - m)
        lse = m + np.log(s) if s != zero else m  # an all -inf row stays -inf
        for c in range(C):
            out[r, c] = x[r, c] - lse


@njit(parallel=True, cache=True, fastmath=_FM)
def _softmax_backward_rows(y, grad, out):
    N, C = y.shape
    for r in prange(N):
        dot = y.dtype.type(0)
        for c in range(C):
            dot += grad[r, c] * y[r, c]
        for c in range(C):
            out[r, c] = y[r, c] * (grad[r, c] - dot)


@njit(parallel=True, cache=True, fastmath=_FM)
def _log_softmax_backward_rows(y, grad, out):
    N, C = y.shape
    zero = y.dtype.type(0)
    for r in prange(N):
        s = zero
        dead = True
        for c in range(C):
            s += grad[r, c]
            dead = dead and y[r, c] == -np.inf
        if dead:  # an all -inf row has no gradient (exp(-inf) * sum would be fine, but
            out[r, :] = zero  # the reference defines it as exactly zero)
            continue
        for c in range(C):
            out[r, c] = grad[r, c] - np.exp(y[r, c]) * s


def softmax(x):
    """Softmax over the last axis; a row that is entirely -inf becomes all zeros."""
    x2 = _rows(x)
    out = np.empty_like(x2)
    _softmax_rows(x2, out)
    return out.reshape(np.shape(x))


def softmax_backward(y, grad):
    """dL/dx from the softmax output y and dL/dy: y * (grad - sum(grad * y))."""
    y2, g2 = _rows(y), _rows(np.asarray(grad, dtype=y.dtype))
    out = np.empty_like(y2)
    _softmax_backward_rows(y2, g2, out)
    return out.reshape(y.shape)


def log_softmax(x):
    """Log-softmax over the last axis; a row that is entirely -inf stays -inf."""
    x2 = _rows(x)
    out = np.empty_like(x2)
    _log_softmax_rows(x2, out)
    return out.reshape(np.shape(x))


def log_softmax_backward(y, grad):
    """dL/dx from the log-softmax output y: grad - softmax * sum(grad); zero on -inf rows."""
    y2, g2 = _rows(y), _rows(np.asarray(grad, dtype=y.dtype))
    out = np.empty_like(y2)
    _log_softmax_backward_rows(y2, g2, out)
    return out.reshape(y.shape)


# ---------------------------------------------------------------------------------------------
# attention: one fused kernel per direction, batch x heads in parallel


@njit(parallel=True, cache=True, fastmath=_FM)
def _sdpa_fwd(q, k, v, mask, has_mask, is_causal, scale, out, probs):
    BH, T, D = q.shape  # (BH, T, d)
    S, Dv = v.shape[1], v.shape[2]  # k (BH, S, d), v (BH, S, dv)
    zero, one = q.dtype.type(0), q.dtype.type(1)
    per_head_mask = mask.shape[0] > 1  # else one (1, T, S) mask shared by every head
    for b in prange(BH):
        kt = np.empty((D, S), q.dtype)  # k[b]^T, so the score loop runs along contiguous j
        for j in range(S):
            for d in range(D):
                kt[d, j] = k[b, j, d]
        mb = np.int64(b) if per_head_mask else np.int64(0)  # (prange's index is unsigned)
        for i in range(T):
            row = probs[b, i]  # (S,): scores, then probabilities, in place
            o = out[b, i]  # (dv,)
            jmax = min(i + 1, S) if is_causal else S  # keys j >= jmax are masked out
            row[:] = zero
            for d in range(D):
                qd = q[b, i, d] * scale
                for j in range(jmax):
                    row[j] += qd * kt[d, j]
            if has_mask:
                for j in range(jmax):
                    row[j] += mask[mb, i, j]
            m = row[0] if jmax > 0 else -np.inf
            for j in range(1, jmax):
                m = max(m, row[j])
            o[:] = zero
            if m == -np.inf:  # a fully masked row: zero probabilities and output, no NaN
                row[:] = zero
                continue
            s = zero
            for j in range(jmax):
                e = np.exp(row[j] - m)
                row[j] = e
                s += e
            inv = one / s
            for j in range(jmax):
                p = row[j] * inv
                row[j] = p
                for d in range(Dv):
                    o[d] += p * v[b, j, d]


@njit(parallel=True, cache=True, fastmath=_FM)
def _sdpa_bwd(q, k, v, probs, go, scale, dq, dk, dv):
    BH, T, D = q.shape
    S, Dv = v.shape[1], v.shape[2]
    zero = q.dtype.type(0)
    for b in prange(BH):
        vt = np.empty((Dv, S), q.dtype)  # v[b]^T, so dprobs runs along contiguous j
        for j in range(S):
            for d in range(Dv):
                vt[d, j] = v[b, j, d]
        ds = np.empty(S, q.dtype)
        for i in range(T):
            p = probs[b, i]  # (S,)
            jmax = S  # keys past the last nonzero probability (causal) contribute nothing
            while jmax > 0 and p[jmax - 1] == zero:
                jmax -= 1
            dqi = dq[b, i]  # (d,)
            dqi[:] = zero
            if jmax == 0:
                continue
            ds[:jmax] = zero
            for d in range(Dv):  # dprobs = grad_out @ v^T
                g = go[b, i, d]
                for j in range(jmax):
                    ds[j] += g * vt[d, j]
            dot = zero
            for j in range(jmax):
                dot += p[j] * ds[j]
            for j in range(jmax):  # softmax backward, then the score scale
                dsj = p[j] * (ds[j] - dot) * scale
                pj = p[j]
                for d in range(D):
                    dqi[d] += dsj * k[b, j, d]
                    dk[b, j, d] += dsj * q[b, i, d]
                for d in range(Dv):
                    dv[b, j, d] += pj * go[b, i, d]


def _heads(a):
    """a (..., n, d) as a C-contiguous (BH, n, d) array."""
    a = _c(a)
    return a.reshape(-1, a.shape[-2], a.shape[-1])


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
    q3, k3, v3 = _heads(q), _heads(np.asarray(k, dtype=dt)), _heads(np.asarray(v, dtype=dt))
    BH = q3.shape[0]
    if mask is None:
        m3 = np.zeros((1, 1, 1), dt)
    else:
        add = _additive_mask(mask, dt)
        if add.ndim <= 2 or add.size == add.shape[-2] * add.shape[-1]:
            m3 = _c(np.broadcast_to(add.reshape(add.shape[-2:]), (T, S))).reshape(1, T, S)
        else:  # a mask that differs across batch or heads: one (T, S) slab per head
            m3 = _c(np.broadcast_to(add, lead + (T, S))).reshape(BH, T, S)
    out = np.empty((BH, T, v3.shape[-1]), dt)  # (BH, T, dv)
    probs = np.empty((BH, T, S), dt)  # (BH, T, S)
    _sdpa_fwd(q3, k3, v3, m3, mask is not None, bool(is_causal), dt.type(scale), out, probs)
    return out.reshape(lead + out.shape[1:]), probs.reshape(lead + (T, S))


def sdpa_backward(q, k, v, probs, grad_out, scale):
    """Gradients (dq, dk, dv) of sdpa_forward, from its probs and dL/dout (..., T, d).

    The mask is a constant, so it needs no gradient: it is already folded into probs.
    """
    dt = q.dtype
    if scale is None:
        scale = 1.0 / math.sqrt(q.shape[-1])
    q3, k3, v3 = _heads(q), _heads(np.asarray(k, dtype=dt)), _heads(np.asarray(v, dtype=dt))
    p3, g3 = _heads(np.asarray(probs, dtype=dt)), _heads(np.asarray(grad_out, dtype=dt))
    dq = np.empty_like(q3)
    dk = np.zeros_like(k3)  # accumulated over queries
    dv = np.zeros_like(v3)
    _sdpa_bwd(q3, k3, v3, p3, g3, dt.type(scale), dq, dk, dv)
    return dq.reshape(q.shape), dk.reshape(k.shape), dv.reshape(v.shape)


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


@njit(parallel=True, cache=True, fastmath=_FM)
def _ce_fwd(logits, targets, ignore_index, losses, lse):
    N, C = logits.shape
    zero = logits.dtype.type(0)
    for r in prange(N):
        m = logits[r, 0]
        for c in range(1, C):
            m = max(m, logits[r, c])
        s = zero
        for c in range(C):
            s += np.exp(logits[r, c] - m)
        lse[r] = m + np.log(s)
        t = targets[r]
        losses[r] = zero if t == ignore_index else lse[r] - logits[r, t]


@njit(parallel=True, cache=True, fastmath=_FM)
def _ce_bwd(logits, targets, lse, grad_losses, ignore_index, dlogits):
    N, C = logits.shape
    for r in prange(N):
        t = targets[r]
        if t == ignore_index:
            dlogits[r, :] = logits.dtype.type(0)
            continue
        g, l = grad_losses[r], lse[r]
        for c in range(C):
            dlogits[r, c] = np.exp(logits[r, c] - l) * g
        dlogits[r, t] -= g


def _targets(targets):
    return _c(np.asarray(targets, dtype=np.int64)).reshape(-1)


def cross_entropy_forward(logits, targets, ignore_index):
    """Per-row cross entropy of logits (N, C) against int targets (N,).

    Returns (losses (N,), lse (N,)): loss = logsumexp(row) - row[target], 0 on rows whose
    target is ignore_index, and the row logsumexp that the backward reuses. The caller checks
    that the other targets are in range.
    """
    x = _rows(logits)
    losses = np.empty(x.shape[0], x.dtype)
    lse = np.empty(x.shape[0], x.dtype)
    _ce_fwd(x, _targets(targets), int(ignore_index), losses, lse)
    return losses, lse


def cross_entropy_backward(logits, targets, lse, grad_losses, ignore_index):
    """dL/dlogits = (softmax(logits) - onehot(target)) * grad_losses per row; 0 if ignored."""
    x = _rows(logits)
    dt, N = x.dtype, x.shape[0]
    gl = _c(np.broadcast_to(np.asarray(grad_losses, dtype=dt), (N,)))
    out = np.empty_like(x)
    _ce_bwd(x, _targets(targets), _c(np.asarray(lse, dtype=dt)), gl, int(ignore_index), out)
    return out


# ---------------------------------------------------------------------------------------------
# GELU (elementwise, flat, in parallel)


@njit(parallel=True, cache=True, fastmath=_FM)
def _gelu(x, use_tanh, out):
    f = x.dtype.type
    half, one, a = f(0.5), f(1), f(0.044715)
    k_tanh, k_erf = f(math.sqrt(2 / math.pi)), f(1 / math.sqrt(2))
    for i in prange(x.size):
        xi = x[i]
        if use_tanh:
            out[i] = half * xi * (one + np.tanh(k_tanh * (xi + a * xi * xi * xi)))
        else:
            out[i] = half * xi * (one + math.erf(xi * k_erf))


@njit(parallel=True, cache=True, fastmath=_FM)
def _gelu_bwd(x, grad, use_tanh, out):
    f = x.dtype.type
    half, one, a, a3 = f(0.5), f(1), f(0.044715), f(3 * 0.044715)
    k_tanh, k_erf = f(math.sqrt(2 / math.pi)), f(1 / math.sqrt(2))
    k_pdf = f(1 / math.sqrt(2 * math.pi))
    for i in prange(x.size):
        xi = x[i]
        if use_tanh:
            t = np.tanh(k_tanh * (xi + a * xi * xi * xi))
            dinner = k_tanh * (one + a3 * xi * xi)
            out[i] = grad[i] * (half * (one + t) + half * xi * (one - t * t) * dinner)
        else:
            cdf = half * (one + math.erf(xi * k_erf))
            pdf = np.exp(-half * xi * xi) * k_pdf
            out[i] = grad[i] * (cdf + xi * pdf)


def gelu(x, approximate):
    """GELU: x * Phi(x) with the erf form ("none") or PyTorch's tanh approximation ("tanh")."""
    _check_approximate(approximate)
    x1 = _c(x).reshape(-1)
    out = np.empty_like(x1)
    _gelu(x1, approximate == "tanh", out)
    return out.reshape(np.shape(x))


def gelu_backward(x, grad, approximate):
    """dL/dx of gelu from dL/dy."""
    _check_approximate(approximate)
    x1 = _c(x).reshape(-1)
    g1 = _c(np.asarray(grad, dtype=x1.dtype)).reshape(-1)
    out = np.empty_like(x1)
    _gelu_bwd(x1, g1, approximate == "tanh", out)
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
    _embedding_bwd(_targets(idx), g2, dweight)
    return dweight


# ---------------------------------------------------------------------------------------------
# optimizer


@njit(cache=True, fastmath=_FM)
def _adamw(p, g, m, v, decay, one_minus_b1, b2, one_minus_b2, step_size, bc2_sqrt, eps):
    for i in range(p.size):
        gi = g[i]
        mi = m[i] + one_minus_b1 * (gi - m[i])  # torch's lerp(m, g, 1 - beta1)
        vi = v[i] * b2 + one_minus_b2 * gi * gi
        m[i] = mi
        v[i] = vi
        p[i] = p[i] * decay - step_size * (mi / (np.sqrt(vi) / bc2_sqrt + eps))


def adamw_step(params, grads, exp_avgs, exp_avg_sqs, lr, beta1, beta2, eps, weight_decay, step):
    """One in-place AdamW update of lists of arrays, exactly PyTorch's formula. Returns None.

    param *= 1 - lr * weight_decay; m = lerp(m, g, 1 - beta1); v = beta2 v + (1 - beta2) g^2;
    param -= lr / (1 - beta1^step) * m / (sqrt(v) / sqrt(1 - beta2^step) + eps).
    `step` counts from 1 (the number of updates including this one).
    """
    step_size = lr / (1 - beta1**step)
    bc2_sqrt = math.sqrt(1 - beta2**step)
    for p, g, m, v in zip(params, grads, exp_avgs, exp_avg_sqs, strict=True):
        if not (p.flags.c_contiguous and m.flags.c_contiguous and v.flags.c_contiguous):
            # in-place through a reshape needs contiguous state; views are rare, use NumPy
            reference.adamw_step([p], [g], [m], [v], lr, beta1, beta2, eps, weight_decay, step)
            continue
        f = p.dtype.type
        g1 = _c(np.asarray(g, dtype=p.dtype)).reshape(-1)
        _adamw(p.reshape(-1), g1, m.reshape(-1), v.reshape(-1), f(1 - lr * weight_decay),
               f(1 - beta1), f(beta2), f(1 - beta2), f(step_size), f(bc2_sqrt), f(eps))

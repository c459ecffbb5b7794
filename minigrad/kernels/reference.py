"""Reference kernels in plain NumPy: the readable specification of every kernel.

Each function takes and returns ndarrays. `fast.py` mirrors these signatures with Numba and
the tests compare the two. Reductions such as softmax work over the last axis; the ops move
the axis they are asked for to the end before calling a kernel.
"""

import math

import numpy as np


def matmul(a, b):
    """a (..., n, k) @ b (..., k, m) -> (..., n, m), batch dims broadcast as NumPy's."""
    return np.matmul(a, b)


def empty(shape, dtype):
    """A new uninitialised array (the engine's gradient accumulators)."""
    return np.empty(shape, dtype)


def dense(x, weight, bias):
    """x (N, in) @ weight (out, in)^T + bias (out,) (None: no bias): a dense layer's rows,
    (N, out). The bias is added in place to the product, in its dtype (NumPy's rules)."""
    out = np.matmul(x, weight.T)
    if bias is not None:
        out += bias
    return out


def bias_grad(grad):
    """The gradient of a dense layer's bias: grad (N, C) summed over its rows, (C,)."""
    return grad.sum(axis=0)


def _safe_max(x):
    """Row max over the last axis, with rows that are entirely -inf given max 0 (no NaN)."""
    m = np.max(x, axis=-1, keepdims=True)
    return np.where(np.isfinite(m), m, 0).astype(x.dtype, copy=False)


def softmax(x):
    """Softmax over the last axis; a row that is entirely -inf becomes all zeros."""
    e = np.exp(x - _safe_max(x))
    s = np.sum(e, axis=-1, keepdims=True)
    return e / np.where(s == 0, 1, s)


def softmax_backward(y, grad):
    """dL/dx from the softmax output y and dL/dy: y * (grad - sum(grad * y))."""
    return y * (grad - np.sum(grad * y, axis=-1, keepdims=True))


def log_softmax(x):
    """Log-softmax over the last axis; a row that is entirely -inf stays -inf."""
    shifted = x - _safe_max(x)
    s = np.sum(np.exp(shifted), axis=-1, keepdims=True)
    return shifted - np.log(np.where(s == 0, 1, s))  # -inf rows: -inf - log(1) stays -inf


def log_softmax_backward(y, grad):
    """dL/dx from the log-softmax output y: grad - softmax * sum(grad); zero on -inf rows."""
    p = np.exp(y)
    dx = grad - p * np.sum(grad, axis=-1, keepdims=True)
    dead = np.all(np.isneginf(y), axis=-1, keepdims=True)
    return np.where(dead, 0, dx).astype(y.dtype, copy=False)


# ---------------------------------------------------------------------------------------------
# attention


def _additive_mask(mask, dtype):
    """A bool mask (True = may attend) or an additive float mask, as an additive float array."""
    mask = np.asarray(mask)
    if mask.dtype == np.bool_:
        return np.where(mask, 0, -np.inf).astype(dtype)
    return mask.astype(dtype, copy=False)


def _scores(q, k, mask, is_causal):
    """q @ k^T / sqrt(d), masked (-inf where a key may not be attended): (..., T, S)."""
    T, S = q.shape[-2], k.shape[-2]
    scores = np.matmul(q, np.swapaxes(k, -1, -2)) * q.dtype.type(1.0 / np.sqrt(q.shape[-1]))
    if mask is not None:
        scores = scores + _additive_mask(mask, q.dtype)
    if is_causal:
        scores = np.where(np.tril(np.ones((T, S), dtype=bool)), scores, -np.inf)
    return scores


def sdpa_forward(q, k, v, mask, is_causal):
    """Scaled dot-product attention: softmax(q @ k^T / sqrt(d) + mask) @ v.

    q (..., T, d), k and v (..., S, d) with the same leading dims (callers broadcast first).
    `mask` is None or broadcastable to (..., T, S): bool (True = may attend) or additive
    float. `is_causal` lets query i attend keys j <= i (top-left aligned, as PyTorch's).
    Returns (out (..., T, d), probs (..., T, S)); masked entries of probs are exactly 0 and
    a fully masked row gives zeros, never NaN.
    """
    scores = _scores(q, k, mask, is_causal)  # (..., T, S)
    probs = softmax(scores).astype(q.dtype, copy=False)  # (..., T, S)
    return np.matmul(probs, v), probs


def sdpa_backward(q, k, v, probs, grad_out, is_causal=False):
    """Gradients (dq, dk, dv) of sdpa_forward, from its probs and dL/dout (..., T, d).

    The mask is a constant, so it needs no gradient: it is already folded into probs.
    is_causal says that probs is zero above the diagonal (fast.py skips those blocks; the
    result is the same).
    """
    scale = q.dtype.type(1.0 / np.sqrt(q.shape[-1]))
    dv = np.matmul(np.swapaxes(probs, -1, -2), grad_out)  # (..., S, d)
    dprobs = np.matmul(grad_out, np.swapaxes(v, -1, -2))  # (..., T, S)
    dscores = softmax_backward(probs, dprobs) * scale  # (..., T, S)
    dq = np.matmul(dscores, k)  # (..., T, d)
    dk = np.matmul(np.swapaxes(dscores, -1, -2), q)  # (..., S, d)
    return dq, dk, dv


def _heads(x, n_head, m):
    """x (B, T, m * C) as m arrays (B, n_head, T, C / n_head): the heads of each C columns."""
    B, T = x.shape[:2]
    return [np.swapaxes(part.reshape(B, T, n_head, -1), 1, 2) for part in np.split(x, m, axis=2)]


def _merge_heads(x):
    """x (B, nh, T, hs) as (B, T, nh * hs): the heads side by side."""
    B, nh, T, hs = x.shape
    return np.swapaxes(x, 1, 2).reshape(B, T, nh * hs)


def qkv_attention_forward(qkv, n_head, mask, is_causal):
    """Multi-head self-attention from the fused projection qkv (B, T, 3C), as nanoGPT's
    CausalSelfAttention: q, k and v are its three C columns side by side, each cut into
    n_head heads of C / n_head. `mask` and `is_causal` as in sdpa_forward, the mask
    broadcastable to (B, n_head, T, T).

    Returns (y (B, T, C), the heads' outputs side by side, and lse (B, n_head, T)): each
    query's log-sum-exp of its scaled, masked scores (-inf when it may attend no key). The
    probabilities are exp(scores - lse): backward makes them again from lse, so they are not
    kept from forward to backward (T floats a head instead of T * T).
    """
    q, k, v = _heads(qkv, n_head, 3)
    scores = _scores(q, k, mask, is_causal)  # (B, nh, T, T)
    m = _safe_max(scores)
    with np.errstate(divide="ignore"):  # a fully masked row: log(0) = -inf
        lse = (m + np.log(np.sum(np.exp(scores - m), axis=-1, keepdims=True)))[..., 0]
    return _merge_heads(np.matmul(softmax(scores), v)), lse.astype(qkv.dtype, copy=False)


def qkv_attention_backward(qkv, lse, grad_out, n_head, mask, is_causal=False):
    """dL/dqkv (B, T, 3C) of qkv_attention_forward, from its lse and dL/dy (B, T, C): dq, dk
    and dv side by side. mask and is_causal as given to forward."""
    q, k, v = _heads(qkv, n_head, 3)
    scores = _scores(q, k, mask, is_causal)  # (B, nh, T, T)
    dead = np.isneginf(lse)[..., None]  # queries with no key: zero probabilities
    probs = np.where(dead, 0, np.exp(scores - np.where(dead, 0, lse[..., None])))
    (g,) = _heads(grad_out, n_head, 1)
    grads = sdpa_backward(q, k, v, probs.astype(qkv.dtype, copy=False), g, is_causal)
    return np.concatenate([_merge_heads(d) for d in grads], axis=2)


# ---------------------------------------------------------------------------------------------
# layer norm


def layer_norm_forward(x, weight, bias, eps):
    """LayerNorm over the last axis: (x - mean) * rstd * weight + bias.

    weight and bias (C,) may each be None. Returns (y like x, mean (..., 1), rstd (..., 1)),
    where rstd = 1 / sqrt(var + eps) with the biased variance, as PyTorch's.
    """
    mean = np.mean(x, axis=-1, keepdims=True)
    var = np.mean(np.square(x - mean), axis=-1, keepdims=True)
    rstd = 1 / np.sqrt(var + x.dtype.type(eps))
    y = (x - mean) * rstd
    if weight is not None:
        y = y * weight
    if bias is not None:
        y = y + bias
    return y, mean, rstd


def layer_norm_backward(grad, x, weight, mean, rstd):
    """Gradients (dx, dweight, dbias) of layer_norm_forward, from dL/dy.

    dweight is None when weight is None. dbias is always returned (it is sum(grad) over the
    rows); a caller whose layer has no bias ignores it.
    """
    C = x.shape[-1]
    xhat = (x - mean) * rstd  # (..., C)
    g = grad * weight if weight is not None else grad
    mean_g = np.sum(g, axis=-1, keepdims=True) / C
    mean_gx = np.sum(g * xhat, axis=-1, keepdims=True) / C
    dx = (g - mean_g - xhat * mean_gx) * rstd
    rows = tuple(range(x.ndim - 1))
    dweight = np.sum(grad * xhat, axis=rows) if weight is not None else None
    dbias = np.sum(grad, axis=rows)
    return dx, dweight, dbias


# ---------------------------------------------------------------------------------------------
# cross entropy


def cross_entropy_forward(logits, targets, ignore_index):
    """Per-row cross entropy of logits (N, C) against int targets (N,).

    Returns (losses (N,), lse (N,)): loss = logsumexp(row) - row[target], 0 on rows whose
    target is ignore_index, and the row logsumexp that the backward reuses. The caller checks
    that the other targets are in range.
    """
    m = np.max(logits, axis=-1, keepdims=True)
    lse = (m + np.log(np.sum(np.exp(logits - m), axis=-1, keepdims=True)))[:, 0]  # (N,)
    keep = targets != ignore_index
    safe = np.where(keep, targets, 0)
    picked = np.take_along_axis(logits, safe[:, None], axis=-1)[:, 0]
    return np.where(keep, lse - picked, 0).astype(logits.dtype, copy=False), lse


def cross_entropy_backward(logits, targets, lse, grad_losses, ignore_index):
    """dL/dlogits = (softmax(logits) - onehot(target)) * grad_losses per row; 0 if ignored."""
    keep = targets != ignore_index
    d = np.exp(logits - lse[:, None])  # (N, C) softmax
    rows = np.nonzero(keep)[0]
    d[rows, targets[rows]] -= 1
    scale = np.where(keep, np.broadcast_to(grad_losses, keep.shape), 0).astype(logits.dtype)
    return d * scale[:, None]


# ---------------------------------------------------------------------------------------------
# GELU

try:  # SciPy's erf is vectorised; math.erf one element at a time is the fallback
    from scipy.special import erf as _erf
except ImportError:  # pragma: no cover

    def _erf(x):
        return np.vectorize(math.erf, otypes=[x.dtype])(x)


_SQRT_2_OVER_PI = np.sqrt(2 / np.pi)


def _check_approximate(approximate):
    if approximate not in ("none", "tanh"):
        raise ValueError(f"gelu: approximate must be 'none' or 'tanh', not {approximate!r}")


def gelu(x, approximate):
    """GELU: x * Phi(x) with the erf form ("none") or PyTorch's tanh approximation ("tanh")."""
    _check_approximate(approximate)
    c = x.dtype.type
    if approximate == "tanh":
        inner = c(_SQRT_2_OVER_PI) * (x + c(0.044715) * x**3)
        return c(0.5) * x * (1 + np.tanh(inner))
    return c(0.5) * x * (1 + _erf(x * c(1 / np.sqrt(2))))


def gelu_backward(x, grad, approximate, out=None):
    """dL/dx of gelu from dL/dy: a new array, or with out=grad, grad itself overwritten."""
    _check_approximate(approximate)
    if out is not None and out is not grad:
        raise ValueError("gelu_backward: out must be grad itself")
    c = x.dtype.type
    if approximate == "tanh":
        inner = c(_SQRT_2_OVER_PI) * (x + c(0.044715) * x**3)
        t = np.tanh(inner)
        dinner = c(_SQRT_2_OVER_PI) * (1 + c(3 * 0.044715) * x * x)
        slope = c(0.5) * (1 + t) + c(0.5) * x * (1 - t * t) * dinner
    else:
        cdf = c(0.5) * (1 + _erf(x * c(1 / np.sqrt(2))))
        slope = cdf + x * np.exp(c(-0.5) * x * x) * c(1 / np.sqrt(2 * np.pi))
    return np.multiply(grad, slope, out=out)


# ---------------------------------------------------------------------------------------------
# embedding


def embedding_backward(idx, grad, num_embeddings):
    """dL/dweight (num_embeddings, D): the rows of grad (..., D) summed by int idx (...)."""
    D = grad.shape[-1]
    dweight = np.zeros((num_embeddings, D), dtype=grad.dtype)
    np.add.at(dweight, np.reshape(idx, -1), np.reshape(grad, (-1, D)))  # repeats accumulate
    return dweight


# ---------------------------------------------------------------------------------------------
# optimizer


def adamw_step(params, grads, exp_avgs, exp_avg_sqs, lr, beta1, beta2, eps, weight_decay, step):
    """One in-place AdamW update of lists of arrays, exactly PyTorch's formula. Returns None.

    param *= 1 - lr * weight_decay; m = lerp(m, g, 1 - beta1); v = beta2 v + (1 - beta2) g^2;
    param -= lr / (1 - beta1^step) * m / (sqrt(v) / sqrt(1 - beta2^step) + eps).
    `step` counts from 1 (the number of updates including this one).
    """
    bias_correction1 = 1 - beta1**step
    bias_correction2_sqrt = math.sqrt(1 - beta2**step)  # a Python float keeps float32 arrays
    step_size = lr / bias_correction1
    for p, g, m, v in zip(params, grads, exp_avgs, exp_avg_sqs, strict=True):
        p *= 1 - lr * weight_decay
        m += (1 - beta1) * (g - m)
        v *= beta2
        v += (1 - beta2) * g * g
        p -= step_size * (m / (np.sqrt(v) / bias_correction2_sqrt + eps))

"""The functional API: `import minigrad.functional as F`.

Every general op (F.softmax, F.relu, ...) plus the layer-style functions that nn's layers
call: linear, layer_norm, embedding, dropout, cross_entropy, scaled_dot_product_attention,
and two pairs that keep less for backward: gelu_linear and layer_norm_linear.
"""

import builtins
import math

import numpy as np

from minigrad import random
from minigrad.autograd import is_study_mode, label

# The general ops belong to the functional API too; note that this shadows the builtins
# sum, max, min, abs and pow in this module (use builtins.max where the builtin is meant).
from minigrad.ops import *  # noqa: F403
from minigrad.ops import __all__ as _ops_all
from minigrad.ops import gelu, matmul, where
from minigrad.ops import softmax as _softmax
from minigrad.ops._util import broadcast_shapes, check_choice
from minigrad.ops.attention import ScaledDotProductAttention, SelfAttention
from minigrad.ops.elementwise import GELU_APPROXIMATIONS
from minigrad.ops.embedding import Embedding, ids_out_of_range
from minigrad.ops.loss import CrossEntropy
from minigrad.ops.matmul import GeluLinear, Linear, check_in_features
from minigrad.ops.norm import LayerNorm, LayerNormLinear
from minigrad.ops.shape import Identity
from minigrad.tensor import Tensor

__all__ = list(_ops_all) + [
    "linear", "gelu_linear", "layer_norm", "layer_norm_linear", "embedding", "dropout",
    "cross_entropy",
    "scaled_dot_product_attention", "linear_composite", "layer_norm_composite",
    "cross_entropy_composite", "attention_composite",
]


def linear(x, weight, bias=None):
    """x @ weight.T + bias, with weight (out, in) as in PyTorch."""
    if x.shape[-1:] != weight.shape[-1:]:  # (the message is built only on error)
        check_in_features(f"linear with weight of shape {weight.shape}", x, weight.shape[-1])
    return Linear.apply(x, weight, bias)


def gelu_linear(x, weight, bias=None, approximate="none"):
    """linear(gelu(x, approximate), weight, bias) as one op that keeps x but not gelu(x)
    for backward, which makes gelu(x) again: less memory for one more elementwise pass.
    In study mode, the two ops (each its own node)."""
    check_choice("gelu_linear", "approximate", approximate, GELU_APPROXIMATIONS)
    if x.shape[-1:] != weight.shape[-1:]:
        check_in_features(f"gelu_linear with weight of shape {weight.shape}", x,
                          weight.shape[-1])
    if is_study_mode():
        return linear(gelu(x, approximate), weight, bias)
    return GeluLinear.apply(x, approximate, weight, bias)


def linear_composite(x, weight, bias=None):
    """linear op by op (transpose, matmul, add): the oracle for the fused Linear."""
    out = matmul(x, weight.transpose(0, 1))
    return out if bias is None else out + bias


def layer_norm(x, normalized_shape, weight=None, bias=None, eps=1e-5):
    """Normalise over the trailing `normalized_shape` dims, then scale and shift."""
    shape = (normalized_shape,) if isinstance(normalized_shape, int) else tuple(normalized_shape)
    if tuple(x.shape[len(x.shape) - len(shape):]) != shape:
        raise ValueError(f"layer_norm: input of shape {x.shape} does not end with "
                         f"normalized_shape {shape}")
    if len(shape) == 1:
        return LayerNorm.apply(x, weight, bias, eps)
    return layer_norm_composite(x, shape, weight, bias, eps)


def layer_norm_linear(x, normalized_shape, ln_weight, ln_bias, eps, weight, bias=None):
    """linear(layer_norm(x, normalized_shape, ln_weight, ln_bias, eps), weight, bias) as one
    op that keeps x but not the normalised rows for backward, which makes them again: less
    memory for one more pass over x. In study mode, the two ops (each its own node)."""
    shape = (normalized_shape,) if isinstance(normalized_shape, int) else tuple(normalized_shape)
    if is_study_mode() or len(shape) != 1 or x.shape[-1:] != shape:
        return linear(layer_norm(x, shape, ln_weight, ln_bias, eps), weight, bias)
    if weight.shape[-1:] != shape:
        check_in_features(f"layer_norm_linear with weight of shape {weight.shape}", x,
                          weight.shape[-1])
    return LayerNormLinear.apply(x, ln_weight, ln_bias, eps, weight, bias)


def layer_norm_composite(x, normalized_shape, weight=None, bias=None, eps=1e-5):
    """layer_norm op by op (mean, var, sqrt, ...): the oracle for the fused LayerNorm."""
    shape = (normalized_shape,) if isinstance(normalized_shape, int) else tuple(normalized_shape)
    axes = tuple(range(x.ndim - len(shape), x.ndim))
    mean = x.mean(axis=axes, keepdims=True)
    centered = x - mean
    var = (centered * centered).mean(axis=axes, keepdims=True)
    y = centered / (var + eps).sqrt()
    if weight is not None:
        y = y * weight
    if bias is not None:
        y = y + bias
    return y


def embedding(idx, weight):
    """Rows of `weight` (num_embeddings, dim) picked by integer ids `idx` (...)."""
    ids = idx.data if isinstance(idx, Tensor) else np.asarray(idx)
    if not np.issubdtype(ids.dtype, np.integer):
        raise TypeError(f"embedding: ids must be integers, got dtype {ids.dtype}")
    n = weight.shape[0]
    bad = ids_out_of_range(ids, n)
    if bad:
        raise IndexError(f"embedding: ids must be in [0, {n}), got {bad} "
                         f"(ids shape {ids.shape}, weight shape {weight.shape})")
    return Embedding.apply(weight, ids)


def dropout(x, p=0.5, training=True):
    """Zero each element with probability p and scale the rest by 1/(1-p) when training."""
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"dropout: p must be in [0, 1], got {p}")
    if not training or p == 0.0:
        return x
    if p == 1.0:
        return x * 0.0
    keep = random.generator().random(x.shape) >= p
    return x * (keep.astype(x.dtype) / np.asarray(1.0 - p, dtype=x.dtype))


def cross_entropy(logits, targets, ignore_index=-100, reduction="mean"):
    """Softmax cross-entropy of logits (N, C) or (..., C) against integer targets (N,)/(...).

    Targets equal to ignore_index contribute nothing; "mean" averages over the others.
    """
    check_choice("cross_entropy", "reduction", reduction, ("mean", "sum", "none"))
    t = targets.data if isinstance(targets, Tensor) else np.asarray(targets)
    if not np.issubdtype(t.dtype, np.integer):
        raise TypeError(f"cross_entropy: targets must be integers, got dtype {t.dtype}")
    if t.shape != logits.shape[:-1]:
        raise ValueError(f"cross_entropy: logits of shape {logits.shape} need targets of shape "
                         f"{logits.shape[:-1]}, got {t.shape}")
    n_classes = logits.shape[-1]
    valid = t != ignore_index
    if np.any((t[valid] < 0) | (t[valid] >= n_classes)):
        bad = t[valid & ((t < 0) | (t >= n_classes))]
        raise IndexError(f"cross_entropy: targets must be in [0, {n_classes}) or "
                         f"ignore_index={ignore_index}, got {bad[:5].tolist()}")
    return CrossEntropy.apply(logits, t, ignore_index, reduction)


def cross_entropy_composite(logits, targets, ignore_index=-100, reduction="mean"):
    """cross_entropy op by op (log_softmax, pick, mean): the oracle for the fused op."""
    t = targets.data if isinstance(targets, Tensor) else np.asarray(targets)
    n_classes = logits.shape[-1]
    valid = t != ignore_index
    logp = logits.log_softmax(axis=-1).reshape(-1, n_classes)  # (N, C)
    flat_t = np.where(valid, t, 0).reshape(-1)
    picked = logp[np.arange(flat_t.size), flat_t].reshape(t.shape)
    losses = where(valid, -picked, 0.0)
    if reduction == "none":
        return losses
    if reduction == "sum":
        return losses.sum()
    return losses.sum() / builtins.max(int(valid.sum()), 1)


def _attention_mask(op, attn_mask, dtype, scores_shape):
    """attn_mask (a Tensor, an array or None) as an ndarray: bool kept, a float one in dtype;
    a ValueError naming `op` unless it broadcasts to the scores' shape."""
    mask = attn_mask.data if isinstance(attn_mask, Tensor) else attn_mask
    if mask is None:
        return None
    mask = np.asarray(mask)
    if mask.dtype != bool:
        mask = mask.astype(dtype, copy=False)
    broadcast_shapes(op, mask.shape, scores_shape)
    return mask


def scaled_dot_product_attention(q, k, v, attn_mask=None, is_causal=False, dropout_p=0.0):
    """softmax(q k^T / sqrt(d) + mask) v, with q (..., T, d), k and v (..., S, d).

    attn_mask is bool (True = may attend) or additive float, broadcastable to (..., T, S);
    is_causal lets query i attend keys j <= i only.
    """
    if k.shape[-1] != q.shape[-1] or k.shape[-2] != v.shape[-2]:
        raise ValueError(f"scaled_dot_product_attention: q {q.shape}, k {k.shape} and "
                         f"v {v.shape} do not fit (..., T, d), (..., S, d), (..., S, dv)")
    mask = _attention_mask("scaled_dot_product_attention", attn_mask, q.dtype,
                           q.shape[:-1] + (k.shape[-2],))
    if is_study_mode() or dropout_p > 0.0:
        return attention_composite(q, k, v, mask, is_causal, dropout_p)
    lead = broadcast_shapes("scaled_dot_product_attention", q.shape[:-2], k.shape[:-2],
                            v.shape[:-2])
    # The kernel wants equal leading dims; the engine sums broadcast gradients back.
    q, k, v = (t if t.shape[:-2] == lead else t.expand(*lead, *t.shape[-2:]) for t in (q, k, v))
    return ScaledDotProductAttention.apply(q, k, v, mask, is_causal)


def attention_composite(q, k, v, attn_mask=None, is_causal=False, dropout_p=0.0):
    """Attention op by op, each step a labelled node: the oracle for the fused op.

    This is what `study_mode()` runs, so that minigrad.viz can show the gradient reaching
    q, k, v, the scores and the probabilities.
    """
    if is_study_mode():
        # Separate labelled nodes so that minigrad.viz can show dL/dq, dL/dk and dL/dv.
        q, k, v = (label(Identity.apply(t), name) for t, name in ((q, "q"), (k, "k"), (v, "v")))
    T, S = q.shape[-2], k.shape[-2]
    scores = matmul(q, k.transpose(-2, -1)) * (1.0 / math.sqrt(q.shape[-1]))  # (..., T, S)
    label(scores, "scores")
    if is_causal:
        scores = scores.masked_fill(~np.tril(np.ones((T, S), dtype=bool)), -np.inf)
    if attn_mask is not None:
        mask = np.asarray(attn_mask.data if isinstance(attn_mask, Tensor) else attn_mask)
        if mask.dtype == bool:
            scores = scores.masked_fill(~mask, -np.inf)
        else:
            scores = scores + mask.astype(scores.dtype, copy=False)
    if is_causal or attn_mask is not None:
        label(scores, "masked scores")
    probs = label(_softmax(scores, axis=-1), "probs")
    if dropout_p > 0.0:
        probs = dropout(probs, dropout_p, True)
    return label(matmul(probs, v), "attention output")


def self_attention(qkv, n_head, attn_mask=None, is_causal=False, dropout_p=0.0):
    """Multi-head self-attention from the fused projection qkv (B, T, 3C), as nanoGPT's
    c_attn gives it: q, k and v side by side, each cut into n_head heads of C / n_head.
    Returns (B, T, C), the heads' outputs side by side.

    attn_mask as scaled_dot_product_attention's, broadcastable to (B, n_head, T, T). One op;
    in study mode, or with dropout, the composite (split, heads, attention, merge).
    """
    if not isinstance(n_head, int) or n_head < 1:
        raise ValueError(f"self_attention: n_head must be a positive int, got {n_head!r}")
    if qkv.ndim != 3 or qkv.shape[-1] % (3 * n_head):
        raise ValueError(f"self_attention: qkv of shape {qkv.shape} is not (B, T, 3C) with "
                         f"C divisible by n_head={n_head}")
    B, T = qkv.shape[:2]
    mask = _attention_mask("self_attention", attn_mask, qkv.dtype, (B, n_head, T, T))
    if is_study_mode() or dropout_p > 0.0:
        return self_attention_composite(qkv, n_head, mask, is_causal, dropout_p)
    return SelfAttention.apply(qkv, n_head, mask, is_causal)


def self_attention_composite(qkv, n_head, attn_mask=None, is_causal=False, dropout_p=0.0):
    """self_attention op by op (split, view, transpose, attention, merge): the oracle for
    the fused SelfAttention, and what study mode runs."""
    B, T, C = qkv.shape[0], qkv.shape[1], qkv.shape[2] // 3
    q, k, v = qkv.split(C, axis=2)  # (B, T, C) each
    # move the head axis forward
    q, k, v = (t.view(B, T, n_head, C // n_head).transpose(1, 2) for t in (q, k, v))
    y = scaled_dot_product_attention(q, k, v, attn_mask, is_causal, dropout_p)  # (B, nh, T, hs)
    return y.transpose(1, 2).reshape(B, T, C)  # re-assemble all head outputs side by side

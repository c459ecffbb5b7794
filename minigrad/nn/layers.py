"""Layers: Linear, LayerNorm, Embedding, Dropout, GELU, ReLU and MultiHeadAttention.

Weights are float32 (use `.double()` for float64) and initialised as PyTorch does, from
minigrad's seeded generator. Names and shapes match PyTorch / nanoGPT so that state_dicts
move between them as plain arrays.
"""

import math

import numpy as np

from minigrad import functional as F
from minigrad.nn import init
from minigrad.nn.module import Module, Parameter
from minigrad.ops._util import check_choice
from minigrad.ops.elementwise import GELU_APPROXIMATIONS
from minigrad.ops.matmul import check_in_features


class Linear(Module):
    """y = x @ weight.T + bias, with weight (out_features, in_features) as in PyTorch.

    Weight and bias start as U(-1/sqrt(in_features), 1/sqrt(in_features)), PyTorch's default.
    """

    def __init__(self, in_features, out_features, bias=True):
        super().__init__()
        self.in_features = in_features
        self.out_features = out_features
        bound = 1.0 / math.sqrt(in_features) if in_features > 0 else 0.0
        self.weight = init.uniform_(
            Parameter(np.empty((out_features, in_features), np.float32)), -bound, bound)
        if bias:
            self.bias = init.uniform_(Parameter(np.empty(out_features, np.float32)), -bound, bound)
        else:
            self.register_parameter("bias", None)

    def forward(self, x, norm=None):
        """x @ weight.T + bias; of norm(x) when norm (a LayerNorm) is given.

        With norm, the two run as one op (F.layer_norm_linear) that keeps x for backward but
        not the normalised rows, which backward makes again: a pre-LN transformer's
        projections hold one array a token less.
        """
        if x.shape[-1:] != (self.in_features,):  # (the message is built only on error)
            check_in_features(f"Linear({self.extra_repr()})", x, self.in_features)
        if norm is None:
            return F.linear(x, self.weight, self.bias)
        return F.layer_norm_linear(x, norm.normalized_shape, norm.weight, norm.bias, norm.eps,
                                   self.weight, self.bias)

    def extra_repr(self):
        return (f"in_features={self.in_features}, out_features={self.out_features}, "
                f"bias={self.bias is not None}")


class LayerNorm(Module):
    """Normalise the last dim(s) to zero mean and unit variance, then scale and shift.

    weight starts at ones and bias at zeros; bias=False leaves bias None (nanoGPT's option).
    """

    def __init__(self, normalized_shape, eps=1e-5, bias=True):
        super().__init__()
        if isinstance(normalized_shape, int | np.integer):
            normalized_shape = (int(normalized_shape),)
        self.normalized_shape = tuple(normalized_shape)
        self.eps = eps
        self.weight = Parameter(np.ones(self.normalized_shape, np.float32))
        if bias:
            self.bias = Parameter(np.zeros(self.normalized_shape, np.float32))
        else:
            self.register_parameter("bias", None)

    def forward(self, x):
        return F.layer_norm(x, self.normalized_shape, self.weight, self.bias, self.eps)

    def extra_repr(self):
        return f"{self.normalized_shape}, eps={self.eps}, bias={self.bias is not None}"


class Embedding(Module):
    """A lookup table: integer ids (...) -> rows of weight (num_embeddings, embedding_dim).

    weight starts as N(0, 1), PyTorch's default. Ids outside [0, num_embeddings) raise
    IndexError.
    """

    def __init__(self, num_embeddings, embedding_dim):
        super().__init__()
        self.num_embeddings = num_embeddings
        self.embedding_dim = embedding_dim
        self.weight = init.normal_(
            Parameter(np.empty((num_embeddings, embedding_dim), np.float32)))

    def forward(self, idx):
        return F.embedding(idx, self.weight)

    def extra_repr(self):
        return f"{self.num_embeddings}, {self.embedding_dim}"


class Dropout(Module):
    """Zero elements with probability p and scale the rest by 1/(1-p), in training mode only."""

    def __init__(self, p=0.5):
        super().__init__()
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"Dropout: p must be in [0, 1], got {p}")
        self.p = p

    def forward(self, x):
        return F.dropout(x, self.p, self.training)

    def extra_repr(self):
        return f"p={self.p}"


class GELU(Module):
    """GELU activation, exact ("none") or with the tanh approximation ("tanh")."""

    def __init__(self, approximate="none"):
        super().__init__()
        check_choice("GELU", "approximate", approximate, GELU_APPROXIMATIONS)
        self.approximate = approximate

    def forward(self, x):
        return F.gelu(x, self.approximate)

    def extra_repr(self):
        return f"approximate={self.approximate!r}"


class ReLU(Module):
    """max(x, 0)."""

    def forward(self, x):
        return F.relu(x)


def _attention_probs(q, k, attn_mask, causal):
    """(scores q k^T / sqrt(hs), softmax(scores + mask)) as ndarrays (B, nh, T, S), the same
    math as F.scaled_dot_product_attention; masked entries of the probabilities are exactly
    0 (a fully masked row is 0)."""
    T, S = q.shape[-2], k.shape[-2]
    raw = q @ np.swapaxes(k, -1, -2) * (1.0 / math.sqrt(q.shape[-1]))  # (B, nh, T, S)
    scores = raw
    if causal:
        scores = np.where(np.tril(np.ones((T, S), dtype=bool)), scores, -np.inf)
    if attn_mask is not None:
        mask = np.asarray(attn_mask.data if hasattr(attn_mask, "data") else attn_mask)
        scores = np.where(mask, scores, -np.inf) if mask.dtype == bool else scores + mask
    top = scores.max(axis=-1, keepdims=True)
    exp = np.exp(scores - np.where(np.isfinite(top), top, 0.0))
    total = exp.sum(axis=-1, keepdims=True)
    return raw, np.divide(exp, total, out=np.zeros_like(exp), where=total > 0)


def _merge_masks(attn_mask, key_padding_mask, B, S, dtype):
    """One SDPA mask from attn_mask (bool, True = may attend, or additive float) and
    key_padding_mask (bool (B, S), True = padding): None, a bool mask or an additive one,
    broadcastable to (B, nh, T, S)."""
    if attn_mask is not None:
        attn_mask = np.asarray(attn_mask.data if hasattr(attn_mask, "data") else attn_mask)
    if key_padding_mask is None:
        return attn_mask
    pad = np.asarray(key_padding_mask.data if hasattr(key_padding_mask, "data")
                     else key_padding_mask)
    if pad.dtype != bool or pad.shape != (B, S):
        raise ValueError(f"MultiHeadAttention: key_padding_mask must be bool (B, S) = "
                         f"{(B, S)}, got {pad.dtype} {pad.shape}")
    if not pad.any():
        return attn_mask  # nothing is padded: keep the unmasked (faster) path
    keep = ~pad[:, None, None, :]  # (B, 1, 1, S), True = may attend
    if attn_mask is None:
        return keep
    if attn_mask.dtype == bool:
        return keep & attn_mask
    return np.where(keep, attn_mask.astype(dtype, copy=False), -np.inf).astype(dtype)


class MultiHeadAttention(Module):
    """Multi-head attention: self-attention laid out as nanoGPT's CausalSelfAttention, or
    cross-attention (queries from x, keys and values from a context, as the decoder of
    "Attention Is All You Need" reads the encoder's output).

    Self-attention: c_attn projects x (B, T, C) to q, k, v at once (weight (3C, C)).
    Cross-attention (cross=True): q_proj projects x (weight (C, C)) and kv_proj the context
    (B, S, C) to k, v (weight (2C, C), keys first). Both: c_proj projects the concatenated
    heads back (weight (C, C)). Dropout is applied to the attention probabilities (inside
    scaled_dot_product_attention) and to the output (resid_dropout).

    causal=True (self-attention only) lets position t attend to positions <= t only;
    attn_mask (bool, True = may attend, or additive float, broadcastable to (B, nh, T, S))
    further restricts it; key_padding_mask (bool (B, S), True = padding, PyTorch's
    convention) keeps every query from the padded keys, which then get exactly zero
    gradient.

    Set `need_weights = True` to keep the last attention probabilities in `attn_weights`,
    an ndarray (B, nh, T, S) (S = T for self-attention), and the scores q.k / sqrt(hs)
    before masking in `attn_scores` (same shape), for study.
    """

    def __init__(self, embed_dim, num_heads, bias=True, dropout=0.0, causal=False,
                 cross=False):
        super().__init__()
        if num_heads <= 0 or embed_dim % num_heads != 0:
            raise ValueError(f"MultiHeadAttention: embed_dim={embed_dim} must be divisible "
                             f"by num_heads={num_heads}")
        if causal and cross:
            raise ValueError("MultiHeadAttention: causal=True needs self-attention; "
                             "cross-attention (cross=True) sees the whole context")
        if cross:
            self.q_proj = Linear(embed_dim, embed_dim, bias=bias)
            self.kv_proj = Linear(embed_dim, 2 * embed_dim, bias=bias)
        else:
            self.c_attn = Linear(embed_dim, 3 * embed_dim, bias=bias)
        self.c_proj = Linear(embed_dim, embed_dim, bias=bias)
        self.attn_dropout = Dropout(dropout)
        self.resid_dropout = Dropout(dropout)
        self.embed_dim = embed_dim
        self.num_heads = num_heads
        self.dropout = dropout
        self.causal = causal
        self.cross = cross
        self.need_weights = False
        self.attn_weights = None
        self.attn_scores = None

    def _check(self, name, t, want):
        if t.ndim != 3 or t.shape[-1] != self.embed_dim:
            raise ValueError(f"MultiHeadAttention({self.extra_repr()}): expected {name} "
                             f"({want}, {self.embed_dim}), got shape {tuple(t.shape)}")

    def forward(self, x, context=None, attn_mask=None, key_padding_mask=None, norm=None):
        """Attention of x (B, T, C) over itself, or over context (B, S, C); (B, T, C).

        norm (a LayerNorm) is applied to x first, in one op with the projection of x
        (see Linear.forward): a pre-LN block's attn(ln(x)) as attn(x, norm=ln).
        """
        self._check("input", x, "B, T")
        B, T, C = x.shape  # batch size, sequence length, embedding dim (n_embd)
        nh, hs = self.num_heads, C // self.num_heads
        dropout_p = self.attn_dropout.p if self.training else 0.0
        if not self.cross:
            if context is not None:
                raise ValueError("MultiHeadAttention: a context is for cross-attention; "
                                 "build the layer with cross=True")
            qkv = self.c_attn(x, norm=norm)  # (B, T, 3C): q, k, v for all heads in one matmul
            mask = _merge_masks(attn_mask, key_padding_mask, B, T, qkv.dtype)
            if self.need_weights:
                q, k, _ = (np.swapaxes(a.reshape(B, T, nh, hs), 1, 2)  # (B, nh, T, hs)
                           for a in np.split(qkv.data, 3, axis=2))
                self._keep_weights(q, k, mask)
            # the heads of q, k and v, their attention and the merge, in one op
            y = F.self_attention(qkv, nh, mask, is_causal=self.causal, dropout_p=dropout_p)
            return self.resid_dropout(self.c_proj(y))  # (B, T, C)
        if context is None:
            raise ValueError("MultiHeadAttention(cross=True): forward needs a context "
                             "(B, S, C) to attend to")
        self._check("context", context, "B, S")
        if context.shape[0] != B:
            raise ValueError(f"MultiHeadAttention: input batch {B} and context batch "
                             f"{context.shape[0]} differ")
        S = context.shape[1]
        q = self.q_proj(x, norm=norm)  # (B, T, C)
        k, v = self.kv_proj(context).split(C, axis=2)  # (B, S, C) each
        # move the head axis forward
        q = q.view(B, T, nh, hs).transpose(1, 2)  # (B, nh, T, hs)
        k = k.view(B, S, nh, hs).transpose(1, 2)  # (B, nh, S, hs)
        v = v.view(B, S, nh, hs).transpose(1, 2)  # (B, nh, S, hs)
        mask = _merge_masks(attn_mask, key_padding_mask, B, S, q.dtype)
        if self.need_weights:
            self._keep_weights(q.data, k.data, mask)
        y = F.scaled_dot_product_attention(q, k, v, mask, dropout_p=dropout_p)  # (B, nh, T, hs)
        y = y.transpose(1, 2).reshape(B, T, C)  # re-assemble all head outputs side by side
        return self.resid_dropout(self.c_proj(y))  # (B, T, C)

    def _keep_weights(self, q, k, mask):
        # For study only: an extra, graph-free pass, so that training always takes the
        # (fused) attention path and the stored weights are the pre-dropout probs.
        self.attn_scores, self.attn_weights = _attention_probs(q, k, mask, self.causal)

    @property
    def kind(self):
        """"cross", "causal self" or "self": which attention this layer computes."""
        return "cross" if self.cross else "causal self" if self.causal else "self"

    def extra_repr(self):
        return (f"embed_dim={self.embed_dim}, num_heads={self.num_heads}, "
                f"dropout={self.dropout}, causal={self.causal}, cross={self.cross}")

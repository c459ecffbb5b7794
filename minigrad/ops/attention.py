"""Scaled dot-product attention as one fused op: scores, mask, softmax and weighted sum;
and multi-head self-attention from a fused q, k, v projection as one op.

The composites in functional.py (`attention_composite`, `self_attention_composite`) compute
the same things op by op; they are the oracles in the tests and what `study_mode()` runs so
each step has its own node.
"""

from minigrad.autograd import Function
from minigrad.kernels import K


class ScaledDotProductAttention(Function):
    """softmax(q k^T / sqrt(d) + mask) v with q (..., T, d), k and v (..., S, d).

    O = P V with P = softmax(S), S = Q K^T / sqrt(d) (+ mask), in one node. Backward goes
    O -> (V, P) -> S -> (Q, K).

    backward: dV = P^T g; dP = g V^T; dS = P * (dP - sum(dP * P, -1));
        dQ = dS K / sqrt(d); dK = dS^T Q / sqrt(d)
    saves: Q, K, V and the probabilities P
    """

    @staticmethod
    def forward(ctx, q, k, v, mask, is_causal):
        out, probs = K.sdpa_forward(q, k, v, mask, is_causal)  # (..., T, d), (..., T, S)
        ctx.save_for_backward(q, k, v, probs)
        ctx.is_causal = is_causal
        return out

    @staticmethod
    def backward(ctx, grad):
        q, k, v, probs = ctx.saved_tensors
        dq, dk, dv = K.sdpa_backward(q, k, v, probs, grad, ctx.is_causal)
        return dq, dk, dv, None, None


class SelfAttention(Function):
    """Multi-head self-attention from the fused projection qkv (B, T, 3C): q, k and v are
    its three C columns, each cut into n_head heads; each head is ScaledDotProductAttention;
    the output (B, T, C) has the heads side by side. One node for the composite's split,
    views, transposes, attention and merge.

    backward: per head as ScaledDotProductAttention's (dQ, dK, dV from g's head), with
        P = exp(S - lse) made again from the scores S; dqkv = [dQ, dK, dV] side by side
    saves: qkv and each query's log-sum-exp lse of its scores (not P: T floats a head, not T^2)
    """

    @staticmethod
    def forward(ctx, qkv, n_head, mask, is_causal):
        y, lse = K.qkv_attention_forward(qkv, n_head, mask, is_causal)  # (B, T, C), (B, nh, T)
        ctx.save_for_backward(qkv, lse)
        ctx.n_head, ctx.mask, ctx.is_causal = n_head, mask, is_causal
        return y

    @staticmethod
    def backward(ctx, grad):
        qkv, lse = ctx.saved_tensors
        dqkv = K.qkv_attention_backward(qkv, lse, grad, ctx.n_head, ctx.mask, ctx.is_causal)
        return dqkv, None, None, None

"""Scaled dot-product attention as one fused op: scores, mask, softmax and weighted sum.

The composite in functional.py (`attention_composite`) computes the same thing op by op; it
is the oracle in the tests and what `study_mode()` runs so each step has its own node.
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

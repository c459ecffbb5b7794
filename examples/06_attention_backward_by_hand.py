"""The backward of one causal multi-head attention block, by hand in NumPy, checked
against minigrad's autograd.

The block is nn.MultiHeadAttention (nanoGPT's CausalSelfAttention):

    qkv = x W_attn^T + b_attn                      (B, T, 3C)
    q, k, v = split(qkv), each to heads            (B, nh, T, hs)
    S = q k^T / sqrt(hs), masked to j <= i         (B, nh, T, T)   "scores"
    P = softmax(S) over the last axis              (B, nh, T, T)   "probs"
    O = P v                                        (B, nh, T, hs)
    y = merge_heads(O) W_proj^T + b_proj           (B, T, C)

and L = sum(G * y) for a fixed random G, so dL/dy = G. Backward walks the same steps in
reverse; each line below is one rule of `mg.viz.explain`. The gradients of q, k, v, S
and P are compared with what `mg.viz.trace()` recorded at the labelled nodes, and
dL/dx, dL/dW with autograd's, in float64: they agree to ~1e-15.

    python examples/06_attention_backward_by_hand.py
"""

import argparse
import sys

import numpy as np

import minigrad as mg
from minigrad import nn, viz


def forward(x, w_attn, b_attn, w_proj, b_proj, nh):
    """The block's forward in NumPy; returns y and what the backward needs."""
    B, T, C = x.shape
    hs = C // nh
    qkv = x @ w_attn.T + b_attn  # (B, T, 3C)
    q, k, v = (a.reshape(B, T, nh, hs).transpose(0, 2, 1, 3)  # (B, nh, T, hs)
               for a in np.split(qkv, 3, axis=-1))
    s = q @ k.transpose(0, 1, 3, 2) / np.sqrt(hs)  # (B, nh, T, T)
    causal = np.tril(np.ones((T, T), dtype=bool))
    e = np.exp(np.where(causal, s, -np.inf) - s.max(axis=-1, keepdims=True))
    p = e / e.sum(axis=-1, keepdims=True)  # (B, nh, T, T), exactly 0 above the diagonal
    o = p @ v  # (B, nh, T, hs)
    merged = o.transpose(0, 2, 1, 3).reshape(B, T, C)  # (B, T, C)
    y = merged @ w_proj.T + b_proj  # (B, T, C)
    return y, dict(q=q, k=k, v=v, p=p, merged=merged, hs=hs)


def backward(g, x, w_attn, w_proj, saved, nh):
    """dL/d(everything) for dL/dy = g, step by step in reverse."""
    B, T, C = x.shape
    q, k, v, p, merged, hs = (saved[n] for n in ("q", "k", "v", "p", "merged", "hs"))
    # y = merged W_proj^T + b_proj: a Linear.
    d_w_proj = g.reshape(-1, C).T @ merged.reshape(-1, C)  # (C, C)
    d_b_proj = g.sum(axis=(0, 1))  # (C,)
    d_merged = g @ w_proj  # (B, T, C)
    # merge_heads is a reshape + transpose: undo both.
    d_o = d_merged.reshape(B, T, nh, hs).transpose(0, 2, 1, 3)  # (B, nh, T, hs)
    # O = P V: a matmul. dV = P^T dO, dP = dO V^T.
    d_v = p.transpose(0, 1, 3, 2) @ d_o  # (B, nh, T, hs)
    d_p = d_o @ v.transpose(0, 1, 3, 2)  # (B, nh, T, T)
    # P = softmax(S): dS = P * (dP - sum_j dP * P). Where P = 0 (the masked future), dS = 0.
    d_s = p * (d_p - (d_p * p).sum(axis=-1, keepdims=True))  # (B, nh, T, T)
    # S = Q K^T / sqrt(hs): dQ = dS K / sqrt(hs), dK = dS^T Q / sqrt(hs).
    d_q = d_s @ k / np.sqrt(hs)  # (B, nh, T, hs)
    d_k = d_s.transpose(0, 1, 3, 2) @ q / np.sqrt(hs)  # (B, nh, T, hs)
    # split into heads: move the head axis back and concatenate q, k, v along channels.
    d_qkv = np.concatenate([a.transpose(0, 2, 1, 3).reshape(B, T, C)
                            for a in (d_q, d_k, d_v)], axis=-1)  # (B, T, 3C)
    # qkv = x W_attn^T + b_attn: a Linear.
    d_w_attn = d_qkv.reshape(-1, 3 * C).T @ x.reshape(-1, C)  # (3C, C)
    d_b_attn = d_qkv.sum(axis=(0, 1))  # (3C,)
    d_x = d_qkv @ w_attn  # (B, T, C)
    return dict(x=d_x, w_attn=d_w_attn, b_attn=d_b_attn, w_proj=d_w_proj, b_proj=d_b_proj,
                q=d_q, k=d_k, v=d_v, scores=d_s, probs=d_p)


def main(argv=None):
    """Compare the hand-written backward with autograd; returns 0 (1 if they differ)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--fast", action="store_true", help="a smaller block")
    parser.add_argument("--out", default=None, help="(no files are written)")
    args = parser.parse_args(argv)
    B, T, C, nh = (2, 5, 8, 2) if args.fast else (4, 16, 64, 4)
    mg.manual_seed(0)
    attn = nn.MultiHeadAttention(C, nh, causal=True).double()
    rng = np.random.default_rng(0)
    x = rng.standard_normal((B, T, C))
    g = rng.standard_normal((B, T, C))

    # Autograd, with the trace recording dL/d(q, k, v, scores, probs) at labelled nodes.
    xt = mg.tensor(x, requires_grad=True)
    with viz.trace() as t:
        y = attn(xt)
        (y * g).sum().backward()
    auto = dict(x=xt.grad, w_attn=attn.c_attn.weight.grad, b_attn=attn.c_attn.bias.grad,
                w_proj=attn.c_proj.weight.grad, b_proj=attn.c_proj.bias.grad,
                **{name: t.grads[name][0] for name in ("q", "k", "v", "scores", "probs")})

    params = [p.data for p in (attn.c_attn.weight, attn.c_attn.bias, attn.c_proj.weight,
                               attn.c_proj.bias)]
    y_hand, saved = forward(x, *params, nh)
    hand = backward(g, x, params[0], params[2], saved, nh)

    print(f"one causal attention block: B={B}, T={T}, C={C}, {nh} heads, float64")
    print(f"forward  max |y_hand - y_autograd| = {np.abs(y_hand - y.data).max():.2e}")
    worst = 0.0
    for name in ("probs", "v", "scores", "q", "k", "w_proj", "b_proj", "w_attn", "b_attn",
                 "x"):
        diff = np.abs(hand[name] - auto[name]).max()
        worst = max(worst, diff)
        print(f"backward dL/d{name:<7} {str(hand[name].shape):<16} max |hand - autograd| "
              f"= {diff:.2e}")
    print("\nper-head gradient norms recorded by the trace (the same numbers, by head):")
    print(t.attention_table())
    ok = worst < 1e-10
    print(f"\nhand-written backward {'equals' if ok else 'DIFFERS FROM'} autograd "
          f"(worst difference {worst:.1e})")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

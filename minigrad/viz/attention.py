"""Attention maps of a model: every layer's and head's weights and scores, and a text
report of what a position attends to."""

import numpy as np

from minigrad.autograd import enable_grad, graph_nodes, study_mode
from minigrad.nn import MultiHeadAttention
from minigrad.viz._format import show_char

__all__ = ["attention_maps", "attention_modules", "attention_report", "entropy_bits"]


def attention_modules(model):
    """The MultiHeadAttention layers of a Module, in the order `modules()` yields them."""
    return [m for m in model.modules() if isinstance(m, MultiHeadAttention)]


def attention_maps(model, ids):
    """Run `model(ids)` once and return, per attention layer in order, a dict with
    "weights" (B, nh, T, T) (rows sum to 1, masked entries exactly 0, from the layers'
    `need_weights`) and "scores" (B, nh, T, T), q.k/sqrt(d) before the mask (read from
    the 'scores' nodes that study mode records)."""
    mods = attention_modules(model)
    if not mods:
        raise ValueError("attention_maps: the model has no MultiHeadAttention layer")
    previous = [m.need_weights for m in mods]
    was_training = model.training
    model.eval()
    try:
        for m in mods:
            m.need_weights = True
        with study_mode(), enable_grad():
            out = model(ids)
        out = out[0] if isinstance(out, tuple) else out
        weights = [m.attn_weights for m in mods]
    finally:
        for m, flag in zip(mods, previous, strict=True):
            m.need_weights = flag
        model.train(was_training)
    order = graph_nodes(out)
    order.reverse()  # forward order: the first layer's scores first
    scores = [np.array(node.output.data) for node in order if node.label == "scores"]
    if len(scores) != len(weights):
        raise RuntimeError(f"attention_maps: found {len(scores)} scores nodes for "
                           f"{len(weights)} attention layers (does the model require grad?)")
    return [{"weights": w, "scores": s} for w, s in zip(weights, scores, strict=True)]


def attention_report(maps, chars, position, top=3, batch=0):
    """Text: for query `position`, the `top` positions each layer's heads attend to most,
    with the score q.k/sqrt(d) and the weight, so one can say "'e' attends to 'h' because
    its score is the largest of the row". `maps` as returned by `attention_maps`."""
    T = maps[0]["weights"].shape[-1]
    if not -T <= position < T:
        raise ValueError(f"attention_report: position {position} is outside the text "
                         f"(length {T})")
    t = position % T
    text = "".join(chars[:T])
    lines = [f"query position {t} '{show_char(text[t])}' in {text!r}",
             "(weight = softmax over positions 0..t of score = q.k / sqrt(head size))"]
    for layer, m in enumerate(maps):
        w = m["weights"][batch, :, t]  # (nh, T)
        s = m["scores"][batch, :, t]  # (nh, T)
        for head in range(w.shape[0]):
            best = np.argsort(-w[head], kind="stable")[:top]
            quoted = [f"'{show_char(text[j])}'" for j in best]
            parts = [f"{int(j):>3} {quote:<5} score {s[head, j]:+7.3f} weight {w[head, j]:.3f}"
                     for j, quote in zip(best, quoted, strict=True) if w[head, j] > 0.0]
            lines.append(f"layer {layer} head {head}: " + " | ".join(parts))
    return "\n".join(lines)


def entropy_bits(weights):
    """Mean entropy (bits) of attention rows (..., T, T): 0 = one-hot, log2(T) = uniform."""
    p = np.asarray(weights, dtype=np.float64)
    logs = np.log2(np.where(p > 0, p, 1.0))
    return float(-(p * logs).sum(axis=-1).mean())

"""Attention maps of a model: every layer's and head's weights and scores, and a text
report of what a position attends to."""

import numpy as np

from minigrad.autograd import no_grad
from minigrad.nn import MultiHeadAttention
from minigrad.viz._format import show_char

__all__ = ["KIND_LABELS", "attention_label", "attention_labels", "attention_maps",
           "attention_modules", "attention_report", "entropy_bits"]


def attention_modules(model):
    """The MultiHeadAttention layers of a Module, in the order `modules()` yields them."""
    return [m for m in model.modules() if isinstance(m, MultiHeadAttention)]


# What each kind of layer is called in the labels ("encoder self-attention" and so on come
# from the module names: a layer under `encoder.` reads as the encoder's).
KIND_LABELS = {"self": "self-attention", "causal self": "causal self-attention",
               "cross": "cross-attention"}


def attention_label(name, kind):
    """A reader's label for an attention layer from its dotted module name and its kind:
    'encoder.layers.0.self_attn' (self) -> 'encoder layer 0 self-attention'."""
    parts = name.split(".")
    where = []
    for part in parts:
        if part in ("encoder", "decoder"):
            where.append(part)
        elif part.isdigit():
            where.append(f"layer {part}")
    return " ".join(where + [KIND_LABELS[kind]]) if where else f"{name} {KIND_LABELS[kind]}"


def attention_labels(model):
    """The label of each MultiHeadAttention layer of a model, in module order (the order
    the GPT's and the encoder-decoder's layers run): e.g. for `Trace.attention_table`."""
    return [attention_label(n, m.kind) for n, m in model.named_modules()
            if isinstance(m, MultiHeadAttention)]


def attention_maps(model, *inputs):
    """Run `model(*inputs)` once (eval mode, no graph) and return, per attention layer in
    the order `modules()` yields them (for an encoder-decoder: the encoder's, then each
    decoder layer's self- and cross-attention), a dict with "weights" (B, nh, T, S) (rows
    sum to 1, masked entries exactly 0), "scores" (B, nh, T, S), q.k/sqrt(d) before the
    mask, "name" (the module's dotted name), "kind" ("self", "causal self" or "cross") and
    "label" (e.g. "decoder layer 0 cross-attention"). S = T except for cross-attention,
    whose keys are the context (the encoder's output). Layers the call does not reach are
    left out."""
    named = [(n, m) for n, m in model.named_modules() if isinstance(m, MultiHeadAttention)]
    if not named:
        raise ValueError("attention_maps: the model has no MultiHeadAttention layer")
    previous = [m.need_weights for _, m in named]
    was_training = model.training
    model.eval()
    try:
        for _, m in named:
            m.need_weights = True
            m.attn_weights = m.attn_scores = None
        with no_grad():
            model(*inputs)
        maps = [{"weights": m.attn_weights, "scores": m.attn_scores, "name": name,
                 "kind": m.kind, "label": attention_label(name, m.kind)}
                for name, m in named if m.attn_weights is not None]
    finally:
        for (_, m), flag in zip(named, previous, strict=True):
            m.need_weights = flag
        model.train(was_training)
    return maps


def attention_report(maps, chars, position, top=3, batch=0, context_chars=None):
    """Text: for query `position`, the `top` positions each layer's heads attend to most,
    with the score q.k/sqrt(d) and the weight, so one can say "'e' attends to 'h' because
    its score is the largest of the row". `maps` as returned by `attention_maps`; `chars`
    label the queries (and the keys of self-attention), `context_chars` the keys of
    cross-attention (an encoder-decoder's source)."""
    T = maps[0]["weights"].shape[-2]
    if not -T <= position < T:
        raise ValueError(f"attention_report: position {position} is outside the text "
                         f"(length {T})")
    t = position % T
    text = "".join(chars[:T])
    lines = [f"query position {t} '{show_char(text[t])}' in {text!r}",
             "(weight = softmax over the keys it may see of score = q.k / sqrt(head size))"]
    mixed = len({m.get("kind") for m in maps}) > 1  # then name each layer by its label
    for layer, m in enumerate(maps):
        keys = text
        if m.get("kind") == "cross":
            if context_chars is None:
                raise ValueError("attention_report: cross-attention maps need context_chars "
                                 "(the characters of the keys)")
            keys = "".join(context_chars)
        w = m["weights"][batch, :, t]  # (nh, S)
        s = m["scores"][batch, :, t]  # (nh, S)
        name = m["label"] if mixed else f"layer {layer}"
        for head in range(w.shape[0]):
            best = np.argsort(-w[head], kind="stable")[:top]
            quoted = [f"'{show_char(keys[j])}'" for j in best]
            parts = [f"{int(j):>3} {quote:<5} score {s[head, j]:+7.3f} weight {w[head, j]:.3f}"
                     for j, quote in zip(best, quoted, strict=True) if w[head, j] > 0.0]
            lines.append(f"{name} head {head}: " + " | ".join(parts))
    return "\n".join(lines)


def entropy_bits(weights):
    """Mean entropy (bits) of attention rows (..., T, S): 0 = one-hot, log2(S) = uniform."""
    p = np.asarray(weights, dtype=np.float64)
    logs = np.log2(np.where(p > 0, p, 1.0))
    return float(-(p * logs).sum(axis=-1).mean())

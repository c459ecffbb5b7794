"""An attention explorer: one forward and backward pass of a model, as one self-contained
HTML page (no network, no server) or inline in Jupyter.

What the page holds, per attention block (every MultiHeadAttention call of the forward):
q, k, v (heads, T or S, d), the scaled and masked scores S = q k^T / sqrt(d) (+ mask) and
the weights P = softmax(S) as the forward computed them (float32); and, for every choice
of loss (the next-token loss of one position, or their mean), dL/dO, the gradient that
reaches the block's attention output O = P v. The page runs attention's backward itself
from dL/dO: dL/dP = dO v^T, dL/dS = P * (dL/dP - rowsum(dL/dP * P)), dL/dq = dL/dS k /
sqrt(d), dL/dk = dL/dS^T q / sqrt(d), dL/dv = P^T dO, so that every gradient view follows
the loss picker while the page stays small. Everything is read from the graph that
`study_mode()` builds (the labelled nodes q, k, v, scores, masked scores, probs, attention
output) during a normal forward and backward: the numbers are those of `trace()` and
`attention_maps` for the same pass.
"""

import base64
import html
import json
import math
import zlib
from importlib import resources

import numpy as np

import minigrad.functional as F
from minigrad.autograd import (
    add_backward_observer,
    enable_grad,
    remove_backward_observer,
    study_mode,
)
from minigrad.serialization import atomic_write_text
from minigrad.tensor import Tensor
from minigrad.viz._format import show_char
from minigrad.viz.attention import attention_modules

__all__ = ["Explorer", "explore"]

_LABELS = ("q", "k", "v", "scores", "masked scores", "probs", "attention output")
# Above this many bytes of float32 gradients, the page stores them as float16 times one
# float32 scale per loss and block (about 3 significant digits), to stay near 3 MB.
FLOAT32_GRAD_BUDGET = 1_000_000


def _block_nodes(out):
    """The labelled attention nodes of one MultiHeadAttention call, from its output: walk the
    graph back from `out`, stopping at the block's own q, k and v."""
    found = {}
    stack = [out.grad_fn]
    seen = set()
    while stack:
        node = stack.pop()
        if node is None or id(node) in seen:
            continue
        seen.add(id(node))
        if node.label in _LABELS and node.label not in found:
            found[node.label] = node
        if node.label in ("q", "k", "v"):
            continue
        stack.extend(None if i is None else i.grad_fn for i in node.inputs)
    missing = [lab for lab in ("q", "k", "v", "probs", "attention output") if lab not in found]
    if missing:
        raise RuntimeError(f"explore: an attention block has no {', '.join(missing)} node "
                           "(does the model require grad?)")
    return found


def _array(node):
    return np.array(node.output.data[0], dtype=np.float32)  # batch 0


def _as_inputs(ids):
    """The model's positional inputs as int arrays (1, T): one array, or a tuple of them."""
    items = ids if isinstance(ids, tuple | list) and ids and not np.isscalar(ids[0]) else (ids,)
    out = []
    for item in items:
        a = item.data if isinstance(item, Tensor) else np.asarray(item)
        if not np.issubdtype(a.dtype, np.integer):
            raise TypeError(f"explore: ids must be integer token ids, got dtype {a.dtype}")
        if a.ndim == 1:
            a = a[None, :]
        if a.ndim != 2 or a.shape[0] != 1 or a.shape[1] == 0:
            raise ValueError(f"explore: ids must have shape (T,) or (1, T) with T >= 1, "
                             f"got {a.shape}")
        out.append(a)
    return out


def _labels_for(inputs, labels):
    """One list of strings per input sequence."""
    if labels is None:
        return [[str(int(i)) for i in a[0]] for a in inputs]
    if len(inputs) == 1 and (isinstance(labels, str) or
                             (labels and isinstance(labels[0], str))):
        labels = [labels]
    labels = [[_show(str(c)) for c in seq] for seq in labels]
    if len(labels) != len(inputs) or any(len(lab) != a.shape[1]
                                         for lab, a in zip(labels, inputs, strict=True)):
        raise ValueError(f"explore: labels give lengths {[len(x) for x in labels]} for "
                         f"inputs of lengths {[a.shape[1] for a in inputs]}")
    return labels


def _show(label):
    """A position's label as the page shows it: one visible glyph per character."""
    return "\u21b5" if label == "\n" else show_char(label)


def _side(length, name, inputs, query, cross):
    """Which input a block's queries (or keys) run over: the only one of this length, else
    the source (first) for encoder blocks and keys of cross-attention, the target (last)
    otherwise."""
    same = [i for i, a in enumerate(inputs) if a.shape[1] == length]
    if len(same) == 1:
        return same[0]
    if cross:
        return len(inputs) - 1 if query else 0
    return 0 if "enc" in name.lower() else len(inputs) - 1


def _forward(model, mods, inputs):
    """Run model(*inputs) once in eval and study mode; returns (logits, calls), calls being
    (module, output) of every MultiHeadAttention call in order (seen by forward hooks that
    are removed afterwards). The model's mode is restored."""
    calls = []
    was_training = model.training
    model.eval()
    handles = [m.register_forward_hook(lambda m, args, out: calls.append((m, out)))
               for m in mods]
    try:
        with study_mode(), enable_grad():
            out = model(*inputs)
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)
    return (out[0] if isinstance(out, tuple) else out), calls


def _block(name, m, y, inputs):
    """(the page's record of one attention call, its labelled nodes)."""
    found = _block_nodes(y)
    q, k = _array(found["q"]), _array(found["k"])
    masked = found.get("masked scores", found.get("scores"))
    cross = q.shape[1] != k.shape[1] or bool(getattr(m, "cross", False))
    return {
        "name": name, "kind": "cross" if cross else "self", "heads": q.shape[0],
        "T": q.shape[1], "S": k.shape[1], "d": q.shape[2],
        "qside": _side(q.shape[1], name, inputs, True, cross),
        "kside": _side(k.shape[1], name, inputs, False, cross),
        "causal": bool(getattr(m, "causal", False)),
        "q": q, "k": k, "v": _array(found["v"]),
        "scores": _array(masked), "probs": _array(found["probs"]),
    }, found


def _backward(loss, blocks, nodes, retain):
    """Backpropagate `loss`; returns (dL/dO of every block (heads, T, d), and per block the
    largest |dL/d score| over its masked cells, from the scores before the mask (None for a
    block without a mask))."""
    want = {id(f["attention output"]): i for i, f in enumerate(nodes)}
    pre = {id(f["scores"]): i for i, f in enumerate(nodes) if "masked scores" in f}
    got, got_pre = {}, {}

    def observe(node, grad):
        if id(node) in want:
            got[want[id(node)]] = np.array(grad[0], dtype=np.float32)
        elif id(node) in pre:
            got_pre[pre[id(node)]] = np.asarray(grad[0])

    add_backward_observer(observe)
    try:
        loss.backward(retain_graph=retain)
    finally:
        remove_backward_observer(observe)
    grads = [got.get(i, np.zeros((b["heads"], b["T"], b["d"]), np.float32))
             for i, b in enumerate(blocks)]
    masked = [float(np.abs(got_pre[i][~np.isfinite(b["scores"])]).max(initial=0.0))
              if i in got_pre else None for i, b in enumerate(blocks)]
    return grads, masked


class Explorer:
    """One forward and backward pass of a model, ready to be shown: `save(path)` writes a
    self-contained HTML page, `_repr_html_()` shows it in Jupyter (in its own iframe, so
    that explorers never clash). Made by `explore(model, ids)`.

    Attributes: `blocks` (one dict per attention call: name, kind, heads, and the arrays
    q, k, v, scores (masked), probs, batch 0), `losses` ((T,) next-token losses, NaN where
    a position has no target), `target_labels` (what each position predicts), `mean_loss`,
    `choices` (["mean", t0, t1, ...]: the losses the page can backpropagate) and
    `d_out[c][b]` (dL/dO of choice c at block b, (heads, T, d)).
    """

    def __init__(self, title, labels, blocks, losses, target_labels, choices, d_out,
                 masked_grad):
        self.title = title
        self.labels = labels
        self.blocks = blocks
        self.losses = losses
        self.target_labels = target_labels
        self.choices = choices
        self.d_out = d_out
        self.masked_grad = masked_grad
        valid = ~np.isnan(losses)
        self.mean_loss = float(losses[valid].mean()) if valid.any() else float("nan")

    # ----- the page ------------------------------------------------------------------------
    def _payload(self):
        """(meta as a JSON-able dict, the binary blob of every array it names)."""
        parts, offset = [], 0
        grad_bytes = sum(g.size for per in self.d_out for g in per) * 4
        half = grad_bytes > FLOAT32_GRAD_BUDGET

        def put(a, dtype="f32", scale=None):
            nonlocal offset
            a = np.ascontiguousarray(a, dtype=np.float16 if dtype == "f16" else np.float32)
            entry = {"o": offset, "t": dtype, "s": list(a.shape)}
            if scale is not None:
                entry["k"] = scale
            raw = a.tobytes()
            pad = (-len(raw)) % 4
            parts.append(raw + b"\0" * pad)
            offset += len(raw) + pad
            return entry

        blocks = []
        for b in self.blocks:
            blocks.append({k: b[k] for k in ("name", "kind", "heads", "T", "S", "d", "qside",
                                             "kside", "causal")} |
                          {k: put(b[k]) for k in ("q", "k", "v", "scores", "probs")})
        grads = []
        for per in self.d_out:
            row = []
            for g in per:
                rows = np.flatnonzero(np.abs(g).max(axis=(0, 2)) > 0)  # positions with grad
                data = g[:, rows, :]
                if half:
                    scale = float(np.abs(data).max()) if data.size else 1.0
                    entry = put(data / (scale or 1.0), "f16", scale or 1.0)
                else:
                    entry = put(data)
                row.append({"rows": rows.tolist(), "data": entry})
            grads.append(row)
        losses = [None if math.isnan(x) else float(x) for x in self.losses]
        meta = {"title": self.title, "labels": self.labels, "blocks": blocks,
                "choices": self.choices, "losses": losses, "mean_loss": self.mean_loss,
                "target_labels": self.target_labels, "grads": grads, "grad_dtype":
                "float16" if half else "float32", "masked_grad": self.masked_grad}
        return meta, b"".join(parts)

    def html(self):
        """The page as one HTML string: script, style and data inline."""
        meta, blob = self._payload()
        data = base64.b64encode(zlib.compress(blob, 9)).decode("ascii")
        meta_json = json.dumps(meta, separators=(",", ":"), ensure_ascii=False)
        meta_json = meta_json.replace("<", "\\u003c")  # never "</script>" inside
        static = resources.files("minigrad.viz") / "static"
        css = (static / "explore.css").read_text(encoding="utf-8")
        js = (static / "explore.js").read_text(encoding="utf-8")
        title = html.escape(self.title)
        return (f"<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
                f"<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; "
                f"script-src 'unsafe-inline'; style-src 'unsafe-inline'; img-src data:\">"
                f"<title>{title}</title><style>{css}</style></head><body>"
                f"<div id=\"app\">loading…</div>"
                f"<script type=\"application/json\" id=\"meta\">{meta_json}</script>"
                f"<script type=\"text/plain\" id=\"blob\">{data}</script>"
                f"<script>{js}</script></body></html>\n")

    def save(self, path):
        """Write the page to `path` (atomically); returns the number of bytes written."""
        text = self.html()
        atomic_write_text(path, text)
        return len(text.encode("utf-8"))

    def _repr_html_(self):
        page = html.escape(self.html(), quote=True)
        return (f"<iframe srcdoc=\"{page}\" style=\"width:100%;height:900px;border:1px solid "
                f"#ddd\" title=\"{html.escape(self.title)}\"></iframe>")


def explore(model, ids, labels=None, targets=None, target_labels=None, positions=None,
            title=None):
    """Record one forward and backward pass of `model` on `ids` for study: returns an
    Explorer (`.save(path)` writes one self-contained HTML page; in Jupyter it shows
    inline).

    `model` is any Module with MultiHeadAttention layers whose call `model(*inputs)` returns
    logits (1, T, vocab) (or a tuple starting with them). `ids` is one integer sequence (T,)
    or (1, T), or a tuple of them passed as separate inputs (source, target). `labels` names
    the positions (a string or a list of strings per input; default the ids). `targets`
    (T,) are the next tokens the loss is measured against; by default the last input
    shifted by one (position t predicts token t + 1; the last position has no loss), and
    `target_labels` names them (default: the next position's label, or the id).
    `positions` limits the positions whose losses the page can backpropagate (default:
    every position with a target; the mean is always there): the page grows with their
    number.
    """
    mods = attention_modules(model)
    if not mods:
        raise ValueError("explore: the model has no MultiHeadAttention layer")
    inputs = _as_inputs(ids)
    labels = _labels_for(inputs, labels)
    T = inputs[-1].shape[1]
    targets_given = targets
    if targets is None:
        targets = np.full(T, -100, dtype=np.int64)
        targets[:-1] = inputs[-1][0, 1:]
    targets = np.asarray(targets.data if isinstance(targets, Tensor) else targets)
    targets = targets.reshape(-1).astype(np.int64)
    if targets.shape != (T,):
        raise ValueError(f"explore: targets must have shape ({T},), got {targets.shape}")

    params = list(model.parameters())
    kept_grads = [None if p.grad is None else np.array(p.grad, copy=True) for p in params]
    try:
        logits, calls = _forward(model, mods, inputs)
        if not isinstance(logits, Tensor) or logits.ndim != 3 or logits.shape[:2] != (1, T):
            raise ValueError(f"explore: the model must return logits (1, {T}, vocab), got "
                             f"{getattr(logits, 'shape', type(logits).__name__)}")
        if not calls:
            raise ValueError("explore: no MultiHeadAttention layer ran in the forward pass")
        names = {id(m): name for name, m in model.named_modules()}
        blocks, nodes = zip(*(_block(names.get(id(m), type(m).__name__), m, y, inputs)
                              for m, y in calls), strict=True)
        losses_t = F.cross_entropy(logits[0], targets, reduction="none")  # (T,)
        valid = targets != -100
        if not valid.any():
            raise ValueError("explore: no position has a target (the text needs 2 or more "
                             "tokens)")
        losses = np.where(valid, losses_t.data.astype(np.float64), np.nan)
        wanted = None if positions is None else {int(t) for t in positions}
        choices = ["mean"] + [int(t) for t in np.flatnonzero(valid)
                              if wanted is None or int(t) in wanted]
        d_out, masked_grad = [], []
        for n, c in enumerate(choices):
            loss = losses_t.sum() / int(valid.sum()) if c == "mean" else losses_t[c]
            grads, masked = _backward(loss, blocks, nodes, retain=n < len(choices) - 1)
            d_out.append(grads)
            masked_grad.append(masked)
    finally:
        for p, g in zip(params, kept_grads, strict=True):
            p.grad = g
    title = title or f"{type(model).__name__}: " + "".join(labels[-1])[:60]
    if target_labels is None:
        default = targets_given is None
        target_labels = [labels[-1][i + 1] if default else str(int(t))
                         for i, t in enumerate(targets) if t != -100]
    names = iter(_show(str(x)) for x in target_labels)
    target_labels = [None if t == -100 else next(names, "?") for t in targets]
    return Explorer(title, labels, list(blocks), losses, target_labels, choices, d_out,
                    masked_grad)

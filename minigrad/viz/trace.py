"""Watch the gradient flow: record one backward pass node by node."""

import numpy as np

from minigrad.autograd import add_backward_observer, remove_backward_observer, study_mode
from minigrad.viz._format import norm, shape_text

__all__ = ["ATTENTION_LABELS", "Trace", "trace"]

# The labelled nodes that `study_mode()` builds inside scaled_dot_product_attention.
ATTENTION_LABELS = ("q", "k", "v", "scores", "masked scores", "probs", "attention output")


class Trace:
    """Records a backward pass node by node; use as `with mg.viz.trace() as t:`.

    Inside the block, `study_mode()` is on (attention runs as labelled steps) and every
    node the backward visits adds a row: order, op name, label, output shape, the norm of
    the gradient it received (dL/d its output) and, at the attention labels, one norm per
    head (grads (B, nh, T, .): the norm over every axis but the head axis).

    `rows` holds the rows (dicts); `grads[label]` the gradient arrays of the attention
    labels, one per attention block in forward order (grads["q"][0] = dL/dq of the first
    layer); `table()` or `print(t)` shows them; `attention_table()` one line per block.
    """

    def __init__(self):
        self.rows = []
        self.grads = {}
        self._study = study_mode()
        self._by_node = {}

    def _observe(self, node, grad):
        row = {"order": len(self.rows), "op": node.name, "label": node.label,
               "shape": tuple(node.out_shape), "norm": norm(grad), "heads": None}
        if node.label in ATTENTION_LABELS:
            g = np.asarray(grad, dtype=np.float64)
            if g.ndim >= 4:
                # (..., nh, T, .): reduce every axis but the head axis.
                axes = tuple(i for i in range(g.ndim) if i != g.ndim - 3)
                row["heads"] = tuple(float(n) for n in np.sqrt((g * g).sum(axis=axes)))
            else:
                row["heads"] = (row["norm"],)
            self.grads.setdefault(node.label, []).append(np.array(grad, copy=True))
        self._by_node[id(node)] = row["norm"]
        self.rows.append(row)

    def __enter__(self):
        self.rows.clear()
        self.grads.clear()
        self._by_node.clear()
        self._study.__enter__()
        add_backward_observer(self._observe)
        return self

    def __exit__(self, *exc):
        remove_backward_observer(self._observe)
        self._study.__exit__(*exc)
        # The backward meets the last block first; store the attention grads by layer.
        for arrays in self.grads.values():
            arrays.reverse()
        return False

    def norms_by_node(self):
        """{id(node): gradient norm} of the recorded backward, for `to_dot(..., trace=)`."""
        return dict(self._by_node)

    def table(self, attention_only=False):
        """The rows as a fixed-width table; attention_only keeps the labelled nodes."""
        rows = [r for r in self.rows if not attention_only or r["label"] in ATTENTION_LABELS]
        head = f"{'#':>4}  {'op':<26} {'label':<17} {'output shape':<20} {'|grad|':>10}  " \
               "per-head |grad|"
        lines = [head, "-" * len(head)]
        for r in rows:
            heads = "" if r["heads"] is None else " ".join(f"{h:.3g}" for h in r["heads"])
            lines.append(f"{r['order']:>4}  {r['op']:<26} {r['label'] or '':<17} "
                         f"{shape_text(r['shape']):<20} {r['norm']:>10.4g}  {heads}")
        return "\n".join(lines)

    def attention_table(self, labels=None):
        """One line per attention block and head: |dL/dV|, |dL/dP|, |dL/dS|, |dL/dQ|, |dL/dK|.

        The columns follow the backward: V and P first (the output is P V), then the scores
        S (through the softmax), then Q and K (through S = Q K^T / sqrt(d)). The blocks are
        in the order they ran; `labels` names them (e.g. `viz.attention_labels(model)`:
        "encoder layer 0 self-attention", "decoder layer 0 cross-attention", ...), else
        they are numbered.
        """
        cols = (("v", "dL/dV"), ("probs", "dL/dP"), ("scores", "dL/dS"), ("q", "dL/dQ"),
                ("k", "dL/dK"))
        n_blocks = len(self.grads.get("probs", ()))
        if labels is not None and len(labels) != n_blocks:
            raise ValueError(f"attention_table: {len(labels)} labels for {n_blocks} "
                             "attention blocks")
        names = [str(b) for b in range(n_blocks)] if labels is None else list(labels)
        width = max([5] + [len(n) for n in names])
        lines = [f"{'block':<{width}} {'head':>4}  " +
                 "  ".join(f"{name:>9}" for _, name in cols)]
        for b in range(n_blocks):
            per = {lab: self._head_norms(self.grads[lab][b]) for lab, _ in cols
                   if lab in self.grads}
            for h in range(len(per["probs"])):
                cells = "  ".join(f"{per[lab][h]:>9.4g}" if lab in per else f"{'-':>9}"
                                  for lab, _ in cols)
                lines.append(f"{names[b]:<{width}} {h:>4}  {cells}")
        return "\n".join(lines)

    @staticmethod
    def _head_norms(g):
        g = np.asarray(g, dtype=np.float64)
        if g.ndim < 4:
            return (norm(g),)
        axes = tuple(i for i in range(g.ndim) if i != g.ndim - 3)
        return tuple(np.sqrt((g * g).sum(axis=axes)))

    def __str__(self):
        return self.table()


def trace(fn=None, *args, **kwargs):
    """Record a backward pass: `with trace() as t: ...` or `t = trace(fn, *args)`.

    With `fn`, runs fn(*args, **kwargs) (which should do a forward and a backward) inside
    the recording and returns the Trace. Works on any model: each node visited by the
    backward becomes a row; see `Trace`.
    """
    t = Trace()
    if fn is None:
        return t
    with t:
        fn(*args, **kwargs)
    return t

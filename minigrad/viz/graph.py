"""The graph that made a tensor: as nodes and edges, as Graphviz DOT text, as a picture."""

import shutil
import subprocess

from minigrad.autograd import Node, graph_nodes
from minigrad.viz._format import norm, shape_text
from minigrad.viz.trace import ATTENTION_LABELS

__all__ = ["graph_edges", "render_dot", "to_dot"]


def graph_edges(tensor):
    """(nodes in forward order, edges (producer key, consumer node)) of tensor's graph.

    A producer key is a Node, or the input object itself for a leaf or a constant.
    """
    order = graph_nodes(tensor)
    order.reverse()  # producers first, as the forward ran
    edges = []
    for node in order:
        for inp in node.inputs:
            if inp is not None:
                edges.append((inp.grad_fn if inp.grad_fn is not None else inp, node))
    return order, edges


def _dot_label(parts):
    """One DOT label from text lines: quotes and backslashes escaped, lines joined by \\n."""
    return "\\n".join(str(p).replace("\\", "\\\\").replace('"', '\\"') for p in parts)


def to_dot(tensor, params=None, trace=None):
    """Graphviz DOT text of the graph that made `tensor`.

    Each op is a box with its name, its label (e.g. 'probs' in study mode) and its output
    shape; leaves are ellipses with their shape (and name, when `params` maps names to
    tensors, e.g. `dict(model.named_parameters())`); constants are grey. After backward the
    leaves show |grad|; pass the `trace` that recorded the backward to show every node's
    gradient norm too. Edges point the way the forward ran. Works before or after backward.
    """
    names = {id(t): name for name, t in (params or {}).items()}
    norms = {} if trace is None else trace.norms_by_node()
    order, edges = graph_edges(tensor)
    ids = {}

    def key(obj):
        return ids.setdefault(id(obj), f"n{len(ids)}")

    lines = ["digraph minigrad {", "  rankdir=TB;",
             '  node [fontname="Helvetica", fontsize=10];']
    leaves = {}
    for producer, _ in edges:
        if not isinstance(producer, Node):
            leaves[id(producer)] = producer
    if tensor.grad_fn is None:
        leaves[id(tensor)] = tensor
    for leaf in leaves.values():
        parts = [shape_text(leaf.shape)]
        if id(leaf) in names:
            parts.insert(0, names[id(leaf)])
        if getattr(leaf, "requires_grad", False):
            if leaf.grad is not None:
                parts.append(f"|grad| = {norm(leaf.grad):.3g}")
            style = 'shape=ellipse, style=filled, fillcolor="#dbe9f6"'
        else:
            parts[0] = f"const {parts[0]}"
            style = 'shape=ellipse, color="#999999", fontcolor="#777777"'
        lines.append(f'  {key(leaf)} [label="{_dot_label(parts)}", {style}];')
    for node in order:
        parts = [node.name] if node.label is None else [node.name, f"'{node.label}'"]
        parts.append(shape_text(node.out_shape))
        fill = "#fde9c9" if node.label in ATTENTION_LABELS else "#f2f2f2"
        if id(node) in norms:
            parts.append(f"|grad| = {norms[id(node)]:.3g}")
        lines.append(f'  {key(node)} [label="{_dot_label(parts)}", shape=box, '
                     f'style="rounded,filled", fillcolor="{fill}"];')
    for producer, consumer in edges:
        lines.append(f"  {key(producer)} -> {key(consumer)};")
    lines.append("}")
    return "\n".join(lines) + "\n"


def render_dot(dot_text, path):
    """Write `dot_text` to `path` (.svg, .png or .pdf via Graphviz; anything else: the text).

    Returns the path written, or None when Graphviz's `dot` program is not installed (the
    DOT text is then written next to it as `<path>.dot`, to render elsewhere).
    """
    path = str(path)
    fmt = path.rsplit(".", 1)[-1].lower() if "." in path else ""
    if fmt not in ("svg", "png", "pdf"):
        with open(path, "w", encoding="utf-8") as f:
            f.write(dot_text)
        return path
    exe = shutil.which("dot")
    if exe is None:
        with open(path + ".dot", "w", encoding="utf-8") as f:
            f.write(dot_text)
        return None
    subprocess.run([exe, f"-T{fmt}", "-o", path], input=dot_text.encode(), check=True)
    return path

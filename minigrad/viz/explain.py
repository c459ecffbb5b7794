"""An op's backward rule in words and symbols, read from its Function's docstring, next to
its forward and backward (see minigrad.autograd.Function)."""

import importlib
import inspect
import pkgutil

import numpy as np

from minigrad.autograd import Function, Node
from minigrad.nn import MultiHeadAttention
from minigrad.tensor import Tensor
from minigrad.viz._format import shape_text

__all__ = ["explain", "explanation_of", "function_classes"]


def _function_class(op):
    if isinstance(op, type) and issubclass(op, Function):
        return op
    if isinstance(op, str):
        import minigrad.ops as ops_pkg

        for cls in function_classes(ops_pkg):
            if cls.__name__ == op:
                return cls
    return None


def function_classes(package):
    """Every Function subclass defined in the modules of `package` (e.g. minigrad.ops)."""
    found = []
    for info in pkgutil.iter_modules(package.__path__):
        module = importlib.import_module(f"{package.__name__}.{info.name}")
        for obj in vars(module).values():
            if (isinstance(obj, type) and issubclass(obj, Function) and obj is not Function
                    and obj.__module__ == module.__name__):
                found.append(obj)
    return found


# What each kind of MultiHeadAttention computes, and where its backward sends the gradient.
_ATTENTION_KINDS = {
    "self": ("self-attention: Q, K and V all come from the input x (B, T, C) through c_attn; "
             "every position may attend to every position (except padded keys).",
             "dx collects dQ, dK and dV through c_attn: each position's input gets gradient "
             "from its own query and from every query that reads its key and value."),
    "causal self": ("causal self-attention (a decoder's): Q, K and V from x (B, T, C) "
                    "through c_attn; position t attends to positions <= t only.",
                    "the masked probabilities are exactly 0, so dx[s] gets nothing from any "
                    "output t < s: no output sees a later input (viz.check_causal)."),
    "cross": ("cross-attention (encoder-decoder attention): Q from x, the decoder's stream "
              "(B, T, C), through q_proj; K and V from the context, the encoder's output "
              "(B, S, C), through kv_proj; weights (B, nh, T, S).",
              "dx = dQ W_q; dcontext = dK W_k + dV W_v: the gradient leaves the decoder "
              "through its queries and enters the encoder through every unpadded source "
              "position's key and value (viz.check_causal with a context)."),
}


def _explain_attention(module):
    what, grad = _ATTENTION_KINDS[module.kind]
    nh, C = module.num_heads, module.embed_dim
    op = "ScaledDotProductAttention" if module.cross else "SelfAttention"
    return "\n".join([f"MultiHeadAttention ({module.kind}, {nh} heads of {C // nh}): {what}",
                      f"  backward: {grad}",
                      f"  inside:   one {op} node (explain('{op}')), between the projections "
                      "(in study mode, each step its own node)."])


def explanation_of(cls):
    """(words, rule, saves) from a Function's own docstring: the text before its
    `backward:` line, that line and its `saves:` line (continuation lines indented); None
    when the docstring has no `backward:` line."""
    doc = cls.__dict__.get("__doc__")
    if not doc:
        return None
    parts = {"words": [], "backward": [], "saves": []}
    current = "words"
    for line in inspect.cleandoc(doc).splitlines():
        key, _, rest = line.partition(":")
        if key in ("backward", "saves") and not line.startswith(" "):
            current = key
            line = rest
        parts[current].append(line.strip())
    if not parts["backward"]:
        return None
    words, rule, saves = (" ".join(w for w in parts[k] if w) for k in parts)
    return words, rule, saves or "nothing"


def explain(op_or_node):
    """How an op's backward works: in words, in symbols, and what forward saved.

    Takes an op (a Function class or its name, e.g. "Softmax"), a recorded node
    (`t.grad_fn`), a tensor (its grad_fn) or a MultiHeadAttention layer (what its kind,
    self, causal self or cross, computes and where its gradient goes). For a node it adds
    the actual output and input shapes and the names and shapes of what it saved (call it
    before backward, which frees them). An op whose docstring has no `backward:` line shows its
    backward's source. Returns the text.
    """
    node = None
    if isinstance(op_or_node, MultiHeadAttention):
        return _explain_attention(op_or_node)
    if isinstance(op_or_node, Tensor):
        if op_or_node.grad_fn is None:
            return f"a leaf tensor of shape {shape_text(op_or_node.shape)}: no op made it"
        op_or_node = op_or_node.grad_fn
    if isinstance(op_or_node, Node):
        node = op_or_node
        name = node.name
        cls = node.function
    else:
        cls = _function_class(op_or_node)
        name = op_or_node if isinstance(op_or_node, str) else getattr(cls, "__name__", "?")
    explanation = None if cls is None else explanation_of(cls)
    if explanation is not None:
        words, rule, saves = explanation
        lines = [f"{name}: {words}", f"  backward: {rule}", f"  saves:    {saves}"]
    elif cls is not None:
        lines = [f"{name}: no `backward:` line in its docstring; its backward is:",
                 inspect.getsource(cls.backward).rstrip()]
    else:
        raise ValueError(f"explain: unknown op {op_or_node!r}")
    if node is not None:
        if node.label is not None:
            lines.insert(1, f"  label:    {node.label!r}")
        ins = ", ".join("-" if t is None else shape_text(t.shape) for t in node.inputs)
        lines.append(f"  this node: output {shape_text(node.out_shape)}, inputs {ins}")
        if node.freed:
            lines.append("  saved:    freed by backward (explain before backward, or pass "
                         "retain_graph=True)")
        else:
            saved = [f"saved_tensors[{i}] {shape_text(np.shape(a))}"
                     for i, a in enumerate(node.saved_tensors)]
            saved += [f"{k}={_short(v)}" for k, v in vars(node).items()
                      if not k.startswith("_") and k not in ("needs_input_grad", "label",
                                                             "saved_tensors")]
            lines.append("  saved:    " + (", ".join(saved) if saved else "nothing"))
    return "\n".join(lines)


def _short(value):
    if isinstance(value, np.ndarray):
        return f"array{shape_text(value.shape)}"
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."

"""An op's backward rule in words and symbols, read from its Function's docstring, next to
its forward and backward (see minigrad.autograd.Function)."""

import importlib
import inspect
import pkgutil

import numpy as np

from minigrad.autograd import Function, Node
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
    (`t.grad_fn`) or a tensor (its grad_fn). For a node it adds the actual output and input
    shapes and the names and shapes of what it saved (call it before backward, which
    frees them). An op whose docstring has no `backward:` line shows its backward's source.
    Returns the text.
    """
    node = None
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

"""Study tools: see the graph, watch the gradient flow, read each op's backward rule.

- `to_dot(tensor)`: Graphviz DOT text of the graph that made a tensor (op names, labels,
  shapes; leaf gradient norms after backward, every node's with a `trace`); `render_dot`
  turns it into an SVG/PNG when Graphviz's `dot` is installed.
- `trace()`: a context manager (or `trace(fn)`) that records one backward pass node by
  node, with per-head gradient norms at the attention nodes (q, k, v, scores, probs).
- `explain(op_or_node)`: an op's backward rule in words and symbols, what it saves, and for
  a recorded node the actual shapes.
- `check_causal(model_or_fn, T)`: proves with gradients that output t does not depend on
  any input after t (the Jacobian blocks are exactly zero), or shows where it leaks.
- `attention_maps`, `plot_attention`, `attention_report`: the attention probabilities of
  every layer and head of a model, as a PNG grid or as text ("position 7 attends to 5
  with score q.k/sqrt(d) = 2.31 and weight 0.62"). Plots need matplotlib (extra [plot]).

Nothing here keeps hidden state: every tool works on the tensors and modules it is given.
"""

import inspect
import shutil
import subprocess

import numpy as np

from minigrad import autograd
from minigrad.autograd import Function, Node, study_mode
from minigrad.tensor import Tensor

__all__ = [
    "to_dot", "render_dot", "trace", "Trace", "explain", "check_causal", "CausalReport",
    "attention_maps", "plot_attention", "attention_report", "entropy_bits",
    "softmax_jacobian_norm", "EXPLANATIONS", "ATTENTION_LABELS",
]

# The labelled nodes that `study_mode()` builds inside scaled_dot_product_attention.
ATTENTION_LABELS = ("q", "k", "v", "scores", "masked scores", "probs", "attention output")


def _norm(array):
    return float(np.linalg.norm(np.asarray(array, dtype=np.float64)))


def _shape(shape):
    return str(tuple(int(n) for n in shape))


# ---------------------------------------------------------------------------------------
# to_dot
# ---------------------------------------------------------------------------------------


def _graph(tensor):
    """(nodes in forward order, edges (producer key, consumer node)) of tensor's graph.

    A producer key is a Node, or the input object itself for a leaf or a constant.
    """
    if tensor.grad_fn is None:
        return [], []
    order = autograd._topological_order(tensor.grad_fn)
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
    order, edges = _graph(tensor)
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
        parts = [_shape(leaf.shape)]
        if id(leaf) in names:
            parts.insert(0, names[id(leaf)])
        if getattr(leaf, "requires_grad", False):
            if leaf.grad is not None:
                parts.append(f"|grad| = {_norm(leaf.grad):.3g}")
            style = 'shape=ellipse, style=filled, fillcolor="#dbe9f6"'
        else:
            parts[0] = f"const {parts[0]}"
            style = 'shape=ellipse, color="#999999", fontcolor="#777777"'
        lines.append(f'  {key(leaf)} [label="{_dot_label(parts)}", {style}];')
    for node in order:
        parts = [node.name] if node.label is None else [node.name, f"'{node.label}'"]
        parts.append(_shape(node.out_shape))
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


# ---------------------------------------------------------------------------------------
# trace
# ---------------------------------------------------------------------------------------


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
               "shape": tuple(node.out_shape), "norm": _norm(grad), "heads": None}
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
        autograd.add_backward_observer(self._observe)
        return self

    def __exit__(self, *exc):
        autograd.remove_backward_observer(self._observe)
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
                         f"{_shape(r['shape']):<20} {r['norm']:>10.4g}  {heads}")
        return "\n".join(lines)

    def attention_table(self):
        """One line per attention block and head: |dL/dV|, |dL/dP|, |dL/dS|, |dL/dQ|, |dL/dK|.

        The order is the backward's: V and P first (the output is P V), then the scores S
        (through the softmax), then Q and K (through S = Q K^T / sqrt(d)).
        """
        cols = (("v", "dL/dV"), ("probs", "dL/dP"), ("scores", "dL/dS"), ("q", "dL/dQ"),
                ("k", "dL/dK"))
        n_blocks = len(self.grads.get("probs", ()))
        lines = [f"{'block':>5} {'head':>4}  " + "  ".join(f"{name:>9}" for _, name in cols)]
        for b in range(n_blocks):
            per = {lab: self._head_norms(self.grads[lab][b]) for lab, _ in cols
                   if lab in self.grads}
            for h in range(len(per["probs"])):
                cells = "  ".join(f"{per[lab][h]:>9.4g}" if lab in per else f"{'-':>9}"
                                  for lab, _ in cols)
                lines.append(f"{b:>5} {h:>4}  {cells}")
        return "\n".join(lines)

    @staticmethod
    def _head_norms(g):
        g = np.asarray(g, dtype=np.float64)
        if g.ndim < 4:
            return (_norm(g),)
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


# ---------------------------------------------------------------------------------------
# explain
# ---------------------------------------------------------------------------------------

# Op name -> (what backward does in words, the rule in symbols, what forward saves).
# g is the gradient arriving at the op's output (dL/dy); every Function in minigrad.ops
# has an entry (tests/test_viz.py checks it), so a new op gets one too.
EXPLANATIONS = {
    "Identity": ("Passes the gradient through unchanged; exists to give a tensor its own "
                 "labelled node (q, k, v in study mode).", "dx = g", "nothing"),
    "Reshape": ("Same numbers, new shape: the gradient is reshaped back.",
                "dx = g.reshape(x.shape)", "the input shape"),
    "Permute": ("Axes reordered: the gradient gets the inverse permutation.",
                "dx = g.transpose(argsort(axes))", "the axes"),
    "Expand": ("A broadcast view: every copy's gradient adds up in the original element "
               "(the engine's unbroadcast sums them).", "dx = sum of g over broadcast axes",
               "nothing"),
    "GetItem": ("Indexing picks elements; the gradient goes back to where they came from, "
                "zeros elsewhere; repeated indices accumulate.",
                "dx = zeros(x.shape); dx[index] += g", "input shape, dtype and the index"),
    "Cat": ("Concatenation: the gradient is cut into the pieces' sizes.",
            "dx_i = g[bounds_i : bounds_i+1] along axis", "the axis and the cut points"),
    "Stack": ("Stacking: each input gets its slice of the gradient.",
              "dx_i = g[..., i, ...] along axis", "the axis"),
    "Add": ("Sum: both inputs receive the gradient unchanged (summed over broadcast axes).",
            "da = g, db = g", "nothing"),
    "Sub": ("Difference: a gets g, b gets -g.", "da = g, db = -g", "nothing"),
    "Mul": ("Product: each input's gradient is g times the other input.",
            "da = g * b, db = g * a", "both inputs a, b"),
    "Div": ("Quotient y = a / b.", "da = g / b, db = -g * a / b^2", "both inputs a, b"),
    "Pow": ("Power y = x^p.", "dx = g * p * x^(p-1), dp = g * y * log(x)",
            "x, the exponent and y"),
    "Neg": ("Negation flips the gradient's sign.", "dx = -g", "nothing"),
    "Exp": ("y = exp(x) is its own derivative, so backward reuses the output.",
            "dx = g * y", "the output y"),
    "Log": ("y = log(x).", "dx = g / x", "the input x"),
    "Sqrt": ("y = sqrt(x).", "dx = g / (2 y)", "the output y"),
    "Abs": ("y = |x|: the gradient's sign follows x (0 at 0).", "dx = g * sign(x)",
            "the input x"),
    "Tanh": ("y = tanh(x).", "dx = g * (1 - y^2)", "the output y"),
    "Sigmoid": ("y = 1 / (1 + exp(-x)).", "dx = g * y * (1 - y)", "the output y"),
    "ReLU": ("y = max(x, 0): the gradient passes where x > 0 and stops elsewhere.",
             "dx = g * (x > 0)", "the input x"),
    "GELU": ("y = x * Phi(x) (Phi = standard normal CDF, or its tanh approximation).",
             "dx = g * (Phi(x) + x * phi(x))", "the input x and the approximation"),
    "Maximum": ("Elementwise max: the larger input takes the gradient, ties split it.",
                "da = g * [a > b] (+ g/2 on ties), db = the rest", "both inputs"),
    "Minimum": ("Elementwise min: the smaller input takes the gradient, ties split it.",
                "da = g * [a < b] (+ g/2 on ties), db = the rest", "both inputs"),
    "Clip": ("Clamp to [low, high]: the gradient passes inside the range only.",
             "dx = g * [low <= x <= high]", "the input x and the bounds"),
    "Where": ("Select a or b by cond: each gets the gradient where it was chosen.",
              "da = g * cond, db = g * (1 - cond)", "the condition"),
    "MaskedFill": ("Masked entries were replaced by a constant (-inf for attention masks), "
                   "so they get no gradient: this is what stops the future leaking back.",
                   "dx = g * (1 - mask)", "the mask"),
    "AsType": ("A dtype cast: the gradient is cast back to the input's dtype.",
               "dx = g.astype(x.dtype)", "nothing"),
    "MatMul": ("Y = A B: each operand's gradient is g times the other operand transposed "
               "(for S = Q K^T this gives dQ = dS K and dK = dS^T Q).",
               "dA = g B^T, dB = A^T g", "both operands A, B"),
    "Linear": ("Y = X W^T + b in one node: the three gradients of a dense layer.",
               "dX = g W, dW = g^T X, db = sum of g over rows", "X (as rows) and W"),
    "Sum": ("Every summed element contributed with weight 1: the gradient is broadcast back.",
            "dx = broadcast(g)", "input shape and axes"),
    "Mean": ("Like Sum, divided by the count.", "dx = broadcast(g) / n",
             "input shape, axes and count"),
    "Max": ("Only the winning element moved the output: it takes the gradient (split on "
            "ties).", "dx = g * [x == max] / (number of winners)", "the winners mask"),
    "Min": ("Only the smallest element moved the output: it takes the gradient (split on "
            "ties).", "dx = g * [x == min] / (number of winners)", "the winners mask"),
    "Var": ("Variance (1/n') sum (x - mean)^2.", "dx = g * 2 (x - mean) / n'",
            "x - mean and the degrees of freedom"),
    "LogSumExp": ("y = log sum exp(x): its gradient is the softmax of x.",
                  "dx = g * exp(x - y)", "the input x and output y"),
    "Softmax": ("p = softmax(s) along an axis. The Jacobian is diag(p) - p p^T, so the "
                "gradient is p times (g minus its p-weighted mean): a row that is nearly "
                "one-hot (saturated) passes almost no gradient.",
                "ds = p * (g - sum(g * p, axis))", "the output p"),
    "LogSoftmax": ("y = s - logsumexp(s): the gradient minus the softmax times its sum.",
                   "ds = g - exp(y) * sum(g, axis)", "the output y"),
    "LayerNorm": ("y = xhat * w + b with xhat = (x - mean) * rstd over the last axis. The "
                  "input gradient removes the mean and the xhat-component of g * w.",
                  "dx = rstd * (gw - mean(gw) - xhat * mean(gw * xhat)), gw = g * w; "
                  "dw = sum(g * xhat), db = sum(g)", "x, w, mean and rstd"),
    "CrossEntropy": ("Softmax cross-entropy from logits: the gradient is the predicted "
                     "probabilities minus the one-hot target (divided by the count for "
                     "'mean'; ignored targets get 0).",
                     "dlogits = g * (softmax(logits) - onehot(target)) / N",
                     "the logits, targets and logsumexp"),
    "Embedding": ("Row lookup W[idx]: the gradient rows are added back into the rows of W "
                  "that were used (repeated ids add up).", "dW = zeros; dW[idx] += g",
                  "the ids and the table size"),
    "ScaledDotProductAttention": (
        "O = P V with P = softmax(S), S = Q K^T / sqrt(d) (+ mask), in one node. Backward "
        "goes O -> (V, P) -> S -> (Q, K).",
        "dV = P^T g; dP = g V^T; dS = P * (dP - sum(dP * P, -1)); dQ = dS K / sqrt(d); "
        "dK = dS^T Q / sqrt(d)", "Q, K, V and the probabilities P"),
}


def _function_class(op):
    if isinstance(op, type) and issubclass(op, Function):
        return op
    if isinstance(op, str):
        import minigrad.ops as ops_pkg

        for cls in _function_classes(ops_pkg):
            if cls.__name__ == op:
                return cls
    return None


def _function_classes(package):
    """Every Function subclass defined in the modules of `package` (e.g. minigrad.ops)."""
    import importlib
    import pkgutil

    found = []
    for info in pkgutil.iter_modules(package.__path__):
        module = importlib.import_module(f"{package.__name__}.{info.name}")
        for obj in vars(module).values():
            if (isinstance(obj, type) and issubclass(obj, Function) and obj is not Function
                    and obj.__module__ == module.__name__):
                found.append(obj)
    return found


def explain(op_or_node):
    """How an op's backward works: in words, in symbols, and what forward saved.

    Takes an op (a Function class or its name, e.g. "Softmax"), a recorded node
    (`t.grad_fn`) or a tensor (its grad_fn). For a node it adds the actual output and input
    shapes and the names and shapes of what it saved (call it before backward, which
    frees them). An op without an entry shows its backward's source. Returns the text.
    """
    node = None
    if isinstance(op_or_node, Tensor):
        if op_or_node.grad_fn is None:
            return f"a leaf tensor of shape {_shape(op_or_node.shape)}: no op made it"
        op_or_node = op_or_node.grad_fn
    if isinstance(op_or_node, Node):
        node = op_or_node
        name = node.name
        cls = node._fn
    else:
        cls = _function_class(op_or_node)
        name = op_or_node if isinstance(op_or_node, str) else getattr(cls, "__name__", "?")
    if name in EXPLANATIONS:
        words, rule, saves = EXPLANATIONS[name]
        lines = [f"{name}: {words}", f"  backward: {rule}", f"  saves:    {saves}"]
    elif cls is not None:
        lines = [f"{name}: no entry in minigrad.viz.EXPLANATIONS; its backward is:",
                 inspect.getsource(cls.backward).rstrip()]
    else:
        raise ValueError(f"explain: unknown op {op_or_node!r}")
    if node is not None:
        if node.label is not None:
            lines.insert(1, f"  label:    {node.label!r}")
        ins = ", ".join("-" if t is None else _shape(t.shape) for t in node.inputs)
        lines.append(f"  this node: output {_shape(node.out_shape)}, inputs {ins}")
        if node._freed:
            lines.append("  saved:    freed by backward (explain before backward, or pass "
                         "retain_graph=True)")
        else:
            saved = [f"saved_tensors[{i}] {_shape(np.shape(a))}"
                     for i, a in enumerate(node.saved_tensors)]
            saved += [f"{k}={_short(v)}" for k, v in vars(node).items()
                      if not k.startswith("_") and k not in ("needs_input_grad", "label",
                                                             "saved_tensors")]
            lines.append("  saved:    " + (", ".join(saved) if saved else "nothing"))
    return "\n".join(lines)


def _short(value):
    if isinstance(value, np.ndarray):
        return f"array{_shape(value.shape)}"
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


# ---------------------------------------------------------------------------------------
# check_causal
# ---------------------------------------------------------------------------------------


class CausalReport:
    """The result of `check_causal`: `passed`, `leaks` [(t, s, magnitude)] with s > t, and
    `dependence` (T, T), the largest |d out[t] / d in[s]| seen for each pair."""

    def __init__(self, dependence):
        self.dependence = dependence
        T = dependence.shape[0]
        self.leaks = [(t, s, float(dependence[t, s])) for t in range(T)
                      for s in range(t + 1, T) if dependence[t, s] != 0.0]
        self.passed = not self.leaks

    def __bool__(self):
        return self.passed

    def __str__(self):
        T = self.dependence.shape[0]
        if self.passed:
            head = (f"causal: PASSED - for every t < s < {T}, d out[t] / d in[s] is exactly 0 "
                    "(no output sees a later input)")
        else:
            worst = max(self.leaks, key=lambda leak: leak[2])
            head = (f"causal: FAILED - {len(self.leaks)} of {T * (T - 1) // 2} future blocks "
                    f"are non-zero; worst: out[{worst[0]}] depends on in[{worst[1]}] "
                    f"(|grad| {worst[2]:.3g})")
        # One row per output position, one column per input position.
        grid = ["      in: " + "".join(f"{s % 10}" for s in range(T))]
        for t in range(T):
            cells = "".join(
                ("X" if s > t else "#") if self.dependence[t, s] != 0.0 else "."
                for s in range(T))
            grid.append(f"  out {t:>3}: {cells}")
        legend = "  (# depends, . exactly zero, X leak: depends on a later position)"
        return "\n".join([head, *grid, legend])


def _gpt_as_fn(model):
    """For a GPT: the map from the summed token + position embeddings (1, T, C) to the
    logits, i.e. everything after the embedding lookup, so inputs are float and can carry
    a gradient. Dropout is skipped (eval)."""
    blocks = model.transformer.h
    ln_f = model.transformer.ln_f

    def fn(x):
        for block in blocks:
            x = block(x)
        return model.lm_head(ln_f(x))

    return fn


def check_causal(model_or_fn, T, C=None, seed=0):
    """Prove with gradients that output position t depends on no input position after t.

    `model_or_fn` is a function (or Module) mapping a float (1, T, C) tensor to (1, T, C'),
    e.g. a MultiHeadAttention, a Block or a lambda, or a GPT: for a GPT the input is the
    token + position embedding sum and the output the logits (the blocks, final LayerNorm
    and head), since ids cannot carry a gradient. C is taken from a GPT's config or a
    module's `embed_dim` when not given.

    For each output position t, one backward of sum_c w_c out[0, t, c] (random weights w)
    gives d out[t] / d in[s] for every s at once; a causal model gives exactly 0.0 for
    every s > t (masked probabilities are exactly 0, so no rounding can hide a leak).
    Returns a CausalReport (truthy when it passed).
    """
    model = model_or_fn
    if hasattr(model, "transformer") and hasattr(model, "lm_head"):
        C = C or model.config.n_embd
        fn = _gpt_as_fn(model)
    else:
        C = C or getattr(model, "embed_dim", None)
        fn = model
    if C is None:
        raise ValueError("check_causal: pass C, the input's channel count")
    was_training = getattr(model, "training", None)
    if was_training:
        model.eval()  # dropout would make each backward see a different function
    try:
        dtype = _param_dtype(model)
        rng = np.random.default_rng(seed)
        x = Tensor(rng.standard_normal((1, T, C)).astype(dtype), requires_grad=True)
        out = fn(x)
        if out.shape[:2] != (1, T):
            raise ValueError(f"check_causal: expected an output (1, {T}, ...), "
                             f"got {out.shape}")
        dependence = np.zeros((T, T))
        for t in range(T):
            grad = np.zeros(out.shape, dtype=out.dtype)
            grad[0, t] = rng.standard_normal(out.shape[2:])
            x.grad = None
            out.backward(grad, retain_graph=t < T - 1)
            dependence[t] = np.abs(x.grad[0]).max(axis=-1)  # (T,) over input positions
    finally:
        if was_training:
            model.train()
    return CausalReport(dependence)


def _param_dtype(model):
    params = getattr(model, "parameters", None)
    if callable(params):
        for p in params():
            return p.dtype
    return np.float64


# ---------------------------------------------------------------------------------------
# attention maps
# ---------------------------------------------------------------------------------------


def _attention_modules(model):
    from minigrad.nn import MultiHeadAttention

    return [m for m in model.modules() if isinstance(m, MultiHeadAttention)]


def attention_maps(model, ids):
    """Run `model(ids)` once and return, per attention layer in order, a dict with
    "weights" (B, nh, T, T) (rows sum to 1, masked entries exactly 0, from the layers'
    `need_weights`) and "scores" (B, nh, T, T), q.k/sqrt(d) before the mask (read from
    the 'scores' nodes that study mode records)."""
    mods = _attention_modules(model)
    if not mods:
        raise ValueError("attention_maps: the model has no MultiHeadAttention layer")
    previous = [m.need_weights for m in mods]
    was_training = model.training
    model.eval()
    try:
        for m in mods:
            m.need_weights = True
        with study_mode(), autograd.enable_grad():
            out = model(ids)
        out = out[0] if isinstance(out, tuple) else out
        weights = [m.attn_weights for m in mods]
    finally:
        for m, flag in zip(mods, previous):
            m.need_weights = flag
        model.train(was_training)
    order, _ = _graph(out)
    scores = [np.array(node._out_ref().data) for node in order if node.label == "scores"]
    if len(scores) != len(weights):
        raise RuntimeError(f"attention_maps: found {len(scores)} scores nodes for "
                           f"{len(weights)} attention layers (does the model require grad?)")
    return [{"weights": w, "scores": s} for w, s in zip(weights, scores)]


def _show(ch):
    return {"\n": "\\n", " ": "␣", "\t": "\\t"}.get(ch, ch)


def plot_attention(maps, chars, path, batch=0, title=None):
    """Draw a grid of heatmaps (rows = layers, columns = heads) of `maps` (as returned by
    `attention_maps`, or a list of (B, nh, T, T) arrays) to a PNG at `path`, with the
    characters `chars` as tick labels (query positions down, key positions across).
    Returns the path. Needs matplotlib (pip install minigrad[plot])."""
    plt = _pyplot()
    weights = [m["weights"] if isinstance(m, dict) else m for m in maps]
    n_layers, n_heads = len(weights), weights[0].shape[1]
    T = weights[0].shape[-1]
    labels = [_show(c) for c in chars][:T]
    size = 1.0 + 0.12 * T
    fig, axes = plt.subplots(n_layers, n_heads, figsize=(size * n_heads, size * n_layers),
                             squeeze=False)
    for layer in range(n_layers):
        for head in range(n_heads):
            ax = axes[layer][head]
            ax.imshow(weights[layer][batch, head], cmap="viridis", vmin=0.0, vmax=1.0)
            ax.set_title(f"layer {layer}, head {head}", fontsize=8)
            ax.set_xticks(range(T))
            ax.set_yticks(range(T))
            ax.set_xticklabels(labels, fontsize=6)
            ax.set_yticklabels(labels, fontsize=6)
            ax.tick_params(length=0)
            if head == 0:
                ax.set_ylabel("query (attends from)", fontsize=7)
            if layer == n_layers - 1:
                ax.set_xlabel("key (attends to)", fontsize=7)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return path


def _pyplot():
    try:
        import matplotlib
    except ImportError:
        raise ImportError("attention plots need matplotlib: pip install 'minigrad[plot]'") \
            from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


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
    lines = [f"query position {t} '{_show(text[t])}' in {text!r}",
             "(weight = softmax over positions 0..t of score = q.k / sqrt(head size))"]
    for layer, m in enumerate(maps):
        w = m["weights"][batch, :, t]  # (nh, T)
        s = m["scores"][batch, :, t]  # (nh, T)
        for head in range(w.shape[0]):
            best = np.argsort(-w[head], kind="stable")[:top]
            quoted = [f"'{_show(text[j])}'" for j in best]
            parts = [f"{int(j):>3} {quote:<5} score {s[head, j]:+7.3f} weight {w[head, j]:.3f}"
                     for j, quote in zip(best, quoted) if w[head, j] > 0.0]
            lines.append(f"layer {layer} head {head}: " + " | ".join(parts))
    return "\n".join(lines)


def entropy_bits(weights):
    """Mean entropy (bits) of attention rows (..., T, T): 0 = one-hot, log2(T) = uniform."""
    p = np.asarray(weights, dtype=np.float64)
    logs = np.log2(np.where(p > 0, p, 1.0))
    return float(-(p * logs).sum(axis=-1).mean())


def softmax_jacobian_norm(scores):
    """Frobenius norm of the softmax Jacobian diag(p) - p p^T of a row of scores: how much
    gradient a softmax row can pass back (small when it saturates)."""
    s = np.asarray(scores, dtype=np.float64)
    p = np.exp(s - s.max())
    p /= p.sum()
    return float(np.linalg.norm(np.diag(p) - np.outer(p, p)))



def attention_command(args):
    """Run `minigrad attention` (args: ckpt, text, out, position, top); returns the exit
    status. Without --position it writes the PNG grid (to --out, default attn.png); with
    --position it prints the text report (and writes the PNG only if --out is given)."""
    from minigrad.models.train import UserError, model_from_checkpoint

    model, tokenizer = model_from_checkpoint(args.ckpt)
    if not args.text:
        raise UserError("--text is empty")
    try:
        ids = tokenizer.encode(args.text)
    except ValueError as e:
        raise UserError(f"--text: {e}") from None
    if len(ids) > model.config.block_size:
        raise UserError(f"--text has {len(ids)} characters; the model sees at most "
                        f"block_size={model.config.block_size}")
    if args.top < 1:
        raise UserError(f"--top must be >= 1, got {args.top}")
    maps = attention_maps(model, ids[None, :])
    if args.position is not None:
        if not -len(ids) <= args.position < len(ids):
            raise UserError(f"--position {args.position} is outside the text "
                            f"(length {len(ids)})")
        print(attention_report(maps, args.text, args.position, args.top))
    out = args.out if args.out is not None or args.position is not None else "attn.png"
    if out is not None:
        try:
            plot_attention(maps, args.text, out, title=f"attention of {args.ckpt}")
        except ImportError as e:
            raise UserError(str(e)) from None
        n_layers, n_heads = len(maps), maps[0]["weights"].shape[1]
        print(f"wrote {out}: {n_layers} layers x {n_heads} heads")
    return 0

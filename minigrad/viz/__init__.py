"""Study tools: see the graph, watch the gradient flow, read each op's backward rule.

- `to_dot(tensor)`: Graphviz DOT text of the graph that made a tensor (op names, labels,
  shapes; leaf gradient norms after backward, every node's with a `trace`); `render_dot`
  turns it into an SVG/PNG when Graphviz's `dot` is installed.
- `trace()`: a context manager (or `trace(fn)`) that records one backward pass node by
  node, with per-head gradient norms at the attention nodes (q, k, v, scores, probs).
- `explain(op_or_node)`: an op's backward rule in words and symbols, what it saves, and for
  a recorded node the actual shapes.
- `check_causal(model_or_fn, T)`: proves with gradients that output t does not depend on
  any input after t (the Jacobian blocks are exactly zero), or shows where it leaks;
  `check_decoder(model_or_fn, T, S)` does it for an encoder-decoder's decoder input and
  shows that every output sees every source position.
- `attention_maps`, `plot_attention`, `attention_report`: the attention probabilities of
  every layer and head of a model (labelled: encoder self-, decoder causal self- or
  cross-attention), as a PNG grid or as text ("position 7 attends to 5
  with score q.k/sqrt(d) = 2.31 and weight 0.62"). Plots need matplotlib (extra [plot]).
- `explore(model, ids)`: one forward and backward pass as an interactive page (every
  head's weights, scores and gradients, a loss picker, "why this score"): `.save(path)`
  writes one self-contained HTML file, and Jupyter shows it inline.

Nothing here keeps hidden state: every tool works on the tensors and modules it is given,
through the public API of the engine and of nn.
"""

from minigrad.viz.attention import (
    KIND_LABELS,
    attention_label,
    attention_labels,
    attention_maps,
    attention_modules,
    attention_report,
    entropy_bits,
)
from minigrad.viz.causal import CausalReport, check_causal
from minigrad.viz.decoder import DecoderReport, check_decoder
from minigrad.viz.explain import explain, explanation_of, function_classes
from minigrad.viz.explore import Explorer, explore
from minigrad.viz.graph import graph_edges, render_dot, to_dot
from minigrad.viz.plot import plot_attention
from minigrad.viz.trace import ATTENTION_LABELS, Trace, trace

__all__ = [
    "ATTENTION_LABELS", "CausalReport", "DecoderReport", "Explorer", "KIND_LABELS", "Trace",
    "attention_label", "attention_labels", "attention_maps", "attention_modules",
    "attention_report", "check_causal", "check_decoder", "entropy_bits", "explain",
    "explanation_of", "explore", "function_classes", "graph_edges", "plot_attention",
    "render_dot", "to_dot", "trace",
]

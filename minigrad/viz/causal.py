"""Prove causality with gradients: output t depends on no input after t."""

import numpy as np

from minigrad.nn import Embedding, Module
from minigrad.tensor import Tensor

__all__ = ["CausalReport", "check_causal"]


class CausalReport:
    """The result of `check_causal`: `passed`, `leaks` [(t, s, magnitude)] with s > t,
    `dependence` (T, T), the largest |d out[t] / d in[s]| seen for each pair, and for an
    encoder-decoder `context_dependence` (T, S), the same for each source position (None
    otherwise)."""

    def __init__(self, dependence, context_dependence=None):
        self.dependence = dependence
        self.context_dependence = context_dependence
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
        lines = [head, *grid, legend]
        if self.context_dependence is not None:
            ctx = self.context_dependence
            unused = int((ctx == 0.0).sum())
            lines.append(f"context: out[t] depends on {ctx.size - unused} of {ctx.size} "
                         "(target, source) pairs; every source position may be used")
            lines.append("     src: " + "".join(f"{s % 10}" for s in range(ctx.shape[1])))
            lines += [f"  out {t:>3}: " + "".join("#" if v != 0.0 else "." for v in row)
                      for t, row in enumerate(ctx)]
        return "\n".join(lines)


def _is_ids_model(model):
    return isinstance(model, Module) and any(isinstance(m, Embedding) for m in model.modules())


def _ids_model_as_fn(model, T, context, rng):
    """For a Module that takes token ids: (fn, leaves). fn() runs the model on random ids
    (1, T) (after random source ids (1, context) for an encoder-decoder) and returns its
    first output; forward hooks swap the output of each Embedding layer that looks up those
    ids for a leaf tensor of the same values, and `leaves` maps "input" (and "context") to
    those leaves, so that a gradient reaches each position of each input."""
    tables = [m for m in model.modules() if isinstance(m, Embedding)]
    vocab = min(m.num_embeddings for m in tables)
    # A padding id would be masked out (the encoder-decoder's config.pad_id): never drawn.
    pad = getattr(getattr(model, "config", None), "pad_id", None)
    choices = np.array([i for i in range(vocab) if i != pad])
    ids = {"input": rng.choice(choices, size=(1, T))}
    if context is not None:
        ids["context"] = rng.choice(choices, size=(1, context))
        while ids["context"].shape == ids["input"].shape and np.array_equal(*ids.values()):
            ids["context"] = rng.choice(choices, size=(1, context))
    leaves = {}

    def swap(module, args, out):
        looked_up = args[0].data if isinstance(args[0], Tensor) else np.asarray(args[0])
        for name, array in ids.items():
            if looked_up.shape == array.shape and np.array_equal(looked_up, array):
                leaves[name] = Tensor(out.data.copy(), requires_grad=True)
                return leaves[name]
        return None

    def fn():
        handles = [m.register_forward_hook(swap) for m in tables]
        try:
            args = (ids["context"], ids["input"]) if context is not None else (ids["input"],)
            out = model(*args)
        finally:
            for h in handles:
                h.remove()
        missing = [name for name in ids if name not in leaves]
        if missing:
            raise ValueError(f"check_causal: no nn.Embedding layer of "
                             f"{type(model).__name__} looks up its {' or '.join(missing)} "
                             "ids, so no gradient can reach them")
        return out[0] if isinstance(out, tuple) else out

    return fn, leaves


def check_causal(model_or_fn, T, C=None, seed=0, context=None):
    """Prove with gradients that output position t depends on no input position after t.

    `model_or_fn` is either a function (or Module) mapping a float (1, T, C) tensor to
    (1, T, C'), e.g. a MultiHeadAttention, a Block or a lambda (C is taken from a module's
    `embed_dim` when not given); or a Module that takes token ids, found by its
    nn.Embedding layers (a GPT, the encoder-decoder, a user's model). Ids cannot carry a
    gradient, so for such a model random ids are drawn and, through forward hooks, the
    output of each Embedding layer that looks them up becomes a leaf tensor: the check is
    then on d out[t] / d (embedding of token s). With `context=S` the model is called as an
    encoder-decoder, model(src, ids), with random source ids (1, S); the report's
    `context_dependence` (T, S) then shows what each target position takes from the source.

    For each output position t, one backward of sum_c w_c out[0, t, c] (random weights w)
    gives d out[t] / d in[s] for every s at once; a causal model gives exactly 0.0 for
    every s > t (masked probabilities are exactly 0, so no rounding can hide a leak).
    Returns a CausalReport (truthy when it passed).
    """
    model = model_or_fn
    rng = np.random.default_rng(seed)
    was_training = getattr(model, "training", None)
    if was_training:
        model.eval()  # dropout would make each backward see a different function
    try:
        if _is_ids_model(model):
            run, leaves = _ids_model_as_fn(model, T, context, rng)
        else:
            C = C or getattr(model, "embed_dim", None)
            if C is None:
                raise ValueError("check_causal: pass C, the input's channel count")
            x = Tensor(rng.standard_normal((1, T, C)).astype(_param_dtype(model)),
                       requires_grad=True)
            leaves = {"input": x}

            def run():
                return model(x)

        out = run()
        if out.shape[:2] != (1, T):
            raise ValueError(f"check_causal: expected an output (1, {T}, ...), "
                             f"got {out.shape}")
        dependence = {name: np.zeros((T, leaf.shape[1])) for name, leaf in leaves.items()}
        for t in range(T):
            grad = np.zeros(out.shape, dtype=out.dtype)
            grad[0, t] = rng.standard_normal(out.shape[2:])
            for leaf in leaves.values():
                leaf.grad = None
            out.backward(grad, retain_graph=t < T - 1)
            for name, leaf in leaves.items():
                dependence[name][t] = np.abs(leaf.grad[0]).max(axis=-1)  # over positions
    finally:
        if was_training:
            model.train()
    return CausalReport(dependence["input"], dependence.get("context"))


def _param_dtype(model):
    params = getattr(model, "parameters", None)
    if callable(params):
        for p in params():
            return p.dtype
    return np.float64

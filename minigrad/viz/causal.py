"""Prove causality with gradients: output t depends on no input after t."""

import numpy as np

from minigrad.tensor import Tensor

__all__ = ["CausalReport", "check_causal"]


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

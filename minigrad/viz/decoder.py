"""Prove with gradients what an encoder-decoder's output sees: target t depends on no target
after t, and on every source position."""

import numpy as np

from minigrad.tensor import Tensor
from minigrad.viz.causal import CausalReport, _param_dtype

__all__ = ["DecoderReport", "check_decoder"]


class DecoderReport:
    """The result of `check_decoder`: `target`, a CausalReport over the decoder's input
    (T, T); `source` (T, S), the largest |d out[t] / d src[s]|; `blind` [(t, s)], the
    source positions some output does not see; `passed` when the target side is causal
    and every output sees every source position."""

    def __init__(self, target_dependence, source_dependence):
        self.target = CausalReport(target_dependence)
        self.source = source_dependence
        T, S = source_dependence.shape
        self.blind = [(t, s) for t in range(T) for s in range(S)
                      if source_dependence[t, s] == 0.0]
        self.passed = self.target.passed and not self.blind

    def __bool__(self):
        return self.passed

    def __str__(self):
        T, S = self.source.shape
        if self.blind:
            t, s = self.blind[0]
            head = (f"source: FAILED - {len(self.blind)} of {T * S} (target, source) pairs "
                    f"are exactly 0, e.g. out[{t}] does not see src[{s}]")
        else:
            head = (f"source: PASSED - every out[t] depends on every src[s] (s < {S}): "
                    "cross-attention sees the whole source")
        grid = ["     src: " + "".join(f"{s % 10}" for s in range(S))]
        for t in range(T):
            cells = "".join("#" if self.source[t, s] != 0.0 else "." for s in range(S))
            grid.append(f"  out {t:>3}: {cells}")
        return "\n".join(["target " + str(self.target), head, *grid,
                          "  (# depends, . exactly zero)"])


def check_decoder(model_or_fn, T, S, C=None, seed=0):
    """Check an encoder-decoder with gradients: output t depends on no decoder input after
    t (causal self-attention) and on every source position (cross-attention).

    `model_or_fn` is a function fn(tgt (1, T, C), src (1, S, C)) -> (1, T, C') of the
    embedded decoder input and source, or a model with `encode_embedded(src)` and
    `decode_embedded(tgt, memory)` (the encoder-decoder of minigrad.models.seq2seq), whose
    embeddings are then the inputs. For each t, one backward of sum_c w_c out[0, t, c]
    (random w) gives d out[t] / d tgt[s'] and d out[t] / d src[s] for all s', s at once.
    Returns a DecoderReport (truthy when both hold).
    """
    model = model_or_fn
    if hasattr(model, "encode_embedded") and hasattr(model, "decode_embedded"):
        C = C or model.config.n_embd

        def fn(tgt, src):
            return model.decode_embedded(tgt, model.encode_embedded(src))
    else:
        fn = model
    if C is None:
        raise ValueError("check_decoder: pass C, the inputs' channel count")
    was_training = getattr(model, "training", None)
    if was_training:
        model.eval()  # dropout would make each backward see a different function
    try:
        dtype = _param_dtype(model)
        rng = np.random.default_rng(seed)
        tgt = Tensor(rng.standard_normal((1, T, C)).astype(dtype), requires_grad=True)
        src = Tensor(rng.standard_normal((1, S, C)).astype(dtype), requires_grad=True)
        out = fn(tgt, src)
        if out.shape[:2] != (1, T):
            raise ValueError(f"check_decoder: expected an output (1, {T}, ...), got "
                             f"{out.shape}")
        on_target, on_source = np.zeros((T, T)), np.zeros((T, S))
        for t in range(T):
            grad = np.zeros(out.shape, dtype=out.dtype)
            grad[0, t] = rng.standard_normal(out.shape[2:])
            tgt.grad = src.grad = None
            out.backward(grad, retain_graph=t < T - 1)
            on_target[t] = np.abs(tgt.grad[0]).max(axis=-1)
            on_source[t] = np.abs(src.grad[0]).max(axis=-1)
    finally:
        if was_training:
            model.train()
    return DecoderReport(on_target, on_source)

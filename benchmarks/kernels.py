"""Per-kernel timing: Numba (fast.py) vs NumPy (reference.py) vs PyTorch, at the GPT shapes.

    python -m benchmarks.kernels            # both shapes, float32
    python -m benchmarks.kernels --quick    # fewer rounds

For every kernel at the baby GPT shapes (B=12, T=64, C=128, 4 heads) and the medium ones
(B=8, T=256, C=384, 6 heads) it prints a markdown table with the median time per call of
each implementation and the speedup of Numba over NumPy. The implementations are timed in
interleaved rounds (one sample of each per round), so drifts in machine load hit all of them
alike. PyTorch backward rows time `torch.autograd.grad` through a retained graph, i.e. the
backward alone. The PyTorch column runs in this process, which imported minigrad: use it
as a rough guide only; the fair comparisons are benchmarks.step and benchmarks.step_profile.
"""

import argparse
import itertools
import math
import statistics
import time

import numba
import numpy as np

from minigrad.kernels import fast, reference

try:
    import torch
    import torch.nn.functional as tF
except ImportError:  # the table then has no PyTorch column
    torch = None

SHAPES = {
    "baby": dict(B=12, T=64, C=128, nh=4, V=65, n_layer=4),
    "medium": dict(B=8, T=256, C=384, nh=6, V=65, n_layer=6),
}


def _time_once(fn, reps):
    t0 = time.perf_counter()
    for _ in range(reps):
        fn()
    return (time.perf_counter() - t0) / reps


def bench(impls, rounds):
    """Median seconds per call of each callable in `impls`, timed in interleaved rounds."""
    impls = {k: f for k, f in impls.items() if f is not None}
    for f in impls.values():  # warm up (compiles, caches, allocator)
        f()
        f()
    probe = min(_time_once(f, 1) for f in impls.values())
    reps = max(1, int(2e-3 / max(probe, 1e-7)))  # >= ~2 ms per sample
    samples = {k: [] for k in impls}
    for _ in range(rounds):
        for k, f in impls.items():
            samples[k].append(_time_once(f, reps))
    return {k: statistics.median(v) for k, v in samples.items()}


def _t(a, grad=False):
    """A float32 torch tensor sharing a copy of `a`."""
    t = torch.from_numpy(np.array(a))
    return t.requires_grad_(grad) if grad else t


def _torch(fn, *arrays):
    """A callable running fn on torch copies of `arrays` (None without torch)."""
    if torch is None:
        return None
    tensors = [_t(a) for a in arrays]
    return lambda: fn(*tensors)


def _torch_bwd(outputs, inputs, grads):
    """A callable that runs only the backward of an already built torch graph."""
    outputs = outputs if isinstance(outputs, tuple) else (outputs,)
    grads = tuple(_t(g) for g in (grads if isinstance(grads, tuple) else (grads,)))
    return lambda: torch.autograd.grad(outputs, inputs, grads, retain_graph=True)


def gpt_param_shapes(B, T, C, nh, V, n_layer):
    """Shapes of the GPT's parameters, in nanoGPT's order (AdamW updates every one)."""
    shapes = [(V, C), (T, C)]
    for _ in range(n_layer):
        shapes += [(C,), (C,), (3 * C, C), (3 * C,), (C, C), (C,), (C,), (C,)]
        shapes += [(4 * C, C), (4 * C,), (C, 4 * C), (C,)]
    return shapes + [(C,), (C,)]


def cases(B, T, C, nh, V, n_layer):
    """Yield (name, {impl: callable}) for every kernel at one GPT shape."""
    rng = np.random.default_rng(0)
    f32 = np.float32
    hs, N = C // nh, B * T

    def rnd(*shape):
        return rng.standard_normal(shape).astype(f32)

    have_torch = torch is not None

    # matmul: the QKV projection and the attention scores
    x, w = rnd(N, C), rnd(C, 3 * C)
    yield f"matmul ({N},{C})x({C},{3 * C})", {
        "numba": lambda: fast.matmul(x, w),
        "numpy": lambda: reference.matmul(x, w),
        "torch": _torch(lambda a, b: a @ b, x, w),
    }
    wd, bd = rnd(4 * C, C), rnd(4 * C)
    yield f"dense ({N},{C})x({4 * C},{C})^T + bias", {
        "numba": lambda: fast.dense(x, wd, bd),
        "numpy": lambda: reference.dense(x, wd, bd),
        "torch": _torch(tF.linear, x, wd, bd),
    }
    q, kT = rnd(B, nh, T, hs), rnd(B, nh, hs, T)
    yield f"matmul ({B},{nh},{T},{hs})x(..,{hs},{T})", {
        "numba": lambda: fast.matmul(q, kT),
        "numpy": lambda: reference.matmul(q, kT),
        "torch": _torch(lambda a, b: a @ b, q, kT),
    }

    # softmax over attention scores, log_softmax over logits
    s, gs = rnd(B, nh, T, T), rnd(B, nh, T, T)
    ys = reference.softmax(s)
    yield f"softmax ({B},{nh},{T},{T})", {
        "numba": lambda: fast.softmax(s),
        "numpy": lambda: reference.softmax(s),
        "torch": _torch(lambda a: torch.softmax(a, -1), s),
    }
    yield "softmax_backward", {
        "numba": lambda: fast.softmax_backward(ys, gs),
        "numpy": lambda: reference.softmax_backward(ys, gs),
        "torch": _torch(lambda a, b: torch._softmax_backward_data(a, b, -1, a.dtype), gs, ys),
    }
    lg, glg = rnd(N, V), rnd(N, V)
    yl = reference.log_softmax(lg)
    yield f"log_softmax ({N},{V})", {
        "numba": lambda: fast.log_softmax(lg),
        "numpy": lambda: reference.log_softmax(lg),
        "torch": _torch(lambda a: torch.log_softmax(a, -1), lg),
    }
    yield "log_softmax_backward", {
        "numba": lambda: fast.log_softmax_backward(yl, glg),
        "numpy": lambda: reference.log_softmax_backward(yl, glg),
        "torch": _torch(
            lambda a, b: torch._log_softmax_backward_data(a, b, -1, a.dtype), glg, yl),
    }

    # causal attention
    q, k, v, go = rnd(B, nh, T, hs), rnd(B, nh, T, hs), rnd(B, nh, T, hs), rnd(B, nh, T, hs)
    _, probs = reference.sdpa_forward(q, k, v, None, True)
    yield f"sdpa causal ({B},{nh},{T},{hs})", {
        "numba": lambda: fast.sdpa_forward(q, k, v, None, True),
        "numpy": lambda: reference.sdpa_forward(q, k, v, None, True),
        "torch": _torch(
            lambda a, b, c: tF.scaled_dot_product_attention(a, b, c, is_causal=True), q, k, v),
    }
    tb = None
    if have_torch:
        tq, tk, tv = _t(q, True), _t(k, True), _t(v, True)
        tb = _torch_bwd(tF.scaled_dot_product_attention(tq, tk, tv, is_causal=True),
                        (tq, tk, tv), go)
    yield "sdpa_backward", {
        "numba": lambda: fast.sdpa_backward(q, k, v, probs, go, True),
        "numpy": lambda: reference.sdpa_backward(q, k, v, probs, go, True),
        "torch": tb,
    }

    # causal self-attention from the fused projection (B, T, 3C): heads, attention, merge
    qkv, gy = rnd(B, T, 3 * C), rnd(B, T, C)
    _, lse = reference.qkv_attention_forward(qkv, nh, None, True)

    def torch_qkv(t):
        heads = [h.view(B, T, nh, hs).transpose(1, 2) for h in t.split(C, dim=2)]
        y = tF.scaled_dot_product_attention(*heads, is_causal=True)
        return y.transpose(1, 2).reshape(B, T, C)

    yield f"qkv_attention causal ({B},{T},3x{C}), {nh} heads", {
        "numba": lambda: fast.qkv_attention_forward(qkv, nh, None, True),
        "numpy": lambda: reference.qkv_attention_forward(qkv, nh, None, True),
        "torch": _torch(torch_qkv, qkv),
    }
    tb = None
    if have_torch:
        tqkv = _t(qkv, True)
        tb = _torch_bwd(torch_qkv(tqkv), (tqkv,), gy)
    yield "qkv_attention_backward", {
        "numba": lambda: fast.qkv_attention_backward(qkv, lse, gy, nh, None, True),
        "numpy": lambda: reference.qkv_attention_backward(qkv, lse, gy, nh, None, True),
        "torch": tb,
    }

    # layer norm
    x, g, lw, lb = rnd(N, C), rnd(N, C), rnd(C), rnd(C)
    _, mean, rstd = reference.layer_norm_forward(x, lw, lb, 1e-5)
    yield f"layer_norm ({N},{C})", {
        "numba": lambda: fast.layer_norm_forward(x, lw, lb, 1e-5),
        "numpy": lambda: reference.layer_norm_forward(x, lw, lb, 1e-5),
        "torch": _torch(lambda a, b, c: tF.layer_norm(a, (C,), b, c), x, lw, lb),
    }
    if have_torch:
        tx, tw, tbb = _t(x, True), _t(lw, True), _t(lb, True)
        tb = _torch_bwd(tF.layer_norm(tx, (C,), tw, tbb), (tx, tw, tbb), g)
    yield "layer_norm_backward", {
        "numba": lambda: fast.layer_norm_backward(g, x, lw, mean, rstd),
        "numpy": lambda: reference.layer_norm_backward(g, x, lw, mean, rstd),
        "torch": tb,
    }

    # cross entropy over the logits
    tg = rng.integers(0, V, N)
    gl = np.full(N, 1 / N, f32)
    _, lse = reference.cross_entropy_forward(lg, tg, -100)
    yield f"cross_entropy ({N},{V})", {
        "numba": lambda: fast.cross_entropy_forward(lg, tg, -100),
        "numpy": lambda: reference.cross_entropy_forward(lg, tg, -100),
        "torch": _torch(lambda a, b: tF.cross_entropy(a, b, reduction="none"), lg, tg),
    }
    if have_torch:
        tl = _t(lg, True)
        tb = _torch_bwd(tF.cross_entropy(tl, torch.from_numpy(tg), reduction="none"), (tl,), gl)
    yield "cross_entropy_backward", {
        "numba": lambda: fast.cross_entropy_backward(lg, tg, lse, gl, -100),
        "numpy": lambda: reference.cross_entropy_backward(lg, tg, lse, gl, -100),
        "torch": tb,
    }

    # GELU on the MLP hidden layer
    h, gh = rnd(N, 4 * C), rnd(N, 4 * C)
    for approx in ("none", "tanh"):
        yield f"gelu {approx} ({N},{4 * C})", {
            "numba": lambda a=approx: fast.gelu(h, a),
            "numpy": lambda a=approx: reference.gelu(h, a),
            "torch": _torch(lambda t, a=approx: tF.gelu(t, approximate=a), h),
        }
        if have_torch:
            th = _t(h, True)
            tb = _torch_bwd(tF.gelu(th, approximate=approx), (th,), gh)
        yield f"gelu_backward {approx}", {
            "numba": lambda a=approx: fast.gelu_backward(h, gh, a),
            "numpy": lambda a=approx: reference.gelu_backward(h, gh, a),
            "torch": tb,
        }

    # token embedding backward
    idx, ge = rng.integers(0, V, (B, T)), rnd(B, T, C)
    if have_torch:
        tw = _t(rnd(V, C), True)
        tb = _torch_bwd(tF.embedding(torch.from_numpy(idx), tw), (tw,), ge)
    yield f"embedding_backward ({B},{T})->({V},{C})", {
        "numba": lambda: fast.embedding_backward(idx, ge, V),
        "numpy": lambda: reference.embedding_backward(idx, ge, V),
        "torch": tb,
    }

    # AdamW over every GPT parameter
    shapes = gpt_param_shapes(B, T, C, nh, V, n_layer)
    state = {name: [[rnd(*s) * 0.02 for s in shapes], [rnd(*s) for s in shapes],
                    [np.zeros(s, f32) for s in shapes], [np.zeros(s, f32) for s in shapes]]
             for name in ("numba", "numpy")}
    hp = dict(lr=1e-3, beta1=0.9, beta2=0.95, eps=1e-8, weight_decay=0.1, step=10)
    opt = None
    if have_torch:
        tps = [torch.nn.Parameter(_t(p)) for p in state["numpy"][0]]
        for p, gr in zip(tps, state["numpy"][1], strict=True):
            p.grad = _t(gr)
        opt = torch.optim.AdamW(tps, lr=1e-3, betas=(0.9, 0.95), weight_decay=0.1)
    yield f"adamw_step ({len(shapes)} arrays, {sum(math.prod(s) for s in shapes)} floats)", {
        "numba": lambda: fast.adamw_step(*state["numba"], **hp),
        "numpy": lambda: reference.adamw_step(*state["numpy"], **hp),
        "torch": opt.step if opt is not None else None,
    }


def cross_attention_cases(B, T, C, nh, V, n_layer, S=None):
    """Yield (name, {impl: callable}) for the encoder-decoder's attention: cross-attention
    with T queries over S != T keys and a key padding mask (B, 1, 1, S), the kernels and then
    the whole fused op against the op-by-op composite (forward + backward, minigrad ops)."""
    import minigrad as mg
    import minigrad.functional as F

    rng = np.random.default_rng(1)
    S = S or T + T // 2
    hs = C // nh

    def rnd(*shape):
        return rng.standard_normal(shape).astype(np.float32)

    q, k, v, go = rnd(B, nh, T, hs), rnd(B, nh, S, hs), rnd(B, nh, S, hs), rnd(B, nh, T, hs)
    lengths = rng.integers(S // 2, S + 1, size=B)
    keep = np.arange(S)[None, None, None, :] < lengths[:, None, None, None]  # (B, 1, 1, S)
    _, probs = reference.sdpa_forward(q, k, v, keep, False)
    tmask = torch.from_numpy(keep) if torch is not None else None
    yield f"sdpa cross padded ({B},{nh},{T}x{S},{hs})", {
        "numba": lambda: fast.sdpa_forward(q, k, v, keep, False),
        "numpy": lambda: reference.sdpa_forward(q, k, v, keep, False),
        "torch": _torch(lambda a, b, c: tF.scaled_dot_product_attention(
            a, b, c, attn_mask=tmask), q, k, v),
    }
    yield "sdpa cross padded backward", {
        "numba": lambda: fast.sdpa_backward(q, k, v, probs, go),
        "numpy": lambda: reference.sdpa_backward(q, k, v, probs, go),
        "torch": None,
    }

    def op(fn):
        def run():
            tq, tk, tv = (mg.Tensor(a, requires_grad=True) for a in (q, k, v))
            fn(tq, tk, tv, keep).backward(go)
        return run

    # numba column: the fused op (one node); numpy column: the composite (one node per step)
    yield "op fwd+bwd: fused (numba col) vs composite (numpy col)", {
        "numba": op(lambda a, b, c, m: F.scaled_dot_product_attention(a, b, c, attn_mask=m)),
        "numpy": op(lambda a, b, c, m: F.attention_composite(a, b, c, m)),
    }


def _fmt(seconds):
    return "-" if seconds is None else f"{seconds * 1e3:.3f}"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="7 rounds instead of 21")
    parser.add_argument("--shapes", nargs="+", default=list(SHAPES), choices=list(SHAPES))
    parser.add_argument("--only-cross", action="store_true",
                        help="only the encoder-decoder's cross-attention rows")
    args = parser.parse_args(argv)
    rounds = 7 if args.quick else 21
    if torch is not None:
        torch.set_num_threads(numba.get_num_threads())
    print(f"float32, {numba.get_num_threads()} threads, median of {rounds} interleaved rounds, "
          f"ms per call; speedup = numpy / numba\n")
    for shape_name in args.shapes:
        print(f"### {shape_name} GPT {SHAPES[shape_name]}\n")
        print("| kernel | numba ms | numpy ms | torch ms | speedup |")
        print("| --- | ---: | ---: | ---: | ---: |")
        rows = [] if args.only_cross else cases(**SHAPES[shape_name])
        for name, impls in itertools.chain(rows, cross_attention_cases(**SHAPES[shape_name])):
            t = bench(impls, rounds)
            print(f"| {name} | {_fmt(t['numba'])} | {_fmt(t['numpy'])} | "
                  f"{_fmt(t.get('torch'))} | {t['numpy'] / t['numba']:.2f}x |", flush=True)
        print()


if __name__ == "__main__":
    main()

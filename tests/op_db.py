"""The one table of ops that drives the generic op tests (tests/test_ops.py).

Each row names an op, how to call it in minigrad and in PyTorch, and the sample inputs to
try. The rows are `minigrad.testing.OpInfo`s (with two fields of this repository: the Tensor
method and whether the op is in `minigrad` and `minigrad.functional` too), and the generic
tests are `minigrad.testing`'s checks: every row's samples forward against PyTorch,
backward against PyTorch (float64), through `mg.gradcheck`, broadcast (samples derived from
those whose float inputs share a shape), and in float32 and float64. See minigrad/testing.py
for how sample arguments are converted (`Sample`, `Const`).

Adding an op = one Function in minigrad/ops + one row here.
"""

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as TF

import minigrad as mg
import minigrad.functional as F
from minigrad import testing
from minigrad.testing import Const, Sample


@dataclass
class OpInfo(testing.OpInfo):
    """A row of minigrad's own table: the reference is PyTorch's."""

    method: str | None = None  # Tensor method name, when it has one
    in_namespaces: bool = True  # also mg.<name> and F.<name>
    framework: str | None = "torch"


def r(rng, *shape, low=-2.0, high=2.0):
    """A float64 sample array."""
    return rng.uniform(low, high, size=shape)


def pos(rng, *shape):
    return r(rng, *shape, low=0.2, high=3.0)


def unary_samples(gen=r):
    def samples(rng):
        return [
            Sample((gen(rng, 3, 4),)),
            Sample((gen(rng, 2, 1, 3),)),
            Sample((gen(rng),), note="0-d"),
            Sample((gen(rng, 5),)),
        ]

    return samples


def binary_samples(gen=r):
    def samples(rng):
        return [
            Sample((gen(rng, 3, 4), gen(rng, 3, 4))),
            Sample((gen(rng, 3, 1), gen(rng, 1, 4)), note="both broadcast"),
            Sample((gen(rng, 2, 3, 4), gen(rng, 4)), note="rank broadcast"),
            Sample((gen(rng, 4), gen(rng, 2, 1, 4))),
            Sample((gen(rng, 3, 4), 1.5), note="python scalar right"),
            Sample((2.5, gen(rng, 3, 4)), note="python scalar left"),
            Sample((gen(rng), gen(rng, 2, 2)), note="0-d"),
        ]

    return samples


def reduce_samples(rng):
    return [
        Sample((r(rng, 3, 4),)),
        Sample((r(rng, 3, 4),), {"axis": 1}),
        Sample((r(rng, 3, 4),), {"axis": -1, "keepdims": True}),
        Sample((r(rng, 2, 3, 4),), {"axis": (0, 2)}),
        Sample((r(rng, 2, 3, 4),), {"axis": (-1, -3), "keepdims": True}),
        Sample((r(rng, 2, 1, 4),), {"axis": 1}, note="size-1 dim"),
        Sample((r(rng),), note="0-d"),
    ]


def _torch_reduce(fn):
    def ref(x, axis=None, keepdims=False, **extra):
        dims = tuple(range(x.ndim)) if axis is None else axis
        return fn(x, dims, keepdims, **extra)

    return ref


def _torch_softmax(fn):
    return lambda x, axis=-1: fn(x, dim=axis)


def _softmax_samples(rng):
    masked = r(rng, 3, 5)
    masked[0, 1:] = -np.inf
    return [
        Sample((r(rng, 3, 5),)),
        Sample((r(rng, 2, 3, 4),), {"axis": 1}),
        Sample((r(rng, 2, 3, 4),), {"axis": 0}),
        Sample((r(rng, 4, 1),), {"axis": -1}, note="size-1 axis"),
        Sample((masked,), note="-inf entries"),
    ]


def _matmul_samples(rng):
    return [
        Sample((r(rng, 3, 4), r(rng, 4, 5))),
        Sample((r(rng, 2, 3, 4), r(rng, 4, 5)), note="batched @ matrix"),
        Sample((r(rng, 2, 1, 3, 4), r(rng, 3, 4, 2)), note="batch broadcast"),
        Sample((r(rng, 4), r(rng, 4, 5)), note="1-D @ 2-D"),
        Sample((r(rng, 2, 3, 4), r(rng, 4)), note="3-D @ 1-D"),
        Sample((r(rng, 4), r(rng, 4)), note="1-D @ 1-D"),
        Sample((r(rng, 4), r(rng, 2, 4, 3)), note="1-D @ 3-D"),
    ]


def _getitem_samples(rng):
    idx = np.array([0, 2, 2, 1, 0])
    mask = np.array([True, False, True])
    return [
        Sample((r(rng, 3, 4), Const(1))),
        Sample((r(rng, 3, 4), Const((slice(None), slice(1, 3))))),
        Sample((r(rng, 3, 4), Const((-1, slice(None, None, 2))))),
        Sample((r(rng, 2, 3, 4), Const((Ellipsis, None, 1)))),
        Sample((r(rng, 3, 4), Const(idx[:3])), note="int array"),
        Sample((r(rng, 3, 4), Const((slice(None), idx[:5] % 4))),
               note="repeated indices accumulate"),
        Sample((r(rng, 3, 4), Const(mask)), note="bool mask"),
        Sample((r(rng, 3, 4), Const((idx[:2], idx[2:4]))), note="paired int arrays"),
    ]


def _sdpa_samples(rng):
    q, k, v = r(rng, 2, 3, 4, 5), r(rng, 2, 3, 6, 5), r(rng, 2, 3, 6, 5)
    keep = rng.random((4, 6)) > 0.3
    keep[:, 0] = True
    return [
        Sample((r(rng, 2, 3, 4, 5), r(rng, 2, 3, 4, 5), r(rng, 2, 3, 4, 5)),
               {"is_causal": True}),
        Sample((q, k, v)),
        Sample((q, k, v), {"attn_mask": Const(keep)},
               note="bool mask"),
        Sample((q, k, v), {"attn_mask": Const(r(rng, 4, 6))}, note="additive mask"),
        Sample((r(rng, 4, 5), r(rng, 4, 5), r(rng, 4, 5)), {"is_causal": True}, note="2-D"),
    ]


def _torch_sdpa(q, k, v, attn_mask=None, is_causal=False):
    return TF.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask, is_causal=is_causal)


def _self_attention_samples(rng):
    keep = rng.random((5, 5)) > 0.3
    keep[:, 0] = True
    pad = np.ones((2, 1, 1, 5), bool)
    pad[1, ..., 3:] = False  # the last two keys of batch entry 1 are padding
    return [
        Sample((r(rng, 2, 5, 12), 2), {"is_causal": True}),
        Sample((r(rng, 2, 5, 12), 1), note="one head"),
        Sample((r(rng, 2, 5, 12), 2), {"attn_mask": Const(keep)}, note="bool mask"),
        Sample((r(rng, 2, 5, 12), 2), {"attn_mask": Const(pad)}, note="key padding"),
        Sample((r(rng, 1, 4, 6), 2), {"attn_mask": Const(r(rng, 4, 4))}, note="additive mask"),
    ]


def _torch_self_attention(qkv, n_head, attn_mask=None, is_causal=False):
    B, T, C = qkv.shape[0], qkv.shape[1], qkv.shape[2] // 3
    q, k, v = (t.view(B, T, n_head, C // n_head).transpose(1, 2) for t in qkv.split(C, dim=2))
    y = TF.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask, is_causal=is_causal)
    return y.transpose(1, 2).reshape(B, T, C)


def _cross_entropy_samples(rng):
    t = rng.integers(0, 5, size=6)
    t_ignored = t.copy()
    t_ignored[[1, 4]] = -100
    t3 = rng.integers(0, 7, size=(2, 3))
    return [
        Sample((r(rng, 6, 5), t)),
        Sample((r(rng, 6, 5), t_ignored), note="ignore_index"),
        Sample((r(rng, 6, 5), t), {"reduction": "sum"}),
        Sample((r(rng, 6, 5), t_ignored), {"reduction": "none"}),
        Sample((r(rng, 2, 3, 7), t3), note="(B, T, C) logits"),
    ]


def _torch_cross_entropy(logits, targets, ignore_index=-100, reduction="mean"):
    # torch wants the class axis second for N-D input; minigrad takes it last (as nanoGPT
    # flattens to (B*T, C)). Flatten both the same way for the comparison.
    out = TF.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1),
                           ignore_index=ignore_index, reduction=reduction)
    return out.reshape(targets.shape) if reduction == "none" else out


def _layer_norm_samples(rng):
    return [
        Sample((r(rng, 3, 5), 5, r(rng, 5), r(rng, 5))),
        Sample((r(rng, 2, 3, 5), 5, r(rng, 5), None), note="no bias"),
        Sample((r(rng, 2, 3, 4), (3, 4), r(rng, 3, 4), r(rng, 3, 4)), note="2 normalized dims"),
        Sample((r(rng, 4, 6), 6, None, None), note="no affine"),
    ]


def _torch_layer_norm(x, shape, w, b, eps=1e-5):
    return TF.layer_norm(x, (shape,) if isinstance(shape, int) else shape, w, b, eps)


def _cat_samples(rng):
    return [
        Sample(([r(rng, 2, 3), r(rng, 4, 3)],), {"axis": 0}),
        Sample(([r(rng, 2, 3), r(rng, 2, 1), r(rng, 2, 2)],), {"axis": -1}),
    ]


def _stack_samples(rng):
    return [
        Sample(([r(rng, 2, 3), r(rng, 2, 3)],), {"axis": 0}),
        Sample(([r(rng, 2, 3), r(rng, 2, 3), r(rng, 2, 3)],), {"axis": -1}),
    ]


def _split_samples(rng):
    return [
        Sample((r(rng, 7, 3), 3), {"axis": 0}),
        Sample((r(rng, 2, 6), [1, 2, 3]), {"axis": 1}),
    ]


def _chunk_samples(rng):
    return [
        Sample((r(rng, 7, 3), 3), {"axis": 0}),
        Sample((r(rng, 2, 6), 4), {"axis": -1}),
    ]


def _where_samples(rng):
    cond = rng.random((3, 4)) > 0.5
    return [
        Sample((cond, r(rng, 3, 4), r(rng, 3, 4))),
        Sample((cond, r(rng, 1, 4), r(rng, 3, 1)), note="broadcast"),
        Sample((cond, r(rng, 3, 4), 0.0), note="scalar branch"),
    ]


def _masked_fill_samples(rng):
    return [
        Sample((r(rng, 3, 4), rng.random((3, 4)) > 0.5, -1.5)),
        Sample((r(rng, 2, 3, 4), rng.random((1, 4)) > 0.5, 0.0), note="broadcast mask"),
    ]


def _clip_samples(rng):
    return [
        Sample((r(rng, 3, 4), -0.5, 0.7)),
        Sample((r(rng, 3, 4), None, 0.3)),
        Sample((r(rng, 5), -0.2, None)),
    ]


def _reshape_samples(rng):
    return [
        Sample((r(rng, 3, 4), (2, 6))),
        Sample((r(rng, 2, 3, 4), (-1, 4))),
        Sample((r(rng, 6), (1, 2, 3, 1))),
        Sample((r(rng), (1, 1))),
    ]


def _permute_samples(rng):
    return [Sample((r(rng, 2, 3, 4), (2, 0, 1))), Sample((r(rng, 3, 4), (1, 0)))]


def _transpose_samples(rng):
    return [Sample((r(rng, 2, 3, 4), 0, 2)), Sample((r(rng, 3, 4), -1, -2))]


def _squeeze_samples(rng):
    return [Sample((r(rng, 3, 1, 4, 1),)), Sample((r(rng, 3, 1, 4),), {"axis": 1}),
            Sample((r(rng, 1, 4, 1),), {"axis": -1})]


def _unsqueeze_samples(rng):
    return [Sample((r(rng, 3, 4), 0)), Sample((r(rng, 3, 4), -1)), Sample((r(rng, 3), 1))]


def _expand_samples(rng):
    return [Sample((r(rng, 3, 1), (3, 4))), Sample((r(rng, 4), (2, 3, 4))),
            Sample((r(rng, 1, 4), (5, -1)))]


def _flatten_samples(rng):
    return [Sample((r(rng, 2, 3, 4),)), Sample((r(rng, 2, 3, 4, 5),), {"start_axis": 1,
                                                                        "end_axis": 2})]


def _linear_samples(rng):
    return [
        Sample((r(rng, 3, 4), r(rng, 5, 4), r(rng, 5))),
        Sample((r(rng, 2, 3, 4), r(rng, 5, 4), None), note="no bias"),
    ]


def _gelu_linear_samples(rng):
    return [
        Sample((r(rng, 3, 4), r(rng, 5, 4), r(rng, 5))),
        Sample((r(rng, 2, 3, 4), r(rng, 5, 4), None), {"approximate": "tanh"}, note="no bias"),
    ]


def _torch_gelu_linear(x, w, b=None, approximate="none"):
    return TF.linear(TF.gelu(x, approximate=approximate), w, b)


def _layer_norm_linear_samples(rng):
    return [
        Sample((r(rng, 3, 5), 5, r(rng, 5), r(rng, 5), 1e-5, r(rng, 4, 5), r(rng, 4))),
        Sample((r(rng, 2, 3, 5), (5,), r(rng, 5), None, 1e-5, r(rng, 4, 5), None),
               note="no biases"),
        Sample((r(rng, 4, 6), 6, None, None, 1e-3, r(rng, 2, 6), r(rng, 2)),
               note="no affine"),
    ]


def _torch_layer_norm_linear(x, shape, ln_w, ln_b, eps, w, b=None):
    return TF.linear(_torch_layer_norm(x, shape, ln_w, ln_b, eps), w, b)


def _embedding_samples(rng):
    idx = np.array([[0, 3, 3], [1, 0, 2]])
    return [Sample((idx, r(rng, 5, 4))), Sample((np.array([4, 4, 4]), r(rng, 5, 2)),
                                                note="repeated ids accumulate")]


def _dropout_samples(rng):
    return [Sample((r(rng, 3, 4),), {"p": 0.5, "training": False}, note="eval = identity"),
            Sample((r(rng, 3, 4),), {"p": 0.0, "training": True}, note="p=0 = identity")]


def _var_samples(rng):
    return reduce_samples(rng)[:5] + [Sample((r(rng, 3, 4),), {"axis": 0, "ddof": 1})]


def _pow_scalar_samples(rng):
    return [Sample((pos(rng, 3, 4), 2.0)), Sample((pos(rng, 3, 4), -1.5)),
            Sample((r(rng, 3, 4), 3)), Sample((pos(rng, 2, 3), 0.5))]


def _comparison_samples(rng):
    a = r(rng, 3, 4)
    b = a.copy()
    b[0] += 1.0
    return [Sample((a, b)), Sample((a, 0.0)), Sample((r(rng, 3, 1), r(rng, 4)))]


def _scalars_as_tensors(fn):
    """torch.maximum and friends want tensors on both sides; minigrad takes numbers too."""

    def ref(a, b):
        a = a if isinstance(a, torch.Tensor) else torch.tensor(a, dtype=torch.float64)
        b = b if isinstance(b, torch.Tensor) else torch.tensor(b, dtype=torch.float64)
        return fn(a, b)

    return ref


def _torch_gelu(approximate):
    return lambda x: TF.gelu(x, approximate=approximate)


OPS = [
    # ----- arithmetic -----
    OpInfo("add", mg.add, torch.add, binary_samples(), method="__add__"),
    OpInfo("sub", mg.sub, torch.sub, binary_samples(), method="__sub__"),
    OpInfo("mul", mg.mul, torch.mul, binary_samples(), method="__mul__"),
    OpInfo("div", mg.div, torch.div, binary_samples(pos), method="__truediv__"),
    OpInfo("pow", mg.pow, torch.pow, _pow_scalar_samples, method="pow"),
    OpInfo("pow_tensor", mg.pow, torch.pow, binary_samples(pos), in_namespaces=False),
    OpInfo("neg", mg.neg, torch.neg, unary_samples(), method="__neg__"),
    OpInfo("matmul", mg.matmul, torch.matmul, _matmul_samples, method="__matmul__"),
    # ----- comparisons (no gradient) -----
    OpInfo("lt", mg.lt, torch.lt, _comparison_samples, method="__lt__", differentiable=False),
    OpInfo("le", mg.le, torch.le, _comparison_samples, method="__le__", differentiable=False),
    OpInfo("gt", mg.gt, torch.gt, _comparison_samples, method="__gt__", differentiable=False),
    OpInfo("ge", mg.ge, torch.ge, _comparison_samples, method="__ge__", differentiable=False),
    OpInfo("eq", mg.eq, torch.eq, _comparison_samples, method="__eq__", differentiable=False),
    OpInfo("ne", mg.ne, torch.ne, _comparison_samples, method="__ne__", differentiable=False),
    # ----- elementwise -----
    OpInfo("exp", mg.exp, torch.exp, unary_samples(), method="exp"),
    OpInfo("log", mg.log, torch.log, unary_samples(pos), method="log"),
    OpInfo("sqrt", mg.sqrt, torch.sqrt, unary_samples(pos), method="sqrt"),
    OpInfo("abs", mg.abs, torch.abs, unary_samples(), method="abs"),
    OpInfo("tanh", mg.tanh, torch.tanh, unary_samples(), method="tanh"),
    OpInfo("sigmoid", mg.sigmoid, torch.sigmoid, unary_samples(), method="sigmoid"),
    OpInfo("relu", mg.relu, torch.relu, unary_samples(), method="relu"),
    OpInfo("gelu", mg.gelu, _torch_gelu("none"), unary_samples(), method="gelu"),
    OpInfo("gelu_tanh", lambda x: mg.gelu(x, approximate="tanh"), _torch_gelu("tanh"),
           unary_samples(), in_namespaces=False),
    OpInfo("maximum", mg.maximum, _scalars_as_tensors(torch.maximum), binary_samples(),
           method="maximum"),
    OpInfo("minimum", mg.minimum, _scalars_as_tensors(torch.minimum), binary_samples(),
           method="minimum"),
    OpInfo("clip", mg.clip, lambda x, lo, hi: torch.clamp(x, lo, hi), _clip_samples,
           method="clip"),
    OpInfo("where", mg.where, torch.where, _where_samples),
    OpInfo("masked_fill", mg.masked_fill, torch.masked_fill, _masked_fill_samples,
           method="masked_fill"),
    # ----- reductions -----
    OpInfo("sum", mg.sum, _torch_reduce(lambda x, d, k: torch.sum(x, d, keepdim=k)),
           reduce_samples, method="sum"),
    OpInfo("mean", mg.mean, _torch_reduce(lambda x, d, k: torch.mean(x, d, keepdim=k)),
           reduce_samples, method="mean"),
    OpInfo("max", mg.max, _torch_reduce(lambda x, d, k: torch.amax(x, d, keepdim=k)),
           reduce_samples, method="max"),
    OpInfo("min", mg.min, _torch_reduce(lambda x, d, k: torch.amin(x, d, keepdim=k)),
           reduce_samples, method="min"),
    OpInfo("var", mg.var, _torch_reduce(
        lambda x, d, k, ddof=0: torch.var(x, d, correction=ddof, keepdim=k)),
        _var_samples, method="var"),
    OpInfo("logsumexp", mg.logsumexp,
           _torch_reduce(lambda x, d, k: torch.logsumexp(x, d, keepdim=k)),
           reduce_samples, method="logsumexp"),
    # ----- shape -----
    OpInfo("reshape", mg.reshape, torch.reshape, _reshape_samples, method="reshape"),
    OpInfo("view", mg.view, lambda x, s: x.reshape(s), _reshape_samples, method="view"),
    OpInfo("permute", mg.permute, torch.permute, _permute_samples, method="permute"),
    OpInfo("transpose", mg.transpose, torch.transpose, _transpose_samples, method="transpose"),
    OpInfo("swapaxes", mg.swapaxes, torch.swapaxes, _transpose_samples, method="swapaxes"),
    OpInfo("T", lambda x: x.T, lambda x: x.permute(*reversed(range(x.ndim))),
           lambda rng: [Sample((r(rng, 2, 3, 4),)), Sample((r(rng, 3, 4),))],
           in_namespaces=False),
    OpInfo("squeeze", mg.squeeze,
           lambda x, axis=None: x.squeeze() if axis is None else x.squeeze(axis),
           _squeeze_samples, method="squeeze"),
    OpInfo("unsqueeze", mg.unsqueeze, torch.unsqueeze, _unsqueeze_samples, method="unsqueeze"),
    OpInfo("expand", mg.expand, lambda x, s: x.expand(*s), _expand_samples, method="expand"),
    OpInfo("flatten", mg.flatten,
           lambda x, start_axis=0, end_axis=-1: torch.flatten(x, start_axis, end_axis),
           _flatten_samples, method="flatten"),
    OpInfo("getitem", mg.getitem, lambda x, i: x[i], _getitem_samples, method="__getitem__"),
    OpInfo("cat", mg.cat, lambda ts, axis=0: torch.cat(ts, dim=axis), _cat_samples),
    OpInfo("stack", mg.stack, lambda ts, axis=0: torch.stack(ts, dim=axis), _stack_samples),
    OpInfo("split", mg.split, lambda x, s, axis=0: torch.split(x, s, dim=axis), _split_samples,
           method="split"),
    OpInfo("chunk", mg.chunk, lambda x, n, axis=0: torch.chunk(x, n, dim=axis), _chunk_samples,
           method="chunk"),
    # ----- softmax family -----
    OpInfo("softmax", mg.softmax, _torch_softmax(torch.softmax), _softmax_samples,
           method="softmax"),
    OpInfo("log_softmax", mg.log_softmax, _torch_softmax(torch.log_softmax), _softmax_samples,
           method="log_softmax"),
    # ----- functional (layer-style) -----
    OpInfo("linear", F.linear, TF.linear, _linear_samples, in_namespaces=False),
    OpInfo("layer_norm", F.layer_norm, _torch_layer_norm, _layer_norm_samples,
           in_namespaces=False),
    OpInfo("gelu_linear", F.gelu_linear, _torch_gelu_linear, _gelu_linear_samples,
           in_namespaces=False),
    OpInfo("layer_norm_linear", F.layer_norm_linear, _torch_layer_norm_linear,
           _layer_norm_linear_samples, in_namespaces=False),
    OpInfo("embedding", F.embedding, TF.embedding, _embedding_samples, in_namespaces=False),
    OpInfo("dropout", F.dropout, lambda x, p, training: TF.dropout(x, p, training),
           _dropout_samples, in_namespaces=False),
    OpInfo("cross_entropy", F.cross_entropy, _torch_cross_entropy, _cross_entropy_samples,
           in_namespaces=False),
    OpInfo("scaled_dot_product_attention", F.scaled_dot_product_attention, _torch_sdpa,
           _sdpa_samples, in_namespaces=False, gc_atol=1e-4),
    OpInfo("self_attention", F.self_attention, _torch_self_attention, _self_attention_samples,
           in_namespaces=False, gc_atol=1e-4),
    # ----- the composites that stay as oracles of the fused ops above -----
    OpInfo("linear_composite", F.linear_composite, TF.linear, _linear_samples,
           in_namespaces=False),
    OpInfo("layer_norm_composite", F.layer_norm_composite, _torch_layer_norm,
           _layer_norm_samples, in_namespaces=False),
    OpInfo("cross_entropy_composite", F.cross_entropy_composite, _torch_cross_entropy,
           _cross_entropy_samples, in_namespaces=False),
    OpInfo("attention_composite", F.attention_composite, _torch_sdpa, _sdpa_samples,
           in_namespaces=False, gc_atol=1e-4),
    OpInfo("self_attention_composite", F.self_attention_composite, _torch_self_attention,
           _self_attention_samples, in_namespaces=False, gc_atol=1e-4),
]

OPS_BY_NAME = {op.name: op for op in OPS}

"""exp, Phi (the normal CDF) and tanh in float32 without libm, so loops around them vectorise.

Numba turns math.exp / math.erf into a call to the scalar libm function per element, which
keeps LLVM from vectorising the loop around it. Every exp in softmax, cross-entropy and GELU
is of a number <= 0 (x - max, -z^2), so in float32 it is computed with multiplies, adds and
one bit cast: 2^y with y = x log2(e) split as n + f; 2^f by a degree-6 polynomial (least
squares on [0, 1], relative error < 1e-7) and 2^n written straight into a float's exponent
bits. float64 keeps math.exp (float64 is for gradient checks, where exactness matters more
than speed).

`FASTMATH` is the fastmath the kernels allow: reassociation and contraction, which only
reorder rounding (and let LLVM vectorise reductions), but not 'nnan'/'ninf', since -inf is
a real value here (masks, dead softmax rows). Without 'nnan' LLVM does not vectorise a
max(m, x) loop; `maximum` (NaN-propagating, like np.maximum) it does.
"""

import math

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.core import cgutils
from numba.extending import intrinsic, overload

FASTMATH = {"reassoc", "contract", "nsz", "arcp"}

_EXP2_COEFS = tuple(float(c) for c in np.polynomial.polynomial.polyfit(
    (1 - np.cos(np.pi * (np.arange(200) + 0.5) / 200)) / 2,  # Chebyshev nodes on [0, 1]
    2.0 ** ((1 - np.cos(np.pi * (np.arange(200) + 0.5) / 200)) / 2), 6))


@njit(inline="always", fastmath=FASTMATH)
def _horner_f32(coefs, t):
    """coefs[0] + coefs[1] t + coefs[2] t^2 + ... in float32 (the loop unrolls)."""
    p = np.float32(coefs[-1])
    for i in range(len(coefs) - 2, -1, -1):
        p = p * t + np.float32(coefs[i])
    return p


@intrinsic
def _f32_from_bits(typingctx, bits):
    """The float32 whose bits are the int32 `bits` (Numba has no scalar bit cast)."""
    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.FloatType())
    return types.float32(types.int32), codegen


@intrinsic
def maximum(typingctx, a, b):
    """max(a, b) for two floats of one type, NaN if either is NaN (LLVM's llvm.maximum).

    A max(m, x) loop stays scalar without fastmath 'nnan'; this one vectorises: measured,
    the max of 262144 float32 took 15 us against 154 us.
    """
    if a != b or a not in (types.float32, types.float64):
        return None

    def codegen(context, builder, signature, args):
        ty = args[0].type
        name = "llvm.maximum.f32" if ty == ir.FloatType() else "llvm.maximum.f64"
        fn = cgutils.get_or_insert_function(builder.module, ir.FunctionType(ty, [ty, ty]), name)
        return builder.call(fn, args)
    return a(a, b), codegen


@njit(inline="always", fastmath=FASTMATH)
def exp_nonpositive_f32(x):
    """exp(x) for x <= 0 in float32 (below -87.3, out of float32's normal range: 0).

    2^n comes from its exponent bits; the earlier product of up to seven conditional powers
    of two took 2.9x as long (exp of 262144 floats: 130 us against 45 us).
    """
    c = np.float32
    y = x * c(1.4426950408889634)  # log2(e)
    y = y if not y < c(-127.0) else c(-127.0)  # (NaN passes through)
    n = np.floor(y)  # (np.floor, not math.floor: NaN passes through instead of raising)
    p = _horner_f32(_EXP2_COEFS, y - n)
    return p * _f32_from_bits((np.int32(n) + np.int32(127)) << np.int32(23))  # 2^-127 -> 0


def exp_nonpositive(x):
    """exp(x) for x <= 0: the vectorisable version in float32, math.exp otherwise."""
    return math.exp(x)


@overload(exp_nonpositive, jit_options={"fastmath": FASTMATH}, inline="always")
def _exp_nonpositive_overload(x):
    if x == types.float32:
        return lambda x: exp_nonpositive_f32(x)
    return lambda x: math.exp(x)


# float32 GELU without libm. math.erf is a scalar libm call (about 10 ns an element), which
# made GELU the slowest op of a training step. In float32, Phi(-|x|) = erfc(z) / 2 with
# z = |x| / sqrt(2) is exp(-z^2) erfcx(z), erfcx(z) = exp(z^2) erfc(z) a smooth function that
# falls from 1 to 0; it is a degree-8 polynomial R in t = 1 / (1 + 0.4 z) (least squares
# weighted for relative error on z in [0, 9.5], beyond which exp(-z^2) is below float32's
# normal range), relative error 1.2e-7. With exp(-z^2) outside the polynomial, GELU's
# backward gets the normal pdf exp(-x^2 / 2) / sqrt(2 pi) from the same exp (Numerical
# Recipes' erfcc, t exp(-z^2 + P(t)), used before, needed a second exp there).
_ERFCX_P = 0.4


def _fit_erfcx(degree=8, z_max=9.5, nodes=2000):
    """Coefficients of R(t) ~ erfcx(z), lowest first, t = 1 / (1 + _ERFCX_P z)."""
    t_min = 1 / (1 + _ERFCX_P * z_max)
    t = t_min + (1 - t_min) * (1 - np.cos(np.pi * (np.arange(nodes) + 0.5) / nodes)) / 2
    z = (1 / t - 1) / _ERFCX_P
    f = np.array([math.exp(v * v) * math.erfc(v) for v in z])
    vander = np.vander(t, degree + 1, increasing=True)
    coefs = np.linalg.lstsq(vander / f[:, None], np.ones_like(f), rcond=None)[0]
    return tuple(float(c) for c in coefs)


_ERFCX_COEFS = _fit_erfcx()


@njit(inline="always", fastmath=FASTMATH)
def normal_tail_f32(x):
    """(Phi(-|x|), exp(-x^2 / 2)) in float32, from one exp."""
    c = np.float32
    e = exp_nonpositive_f32(c(-0.5) * x * x)  # exp(-z^2)
    t = c(1) / (c(1) + c(_ERFCX_P * 0.7071067811865476) * abs(x))
    return c(0.5) * e * _horner_f32(_ERFCX_COEFS, t), e


@njit(inline="always", fastmath=FASTMATH)
def normal_cdf_f32(x):
    """Phi(x) = 0.5 erfc(-x / sqrt(2)) in float32."""
    tail = normal_tail_f32(x)[0]
    return np.float32(1) - tail if x >= 0 else tail


@njit(inline="always", fastmath=FASTMATH)
def tanh_f32(u):
    """tanh(u) in float32 from exp(-2|u|)."""
    e = exp_nonpositive_f32(np.float32(-2) * abs(u))
    t = (np.float32(1) - e) / (np.float32(1) + e)
    return t if u >= 0 else -t

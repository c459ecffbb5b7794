"""exp, Phi (the normal CDF) and tanh in float32 without libm, so loops around them vectorise.

Numba turns math.exp / math.erf into a call to the scalar libm function per element, which
keeps LLVM from vectorising the loop around it. Every exp in softmax, cross-entropy and GELU
is of a number <= 0 (x - max, -z^2), so in float32 it is computed with multiplies, adds and
selects only: 2^y with y = x log2(e) split as n + f; 2^f by a degree-6 polynomial (least
squares on [0, 1], relative error < 1e-7) and 2^n by multiplying the powers 2^-1, 2^-2,
..., 2^-64 that the bits of -n select. float64 keeps math.exp (float64 is for gradient
checks, where exactness matters more than speed).

`FASTMATH` is the fastmath the kernels allow: reassociation and contraction, which only
reorder rounding (and let LLVM vectorise reductions), but not 'nnan'/'ninf', since -inf is
a real value here (masks, dead softmax rows).
"""

import math

import numpy as np
from numba import njit, types
from numba.extending import overload

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


@njit(inline="always", fastmath=FASTMATH)
def exp_nonpositive_f32(x):
    """exp(x) for x <= 0 in float32 (x below -87 gives about 1e-38)."""
    c = np.float32
    y = x * c(1.4426950408889634)  # log2(e)
    underflow = y < c(-126.0)  # below float32's normal range (and exp(-inf)): exactly 0
    y = y if not underflow else c(-126.0)
    n = np.floor(y)  # (np.floor, not math.floor: NaN passes through instead of raising)
    p = _horner_f32(_EXP2_COEFS, y - n)
    m = np.int32(-n)  # 2^n = 2^-m, m in [0, 126]: one factor per set bit of m
    p = p * (c(2.0**-1) if m & 1 else c(1))
    p = p * (c(2.0**-2) if m & 2 else c(1))
    p = p * (c(2.0**-4) if m & 4 else c(1))
    p = p * (c(2.0**-8) if m & 8 else c(1))
    p = p * (c(2.0**-16) if m & 16 else c(1))
    p = p * (c(2.0**-32) if m & 32 else c(1))
    p = p * (c(2.0**-64) if m & 64 else c(1))
    return p if not underflow else c(0)


def exp_nonpositive(x):
    """exp(x) for x <= 0: the vectorisable version in float32, math.exp otherwise."""
    return math.exp(x)


@overload(exp_nonpositive, jit_options={"fastmath": FASTMATH}, inline="always")
def _exp_nonpositive_overload(x):
    if x == types.float32:
        return lambda x: exp_nonpositive_f32(x)
    return lambda x: math.exp(x)


# float32 GELU without libm. math.erf is a scalar libm call (about 10 ns an element), which
# made GELU the slowest op of a training step. In float32, erfc(z) for z >= 0 is Numerical
# Recipes' erfcc, t exp(-z^2 + P(t)) with t = 1 / (1 + z/2), relative error < 1.2e-7, with
# the vectorisable exp above: GELU within 2.5e-7 of exact (PyTorch's float32 GELU: 1.1e-6).
_ERFC_COEFS = (-1.26551223, 1.00002368, 0.37409196, 0.09678418, -0.18628806, 0.27886807,
               -1.13520398, 1.48851587, -0.82215223, 0.17087277)


@njit(inline="always", fastmath=FASTMATH)
def normal_cdf_f32(x):
    """Phi(x) = 0.5 erfc(-x / sqrt(2)) in float32."""
    c = np.float32
    z = abs(x) * c(0.7071067811865476)
    t = c(1) / (c(1) + c(0.5) * z)
    half_erfc = c(0.5) * t * exp_nonpositive_f32(_horner_f32(_ERFC_COEFS, t) - z * z)
    return c(1) - half_erfc if x >= 0 else half_erfc


@njit(inline="always", fastmath=FASTMATH)
def tanh_f32(u):
    """tanh(u) in float32 from exp(-2|u|)."""
    e = exp_nonpositive_f32(np.float32(-2) * abs(u))
    t = (np.float32(1) - e) / (np.float32(1) + e)
    return t if u >= 0 else -t

"""Numba kernels, signature for signature the same as reference.py.

Each public function is a thin Python wrapper: it makes its inputs C-contiguous, reshapes
them to the few ranks the compiled kernels know (rows (N, C), heads (BH, T, S) or flat),
casts scalars to the array dtype (so float32 work stays float32 inside the kernels),
allocates the outputs (large ones from the reused buffers of buffers.py) and calls an
`@njit(nogil=True, cache=True)` kernel over a range of rows `lo:hi`. From 2^15 elements a
kernel runs as its parallel twin instead: the same kernel on one range of rows per thread of
Numba's pool (threads.py).

What shapes the speed (benchmarks/kernels.py measures each kernel against its reference):
- one thread pool for all the work, Numba's: the products call NumPy's OpenBLAS on one
  thread from each thread of that pool, so OpenBLAS's own workers, which spin after each
  call, never take a core the pool needs (threads.py explains);
- exp, erf and tanh are computed without libm in float32, and row maxima with a
  NaN-propagating maximum (vecmath.py), so the softmax, cross-entropy and GELU loops
  vectorise;
- attention keeps its two matmuls in BLAS around one fused Numba pass for scale + mask +
  softmax (and softmax backward + scale); causal self-attention runs its products by blocks
  of query rows, skipping the blocks above the diagonal;
- self-attention from a fused q, k, v projection (the GPT's) does each head start to end in
  one kernel, calling BLAS from compiled code, with no copy to split or merge the heads.
"""

import math
import os
import sys

import numpy as np
from numba import get_num_threads, njit, prange, types

from minigrad.kernels import buffers, reference, threads
from minigrad.kernels.reference import _additive_mask, _check_approximate
from minigrad.kernels.vecmath import FASTMATH as _FM
from minigrad.kernels.vecmath import (
    exp_nonpositive,
    maximum,
    normal_cdf_f32,
    normal_tail_f32,
    tanh_f32,
)

# From this many elements a kernel runs as its parallel twin. Measured on the 2-core machine
# (fresh processes, medians of 300 calls): a (768, 128) LayerNorm forward 17-30 us split
# against 27-40 us whole, a (768, 512) GELU 96-123 us against 190-210 us.
_MIN_SPLIT_SIZE = 1 << 15


def _kernel(fn):
    """Compile a kernel: nopython, cached on disk, GIL released, our fastmath."""
    return njit(nogil=True, cache=True, fastmath=_FM, error_model="numpy")(fn)


def _parallel(fn):
    """Compile a kernel whose `prange` loop runs one piece per thread of Numba's pool."""
    return njit(parallel=True, nogil=True, cache=True, fastmath=_FM, error_model="numpy")(fn)


@njit(inline="always")
def _piece(n, p, parts):
    """Bounds (lo, hi) of piece p of `parts` nearly equal pieces of range(n)."""
    return n * p // parts, n * (p + 1) // parts


_compile_notice_due = True


def _announce_compile():
    """On a first run (no compiled kernel cached on disk yet), say why the pause."""
    global _compile_notice_due
    _compile_notice_due = False
    kernels = [f for f in globals().values() if hasattr(f, "_cache")]
    index_files = [getattr(getattr(f._cache, "_cache_file", None), "_index_path", None)
                   for f in kernels]
    if not any(path is not None and os.path.exists(path) for path in index_files):
        print("minigrad: compiling kernels, first run only", file=sys.stderr, flush=True)


def _c(a):
    """`a` as a C-contiguous, writeable ndarray (copied only when it is not already).

    Numba compiles one specialisation per layout and per read-only flag, so always handing it
    writeable C arrays keeps it to one compiled signature per dtype.
    """
    if _compile_notice_due:
        _announce_compile()
    a = np.ascontiguousarray(a)
    if not a.flags.writeable:
        a = a.copy()
    return a


def _rows(x):
    """x (..., C) as a C-contiguous (N, C) array."""
    x = _c(x)
    return x.reshape(-1, x.shape[-1]) if x.ndim != 2 else x


def _split(size, n, call):
    """Run call(lo, hi) -> (kernel, *args) over range(n): on Numba's threads, by the kernel's
    parallel twin, when `size` (elements) is large and it has one; else in one call. Each
    piece gets its rows sliced [lo:hi], so its loops start at 0: LLVM then knows no index
    is negative and vectorises them."""
    kernel, *args = call(0, n)
    if size >= _MIN_SPLIT_SIZE and threads.PARALLEL and kernel in _PARALLEL_TWIN:
        _PARALLEL_TWIN[kernel](get_num_threads(), *args)
    else:
        kernel(*args)


def _sliced(kernel, arrays, rest):
    """A call(lo, hi) for _split: (kernel, each of arrays[lo:hi], *rest)."""
    return lambda lo, hi: (kernel, *(a[lo:hi] for a in arrays), *rest)


# ---------------------------------------------------------------------------------------------
# matmul: NumPy's OpenBLAS, one thread per piece, the pieces on Numba's threads


def matmul(a, b):
    """a (..., n, k) @ b (..., k, m) -> (..., n, m), batch dims broadcast as NumPy's.

    The product is cut into one piece per thread (by batch entries, else by rows), each
    computed by OpenBLAS on one thread: on the baby GPT's shapes this is as fast as
    OpenBLAS's own two threads, and it leaves no BLAS worker spinning to slow the next
    kernel. Like the Numba kernels it gives inf on overflow without a warning (a diverging
    run is reported once, by whoever checks the loss).
    """
    if np.ndim(a) < 2 or np.ndim(b) < 2:
        with threads.blas_on_one_thread(), np.errstate(over="ignore", invalid="ignore"):
            return np.matmul(a, b)
    lead = a.shape[:-2]
    if b.shape[:-2] != lead:  # (broadcast_shapes alone took 1.6 us of a small product's 15)
        lead = np.broadcast_shapes(lead, b.shape[:-2])
    dtype = a.dtype if a.dtype == b.dtype else np.result_type(a, b)
    out = buffers.empty(lead + (a.shape[-2], b.shape[-1]), dtype)
    return _matmul_into(a, b, out)


# The host's BLAS (NumPy's OpenBLAS) called from Numba, one matrix per call, on one thread.
_GEMM_SIG = (types.int32, types.int32, types.int32, types.int64, types.int64, types.int64)
_sgemm = types.ExternalFunction(threads.CBLAS["f"], types.void(
    *_GEMM_SIG, types.float32, types.voidptr, types.int64, types.voidptr, types.int64,
    types.float32, types.voidptr, types.int64))
_dgemm = types.ExternalFunction(threads.CBLAS["d"], types.void(
    *_GEMM_SIG, types.float64, types.voidptr, types.int64, types.voidptr, types.int64,
    types.float64, types.voidptr, types.int64))
_ROW_MAJOR, _NO_TRANS, _TRANS = 101, 111, 112


@njit(inline="always")
def _blas_layout(m):
    """(transpose flag, leading dimension) of a matrix with a unit stride on one axis."""
    unit = m.itemsize
    if m.strides[1] == unit:
        return _NO_TRANS, max(m.strides[0] // unit, m.shape[1], 1)
    return _TRANS, max(m.strides[1] // unit, m.shape[0], 1)


@njit(nogil=True, cache=True)
def _gemm_one(a, b, out):
    """out (M, N) = a (M, K) @ b (K, N) by one BLAS call on this thread; each matrix needs a
    unit stride on one axis (a transposed view is read as it is)."""
    ta, lda = _blas_layout(a)
    tb, ldb = _blas_layout(b)
    M, K, N = a.shape[0], a.shape[1], b.shape[1]
    ldc = max(out.strides[0] // out.itemsize, N, 1)
    if out.itemsize == 4:
        _sgemm(_ROW_MAJOR, ta, tb, M, N, K, np.float32(1), a.ctypes.data, lda,
               b.ctypes.data, ldb, np.float32(0), out.ctypes.data, ldc)
    else:
        _dgemm(_ROW_MAJOR, ta, tb, M, N, K, 1.0, a.ctypes.data, lda,
               b.ctypes.data, ldb, 0.0, out.ctypes.data, ldc)


@njit(nogil=True, cache=True)
def _gemm(a, b, out):
    # out (B1, B2, M, N) = a (B1, B2, M, K) @ b (B1, B2, K, N), one BLAS call per matrix
    for i in range(out.shape[0]):
        for j in range(out.shape[1]):
            _gemm_one(a[i, j], b[i, j], out[i, j])


def _gemm_parallel(parts, axis, a, b, bias, out):
    # _gemm in one piece per thread, the pieces cut along `axis` of out (0, 1 or 2: rows);
    # then each thread adds the bias (when it has one: bias.size > 0) to its piece, while the
    # piece is still in its cache
    for p in prange(parts):
        lo, hi = _piece(out.shape[axis], p, parts)
        if axis == 0:
            piece = out[lo:hi]
            _gemm(a[lo:hi], b[lo:hi], piece)
        elif axis == 1:
            piece = out[:, lo:hi]
            _gemm(a[:, lo:hi], b[:, lo:hi], piece)
        else:
            piece = out[:, :, lo:hi]
            _gemm(a[:, :, lo:hi], b, piece)
        if bias.size:
            for i in range(piece.shape[0]):
                for j in range(piece.shape[1]):
                    for r in range(piece.shape[2]):
                        for c in range(piece.shape[3]):
                            piece[i, j, r, c] += bias[c]


_gemm_compiled = {}
_NO_BIAS = {np.dtype(np.float32): np.empty(0, np.float32),
            np.dtype(np.float64): np.empty(0, np.float64)}


def _gemm_pieces(dtype):
    """_gemm_parallel for one dtype, compiled (or loaded from the disk cache) on first use,
    for stacks of any strides, operands read-only or not: one version, whatever views a
    product gets. Compiled per call's types instead, each new layout of the operands would
    mean a new compilation (about 1.5 s each); compiled at import, every process importing
    minigrad would start Numba's compiler."""
    if dtype.char not in _gemm_compiled:
        dt = types.float32 if dtype.char == "f" else types.float64
        operand = types.Array(dt, 4, "A", readonly=True)
        sig = types.void(types.int64, types.int64, operand, operand,
                         types.Array(dt, 1, "A", readonly=True), types.Array(dt, 4, "A"))
        kernel = njit([sig], parallel=True, nogil=True, cache=True)(_gemm_parallel)
        _gemm_compiled[dtype.char] = kernel
    return _gemm_compiled[dtype.char]


# Products of fewer multiply-adds run in one call on the calling thread.
_MIN_SPLIT_MACS = 1 << 18


def _stack4(x, lead):
    """x (lead..., rows, cols) as (B1, B2, rows, cols): a view when lead has at most 2 dims."""
    if len(lead) <= 2:
        return x.reshape((1,) * (2 - len(lead)) + x.shape)
    return x.reshape((-1, lead[-1]) + x.shape[-2:])


def _as_blas_stack(x, lead):
    """x broadcast to lead + its matrix shape, as a (B1, B2, rows, cols) stack of matrices
    that BLAS can read in place (copied when they are not)."""
    if x.shape[:-2] != lead:
        x = np.broadcast_to(x, lead + x.shape[-2:])
    x = _stack4(x, lead)
    (n_rows, n_cols), (rows, cols), unit = x.shape[2:], x.strides[2:], x.itemsize
    # one unit stride, and the other a leading dimension that steps past a whole row (or
    # column): not a broadcast (0) or reversed (negative) one
    if not ((cols == unit and rows >= n_cols * unit) or (rows == unit and cols >= n_rows * unit)):
        x = np.ascontiguousarray(x)
    return x


def _matmul_into(a, b, out, bias=None):
    """out[...] = a @ b (+ bias (N,), added to each row), with BLAS on one thread per piece
    (threads.py); returns out."""
    lead = out.shape[:-2]
    out4 = _stack4(out, lead)
    if not (threads.PARALLEL and a.dtype == out.dtype and b.dtype == out.dtype
            and out.dtype.char in "fd" and out.size and a.shape[-1]
            and (bias is None or bias.dtype == out.dtype)
            and out.strides[-1] == out.itemsize and np.may_share_memory(out4, out)):
        previous = threads.hold_blas()
        try:
            with np.errstate(over="ignore", invalid="ignore"):
                np.matmul(a, b, out=out)
        finally:
            threads.release_blas(previous)
        if bias is not None:
            out += bias  # mixed dtypes, or nothing to multiply: NumPy's rules
        return out
    a4, b4 = _as_blas_stack(a, lead), _as_blas_stack(b, lead)
    if out.size * a.shape[-1] < _MIN_SPLIT_MACS:
        parts, axis = 1, 0
    else:  # cut along the first batch axis with enough matrices, else by rows
        parts = get_num_threads()
        axis = 0 if out4.shape[0] >= parts else 1 if out4.shape[1] >= parts else 2
    previous = threads.hold_blas()
    try:
        _gemm_pieces(out.dtype)(parts, axis, a4, b4,
                                _NO_BIAS[out.dtype] if bias is None else bias, out4)
    finally:
        threads.release_blas(previous)
    return out


def dense(x, weight, bias):
    """x (N, in) @ weight (out, in)^T + bias (out,) (None: no bias): a dense layer's rows.

    The product runs as matmul's, cut by rows, and each thread adds the bias to its rows
    as soon as its product is done. Against the product and then a separate bias pass,
    medians on the baby GPT's layers: 405 against 423 us (768, 128) x (128, 384), 534
    against 587 us (768, 128) x (128, 512); 1039 against 1104 us at 1536 rows.
    """
    wt = weight.T
    if bias is None:
        return matmul(x, wt)
    out = buffers.empty((x.shape[0], wt.shape[1]), np.result_type(x, wt))
    return _matmul_into(x, wt, out, np.asarray(bias))


def empty(shape, dtype):
    """A new uninitialised array; a large one reuses a free buffer (a fresh one would map
    new pages, which fault in one by one)."""
    return buffers.empty(shape, dtype)


def bias_grad(grad):
    """The gradient of a dense layer's bias: grad (N, C) summed over its rows, (C,).

    As ones (N,) @ grad, a BLAS matrix-vector product: half the time of grad.sum(axis=0)
    on the GPT's layers (measured 16 against 34 us at (768, 384)).
    """
    ones = np.ones(grad.shape[0], grad.dtype)
    with threads.blas_on_one_thread(), np.errstate(over="ignore", invalid="ignore"):
        return np.matmul(ones, grad)


# ---------------------------------------------------------------------------------------------
# softmax family


@_kernel
def _softmax_rows(x, out, take_log):
    # x (N, C) -> softmax (or log-softmax) rows; a row of all -inf gives 0 (or -inf)
    C = x.shape[1]
    zero = x.dtype.type(0)
    for r in range(x.shape[0]):
        m = x[r, 0]
        for c in range(1, C):
            m = maximum(m, x[r, c])
        if m == -np.inf:
            out[r, :] = -np.inf if take_log else zero
            continue
        s = zero
        for c in range(C):
            e = exp_nonpositive(x[r, c] - m)
            out[r, c] = e
            s += e
        if take_log:
            lse = m + math.log(s)
            for c in range(C):
                out[r, c] = x[r, c] - lse
        else:
            inv = x.dtype.type(1) / s
            for c in range(C):
                out[r, c] *= inv


def _softmax_family(x, take_log):
    x2 = _rows(x)
    out = buffers.empty(x2.shape, x2.dtype)
    _split(x2.size, x2.shape[0], lambda lo, hi: (_softmax_rows, x2[lo:hi], out[lo:hi],
                                                 take_log))
    return out.reshape(np.shape(x))


def softmax(x):
    """Softmax over the last axis; a row that is entirely -inf becomes all zeros."""
    return _softmax_family(x, False)


def log_softmax(x):
    """Log-softmax over the last axis; a row that is entirely -inf stays -inf."""
    return _softmax_family(x, True)


@_kernel
def _log_softmax_backward_rows(y, grad, out):
    C = y.shape[1]
    for r in range(y.shape[0]):
        m = y[r, 0]
        for c in range(1, C):
            m = maximum(m, y[r, c])
        if m == -np.inf:
            out[r, :] = 0  # a dead row (all -inf): zero gradient, never NaN
            continue
        total = y.dtype.type(0)
        for c in range(C):
            total += grad[r, c]
        for c in range(C):
            out[r, c] = grad[r, c] - exp_nonpositive(y[r, c]) * total


def _rows_backward(kernel, y, grad):
    """Run a (lo, hi, y, grad, out) rows kernel over the last axis of y (..., C) and grad."""
    y2, g2 = _rows(y), _rows(np.asarray(grad, dtype=y.dtype))
    out = buffers.empty(y2.shape, y2.dtype)
    _split(y2.size, y2.shape[0], lambda lo, hi: (kernel, y2[lo:hi], g2[lo:hi], out[lo:hi]))
    return out.reshape(y.shape)


def log_softmax_backward(y, grad):
    """dL/dx from the log-softmax output y: grad - softmax * sum(grad); zero on -inf rows."""
    return _rows_backward(_log_softmax_backward_rows, y, grad)


@_kernel
def _softmax_backward_rows(y, grad, out):
    C = y.shape[1]
    for r in range(y.shape[0]):
        dot = y.dtype.type(0)
        for c in range(C):
            dot += grad[r, c] * y[r, c]
        for c in range(C):
            out[r, c] = y[r, c] * (grad[r, c] - dot)


def softmax_backward(y, grad):
    """dL/dx from the softmax output y and dL/dy: y * (grad - sum(grad * y))."""
    return _rows_backward(_softmax_backward_rows, y, grad)


# ---------------------------------------------------------------------------------------------
# attention: BLAS matmuls around one fused Numba kernel over the (head, query) rows


@njit(inline="always", fastmath=_FM)
def _zero(row):
    # row[:] = 0 as a plain loop: Numba's slice assignment measured slower (67 against 55 us
    # on a (48, 64, 64) causal softmax backward that zeroed the upper half of each head)
    for j in range(row.size):
        row[j] = 0


@njit(inline="always", fastmath=_FM)
def _scale_mask_max(row, mask_row, has_mask, scale):
    # row[j] = row[j] * scale (+ mask_row[j]) in place; their max (-inf for an empty row).
    m = row.dtype.type(-np.inf)  # (a float64 -inf would make every exp float64)
    for j in range(row.size):
        x = row[j] * scale
        if has_mask:
            x += mask_row[j]
        row[j] = x
        m = maximum(m, x)  # (max(m, x) kept the loop scalar: 2.3x slower on (48, 64, 64))
    return m


@njit(inline="always", fastmath=_FM)
def _exp_normalise(row, m):
    # row <- exp(row - m) / sum(exp(row - m)), m its max (finite); returns that sum
    s = row.dtype.type(0)
    for j in range(row.size):
        e = exp_nonpositive(row[j] - m)
        row[j] = e
        s += e
    inv = row.dtype.type(1) / s
    for j in range(row.size):
        row[j] *= inv
    return s


@njit(inline="always", fastmath=_FM)
def _head_softmax(p, mask, head, heads_per_mask, has_mask, is_causal, scale, lse):
    # One head's scores p (T, S), head `head` of all BH -> its probabilities in place: scale,
    # mask, causal mask and softmax in one pass; lse (T,) <- each row's log-sum-exp of its
    # scaled, masked scores (-inf for a fully masked row, whose probabilities are 0).
    T, S = p.shape
    mask_rows, mb = mask.shape[1] > 1, head // heads_per_mask
    for i in range(T):
        jmax = min(i + 1, S) if is_causal else S  # keys j >= jmax are masked out
        row = p[i, :jmax]
        m = _scale_mask_max(row, mask[mb, i if mask_rows else 0, :jmax], has_mask, scale)
        if m == -np.inf:  # a fully masked row: zero probabilities, no NaN
            _zero(row)
            lse[i] = m
        else:
            lse[i] = m + np.log(_exp_normalise(row, m))
        _zero(p[i, jmax:])


@_kernel
def _attn_softmax(scores, mask, head0, heads_per_mask, has_mask, is_causal, scale):
    # scores (heads, T, S), heads head0, head0 + 1, ... of all BH -> probs in place.
    # mask (M, Tm, S): M = 1 (shared), a divisor of BH (one per batch entry, shared by its
    # heads_per_mask = BH / M heads, e.g. key padding) or BH; Tm = T, or 1 (one row for
    # every query).
    lse = np.empty(scores.shape[1], scores.dtype)  # (not needed here)
    for b in range(scores.shape[0]):
        _head_softmax(scores[b], mask, head0 + b, heads_per_mask, has_mask, is_causal, scale,
                      lse)


@_parallel
def _attn_softmax_parallel(parts, scores, mask, head0, heads_per_mask, has_mask, is_causal,
                           scale):
    for p in prange(parts):
        lo, hi = _piece(scores.shape[0], p, parts)
        _attn_softmax(scores[lo:hi], mask, head0 + lo, heads_per_mask, has_mask, is_causal,
                      scale)


@njit(inline="always", fastmath=_FM)
def _softmax_backward_row(p, d, jmax, scale):
    # d <- p * (d - sum(d * p)) * scale in place over keys :jmax; 0 from jmax on, where p is
    dot = p.dtype.type(0)
    for j in range(jmax):
        dot += p[j] * d[j]
    for j in range(jmax):
        d[j] = p[j] * (d[j] - dot) * scale
    _zero(d[jmax:])


@_kernel
def _attn_softmax_backward(probs, dprobs, scale):
    # dprobs (BH, T, S) -> dscores in place: probs * (dprobs - sum(dprobs * probs)) * scale.
    # Whole rows even when causal: skipping the zero probabilities right of the diagonal and
    # zeroing dscores there instead took longer (measured on (48, 64, 64) and (48, 256, 256)).
    T, S = probs.shape[1], probs.shape[2]
    for r in range(probs.shape[0] * T):
        b, i = r // T, r % T
        _softmax_backward_row(probs[b, i], dprobs[b, i], S, scale)


@_parallel
def _attn_softmax_backward_parallel(parts, probs, dprobs, scale):
    for p in prange(parts):
        lo, hi = _piece(probs.shape[0], p, parts)
        _attn_softmax_backward(probs[lo:hi], dprobs[lo:hi], scale)


def _mask3(add, lead, T, S):
    """An additive mask broadcastable to lead + (T, S) as the (M, Tm, S) array that
    _attn_softmax reads, without repeating what it shares: M = 1 when it is the same for
    every batch entry and head, M = the product of its leading dims when it varies only on
    the first ones (a key padding mask (B, 1, 1, S): one row per batch entry), else one
    slab per head; Tm = 1 when every query has the same row."""
    add = add.reshape((1,) * (len(lead) + 2 - add.ndim) + add.shape)
    Tm = T if add.shape[-2] > 1 else 1
    varies = [i for i, n in enumerate(add.shape[:-2]) if n > 1]
    n_lead = varies[-1] + 1 if varies else 0  # leading axes up to the last that varies
    if any(add.shape[i] != lead[i] for i in range(n_lead)):  # e.g. (1, nh, ...): per head
        n_lead = len(lead)
    shape = lead[:n_lead] + (1,) * (len(lead) - n_lead) + (Tm, S)
    return _c(np.broadcast_to(add, shape)).reshape(-1, Tm, S)


# Causal self-attention (T == S) by blocks of query rows: rows lo:hi attend keys :hi only, so
# each product skips the blocks above the diagonal, as PyTorch's flash attention does.


def _causal_blocks(T, S, is_causal):
    """Query-row blocks [(0, T/2), (T/2, T)] for causal self-attention, else None.

    The blocks skip the products right of the diagonal, in more product calls (each about
    15 us of dispatch). From 128 queries that pays; below, the calls cost more than they
    skip. Attention forward and backward, medians of 3 rounds: the baby GPT's (48, 64, 32)
    heads 0.62-0.68 ms whole, 0.70-0.89 ms in 4 blocks; (32, 128, 32) 1.46-1.55 ms whole,
    1.33-1.39 ms in 2; (48, 128, 64) 4.40-4.62 ms whole, 3.23-3.80 ms in 2. Earlier, on one
    BLAS call per product and another machine, 4 blocks had won on the baby GPT's heads and
    lost on the medium GPT's (48, 256, 64) to 2 (13.3 / 18.3 against 10.5 / 15.4 ms).
    """
    if not is_causal or T != S or T < 128:
        return None
    return [(0, T // 2), (T // 2, T)]


def _matmul_lower(a, b, blocks, out):
    """The blocks on and below the diagonal of a @ b (..., T, T), into out: rows lo:hi get
    a[..., lo:hi, :] @ b[..., :, :hi]; out's entries right of them are left untouched."""
    for lo, hi in blocks:
        _matmul_into(a[..., lo:hi, :], b[..., :, :hi], out[..., lo:hi, :hi])
    return out


def _matmul_tril(a, b, blocks, transpose_a=False):
    """a @ b (or a^T @ b) for a (..., T, T) zero above its diagonal: rows lo:hi of a @ b
    are a[..., lo:hi, :hi] @ b[..., :hi, :]; rows lo:hi of a^T @ b are
    a[..., lo:, lo:hi]^T @ b[..., lo:, :] (the queries that see keys lo:hi)."""
    out = buffers.empty(a.shape[:-1] + b.shape[-1:], a.dtype)
    for lo, hi in blocks:
        if transpose_a:
            part = np.swapaxes(a[..., lo:, lo:hi], -1, -2), b[..., lo:, :]
        else:
            part = a[..., lo:hi, :hi], b[..., :hi, :]
        _matmul_into(*part, out[..., lo:hi, :])
    return out


# Up to this many elements per head, k^T and v^T are copied contiguous for the products that
# take them. OpenBLAS multiplies by a transposed view more slowly on small heads: q @ k^T took
# 6.0-6.4 us per (64, 32) head against 4.3 us with k^T contiguous. Attention forward +
# backward, copy against view (medians of interleaved rounds, one process): (48, 64, 32)
# heads 0.91x, (32, 128, 16) 0.94x, (32, 128, 32) 0.94x; (48, 128, 64) 1.07x and the medium
# GPT's (48, 256, 64) 1.05x, where the copy costs more than it saves.
_COPY_TRANSPOSED_MAX = 128 * 32


def _transposed(x):
    """x (..., S, d) as x^T (..., d, S): a contiguous copy for small heads, else a view."""
    xt = np.swapaxes(x, -1, -2)
    if x.shape[-1] * x.shape[-2] <= _COPY_TRANSPOSED_MAX:
        xt = np.ascontiguousarray(xt)
    return xt


def sdpa_forward(q, k, v, mask, is_causal):
    """Scaled dot-product attention: softmax(q @ k^T / sqrt(d) + mask) @ v; (out, probs).

    Arguments, shapes and masking rules as reference.sdpa_forward.
    """
    dt = q.dtype
    lead, T, S = q.shape[:-2], q.shape[-2], k.shape[-2]
    k, v = np.asarray(k, dtype=dt), np.asarray(v, dtype=dt)
    blocks = _causal_blocks(T, S, is_causal)
    # q, k, v are usually strided views into the fused (B, T, 3C) projection: BLAS reads
    # them in place (each (T, d) slab has unit stride along d), so they are not copied.
    kt = _transposed(k)
    if blocks is None:
        probs = matmul(q, kt)  # (..., T, S) scores, then probs in place
    else:  # the kernel zeroes what is right of the blocks
        probs = _matmul_lower(q, kt, blocks, buffers.empty(lead + (T, S), dt))
    probs3 = probs.reshape(-1, T, S)  # (BH, T, S), a view: probs is contiguous
    m3 = np.zeros((1, 1, 1), dt) if mask is None else _mask3(_additive_mask(mask, dt), lead, T, S)
    scale = dt.type(1.0 / math.sqrt(q.shape[-1]))
    heads_per_mask = probs3.shape[0] // m3.shape[0]

    def call(lo, hi):  # heads lo:hi
        return (_attn_softmax, probs3[lo:hi], m3, lo, heads_per_mask, mask is not None,
                bool(is_causal), scale)

    _split(probs3.size, probs3.shape[0], call)
    out = matmul(probs, v) if blocks is None else _matmul_tril(probs, v, blocks)
    return out, probs  # (..., T, dv), (..., T, S)


def sdpa_backward(q, k, v, probs, grad_out, is_causal=False):
    """Gradients (dq, dk, dv) of sdpa_forward, from its probs and dL/dout (..., T, d).

    The mask is a constant, so it needs no gradient: it is already folded into probs.
    is_causal (probs is zero above the diagonal) lets the products skip those blocks.
    """
    dt = q.dtype
    T, S = q.shape[-2], k.shape[-2]
    k, v = np.asarray(k, dtype=dt), np.asarray(v, dtype=dt)
    probs, grad_out = _c(np.asarray(probs, dtype=dt)), np.asarray(grad_out, dtype=dt)
    blocks = _causal_blocks(T, S, is_causal)
    if blocks is None:
        dv = matmul(np.swapaxes(probs, -1, -2), grad_out)  # (..., S, dv)
    else:
        dv = _matmul_tril(probs, grad_out, blocks, transpose_a=True)
    # (..., T, S) dprobs, then dscores in place; whole, so that dscores is exactly 0 where
    # probs is (the blocked products below read the diagonal blocks whole)
    ds = matmul(grad_out, _transposed(v))
    p3, ds3 = probs.reshape(-1, T, S), ds.reshape(-1, T, S)
    scale = dt.type(1.0 / math.sqrt(q.shape[-1]))
    _split(p3.size, p3.shape[0], lambda lo, hi: (_attn_softmax_backward, p3[lo:hi],
                                                 ds3[lo:hi], scale))
    if blocks is None:
        return matmul(ds, k), matmul(np.swapaxes(ds, -1, -2), q), dv  # dq, dk, dv
    return _matmul_tril(ds, k, blocks), _matmul_tril(ds, q, blocks, transpose_a=True), dv


# ---------------------------------------------------------------------------------------------
# self-attention from the fused projection: all of a head's work in one kernel
#
# sdpa_forward and sdpa_backward, given the heads of a GPT block (strided views into c_attn's
# output), make 7 product calls and 2 softmax passes a layer, each dispatched from Python,
# plus the copies that merge the heads after forward and put dq, dk and dv back side by side
# after backward. The kernels below take c_attn's output qkv (B, T, 3C) itself and do one
# head at a time, start to end, on one thread of the pool: products by BLAS calls from
# compiled code (no dispatch), the head's scores still in cache for the softmax, y written
# with its heads already merged and dq, dk, dv straight into their columns of dqkv.
# Forward keeps each query's log-sum-exp, not the probabilities (T floats a head, not T * T):
# backward makes them again from the scores, one product and one exp pass a head, as flash
# attention does. On the baby GPT that is 3 MiB fewer held at the end of forward, where a
# training step peaks (a 500-iteration run's peak fell 1.8 MiB).

# Causal heads multiply by blocks of this many query rows: rows r0:r1 attend keys :r1 only,
# so the products skip what is right of the diagonal. Forward + backward of one layer
# (in-process medians; whole heads, then blocks of 64, 32, 16, 8): baby GPT (12, 64, 4, 128)
# 0.51, 0.53, 0.44-0.46, 0.41, 0.44 ms; medium (8, 256, 6, 384) 16.0, 11.2-11.6,
# 9.6-10.4, 9.1-9.6, 10.0-10.3 ms. (sdpa_forward/backward with the splitting and merging
# copies: 0.85-1.4 and 17-18 ms.)
_HEAD_BLOCK = 16


@njit(inline="always")
def _transpose_into(x, out):
    # out (d, T) = x (T, d)^T
    for t in range(x.shape[0]):
        for d in range(x.shape[1]):
            out[d, t] = x[t, d]


@njit(inline="always", fastmath=_FM)
def _head_probs(p, mask, head, heads_per_mask, has_mask, is_causal, scale, lse):
    # One head's scores p (T, S) -> the probabilities _head_softmax made, exp(score - lse)
    T, S = p.shape
    mask_rows, mb = mask.shape[1] > 1, head // heads_per_mask
    for i in range(T):
        jmax = 0 if lse[i] == -np.inf else min(i + 1, S) if is_causal else S
        row, mask_row = p[i], mask[mb, i if mask_rows else 0]
        for j in range(jmax):
            x = row[j] * scale
            if has_mask:
                x += mask_row[j]
            row[j] = exp_nonpositive(x - lse[i])
        _zero(p[i, jmax:])


@njit(inline="always")
def _head_scores(q, kt, step, p):
    # p (T, T) <- q (T, d) @ kt (d, T), by blocks of `step` query rows: rows r0:r1 against
    # keys :r1 only (causal; step = T otherwise); what is right of the blocks is left as is
    T = q.shape[0]
    for r0 in range(0, T, step):
        r1 = min(r0 + step, T)
        _gemm_one(q[r0:r1], kt[:, :r1], p[r0:r1, :r1])


@_kernel
def _qkv_head(qkv, mask, heads_per_mask, has_mask, is_causal, scale, lse, y, bh, kt, p):
    # head bh of the B * nh: qkv (B, T, 3, nh, hs) -> y (B, T, nh, hs), lse (B, nh, T)
    T, nh = qkv.shape[1], qkv.shape[3]
    b, h = bh // nh, bh % nh
    step = _HEAD_BLOCK if is_causal else T
    v, o = qkv[b, :, 2, h], y[b, :, h]  # (T, hs)
    _transpose_into(qkv[b, :, 1, h], kt)
    _head_scores(qkv[b, :, 0, h], kt, step, p)
    _head_softmax(p, mask, bh, heads_per_mask, has_mask, is_causal, scale, lse[b, h])
    for r0 in range(0, T, step):
        r1 = min(r0 + step, T)
        _gemm_one(p[r0:r1, :r1], v[:r1], o[r0:r1])


@_kernel
def _qkv_head_backward(qkv, mask, heads_per_mask, has_mask, is_causal, scale, lse, dy, dqkv,
                       bh, kt, vt, p, ds):
    # head bh: dL/dy (B, T, nh, hs) -> dL/dqkv (B, T, 3, nh, hs); the head's probabilities
    # made again from its scores and forward's lse
    T, nh = qkv.shape[1], qkv.shape[3]
    b, h = bh // nh, bh % nh
    step = _HEAD_BLOCK if is_causal else T
    q, k, g = qkv[b, :, 0, h], qkv[b, :, 1, h], dy[b, :, h]
    dq, dk, dv = dqkv[b, :, 0, h], dqkv[b, :, 1, h], dqkv[b, :, 2, h]
    _transpose_into(k, kt)
    _transpose_into(qkv[b, :, 2, h], vt)
    _head_scores(q, kt, step, p)
    _head_probs(p, mask, bh, heads_per_mask, has_mask, is_causal, scale, lse[b, h])
    for r0 in range(0, T, step):
        r1 = min(r0 + step, T)
        _gemm_one(p[r0:, r0:r1].T, g[r0:], dv[r0:r1])  # keys r0:r1, seen from row r0 on
        _gemm_one(g[r0:r1], vt[:, :r1], ds[r0:r1, :r1])  # dL/dprobs
    for i in range(T):  # dL/dscores, in place
        _softmax_backward_row(p[i], ds[i], i + 1 if is_causal else T, scale)
    for r0 in range(0, T, step):
        r1 = min(r0 + step, T)
        _gemm_one(ds[r0:r1, :r1], k[:r1], dq[r0:r1])
        _gemm_one(ds[r0:, r0:r1].T, q[r0:], dk[r0:r1])


# Inlined into its parallel twin, so that a first run compiles the loop once (a parallel
# kernel costs 0.3-2 s to compile on a first run; the two directions share one for that too).
@njit(inline="always", nogil=True, cache=True, fastmath=_FM, error_model="numpy")
def _qkv_heads(backward, qkv, mask, heads_per_mask, has_mask, is_causal, scale, lse, y, dqkv,
               lo, hi):
    # heads lo:hi: forward (y and lse from qkv) or backward (dqkv from y = dL/dy and lse)
    T, hs = qkv.shape[1], qkv.shape[4]
    kt, vt = np.empty((hs, T), qkv.dtype), np.empty((hs, T), qkv.dtype)  # k^T, v^T: BLAS
    p = np.empty((T, T), qkv.dtype)  # takes small heads faster with them contiguous
    ds = np.empty((T, T) if backward else (0, 0), qkv.dtype)
    for bh in range(lo, hi):
        if backward:
            _qkv_head_backward(qkv, mask, heads_per_mask, has_mask, is_causal, scale, lse, y,
                               dqkv, bh, kt, vt, p, ds)
        else:
            _qkv_head(qkv, mask, heads_per_mask, has_mask, is_causal, scale, lse, y, bh, kt, p)


@_parallel
def _qkv_heads_parallel(parts, backward, qkv, mask, heads_per_mask, has_mask, is_causal, scale,
                        lse, y, dqkv, lo, hi):
    for p in prange(parts):
        a, b = _piece(hi - lo, p, parts)
        _qkv_heads(backward, qkv, mask, heads_per_mask, has_mask, is_causal, scale, lse, y,
                   dqkv, lo + a, lo + b)


def _mask_args(mask, dt, B, n_head, T):
    """(mask (M, Tm, T), heads_per_mask, has_mask) as the attention kernels read them."""
    m3 = np.zeros((1, 1, 1), dt) if mask is None else _mask3(_additive_mask(mask, dt),
                                                               (B, n_head), T, T)
    return m3, B * n_head // m3.shape[0], mask is not None


def qkv_attention_forward(qkv, n_head, mask, is_causal):
    """Self-attention of n_head heads from the fused projection qkv (B, T, 3C); (y, lse).

    Arguments, shapes and results as reference.qkv_attention_forward.
    """
    dt = qkv.dtype
    if dt.char not in "fd":  # BLAS multiplies float32 and float64 only
        return reference.qkv_attention_forward(qkv, n_head, mask, is_causal)
    B, T, C = qkv.shape[0], qkv.shape[1], qkv.shape[2] // 3
    qkv5 = _c(qkv).reshape(B, T, 3, n_head, C // n_head)
    y = buffers.empty((B, T, n_head, C // n_head), dt)
    lse = np.empty((B, n_head, T), dt)
    scale = dt.type(1.0 / math.sqrt(C // n_head))
    args = (*_mask_args(mask, dt, B, n_head, T), bool(is_causal), scale, lse, y,
            np.empty((0,) * 5, dt))  # (no dqkv)
    with threads.blas_on_one_thread():
        _split(B * n_head * T * T, B * n_head,
               lambda lo, hi: (_qkv_heads, False, qkv5, *args, lo, hi))
    return y.reshape(B, T, C), lse


def qkv_attention_backward(qkv, lse, grad_out, n_head, mask, is_causal=False):
    """dL/dqkv (B, T, 3C) of qkv_attention_forward, from its lse and dL/dy (B, T, C).

    Arguments as reference.qkv_attention_backward.
    """
    dt = qkv.dtype
    if dt.char not in "fd":
        return reference.qkv_attention_backward(qkv, lse, grad_out, n_head, mask, is_causal)
    B, T, C = qkv.shape[0], qkv.shape[1], qkv.shape[2] // 3
    hs = C // n_head
    qkv5 = _c(qkv).reshape(B, T, 3, n_head, hs)
    dy = _c(np.asarray(grad_out, dtype=dt)).reshape(B, T, n_head, hs)
    dqkv = buffers.empty((B, T, 3, n_head, hs), dt)
    args = (*_mask_args(mask, dt, B, n_head, T), bool(is_causal), dt.type(1.0 / math.sqrt(hs)),
            _c(np.asarray(lse, dtype=dt)), dy, dqkv)
    with threads.blas_on_one_thread():
        _split(B * n_head * T * T, B * n_head,
               lambda lo, hi: (_qkv_heads, True, qkv5, *args, lo, hi))
    return dqkv.reshape(B, T, 3 * C)


# ---------------------------------------------------------------------------------------------
# layer norm


@_kernel
def _ln_fwd(x, w, bias, eps, y, mean, rstd):
    C = x.shape[1]
    inv_c, one = x.dtype.type(1.0 / C), x.dtype.type(1)
    for r in range(x.shape[0]):
        s = x.dtype.type(0)
        for c in range(C):
            s += x[r, c]
        mu = s * inv_c
        var = x.dtype.type(0)
        for c in range(C):  # two passes: no cancellation in E[x^2] - E[x]^2
            d = x[r, c] - mu
            var += d * d
        rs = one / np.sqrt(var * inv_c + eps)
        mean[r] = mu
        rstd[r] = rs
        for c in range(C):
            y[r, c] = (x[r, c] - mu) * rs * w[c] + bias[c]


@_kernel
def _ln_bwd(grad, x, w, mean, rstd, dx, dw_part, db_part):
    # dx, and the sums over the rows of dL/dw and dL/db added into dw_part and db_part (C,)
    C = x.shape[1]
    inv_c = x.dtype.type(1.0 / C)
    for r in range(x.shape[0]):
        mu, rs = mean[r], rstd[r]
        sg = x.dtype.type(0)
        sgx = x.dtype.type(0)
        for c in range(C):
            xh = (x[r, c] - mu) * rs
            g = grad[r, c] * w[c]
            sg += g
            sgx += g * xh
            dw_part[c] += grad[r, c] * xh
            db_part[c] += grad[r, c]
        mg, mgx = sg * inv_c, sgx * inv_c
        for c in range(C):
            xh = (x[r, c] - mu) * rs
            dx[r, c] = (grad[r, c] * w[c] - mg - xh * mgx) * rs


def layer_norm_forward(x, weight, bias, eps):
    """LayerNorm over the last axis: (x - mean) * rstd * weight + bias.

    weight and bias (C,) may each be None. Returns (y like x, mean (..., 1), rstd (..., 1)),
    where rstd = 1 / sqrt(var + eps) with the biased variance, as PyTorch's.
    """
    x2 = _rows(x)
    dt, C = x2.dtype, x2.shape[1]
    w = np.ones(C, dt) if weight is None else _c(np.asarray(weight, dtype=dt))
    b = np.zeros(C, dt) if bias is None else _c(np.asarray(bias, dtype=dt))
    y = buffers.empty(x2.shape, x2.dtype)
    mean = np.empty(x2.shape[0], dt)
    rstd = np.empty(x2.shape[0], dt)
    _split(x2.size, x2.shape[0], lambda lo, hi: (_ln_fwd, x2[lo:hi], w, b, dt.type(eps),
                                                 y[lo:hi], mean[lo:hi], rstd[lo:hi]))
    stat_shape = x.shape[:-1] + (1,)
    return y.reshape(x.shape), mean.reshape(stat_shape), rstd.reshape(stat_shape)


def layer_norm_backward(grad, x, weight, mean, rstd):
    """Gradients (dx, dweight, dbias) of layer_norm_forward, from dL/dy.

    dweight is None when weight is None. dbias is always returned (it is sum(grad) over the
    rows); a caller whose layer has no bias ignores it.
    """
    x2 = _rows(x)
    dt, C = x2.dtype, x2.shape[1]
    g2 = _rows(np.asarray(grad, dtype=dt))
    w = np.ones(C, dt) if weight is None else _c(np.asarray(weight, dtype=dt))
    mean1, rstd1 = _c(mean).reshape(-1), _c(rstd).reshape(-1)
    dweight, dbias = np.zeros(C, dt), np.zeros(C, dt)
    dx = buffers.empty(x2.shape, x2.dtype)
    # On the calling thread: split over two threads it took 27 against 33 us on the baby
    # GPT's (768, 128) and 136 against 234 us on the medium one's (2048, 384), while its
    # parallel twin cost 0.9 s more to compile on a first run.
    _ln_bwd(g2, x2, w, mean1, rstd1, dx, dweight, dbias)
    return dx.reshape(x.shape), dweight if weight is not None else None, dbias


# ---------------------------------------------------------------------------------------------
# cross entropy


@_kernel
def _cross_entropy_rows(logits, targets, ignore_index, losses, lse):
    # One pass per row: max, logsumexp, and the loss of the target class.
    C = logits.shape[1]
    for r in range(logits.shape[0]):
        m = logits[r, 0]
        for c in range(1, C):
            m = maximum(m, logits[r, c])
        s = logits.dtype.type(0)
        for c in range(C):
            s += exp_nonpositive(logits[r, c] - m)
        lse[r] = m + math.log(s)
        t = targets[r]
        losses[r] = 0 if t == ignore_index else lse[r] - logits[r, t]


@_kernel
def _cross_entropy_bwd_rows(logits, targets, lse, grad_losses, ignore_index, out):
    C = logits.shape[1]
    for r in range(logits.shape[0]):
        t = targets[r]
        if t == ignore_index:
            out[r, :] = 0
            continue
        g = grad_losses[r]
        for c in range(C):
            out[r, c] = exp_nonpositive(logits[r, c] - lse[r]) * g
        out[r, t] -= g


def cross_entropy_forward(logits, targets, ignore_index):
    """Per-row cross entropy of logits (N, C) against int targets (N,): (losses, lse)."""
    x = _rows(logits)
    losses = np.empty(x.shape[0], dtype=x.dtype)
    lse = np.empty(x.shape[0], dtype=x.dtype)
    t = _ints(targets)
    _split(x.size, x.shape[0], lambda lo, hi: (_cross_entropy_rows, x[lo:hi], t[lo:hi],
                                               ignore_index, losses[lo:hi], lse[lo:hi]))
    return losses, lse


def cross_entropy_backward(logits, targets, lse, grad_losses, ignore_index):
    """dL/dlogits = (softmax(logits) - onehot(target)) * grad_losses per row; 0 if ignored."""
    x = _rows(logits)
    g = _c(np.broadcast_to(np.asarray(grad_losses, dtype=x.dtype), (x.shape[0],)))
    out = np.empty_like(x)
    t, lse = _ints(targets), _c(np.asarray(lse, dtype=x.dtype))
    _split(x.size, x.shape[0], lambda lo, hi: (_cross_entropy_bwd_rows, x[lo:hi], t[lo:hi],
                                               lse[lo:hi], g[lo:hi], ignore_index, out[lo:hi]))
    return out


def _ints(a):
    """Integer indices as a flat C-contiguous int64 array (one compiled signature)."""
    return _c(np.asarray(a, dtype=np.int64)).reshape(-1)


# ---------------------------------------------------------------------------------------------
# GELU (elementwise, flat)

_SQRT_2_OVER_PI = 0.7978845608028654


# float32: one kernel per form, so that a model compiles only the form it uses (each takes
# about half a second to compile on a first run)


@_kernel
def _gelu_erf_f32(backward, x, y):
    # forward: y = gelu(x); backward: y (dL/dgelu) *= gelu'(x), in place (one array read and
    # written: LLVM vectorises the loop, which it would not for a separate output that may be
    # the gradient itself). Both in one kernel, so that they share one parallel twin: each
    # twin costs about half a second to compile on a first run.
    c = np.float32
    if backward:
        for i in range(x.size):
            xi = x[i]
            tail, e = normal_tail_f32(xi)  # Phi(-|x|), exp(-x^2 / 2): one exp for cdf and pdf
            cdf = c(1) - tail if xi >= 0 else tail
            y[i] *= cdf + xi * e * c(0.3989422804014327)  # 1 / sqrt(2 pi)
    else:
        for i in range(x.size):
            y[i] = x[i] * normal_cdf_f32(x[i])


@_parallel
def _gelu_erf_f32_parallel(parts, backward, x, y):
    for p in prange(parts):
        lo, hi = _piece(x.size, p, parts)
        _gelu_erf_f32(backward, x[lo:hi], y[lo:hi])


@_kernel
def _gelu_tanh_f32(backward, x, y):
    # as _gelu_erf_f32, with the tanh form
    c = np.float32
    for i in range(x.size):
        xi = x[i]
        t = tanh_f32(c(_SQRT_2_OVER_PI) * (xi + c(0.044715) * xi * xi * xi))
        if backward:
            dinner = c(_SQRT_2_OVER_PI) * (c(1) + c(3 * 0.044715) * xi * xi)
            y[i] *= c(0.5) * (c(1) + t) + c(0.5) * xi * (c(1) - t * t) * dinner
        else:
            y[i] = c(0.5) * xi * (c(1) + t)


@_parallel
def _gelu_tanh_f32_parallel(parts, backward, x, y):
    for p in prange(parts):
        lo, hi = _piece(x.size, p, parts)
        _gelu_tanh_f32(backward, x[lo:hi], y[lo:hi])


@njit(nogil=True, cache=True, error_model="numpy")
def _gelu_f64(backward, x, use_tanh, y):
    # as _gelu_erf_f32, either form, with libm's erf and tanh
    for i in range(x.size):
        xi = x[i]
        if use_tanh:
            t = math.tanh(_SQRT_2_OVER_PI * (xi + 0.044715 * xi**3))
            if backward:
                dinner = _SQRT_2_OVER_PI * (1.0 + 3 * 0.044715 * xi * xi)
                y[i] *= 0.5 * (1.0 + t) + 0.5 * xi * (1.0 - t * t) * dinner
            else:
                y[i] = 0.5 * xi * (1.0 + t)
        else:
            cdf = 0.5 * (1.0 + math.erf(xi / math.sqrt(2)))
            if backward:
                y[i] *= cdf + xi * math.exp(-0.5 * xi * xi) / math.sqrt(2 * math.pi)
            else:
                y[i] = xi * cdf


@_parallel
def _gelu_f64_parallel(parts, backward, x, use_tanh, y):
    for p in prange(parts):
        lo, hi = _piece(x.size, p, parts)
        _gelu_f64(backward, x[lo:hi], use_tanh, y[lo:hi])


def _gelu_call(backward, x1, y1, approximate):
    """Run the GELU kernel of x1's dtype and `approximate` over x1 and y1 (flat)."""
    if x1.dtype == np.float32:
        kernel = _gelu_tanh_f32 if approximate == "tanh" else _gelu_erf_f32
        _split(x1.size, x1.size, lambda lo, hi: (kernel, backward, x1[lo:hi], y1[lo:hi]))
    else:
        _split(x1.size, x1.size, lambda lo, hi: (_gelu_f64, backward, x1[lo:hi],
                                                 approximate == "tanh", y1[lo:hi]))


def gelu(x, approximate):
    """GELU: x * Phi(x) with the erf form ("none") or PyTorch's tanh approximation ("tanh")."""
    _check_approximate(approximate)
    x1 = _c(x).reshape(-1)
    out = buffers.empty(x1.shape, x1.dtype)
    _gelu_call(False, x1, out, approximate)
    return out.reshape(np.shape(x))


def gelu_backward(x, grad, approximate, out=None):
    """dL/dx of gelu from dL/dy: a new array, or with out=grad, grad itself overwritten (for
    a layer that made grad and needs it no more: no second array)."""
    _check_approximate(approximate)
    x1 = _c(x).reshape(-1)
    if out is None:
        out = buffers.empty(x1.shape, x1.dtype)
        np.copyto(out, np.reshape(grad, -1), casting="unsafe")
    elif not (out is grad and out.flags.c_contiguous and out.flags.writeable
              and out.dtype == x1.dtype and out.shape == np.shape(x)):
        raise ValueError(f"gelu_backward: out must be grad itself, a writeable C-contiguous "
                         f"{x1.dtype} array of x's shape {np.shape(x)}")
    _gelu_call(True, x1, out.reshape(-1), approximate)  # dL/dy, made dL/dx in place
    return out.reshape(np.shape(x))


# ---------------------------------------------------------------------------------------------
# embedding


@njit(nogil=True, cache=True, error_model="numpy")
def _embedding_bwd(idx, grad, dweight):
    # serial: repeated indices write the same row, and the work (N x D adds) is too small
    # for threads to pay
    for n in range(idx.size):
        row = dweight[idx[n]]
        for d in range(grad.shape[1]):
            row[d] += grad[n, d]


def embedding_backward(idx, grad, num_embeddings):
    """dL/dweight (num_embeddings, D): the rows of grad (..., D) summed by int idx (...)."""
    g2 = _rows(grad)
    dweight = np.zeros((num_embeddings, g2.shape[1]), g2.dtype)
    _embedding_bwd(_ints(idx), g2, dweight)
    return dweight


# ---------------------------------------------------------------------------------------------
# optimizer: one pass over each parameter's four arrays, in place (NumPy makes ~10 passes)


@njit(nogil=True, cache=True, error_model="numpy")
def _adamw(p, g, m, v, decay, one_minus_b1, b2, one_minus_b2, step_size, inv_bc2_sqrt, eps):
    # Every scalar comes in the arrays' dtype: a literal such as `1 - b1` would be float64
    # and turn float32 work into float64 (3x slower). No fastmath: with it the float32
    # update drifted up to 18 ulps from PyTorch's in 20 steps, without it at most 1 ulp.
    for i in range(p.size):
        gi = g[i]
        mi = m[i] + one_minus_b1 * (gi - m[i])  # lerp(m, g, 1 - beta1), as PyTorch
        vi = b2 * v[i] + one_minus_b2 * gi * gi
        m[i] = mi
        v[i] = vi
        p[i] = p[i] * decay - step_size * mi / (math.sqrt(vi) * inv_bc2_sqrt + eps)


def adamw_step(params, grads, exp_avgs, exp_avg_sqs, lr, beta1, beta2, eps, weight_decay, step):
    """One in-place AdamW update of lists of arrays, exactly PyTorch's formula. Returns None."""
    for p, g, m, v in zip(params, grads, exp_avgs, exp_avg_sqs, strict=True):
        if not (p.flags.c_contiguous and m.flags.c_contiguous and v.flags.c_contiguous):
            reference.adamw_step([p], [g], [m], [v], lr, beta1, beta2, eps, weight_decay, step)
            continue
        f = p.dtype.type
        p1, m1, v1 = p.reshape(-1), m.reshape(-1), v.reshape(-1)
        g1 = _c(np.asarray(g, dtype=p.dtype)).reshape(-1)
        scalars = (f(1 - lr * weight_decay), f(1 - beta1), f(beta2), f(1 - beta2),
                   f(lr / (1 - beta1**step)), f(1 / math.sqrt(1 - beta2**step)), f(eps))
        _split(p.size, p.size, _sliced(_adamw, (p1, g1, m1, v1), scalars))


# Each kernel that `_split` may run on Numba's threads, and the twin that does it.
_PARALLEL_TWIN = {
    _attn_softmax: _attn_softmax_parallel,
    _attn_softmax_backward: _attn_softmax_backward_parallel,
    _qkv_heads: _qkv_heads_parallel,
    _gelu_erf_f32: _gelu_erf_f32_parallel,
    _gelu_tanh_f32: _gelu_tanh_f32_parallel,
    _gelu_f64: _gelu_f64_parallel,
}

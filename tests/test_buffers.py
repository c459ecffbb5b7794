"""The fast kernels' reused buffers: a block is handed out again only once nothing uses it."""

import os
import threading

import numpy as np
import pytest

from minigrad.kernels import buffers, fast

BIG = (256, 1024)  # 1 MiB of float32: above buffers.MIN_BYTES


def address(a):
    return a.__array_interface__["data"][0]


@pytest.fixture(autouse=True)
def empty_pool():
    buffers.clear()
    yield
    buffers.clear()


def test_a_freed_block_is_reused():
    a = buffers.empty(BIG, np.float32)
    where = address(a)
    del a
    b = buffers.empty(BIG, np.float32)
    assert address(b) == where
    assert b.shape == BIG and b.dtype == np.float32 and b.flags.c_contiguous


def test_a_block_in_use_is_not_handed_out_even_through_a_view():
    a = buffers.empty(BIG, np.float32)
    a[...] = 1.0
    view = a.T[3:]  # the view alone keeps the block in use
    del a
    b = buffers.empty(BIG, np.float32)
    b[...] = 2.0
    assert not np.shares_memory(view, b)
    assert (view == 1.0).all()


def test_same_bytes_other_dtype_and_shape_reuse_the_block():
    a = buffers.empty((512, 512), np.float32)
    where = address(a)
    del a
    b = buffers.empty((256, 256, 2), np.float64)  # 1 MiB too
    assert address(b) == where and b.dtype == np.float64 and b.shape == (256, 256, 2)


def test_small_arrays_are_plain_numpy():
    a = buffers.empty((4, 4), np.float32)
    assert a.base is None
    assert buffers.cached_bytes() == (0, 0)


def test_free_bytes_stay_within_the_most_ever_in_use():
    # One array in use at a time, each of a new size (as generation with a growing T):
    # when it makes a block, the pool keeps no more free bytes than the most ever in use,
    # so it ends with at most the last block plus that.
    sizes = [(256, 1024 + 64 * i) for i in range(20)]
    for shape in sizes:
        a = buffers.empty(shape, np.float32)
        a[...] = 0
        del a
    in_use, free = buffers.cached_bytes()
    assert in_use == 0
    assert free <= 2 * 4 * 256 * (1024 + 64 * 19)
    assert free < sum(4 * r * c for r, c in sizes) / 4


def test_clear_keeps_blocks_in_use():
    a = buffers.empty(BIG, np.float32)
    b = buffers.empty(BIG, np.float32)
    del b
    buffers.clear()
    assert buffers.cached_bytes() == (a.nbytes, 0)


def test_kernel_outputs_do_not_overwrite_a_result_still_held():
    rng = np.random.default_rng(0)
    x, w = rng.standard_normal((2, 512, 256), dtype=np.float32)
    first = fast.matmul(x, w.T)
    want = x.astype(np.float64) @ w.T.astype(np.float64)
    for _ in range(3):
        fast.matmul(w, x.T)  # same output size, while `first` is alive
    np.testing.assert_allclose(first, want, rtol=1e-4, atol=1e-4)


def test_threads_never_share_a_block():
    seen, errors = [], []

    def work(value):
        for _ in range(50):
            a = buffers.empty(BIG, np.float32)
            a[...] = value
            seen.append(address(a))
            if not (a == value).all():
                errors.append(value)

    workers = [threading.Thread(target=work, args=(v,)) for v in range(4)]
    for t in workers:
        t.start()
    for t in workers:
        t.join()
    assert not errors
    # Blocks were reused: each thread holds at most two at once (the new array is made
    # before the name lets go of the old one).
    assert len(set(seen)) <= 8


def test_release_buffers_gives_back_the_free_blocks():
    from minigrad import kernels

    kept = buffers.empty(BIG, np.float32)
    freed = buffers.empty(BIG, np.float32)
    del freed
    assert buffers.cached_bytes() == (kept.nbytes, kept.nbytes)
    kernels.release_buffers()
    assert buffers.cached_bytes() == (kept.nbytes, 0)


def _rss_mib():
    with open("/proc/self/status") as status:
        return int(next(line for line in status if line.startswith("VmRSS:")).split()[1]) / 1024


@pytest.mark.skipif(not os.path.exists("/proc/self/status"), reason="reads Linux's /proc")
def test_a_released_block_goes_back_to_the_operating_system():
    # From malloc it would not: once a large array was freed, glibc serves arrays up to that
    # size from its heap, and memory below a live allocation there stays with the process.
    warm = np.ones((4, 1024, 1024), np.float32)  # 16 MiB, freed: glibc's threshold rises
    del warm
    blocks = [buffers.empty((1024, 1024), np.float32) for _ in range(12)]  # 4 MiB each
    for block in blocks:
        block[...] = 1.0  # fault the pages in
    pin = np.ones((1024, 1024), np.float32)  # made after the blocks, alive throughout
    held = _rss_mib()
    del block, blocks
    buffers.clear()
    assert _rss_mib() < held - 36
    assert pin.sum() == 1024 * 1024


@pytest.mark.skipif(buffers._malloc_trim is None or not os.path.exists("/proc/self/status"),
                    reason="glibc's malloc_trim and Linux's /proc")
def test_release_buffers_gives_back_the_heap_s_free_memory():
    from minigrad import kernels

    # 40 MiB of small arrays (malloc's heap, below its mmap threshold), freed below one
    # that stays: free() alone cannot give that memory back, as after a checkpoint.
    small = [np.ones(100 * 1024 // 8) for _ in range(400)]
    pin = np.ones(100 * 1024 // 8)
    held = _rss_mib()
    del small
    assert _rss_mib() > held - 8
    kernels.release_buffers()
    assert _rss_mib() < held - 30
    assert pin.sum() == 100 * 1024 // 8

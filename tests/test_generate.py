"""GPT.generate with the key/value cache: the same ids and logits as without it (past
block_size too, where the window slides), no graph, and the seeded sampler."""

import numpy as np
import pytest
from minigrad.models.gpt import GPT, GPTConfig, KVCache

import minigrad as mg

TINY = dict(vocab_size=11, block_size=8, n_layer=2, n_head=2, n_embd=16)


def tiny_gpt(seed=0, **overrides):
    mg.manual_seed(seed)
    model = GPT(GPTConfig(**{**TINY, **overrides}))
    model.eval()
    return model


@pytest.mark.parametrize("pos_encoding", ["learned", "sinusoidal"])
@pytest.mark.parametrize("top_k", [None, 3])
@pytest.mark.parametrize("prompt_len", [1, 5, 8, 13])  # shorter than, equal to, past block
def test_cache_gives_the_ids_of_no_cache(pos_encoding, top_k, prompt_len):
    model = tiny_gpt(pos_encoding=pos_encoding, bias=pos_encoding == "learned")
    prompt = np.random.default_rng(prompt_len).integers(0, 11, size=(3, prompt_len))
    runs = []
    for use_cache in (True, False):
        mg.manual_seed(7)
        runs.append(model.generate(prompt, 25, temperature=1.3, top_k=top_k,
                                   use_cache=use_cache).data)
    assert runs[0].shape == (3, prompt_len + 25)
    np.testing.assert_array_equal(runs[0], runs[1])
    np.testing.assert_array_equal(runs[0][:, :prompt_len], prompt)


def test_cached_logits_equal_the_forward_pass_at_every_step():
    """In float64, every step's logits agree with a full forward of the cropped window, while
    the window fills and after it slides (each id then moves to the position before)."""
    model = tiny_gpt().double()
    ids = np.random.default_rng(1).integers(0, 11, size=(2, 20))
    cache = None
    with mg.no_grad():
        for t in range(3, 20):
            if cache is not None and cache.length < 8:
                got = model._cached_logits(ids[:, t - 1:t], cache)
            else:
                cache = KVCache(model.config, 2, np.float64)
                got = model._cached_logits(ids[:, max(0, t - 8):t], cache)
            want = model(ids[:, max(0, t - 8):t])[0].data[:, -1]
            np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-12)
            assert cache.length == min(t, 8)


def test_a_chunk_after_the_cache_attends_causally():
    """Several new ids at once after cached ones: each sees the cache and the new ids up to
    itself, as in one forward of the whole sequence."""
    model = tiny_gpt().double()
    ids = np.random.default_rng(2).integers(0, 11, size=(2, 7))
    cache = KVCache(model.config, 2, np.float64)
    with mg.no_grad():
        model._cached_logits(ids[:, :3], cache)
        for end in (5, 7):  # ids 3..4, then 5..6
            got = model._cached_logits(ids[:, cache.length:end], cache)
            np.testing.assert_allclose(got, model(ids[:, :end])[0].data[:, -1], rtol=1e-10)


def test_cache_runs_without_graph_and_leaves_grad_mode_alone():
    model = tiny_gpt()
    calls = []
    original = model._cached_logits

    def spy(ids, cache):
        calls.append(mg.is_grad_enabled())
        logits = original(ids, cache)
        assert isinstance(logits, np.ndarray)
        assert all(isinstance(a, np.ndarray) for a in cache.keys + cache.values)
        return logits

    model._cached_logits = spy
    steps = model.stream(np.zeros((1, 1), dtype=np.int64), 8)  # 1 + 7 ids fit block_size 8
    next(steps)
    assert mg.is_grad_enabled()  # between steps, the caller's mode is untouched
    list(steps)
    assert calls == [False] * 8
    assert all(p.grad is None for p in model.parameters())


def test_cache_with_dropout_in_eval_mode_matches():
    model = tiny_gpt(dropout=0.3)
    runs = []
    for use_cache in (True, False):
        mg.manual_seed(3)
        runs.append(model.generate(np.ones((2, 2), dtype=np.int64), 15, use_cache=use_cache))
    np.testing.assert_array_equal(runs[0].data, runs[1].data)


def test_negative_max_new_tokens_is_refused():
    with pytest.raises(ValueError, match="max_new_tokens"):
        tiny_gpt().generate(np.zeros((1, 1), dtype=np.int64), -1)

"""The GPT against a PyTorch model of the same layout (tests/torch_gpt.py), and its behaviour:
init, errors, sinusoidal positions, optimizer groups, overfitting, generation."""

import math

import numpy as np
import pytest
import torch
from minigrad.models.gpt import GPT, GPTConfig, sinusoidal_positions

import minigrad as mg
from minigrad import optim
from tests.torch_gpt import TorchGPT, from_minigrad

TINY = dict(vocab_size=11, block_size=8, n_layer=2, n_head=2, n_embd=16)


def tiny_gpt(seed=0, **overrides):
    mg.manual_seed(seed)
    return GPT(GPTConfig(**{**TINY, **overrides}))


def batch(rng, B=3, T=8, vocab=11):
    x = rng.integers(0, vocab, size=(B, T))
    y = rng.integers(0, vocab, size=(B, T))
    return x, y


def test_state_dict_keys_and_shapes_match_nanogpt():
    model = GPT(GPTConfig())  # the baby GPT: 65 chars, 64 block, 4 layers, 4 heads, 128
    ref = TorchGPT(65, 64, 4, 4, 128)
    ours = {k: v.shape for k, v in model.state_dict().items()}
    theirs = {k: tuple(v.shape) for k, v in ref.state_dict().items()}
    assert list(ours) == list(theirs)
    assert ours == theirs
    assert "lm_head.weight" in ours and "transformer.wte.weight" in ours


def test_tied_weights_are_one_parameter():
    model = tiny_gpt()
    assert model.lm_head.weight is model.transformer.wte.weight
    names = [n for n, _ in model.named_parameters()]
    assert "lm_head.weight" not in names  # listed once, under its first name
    sd = model.state_dict()
    np.testing.assert_array_equal(sd["lm_head.weight"], sd["transformer.wte.weight"])


def test_logits_loss_and_every_gradient_match_torch_float64():
    model = tiny_gpt().double()
    ref = from_minigrad(model)
    x, y = batch(np.random.default_rng(0))
    y[0, :3] = -1  # ignored targets

    logits, loss = model(x, y)
    loss.backward()
    ref_logits, ref_loss = ref(torch.from_numpy(x), torch.from_numpy(y))
    ref_loss.backward()

    assert logits.shape == (3, 8, 11) and logits.dtype == np.float64
    np.testing.assert_allclose(logits.data, ref_logits.detach().numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(loss.item(), ref_loss.item(), rtol=1e-12)
    ref_params = dict(ref.named_parameters(remove_duplicate=False))
    for name, p in model.named_parameters():
        assert p.grad is not None, name
        np.testing.assert_allclose(p.grad, ref_params[name].grad.numpy(), rtol=1e-8,
                                   atol=1e-12, err_msg=name)


def test_float32_forward_matches_torch():
    model = tiny_gpt()
    ref = from_minigrad(model)
    x, y = batch(np.random.default_rng(1))
    logits, loss = model(x, y)
    assert logits.dtype == np.float32
    ref_logits, ref_loss = ref(torch.from_numpy(x), torch.from_numpy(y))
    np.testing.assert_allclose(logits.data, ref_logits.detach().numpy(), atol=1e-5)
    assert abs(loss.item() - ref_loss.item()) < 1e-5


def test_no_targets_gives_full_logits_and_no_loss():
    model = tiny_gpt()
    logits, loss = model(np.zeros((2, 5), dtype=np.int64))
    assert logits.shape == (2, 5, 11) and loss is None


def test_init_follows_nanogpt():
    model = GPT(GPTConfig(n_layer=8, n_embd=256))
    sd = model.state_dict()
    proj_std = 0.02 / math.sqrt(2 * 8)
    for name, value in sd.items():
        if name.endswith("c_proj.weight"):
            assert abs(value.std() - proj_std) < 0.1 * proj_std, name
        elif name.endswith(("c_attn.weight", "c_fc.weight", "wte.weight", "wpe.weight")):
            assert abs(value.std() - 0.02) < 0.002, name
        elif name.endswith("bias"):
            assert not value.any(), name
        elif "ln_" in name:
            np.testing.assert_array_equal(value, 1.0)


def test_loss_at_init_is_ln_vocab():
    mg.manual_seed(0)
    model = GPT(GPTConfig())  # vocab 65
    x, y = batch(np.random.default_rng(0), B=4, T=64, vocab=65)
    _, loss = model(x, y)
    assert abs(loss.item() - math.log(65)) < 0.1


def test_bad_inputs_raise_value_error_naming_the_limits():
    model = tiny_gpt()
    with pytest.raises(ValueError, match=r"sequence length 9 exceeds block_size 8"):
        model(np.zeros((1, 9), dtype=np.int64))
    with pytest.raises(ValueError, match=r"\[0, vocab_size=11\).*\[11\]"):
        model(np.array([[0, 11, 3]]))
    with pytest.raises(ValueError, match=r"-1"):
        model(np.full((1, 4), -1))
    with pytest.raises(ValueError, match="divisible"):
        GPTConfig(n_embd=10, n_head=4)
    with pytest.raises(ValueError, match="pos_encoding"):
        GPTConfig(pos_encoding="rotary")


def test_sinusoidal_positions():
    table = sinusoidal_positions(10, 6)
    pos, i = 3, 1  # dims 2 and 3 share the angle pos / 10000^(2/6)
    angle = pos / 10000 ** (2 * i / 6)
    assert table[pos, 2 * i] == pytest.approx(math.sin(angle), abs=1e-6)
    assert table[pos, 2 * i + 1] == pytest.approx(math.cos(angle), abs=1e-6)
    assert sinusoidal_positions(4, 5).shape == (4, 5)  # odd widths work too

    model = tiny_gpt(pos_encoding="sinusoidal")
    assert not any("wpe" in k for k in model.state_dict())
    x, y = batch(np.random.default_rng(0))
    _, loss = model(x, y)
    loss.backward()
    assert all(p.grad is not None for p in model.parameters())
    _, loss64 = model.double()(x, y)  # the table follows the model's dtype
    assert loss64.dtype == np.float64


def test_configure_optimizers_groups():
    model = tiny_gpt()
    opt = model.configure_optimizers(0.1, 1e-3, (0.9, 0.99))
    decay, no_decay = opt.param_groups
    assert decay["weight_decay"] == 0.1 and no_decay["weight_decay"] == 0.0
    assert all(p.ndim >= 2 for p in decay["params"])
    assert all(p.ndim < 2 for p in no_decay["params"])
    n = sum(p.size for g in opt.param_groups for p in g["params"])
    assert n == model.num_parameters()  # the tied weight once
    assert opt.param_groups[0]["betas"] == (0.9, 0.99)


def test_tiny_model_overfits_one_batch():
    model = tiny_gpt(seed=3, vocab_size=16, block_size=16, n_embd=32)
    x, y = batch(np.random.default_rng(0), B=4, T=16, vocab=16)
    opt = model.configure_optimizers(0.0, 3e-3, (0.9, 0.99))
    for _ in range(300):
        _, loss = model(x, y)
        loss.backward()
        optim.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad()
        if loss.item() < 0.1:
            break
    assert loss.item() < 0.1


def test_generate_top_k_1_is_greedy():
    model = tiny_gpt()
    prompt = np.array([[1, 2, 3], [4, 5, 6]])
    out = model.generate(prompt, 12, temperature=0.7, top_k=1)  # longer than block_size
    ids = prompt.copy()
    for _ in range(12):
        logits, _ = model(ids[:, -8:])
        ids = np.concatenate([ids, logits.data[:, -1].argmax(-1)[:, None]], axis=1)
    assert isinstance(out, mg.Tensor) and out.dtype == np.int64
    np.testing.assert_array_equal(out.data, ids)


def test_generate_is_seeded_and_respects_top_k():
    model = tiny_gpt()
    prompt = np.zeros((4, 1), dtype=np.int64)
    mg.manual_seed(5)
    a = model.generate(prompt, 20, top_k=3).data
    mg.manual_seed(5)
    b = model.generate(prompt, 20, top_k=3).data
    np.testing.assert_array_equal(a, b)
    assert a.shape == (4, 21) and a.min() >= 0 and a.max() < 11
    # Every sampled id is among the 3 most likely at its step.
    for t in range(1, 21):
        logits, _ = model(a[:, max(0, t - 8):t])
        top3 = np.argsort(logits.data[:, -1], axis=-1)[:, -3:]
        assert all(a[i, t] in top3[i] for i in range(4))
    with pytest.raises(ValueError, match="temperature"):
        model.generate(prompt, 1, temperature=0.0)


def test_generate_builds_no_graph_and_leaves_grad_mode_alone():
    model = tiny_gpt()
    steps = model.stream(np.zeros((1, 1), dtype=np.int64), 3)
    next(steps)
    assert mg.is_grad_enabled()  # between steps, the caller's mode is untouched
    logits, _ = model(np.zeros((1, 2), dtype=np.int64))
    assert logits.requires_grad
    calls = []
    original = model.forward

    def spy(idx, targets=None):
        calls.append(mg.is_grad_enabled())
        return original(idx, targets)

    model.forward = spy
    model.generate(np.zeros((1, 1), dtype=np.int64), 3, use_cache=False)
    assert calls == [False, False, False]

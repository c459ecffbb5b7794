"""Tests for minigrad.nn: layers against PyTorch (float64, same weights), Module mechanics."""

import math

import numpy as np
import pytest
import torch

import minigrad as mg
import minigrad.nn as nn

RTOL, ATOL = 1e-10, 1e-12


def t64(array, requires_grad=False):
    return torch.tensor(np.asarray(array), dtype=torch.float64, requires_grad=requires_grad)


def mg64(array, requires_grad=False):
    return mg.Tensor(np.asarray(array, dtype=np.float64), requires_grad=requires_grad)


def copy_weights(ours, theirs):
    """Make both float64 and copy the torch module's parameters into ours (same names)."""
    theirs.double()
    ours.double()
    ours.load_state_dict({k: v.detach().numpy() for k, v in theirs.state_dict().items()})


def check_against_torch(ours, theirs, x, **kwargs):
    """Forward and backward through both with the same input and upstream gradient; compare
    outputs, the input gradient and every parameter gradient."""
    rng = np.random.default_rng(0)
    xm, xt = mg64(x, True), t64(x, True)
    ym, yt = ours(xm, **kwargs), theirs(xt, **kwargs)
    np.testing.assert_allclose(ym.data, yt.detach().numpy(), rtol=RTOL, atol=ATOL)
    upstream = rng.standard_normal(yt.shape)
    ym.backward(upstream)
    yt.backward(t64(upstream))
    np.testing.assert_allclose(xm.grad, xt.grad.numpy(), rtol=1e-9, atol=1e-11)
    grads = dict(theirs.named_parameters())
    names = [name for name, _ in ours.named_parameters()]
    assert names == list(grads)
    for name, p in ours.named_parameters():
        np.testing.assert_allclose(p.grad, grads[name].grad.numpy(), rtol=1e-9, atol=1e-11,
                                   err_msg=name)


@pytest.fixture(autouse=True)
def seeded():
    mg.manual_seed(0)
    torch.manual_seed(0)


# ----- layers vs torch ----------------------------------------------------------------------
@pytest.mark.parametrize("bias", [True, False])
def test_linear_matches_torch(bias):
    ours, theirs = nn.Linear(5, 3, bias=bias), torch.nn.Linear(5, 3, bias=bias)
    copy_weights(ours, theirs)
    check_against_torch(ours, theirs, np.random.default_rng(1).standard_normal((2, 4, 5)))


def test_linear_init_shapes_and_bounds():
    layer = nn.Linear(16, 4)
    assert layer.weight.shape == (4, 16) and layer.bias.shape == (4,)
    assert layer.weight.dtype == np.float32 and layer.weight.requires_grad
    bound = 1 / math.sqrt(16)
    assert np.abs(layer.weight.data).max() <= bound and np.abs(layer.bias.data).max() <= bound
    assert np.abs(layer.weight.data).max() > 0.5 * bound  # really drawn, not zeros


def test_init_is_seeded():
    mg.manual_seed(3)
    a = nn.Linear(4, 4).weight.data.copy()
    mg.manual_seed(3)
    np.testing.assert_array_equal(nn.Linear(4, 4).weight.data, a)


@pytest.mark.parametrize("bias", [True, False])
def test_layernorm_matches_torch(bias):
    ours, theirs = nn.LayerNorm(6, bias=bias), torch.nn.LayerNorm(6, bias=bias)
    with torch.no_grad():
        theirs.weight.normal_()
        if bias:
            theirs.bias.normal_()
    copy_weights(ours, theirs)
    assert (ours.bias is None) == (not bias)
    check_against_torch(ours, theirs, np.random.default_rng(2).standard_normal((3, 4, 6)))


def test_layernorm_default_init():
    ln = nn.LayerNorm(4)
    np.testing.assert_array_equal(ln.weight.data, np.ones(4))
    np.testing.assert_array_equal(ln.bias.data, np.zeros(4))


def test_embedding_matches_torch():
    ours, theirs = nn.Embedding(10, 4), torch.nn.Embedding(10, 4)
    copy_weights(ours, theirs)
    idx = np.array([[1, 2, 2], [9, 0, 1]])
    ym, yt = ours(mg.Tensor(idx)), theirs(torch.tensor(idx))
    np.testing.assert_allclose(ym.data, yt.detach().numpy(), rtol=RTOL)
    upstream = np.random.default_rng(3).standard_normal(yt.shape)
    ym.backward(upstream)
    yt.backward(t64(upstream))
    np.testing.assert_allclose(ours.weight.grad, theirs.weight.grad.numpy(), rtol=RTOL)


def test_embedding_bad_ids():
    emb = nn.Embedding(5, 2)
    with pytest.raises(IndexError, match=r"\[0, 5\).*7"):
        emb(mg.Tensor(np.array([1, 7])))
    with pytest.raises(IndexError, match="-1"):
        emb(mg.Tensor(np.array([-1])))


@pytest.mark.parametrize("approximate", ["none", "tanh"])
def test_gelu_matches_torch(approximate):
    x = np.random.default_rng(4).standard_normal((3, 7)) * 3
    check_against_torch(nn.GELU(approximate), torch.nn.GELU(approximate), x)


def test_relu_matches_torch():
    x = np.random.default_rng(5).standard_normal((4, 5))
    check_against_torch(nn.ReLU(), torch.nn.ReLU(), x)


def test_dropout_eval_is_identity_and_train_scales():
    drop = nn.Dropout(0.25)
    x = mg.ones(200, 100, dtype=np.float64)
    drop.eval()
    np.testing.assert_array_equal(drop(x).data, x.data)
    drop.train()
    y = drop(x).data
    assert set(np.unique(y)) <= {0.0, 1 / 0.75}
    assert abs((y == 0).mean() - 0.25) < 0.02
    with pytest.raises(ValueError, match="p must be in"):
        nn.Dropout(1.5)


# ----- attention ----------------------------------------------------------------------------
class TorchCausalSelfAttention(torch.nn.Module):
    """nanoGPT's CausalSelfAttention layout (c_attn, c_proj), written out with explicit math
    and an optional extra bool mask."""

    def __init__(self, n_embd, n_head, bias=True, causal=True):
        super().__init__()
        self.c_attn = torch.nn.Linear(n_embd, 3 * n_embd, bias=bias)
        self.c_proj = torch.nn.Linear(n_embd, n_embd, bias=bias)
        self.n_head, self.n_embd, self.causal = n_head, n_embd, causal

    def forward(self, x, attn_mask=None):
        B, T, C = x.size()
        q, k, v = self.c_attn(x).split(self.n_embd, dim=2)
        k = k.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)
        q = q.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)
        v = v.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)
        att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(k.size(-1)))
        if self.causal:
            att = att.masked_fill(~torch.ones(T, T, dtype=torch.bool).tril(), float("-inf"))
        if attn_mask is not None:
            att = att.masked_fill(~torch.as_tensor(attn_mask), float("-inf"))
        att = torch.softmax(att, dim=-1)
        y = (att @ v).transpose(1, 2).contiguous().view(B, T, C)
        return self.c_proj(y)


def random_mask(T, seed):
    """A bool (T, T) mask with at least one allowed key per query (the diagonal)."""
    mask = np.random.default_rng(seed).random((T, T)) < 0.6
    mask[np.arange(T), np.arange(T)] = True
    return mask


@pytest.mark.parametrize("causal,use_mask", [(True, False), (False, True), (True, True)])
def test_attention_matches_torch(causal, use_mask):
    B, T, C, nh = 2, 5, 12, 3
    ours = nn.MultiHeadAttention(C, nh, causal=causal)
    theirs = TorchCausalSelfAttention(C, nh, causal=causal)
    copy_weights(ours, theirs)
    x = np.random.default_rng(6).standard_normal((B, T, C))
    kwargs = {"attn_mask": random_mask(T, 7)} if use_mask else {}
    check_against_torch(ours, theirs, x, **kwargs)


class NormedLinear(nn.Module):
    def __init__(self, bias):
        super().__init__()
        self.ln = nn.LayerNorm(5, bias=bias)
        self.fc = nn.Linear(5, 3, bias=bias)

    def forward(self, x):
        return self.fc(x, norm=self.ln)


class TorchNormedLinear(torch.nn.Module):
    def __init__(self, bias):
        super().__init__()
        self.ln = torch.nn.LayerNorm(5, bias=bias)
        self.fc = torch.nn.Linear(5, 3, bias=bias)

    def forward(self, x):
        return self.fc(self.ln(x))


def _randomize(module):
    with torch.no_grad():  # LayerNorm starts at ones and zeros: make every gradient count
        for p in module.parameters():
            p.copy_(torch.randn_like(p))


@pytest.mark.parametrize("bias", [True, False])
def test_linear_with_norm_matches_torch_layer_norm_then_linear(bias):
    ours, theirs = NormedLinear(bias), TorchNormedLinear(bias)
    _randomize(theirs)
    copy_weights(ours, theirs)
    check_against_torch(ours, theirs, np.random.default_rng(2).standard_normal((2, 4, 5)))


class NormedAttention(nn.Module):
    def __init__(self, C, nh):
        super().__init__()
        self.ln = nn.LayerNorm(C)
        self.attn = nn.MultiHeadAttention(C, nh, causal=True)

    def forward(self, x):
        return self.attn(x, norm=self.ln)


class TorchNormedAttention(torch.nn.Module):
    def __init__(self, C, nh):
        super().__init__()
        self.ln = torch.nn.LayerNorm(C)
        self.attn = TorchCausalSelfAttention(C, nh, causal=True)

    def forward(self, x):
        return self.attn(self.ln(x))


def test_attention_with_norm_matches_torch_layer_norm_then_attention():
    ours, theirs = NormedAttention(12, 3), TorchNormedAttention(12, 3)
    _randomize(theirs)
    copy_weights(ours, theirs)
    check_against_torch(ours, theirs, np.random.default_rng(8).standard_normal((2, 5, 12)))


def test_fused_pairs_keep_for_backward_their_input_not_the_middle():
    # what makes them worth having: the normalised rows and the GELU's output are not
    # held from forward to backward (study mode runs the two ops, each its own node)
    ln, fc, proj = nn.LayerNorm(8), nn.Linear(8, 32), nn.Linear(32, 8)
    x = mg.randn(6, 8, requires_grad=True)
    h = fc(x, norm=ln)
    assert h.grad_fn.name == "LayerNormLinear"
    saved = h.grad_fn.saved_tensors
    assert saved[0] is x.data
    assert [a.shape for a in saved[1:]] == [(8,), (8,), (6, 1), (6, 1), (32, 8)]
    y = mg.functional.gelu_linear(h, proj.weight, proj.bias)
    assert y.grad_fn.name == "GeluLinear"
    hidden, weight = y.grad_fn.saved_tensors
    assert np.shares_memory(hidden, h.data) and weight is proj.weight.data
    with mg.study_mode():
        h = fc(x, norm=ln)
        y = mg.functional.gelu_linear(h, proj.weight, proj.bias)
    assert [h.grad_fn.name, y.grad_fn.name] == ["Linear", "Linear"]


def test_attention_without_bias_state_dict_matches_torch():
    ours = nn.MultiHeadAttention(8, 2, bias=False, causal=True)
    theirs = TorchCausalSelfAttention(8, 2, bias=False)
    assert {k: v.shape for k, v in ours.state_dict().items()} == \
        {k: tuple(v.shape) for k, v in theirs.state_dict().items()}


def test_attention_weights_rows_sum_to_one_and_mask_is_exact():
    B, T, C, nh = 2, 6, 8, 2
    att = nn.MultiHeadAttention(C, nh, causal=True)
    att.need_weights = True
    mask = random_mask(T, 8)
    att(mg.randn(B, T, C), attn_mask=mask)
    w = att.attn_weights
    assert isinstance(w, np.ndarray) and w.shape == (B, nh, T, T)
    np.testing.assert_allclose(w.sum(-1), 1.0, rtol=1e-6)
    allowed = np.tril(np.ones((T, T), bool)) & mask
    assert np.all(w[..., ~allowed] == 0.0)
    assert np.all(w[..., allowed] > 0.0)


def test_attention_weights_match_torch_probs():
    B, T, C, nh = 1, 4, 8, 2
    ours = nn.MultiHeadAttention(C, nh, causal=True)
    ours.need_weights = True
    theirs = torch.nn.MultiheadAttention(C, nh, batch_first=True, dtype=torch.float64)
    copy_weights(ours, TorchCausalSelfAttention(C, nh))  # make ours float64
    with torch.no_grad():
        theirs.in_proj_weight.copy_(torch.from_numpy(ours.c_attn.weight.data))
        theirs.in_proj_bias.copy_(torch.from_numpy(ours.c_attn.bias.data))
    x = np.random.default_rng(9).standard_normal((B, T, C))
    ours(mg64(x))
    causal = torch.ones(T, T, dtype=torch.bool).triu(1)  # torch: True = masked out
    _, w = theirs(t64(x), t64(x), t64(x), attn_mask=causal, average_attn_weights=False)
    np.testing.assert_allclose(ours.attn_weights, w.detach().numpy(), rtol=1e-10, atol=1e-12)


def test_attention_dropout_only_in_training():
    att = nn.MultiHeadAttention(8, 2, dropout=0.5, causal=True)
    x = mg.randn(2, 4, 8)
    att.eval()
    np.testing.assert_array_equal(att(x).data, att(x).data)
    att.train()
    assert not np.array_equal(att(x).data, att(x).data)


def test_attention_validation():
    with pytest.raises(ValueError, match=r"embed_dim=10.*num_heads=3"):
        nn.MultiHeadAttention(10, 3)
    att = nn.MultiHeadAttention(8, 2)
    with pytest.raises(ValueError, match=r"MultiHeadAttention.*\(B, T, 8\).*\(2, 8\)"):
        att(mg.randn(2, 8))
    with pytest.raises(ValueError, match=r"\(2, 3, 6\)"):
        att(mg.randn(2, 3, 6))


def test_linear_validation():
    with pytest.raises(ValueError, match=r"Linear\(in_features=4.*\(3, 5\)"):
        nn.Linear(4, 2)(mg.randn(3, 5))


# ----- Module mechanics ---------------------------------------------------------------------
class Block(nn.Module):
    def __init__(self, dim):
        super().__init__()
        self.ln = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(nn.Linear(dim, 2 * dim), nn.GELU(), nn.Linear(2 * dim, dim))
        self.drop = nn.Dropout(0.1)
        self.mask = np.tril(np.ones((3, 3), bool))  # a plain attribute: not in state_dict

    def forward(self, x):
        return x + self.drop(self.mlp(self.ln(x)))


class TinyLM(nn.Module):
    def __init__(self, vocab=7, dim=4, n_layer=2):
        super().__init__()
        self.transformer = nn.ModuleDict(dict(
            wte=nn.Embedding(vocab, dim),
            h=nn.ModuleList([Block(dim) for _ in range(n_layer)]),
            ln_f=nn.LayerNorm(dim, bias=False),
        ))
        self.lm_head = nn.Linear(dim, vocab, bias=False)
        self.transformer.wte.weight = self.lm_head.weight  # tied, as nanoGPT
        self.register_buffer("scale", np.array([2.0], np.float32))

    def forward(self, idx):
        x = self.transformer.wte(idx)
        for block in self.transformer.h:
            x = block(x)
        return self.lm_head(self.transformer.ln_f(x))


class TorchBlock(torch.nn.Module):
    def __init__(self, dim):
        super().__init__()
        self.ln = torch.nn.LayerNorm(dim)
        self.mlp = torch.nn.Sequential(torch.nn.Linear(dim, 2 * dim), torch.nn.GELU(),
                                       torch.nn.Linear(2 * dim, dim))
        self.drop = torch.nn.Dropout(0.1)


class TorchTinyLM(torch.nn.Module):
    def __init__(self, vocab=7, dim=4, n_layer=2):
        super().__init__()
        self.transformer = torch.nn.ModuleDict(dict(
            wte=torch.nn.Embedding(vocab, dim),
            h=torch.nn.ModuleList([TorchBlock(dim) for _ in range(n_layer)]),
            ln_f=torch.nn.LayerNorm(dim, bias=False),
        ))
        self.lm_head = torch.nn.Linear(dim, vocab, bias=False)
        self.transformer.wte.weight = self.lm_head.weight
        self.register_buffer("scale", torch.tensor([2.0]))


def shapes(state):
    return [(k, tuple(np.shape(v))) for k, v in state.items()]


def test_state_dict_names_and_shapes_match_torch():
    ours, theirs = TinyLM(), TorchTinyLM()
    assert shapes(ours.state_dict()) == shapes(theirs.state_dict())
    assert [(k, p.shape) for k, p in ours.named_parameters()] == \
        [(k, tuple(p.shape)) for k, p in theirs.named_parameters()]
    assert ours.num_parameters() == sum(p.numel() for p in theirs.parameters())
    assert "transformer.h.0.mask" not in ours.state_dict()


def test_state_dict_is_a_copy():
    model = TinyLM()
    state = model.state_dict()
    state["lm_head.weight"][...] = 0
    assert np.any(model.lm_head.weight.data != 0)


def test_load_from_torch_and_forward_matches():
    ours, theirs = TinyLM(), TorchTinyLM().eval()
    ours.load_state_dict({k: v.numpy() for k, v in theirs.state_dict().items()})
    ours.eval().double()
    idx = np.array([[0, 3, 6], [1, 1, 2]])
    x = theirs.transformer.wte(torch.tensor(idx))
    for block in theirs.transformer.h:
        x = x + block.mlp(block.ln(x))
    expected = theirs.lm_head(theirs.transformer.ln_f(x)).detach().numpy()
    np.testing.assert_allclose(ours(mg.Tensor(idx)).data, expected, rtol=1e-6, atol=1e-6)


def test_tied_parameters_once_in_parameters_and_stay_tied_after_load():
    model = TinyLM()
    params = list(model.parameters())
    assert len(params) == len({id(p) for p in params})
    names = [n for n, _ in model.named_parameters()]
    assert "transformer.wte.weight" in names and "lm_head.weight" not in names
    state = model.state_dict()
    assert "lm_head.weight" in state and "transformer.wte.weight" in state
    new = np.arange(28, dtype=np.float64).reshape(7, 4)
    state["transformer.wte.weight"] = new
    state["lm_head.weight"] = new
    before = model.lm_head.weight.data
    model.load_state_dict(state)
    assert model.transformer.wte.weight is model.lm_head.weight
    assert model.lm_head.weight.data is before  # copied in place
    assert model.lm_head.weight.dtype == np.float32  # cast to the parameter's dtype
    np.testing.assert_array_equal(model.transformer.wte.weight.data, new)


def test_load_state_dict_accepts_tensors():
    a, b = nn.Linear(3, 2), nn.Linear(3, 2)
    b.load_state_dict({k: mg.Tensor(v) for k, v in a.state_dict().items()})
    np.testing.assert_array_equal(a.weight.data, b.weight.data)


def test_load_state_dict_strict_errors():
    model = nn.Sequential(nn.Linear(3, 2), nn.ReLU(), nn.Linear(2, 1))
    state = model.state_dict()
    missing = {k: v for k, v in state.items() if k != "2.bias"}
    with pytest.raises(RuntimeError, match=r'Missing key\(s\).*"2.bias"'):
        model.load_state_dict(missing)
    with pytest.raises(RuntimeError, match=r'Unexpected key\(s\).*"extra.weight"'):
        model.load_state_dict({**state, "extra.weight": np.zeros(2)})
    wrong = {**state, "0.weight": np.zeros((4, 3))}
    with pytest.raises(RuntimeError, match=r"size mismatch for 0.weight.*\(4, 3\).*\(2, 3\)"):
        model.load_state_dict(wrong)
    # Nothing was modified by the failed loads.
    np.testing.assert_array_equal(model[0].weight.data, state["0.weight"])
    result = model.load_state_dict({**missing, "extra": np.zeros(1)}, strict=False)
    assert result.missing_keys == ["2.bias"] and result.unexpected_keys == ["extra"]
    with pytest.raises(RuntimeError, match="size mismatch"):
        model.load_state_dict(wrong, strict=False)


def test_train_eval_propagate():
    model = TinyLM()
    assert all(m.training for m in model.modules())
    assert model.eval() is model
    assert not any(m.training for m in model.modules())
    model.train()
    assert model.transformer.h[1].drop.training


def test_double_and_float_cast_parameters_and_buffers():
    model = TinyLM().double()
    assert all(p.dtype == np.float64 for p in model.parameters())
    assert model.scale.dtype == np.float64
    assert model.transformer.wte.weight is model.lm_head.weight
    model.float()
    assert all(p.dtype == np.float32 for p in model.state_dict().values())


def test_zero_grad_sets_none():
    layer = nn.Linear(3, 2)
    layer(mg.randn(4, 3)).sum().backward()
    assert layer.weight.grad is not None
    layer.zero_grad()
    assert layer.weight.grad is None and layer.bias.grad is None


def test_modules_children_and_containers():
    model = TinyLM()
    assert [n for n, _ in model.named_children()] == ["transformer", "lm_head"]
    names = [n for n, _ in model.named_modules()]
    assert names[:4] == ["", "transformer", "transformer.wte", "transformer.h"]
    assert "transformer.h.1.mlp.2" in names
    h = model.transformer.h
    assert len(h) == 2 and h[-1] is list(h)[1]
    h.append(Block(4))
    assert "transformer.h.2.ln.weight" in model.state_dict()
    seq = h[0].mlp
    assert len(seq) == 3 and isinstance(seq[1], nn.GELU) and len(seq[1:]) == 2
    assert "wte" in model.transformer and list(model.transformer) == ["wte", "h", "ln_f"]
    with pytest.raises(IndexError):
        h[5]


def test_repr_is_nested_with_layer_args():
    text = repr(TinyLM())
    assert text.startswith("TinyLM(\n  (transformer): ModuleDict(\n    (wte): Embedding(7, 4)")
    assert "(0): Linear(in_features=4, out_features=8, bias=True)" in text
    assert "(ln_f): LayerNorm((4,), eps=1e-05, bias=False)" in text
    assert "(drop): Dropout(p=0.1)" in text
    assert "GELU(approximate='none')" in text


def test_parameter_and_registration_rules():
    p = nn.Parameter(np.zeros(3))
    assert p.requires_grad and p.is_leaf and isinstance(p, mg.Tensor)
    with pytest.raises(TypeError, match="floating"):
        nn.Parameter(np.zeros(3, dtype=np.int64))
    layer = nn.Linear(2, 2)
    with pytest.raises(TypeError, match="parameter 'weight'"):
        layer.weight = mg.zeros(2, 2)

    class Forgot(nn.Module):
        def __init__(self):
            self.w = nn.Parameter(np.zeros(1))

    with pytest.raises(RuntimeError, match="super"):
        Forgot()
    with pytest.raises(TypeError, match="must define forward"):
        nn.Module()(1)


def test_init_functions_in_place():
    p = nn.Parameter(np.empty((100, 50), np.float32))
    assert nn.init.normal_(p, 0.0, 0.02) is p and p.dtype == np.float32
    assert abs(p.data.std() - 0.02) < 0.002
    nn.init.uniform_(p, -1, 1)
    assert -1 <= p.data.min() and p.data.max() <= 1
    nn.init.zeros_(p)
    assert not p.data.any()
    nn.init.ones_(p)
    assert np.all(p.data == 1)

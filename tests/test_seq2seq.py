"""The encoder-decoder Transformer against torch.nn.Transformer in float64 (same weights, plus
the token embedding, positions and tied head written out in torch): logits, loss and every
parameter gradient; padding, generation and errors."""

import math

import numpy as np
import pytest
import torch
from minigrad.models.seq2seq import Seq2Seq, Seq2SeqConfig

import minigrad as mg

PAD, BOS, EOS = 0, 1, 2


def torch_names(config):
    """Our parameter name -> (torch.nn.Transformer name, row slice or None). torch stacks
    q, k, v in in_proj_weight (3C, C); our cross-attention splits it into q_proj (rows
    [0, C)) and kv_proj (rows [C, 3C)). tok_emb.weight (tied to lm_head) and the learned
    position tables live outside torch.nn.Transformer: the test's embedding does them."""
    C = config.n_embd
    names = {}
    sub = {"ln_1": "norm1", "ln_2": "norm2", "ln_3": "norm3", "mlp.c_fc": "linear1",
           "mlp.c_proj": "linear2", "self_attn.c_attn": "self_attn.in_proj",
           "self_attn.c_proj": "self_attn.out_proj", "cross_attn.c_proj": "multihead_attn.out_proj"}
    for stack, layers in (("encoder", ("ln_1", "ln_2", "mlp.c_fc", "mlp.c_proj",
                                        "self_attn.c_attn", "self_attn.c_proj")),
                          ("decoder", ("ln_1", "ln_2", "ln_3", "mlp.c_fc", "mlp.c_proj",
                                       "self_attn.c_attn", "self_attn.c_proj",
                                       "cross_attn.c_proj"))):
        for i in range(config.n_layer):
            for ours in layers:
                theirs = sub[ours]
                for kind in ("weight", "bias"):
                    # torch's fused projection is in_proj_weight / in_proj_bias
                    t_kind = f"_{kind}" if theirs.endswith("in_proj") else f".{kind}"
                    names[f"{stack}.layers.{i}.{ours}.{kind}"] = (
                        f"{stack}.layers.{i}.{theirs}{t_kind}", None)
            if stack == "decoder":
                for kind in ("weight", "bias"):
                    full = f"decoder.layers.{i}.multihead_attn.in_proj_{kind}"
                    names[f"decoder.layers.{i}.cross_attn.q_proj.{kind}"] = (full, slice(0, C))
                    names[f"decoder.layers.{i}.cross_attn.kv_proj.{kind}"] = (
                        full, slice(C, 3 * C))
        names[f"{stack}.ln_f.weight"] = (f"{stack}.norm.weight", None)
        names[f"{stack}.ln_f.bias"] = (f"{stack}.norm.bias", None)
    return names


class TorchSeq2Seq(torch.nn.Module):
    """torch.nn.Transformer with the same embedding, positions and tied head as ours."""

    def __init__(self, config, ours):
        super().__init__()
        self.config = config
        self.tr = torch.nn.Transformer(
            d_model=config.n_embd, nhead=config.n_head, num_encoder_layers=config.n_layer,
            num_decoder_layers=config.n_layer, dim_feedforward=4 * config.n_embd, dropout=0.0,
            activation=config.activation, batch_first=True, norm_first=config.norm_first,
            dtype=torch.float64)
        state = ours.state_dict()
        params = dict(self.tr.named_parameters())
        with torch.no_grad():
            for name, (theirs, rows) in torch_names(config).items():
                target = params[theirs] if rows is None else params[theirs][rows]
                target.copy_(torch.from_numpy(state[name]))
        self.emb = torch.nn.Parameter(torch.from_numpy(state["tok_emb.weight"].copy()))
        if config.pos_encoding == "learned":
            self.src_pos = torch.nn.Parameter(torch.from_numpy(state["src_pos.weight"].copy()))
            self.tgt_pos = torch.nn.Parameter(torch.from_numpy(state["tgt_pos.weight"].copy()))
        else:
            table = torch.from_numpy(ours.pos_table.astype(np.float64))
            self.src_pos = self.tgt_pos = table

    def forward(self, src, tgt_in, targets):
        src, tgt_in = torch.from_numpy(src), torch.from_numpy(tgt_in)
        scale = math.sqrt(self.config.n_embd)
        S, T = src.shape[1], tgt_in.shape[1]
        xs = self.emb[src] * scale + self.src_pos[:S]
        xt = self.emb[tgt_in] * scale + self.tgt_pos[:T]
        causal = torch.ones(T, T, dtype=torch.bool).triu(1)  # torch: True = masked out
        out = self.tr(xs, xt, tgt_mask=causal, src_key_padding_mask=src == PAD,
                      memory_key_padding_mask=src == PAD, tgt_key_padding_mask=tgt_in == PAD,
                      tgt_is_causal=True)
        logits = out @ self.emb.T
        loss = torch.nn.functional.cross_entropy(
            logits.reshape(-1, logits.shape[-1]), torch.from_numpy(targets).reshape(-1),
            ignore_index=PAD)
        return logits, loss


def batch(rng, B, V, S, T):
    """Padded source, decoder input (BOS + target) and targets (target + EOS): rows of
    different lengths, row 0 full length."""
    src = np.full((B, S), PAD)
    tgt_in, targets = np.full((B, T), PAD), np.full((B, T), PAD)
    for b in range(B):
        n_s = S if b == 0 else rng.integers(1, S + 1)
        n_t = T - 1 if b == 0 else rng.integers(1, T)
        src[b, :n_s] = rng.integers(3, V, n_s)
        tgt = rng.integers(3, V, n_t)
        tgt_in[b, 0], tgt_in[b, 1:n_t + 1] = BOS, tgt
        targets[b, :n_t], targets[b, n_t] = tgt, EOS
    return src, tgt_in, targets


@pytest.mark.filterwarnings("ignore:enable_nested_tensor is True")  # torch, pre-LN: harmless
@pytest.mark.parametrize("layout", [
    dict(),  # the defaults: post-LN, sinusoidal, ReLU, final norms
    dict(norm_first=True, pos_encoding="learned"),
    dict(activation="gelu", n_layer=1, bias=True),
])
def test_matches_torch_transformer(layout):
    config = Seq2SeqConfig(**{**dict(vocab_size=11, block_size=9, n_layer=2, n_head=2,
                                     n_embd=8), **layout})
    mg.manual_seed(0)
    ours = Seq2Seq(config).double()
    theirs = TorchSeq2Seq(config, ours)
    rng = np.random.default_rng(1)
    src, tgt_in, targets = batch(rng, 4, config.vocab_size, 7, 6)
    logits, loss = ours(src, tgt_in, targets)
    t_logits, t_loss = theirs(src, tgt_in, targets)
    np.testing.assert_allclose(logits.data, t_logits.detach().numpy(), rtol=1e-9, atol=1e-10)
    np.testing.assert_allclose(loss.item(), t_loss.item(), rtol=1e-12)
    loss.backward()
    t_loss.backward()
    t_params = dict(theirs.tr.named_parameters())
    names = torch_names(config)
    ours_params = dict(ours.named_parameters())
    assert set(ours_params) == set(names) | {"tok_emb.weight"} | (
        {"src_pos.weight", "tgt_pos.weight"} if config.pos_encoding == "learned" else set())
    for name, p in ours_params.items():
        if name in names:
            theirs_name, rows = names[name]
            want = t_params[theirs_name].grad
            want = want if rows is None else want[rows]
        else:
            want = {"tok_emb.weight": theirs.emb, "src_pos.weight": theirs.src_pos,
                    "tgt_pos.weight": theirs.tgt_pos}[name].grad
        np.testing.assert_allclose(p.grad, want.numpy(), rtol=1e-8, atol=1e-10, err_msg=name)


def test_padding_is_ignored():
    """Padded source positions change nothing and get exactly zero gradient; padded
    targets add nothing to the loss."""
    config = Seq2SeqConfig(vocab_size=9, block_size=8, n_layer=1, n_head=2, n_embd=8)
    mg.manual_seed(1)
    model = Seq2Seq(config).double()
    src = np.array([[3, 4, 5, 0, 0]])
    tgt_in, targets = np.array([[1, 5, 4, 3, 0]]), np.array([[5, 4, 3, 2, 0]])
    logits, loss = model(src, tgt_in, targets)
    short, short_loss = model(src[:, :3], tgt_in[:, :4], targets[:, :4])
    np.testing.assert_allclose(logits.data[:, :4], short.data, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(loss.item(), short_loss.item(), rtol=1e-12)
    # the encoder's output at padded positions gets exactly zero gradient
    memory, src_pad = model.encode(src)
    memory.retain_grad()
    model.decode(tgt_in, memory, src_pad).sum().backward()
    assert np.all(memory.grad[0, 3:] == 0.0) and np.all(np.abs(memory.grad[0, :3]).sum(-1) > 0)


def test_generate_greedy_stops_at_eos_and_pads():
    config = Seq2SeqConfig(vocab_size=9, block_size=6, n_layer=1, n_head=2, n_embd=8)
    mg.manual_seed(2)
    model = Seq2Seq(config)
    model.eval()
    src = np.array([[3, 4, 5, 0], [6, 7, 8, 5]])
    out = model.generate(src, max_new_tokens=6, temperature=0.0).data
    assert out.dtype == np.int64 and out.shape[0] == 2 and 1 <= out.shape[1] <= 6
    # greedy = the argmax of a full forward on the prefix, until EOS; then padding
    for b in range(2):
        prefix = [BOS]
        for tok in out[b]:
            if prefix[-1] in (EOS, PAD) and len(prefix) > 1:
                assert tok == PAD
                prefix.append(PAD)
                continue
            logits, _ = model(src[b:b + 1], np.array([prefix]))
            assert tok == int(np.argmax(logits.data[0, -1]))
            prefix.append(int(tok))
    # it stops early only when every row has ended
    assert out.shape[1] == 6 or np.all(np.any(out == EOS, axis=1))


def test_generate_sampling_is_seeded():
    config = Seq2SeqConfig(vocab_size=9, block_size=6, n_layer=1, n_head=2, n_embd=8)
    model = Seq2Seq(config)
    src = np.array([[3, 4, 5, 0]])
    mg.manual_seed(5)
    a = model.generate(src, 6, temperature=1.0, top_k=3).data
    mg.manual_seed(5)
    b = model.generate(src, 6, temperature=1.0, top_k=3).data
    np.testing.assert_array_equal(a, b)


def test_errors_name_the_problem():
    config = Seq2SeqConfig(vocab_size=9, block_size=4, n_layer=1, n_head=2, n_embd=8)
    model = Seq2Seq(config)
    ok = np.array([[3, 4]])
    with pytest.raises(ValueError, match="source length 5 exceeds block_size 4"):
        model(np.array([[3, 4, 5, 6, 7]]), ok)
    with pytest.raises(ValueError, match="target length 5 exceeds block_size 4"):
        model(ok, np.array([[1, 4, 5, 6, 7]]))
    with pytest.raises(ValueError, match=r"source ids must be in \[0, vocab_size=9\), got \[9\]"):
        model(np.array([[3, 9]]), ok)
    with pytest.raises(ValueError, match="source is empty"):
        model(np.zeros((1, 0), np.int64), ok)
    with pytest.raises(TypeError, match="integer token ids"):
        model(np.array([[1.0]]), ok)
    with pytest.raises(ValueError, match="source batch 1 and target batch 2 differ"):
        model(ok, np.array([[1], [1]]))
    with pytest.raises(ValueError, match=r"targets must have shape \(1, 2\)"):
        model(ok, ok, np.array([[1, 2, 3]]))
    with pytest.raises(ValueError, match=r"max_new_tokens must be in \[1, block_size=4\]"):
        model.generate(ok, 5)
    from minigrad.models.errors import ConfigError
    with pytest.raises(ConfigError, match="n_embd must be divisible by n_head=3"):
        Seq2SeqConfig(n_embd=8, n_head=3)
    with pytest.raises(ConfigError, match="pad_id, bos_id and eos_id must differ"):
        Seq2SeqConfig(bos_id=0)


@pytest.mark.parametrize("layout", [dict(), dict(norm_first=True, pos_encoding="learned")])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_generate_with_cache_returns_the_ids_without(layout, seed):
    config = Seq2SeqConfig(**{**dict(vocab_size=12, block_size=10, n_layer=2, n_head=2,
                                     n_embd=16), **layout})
    mg.manual_seed(seed)
    model = Seq2Seq(config)
    model.eval()
    rng = np.random.default_rng(seed)
    src = rng.integers(3, 12, size=(6, 8))
    src[1:, 5:] = PAD  # some padded sources
    for kwargs in (dict(temperature=0.0), dict(temperature=1.3, top_k=4),
                   dict(temperature=2.0)):
        mg.manual_seed(seed + 10)
        cached = model.generate(src, 10, use_cache=True, **kwargs)
        mg.manual_seed(seed + 10)
        full = model.generate(src, 10, use_cache=False, **kwargs)
        np.testing.assert_array_equal(cached.data, full.data)
        assert cached.grad_fn is None and not cached.requires_grad
    # the cache records no graph: no parameter gets a gradient path through it
    assert all(p.grad is None for p in model.parameters())

"""minigrad.viz: the graph in DOT, the backward trace (against PyTorch), explain, the causal
check, and the attention maps and `minigrad attention` command."""

import math
import os
import re
import shutil
from dataclasses import asdict

import numpy as np
import pytest
import torch
from minigrad.models.checkpoint import save_checkpoint
from minigrad.models.data import CharTokenizer
from minigrad.models.gpt import GPT, GPTConfig

import minigrad as mg
import minigrad.ops
from minigrad import nn, viz
from minigrad.cli import main

TINY = dict(vocab_size=12, block_size=12, n_layer=2, n_head=3, n_embd=24)


def tiny_gpt(seed=0, **overrides):
    mg.manual_seed(seed)
    return GPT(GPTConfig(**{**TINY, **overrides}))


def gpt_loss(model, T=8, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.integers(0, model.config.vocab_size, size=(2, T))
    _, loss = model(x, targets=np.roll(x, -1, axis=1))
    return loss


# ----- to_dot -------------------------------------------------------------------------


def test_dot_names_the_ops_shapes_and_parameters():
    model = tiny_gpt()
    loss = gpt_loss(model)
    dot = viz.to_dot(loss, params=dict(model.named_parameters()))
    assert dot.startswith("digraph minigrad {") and dot.rstrip().endswith("}")
    # the GPT's fused ops: a LayerNorm with the projection after it, GELU with c_proj
    for op in ("Embedding", "LayerNormLinear", "Linear", "SelfAttention",
               "GeluLinear", "CrossEntropy", "Add"):
        assert re.search(rf'label="{op}\\n', dot), op
    assert "transformer.h.1.attn.c_attn.weight\\n(72, 24)" in dot
    assert "(2, 8, 12)" in dot  # the logits' shape
    assert "|grad|" not in dot  # before backward there are no gradients
    # One box per op node the backward would visit, one edge per op input.
    order, edges = viz.graph_edges(loss)
    assert dot.count("shape=box") == len(order)
    assert dot.count("->") == len(edges)


def test_dot_in_study_mode_has_the_attention_labels_and_grads_after_backward():
    model = tiny_gpt()
    with viz.trace() as t:
        loss = gpt_loss(model)
        loss.backward()
    dot = viz.to_dot(loss, params=dict(model.named_parameters()), trace=t)
    for name in ("'q'", "'k'", "'v'", "'scores'", "'masked scores'", "'probs'"):
        assert dot.count(name) == model.config.n_layer, name
    assert "ScaledDotProductAttention" not in dot  # study mode runs the composite
    # Every op node now shows the norm of the gradient it received; leaves show theirs.
    assert dot.count("|grad| = ") == dot.count("shape=box") + len(list(model.parameters()))


def test_render_dot_writes_an_svg(tmp_path):
    if shutil.which("dot") is None:
        if os.environ.get("CI"):
            pytest.fail("Graphviz's dot is missing in CI (.ci/run installs Debian's graphviz)")
        pytest.skip("Graphviz is not installed (apt-get install graphviz)")
    x = mg.randn(3, 4, requires_grad=True)
    path = viz.render_dot(viz.to_dot((x.exp() * 2).sum()), tmp_path / "g.svg")
    text = open(path, encoding="utf-8").read()
    assert "<svg" in text and "Exp" in text and "Mul" in text


def test_render_dot_without_graphviz_keeps_the_text(tmp_path, monkeypatch):
    monkeypatch.setattr(viz.graph.shutil, "which", lambda name: None)
    x = mg.randn(3, requires_grad=True)
    assert viz.render_dot(viz.to_dot(x.sum()), tmp_path / "g.png") is None
    assert "Sum" in (tmp_path / "g.png.dot").read_text()


# ----- trace --------------------------------------------------------------------------


def torch_attention_grads(attn, x, w):
    """The MultiHeadAttention's forward written in PyTorch with retain_grad on q, k, v,
    the scores and the probabilities; returns their gradients for L = sum(w * out)."""
    B, T, C = x.shape
    nh = attn.num_heads
    hs = C // nh
    W = {n: torch.tensor(p.data, dtype=torch.float64) for n, p in attn.named_parameters()}
    xt = torch.tensor(x, dtype=torch.float64, requires_grad=True)
    qkv = xt @ W["c_attn.weight"].T + W["c_attn.bias"]
    q, k, v = (t.view(B, T, nh, hs).transpose(1, 2) for t in qkv.split(C, dim=2))
    for t in (q, k, v):
        t.retain_grad()
    scores = q @ k.transpose(-2, -1) / math.sqrt(hs)
    scores.retain_grad()
    causal = torch.tril(torch.ones(T, T, dtype=torch.bool))
    probs = torch.softmax(scores.masked_fill(~causal, float("-inf")), dim=-1)
    probs.retain_grad()
    y = (probs @ v).transpose(1, 2).reshape(B, T, C)
    out = y @ W["c_proj.weight"].T + W["c_proj.bias"]
    (out * torch.tensor(w)).sum().backward()
    return {"q": q.grad, "k": k.grad, "v": v.grad, "scores": scores.grad, "probs": probs.grad}


def test_trace_attention_gradients_equal_torch():
    mg.manual_seed(0)
    attn = nn.MultiHeadAttention(16, 4, causal=True).double()
    rng = np.random.default_rng(1)
    x = rng.standard_normal((2, 5, 16))
    w = rng.standard_normal((2, 5, 16))
    with viz.trace() as t:
        (attn(mg.tensor(x, requires_grad=True)) * w).sum().backward()
    ref = torch_attention_grads(attn, x, w)
    for name, grad in ref.items():
        assert len(t.grads[name]) == 1
        np.testing.assert_allclose(t.grads[name][0], grad.numpy(), rtol=1e-10, atol=1e-12,
                                   err_msg=name)
        # The per-head norms in the table rows are the norms of these gradients.
        row = next(r for r in t.rows if r["label"] == name)
        heads = grad.pow(2).sum(dim=(0, 2, 3)).sqrt().numpy()
        np.testing.assert_allclose(row["heads"], heads, rtol=1e-10)
        assert row["shape"] == tuple(grad.shape)


def test_trace_rows_and_table_on_a_gpt():
    model = tiny_gpt()
    t = viz.trace(lambda: gpt_loss(model).backward())
    assert t.rows[0]["op"] == "CrossEntropy" and t.rows[0]["norm"] == 1.0  # dL/dL
    assert [r["order"] for r in t.rows] == list(range(len(t.rows)))
    n_layer, n_head = model.config.n_layer, model.config.n_head
    for name in ("q", "k", "v", "scores", "probs"):
        assert [g.shape[1] for g in t.grads[name]] == [n_head] * n_layer
    probs_rows = [r for r in t.rows if r["label"] == "probs"]
    assert all(len(r["heads"]) == n_head for r in probs_rows)
    # grads are stored in forward (layer) order: layer 0's probs is the last row met.
    np.testing.assert_allclose(np.linalg.norm(t.grads["probs"][0]), probs_rows[-1]["norm"])
    table = str(t)
    assert table.splitlines()[0].split()[:2] == ["#", "op"]
    assert len(table.splitlines()) == len(t.rows) + 2
    assert "Softmax" in table and "probs" in table and "(2, 3, 8, 8)" in table
    att = t.attention_table().splitlines()
    assert "dL/dV" in att[0] and "dL/dK" in att[0]
    assert len(att) == 1 + n_layer * n_head
    assert not mg.is_study_mode()  # the trace restored the mode


def test_trace_gradients_match_the_fused_backward():
    # The trace runs the composite; its leaf gradients must equal the fused path's.
    model = tiny_gpt()
    gpt_loss(model).backward()
    fused = {n: p.grad.copy() for n, p in model.named_parameters()}
    model.zero_grad()
    viz.trace(lambda: gpt_loss(model).backward())
    for n, p in model.named_parameters():
        np.testing.assert_allclose(p.grad, fused[n], rtol=2e-4, atol=1e-6, err_msg=n)


def test_trace_works_on_the_default_gpt():
    mg.manual_seed(0)
    model = GPT(GPTConfig())  # the baby GPT: 4 layers, 4 heads, 128 wide
    t = viz.trace(lambda: gpt_loss(model, T=16).backward())
    assert len(t.grads["q"]) == 4 and t.grads["q"][0].shape == (2, 4, 16, 32)
    assert len(t.attention_table().splitlines()) == 1 + 16


# ----- explain ------------------------------------------------------------------------


def test_every_op_has_an_explanation():
    classes = viz.function_classes(minigrad.ops)
    assert len(classes) > 30
    missing = [c.__name__ for c in classes if viz.explanation_of(c) is None]
    assert missing == []
    for cls in classes:
        text = viz.explain(cls)
        assert text.startswith(cls.__name__ + ":") and "backward:" in text


def test_explain_a_node_shows_shapes_and_what_it_saved():
    a = mg.randn(2, 3, 4, requires_grad=True)
    b = mg.randn(4, 5, requires_grad=True)
    y = a @ b
    text = viz.explain(y)
    assert "MatMul" in text and "dA = g B^T" in text
    assert "output (2, 3, 5), inputs (2, 3, 4), (4, 5)" in text
    assert "saved_tensors[0] (2, 3, 4), saved_tensors[1] (4, 5)" in text
    s = y.softmax(axis=-1)
    assert "saved_tensors[0] (2, 3, 5), axis=2" in viz.explain(s.grad_fn)
    s.sum().backward()
    assert "freed by backward" in viz.explain(s.grad_fn)


def test_explain_a_labelled_node_and_a_new_op():
    q = mg.randn(1, 2, 3, 4, requires_grad=True)
    with mg.study_mode():
        out = mg.functional.scaled_dot_product_attention(q, q, q, is_causal=True)
    assert "label:    'attention output'" in viz.explain(out)

    class Cube(mg.Function):
        @staticmethod
        def forward(ctx, x):
            ctx.save_for_backward(x)
            return x**3

        @staticmethod
        def backward(ctx, grad):
            (x,) = ctx.saved_tensors
            return grad * 3 * x**2

    text = viz.explain(Cube.apply(q).grad_fn)
    assert "no `backward:` line" in text and "grad * 3 * x**2" in text
    assert "saved_tensors[0] (1, 2, 3, 4)" in text
    with pytest.raises(ValueError, match="unknown op"):
        viz.explain("NoSuchOp")


# ----- check_causal -------------------------------------------------------------------


@pytest.mark.parametrize("config", [TINY, {}], ids=["tiny", "default"])
def test_causal_check_passes_on_the_gpt(config):
    mg.manual_seed(0)
    model = GPT(GPTConfig(**config))
    report = viz.check_causal(model, T=model.config.block_size if config else 16)
    assert report.passed and report.leaks == []
    T = report.dependence.shape[0]
    assert np.all(report.dependence[np.tril_indices(T)] > 0)  # the past is used...
    assert np.all(report.dependence[np.triu_indices(T, 1)] == 0.0)  # ...the future exactly not
    assert "PASSED" in str(report)


def test_causal_check_fails_when_the_mask_is_removed():
    model = tiny_gpt()
    model.transformer.h[1].attn.causal = False  # only the second block sees the future
    report = viz.check_causal(model, T=6)
    assert not report
    T = 6
    assert sorted((t, s) for t, s, _ in report.leaks) == [(t, s) for t in range(T)
                                                          for s in range(t + 1, T)]
    assert all(m > 0 for _, _, m in report.leaks)
    text = str(report)
    assert "FAILED" in text and "15 of 15" in text
    assert "out   0: #XXXXX" in text


def test_causal_check_on_a_function_locates_the_leak():
    T = 5

    def peek_two_ahead(x):  # out[t] = x[t] + x[t + 2] for t + 2 < T: a deliberate leak
        ahead = mg.cat([x[:, 2:], mg.zeros((1, 2, x.shape[2]))], axis=1)
        return x + ahead

    report = viz.check_causal(peek_two_ahead, T, C=3)
    assert [(t, s) for t, s, _ in report.leaks] == [(0, 2), (1, 3), (2, 4)]
    assert viz.check_causal(nn.MultiHeadAttention(8, 2, causal=True), T).passed
    with pytest.raises(ValueError, match="pass C"):
        viz.check_causal(lambda x: x, T)


# ----- attention maps and `minigrad attention` ----------------------------------------

TEXT = "abcab cab"


@pytest.fixture
def checkpoint(tmp_path):
    tokenizer = CharTokenizer.from_text("abc .\n")
    model = tiny_gpt(vocab_size=tokenizer.vocab_size)
    optimizer = model.configure_optimizers(0.1, 1e-3, (0.9, 0.99))
    path = tmp_path / "ckpt"
    save_checkpoint(str(path), model, optimizer,
                    {"model": asdict(model.config), "vocab": tokenizer.to_list()})
    return model, tokenizer, str(path)


def test_attention_maps_scores_and_weights_agree_with_the_weights(checkpoint):
    model, tokenizer, _ = checkpoint
    ids = tokenizer.encode(TEXT)[None, :]
    maps = viz.attention_maps(model, ids)
    assert len(maps) == 2
    T = len(TEXT)
    hs = model.config.n_embd // model.config.n_head
    # Layer 0's scores from the weights by hand: q.k / sqrt(hs) of ln_1(tok + pos).
    x = model.transformer.wte.weight.data[ids[0]] + model.transformer.wpe.weight.data[:T]
    h = model.transformer.h[0]
    xn = (x - x.mean(-1, keepdims=True)) / np.sqrt(x.var(-1, keepdims=True) + 1e-5)
    xn = xn * h.ln_1.weight.data + h.ln_1.bias.data
    qkv = xn @ h.attn.c_attn.weight.data.T + h.attn.c_attn.bias.data
    q, k = (a.reshape(T, 3, hs).transpose(1, 0, 2) for a in np.split(qkv, 3, axis=-1)[:2])
    np.testing.assert_allclose(maps[0]["scores"][0], q @ k.transpose(0, 2, 1) / math.sqrt(hs),
                               rtol=1e-4, atol=1e-5)
    for m in maps:
        w, s = m["weights"], m["scores"]
        assert w.shape == s.shape == (1, 3, T, T)
        masked = np.where(np.tril(np.ones((T, T), bool)), s, -np.inf)
        expected = np.exp(masked - masked.max(-1, keepdims=True))
        np.testing.assert_allclose(w, expected / expected.sum(-1, keepdims=True), rtol=1e-4,
                                   atol=1e-6)
        assert np.all(w[..., np.triu_indices(T, 1)[0], np.triu_indices(T, 1)[1]] == 0.0)
    assert all(not m.need_weights for m in viz.attention_modules(model))


def panels(png):
    """(rows, cols) of heatmap panels in an image: bands of saturated (colormap) pixels."""
    rgb = (png[..., :3] * 255).astype(int)
    colored = rgb.max(-1) - rgb.min(-1) > 40  # viridis is saturated; text and paper are not

    def bands(mask):
        return int(np.sum(mask[1:] & ~mask[:-1]) + mask[0])

    return bands(colored.any(axis=1)), bands(colored.any(axis=0))


def test_attention_command_writes_the_png_grid(checkpoint, tmp_path, capsys):
    import matplotlib.image

    _, _, ckpt = checkpoint
    out = tmp_path / "attn.png"
    assert main(["attention", "--ckpt", ckpt, "--text", TEXT, "--out", str(out)]) == 0
    assert "2 layers x 3 heads" in capsys.readouterr().out
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    png = matplotlib.image.imread(out)
    side = (1.0 + 0.12 * len(TEXT)) * 80  # figure inches per panel x dpi
    assert png.shape[:2] == (int(2 * side), int(3 * side))  # matplotlib truncates
    assert panels(png) == (2, 3)


def test_attention_command_text_mode(checkpoint, capsys):
    model, tokenizer, ckpt = checkpoint
    assert main(["attention", "--ckpt", ckpt, "--text", TEXT, "--position", "-1",
                 "--top", "2"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == f"query position 8 'b' in {TEXT!r}"
    head_lines = [ln for ln in lines if ln.startswith("layer ")]
    assert len(head_lines) == 2 * 3
    maps = viz.attention_maps(model, tokenizer.encode(TEXT)[None, :])
    w = maps[1]["weights"][0, 2, 8]
    best = int(np.argmax(w))
    first = head_lines[-1].split("|")[0]  # layer 1 head 2: its top position first
    assert first.split(":", 1)[1].split()[0] == str(best)
    assert f"weight {w[best]:.3f}" in first
    assert f"score {maps[1]['scores'][0, 2, 8, best]:+7.3f}" in first


def test_attention_command_user_errors(checkpoint, capsys):
    _, _, ckpt = checkpoint
    assert main(["attention", "--ckpt", ckpt, "--text", "xyz"]) == 2
    assert "not in the vocabulary" in capsys.readouterr().err
    assert main(["attention", "--ckpt", ckpt, "--text", "a" * 13]) == 2
    assert "block_size=12" in capsys.readouterr().err
    assert main(["attention", "--ckpt", ckpt, "--text", TEXT, "--position", "9"]) == 2
    assert "outside the text" in capsys.readouterr().err


class TinyIdsModel(nn.Module):
    """A user's own id-taking model (not the GPT): embedding, one attention layer, head."""

    def __init__(self, causal):
        super().__init__()
        self.emb = nn.Embedding(7, 8)
        self.attn = nn.MultiHeadAttention(8, 2, causal=causal)
        self.head = nn.Linear(8, 7)

    def forward(self, ids):
        return self.head(self.attn(self.emb(ids)))


@pytest.mark.parametrize("causal", [True, False])
def test_causal_check_on_any_ids_model_through_forward_hooks(causal):
    mg.manual_seed(0)
    model = TinyIdsModel(causal)
    report = viz.check_causal(model, T=5)
    assert report.passed is causal
    assert report.context_dependence is None
    assert np.all(report.dependence[np.tril_indices(5)] > 0)
    assert not model.emb.__dict__.get("_forward_hooks")  # the hooks are gone afterwards


def test_forward_hook_sees_and_may_replace_the_output():
    layer = nn.Linear(3, 2)
    seen = []
    handle = layer.register_forward_hook(lambda m, args, out: seen.append((m, args[0], out)))
    x = mg.randn(4, 3)
    out = layer(x)
    assert seen == [(layer, x, out)]
    handle.remove()
    handle.remove()  # a second remove does nothing
    layer(x)
    assert len(seen) == 1
    layer.register_forward_hook(lambda m, args, out: out * 0)
    assert np.all(layer(x).data == 0)

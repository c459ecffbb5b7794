"""viz.explore: the numbers it records equal those of viz.trace() and attention_maps; the
page is self-contained; bad input is refused in one line."""

import base64
import json
import re
import zlib

import numpy as np
import pytest
from minigrad.models.gpt import GPT, GPTConfig

import minigrad as mg
import minigrad.functional as F
from minigrad import nn, viz
from minigrad.viz.explore import FLOAT32_GRAD_BUDGET
from tests.explore_models import Tagger, backward_from_d_out, tiny_gpt, traced

TRACE_NAMES = {"dP": "probs", "dS": "masked scores", "dq": "q", "dk": "k", "dv": "v"}


@pytest.fixture(scope="module")
def gpt_explorer():
    model, ids = tiny_gpt()
    return model, ids, viz.explore(model, ids, labels="to be or not")


def test_forward_numbers_equal_attention_maps(gpt_explorer):
    model, ids, ex = gpt_explorer
    maps = viz.attention_maps(model, ids[None, :])
    assert [b["name"] for b in ex.blocks] == ["transformer.h.0.attn", "transformer.h.1.attn"]
    assert len(ex.blocks) == len(maps)
    for b, m in zip(ex.blocks, maps, strict=True):
        np.testing.assert_allclose(b["probs"], m["weights"][0], rtol=1e-5, atol=1e-7)
        causal = np.tril(np.ones(b["probs"].shape[1:], dtype=bool))
        np.testing.assert_allclose(b["scores"][:, causal], m["scores"][0][:, causal],
                                   rtol=1e-5, atol=1e-6)
        assert np.all(b["scores"][:, ~causal] == -np.inf)
        assert np.all(b["probs"][:, ~causal] == 0.0)


@pytest.mark.parametrize("choice", ["mean", 0, 5, 10])
def test_gradients_equal_trace(gpt_explorer, choice):
    model, ids, ex = gpt_explorer
    tr = traced(model, ids, choice)
    c = ex.choices.index(choice)
    for i, b in enumerate(ex.blocks):
        np.testing.assert_allclose(ex.d_out[c][i], tr.grads["attention output"][i][0],
                                   rtol=1e-5, atol=1e-9)
        page = backward_from_d_out(b, ex.d_out[c][i])
        for name, label in TRACE_NAMES.items():
            ref = tr.grads[label][i][0]
            np.testing.assert_allclose(page[name], ref, rtol=1e-4,
                                       atol=1e-6 * max(np.abs(ref).max(), 1e-12))
        # masked cells: the gradient of the score before the mask is exactly zero
        assert ex.masked_grad[c][i] == 0.0
        assert np.all(tr.grads["scores"][i][0][b["scores"] == -np.inf] == 0.0)


def test_position_loss_reaches_only_earlier_positions(gpt_explorer):
    _, _, ex = gpt_explorer
    c = ex.choices.index(4)
    for g in ex.d_out[c]:
        assert np.all(g[:, 5:] == 0.0) and np.any(g[:, :5] != 0.0)
    assert ex.losses[-1] != ex.losses[-1]  # NaN: the last position has no target
    np.testing.assert_allclose(ex.mean_loss, np.nanmean(ex.losses))


def test_positions_limits_the_losses(gpt_explorer):
    model, ids, full = gpt_explorer
    ex = viz.explore(model, ids, positions=[2, 7])
    assert ex.choices == ["mean", 2, 7]
    for c in ("mean", 2, 7):
        for a, b in zip(ex.d_out[ex.choices.index(c)], full.d_out[full.choices.index(c)],
                        strict=True):
            np.testing.assert_array_equal(a, b)
    assert len(ex.html()) < len(full.html())


def test_model_state_is_left_as_it_was():
    model, ids = tiny_gpt()
    model.train()
    p = next(iter(model.parameters()))
    p.grad = np.ones_like(p.data)
    viz.explore(model, ids)
    assert model.training
    assert np.all(p.grad == 1.0)
    assert all(q.grad is None for q in list(model.parameters())[1:])
    assert all(not m.__dict__.get("_forward_hooks") for m in viz.attention_modules(model))


def test_own_module_with_attn_mask():
    mg.manual_seed(1)
    model = Tagger()
    ids = np.array([1, 4, 2, 9, 3, 3, 7, 0])
    ex = viz.explore(model, ids)
    (b,) = ex.blocks
    assert b["name"] == "mix" and b["kind"] == "self" and not b["causal"]
    band = np.abs(np.arange(8)[:, None] - np.arange(8)[None, :]) <= 2
    assert np.all(b["probs"][:, ~band] == 0) and np.all(b["scores"][:, ~band] == -np.inf)
    tr = traced(model, ids, 3)
    page = backward_from_d_out(b, ex.d_out[ex.choices.index(3)][0])
    np.testing.assert_allclose(page["dq"], tr.grads["q"][0][0], rtol=1e-4, atol=1e-8)
    assert ex.labels == [[str(i) for i in ids]]


def test_no_attention_is_refused_in_one_line():
    model = nn.Sequential(nn.Embedding(5, 4), nn.Linear(4, 5))
    with pytest.raises(ValueError, match="^explore: the model has no MultiHeadAttention "
                                         "layer$"):
        viz.explore(model, np.arange(4))


@pytest.mark.parametrize("ids, message", [
    (np.array([1.5, 2.0]), "integer token ids"),
    (np.zeros((2, 3), dtype=int), r"shape \(T,\) or \(1, T\)"),
    (np.array([3]), "no position has a target"),
])
def test_bad_ids_are_refused(ids, message):
    model, _ = tiny_gpt()
    with pytest.raises((ValueError, TypeError), match=message):
        viz.explore(model, ids)


def test_labels_must_match_the_text():
    model, ids = tiny_gpt()
    with pytest.raises(ValueError, match="labels give lengths"):
        viz.explore(model, ids, labels="too short")


def decode_page(page):
    """(meta, blob) embedded in a page."""
    meta = json.loads(re.search(r'<script type="application/json" id="meta">(.*?)</script>',
                                page, re.S).group(1))
    blob = re.search(r'<script type="text/plain" id="blob">(.*?)</script>', page, re.S)
    return meta, zlib.decompress(base64.b64decode(blob.group(1)))


def read_entry(blob, entry):
    n = int(np.prod(entry["s"]))
    dtype = np.float16 if entry["t"] == "f16" else np.float32
    a = np.frombuffer(blob, dtype=dtype, count=n, offset=entry["o"]).reshape(entry["s"])
    return a.astype(np.float64) * entry.get("k", 1.0)


def test_page_is_self_contained_and_holds_the_numbers(gpt_explorer, tmp_path):
    _, _, ex = gpt_explorer
    path = tmp_path / "page.html"
    size = ex.save(path)
    page = path.read_text(encoding="utf-8")
    assert size == len(page.encode("utf-8"))
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", page)
    assert "default-src 'none'" in page  # the browser itself refuses any request
    meta, blob = decode_page(page)
    assert meta["grad_dtype"] == "float32"
    assert meta["labels"] == [list("to\u2423be\u2423or\u2423not")]
    np.testing.assert_array_equal(read_entry(blob, meta["blocks"][1]["probs"]),
                                  ex.blocks[1]["probs"])
    g = meta["grads"][3][1]
    dense = np.zeros_like(ex.d_out[3][1])
    dense[:, g["rows"]] = read_entry(blob, g["data"])
    np.testing.assert_array_equal(dense, ex.d_out[3][1])


def test_repr_html_is_an_isolated_iframe(gpt_explorer):
    _, _, ex = gpt_explorer
    html = ex._repr_html_()
    assert html.startswith("<iframe srcdoc=") and "<script" not in html
    assert html.count("<iframe") == 1


@pytest.mark.slow
def test_default_gpt_page_size(tmp_path):
    """The size figure: the default GPT (4 blocks x 4 heads, n_embd 128) at 64 characters."""
    mg.manual_seed(0)
    model = GPT(GPTConfig())
    ids = np.random.default_rng(0).integers(0, 65, 64)
    ex = viz.explore(model, ids)
    size = ex.save(tmp_path / "page.html")
    print(f"default GPT, 64 characters: {size:,} bytes")
    assert size <= 3_000_000
    meta, blob = decode_page((tmp_path / "page.html").read_text(encoding="utf-8"))
    assert meta["grad_dtype"] == "float16"  # above FLOAT32_GRAD_BUDGET
    for c in (0, 20, 63):
        for i, g in enumerate(meta["grads"][c]):
            dense = np.zeros(ex.d_out[c][i].shape)
            dense[:, g["rows"]] = read_entry(blob, g["data"])
            ref = ex.d_out[c][i]
            np.testing.assert_allclose(dense, ref, rtol=0, atol=1e-3 * np.abs(ref).max())
    assert FLOAT32_GRAD_BUDGET < sum(
        g.size for per in ex.d_out for g in per) * 4


def test_encoder_decoder_cross_attention():
    """The encoder-decoder: encoder self-attention over the source, decoder causal
    self-attention over the target, cross-attention T x S (queries: target, keys: source);
    every gradient equals viz.trace()'s."""
    from minigrad.models.seq2seq import Seq2Seq, Seq2SeqConfig

    mg.manual_seed(0)
    model = Seq2Seq(Seq2SeqConfig(vocab_size=16, block_size=16, n_layer=2, n_head=2,
                                  n_embd=16))
    src, tgt_in = np.array([5, 6, 7, 8, 9, 10]), np.array([1, 10, 9, 8, 7, 6, 5])
    targets = np.array([10, 9, 8, 7, 6, 5, 2])
    ex = viz.explore(model, (src, tgt_in), labels=("abcdef", "^fedcba"), targets=targets,
                     target_labels="fedcba$")
    kinds = [(b["name"], b["kind"], b["T"], b["S"], b["qside"], b["kside"]) for b in ex.blocks]
    assert kinds == [
        ("encoder.layers.0.self_attn", "self", 6, 6, 0, 0),
        ("encoder.layers.1.self_attn", "self", 6, 6, 0, 0),
        ("decoder.layers.0.self_attn", "self", 7, 7, 1, 1),
        ("decoder.layers.0.cross_attn", "cross", 7, 6, 1, 0),
        ("decoder.layers.1.self_attn", "self", 7, 7, 1, 1),
        ("decoder.layers.1.cross_attn", "cross", 7, 6, 1, 0)]
    assert ex.choices == ["mean", *range(7)] and ex.target_labels[0] == "f"
    model.eval()
    with viz.trace() as tr:
        logits, _ = model(src[None], tgt_in[None])
        F.cross_entropy(logits[0], targets, reduction="none")[3].backward()
    model.zero_grad()
    # the trace lists each label's arrays in its own order: find the one that matches
    c = ex.choices.index(3)
    for i, b in enumerate(ex.blocks):
        page = backward_from_d_out(b, ex.d_out[c][i])
        for name, label in (("dP", "probs"), ("dq", "q"), ("dk", "k"), ("dv", "v")):
            refs = [g[0] for g in tr.grads[label] if g.shape[1:] == page[name].shape]
            assert any(np.allclose(page[name], ref, rtol=1e-4,
                                   atol=1e-6 * max(np.abs(ref).max(), 1e-12)) for ref in refs)
            assert np.abs(page[name]).max() > 0 or name == "dP"
    assert ex.blocks[3]["probs"].shape == (2, 7, 6)

"""Study tools on the encoder-decoder: labelled attention maps, traces and explanations,
check_causal with a context, and `minigrad attention` on a seq2seq checkpoint."""

import re

import numpy as np
import pytest
from minigrad.models.seq2seq import Seq2Seq, Seq2SeqConfig
from minigrad.models.seq2seq_train import Seq2SeqTrainConfig, train_seq2seq

import minigrad as mg
from minigrad import nn, viz
from minigrad.cli import main


def tiny(n_layer=2):
    mg.manual_seed(0)
    return Seq2Seq(Seq2SeqConfig(vocab_size=9, block_size=8, n_layer=n_layer, n_head=2,
                                 n_embd=8))


SRC = np.array([[3, 4, 5, 6, 0, 0]])  # 4 characters and 2 of padding
TGT_IN, TARGETS = np.array([[1, 6, 5]]), np.array([[6, 5, 2]])


def test_attention_maps_label_the_three_kinds():
    model = tiny()
    maps = viz.attention_maps(model, SRC, TGT_IN)
    assert [m["label"] for m in maps] == [
        "encoder layer 0 self-attention", "encoder layer 1 self-attention",
        "decoder layer 0 causal self-attention", "decoder layer 0 cross-attention",
        "decoder layer 1 causal self-attention", "decoder layer 1 cross-attention"]
    assert viz.attention_labels(model) == [m["label"] for m in maps]
    shapes = {"self": (1, 2, 6, 6), "causal self": (1, 2, 3, 3), "cross": (1, 2, 3, 6)}
    for m in maps:
        w = m["weights"]
        assert w.shape == m["scores"].shape == shapes[m["kind"]]
        np.testing.assert_allclose(w.sum(-1), 1.0, rtol=1e-6)
        if m["kind"] != "causal self":
            assert np.all(w[..., 4:] == 0.0) and np.all(w[..., :4] > 0.0)  # padded keys
        else:
            assert np.all(w[..., np.triu_indices(3, 1)[0], np.triu_indices(3, 1)[1]] == 0.0)
    assert not any(m.need_weights for m in viz.attention_modules(model))


def test_trace_table_names_each_block_in_forward_order():
    model = tiny()
    with viz.trace() as t:
        model(SRC, TGT_IN, TARGETS)[1].backward()
    labels = viz.attention_labels(model)
    shapes = {"self": (6, 6), "causal": (3, 3), "cross": (3, 6)}
    for label, g in zip(labels, t.grads["probs"], strict=True):
        kind = "cross" if "cross" in label else "causal" if "causal" in label else "self"
        assert g.shape[-2:] == shapes[kind], label
    table = t.attention_table(labels).splitlines()
    assert len(table) == 1 + len(labels) * 2
    assert table[1].startswith("encoder layer 0 self-attention")
    assert table[-1].startswith("decoder layer 1 cross-attention")
    with pytest.raises(ValueError, match="2 labels for 6 attention blocks"):
        t.attention_table(labels[:2])


def test_check_causal_with_a_context_passes_on_the_model_and_catches_leaks():
    report = viz.check_causal(tiny(), T=5, context=7)
    assert report.passed and not report.leaks and not report.blind
    assert np.all(report.context_dependence > 0)
    assert np.all(report.dependence[np.tril_indices(5)] > 0)
    text = str(report)
    assert "causal: PASSED" in text and "source: PASSED" in text

    def leaky(tgt, src):  # every output sees the whole target, and only src[0]
        return tgt * 0.0 + tgt.mean(axis=1, keepdims=True) + src[:, :1].mean(axis=1,
                                                                           keepdims=True)

    bad = viz.check_causal(leaky, T=3, C=2, context=4)
    assert not bad and bad.leaks and len(bad.blind) == 3 * 3
    assert "source: FAILED" in str(bad) and "causal: FAILED" in str(bad)


def test_explain_tells_the_attention_kinds_apart():
    texts = {kind: viz.explain(layer) for kind, layer in (
        ("self", nn.MultiHeadAttention(8, 2)),
        ("causal", nn.MultiHeadAttention(8, 2, causal=True)),
        ("cross", nn.MultiHeadAttention(8, 2, cross=True)))}
    assert "MultiHeadAttention (self" in texts["self"] and "c_attn" in texts["self"]
    assert "positions <= t" in texts["causal"]
    assert "kv_proj" in texts["cross"] and "dcontext = dK W_k + dV W_v" in texts["cross"]
    # the node each kind's graph holds outside study mode
    assert "one SelfAttention node" in texts["self"] and "one SelfAttention" in texts["causal"]
    assert "one ScaledDotProductAttention node" in texts["cross"]


@pytest.fixture(scope="module")
def reverse_run(tmp_path_factory):
    """A `reverse` run of 300 steps (about a minute on 2 cores)."""
    out = tmp_path_factory.mktemp("rev")
    cfg = Seq2SeqTrainConfig(task="reverse", out_dir=str(out), max_iters=300,
                             eval_interval=300, eval_subset=50, eval_examples=100,
                             progress=False)
    summary = train_seq2seq(cfg)
    return str(out), summary


@pytest.mark.slow
def test_reverse_cross_attention_is_the_anti_diagonal(reverse_run):
    from minigrad.models.checkpoint import model_from_checkpoint

    run, summary = reverse_run
    assert summary["correct"] >= 90
    model, tok = model_from_checkpoint(run, kind="seq2seq")
    src = "abcdefghij"
    tgt_in = np.concatenate([[1], tok.encode(src[::-1])])[None, :]
    maps = viz.attention_maps(model, tok.encode(src)[None, :], tgt_in)
    last_cross = [m for m in maps if m["kind"] == "cross"][-1]["weights"][0]  # (nh, T, S)
    n = len(src)
    hits = np.argmax(last_cross.mean(0)[:n], axis=-1)  # rows that predict a character
    assert np.mean(hits == np.arange(n)[::-1]) >= 0.8, hits


@pytest.mark.slow
def test_attention_command_on_a_seq2seq_run(reverse_run, tmp_path, capsys):
    import matplotlib.image

    run, _ = reverse_run
    out = tmp_path / "cross.png"
    assert main(["attention", "--ckpt", run, "--text", "abcdef", "--out", str(out)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("source 'abcdef' -> target '")
    assert "cross-attention, 2 layers x 4 heads" in lines[1]
    for path in (out, tmp_path / "cross-encoder.png", tmp_path / "cross-decoder.png"):
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    png = matplotlib.image.imread(out)
    # source across (6 characters), decoder input down (BOS + 6): a taller-than-wide panel
    assert png.shape[0] > png.shape[1] / 4
    assert main(["attention", "--ckpt", run, "--text", "abc", "--target", "cba",
                 "--position", "1", "--top", "1"]) == 0
    report = capsys.readouterr().out
    assert "decoder layer 1 cross-attention head 3:" in report and "'c'" in report
    assert main(["attention", "--ckpt", run, "--text", "abC"]) == 2
    assert "'C'" in capsys.readouterr().err
    assert main(["attention", "--ckpt", run, "--text", ""]) == 2
    assert "is empty" in capsys.readouterr().err
    assert main(["attention", "--ckpt", run, "--text", "a" * 14]) == 2
    assert "has 14 characters; the model takes at most 13" in capsys.readouterr().err
    # the greedy output stops at block_size - 1 characters: BOS + target fits the decoder
    assert main(["attention", "--ckpt", run, "--text", "a" * 13, "--out", str(out)]) == 0
    first = capsys.readouterr().out.splitlines()[0]
    assert re.fullmatch(r"source 'a{13}' -> target '[a-z]{1,12}' \(the model's greedy output\)",
                        first), first


@pytest.mark.parametrize("seed", range(4))
def test_check_causal_on_the_encoder_decoder_sees_every_source_position(seed):
    """check_causal's generic path (ids through forward hooks) on the encoder-decoder: the
    decoder input is causal and every output depends on every source position (it never
    draws the padding id, which would be masked out)."""
    model = tiny()
    report = viz.check_causal(model, T=5, context=6, seed=seed)
    assert report.passed
    assert report.context_dependence.shape == (5, 6) and np.all(report.context_dependence > 0)

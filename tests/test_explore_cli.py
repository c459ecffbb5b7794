"""`minigrad explore` end to end on a tiny trained run and on an encoder-decoder
checkpoint, and its one-line errors."""

import os
from dataclasses import asdict

import numpy as np
import pytest
from minigrad.models.checkpoint import model_from_checkpoint, save_checkpoint
from minigrad.models.data import load_text
from minigrad.models.seq2seq import Seq2Seq, Seq2SeqConfig
from minigrad.models.tasks import decode_ids, get_task
from minigrad.models.train import train

import minigrad as mg
from minigrad.cli import main
from tests.conftest import tiny_config
from tests.test_explore import decode_page, read_entry


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("explore_run")
    corpus = root / "tiny.txt"
    corpus.write_text(load_text("shakespeare")[:20_000], encoding="utf-8")
    train(tiny_config(str(corpus), root / "out", max_iters=10, eval_interval=10))
    return root / "out"


def explore(*args):
    return main(["explore", *map(str, args)])


def one_line_error(capsys, status, fragment):
    assert status == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("minigrad explore: error: "), err
    assert fragment in err[0], err[0]


def test_writes_the_page(run_dir, tmp_path, capsys):
    out = tmp_path / "page.html"
    assert explore("--ckpt", run_dir, "--text", "First Citizen", "--out", out) == 0
    printed = capsys.readouterr().out
    assert f"wrote {out} (" in printed and "2 attention blocks x 2 heads" in printed
    page = out.read_text(encoding="utf-8")
    assert page.startswith("<!DOCTYPE html>") and "First Citizen" in page
    assert '"\u2423"' in page  # the space, made visible
    assert f"({os.path.getsize(out):,} bytes)" in printed
    assert explore("--ckpt", run_dir, "--best", "--text", "Citizen", "--out", out) == 0


def test_help():
    with pytest.raises(SystemExit) as e:
        main(["explore", "--help"])
    assert e.value.code == 0


@pytest.mark.parametrize("text, fragment", [
    ("x" * 17, "--text has 17 characters; the model sees at most block_size=16"),
    ("caf\u00e9 \u2603", "--text: "),
    ("a", "--text needs at least 2 characters"),
])
def test_bad_text(run_dir, tmp_path, capsys, text, fragment):
    one_line_error(capsys, explore("--ckpt", run_dir, "--text", text, "--out",
                                   tmp_path / "p.html"), fragment)


def test_missing_checkpoint(tmp_path, capsys):
    one_line_error(capsys, explore("--ckpt", tmp_path / "nope", "--text", "ab", "--out",
                                   tmp_path / "p.html"), "no checkpoint at")


def test_corrupt_checkpoint(run_dir, tmp_path, capsys):
    import shutil

    bad = tmp_path / "bad"
    shutil.copytree(run_dir / "ckpt", bad)
    data = bytearray((bad / "model.safetensors").read_bytes())
    data[-8:] = b"\xff" * 8
    (bad / "model.safetensors").write_bytes(bytes(data))
    one_line_error(capsys, explore("--ckpt", bad, "--text", "ab", "--out",
                                   tmp_path / "p.html"), str(bad))
    (bad / "config.json").write_text("{ not json", encoding="utf-8")
    one_line_error(capsys, explore("--ckpt", bad, "--text", "ab", "--out",
                                   tmp_path / "p.html"), "not a readable checkpoint")


def test_unwritable_out(run_dir, tmp_path, capsys):
    one_line_error(capsys, explore("--ckpt", run_dir, "--text", "ab", "--out",
                                   tmp_path / "no" / "p.html"), "does not exist")
    one_line_error(capsys, explore("--ckpt", run_dir, "--text", "ab", "--out", tmp_path),
                   "is a directory")
    target = tmp_path / "file.txt"
    target.write_text("x")
    one_line_error(capsys, explore("--ckpt", run_dir, "--text", "ab", "--out",
                                   target / "p.html"), "is not a directory")
    # a directory nobody may write to (root may write anywhere but /proc)
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        where = "/proc" if os.access(locked, os.W_OK) else locked
        one_line_error(capsys, explore("--ckpt", run_dir, "--text", "ab", "--out",
                                       os.path.join(where, "p.html")), "cannot write")
    finally:
        locked.chmod(0o700)


@pytest.fixture(scope="module")
def seq2seq_run(tmp_path_factory):
    """An untrained encoder-decoder for the `reverse` task (block_size 13), saved as
    `minigrad seq2seq` saves one."""
    mg.manual_seed(0)
    task = get_task("reverse")
    tokenizer = task.tokenizer()
    config = Seq2SeqConfig(vocab_size=tokenizer.vocab_size, block_size=task.block_size,
                           n_layer=2, n_head=2, n_embd=16)
    model = Seq2Seq(config)
    root = tmp_path_factory.mktemp("explore_seq2seq")
    save_checkpoint(root / "ckpt", model, model.configure_optimizers(0.0, 1e-3, (0.9, 0.98)),
                    {"kind": "seq2seq", "model": asdict(config), "vocab": tokenizer.to_list(),
                     "task": "reverse", "iter": 0})
    return root


def test_seq2seq_page_holds_the_cross_attention(seq2seq_run, tmp_path, capsys):
    out = tmp_path / "page.html"
    assert explore("--ckpt", seq2seq_run, "--text", "abcdef", "--target", "fedcba",
                   "--out", out) == 0
    printed = capsys.readouterr().out.splitlines()
    assert printed[0] == "source 'abcdef' -> target 'fedcba'"
    assert printed[1].startswith(f"wrote {out} (") and (
        "6 attention blocks x 2 heads (2 cross-attention), 7 position losses" in printed[1])
    meta, blob = decode_page(out.read_text(encoding="utf-8"))
    # source across, decoder input (BOS shown as in `minigrad attention`) down
    assert meta["labels"] == [list("abcdef"), list("\u25b8fedcba")]
    assert meta["target_labels"] == list("fedcba\u25c2")  # each position predicts, then EOS
    assert meta["choices"] == ["mean", *range(7)]
    kinds = [(b["name"], b["kind"], b["T"], b["S"], b["qside"], b["kside"])
             for b in meta["blocks"]]
    assert kinds == [
        ("encoder.layers.0.self_attn", "self", 6, 6, 0, 0),
        ("encoder.layers.1.self_attn", "self", 6, 6, 0, 0),
        ("decoder.layers.0.self_attn", "self", 7, 7, 1, 1),
        ("decoder.layers.0.cross_attn", "cross", 7, 6, 1, 0),
        ("decoder.layers.1.self_attn", "self", 7, 7, 1, 1),
        ("decoder.layers.1.cross_attn", "cross", 7, 6, 1, 0)]
    cross = read_entry(blob, meta["blocks"][3]["probs"])  # (heads, T, S)
    assert cross.shape == (2, 7, 6)
    np.testing.assert_allclose(cross.sum(-1), 1.0, rtol=1e-5)
    assert np.all(cross > 0)  # every decoder position sees every source character
    losses = np.array(meta["losses"], dtype=float)
    assert losses.shape == (7,) and np.all(np.isfinite(losses) & (losses > 0))


def test_seq2seq_default_target_is_the_greedy_output(seq2seq_run, tmp_path, capsys):
    model, tokenizer = model_from_checkpoint(seq2seq_run, kind="seq2seq")
    model.eval()
    src = tokenizer.encode("abc")[None, :]
    greedy = decode_ids(tokenizer, model.generate(src, 12, temperature=0.0).data[0])
    assert greedy  # the fixture's model says something for "abc"
    out = tmp_path / "page.html"
    assert explore("--ckpt", seq2seq_run, "--text", "abc", "--out", out) == 0
    printed = capsys.readouterr().out.splitlines()
    assert printed[0] == f"source 'abc' -> target {greedy!r} (the model's greedy output)"
    meta, _ = decode_page(out.read_text(encoding="utf-8"))
    assert meta["labels"][1] == ["\u25b8", *greedy]
    T = len(greedy) + 1  # BOS + target
    assert [(b["T"], b["S"]) for b in meta["blocks"]] == [(3, 3), (3, 3), (T, T), (T, 3),
                                                          (T, T), (T, 3)]


@pytest.mark.parametrize("args, fragment", [
    (["--text", "a" * 14], "--text (the source) 'aaaaaaaaaaaaaa' has 14 characters; the "
                           "model takes at most 13"),
    (["--text", "abC"], "--text (the source) 'abC': "),
    (["--text", ""], "--text (the source) is empty"),
    (["--text", "abc", "--target", "a" * 13], "has 13 characters; the model takes at most "
                                               "12 (block_size 13, less one for BOS)"),
    (["--text", "abc", "--target", "cb!"], "--target 'cb!': "),
    (["--text", "abc", "--target", ""], "--target is empty"),
])
def test_seq2seq_bad_input(seq2seq_run, tmp_path, capsys, args, fragment):
    out = tmp_path / "p.html"
    one_line_error(capsys, explore("--ckpt", seq2seq_run, *args, "--out", out), fragment)
    assert not out.exists()


def test_target_with_a_gpt_checkpoint(run_dir, tmp_path, capsys):
    one_line_error(capsys, explore("--ckpt", run_dir, "--text", "First", "--target", "x",
                                   "--out", tmp_path / "p.html"),
                   "--target is for an encoder-decoder checkpoint")

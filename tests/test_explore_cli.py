"""`minigrad explore` end to end on a tiny trained run, and its one-line errors."""

import os

import pytest
from minigrad.models.data import load_text
from minigrad.models.train import train

from minigrad.cli import main
from tests.conftest import tiny_config


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

"""The toy tasks, `minigrad seq2seq` end to end (tiny runs), its checkpoints and its errors."""

import calendar
import json
import re

import numpy as np
import pytest
from minigrad.models.checkpoint import model_from_checkpoint
from minigrad.models.errors import UserError
from minigrad.models.seq2seq import Seq2Seq
from minigrad.models.tasks import (
    MONTHS,
    TASKS,
    decode_ids,
    encode_text,
    get_task,
    make_batch,
)

from minigrad.cli import main

TINY = ["--n-layer", "1", "--n-head", "2", "--n-embd", "16", "--batch-size", "8",
        "--eval-examples", "20", "--eval-subset", "10", "--show", "3", "--no-progress"]


@pytest.mark.parametrize("name", list(TASKS))
def test_tasks_make_valid_pairs_in_their_vocabulary(name):
    task = get_task(name)
    tok = task.tokenizer()
    assert tok.to_list()[:3] == ["\x00", "\x02", "\x03"]
    rng = np.random.default_rng(0)
    for src, tgt in task.batch(rng, 200, set()):
        assert 1 <= len(src) <= task.max_src_len and 1 <= len(tgt) <= task.max_tgt_len
        if name == "reverse":
            assert tgt == src[::-1]
        elif name == "copy":
            assert tgt == src
        elif name == "sort":
            assert tgt == "".join(sorted(src))
        else:
            day, de1, month, de2, year = src.split(" ")
            assert (de1, de2) == ("de", "de") and month in MONTHS
            m = MONTHS.index(month) + 1
            assert 1 <= int(day) <= calendar.monthrange(int(year), m)[1]
            assert tgt == f"{int(year):04d}-{m:02d}-{int(day):02d}"
        encode_text(tok, src, "source", task.block_size)  # every character is in the vocab
    assert get_task("dates").example(np.random.default_rng(3))[0].count(" de ") == 2


def test_dates_example_from_the_issue():
    task = get_task("dates")
    pairs = [task.example(np.random.default_rng(s)) for s in range(2000)]
    assert ("3 de maio de 2025", "2025-05-03") in pairs or all(
        re.fullmatch(r"\d{4}-\d{2}-\d{2}", t) for _, t in pairs)
    assert "março" in task.chars and "ç" in task.tokenizer().to_list()


@pytest.mark.parametrize("name", list(TASKS))
def test_heldout_is_seeded_distinct_and_never_trained_on(name):
    task = get_task(name)
    held = task.heldout(300, seed=5)
    assert held == task.heldout(300, seed=5) and held != task.heldout(300, seed=6)
    sources = {s for s, _ in held}
    assert len(sources) == 300
    train = task.batch(np.random.default_rng(1), 3000, sources)
    assert not sources & {s for s, _ in train}


def test_make_batch_pads_and_marks_bos_eos():
    tok = get_task("reverse").tokenizer()
    src, tgt_in, targets = make_batch([("abc", "cba"), ("de", "ed")], tok, 12)
    a, b, c = (tok.encode(ch)[0] for ch in "abc")
    np.testing.assert_array_equal(src, [[a, b, c], [tok.encode("d")[0], tok.encode("e")[0], 0]])
    assert tgt_in[0].tolist() == [1, c, b, a] and targets[0].tolist() == [c, b, a, 2]
    assert tgt_in[1, 3] == 0 and targets[1].tolist()[2:] == [2, 0]
    assert decode_ids(tok, targets[0]) == "cba"


def test_bad_text_gets_named_errors():
    tok = get_task("reverse").tokenizer()
    with pytest.raises(UserError, match="source is empty"):
        encode_text(tok, "", "source", 12)
    with pytest.raises(UserError, match=r"source 'abC'.*'C'"):
        encode_text(tok, "abC", "source", 12)
    with pytest.raises(UserError, match="has 13 characters; the model takes at most 12"):
        encode_text(tok, "a" * 13, "source", 12)
    with pytest.raises(UserError, match="reserved control character"):
        encode_text(tok, "a\x02b", "source", 12)
    with pytest.raises(UserError, match=r"unknown task 'nope' \(known: reverse, copy, sort, "
                                        r"dates\)"):
        get_task("nope")


def _run(capsys, *args):
    status = main(["seq2seq", *args])
    out, err = capsys.readouterr()
    return status, out, err


def test_command_trains_saves_and_reports_exact_match(tmp_path, capsys):
    out_dir = tmp_path / "run"
    status, out, err = _run(capsys, "--task", "copy", "--max-iters", "6", "--eval-interval",
                            "3", "--out-dir", str(out_dir), *TINY)
    assert status == 0, err
    lines = out.strip().splitlines()
    assert re.fullmatch(r"exact match: \d+/20 \(\d+\.\d%\)", lines[-1])
    assert lines[-5].startswith("done: 6 iters")  # done, 3 examples, the score
    assert lines[:2] == [l for l in lines if l.startswith("iter ")]  # the 2 evaluations
    config = json.loads((out_dir / "ckpt" / "config.json").read_text())
    assert config["kind"] == "seq2seq" and config["task"] == "copy" and config["iter"] == 6
    log = [json.loads(line) for line in (out_dir / "log.jsonl").read_text().splitlines()]
    assert [r["iter"] for r in log] == [3, 6] and all(0 <= r["exact_match"] <= 1 for r in log)
    model, tok = model_from_checkpoint(str(out_dir), kind="seq2seq")
    assert isinstance(model, Seq2Seq) and tok.to_list() == config["vocab"]


def test_resume_is_exact(tmp_path, capsys):
    full, half = tmp_path / "full", tmp_path / "half"
    common = ["--task", "reverse", "--eval-interval", "3", *TINY]
    assert _run(capsys, "--max-iters", "6", "--out-dir", str(full), *common)[0] == 0
    assert _run(capsys, "--max-iters", "3", "--out-dir", str(half), *common)[0] == 0
    assert _run(capsys, "--max-iters", "6", "--out-dir", str(half), "--resume", *common)[0] == 0
    a, _ = model_from_checkpoint(str(full), kind="seq2seq")
    b, _ = model_from_checkpoint(str(half), kind="seq2seq")
    for (name, p), (_, q) in zip(a.state_dict().items(), b.state_dict().items(),
                                     strict=True):
        np.testing.assert_array_equal(p, q, err_msg=name)


def test_command_errors(tmp_path, capsys):
    status, _, err = _run(capsys, "--task", "nope", "--out-dir", str(tmp_path / "x"))
    assert status == 2 and "unknown task 'nope'" in err
    status, _, err = _run(capsys, "--n-embd", "10", "--n-head", "3", "--out-dir",
                          str(tmp_path / "y"))
    assert status == 2 and "--n-embd must be divisible by n_head=3" in err
    status, _, err = _run(capsys, "--max-iters", "-1")
    assert status == 2 and "--max-iters must be >= 0" in err
    status, _, err = _run(capsys, "--resume", "--out-dir", str(tmp_path / "none"))
    assert status == 2 and "no checkpoint at" in err


def test_checkpoint_of_the_other_kind_is_refused(tmp_path, capsys, corpus):
    s2s = tmp_path / "s2s"
    assert _run(capsys, "--task", "copy", "--max-iters", "2", "--eval-interval", "2",
                "--out-dir", str(s2s), *TINY)[0] == 0
    status = main(["sample", "--ckpt", str(s2s / "ckpt"), "--num-chars", "3"])
    err = capsys.readouterr().err
    assert status == 2 and "a seq2seq checkpoint, but this needs a gpt one" in err
    gpt = tmp_path / "gpt"
    assert main(["train", "--data", corpus, "--out-dir", str(gpt), "--max-iters", "2",
                 "--eval-interval", "2", "--eval-iters", "1", "--block-size", "8",
                 "--n-layer", "1", "--n-head", "2", "--n-embd", "8", "--batch-size", "2",
                 "--no-progress"]) == 0
    capsys.readouterr()
    status, _, err = _run(capsys, "--resume", "--out-dir", str(gpt))
    assert status == 2 and "a gpt checkpoint, but this needs a seq2seq one" in err


def test_help_lists_the_flags(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["seq2seq", "--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    for flag in ("--task", "--out-dir", "--resume", "--max-iters", "--batch-size", "--n-layer",
                 "--n-head", "--n-embd", "--pos-encoding", "--norm-first", "--lr",
                 "--eval-interval", "--eval-examples", "--seed", "--no-progress"):
        assert flag in out

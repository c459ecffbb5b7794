"""The `minigrad` command end to end, in subprocesses, on a tiny corpus and model."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY = ["--block-size", "16", "--n-layer", "1", "--n-head", "2", "--n-embd", "16",
        "--batch-size", "4", "--eval-iters", "2", "--no-progress"]


def run(*args, timeout=60):
    return subprocess.run([sys.executable, "-m", "minigrad", *args], capture_output=True,
                          text=True, cwd=ROOT, timeout=timeout)


def assert_user_error(result, fragment):
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    assert fragment in lines[0]


@pytest.mark.parametrize("command", [[], ["train"], ["sample"]])
def test_help(command):
    result = run(*command, "--help")
    assert result.returncode == 0
    assert "usage: minigrad" in result.stdout
    if command == ["train"]:
        for flag in ("--max-iters", "--batch-size", "--block-size", "--n-layer", "--n-head",
                     "--n-embd", "--dropout", "--lr", "--min-lr", "--warmup-iters",
                     "--weight-decay", "--grad-clip", "--eval-interval", "--eval-iters",
                     "--seed", "--data", "--out-dir", "--resume"):
            assert flag in result.stdout


@pytest.mark.slow
def test_train_then_sample(corpus, tmp_path):
    out = tmp_path / "out"
    result = run("train", "--data", corpus, "--out-dir", str(out), "--max-iters", "20",
                 "--eval-interval", "10", *TINY)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1].startswith("done: 20 iters")
    for name in ("model.safetensors", "optimizer.safetensors", "config.json"):
        assert (out / "ckpt" / name).is_file() and (out / "best" / name).is_file()
    records = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    assert [r["iter"] for r in records] == [0, 10, 20]
    assert all(set(r) == {"iter", "train_loss", "val_loss", "lr", "elapsed"} for r in records)
    assert (out / "loss.png").read_bytes()[:4] == b"\x89PNG"

    args = ("sample", "--ckpt", str(out / "ckpt"), "--prompt", "ROMEO:", "--num-chars", "40",
            "--temperature", "0.8", "--top-k", "5", "--seed", "1")
    first, second = run(*args), run(*args)
    assert first.returncode == 0, first.stderr
    assert first.stdout == second.stdout  # seeded
    assert first.stdout.startswith("ROMEO:") and len(first.stdout) == len("ROMEO:") + 40 + 1


@pytest.mark.slow
def test_ctrl_c_saves_and_exits_130(corpus, tmp_path):
    out = tmp_path / "out"
    proc = subprocess.Popen(
        [sys.executable, "-m", "minigrad", "train", "--data", corpus, "--out-dir", str(out),
         "--max-iters", "1000000", "--eval-interval", "1000000", *TINY],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 30
    while not (out / "ckpt" / "config.json").exists() and time.time() < deadline:
        time.sleep(0.1)  # the first evaluation (iter 0) writes the first checkpoint
    time.sleep(0.5)
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=30)
    assert proc.returncode == 130, stderr
    assert "Traceback" not in stderr and "interrupted at iter" in stderr
    config = json.loads((out / "ckpt" / "config.json").read_text())
    assert config["iter"] > 0
    assert not [p for p in os.listdir(out) if p.startswith(".")]


def test_user_errors_exit_2_with_one_line(corpus, tmp_path):
    assert_user_error(run("train", "--data", str(tmp_path / "missing.txt")), "no such file")
    assert_user_error(run("train", "--data", corpus, "--n-embd", "10", "--n-head", "4"),
                      "divisible")
    assert_user_error(run("sample", "--ckpt", str(tmp_path / "nothing")), "no checkpoint")
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "config.json").write_text("{")
    assert_user_error(run("sample", "--ckpt", str(tmp_path / "broken")),
                      "not a readable checkpoint")
    assert_user_error(run("train", "--data", corpus, "--out-dir", str(tmp_path / "nothing"),
                          "--resume"), "no checkpoint")


@pytest.mark.slow
def test_prompt_outside_vocabulary(corpus, tmp_path):
    out = tmp_path / "out"
    assert run("train", "--data", corpus, "--out-dir", str(out), "--max-iters", "1",
               *TINY).returncode == 0
    assert_user_error(run("sample", "--ckpt", str(out / "ckpt"), "--prompt", "héllo"),
                      "not in the vocabulary")


def test_no_command_prints_usage_and_exits_2():
    result = run()
    assert result.returncode == 2 and "usage: minigrad" in result.stderr

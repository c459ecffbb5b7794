"""Faults: a process killed while it writes a checkpoint, and a run whose loss becomes NaN.
In both, the checkpoint on disk stays a complete, loadable one."""

import os
import random
import signal
import subprocess
import sys
import time

import minigrad.models.train as train_module
import numpy as np
import pytest
from minigrad.models.checkpoint import load_checkpoint
from minigrad.models.errors import NonFiniteLossError
from minigrad.models.gpt import GPT
from minigrad.models.train import train

import minigrad as mg
from tests.conftest import tiny_config as shared_tiny_config

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# The child saves checkpoints of a tiny GPT back to back, forever, printing the number of
# each completed save. Every weight and every optimizer moment of save i equals i, and so
# does config.json's iter, so a loaded checkpoint shows which save it is and that its
# three files belong together.
SAVER = r"""
import itertools, sys
from dataclasses import asdict
import numpy as np
import minigrad as mg
from minigrad.models.gpt import GPT, GPTConfig
from minigrad.models.checkpoint import save_checkpoint

path, start = sys.argv[1], int(sys.argv[2])
model = GPT(GPTConfig(vocab_size=4, block_size=8, n_layer=1, n_head=2, n_embd=8))
optimizer = model.configure_optimizers(0.1, 1e-3, (0.9, 0.99))
ids = np.array([[0, 1, 2, 3]])
model(ids, ids)[1].backward()
optimizer.step()  # so that the optimizer has moments to save
print("ready", flush=True)
for i in itertools.count(start):
    for p in model.parameters():
        p.data[...] = i
    for state in optimizer.state.values():
        for name, array in state.items():
            if name != "step":
                array[...] = i
    save_checkpoint(path, model, optimizer, {
        "model": asdict(model.config), "vocab": list("abcd"), "iter": i,
        "best_val_loss": None, "elapsed": 0.0, "rng": {}})
    print(i, flush=True)
"""
ROUNDS = 50


def saved_iteration(path):
    """The iteration of the checkpoint at path, after checking that every array agrees."""
    config, state, (arrays, _) = load_checkpoint(path)
    i = config["iter"]
    for name, array in {**state, **arrays}.items():
        assert np.all(array == i), f"{name} of save {i} holds another save's values"
    return i


@pytest.mark.slow
def test_sigkill_during_save_leaves_the_previous_or_the_new_checkpoint(tmp_path):
    path = str(tmp_path / "ckpt")
    # The numpy backend: the child starts faster without Numba, and saving is the same.
    env = {**os.environ, "MINIGRAD_BACKEND": "numpy", "PYTHONPATH": ROOT}
    rng = random.Random(0)
    loaded, outcomes = None, {"previous": 0, "new": 0}
    for round_ in range(ROUNDS):
        start = 0 if loaded is None else loaded + 1
        child = subprocess.Popen([sys.executable, "-c", SAVER, path, str(start)], cwd=ROOT,
                                 env=env, stdout=subprocess.PIPE, text=True)
        assert child.stdout.readline() == "ready\n"
        if loaded is None:
            assert child.stdout.readline() == "0\n"  # the first round: one complete save
        time.sleep(rng.uniform(0.0, 0.04))  # a few saves' time: the kill lands mid-save
        child.send_signal(signal.SIGKILL)
        completed = [int(line) for line in child.stdout.read().split()]
        child.wait()
        assert child.returncode == -signal.SIGKILL
        last = completed[-1] if completed else (0 if loaded is None else loaded)
        loaded = saved_iteration(path)
        # The last completed save, or the one in flight when the kill came (its final
        # rename done, its "print" not yet).
        assert loaded in (last, last + 1), (round_, completed, loaded)
        outcomes["previous" if loaded == last else "new"] += 1
        # Each save clears what earlier killed saves left: at most the last one's litter.
        assert len(list(tmp_path.glob(".ckpt.tmp-*"))) <= 1
    print(f"{ROUNDS} kill rounds survived: {outcomes}")


# ----- a loss that becomes NaN ----------------------------------------------------------


def tiny_config(corpus, out_dir, **overrides):
    """The shared tiny config, one layer and 30 iterations (3 evaluations)."""
    return shared_tiny_config(corpus, out_dir, **{"n_layer": 1, "max_iters": 30,
                                                  "warmup_iters": 2, **overrides})


def poison_training_forward(monkeypatch, at_call):
    """Make the loss of the at_call-th training-mode forward (0-based) NaN."""
    forward, calls = GPT.forward, []

    def poisoned(self, idx, targets=None):
        logits, loss = forward(self, idx, targets)
        if self.training and targets is not None:
            calls.append(1)
            if len(calls) == at_call + 1:
                loss = loss * float("nan")
        return logits, loss

    monkeypatch.setattr(GPT, "forward", poisoned)


def test_nan_loss_stops_and_keeps_the_last_good_checkpoint(corpus, tmp_path, monkeypatch):
    out = tmp_path / "out"
    poison_training_forward(monkeypatch, at_call=15)  # iteration 15
    with pytest.raises(NonFiniteLossError) as info:
        train(tiny_config(corpus, out))
    message = str(info.value)
    for words in ("training loss is nan", "iter 15", f"{out / 'ckpt'} (iter 10) is kept"):
        assert words in message, message
    assert saved_iteration_of(out / "ckpt") == 10
    assert load_checkpoint(out / "best")[0]["iter"] <= 10
    assert not [p for p in os.listdir(out) if p.startswith(".")]  # no temp dirs left


def test_nan_in_the_first_step_keeps_the_iter_0_checkpoint(corpus, tmp_path, monkeypatch):
    out = tmp_path / "out"
    poison_training_forward(monkeypatch, at_call=0)
    with pytest.raises(NonFiniteLossError, match=r"iter 0: .*\(iter 0\) is kept"):
        train(tiny_config(corpus, out))
    assert saved_iteration_of(out / "ckpt") == 0  # the first evaluation saved it


def test_nan_weights_are_never_saved(corpus, tmp_path, monkeypatch):
    # Finite losses but NaN gradients: the step puts NaN in the weights; the next forward
    # (or evaluation) stops the run before any save of those weights.
    out = tmp_path / "out"
    clip, calls = mg.optim.clip_grad_norm_, []

    def poisoned_clip(params, max_norm):
        calls.append(1)
        if len(calls) == 12:
            params[0].grad[...] = np.nan
        return clip(params, max_norm)

    monkeypatch.setattr(mg.optim, "clip_grad_norm_", poisoned_clip)
    with pytest.raises(NonFiniteLossError, match="iter 12"):
        train(tiny_config(corpus, out))
    config, state, _ = load_checkpoint(out / "ckpt")
    assert config["iter"] == 10
    assert all(np.isfinite(a).all() for a in state.values())


@pytest.mark.parametrize("bad_call,saved", [(1, None), (2, 0)])
def test_nan_at_an_evaluation_is_caught_before_the_save(corpus, tmp_path, monkeypatch,
                                                        bad_call, saved):
    out = tmp_path / "out"
    estimate, calls = train_module.estimate_loss, []

    def poisoned(*args):
        calls.append(1)
        losses = estimate(*args)
        if len(calls) == bad_call:  # the evaluation at iter 0, or at iter 10
            losses["val"] = float("inf")
        return losses

    monkeypatch.setattr(train_module, "estimate_loss", poisoned)
    with pytest.raises(NonFiniteLossError) as info:
        train(tiny_config(corpus, out))
    assert f"val loss is inf at iter {10 * (bad_call - 1)}" in str(info.value)
    log = (out / "log.jsonl").read_text().splitlines() if saved is not None else []
    assert len(log) == bad_call - 1  # the bad evaluation is not logged
    if saved is None:
        assert "no checkpoint was saved" in str(info.value)
        assert not (out / "ckpt").exists()
    else:
        assert saved_iteration_of(out / "ckpt") == saved


def saved_iteration_of(path):
    config, state, _ = load_checkpoint(path)
    assert all(np.isfinite(a).all() for a in state.values())
    return config["iter"]


@pytest.mark.slow
def test_cli_exits_3_with_one_line_on_a_nan_loss(corpus, tmp_path):
    out = tmp_path / "out"
    # A learning rate so large that the first step overflows the float32 weights.
    result = subprocess.run(
        [sys.executable, "-m", "minigrad", "train", "--data", corpus, "--out-dir", str(out),
         "--block-size", "16", "--n-layer", "1", "--n-head", "2", "--n-embd", "16",
         "--batch-size", "4", "--eval-iters", "2", "--no-progress", "--max-iters", "20",
         "--lr", "1e30", "--min-lr", "0", "--warmup-iters", "0"],
        capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert result.returncode == 3, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr
    assert "loss is nan at iter 1" in lines[0] and "(iter 0) is kept" in lines[0]
    assert load_checkpoint(out / "ckpt")[0]["iter"] == 0

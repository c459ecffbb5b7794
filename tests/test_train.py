"""The training loop and its checkpoints: exact resume, atomic saves, loading elsewhere."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from minigrad.models.checkpoint import load_checkpoint, model_from_checkpoint
from minigrad.models.errors import UserError
from minigrad.models.train import TrainConfig, train

from tests.conftest import tiny_config

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_train_writes_log_and_checkpoints(corpus, tmp_path):
    out = tmp_path / "out"
    summary = train(tiny_config(corpus, out, max_iters=25))
    assert summary["iter"] == 25 and not summary["interrupted"]
    records = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    assert [r["iter"] for r in records] == [0, 10, 20, 25]
    for r in records:
        assert set(r) == {"iter", "train_loss", "val_loss", "lr", "elapsed"}
    assert records[-1]["val_loss"] < records[0]["val_loss"]
    for name in ("ckpt", "best"):
        assert sorted(os.listdir(out / name)) == ["config.json", "model.safetensors",
                                                   "optimizer.safetensors"]
    assert sorted(p for p in os.listdir(out) if p.startswith(".")) == []  # no temp dirs left
    config, state, _ = load_checkpoint(out / "ckpt")
    assert config["iter"] == 25 and config["train"]["max_iters"] == 25
    assert config["best_val_loss"] == min(r["val_loss"] for r in records)
    assert "transformer.h.1.attn.c_attn.weight" in state


@pytest.mark.slow
def test_resume_is_exact(corpus, tmp_path):
    # Dropout on, so that minigrad's generator must be restored too; lr_decay_iters fixed,
    # so that the 50-iteration run follows the 100-iteration schedule.
    common = dict(lr_decay_iters=100, dropout=0.1, eval_interval=25)
    train(tiny_config(corpus, tmp_path / "a", max_iters=100, **common))
    train(tiny_config(corpus, tmp_path / "b", max_iters=50, **common))
    train(tiny_config(corpus, tmp_path / "b", max_iters=100, resume=True, **common))
    _, a, (a_opt, a_meta) = load_checkpoint(tmp_path / "a" / "ckpt")
    _, b, (b_opt, b_meta) = load_checkpoint(tmp_path / "b" / "ckpt")
    assert a.keys() == b.keys() and a_opt.keys() == b_opt.keys()
    for name in a:
        np.testing.assert_array_equal(a[name], b[name], err_msg=name)
    for name in a_opt:
        np.testing.assert_array_equal(a_opt[name], b_opt[name], err_msg=name)
    assert a_meta == b_meta
    lines = (tmp_path / "b" / "log.jsonl").read_text().splitlines()
    assert [json.loads(line)["iter"] for line in lines] == [0, 25, 50, 75, 100]


def test_resume_without_checkpoint_is_a_user_error(corpus, tmp_path):
    with pytest.raises(UserError, match="no checkpoint"):
        train(tiny_config(corpus, tmp_path / "none", resume=True))


def test_checkpoint_loads_in_a_fresh_process(corpus, tmp_path):
    out = tmp_path / "out"
    train(tiny_config(corpus, out, max_iters=5))
    model, tokenizer = model_from_checkpoint(out / "ckpt")
    ids = tokenizer.encode("First Citizen")[None, :]
    logits, _ = model(ids)
    script = (
        "import sys, numpy as np\n"
        "from minigrad.models.checkpoint import model_from_checkpoint\n"
        "model, tok = model_from_checkpoint(sys.argv[1])\n"
        "logits, _ = model(tok.encode('First Citizen')[None, :])\n"
        "np.save(sys.argv[2], logits.data)\n"
    )
    result = tmp_path / "logits.npy"
    subprocess.run([sys.executable, "-c", script, str(out / "ckpt"), str(result)], check=True,
                   cwd=ROOT)
    # The same weights; the logits agree to float32 rounding (a threaded BLAS may sum in
    # another order in another process).
    np.testing.assert_allclose(np.load(result, allow_pickle=False), logits.data, rtol=1e-5,
                               atol=1e-6)


def test_interrupted_save_falls_back_to_old_and_mixed_files_are_refused(corpus, tmp_path):
    out = tmp_path / "out"
    train(tiny_config(corpus, out, max_iters=5))
    # A crash between the two renames of a save leaves only <ckpt>.old.
    os.rename(out / "ckpt", out / "ckpt.old")
    config, _, _ = load_checkpoint(out / "ckpt")
    assert config["iter"] == 5
    # Files of two different saves (here best/ and ckpt/) are never mixed silently.
    os.replace(out / "best" / "model.safetensors", out / "ckpt.old" / "model.safetensors")
    with pytest.raises(ValueError, match="different saves"):
        load_checkpoint(out / "ckpt")


def test_config_errors_name_the_field_not_the_flag():
    with pytest.raises(ValueError, match=r"^max_iters must be >= 0, got -1$"):
        TrainConfig(max_iters=-1)
    with pytest.raises(ValueError, match=r"^eval_iters must be positive, got 0$"):
        TrainConfig(eval_iters=0)


def test_evaluation_records_no_graph(corpus, tmp_path, monkeypatch):
    # estimate_loss runs its forwards under no_grad (as nanoGPT's @torch.no_grad()): a
    # graph would save every activation for a backward that never comes.
    from minigrad.models import gpt as gpt_module

    import minigrad as mg

    modes = []
    forward = gpt_module.GPT.forward

    def recording(self, *args, **kwargs):
        modes.append((self.training, mg.is_grad_enabled()))
        return forward(self, *args, **kwargs)

    monkeypatch.setattr(gpt_module.GPT, "forward", recording)
    train(tiny_config(corpus, tmp_path / "out", max_iters=3))
    evaluation = [grad for training, grad in modes if not training]
    assert evaluation and not any(evaluation)
    assert all(grad for training, grad in modes if training)  # training steps keep theirs


def test_evaluation_in_groups_gives_the_batch_by_batch_mean(corpus, tmp_path, monkeypatch):
    # estimate_loss runs several batches per forward; each split's loss must still be the
    # mean of the eval_iters batch losses, also when the last group is short (2, 2, 1).
    import types

    from minigrad.models import train as train_module

    import minigrad as mg

    cfg = tiny_config(corpus, tmp_path / "out", eval_iters=5)
    model, _, data, _, _ = train_module._setup(cfg)
    monkeypatch.setattr(train_module, "_EVAL_TOKENS", 2 * cfg.batch_size * cfg.block_size)
    got = train_module.estimate_loss(model, data, cfg, cfg.block_size,
                                     types.SimpleNamespace(requested=False))
    model.eval()
    for split in ("train", "val"):
        rng = np.random.default_rng([cfg.seed, 1])
        with mg.no_grad():
            want = [model(*data.get_batch(split, cfg.batch_size, cfg.block_size, rng))[1].item()
                    for _ in range(cfg.eval_iters)]
        assert got[split] == pytest.approx(np.mean(want), rel=1e-6)
        assert len(set(want)) == cfg.eval_iters  # five different batches, not one repeated

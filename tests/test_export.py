"""`minigrad export`: nanoGPT's files for a run, read back with torch. The model in nanoGPT's
layout (tests/torch_gpt.py) reproduces minigrad's logits; the optimizer state loads into
torch.optim.AdamW with nanoGPT's groups, and one step from it matches minigrad's next step."""

import ast
import os
import pickle
import sys

import numpy as np
import pytest
import torch
from minigrad.models.checkpoint import load_checkpoint, model_from_checkpoint
from minigrad.models.data import CharDataset, CharTokenizer, load_text
from minigrad.models.export import CONFIG_FILE, export
from minigrad.models.gpt import GPT, GPTConfig
from minigrad.models.train import train

import minigrad as mg
from minigrad import optim
from minigrad.cli import main
from tests.conftest import tiny_config
from tests.torch_gpt import TorchGPT


@pytest.fixture(scope="module", params=[False, True], ids=["no-bias", "bias"])
def run(request, tmp_path_factory):
    """A short training run (iter 12, checkpoint with AdamW state): (run dir, corpus path)."""
    root = tmp_path_factory.mktemp("export")
    corpus = root / "tiny.txt"
    corpus.write_text(load_text("shakespeare")[:20_000], encoding="utf-8")
    out = root / "run"
    train(tiny_config(str(corpus), out, max_iters=12, eval_interval=6, bias=request.param))
    return out, corpus


def read_ckpt(path):
    # weights_only=True: what torch.load (and so nanoGPT) does by default since torch 2.6.
    return torch.load(path, map_location="cpu", weights_only=True)


def nanogpt_optimizer(model, weight_decay, lr, betas):
    """nanoGPT's GPT.configure_optimizers, verbatim in substance."""
    param_dict = {pn: p for pn, p in model.named_parameters() if p.requires_grad}
    decay = [p for n, p in param_dict.items() if p.dim() >= 2]
    no_decay = [p for n, p in param_dict.items() if p.dim() < 2]
    groups = [{"params": decay, "weight_decay": weight_decay},
              {"params": no_decay, "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=lr, betas=betas)


def torch_model(ckpt):
    a = ckpt["model_args"]
    model = TorchGPT(a["vocab_size"], a["block_size"], a["n_layer"], a["n_head"], a["n_embd"],
                     bias=a["bias"])
    model.load_state_dict(ckpt["model"], strict=True)
    return model


def test_files_read_back_with_torch(run, tmp_path):
    run_dir, corpus = run
    summary = export(str(run_dir), str(tmp_path / "out"))
    ckpt = read_ckpt(tmp_path / "out" / "ckpt.pt")
    config, state, _ = load_checkpoint(str(run_dir / "ckpt"))
    assert set(ckpt) == {"model", "optimizer", "model_args", "iter_num", "best_val_loss",
                         "config"}
    assert list(ckpt["model"]) == list(state)  # nanoGPT's names, in its order
    for name, array in state.items():
        np.testing.assert_array_equal(ckpt["model"][name].numpy(), array)
    m = config["model"]
    assert ckpt["model_args"] == {k: m[k] for k in ("n_layer", "n_head", "n_embd",
                                                    "block_size", "bias", "vocab_size",
                                                    "dropout")}
    assert ckpt["iter_num"] == config["iter"] == 12
    assert ckpt["best_val_loss"] == pytest.approx(config["best_val_loss"])
    assert ckpt["config"]["dataset"] == summary["dataset"] == "minigrad_tiny"
    assert ckpt["config"]["batch_size"] == 4 and ckpt["config"]["init_from"] == "resume"

    data_dir = tmp_path / "out" / "data" / "minigrad_tiny"
    with open(data_dir / "meta.pkl", "rb") as f:
        meta = pickle.load(f)  # nanoGPT's reader; minigrad itself never unpickles
    vocab = config["vocab"]
    assert meta == {"vocab_size": len(vocab), "itos": dict(enumerate(vocab)),
                    "stoi": {c: i for i, c in enumerate(vocab)}}
    dataset = CharDataset(corpus.read_text(encoding="utf-8"), CharTokenizer.from_list(vocab))
    for split in ("train", "val"):
        ids = np.fromfile(data_dir / f"{split}.bin", dtype=np.uint16)
        np.testing.assert_array_equal(ids, dataset.split_data(split))
    assert len(dataset.train_data) == int(0.9 * 20_000)


def test_nanogpt_layout_model_reproduces_minigrad_logits(run, tmp_path):
    run_dir, _ = run
    export(str(run_dir), str(tmp_path / "out"))
    ref = torch_model(read_ckpt(tmp_path / "out" / "ckpt.pt"))
    model, _ = model_from_checkpoint(str(run_dir))
    ids = np.random.default_rng(0).integers(0, model.config.vocab_size, size=(3, 16))
    with torch.no_grad():
        theirs = ref(torch.from_numpy(ids))[0].numpy()
    ours = model(ids)[0].data
    np.testing.assert_allclose(ours, theirs, rtol=1e-4, atol=1e-5)


def test_optimizer_state_resumes_in_torch_adamw_with_nanogpt_groups(run, tmp_path):
    """nanoGPT's resume: configure_optimizers, load_state_dict, one step; minigrad's next
    step from the same checkpoint on the same batch gives the same weights."""
    run_dir, corpus = run
    export(str(run_dir), str(tmp_path / "out"))
    ckpt = read_ckpt(tmp_path / "out" / "ckpt.pt")
    config, state, (opt_arrays, opt_meta) = load_checkpoint(str(run_dir / "ckpt"))
    t = config["train"]

    ref = torch_model(ckpt)
    topt = nanogpt_optimizer(ref, t["weight_decay"], t["lr"], (t["beta1"], t["beta2"]))
    topt.load_state_dict(ckpt["optimizer"])
    assert [len(g["params"]) for g in topt.param_groups] == [
        len(g["params"]) for g in opt_meta["param_groups"]]

    mg.manual_seed(0)
    model = GPT(GPTConfig(**config["model"]))
    model.load_state_dict(state)
    mopt = model.configure_optimizers(t["weight_decay"], t["lr"], (t["beta1"], t["beta2"]))
    mopt.load_state_dict(opt_arrays, opt_meta)

    dataset = CharDataset(corpus.read_text(encoding="utf-8"),
                          CharTokenizer.from_list(config["vocab"]))
    x, y = dataset.get_batch("train", 4, 16, np.random.default_rng(3))
    lr = optim.lr_warmup_cosine(ckpt["iter_num"], t["lr"], t["min_lr"], t["warmup_iters"],
                                t["max_iters"])
    for group in topt.param_groups:
        group["lr"] = lr
    _, loss = ref(torch.from_numpy(x), torch.from_numpy(y))
    loss.backward()
    torch.nn.utils.clip_grad_norm_(ref.parameters(), t["grad_clip"])
    topt.step()

    optim.set_lr(mopt, lr)
    _, mloss = model(x, y)
    mloss.backward()
    optim.clip_grad_norm_(list(model.parameters()), t["grad_clip"])
    mopt.step()

    assert mloss.item() == pytest.approx(loss.item(), rel=1e-5)
    after = ref.state_dict()
    moved = 0
    for name, array in model.state_dict().items():
        np.testing.assert_allclose(array, after[name].numpy(), rtol=1e-4, atol=2e-6,
                                   err_msg=name)
        moved += not np.allclose(array, state[name], rtol=0, atol=1e-7)
    assert moved == len(state)  # every weight moved
    # The step counts carried over: a fresh AdamW's first step would move each weight by ~lr.
    assert all(s["step"].item() == 13 for s in topt.state.values())


def test_config_file_is_nanogpt_config_for_resume(run, tmp_path):
    run_dir, _ = run
    summary = export(str(run_dir), str(tmp_path / "out"))
    path = tmp_path / "out" / CONFIG_FILE
    assert summary["config"] == str(path)
    values = {}
    for node in ast.parse(path.read_text()).body:  # nanoGPT exec's it: plain assignments
        assert isinstance(node, ast.Assign)
        values[node.targets[0].id] = ast.literal_eval(node.value)
    assert values["out_dir"] == str(tmp_path / "out")
    assert values["init_from"] == "resume" and values["dataset"] == "minigrad_tiny"
    assert values["block_size"] == 16 and values["batch_size"] == 4
    assert values["gradient_accumulation_steps"] == 1  # nanoGPT's default is 40
    assert (values["learning_rate"], values["min_lr"], values["warmup_iters"],
            values["max_iters"], values["lr_decay_iters"]) == (1e-3, 1e-4, 5, 12, 12)
    assert any(f"train.py {path}" in c for c in summary["commands"])
    assert any(f"sample.py --out_dir={tmp_path / 'out'}" in c for c in summary["commands"])


def test_cli_prints_the_nanogpt_commands(run, tmp_path, capsys):
    run_dir, _ = run
    out = tmp_path / "out"
    assert main(["export", str(run_dir), str(out)]) == 0
    printed = capsys.readouterr().out
    assert f"python sample.py --out_dir={out}" in printed
    assert f"python train.py {out / CONFIG_FILE}" in printed
    assert f"cp -r {out / 'data' / 'minigrad_tiny'} data/" in printed
    assert "data/minigrad_tiny/" in printed


def test_existing_ckpt_pt_is_refused_unless_force(run, tmp_path, capsys):
    run_dir, _ = run
    out = tmp_path / "out"
    out.mkdir()
    (out / "ckpt.pt").write_bytes(b"theirs")
    assert main(["export", str(run_dir), str(out)]) == 2
    err = capsys.readouterr().err
    assert "ckpt.pt exists" in err and "--force" in err
    assert (out / "ckpt.pt").read_bytes() == b"theirs" and sorted(os.listdir(out)) == ["ckpt.pt"]
    assert main(["export", str(run_dir), str(out), "--force"]) == 0
    assert read_ckpt(out / "ckpt.pt")["iter_num"] == 12


def test_best_exports_the_best_checkpoint(run, tmp_path):
    run_dir, _ = run
    export(str(run_dir), str(tmp_path / "out"), best=True)
    best, _, _ = load_checkpoint(str(run_dir / "best"))
    assert read_ckpt(tmp_path / "out" / "ckpt.pt")["iter_num"] == best["iter"]


@pytest.mark.parametrize("make, words", [
    (lambda root: root / "none", ["no checkpoint", "config.json"]),
    (lambda root: _broken(root), ["config.json", "not a readable checkpoint"]),
])
def test_missing_or_corrupt_run_is_a_named_error_with_nothing_written(tmp_path, capsys, make,
                                                                      words):
    out = tmp_path / "out"
    assert main(["export", str(make(tmp_path)), str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("minigrad export: error: ")
    assert all(w in err[0] for w in words)
    assert not out.exists()


def _broken(root):
    (root / "broken" / "ckpt").mkdir(parents=True)
    (root / "broken" / "ckpt" / "config.json").write_text("{")
    return root / "broken"


def test_moved_corpus_is_named_and_data_overrides_it(run, tmp_path, capsys):
    run_dir, corpus = run
    moved = tmp_path / "elsewhere.txt"
    moved.write_bytes(corpus.read_bytes())
    corpus.rename(corpus.with_suffix(".moved"))
    try:
        assert main(["export", str(run_dir), str(tmp_path / "out")]) == 2
        err = capsys.readouterr().err
        assert "tiny.txt" in err and "--data" in err
        assert main(["export", str(run_dir), str(tmp_path / "out"), "--data", str(moved),
                     "--dataset", "shakes"]) == 0
        assert (tmp_path / "out" / "data" / "shakes" / "train.bin").is_file()
    finally:
        corpus.with_suffix(".moved").rename(corpus)


def test_without_torch_one_line_says_how_to_get_it(run, tmp_path, capsys, monkeypatch):
    run_dir, _ = run
    monkeypatch.setitem(sys.modules, "torch", None)  # import torch raises ImportError
    assert main(["export", str(run_dir), str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "pip install 'minigrad[torch]'" in err[0]
    assert not (tmp_path / "out").exists()


def test_sinusoidal_positions_are_refused(tmp_path, capsys):
    corpus = tmp_path / "tiny.txt"
    corpus.write_text(load_text("shakespeare")[:5000], encoding="utf-8")
    train(tiny_config(str(corpus), tmp_path / "run", max_iters=1, eval_interval=1,
                      pos_encoding="sinusoidal"))
    assert main(["export", str(tmp_path / "run"), str(tmp_path / "out")]) == 2
    assert "learned ones only" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_unwritable_out_dir_is_a_named_error(run, tmp_path, capsys):
    run_dir, _ = run
    (tmp_path / "file").write_text("not a directory")
    assert main(["export", str(run_dir), str(tmp_path / "file" / "out")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "cannot write to" in err[0] and "file/out" in err[0]

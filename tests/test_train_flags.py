"""`minigrad train`'s flags: nanoGPT's underscore spellings as hidden aliases, and the
defaults of nanoGPT's README CPU run, with no biases unless --bias."""

import json
from dataclasses import asdict, fields

import pytest
from minigrad.models.checkpoint import load_checkpoint
from minigrad.models.train import TrainConfig, train

from minigrad.cli import build_parser
from tests.conftest import tiny_config

# nanoGPT's README: python train.py config/train_shakespeare_char.py --device=cpu
# --compile=False --eval_iters=20 --log_interval=1 --block_size=64 --batch_size=12
# --n_layer=4 --n_head=4 --n_embd=128 --max_iters=2000 --lr_decay_iters=2000 --dropout=0.0
NANOGPT_README = ["--eval_iters=20", "--log_interval=1", "--block_size=64", "--batch_size=12",
                  "--n_layer=4", "--n_head=4", "--n_embd=128", "--max_iters=2000",
                  "--lr_decay_iters=2000", "--dropout=0.0"]
# That run's settings (config/train_shakespeare_char.py, then the README's overrides, on
# train.py's defaults for the rest), in minigrad's field names.
NANOGPT_RUN = dict(block_size=64, n_layer=4, n_head=4, n_embd=128, dropout=0.0, bias=False,
                   max_iters=2000, batch_size=12, lr=1e-3, min_lr=1e-4, warmup_iters=100,
                   weight_decay=0.1, beta1=0.9, beta2=0.99, grad_clip=1.0, eval_interval=250,
                   seed=1337)


def parse(*argv):
    args = vars(build_parser().parse_args(["train", *argv]))
    return {f.name: args[f.name] for f in fields(TrainConfig)}


def test_defaults_are_nanogpts_readme_cpu_run():
    cfg = asdict(TrainConfig())
    assert {k: cfg[k] for k in NANOGPT_RUN} == NANOGPT_RUN
    assert cfg["lr_decay_iters"] in (None, 2000)


def test_nanogpts_command_line_parses_to_the_defaults():
    ours = parse(*NANOGPT_README)
    assert ours == {**parse(), "eval_iters": 20, "log_interval": 1, "lr_decay_iters": 2000}


@pytest.mark.parametrize("name", [f.name for f in fields(TrainConfig)
                                  if "_" in f.name and f.name != "progress"])
def test_every_underscore_spelling_is_an_alias(name):
    default = getattr(TrainConfig(), name)
    if isinstance(default, bool):
        dashed = parse("--" + name.replace("_", "-"))
        assert parse("--" + name) == dashed and dashed[name] is True
        assert parse(f"--{name}=False")[name] is False
        return
    value = {str: "/tmp/x", int: "7", float: "0.25"}[type(default) if default is not None
                                                     else int]
    if name == "pos_encoding":
        value = "sinusoidal"
    dashed = parse("--" + name.replace("_", "-"), value)
    assert parse(f"--{name}={value}") == dashed
    assert dashed[name] != default


def test_nanogpt_only_names_and_switch_values():
    assert parse("--learning_rate=6e-4")["lr"] == 6e-4
    assert parse("--no_progress")["progress"] is False
    assert parse("--bias")["bias"] is True and parse("--bias=True")["bias"] is True
    assert parse("--bias=False")["bias"] is False and parse()["bias"] is False
    with pytest.raises(SystemExit):
        parse("--bias=maybe")


def test_help_shows_one_form(capsys):
    with pytest.raises(SystemExit):
        build_parser().parse_args(["train", "--help"])
    text = capsys.readouterr().out
    usage = text.split("\n\n")[0]
    options = [line.split()[0] for line in text.splitlines() if line.startswith("  -")]
    assert "--max-iters" in options and "--bias" in options and "--lr" in options
    assert not [o for o in options if "_" in o]
    assert "_ITERS" in usage and not [w for w in usage.split() if w.startswith("[--")
                                      and "_" in w.split()[0].strip("[")]
    assert "--max_iters=2000" in text  # the description names nanoGPT's spelling once


def test_no_biases_by_default_and_bias_adds_them(corpus, tmp_path):
    for bias in (False, True):
        out = tmp_path / f"bias-{bias}"
        train(tiny_config(corpus, out, max_iters=2, eval_interval=2, bias=bias))
        config, state, _ = load_checkpoint(str(out / "ckpt"))
        assert config["model"]["bias"] is bias
        biases = [k for k in state if k.endswith(".bias")]
        assert bool(biases) is bias
        if bias:  # every Linear and LayerNorm but the tied lm_head has one
            assert "transformer.h.0.attn.c_attn.bias" in biases
            assert "transformer.ln_f.bias" in biases


def test_resume_keeps_the_checkpoints_bias(corpus, tmp_path):
    out = tmp_path / "run"
    train(tiny_config(corpus, out, max_iters=2, eval_interval=2, bias=True))
    summary = train(tiny_config(corpus, out, max_iters=4, eval_interval=2, resume=True))
    assert summary["iter"] == 4
    config = json.loads((out / "ckpt" / "config.json").read_text())
    assert config["model"]["bias"] is True

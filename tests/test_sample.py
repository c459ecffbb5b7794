"""`minigrad sample` (in process): run directories and --best, nanoGPT's flag names, several
samples, streaming, the rate on stderr, and bad input refused with nothing written."""

from dataclasses import asdict

import numpy as np
import pytest
from minigrad.models.checkpoint import model_from_checkpoint, save_checkpoint
from minigrad.models.data import CharTokenizer
from minigrad.models.gpt import GPT, GPTConfig
from minigrad.models.sample import SEPARATOR, sample

import minigrad as mg
from minigrad.cli import main

VOCAB = "abc .\n"
CFG = dict(block_size=8, n_layer=1, n_head=2, n_embd=8)


def _save(path, seed):
    tokenizer = CharTokenizer.from_text(VOCAB)
    mg.manual_seed(seed)
    model = GPT(GPTConfig(vocab_size=tokenizer.vocab_size, **CFG))
    optimizer = model.configure_optimizers(0.1, 1e-3, (0.9, 0.99))
    state = {"model": asdict(model.config), "vocab": tokenizer.to_list(), "iter": 0,
             "best_val_loss": None, "elapsed": 0.0, "rng": {}}
    save_checkpoint(str(path), model, optimizer, state)


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    """A run directory whose ckpt/ and best/ hold different weights."""
    run = tmp_path_factory.mktemp("sample") / "run"
    _save(run / "ckpt", seed=0)
    _save(run / "best", seed=1)
    return run


def cli(capsys, *argv):
    status = main(["sample", *map(str, argv)])
    out, err = capsys.readouterr()
    return status, out, err


def test_run_directory_takes_ckpt_and_best_takes_best(run_dir, capsys):
    args = ("--prompt", "ab", "--num-chars", "30", "--seed", "3")
    by_run = cli(capsys, "--ckpt", run_dir, *args)
    assert by_run[0] == 0
    assert by_run[1] == cli(capsys, "--ckpt", run_dir / "ckpt", *args)[1]
    by_best = cli(capsys, "--ckpt", run_dir, "--best", *args)
    assert by_best[0] == 0
    assert by_best[1] == cli(capsys, "--ckpt", run_dir / "best", *args)[1]
    assert by_best[1] != by_run[1]  # the two checkpoints differ, so the texts do


def test_neither_checkpoint_nor_run_lists_what_it_looked_for(tmp_path, capsys):
    status, out, err = cli(capsys, "--ckpt", tmp_path)
    assert status == 2 and out == ""
    assert str(tmp_path / "config.json") in err and str(tmp_path / "ckpt" / "config.json") in err
    status, out, err = cli(capsys, "--ckpt", tmp_path, "--best")
    assert status == 2 and str(tmp_path / "best" / "config.json") in err


def test_best_on_a_checkpoint_itself_is_refused(run_dir, capsys):
    status, out, err = cli(capsys, "--ckpt", run_dir / "ckpt", "--best")
    assert status == 2 and out == "" and "--best takes a run directory" in err


def test_attention_takes_a_run_directory_and_best(run_dir, capsys):
    for extra in ([], ["--best"]):
        status = main(["attention", "--ckpt", str(run_dir), *extra, "--text", "abc",
                       "--position", "-1"])
        out, err = capsys.readouterr()
        assert status == 0, err
        assert out


def test_nanogpt_names_and_a_prompt_file(run_dir, tmp_path, capsys):
    ours = cli(capsys, "--ckpt", run_dir, "--prompt", "ca b", "--num-chars", "20")
    prompt = tmp_path / "prompt.txt"
    prompt.write_text("ca b", encoding="utf-8")
    theirs = cli(capsys, "--ckpt", run_dir, "--start", f"FILE:{prompt}",
                 "--max-new-tokens", "20")
    assert ours[0] == theirs[0] == 0
    assert ours[1] == theirs[1]
    assert ours[1].startswith("ca b") and len(ours[1]) == len("ca b") + 20 + 1


def test_missing_prompt_file_is_a_named_error(run_dir, tmp_path, capsys):
    status, out, err = cli(capsys, "--ckpt", run_dir, "--start", f"FILE:{tmp_path}/none.txt")
    assert status == 2 and out == ""
    assert "none.txt" in err and "cannot read" in err


def test_several_samples_continue_one_random_stream(run_dir, capsys):
    one = cli(capsys, "--ckpt", run_dir, "--prompt", "a", "--num-chars", "15")[1]
    status, three, err = cli(capsys, "--ckpt", run_dir, "--prompt", "a", "--num-chars", "15",
                             "--num-samples", "3")
    assert status == 0
    samples = three.split(SEPARATOR + "\n")
    assert len(samples) == 3 and samples[0] == one
    assert all(s.startswith("a") and len(s) == 1 + 15 + 1 for s in samples)
    assert len(set(samples)) > 1
    assert "45 tokens in" in err and "tokens/s" in err


def test_cache_and_no_cache_print_the_same_text(run_dir, capsys):
    args = ("--ckpt", run_dir, "--prompt", "ab", "--num-chars", "40", "--num-samples", "2")
    cached, uncached = cli(capsys, *args), cli(capsys, *args, "--no-cache")
    assert cached[1] == uncached[1]
    assert "with the key/value cache" in cached[2]
    assert "without the key/value cache" in uncached[2]


def test_characters_are_streamed_one_by_one(run_dir):
    class Recorder:
        def __init__(self):
            self.events = []

        def write(self, text):
            self.events.append(("write", text))

        def flush(self):
            self.events.append(("flush", None))

    rec, err = Recorder(), Recorder()
    texts = sample(str(run_dir), "ab", 12, out=rec, err=err)
    writes = [t for kind, t in rec.events if kind == "write"]
    assert writes[0] == "ab" and writes[-1] == "\n"
    assert writes[1:-1] == list(texts[0]) and len(texts[0]) == 12
    # Each character is flushed before the next one is written.
    kinds = [kind for kind, _ in rec.events]
    assert all(kinds[i + 1] == "flush" for i, k in enumerate(kinds) if k == "write")


@pytest.mark.parametrize("argv, words", [
    (["--temperature", "0"], ["--temperature", "> 0", "0"]),
    (["--temperature", "-1"], ["--temperature", "-1"]),
    (["--top-k", "0"], ["--top-k", "0"]),
    (["--top-k", "-3"], ["--top-k", "-3"]),
    (["--num-samples", "0"], ["--num-samples", "0"]),
    (["--num-samples", "-2"], ["--num-samples", "-2"]),
    (["--num-chars", "-1"], ["--num-chars", "-1"]),
    (["--prompt", "abZ"], ["prompt", "not in the vocabulary", "'Z' at position 2"]),
    (["--prompt", ""], ["prompt is empty"]),
])
def test_bad_input_is_a_named_error_with_nothing_written(run_dir, capsys, argv, words):
    status, out, err = cli(capsys, "--ckpt", run_dir, *argv)
    lines = err.strip().splitlines()
    assert status == 2 and out == ""
    assert len(lines) == 1 and lines[0].startswith("minigrad sample: error: ")
    for word in words:
        assert word in lines[0]


def test_sampled_ids_come_from_the_checkpoint_model(run_dir):
    """The text is the model's own generate, decoded: the same seed gives the same ids."""
    model, tokenizer = model_from_checkpoint(str(run_dir))
    model.eval()
    mg.manual_seed(5)
    ids = model.generate(tokenizer.encode("ab")[None, :], 25, temperature=0.8).data[0]

    class Sink:
        def write(self, text):
            pass

        def flush(self):
            pass

    texts = sample(str(run_dir), "ab", 25, temperature=0.8, seed=5, out=Sink(), err=Sink())
    assert texts[0] == tokenizer.decode(np.asarray(ids[2:]))

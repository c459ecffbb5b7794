"""The error-message table: each bad input at the public surface (layers, GPT, optimizers,
tensors, serialization, data, the command line) and the words its message must contain.

Op-level errors (matmul, reshape, reductions, indexing, ...) have their own table in
test_op_errors.py, and corrupt checkpoints theirs in test_checkpoint_files.py.
"""

from dataclasses import asdict

import numpy as np
import pytest
from minigrad.models.checkpoint import save_checkpoint
from minigrad.models.data import CharTokenizer, load_text
from minigrad.models.gpt import GPT, GPTConfig

import minigrad as mg
from minigrad import nn, optim
from minigrad.cli import main

P = [nn.Parameter(np.ones(3, np.float32))]
CFG = dict(vocab_size=6, block_size=8, n_layer=1, n_head=2, n_embd=8)


def gpt():
    mg.manual_seed(0)
    return GPT(GPTConfig(**CFG))


def load_linear(state):
    return nn.Linear(3, 4).load_state_dict(state)


W, B = np.ones((4, 3)), np.ones(4)
API_CASES = [
    # (call, exception type, words the message must contain)
    # layers
    (lambda: nn.Linear(3, 4)(mg.ones(2, 5)), ValueError, ["Linear", "(..., 3)", "(2, 5)"]),
    (lambda: nn.Linear(3, 4)(mg.tensor(1.0)), ValueError, ["Linear", "got shape ()"]),
    (lambda: nn.LayerNorm(4)(mg.ones(2, 3)), ValueError, ["layer_norm", "(2, 3)", "(4,)"]),
    (lambda: nn.Embedding(5, 2)(np.array([0, 5])), IndexError, ["embedding", "[0, 5)", "[5]"]),
    (lambda: nn.Embedding(5, 2)(np.array([-1])), IndexError, ["embedding", "[-1]"]),
    (lambda: nn.Embedding(5, 2)(np.array([0.5])), TypeError, ["embedding", "integers", "float"]),
    (lambda: nn.MultiHeadAttention(8, 2)(mg.ones(2, 8)), ValueError,
     ["MultiHeadAttention", "(B, T, 8)", "(2, 8)"]),
    (lambda: nn.MultiHeadAttention(8, 2)(mg.ones(1, 3, 6)), ValueError,
     ["MultiHeadAttention", "(B, T, 8)", "(1, 3, 6)"]),
    (lambda: nn.MultiHeadAttention(8, 3), ValueError, ["embed_dim=8", "num_heads=3"]),
    (lambda: nn.Dropout(1.5), ValueError, ["Dropout", "1.5"]),
    (lambda: nn.GELU("fast"), ValueError, ["GELU", "approximate must be 'none' or 'tanh'",
                                           "'fast'"]),
    (lambda: nn.Parameter(np.ones(3, int)), TypeError, ["Parameter", "floating", "int64"]),
    (lambda: load_linear({"weight": np.ones((3, 3)), "bias": B}), RuntimeError,
     ["size mismatch for weight", "(3, 3)", "(4, 3)"]),
    (lambda: load_linear({"weight": W}), RuntimeError, ["Missing key", '"bias"']),
    (lambda: load_linear({"weight": W, "bias": B, "extra": B}), RuntimeError,
     ["Unexpected key", '"extra"']),
    # GPT
    (lambda: gpt()(np.zeros((1, 9), int)), ValueError, ["GPT", "length 9", "block_size 8"]),
    (lambda: gpt()(np.array([[0, 6]])), ValueError, ["GPT", "vocab_size=6", "[6]"]),
    (lambda: gpt()(np.array([[0, -1]])), ValueError, ["GPT", "[-1]"]),
    (lambda: gpt()(np.zeros((1, 3)), None), TypeError, ["GPT", "integer", "float64"]),
    (lambda: gpt()(np.zeros(3, int)), ValueError, ["GPT", "(B, T)", "(3,)"]),
    (lambda: gpt()(np.zeros((1, 3), int), np.array([[0, 1, 9]])), IndexError,
     ["cross_entropy", "[0, 6)", "[9]"]),
    (lambda: gpt()(np.zeros((1, 3), int), np.array([[0, 1]])), ValueError,
     ["cross_entropy", "(3,)", "(2,)"]),
    (lambda: gpt().generate(np.zeros((1, 3), int), 2, temperature=0), ValueError,
     ["temperature", "0"]),
    (lambda: gpt().generate(np.zeros((1, 3), int), 2, top_k=0), ValueError, ["top_k", "0"]),
    (lambda: gpt().generate(np.zeros((1, 0), int), 2), ValueError, ["generate", "T >= 1"]),
    (lambda: GPTConfig(n_embd=10, n_head=4), ValueError, ["n_embd=10", "n_head=4", "divisible"]),
    (lambda: GPTConfig(vocab_size=0), ValueError, ["vocab_size", "positive", "0"]),
    (lambda: GPTConfig(block_size=2.5), ValueError, ["block_size", "2.5"]),
    (lambda: GPTConfig(dropout=1.0), ValueError, ["dropout", "1.0"]),
    (lambda: GPTConfig(pos_encoding="rotary"), ValueError, ["pos_encoding", "'rotary'"]),
    # optimizers
    (lambda: optim.AdamW(P, lr=-1), ValueError, ["AdamW", "lr -1"]),
    (lambda: optim.AdamW([mg.tensor([1, 2])]), TypeError, ["AdamW", "floating", "int"]),
    (lambda: optim.clip_grad_norm_(P, -1.0), ValueError, ["clip_grad_norm_", "-1.0"]),
    (lambda: mg.tensor(["a", "b"]), TypeError, ["Tensor", "numbers"]),
    (lambda: optim.AdamW(P, betas=(1.5, 0.9)), ValueError, ["AdamW", "betas (1.5, 0.9)"]),
    (lambda: optim.Adam(P, eps=-1), ValueError, ["Adam", "eps -1"]),
    (lambda: optim.AdamW(P, weight_decay=-1), ValueError, ["weight_decay -1"]),
    (lambda: optim.SGD([], lr=0.1), ValueError, ["SGD", "empty"]),
    (lambda: optim.SGD([np.ones(3)], lr=0.1), TypeError, ["SGD", "Tensors", "ndarray"]),
    (lambda: optim.SGD(P, lr=0.1, nesterov=True), ValueError, ["nesterov", "momentum"]),
    (lambda: optim.SGD(P, lr=0.1, momentum=-1), ValueError, ["momentum -1"]),
    (lambda: optim.SGD(P + P, lr=0.1), ValueError, ["more than"]),
    # tensors and the graph
    (lambda: mg.tensor(np.ones(3, dtype=int), requires_grad=True), TypeError,
     ["requires_grad", "floating", "int64"]),
    (lambda: mg.ones(3, requires_grad=True).sum(axis=0).exp().backward(np.ones(2)),
     (ValueError, RuntimeError), ["backward"]),
    (lambda: mg.ones(3, requires_grad=True).exp().backward(), RuntimeError,
     ["backward", "scalar"]),
    (lambda: mg.ones(3).backward(), RuntimeError, ["backward", "does not require grad"]),
    # serialization
    (lambda: mg.save({"w": [1, 2]}, "x.safetensors"), TypeError, ["save", "'w'", "list"]),
    (lambda: mg.save({1: np.ones(2)}, "x.safetensors"), TypeError, ["save", "name 1", "str"]),
    (lambda: mg.save(np.ones(2), "x.safetensors"), TypeError, ["save", "dict", "ndarray"]),
    (lambda: mg.save({"w": np.ones(2, complex)}, "x.safetensors"), TypeError,
     ["save", "'w'", "complex128"]),
    (lambda: mg.save({"w": np.ones(2)}, "x.safetensors", {"a": 1}), TypeError,
     ["metadata", "'a'", "int"]),
    (lambda: mg.save({"w": np.ones(2)}, "no/such/dir/x.safetensors"), FileNotFoundError,
     ["no/such/dir/x.safetensors", "does not exist"]),
    (lambda: mg.load("no/such/file.safetensors"), FileNotFoundError,
     ["no/such/file.safetensors"]),
    # data
    (lambda: CharTokenizer.from_text("abc").encode("abz"), ValueError,
     ["not in the vocabulary", "'z' at position 2"]),
    (lambda: CharTokenizer.from_text(""), ValueError, ["empty"]),
    (lambda: CharTokenizer.from_text("ab").decode(np.array([0, 5])), ValueError, ["5"]),
    (lambda: load_text("no/such/corpus.txt"), FileNotFoundError,
     ["no such file", "no/such/corpus.txt"]),
]


@pytest.mark.parametrize("call,exc,words", API_CASES,
                         ids=[f"{i}-{case[2][0]}" for i, case in enumerate(API_CASES)])
def test_api_error_message(call, exc, words, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # relative paths in the table land in an empty directory
    with pytest.raises(exc) as info:
        call()
    message = str(info.value)
    for word in words:
        assert word in message, f"{word!r} not in {message!r}"


# ----- the command line: one line on stderr, exit status 2, no traceback ----------------


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """The files the command-line cases refer to, as {name: path}."""
    root = tmp_path_factory.mktemp("cli")
    paths = {"root": root}
    text = load_text("shakespeare")[:5000]
    for name, content in {"corpus": text, "empty": "", "short": "To be, or not",
                          "binary": b"\xff\xfe\x00abc", "file": "a regular file"}.items():
        paths[name] = root / f"{name}.txt"
        if isinstance(content, bytes):
            paths[name].write_bytes(content)
        else:
            paths[name].write_text(content, encoding="utf-8")
    # A tiny checkpoint whose vocabulary is "abc .\n" (so "ROMEO" is outside it).
    tokenizer = CharTokenizer.from_text("abc .\n")
    mg.manual_seed(0)
    model = GPT(GPTConfig(**{**CFG, "vocab_size": tokenizer.vocab_size}))
    optimizer = model.configure_optimizers(0.1, 1e-3, (0.9, 0.99))
    state = {"model": asdict(model.config), "vocab": tokenizer.to_list(), "iter": 0,
             "best_val_loss": None, "elapsed": 0.0, "rng": {}}
    paths["ckpt"] = root / "ckpt"
    save_checkpoint(str(paths["ckpt"]), model, optimizer, state)
    # A run directory whose checkpoint does not fit the corpus (another vocabulary).
    save_checkpoint(str(root / "run" / "ckpt"), model, optimizer, state)
    paths["run"] = root / "run"
    paths["broken"] = root / "broken"
    paths["broken"].mkdir()
    (paths["broken"] / "config.json").write_text("{")
    paths["broken_run"] = root / "broken_run"
    (paths["broken_run"] / "ckpt").mkdir(parents=True)
    (paths["broken_run"] / "ckpt" / "config.json").write_text("[]")
    return paths


CLI_CASES = {
    # name: (argv with {placeholders} from `files`, words the one line must contain)
    "missing_corpus": (["train", "--data", "{root}/missing.txt"], ["no such file",
                                                                  "missing.txt"]),
    "empty_corpus": (["train", "--data", "{empty}"], ["empty.txt", "is empty"]),
    "corpus_is_a_directory": (["train", "--data", "{root}"], ["is a directory"]),
    "corpus_not_utf8": (["train", "--data", "{binary}"], ["binary.txt", "not valid UTF-8"]),
    "corpus_shorter_than_block": (["train", "--data", "{short}", "--block-size", "32"],
                                  ["short.txt", "too few for block_size 32"]),
    "n_embd_not_divisible": (["train", "--data", "{corpus}", "--n-embd", "10", "--n-head",
                              "4"], ["n_embd=10", "n_head=4", "divisible"]),
    "zero_layers": (["train", "--data", "{corpus}", "--n-layer", "0"], ["n_layer", "0"]),
    "negative_block_size": (["train", "--data", "{corpus}", "--block-size", "-4"],
                            ["block_size", "-4"]),
    "dropout_one": (["train", "--data", "{corpus}", "--dropout", "1.0"], ["dropout", "1.0"]),
    "negative_lr": (["train", "--data", "{corpus}", "--lr", "-0.1"], ["--lr must be > 0"]),
    "min_lr_above_lr": (["train", "--data", "{corpus}", "--min-lr", "0.1"],
                        ["--min-lr must be in [0, lr=0.001]", "0.1"]),
    "zero_batch_size": (["train", "--data", "{corpus}", "--batch-size", "0"],
                        ["--batch-size", "0"]),
    "out_dir_under_a_file": (["train", "--data", "{corpus}", "--out-dir", "{file}/out"],
                             ["--out-dir", "file.txt/out", "Not a directory"]),
    "out_dir_in_proc": (["train", "--data", "{corpus}", "--out-dir", "/proc/minigrad-out"],
                        ["--out-dir", "/proc/minigrad-out", "cannot write"]),
    "resume_without_checkpoint": (["train", "--data", "{corpus}", "--out-dir", "{root}/none",
                                   "--resume"], ["no checkpoint", "none/ckpt"]),
    "resume_with_another_vocabulary": (["train", "--data", "{corpus}", "--out-dir", "{run}",
                                        "--resume"], ["corpus.txt", "checkpoint's vocabulary"]),
    "resume_broken_checkpoint": (["train", "--data", "{corpus}", "--out-dir", "{broken_run}",
                                  "--resume"], ["broken_run/ckpt/config.json", "JSON list"]),
    "sample_no_checkpoint": (["sample", "--ckpt", "{root}/none"], ["no checkpoint"]),
    "sample_broken_checkpoint": (["sample", "--ckpt", "{broken}"],
                                 ["broken/config.json", "not a readable checkpoint"]),
    "sample_checkpoint_is_a_file": (["sample", "--ckpt", "{file}"], ["no checkpoint"]),
    "prompt_outside_vocabulary": (["sample", "--ckpt", "{ckpt}", "--prompt", "ROMEO"],
                                  ["prompt", "not in the vocabulary", "'R' at position 0"]),
    "empty_prompt": (["sample", "--ckpt", "{ckpt}", "--prompt", ""], ["prompt is empty"]),
    "zero_temperature": (["sample", "--ckpt", "{ckpt}", "--temperature", "0"],
                         ["--temperature", "0"]),
    "zero_top_k": (["sample", "--ckpt", "{ckpt}", "--top-k", "0"], ["--top-k", "0"]),
    "negative_num_chars": (["sample", "--ckpt", "{ckpt}", "--num-chars", "-1"],
                           ["--num-chars", "-1"]),
    "attention_text_outside_vocabulary": (["attention", "--ckpt", "{ckpt}", "--text", "xyz"],
                                          ["--text", "not in the vocabulary"]),
    "attention_text_too_long": (["attention", "--ckpt", "{ckpt}", "--text", "a" * 9],
                                ["--text", "9 characters", "block_size=8"]),
}


@pytest.mark.parametrize("case", sorted(CLI_CASES))
def test_cli_user_error_is_one_line_with_status_2(case, files, capsys):
    argv, words = CLI_CASES[case]
    argv = [a.format(**files) for a in argv]
    if argv[0] == "train":  # should a case not fail, let it not train for long
        argv += ["--no-progress", "--max-iters", "1", "--eval-iters", "1"]
    status = main(argv)
    out, err = capsys.readouterr()
    lines = err.strip().splitlines()
    assert status == 2, err
    assert len(lines) == 1 and "Traceback" not in err, err
    assert lines[0].startswith(f"minigrad {argv[0]}: error: "), lines[0]
    for word in words:
        assert word in lines[0], f"{word!r} not in {lines[0]!r}"


def test_the_table_is_large():
    # The closing note reports these counts.
    assert len(API_CASES) + len(CLI_CASES) >= 70

"""A corrupt, foreign or mismatched checkpoint directory is refused with a ValueError that
names the file and the problem, and nothing in it is ever unpickled.

Each of the three files is damaged in each way (truncated, bit-flipped, empty, a pickle,
a wrong header); then config.json is made valid JSON but wrong (missing keys, another
format_version, a model that does not match the weights), and the tensor files are made
valid safetensors files but wrong (missing, unexpected, reshaped or integer weights, an
optimizer state that does not fit), with their checksums updated so that only the check
under test can catch them.
"""

import json
import os
import pickle
import shutil
from dataclasses import asdict

import numpy as np
import pytest
from minigrad.models.checkpoint import (
    CONFIG_FILE,
    MODEL_FILE,
    OPTIMIZER_FILE,
    _config_digest,
    _sha256,
    load_checkpoint,
    model_from_checkpoint,
    save_checkpoint,
)
from minigrad.models.data import CharTokenizer
from minigrad.models.gpt import GPT, GPTConfig

import minigrad as mg

VOCAB = "abc .\n"
MODEL = dict(vocab_size=len(VOCAB), block_size=8, n_layer=1, n_head=2, n_embd=8)


@pytest.fixture(scope="module")
def pristine(tmp_path_factory):
    """A valid checkpoint of a tiny GPT after one AdamW step (so the optimizer has state)."""
    mg.manual_seed(0)
    model = GPT(GPTConfig(**MODEL))
    optimizer = model.configure_optimizers(0.1, 1e-3, (0.9, 0.99))
    ids = np.array([[0, 1, 2, 3, 4, 5]])
    model(ids, ids)[1].backward()
    optimizer.step()
    path = tmp_path_factory.mktemp("pristine") / "ckpt"
    save_checkpoint(str(path), model, optimizer, {
        "model": asdict(model.config), "vocab": CharTokenizer.from_text(VOCAB).to_list(),
        "iter": 1, "best_val_loss": None, "elapsed": 0.0, "rng": {}})
    return path


@pytest.fixture
def ckpt(pristine, tmp_path):
    path = tmp_path / "ckpt"
    shutil.copytree(pristine, path)
    return path


class _Payload:
    """Unpickling this creates the file it names: proof that a pickle was executed."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return open, (self.marker, "w")


def _flip_bit(data, index):
    data = bytearray(data)
    data[index] ^= 0x01
    return bytes(data)


# How each file is damaged: name -> (bytes -> bytes). "pickle" is filled in per test, with
# a payload whose marker file must not appear.
DAMAGE = {
    "truncated": lambda b: b[: len(b) // 2],
    "truncated_end": lambda b: b[:-2],  # config.json: its last "}" (a newline is no damage)
    "bit_flip_first_byte": lambda b: _flip_bit(b, 0),
    "bit_flip_middle": lambda b: _flip_bit(b, len(b) // 2),
    "bit_flip_last_byte": lambda b: _flip_bit(b, len(b) - 2),  # before config's final "}\n"
    "empty": lambda b: b"",
    "pickle": None,
    "wrong_header": lambda b: b"\x10\x00\x00\x00\x00\x00\x00\x00" + b"[1, 2, 3]" + b[17:],
    "zeros": lambda b: bytes(len(b)),
}
FILES = (MODEL_FILE, OPTIMIZER_FILE, CONFIG_FILE)


def assert_refused(path, *words):
    """load_checkpoint(path) and model_from_checkpoint(path) raise ValueError whose message
    contains every word; returns the message."""
    with pytest.raises(ValueError) as info:
        load_checkpoint(path)
    message = str(info.value)
    for word in words:
        assert str(word) in message, f"{word!r} not in {message!r}"
    with pytest.raises(ValueError):
        model_from_checkpoint(path)
    return message


@pytest.mark.parametrize("damage", sorted(DAMAGE))
@pytest.mark.parametrize("file", FILES)
def test_damaged_file_is_refused_naming_it(ckpt, tmp_path, file, damage):
    target = ckpt / file
    marker = tmp_path / "unpickled"
    if damage == "pickle":
        content = pickle.dumps({"w": _Payload(str(marker))})
    else:
        content = DAMAGE[damage](target.read_bytes())
    assert content != target.read_bytes()
    target.write_bytes(content)
    assert_refused(ckpt, target)
    assert not marker.exists(), "a pickle was executed"


def test_pristine_checkpoint_loads(pristine):
    config, state, (arrays, meta) = load_checkpoint(pristine)
    assert config["iter"] == 1 and config["format_version"] == 3
    assert set(config["sha256"]) == {MODEL_FILE, OPTIMIZER_FILE}
    assert "transformer.wte.weight" in state and arrays and meta["steps"]


def test_missing_file_is_refused(ckpt):
    for file in (MODEL_FILE, OPTIMIZER_FILE):
        shutil.copytree(ckpt, ckpt.parent / file)
        os.remove(ckpt.parent / file / file)
        assert_refused(ckpt.parent / file, file)


# ----- config.json: valid JSON, wrong content ------------------------------------------


def edit_config(ckpt, change):
    config = json.loads((ckpt / CONFIG_FILE).read_text())
    change(config)
    if "config_sha256" in config:  # keep it consistent: the test is about the change
        config["config_sha256"] = _config_digest(config)
    (ckpt / CONFIG_FILE).write_text(json.dumps(config))


def _set(path, value):
    def change(config):
        *keys, last = path
        for key in keys:
            config = config[key]
        config[last] = value
    return change


def _delete(key):
    return lambda config: config.pop(key)


CONFIG_CASES = {
    # name: (change to config.json, words the message must contain)
    "garbage": (None, ["not JSON"]),
    "json_list": (lambda c: c.clear(), ["missing key(s)", "format_version"]),
    "no_format_version": (_delete("format_version"), ["format_version None"]),
    "old_format_version": (_set(["format_version"], 1), ["format_version 1", "reads"]),
    "future_format_version": (_set(["format_version"], 99), ["format_version 99"]),
    "string_format_version": (_set(["format_version"], "2"), ["format_version '2'"]),
    "no_model": (_delete("model"), ["missing key(s) model"]),
    "no_vocab": (_delete("vocab"), ["missing key(s) vocab"]),
    "no_checkpoint_id": (_delete("checkpoint_id"), ["checkpoint_id"]),
    "no_sha256": (_delete("sha256"), ["sha256"]),
    "sha256_of_another_file": (_set(["sha256", MODEL_FILE], "0" * 64),
                               [MODEL_FILE, "sha256", "corrupt"]),
    "other_checkpoint_id": (_set(["checkpoint_id"], "feedfacefeedface"), ["different saves"]),
    "model_not_a_dict": (_set(["model"], [8, 2]), ["model:"]),
    "model_unknown_field": (_set(["model", "n_experts"], 4), ["model:", "n_experts"]),
    "model_impossible": (_set(["model", "n_head"], 3), ["model:", "divisible"]),
    "vocab_duplicates": (_set(["vocab"], list("aac .\n")), ["vocab:", "duplicate"]),
    "vocab_too_short": (_set(["vocab"], list("abc")), ["3 characters", "vocab_size is 6"]),
    "n_embd_differs": (_set(["model", "n_embd"], 16),
                       [MODEL_FILE, "shape (6, 8)", "(6, 16)", "n_embd=16"]),
    "vocab_size_differs": (lambda c: (_set(["model", "vocab_size"], 7)(c),
                                      _set(["vocab"], list("abcd .\n"))(c)),
                           [MODEL_FILE, "transformer.wte.weight", "(7, 8)"]),
    "more_layers": (_set(["model", "n_layer"], 2), [MODEL_FILE, "Missing key(s)", "h.1"]),
    "no_bias": (_set(["model", "bias"], False), [MODEL_FILE, "Unexpected key(s)", "bias"]),
    "block_size_differs": (_set(["model", "block_size"], 4),
                           ["transformer.wpe.weight", "(8, 8)", "(4, 8)"]),
}


def test_config_edited_by_hand_is_refused(ckpt):
    config = json.loads((ckpt / CONFIG_FILE).read_text())
    config["best_val_loss"] = 0.5  # not checked by anything else: only the digest sees it
    (ckpt / CONFIG_FILE).write_text(json.dumps(config))
    assert_refused(ckpt, CONFIG_FILE, "config_sha256")


@pytest.mark.parametrize("case", sorted(CONFIG_CASES))
def test_wrong_config_is_refused(ckpt, case):
    change, words = CONFIG_CASES[case]
    if change is None:
        (ckpt / CONFIG_FILE).write_text("model: gpt\nn_layer = 4\n")
    elif case == "json_list":
        (ckpt / CONFIG_FILE).write_text("[1, 2]")
        words = ["a JSON list, not an object"]
    else:
        edit_config(ckpt, change)
    assert_refused(ckpt, *words)


# ----- tensor files: valid safetensors, wrong content ----------------------------------


def rewrite(ckpt, file, change):
    """Rewrite a tensor file with change(arrays) applied, keeping its metadata, and record
    its new checksum, so that the file passes every check but the one under test."""
    path = ckpt / file
    arrays, meta = mg.load(path), mg.load_metadata(path)
    change(arrays)
    mg.save(arrays, path, meta)
    edit_config(ckpt, _set(["sha256", file], _sha256(path)))


def rewrite_optimizer_meta(ckpt, change):
    path = ckpt / OPTIMIZER_FILE
    arrays, meta = mg.load(path), mg.load_metadata(path)
    opt = json.loads(meta["optimizer"])
    change(opt)
    mg.save(arrays, path, {**meta, "optimizer": json.dumps(opt)})
    edit_config(ckpt, _set(["sha256", OPTIMIZER_FILE], _sha256(path)))


WTE = "transformer.wte.weight"
TENSOR_CASES = {
    "weight_missing": (MODEL_FILE, lambda a: a.pop("transformer.ln_f.bias"),
                       ["Missing key(s)", "transformer.ln_f.bias"]),
    "weight_unexpected": (MODEL_FILE, lambda a: a.update(extra=np.ones(2, np.float32)),
                          ["Unexpected key(s)", "extra"]),
    "weight_wrong_shape": (MODEL_FILE, lambda a: a.update({WTE: a[WTE][:5]}),
                           [WTE, "(5, 8)", "(6, 8)"]),
    "weight_int64": (MODEL_FILE, lambda a: a.update({WTE: a[WTE].astype(np.int64)}),
                     [WTE, "int64", "floating"]),
    "weight_bool": (MODEL_FILE, lambda a: a.update({WTE: a[WTE] > 0}), [WTE, "bool"]),
    "moment_wrong_shape": (OPTIMIZER_FILE, lambda a: a.update({"state.0.exp_avg": np.ones(3)}),
                           ["does not fit", "state.0.exp_avg", "(3,)"]),
    "moment_missing": (OPTIMIZER_FILE, lambda a: a.pop("state.0.exp_avg_sq"),
                       ["does not fit", "exp_avg_sq"]),
    "moment_int": (OPTIMIZER_FILE,
                   lambda a: a.update({"state.0.exp_avg": a["state.0.exp_avg"].astype(np.int32)}),
                   ["state.0.exp_avg", "int32", "floating"]),
}


@pytest.mark.parametrize("case", sorted(TENSOR_CASES))
def test_wrong_tensors_are_refused(ckpt, case):
    file, change, words = TENSOR_CASES[case]
    rewrite(ckpt, file, change)
    assert_refused(ckpt, ckpt / file, *words)


OPTIMIZER_META_CASES = {
    "no_param_groups": (lambda m: m.pop("param_groups"), ["missing key 'param_groups'"]),
    "fewer_groups": (lambda m: m["param_groups"].pop(), ["param groups"]),
    "group_sizes_differ": (lambda m: m["param_groups"][0]["params"].pop(), ["param groups"]),
    "no_steps": (lambda m: m.pop("steps"), ["missing key 'steps'"]),
}


@pytest.mark.parametrize("case", sorted(OPTIMIZER_META_CASES))
def test_optimizer_state_that_does_not_fit_is_refused(ckpt, case):
    change, words = OPTIMIZER_META_CASES[case]
    rewrite_optimizer_meta(ckpt, change)
    assert_refused(ckpt, ckpt / OPTIMIZER_FILE, "does not fit", *words)


def test_refusal_leaves_minigrad_random_stream_alone(pristine):
    mg.manual_seed(3)
    expected = mg.randn(4).data
    mg.manual_seed(3)
    load_checkpoint(pristine)
    np.testing.assert_array_equal(mg.randn(4).data, expected)


def test_loading_never_uses_pickle():
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    for package in ("minigrad", "models"):
        for folder, _, names in os.walk(os.path.join(root, package)):
            for name in names:
                if name.endswith(".py"):
                    text = open(os.path.join(folder, name), encoding="utf-8").read()
                    for word in ("pickle.load", "Unpickler", "np.load(", "torch.load(",
                                 "allow_pickle=True"):
                        assert word not in text, f"{word} in {name}"
                    # Only `minigrad export` writes a pickle (nanoGPT's meta.pkl), never reads.
                    if (package, name) != ("models", "export.py"):
                        assert "import pickle" not in text, f"import pickle in {name}"

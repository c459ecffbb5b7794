"""Checkpoint directories: save, load, validate, and find one inside a run directory.

A checkpoint is a directory of three files:
- model.safetensors: the model's state_dict (for the GPT, nanoGPT's names);
- optimizer.safetensors: the AdamW moment buffers, with the group settings and step counts
  in its metadata;
- config.json: format_version, the model kind and config, the vocabulary, the run state
  (iteration, RNG states, best validation loss, settings) and the sha256 of both tensor
  files.
Nothing is ever unpickled, every write is atomic, and everything is checked before a
checkpoint is used. A run directory (`minigrad train --out-dir RUN`) holds RUN/ckpt (the
last checkpoint) and RUN/best (the best validation loss); `resolve_checkpoint` accepts
either kind of directory.
"""

from __future__ import annotations

import glob
import hashlib
import json
import os
import secrets
import shutil

import numpy as np
from minigrad.models.data import CharTokenizer
from minigrad.models.errors import UserError
from minigrad.models.gpt import GPT, GPTConfig
from minigrad.models.seq2seq import Seq2Seq, Seq2SeqConfig

import minigrad as mg
from minigrad import random
from minigrad.serialization import atomic_write_text, fsync_directory

__all__ = ["CONFIG_FILE", "MODEL_FILE", "MODEL_KINDS", "OPTIMIZER_FILE", "load_checkpoint",
           "model_from_checkpoint", "register_model_kind", "resolve_checkpoint",
           "save_checkpoint"]

# 2: config.json records the sha256 of both tensor files; 3: and of its own other content.
FORMAT_VERSION = 3
_READABLE_VERSIONS = (2, 3)
MODEL_FILE = "model.safetensors"
OPTIMIZER_FILE = "optimizer.safetensors"
CONFIG_FILE = "config.json"
# What config.json must hold: save_checkpoint's own keys and what a model needs.
_CONFIG_KEYS = ("format_version", "checkpoint_id", "sha256", "model", "vocab")
# The model kinds a checkpoint may hold: kind -> (config dataclass, model class). A
# config.json without "kind" holds a GPT (checkpoints written before there were two).
MODEL_KINDS = {"gpt": (GPTConfig, GPT), "seq2seq": (Seq2SeqConfig, Seq2Seq)}


def register_model_kind(kind, config_class, model_class):
    """Let checkpoints hold another model kind; its model takes `config_class(**config)`
    and has `state_dict`, `load_state_dict` and `configure_optimizers` (as the GPT's)."""
    MODEL_KINDS[kind] = (config_class, model_class)


def _sha256(file):
    with open(file, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def _config_digest(config):
    """sha256 of config.json's content other than this digest, in a canonical form."""
    rest = {k: v for k, v in config.items() if k != "config_sha256"}
    return hashlib.sha256(json.dumps(rest, sort_keys=True).encode("utf-8")).hexdigest()


def save_checkpoint(path, model, optimizer, state):
    """Write a checkpoint directory at `path` from the model, its optimizer and `state` (a
    JSON-able dict with at least "model" (its config as a dict) and "vocab"; "kind" defaults
    to "gpt"), plus a fresh checkpoint id written into all three files.

    Atomicity: the three files are written (each fsynced) into a new sibling directory,
    which then replaces `path` by two renames: the old directory moves aside to
    `<path>.old`, the new one moves to `path`, and the old one is deleted. So `path` holds
    either the complete old checkpoint or the complete new one, never a mix; a crash
    between the two renames leaves no `path` but a complete `<path>.old`, which
    `load_checkpoint` falls back to. A reader racing with a save can still open files of
    two saves; the shared checkpoint id lets `load_checkpoint` detect that and fail
    instead of mixing them.
    """
    path = os.path.abspath(path)
    parent, name = os.path.split(path)
    ckpt_id = secrets.token_hex(8)
    # A save killed before its renames leaves its temporary directory behind: never a
    # checkpoint, only litter, so clear it before writing a new one.
    for stale in glob.glob(os.path.join(glob.escape(parent), f".{name}.tmp-*")):
        shutil.rmtree(stale, ignore_errors=True)
    tmp = os.path.join(parent, f".{name}.tmp-{ckpt_id}")
    os.makedirs(tmp)
    try:
        meta = {"checkpoint_id": ckpt_id}
        mg.save(model.state_dict(), os.path.join(tmp, MODEL_FILE), meta)
        arrays, opt_meta = optimizer.state_dict()
        mg.save(arrays, os.path.join(tmp, OPTIMIZER_FILE),
                {**meta, "optimizer": json.dumps(opt_meta)})
        # safetensors has no checksum; with these, a bit flip anywhere in the weights is
        # refused on load instead of silently changing the model.
        sha256 = {f: _sha256(os.path.join(tmp, f)) for f in (MODEL_FILE, OPTIMIZER_FILE)}
        config = {"format_version": FORMAT_VERSION, "kind": "gpt", **state, **meta,
                  "sha256": sha256}
        config["config_sha256"] = _config_digest(config)
        atomic_write_text(os.path.join(tmp, CONFIG_FILE), json.dumps(config, indent=1) + "\n")
        old = path + ".old"
        if os.path.exists(path):
            shutil.rmtree(old, ignore_errors=True)
            os.replace(path, old)
        os.replace(tmp, path)
        fsync_directory(parent)  # the renames themselves survive a power cut
        shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def resolve_checkpoint(path, best=False):
    """The checkpoint directory that `path` names: `path` itself when it is a checkpoint,
    else RUN/ckpt of a run directory (RUN/best with `best`). Raises UserError listing the
    places it looked when there is none."""
    path = os.path.abspath(path)

    def is_checkpoint(p):
        return any(os.path.isfile(os.path.join(q, CONFIG_FILE)) for q in (p, p + ".old"))

    if is_checkpoint(path):
        if best:
            raise UserError(f"--best takes a run directory (with best/ inside), but {path} "
                            "is a checkpoint itself")
        return path
    inside = os.path.join(path, "best" if best else "ckpt")
    if is_checkpoint(inside):
        return inside
    looked = [os.path.join(path, CONFIG_FILE), os.path.join(inside, CONFIG_FILE)]
    raise UserError(f"no checkpoint at {path}: looked for {' and '.join(looked)} (a "
                    "checkpoint directory, or a run directory of `minigrad train --out-dir`)")


def _read_config(path, kind):
    """config.json of the checkpoint directory `path`, checked: a JSON object of this
    format_version with every key of _CONFIG_KEYS, of model kind `kind` (None: any), with a
    valid model config and a vocabulary of its vocab_size. Returns (config, model config)."""
    file = os.path.join(path, CONFIG_FILE)

    def bad(reason):
        return UserError(f"{file}: not a readable checkpoint: {reason}")

    try:
        with open(file, "rb") as f:
            config = json.loads(f.read().decode("utf-8"))
    except OSError as e:
        raise bad(e.strerror) from None
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise bad(f"not JSON ({e})") from None
    if not isinstance(config, dict):
        raise bad(f"a JSON {type(config).__name__}, not an object")
    version = config.get("format_version")
    if version not in _READABLE_VERSIONS:
        raise bad(f"unknown format_version {version!r} (this minigrad reads format_version "
                  f"{' and '.join(map(str, _READABLE_VERSIONS))})")
    if version >= 3 and config.get("config_sha256") != _config_digest(config):
        raise bad("corrupt: its content does not match the config_sha256 it records")
    missing = [k for k in _CONFIG_KEYS if k not in config]
    if missing:
        raise bad(f"missing key(s) {', '.join(missing)}")
    have = config.setdefault("kind", "gpt")
    if have not in MODEL_KINDS:
        raise bad(f"unknown model kind {have!r} (known: {', '.join(MODEL_KINDS)})")
    if kind is not None and have != kind:
        raise UserError(f"{path}: a {have} checkpoint, but this needs a {kind} one")
    sha256 = config["sha256"]
    if not (isinstance(sha256, dict) and all(
            isinstance(sha256.get(f), str) for f in (MODEL_FILE, OPTIMIZER_FILE))):
        raise bad(f"sha256 must map {MODEL_FILE} and {OPTIMIZER_FILE} to hex digests")
    config_class = MODEL_KINDS[have][0]
    try:
        model_config = config_class(**config["model"])
    except (TypeError, ValueError) as e:
        raise bad(f"model: {e}") from None
    try:
        tokenizer = CharTokenizer.from_list(config["vocab"])
    except (TypeError, ValueError) as e:
        raise bad(f"vocab: {e}") from None
    if tokenizer.vocab_size != model_config.vocab_size:
        raise bad(f"the vocabulary has {tokenizer.vocab_size} characters but the model's "
                  f"vocab_size is {model_config.vocab_size}")
    return config, model_config


def _build(kind, model_config):
    """A model of the configured shape, built with minigrad's generator saved and restored,
    so that loading a checkpoint never moves the random stream."""
    rng_state = random.get_rng_state()
    try:
        return MODEL_KINDS[kind][1](model_config)
    finally:
        random.set_rng_state(rng_state)


def _check_state(path, model, model_state, opt_arrays, opt_meta):
    """Load the weights into `model` (exact names and shapes, floating dtypes) and check
    that the optimizer state fits it; raise UserError naming the file and the problem."""
    model_file, opt_file = os.path.join(path, MODEL_FILE), os.path.join(path, OPTIMIZER_FILE)
    for file, arrays, what in ((model_file, model_state, "weights"),
                               (opt_file, opt_arrays, "optimizer state")):
        for name, array in arrays.items():
            if not np.issubdtype(array.dtype, np.floating):
                raise UserError(f"{file}: {name} has dtype {array.dtype}; {what} must be "
                                "floating point")
    try:
        model.load_state_dict(model_state)
    except RuntimeError as e:
        detail = str(e).split("\n", 1)[-1].replace("\n\t", "; ").strip()
        raise UserError(f"{model_file}: does not fit the model that {CONFIG_FILE} describes "
                        f"({model.config}): {detail}") from None
    optimizer = model.configure_optimizers(0.0, 1e-3, (0.9, 0.99))
    try:
        optimizer.load_state_dict(opt_arrays, opt_meta)
    except (KeyError, TypeError, ValueError) as e:
        reason = f"missing key {e}" if isinstance(e, KeyError) else str(e)
        raise UserError(f"{opt_file}: the optimizer state does not fit the model that "
                        f"{CONFIG_FILE} describes: {reason}") from None


def _load(path, kind):
    """(config, model with the weights loaded, optimizer (arrays, meta)), all checked."""
    path = os.path.abspath(path)
    if not os.path.isfile(os.path.join(path, CONFIG_FILE)):
        if os.path.isfile(os.path.join(path + ".old", CONFIG_FILE)):
            path += ".old"  # a save was interrupted between its two renames
        else:
            raise UserError(f"no checkpoint at {path} (expected {CONFIG_FILE}, "
                            f"{MODEL_FILE} and {OPTIMIZER_FILE} there)")
    config, model_config = _read_config(path, kind)
    files = [os.path.join(path, MODEL_FILE), os.path.join(path, OPTIMIZER_FILE)]
    try:
        model_state, opt_arrays = (mg.load(f) for f in files)
        metas = [mg.load_metadata(f) for f in files]
    except OSError as e:
        raise UserError(f"{e.filename}: not a readable checkpoint: {e.strerror}") from None
    except ValueError as e:
        raise UserError(str(e)) from None  # mg.load's message names the file and the problem
    if any(m.get("checkpoint_id") != config["checkpoint_id"] for m in metas):
        raise UserError(f"{path}: the files belong to different saves (a save ran while "
                        "reading); read it again")
    for file in files:
        if _sha256(file) != config["sha256"][os.path.basename(file)]:
            raise UserError(f"{file}: corrupt: its bytes do not match the sha256 recorded in "
                            f"{CONFIG_FILE}")
    try:
        opt_meta = json.loads(metas[1]["optimizer"])
    except (KeyError, json.JSONDecodeError) as e:
        raise UserError(f"{files[1]}: not a readable checkpoint: no valid 'optimizer' "
                        f"metadata ({e})") from None
    model = _build(config["kind"], model_config)
    _check_state(path, model, model_state, opt_arrays, opt_meta)
    return config, model, model_state, (opt_arrays, opt_meta)


def load_checkpoint(path, kind="gpt"):
    """Read and check a checkpoint directory: returns (config dict, model state_dict,
    optimizer (arrays, meta)).

    Everything is checked before anything is returned: config.json must be a JSON object of
    this format_version with the keys that save_checkpoint writes, of model kind `kind`
    (None accepts any), with a valid model config and a vocabulary of its size; both tensor
    files must be well-formed safetensors files of the same save, with the sha256 recorded
    in config.json; the weights must have exactly the names, shapes and a floating dtype of
    the model that config.json describes; the optimizer state must fit that model. Any
    problem, or no checkpoint at all, raises UserError (a ValueError) naming the file and
    what is wrong.
    """
    config, _, model_state, opt = _load(path, kind)
    return config, model_state, opt


def model_from_checkpoint(path, kind="gpt", best=False):
    """(model with the checkpoint's weights, its CharTokenizer) from a checkpoint or run
    directory (see `resolve_checkpoint`), for sampling and study. `kind` None accepts any
    model kind. Raises UserError as `load_checkpoint` does."""
    config, model, _, _ = _load(resolve_checkpoint(path, best), kind)
    return model, CharTokenizer.from_list(config["vocab"])

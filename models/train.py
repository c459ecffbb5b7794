"""Train the character GPT, nanoGPT's train.py in minigrad, with exact checkpoints.

    cfg = TrainConfig(out_dir="out", max_iters=2000)   # defaults: nanoGPT's CPU baby GPT
    summary = train(cfg)                                # or: minigrad train --max-iters 2000

The loop: every eval_interval iterations (and at the end) estimate the train and val loss,
append them to OUT/log.jsonl, redraw OUT/loss.png and save the checkpoint OUT/ckpt (and
OUT/best when val improved); each iteration sets the learning rate (warmup + cosine),
runs forward and backward, clips the gradient norm and steps AdamW.

Resuming is exact: a checkpoint holds the weights, the optimizer moments, the iteration,
and the states of both random generators (minigrad's, for dropout, and the batch sampler's),
and evaluation draws its batches from a generator of its own, so a run of 100 iterations
and a run of 50 resumed for 50 more end with identical weights.
"""

from __future__ import annotations

import contextlib
import glob
import hashlib
import importlib.util
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass

import numpy as np
from minigrad.models.data import CharDataset, CharTokenizer, load_text
from minigrad.models.gpt import GPT, GPTConfig
from tqdm import tqdm

import minigrad as mg
from minigrad import optim, random
from minigrad.serialization import atomic_write_text, fsync_directory

__all__ = ["NonFiniteLossError", "TrainConfig", "UserError", "load_checkpoint",
           "model_from_checkpoint", "save_checkpoint", "train"]

FORMAT_VERSION = 2  # 2: config.json records the sha256 of both tensor files
MODEL_FILE = "model.safetensors"
OPTIMIZER_FILE = "optimizer.safetensors"
CONFIG_FILE = "config.json"
# What config.json must hold: save_checkpoint's own keys and what a model needs; and what
# train() adds, which resuming needs.
_CONFIG_KEYS = ("format_version", "checkpoint_id", "sha256", "model", "vocab")
_RESUME_KEYS = ("iter", "best_val_loss", "elapsed", "rng")


class UserError(ValueError):
    """A problem with what the user asked for (a missing, unreadable or mixed-up corpus or
    checkpoint, a bad setting): the command line prints it as one line and exits with
    status 2."""


class NonFiniteLossError(RuntimeError):
    """The loss (or the weights) became NaN or infinite: training stopped without saving the
    bad state, so the last good checkpoint is intact; the command line exits with status 3."""


@dataclass
class TrainConfig:
    """Every setting of a training run; the defaults are nanoGPT's CPU "baby GPT" run on
    tiny Shakespeare (config/train_shakespeare_char.py with its README's CPU overrides)."""

    data: str = "shakespeare"  # a bundled corpus name or a path to a UTF-8 text file
    out_dir: str = "out"
    resume: bool = False  # continue from OUT/ckpt
    # model (ignored on resume: the checkpoint's model is continued)
    block_size: int = 64
    n_layer: int = 4
    n_head: int = 4
    n_embd: int = 128
    dropout: float = 0.0
    pos_encoding: str = "learned"
    # optimization
    max_iters: int = 2000
    batch_size: int = 12
    lr: float = 1e-3
    min_lr: float = 1e-4
    warmup_iters: int = 100
    lr_decay_iters: int | None = None  # None: decay until max_iters
    weight_decay: float = 0.1
    beta1: float = 0.9
    beta2: float = 0.99
    grad_clip: float = 1.0  # 0 disables clipping
    # evaluation and logging
    eval_interval: int = 250
    eval_iters: int = 200
    log_interval: int = 10  # progress-bar refresh, in iterations
    seed: int = 1337
    progress: bool = True  # show the tqdm bar

    def __post_init__(self):
        for name in ("max_iters", "warmup_iters"):
            if getattr(self, name) < 0:
                raise UserError(f"--{name.replace('_', '-')} must be >= 0, got "
                                f"{getattr(self, name)}")
        for name in ("batch_size", "eval_interval", "eval_iters", "log_interval"):
            if getattr(self, name) <= 0:
                raise UserError(f"--{name.replace('_', '-')} must be positive, got "
                                f"{getattr(self, name)}")
        if not (self.lr > 0 and 0 <= self.min_lr <= self.lr):
            raise UserError(f"need 0 <= min_lr <= lr and lr > 0, got lr={self.lr}, "
                            f"min_lr={self.min_lr}")

    @property
    def decay_iters(self):
        """The iteration at which the cosine reaches min_lr."""
        return self.max_iters if self.lr_decay_iters is None else self.lr_decay_iters


# ---------------------------------------------------------------------------------------
# Checkpoints
# ---------------------------------------------------------------------------------------


def _sha256(file):
    with open(file, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def save_checkpoint(path, model, optimizer, state):
    """Write a checkpoint directory at `path`: model.safetensors (the state_dict, nanoGPT's
    names), optimizer.safetensors (moment buffers; group settings and step counts in its
    metadata) and config.json (format_version, `state`: model config, vocabulary,
    iteration, RNG states, best val loss, train settings; and the sha256 of both tensor
    files), plus a fresh checkpoint id written into all three.

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
        config = {"format_version": FORMAT_VERSION, **state, **meta, "sha256": sha256}
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


def _read_config(path):
    """config.json of the checkpoint directory `path`, checked: a JSON object of this
    format_version with every key of _CONFIG_KEYS, a valid model config and a vocabulary
    of its vocab_size."""
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
    if config.get("format_version") != FORMAT_VERSION:
        raise bad(f"unknown format_version {config.get('format_version')!r} (this minigrad "
                  f"reads format_version {FORMAT_VERSION})")
    missing = [k for k in _CONFIG_KEYS if k not in config]
    if missing:
        raise bad(f"missing key(s) {', '.join(missing)}")
    sha256 = config["sha256"]
    if not (isinstance(sha256, dict) and all(
            isinstance(sha256.get(f), str) for f in (MODEL_FILE, OPTIMIZER_FILE))):
        raise bad(f"sha256 must map {MODEL_FILE} and {OPTIMIZER_FILE} to hex digests")
    try:
        model_config = GPTConfig(**config["model"])
    except (TypeError, ValueError) as e:
        raise bad(f"model: {e}") from None
    try:
        tokenizer = CharTokenizer.from_list(config["vocab"])
    except (TypeError, ValueError) as e:
        raise bad(f"vocab: {e}") from None
    if tokenizer.vocab_size != model_config.vocab_size:
        raise bad(f"the vocabulary has {tokenizer.vocab_size} characters but the model's "
                  f"vocab_size is {model_config.vocab_size}")
    return config


def _check_state(path, model_config, model_state, opt_arrays, opt_meta):
    """Check that the weights are exactly those of a GPT(model_config) (names, shapes,
    floating dtypes) and that the optimizer state fits that model; raise UserError naming
    the file and the first problem."""
    model_file, opt_file = os.path.join(path, MODEL_FILE), os.path.join(path, OPTIMIZER_FILE)
    # A model of the configured shape to compare with; built with minigrad's generator
    # saved and restored, so that loading a checkpoint never moves the random stream.
    rng_state = random.get_rng_state()
    try:
        model = GPT(model_config)
    finally:
        random.set_rng_state(rng_state)
    expected = model.state_dict()
    for names, kind in (([n for n in expected if n not in model_state], "missing"),
                        ([n for n in model_state if n not in expected], "unexpected")):
        if names:
            raise UserError(f"{model_file}: {kind} weight(s) {', '.join(names[:4])} for the "
                            f"model that {CONFIG_FILE} describes")
    for name, want in expected.items():
        got = model_state[name]
        if got.shape != want.shape:
            raise UserError(f"{model_file}: {name} has shape {got.shape} but the model that "
                            f"{CONFIG_FILE} describes ({model_config}) needs {want.shape}")
        if not np.issubdtype(got.dtype, np.floating):
            raise UserError(f"{model_file}: {name} has dtype {got.dtype}; weights must be "
                            "floating point")
    for name, array in opt_arrays.items():
        if not np.issubdtype(array.dtype, np.floating):
            raise UserError(f"{opt_file}: {name} has dtype {array.dtype}; optimizer state "
                            "must be floating point")
    optimizer = model.configure_optimizers(0.0, 1e-3, (0.9, 0.99))
    try:
        optimizer.load_state_dict(opt_arrays, opt_meta)
    except (KeyError, TypeError, ValueError) as e:
        reason = f"missing key {e}" if isinstance(e, KeyError) else str(e)
        raise UserError(f"{opt_file}: the optimizer state does not fit the model that "
                        f"{CONFIG_FILE} describes: {reason}") from None


def load_checkpoint(path):
    """Read and check a checkpoint directory: returns (config dict, model state_dict,
    optimizer (arrays, meta)).

    Everything is checked before anything is returned, and nothing is ever unpickled:
    config.json must be a JSON object of this format_version with the keys that
    save_checkpoint writes, a valid model config and a vocabulary of its size; both tensor
    files must be well-formed safetensors files of the same save, with the sha256 recorded
    in config.json; the weights must have exactly the names, shapes and a floating dtype of
    the model that config.json describes; the optimizer state must fit that model. Any
    problem, or no checkpoint at all, raises UserError (a ValueError) naming the file and
    what is wrong.
    """
    path = os.path.abspath(path)
    if not os.path.isfile(os.path.join(path, CONFIG_FILE)):
        if os.path.isfile(os.path.join(path + ".old", CONFIG_FILE)):
            path += ".old"  # a save was interrupted between its two renames
        else:
            raise UserError(f"no checkpoint at {path} (expected {CONFIG_FILE}, "
                            f"{MODEL_FILE} and {OPTIMIZER_FILE} there)")
    config = _read_config(path)
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
    _check_state(path, GPTConfig(**config["model"]), model_state, opt_arrays, opt_meta)
    return config, model_state, (opt_arrays, opt_meta)


def model_from_checkpoint(path):
    """(GPT with the checkpoint's weights, its CharTokenizer), for sampling and study.
    Raises UserError as `load_checkpoint` does."""
    config, model_state, _ = load_checkpoint(path)
    model = GPT(GPTConfig(**config["model"]))
    model.load_state_dict(model_state)
    return model, CharTokenizer.from_list(config["vocab"])


# ---------------------------------------------------------------------------------------
# Logging
# ---------------------------------------------------------------------------------------


def _read_log(path):
    if not os.path.exists(path):
        return []
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def _write_log(path, records):
    """Rewrite the whole (small) log atomically rather than append, so that a crash never
    leaves a half-written line."""
    atomic_write_text(path, "".join(json.dumps(r) + "\n" for r in records))


class _LossPlotter:
    """Redraws OUT/loss.png after each evaluation in a child process (minigrad.models.plot), so that
    matplotlib stays out of the training process's memory; at most one child at a time."""

    def __init__(self):
        self.available = importlib.util.find_spec("matplotlib") is not None
        self.child = None

    def update(self, log_path, png_path):
        if not self.available:
            return
        self.close()
        self.child = subprocess.Popen(
            [sys.executable, "-m", "minigrad.models.plot", log_path, png_path],
            stdout=subprocess.DEVNULL,
        )

    def close(self):
        if self.child is not None:
            self.child.wait()
            self.child = None


# ---------------------------------------------------------------------------------------
# The loop
# ---------------------------------------------------------------------------------------


class _StopRequest:
    """Turn the first Ctrl-C into a request checked between iterations, so that the
    checkpoint written on the way out is consistent (never half an optimizer step); a
    second Ctrl-C interrupts at once."""

    def __init__(self):
        self.requested = False
        self._previous = None

    def _handle(self, signum, frame):
        self.requested = True
        signal.signal(signal.SIGINT, self._previous)

    def __enter__(self):
        try:
            self._previous = signal.signal(signal.SIGINT, self._handle)
        except ValueError:
            self._previous = None  # not the main thread: Ctrl-C cannot reach us anyway
        return self

    def __exit__(self, *exc):
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)


@mg.no_grad()
def estimate_loss(model, data, cfg, block_size, stop):
    """Mean loss over eval_iters batches of each split, in eval mode (no dropout).

    The batches come from a generator seeded afresh from cfg.seed each time: every
    evaluation sees the same batches (a lower-variance comparison between evaluations),
    and evaluating never moves the training batch sampler. Returns None if stopped.
    """
    model.eval()
    out = {}
    for split in CharDataset.SPLITS:
        rng = np.random.default_rng([cfg.seed, 1])
        losses = np.empty(cfg.eval_iters)
        for k in range(cfg.eval_iters):
            if stop.requested:
                model.train()
                return None
            x, y = data.get_batch(split, cfg.batch_size, block_size, rng)
            losses[k] = model(x, y)[1].item()
        out[split] = float(losses.mean())
    model.train()
    return out


def _prepare_out_dir(out_dir):
    """Create out_dir and check that files can be written there, so that a bad --out-dir
    fails at once with a one-line message rather than after the first evaluation."""
    try:
        os.makedirs(out_dir, exist_ok=True)
        tempfile.TemporaryFile(dir=out_dir).close()
    except OSError as e:
        raise UserError(f"--out-dir {out_dir}: cannot write there ({e.strerror})") from None


def _setup(cfg):
    """Build (model, optimizer, dataset, batch rng, run state) for a new or resumed run."""
    try:
        text = load_text(cfg.data)
    except (FileNotFoundError, ValueError) as e:
        raise UserError(str(e)) from None
    ckpt_path = os.path.join(cfg.out_dir, "ckpt")
    if cfg.resume:
        saved, model_state, (opt_arrays, opt_meta) = load_checkpoint(ckpt_path)
        tokenizer = CharTokenizer.from_list(saved["vocab"])
        model_config = GPTConfig(**saved["model"])
    else:
        tokenizer = CharTokenizer.from_text(text)
        try:
            model_config = GPTConfig(
                vocab_size=tokenizer.vocab_size, block_size=cfg.block_size,
                n_layer=cfg.n_layer, n_head=cfg.n_head, n_embd=cfg.n_embd,
                dropout=cfg.dropout, pos_encoding=cfg.pos_encoding)
        except ValueError as e:
            raise UserError(str(e)) from None
    try:
        data = CharDataset(text, tokenizer)
    except ValueError as e:
        raise UserError(f"{cfg.data}: {e} (the checkpoint's vocabulary)") from None
    for split in CharDataset.SPLITS:
        n = len(data.split_data(split))
        if n < model_config.block_size + 1:
            raise UserError(f"{cfg.data}: the {split} split has {n} characters, too few for "
                            f"block_size {model_config.block_size}")

    if not cfg.resume:
        mg.manual_seed(cfg.seed)
    model = GPT(model_config)
    optimizer = model.configure_optimizers(cfg.weight_decay, cfg.lr, (cfg.beta1, cfg.beta2))
    batch_rng = np.random.default_rng(cfg.seed)
    run = {"iter": 0, "best_val_loss": None, "elapsed": 0.0}
    if cfg.resume:
        model.load_state_dict(model_state)
        optimizer.load_state_dict(opt_arrays, opt_meta)
        bad = f"{os.path.join(ckpt_path, CONFIG_FILE)}: cannot resume from it:"
        missing = [k for k in _RESUME_KEYS if k not in saved]
        if missing:
            raise UserError(f"{bad} missing key(s) {', '.join(missing)}")
        if isinstance(saved["iter"], bool) or not isinstance(saved["iter"], int):
            raise UserError(f"{bad} iter must be an int, got {saved['iter']!r}")
        try:
            random.set_rng_state(saved["rng"]["minigrad"])
            batch_rng.bit_generator.state = saved["rng"]["batch"]
        except (KeyError, TypeError, ValueError) as e:
            raise UserError(f"{bad} bad rng state ({e!r})") from None
        run = {k: saved[k] for k in run}
    return model, optimizer, data, batch_rng, run


def train(cfg: TrainConfig):
    """Run (or resume) training as configured; returns a summary dict: iter, train_loss and
    val_loss (of the last evaluation), best_val_loss, elapsed (wall seconds, all sessions),
    ms_per_iter and tokens_per_sec (training steps of this session, evaluations excluded;
    None without steps), interrupted."""
    model, optimizer, data, batch_rng, run = _setup(cfg)
    _prepare_out_dir(cfg.out_dir)
    log_path = os.path.join(cfg.out_dir, "log.jsonl")
    # Evaluations after the checkpoint belong to a run that is being replaced.
    log = [r for r in _read_log(log_path) if r["iter"] <= run["iter"]] if cfg.resume else []
    logged = {r["iter"] for r in log}
    block_size = model.config.block_size
    params = list(model.parameters())
    tokens_per_iter = cfg.batch_size * block_size
    start_iter = it = run["iter"]
    t0 = time.perf_counter() - run["elapsed"]
    last = {}
    eval_seconds = 0.0  # of this session, spent evaluating and saving
    saved_iter = run["iter"] if cfg.resume else None  # of the newest OUT/ckpt

    def diverged(what):
        """Stop the run: nothing non-finite is ever saved, so OUT/ckpt stays as it was."""
        ckpt = os.path.join(cfg.out_dir, "ckpt")
        kept = ("no checkpoint was saved" if saved_iter is None else
                f"the last good checkpoint {ckpt} (iter {saved_iter}) is kept")
        raise NonFiniteLossError(f"{what} at iter {it}: training stopped; {kept} "
                                 "(try a lower --lr)")

    def checkpoint(name):
        nonlocal saved_iter
        if not all(np.isfinite(p.data).all() for p in params):
            diverged("the weights hold NaN or Inf")
        state = {
            "model": asdict(model.config), "vocab": data.tokenizer.to_list(),
            "iter": it, "best_val_loss": run["best_val_loss"],
            "elapsed": time.perf_counter() - t0,
            "rng": {"minigrad": random.get_rng_state(), "batch": batch_rng.bit_generator.state},
            "train": asdict(cfg),
        }
        save_checkpoint(os.path.join(cfg.out_dir, name), model, optimizer, state)
        if name == "ckpt":
            saved_iter = it

    def evaluate():
        nonlocal eval_seconds
        eval_start = time.perf_counter()
        losses = estimate_loss(model, data, cfg, block_size, stop)
        if losses is None:
            return
        for split, value in losses.items():
            if not np.isfinite(value):
                diverged(f"the {split} loss is {value}")
        last.update(losses)
        record = {"iter": it, "train_loss": losses["train"], "val_loss": losses["val"],
                  "lr": optim.lr_warmup_cosine(it, cfg.lr, cfg.min_lr, cfg.warmup_iters,
                                               cfg.decay_iters),
                  "elapsed": round(time.perf_counter() - t0, 3)}
        log.append(record)
        logged.add(it)
        _write_log(log_path, log)
        plotter.update(log_path, os.path.join(cfg.out_dir, "loss.png"))
        bar.write(f"iter {it}: train loss {losses['train']:.4f}, val loss {losses['val']:.4f}")
        if run["best_val_loss"] is None or losses["val"] < run["best_val_loss"]:
            run["best_val_loss"] = losses["val"]
            checkpoint("best")
        checkpoint("ckpt")
        eval_seconds += time.perf_counter() - eval_start

    plotter = _LossPlotter()
    bar = tqdm(total=cfg.max_iters, initial=start_iter, disable=not cfg.progress,
               unit="it", dynamic_ncols=True)
    window_start, window_iters = time.perf_counter(), 0
    # The bar and the plotter's child are closed however the loop ends (a NaN, an error).
    with _StopRequest() as stop, bar, contextlib.closing(plotter):
        while it < cfg.max_iters and not stop.requested:
            if it % cfg.eval_interval == 0 and it not in logged:
                evaluate()
                if stop.requested:
                    break
            optim.set_lr(optimizer, optim.lr_warmup_cosine(
                it, cfg.lr, cfg.min_lr, cfg.warmup_iters, cfg.decay_iters))
            x, y = data.get_batch("train", cfg.batch_size, block_size, batch_rng)
            _, loss = model(x, y)
            if not np.isfinite(loss.data):  # stop before the bad step reaches the weights
                diverged(f"the training loss is {loss.item()}")
            loss.backward()
            if cfg.grad_clip > 0:
                optim.clip_grad_norm_(params, cfg.grad_clip)
            optimizer.step()
            optimizer.zero_grad()
            it += 1
            window_iters += 1
            if window_iters == cfg.log_interval:
                now = time.perf_counter()
                rate = window_iters * tokens_per_iter / (now - window_start)
                bar.set_postfix(loss=f"{loss.item():.4f}", tok_s=f"{rate:,.0f}", refresh=False)
                bar.update(window_iters)
                window_start, window_iters = now, 0
        bar.update(window_iters)
        if not stop.requested and it not in logged:
            evaluate()  # the final evaluation (also saves the checkpoint)
        interrupted = stop.requested
        if interrupted:
            checkpoint("ckpt")
    elapsed = time.perf_counter() - t0
    train_time = max(elapsed - run["elapsed"] - eval_seconds, 1e-9)
    steps = it - start_iter
    return {
        "iter": it, "train_loss": last.get("train"), "val_loss": last.get("val"),
        "best_val_loss": run["best_val_loss"], "elapsed": elapsed,
        "ms_per_iter": 1000 * train_time / steps if steps else None,
        "tokens_per_sec": steps * tokens_per_iter / train_time if steps else None,
        "interrupted": interrupted,
    }


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

import importlib.util
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import asdict, dataclass

import numpy as np
from tqdm import tqdm

import minigrad as mg
from minigrad import optim, random
from minigrad.serialization import atomic_write_text
from models.data import CharDataset, CharTokenizer, load_text
from models.gpt import GPT, GPTConfig

__all__ = ["TrainConfig", "UserError", "load_checkpoint", "save_checkpoint", "train"]

FORMAT_VERSION = 1
MODEL_FILE = "model.safetensors"
OPTIMIZER_FILE = "optimizer.safetensors"
CONFIG_FILE = "config.json"


class UserError(ValueError):
    """A problem with what the user asked for (a missing, unreadable or mixed-up corpus or
    checkpoint, a bad setting): the command line prints it as one line and exits with
    status 2."""


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


def save_checkpoint(path, model, optimizer, state):
    """Write a checkpoint directory at `path`: model.safetensors (the state_dict, nanoGPT's
    names), optimizer.safetensors (moment buffers; group settings and step counts in its
    metadata) and config.json (`state`: model config, vocabulary, iteration, RNG states,
    best val loss, train settings), plus a fresh checkpoint id written into all three.

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
    tmp = os.path.join(parent, f".{name}.tmp-{ckpt_id}")
    os.makedirs(tmp)
    try:
        meta = {"checkpoint_id": ckpt_id}
        mg.save(model.state_dict(), os.path.join(tmp, MODEL_FILE), meta)
        arrays, opt_meta = optimizer.state_dict()
        mg.save(arrays, os.path.join(tmp, OPTIMIZER_FILE),
                {**meta, "optimizer": json.dumps(opt_meta)})
        config = {"format_version": FORMAT_VERSION, **state, **meta}
        atomic_write_text(os.path.join(tmp, CONFIG_FILE), json.dumps(config, indent=1) + "\n")
        old = path + ".old"
        if os.path.exists(path):
            shutil.rmtree(old, ignore_errors=True)
            os.replace(path, old)
        os.replace(tmp, path)
        shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def load_checkpoint(path):
    """Read a checkpoint directory: returns (config dict, model state_dict, optimizer
    (arrays, meta)). Raises UserError if there is none, if a file is unreadable, or if
    the files do not belong to one save."""
    path = os.path.abspath(path)
    if not os.path.isfile(os.path.join(path, CONFIG_FILE)):
        if os.path.isfile(os.path.join(path + ".old", CONFIG_FILE)):
            path += ".old"  # a save was interrupted between its two renames
        else:
            raise UserError(f"no checkpoint at {path} (expected {CONFIG_FILE}, "
                            f"{MODEL_FILE} and {OPTIMIZER_FILE} there)")
    try:
        with open(os.path.join(path, CONFIG_FILE), encoding="utf-8") as f:
            config = json.load(f)
        if config.get("format_version") != FORMAT_VERSION:
            raise ValueError(f"unknown format_version {config.get('format_version')!r} "
                             f"(expected {FORMAT_VERSION})")
        files = [os.path.join(path, MODEL_FILE), os.path.join(path, OPTIMIZER_FILE)]
        model_state, opt_arrays = (mg.load(f) for f in files)
        metas = [mg.load_metadata(f) for f in files]
        opt_meta = json.loads(metas[1]["optimizer"])
    except (OSError, ValueError, KeyError) as e:
        raise UserError(f"{path}: not a readable checkpoint: {e}") from None
    if any(m.get("checkpoint_id") != config.get("checkpoint_id") for m in metas):
        raise UserError(f"{path}: the files belong to different saves (a save ran while "
                        "reading); read it again")
    return config, model_state, (opt_arrays, opt_meta)


def model_from_checkpoint(path):
    """(GPT with the checkpoint's weights, its CharTokenizer), for sampling and study."""
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
    """Redraws OUT/loss.png after each evaluation in a child process (models.plot), so that
    matplotlib stays out of the training process's memory; at most one child at a time."""

    def __init__(self):
        self.available = importlib.util.find_spec("matplotlib") is not None
        self.child = None

    def update(self, log_path, png_path):
        if not self.available:
            return
        self.close()
        # The child finds this copy of the `models` package even when it is not installed.
        root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        path = os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH")) if p)
        self.child = subprocess.Popen([sys.executable, "-m", "models.plot", log_path, png_path],
                                      stdout=subprocess.DEVNULL, env={**os.environ,
                                                                      "PYTHONPATH": path})

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
        random.set_rng_state(saved["rng"]["minigrad"])
        batch_rng.bit_generator.state = saved["rng"]["batch"]
        run = {k: saved[k] for k in run}
    return model, optimizer, data, batch_rng, run


def train(cfg: TrainConfig):
    """Run (or resume) training as configured; returns a summary dict: iter, train_loss and
    val_loss (of the last evaluation), best_val_loss, elapsed (wall seconds, all sessions),
    ms_per_iter and tokens_per_sec (training steps of this session, evaluations excluded;
    None without steps), interrupted."""
    model, optimizer, data, batch_rng, run = _setup(cfg)
    os.makedirs(cfg.out_dir, exist_ok=True)
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

    def checkpoint(name):
        state = {
            "model": asdict(model.config), "vocab": data.tokenizer.to_list(),
            "iter": it, "best_val_loss": run["best_val_loss"],
            "elapsed": time.perf_counter() - t0,
            "rng": {"minigrad": random.get_rng_state(), "batch": batch_rng.bit_generator.state},
            "train": asdict(cfg),
        }
        save_checkpoint(os.path.join(cfg.out_dir, name), model, optimizer, state)

    def evaluate():
        nonlocal eval_seconds
        eval_start = time.perf_counter()
        losses = estimate_loss(model, data, cfg, block_size, stop)
        if losses is None:
            return
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
    with _StopRequest() as stop:
        while it < cfg.max_iters and not stop.requested:
            if it % cfg.eval_interval == 0 and it not in logged:
                evaluate()
                if stop.requested:
                    break
            optim.set_lr(optimizer, optim.lr_warmup_cosine(
                it, cfg.lr, cfg.min_lr, cfg.warmup_iters, cfg.decay_iters))
            x, y = data.get_batch("train", cfg.batch_size, block_size, batch_rng)
            _, loss = model(x, y)
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
    bar.close()
    plotter.close()
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


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
import os
import tempfile
import time
from dataclasses import asdict, dataclass

import numpy as np
from minigrad.models.checkpoint import CONFIG_FILE, load_checkpoint, save_checkpoint
from minigrad.models.data import CharDataset, CharTokenizer, load_text
from minigrad.models.errors import (
    ConfigError,
    NonFiniteLossError,
    UserError,
    check_training_settings,
)
from minigrad.models.gpt import GPT, GPTConfig
from minigrad.models.interrupt import StopRequest
from minigrad.models.runlog import LossPlotter, read_log, write_log
from tqdm import tqdm

import minigrad as mg
from minigrad import kernels, optim, random

__all__ = ["TrainConfig", "estimate_loss", "train"]

# What train() adds to config.json, which resuming needs.
_RESUME_KEYS = ("iter", "best_val_loss", "elapsed", "rng")

# Evaluation runs up to this many tokens through the model at once (2 batches of the default
# 12 x 64). The losses are the same: every batch has as many tokens, so the mean over a
# group of batches is the mean of their means. With half the forwards (half the per-op
# Python, larger products) a baby-GPT evaluation batch took 16.9 and 16.7 ms against 20.3
# and 17.7 ms one at a time (two processes, medians of 10 interleaved rounds each); PyTorch
# gains less (15.0 and 13.0 ms against 16.3 and 14.2), and the reference pipeline
# (benchmarks/train_torch_reference.py) groups its batches the same way. 3072 tokens gained
# little more (16.4 and 15.7 ms) and raised the run's peak memory above the training
# step's (201 against 197 MiB).
_EVAL_TOKENS = 1536


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
    bias: bool = False  # biases in Linear and LayerNorm (nanoGPT's train.py: False)
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
        check_training_settings(self, ("max_iters", "warmup_iters"),
                                ("batch_size", "eval_interval", "eval_iters", "log_interval"))

    @property
    def decay_iters(self):
        """The iteration at which the cosine reaches min_lr."""
        return self.max_iters if self.lr_decay_iters is None else self.lr_decay_iters


# ---------------------------------------------------------------------------------------
# The loop
# ---------------------------------------------------------------------------------------


@mg.no_grad()
def estimate_loss(model, data, cfg, block_size, stop):
    """Mean loss over eval_iters batches of each split, in eval mode (no dropout).

    The batches come from a generator seeded afresh from cfg.seed each time: every
    evaluation sees the same batches (a lower-variance comparison between evaluations),
    and evaluating never moves the training batch sampler. Batches go through the model
    in groups of up to _EVAL_TOKENS tokens. Returns None if stopped.
    """
    model.eval()
    out = {}
    group = max(1, _EVAL_TOKENS // (cfg.batch_size * block_size))
    for split in CharDataset.SPLITS:
        rng = np.random.default_rng([cfg.seed, 1])
        total = 0.0
        for start in range(0, cfg.eval_iters, group):
            if stop.requested:
                model.train()
                return None
            n = min(group, cfg.eval_iters - start)
            xs, ys = zip(*(data.get_batch(split, cfg.batch_size, block_size, rng)
                           for _ in range(n)), strict=True)
            with mg.no_grad():  # no graph: nothing is saved for a backward (as nanoGPT's)
                total += n * model(np.concatenate(xs), np.concatenate(ys))[1].item()
        out[split] = total / cfg.eval_iters
    model.train()
    return out


def _prepare_out_dir(out_dir):
    """Create out_dir and check that files can be written there, so that a bad --out-dir
    fails at once with a one-line message rather than after the first evaluation."""
    try:
        os.makedirs(out_dir, exist_ok=True)
        tempfile.TemporaryFile(dir=out_dir).close()
    except OSError as e:
        raise ConfigError("out_dir", f"{out_dir}: cannot write there ({e.strerror})") from None


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
                dropout=cfg.dropout, bias=cfg.bias, pos_encoding=cfg.pos_encoding)
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


class _Run:
    """The state of a run that the loop updates: the iteration, the evaluation log, the
    best validation loss, the wall clock, and what was saved last."""

    def __init__(self, cfg, model, optimizer, data, batch_rng, state):
        self.cfg, self.model, self.optimizer = cfg, model, optimizer
        self.data, self.batch_rng = data, batch_rng
        self.iter = self.start_iter = state["iter"]
        self.best_val_loss = state["best_val_loss"]
        self.resumed_elapsed = state["elapsed"]
        self.t0 = time.perf_counter() - state["elapsed"]
        self.log_path = os.path.join(cfg.out_dir, "log.jsonl")
        # Evaluations after the checkpoint belong to a run that is being replaced.
        self.log = ([r for r in read_log(self.log_path) if r["iter"] <= self.iter]
                    if cfg.resume else [])
        self.logged = {r["iter"] for r in self.log}
        self.last = {}  # the latest evaluation's losses
        self.eval_seconds = 0.0  # of this session, spent evaluating and saving
        self.saved_iter = self.iter if cfg.resume else None  # of the newest OUT/ckpt
        self.plotter = LossPlotter()

    def diverged(self, what):
        """Stop the run: nothing non-finite is ever saved, so OUT/ckpt stays as it was."""
        ckpt = os.path.join(self.cfg.out_dir, "ckpt")
        kept = ("no checkpoint was saved" if self.saved_iter is None else
                f"the last good checkpoint {ckpt} (iter {self.saved_iter}) is kept")
        raise NonFiniteLossError(f"{what} at iter {self.iter}: training stopped; {kept} "
                                 "(try a lower --lr)")

    def save(self, name):
        """Write OUT/<name> (ckpt or best) from the current weights and state."""
        if not all(np.isfinite(p.data).all() for p in self.model.parameters()):
            self.diverged("the weights hold NaN or Inf")
        state = {
            "model": asdict(self.model.config), "vocab": self.data.tokenizer.to_list(),
            "iter": self.iter, "best_val_loss": self.best_val_loss,
            "elapsed": time.perf_counter() - self.t0,
            "rng": {"minigrad": random.get_rng_state(),
                    "batch": self.batch_rng.bit_generator.state},
            "train": asdict(self.cfg),
        }
        save_checkpoint(os.path.join(self.cfg.out_dir, name), self.model, self.optimizer,
                        state)
        if name == "ckpt":
            self.saved_iter = self.iter

    def evaluate(self, stop, bar):
        """Estimate both losses, log them, redraw the plot, save OUT/best (when val improved)
        and OUT/ckpt. Does nothing more when Ctrl-C stopped the estimate."""
        cfg = self.cfg
        start = time.perf_counter()
        # The kernels' reused buffers go back before the evaluation's larger arrays, again
        # before the checkpoint builds its bytes, and the checkpoint's freed memory after
        # it, so that none of them adds to what the training steps hold: the run's peak
        # memory stays the training step's.
        kernels.release_buffers()
        losses = estimate_loss(self.model, self.data, cfg, self.model.config.block_size, stop)
        kernels.release_buffers()
        if losses is None:
            return
        for split, value in losses.items():
            if not np.isfinite(value):
                self.diverged(f"the {split} loss is {value}")
        self.last.update(losses)
        lr = optim.lr_warmup_cosine(self.iter, cfg.lr, cfg.min_lr, cfg.warmup_iters,
                                    cfg.decay_iters)
        self.log.append({"iter": self.iter, "train_loss": losses["train"],
                         "val_loss": losses["val"], "lr": lr,
                         "elapsed": round(time.perf_counter() - self.t0, 3)})
        self.logged.add(self.iter)
        write_log(self.log_path, self.log)
        self.plotter.update(self.log_path, os.path.join(cfg.out_dir, "loss.png"))
        bar.write(f"iter {self.iter}: train loss {losses['train']:.4f}, "
                  f"val loss {losses['val']:.4f}")
        if self.best_val_loss is None or losses["val"] < self.best_val_loss:
            self.best_val_loss = losses["val"]
            self.save("best")
        self.save("ckpt")
        kernels.release_buffers()
        self.eval_seconds += time.perf_counter() - start

    def summary(self, interrupted):
        """What `train` returns."""
        elapsed = time.perf_counter() - self.t0
        train_time = max(elapsed - self.resumed_elapsed - self.eval_seconds, 1e-9)
        steps = self.iter - self.start_iter
        tokens = steps * self.cfg.batch_size * self.model.config.block_size
        return {
            "iter": self.iter, "train_loss": self.last.get("train"),
            "val_loss": self.last.get("val"), "best_val_loss": self.best_val_loss,
            "elapsed": elapsed,
            "ms_per_iter": 1000 * train_time / steps if steps else None,
            "tokens_per_sec": tokens / train_time if steps else None,
            "interrupted": interrupted,
        }


def train(cfg: TrainConfig):
    """Run (or resume) training as configured; returns a summary dict: iter, train_loss and
    val_loss (of the last evaluation), best_val_loss, elapsed (wall seconds, all sessions),
    ms_per_iter and tokens_per_sec (training steps of this session, evaluations excluded;
    None without steps), interrupted."""
    model, optimizer, data, batch_rng, state = _setup(cfg)
    _prepare_out_dir(cfg.out_dir)
    run = _Run(cfg, model, optimizer, data, batch_rng, state)
    params = list(model.parameters())
    block_size = model.config.block_size
    bar = tqdm(total=cfg.max_iters, initial=run.iter, disable=not cfg.progress, unit="it",
               dynamic_ncols=True)
    window_start, window_iters = time.perf_counter(), 0
    # The bar and the plotter's child are closed however the loop ends (a NaN, an error).
    with StopRequest() as stop, bar, contextlib.closing(run.plotter):
        while run.iter < cfg.max_iters and not stop.requested:
            # evaluate the loss on both splits and write the checkpoints
            if run.iter % cfg.eval_interval == 0 and run.iter not in run.logged:
                run.evaluate(stop, bar)
                if stop.requested:
                    break
            # set the learning rate of this iteration (linear warmup, cosine decay)
            optim.set_lr(optimizer, optim.lr_warmup_cosine(
                run.iter, cfg.lr, cfg.min_lr, cfg.warmup_iters, cfg.decay_iters))
            # forward, backward, clip, update
            x, y = data.get_batch("train", cfg.batch_size, block_size, batch_rng)
            _, loss = model(x, y)
            if not np.isfinite(loss.data):  # stop before the bad step reaches the weights
                run.diverged(f"the training loss is {loss.item()}")
            loss.backward()
            if cfg.grad_clip > 0:
                optim.clip_grad_norm_(params, cfg.grad_clip)
            optimizer.step()
            optimizer.zero_grad()
            run.iter += 1
            # progress: loss and tokens/s every log_interval iterations
            window_iters += 1
            if window_iters == cfg.log_interval:
                now = time.perf_counter()
                rate = window_iters * cfg.batch_size * block_size / (now - window_start)
                bar.set_postfix(loss=f"{loss.item():.4f}", tok_s=f"{rate:,.0f}", refresh=False)
                bar.update(window_iters)
                window_start, window_iters = now, 0
        bar.update(window_iters)
        if not stop.requested and run.iter not in run.logged:
            run.evaluate(stop, bar)  # the final evaluation (also saves the checkpoint)
        if stop.requested:
            run.save("ckpt")
    return run.summary(stop.requested)

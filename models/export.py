"""Export a minigrad run to nanoGPT, so that PyTorch (on a GPU, or many) continues it.

    summary = export("out", "out-nanogpt")        # or: minigrad export out out-nanogpt

writes into OUT_DIR what nanoGPT's sample.py and `train.py --init_from=resume` read:
- ckpt.pt: the model state under nanoGPT's names, the optimizer state in
  torch.optim.AdamW's format with nanoGPT's two parameter groups (decay on >= 2-D weights,
  then the rest, each in nanoGPT's parameter order), model_args, iter_num, best_val_loss
  and config (nanoGPT's settings, with dataset);
- data/<dataset>/meta.pkl (vocab_size, itos, stoi), train.bin and val.bin (the run's
  corpus as uint16 ids, split where minigrad split it): nanoGPT reads them from its own
  data/<dataset>/, so they are copied there;
- train_minigrad.py: a nanoGPT config file (out_dir, dataset, init_from='resume',
  block_size, batch_size, the schedule, ...): nanoGPT's train.py takes the batch's
  block_size from its config, not from the checkpoint.

It needs torch (the optional extra `minigrad[torch]`). minigrad itself never reads a pickle:
these files are written for nanoGPT only. Every file is written atomically, ckpt.pt last.
"""

from __future__ import annotations

import io
import os
import pickle
import re

import numpy as np
from minigrad.models.checkpoint import load_checkpoint, resolve_checkpoint
from minigrad.models.data import BUNDLED, CharDataset, CharTokenizer, load_text
from minigrad.models.errors import UserError
from minigrad.models.gpt import GPT, GPTConfig

from minigrad import random
from minigrad.serialization import atomic_write_bytes, atomic_write_text

__all__ = ["CKPT_FILE", "CONFIG_FILE", "export", "nanogpt_optimizer_groups"]

CKPT_FILE = "ckpt.pt"
CONFIG_FILE = "train_minigrad.py"
MODEL_ARGS = ("n_layer", "n_head", "n_embd", "block_size", "bias", "vocab_size", "dropout")
TORCH_MISSING = ("minigrad export needs PyTorch, which is not installed: "
                 "pip install 'minigrad[torch]'")


def _import_torch():
    try:
        import torch
    except ImportError:
        raise UserError(TORCH_MISSING) from None
    return torch


def nanogpt_optimizer_groups(named_params):
    """nanoGPT's configure_optimizers groups from (name, parameter) pairs in its order:
    [names with ndim >= 2 (decayed), names with ndim < 2 (not decayed)]."""
    decay = [name for name, p in named_params if p.ndim >= 2]
    no_decay = [name for name, p in named_params if p.ndim < 2]
    return [decay, no_decay]


def _dataset_name(data):
    """The default nanoGPT dataset name for a corpus: minigrad_<corpus name or file stem>."""
    stem = data if data in BUNDLED else os.path.splitext(os.path.basename(str(data)))[0]
    return "minigrad_" + (re.sub(r"[^A-Za-z0-9_.-]+", "_", stem) or "corpus")


def _minigrad_optimizer(model_config, model_state, opt_state):
    """The run's model (weights loaded) and its AdamW with the saved state, built with
    minigrad's random stream saved and restored."""
    rng_state = random.get_rng_state()
    try:
        model = GPT(model_config)
    finally:
        random.set_rng_state(rng_state)
    model.load_state_dict(model_state)
    optimizer = model.configure_optimizers(0.0, 1e-3, (0.9, 0.99))
    optimizer.load_state_dict(*opt_state)
    return model, optimizer


def _torch_optimizer_state(torch, model, optimizer):
    """minigrad's AdamW state as torch.optim.AdamW's state_dict, over nanoGPT's groups."""
    named = list(model.named_parameters())
    params = {name: torch.nn.Parameter(torch.from_numpy(p.data.copy())) for name, p in named}
    groups = nanogpt_optimizer_groups(named)
    by_id = {id(p): name for name, p in named}
    ours = [[by_id[id(p)] for p in g["params"]] for g in optimizer.param_groups]
    if [sorted(g) for g in ours] != [sorted(g) for g in groups]:
        raise UserError("the run's optimizer groups are not nanoGPT's (decay on >= 2-D "
                        "weights, none on the rest); nanoGPT could not resume them")
    hyper = [next(g for g in optimizer.param_groups if by_id[id(g["params"][0])] in names)
             for names in groups]
    torch_groups = [{"params": [params[n] for n in names], "weight_decay": h["weight_decay"]}
                    for names, h in zip(groups, hyper, strict=True)]
    topt = torch.optim.AdamW(torch_groups, lr=hyper[0]["lr"], betas=tuple(hyper[0]["betas"]),
                             eps=hyper[0]["eps"])
    for name, p in named:
        state = optimizer.state.get(id(p))
        if state is not None:
            topt.state[params[name]] = {
                "step": torch.tensor(float(state["step"]), dtype=torch.float32),
                "exp_avg": torch.from_numpy(state["exp_avg"].astype(np.float32)),
                "exp_avg_sq": torch.from_numpy(state["exp_avg_sq"].astype(np.float32)),
            }
    return topt.state_dict()


def _nanogpt_config(train, model_config, out_dir, dataset, iter_num):
    """nanoGPT's train.py settings (its `config` dict) for this run."""
    return {
        "out_dir": out_dir, "eval_interval": train.get("eval_interval", 250),
        "log_interval": train.get("log_interval", 10),
        "eval_iters": train.get("eval_iters", 200), "eval_only": False,
        "always_save_checkpoint": True, "init_from": "resume", "wandb_log": False,
        "wandb_project": "minigrad", "wandb_run_name": "minigrad-export", "dataset": dataset,
        "gradient_accumulation_steps": 1, "batch_size": train.get("batch_size", 12),
        "block_size": model_config.block_size, "n_layer": model_config.n_layer,
        "n_head": model_config.n_head, "n_embd": model_config.n_embd,
        "dropout": model_config.dropout, "bias": model_config.bias,
        "learning_rate": train.get("lr", 1e-3), "max_iters": max(train.get("max_iters", 0),
                                                                 iter_num),
        "weight_decay": train.get("weight_decay", 0.1), "beta1": train.get("beta1", 0.9),
        "beta2": train.get("beta2", 0.99), "grad_clip": train.get("grad_clip", 1.0),
        "decay_lr": True, "warmup_iters": train.get("warmup_iters", 100),
        "lr_decay_iters": train.get("lr_decay_iters") or train.get("max_iters", iter_num),
        "min_lr": train.get("min_lr", 1e-4), "backend": "nccl", "device": "cuda",
        "dtype": "float32", "compile": True,
    }


# The settings the config file sets, in the order nanoGPT's train.py declares them.
_CONFIG_FILE_KEYS = ("out_dir", "eval_interval", "log_interval", "eval_iters",
                     "always_save_checkpoint", "init_from", "dataset",
                     "gradient_accumulation_steps", "batch_size", "block_size", "n_layer",
                     "n_head", "n_embd", "dropout", "bias", "learning_rate", "max_iters",
                     "weight_decay", "beta1", "beta2", "grad_clip", "decay_lr", "warmup_iters",
                     "lr_decay_iters", "min_lr")


def _config_file(config, run):
    lines = [f"# nanoGPT config: continue the minigrad run {run} (written by minigrad export).",
             "# python train.py <this file>   (on a CPU add --device=cpu --compile=False)",
             "# train.py takes the batch's block_size from here, not from ckpt.pt."]
    lines += [f"{key} = {config[key]!r}" for key in _CONFIG_FILE_KEYS]
    return "\n".join(lines) + "\n"


def _write(path, data):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    atomic_write_bytes(path, data)


def export(run, out_dir, best=False, force=False, data=None, dataset=None):
    """Write nanoGPT's files for the run (or checkpoint) directory `run` into `out_dir`; see
    the module docstring. `data` overrides the corpus the run was trained on (when it has
    moved), `dataset` the nanoGPT dataset name (default minigrad_<corpus>). Returns a dict:
    the paths written, dataset, iter_num and the nanoGPT commands that continue the run.

    Raises UserError, before writing anything, without torch, for a missing or corrupt run,
    a run nanoGPT cannot hold (sinusoidal positions, a vocabulary over 65,536), a missing
    corpus, and an existing OUT_DIR/ckpt.pt unless force=True.
    """
    torch = _import_torch()
    ckpt = resolve_checkpoint(run, best)
    saved, model_state, opt_state = load_checkpoint(ckpt)
    model_config = GPTConfig(**saved["model"])
    if model_config.pos_encoding != "learned":
        raise UserError(f"{ckpt}: the model has {model_config.pos_encoding} positions; "
                        "nanoGPT's GPT has learned ones only")
    if model_config.vocab_size > 65536:
        raise UserError(f"{ckpt}: {model_config.vocab_size} tokens do not fit nanoGPT's "
                        "uint16 .bin files")
    out_dir = os.path.abspath(out_dir)
    ckpt_pt = os.path.join(out_dir, CKPT_FILE)
    if os.path.exists(ckpt_pt) and not force:
        raise UserError(f"{ckpt_pt} exists already (--force replaces it)")
    train = saved.get("train") or {}
    data = data if data is not None else train.get("data")
    if data is None:
        raise UserError(f"{ckpt}: the checkpoint does not name its corpus; give it with --data")
    tokenizer = CharTokenizer.from_list(saved["vocab"])
    try:
        corpus = CharDataset(load_text(data), tokenizer)
    except (FileNotFoundError, ValueError) as e:
        raise UserError(f"the run's corpus: {e} (give it with --data)") from None
    dataset = dataset or _dataset_name(data)
    if not re.fullmatch(r"[A-Za-z0-9_.-]+", dataset) or dataset in (".", ".."):
        raise UserError(f"--dataset must be a plain folder name, got {dataset!r}")

    model, optimizer = _minigrad_optimizer(model_config, model_state, opt_state)
    iter_num = int(saved.get("iter", 0))
    best_val = saved.get("best_val_loss")
    config = _nanogpt_config(train, model_config, out_dir, dataset, iter_num)
    tensors = {}
    for name, array in model_state.items():
        tensors[name] = torch.from_numpy(np.ascontiguousarray(array, dtype=np.float32))
    tensors["lm_head.weight"] = tensors["transformer.wte.weight"]  # tied, one storage
    checkpoint = {
        "model": tensors,
        "optimizer": _torch_optimizer_state(torch, model, optimizer),
        "model_args": {k: getattr(model_config, k) for k in MODEL_ARGS},
        "iter_num": iter_num,
        "best_val_loss": 1e9 if best_val is None else float(best_val),  # nanoGPT's start
        "config": config,
    }
    data_dir = os.path.join(out_dir, "data", dataset)
    meta = {"vocab_size": tokenizer.vocab_size, "itos": dict(enumerate(tokenizer.chars)),
            "stoi": {ch: i for i, ch in enumerate(tokenizer.chars)}}
    config_path = os.path.join(out_dir, CONFIG_FILE)
    buffer = io.BytesIO()
    torch.save(checkpoint, buffer)
    try:
        _write(os.path.join(data_dir, "train.bin"),
               corpus.train_data.astype(np.uint16).tobytes())
        _write(os.path.join(data_dir, "val.bin"), corpus.val_data.astype(np.uint16).tobytes())
        _write(os.path.join(data_dir, "meta.pkl"), pickle.dumps(meta))
        atomic_write_text(config_path, _config_file(config, os.path.abspath(run)))
        _write(ckpt_pt, buffer.getvalue())  # last: its presence means a complete export
    except OSError as e:
        raise UserError(f"cannot write to {out_dir}: {e.strerror} "
                        f"({e.filename or out_dir})") from None

    more = iter_num >= config["max_iters"]
    commands = [f"cp -r {data_dir} data/",
                f"python sample.py --out_dir={out_dir}",
                f"python train.py {config_path}" + (f" --max_iters={2 * iter_num}"
                                                    if more else "")]
    return {"ckpt": ckpt_pt, "config": config_path, "data_dir": data_dir, "dataset": dataset,
            "iter_num": iter_num, "max_iters": config["max_iters"], "commands": commands,
            "source": ckpt}

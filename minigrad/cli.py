"""The `minigrad` command: `minigrad train`, `sample`, `attention`, `explore`, `export`,
`seq2seq` (and `python -m minigrad`). Every `--ckpt` takes a checkpoint or a run directory
(`--best`: its best/).

Each subcommand is one `add_<name>_parser(subparsers)` function that declares its flags and
sets `func`, the function that runs it and returns the exit status; adding a subcommand is
one such function and one line in `build_parser`. User errors (a missing corpus or
checkpoint, a bad setting, an unwritable out-dir) print one line on stderr and exit with
status 2; a training run whose loss becomes NaN or Inf stops with one line and status 3,
keeping the last good checkpoint; Ctrl-C exits with status 130 (training saves its
checkpoint first).
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import fields

# Help for each TrainConfig field; the flags are these names with dashes (nanoGPT's names).
_TRAIN_HELP = {
    "data": "bundled corpus name ('shakespeare') or path to a UTF-8 text file",
    "out_dir": "directory for ckpt/, best/, log.jsonl and loss.png",
    "resume": "continue from OUT_DIR/ckpt (model settings come from the checkpoint)",
    "block_size": "context length in characters",
    "n_layer": "number of transformer blocks",
    "n_head": "attention heads per block",
    "n_embd": "embedding width (divisible by --n-head)",
    "dropout": "dropout probability",
    "bias": "add biases to Linear and LayerNorm layers (nanoGPT's default: none)",
    "pos_encoding": "learned position embeddings or the fixed sinusoidal table",
    "max_iters": "number of optimizer steps",
    "batch_size": "sequences per step",
    "lr": "peak learning rate (AdamW)",
    "min_lr": "learning rate at the end of the cosine decay",
    "warmup_iters": "steps of linear warmup",
    "lr_decay_iters": "step at which the cosine reaches --min-lr (default: --max-iters)",
    "weight_decay": "AdamW weight decay on 2-D weights",
    "beta1": "AdamW beta1",
    "beta2": "AdamW beta2",
    "grad_clip": "clip the global gradient norm to this (0 = off)",
    "eval_interval": "evaluate and checkpoint every this many steps",
    "eval_iters": "batches per split in each evaluation",
    "log_interval": "refresh the progress bar every this many steps",
    "seed": "random seed (init, batches, dropout)",
    "progress": "show the progress bar",
}
_CHOICES = {"pos_encoding": ("learned", "sinusoidal")}


def _parse_bool(text):
    """nanoGPT's spelling of a switch's value: True/False (also 1/0, yes/no)."""
    value = {"true": True, "1": True, "yes": True, "false": False, "0": False, "no": False}
    if text.lower() not in value:
        raise argparse.ArgumentTypeError(f"expected True or False, got {text!r}")
    return value[text.lower()]


# nanoGPT's names for the flags whose minigrad name differs.
_NANOGPT_NAMES = {"lr": "learning_rate"}


def add_train_parser(subparsers):
    """`minigrad train`: one flag per TrainConfig field, dashed (--max-iters); nanoGPT's
    underscore spellings (--max_iters, --learning_rate, --bias=False) are hidden aliases."""
    from minigrad.models.train import TrainConfig

    p = subparsers.add_parser(
        "train", help="train the character GPT",
        description="Train the character GPT (defaults: nanoGPT's CPU baby GPT on tiny "
                    "Shakespeare, 2000 iterations). nanoGPT's underscore spellings work too "
                    "(--max_iters=2000, --n_layer=4, --learning_rate=1e-3, --bias=True).",
        epilog="exit status: 0 done; 2 bad input (corpus, settings, checkpoint, out-dir); "
               "3 the loss became NaN or Inf (training stops, the last good checkpoint "
               "is kept); 130 interrupted with Ctrl-C (checkpoint saved first).",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    for f in fields(TrainConfig):
        flag = "--" + f.name.replace("_", "-")
        aliases = {"--" + f.name, "--" + _NANOGPT_NAMES.get(f.name, f.name)} - {flag}
        hidden = dict(dest=f.name, default=argparse.SUPPRESS, help=argparse.SUPPRESS)
        if f.name == "progress":
            p.add_argument("--no-progress", dest="progress", action="store_false",
                           help="hide the progress bar")
            p.add_argument("--no_progress", action="store_false", **hidden)
            continue
        if isinstance(f.default, bool):  # --bias, or nanoGPT's --bias=True / --bias=False
            p.add_argument(flag, nargs="?", const=True, default=f.default, type=_parse_bool,
                           metavar="BOOL", help=_TRAIN_HELP[f.name])
            for alias in sorted(aliases):
                p.add_argument(alias, nargs="?", const=True, type=_parse_bool, **hidden)
        else:
            kind = int if f.default is None else type(f.default)
            p.add_argument(flag, type=kind, default=f.default, choices=_CHOICES.get(f.name),
                           help=_TRAIN_HELP[f.name])
            for alias in sorted(aliases):
                p.add_argument(alias, type=kind, choices=_CHOICES.get(f.name), **hidden)
    p.set_defaults(func=run_train)


def run_train(args):
    """Run `minigrad train`; returns the exit status."""
    from minigrad.models.train import TrainConfig, train

    cfg = TrainConfig(**{f.name: getattr(args, f.name) for f in fields(TrainConfig)})
    s = train(cfg)
    if s["interrupted"]:
        print(f"interrupted at iter {s['iter']}: checkpoint saved to {cfg.out_dir}/ckpt "
              "(continue with --resume)", file=sys.stderr)
        return 130
    parts = [f"done: {s['iter']} iters"]
    if s["val_loss"] is not None:
        parts.append(f"train loss {s['train_loss']:.4f}, val loss {s['val_loss']:.4f}")
    parts.append(f"best val {s['best_val_loss']:.4f}, {s['elapsed']:.1f} s")
    if s["ms_per_iter"] is not None:
        parts.append(f"{s['ms_per_iter']:.1f} ms/iter, {s['tokens_per_sec']:,.0f} tokens/s")
    print(", ".join(parts) + f"; checkpoint in {cfg.out_dir}/ckpt")
    return 0


def add_sample_parser(subparsers):
    """`minigrad sample`: generate text from a checkpoint (nanoGPT's sample.py names work
    too: --start, --max-new-tokens, a prompt "FILE:path")."""
    p = subparsers.add_parser(
        "sample", help="generate text from a checkpoint",
        description="Generate text from a trained checkpoint, printing each character as it "
                    "is produced; the rate (tokens/s) goes to stderr at the end.",
        epilog="exit status: 0 done; 2 bad input (checkpoint, prompt, settings), with nothing "
               "written to stdout.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    _add_ckpt_arguments(p)
    p.add_argument("--prompt", "--start", dest="prompt", default="\n",
                   help="text to continue, or FILE:path to read it from a file (default: "
                   "%(default)r)")
    p.add_argument("--num-chars", "--max-new-tokens", dest="num_chars", type=int, default=500,
                   help="characters to generate per sample")
    p.add_argument("--num-samples", type=int, default=1, help="samples to generate")
    p.add_argument("--temperature", type=float, default=0.8,
                   help="divide the logits by this (< 1: more conservative)")
    p.add_argument("--top-k", type=int, default=None,
                   help="sample among the k most likely characters only")
    p.add_argument("--seed", type=int, default=1337, help="random seed")
    p.add_argument("--no-cache", dest="use_cache", action="store_false",
                   default=argparse.SUPPRESS, help="recompute the whole context at each "
                   "step instead of keeping a key/value cache (same text, slower)")
    p.set_defaults(func=run_sample)


def _add_ckpt_arguments(p):
    """--ckpt (a checkpoint or run directory) and --best, as every command takes them."""
    p.add_argument("--ckpt", default="out", help="checkpoint directory, or run directory "
                   "(`minigrad train --out-dir`: its ckpt/)")
    p.add_argument("--best", action="store_true",
                   help="with a run directory: its best/ (lowest val loss), not ckpt/")


def run_sample(args):
    """Run `minigrad sample`; returns the exit status."""
    from minigrad.models.sample import sample

    sample(args.ckpt, args.prompt, args.num_chars, args.temperature, args.top_k, args.seed,
           num_samples=args.num_samples, best=args.best,
           use_cache=getattr(args, "use_cache", True))
    return 0


def add_attention_parser(subparsers):
    """`minigrad attention`: every layer's and head's attention map for a text."""
    from minigrad.models.attention import attention_command

    p = subparsers.add_parser(
        "attention", help="draw or list a checkpoint's attention for a text",
        description="Write a PNG grid of every layer's and head's attention map for TEXT "
                    "(rows = layers, columns = heads, axes = its characters; for an "
                    "encoder-decoder checkpoint the cross-attention, source across and "
                    "decoder input down, and the encoder's and decoder's self-attention "
                    "in OUT-encoder.png and OUT-decoder.png); with "
                    "--position, list the positions that position attends to most in each "
                    "head, with the score q.k/sqrt(d) and the weight.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    _add_ckpt_arguments(p)
    p.add_argument("--text", required=True, help="the text to run through the model (for "
                   "an encoder-decoder checkpoint: the source)")
    p.add_argument("--target", default=None, help="encoder-decoder only: the target to "
                   "attend with (default: the model's greedy output)")
    p.add_argument("--out", default=None, help="PNG to write (default attn.png when no "
                   "--position is given)")
    p.add_argument("--position", type=int, default=None,
                   help="query position to explain (negative counts from the end)")
    p.add_argument("--top", type=int, default=3, help="positions to list per head")
    p.set_defaults(func=attention_command)


def add_explore_parser(subparsers):
    """`minigrad explore`: one forward and backward pass on a text, as an HTML page."""
    from minigrad.models.explore import explore_command

    p = subparsers.add_parser(
        "explore", help="write an interactive page of a checkpoint's attention and gradients",
        description="Run TEXT through the model once, backpropagate each position's "
                    "next-character loss (and their mean), and write one self-contained HTML "
                    "page (no network, no server): every block's and head's attention "
                    "weights, scores and gradients, a loss picker and 'why this score'.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--ckpt", default="out/ckpt", help="checkpoint or run directory")
    p.add_argument("--best", action="store_true",
                   help="use the run directory's best checkpoint (best/) instead of ckpt/")
    p.add_argument("--text", required=True, help="the text to run through the model")
    p.add_argument("--out", default="explore.html", help="HTML file to write")
    p.set_defaults(func=explore_command)


def add_export_parser(subparsers):
    """`minigrad export RUN OUT_DIR`: nanoGPT's files for a run, to continue it in PyTorch."""
    p = subparsers.add_parser(
        "export", help="write nanoGPT's ckpt.pt, meta.pkl and data for a run (needs torch)",
        description="Write what nanoGPT's sample.py and train.py --init_from=resume read: "
                    "OUT_DIR/ckpt.pt (model, AdamW state, model_args, iter_num, "
                    "best_val_loss, config), OUT_DIR/data/DATASET/ (meta.pkl, train.bin, "
                    "val.bin) and a nanoGPT config file OUT_DIR/train_minigrad.py; then "
                    "print the nanoGPT commands that continue the run. Needs PyTorch "
                    "(pip install 'minigrad[torch]').",
        epilog="exit status: 0 done; 2 bad input (no torch, a missing or corrupt run, an "
               "existing ckpt.pt without --force), with nothing written.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("run", metavar="RUN", help="run directory (its ckpt/) or checkpoint "
                   "directory")
    p.add_argument("out_dir", metavar="OUT_DIR", help="directory to write nanoGPT's files to")
    p.add_argument("--best", action="store_true",
                   help="with a run directory: its best/ (lowest val loss), not ckpt/")
    p.add_argument("--force", action="store_true", help="replace an existing OUT_DIR/ckpt.pt")
    p.add_argument("--data", default=None, help="the run's corpus, if it has moved (default: "
                   "the one the run names)")
    p.add_argument("--dataset", default=None,
                   help="nanoGPT's dataset name (default: minigrad_<corpus>)")
    p.set_defaults(func=run_export)


def run_export(args):
    """Run `minigrad export`; returns the exit status."""
    from minigrad.models.export import export

    s = export(args.run, args.out_dir, best=args.best, force=args.force, data=args.data,
               dataset=args.dataset)
    print(f"wrote {s['ckpt']} (iter {s['iter_num']}, from {s['source']}), {s['config']} and "
          f"{s['data_dir']}/ (meta.pkl, train.bin, val.bin)")
    print("continue in nanoGPT (https://github.com/karpathy/nanoGPT), from its folder; it "
          f"reads meta.pkl and the .bin files from data/{s['dataset']}/:")
    for command in s["commands"]:
        print("  " + command)
    if s["iter_num"] >= s["max_iters"]:
        print(f"(the run reached its max_iters {s['max_iters']}: raise --max_iters to train "
              "further)")
    print("on a CPU add --device=cpu --compile=False to sample.py and train.py")
    return 0


_SEQ2SEQ_HELP = {
    "task": "toy task: reverse, copy, sort or dates (Portuguese date -> ISO)",
    "out_dir": "directory for ckpt/ and log.jsonl",
    "resume": "continue from OUT_DIR/ckpt (model settings come from the checkpoint)",
    "n_layer": "encoder layers (and as many decoder layers)",
    "n_head": "attention heads per layer",
    "n_embd": "embedding width (divisible by --n-head)",
    "dropout": "dropout probability",
    "pos_encoding": "the paper's fixed sinusoidal table or learned position embeddings",
    "norm_first": "pre-LayerNorm blocks (default: post-LN, the paper's)",
    "max_iters": "number of optimizer steps",
    "batch_size": "examples per step",
    "lr": "peak learning rate (AdamW)",
    "min_lr": "learning rate at the end of the cosine decay",
    "warmup_iters": "steps of linear warmup",
    "weight_decay": "AdamW weight decay on matrices and embeddings",
    "grad_clip": "clip the global gradient norm to this (0 = off)",
    "eval_interval": "evaluate and checkpoint every this many steps",
    "eval_subset": "held-out examples in each periodic exact match",
    "eval_examples": "held-out examples in the final exact match",
    "show": "held-out examples to print at the end",
    "seed": "random seed (init, examples)",
    "progress": "show the progress bar",
}
_SEQ2SEQ_CHOICES = {"pos_encoding": ("sinusoidal", "learned")}


def add_seq2seq_parser(subparsers):
    """`minigrad seq2seq`: one flag per Seq2SeqTrainConfig field."""
    from minigrad.models.seq2seq_train import Seq2SeqTrainConfig

    p = subparsers.add_parser(
        "seq2seq", help="train the encoder-decoder Transformer on a toy task",
        description="Train the encoder-decoder Transformer of 'Attention Is All You Need' on "
                    "a character-level toy task generated on the fly, then print a few "
                    "held-out examples and, as the last line, the exact match on the "
                    "held-out set.",
        epilog="exit status: 0 done; 2 bad input (task, settings, checkpoint, out-dir); "
               "3 the loss became NaN or Inf; 130 interrupted with Ctrl-C (checkpoint "
               "saved first).",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    for f in fields(Seq2SeqTrainConfig):
        flag = "--" + f.name.replace("_", "-")
        if f.name == "progress":
            p.add_argument("--no-progress", dest="progress", action="store_false",
                           help="hide the progress bar")
        elif isinstance(f.default, bool):
            p.add_argument(flag, action="store_true", help=_SEQ2SEQ_HELP[f.name])
        else:
            p.add_argument(flag, type=type(f.default), default=f.default,
                           choices=_SEQ2SEQ_CHOICES.get(f.name), help=_SEQ2SEQ_HELP[f.name])
    p.set_defaults(func=run_seq2seq)


def run_seq2seq(args):
    """Run `minigrad seq2seq`; returns the exit status."""
    from minigrad.models.seq2seq_train import Seq2SeqTrainConfig, train_seq2seq

    cfg = Seq2SeqTrainConfig(
        **{f.name: getattr(args, f.name) for f in fields(Seq2SeqTrainConfig)})
    s = train_seq2seq(cfg)
    if s["interrupted"]:
        print(f"interrupted at iter {s['iter']}: checkpoint saved to {cfg.out_dir}/ckpt "
              "(continue with --resume)", file=sys.stderr)
        return 130
    print(f"done: {s['iter']} iters, {s['elapsed']:.1f} s ({s['steps']} steps in "
          f"{s['train_seconds']:.1f} s this session), held-out loss {s['val_loss']:.4f}; "
          f"checkpoint in {cfg.out_dir}/ckpt")
    for src, tgt, pred in s["examples"]:
        mark = "ok" if pred == tgt else f"WRONG, want {tgt!r}"
        print(f"  {src!r} -> {pred!r} ({mark})")
    print(f"exact match: {s['correct']}/{s['total']} ({100 * s['correct'] / s['total']:.1f}%)")
    return 0


def build_parser():
    """The argument parser with every subcommand."""
    parser = argparse.ArgumentParser(
        prog="minigrad", description="minigrad: train and sample a character GPT; train and "
                                    "study the encoder-decoder Transformer.")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    add_train_parser(subparsers)
    add_sample_parser(subparsers)
    add_attention_parser(subparsers)
    add_explore_parser(subparsers)
    add_export_parser(subparsers)
    add_seq2seq_parser(subparsers)
    return parser


def main(argv=None):
    """Entry point of the `minigrad` command; returns the exit status."""
    from minigrad.models.errors import ConfigError, NonFiniteLossError, UserError

    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help(sys.stderr)
        return 2
    try:
        return args.func(args)
    except UserError as e:
        if isinstance(e, ConfigError):  # name the flag, not the config field
            e = f"--{e.field.replace('_', '-')} {e.message}"
        print(f"minigrad {args.command}: error: {e}", file=sys.stderr)
        return 2
    except NonFiniteLossError as e:
        print(f"minigrad {args.command}: error: {e}", file=sys.stderr)
        return 3
    except KeyboardInterrupt:
        print(file=sys.stderr)
        return 130

"""`minigrad attention`: a checkpoint's attention maps for a text, as a PNG grid or a report.

For a GPT checkpoint: every layer's and head's (causal self-)attention over the text. For an
encoder-decoder checkpoint (`minigrad seq2seq`) the text is the source; the target is the
model's greedy output unless --target gives one. It draws the cross-attention (decoder input
characters down, source characters across: `reverse` shows the anti-diagonal) to --out, and
the encoder's and the decoder's self-attention beside it (OUT-encoder.png, OUT-decoder.png).
"""

import os

import numpy as np
from minigrad.models.checkpoint import model_from_checkpoint
from minigrad.models.errors import UserError
from minigrad.models.seq2seq import Seq2Seq
from minigrad.models.tasks import decode_ids, encode_text

from minigrad.viz import attention_maps, attention_report, plot_attention

__all__ = ["attention_command"]

# How the decoder's special tokens read on a plot or in a report (one character each).
BOS_MARK = "\u25b8"  # the decoder input starts with BOS, drawn as ▸


def attention_command(args):
    """Run `minigrad attention` (args: ckpt, text, target, out, position, top); returns the
    exit status. Without --position it writes the PNG grid (to --out, default attn.png);
    with --position it prints the text report (and writes the PNG only if --out is given)."""
    model, tokenizer = model_from_checkpoint(args.ckpt, kind=None, best=args.best)
    if args.top < 1:
        raise UserError(f"--top must be >= 1, got {args.top}")
    if isinstance(model, Seq2Seq):
        return _seq2seq(args, model, tokenizer)
    if getattr(args, "target", None) is not None:
        raise UserError("--target is for an encoder-decoder checkpoint (minigrad seq2seq); "
                        f"{args.ckpt} holds a GPT")
    if not args.text:
        raise UserError("--text is empty")
    try:
        ids = tokenizer.encode(args.text)
    except ValueError as e:
        raise UserError(f"--text: {e}") from None
    if len(ids) > model.config.block_size:
        raise UserError(f"--text has {len(ids)} characters; the model sees at most "
                        f"block_size={model.config.block_size}")
    maps = attention_maps(model, ids[None, :])
    if args.position is not None:
        _check_position(args.position, len(ids), "the text")
        print(attention_report(maps, args.text, args.position, args.top))
    out = args.out if args.out is not None or args.position is not None else "attn.png"
    if out is not None:
        _plot(maps, args.text, out, title=f"attention of {args.ckpt}")
        n_layers, n_heads = len(maps), maps[0]["weights"].shape[1]
        print(f"wrote {out}: {n_layers} layers x {n_heads} heads")
    return 0


def _check_position(position, n, what):
    if not -n <= position < n:
        raise UserError(f"--position {position} is outside {what} (length {n})")


def _plot(maps, chars, out, **kwargs):
    try:
        plot_attention(maps, chars, out, **kwargs)
    except ImportError as e:
        raise UserError(str(e)) from None


def _seq2seq(args, model, tokenizer):
    """The encoder-decoder: cross-attention, encoder and decoder self-attention."""
    block = model.config.block_size
    src = encode_text(tokenizer, args.text, "--text (the source)", block)
    if args.target is None:
        model.eval()
        target = decode_ids(tokenizer, model.generate(src[None, :], block, temperature=0.0)
                            .data[0])
        if not target:
            raise UserError(f"the model's output for {args.text!r} is empty; give --target")
    else:
        target = args.target
    tgt = encode_text(tokenizer, target, "--target", block - 1,
                      f"block_size {block}, less one for BOS")
    tgt_in = np.concatenate([[model.config.bos_id], tgt])[None, :]  # BOS + target
    maps = attention_maps(model, src[None, :], tgt_in)
    queries = BOS_MARK + target  # the decoder's input, one character per row
    print(f"source {args.text!r} -> target {target!r}"
          + (" (the model's greedy output)" if args.target is None else ""))
    cross = [m for m in maps if m["kind"] == "cross"]
    enc = [m for m in maps if m["name"].startswith("encoder.")]
    dec = [m for m in maps if m["kind"] == "causal self"]
    if args.position is not None:
        _check_position(args.position, len(queries), f"the decoder input {queries!r}")
        print(attention_report(dec + cross, queries, args.position, args.top,
                               context_chars=args.text))
    out = args.out if args.out is not None or args.position is not None else "attn.png"
    if out is None:
        return 0
    stem, ext = os.path.splitext(out)
    n_heads = maps[0]["weights"].shape[1]
    for path, group, rows, cols, what in (
            (out, cross, queries, args.text, "cross-attention"),
            (f"{stem}-encoder{ext or '.png'}", enc, args.text, args.text,
             "encoder self-attention"),
            (f"{stem}-decoder{ext or '.png'}", dec, queries, queries,
             "decoder causal self-attention")):
        _plot(group, rows, path, key_chars=cols,
              title=f"{what} of {args.ckpt}: {args.text!r} -> {target!r}",
              query_axis="decoder input" if rows is queries else "source (attends from)",
              key_axis="source (attends to)" if cols is args.text else "decoder input")
        print(f"wrote {path}: {what}, {len(group)} layers x {n_heads} heads")
    return 0

"""`minigrad explore`: one forward and backward pass of a checkpoint on a text, as one
self-contained HTML page (see minigrad.viz.explore)."""

import os

from minigrad.models.checkpoint import model_from_checkpoint
from minigrad.models.errors import UserError

from minigrad.viz import explore

__all__ = ["explore_command"]


def explore_command(args):
    """Run `minigrad explore` (args: ckpt, text, out, best) on a GPT checkpoint; returns the
    exit status. Every problem with the input (text, checkpoint, output path) is a
    UserError: one line, exit 2. (For an encoder-decoder, call viz.explore with the
    source and target, as docs/explore.md shows.)"""
    out_dir = os.path.dirname(os.path.abspath(args.out))
    if not os.path.isdir(out_dir):
        problem = "is not a directory" if os.path.exists(out_dir) else "does not exist"
        raise UserError(f"--out {args.out}: {out_dir} {problem}")
    if os.path.isdir(args.out):
        raise UserError(f"--out {args.out} is a directory; give a file name such as page.html")
    model, tokenizer = model_from_checkpoint(args.ckpt, kind="gpt", best=args.best)
    if len(args.text) < 2:
        raise UserError(f"--text needs at least 2 characters (a position and the next "
                        f"character it predicts), got {len(args.text)}")
    try:
        ids = tokenizer.encode(args.text)
    except ValueError as e:
        raise UserError(f"--text: {e}") from None
    block_size = getattr(getattr(model, "config", None), "block_size", None)
    if block_size is not None and len(ids) > block_size:
        raise UserError(f"--text has {len(ids)} characters; the model sees at most "
                        f"block_size={block_size}")
    try:
        explorer = explore(model, ids, labels=args.text,
                           title=f"{os.path.basename(os.path.abspath(args.ckpt))}: "
                                 f"{args.text!r}")
    except ValueError as e:
        raise UserError(str(e)) from None
    try:
        size = explorer.save(args.out)
    except OSError as e:
        raise UserError(f"--out {args.out}: cannot write ({e.strerror or e})") from None
    blocks = explorer.blocks
    print(f"wrote {args.out} ({size:,} bytes): {len(blocks)} attention blocks x "
          f"{blocks[0]['heads']} heads, {len(explorer.choices) - 1} position losses and "
          f"their mean ({explorer.mean_loss:.4f})")
    return 0

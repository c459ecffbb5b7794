"""`minigrad explore`: one forward and backward pass of a checkpoint on a text, as one
self-contained HTML page (see minigrad.viz.explore).

For a GPT checkpoint the page holds every block's causal self-attention over the text and
each position's next-character loss. For an encoder-decoder checkpoint (`minigrad seq2seq`)
the text is the source; the target is the model's greedy output unless --target gives one.
The decoder reads BOS + target (BOS drawn as ▸) and each of its positions predicts the next
target character or EOS (drawn as ◂); the page holds the encoder's self-attention, the
decoder's causal self-attention and its cross-attention (decoder input down, source across).
"""

import os

from minigrad.models.checkpoint import model_from_checkpoint
from minigrad.models.errors import UserError
from minigrad.models.seq2seq import Seq2Seq
from minigrad.models.seq2seq_input import EOS_MARK, seq2seq_input

from minigrad.viz import explore

__all__ = ["explore_command"]


def explore_command(args):
    """Run `minigrad explore` (args: ckpt, text, target, out, best) on a GPT or an
    encoder-decoder checkpoint; returns the exit status. Every problem with the input
    (text, target, checkpoint, output path) is a UserError: one line, exit 2."""
    out_dir = os.path.dirname(os.path.abspath(args.out))
    if not os.path.isdir(out_dir):
        problem = "is not a directory" if os.path.exists(out_dir) else "does not exist"
        raise UserError(f"--out {args.out}: {out_dir} {problem}")
    if os.path.isdir(args.out):
        raise UserError(f"--out {args.out} is a directory; give a file name such as page.html")
    model, tokenizer = model_from_checkpoint(args.ckpt, kind=None, best=args.best)
    run = os.path.basename(os.path.abspath(args.ckpt))
    if isinstance(model, Seq2Seq):
        pair = seq2seq_input(model, tokenizer, args.text, args.target)
        print(pair)
        ids = (pair.src, pair.tgt_in)
        inputs = {"labels": (pair.source, pair.decoder_input), "targets": pair.targets,
                  "target_labels": pair.target + EOS_MARK,
                  "title": f"{run}: {pair.source!r} -> {pair.target!r}"}
    else:
        ids = _gpt_ids(args, model, tokenizer)
        inputs = {"labels": args.text, "title": f"{run}: {args.text!r}"}
    try:
        explorer = explore(model, ids, **inputs)
    except ValueError as e:
        raise UserError(str(e)) from None
    try:
        size = explorer.save(args.out)
    except OSError as e:
        raise UserError(f"--out {args.out}: cannot write ({e.strerror or e})") from None
    blocks = explorer.blocks
    n_cross = sum(b["kind"] == "cross" for b in blocks)
    print(f"wrote {args.out} ({size:,} bytes): {len(blocks)} attention blocks x "
          f"{blocks[0]['heads']} heads" + (f" ({n_cross} cross-attention)" if n_cross else "")
          + f", {len(explorer.choices) - 1} position losses and their mean "
          f"({explorer.mean_loss:.4f})")
    return 0


def _gpt_ids(args, model, tokenizer):
    """The ids of --text for a GPT, checked: a target (--target) is an error, the text
    needs 2 to block_size known characters."""
    if args.target is not None:
        raise UserError("--target is for an encoder-decoder checkpoint (minigrad seq2seq); "
                        f"{args.ckpt} holds a GPT")
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
    return ids

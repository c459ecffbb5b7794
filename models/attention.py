"""`minigrad attention`: a checkpoint's attention maps for a text, as a PNG grid or a report."""

from minigrad.models.checkpoint import model_from_checkpoint
from minigrad.models.errors import UserError

from minigrad.viz import attention_maps, attention_report, plot_attention

__all__ = ["attention_command"]


def attention_command(args):
    """Run `minigrad attention` (args: ckpt, text, out, position, top); returns the exit
    status. Without --position it writes the PNG grid (to --out, default attn.png); with
    --position it prints the text report (and writes the PNG only if --out is given)."""
    model, tokenizer = model_from_checkpoint(args.ckpt, best=args.best)
    if not args.text:
        raise UserError("--text is empty")
    try:
        ids = tokenizer.encode(args.text)
    except ValueError as e:
        raise UserError(f"--text: {e}") from None
    if len(ids) > model.config.block_size:
        raise UserError(f"--text has {len(ids)} characters; the model sees at most "
                        f"block_size={model.config.block_size}")
    if args.top < 1:
        raise UserError(f"--top must be >= 1, got {args.top}")
    maps = attention_maps(model, ids[None, :])
    if args.position is not None:
        if not -len(ids) <= args.position < len(ids):
            raise UserError(f"--position {args.position} is outside the text "
                            f"(length {len(ids)})")
        print(attention_report(maps, args.text, args.position, args.top))
    out = args.out if args.out is not None or args.position is not None else "attn.png"
    if out is not None:
        try:
            plot_attention(maps, args.text, out, title=f"attention of {args.ckpt}")
        except ImportError as e:
            raise UserError(str(e)) from None
        n_layers, n_heads = len(maps), maps[0]["weights"].shape[1]
        print(f"wrote {out}: {n_layers} layers x {n_heads} heads")
    return 0

"""The loss-curve PNG of a training run, drawn from its log.jsonl.

    python -m minigrad.models.plot OUT/log.jsonl OUT/loss.png

`minigrad train` runs this as one child process for the whole run (`--serve`), so that
matplotlib (about 40 MB) never lives in the training process and is imported once; the
child draws one PNG per request line and answers when it is written.
"""

import io
import json
import sys

from minigrad.serialization import atomic_write_bytes


def plot_losses(log_path, png_path):
    """Draw train and val loss against iteration from `log_path` to `png_path` (atomic)."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    with open(log_path, encoding="utf-8") as f:
        records = [json.loads(line) for line in f if line.strip()]
    iters = [r["iter"] for r in records]
    fig = Figure(figsize=(6, 4), dpi=100)
    ax = fig.add_subplot()
    ax.plot(iters, [r["train_loss"] for r in records], marker="o", label="train")
    ax.plot(iters, [r["val_loss"] for r in records], marker="o", label="val")
    ax.set_xlabel("iteration")
    ax.set_ylabel("cross-entropy loss (nats/char)")
    ax.grid(alpha=0.3)
    ax.legend()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", bbox_inches="tight")
    atomic_write_bytes(png_path, buf.getvalue())


def serve(requests, replies):
    """For each line `[log_path, png_path]` (JSON) of `requests`, draw the plot and answer
    one line on `replies`: "ok", or the error. Returns when `requests` ends."""
    for line in requests:
        log_path, png_path = json.loads(line)
        try:
            plot_losses(log_path, png_path)
        except Exception as e:  # reported to the training process, which goes on
            print(f"{type(e).__name__}: {e}", file=replies, flush=True)
        else:
            print("ok", file=replies, flush=True)


def main(argv=None):
    """Command-line entry: `python -m minigrad.models.plot LOG PNG`, or `--serve` (requests
    on stdin, answers on stdout)."""
    args = sys.argv[1:] if argv is None else argv
    if args == ["--serve"]:
        serve(sys.stdin, sys.stdout)
    else:
        log_path, png_path = args
        plot_losses(log_path, png_path)


if __name__ == "__main__":
    main()

"""The loss-curve PNG of a training run, drawn from its log.jsonl.

    python -m minigrad.models.plot OUT/log.jsonl OUT/loss.png

`minigrad train` runs this in a short-lived child process at each evaluation, so that
matplotlib (about 40 MB) never lives in the training process.
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


def main(argv=None):
    """Command-line entry: `python -m minigrad.models.plot LOG PNG`."""
    log_path, png_path = sys.argv[1:] if argv is None else argv
    plot_losses(log_path, png_path)


if __name__ == "__main__":
    main()

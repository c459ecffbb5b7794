"""A run's evaluation log (OUT/log.jsonl) and its loss curve (OUT/loss.png)."""

import importlib.util
import json
import os
import subprocess
import sys

from minigrad.serialization import atomic_write_text

__all__ = ["LossPlotter", "read_log", "write_log"]


def read_log(path):
    """The records of a log.jsonl file, oldest first ([] when there is none)."""
    if not os.path.exists(path):
        return []
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def write_log(path, records):
    """Rewrite the whole (small) log atomically rather than append, so that a crash never
    leaves a half-written line."""
    atomic_write_text(path, "".join(json.dumps(r) + "\n" for r in records))


class LossPlotter:
    """Redraws OUT/loss.png after each evaluation in a child process (minigrad.models.plot),
    so that matplotlib stays out of the training process's memory; at most one child at a
    time. Does nothing when matplotlib (the [plot] extra) is not installed."""

    def __init__(self):
        self.available = importlib.util.find_spec("matplotlib") is not None
        self.child = None

    def update(self, log_path, png_path):
        """Start drawing `png_path` from `log_path`, after the previous drawing finished."""
        if not self.available:
            return
        self.close()
        self.child = subprocess.Popen(
            [sys.executable, "-m", "minigrad.models.plot", log_path, png_path],
            stdout=subprocess.DEVNULL,
        )

    def close(self):
        """Wait for the drawing in progress, if any."""
        if self.child is not None:
            self.child.wait()
            self.child = None

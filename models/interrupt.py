"""Ctrl-C during training: finish the step, save, then stop."""

import signal

__all__ = ["StopRequest"]


class StopRequest:
    """Turn the first Ctrl-C into a request checked between iterations, so that the
    checkpoint written on the way out is consistent (never half an optimizer step); a
    second Ctrl-C interrupts at once."""

    def __init__(self):
        self.requested = False
        self._previous = None

    def _handle(self, signum, frame):
        self.requested = True
        signal.signal(signal.SIGINT, self._previous)

    def __enter__(self):
        try:
            self._previous = signal.signal(signal.SIGINT, self._handle)
        except ValueError:
            self._previous = None  # not the main thread: Ctrl-C cannot reach us anyway
        return self

    def __exit__(self, *exc):
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)

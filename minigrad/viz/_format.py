"""Small formatting helpers shared by the study tools."""

import numpy as np


def norm(array):
    """The Frobenius norm of an array, computed in float64."""
    return float(np.linalg.norm(np.asarray(array, dtype=np.float64)))


def shape_text(shape):
    """A shape as '(2, 3)', whatever integer types it holds."""
    return str(tuple(int(n) for n in shape))


def show_char(ch):
    """A character as it reads on a plot or in a table (newline, space and tab made visible)."""
    return {"\n": "\\n", " ": "\u2423", "\t": "\\t"}.get(ch, ch)

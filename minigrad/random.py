"""The one random generator behind every random op (init, dropout, randn, sampling)."""

import numpy as np

_generator = np.random.default_rng()


def manual_seed(seed):
    """Seed every random op in minigrad, as torch.manual_seed."""
    global _generator
    if not isinstance(seed, int | np.integer) or seed < 0:
        raise ValueError(f"manual_seed: seed must be a non-negative int, got {seed!r}")
    _generator = np.random.default_rng(int(seed))


def generator():
    """The current np.random.Generator."""
    return _generator


def get_rng_state():
    """The generator's state as a JSON-serialisable dict (for checkpoints)."""
    return _generator.bit_generator.state


def set_rng_state(state):
    """Restore a state returned by `get_rng_state`."""
    _generator.bit_generator.state = state

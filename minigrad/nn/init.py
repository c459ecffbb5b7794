"""In-place initialisers (as torch.nn.init), drawing from minigrad's seeded generator.

Each fills `tensor.data` in place, keeping its dtype, and returns the tensor.
"""

from minigrad import random


def normal_(tensor, mean=0.0, std=1.0):
    """Fill with samples from N(mean, std^2)."""
    tensor.data[...] = random.generator().normal(mean, std, size=tensor.shape)
    return tensor


def uniform_(tensor, a=0.0, b=1.0):
    """Fill with samples from U(a, b)."""
    tensor.data[...] = random.generator().uniform(a, b, size=tensor.shape)
    return tensor


def zeros_(tensor):
    """Fill with 0."""
    tensor.data[...] = 0
    return tensor


def ones_(tensor):
    """Fill with 1."""
    tensor.data[...] = 1
    return tensor

"""minigrad: a small, readable, fast autograd framework on NumPy + Numba."""

from minigrad import functional, kernels, nn, optim, testing, viz
from minigrad.autograd import (
    AnomalyError,
    Function,
    detect_anomaly,
    enable_grad,
    is_grad_enabled,
    is_study_mode,
    label,
    no_grad,
    study_mode,
)
from minigrad.creation import (
    arange,
    eye,
    full,
    ones,
    ones_like,
    rand,
    randint,
    randn,
    tensor,
    zeros,
    zeros_like,
)
from minigrad.gradcheck import GradcheckError, gradcheck
from minigrad.ops import *  # noqa: F403
from minigrad.random import manual_seed
from minigrad.serialization import load, load_metadata, save
from minigrad.tensor import Tensor

__version__ = "0.1.0"

"""Neural-network building blocks: Module, Parameter, containers, layers and init.

    import minigrad.nn as nn
    block = nn.Sequential(nn.LayerNorm(64), nn.Linear(64, 256), nn.GELU(), nn.Linear(256, 64))
"""

from minigrad.nn import init
from minigrad.nn.layers import (
    GELU,
    Dropout,
    Embedding,
    LayerNorm,
    Linear,
    MultiHeadAttention,
    ReLU,
)
from minigrad.nn.module import (
    IncompatibleKeys,
    Module,
    ModuleDict,
    ModuleList,
    Parameter,
    Sequential,
)

__all__ = [
    "GELU", "Dropout", "Embedding", "IncompatibleKeys", "LayerNorm", "Linear", "Module",
    "ModuleDict", "ModuleList", "MultiHeadAttention", "Parameter", "ReLU", "Sequential", "init",
]

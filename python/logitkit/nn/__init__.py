"""``logitkit.nn``: a small MLP training loop on logitkit's fused kernels.

Matrix products go through NumPy (BLAS); bias + activation, activation
backward + bias gradient, the loss with its gradient, and every optimizer
update are single fused Rust passes. Buffers are allocated once per batch
shape, so the training loop does not allocate per step.
"""

from ._ops import ACTIVATIONS
from .callbacks import Callback, EarlyStopping, History, LambdaCallback
from .gradcheck import gradient_check
from .model import LOSSES, MLP, Linear
from .optim import (
    SGD,
    Adam,
    AdamW,
    CosineLR,
    Optimizer,
    ReduceLROnPlateau,
    Schedule,
    StepLR,
)

load = MLP.load

__all__ = [
    "ACTIVATIONS",
    "LOSSES",
    "MLP",
    "SGD",
    "Adam",
    "AdamW",
    "Callback",
    "CosineLR",
    "EarlyStopping",
    "History",
    "LambdaCallback",
    "Linear",
    "Optimizer",
    "ReduceLROnPlateau",
    "Schedule",
    "StepLR",
    "gradient_check",
    "load",
]

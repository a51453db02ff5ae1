from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

__version__: str

def softmax(
    x: ArrayLike,
    axis: int | None = -1,
    *,
    where: ArrayLike | None = None,
    out: NDArray[np.floating[Any]] | None = None,
) -> Any: ...
def log_softmax(
    x: ArrayLike,
    axis: int | None = -1,
    *,
    where: ArrayLike | None = None,
    out: NDArray[np.floating[Any]] | None = None,
) -> Any: ...
def logsumexp(
    x: ArrayLike,
    axis: int | None = -1,
    *,
    where: ArrayLike | None = None,
    keepdims: bool = False,
    out: NDArray[np.floating[Any]] | None = None,
) -> Any: ...
def softmax_backward(
    grad: ArrayLike,
    y: ArrayLike,
    axis: int | None = -1,
    *,
    out: NDArray[np.floating[Any]] | None = None,
) -> Any: ...
def log_softmax_backward(
    grad: ArrayLike,
    y: ArrayLike,
    axis: int | None = -1,
    *,
    out: NDArray[np.floating[Any]] | None = None,
) -> Any: ...
def set_num_threads(n: int) -> None: ...
def get_num_threads() -> int: ...
def simd_level() -> str: ...
def sgd_step(
    param: NDArray[np.floating[Any]],
    grad: NDArray[np.floating[Any]],
    momentum_buffer: NDArray[np.floating[Any]] | None = None,
    *,
    lr: float,
    momentum: float = 0.0,
    nesterov: bool = False,
    weight_decay: float = 0.0,
    grad_scale: float = 1.0,
) -> None: ...
def adam_step(
    param: NDArray[np.floating[Any]],
    grad: NDArray[np.floating[Any]],
    exp_avg: NDArray[np.floating[Any]],
    exp_avg_sq: NDArray[np.floating[Any]],
    *,
    step: int,
    lr: float = 1e-3,
    betas: tuple[float, float] = (0.9, 0.999),
    eps: float = 1e-8,
    weight_decay: float = 0.0,
    grad_scale: float = 1.0,
) -> None: ...
def adamw_step(
    param: NDArray[np.floating[Any]],
    grad: NDArray[np.floating[Any]],
    exp_avg: NDArray[np.floating[Any]],
    exp_avg_sq: NDArray[np.floating[Any]],
    *,
    step: int,
    lr: float = 1e-3,
    betas: tuple[float, float] = (0.9, 0.999),
    eps: float = 1e-8,
    weight_decay: float = 1e-2,
    grad_scale: float = 1.0,
) -> None: ...

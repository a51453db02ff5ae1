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

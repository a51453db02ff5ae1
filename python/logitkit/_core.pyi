from typing import Any, Literal

import numpy as np
from numpy.typing import ArrayLike, NDArray

__version__: str

def softmax(
    x: ArrayLike,
    axis: int | tuple[int, ...] | None = -1,
    *,
    where: ArrayLike | None = None,
    out: NDArray[np.floating[Any]] | None = None,
) -> Any: ...
def log_softmax(
    x: ArrayLike,
    axis: int | tuple[int, ...] | None = -1,
    *,
    where: ArrayLike | None = None,
    out: NDArray[np.floating[Any]] | None = None,
) -> Any: ...
def logsumexp(
    x: ArrayLike,
    axis: int | tuple[int, ...] | None = -1,
    *,
    b: ArrayLike | None = None,
    where: ArrayLike | None = None,
    keepdims: bool = False,
    return_sign: bool = False,
    out: NDArray[np.floating[Any]]
    | tuple[NDArray[np.floating[Any]], NDArray[np.floating[Any]]]
    | None = None,
) -> Any: ...
def softmax_backward(
    grad: ArrayLike,
    y: ArrayLike,
    axis: int | tuple[int, ...] | None = -1,
    *,
    where: ArrayLike | None = None,
    out: NDArray[np.floating[Any]] | None = None,
) -> Any: ...
def log_softmax_backward(
    grad: ArrayLike,
    y: ArrayLike,
    axis: int | tuple[int, ...] | None = -1,
    *,
    where: ArrayLike | None = None,
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
def matmul(
    a: NDArray[np.floating[Any]],
    b: NDArray[np.floating[Any]],
    out: NDArray[np.floating[Any]],
) -> NDArray[np.floating[Any]]: ...
def top_k_ranks(
    scores: NDArray[np.floating[Any]],
    target: NDArray[np.int64],
    out: NDArray[np.int64],
) -> NDArray[np.int64]: ...
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
def cross_entropy(
    logits: ArrayLike,
    target: ArrayLike,
    *,
    axis: int = -1,
    weight: ArrayLike | None = None,
    ignore_index: int = -100,
    label_smoothing: float = 0.0,
    reduction: str = "mean",
    return_grad: bool = False,
    grad_out: NDArray[np.floating[Any]] | None = None,
) -> Any: ...
def nll_loss(
    log_probs: ArrayLike,
    target: ArrayLike,
    *,
    axis: int = -1,
    weight: ArrayLike | None = None,
    ignore_index: int = -100,
    reduction: str = "mean",
    return_grad: bool = False,
    grad_out: NDArray[np.floating[Any]] | None = None,
) -> Any: ...
def mse_loss(
    input: ArrayLike,
    target: ArrayLike,
    *,
    reduction: str = "mean",
    return_grad: bool = False,
    grad_out: NDArray[np.floating[Any]] | None = None,
) -> Any: ...
def rmse_loss(
    input: ArrayLike,
    target: ArrayLike,
    *,
    reduction: str = "mean",
    return_grad: bool = False,
    grad_out: NDArray[np.floating[Any]] | None = None,
) -> Any: ...
def l1_loss(
    input: ArrayLike,
    target: ArrayLike,
    *,
    reduction: str = "mean",
    return_grad: bool = False,
    grad_out: NDArray[np.floating[Any]] | None = None,
) -> Any: ...
def huber_loss(
    input: ArrayLike,
    target: ArrayLike,
    *,
    delta: float = 1.0,
    reduction: str = "mean",
    return_grad: bool = False,
    grad_out: NDArray[np.floating[Any]] | None = None,
) -> Any: ...
def smooth_l1_loss(
    input: ArrayLike,
    target: ArrayLike,
    *,
    beta: float = 1.0,
    reduction: str = "mean",
    return_grad: bool = False,
    grad_out: NDArray[np.floating[Any]] | None = None,
) -> Any: ...
def binary_cross_entropy(
    probs: ArrayLike,
    target: ArrayLike,
    *,
    weight: ArrayLike | None = None,
    reduction: str = "mean",
    return_grad: bool = False,
    grad_out: NDArray[np.floating[Any]] | None = None,
) -> Any: ...
def binary_cross_entropy_with_logits(
    logits: ArrayLike,
    target: ArrayLike,
    *,
    weight: ArrayLike | None = None,
    pos_weight: ArrayLike | None = None,
    reduction: str = "mean",
    return_grad: bool = False,
    grad_out: NDArray[np.floating[Any]] | None = None,
) -> Any: ...
def kl_div(
    input: ArrayLike,
    target: ArrayLike,
    *,
    log_target: bool = False,
    reduction: str = "mean",
    return_grad: bool = False,
    grad_out: NDArray[np.floating[Any]] | None = None,
) -> Any: ...
def sigmoid_focal_loss(
    logits: ArrayLike,
    target: ArrayLike,
    *,
    alpha: float = 0.25,
    gamma: float = 2.0,
    reduction: str = "mean",
    return_grad: bool = False,
    grad_out: NDArray[np.floating[Any]] | None = None,
) -> Any: ...
def sigmoid(x: ArrayLike, *, out: NDArray[np.floating[Any]] | None = None) -> Any: ...
def sigmoid_backward(
    grad: ArrayLike, x: ArrayLike, *, out: NDArray[np.floating[Any]] | None = None
) -> Any: ...
def log_sigmoid(x: ArrayLike, *, out: NDArray[np.floating[Any]] | None = None) -> Any: ...
def log_sigmoid_backward(
    grad: ArrayLike, x: ArrayLike, *, out: NDArray[np.floating[Any]] | None = None
) -> Any: ...
def logit(
    p: ArrayLike, eps: float | None = None, *, out: NDArray[np.floating[Any]] | None = None
) -> Any: ...
def logit_backward(
    grad: ArrayLike,
    p: ArrayLike,
    eps: float | None = None,
    *,
    out: NDArray[np.floating[Any]] | None = None,
) -> Any: ...
def tanh(x: ArrayLike, *, out: NDArray[np.floating[Any]] | None = None) -> Any: ...
def tanh_backward(
    grad: ArrayLike, x: ArrayLike, *, out: NDArray[np.floating[Any]] | None = None
) -> Any: ...
def relu(x: ArrayLike, *, out: NDArray[np.floating[Any]] | None = None) -> Any: ...
def relu_backward(
    grad: ArrayLike, x: ArrayLike, *, out: NDArray[np.floating[Any]] | None = None
) -> Any: ...
def relu6(x: ArrayLike, *, out: NDArray[np.floating[Any]] | None = None) -> Any: ...
def relu6_backward(
    grad: ArrayLike, x: ArrayLike, *, out: NDArray[np.floating[Any]] | None = None
) -> Any: ...
def leaky_relu(
    x: ArrayLike, negative_slope: float = 0.01, *, out: NDArray[np.floating[Any]] | None = None
) -> Any: ...
def leaky_relu_backward(
    grad: ArrayLike,
    x: ArrayLike,
    negative_slope: float = 0.01,
    *,
    out: NDArray[np.floating[Any]] | None = None,
) -> Any: ...
def elu(
    x: ArrayLike, alpha: float = 1.0, *, out: NDArray[np.floating[Any]] | None = None
) -> Any: ...
def elu_backward(
    grad: ArrayLike,
    x: ArrayLike,
    alpha: float = 1.0,
    *,
    out: NDArray[np.floating[Any]] | None = None,
) -> Any: ...
def celu(
    x: ArrayLike, alpha: float = 1.0, *, out: NDArray[np.floating[Any]] | None = None
) -> Any: ...
def celu_backward(
    grad: ArrayLike,
    x: ArrayLike,
    alpha: float = 1.0,
    *,
    out: NDArray[np.floating[Any]] | None = None,
) -> Any: ...
def selu(x: ArrayLike, *, out: NDArray[np.floating[Any]] | None = None) -> Any: ...
def selu_backward(
    grad: ArrayLike, x: ArrayLike, *, out: NDArray[np.floating[Any]] | None = None
) -> Any: ...
def gelu(
    x: ArrayLike,
    approximate: Literal["none", "tanh"] = "none",
    *,
    out: NDArray[np.floating[Any]] | None = None,
) -> Any: ...
def gelu_backward(
    grad: ArrayLike,
    x: ArrayLike,
    approximate: Literal["none", "tanh"] = "none",
    *,
    out: NDArray[np.floating[Any]] | None = None,
) -> Any: ...
def silu(x: ArrayLike, *, out: NDArray[np.floating[Any]] | None = None) -> Any: ...
def silu_backward(
    grad: ArrayLike, x: ArrayLike, *, out: NDArray[np.floating[Any]] | None = None
) -> Any: ...
def mish(x: ArrayLike, *, out: NDArray[np.floating[Any]] | None = None) -> Any: ...
def mish_backward(
    grad: ArrayLike, x: ArrayLike, *, out: NDArray[np.floating[Any]] | None = None
) -> Any: ...
def softplus(
    x: ArrayLike,
    beta: float = 1.0,
    threshold: float = 20.0,
    *,
    out: NDArray[np.floating[Any]] | None = None,
) -> Any: ...
def softplus_backward(
    grad: ArrayLike,
    x: ArrayLike,
    beta: float = 1.0,
    threshold: float = 20.0,
    *,
    out: NDArray[np.floating[Any]] | None = None,
) -> Any: ...
def softsign(x: ArrayLike, *, out: NDArray[np.floating[Any]] | None = None) -> Any: ...
def softsign_backward(
    grad: ArrayLike, x: ArrayLike, *, out: NDArray[np.floating[Any]] | None = None
) -> Any: ...
def hard_sigmoid(x: ArrayLike, *, out: NDArray[np.floating[Any]] | None = None) -> Any: ...
def hard_sigmoid_backward(
    grad: ArrayLike, x: ArrayLike, *, out: NDArray[np.floating[Any]] | None = None
) -> Any: ...
def hard_tanh(
    x: ArrayLike,
    min_val: float = -1.0,
    max_val: float = 1.0,
    *,
    out: NDArray[np.floating[Any]] | None = None,
) -> Any: ...
def hard_tanh_backward(
    grad: ArrayLike,
    x: ArrayLike,
    min_val: float = -1.0,
    max_val: float = 1.0,
    *,
    out: NDArray[np.floating[Any]] | None = None,
) -> Any: ...
def hard_swish(x: ArrayLike, *, out: NDArray[np.floating[Any]] | None = None) -> Any: ...
def hard_swish_backward(
    grad: ArrayLike, x: ArrayLike, *, out: NDArray[np.floating[Any]] | None = None
) -> Any: ...
def bias_act(
    h: ArrayLike,
    bias: ArrayLike,
    activation: str = "relu",
    *,
    out: NDArray[np.floating[Any]] | None = None,
    preact_out: NDArray[np.floating[Any]] | None = None,
    **params: Any,
) -> Any: ...
def bias_act_backward(
    grad: ArrayLike,
    z: ArrayLike,
    activation: str = "relu",
    *,
    out: NDArray[np.floating[Any]] | None = None,
    bias_grad_out: NDArray[np.floating[Any]] | None = None,
    **params: Any,
) -> tuple[Any, Any]: ...

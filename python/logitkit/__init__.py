"""logitkit: fast, numerically stable softmax-family functions, losses with fused
gradients and classification metrics for NumPy.

The functions are implemented in Rust (``logitkit._core``): float32 and
float64 are computed natively, any axis works, results are written into
``out=`` when given, and results are bit-identical for any thread count.
"""

from ._core import (
    __version__,
    binary_cross_entropy,
    binary_cross_entropy_with_logits,
    cross_entropy,
    get_num_threads,
    huber_loss,
    kl_div,
    l1_loss,
    log_softmax,
    log_softmax_backward,
    logsumexp,
    mse_loss,
    nll_loss,
    rmse_loss,
    set_num_threads,
    sigmoid_focal_loss,
    simd_level,
    smooth_l1_loss,
    softmax,
    softmax_backward,
)
from .metrics import accuracy, confusion_matrix, one_hot, top_k_accuracy

__all__ = [
    "__version__",
    "binary_cross_entropy",
    "binary_cross_entropy_with_logits",
    "cross_entropy",
    "huber_loss",
    "kl_div",
    "l1_loss",
    "mse_loss",
    "nll_loss",
    "rmse_loss",
    "sigmoid_focal_loss",
    "smooth_l1_loss",
    "accuracy",
    "confusion_matrix",
    "one_hot",
    "top_k_accuracy",
    "get_num_threads",
    "log_softmax",
    "log_softmax_backward",
    "logsumexp",
    "set_num_threads",
    "simd_level",
    "softmax",
    "softmax_backward",
]

from . import nn  # noqa: E402  (after the compiled functions it uses)

__all__ += ["MLPClassifier", "MLPRegressor", "nn"]


def __getattr__(name: str):
    # scikit-learn is an optional extra: import it only when asked for.
    if name in ("MLPClassifier", "MLPRegressor"):
        from . import sklearn as _sk

        return getattr(_sk, name)
    raise AttributeError(f"module 'logitkit' has no attribute {name!r}")

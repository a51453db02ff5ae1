"""logitkit: fast, numerically stable softmax-family functions for NumPy.

The functions are implemented in Rust (``logitkit._core``): float32 and
float64 are computed natively, any axis works, results are written into
``out=`` when given, and results are bit-identical for any thread count.
"""

from ._core import (
    __version__,
    get_num_threads,
    log_softmax,
    log_softmax_backward,
    logsumexp,
    set_num_threads,
    simd_level,
    softmax,
    softmax_backward,
)

__all__ = [
    "__version__",
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

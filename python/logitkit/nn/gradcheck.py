"""Backpropagation checked against central finite differences."""

from __future__ import annotations

from typing import Any

import numpy as np

from .model import MLP


def gradient_check(
    model: MLP,
    X: Any,
    y: Any,
    *,
    sample_weight: Any = None,
    class_weight: Any = None,
    eps: float = 1e-6,
    max_params: int | None = 200,
    seed: int = 0,
) -> float:
    """The largest relative error between backprop's gradient and central
    finite differences ``(L(p + eps) - L(p - eps)) / (2 eps)``, over up to
    ``max_params`` randomly chosen parameters (all with ``None``).

    The check runs on a float64 copy of ``model`` (the model is unchanged).
    Relative error is ``|a - n| / max(|a| + |n|, 1e-5)``: a correct backward
    pass gives about 1e-6 or below (the finite differences' rounding, over
    the 1e-5 floor, for small gradients; 1e-8 typical for larger ones), a
    wrong one 1e-2 and up.

    >>> m = MLP([4, 5, 3], activation="tanh", seed=0)
    >>> gradient_check(m, rng.normal(size=(8, 4)), [0, 1, 2, 0, 1, 2, 0, 1]) < 1e-6
    True
    """
    m = model.astype("float64")
    m.loss_and_grad(X, y, sample_weight, class_weight)
    params = np.concatenate([m.weights_flat, m.biases_flat])
    grads = np.concatenate([m.weight_grads, m.bias_grads])
    nw = m.weights_flat.size
    idx = np.arange(params.size)
    if max_params is not None and params.size > max_params:
        idx = np.random.default_rng(seed).choice(params.size, max_params, replace=False)
    worst = 0.0
    for i in idx:
        buf, j = (m.weights_flat, i) if i < nw else (m.biases_flat, i - nw)
        old = buf[j]
        buf[j] = old + eps
        lp = m.loss_and_grad(X, y, sample_weight, class_weight)
        buf[j] = old - eps
        lm = m.loss_and_grad(X, y, sample_weight, class_weight)
        buf[j] = old
        num = (lp - lm) / (2 * eps)
        err = abs(grads[i] - num) / max(abs(grads[i]) + abs(num), 1e-5)
        worst = max(worst, err)
    return float(worst)

"""Benchmark cases for the activations (``logitkit bench --suite activations``):
every activation and its backward pass, float32 and float64, as × copy (one
read + one write; a backward reads two arrays, so its floor is higher) and
against NumPy's best expression, SciPy where it has the function, and PyTorch
/ JAX when installed."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

import logitkit as lk

from .bench import Case, rng_array

SHAPE = (4096, 1000)
QUICK = ["relu", "sigmoid", "tanh", "silu", "gelu"]
ALL = QUICK + [
    "log_sigmoid",
    "relu6",
    "leaky_relu",
    "elu",
    "celu",
    "selu",
    "mish",
    "softplus",
    "softsign",
    "hard_sigmoid",
    "hard_tanh",
    "hard_swish",
]


def _np_expr(name: str, x: np.ndarray, y: np.ndarray) -> Callable[[], object]:
    """A good NumPy expression for each forward (writing into y where NumPy can)."""
    table: dict[str, Callable[[], object]] = {
        "relu": lambda: np.maximum(x, 0, out=y),
        "sigmoid": lambda: np.divide(1, 1 + np.exp(-x), out=y),
        "tanh": lambda: np.tanh(x, out=y),
        "silu": lambda: np.multiply(x, 1 / (1 + np.exp(-x)), out=y),
        "log_sigmoid": lambda: np.subtract(np.minimum(x, 0), np.log1p(np.exp(-np.abs(x))), out=y),
        "relu6": lambda: np.clip(x, 0, 6, out=y),
        "leaky_relu": lambda: np.where(x > 0, x, 0.01 * x),
        "elu": lambda: np.where(x > 0, x, np.expm1(x)),
        "celu": lambda: np.where(x > 0, x, np.expm1(x)),
        "selu": lambda: 1.0507 * np.where(x > 0, x, 1.6733 * np.expm1(x)),
        "mish": lambda: x * np.tanh(np.logaddexp(0, x)),
        "softplus": lambda: np.logaddexp(0, x, out=y),
        "softsign": lambda: np.divide(x, 1 + np.abs(x), out=y),
        "hard_sigmoid": lambda: np.clip(x / 6 + 0.5, 0, 1, out=y),
        "hard_tanh": lambda: np.clip(x, -1, 1, out=y),
        "hard_swish": lambda: x * np.clip(x / 6 + 0.5, 0, 1),
    }
    try:
        import scipy.special as sp

        table["gelu"] = lambda: np.multiply(x, sp.ndtr(x), out=y)
    except ImportError:
        pass
    return table.get(name, lambda: None)


def _peers(name: str, x: np.ndarray, y: np.ndarray) -> dict[str, Callable[[], object]]:
    impls: dict[str, Callable[[], object]] = {}
    if name in ("gelu",):
        try:
            impls["numpy"] = _np_expr(name, x, y)
        except Exception:
            pass
    else:
        impls["numpy"] = _np_expr(name, x, y)
    try:
        import scipy.special as sp

        if name == "sigmoid":
            impls["scipy"] = lambda: sp.expit(x, out=y)
        elif name == "log_sigmoid":
            impls["scipy"] = lambda: sp.log_expit(x, out=y)
    except ImportError:
        pass
    try:
        import torch
        import torch.nn.functional as F

        torch.set_num_threads(lk.get_num_threads())
        t = torch.from_numpy(x)
        tname = {"hard_sigmoid": "hardsigmoid", "hard_tanh": "hardtanh", "hard_swish": "hardswish"}
        tf = getattr(F, tname.get(name, name), None)
        if name in ("sigmoid", "tanh"):
            tf = getattr(torch, name)
        if name == "log_sigmoid":
            tf = F.logsigmoid
        if tf is not None:
            impls["torch"] = lambda: tf(t)
    except ImportError:
        pass
    try:
        import jax

        jf = getattr(
            jax.nn, {"hard_swish": "hard_swish", "log_sigmoid": "log_sigmoid"}.get(name, name), None
        )
        if jf is not None:
            jj = jax.jit(jf)
            jx = jax.device_put(x)
            impls["jax"] = lambda: jj(jx).block_until_ready()
    except ImportError:
        pass
    return impls


def cases(quick: bool) -> list[Case]:
    out = []
    for dtype in ("float32",) if quick else ("float32", "float64"):
        x = rng_array(SHAPE, dtype)
        g = rng_array(SHAPE, dtype, seed=1)
        y = np.empty_like(x)
        for name in QUICK if quick else ALL:
            f = getattr(lk, name)
            b = getattr(lk, name + "_backward")
            fwd = {
                "logitkit": lambda f=f, x=x, y=y: f(x, out=y),
                "copy": lambda x=x, y=y: np.copyto(y, x),
            }
            fwd.update(_peers(name, x, y))
            out.append(Case(name, dtype, SHAPE, fwd))
            out.append(
                Case(
                    name + "_backward",
                    dtype,
                    SHAPE,
                    {
                        "logitkit": lambda b=b, g=g, x=x, y=y: b(g, x, out=y),
                        "copy": lambda x=x, y=y: np.copyto(y, x),
                    },
                )
            )
    return out

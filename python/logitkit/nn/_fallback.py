"""TEMPORARY NumPy stand-ins for the fused bias + activation kernels of the
activations issue, with their exact signatures. Delete this file once those
branches are merged (``_ops`` then never imports it)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

_erf = np.vectorize(math.erf, otypes=[np.float64])


def _act(name: str, z: np.ndarray, p: dict[str, Any]) -> np.ndarray:
    if name == "relu":
        return np.maximum(z, 0)
    if name == "leaky_relu":
        return np.where(z > 0, z, z * p.get("negative_slope", 0.01))
    if name == "elu":
        a = p.get("alpha", 1.0)
        return np.where(z > 0, z, a * np.expm1(np.minimum(z, 0)))
    if name == "sigmoid":
        return 0.5 * (1 + np.tanh(0.5 * z))
    if name == "tanh":
        return np.tanh(z)
    if name == "silu":
        return z * 0.5 * (1 + np.tanh(0.5 * z))
    if name == "softplus":
        return np.logaddexp(0, z)
    if name == "gelu":
        return 0.5 * z * (1 + _erf(z / math.sqrt(2)).astype(z.dtype))
    raise ValueError(f"unknown activation {name!r}")


def _dact(name: str, z: np.ndarray, p: dict[str, Any]) -> np.ndarray:
    if name == "relu":
        return (z > 0).astype(z.dtype)
    if name == "leaky_relu":
        return np.where(z > 0, 1, p.get("negative_slope", 0.01)).astype(z.dtype)
    if name == "elu":
        a = p.get("alpha", 1.0)
        return np.where(z > 0, 1, a * np.exp(np.minimum(z, 0))).astype(z.dtype)
    if name in ("sigmoid", "silu", "softplus"):
        s = 0.5 * (1 + np.tanh(0.5 * z))
        return s * (1 + z * (1 - s)) if name == "silu" else s if name == "softplus" else s * (1 - s)
    if name == "tanh":
        return 1 - np.tanh(z) ** 2
    if name == "gelu":
        cdf = 0.5 * (1 + _erf(z / math.sqrt(2)).astype(z.dtype))
        return cdf + z * np.exp(-0.5 * z * z) / math.sqrt(2 * math.pi)
    raise ValueError(f"unknown activation {name!r}")


def bias_act(h, bias, activation="relu", *, out=None, preact_out=None, **params):
    z = np.add(h, bias, out=preact_out)
    r = _act(activation, z, params).astype(z.dtype, copy=False)
    if out is None:
        return r
    out[...] = r
    return out


def bias_act_backward(grad, z, activation="relu", *, out=None, bias_grad_out=None, **params):
    g = np.multiply(grad, _dact(activation, z, params), out=out)
    gb = np.sum(g, axis=0, out=bias_grad_out)
    return g, gb

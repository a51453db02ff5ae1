"""Benchmark cases for the softmax family (``logitkit bench --suite softmax``)."""

from __future__ import annotations

import numpy as np

import logitkit as lk

from .bench import Case, rng_array

SHAPES = [(4096, 1000), (256, 50257), (262144, 10), (64, 1000)]
QUICK_SHAPES = [(4096, 1000), (64, 1000)]


def _np_softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def _np_log_softmax(x: np.ndarray) -> np.ndarray:
    s = x - x.max(axis=-1, keepdims=True)
    return s - np.log(np.exp(s).sum(axis=-1, keepdims=True))


def _peers(name: str, x: np.ndarray) -> dict:
    impls = {}
    impls["numpy"] = (lambda: _np_softmax(x)) if name == "softmax" else (lambda: _np_log_softmax(x))
    try:
        import scipy.special as sp

        f = sp.softmax if name == "softmax" else sp.log_softmax
        impls["scipy"] = lambda: f(x, axis=-1)
    except ImportError:
        pass
    try:
        import torch

        torch.set_num_threads(lk.get_num_threads())
        t = torch.from_numpy(x)
        tf = torch.softmax if name == "softmax" else torch.log_softmax
        impls["torch"] = lambda: tf(t, dim=-1)
    except ImportError:
        pass
    try:
        import jax

        jf = jax.jit(jax.nn.softmax if name == "softmax" else jax.nn.log_softmax)
        jx = jax.device_put(x)
        impls["jax"] = lambda: jf(jx).block_until_ready()
    except ImportError:
        pass
    return impls


def cases(quick: bool) -> list[Case]:
    out = []
    for shape in QUICK_SHAPES if quick else SHAPES:
        for dtype in ("float32",) if quick else ("float32", "float64"):
            x = rng_array(shape, dtype)
            y = np.empty_like(x)
            for name, fn in (("softmax", lk.softmax), ("log_softmax", lk.log_softmax)):
                impls = {
                    "logitkit": lambda fn=fn, x=x, y=y: fn(x, out=y),
                    "copy": lambda x=x, y=y: np.copyto(y, x),
                }
                impls.update(_peers(name, x))
                out.append(Case(name, dtype, shape, impls))
    if not quick:
        tiny = rng_array((1, 10), "float32")
        out.append(
            Case(
                "softmax (call overhead)",
                "float32",
                (1, 10),
                {
                    "logitkit": lambda: lk.softmax(tiny),
                    "copy": lambda: np.copyto(np.empty_like(tiny), tiny),
                    **_peers("softmax", tiny),
                },
            )
        )
    return out

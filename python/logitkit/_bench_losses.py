"""Benchmark cases for the fused losses (``logitkit bench --suite losses``):
loss + gradient in one call, against ``np.copyto`` (the floor: one read of the
input and one write of the gradient), a NumPy implementation and, when
installed, PyTorch forward + ``.backward()``. ``report()`` adds the peak extra
memory of each call, measured with ``tracemalloc`` (NumPy allocations are
traced)."""

from __future__ import annotations

import tracemalloc
from collections.abc import Callable

import numpy as np

import logitkit as lk

from .bench import Case, rng_array

CE_SHAPES = [(4096, 1000), (256, 50257), (262144, 10)]
# PyTorch's N x C x H x W layout (class axis 1): segmentation logits.
CE_NCHW = [(16, 21, 128, 128)]
PW_SHAPES = [(4096, 1000)]
QUICK_CE = [(4096, 1000)]


def np_cross_entropy(x: np.ndarray, t: np.ndarray) -> tuple[float, np.ndarray]:
    """Mean cross-entropy and its gradient, the usual NumPy way (class axis 1:
    the last of a matrix, or N x C x H x W)."""
    m = x.max(axis=1, keepdims=True)
    e = np.exp(x - m)
    s = e.sum(axis=1, keepdims=True)
    ti = np.expand_dims(t, 1)
    xt = np.take_along_axis(x, ti, axis=1)
    loss = float(np.mean(np.log(s) + m - xt))
    g = e / s
    np.put_along_axis(g, ti, np.take_along_axis(g, ti, axis=1) - 1, axis=1)
    g /= t.size
    return loss, g


def np_bce_logits(x: np.ndarray, y: np.ndarray) -> tuple[float, np.ndarray]:
    loss = float(np.mean(np.maximum(x, 0) - x * y + np.log1p(np.exp(-np.abs(x)))))
    g = (1 / (1 + np.exp(-x)) - y) / x.size
    return loss, g


def np_mse(x: np.ndarray, y: np.ndarray) -> tuple[float, np.ndarray]:
    d = x - y
    return float(np.mean(d * d)), d * (2 / d.size)


def _torch(name: str, x: np.ndarray, other: np.ndarray) -> Callable[[], object] | None:
    try:
        import torch
        import torch.nn.functional as F
    except ImportError:
        return None
    torch.set_num_threads(lk.get_num_threads())
    o = torch.from_numpy(other)
    f = {
        "cross_entropy": F.cross_entropy,
        "binary_cross_entropy_with_logits": F.binary_cross_entropy_with_logits,
        "mse_loss": F.mse_loss,
    }[name]

    def run() -> object:
        t = torch.from_numpy(x).requires_grad_()
        f(t, o).backward()
        return t.grad

    return run


def _inputs(name: str, shape: tuple[int, ...], hard: bool = False) -> tuple[np.ndarray, np.ndarray]:
    x = rng_array(shape, "float32")
    r = np.random.default_rng(1)
    if name == "cross_entropy":
        return x, r.integers(0, shape[1], shape[:1] + shape[2:])
    if name == "binary_cross_entropy_with_logits":
        y = r.uniform(0, 1, shape)
        # Soft targets take logitkit's f64 path; 0/1 labels its float32 one.
        return x, (y < 0.5 if hard else y).astype(np.float32)
    return x, rng_array(shape, "float32", seed=2)


NUMPY = {
    "cross_entropy": np_cross_entropy,
    "binary_cross_entropy_with_logits": np_bce_logits,
    "mse_loss": np_mse,
}


def _plan(quick: bool) -> list[tuple[str, tuple[int, ...], bool]]:
    """(loss, shape, 0/1 targets) for each benchmarked call."""
    ce = QUICK_CE if quick else CE_SHAPES
    pw = [] if quick else PW_SHAPES
    bce = "binary_cross_entropy_with_logits"
    ce = ce + ([] if quick else CE_NCHW)
    return (
        [("cross_entropy", s, False) for s in ce]
        + [(bce, s, hard) for s in pw for hard in (False, True)]
        + [("mse_loss", s, False) for s in pw]
    )


def _label(name: str, hard: bool, shape: tuple[int, ...] = ()) -> str:
    if name == "binary_cross_entropy_with_logits":
        return f"{name} + grad ({'0/1' if hard else 'soft'} targets)"
    if len(shape) == 4:
        return f"{name} + grad (axis=1)"
    return f"{name} + grad"


def _kw(shape: tuple[int, ...]) -> dict[str, int]:
    """The class axis of an N x C x H x W array is 1."""
    return {"axis": 1} if len(shape) == 4 else {}


def cases(quick: bool) -> list[Case]:
    out = []
    for name, shape, hard in _plan(quick):
        x, other = _inputs(name, shape, hard)
        g = np.empty_like(x)
        fn = getattr(lk, name)
        kw = _kw(shape)
        impls: dict[str, Callable[[], object]] = {
            "logitkit": lambda fn=fn, x=x, o=other, g=g, kw=kw: fn(
                x, o, return_grad=True, grad_out=g, **kw
            ),
            "copy": lambda x=x, g=g: np.copyto(g, x),
            "numpy": lambda f=NUMPY[name], x=x, o=other: f(x, o),
        }
        tf = _torch(name, x, other)
        if tf is not None:
            impls["torch"] = tf
        out.append(Case(_label(name, hard, shape), "float32", shape, impls))
    return out


def peak_extra_bytes(fn: Callable[[], object]) -> int:
    """Peak bytes allocated (and traced) during ``fn()``, beyond what existed before."""
    fn()
    tracemalloc.start()
    tracemalloc.reset_peak()
    base = tracemalloc.get_traced_memory()[0]
    res = fn()
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    del res
    return peak - base


def report(quick: bool) -> str:
    """Markdown table of the peak extra memory per call, as a multiple of the
    gradient's size (1.0 = the gradient buffer only)."""
    lines = [
        "| function | shape | logitkit (new grad) | logitkit (grad_out=) | numpy |",
        "|---|---|---|---|---|",
    ]
    for name, shape, hard in _plan(quick):
        x, other = _inputs(name, shape, hard)
        fn = getattr(lk, name)
        gb = x.nbytes
        g = np.empty_like(x)
        kw = _kw(shape)
        vals = [
            peak_extra_bytes(lambda fn=fn, x=x, o=other, kw=kw: fn(x, o, return_grad=True, **kw)),
            peak_extra_bytes(
                lambda fn=fn, x=x, o=other, g=g, kw=kw: fn(x, o, return_grad=True, grad_out=g, **kw)
            ),
            peak_extra_bytes(lambda f=NUMPY[name], x=x, o=other: f(x, o)),
        ]
        cells = [f"{v / 2**20:.1f} MiB ({v / gb:.2f} × grad)" for v in vals]
        lines.append(
            f"| {_label(name, hard, shape)} | {'×'.join(map(str, shape))} | "
            + " | ".join(cells)
            + " |"
        )
    return "Peak extra memory (tracemalloc):\n\n" + "\n".join(lines)

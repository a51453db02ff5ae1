"""Classification metrics and helpers, thin NumPy code: ``one_hot``,
``accuracy``, ``top_k_accuracy``, ``confusion_matrix``."""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import ArrayLike, DTypeLike, NDArray

from . import _core
from ._convert import int_arg, unmask


def _labels(x: ArrayLike, name: str) -> NDArray[np.int64]:
    a = np.asarray(unmask(x, name))
    if a.size == 0 and a.dtype.kind == "f":
        # An empty list is float64 to NumPy; it holds no non-integer label.
        return a.astype(np.int64)
    if a.dtype.kind not in "iu":
        raise TypeError(f"{name} must hold integer class indices, got dtype {a.dtype}")
    if a.dtype == np.uint64 and a.size and int(a.max()) > np.iinfo(np.int64).max:
        # Reported with its value, not the negative int64 it would wrap to.
        pos = np.unravel_index(int(np.argmax(a > np.iinfo(np.int64).max)), a.shape)
        idx = ", ".join(map(str, pos))
        raise ValueError(f"{name}[{idx}] = {int(a[pos])} is not a class index")
    return a.astype(np.int64, copy=False)


def _check_range(a: NDArray[np.int64], num_classes: int, name: str) -> None:
    bad = (a < 0) | (a >= num_classes)
    if bad.any():
        pos = np.unravel_index(int(np.argmax(bad)), a.shape)
        idx = ", ".join(map(str, pos))
        raise ValueError(
            f"{name}[{idx}] = {int(a[pos])} is not a class index for {num_classes} classes"
        )


def one_hot(
    labels: ArrayLike, num_classes: int = -1, dtype: DTypeLike = np.float32
) -> NDArray[Any]:
    """One-hot encoding: ``out[..., c] = (labels[...] == c)``, shape ``labels.shape + (C,)``.
    ``num_classes=-1`` (the default, as in PyTorch) takes ``C = max(labels) + 1``.

    >>> one_hot([2, 0], 3)
    array([[0., 0., 1.],
           [1., 0., 0.]], dtype=float32)
    """
    a = _labels(labels, "labels")
    if isinstance(num_classes, (int, np.integer)) and not isinstance(num_classes, bool):
        if num_classes == -1:
            num_classes = int(a.max(initial=-1)) + 1
    num_classes = int_arg(num_classes, "num_classes", 0)
    _check_range(a, num_classes, "labels")
    out = np.zeros(a.shape + (num_classes,), dtype=dtype)
    np.put_along_axis(out, a[..., None], 1, axis=-1)
    return out


def _scores_target(scores: ArrayLike, target: ArrayLike) -> tuple[NDArray[Any], NDArray[np.int64]]:
    s = np.asarray(unmask(scores, "scores"))
    if s.dtype.kind not in "biuf":
        raise TypeError(f"scores must be a real numeric array, got dtype {s.dtype}")
    if s.ndim < 1:
        raise ValueError("scores must have a class axis (the last one)")
    t = _labels(target, "target")
    if t.shape != s.shape[:-1]:
        raise ValueError(
            f"target has shape {t.shape}, but scores of shape {s.shape} need {s.shape[:-1]}"
        )
    _check_range(t, s.shape[-1], "target")
    return s, t


def accuracy(scores: ArrayLike, target: ArrayLike) -> float:
    """Fraction of rows whose argmax over the last axis (logits or
    probabilities) equals ``target``; ties go to the first maximum.

    No rows give NaN (a mean over nothing; scikit-learn raises).

    >>> accuracy([[0.1, 2.0], [3.0, 0.0]], [1, 1])
    0.5
    """
    s, t = _scores_target(scores, target)
    if t.size == 0:
        return float("nan")
    return float(np.mean(np.argmax(s, axis=-1) == t))


def top_k_accuracy(scores: ArrayLike, target: ArrayLike, k: int) -> float:
    """Fraction of rows whose ``target`` is among the ``k`` highest scores,
    ranked as ``accuracy``'s argmax ranks them (ties: the lower class index
    first; NaN above every number, as in ``np.argmax``), so ``k=1`` is
    ``accuracy``. (scikit-learn's ``top_k_accuracy_score`` breaks ties the
    other way and rejects NaN.) No rows give NaN.

    >>> top_k_accuracy([[0.1, 2.0, 1.0], [3.0, 0.0, 1.0]], [2, 1], k=2)
    0.5
    """
    s, t = _scores_target(scores, target)
    k = int_arg(k, "k", 1)
    if t.size == 0:
        return float("nan")
    s2, t2 = s.reshape(-1, s.shape[-1]), t.reshape(-1)
    if s2.dtype in (np.float32, np.float64) and s2.dtype.isnative:
        # One pass in the compiled kernel, the same ranks (4096x1000 float32,
        # k=5, one process: 0.95-1.1 ms, about accuracy's argmax; stop 18's
        # six NumPy masks 9.2-14.6 ms).
        ranks = _core.top_k_ranks(
            np.ascontiguousarray(s2), np.ascontiguousarray(t2), np.empty(len(t2), np.int64)
        )
        return float(np.mean(ranks < k))
    ts = np.take_along_axis(s2, t2[:, None], axis=-1)
    # The target's rank: classes scoring higher, and classes tied with it at
    # a lower index.
    if s.dtype.kind in "fc" and np.isnan(s.max()):
        # NaN above every number and tied with NaN (a pass per mask: rare).
        lower_index = np.arange(s2.shape[-1]) < t2[:, None]
        s_nan, t_nan = np.isnan(s2), np.isnan(ts)
        above = (s2 > ts) | (s_nan & ~t_nan)
        tied = (s2 == ts) | (s_nan & t_nan)
        rank = np.count_nonzero(above | (tied & lower_index), axis=-1)
    else:
        # Two counting passes (sum, which is faster than count_nonzero with
        # an axis); the tie-break by index only for the rows whose target
        # score is tied with another (4096x1000 float32, k=5: 9.9 -> 6.8 ms).
        rank = (s2 > ts).sum(axis=-1, dtype=np.intp)
        tied = np.flatnonzero((s2 == ts).sum(axis=-1, dtype=np.intp) > 1)
        if tied.size:
            st, tt = s2[tied], t2[tied]
            lower = np.arange(s2.shape[-1]) < tt[:, None]
            rank[tied] += np.count_nonzero((st == ts[tied]) & lower, axis=-1)
    return float(np.mean(rank < k))


# 2^31 int64 cells (16 GiB): past this a label is an ID, not a class index.
_MAX_CONFUSION_CLASSES = 46_340


def confusion_matrix(
    target: ArrayLike, pred: ArrayLike, num_classes: int | None = None
) -> NDArray[np.int64]:
    """``(C, C)`` int64 counts: ``m[i, j]`` = rows with true class ``i``
    predicted as ``j``. ``C`` defaults to ``max(target, pred) + 1``, and
    is at most 46 340 (a ``ValueError`` beyond: 2^31 counts, 16 GiB).

    >>> confusion_matrix([0, 1, 1], [0, 0, 1])
    array([[1, 0],
           [1, 1]])
    """
    t = _labels(target, "target")
    p = _labels(pred, "pred")
    if t.shape != p.shape:
        raise ValueError(f"target has shape {t.shape}, but pred has shape {p.shape}")
    t, p = t.ravel(), p.ravel()
    given = num_classes is not None
    if num_classes is not None:
        num_classes = int_arg(num_classes, "num_classes", 0)
    else:
        num_classes = int(max(t.max(initial=-1), p.max(initial=-1))) + 1
        if (t < 0).any() or (p < 0).any():
            num_classes = max(num_classes, 1)
    if num_classes > _MAX_CONFUSION_CLASSES:
        who = (
            "num_classes"
            if given
            else ("target" if t.max(initial=-1) >= p.max(initial=-1) else "pred")
        )
        raise ValueError(
            f"confusion_matrix would be {num_classes}x{num_classes} "
            f"({num_classes * num_classes * 8 / 2**30:.3g} GiB of int64 counts): "
            f"{who} {'is' if given else 'holds a label of'} {num_classes - int(not given)};"
            f" labels must be class indices 0..C-1 with C at most {_MAX_CONFUSION_CLASSES}"
        )
    _check_range(t, num_classes, "target")
    _check_range(p, num_classes, "pred")
    return (
        np.bincount(t * num_classes + p, minlength=num_classes * num_classes)
        .reshape(num_classes, num_classes)
        .astype(np.int64, copy=False)
    )

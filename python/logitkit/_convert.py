"""Argument conversion: the slow path the compiled module calls for inputs
that are not already float32/float64 ndarrays, and the integer-argument check
of the Python layers."""

from __future__ import annotations

from typing import Any

import numpy as np


def int_arg(v: Any, name: str, low: int) -> int:
    """An integer argument (Python or NumPy integer, not bool) >= ``low``:
    a TypeError or ValueError naming it otherwise."""
    if isinstance(v, (bool, np.bool_)) or not isinstance(v, (int, np.integer)):
        raise TypeError(f"{name} must be an integer, got {type(v).__name__}")
    if v < low:
        raise ValueError(f"{name} must be >= {low}, got {v}")
    return int(v)


def unmask(x: Any, name: str, hint: str = "") -> Any:
    """``x``, or the data of a masked array with nothing masked; a masked
    array with masked entries is refused (``np.asarray`` would drop its mask:
    a silently wrong result), ``hint`` saying what to pass instead."""
    if not isinstance(x, np.ma.MaskedArray):
        return x
    if np.ma.getmask(x) is not np.ma.nomask and x.mask.any():
        raise TypeError(
            f"{name} is a masked array with masked entries, and logitkit would ignore "
            f"its mask: pass an ndarray, such as {name}.filled(value){hint}"
        )
    return x.data


def as_array(x: object, name: str, hint: str = "") -> np.ndarray:
    """``np.asarray(x)`` after ``unmask``; a failure names ``name``."""
    x = unmask(x, name, hint)
    try:
        return np.asarray(x)
    except Exception as e:  # ragged lists, objects without __array__, ...
        raise TypeError(f"{name} could not be converted to an array: {e}") from None


def as_float_array(x: object, name: str) -> tuple[np.ndarray, bool]:
    """Return ``(array, half)``: ``array`` is a native-endian float32/float64
    ndarray; ``half`` says the result should be float16 (computed in float32).

    Integer and bool inputs are promoted as ``np.exp`` would promote them.
    """
    # The softmax family's input is x, and it takes a mask.
    hint = " (softmax, log_softmax and logsumexp take x.data with where=~x.mask)"
    x = unmask(x, name, hint if name == "x" else "")
    try:
        a = np.asarray(x)
    except Exception as e:  # ragged lists, objects without __array__, ...
        raise TypeError(f"{name} could not be converted to a numeric array: {e}") from None
    kind = a.dtype.kind
    if kind in "biu":
        dt = np.result_type(a.dtype, np.float16)
        if dt == np.float16:
            return a.astype(np.float32), True
        return a.astype(dt), False
    if kind == "f":
        size = a.dtype.itemsize
        if size == 2:
            return a.astype(np.float32), True
        if size in (4, 8):
            return a.astype(a.dtype.newbyteorder("="), copy=False), False
        raise TypeError(
            f"{name} has dtype {a.dtype}; logitkit computes in float16, float32 or float64"
        )
    if kind == "c":
        raise TypeError(f"{name} is complex ({a.dtype}); logitkit functions take real numbers")
    raise TypeError(f"{name} must be a real numeric array, got dtype {a.dtype}")

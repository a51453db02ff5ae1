"""softmax / log_softmax / logsumexp and their backward passes: values against
an independent float64 (math.fsum) reference, properties, gradients, layouts,
bad input, threads."""

from __future__ import annotations

import itertools
import math
import os
import subprocess
import sys
import threading

import logitkit as lk
import numpy as np
import pytest
from _subproc import lower_levels
from _subproc import python as _python
from _subproc import run as _run
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

# ---------------------------------------------------------------- references


def ref_rows(x: np.ndarray, axis: int = -1):
    """softmax, log_softmax, logsumexp computed in extended precision
    (np.longdouble: 64-bit mantissa on x86-64, 113-bit on aarch64), so that
    ``x - max`` and ``exp`` are more accurate than the float64 results under
    test. Independent of the code under test."""
    ld = np.longdouble
    x = np.moveaxis(np.asarray(x, dtype=np.float64).astype(ld), axis, -1)
    m = x.max(axis=-1, keepdims=True)
    e = np.exp(x - m)
    s = e.sum(axis=-1, keepdims=True)
    sm = np.moveaxis(e / s, -1, axis)
    lsm = np.moveaxis((x - m) - np.log(s), -1, axis)
    lse = (m + np.log(s))[..., 0]
    return sm, lsm, lse


def max_rel(got, want, floor=0.0):
    got = np.atleast_1d(np.asarray(got, dtype=np.longdouble))
    want = np.atleast_1d(np.asarray(want, dtype=np.longdouble))
    den = np.maximum(np.abs(want), floor)
    with np.errstate(invalid="ignore", divide="ignore"):
        r = np.abs(got - want) / den
    # Equal values (infinities included) and NaN where NaN is expected count
    # as exact; a NaN anywhere else makes the result NaN, which fails any
    # `<= tol`.
    r[(got == want) | (np.isnan(got) & np.isnan(want))] = 0
    return float(np.max(r)) if r.size else 0.0


# Below these, results (and the float64 reference's own exp) are subnormal
# and have no relative precision to speak of: compare absolutely there.
TINY32 = 1e-35
TINY64 = 1e-300


# ------------------------------------------------------------------- values


def test_seed_example_dog_cat_rabbit():
    p = lk.softmax([4.0, 2.0, -2.0])
    np.testing.assert_allclose(p, [0.879, 0.119, 0.002], atol=5e-4)
    assert np.round(p, 3).tolist() == [0.879, 0.119, 0.002]


def test_log_softmax_keeps_tiny_values():
    v = lk.log_softmax([20, 0])[0]
    assert v != 0.0
    want = -math.log1p(math.exp(-20.0))  # -2.0611536e-09
    assert abs(v - want) <= 1e-7 * abs(want)
    v32 = lk.log_softmax(np.array([20, 0], np.float32))[0]
    assert abs(v32 - want) <= 1e-6 * abs(want)


@pytest.mark.parametrize("dtype,tol", [(np.float32, 2e-6), (np.float64, 1e-14)])
@pytest.mark.parametrize(
    "shape,axis",
    [
        ((7, 1000), -1),
        ((300, 10), -1),
        ((37, 40), -1),
        ((37, 63), -1),
        ((21, 64), -1),
        ((2, 50257), -1),
        ((5, 33), 1),
        ((17, 3), 0),
        ((4, 6, 9), 1),
        ((4, 6, 9), 0),
        ((3, 4, 5, 6), -2),
        ((70001, 5), 0),
        ((1,), 0),
        ((12,), -1),
    ],
)
@pytest.mark.parametrize("scale", [1.0, 100.0])
def test_forward_matches_float64_reference(dtype, tol, shape, axis, scale):
    rng = np.random.default_rng(hash((shape, axis)) % 2**32)
    x = (rng.standard_normal(shape) * scale * 3).astype(dtype)
    sm, lsm, lse = ref_rows(x, axis)
    floor = TINY32 if dtype == np.float32 else TINY64
    assert max_rel(lk.softmax(x, axis), sm, floor) <= tol
    # log_softmax/logsumexp: absolute error, relative once |value| > 1
    assert max_rel(lk.log_softmax(x, axis), lsm, 1.0) <= tol
    assert max_rel(lk.logsumexp(x, axis), lse, 1.0) <= tol
    for f in (lk.softmax, lk.log_softmax, lk.logsumexp):
        assert f(x, axis).dtype == dtype


@pytest.mark.parametrize("dtype,tol", [(np.float32, 2e-6), (np.float64, 1e-14)])
def test_every_partial_last_vector_length(dtype, tol):
    # The row kernels read a row's partial last vector as its last 16
    # elements, overlapping the last full vector: each overlap length, in rows
    # of one block and in the last block of a long row (blocks of 256).
    rng = np.random.default_rng(5)
    for n in [*range(64, 81), 100, 2048 + 256 + 17, 2048 + 256 + 3]:
        x = (rng.standard_normal((3, n)) * 20).astype(dtype)
        x[1, -1] = x[1].max() + 5  # the row max in the partial vector
        x[2, -17] = x[2].max() + 5  # ... in the overlap
        sm, lsm, lse = ref_rows(x)
        floor = TINY32 if dtype == np.float32 else TINY64
        assert max_rel(lk.softmax(x), sm, floor) <= tol, n
        assert max_rel(lk.log_softmax(x), lsm, 1.0) <= tol, n
        assert max_rel(lk.logsumexp(x), lse, 1.0) <= tol, n


@pytest.mark.parametrize("n", [10, 100, 1000])
@pytest.mark.parametrize("scale", [1.0, 100.0, 1e4])
def test_log_softmax_float32_within_1_5_ulp(n, scale):
    # (x - max) - log(sum): two terms of one sign, three roundings of at most
    # half an ulp of the result each (values below 1 in magnitude are held to
    # the absolute bound instead: their log(sum) carries the sum's error).
    rng = np.random.default_rng(n)
    x = (rng.standard_normal((300, n)) * scale).astype(np.float32)
    _, lsm, _ = ref_rows(x)
    got = lk.log_softmax(x).astype(np.float64)
    big = np.abs(lsm) >= 1.0
    ulp = np.spacing(np.abs(lsm[big]).astype(np.float32)).astype(np.float64)
    assert np.max(np.abs(got[big] - lsm[big]) / ulp) <= 1.5
    assert np.max(np.abs(got[~big] - lsm[~big]), initial=0.0) <= 2e-7


def test_large_vocab_scaled_logits_float32_relative_error():
    rng = np.random.default_rng(1)
    x = (rng.standard_normal((4, 50257)) * 100).astype(np.float32)
    sm, lsm, lse = ref_rows(x)
    assert max_rel(lk.softmax(x), sm, TINY32) <= 2e-6
    assert max_rel(lk.log_softmax(x), lsm, 1.0) <= 2e-6
    assert max_rel(lk.logsumexp(x), lse, 1.0) <= 2e-6


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_no_overflow_at_dtype_max(dtype):
    big = np.finfo(dtype).max
    x = np.array([[big, -big, 0.0], [big, big, big]], dtype)
    y = lk.softmax(x)
    np.testing.assert_array_equal(y[0], [1.0, 0.0, 0.0])
    np.testing.assert_allclose(y[1], [1 / 3] * 3, rtol=1e-6)
    np.testing.assert_allclose(lk.logsumexp(x[1]), float(big) + math.log(3), rtol=1e-6)
    assert np.isfinite(lk.log_softmax(x)[1]).all()


def test_special_values():
    ninf, inf, nan = -np.inf, np.inf, np.nan
    assert np.isnan(lk.softmax([ninf, ninf])).all()  # like PyTorch / SciPy
    assert np.isnan(lk.log_softmax([ninf, ninf])).all()
    assert lk.logsumexp([ninf, ninf]) == ninf
    assert np.isnan(lk.softmax([1.0, nan, 2.0])).all()
    assert np.isnan(lk.logsumexp([1.0, nan]))
    np.testing.assert_array_equal(lk.softmax([ninf, 0.0, ninf]), [0, 1, 0])
    np.testing.assert_array_equal(lk.log_softmax([ninf, 0.0]), [ninf, 0.0])
    assert lk.logsumexp([inf, 1.0]) == inf
    assert np.isnan(lk.logsumexp([inf, nan]))


def test_where_mask_semantics():
    x = np.array([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])
    m = np.array([[True, False, True], [False, False, False]])
    y = lk.softmax(x, where=m)
    e = np.exp([1.0, 3.0])
    np.testing.assert_allclose(y[0], [e[0] / e.sum(), 0, e[1] / e.sum()], rtol=1e-15)
    np.testing.assert_array_equal(y[1], [0, 0, 0])  # fully masked: zeros, not NaN
    ly = lk.log_softmax(x, where=m)
    assert ly[0, 1] == -np.inf and (ly[1] == -np.inf).all()
    np.testing.assert_allclose(ly[0, [0, 2]], np.log(y[0, [0, 2]]), rtol=1e-14)
    s = lk.logsumexp(x, where=m)
    assert s[1] == -np.inf
    np.testing.assert_allclose(s[0], np.log(e.sum()), rtol=1e-15)
    # broadcasting mask, and a non-last axis
    col = np.array([True, False, True])
    np.testing.assert_array_equal(
        lk.softmax(x, where=col), lk.softmax(x, where=np.tile(col, (2, 1)))
    )
    yt = lk.softmax(x.T, axis=0, where=m.T)
    np.testing.assert_allclose(yt, y.T, rtol=1e-15)


@pytest.mark.parametrize("n", [3, 10, 17, 31, 32, 40, 63, 64, 100])
@pytest.mark.parametrize("dtype,tol", [(np.float32, 2e-6), (np.float64, 1e-14)])
def test_where_mask_matches_reference_on_both_kernel_paths(n, dtype, tol):
    # Masked rows run through the row kernel from 32 (float64) or 64
    # (float32) classes and through the column kernel below; in place too.
    rng = np.random.default_rng(n)
    x = (rng.standard_normal((37, n)) * 5).astype(dtype)
    w = rng.random((37, n)) < 0.7
    w[3] = False  # fully masked
    w[4] = False
    w[4, n // 2] = True  # one entry left
    # The shared reference on the rows with an entry left (masked entries as
    # -inf); a fully masked row gives zeros / -inf.
    live = w.any(axis=1)
    sm = np.zeros(x.shape, np.longdouble)
    lsm = np.full(x.shape, -np.inf, np.longdouble)
    lse = np.full(len(x), -np.inf, np.longdouble)
    sm[live], lsm[live], lse[live] = ref_rows(np.where(w, x, -np.inf)[live])
    floor = TINY32 if dtype == np.float32 else TINY64
    y = lk.softmax(x, where=w)
    assert (y[3] == 0).all() and y[4, n // 2] == 1.0
    assert max_rel(y, sm, floor) <= tol
    ly = lk.log_softmax(x, where=w)
    np.testing.assert_array_equal(np.isneginf(ly), ~w)
    assert max_rel(ly[w], lsm[w], 1.0) <= tol
    ls = lk.logsumexp(x, where=w)
    assert ls[3] == -np.inf
    assert max_rel(ls, lse, 1.0) <= tol
    for f, want in ((lk.softmax, y), (lk.log_softmax, ly)):
        xi = x.copy()
        got = f(xi, where=w, out=xi)
        assert got is xi
        np.testing.assert_array_equal(got, want)


def test_axis_none_reduces_over_everything():
    x = np.random.default_rng(0).standard_normal((3, 4))
    sm, _, lse = ref_rows(x.reshape(1, -1))
    np.testing.assert_allclose(lk.softmax(x, axis=None), sm.reshape(3, 4), rtol=1e-14)
    np.testing.assert_allclose(lk.logsumexp(x, axis=None), lse[0], rtol=1e-15)
    assert lk.logsumexp(x, axis=None, keepdims=True).shape == (1, 1)


def test_keepdims_and_reduction_shapes():
    x = np.zeros((2, 3, 4))
    assert lk.logsumexp(x, axis=1).shape == (2, 4)
    assert lk.logsumexp(x, axis=1, keepdims=True).shape == (2, 1, 4)
    assert np.isscalar(lk.logsumexp(np.zeros(3))) or np.ndim(lk.logsumexp(np.zeros(3))) == 0
    np.testing.assert_allclose(lk.logsumexp(np.zeros(3)), math.log(3), rtol=1e-15)


# ------------------------------------------------------------- several axes


def _to_rows(a: np.ndarray, axes: tuple[int, ...]) -> np.ndarray:
    """``a`` with ``axes`` moved to the end and merged: one row per position
    on the other axes (the test's own reshaping, not the package's)."""
    axes = tuple(sorted(ax % a.ndim for ax in axes))
    m = np.moveaxis(a, axes, range(a.ndim - len(axes), a.ndim))
    return m.reshape(m.shape[: a.ndim - len(axes)] + (-1,))


def _from_rows(r: np.ndarray, shape: tuple[int, ...], axes: tuple[int, ...]) -> np.ndarray:
    axes = tuple(sorted(ax % len(shape) for ax in axes))
    rest = [i for i in range(len(shape)) if i not in axes]
    moved = r.reshape(tuple(shape[i] for i in rest) + tuple(shape[i] for i in axes))
    return np.moveaxis(moved, range(len(shape) - len(axes), len(shape)), axes)


SEVERAL_AXES = [(1, 2), (0, 2), (0, 3), (1, 3), (0, 1, 2, 3), (-1, 0), (2, 0, 1), (0, 1)]


@pytest.mark.parametrize("axes", SEVERAL_AXES)
@pytest.mark.parametrize(
    "dtype,tol,tiny", [(np.float32, 2e-6, TINY32), (np.float64, 1e-14, TINY64)]
)
@pytest.mark.parametrize("layout", ["C", "F", "strided"])
def test_several_axes_match_the_reference(axes, dtype, tol, tiny, layout):
    rng = np.random.default_rng(11)
    base = (rng.standard_normal((6, 5, 8, 7)) * 20).astype(dtype)
    x = {
        "C": base,
        "F": np.asfortranarray(base),
        "strided": np.repeat(base, 2, axis=2)[:, :, ::2],
    }[layout]
    sm, lsm, lse = (np.asarray(r, dtype=np.longdouble) for r in ref_rows(_to_rows(x, axes)))
    got = lk.softmax(x, axis=axes)
    assert got.shape == x.shape and got.dtype == dtype
    assert max_rel(got, _from_rows(sm, x.shape, axes), tiny) <= tol
    assert max_rel(lk.log_softmax(x, axis=axes), _from_rows(lsm, x.shape, axes), 1.0) <= tol
    rest = tuple(s for i, s in enumerate(x.shape) if i not in {a % x.ndim for a in axes})
    lse_got = lk.logsumexp(x, axis=axes)
    assert np.shape(lse_got) == rest
    assert max_rel(lse_got, lse.reshape(rest), 1.0) <= tol
    kept = tuple(1 if i in {a % x.ndim for a in axes} else s for i, s in enumerate(x.shape))
    lse_kept = lk.logsumexp(x, axis=axes, keepdims=True)
    assert lse_kept.shape == kept
    np.testing.assert_array_equal(lse_kept.reshape(rest), lse_got)


@pytest.mark.parametrize("axes", SEVERAL_AXES)
def test_several_axes_give_the_bits_of_merging_them_by_hand(axes):
    rng = np.random.default_rng(12)
    x = (rng.standard_normal((6, 5, 8, 7)) * 5).astype(np.float32)
    g = rng.standard_normal(x.shape).astype(np.float32)
    mask = rng.random((5, 1, 7)) < 0.7  # broadcasts to x
    rows = _to_rows(x, axes)
    for f in (lk.softmax, lk.log_softmax):
        want = _from_rows(f(rows), x.shape, axes)
        np.testing.assert_array_equal(f(x, axis=axes), want)
        full = np.broadcast_to(mask, x.shape)
        want = _from_rows(f(rows, where=_to_rows(full, axes)), x.shape, axes)
        np.testing.assert_array_equal(f(x, axis=axes, where=mask), want)
    np.testing.assert_array_equal(
        lk.logsumexp(x, axis=axes), lk.logsumexp(rows).reshape(np.shape(lk.logsumexp(x, axis=axes)))
    )
    y = lk.softmax(x, axis=axes)
    want = _from_rows(lk.softmax_backward(_to_rows(g, axes), _to_rows(y, axes)), x.shape, axes)
    np.testing.assert_array_equal(lk.softmax_backward(g, y, axis=axes), want)
    ly = lk.log_softmax(x, axis=axes)
    want = _from_rows(lk.log_softmax_backward(_to_rows(g, axes), _to_rows(ly, axes)), x.shape, axes)
    np.testing.assert_array_equal(lk.log_softmax_backward(g, ly, axis=axes), want)


@pytest.mark.parametrize("axes", [(0, 2), (1, 2)])
def test_several_axes_with_out_in_place_and_float16(axes):
    rng = np.random.default_rng(13)
    x = rng.standard_normal((4, 6, 5))
    want = lk.softmax(x, axis=axes)
    out = np.empty_like(x)
    assert lk.softmax(x, axis=axes, out=out) is out
    np.testing.assert_array_equal(out, want)
    fout = np.empty_like(x, order="F")
    lk.softmax(x, axis=axes, out=fout)
    np.testing.assert_array_equal(fout, want)
    y = x.copy()
    assert lk.softmax(y, axis=axes, out=y) is y
    np.testing.assert_array_equal(y, want)
    lse_out = np.empty(6 if axes == (0, 2) else 4)
    assert lk.logsumexp(x, axis=axes, out=lse_out) is lse_out
    np.testing.assert_array_equal(lse_out, lk.logsumexp(x, axis=axes))
    h = x.astype(np.float16)
    got = lk.softmax(h, axis=axes)
    assert got.dtype == np.float16
    np.testing.assert_array_equal(
        got, lk.softmax(h.astype(np.float32), axis=axes).astype(np.float16)
    )
    with pytest.raises(ValueError, match="out has shape"):
        lk.logsumexp(x, axis=axes, out=np.empty(5))


def test_axis_tuples_of_every_axis_and_of_no_axis():
    x = np.random.default_rng(14).standard_normal((3, 4, 5))
    np.testing.assert_array_equal(lk.softmax(x, axis=(2, 0)), lk.softmax(x, axis=(0, 2)))
    with pytest.raises(TypeError, match="axis must be an int, a tuple of ints or None, got list"):
        lk.softmax(x, axis=[0, 2])  # as NumPy's reductions refuse a list
    np.testing.assert_array_equal(lk.softmax(x, axis=(0, 1, 2)), lk.softmax(x, axis=None))
    assert lk.logsumexp(x, axis=(0, 1, 2)) == lk.logsumexp(x, axis=None)
    assert lk.logsumexp(x, axis=(2, 1, 0), keepdims=True).shape == (1, 1, 1)
    np.testing.assert_array_equal(lk.softmax(x, axis=(1,)), lk.softmax(x, axis=1))
    # No axis: every element is a row of its own, as NumPy's reductions over
    # axis=() leave every element alone.
    s = np.array([[0.5, -np.inf], [np.nan, np.inf]])
    np.testing.assert_array_equal(lk.logsumexp(s, axis=()), s)
    assert lk.logsumexp(s, axis=(), keepdims=True).shape == s.shape
    np.testing.assert_array_equal(lk.softmax(s, axis=()), [[1.0, np.nan], [np.nan, np.nan]])
    np.testing.assert_array_equal(lk.log_softmax(s, axis=()), [[0.0, np.nan], [np.nan, np.nan]])
    assert lk.logsumexp(np.float64(3.0), axis=()) == 3.0
    assert lk.softmax(np.float64(3.0), axis=(0,)) == 1.0


# ------------------------------------------------ logsumexp b=, return_sign


def ref_wlse(x, b, axis=-1):
    """SciPy's weighted logsumexp, log|sum(b * exp(x))| and its sign, in
    extended precision; entries whose weight is 0 are left out."""
    ld = np.longdouble
    x = np.asarray(x, dtype=np.float64).astype(ld)
    b = np.broadcast_to(np.asarray(b, dtype=np.float64), x.shape).astype(ld)
    if axis is None:
        x, b, axis = x.reshape(1, -1), b.reshape(1, -1), -1
    x, b = np.moveaxis(x, axis, -1), np.moveaxis(b, axis, -1)
    keep = b != 0
    xk = np.where(keep, x, -np.inf)
    m = xk.max(axis=-1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        s = np.where(keep, b * np.exp(xk - m), 0).sum(axis=-1)
        value = m[..., 0] + np.log(np.abs(s))
    return value, np.sign(s)


WEIGHTED_CASES = [
    ((5, 1), -1),
    ((33, 7), -1),
    ((40, 16), -1),
    ((17, 63), -1),
    ((9, 64), -1),
    ((5, 1000), -1),
    ((3, 5000), -1),
    ((1000, 7), 0),
    ((200, 100), 0),
    ((4, 6, 70), 1),
    ((6, 5), None),
    ((4, 6, 8), (0, 2)),
]


@pytest.mark.parametrize("dtype,tol", [(np.float32, 2e-6), (np.float64, 1e-14)])
@pytest.mark.parametrize("shape,axis", WEIGHTED_CASES)
def test_weighted_logsumexp_matches_the_reference(shape, axis, dtype, tol):
    rng = np.random.default_rng(len(shape) * 1000 + shape[-1])
    x = (rng.standard_normal(shape) * 20).astype(dtype)
    b = rng.uniform(0.2, 3.0, shape).astype(dtype)
    b[rng.random(shape) < 0.2] = 0  # left out, whatever x is there
    x[(b == 0) & (rng.random(shape) < 0.3)] = np.inf
    got = lk.logsumexp(x, axis, b=b)
    if isinstance(axis, tuple):
        rows = _to_rows(x, axis), _to_rows(b, axis)
        want, sign = ref_wlse(*rows)
        want, sign = want.reshape(got.shape), sign.reshape(got.shape)
    else:
        want, sign = ref_wlse(x, b, axis)
    assert np.asarray(got).dtype == dtype
    assert max_rel(got, want, floor=1.0) <= tol
    # Negated weights: the same magnitude with the opposite sign (0 for a
    # row whose every weight is 0), and NaN without return_sign (the log of a
    # negative sum).
    v, sg = lk.logsumexp(x, axis, b=-b, return_sign=True)
    assert max_rel(v, want, floor=1.0) <= tol
    np.testing.assert_array_equal(sg, -sign)
    assert np.any(sign == 1)
    neg = np.asarray(lk.logsumexp(x, axis, b=-b)).reshape(sign.shape)
    assert np.all(np.isnan(neg[sign == 1])) and np.all(neg[sign == 0] == -np.inf)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_weighted_logsumexp_special_values_follow_scipy(dtype):
    inf, nan = np.inf, np.nan
    e1 = 1 + math.log(math.e - 1)  # log(e^2 - e)
    # (x, b, value with return_sign, sign, value without return_sign)
    cases = [
        ([1, 2], [1, -1], e1, -1, nan),
        ([1, 2], [-1, 1], e1, 1, e1),
        ([1, 1], [1, -1], -inf, 0, -inf),
        ([inf, 2], [0, 1], 2, 1, 2),
        ([nan, 2], [0, 1], 2, 1, 2),
        ([inf, 2], [1, 1], inf, 1, inf),
        ([inf, 2], [-1, 1], inf, -1, nan),
        ([inf, inf], [1, -1], nan, nan, nan),
        ([-inf, -inf], [1, -1], -inf, 0, -inf),
        ([1, 2], [0, 0], -inf, 0, -inf),
        ([1, 2], [nan, 1], nan, nan, nan),
        ([-inf, 1], [inf, 1], nan, nan, nan),
        ([1, 1], [inf, -inf], nan, nan, nan),
        ([5, -inf], [-2, 0], 5 + math.log(2), -1, nan),
        # An infinite weight on a finite entry is an infinite term, also
        # next to a +inf entry and where the entry's exp underflows.
        ([inf, 1], [1, inf], inf, 1, inf),
        ([inf, 1], [-1, -inf], inf, -1, nan),
        ([inf, 1], [1, -inf], nan, nan, nan),
        ([-200, 0], [inf, 1], inf, 1, inf),
    ]
    for x, b, v, sg, v1 in cases:
        x, b = np.array(x, dtype), np.array(b, dtype)
        got_v, got_s = lk.logsumexp(x, b=b, return_sign=True)
        np.testing.assert_allclose(got_v, v, rtol=1e-6, err_msg=f"{x} {b}")
        np.testing.assert_array_equal(got_s, sg, err_msg=f"{x} {b}")
        np.testing.assert_allclose(lk.logsumexp(x, b=b), v1, rtol=1e-6, err_msg=f"{x} {b}")
    # Tiny and huge weights act through their logs.
    got = lk.logsumexp(np.array([1.0, 2.0]), b=[1e-320, 0])
    assert got == pytest.approx(math.log(1e-320) + 1, rel=1e-12)
    got = lk.logsumexp(np.array([800.0, 2.0]), b=[1e300, 0])
    assert got == pytest.approx(800 + 300 * math.log(10), rel=1e-15)


def _weighted_lse_by_rules(x, b):
    """The weighted logsumexp of one row of special values as logsumexp's
    docstring defines it (SciPy's, with zero-weight entries left out), term
    by term with IEEE's products (math.exp on Python floats): a NaN entry or
    weight, an infinite weight on a -inf entry, or infinite terms of both
    signs give NaN. Returns (log|s|, sign)."""
    terms = []
    for v, w in zip(map(float, x), map(float, b), strict=True):
        if w == 0:
            continue
        if math.isnan(v) or math.isnan(w):
            terms.append(math.nan)
        elif math.isinf(w):
            terms.append(math.nan if v == -math.inf else w)
        elif v == math.inf:
            terms.append(w * math.inf)
        else:
            terms.append(w * math.exp(v))
    s = math.fsum(terms) if not any(map(math.isinf, terms)) else sum(terms)
    if math.isnan(s):
        return math.nan, math.nan
    if s == 0:
        return -math.inf, 0.0
    return math.log(abs(s)), math.copysign(1.0, s)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_weighted_logsumexp_every_pair_of_special_values(dtype):
    # Rows of two entries from every combination of special entries and
    # weights, along the last axis (row kernel) and down a column of 20
    # copies (the interleaved-rows kernel), against the rules above.
    entries = [-np.inf, -200.0, -1.0, 0.0, 1.0, np.inf, np.nan]
    weights = [-np.inf, -2.0, 0.0, 1.0, np.inf, np.nan]
    pair = itertools.product
    rows = list(pair(pair(entries, repeat=2), pair(weights, repeat=2)))
    x = np.array([a for a, _ in rows], dtype)
    b = np.array([w for _, w in rows], dtype)
    want = np.array([_weighted_lse_by_rules(a, w) for a, w in zip(x, b, strict=True)])
    want_plain = np.where(want[:, 1] < 0, np.nan, want[:, 0])
    xc, bc = (np.repeat(a.T[:, :, None], 20, 2) for a in (x, b))
    for got_v, got_s, plain in [
        (*lk.logsumexp(x, axis=1, b=b, return_sign=True), lk.logsumexp(x, axis=1, b=b)),
        (*lk.logsumexp(xc, axis=0, b=bc, return_sign=True), lk.logsumexp(xc, axis=0, b=bc)),
    ]:
        got_v, got_s, plain = (np.asarray(a).reshape(len(rows), -1) for a in (got_v, got_s, plain))
        for k in range(got_v.shape[1]):
            np.testing.assert_allclose(got_v[:, k], want[:, 0], rtol=1e-6)
            np.testing.assert_array_equal(got_s[:, k], want[:, 1])
            np.testing.assert_allclose(plain[:, k], want_plain, rtol=1e-6)


def test_weighted_logsumexp_where_broadcasting_and_shapes():
    rng = np.random.default_rng(3)
    x = rng.standard_normal((4, 6, 5))
    b = rng.uniform(0.5, 2, (6, 1))  # broadcast over the first and last axes
    mask = rng.random((4, 6, 5)) < 0.7
    mask[0, 0] = False  # a fully masked row
    full = np.broadcast_to(b, x.shape)
    want, _ = ref_wlse(x, np.where(mask, full, 0), 2)
    got = lk.logsumexp(x, 2, b=b, where=mask)
    assert max_rel(got, want) <= 1e-14
    assert got[0, 0] == -np.inf
    v, sg = lk.logsumexp(x, 2, b=b, where=mask, return_sign=True)
    assert sg[0, 0] == 0 and np.all(sg.ravel()[1:] == 1)
    assert lk.logsumexp(x, 1, b=b, keepdims=True).shape == (4, 1, 5)
    v, sg = lk.logsumexp(x, None, b=2.0, return_sign=True)
    assert np.ndim(v) == 0 and sg == 1
    assert v == pytest.approx(ref_wlse(x, 2.0, None)[0][0], rel=1e-15)
    # A scalar x, and empty rows (log of an empty sum, sign 0).
    assert lk.logsumexp(5.0, b=-2.0, return_sign=True) == (5 + math.log(2), -1)
    v, sg = lk.logsumexp(np.zeros((3, 0)), b=1.0, return_sign=True)
    assert np.all(v == -np.inf) and np.all(sg == 0)
    assert lk.logsumexp(np.zeros((0, 3)), b=1.0).shape == (0,)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("n", [3, 100])
def test_a_number_as_weights_matches_an_array_of_it(dtype, n):
    # A Python number takes logsumexp's own pass and scales each row's sum;
    # an array of it takes the weighted pass: the same semantics, special
    # rows included (NaN, +inf, all -inf, masked out).
    rng = np.random.default_rng(n)
    x = (rng.standard_normal((8, n)) * 10).astype(dtype)
    x[1, 0] = np.nan
    x[2, 1] = np.inf
    x[3] = -np.inf
    x[4, :2] = np.inf
    mask = np.ones(x.shape, bool)
    mask[5] = False
    # (+-1e39 overflows float32: inf weights, whose exps of 0 give NaN terms
    # in both forms; the cast warns, as NumPy's weak scalars do.)
    for v in [2.0, -3.0, 0.0, np.nan, np.inf, -np.inf, 1e-30, 1e30, 7, 1e39, -1e39]:
        for kw in ({}, {"where": mask}):
            with np.errstate(over="ignore"):
                full = np.full(x.shape, v, dtype)
                got = lk.logsumexp(x, b=v, return_sign=True, **kw)
                plain = lk.logsumexp(x, b=v, **kw)
            want = lk.logsumexp(x, b=full, return_sign=True, **kw)
            np.testing.assert_array_equal(got[1], want[1], err_msg=f"b={v} {kw}")
            np.testing.assert_allclose(got[0], want[0], rtol=3e-7, err_msg=f"b={v} {kw}")
            np.testing.assert_allclose(plain, lk.logsumexp(x, b=full, **kw), rtol=3e-7)


def test_a_python_number_as_weights_takes_float16():
    # With float16 x a Python number b is float16's (NumPy's weak scalars,
    # SciPy's logsumexp): log(sum(f16(b) exp(x))) in float64, rounded once.
    x = np.array([[1, 2, 3], [0.5, -1, 4], [-2, -2, 0.25]], np.float16)
    for v in [0.1, 3.3, 0.7, 1e-3, 7.0, -0.1]:
        b16 = float(np.float16(v))
        s = (b16 * np.exp(x.astype(np.float64))).sum(axis=1)
        got, sign = lk.logsumexp(x, axis=1, b=v, return_sign=True)
        assert got.dtype == np.float16
        np.testing.assert_array_equal(got, np.log(np.abs(s)).astype(np.float16), err_msg=f"b={v}")
        np.testing.assert_array_equal(sign, np.sign(s), err_msg=f"b={v}")
        full = np.full(x.shape, v, np.float16)
        np.testing.assert_array_equal(got, lk.logsumexp(x, axis=1, b=full, return_sign=True)[0])


def test_a_numpy_scalar_as_weights_promotes_as_an_array():
    # np.float64 subclasses float, but NumPy (NEP 50) and SciPy promote with
    # it as with a 0-d array: a float64 result, 1e-50 not rounded to 0.
    x = np.zeros(3, np.float32)
    for b in [np.float64(1e-50), np.float64(1 + 1e-12), np.int64(3)]:
        want = lk.logsumexp(x, b=np.array(b))
        got = lk.logsumexp(x, b=b)
        assert got.dtype == want.dtype == np.float64, type(b)
        assert got == want
    assert lk.logsumexp(x, b=np.float64(1e-50)) == pytest.approx(np.log(3e-50), rel=1e-15)
    # A Python float (and bool) keeps x's dtype.
    assert lk.logsumexp(x, b=1e-3).dtype == np.float32
    assert lk.logsumexp(x, b=True).dtype == np.float32


def test_logsumexp_return_sign_without_weights():
    x = np.array([[1.0, 2.0], [-np.inf, -np.inf], [np.nan, 0.0]])
    v, sg = lk.logsumexp(x, return_sign=True)
    np.testing.assert_array_equal(sg, [1, 0, np.nan])
    np.testing.assert_array_equal(v, lk.logsumexp(x))


def test_weighted_logsumexp_dtypes_and_out():
    x = np.random.default_rng(4).standard_normal((3, 5)).astype(np.float32)
    # A Python number keeps x's dtype (as NumPy's weak scalars); arrays
    # promote with x.
    assert lk.logsumexp(x, b=2.0).dtype == np.float32
    assert lk.logsumexp(x, b=np.ones(5, np.int64)).dtype == np.float64
    assert lk.logsumexp(x, b=np.ones(5, np.float32)).dtype == np.float32
    v, sg = lk.logsumexp(x.astype(np.float16), return_sign=True)
    assert v.dtype == sg.dtype == np.float16
    np.testing.assert_allclose(
        lk.logsumexp(x, b=2.0), lk.logsumexp(x) + np.float32(math.log(2)), rtol=2e-7
    )
    o = np.empty(3, np.float32)
    assert lk.logsumexp(x, b=3.0, out=o) is o
    ov, os_ = np.empty(3, np.float32), np.empty(3, np.float32)
    r = lk.logsumexp(x, b=-1.0, return_sign=True, out=(ov, os_))
    assert r[0] is ov and r[1] is os_
    np.testing.assert_array_equal(os_, -1)
    np.testing.assert_array_equal(ov, lk.logsumexp(x))


def test_logsumexp_return_sign_out_may_be_a_view_of_x_or_b():
    # The value and the sign are two passes over x and b: an out= that is a
    # view of either must not change what the other pass reads.
    rng = np.random.default_rng(7)
    x0 = rng.standard_normal((6, 5))
    b0 = rng.standard_normal((6, 5))

    def want():
        s = (b0 * np.exp(x0)).sum(axis=1)
        return np.log(np.abs(s)), np.sign(s)

    wv, ws = want()
    assert (ws < 0).any() and (ws > 0).any()
    for where in ("x", "b"):
        for slot in (0, 1):
            x, b = x0.copy(), b0.copy()
            view = (x if where == "x" else b)[:, 0]
            outs = [np.empty(6), np.empty(6)]
            outs[slot] = view
            v, sg = lk.logsumexp(x, b=b, return_sign=True, out=tuple(outs))
            assert v is outs[0] and sg is outs[1]
            np.testing.assert_allclose(v, wv, rtol=1e-13)
            np.testing.assert_array_equal(sg, ws)


def test_logsumexp_return_sign_out_may_interleave_in_one_buffer():
    # Every other element of one buffer each: their byte ranges overlap but
    # no element is shared, so both are written (the sign's slots stay the
    # sign's); views sharing an element are still refused.
    rng = np.random.default_rng(8)
    x, b = rng.standard_normal((6, 5)), rng.standard_normal((6, 5))
    wv, ws = lk.logsumexp(x, axis=1, b=b, return_sign=True)
    buf = np.full(12, 7.0)
    v, sg = lk.logsumexp(x, axis=1, b=b, return_sign=True, out=(buf[::2], buf[1::2]))
    assert v.base is buf and sg.base is buf
    np.testing.assert_array_equal(buf[::2], wv)
    np.testing.assert_array_equal(buf[1::2], ws)
    with pytest.raises(ValueError, match=r"out\[0\] and out\[1\] must not overlap"):
        lk.logsumexp(x, axis=1, b=b, return_sign=True, out=(buf[:6], buf[5:11]))


def test_logsumexp_float16_x_with_an_array_b_stays_float16():
    # NumPy's promotion: float16 with a float16, int8 or bool array is
    # float16 (SciPy's result too); with float32, float32.
    x = np.float16([[0.0, 1.0, 1.0], [2.0, -1.0, 0.5]])
    want = np.log((np.exp(x.astype(np.float64))).sum(axis=1))
    for b in (np.ones(3, np.float16), np.ones(3, np.int8), np.ones(3, bool)):
        got = lk.logsumexp(x, b=b)
        assert got.dtype == np.float16
        np.testing.assert_allclose(got, want, rtol=1e-3)
        o = np.empty(2, np.float16)
        assert lk.logsumexp(x, b=b, out=o) is o
    assert lk.logsumexp(x, b=np.ones(3, np.float32)).dtype == np.float32


def test_where_as_a_masked_array_with_masked_entries_is_refused():
    # Its mask would be dropped by the conversion, as for x.
    m = np.ma.array([True, True], mask=[False, True])
    with pytest.raises(TypeError, match="where is a masked array"):
        lk.softmax([1.0, 2.0], where=m)
    with pytest.raises(TypeError, match="where is a masked array"):
        lk.logsumexp([1.0, 2.0], where=m)
    # Nothing masked: its data.
    ok = np.ma.array([True, False], mask=[False, False])
    np.testing.assert_array_equal(lk.softmax([1.0, 2.0], where=ok), [1.0, 0.0])


# ------------------------------------------------------------ layouts, out=


@pytest.mark.parametrize("axis", [0, 1, -1])
def test_fortran_and_strided_views_match_contiguous(axis):
    rng = np.random.default_rng(3)
    base = rng.standard_normal((40, 30)).astype(np.float32)
    want = ref_rows(base, axis)[0]
    for view in (np.asfortranarray(base), base[:, :], base.T.T):
        assert max_rel(lk.softmax(view, axis), want, TINY32) <= 2e-6
    big = rng.standard_normal((80, 60)).astype(np.float32)
    strided = big[::2, ::2]
    assert max_rel(lk.softmax(strided, axis), ref_rows(strided, axis)[0], TINY32) <= 2e-6
    assert max_rel(lk.logsumexp(strided, axis), ref_rows(strided, axis)[2], 1.0) <= 2e-6


def test_out_and_in_place():
    x = np.random.default_rng(4).standard_normal((64, 100)).astype(np.float32)
    want = lk.softmax(x)
    out = np.empty_like(x)
    r = lk.softmax(x, out=out)
    assert r is out
    np.testing.assert_array_equal(out, want)
    y = x.copy()
    r = lk.softmax(y, out=y)  # in place
    assert r is y
    np.testing.assert_array_equal(y, want)
    # out with a different memory order than x
    fo = np.empty_like(x, order="F")
    lk.log_softmax(x, out=fo)
    np.testing.assert_array_equal(fo, lk.log_softmax(x))
    s = np.empty(64, np.float32)
    assert lk.logsumexp(x, out=s) is s
    np.testing.assert_array_equal(s, lk.logsumexp(x))


def test_array_likes_and_dtype_conversion():
    assert lk.softmax([1, 2, 3]).dtype == np.float64  # ints -> float64 like np.exp
    assert lk.softmax(np.array([1, 2], np.int16)).dtype == np.float32
    assert lk.softmax(np.array([1, 2], np.int8)).dtype == np.float16
    assert lk.softmax(np.array([True, False])).dtype == np.float16
    h = lk.softmax(np.array([1.0, 2.0], np.float16))
    assert h.dtype == np.float16
    np.testing.assert_allclose(h, lk.softmax([1.0, 2.0]), rtol=1e-3)
    big_endian = np.array([1.0, 2.0], ">f8")
    np.testing.assert_array_equal(lk.softmax(big_endian), lk.softmax([1.0, 2.0]))

    class ArrayProtocol:  # what a PyTorch CPU tensor offers
        def __array__(self, dtype=None, copy=None):
            return np.array([4.0, 2.0, -2.0], np.float32)

    np.testing.assert_array_equal(lk.softmax(ArrayProtocol()), lk.softmax(np.float32([4, 2, -2])))


def test_outputs_in_the_other_byte_order_are_filled_as_numpy_would():
    # An out= (or grad_out=) of the result's dtype in big-endian order, as
    # NumPy's ufuncs take it: the values land byte-swapped, equal to the
    # native results; also as an input's own output, and for float16.
    rng = np.random.default_rng(9)
    xn = rng.standard_normal((4, 5)).astype(np.float32)
    for name in ("softmax", "log_softmax", "gelu", "sigmoid"):
        f = getattr(lk, name)
        o = np.empty((4, 5), ">f4")
        assert f(xn, out=o) is o
        np.testing.assert_array_equal(o, f(xn), err_msg=name)
        x = xn.astype(">f4")
        assert f(x, out=x) is x
        np.testing.assert_array_equal(x, f(xn), err_msg=name)
    h = np.empty((4, 5), ">f2")
    lk.gelu(xn.astype(np.float16), out=h)
    np.testing.assert_array_equal(h, lk.gelu(xn.astype(np.float16)))
    v, sg = np.empty(4, ">f4"), np.empty(4, ">f4")
    got = lk.logsumexp(xn, axis=1, b=-np.ones(5, np.float32), return_sign=True, out=(v, sg))
    want = lk.logsumexp(xn, axis=1, b=-np.ones(5, np.float32), return_sign=True)
    assert got[0] is v and got[1] is sg
    np.testing.assert_array_equal(v, want[0])
    np.testing.assert_array_equal(sg, want[1])
    t = np.array([0, 1, 2, 4])
    want_l, want_g = lk.cross_entropy(xn, t, return_grad=True)
    x = xn.astype(">f4")
    loss, g = lk.cross_entropy(x, t, return_grad=True, grad_out=x)
    assert g is x and loss == want_l
    np.testing.assert_array_equal(x, want_g)
    # Another dtype in either byte order is still refused, naming out.
    with pytest.raises(TypeError, match="out has dtype >f8, but the result has dtype float32"):
        lk.gelu(xn, out=np.empty((4, 5), ">f8"))


def test_empty_inputs():
    assert lk.softmax(np.zeros((0, 5), np.float32)).shape == (0, 5)
    assert lk.softmax(np.zeros((3, 0))).shape == (3, 0)
    np.testing.assert_array_equal(lk.logsumexp(np.zeros((3, 0))), [-np.inf] * 3)
    assert lk.logsumexp(np.zeros((0, 4))).shape == (0,)
    assert lk.softmax_backward(np.zeros((0, 3)), np.zeros((0, 3))).shape == (0, 3)


def test_maps_of_empty_rows_leave_the_heap_intact():
    # Until stop 23 softmax, log_softmax and their backwards over rows of no
    # element wrote one value per row past their empty output (float64 here
    # aborted in glibc's checked malloc). A fresh interpreter with checks on
    # (MALLOC_CHECK_ is glibc's; elsewhere the run is unchecked) runs them.
    code = """
import numpy as np, logitkit as lk, gc
for dt in (np.float64, np.float32):
    cases = (((4, 0), 1), ((4, 3, 0), 2), ((0, 4), 0), ((5, 0, 3), 1), ((3, 4, 0), (0, 2)))
    for shape, axis in cases:
        x = np.zeros(shape, dt)
        for _ in range(20):
            for y in (lk.softmax(x, axis), lk.log_softmax(x, axis),
                      lk.softmax_backward(x, x, axis), lk.log_softmax_backward(x, x, axis)):
                assert y.shape == shape and y.dtype == dt
        gc.collect()
print("intact")
"""
    assert _run(code, MALLOC_CHECK_="3", MALLOC_PERTURB_="165").strip() == "intact"


# ---------------------------------------------------------------- properties

finite = st.floats(-1e3, 1e3, allow_nan=False, width=64)


@settings(max_examples=60, deadline=None)
@given(
    hnp.arrays(np.float64, hnp.array_shapes(min_dims=1, max_dims=3, max_side=12), elements=finite)
)
def test_rows_sum_to_one_and_agree_with_exp_log_softmax(x):
    y = lk.softmax(x)
    np.testing.assert_allclose(y.sum(axis=-1), 1.0, rtol=1e-13)
    assert (y >= 0).all()
    np.testing.assert_allclose(np.exp(lk.log_softmax(x)), y, rtol=1e-12, atol=1e-300)


@settings(max_examples=60, deadline=None)
@given(
    hnp.arrays(np.float64, st.tuples(st.integers(1, 6), st.integers(1, 40)), elements=finite),
    st.floats(-1e3, 1e3),
)
def test_invariant_to_adding_a_constant_per_row(x, c):
    np.testing.assert_allclose(lk.softmax(x + c), lk.softmax(x), rtol=1e-9, atol=1e-300)
    np.testing.assert_allclose(lk.logsumexp(x + c), lk.logsumexp(x) + c, rtol=1e-12, atol=1e-9)


def _ref_masked(x: np.ndarray, axes: tuple[int, ...], m: np.ndarray | None):
    """softmax, log_softmax, logsumexp over `axes` in long double, with the
    package's documented mask semantics (masked: 0 / -inf; a fully masked
    or empty row: zeros / -inf / -inf)."""
    xl = np.asarray(x, np.float64).astype(np.longdouble)
    if m is not None:
        xl = np.where(m, xl, -np.inf)
    with np.errstate(invalid="ignore", divide="ignore"):
        mx = np.max(xl, axis=axes, keepdims=True, initial=-np.inf)
        mx = np.where(np.isfinite(mx), mx, 0)
        e = np.exp(xl - mx)
        s = e.sum(axis=axes, keepdims=True)
        sm, lse = e / s, np.log(s) + mx
        lsm = xl - lse
    if m is not None:
        none = ~np.any(m, axis=axes, keepdims=True)
        sm = np.where(m & ~none, sm, 0)
        lsm = np.where(m & ~none, lsm, -np.inf)
    return sm, lsm, np.squeeze(lse, axis=axes)


@settings(max_examples=150, deadline=None)
@given(st.data())
def test_random_shapes_layouts_axes_and_masks_match_the_reference(data):
    nd = data.draw(st.integers(1, 4))
    shape = tuple(
        data.draw(st.lists(st.sampled_from([0, 1, 2, 3, 5, 17, 33]), min_size=nd, max_size=nd))
    )
    dtype = data.draw(st.sampled_from([np.float32, np.float64]))
    seed = data.draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    x = (rng.standard_normal(shape) * data.draw(st.sampled_from([1, 10, 50]))).astype(dtype)
    layout = data.draw(st.sampled_from(["C", "F", "strided", "reversed"]))
    x = {
        "C": lambda a: a,
        "F": np.asfortranarray,
        "strided": lambda a: np.repeat(a, 2, axis=-1)[..., ::2],
        "reversed": lambda a: np.flip(a, axis=0),
    }[layout](x)
    kind = data.draw(st.sampled_from(["int", "none", "tuple"]))
    if kind == "int":
        axis = data.draw(st.integers(-nd, nd - 1))
        axes = (axis % nd,)
    elif kind == "none":
        axis, axes = None, tuple(range(nd))
    else:
        axis = tuple(data.draw(st.permutations(range(nd)))[: data.draw(st.integers(0, nd))])
        axes = tuple(sorted(axis))
    m = rng.random(shape) < 0.7 if data.draw(st.booleans()) else None
    sm, lsm, lse = _ref_masked(x, axes, m)
    tol = 3e-6 if dtype == np.float32 else 1e-13
    tiny = TINY32 if dtype == np.float32 else TINY64
    got = lk.softmax(x, axis=axis, where=m)
    assert got.shape == x.shape and got.dtype == dtype
    assert max_rel(got, sm, tiny) <= tol
    gl = lk.log_softmax(x, axis=axis, where=m)
    assert max_rel(gl, lsm, 1.0) <= tol
    gs = lk.logsumexp(x, axis=axis, where=m)
    assert np.shape(gs) == lse.shape
    assert max_rel(gs, lse, 1.0) <= tol
    y = x.copy(order="K")
    assert lk.softmax(y, axis=axis, where=m, out=y) is y
    np.testing.assert_array_equal(y, got)


# ------------------------------------------------------------------ backward


def jacobian_softmax(y):
    return np.diag(y) - np.outer(y, y)


@pytest.mark.parametrize("n", [1, 5, 40])
def test_softmax_backward_equals_explicit_jacobian(n):
    rng = np.random.default_rng(n)
    x = rng.standard_normal((3, n))
    g = rng.standard_normal((3, n))
    y = lk.softmax(x)
    got = lk.softmax_backward(g, y)
    for i in range(3):
        np.testing.assert_allclose(got[i], jacobian_softmax(y[i]).T @ g[i], rtol=1e-12, atol=1e-15)


def finite_diff(f, x, g, eps=1e-6):
    """d/dx of sum(g * f(x)) by central differences."""
    grad = np.zeros_like(x)
    for idx in np.ndindex(x.shape):
        xp, xm = x.copy(), x.copy()
        xp[idx] += eps
        xm[idx] -= eps
        grad[idx] = (np.sum(g * f(xp)) - np.sum(g * f(xm))) / (2 * eps)
    return grad


@pytest.mark.parametrize("axis", [-1, 0])
def test_backwards_match_finite_differences(axis):
    rng = np.random.default_rng(7)
    x = rng.standard_normal((4, 6))
    g = rng.standard_normal((4, 6))
    fd = finite_diff(lambda v: lk.softmax(v, axis), x, g)
    np.testing.assert_allclose(lk.softmax_backward(g, lk.softmax(x, axis), axis), fd, atol=1e-8)
    fd = finite_diff(lambda v: lk.log_softmax(v, axis), x, g)
    np.testing.assert_allclose(
        lk.log_softmax_backward(g, lk.log_softmax(x, axis), axis), fd, atol=1e-8
    )


def _compact_backward(g, x, m):
    """Reference for masked backwards, independent of the code under test:
    each row's unmasked entries alone, through the explicit Jacobians of
    softmax and log_softmax in float64; masked entries 0."""
    sm_grad, lsm_grad = np.zeros_like(x), np.zeros_like(x)
    for r in range(x.shape[0]):
        k = m[r]
        if not k.any():
            continue
        xr = x[r, k]
        p = np.exp(xr - xr.max())
        p /= p.sum()
        sm_grad[r, k] = jacobian_softmax(p).T @ g[r, k]
        # d log_softmax_i / d x_j = delta_ij - p_j
        lsm_grad[r, k] = (np.eye(len(xr)) - p[None, :]).T @ g[r, k]
    return sm_grad, lsm_grad


@pytest.mark.parametrize(
    "shape,axis",
    [((6, 5), -1), ((5, 40), -1), ((40, 7), 0), ((20, 70), 0), ((3, 100), -1)],
)
def test_masked_backwards_ignore_masked_entries(shape, axis):
    # Rows of 5 and 40 (column and row kernels), axis 0 with 7 and 70
    # columns (transposes and column units); a fully masked row; masked
    # upstream gradients of inf and NaN, which must not leak into the sums.
    rng = np.random.default_rng(shape[1])
    x = rng.standard_normal(shape)
    g = rng.standard_normal(shape)
    m = rng.random(shape) < 0.6
    rows_first = (lambda a: a) if axis == -1 else (lambda a: a.T)
    rows_first(m)[0] = False
    rows_first(m)[1, :2] = True
    g[~m] = np.where(rng.random(int((~m).sum())) < 0.5, np.inf, np.nan)
    want_sm, want_lsm = _compact_backward(rows_first(g), rows_first(x), rows_first(m))
    y = lk.softmax(x, axis, where=m)
    got = lk.softmax_backward(g, y, axis, where=m)
    np.testing.assert_allclose(rows_first(got), want_sm, rtol=1e-12, atol=1e-15)
    ly = lk.log_softmax(x, axis, where=m)
    got = lk.log_softmax_backward(g, ly, axis, where=m)
    np.testing.assert_allclose(rows_first(got), want_lsm, rtol=1e-12, atol=1e-15)
    # Against finite differences of the masked forward pass (finite g).
    gf = np.where(m, g, 0.0)
    if x.size <= 300:
        # (The masked outputs, -inf, are constants: left out of the sum.)
        fd = finite_diff(lambda v: np.where(m, lk.log_softmax(v, axis, where=m), 0), x, gf)
        got = lk.log_softmax_backward(gf, ly, axis, where=m)
        np.testing.assert_allclose(got, fd, atol=1e-8)
        fd = finite_diff(lambda v: lk.softmax(v, axis, where=m), x, gf)
        np.testing.assert_allclose(lk.softmax_backward(gf, y, axis, where=m), fd, atol=1e-8)
    # float32, in place on grad.
    g32, ly32 = gf.astype(np.float32), ly.astype(np.float32)
    out = lk.log_softmax_backward(g32, ly32, axis, where=m, out=g32)
    assert out is g32
    np.testing.assert_allclose(rows_first(out), want_lsm, rtol=2e-5, atol=2e-6)


def test_backward_float32_accuracy_and_out():
    rng = np.random.default_rng(8)
    x = rng.standard_normal((50, 1000)).astype(np.float32)
    g = rng.standard_normal((50, 1000)).astype(np.float32)
    y = lk.softmax(x)
    y64, g64 = y.astype(np.float64), g.astype(np.float64)
    want = y64 * (g64 - (g64 * y64).sum(-1, keepdims=True))
    got = lk.softmax_backward(g, y)
    assert got.dtype == np.float32
    assert np.abs(got - want).max() <= 2e-6 * np.abs(want).max()
    ly = lk.log_softmax(x)
    want = g64 - np.exp(ly.astype(np.float64)) * g64.sum(-1, keepdims=True)
    out = g.copy()
    r = lk.log_softmax_backward(out, ly, out=out)  # in place on grad
    assert r is out
    assert np.abs(out - want).max() <= 2e-6 * np.abs(want).max()


# ----------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    "call,exc,match",
    [
        (lambda: lk.softmax(["a", "b"]), TypeError, "x"),
        (lambda: lk.softmax(np.array([object(), 1.0])), TypeError, "x"),
        (lambda: lk.softmax(np.array([1 + 2j])), TypeError, "x is complex"),
        (lambda: lk.softmax([[1.0, 2.0], [3.0]]), TypeError, "x"),
        (lambda: lk.softmax(np.zeros((2, 3)), axis=2), ValueError, "axis 2"),
        (lambda: lk.softmax(np.zeros((2, 3)), axis=-3), ValueError, "axis -3"),
        (
            lambda: lk.softmax(np.zeros(3), out=[0.0, 0.0, 0.0]),
            TypeError,
            "out must be a numpy.ndarray",
        ),
        (lambda: lk.softmax(np.zeros(3), out=np.zeros(4)), ValueError, "out has shape"),
        (lambda: lk.softmax(np.zeros(3), out=np.zeros(3, np.float32)), TypeError, "out has dtype"),
        (lambda: lk.logsumexp(np.zeros((2, 3)), out=np.zeros(3)), ValueError, "out has shape"),
        (lambda: lk.logsumexp(np.zeros((2, 3)), b=np.ones(4)), ValueError, "b has shape"),
        (lambda: lk.softmax(np.zeros((2, 3)), axis=True), TypeError, "got bool"),
        (lambda: lk.softmax_backward(np.zeros(3), np.zeros(3), axis=(False,)), TypeError, "bool"),
        (
            lambda: lk.softmax([1.0, 2.0], where=[[True], [True, False]]),
            TypeError,
            "where could not be converted",
        ),
        (lambda: lk.logsumexp(np.zeros((2, 3)), b=1j), TypeError, "b is complex"),
        (lambda: lk.logsumexp(np.zeros((2, 3)), b=["a"] * 3), TypeError, "b must be"),
        (lambda: lk.logsumexp(np.zeros(3), b=[1.0] * 3, where=[True, False]), ValueError, "where"),
        (
            lambda: lk.logsumexp(np.zeros((2, 3)), return_sign=True, out=np.zeros(2)),
            TypeError,
            "out must be a tuple of two arrays",
        ),
        (
            lambda: lk.logsumexp(np.zeros((2, 3)), return_sign=True, out=(np.zeros(2),)),
            TypeError,
            "out must be a tuple of two arrays",
        ),
        (
            lambda: lk.logsumexp(np.zeros((2, 3)), return_sign=True, out=(np.zeros(2),) * 2),
            ValueError,
            r"out\[0\] and out\[1\] must not overlap",
        ),
        (
            lambda: lk.logsumexp(
                np.zeros((2, 3)), return_sign=True, out=(np.zeros(2), np.zeros(3))
            ),
            ValueError,
            r"out\[1\] has shape",
        ),
        (lambda: lk.softmax(np.zeros((2, 3)), where=np.ones((3, 2), bool)), ValueError, "where"),
        (lambda: lk.softmax(np.zeros(3), where=np.ones(3)), TypeError, "where must be a boolean"),
        (
            lambda: lk.softmax_backward(np.zeros((2, 3)), np.zeros((3, 2))),
            ValueError,
            "y has shape",
        ),
        (lambda: lk.softmax_backward("g", np.zeros(3)), TypeError, "grad"),
        (lambda: lk.set_num_threads(0), ValueError, "n must be"),
        (lambda: lk.softmax(np.zeros(3), axis="0"), TypeError, "axis"),
        (lambda: lk.softmax(np.zeros((2, 3)), axis=(1, -1)), ValueError, r"axis \(1, -1\)"),
        (lambda: lk.logsumexp(np.zeros((2, 3)), axis=(0, 2)), ValueError, "axis 2 is out"),
        (lambda: lk.softmax(np.zeros((2, 3)), axis=(0, 1.0)), TypeError, "axis must be an int"),
        (lambda: lk.log_softmax_backward(np.zeros(3), np.zeros(3), axis={0}), TypeError, "axis"),
        (
            lambda: lk.softmax_backward(np.zeros((2, 3)), np.zeros((2, 3)), where=np.ones(2, bool)),
            ValueError,
            r"where has shape \(2,\), which does not broadcast to the shape \(2, 3\) of grad",
        ),
        (
            lambda: lk.softmax(np.zeros((2, 3)), axis=2**63),
            ValueError,
            "axis 9223372036854775808 is",
        ),
        (lambda: lk.logsumexp(np.zeros((2, 3)), axis=(-(2**70),)), ValueError, "out of bounds"),
        (lambda: lk.cross_entropy(np.zeros((2, 3)), [0, 1], axis=2**63), ValueError, "out of bou"),
        (lambda: lk.nll_loss(np.zeros((2, 3)), [0, 1], axis=-(2**64)), ValueError, "out of bounds"),
    ],
)
def test_bad_input_raises_clear_errors(call, exc, match):
    with pytest.raises(exc, match=match):
        call()


def test_read_only_out_is_rejected():
    out = np.zeros(3)
    out.flags.writeable = False
    with pytest.raises(ValueError, match="out is read-only"):
        lk.softmax(np.zeros(3), out=out)


# ------------------------------------------------------------------- threads


@pytest.mark.parametrize(
    "shape,axis",
    [((512, 1000), -1), ((20000, 10), -1), ((600, 400), 0), ((30000, 10), 0), ((40, 900, 3), 1)],
)
def test_bit_identical_for_1_2_8_threads(shape, axis):
    x = np.random.default_rng(11).standard_normal(shape).astype(np.float32) * 10
    g = np.random.default_rng(12).standard_normal(shape).astype(np.float32)
    before = lk.get_num_threads()
    try:
        results = []
        for n in (1, 2, 8):
            lk.set_num_threads(n)
            assert lk.get_num_threads() == n
            y = lk.softmax(x, axis)
            results.append(
                (
                    y,
                    lk.log_softmax(x, axis),
                    lk.logsumexp(x, axis),
                    lk.softmax_backward(g, y, axis),
                    lk.logsumexp(x, axis, b=g),
                )
            )
        for r in results[1:]:
            for a, b in zip(results[0], r, strict=True):
                assert a.tobytes() == b.tobytes()
    finally:
        lk.set_num_threads(before)


def test_concurrent_calls_from_8_python_threads():
    rng = np.random.default_rng(5)
    xs = [rng.standard_normal((256, 700)).astype(np.float32) for _ in range(8)]
    want = [lk.softmax(x) for x in xs]
    errors = []

    def work(i):
        for _ in range(10):
            if not np.array_equal(lk.softmax(xs[i]), want[i]):
                errors.append(i)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []


def test_scalar_path_matches_simd_bit_for_bit_and_env_threads():
    code = (
        "import hashlib, numpy as np, logitkit as lk, sys\n"
        "x = np.random.default_rng(2).standard_normal((300, 777)).astype(np.float32) * 20\n"
        "sys.stdout.write(lk.simd_level() + ' ' + str(lk.get_num_threads()) + ' ')\n"
        "h = hashlib.sha256(lk.softmax(x).tobytes() + lk.log_softmax(x).tobytes())\n"
        "h.update(lk.softmax(x[:, :10]).tobytes() + lk.logsumexp(x, axis=0).tobytes())\n"
        "sys.stdout.write(h.hexdigest())\n"
    )
    scalar = _run(code, LOGITKIT_SIMD="scalar", LOGITKIT_NUM_THREADS="3")
    native = _run(code)
    assert scalar.split()[0] == "scalar" and scalar.split()[1] == "3"
    assert scalar.split()[2] == native.split()[2]


def test_short_rows_give_the_same_bits_at_every_level():
    # Float32 rows of 1-16 classes run in register tiles at AVX-512 (16 rows
    # a tile) and AVX2 (8), the column kernels otherwise: every level this
    # CPU has gives the same bits for the softmax family and cross-entropy
    # (+ gradient, weights, an ignored row), over the last axis and an inner
    # one, with partial tiles and rounds, +-inf, NaN and an all -inf row
    # (NaN payloads aside: the scalar mean over a NaN row keeps another).
    code = (
        "import hashlib, numpy as np, logitkit as lk, sys\n"
        "rng = np.random.default_rng(4)\n"
        "h = hashlib.sha256()\n"
        "b = lambda a: np.where(np.isnan(a), np.float32(np.nan), a).tobytes()  # one NaN\n"
        "for n in range(1, 17):\n"
        "    x = (rng.standard_normal((301, n)) * 30).astype(np.float32)\n"
        "    x[3] = -np.inf; x[5, 0] = np.inf; x[7, -1] = np.nan; x[9, 0] = 3e38\n"
        "    xi = np.ascontiguousarray(x[:300].reshape(3, 100, n).transpose(0, 2, 1))\n"
        "    for f in (lk.softmax, lk.log_softmax, lk.logsumexp):\n"
        "        h.update(b(f(x)) + b(f(xi, axis=1)))\n"
        "    t = rng.integers(0, n, 301); t[4] = -100; ti = t[:300].reshape(3, 100)\n"
        "    wt = rng.uniform(0.5, 2, n).astype(np.float32)\n"
        "    for xx, tt, ax in ((x, t, -1), (xi, ti, 1)):\n"
        "        for kw in ({}, {'weight': wt, 'reduction': 'none'}):\n"
        "            loss, g = lk.cross_entropy(xx, tt, axis=ax, return_grad=True, **kw)\n"
        "            h.update(b(np.asarray(loss)) + b(g))\n"
        "sys.stdout.write(lk.simd_level() + ' ' + h.hexdigest())\n"
    )
    native = _run(code).split()
    levels = lower_levels(native[0])
    for level in levels:
        other = _run(code, LOGITKIT_SIMD=level).split()
        assert other == [level, native[1]], (native[0], level)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_pool_survives_fork():
    code = (
        "import os, numpy as np, logitkit as lk\n"
        "x = np.random.default_rng(0).standard_normal((2000, 1000)).astype(np.float32)\n"
        "a = lk.softmax(x)\n"
        "pid = os.fork()\n"
        "if pid == 0:\n"
        "    ok = np.array_equal(lk.softmax(x), a)\n"
        "    os._exit(0 if ok else 3)\n"
        "_, status = os.waitpid(pid, 0)\n"
        "print(os.waitstatus_to_exitcode(status))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == "0", out.stderr


@pytest.mark.parametrize(
    "shape,axis",
    [
        ((300, 10), -1),
        ((40, 50), 0),
        ((5000, 100), -1),
        ((3, 4, 70), 1),
        ((3000, 10), 0),
        ((5, 400, 7), 1),
    ],
)
def test_in_place_on_row_and_column_paths_matches_out_of_place(shape, axis):
    rng = np.random.default_rng(6)
    x = rng.standard_normal(shape).astype(np.float32)
    g = rng.standard_normal(shape).astype(np.float32)
    want = lk.softmax(x, axis)
    y = x.copy()
    assert lk.softmax(y, axis, out=y) is y
    assert np.array_equal(y, want)
    want_g = lk.softmax_backward(g, want, axis)
    on_grad, on_y = g.copy(), want.copy()
    lk.softmax_backward(on_grad, want, axis, out=on_grad)
    lk.softmax_backward(g, on_y, axis, out=on_y)
    assert np.array_equal(on_grad, want_g)
    assert np.array_equal(on_y, want_g)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize(
    "shape,axis",
    [((3, 10, 70), 1), ((2, 16, 100), 1), ((7, 200), 0), ((4, 1, 64), 1), ((30, 130), 0)],
)
def test_wide_inner_axis_short_rows_give_the_bits_of_the_last_axis(dtype, shape, axis):
    # Rows of fewer than 64 (float32; 32 for float64) elements over an axis
    # with 64 or more after it: the column units, or for float32 rows of
    # 1-16 the register tiles reading 16 (AVX-512) or 8 (AVX2) adjacent
    # positions at once (positions per block not a multiple of those
    # included), give the
    # bits of the same rows on the last axis, in place too.
    rng = np.random.default_rng(9)
    x = (rng.standard_normal(shape) * 30).astype(dtype)
    x.flat[5] = -np.inf
    x.flat[x.size // 2] = np.nan
    x.flat[-1] = np.inf
    xl = np.moveaxis(x, axis, -1).copy()
    for f in (lk.softmax, lk.log_softmax):
        a, b = f(x, axis), f(xl)
        assert np.moveaxis(a, axis, -1).tobytes() == b.tobytes(), f.__name__
        xi = x.copy()
        f(xi, axis, out=xi)
        assert xi.tobytes() == a.tobytes(), f.__name__
    assert lk.logsumexp(x, axis).tobytes() == lk.logsumexp(xl).tobytes()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize(
    "shape,axis", [((5000, 10), 0), ((3, 2000, 5), 1), ((9, 15), 0), ((3000, 40), 0)]
)
def test_narrow_inner_axis_gives_the_bits_of_the_same_rows_on_the_last_axis(dtype, shape, axis):
    # An axis with fewer than 64 elements after it is computed by
    # transposing those rows to the last axis; each row must come out as the
    # same row does there, for every op of the family.
    rng = np.random.default_rng(8)
    x = (rng.standard_normal(shape) * 5).astype(dtype)
    g = rng.standard_normal(shape).astype(dtype)
    x[0, 1] = -np.inf
    x[-1, -1] = np.nan
    xl, gl = np.moveaxis(x, axis, -1).copy(), np.moveaxis(g, axis, -1).copy()
    y, yl = lk.softmax(x, axis), lk.softmax(xl)
    ly, lyl = lk.log_softmax(x, axis), lk.log_softmax(xl)
    pairs = [
        (y, yl),
        (ly, lyl),
        (lk.softmax_backward(g, y, axis), lk.softmax_backward(gl, yl)),
        (lk.log_softmax_backward(g, ly, axis), lk.log_softmax_backward(gl, lyl)),
    ]
    for a, b in pairs:
        assert np.moveaxis(a, axis, -1).tobytes() == b.tobytes()
    assert lk.logsumexp(x, axis).tobytes() == lk.logsumexp(xl).tobytes()
    assert np.isnan(y[:, -1] if axis == 0 else y[-1, :, -1]).all()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("cols", [10, 40, 100])
@pytest.mark.parametrize("rows", [20, 300])
def test_masked_inner_axis_matches_the_last_axis(dtype, cols, rows):
    # Over axis 0, 10 and 40 columns go through the transposes and 100
    # through the column units (16 adjacent columns per unit, the mask read
    # by lanes, and a partial unit of 4);
    # both must give what the same rows give on the last axis: masked
    # entries 0 / -inf, fully masked columns all 0 / -inf, NaN where the
    # unmasked entries are all -inf.
    rng = np.random.default_rng(9)
    x = (rng.standard_normal((rows, cols)) * 4).astype(dtype)
    m = rng.uniform(size=x.shape) < 0.8
    m[:, 1] = False
    x[:, 2] = -np.inf
    m[0, 2] = False
    x[3, 3] = np.nan
    xt, mt = x.T.copy(), m.T.copy()
    for f in (lk.softmax, lk.log_softmax, lk.logsumexp):
        got, want = f(x, axis=0, where=m), f(xt, where=mt)
        if f is not lk.logsumexp:
            got = got.T
        if rows == 20:
            # Short rows take the same column kernel both ways: same bits.
            assert got.tobytes() == want.tobytes(), f.__name__
        else:
            # Two kernels each within the bounds of a float64 reference.
            tol = 4e-6 if dtype == np.float32 else 2e-14
            np.testing.assert_allclose(got, want, rtol=tol, atol=tol)
    sm = lk.softmax(x, axis=0, where=m)
    assert (sm[:, 1] == 0).all() and (lk.log_softmax(x, axis=0, where=m)[:, 1] == -np.inf).all()
    # Column 2: the unmasked entries are all -inf (NaN), the masked ones 0.
    assert np.array_equal(np.isnan(sm[:, 2]), m[:, 2]) and (sm[~m[:, 2], 2] == 0).all()
    # Column 3: a NaN reaches its unmasked entries only if it is unmasked.
    assert np.isnan(sm[m[:, 3], 3]).all() == bool(m[3, 3]) and (sm[~m[:, 3], 3] == 0).all()
    assert lk.logsumexp(x, axis=0, where=m)[1] == -np.inf


@pytest.mark.parametrize("axis", [0, 1])
@pytest.mark.parametrize("mask_order", ["C", "F"])
def test_fortran_x_with_a_mask_of_either_order(axis, mask_order):
    # A C-ordered mask for a Fortran-ordered x of 4096+ elements is
    # transposed by the package itself: the result must be that of C-ordered
    # inputs.
    rng = np.random.default_rng(10)
    x = rng.standard_normal((150, 70)).astype(np.float32)
    m = rng.uniform(size=x.shape) < 0.7
    m[:, 5] = False
    m[7, :] = False
    xf, mo = np.asfortranarray(x), (np.asfortranarray(m) if mask_order == "F" else m)
    for f in (lk.softmax, lk.log_softmax, lk.logsumexp):
        got, want = f(xf, axis=axis, where=mo), f(x, axis=axis, where=m)
        np.testing.assert_allclose(got, want, rtol=4e-6, atol=4e-6)
        assert np.array_equal(np.isneginf(got), np.isneginf(want))
    assert (lk.softmax(xf, axis=axis, where=mo)[~m] == 0).all()


@pytest.mark.parametrize("axis", [-1, 0])
def test_masked_entries_keep_their_value_when_the_unmasked_ones_are_all_minus_inf(axis):
    x = np.full((3, 20), -np.inf)
    keep = np.ones((3, 20), bool)
    keep[:, ::3] = False
    if axis == 0:
        x, keep = x.T.copy(), keep.T.copy()
    sm = lk.softmax(x, axis=axis, where=keep)
    ls = lk.log_softmax(x, axis=axis, where=keep)
    # Unmasked: an all -inf row is NaN (as without a mask); masked: 0 / -inf.
    assert np.all(sm[~keep] == 0) and np.all(np.isnan(sm[keep]))
    assert np.all(ls[~keep] == -np.inf) and np.all(np.isnan(ls[keep]))
    np.testing.assert_array_equal(lk.logsumexp(x, axis=axis, where=keep), -np.inf)


def test_set_num_threads_rejects_counts_that_would_hang_the_pool():
    before = lk.get_num_threads()
    for bad in (10**6, 2**70, 1025, -3):
        with pytest.raises(ValueError, match="n must be a number of threads from 1 to 1024"):
            lk.set_num_threads(bad)
    for bad in (True, 1.5, "2", None):
        with pytest.raises(TypeError, match="n must be an integer"):
            lk.set_num_threads(bad)
    assert lk.get_num_threads() == before


def _import_with(**env) -> tuple[str, str]:
    """(stdout, stderr) of importing logitkit under `env`: its threads and SIMD level."""
    code = "import logitkit as lk; print(lk.get_num_threads(), lk.simd_level())"
    e = {k: v for k, v in os.environ.items() if not k.startswith("LOGITKIT_")}
    out = _python(code, {**e, **env})
    return out.stdout.strip(), out.stderr


def test_env_thread_count_is_clamped_with_a_warning():
    out, err = _import_with(LOGITKIT_NUM_THREADS="100000")
    assert out.split()[0] == "1024"
    assert 'RuntimeWarning: LOGITKIT_NUM_THREADS="100000" is above 1024; using 1024' in err


@pytest.mark.parametrize("value", ["four", "0", "-2", "1.5"])
def test_bad_env_thread_count_warns_and_uses_the_cpus(value):
    cpus = _import_with()[0].split()[0]
    out, err = _import_with(LOGITKIT_NUM_THREADS=value)
    assert out.split()[0] == cpus
    assert f"RuntimeWarning: LOGITKIT_NUM_THREADS={value!r}".replace("'", '"') in err
    assert f"using {cpus} (the CPU count)" in err


def test_bad_or_unsupported_env_simd_level_warns_and_uses_the_best():
    best = _import_with()[0].split()[1]
    out, err = _import_with(LOGITKIT_SIMD="avx3")
    assert out.split()[1] == best
    assert 'LOGITKIT_SIMD="avx3" is not one of auto, scalar, avx2, avx512, neon' in err
    other = "avx512" if best == "neon" else "neon"  # a level this CPU cannot run
    out, err = _import_with(LOGITKIT_SIMD=other)
    assert out.split()[1] == best
    assert f'LOGITKIT_SIMD="{other}": this CPU cannot run {other}; using {best}' in err
    # Valid settings, and empty ones (the defaults), import silently.
    for env in (
        {"LOGITKIT_SIMD": "scalar", "LOGITKIT_NUM_THREADS": "3"},
        {"LOGITKIT_SIMD": "auto"},
        {"LOGITKIT_SIMD": "", "LOGITKIT_NUM_THREADS": " "},
    ):
        out, err = _import_with(**env)
        assert "Warning" not in err


# Every scalar keyword of the public functions, given a value of the wrong type,
# raises TypeError naming the argument (in the message, or in the note
# "while processing '<name>'" that PyO3 adds; pytest's match sees both).
_X = np.linspace(-2, 2, 12).reshape(3, 4).astype(np.float32)
_P = np.full((3, 4), 0.25, np.float32)
_T = np.array([0, 1, 3])
_WRONG_SCALARS = [
    (lk.softmax, (_X,), {"axis": 1.5}, "axis"),
    (lk.log_softmax, (_X,), {"axis": "last"}, "axis"),
    (lk.logsumexp, (_X,), {"keepdims": "yes"}, "keepdims"),
    (lk.softmax_backward, (_X, _P), {"axis": [1]}, "axis"),
    (lk.gelu, (_X,), {"approximate": 1}, "approximate"),
    (lk.gelu, (_X,), {"approximate": None}, "approximate"),
    (lk.leaky_relu, (_X,), {"negative_slope": "a"}, "negative_slope"),
    (lk.elu, (_X,), {"alpha": None}, "alpha"),
    (lk.celu_backward, (_X, _X), {"alpha": "1"}, "alpha"),
    (lk.softplus, (_X,), {"beta": "x"}, "beta"),
    (lk.softplus, (_X,), {"threshold": None}, "threshold"),
    (lk.hard_tanh, (_X,), {"min_val": None}, "min_val"),
    (lk.hard_tanh_backward, (_X, _X), {"max_val": "1"}, "max_val"),
    (lk.logit, (_P,), {"eps": "small"}, "eps"),
    (lk.bias_act, (_X, np.zeros(4, np.float32)), {"activation": None}, "activation"),
    (lk.cross_entropy, (_X, _T), {"reduction": None}, "reduction"),
    (lk.cross_entropy, (_X, _T), {"label_smoothing": "a"}, "label_smoothing"),
    (lk.cross_entropy, (_X, _T), {"return_grad": "yes"}, "return_grad"),
    (lk.cross_entropy, (_X, _T), {"axis": 0.5}, "axis"),
    (lk.cross_entropy, (_X, _T), {"ignore_index": 1.5}, "ignore_index"),
    (lk.nll_loss, (_X, _T), {"reduction": 0}, "reduction"),
    (lk.mse_loss, (_X, _X), {"return_grad": 1}, "return_grad"),
    (lk.huber_loss, (_X, _X), {"delta": "a"}, "delta"),
    (lk.smooth_l1_loss, (_X, _X), {"beta": None}, "beta"),
    (lk.kl_div, (_X, _P), {"log_target": 3}, "log_target"),
    (lk.sigmoid_focal_loss, (_X, _P), {"alpha": None}, "alpha"),
    (lk.sigmoid_focal_loss, (_X, _P), {"gamma": "2"}, "gamma"),
    (lk.one_hot, (_T,), {"num_classes": None}, "num_classes"),
    (lk.top_k_accuracy, (_X, _T), {"k": 1.5}, "k"),
]


@pytest.mark.parametrize(
    ("f", "args", "kwargs", "name"),
    _WRONG_SCALARS,
    ids=[f"{f.__name__}-{n}" for f, _, _, n in _WRONG_SCALARS],
)
def test_wrongly_typed_scalar_arguments_are_named(f, args, kwargs, name):
    with pytest.raises(TypeError, match=rf"\b{name}\b"):
        f(*args, **kwargs)


def test_masked_arrays_are_refused_unless_nothing_is_masked():
    data = np.arange(6.0).reshape(2, 3)
    x = np.ma.masked_array(data, mask=[[0, 0, 1], [0, 0, 0]])
    for f in (lk.softmax, lk.log_softmax, lk.logsumexp, lk.relu, lk.sigmoid):
        with pytest.raises(TypeError, match=r"x is a masked array .* where=~x\.mask"):
            f(x)
    with pytest.raises(TypeError, match=r"masked array .*target\.filled\(ignore_index\)"):
        lk.cross_entropy(np.zeros((2, 3)), np.ma.masked_array([0, 1], mask=[1, 0]))
    with pytest.raises(TypeError, match=r"target is a masked array .*target\.filled"):
        lk.binary_cross_entropy(
            np.full(3, 0.5), np.ma.masked_array([0.0, 1.0, 1.0], mask=[0, 1, 0])
        )
    # The suggested replacement gives the masked softmax.
    np.testing.assert_array_equal(lk.softmax(x.data, where=~x.mask)[0, 2], 0.0)
    # No masked entry: the data is used, and an ndarray comes back.
    y = lk.softmax(np.ma.masked_array(data))
    assert type(y) is np.ndarray
    np.testing.assert_array_equal(y, lk.softmax(data))
    ce = lk.cross_entropy(data, np.ma.masked_array([0, 2], mask=[0, 0]))
    assert ce == lk.cross_entropy(data, np.array([0, 2]))


def test_ndarray_subclasses_are_computed_as_arrays(tmp_path):
    m = np.memmap(tmp_path / "x.dat", dtype=np.float32, mode="w+", shape=(4, 5))
    m[:] = np.arange(20, dtype=np.float32).reshape(4, 5)
    np.testing.assert_array_equal(lk.softmax(m), lk.softmax(np.asarray(m)))
    np.testing.assert_array_equal(lk.log_softmax(m, axis=0), lk.log_softmax(np.asarray(m), axis=0))


def test_masked_arrays_in_metrics_and_nn_are_refused():
    from logitkit.nn import MLP

    scores = np.eye(3, dtype=np.float32)
    masked_t = np.ma.masked_array([0, 1, 2], mask=[0, 1, 0])
    with pytest.raises(TypeError, match="target is a masked array"):
        lk.accuracy(scores, masked_t)
    with pytest.raises(TypeError, match="scores is a masked array"):
        lk.accuracy(np.ma.masked_array(scores, mask=np.eye(3)), [0, 1, 2])
    with pytest.raises(TypeError, match="labels is a masked array"):
        lk.one_hot(masked_t, 3)
    assert lk.accuracy(np.ma.masked_array(scores), np.ma.masked_array([0, 1, 2])) == 1.0
    m = MLP([3, 4, 3], seed=0)
    X = np.ma.masked_array(scores, mask=np.eye(3))
    with pytest.raises(TypeError, match="X is a masked array"):
        m.fit(X, [0, 1, 2], epochs=1, verbose=0)
    with pytest.raises(TypeError, match="y is a masked array"):
        m.fit(scores, masked_t, epochs=1, verbose=0)
    with pytest.raises(TypeError, match="X is a masked array"):
        m.predict(X)

"""The MLP's matrix product `_core.matmul`: values against a float64 product,
any strides, thread-count bit-identity, and every bad argument."""

import logitkit as lk
import numpy as np
import pytest
from logitkit import _core


def _ref(a, b):
    # Independent of the code under test: float64 sums of float64 products.
    return np.einsum("ik,kj->ij", a.astype(np.float64), b.astype(np.float64))


def _bound(a, b, dtype):
    # |error| <= k * eps * (|a| @ |b|) (plus the rounding of the result).
    eps = np.finfo(dtype).eps
    k = max(a.shape[1], 1)
    return 2 * k * eps * (np.abs(a).astype(np.float64) @ np.abs(b).astype(np.float64)) + 1e-300


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize(
    "m,k,n", [(1, 1, 1), (5, 3, 7), (128, 784, 256), (784, 128, 256), (300, 200, 150), (33, 1, 65)]
)
def test_matmul_matches_a_float64_product(dtype, m, k, n):
    rng = np.random.default_rng(m * 1000 + k + n)
    a = rng.standard_normal((m, k)).astype(dtype)
    b = rng.standard_normal((k, n)).astype(dtype)
    out = np.full((m, n), np.nan, dtype)
    r = _core.matmul(a, b, out)
    assert r is out
    assert np.all(np.abs(out - _ref(a, b)) <= _bound(a, b, dtype))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_matmul_reads_any_strides_and_writes_fortran_order(dtype):
    rng = np.random.default_rng(1)
    big = rng.standard_normal((90, 160)).astype(dtype)
    views = {
        "transposed": big[:70, :40].T,  # 40 x 70
        "step": big[::2, ::2][:40, :70],
        "negative": big[::-1, ::-3][:40, :50],
        "broadcast": np.broadcast_to(big[0, :70], (40, 70)),
    }
    b = rng.standard_normal((70, 30)).astype(dtype)
    for name, a in views.items():
        k = a.shape[1]
        bb = b[:k]
        for order in "CF":
            out = np.empty((a.shape[0], 30), dtype, order=order)
            _core.matmul(a, bb, out)
            assert np.all(np.abs(out - _ref(a, bb)) <= _bound(a, bb, dtype)), (name, order)
        out = np.empty((30, a.shape[0]), dtype)
        _core.matmul(bb.T, a.T, out)  # both operands transposed views
        assert np.all(np.abs(out - _ref(a, bb).T) <= _bound(a, bb, dtype).T), name


def test_matmul_empty_operands():
    out = np.full((3, 4), np.nan, np.float32)
    _core.matmul(np.empty((3, 0), np.float32), np.empty((0, 4), np.float32), out)
    np.testing.assert_array_equal(out, 0)  # k = 0: the empty sum
    _core.matmul(np.empty((0, 5)), np.ones((5, 2)), np.empty((0, 2)))
    _core.matmul(np.ones((2, 5)), np.empty((5, 0)), np.empty((2, 0)))


def test_matmul_propagates_nan_and_inf():
    a = np.ones((2, 3), np.float32)
    a[0, 1] = np.nan
    a[1, 2] = np.inf
    out = np.empty((2, 2), np.float32)
    _core.matmul(a, np.ones((3, 2), np.float32), out)
    assert np.isnan(out[0]).all() and np.isposinf(out[1]).all()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_matmul_is_bit_identical_for_any_thread_count(dtype):
    rng = np.random.default_rng(7)
    before = lk.get_num_threads()
    try:
        for m, k, n in [(300, 200, 150), (150, 300, 260), (784, 128, 256), (129, 700, 70)]:
            a = rng.standard_normal((k, m)).astype(dtype).T
            b = rng.standard_normal((k, n)).astype(dtype)
            outs = []
            for t in (1, 2, 3, 8):
                lk.set_num_threads(t)
                outs.append(_core.matmul(a, b, np.empty((m, n), dtype)))
            for o in outs[1:]:
                np.testing.assert_array_equal(o.view(np.uint8), outs[0].view(np.uint8))
    finally:
        lk.set_num_threads(before)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_matmul_rows_do_not_depend_on_which_rows_are_multiplied_with_them(dtype):
    # Each element is one fixed sequence of multiply-adds over k, so a model's
    # prediction for a row does not change with the batch it is in.
    rng = np.random.default_rng(3)
    a = rng.standard_normal((700, 300)).astype(dtype)
    b = rng.standard_normal((300, 90)).astype(dtype)
    full = _core.matmul(a, b, np.empty((700, 90), dtype))
    for s, e in [(0, 1), (3, 4), (5, 77), (64, 128), (100, 700), (1, 650)]:
        part = _core.matmul(a[s:e], b, np.empty((e - s, 90), dtype))
        np.testing.assert_array_equal(part, full[s:e])
    for s, e in [(0, 1), (5, 40), (17, 90)]:
        part = _core.matmul(a, b[:, s:e], np.empty((700, e - s), dtype))
        np.testing.assert_array_equal(part, full[:, s:e])


def _f32(*shape):
    return np.ones(shape, np.float32)


@pytest.mark.parametrize(
    "call,exc,words",
    [
        (lambda: _core.matmul([[1.0]], _f32(1, 1), _f32(1, 1)), TypeError, "a must be a numpy"),
        (lambda: _core.matmul(_f32(1, 1), _f32(1, 1), [[0.0]]), TypeError, "out must be a numpy"),
        (lambda: _core.matmul(np.ones((2, 2), int), _f32(2, 2), _f32(2, 2)), TypeError, "a must"),
        (lambda: _core.matmul(_f32(2, 2), np.ones((2, 2)), _f32(2, 2)), TypeError, "b has dtype"),
        (lambda: _core.matmul(_f32(2, 2), _f32(2, 2), np.ones((2, 2))), TypeError, "out has dtype"),
        (
            lambda: _core.matmul(_f32(2, 2).astype(">f4"), _f32(2, 2), _f32(2, 2)),
            TypeError,
            "a must",
        ),
        (
            lambda: _core.matmul(_f32(2, 2).astype(np.complex64), _f32(2, 2), _f32(2, 2)),
            TypeError,
            "a must",
        ),
        (lambda: _core.matmul(_f32(2), _f32(2, 2), _f32(2, 2)), ValueError, "a must be 2-D"),
        (lambda: _core.matmul(_f32(2, 2), _f32(2, 2, 1), _f32(2, 2)), ValueError, "b must be 2-D"),
        (lambda: _core.matmul(_f32(2, 3), _f32(2, 2), _f32(2, 2)), ValueError, "a's columns"),
        (lambda: _core.matmul(_f32(2, 3), _f32(3, 4), _f32(4, 2)), ValueError, "out has shape"),
        (lambda: _core.matmul(_f32(2, 2), _f32(2, 2), _f32(4, 4)[::2, ::2]), ValueError, "contig"),
    ],
)
def test_matmul_bad_arguments_name_the_argument(call, exc, words):
    with pytest.raises(exc, match=words):
        call()


def test_matmul_refuses_read_only_misaligned_and_overlapping_out():
    a = _f32(4, 4)
    ro = _f32(4, 4)
    ro.flags.writeable = False
    with pytest.raises(ValueError, match="out is read-only"):
        _core.matmul(a, a, ro)
    raw = np.zeros(4 * 4 * 4 + 1, np.uint8)[1:].view(np.float32).reshape(4, 4)
    with pytest.raises(ValueError, match="aligned"):
        _core.matmul(a, a, raw)
    buf = np.ones(32, np.float32)
    with pytest.raises(ValueError, match="out shares memory with a"):
        _core.matmul(buf[:16].reshape(4, 4), a, buf[8:24].reshape(4, 4))
    with pytest.raises(ValueError, match="out shares memory with b"):
        _core.matmul(_f32(4, 4), a, a)
    with pytest.raises(ValueError, match="out shares memory with a"):
        _core.matmul(a.T, _f32(4, 4), a)  # a transposed view of out itself

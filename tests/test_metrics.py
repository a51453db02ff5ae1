"""Metrics and helpers against plain-Python references, and bad input."""

from __future__ import annotations

import logitkit as lk
import numpy as np
import pytest


def rng(seed=0):
    return np.random.default_rng(seed)


def test_one_hot_matches_loop_reference():
    labels = rng(1).integers(0, 7, (5, 3))
    oh = lk.one_hot(labels, 7)
    assert oh.shape == (5, 3, 7) and oh.dtype == np.float32
    for i in np.ndindex(labels.shape):
        want = np.zeros(7)
        want[labels[i]] = 1
        np.testing.assert_array_equal(oh[i], want)
    assert lk.one_hot([1], 2, dtype=np.int64).dtype == np.int64


def test_accuracy_and_top_k_match_loop_reference():
    r = rng(2)
    s = r.standard_normal((200, 9))
    t = r.integers(0, 9, 200)
    assert lk.accuracy(s, t) == pytest.approx(
        np.mean([int(np.argmax(row)) == y for row, y in zip(s, t, strict=True)])
    )
    for k in (1, 3, 9):
        want = np.mean([y in np.argsort(-row)[:k] for row, y in zip(s, t, strict=True)])
        assert lk.top_k_accuracy(s, t, k) == pytest.approx(want)
    assert lk.top_k_accuracy(s, t, 1) == lk.accuracy(s, t)
    # probabilities give the same accuracy as their logits
    assert lk.accuracy(lk.softmax(s), t) == lk.accuracy(s, t)


def test_confusion_matrix_matches_loop_reference():
    r = rng(3)
    t = r.integers(0, 4, 100)
    p = r.integers(0, 4, 100)
    m = lk.confusion_matrix(t, p)
    want = np.zeros((4, 4), np.int64)
    for a, b in zip(t, p, strict=True):
        want[a, b] += 1
    assert m.dtype == np.int64
    np.testing.assert_array_equal(m, want)
    assert lk.confusion_matrix([0, 1], [1, 1], num_classes=5).shape == (5, 5)
    assert lk.confusion_matrix([0, 1, 1], [0, 0, 1])[1, 0] == 1  # rows = true class


def test_metrics_bad_input():
    with pytest.raises(ValueError, match=r"target\[1\] = 5 is not a class index for 3 classes"):
        lk.accuracy(np.zeros((2, 3)), [0, 5])
    with pytest.raises(TypeError, match="target must hold integer class indices"):
        lk.accuracy(np.zeros((2, 3)), [0.0, 1.0])
    with pytest.raises(ValueError, match="target has shape"):
        lk.accuracy(np.zeros((2, 3)), [0, 1, 2])
    with pytest.raises(ValueError, match=r"labels\[0\] = -1"):
        lk.one_hot([-1], 3)
    with pytest.raises(ValueError, match=r"pred\[0\] = 3 is not a class index for 2"):
        lk.confusion_matrix([0], [3], num_classes=2)
    with pytest.raises(ValueError, match="k must be >= 1"):
        lk.top_k_accuracy(np.zeros((2, 3)), [0, 1], 0)
    for bad in (None, 1.5, True, "2"):
        with pytest.raises(TypeError, match="k must be an integer"):
            lk.top_k_accuracy(np.zeros((2, 3)), [0, 1], bad)
        with pytest.raises(TypeError, match="num_classes must be an integer"):
            lk.one_hot([1], bad)
        if bad is not None:  # None: inferred from the labels
            with pytest.raises(TypeError, match="num_classes must be an integer"):
                lk.confusion_matrix([0, 1], [1, 1], bad)
    with pytest.raises(ValueError, match="num_classes must be >= 0"):
        lk.confusion_matrix(np.array([], int), np.array([], int), -1)
    with pytest.raises(ValueError, match=r"labels\[0\] = 9223372036854775808 is not a class"):
        lk.one_hot(np.array([2**63], np.uint64), 3)
    with pytest.raises(ValueError, match=r"target has shape \(2, 2\), but pred has shape \(4,\)"):
        lk.confusion_matrix(np.zeros((2, 2), int), np.zeros(4, int))


def test_metrics_accept_empty_lists():
    assert lk.one_hot([], 3).shape == (0, 3)
    # No rows: a mean over nothing, NaN (it was 0.0 until stop 24).
    assert np.isnan(lk.accuracy(np.zeros((0, 3)), []))
    assert np.isnan(lk.top_k_accuracy(np.zeros((0, 3)), [], 2))
    assert lk.confusion_matrix([], []).shape == (0, 0)


def test_top_k_accuracy_ties_without_nan_match_argsort():
    # Integer scores: many ties, broken by the lower class index (a stable
    # sort of -score), on the path without NaN; float64 and int64 alike.
    r = rng(5)
    s = r.integers(0, 4, (300, 7))
    t = r.integers(0, 7, 300)
    for scores in (s, s.astype(np.float64), s.reshape(30, 10, 7)):
        tt = t.reshape(scores.shape[:-1])
        for k in (1, 2, 4, 7):
            order = np.argsort(-s, axis=-1, kind="stable")[:, :k]
            want = np.mean([y in row for row, y in zip(order, t, strict=True)])
            assert lk.top_k_accuracy(scores, tt, k) == pytest.approx(want)


def test_top_1_accuracy_is_accuracy_with_ties_and_nan():
    s = np.array([[0.0, 0.0, 0.0], [1, 1, 0], [2, 5, 5], [np.nan, 1, 2]])
    for t in ([2, 1, 2, 0], [0, 0, 1, 1]):
        assert lk.top_k_accuracy(s, t, 1) == lk.accuracy(s, t)
    # Ties ranked by class index: class 2 of a constant row is third.
    assert [lk.top_k_accuracy(s[:1], [2], k) for k in (1, 2, 3)] == [0.0, 0.0, 1.0]
    # NaN ranks highest, as in np.argmax: a NaN target score is first.
    assert lk.top_k_accuracy(s[3:], [0], 1) == 1.0
    assert lk.top_k_accuracy(s[3:], [2], 1) == 0.0
    assert lk.top_k_accuracy(s[3:], [2], 2) == 1.0


def _ref_ranks(s, t):
    # Rank by (NaN first, then higher score, then lower index), as np.argmax
    # ranks the top: the number of classes ordered before the target.
    out = []
    for row, y in zip(s, t, strict=True):

        def key(j, row=row):
            v = row[j]
            return (0, 0.0, j) if np.isnan(v) else (1, -v, j)

        out.append(sum(key(j) < key(y) for j in range(len(row))))
    return np.array(out)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_top_k_ranks_kernel_matches_reference_with_ties_and_nan(dtype):
    r = rng(6)
    s = r.integers(-2, 3, (400, 9)).astype(dtype)
    s[r.random(s.shape) < 0.1] = np.nan
    s[5] = np.nan
    t = r.integers(0, 9, 400)
    got = lk._core.top_k_ranks(s, t, np.empty(400, np.int64))
    np.testing.assert_array_equal(got, _ref_ranks(s, t))
    for k in (1, 2, 5, 9):
        assert lk.top_k_accuracy(s, t, k) == pytest.approx(np.mean(_ref_ranks(s, t) < k))
    # Large enough for the thread pool: equal to the NumPy counting.
    s = r.standard_normal((3000, 300)).astype(dtype)
    t = r.integers(0, 300, 3000)
    got = lk._core.top_k_ranks(s, t, np.empty(3000, np.int64))
    ts = s[np.arange(3000), t][:, None]
    np.testing.assert_array_equal(got, (s > ts).sum(1))


def test_top_k_ranks_bad_input():
    s = np.zeros((2, 3))
    ok_t, ok_o = np.array([0, 1]), np.empty(2, np.int64)
    with pytest.raises(TypeError, match="scores must have dtype float32 or float64"):
        lk._core.top_k_ranks(s.astype(np.int64), ok_t, ok_o)
    with pytest.raises(ValueError, match="scores must be a C-contiguous 2-D array"):
        lk._core.top_k_ranks(np.zeros((2, 3, 1)), ok_t, ok_o)
    with pytest.raises(TypeError, match="target must have dtype int64"):
        lk._core.top_k_ranks(s, np.array([0.0, 1.0]), ok_o)
    with pytest.raises(
        ValueError, match=r"target must be a contiguous int64 array of shape \(2,\)"
    ):
        lk._core.top_k_ranks(s, np.array([0, 1, 2]), ok_o)
    with pytest.raises(ValueError, match=r"target\[1\] = 3 is not a class index for 3 classes"):
        lk._core.top_k_ranks(s, np.array([0, 3]), ok_o)
    with pytest.raises(ValueError, match=r"target\[0\] = -1 is not a class index"):
        lk._core.top_k_ranks(s, np.array([-1, 0]), ok_o)
    ro = np.empty(2, np.int64)
    ro.flags.writeable = False
    with pytest.raises(ValueError, match="out is read-only"):
        lk._core.top_k_ranks(s, ok_t, ro)
    with pytest.raises(TypeError, match="out must be a numpy.ndarray"):
        lk._core.top_k_ranks(s, ok_t, [0, 0])


def test_one_hot_infers_the_class_count_with_minus_one():
    np.testing.assert_array_equal(lk.one_hot([2, 0]), np.eye(3, dtype=np.float32)[[2, 0]])
    np.testing.assert_array_equal(lk.one_hot([[1], [0]], -1), lk.one_hot([[1], [0]], 2))
    assert lk.one_hot([], -1).shape == (0, 0)
    with pytest.raises(ValueError, match="num_classes"):
        lk.one_hot([1], -2)


@pytest.mark.parametrize("bad", [np.array([[1j, 0]]), np.array([["a", "b"]]), [[None, 1]]])
def test_scores_that_are_not_real_numbers_are_refused(bad):
    for f in (lambda: lk.accuracy(bad, [0]), lambda: lk.top_k_accuracy(bad, [0], 1)):
        with pytest.raises(TypeError, match="scores must be a real numeric array"):
            f()


def test_confusion_matrix_refuses_labels_that_are_ids_naming_the_argument():
    with pytest.raises(ValueError, match=r"target holds a label of 1099511627776"):
        lk.confusion_matrix([2**40], [0])
    with pytest.raises(ValueError, match=r"pred holds a label of 2147483648"):
        lk.confusion_matrix([0], [2**31])
    with pytest.raises(ValueError, match=r"num_classes is 100000"):
        lk.confusion_matrix([0], [1], num_classes=100_000)
    # Class indices as before.
    assert lk.confusion_matrix([0, 5], [5, 5]).shape == (6, 6)

"""Losses against independent float64 references, gradients against finite
differences, hypothesis properties, bad input, and thread bit-identity."""

from __future__ import annotations

import logitkit as lk
import mpmath as mp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from scipy.special import expit, log_expit, logsumexp

RED = ["mean", "sum", "none"]


# ------------------------------------------------------------ references


def ref_ce(x, t, weight=None, ignore_index=-100, ls=0.0, reduction="mean", axis=-1):
    """Cross-entropy and its gradient in float64, straight from the definition."""
    x = np.moveaxis(np.asarray(x, np.float64), axis, -1)
    c = x.shape[-1]
    w = np.ones(c) if weight is None else np.asarray(weight, np.float64)
    logp = x - logsumexp(x, axis=-1, keepdims=True)
    p = np.exp(logp)
    t = np.asarray(t)
    if t.dtype.kind == "f":  # probabilities
        y = np.moveaxis(t.astype(np.float64), axis, -1) * (1 - ls) + ls / c
        terms = np.where(w * y == 0, 0.0, -w * y * np.where(w * y == 0, 0.0, logp))
        rows = terms.sum(-1)
        g = p * (w * y).sum(-1, keepdims=True) - w * y
        norm = rows.size
    else:
        valid = t != ignore_index
        tt = np.where(valid, t, 0)
        oh = np.zeros(x.shape)
        np.put_along_axis(oh, tt[..., None], 1.0, axis=-1)
        y = (1 - ls) * oh + ls / c
        terms = np.where(y * w == 0, 0.0, -y * w * np.where(y * w == 0, 0.0, logp))
        rows = np.where(valid, terms.sum(-1), 0.0)
        g = p * (w * y).sum(-1, keepdims=True) - w * y
        g = np.where(valid[..., None], g, 0.0)
        norm = w[tt][valid].sum()
    if reduction == "mean":
        loss = rows.sum() / norm if norm > 0 else 0.0
        g = g / norm if norm > 0 else g * 0
    elif reduction == "sum":
        loss = rows.sum()
    else:
        loss = rows
    return loss, np.moveaxis(g, -1, axis)


def ref_pointwise(name, x, y, reduction="mean", **kw):
    x = np.asarray(x, np.float64)
    y = np.asarray(y, np.float64)
    d = x - y
    w = np.asarray(kw.get("weight", 1.0), np.float64)
    if name == "mse_loss":
        el = d * d
    elif name == "l1_loss":
        el = np.abs(d)
    elif name == "huber_loss":
        dl = kw.get("delta", 1.0)
        el = np.where(np.abs(d) < dl, 0.5 * d * d, dl * (np.abs(d) - 0.5 * dl))
    elif name == "smooth_l1_loss":
        b = kw.get("beta", 1.0)
        with np.errstate(divide="ignore", invalid="ignore"):
            el = np.where(np.abs(d) < b, 0.5 * d * d / b, np.abs(d) - 0.5 * b)
    elif name == "binary_cross_entropy":
        el = -(y * np.maximum(np.log(x), -100) + (1 - y) * np.maximum(np.log1p(-x), -100))
    elif name == "binary_cross_entropy_with_logits":
        pw = np.asarray(kw.get("pos_weight", 1.0), np.float64)
        el = -(pw * y * log_expit(x) + (1 - y) * log_expit(-x))
    elif name == "kl_div":
        if kw.get("log_target"):
            el = np.exp(y) * (y - x)
        else:
            el = np.where(y > 0, y * (np.log(np.where(y > 0, y, 1)) - x), 0.0)
    elif name == "sigmoid_focal_loss":
        a, gm = kw.get("alpha", 0.25), kw.get("gamma", 2.0)
        p = expit(x)
        ce = -(y * log_expit(x) + (1 - y) * log_expit(-x))
        pt = p * y + (1 - p) * (1 - y)
        el = ce * (1 - pt) ** gm
        if a >= 0:
            el = el * (a * y + (1 - a) * (1 - y))
    else:
        raise AssertionError(name)
    el = w * el
    if reduction == "mean":
        return el.mean()
    if reduction == "sum":
        return el.sum()
    if reduction == "batchmean":
        return el.sum() / x.shape[0]
    return el


def fd_grad(f, x, h=1e-6):
    """Central finite differences of a scalar function of a float64 array."""
    x = np.array(x, np.float64)
    g = np.zeros_like(x)
    for i in np.ndindex(x.shape):
        xp, xm = x.copy(), x.copy()
        xp[i] += h
        xm[i] -= h
        g[i] = (f(xp) - f(xm)) / (2 * h)
    return g


def rng(seed=0):
    return np.random.default_rng(seed)


# ------------------------------------------------------------ cross-entropy values


@pytest.mark.parametrize("reduction", RED)
@pytest.mark.parametrize("ls", [0.0, 0.1])
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("dtype,tol", [(np.float64, 1e-13), (np.float32, 2e-6)])
def test_cross_entropy_index_matches_float64_reference(reduction, ls, weighted, dtype, tol):
    r = rng(1)
    x = (r.standard_normal((37, 13)) * 4).astype(dtype)
    t = r.integers(0, 13, 37)
    t[[3, 9]] = -100
    w = r.uniform(0.1, 2.0, 13).astype(dtype) if weighted else None
    loss, g = lk.cross_entropy(
        x, t, weight=w, label_smoothing=ls, reduction=reduction, return_grad=True
    )
    want, gw = ref_ce(x, t, weight=w, ls=ls, reduction=reduction)
    assert np.asarray(loss).dtype == dtype and g.dtype == dtype
    np.testing.assert_allclose(loss, want, rtol=tol, atol=0)
    np.testing.assert_allclose(g, gw, rtol=tol, atol=tol * np.abs(gw).max())
    assert lk.cross_entropy(x, t, weight=w, label_smoothing=ls, reduction=reduction) == (
        pytest.approx(want, rel=tol)
    )


@pytest.mark.parametrize(
    "shape,scale,ls",
    [
        ((8, 50257), 100.0, 0.0),
        ((8, 50257), 1.0, 0.2),
        ((300, 1000), 100.0, 0.1),
        ((5000, 10), 30.0, 0.0),
    ],
)
def test_cross_entropy_float32_accuracy_hard_cases(shape, scale, ls):
    r = rng(2)
    x = (r.standard_normal(shape) * scale).astype(np.float32)
    t = r.integers(0, shape[1], shape[0])
    w = r.uniform(0.5, 2.0, shape[1]).astype(np.float32)
    for reduction in ("mean", "sum", "none"):
        loss, g = lk.cross_entropy(
            x, t, weight=w, label_smoothing=ls, reduction=reduction, return_grad=True
        )
        want, gw = ref_ce(x, t, weight=w, ls=ls, reduction=reduction)
        # Per-row losses near 0 are x_t - logsumexp(x): the float64 reference
        # itself only holds them to ~1e-16 * |x|.
        atol = 0 if reduction != "none" else 4e-16 * np.abs(x).max()
        np.testing.assert_allclose(loss, want, rtol=2e-6, atol=atol)
        np.testing.assert_allclose(g, gw, rtol=2e-6, atol=2e-6 * np.abs(gw).max())


@pytest.mark.parametrize("dtype,tol", [(np.float64, 1e-13), (np.float32, 2e-6)])
@pytest.mark.parametrize("reduction", RED)
def test_cross_entropy_probability_targets(dtype, tol, reduction):
    r = rng(3)
    x = (r.standard_normal((20, 7)) * 3).astype(dtype)
    y = r.dirichlet(np.ones(7), 20).astype(dtype)
    y[0] = 0
    y[0, 2] = 1  # zeros in the target: no 0 * log 0
    w = r.uniform(0.5, 2, 7)
    for ls in (0.0, 0.3):
        loss, g = lk.cross_entropy(
            x, y, weight=w, label_smoothing=ls, reduction=reduction, return_grad=True
        )
        want, gw = ref_ce(x, y, weight=w, ls=ls, reduction=reduction)
        np.testing.assert_allclose(loss, want, rtol=tol)
        np.testing.assert_allclose(g, gw, rtol=tol, atol=tol * np.abs(gw).max())


@pytest.mark.parametrize("axis", [0, 1, -2])
def test_cross_entropy_any_axis(axis):
    r = rng(4)
    x = r.standard_normal((4, 5, 6))
    c = x.shape[axis]
    tshape = tuple(s for i, s in enumerate(x.shape) if i != axis % 3)
    t = r.integers(0, c, tshape)
    loss, g = lk.cross_entropy(x, t, axis=axis, return_grad=True)
    want, gw = ref_ce(x, t, axis=axis)
    assert loss == pytest.approx(want, rel=1e-13)
    np.testing.assert_allclose(g, gw, rtol=1e-12, atol=1e-15)
    y = r.dirichlet(np.ones(c), tshape)
    y = np.moveaxis(y, -1, axis)
    loss, g = lk.cross_entropy(x, y, axis=axis, return_grad=True, reduction="sum")
    want, gw = ref_ce(x, y, axis=axis, reduction="sum")
    assert loss == pytest.approx(want, rel=1e-13)
    np.testing.assert_allclose(g, gw, rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_cross_entropy_over_a_class_axis_in_the_middle(dtype):
    # PyTorch's N x C x H x W layout: the class axis is moved to the end
    # (and the gradient back) by the package's transposes. Each row must
    # give what it gives when the caller moves the axis: the same bits.
    r = rng(12)
    x = (r.standard_normal((3, 7, 20, 30)) * 3).astype(dtype)
    t = r.integers(0, 7, (3, 20, 30))
    t[0, 0, :5] = -100
    xl = np.ascontiguousarray(np.moveaxis(x, 1, -1))
    w = r.uniform(0.5, 2, 7).astype(dtype)
    for kw in ({}, {"weight": w, "label_smoothing": 0.1}, {"reduction": "none"}):
        loss, g = lk.cross_entropy(x, t, axis=1, return_grad=True, **kw)
        loss_l, g_l = lk.cross_entropy(xl, t, return_grad=True, **kw)
        assert np.asarray(loss).tobytes() == np.asarray(loss_l).tobytes()
        assert g.flags.c_contiguous and g.dtype == dtype
        assert g.tobytes() == np.ascontiguousarray(np.moveaxis(g_l, -1, 1)).tobytes()
        out = np.empty_like(x)
        loss2, g2 = lk.cross_entropy(x, t, axis=1, return_grad=True, grad_out=out, **kw)
        assert g2 is out and np.array_equal(out, g)
        assert np.asarray(loss2).tobytes() == np.asarray(loss).tobytes()
    # Probability targets on the same axis, and a Fortran-ordered grad_out
    # (the copy-back path).
    y = np.moveaxis(r.dirichlet(np.ones(7), (3, 20, 30)), -1, 1).astype(dtype)
    loss, g = lk.cross_entropy(x, y, axis=1, return_grad=True)
    yl = np.ascontiguousarray(np.moveaxis(y, 1, -1))
    loss_l, g_l = lk.cross_entropy(xl, yl, return_grad=True)
    assert loss == loss_l and np.array_equal(g, np.moveaxis(g_l, -1, 1))
    out_f = np.empty(x.shape, dtype, order="F")
    _, g3 = lk.cross_entropy(x, y, axis=1, return_grad=True, grad_out=out_f)
    assert g3 is out_f and np.array_equal(out_f, g)
    want, gw = ref_ce(x, y, axis=1)
    tol = 2e-6 if dtype == np.float32 else 1e-13
    assert loss == pytest.approx(want, rel=tol)
    np.testing.assert_allclose(g, gw, rtol=tol, atol=tol * np.abs(gw).max())
    # nll_loss takes the same path.
    lp = lk.log_softmax(x, axis=1)
    nl, ng = lk.nll_loss(lp, t, axis=1, return_grad=True)
    nl_l, ng_l = lk.nll_loss(np.ascontiguousarray(np.moveaxis(lp, 1, -1)), t, return_grad=True)
    assert nl == nl_l and np.array_equal(ng, np.moveaxis(ng_l, -1, 1))


INNER_CASES = [
    # (shape, axis): inner axes of 2, 3 and 17 elements (groups of 16 rows
    # that span two blocks of the leading axes), 600, the class axis first.
    ((50, 7, 2), 1),
    ((9, 5, 3, 1), 1),
    ((4, 10, 17), 1),
    ((3, 7, 20, 30), 1),
    ((12, 40, 5), 0),
]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape,axis", INNER_CASES)
def test_cross_entropy_class_axis_not_last_bitwise_like_moving_it(dtype, shape, axis):
    # Short rows over a class axis that is not the last are taken from the
    # array as it is, in the row path's groups and order of sums: every
    # result has the bits of the same call on the axis moved last by hand.
    r = rng(31)
    x = (r.standard_normal(shape) * 4).astype(dtype)
    n = shape[axis]
    tshape = shape[:axis] + shape[axis + 1 :]
    t = r.integers(0, n, tshape)
    t.flat[::7] = -100
    y = np.moveaxis(r.dirichlet(np.ones(n), tshape), -1, axis).astype(dtype)
    w = r.uniform(0.5, 2, n).astype(dtype)
    xl = np.ascontiguousarray(np.moveaxis(x, axis, -1))
    yl = np.ascontiguousarray(np.moveaxis(y, axis, -1))
    calls = [
        ({"target": t}, {}),
        ({"target": t}, {"weight": w, "reduction": "sum"}),
        ({"target": t}, {"label_smoothing": 0.2, "reduction": "none"}),
        ({"target": y}, {"label_smoothing": 0.1}),
    ]
    for tgt, kw in calls:
        tl = yl if tgt["target"] is y else t
        loss, g = lk.cross_entropy(x, tgt["target"], axis=axis, return_grad=True, **kw)
        loss_l, g_l = lk.cross_entropy(xl, tl, return_grad=True, **kw)
        assert np.asarray(loss).tobytes() == np.asarray(loss_l).tobytes()
        assert g.shape == x.shape and g.flags.c_contiguous
        assert g.tobytes() == np.ascontiguousarray(np.moveaxis(g_l, -1, axis)).tobytes()
        # In place (the logits are the gradient's buffer) and into grad_out.
        xi = x.copy()
        loss_i, g_i = lk.cross_entropy(
            xi, tgt["target"], axis=axis, return_grad=True, grad_out=xi, **kw
        )
        assert g_i is xi and g_i.tobytes() == g.tobytes()
        assert np.asarray(loss_i).tobytes() == np.asarray(loss).tobytes()
        lo = lk.cross_entropy(x, tgt["target"], axis=axis, **kw)
        assert np.asarray(lo).tobytes() == np.asarray(loss).tobytes()
    # nll_loss reads the target entries where they are.
    for kw in ({}, {"weight": w, "reduction": "none"}):
        loss, g = lk.nll_loss(x, t, axis=axis, return_grad=True, **kw)
        loss_l, g_l = lk.nll_loss(xl, t, return_grad=True, **kw)
        assert np.asarray(loss).tobytes() == np.asarray(loss_l).tobytes()
        assert g.tobytes() == np.ascontiguousarray(np.moveaxis(g_l, -1, axis)).tobytes()
        xi = x.copy()
        loss_i, g_i = lk.nll_loss(xi, t, axis=axis, return_grad=True, grad_out=xi, **kw)
        assert g_i is xi and g_i.tobytes() == g.tobytes()
        assert np.asarray(loss_i).tobytes() == np.asarray(loss).tobytes()


@pytest.mark.parametrize("dtype,tol", [(np.float32, 2e-6), (np.float64, 1e-13)])
@pytest.mark.parametrize("n", [1, 63, 64, 150, 2048, 2049])
def test_cross_entropy_class_axis_not_last_matches_float64_reference(dtype, tol, n):
    # Up to 2048 classes the column kernels take the rows from the array as
    # it is (from 64 classes, float32, where the moved rows would go to the
    # row kernels); 2049 goes through the transposes. Logits x 30 and
    # weights, smoothing, probability targets.
    r = rng(32)
    shape = (2, n, 19)
    x = (r.standard_normal(shape) * 30).astype(dtype)
    t = r.integers(0, n, (2, 19))
    t[0, 3] = -100
    w = r.uniform(0.5, 2, n).astype(dtype)
    y = np.moveaxis(r.dirichlet(np.ones(n), (2, 19)), -1, 1).astype(dtype)
    for tgt, kw in (
        (t, {"weight": w}),
        (t, {"label_smoothing": 0.1, "reduction": "sum"}),
        (y, {"reduction": "none"}),
    ):
        loss, g = lk.cross_entropy(x, tgt, axis=1, return_grad=True, **kw)
        want, gw = ref_ce(
            x,
            tgt,
            weight=kw.get("weight"),
            ls=kw.get("label_smoothing", 0.0),
            reduction=kw.get("reduction", "mean"),
            axis=1,
        )
        np.testing.assert_allclose(loss, want, rtol=tol, atol=tol * 1e-3)
        np.testing.assert_allclose(g, gw, rtol=tol, atol=tol * np.abs(gw).max())


def test_cross_entropy_class_axis_not_last_threads_and_errors():
    r = rng(33)
    x = (r.standard_normal((40, 21, 300)) * 5).astype(np.float32)
    t = r.integers(0, 21, (40, 300))
    before = lk.get_num_threads()
    try:
        res = []
        for k in (1, 2, 8):
            lk.set_num_threads(k)
            loss, g = lk.cross_entropy(x, t, axis=1, label_smoothing=0.1, return_grad=True)
            loss2, g2 = lk.cross_entropy(x, t, axis=1, return_grad=True)
            res.append((loss.tobytes(), g.tobytes(), loss2.tobytes(), g2.tobytes()))
        assert res[0] == res[1] == res[2]
    finally:
        lk.set_num_threads(before)
    # Errors name positions in the caller's coordinates.
    t[5, 7] = 21
    with pytest.raises(ValueError, match=r"target\[5, 7\] = 21 is not a class index for 21"):
        lk.cross_entropy(x, t, axis=1)
    y = np.moveaxis(r.dirichlet(np.ones(21), (40, 300)), -1, 1).astype(np.float32)
    y[3, 4, 5] = np.nan
    with pytest.raises(ValueError, match=r"target\[3, 4, 5\] is NaN"):
        lk.cross_entropy(x, y, axis=1)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", [(2, 2049, 37), (3, 3000, 16), (1, 4100, 5)])
def test_cross_entropy_many_classes_not_last_is_the_last_axis_row_by_row(dtype, shape):
    # Above 2048 classes each unit of up to 16 adjacent positions goes
    # through a scratch of contiguous rows and the row kernels: every row's
    # loss and gradient has the bits of the same row on the last axis (the
    # total is summed per unit, so only within rounding), whole and partial
    # units (37 = 2 * 16 + 5 positions), in place, for any thread count.
    r = rng(34)
    n = shape[1]
    x = (r.standard_normal(shape) * 8).astype(dtype)
    t = r.integers(0, n, (shape[0], shape[2]))
    t[0, :3] = -100
    w = r.uniform(0.5, 2, n).astype(dtype)
    y = np.moveaxis(r.dirichlet(np.ones(n), (shape[0], shape[2])), -1, 1).astype(dtype)
    xl = np.ascontiguousarray(np.moveaxis(x, 1, -1))
    yl = np.ascontiguousarray(np.moveaxis(y, 1, -1))
    tol = 1e-6 if dtype == np.float32 else 1e-13
    for (tgt, tgt_l), kw in (
        ((t, t), {"weight": w}),
        ((t, t), {"label_smoothing": 0.1}),
        ((y, yl), {}),
        ((y, yl), {"weight": w, "label_smoothing": 0.2}),
    ):
        for red in ("none", "sum", "mean"):
            loss, g = lk.cross_entropy(x, tgt, axis=1, reduction=red, return_grad=True, **kw)
            loss_l, g_l = lk.cross_entropy(xl, tgt_l, reduction=red, return_grad=True, **kw)
            assert g.tobytes() == np.ascontiguousarray(np.moveaxis(g_l, -1, 1)).tobytes()
            if red == "none":
                assert loss.tobytes() == loss_l.tobytes()
            else:
                np.testing.assert_allclose(loss, loss_l, rtol=tol, atol=0)
            only = lk.cross_entropy(x, tgt, axis=1, reduction=red, **kw)
            only_l = lk.cross_entropy(xl, tgt_l, reduction=red, **kw)
            if red == "none":
                assert only.tobytes() == only_l.tobytes()
            else:
                np.testing.assert_allclose(only, only_l, rtol=tol, atol=0)
            xi = x.copy()
            loss_i, g_i = lk.cross_entropy(
                xi, tgt, axis=1, reduction=red, return_grad=True, grad_out=xi, **kw
            )
            assert g_i is xi and xi.tobytes() == g.tobytes()
            assert np.asarray(loss_i).tobytes() == np.asarray(loss).tobytes()
    before = lk.get_num_threads()
    try:
        res = []
        for k in (1, 2, 8):
            lk.set_num_threads(k)
            loss, g = lk.cross_entropy(x, t, axis=1, return_grad=True)
            res.append((np.asarray(loss).tobytes(), g.tobytes()))
        assert res[0] == res[1] == res[2]
    finally:
        lk.set_num_threads(before)
    y[0, 7, 2] = np.nan
    with pytest.raises(ValueError, match=r"target\[0, 7, 2\] is NaN"):
        lk.cross_entropy(x, y, axis=1)


def test_class_losses_over_zero_classes_give_zero_row_losses():
    # Only ignored targets fit zero classes; each row's loss is 0 (it was
    # uninitialised memory with reduction="none").
    t = np.full((2, 3), -100)
    for x, ax in ((np.zeros((2, 3, 0)), -1), (np.zeros((2, 0, 3)), 1)):
        for f in (lk.cross_entropy, lk.nll_loss):
            loss, g = f(x, t, axis=ax, reduction="none", return_grad=True)
            assert loss.shape == (2, 3) and np.array_equal(loss, np.zeros((2, 3)))
            assert g.shape == x.shape
            assert f(x, t, axis=ax) == 0.0
    loss = lk.cross_entropy(np.zeros((4, 0)), np.zeros((4, 0)), reduction="none")
    assert np.array_equal(loss, np.zeros(4))


def test_class_axis_before_trailing_axes_of_length_one():
    # Nothing after the class axis: the rows are contiguous as they are.
    r = rng(34)
    x = (r.standard_normal((30, 97, 1, 1)) * 3).astype(np.float32)
    t = r.integers(0, 97, (30, 1, 1))
    xl = x.reshape(30, 97)
    for f, a in ((lk.cross_entropy, x), (lk.nll_loss, lk.log_softmax(x, axis=1))):
        loss, g = f(a, t, axis=1, return_grad=True, reduction="none")
        loss_l, g_l = f(a.reshape(30, 97), t.reshape(30), return_grad=True, reduction="none")
        assert loss.shape == (30, 1, 1) and g.shape == x.shape
        assert loss.tobytes() == loss_l.tobytes() and g.tobytes() == g_l.tobytes()
    del xl


def test_cross_entropy_gradient_matches_finite_differences():
    r = rng(5)
    x = r.standard_normal((4, 6))
    t = np.array([1, -100, 5, 0])
    w = r.uniform(0.5, 2, 6)
    for reduction in RED:
        for ls in (0.0, 0.25):

            def f(z, reduction=reduction, ls=ls):
                return float(
                    np.sum(
                        lk.cross_entropy(z, t, weight=w, label_smoothing=ls, reduction=reduction)
                    )
                )

            _, g = lk.cross_entropy(
                x, t, weight=w, label_smoothing=ls, reduction=reduction, return_grad=True
            )
            np.testing.assert_allclose(g, fd_grad(f, x), atol=1e-7)


def test_nll_loss_matches_reference_and_finite_differences():
    r = rng(6)
    lp = np.log(r.dirichlet(np.ones(5), 9))
    t = r.integers(0, 5, 9)
    t[2] = -1
    w = r.uniform(0.5, 2, 5)
    for reduction in RED:
        loss, g = lk.nll_loss(
            lp, t, weight=w, ignore_index=-1, reduction=reduction, return_grad=True
        )
        valid = t != -1
        rows = np.where(
            valid, -w[np.where(valid, t, 0)] * lp[np.arange(9), np.where(valid, t, 0)], 0
        )
        want = {"none": rows, "sum": rows.sum(), "mean": rows.sum() / w[t[valid]].sum()}[reduction]
        np.testing.assert_allclose(loss, want, rtol=1e-14)

        def f(z, reduction=reduction):
            return float(np.sum(lk.nll_loss(z, t, weight=w, ignore_index=-1, reduction=reduction)))

        np.testing.assert_allclose(g, fd_grad(f, lp), atol=1e-7)


def test_cross_entropy_all_ignored_gives_zero_mean_and_zero_gradient():
    x = np.ones((3, 4), np.float32)
    loss, g = lk.cross_entropy(x, [-100, -100, -100], return_grad=True)
    assert loss == 0.0 and not np.isnan(loss)
    assert np.all(g == 0)


def test_cross_entropy_infinities():
    x = np.array([[0.0, -np.inf, 1.0], [-np.inf, 2.0, 0.0]], np.float32)
    loss, g = lk.cross_entropy(x, [2, 1], reduction="none", return_grad=True)
    assert np.all(np.isfinite(loss)) and np.all(np.isfinite(g))
    want, gw = ref_ce(x, [2, 1], reduction="none")
    np.testing.assert_allclose(loss, want, rtol=2e-6)
    np.testing.assert_allclose(g, gw, atol=2e-7)
    loss = lk.cross_entropy(x, [1, 2], reduction="none")
    assert loss[0] == np.inf and np.isfinite(loss[1])
    # probabilities with zeros where the logits are -inf: 0 * log 0 = 0
    y = np.array([[0.5, 0.0, 0.5], [0.0, 1.0, 0.0]], np.float32)
    loss, g = lk.cross_entropy(x, y, reduction="none", return_grad=True)
    assert np.all(np.isfinite(loss)) and np.all(np.isfinite(g))


def test_cross_entropy_grad_out_and_in_place():
    r = rng(7)
    x = r.standard_normal((70, 600)).astype(np.float32)
    t = r.integers(0, 600, 70)
    loss, g = lk.cross_entropy(x, t, return_grad=True)
    out = np.empty_like(x)
    loss2, g2 = lk.cross_entropy(x, t, return_grad=True, grad_out=out)
    assert g2 is out and np.array_equal(out, g) and loss2 == loss
    xi = x.copy()
    loss3, g3 = lk.cross_entropy(xi, t, return_grad=True, grad_out=xi)
    assert g3 is xi and np.array_equal(xi, g) and loss3 == loss
    # axis other than last, into a Fortran-ordered grad_out
    out_f = np.empty((600, 70), np.float32, order="F")
    loss4, g4 = lk.cross_entropy(x.T, t, axis=0, return_grad=True, grad_out=out_f)
    assert g4 is out_f and np.array_equal(out_f, g.T) and loss4 == loss


def test_cross_entropy_accepts_lists_ints_and_int32_targets():
    loss = lk.cross_entropy([[2, 0, -1]], np.array([0], np.int32))
    assert loss == pytest.approx(ref_ce([[2.0, 0, -1]], [0])[0], rel=1e-14)
    assert lk.cross_entropy([2.0, 0.0, -1.0], 0) == pytest.approx(loss, rel=1e-14)


# ------------------------------------------------------------ pointwise losses

POINTWISE = [
    ("mse_loss", {}),
    ("l1_loss", {}),
    ("huber_loss", {"delta": 0.7}),
    ("smooth_l1_loss", {"beta": 0.5}),
    ("smooth_l1_loss", {"beta": 0.0}),
    ("binary_cross_entropy", {}),
    ("binary_cross_entropy", {"weight": "w"}),
    ("binary_cross_entropy_with_logits", {}),
    ("binary_cross_entropy_with_logits", {"weight": "w", "pos_weight": "pw"}),
    ("kl_div", {}),
    ("kl_div", {"log_target": True}),
    ("sigmoid_focal_loss", {}),
    ("sigmoid_focal_loss", {"alpha": -1.0, "gamma": 1.5}),
    ("sigmoid_focal_loss", {"gamma": 0.0}),
    ("sigmoid_focal_loss", {"gamma": 1.0}),
    ("sigmoid_focal_loss", {"gamma": 0.5}),
]


def _pw_data(name, dtype, shape=(6, 5), seed=8):
    r = rng(seed)
    x = r.standard_normal(shape) * 2
    y = r.standard_normal(shape)
    if name == "binary_cross_entropy":
        x = r.uniform(0.01, 0.99, shape)
        y = r.uniform(0, 1, shape)
    elif name in ("binary_cross_entropy_with_logits", "sigmoid_focal_loss"):
        y = r.uniform(0, 1, shape)
    elif name == "kl_div":
        x = np.log(r.dirichlet(np.ones(shape[-1]), shape[0]))
        y = r.dirichlet(np.ones(shape[-1]), shape[0])
        y[0, 0] = 0
    return x.astype(dtype), y.astype(dtype)


def _kw(kw, shape, seed=9):
    r = rng(seed)
    out = dict(kw)
    if out.get("weight") == "w":
        out["weight"] = r.uniform(0.5, 2, shape[-1])
    if out.get("pos_weight") == "pw":
        out["pos_weight"] = r.uniform(0.5, 3, shape[-1])
    return out


@pytest.mark.parametrize("name,kw", POINTWISE)
@pytest.mark.parametrize("reduction", RED)
@pytest.mark.parametrize("dtype,tol", [(np.float64, 1e-13), (np.float32, 2e-6)])
def test_pointwise_losses_match_float64_reference(name, kw, reduction, dtype, tol):
    x, y = _pw_data(name, dtype)
    kw = _kw(kw, x.shape)
    if name == "kl_div" and kw.get("log_target"):
        y = np.log(y + 0.1).astype(dtype)
    fn = getattr(lk, name)
    loss = fn(x, y, reduction=reduction, **kw)
    want = ref_pointwise(name, x, y, reduction, **kw)
    assert np.asarray(loss).dtype == dtype
    np.testing.assert_allclose(loss, want, rtol=tol, atol=tol * np.abs(want).max())
    loss2, g = fn(x, y, reduction=reduction, return_grad=True, **kw)
    np.testing.assert_array_equal(loss2, loss)
    assert g.dtype == dtype and g.shape == x.shape


@pytest.mark.parametrize("name,kw", POINTWISE + [("rmse_loss", {})])
@pytest.mark.parametrize("reduction", RED)
def test_pointwise_gradients_match_finite_differences(name, kw, reduction):
    x, y = _pw_data(name, np.float64, shape=(3, 4), seed=10)
    kw = _kw(kw, x.shape)
    if name == "kl_div" and kw.get("log_target"):
        y = np.log(y + 0.1)
    if name in ("l1_loss", "smooth_l1_loss", "huber_loss", "rmse_loss"):
        x = x + 0.05 * np.sign(x - y)  # keep away from kinks
    fn = getattr(lk, name)

    def f(z):
        return float(np.sum(fn(z, y, reduction=reduction, **kw)))

    _, g = fn(x, y, reduction=reduction, return_grad=True, **kw)
    np.testing.assert_allclose(g, fd_grad(f, x), rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("dtype,tol", [(np.float64, 1e-13), (np.float32, 2e-6)])
def test_rmse_loss_matches_reference(dtype, tol):
    x, y = _pw_data("mse_loss", dtype, shape=(50, 30))
    d = x.astype(np.float64) - y
    assert lk.rmse_loss(x, y) == pytest.approx(np.sqrt(np.mean(d * d)), rel=tol)
    assert lk.rmse_loss(x, y, reduction="sum") == pytest.approx(np.sqrt(np.sum(d * d)), rel=tol)
    np.testing.assert_allclose(lk.rmse_loss(x, y, reduction="none"), np.abs(d), rtol=tol)
    _, g = lk.rmse_loss(x, y, return_grad=True)
    np.testing.assert_allclose(g, d / (d.size * np.sqrt(np.mean(d * d))), rtol=tol * 5)
    _, g0 = lk.rmse_loss(y, y, return_grad=True)
    assert np.all(g0 == 0)


def test_seed_term_mapping():
    x = np.array([1.0, -2.0, 3.0])
    y = np.zeros(3)
    assert lk.l1_loss(x, y, reduction="sum") == 6.0  # L1 loss
    assert lk.mse_loss(x, y, reduction="sum") == 14.0  # L2 loss
    assert lk.l1_loss(x, y) == 2.0  # MAE
    assert lk.rmse_loss(x, y) == pytest.approx(np.sqrt(14 / 3), rel=1e-15)  # RMSE


def test_kl_div_batchmean():
    x, y = _pw_data("kl_div", np.float64)
    assert lk.kl_div(x, y, reduction="batchmean") == pytest.approx(
        ref_pointwise("kl_div", x, y, "batchmean"), rel=1e-14
    )
    _, g = lk.kl_div(x, y, reduction="batchmean", return_grad=True)
    np.testing.assert_allclose(g, -y / x.shape[0], rtol=1e-15)


def test_bce_with_logits_is_stable_for_huge_logits():
    x = np.array([1000.0, -1000.0, 80.0, -80.0], np.float32)
    y = np.array([0.0, 1.0, 1.0, 0.0], np.float32)
    loss = lk.binary_cross_entropy_with_logits(x, y, reduction="none")
    np.testing.assert_allclose(loss, [1000, 1000, 0, 0], atol=1e-30)
    assert (
        lk.binary_cross_entropy(np.array([0.0, 1.0]), np.array([1.0, 0.0]), reduction="sum") == 200
    )


def test_pointwise_in_place_grad_out():
    x, y = _pw_data("mse_loss", np.float32, shape=(300, 200))
    loss, g = lk.mse_loss(x, y, return_grad=True)
    xi = x.copy()
    loss2, g2 = lk.mse_loss(xi, y, return_grad=True, grad_out=xi)
    assert g2 is xi and np.array_equal(xi, g) and loss2 == loss


# ------------------------------------------------------------ pointwise dtypes

# Every pointwise loss, with data of a valid kind: (name, input kind, target
# kind, keywords); "w" / "pw" are float64 weights made by _dtype_case.
DTYPE_LOSSES = [
    ("mse_loss", "real", "real", {}),
    ("rmse_loss", "real", "real", {}),
    ("l1_loss", "real", "real", {}),
    ("huber_loss", "real", "real", {"delta": 0.7}),
    ("smooth_l1_loss", "real", "real", {"beta": 0.5}),
    ("binary_cross_entropy", "prob", "prob", {}),
    ("binary_cross_entropy", "prob", "prob", {"weight": "w"}),
    ("binary_cross_entropy_with_logits", "real", "prob", {}),
    ("binary_cross_entropy_with_logits", "real", "prob", {"weight": "w", "pos_weight": "pw"}),
    ("kl_div", "logp", "prob", {}),
    ("kl_div", "real", "real", {"log_target": True}),
    ("sigmoid_focal_loss", "real", "prob", {}),
    ("sigmoid_focal_loss", "real", "prob", {"alpha": -1.0, "gamma": 1.5}),
]


def _dtype_case(inp, tgt, kw, shape=(7, 5), seed=21):
    """Float64 input and the three targets of the dtype tests: float64 values
    that float32 cannot hold, int64, and a list of Python ints."""
    r = rng(seed)
    if inp == "prob":
        x = r.uniform(0.01, 0.99, shape)
    elif inp == "logp":
        x = np.log(r.dirichlet(np.ones(shape[-1]), shape[0]))
    else:
        x = r.standard_normal(shape) * 2
    yf = r.uniform(0, 1, shape) if tgt == "prob" else r.standard_normal(shape)
    yi = r.integers(0, 2, shape) if tgt == "prob" else r.integers(-3, 4, shape)
    kw = dict(kw)
    for k, lo, hi in (("weight", 0.5, 2.0), ("pos_weight", 0.5, 3.0)):
        if k in kw:
            kw[k] = r.uniform(lo, hi, shape[-1])  # float64
    return x, {"float64": yf, "int64": yi, "list": yi.tolist()}, kw


def _all_outputs(fn, x, y, kw):
    """Loss ('mean', 'sum', per element) and gradient ('mean') as bytes, with
    their dtypes."""
    out = []
    for red in ("mean", "sum", "none"):
        loss, g = fn(x, y, reduction=red, return_grad=True, **kw)
        loss = np.asarray(loss)
        out += [(loss.dtype, loss.tobytes()), (g.dtype, g.tobytes())]
    return out


@pytest.mark.parametrize("name,inp,tgt,kw", DTYPE_LOSSES)
@pytest.mark.parametrize("kind", ["float64", "int64", "list"])
def test_pointwise_losses_keep_float32_input_dtype_with_any_target(name, inp, tgt, kw, kind):
    # The loss and gradient take the input's dtype, as cross_entropy's do: the
    # target (and float64 weight / pos_weight) is cast to float32 first, so
    # the results are bit-identical to those with the target pre-cast.
    x64, targets, kw = _dtype_case(inp, tgt, kw)
    x = x64.astype(np.float32)
    y = targets[kind]
    fn = getattr(lk, name)
    got = _all_outputs(fn, x, y, kw)
    assert all(dt == np.float32 for dt, _ in got)
    assert got == _all_outputs(fn, x, np.asarray(y).astype(np.float32), kw)
    # In place: grad_out is the input itself (it raised a TypeError when the
    # result was promoted to float64).
    loss, g = fn(x, y, return_grad=True, **kw)
    xi = x.copy()
    loss2, g2 = fn(xi, y, return_grad=True, grad_out=xi, **kw)
    assert g2 is xi and xi.tobytes() == g.tobytes()
    assert np.asarray(loss2).dtype == np.float32 and loss2 == loss


@pytest.mark.parametrize("name,inp,tgt,kw", DTYPE_LOSSES)
@pytest.mark.parametrize("kind", ["float32", "int64", "list"])
def test_pointwise_losses_keep_float64_input_dtype(name, inp, tgt, kw, kind):
    x, targets, kw = _dtype_case(inp, tgt, kw, seed=22)
    y = targets["float64"].astype(np.float32) if kind == "float32" else targets[kind]
    kw = {k: v.astype(np.float32) if isinstance(v, np.ndarray) else v for k, v in kw.items()}
    fn = getattr(lk, name)
    got = _all_outputs(fn, x, y, kw)
    assert all(dt == np.float64 for dt, _ in got)
    assert got == _all_outputs(fn, x, np.asarray(y).astype(np.float64), kw)
    xi = x.copy()
    _, g = fn(x, y, return_grad=True, **kw)
    _, g2 = fn(xi, y, return_grad=True, grad_out=xi, **kw)
    assert g2 is xi and xi.tobytes() == g.tobytes()


@pytest.mark.parametrize("name,inp,tgt,kw", DTYPE_LOSSES)
def test_pointwise_losses_float16_and_integer_inputs_set_the_dtype(name, inp, tgt, kw):
    # float16 input is computed in float32 (the target cast to float32) and
    # returned as float16, whatever the target's dtype; integer input is
    # promoted as np.exp would promote it, then the target is cast to that.
    x64, targets, kw = _dtype_case(inp, tgt, kw, seed=23)
    fn = getattr(lk, name)
    x16 = x64.astype(np.float16)
    for y in (targets["float64"], targets["int64"], targets["float64"].astype(np.float16)):
        got = _all_outputs(fn, x16, y, kw)
        assert all(dt == np.float16 for dt, _ in got)
        assert got == _all_outputs(fn, x16, np.asarray(y).astype(np.float32), kw)
    if inp == "prob":
        return  # binary_cross_entropy's probabilities are not integers
    # Integers of either size hold these values exactly in the reference's
    # dtype (int8 promotes to float16, int64 to float64).
    xi = np.round(x64).astype(np.int64)
    for xint, ref in ((xi, xi.astype(np.float64)), (xi.astype(np.int8), xi.astype(np.float16))):
        for y in (targets["float64"].astype(np.float32), targets["int64"]):
            got = _all_outputs(fn, xint, y, kw)
            assert all(dt == ref.dtype for dt, _ in got)
            ycast = np.asarray(y).astype(np.float32 if ref.dtype == np.float16 else ref.dtype)
            assert got == _all_outputs(fn, ref, ycast, kw)


# ------------------------------------------------------------ properties

logits_st = hnp.arrays(
    np.float64,
    hnp.array_shapes(min_dims=2, max_dims=2, min_side=1, max_side=12),
    elements=st.floats(-50, 50),
)


@settings(max_examples=60, deadline=None)
@given(x=logits_st, data=st.data())
def test_property_cross_entropy_nonnegative_equals_nll_of_log_softmax_grad_rows_sum_zero(x, data):
    n, c = x.shape
    t = np.array(data.draw(st.lists(st.integers(0, c - 1), min_size=n, max_size=n)))
    ls = data.draw(st.sampled_from([0.0, 0.1, 1.0]))
    loss, g = lk.cross_entropy(x, t, reduction="none", label_smoothing=ls, return_grad=True)
    assert np.all(loss >= 0)
    if ls == 0.0:
        np.testing.assert_allclose(
            loss, lk.nll_loss(lk.log_softmax(x), t, reduction="none"), rtol=1e-12, atol=1e-12
        )
    np.testing.assert_allclose(g.sum(-1), 0.0, atol=1e-12)
    for dtype in (np.float32,):
        l32 = lk.cross_entropy(x.astype(dtype), t)
        assert l32 >= 0


# ------------------------------------------------------------ bad input


def test_bad_class_index_names_target_and_position():
    x = np.zeros((5, 10), np.float32)
    with pytest.raises(ValueError, match=r"target\[3\] = 12 is not a class index for 10 classes"):
        lk.cross_entropy(x, [0, 1, 2, 12, 4])
    with pytest.raises(ValueError, match=r"target\[1\] = -3 is not a class index"):
        lk.cross_entropy(x, [0, -3, 2, 1, 4])
    with pytest.raises(ValueError, match=r"target\[1, 0\] = 10"):
        lk.cross_entropy(np.zeros((2, 2, 10)), [[0, 1], [10, 1]])
    with pytest.raises(ValueError, match=r"target\[0\] = 7 is not a class index for 5"):
        lk.nll_loss(np.zeros((1, 5)), [7])


def test_bad_target_types_and_shapes():
    x = np.zeros((4, 3))
    with pytest.raises(TypeError, match="target has floating dtype"):
        lk.cross_entropy(x, np.zeros(4))
    with pytest.raises(TypeError, match="class probabilities must be floating point"):
        lk.cross_entropy(x, np.zeros((4, 3), int))
    with pytest.raises(ValueError, match=r"target has shape \(5,\)"):
        lk.cross_entropy(x, np.zeros(5, int))
    with pytest.raises(TypeError, match="target has floating dtype"):
        lk.nll_loss(x, np.zeros((4, 3)))
    with pytest.raises(TypeError, match="target must hold integer class indices"):
        lk.cross_entropy(x, np.zeros(4, bool))
    with pytest.raises(
        ValueError, match=r"target has shape \(4, 2\), but input has shape \(4, 3\)"
    ):
        lk.mse_loss(x, np.zeros((4, 2)))
    with pytest.raises(ValueError, match="must have a class axis"):
        lk.cross_entropy(1.0, 0)
    with pytest.raises(TypeError, match="target could not be converted to an array"):
        lk.cross_entropy([[1.0, 2.0]], [[0], [1, 2]])  # ragged
    # A bool is an int to Python, not an axis or a class index (as NumPy).
    with pytest.raises(TypeError, match="axis must be an int, got bool"):
        lk.cross_entropy(x, np.zeros(4, int), axis=True)
    with pytest.raises(TypeError, match="ignore_index must be an integer, got bool"):
        lk.nll_loss(x, np.zeros(4, int), ignore_index=True)
    # No class to ignore among probabilities (as PyTorch; negative values pass).
    with pytest.raises(ValueError, match="ignore_index = 0 applies to class-index targets"):
        lk.cross_entropy(x, np.full((4, 3), 1 / 3), ignore_index=0)
    assert lk.cross_entropy(x, np.full((4, 3), 1 / 3), ignore_index=-1) == pytest.approx(
        np.log(3), rel=1e-15
    )


def test_bad_weight_smoothing_reduction_nan_probs():
    x = np.zeros((4, 3))
    t = [0, 1, 2, 0]
    with pytest.raises(ValueError, match=r"weight has shape \(2,\), but logits has 3 classes"):
        lk.cross_entropy(x, t, weight=[1.0, 2.0])
    with pytest.raises(ValueError, match=r"weight\[1\] = -1.0 is not a non-negative weight"):
        lk.cross_entropy(x, t, weight=[1.0, -1.0, 1.0])
    for bad in (-0.1, 1.5, float("nan")):
        with pytest.raises(ValueError, match="label_smoothing must be in"):
            lk.cross_entropy(x, t, label_smoothing=bad)
    with pytest.raises(ValueError, match="reduction must be 'mean', 'sum' or 'none', got 'avg'"):
        lk.cross_entropy(x, t, reduction="avg")
    with pytest.raises(ValueError, match="reduction must be"):
        lk.mse_loss(x, x, reduction="batchmean")
    y = np.full((4, 3), 1 / 3)
    y[2, 1] = np.nan
    with pytest.raises(ValueError, match=r"target\[2, 1\] is NaN"):
        lk.cross_entropy(x, y)
    with pytest.raises(ValueError, match=r"target\[1, 2\] is NaN"):
        lk.cross_entropy(x.T, y.T, axis=0)
    with pytest.raises(ValueError, match=r"probs\[1\] = 1.5 is not a probability"):
        lk.binary_cross_entropy([0.5, 1.5], [0.0, 1.0])
    with pytest.raises(ValueError, match="delta must be positive"):
        lk.huber_loss(x, x, delta=0.0)
    with pytest.raises(ValueError, match="weight has shape"):
        lk.binary_cross_entropy_with_logits(x, x, weight=np.ones(5))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_bad_input_positions_past_the_first_scan_chunk(dtype):
    # The checks scan chunks of 4096 elements; a bad element in a later
    # chunk, or the last one, is still reported at its own position.
    rows, n = 3000, 5
    x = np.zeros((rows, n), dtype)
    for r, c in [(2000, 3), (rows - 1, n - 1), (819, 1)]:
        y = np.full((rows, n), 1 / n, dtype)
        y[r, c] = np.nan
        with pytest.raises(ValueError, match=rf"target\[{r}, {c}\] is NaN"):
            lk.cross_entropy(x, y)
        p = np.full(rows * n, 0.5, dtype)
        p[r * n + c] = 1.5
        with pytest.raises(ValueError, match=rf"probs\[{r * n + c}\] = 1.5 is not a probability"):
            lk.binary_cross_entropy(p, np.zeros_like(p))
        t = np.zeros(rows * 2, np.int64)
        t[r * 2 + 1] = n
        with pytest.raises(ValueError, match=rf"target\[{r * 2 + 1}\] = {n} is not a class index"):
            lk.cross_entropy(np.zeros((rows * 2, n), dtype), t)
    w = np.ones(5000, dtype)
    w[4999] = -2.0
    with pytest.raises(ValueError, match=r"weight\[4999\] = -2.0 is not a non-negative weight"):
        lk.cross_entropy(np.zeros((2, 5000), dtype), [0, 1], weight=w)


def thread_counts(counts=(1, 2, 8)):
    """Sets each thread count in turn, yielding it; the caller's count is
    restored when the loop ends (or fails)."""
    before = lk.get_num_threads()
    try:
        for k in counts:
            lk.set_num_threads(k)
            yield k
    finally:
        lk.set_num_threads(before)


def test_class_index_checks_over_many_tasks_report_the_first_bad_index():
    # Above 32 Ki targets the checks and the mean's normaliser run over
    # fixed tasks in parallel: the first bad index overall is reported (not
    # the first a thread finds), wherever it is and whatever the threads.
    rows, n = 100_000, 7
    x = np.zeros((rows, n), np.float32)
    for _ in thread_counts():
        for bad in ([(70_000, 7), (90_000, 9)], [(99_999, -5)], [(40_000, -1), (33_000, 8)]):
            t = np.zeros(rows, np.int64)
            for pos, v in bad:
                t[pos] = v
            pos, v = min(bad)
            msg = rf"target\[{pos}\] = {v} is not a class index"
            with pytest.raises(ValueError, match=msg):
                lk.cross_entropy(x, t)
            with pytest.raises(ValueError, match=msg):
                lk.nll_loss(x, t)


def test_value_checks_over_many_tasks_report_the_first_bad_value():
    # NaN in probability targets, and probabilities outside [0, 1] for
    # binary_cross_entropy (input and target), are checked over fixed tasks
    # in parallel above 32 Ki elements: the first bad value overall is
    # reported, at any thread count.
    rows, n = 20_000, 10
    x = np.zeros((rows, n), np.float32)
    for _ in thread_counts():
        for bad in ([(15_000, 3), (19_999, 9)], [(4_000, 0), (3_999, 7)], [(19_999, 9)]):
            y = np.full((rows, n), 1 / n, np.float32)
            p = np.full(rows * n, 0.5, np.float32)
            for r, c in bad:
                y[r, c] = np.nan
                p[r * n + c] = 1.5
            r, c = min(bad)
            with pytest.raises(ValueError, match=rf"target\[{r}, {c}\] is NaN"):
                lk.cross_entropy(x, y)
            msg = rf"probs\[{r * n + c}\] = 1.5 is not a probability"
            with pytest.raises(ValueError, match=msg):
                lk.binary_cross_entropy(p, np.zeros_like(p))
            msg = rf"target\[{r * n + c}\] = 1.5 is not a probability"
            with pytest.raises(ValueError, match=msg):
                lk.binary_cross_entropy(np.zeros_like(p), p)


def test_weighted_mean_over_many_tasks_matches_float64_and_any_thread_count():
    # The weighted mean's normaliser over 100 000 targets, summed per task
    # and the tasks in order: the float64 reference's value, and the same
    # bits for 1, 2 and 8 threads (ignored rows in several tasks).
    r = rng(91)
    rows, n = 100_000, 10
    x = (r.standard_normal((rows, n)) * 4).astype(np.float32)
    t = r.integers(0, n, rows)
    t[::997] = -100
    w = r.uniform(0.1, 3.0, n).astype(np.float32)
    x64 = x.astype(np.float64)
    lse = np.log(np.exp(x64 - x64.max(1, keepdims=True)).sum(1)) + x64.max(1)
    keep = t != -100
    wt = w.astype(np.float64)[t[keep]]
    ref = float((wt * (lse[keep] - x64[keep, t[keep]])).sum() / wt.sum())
    res = []
    for _ in thread_counts():
        loss, g = lk.cross_entropy(x, t, weight=w, return_grad=True)
        res.append((np.asarray(loss).tobytes(), g.tobytes()))
        assert abs(float(loss) - ref) <= 2e-6 * abs(ref)
    assert res[0] == res[1] == res[2]


def test_bad_grad_out():
    x = np.zeros((4, 3), np.float32)
    t = [0, 1, 2, 0]
    with pytest.raises(ValueError, match=r"grad_out has shape \(3, 4\)"):
        lk.cross_entropy(x, t, return_grad=True, grad_out=np.zeros((3, 4), np.float32))
    with pytest.raises(TypeError, match="grad_out has dtype"):
        lk.cross_entropy(x, t, return_grad=True, grad_out=np.zeros((4, 3)))
    with pytest.raises(TypeError, match="grad_out must be a numpy.ndarray"):
        lk.mse_loss(x, x, return_grad=True, grad_out=[[0.0] * 3] * 4)
    ro = np.zeros((4, 3), np.float32)
    ro.setflags(write=False)
    with pytest.raises(ValueError, match="grad_out is read-only"):
        lk.mse_loss(x, x, return_grad=True, grad_out=ro)
    with pytest.raises(ValueError, match="grad_out is given but return_grad is False"):
        lk.cross_entropy(x, t, grad_out=np.zeros_like(x))


# ------------------------------------------------------------ threads


@pytest.mark.parametrize(
    "call",
    [
        lambda x, t, y: lk.cross_entropy(x, t, return_grad=True),
        lambda x, t, y: lk.cross_entropy(
            x, t, label_smoothing=0.1, reduction="sum", return_grad=True
        ),
        lambda x, t, y: lk.cross_entropy(x, y, return_grad=True),
        lambda x, t, y: lk.cross_entropy(x, y, label_smoothing=0.2, return_grad=True),
        lambda x, t, y: lk.nll_loss(x, t, return_grad=True),
        lambda x, t, y: lk.mse_loss(x, y, return_grad=True),
        lambda x, t, y: lk.rmse_loss(x, y, return_grad=True),
        lambda x, t, y: lk.binary_cross_entropy_with_logits(x, y, return_grad=True),
    ],
)
@pytest.mark.parametrize("rows,n", [(3000, 97), (20000, 10)])
def test_results_bit_identical_for_1_2_8_threads(call, rows, n):
    # Rows of 97 classes take the row kernels, rows of 10 the short-row ones.
    r = rng(11)
    x = (r.standard_normal((rows, n)) * 5).astype(np.float32)
    t = r.integers(0, n, rows)
    y = r.dirichlet(np.ones(n), rows).astype(np.float32)
    before = lk.get_num_threads()
    try:
        res = []
        for n in (1, 2, 8):
            lk.set_num_threads(n)
            loss, g = call(x, t, y)
            res.append((np.asarray(loss).tobytes(), g.tobytes()))
        assert res[0] == res[1] == res[2]
    finally:
        lk.set_num_threads(before)


@pytest.mark.parametrize("dtype,tol", [(np.float64, 1e-13), (np.float32, 2e-6)])
@pytest.mark.parametrize("n", [1, 2, 5, 10, 16, 17, 40, 63, 64, 100])
def test_cross_entropy_smoothing_and_probabilities_on_short_and_long_rows(dtype, tol, n):
    # Label smoothing and probability targets: rows shorter than 64 classes
    # (float32; 16 for float64) go 16 at a time through the column path,
    # longer ones through the row kernels. Both against the float64
    # definition, with weights, ignored rows, every reduction, and in place.
    r = rng(60 + n)
    x = (r.standard_normal((45, n)) * 8).astype(dtype)
    t = r.integers(0, n, 45)
    t[[3, 20]] = -100
    y = r.dirichlet(np.ones(n), 45).astype(dtype)
    y[5] = 0
    y[5, -1] = 1  # a one-hot row: zeros in the target
    w = r.uniform(0.2, 2.0, n).astype(dtype)
    cases = [(t, ls) for ls in (0.1, 0.4)] + [(y, ls) for ls in (0.0, 0.1)]
    for target, ls in cases:
        for weight in (None, w):
            for reduction in RED:
                kw = dict(weight=weight, label_smoothing=ls, reduction=reduction)
                loss, g = lk.cross_entropy(x, target, return_grad=True, **kw)
                want, gw = ref_ce(x, target, weight=weight, ls=ls, reduction=reduction)
                # A row loss near 0 (row 5, one-hot) is lse - x_t in the
                # reference, which holds it only to ~1e-16 * |x|.
                atol = 4e-16 * np.abs(x).max() if reduction == "none" else 0
                np.testing.assert_allclose(loss, want, rtol=tol, atol=atol)
                np.testing.assert_allclose(g, gw, rtol=tol, atol=tol * np.abs(gw).max())
                plain = lk.cross_entropy(x, target, **kw)
                np.testing.assert_allclose(plain, want, rtol=tol, atol=atol)
                xi = x.copy()
                loss_i, gi = lk.cross_entropy(xi, target, return_grad=True, grad_out=xi, **kw)
                assert gi is xi
                np.testing.assert_array_equal(gi, g)
                np.testing.assert_array_equal(loss_i, loss)


def test_cross_entropy_smoothing_short_rows_edge_values():
    # The column path with -inf logits (finite loss where no target mass
    # sits on them, +inf where smoothing puts some), a -inf target logit
    # (+inf loss, finite gradient), a NaN (its row's loss and gradient NaN,
    # the other rows untouched) and a fully ignored batch (mean 0).
    x = np.array([[0.0, -np.inf, 2.0], [1.0, 2.0, 3.0], [-np.inf, 0.0, 1.0], [np.nan, 0, 1]])
    y = np.array([[0.5, 0.0, 0.5], [0.2, 0.3, 0.5], [0.0, 0.5, 0.5], [0.2, 0.3, 0.5]])
    for dtype in (np.float32, np.float64):
        xd, yd = x.astype(dtype), y.astype(dtype)
        loss, g = lk.cross_entropy(xd, yd, reduction="none", return_grad=True)
        want, gw = ref_ce(xd[:3], yd[:3], reduction="none")
        np.testing.assert_allclose(loss[:3], want, rtol=2e-6)
        np.testing.assert_allclose(g[:3], gw, rtol=2e-6, atol=1e-7)
        assert np.isnan(loss[3]) and np.isnan(g[3]).all()
        loss, g = lk.cross_entropy(
            xd[:3], np.array([2, 1, 0]), label_smoothing=0.1, reduction="none", return_grad=True
        )
        assert loss[0] == np.inf and loss[2] == np.inf and np.isfinite(loss[1])
        assert np.isfinite(g).all()
        loss, g = lk.cross_entropy(
            xd[1:3], np.array([-100, -100]), label_smoothing=0.1, return_grad=True
        )
        assert loss == 0 and not g.any()


def test_cross_entropy_probability_gradient_keeps_a_small_term_next_to_the_max():
    # Two classes, p = 1 - 2.5e-9 at the target's 1.0: the gradient p a - w y
    # cancels to 5.1e-10. With the exps summed in float32 pairs the small
    # term was lost next to the max's, and the gradient came out 8x too
    # large, of the wrong sign.
    x = np.array([[-20.394087, -0.6064146]], np.float32)
    y = np.array([[2.5791436e-09, 1.0]], np.float32)
    w = np.array([1.5865387, 1.8066226], np.float32)
    _, g = lk.cross_entropy(x, y, weight=w, reduction="sum", return_grad=True)
    _, gw = ref_ce(x, y, weight=w, reduction="sum")
    assert abs(gw[0, 0]) == pytest.approx(5.1267e-10, rel=1e-4)
    np.testing.assert_allclose(g, gw, rtol=2e-6)


@pytest.mark.parametrize("n", [7, 40, 63, 64])
def test_cross_entropy_short_rows_in_place_matches_reference(n):
    # float32 rows shorter than 64 classes go 16 at a time through the column kernel
    r = rng(12)
    x = (r.standard_normal((1003, n)) * 6).astype(np.float32)
    t = r.integers(0, n, 1003)
    t[::17] = -100
    w = r.uniform(0.1, 2.0, n).astype(np.float32)
    want, gw = ref_ce(x, t, weight=w)
    xi = x.copy()
    loss, g = lk.cross_entropy(xi, t, weight=w, return_grad=True, grad_out=xi)
    assert g is xi
    np.testing.assert_allclose(loss, want, rtol=2e-6)
    np.testing.assert_allclose(g, gw, rtol=2e-6, atol=2e-6 * np.abs(gw).max())
    rows, _ = ref_ce(x, t, weight=w, reduction="none")
    np.testing.assert_allclose(lk.cross_entropy(x, t, weight=w, reduction="none"), rows, rtol=2e-6)


@pytest.mark.parametrize("n", [10, 100])
@pytest.mark.parametrize("reduction", ["sum", "mean"])
def test_cross_entropy_tiny_class_weight_keeps_gradient_precision(n, reduction):
    # A class weight of 1e-20 makes those rows' gradient factor tiny; the
    # kernels' internal scaling must not push it into the subnormal range.
    x = (rng(21).standard_normal((64, n)) * 3).astype(np.float32)
    t = rng(22).integers(0, n, 64)
    t[:8] = 0
    w = np.ones(n, np.float32)
    w[0] = 1e-20
    loss, g = lk.cross_entropy(x, t, weight=w, reduction=reduction, return_grad=True)
    want_loss, want_g = ref_ce(x, t, weight=w, reduction=reduction)
    assert abs(loss / want_loss - 1) < 2e-6
    rel = np.abs(g - want_g) / np.abs(want_g)
    assert rel.max() < 2e-6, rel.max()


def ref_ce_confident(x, t):
    """Per-row loss and gradient in float64 written for rows whose target
    dominates: loss = log1p(sum_{k != t} exp(x_k - x_t)) (no cancellation,
    unlike lse - x_t) and the target's gradient -sum_{k != t} p_k."""
    x = x.astype(np.float64)
    r = np.arange(len(x))
    d = x - x[r, t][:, None]
    md = d.max(1)
    with np.errstate(over="ignore"):
        e = np.exp(d)
    e[r, t] = 0
    lse_d = md + np.log(np.exp(d - md[:, None]).sum(1))
    loss = np.where(md <= 0, np.log1p(np.where(md <= 0, e.sum(1), 0)), lse_d)
    lse = x.max(1) + np.log(np.exp(x - x.max(1, keepdims=True)).sum(1))
    p = np.exp(x - lse[:, None])
    q = p.copy()
    q[r, t] = 0
    g = p.copy()
    g[r, t] = -q.sum(1)
    return loss, g


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("n", [3, 10, 31, 40, 1000])
def test_cross_entropy_confident_rows_keep_relative_precision(dtype, n):
    # Rows whose target wins by 0..25: per-row losses down to ~1e-11 and
    # target gradients as small. lse - x_t loses them to cancellation (it
    # did here for rows of 32+ classes: 8e-5 relative error in f32).
    m = 600
    x = np.full((m, n), -5.0)
    t = rng(31).integers(0, n, m)
    x[np.arange(m), t] = np.linspace(0, 25, m)
    x[: m // 2] += rng(32).standard_normal((m // 2, n))
    x = x.astype(dtype)
    tol = 2e-6 if dtype == np.float32 else 1e-13
    tiny = np.finfo(dtype).tiny
    want_l, want_g = ref_ce_confident(x, t)
    loss, g = lk.cross_entropy(x, t, reduction="none", return_grad=True)
    plain = lk.cross_entropy(x, t, reduction="none")
    for got in (loss, plain):
        assert np.all(np.abs(got - want_l) <= tol * np.abs(want_l) + tiny)
    assert np.all(np.abs(g - want_g) <= tol * np.abs(want_g) + tiny)


def test_bce_with_logits_soft_targets_float32_per_element():
    # Soft targets: the gradient sigmoid(x) - y in f64 (it cancels where
    # sigmoid(x) is near y; as (1 - y) sigmoid(x) - y sigmoid(-x)), the
    # loss's log1p(exp(-|x|)) in float32 (for targets in [0, 1] the loss is
    # a sum of terms >= 0). Each element of
    # both against float64, over logits from 0.01 to 100 and targets near
    # sigmoid(x) as well as uniform ones.
    r = rng(43)
    x = np.concatenate([r.standard_normal(20000) * s for s in (0.01, 1, 10, 100)])
    xd0 = x.astype(np.float32).astype(np.float64)
    near = (1 / (1 + np.exp(-xd0))) * (1 + r.uniform(-1e-4, 1e-4, x.shape))
    for y in (r.uniform(0, 1, x.shape), np.clip(near, 0, 1)):
        x32, y32 = x.astype(np.float32), y.astype(np.float32)
        loss, g = lk.binary_cross_entropy_with_logits(x32, y32, reduction="none", return_grad=True)
        xd, yd = x32.astype(np.float64), y32.astype(np.float64)
        want_l = np.maximum(xd, 0) - xd * yd + np.log1p(np.exp(-np.abs(xd)))
        # sigmoid(x) - y as (1 - y) sigmoid(x) - y sigmoid(-x) in long
        # double: for y = 1 at x = 36.7 the plain difference is 0 in float64,
        # the true value -1.1e-16.
        xl, yl = xd.astype(np.longdouble), yd.astype(np.longdouble)
        p, q = 1 / (1 + np.exp(-xl)), 1 / (1 + np.exp(xl))
        want_g = ((1 - yl) * p - yl * q).astype(np.float64)
        tiny = np.finfo(np.float32).tiny
        # 2.1e-7 measured for the loss; the gradient rounds once to float32
        # from an f64 value whose terms p and y carry f64's rounding (where
        # they cancel to 1e-9 of their size, as at x = -35.3, that is 1e-7
        # of the result).
        assert np.all(np.abs(loss - want_l) <= 4e-7 * np.abs(want_l) + tiny)
        terms = np.maximum(np.abs(p.astype(np.float64)), yd)
        assert np.all(np.abs(g - want_g) <= 6e-8 * np.abs(want_g) + 2.3e-16 * terms + tiny)
        total = lk.binary_cross_entropy_with_logits(x32, y32, reduction="sum")
        assert abs(total - want_l.sum()) <= 1e-7 * want_l.sum()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_bce_with_logits_hard_labels_match_float64_reference(dtype):
    # Targets that are all 0 or 1 take a path computed in the input's dtype
    # (z = +-x: max(z, 0) + log1p(exp(-|x|)), gradient +-sigmoid(z)); mixed
    # with a soft target in the same lane array, the f64 path.
    x = np.concatenate(
        [rng(41).standard_normal(4000) * s for s in (0.01, 1, 10, 100)]
        + [np.array([0.0, -0.0, np.inf, -np.inf, 88, -88, 104, -104, 200, -200])]
    ).astype(dtype)
    for soft_at in (None, 7):
        y = (rng(42).random(x.shape) < 0.5).astype(dtype)
        if soft_at is not None:
            y[soft_at] = 0.25
        loss, g = lk.binary_cross_entropy_with_logits(x, y, reduction="none", return_grad=True)
        xd, yd = x.astype(np.float64), y.astype(np.float64)
        with np.errstate(all="ignore"):
            want_l = np.maximum(xd, 0) - xd * yd + np.log1p(np.exp(-np.abs(xd)))

            def sig(v):
                return np.where(v >= 0, 1 / (1 + np.exp(-v)), np.exp(v) / (1 + np.exp(v)))

            want_g = np.where(yd == 1, -sig(-xd), np.where(yd == 0, sig(xd), sig(xd) - yd))
        tol = 4e-6 if dtype == np.float32 else 1e-14
        tiny = np.finfo(dtype).tiny
        assert np.array_equal(np.isinf(loss), np.isinf(want_l))
        ok = np.isfinite(want_l)
        assert np.all(np.abs(loss[ok] - want_l[ok]) <= tol * np.abs(want_l[ok]) + tiny)
        assert np.all(np.abs(g - want_g) <= tol * np.abs(want_g) + tiny)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_label_smoothing_gradient_is_finite_when_the_target_logit_is_minus_inf(dtype):
    eps, n = 0.1, 3
    x = np.array([[-np.inf, 0.0, 1.0]], dtype)
    loss, g = lk.cross_entropy(x, np.array([0]), label_smoothing=eps, return_grad=True)
    assert loss == np.inf
    p = np.array([0.0, 1.0, np.e]) / (1.0 + np.e)
    want = p - (eps / n + (1 - eps) * np.array([1.0, 0.0, 0.0]))
    np.testing.assert_allclose(g[0], want, rtol=2e-6)
    # x_t - max overflows (f32: -1.8e38 - 1.8e38): p_t is 0 all the same.
    big = np.float32(1.8e38) if dtype == np.float32 else 1.7e308
    loss, g = lk.cross_entropy(
        np.array([[-big, big]], dtype), np.array([0]), label_smoothing=0.5, return_grad=True
    )
    np.testing.assert_allclose(g[0], [-0.75, 0.75], rtol=1e-6)


def test_bce_with_logits_soft_targets_at_infinite_logits_give_the_limits():
    x = np.array([np.inf, -np.inf, np.inf, -np.inf])
    y = np.array([0.25, 0.75, 1.0, 0.0])
    loss, g = lk.binary_cross_entropy_with_logits(x, y, reduction="none", return_grad=True)
    np.testing.assert_array_equal(loss, [np.inf, np.inf, 0.0, 0.0])
    np.testing.assert_array_equal(g, [0.75, -0.75, 0.0, 0.0])
    lw = lk.binary_cross_entropy_with_logits(
        x[:2], y[:2], pos_weight=np.array([2.0]), reduction="none"
    )
    np.testing.assert_array_equal(lw, [np.inf, np.inf])


def test_ignore_index_and_uint64_targets_out_of_int64_range_are_value_errors():
    x = np.zeros((2, 3))
    for bad in (2**63, -(2**70)):
        with pytest.raises(ValueError, match="ignore_index = .* does not fit in a 64-bit integer"):
            lk.cross_entropy(x, [0, 1], ignore_index=bad)
        with pytest.raises(ValueError, match="ignore_index"):
            lk.nll_loss(x, [0, 1], ignore_index=bad)
    with pytest.raises(TypeError, match="ignore_index must be an integer"):
        lk.cross_entropy(x, [0, 1], ignore_index=1.5)
    with pytest.raises(
        ValueError, match=r"target\[1\] = 18446744073709551615 is not a class index"
    ):
        lk.cross_entropy(x, np.array([0, 2**64 - 1], np.uint64), ignore_index=-1)
    assert lk.cross_entropy(x, np.array([0, 1], np.uint64)) == pytest.approx(np.log(3))


def test_binary_cross_entropy_rejects_targets_outside_0_1():
    with pytest.raises(ValueError, match=r"target\[1\] = 3.0 is not a probability in \[0, 1\]"):
        lk.binary_cross_entropy(np.array([0.5, 0.5]), np.array([0.0, 3.0]))


def test_kl_div_propagates_nan_input_and_rejects_negative_targets_as_nan():
    x = np.array([-1.0, np.nan, np.nan, -np.inf, 0.3])
    y = np.array([-0.5, 0.0, 0.5, 0.0, 0.0])
    loss = lk.kl_div(x, y, reduction="none")
    # NaN input and a negative target give NaN; a zero target gives 0 even
    # at a -inf input (documented; PyTorch gives NaN there).
    assert np.isnan(loss[:3]).all()
    np.testing.assert_array_equal(loss[3:], 0.0)
    lt = lk.kl_div(
        np.array([np.nan, 1.0]), np.array([-np.inf, -np.inf]), log_target=True, reduction="none"
    )
    assert np.isnan(lt[0]) and lt[1] == 0.0


@pytest.mark.parametrize("gamma", [0.0, 1.0, 1.5, 2.0])
def test_sigmoid_focal_loss_at_infinite_logits_is_the_finite_limit(gamma):
    y = np.array([1.0, 0.0, 0.0, 1.0])
    inf = np.array([np.inf, -np.inf, np.inf, -np.inf])
    loss, g = lk.sigmoid_focal_loss(inf, y, gamma=gamma, reduction="none", return_grad=True)
    np.testing.assert_array_equal(loss, [0.0, 0.0, np.inf, np.inf])
    _, g_big = lk.sigmoid_focal_loss(
        np.sign(inf) * 1e300, y, gamma=gamma, reduction="none", return_grad=True
    )
    np.testing.assert_allclose(g, g_big, rtol=1e-12, atol=0)
    np.testing.assert_allclose(g, [0.0, 0.0, 0.75, -0.25], rtol=1e-12)


# ------------------------------------------------------------ focal loss accuracy


def ref_focal_mp(x, y, alpha, gamma):
    """Focal loss and its derivative at one element, in mpmath at 80 digits,
    straight from the definition (1 - p_t with p_t = p y + (1 - p)(1 - y),
    log(1 - p)): the cancellations that cost a float64 evaluation its digits
    leave 40 here."""
    with mp.workdps(80):
        x, y, gm = mp.mpf(x), mp.mpf(y), mp.mpf(gamma)
        p = 1 / (1 + mp.exp(-x))
        ce = -(y * mp.log(p) + (1 - y) * mp.log(1 - p))
        pt = p * y + (1 - p) * (1 - y)
        u = 1 - pt
        at = alpha * y + (1 - alpha) * (1 - y) if alpha >= 0 else mp.mpf(1)
        # d ce/dx = p - y, du/dx = -dp_t/dx = p (1 - p) (1 - 2 y).
        du = p * (1 - p) * (1 - 2 * y)
        dm = gm * u ** (gm - 1) * du if gamma != 0 else mp.mpf(0)
        g = at * ((p - y) * u**gm + ce * dm)
        # The gradient's two terms with p - y as (1 - y) p + y (1 - p) (sizes
        # without their signs): the scale a sum of them is accurate to.
        scale = at * (((1 - y) * p + y * (1 - p)) * u**gm + abs(ce * dm))
        return float(at * ce * u**gm), float(g), float(scale)


FOCAL_X = np.concatenate(
    [np.linspace(-80, 80, 641), [-35.0, -30.0, -10.0, -1e-3, 0.0, 1e-3, 10.0, 30.0, 35.0]]
)


@pytest.mark.parametrize("dtype,tol", [(np.float64, 1e-13), (np.float32, 4e-6)])
@pytest.mark.parametrize("y0", [0.0, 1.0, 0.3])
@pytest.mark.parametrize("alpha,gamma", [(0.25, 2.0), (0.25, 1.0), (-1.0, 1.5), (0.25, 0.5)])
def test_sigmoid_focal_loss_relative_accuracy_into_the_tails(dtype, tol, y0, alpha, gamma):
    # 1 - p_t and p - y were differences of numbers near 1: at x = -30 with
    # y = 0 (or +30 with y = 1) loss and gradient were 3e-4 off, 12 % at 35,
    # 2e-12 at 10. Now both are within tol relative everywhere, with an
    # absolute floor of one subnormal step where the value is subnormal in
    # the dtype (float32 loss ~ e^(3x) underflows below x = -35). For a soft
    # target the gradient's two terms have opposite signs and its zero is
    # near x = -0.9; there its error is measured against the terms' sizes.
    x = FOCAL_X.astype(dtype)
    y = np.full_like(x, y0)
    loss, g = lk.sigmoid_focal_loss(
        x, y, alpha=alpha, gamma=gamma, reduction="none", return_grad=True
    )
    assert loss.dtype == dtype and g.dtype == dtype
    ref = np.array(
        [ref_focal_mp(a, b, alpha, gamma) for a, b in zip(x.tolist(), y.tolist(), strict=True)]
    )
    want_l, want_g, scale = ref.T
    fi = np.finfo(dtype)
    for got, want, size, what in (
        (loss, want_l, np.abs(want_l), "loss"),
        (g, want_g, scale, "grad"),
    ):
        err = np.abs(got.astype(np.float64) - want)
        floor = np.where(np.abs(want) < fi.tiny, fi.smallest_subnormal, 0.0)
        bad = err > tol * np.maximum(np.abs(want), size) + floor
        assert not bad.any(), (what, x[bad][:5], got[bad][:5], want[bad][:5])
        # Where nothing cancels (away from a soft target's zero), plainly relative.
        if y0 != 0.3 or what == "loss":
            normal = np.abs(want) >= fi.tiny
            rel = err[normal] / np.abs(want[normal])
            assert rel.max() <= tol, (what, rel.max())


def ref_bce_logits_mp(x, y, pw):
    """BCE with logits (pos_weight pw) and its derivative at one element,
    mpmath at 80 digits from the definition; and the size of the gradient's
    two terms, (1 - y) p and pw y (1 - p)."""
    with mp.workdps(80):
        x, y = mp.mpf(x), mp.mpf(y)
        p = 1 / (1 + mp.exp(-x))
        loss = -(pw * y * mp.log(p) + (1 - y) * mp.log(1 - p))
        g = (1 - y) * p - pw * y * (1 - p)
        return float(loss), float(g), float((1 - y) * p + pw * y * (1 - p))


@pytest.mark.parametrize("dtype,tol", [(np.float64, 1e-13), (np.float32, 4e-6)])
@pytest.mark.parametrize("pos_weight", [None, 2.5])
def test_bce_with_logits_gradient_keeps_its_precision_in_the_tails(dtype, tol, pos_weight):
    # The gradient sigmoid(x) - y for y = 1 at x = 30 is -sigmoid(-30), and
    # 1 - sigmoid(30) was 1e-3 off whenever the f64 path ran (a soft target
    # in the same vector of 8, or pos_weight). Every element here shares its
    # vector with a soft target.
    x = np.repeat(FOCAL_X, 3).astype(dtype)
    y = np.tile(np.array([0.0, 1.0, 0.3]), len(FOCAL_X)).astype(dtype)
    kw = {} if pos_weight is None else {"pos_weight": np.asarray(pos_weight, dtype)}
    loss, g = lk.binary_cross_entropy_with_logits(x, y, reduction="none", return_grad=True, **kw)
    pw = 1.0 if pos_weight is None else pos_weight
    ref = np.array(
        [ref_bce_logits_mp(a, b, pw) for a, b in zip(x.tolist(), y.tolist(), strict=True)]
    )
    want_l, want_g, scale = ref.T
    fi = np.finfo(dtype)
    for got, want, size in ((loss, want_l, np.abs(want_l)), (g, want_g, scale)):
        err = np.abs(got.astype(np.float64) - want)
        floor = np.where(np.abs(want) < fi.tiny, fi.smallest_subnormal, 0.0)
        assert not (err > tol * np.maximum(np.abs(want), size) + floor).any()
    # Hard targets: nothing cancels, plainly relative (subnormals aside).
    hard = (y != np.float32(0.3)) & (np.abs(want_g) >= fi.tiny)
    rel = np.abs(g.astype(np.float64) - want_g)[hard] / np.abs(want_g[hard])
    assert rel.max() <= tol, rel.max()


@pytest.mark.parametrize("y0", [0.0, 1.0, 0.3])
@pytest.mark.parametrize("gamma", [2.0, 1.5])
def test_sigmoid_focal_loss_gradient_in_the_tails_matches_finite_differences(y0, gamma):
    # Per element (reduction="none": the gradient of the sum is each
    # element's derivative), relative to the derivative even where it is
    # 1e-100: the finite difference of the loss's own values, so the loss
    # and gradient agree with each other as well as with the reference.
    x = np.concatenate([np.linspace(-80, 80, 161), [-30.0, 30.0]])
    y = np.full_like(x, y0)
    h = 1e-6 * np.maximum(1.0, np.abs(x))

    def f(z):
        return lk.sigmoid_focal_loss(z, y, gamma=gamma, reduction="none")

    _, g = lk.sigmoid_focal_loss(x, y, gamma=gamma, reduction="none", return_grad=True)
    fd = (f(x + h) - f(x - h)) / (2 * h)
    # A soft target's gradient crosses 0 near x = -0.9 (and is 0.02 or more
    # in the tails): an absolute 1e-9 there.
    np.testing.assert_allclose(g, fd, rtol=1e-6, atol=1e-9 if y0 == 0.3 else 0.0)


def test_sigmoid_focal_loss_issue_values():
    # The issue's examples: 6.1455e-40 (was 6.1476e-40) at x = -30, y = 0,
    # and the mirrored x = +30, y = 1.
    for dtype in (np.float64, np.float32):
        for x0, y0 in ((-30.0, 0.0), (30.0, 1.0), (-10.0, 0.0)):
            got_l, got_g = lk.sigmoid_focal_loss(
                np.array([x0], dtype), np.array([y0], dtype), reduction="none", return_grad=True
            )
            want_l, want_g, _ = ref_focal_mp(x0, y0, 0.25, 2.0)
            tol = 1e-13 if dtype == np.float64 else 4e-6
            fi = np.finfo(dtype)
            for got, want in ((got_l[0], want_l), (got_g[0], want_g)):
                floor = fi.smallest_subnormal if abs(want) < fi.tiny else 0.0
                assert abs(float(got) - want) <= tol * abs(want) + floor
    assert lk.sigmoid_focal_loss([-30.0], [0.0], reduction="none")[0] == pytest.approx(
        6.1455e-40, rel=1e-4
    )


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_pointwise_losses_take_fortran_ordered_inputs_in_their_order(dtype):
    # Elementwise losses take Fortran-ordered inputs as they are laid out:
    # the same per-element values and gradients (bit for bit) as the
    # C-ordered copies, the gradient in Fortran order, grad_out= in place,
    # sums equal up to their order, and errors at the right position.
    r = rng(70)
    x = (r.standard_normal((300, 70)) * 3).astype(dtype)
    y = r.uniform(0, 1, x.shape).astype(dtype)
    xf, yf = np.asfortranarray(x), np.asfortranarray(y)
    calls = [
        lambda a, b, **k: lk.mse_loss(a, b, **k),
        lambda a, b, **k: lk.huber_loss(a, b, **k),
        lambda a, b, **k: lk.binary_cross_entropy_with_logits(a, b, **k),
        lambda a, b, **k: lk.binary_cross_entropy(1 / (1 + np.exp(-a)), b, **k),
        lambda a, b, **k: lk.sigmoid_focal_loss(a, (b > 0.5).astype(dtype), **k),
    ]
    for f in calls:
        lc, gc = f(x, y, reduction="none", return_grad=True)
        lf, gf = f(xf, yf, reduction="none", return_grad=True)
        assert gf.flags.f_contiguous and not gf.flags.c_contiguous
        np.testing.assert_array_equal(lf, lc)
        np.testing.assert_array_equal(gf, gc)
        sc, _ = f(x, y, reduction="sum", return_grad=True)
        sf, _ = f(xf, yf, reduction="sum", return_grad=True)
        assert sf == pytest.approx(sc, rel=1e-12)
    xi = xf.copy(order="F")
    loss, g = lk.mse_loss(xi, yf, reduction="sum", return_grad=True, grad_out=xi)
    assert g is xi
    np.testing.assert_array_equal(g, 2 * (x - y))
    # A Fortran-ordered input with a C-ordered target, and a weight.
    w = r.uniform(0.5, 2, x.shape).astype(dtype)
    lc, gc = lk.binary_cross_entropy_with_logits(x, y, weight=w, reduction="none", return_grad=True)
    lf, gf = lk.binary_cross_entropy_with_logits(
        xf, y, weight=w, reduction="none", return_grad=True
    )
    np.testing.assert_array_equal(lf, lc)
    np.testing.assert_array_equal(gf, gc)
    bad = np.asfortranarray(np.full((4, 5), 0.5, dtype))
    bad[2, 3] = 1.5
    with pytest.raises(ValueError, match=r"probs\[2, 3\] = 1.5 is not a probability"):
        lk.binary_cross_entropy(bad, np.zeros((4, 5), dtype))


def test_cross_entropy_takes_fortran_ordered_logits():
    # A Fortran-ordered 2-D input is made C-ordered by the package's own
    # transposes (not NumPy's transposing copy): the same bits as the
    # C-ordered array, for sizes around the 16-row blocks, both dtypes.
    r = rng(71)
    for shape in ((4099, 17), (100, 1000), (64, 64)):
        for dtype in (np.float32, np.float64):
            x = (r.standard_normal(shape) * 4).astype(dtype)
            t = r.integers(0, shape[1], shape[0])
            lc, gc = lk.cross_entropy(x, t, reduction="sum", return_grad=True)
            lf, gf = lk.cross_entropy(np.asfortranarray(x), t, reduction="sum", return_grad=True)
            assert lf == lc
            np.testing.assert_array_equal(gf, gc)
            y = r.dirichlet(np.ones(shape[1]), shape[0]).astype(dtype)
            lc, gc = lk.cross_entropy(x, y, return_grad=True)
            lf, gf = lk.cross_entropy(x, np.asfortranarray(y), return_grad=True)
            assert lf == lc
            np.testing.assert_array_equal(gf, gc)


def test_binary_cross_entropy_float32_per_element():
    # Float32 probabilities are computed in float32 (the loss a sum of terms
    # >= 0, the gradient's p - y of two exact inputs: nothing cancels). Each
    # element's loss and gradient against float64, over probabilities from
    # 1e-30 to 1 - 6e-8, soft and 0/1 targets, 0 and 1 themselves included.
    r = rng(44)
    p = np.concatenate(
        [10.0 ** r.uniform(-30, 0, 20000), 1 - 10.0 ** r.uniform(-7.2, 0, 20000), [0.0, 1.0, 0.5]]
    ).astype(np.float32)
    for y in (r.uniform(0, 1, p.shape), (r.uniform(0, 1, p.shape) < 0.5) * 1.0):
        p32, y32 = p, y.astype(np.float32)
        loss, g = lk.binary_cross_entropy(p32, y32, reduction="none", return_grad=True)
        pd, yd = p32.astype(np.float64), y32.astype(np.float64)
        with np.errstate(divide="ignore"):
            want_l = -(
                yd * np.maximum(np.log(pd), -100) + (1 - yd) * np.maximum(np.log1p(-pd), -100)
            )
        want_g = (pd - yd) / np.maximum((1 - pd) * pd, 1e-12)
        # 1.95e-7 and 1.67e-7 measured.
        assert np.all(np.abs(loss - want_l) <= 5e-7 * np.abs(want_l) + 1e-30)
        assert np.all(np.abs(g - want_g) <= 5e-7 * np.abs(want_g) + 1e-30)


def _mp_ce_row(x, y, w, eps):
    """Cross-entropy of one row against probabilities `y` (or a class index
    as a one-hot `y`), with weights `w` and label smoothing `eps`, and its
    gradient, in mpmath at 60 digits from the definition."""
    with mp.workdps(60):
        xs = [mp.mpf(float(v)) for v in x]
        n = len(xs)
        q = [
            mp.mpf(float(wk)) * ((1 - mp.mpf(eps)) * mp.mpf(float(yk)) + mp.mpf(eps) / n)
            for wk, yk in zip(w, y, strict=True)
        ]
        m = max(xs)
        lse = m + mp.log(mp.fsum(mp.e ** (v - m) for v in xs))
        loss = mp.fsum(qk * (lse - v) for qk, v in zip(q, xs, strict=True))
        a = mp.fsum(q)
        g = [a * mp.e ** (v - lse) - qk for qk, v in zip(q, xs, strict=True)]
        return float(loss), np.array([float(v) for v in g])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_cross_entropy_confident_rows_keep_relative_accuracy(dtype):
    # Rows whose max is far above the rest: the loss is about the others'
    # share o = sum(exp(x - max)) over the rest, and ln(1 + o) with the 1
    # in the sum lost o's low bits (a one-hot probability row 40 above the
    # rest gave 0 for 3.5e-16). Probability targets (one-hot, soft,
    # weighted, smoothed) and class indices with label smoothing, on short
    # rows (lanes), long rows, a class axis that is not the last, and one of
    # more than 2048 classes; per-row loss and the gradient at the max.
    tol = 2e-6 if dtype == np.float32 else 1e-13
    r = rng(31)
    for n in (3, 10, 100, 2100):
        rows = 6
        x = r.standard_normal((rows, n))
        gaps = np.array([10.0, 20.0, 30.0, 40.0, 50.0, 2.0])
        top = r.integers(0, n, rows)
        x[np.arange(rows), top] = gaps + 3
        x = x.astype(dtype)
        onehot = np.zeros((rows, n))
        onehot[np.arange(rows), top] = 1
        soft = onehot * 0.999 + r.random((rows, n)) * 1e-6
        w = r.uniform(0.5, 2, n)
        cases = [
            (onehot, None, 0.0),
            (soft, None, 0.0),
            (onehot, w, 0.0),
            (soft, w, 1e-9),
            (top, None, 1e-12),
            (top, w, 1e-6),
        ]
        for y, wt, eps in cases:
            kw = {"label_smoothing": eps, "reduction": "none", "return_grad": True}
            if wt is not None:
                kw["weight"] = wt.astype(dtype)
            yt = y if y.ndim == 1 else y.astype(dtype)
            ymp = onehot if y.ndim == 1 else yt
            wmp = np.ones(n) if wt is None else wt.astype(dtype)
            loss, g = lk.cross_entropy(x, yt, **kw)
            # The same rows over axis 0 of the transpose (a class axis that is
            # not the last).
            yt0 = yt if y.ndim == 1 else np.ascontiguousarray(yt.T)
            loss0, g0 = lk.cross_entropy(np.ascontiguousarray(x.T), yt0, axis=0, **kw)
            for i in range(rows):
                want, gw = _mp_ce_row(x[i], ymp[i], wmp, eps)
                for lv, gv in ((loss[i], g[i]), (loss0[i], g0[:, i])):
                    assert abs(lv - want) <= tol * want, (n, i, eps, lv, want)
                    j = top[i]
                    assert abs(gv[j] - gw[j]) <= tol * abs(gw[j]), (n, i, eps, gv[j], gw[j])

"""Activations and their gradients against independent references: mpmath at
high precision (values), central finite differences in mpmath (gradients),
PyTorch-documented values, hypothesis properties, bad input, threads."""

from __future__ import annotations

import json
import math

import logitkit as lk
import mpmath as mp
import numpy as np
import pytest
from _subproc import lower_levels
from _subproc import run as run_python
from hypothesis import given, settings
from hypothesis import strategies as st

mp.mp.dps = 100
SELU_A = mp.mpf("1.6732632423543772848170429916717")
SELU_S = mp.mpf("1.0507009873554804934193349852946")


def _sig(x):
    return 1 / (1 + mp.exp(-x))


def _phi(x):
    return mp.ncdf(x)


def _clip(x, lo, hi):
    return min(max(x, lo), hi)


# name -> (params, mpmath f(x, **params)); reference formulas written from the
# definitions, not from the implementation.
REF = {
    "sigmoid": ({}, lambda x: _sig(x)),
    "log_sigmoid": ({}, lambda x: -mp.log1p(mp.exp(-x))),
    "tanh": ({}, mp.tanh),
    "relu": ({}, lambda x: max(x, 0)),
    "relu6": ({}, lambda x: _clip(x, 0, 6)),
    "leaky_relu": ({"negative_slope": 0.2}, lambda x: x if x > 0 else mp.mpf(0.2) * x),
    "elu": ({"alpha": 1.5}, lambda x: x if x > 0 else mp.mpf(1.5) * mp.expm1(x)),
    "celu": ({"alpha": 2.0}, lambda x: x if x > 0 else 2 * mp.expm1(x / 2)),
    "selu": ({}, lambda x: SELU_S * (x if x > 0 else SELU_A * mp.expm1(x))),
    "gelu": ({}, lambda x: x * _phi(x)),
    "silu": ({}, lambda x: x * _sig(x)),
    "mish": ({}, lambda x: x * mp.tanh(mp.log1p(mp.exp(x)))),
    "softplus": ({}, lambda x: x if x > 20 else mp.log1p(mp.exp(x))),
    "softsign": ({}, lambda x: x / (1 + abs(x))),
    "hard_sigmoid": ({}, lambda x: _clip(x + 3, 0, 6) / 6),
    "hard_tanh": ({"min_val": -2.0, "max_val": 0.5}, lambda x: _clip(x, -2, mp.mpf(0.5))),
    "hard_swish": ({}, lambda x: x * _clip(x + 3, 0, 6) / 6),
}
KINKS = {
    "relu": [0],
    "relu6": [0, 6],
    "leaky_relu": [0],
    "elu": [0],
    "celu": [0],
    "selu": [0],
    "hard_sigmoid": [-3, 3],
    "hard_tanh": [-2, 0.5],
    "hard_swish": [-3, 3],
    "softplus": [20],
}
# (relative, absolute near zeros of the function)
TOL = {np.float32: (4e-6, 1e-6), np.float64: (1e-14, 1e-15)}


def _grid(dtype):
    x = np.concatenate(
        [
            np.linspace(-100, 100, 2001),
            np.linspace(-6, 6, 1201),
            np.geomspace(1e-30, 1, 61),
            -np.geomspace(1e-30, 1, 61),
            [0.0, -0.0, 1e-40, -1e-40, 5e-324],
        ]
    )
    return x.astype(dtype)


def _check_close(got, want, rtol, atol, what):
    got = np.asarray(got, dtype=np.float64)
    want = np.asarray(want, dtype=np.float64)
    same_nan = np.isnan(got) == np.isnan(want)
    assert same_nan.all(), f"{what}: NaN mismatch at {np.flatnonzero(~same_nan)[:5]}"
    ok = np.isnan(want) | (got == want) | (np.abs(got - want) <= atol + rtol * np.abs(want))
    bad = np.flatnonzero(~ok)
    assert bad.size == 0, f"{what}: {bad.size} bad, e.g. got {got[bad[:3]]} want {want[bad[:3]]}"


def _ref_values(f, x, dtype):
    # The exact value at the (rounded) input, rounded once to the dtype; the
    # limit at +-inf.
    out = []
    for v in x.astype(np.float64):
        if math.isnan(v):
            out.append(math.nan)
            continue
        out.append(float(f(mp.mpf(v))))
    return np.array(out)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name", sorted(REF))
def test_forward_matches_mpmath_reference(name, dtype):
    params, f = REF[name]
    x = _grid(dtype)
    got = getattr(lk, name)(x, **params)
    assert got.dtype == dtype
    want = _ref_values(lambda v: f(v), x, dtype)
    rtol, atol = TOL[dtype]
    # Where the exact result is below the dtype's normal range only absolute
    # accuracy is meaningful.
    atol = max(atol, np.finfo(dtype).tiny)
    _check_close(got, want, rtol, atol, name)


def _step(c, a, b):
    return a if c else b


# Analytic derivatives (away from the kinks), written from the definitions.
DREF = {
    "sigmoid": lambda x: _sig(x) * (1 - _sig(x)),
    "log_sigmoid": lambda x: _sig(-x),
    "tanh": lambda x: 1 / mp.cosh(x) ** 2,
    "relu": lambda x: _step(x > 0, 1, 0),
    "relu6": lambda x: _step(0 < x < 6, 1, 0),
    "leaky_relu": lambda x: _step(x > 0, 1, mp.mpf(0.2)),
    "elu": lambda x: _step(x > 0, 1, mp.mpf(1.5) * mp.exp(x)),
    "celu": lambda x: _step(x > 0, 1, mp.exp(x / 2)),
    "selu": lambda x: SELU_S * _step(x > 0, 1, SELU_A * mp.exp(x)),
    "gelu": lambda x: mp.ncdf(x) + x * mp.npdf(x),
    "silu": lambda x: _sig(x) * (1 + x * (1 - _sig(x))),
    "mish": lambda x: (
        mp.tanh(mp.log1p(mp.exp(x))) + x * _sig(x) / mp.cosh(mp.log1p(mp.exp(x))) ** 2
    ),
    "softplus": lambda x: _step(x > 20, 1, _sig(x)),
    "softsign": lambda x: 1 / (1 + abs(x)) ** 2,
    "hard_sigmoid": lambda x: _step(-3 < x < 3, mp.mpf(1) / 6, 0),
    "hard_tanh": lambda x: _step(-2 < x < 0.5, 1, 0),
    "hard_swish": lambda x: _step(x <= -3, 0, _step(x < 3, x / 3 + mp.mpf(0.5), 1)),
}


def _deriv(name, v):
    return DREF[name](v)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name", sorted(REF))
def test_backward_matches_mpmath_derivative(name, dtype):
    params, f = REF[name]
    x = _grid(dtype)
    kinks = KINKS.get(name, [])
    x = x[~np.isin(x.astype(np.float64), np.array(kinks, dtype=np.float64))]
    g = np.linspace(-2, 2, x.size).astype(dtype)
    got = getattr(lk, name + "_backward")(g, x, **params)
    want = np.array(
        [
            float(mp.mpf(gv) * _deriv(name, mp.mpf(v)))
            for gv, v in zip(g.astype(float), x.astype(float), strict=True)
        ]
    )
    rtol, atol = TOL[dtype]
    atol = max(atol, np.finfo(dtype).tiny)
    _check_close(got, want, rtol, atol, name + "_backward")


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize(("beta", "threshold"), [(2.0, 10.0), (0.5, 20.0), (1.0, 5.0)])
def test_softplus_with_beta_and_threshold_matches_reference(beta, threshold, dtype):
    # beta a power of two, so beta * x is exact in the dtype (PyTorch rounds
    # it, and so does logitkit).
    x = _grid(dtype)
    b = mp.mpf(beta)

    def f(v):
        return v if b * v > threshold else mp.log1p(mp.exp(b * v)) / b

    rtol, atol = TOL[dtype]
    atol = max(atol, np.finfo(dtype).tiny)
    got = lk.softplus(x, beta=beta, threshold=threshold)
    _check_close(got, _ref_values(f, x, dtype), rtol, atol, "softplus")
    g = np.linspace(-2, 2, x.size).astype(dtype)
    want = [
        float(mp.mpf(gv) * (1 if b * mp.mpf(v) > threshold else _sig(b * mp.mpf(v))))
        for gv, v in zip(g.astype(float), x.astype(float), strict=True)
    ]
    got = lk.softplus_backward(g, x, beta=beta, threshold=threshold)
    _check_close(got, want, rtol, atol, "softplus_backward")


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_celu_with_negative_alpha_matches_reference(dtype):
    # x / alpha >= 0 where x <= 0: the exponential grows instead of decaying
    # (the backward used to clamp it and return 1 there).
    x = np.concatenate([np.linspace(-20, 20, 801), [0.0, -0.0, -1e-30]]).astype(dtype)
    a = mp.mpf(-0.5)
    want = _ref_values(lambda v: v if v > 0 else a * mp.expm1(v / a), x, dtype)
    rtol, atol = TOL[dtype]
    _check_close(lk.celu(x, alpha=-0.5), want, rtol, atol, "celu alpha < 0")
    g = np.linspace(-2, 2, x.size).astype(dtype)
    dwant = [
        float(mp.mpf(gv) * (1 if v > 0 else mp.exp(mp.mpf(v) / a)))
        for gv, v in zip(g.astype(float), x.astype(float), strict=True)
    ]
    _check_close(lk.celu_backward(g, x, alpha=-0.5), dwant, rtol, atol, "celu_backward alpha < 0")


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_gelu_tanh_and_logit_against_references(dtype):
    x = np.linspace(-5, 5, 1001).astype(dtype)
    k = mp.sqrt(2 / mp.pi)

    def gt(v):
        return v * (1 + mp.tanh(k * (v + mp.mpf("0.044715") * v**3))) / 2

    rtol, atol = TOL[dtype]
    _check_close(
        lk.gelu(x, approximate="tanh"), _ref_values(gt, x, dtype), 4 * rtol, atol, "gelu tanh"
    )
    g = np.ones_like(x)
    want = np.array([float(mp.diff(gt, mp.mpf(v))) for v in x.astype(float)])
    _check_close(lk.gelu_backward(g, x, approximate="tanh"), want, 4 * rtol, atol, "gelu tanh bwd")
    p = np.concatenate([np.linspace(0, 1, 1001), [1e-30, 1 - 1e-7]]).astype(dtype)
    want = [
        float(mp.log(mp.mpf(v) / (1 - mp.mpf(v))))
        if 0 < v < 1
        else (-math.inf if v == 0 else math.inf)
        for v in p.astype(float)
    ]
    _check_close(lk.logit(p), want, rtol, atol, "logit")
    pi = p[(p > 0) & (p < 1)]
    want = [float(1 / (mp.mpf(v) * (1 - mp.mpf(v)))) for v in pi.astype(float)]
    _check_close(lk.logit_backward(np.ones_like(pi), pi), want, rtol, atol, "logit bwd")


def test_logit_eps_clips_like_torch():
    p = np.array([0.0, 0.001, 0.5, 1.0])
    got = lk.logit(p, eps=0.01)
    want = np.log(np.clip(p, 0.01, 0.99) / (1 - np.clip(p, 0.01, 0.99)))
    np.testing.assert_allclose(got, want, rtol=1e-14)
    np.testing.assert_array_equal(lk.logit_backward(np.ones(4), p, eps=0.01)[[0, 1, 3]], 0.0)


# Values from the PyTorch documentation / torch 2.x output at float64.
TORCH_VALUES = [
    ("relu", {}, [-1.0, 0.0, 1.0], [0.0, 0.0, 1.0]),
    ("sigmoid", {}, [0.0, 1.0], [0.5, 0.7310585786300049]),
    ("gelu", {}, [-1.0, 1.0], [-0.15865525393145707, 0.8413447460685429]),
    ("gelu", {"approximate": "tanh"}, [1.0], [0.8411919906082768]),
    ("silu", {}, [1.0], [0.7310585786300049]),
    ("mish", {}, [1.0], [0.8650983882673103]),
    ("softplus", {}, [0.0, 30.0], [0.6931471805599453, 30.0]),
    ("selu", {}, [-1.0], [-1.1113307378125625]),
    ("elu", {}, [-1.0], [-0.6321205588285577]),
    ("hard_swish", {}, [1.0], [0.6666666666666666]),
    ("hard_sigmoid", {}, [1.0], [0.6666666666666666]),
    ("log_sigmoid", {}, [-1.0], [-1.3132616875182228]),
    ("softsign", {}, [1.0], [0.5]),
]


@pytest.mark.parametrize(("name", "params", "x", "want"), TORCH_VALUES)
def test_pytorch_documented_values(name, params, x, want):
    np.testing.assert_allclose(getattr(lk, name)(np.array(x), **params), want, rtol=1e-14)


# Derivatives at the kinks, PyTorch's convention.
KINK_GRADS = [
    ("relu", {}, 0.0, 0.0),
    ("relu6", {}, 0.0, 0.0),
    ("relu6", {}, 6.0, 0.0),
    ("leaky_relu", {"negative_slope": 0.1}, 0.0, 0.1),
    ("elu", {"alpha": 2.0}, 0.0, 2.0),
    ("celu", {"alpha": 2.0}, 0.0, 1.0),
    ("hard_tanh", {}, 1.0, 0.0),
    ("hard_sigmoid", {}, 3.0, 0.0),
    # PyTorch 2.x: 0 at -3 and 1 at 3 (1.x gave -0.5 and 1.5).
    ("hard_swish", {}, -3.0, 0.0),
    ("hard_swish", {}, 3.0, 1.0),
    ("hard_swish", {}, np.nextafter(-3.0, 0.0), np.nextafter(-3.0, 0.0) / 3 + 0.5),
    ("hard_swish", {}, np.nextafter(3.0, 0.0), np.nextafter(3.0, 0.0) / 3 + 0.5),
]


def test_hard_swish_is_x_from_3_on_without_overflow():
    for dt in (np.float32, np.float64):
        big = np.array([3.0, 7.5, np.finfo(dt).max / 2, np.finfo(dt).max], dt)
        np.testing.assert_array_equal(lk.hard_swish(big), big)


def test_logit_backward_is_nan_outside_0_1_without_eps():
    for dt in (np.float32, np.float64):
        p = np.array([-0.1, 1.1, 0.5], dt)
        g = lk.logit_backward(np.ones(3, dt), p)
        assert np.isnan(g[0]) and np.isnan(g[1]) and g[2] == 4.0
        # With eps, PyTorch's gradient outside [eps, 1 - eps] is 0.
        np.testing.assert_array_equal(lk.logit_backward(np.ones(3, dt), p, eps=0.01)[:2], 0)


@pytest.mark.parametrize(("name", "params", "x", "want"), KINK_GRADS)
def test_kink_gradients_follow_pytorch(name, params, x, want):
    assert getattr(lk, name + "_backward")(np.array([1.0]), np.array([x]), **params)[0] == want


# Where f' is exactly 0 on an interval, PyTorch's backward selects 0 (e.g.
# threshold_backward is where(x <= 0, 0, grad)), so an inf or NaN grad gives 0
# there, not inf * 0 = NaN. (name, params, x in the flat region, x where f' > 0)
FLAT = [
    ("relu", {}, [-1.0, 0.0, -0.0, -np.inf], [0.5, np.inf]),
    ("relu6", {}, [-1.0, 0.0, 6.0, 7.0, np.inf, -np.inf], [0.5, 5.5]),
    ("hard_sigmoid", {}, [-3.0, -4.0, 3.0, 4.0, np.inf, -np.inf], [0.0, 2.5]),
    ("hard_tanh", {}, [-1.0, -2.0, 1.0, 2.0, np.inf, -np.inf], [0.0, 0.5]),
    ("hard_tanh", {"min_val": -2.0, "max_val": 0.5}, [-2.0, -3.0, 0.5, 1.0], [-1.5, 0.25]),
    ("hard_tanh", {"min_val": 0.5, "max_val": 0.5}, [0.0, 0.5, 1.0], []),
    ("hard_swish", {}, [-3.0, -4.0, -np.inf], [-1.0, 2.0, 3.0, 4.0, np.inf]),
    ("logit", {"eps": 0.01}, [0.0, 0.005, 0.995, 1.0, -1.0, 2.0, -np.inf, np.inf], [0.01, 0.5]),
    ("logit", {"eps": 0.0}, [-0.5, 1.5, -np.inf, np.inf], [0.25]),
]
GRADS = [np.inf, -np.inf, np.nan, 2.5, -2.5, 0.0, -0.0]


def _flat_id(case):
    name, params = case[0], case[1]
    return name + "".join(f"-{k}={v}" for k, v in params.items())


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize(("name", "params", "flat", "live"), FLAT, ids=[_flat_id(c) for c in FLAT])
def test_flat_region_backward_is_zero_for_inf_and_nan_grad(name, params, flat, live, dtype):
    f = getattr(lk, name + "_backward")
    x = np.repeat(np.array(flat, dtype), len(GRADS))
    g = np.tile(np.array(GRADS, dtype), len(flat))
    got = f(g, x, **params)
    assert (got == 0).all(), f"{name}: {got[got != 0]} at x {x[got != 0]}, grad {g[got != 0]}"
    # A zero with grad's sign: what grad * 0 gives for a finite grad (PyTorch: +0).
    signed = ~np.isnan(g)
    np.testing.assert_array_equal(np.signbit(got[signed]), np.signbit(g[signed]))
    # The fused layer backward follows the same rule, and so its bias gradient.
    gz, gb = lk.bias_act_backward(g[:, None], x[:, None], name, **params)
    np.testing.assert_array_equal(gz[:, 0], got)
    assert gb[0] == 0
    # NaN x still gives NaN, whatever grad is.
    assert np.isnan(f(np.array(GRADS, dtype), np.full(len(GRADS), np.nan, dtype), **params)).all()
    # Where f' > 0 an infinite grad stays infinite with its sign, and NaN stays NaN.
    for v in live:
        xv = np.full(3, v, dtype)
        got = f(np.array([np.inf, -np.inf, np.nan], dtype), xv, **params)
        assert got[0] == np.inf and got[1] == -np.inf and np.isnan(got[2]), (name, v, got)


# f' is 0 here too, but not on an interval of x: at a point (hard_swish at
# -1.5), by a parameter (leaky_relu with slope 0) or by underflow (sigmoid,
# elu far left). PyTorch multiplies there, and so does logitkit: inf * 0 = NaN.
POINT_ZEROS = [
    ("hard_swish", {}, -1.5),
    ("leaky_relu", {"negative_slope": 0.0}, -1.0),
    ("sigmoid", {}, -1000.0),
    ("elu", {}, -1000.0),
]


@pytest.mark.parametrize(("name", "params", "x"), POINT_ZEROS)
def test_zero_derivative_outside_flat_regions_is_a_product(name, params, x):
    for dt in (np.float32, np.float64):
        f = getattr(lk, name + "_backward")
        got = f(np.array([np.inf, 2.0], dt), np.array([x, x], dt), **params)
        assert np.isnan(got[0]) and got[1] == 0, (name, dt, got)


ALL = sorted(REF) + ["logit"]


@pytest.mark.parametrize("name", ALL)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_nan_propagates_and_infinities_give_limits(name, dtype):
    params = REF.get(name, ({}, None))[0]
    f = getattr(lk, name)
    x = np.array([np.nan, np.inf, -np.inf, np.finfo(dtype).max, -np.finfo(dtype).max], dtype)
    y = f(x, **params)
    assert np.isnan(y[0])
    assert not np.isnan(y[1:]).any() or name == "logit"
    b = getattr(lk, name + "_backward")(np.ones_like(x), x, **params)
    assert np.isnan(b[0])
    if name != "logit":
        assert not np.isnan(b[1:]).any()
    if name in REF:
        # The mathematical limit at +-inf.
        fx = REF[name][1]
        for v, got in zip([math.inf, -math.inf], y[1:3], strict=True):
            at_big = float(fx(mp.mpf(1e30 if v > 0 else -1e30)))
            lim = at_big if abs(at_big) < 1e20 else v
            assert got == pytest.approx(lim, rel=1e-6, abs=1e-30) or (
                np.isinf(got) and np.isinf(lim)
            )


# Functions equal to x times a finite factor at 0 (or, for tanh and the
# elu family, odd at 0): PyTorch's and NumPy's zero keeps x's sign there.
SIGNED_ZERO = [
    ("tanh", {}),
    ("elu", {}),
    ("celu", {"alpha": 2.0}),
    ("selu", {}),
    ("silu", {}),
    ("gelu", {}),
    ("gelu", {"approximate": "tanh"}),
    ("mish", {}),
    ("softsign", {}),
    ("leaky_relu", {}),
    ("hard_tanh", {}),
]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize(("name", "params"), SIGNED_ZERO)
def test_zero_keeps_its_sign(name, params, dtype):
    # Full lane arrays and a tail (the vector and the partial paths).
    x = np.tile(np.array([0.0, -0.0], dtype), 21)
    y = getattr(lk, name)(x, **params)
    assert (y == 0).all(), name
    np.testing.assert_array_equal(np.signbit(y), np.signbit(x))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_signed_zero_cases_follow_torch(dtype):
    # hard_swish is x * 0 / 6 up to -3 (PyTorch): -0, not +0.
    y = lk.hard_swish(np.array([-3.0, -4.0, -1e30, -np.inf], dtype))
    assert (y == 0).all() and np.signbit(y).all()
    # logit increases: its gradient at p = -0 is +inf, as at +0.
    d = lk.logit_backward(np.ones(2, dtype), np.array([-0.0, 0.0], dtype))
    np.testing.assert_array_equal(d, [np.inf, np.inf])
    d = lk.logit_backward(np.ones(2, dtype), np.array([-0.0, 0.0], dtype), eps=0.0)
    np.testing.assert_array_equal(d, [np.inf, np.inf])


def test_finite_difference_gradients_float64():
    rng = np.random.default_rng(1)
    x = rng.standard_normal(500) * 3
    for name in ALL + ["gelu_tanh"]:
        if name == "logit":
            # p away from 0 and 1, where a finite difference is accurate.
            xx, params, fn = 1 / (1 + np.exp(-x / 4)), {}, name
        elif name == "gelu_tanh":
            xx, params, fn = x, {"approximate": "tanh"}, "gelu"
        else:
            xx, params, fn = x, REF[name][0], name
        kinks = KINKS.get(fn, [])
        xx = xx[np.min(np.abs(xx[:, None] - np.array(kinks + [1e9])), axis=1) > 1e-3]
        h = 1e-6
        f = getattr(lk, fn)
        fd = (f(xx + h, **params) - f(xx - h, **params)) / (2 * h)
        got = getattr(lk, fn + "_backward")(np.ones_like(xx), xx, **params)
        np.testing.assert_allclose(got, fd, rtol=1e-6, atol=1e-6, err_msg=name)


@settings(max_examples=200, deadline=None)
@given(st.floats(-80, 80, allow_nan=False), st.floats(-80, 80, allow_nan=False))
def test_monotone_activations_are_monotone(a, b):
    lo, hi = np.float64(min(a, b)), np.float64(max(a, b))
    for name in ["sigmoid", "log_sigmoid", "tanh", "relu", "softplus", "softsign", "elu", "selu"]:
        f = getattr(lk, name)
        assert f(np.array([lo]))[0] <= f(np.array([hi]))[0], name


@settings(max_examples=200, deadline=None)
@given(st.floats(-30, 30, allow_nan=False, width=32))
def test_sigmoid_symmetry_and_logit_inverse(x):
    a = np.array([x], np.float64)
    assert lk.sigmoid(-a)[0] == pytest.approx(1 - lk.sigmoid(a)[0], abs=1e-15)
    # Rounding sigmoid(x) to float64 loses |x|-dependent bits of 1 - p.
    tol = 1e-12 + 4e-16 * (1 + math.exp(abs(x)))
    assert lk.logit(lk.sigmoid(a))[0] == pytest.approx(x, abs=tol)
    f = np.array([x], np.float32)
    assert lk.sigmoid(-f)[0] == pytest.approx(1 - lk.sigmoid(f)[0], abs=1.2e-7)


# Every arm of the kernels' activation switch: (name, params).
EVERY_ARM = [(n, p) for n, (p, _) in sorted(REF.items())] + [
    ("identity", {}),
    ("logit", {}),
    ("logit", {"eps": 0.1}),
    ("gelu", {"approximate": "tanh"}),
    ("celu", {"alpha": -0.5}),
    ("softplus", {"beta": 2.0, "threshold": 5.0}),
]


def test_every_level_gives_the_same_bits_and_nan_for_nan():
    # The kernels add no NaN select of their own: each function carries a NaN
    # x to a NaN result by its own arithmetic (or `keep_nan`). Checked at
    # every SIMD level this CPU has, for every activation and backward, the
    # elementwise and the fused bias kernels, with every special value (and
    # NaN grads); all results equal bit for bit across levels (NaN payloads
    # aside). One exception: float32 gelu, gelu_backward and silu_backward at
    # AVX-512 are kernels of their own (tables, where the other levels take
    # exp-based forms; their bits are checked against their scalar forms by
    # `cargo test`): kept out of the hash here, and held to the other
    # levels' results within their error.
    code = (
        "import hashlib, json, numpy as np, logitkit as lk\n"
        f"arms = {EVERY_ARM!r}\n"
        "h = hashlib.sha256(); bad = []; own = []\n"
        "own_f = lambda name, p, dt: (name, p, dt) == ('gelu', {}, np.float32)\n"
        "own_b = lambda name, p, dt: own_f(name, p, dt) or (name, dt) == ('silu', np.float32)\n"
        "def put(own_it, a):\n"
        "    if own_it: own.append(a.ravel().tolist())\n"
        "    else: h.update(b(a))\n"
        "b = lambda a: np.where(np.isnan(a), np.nan, a).astype(a.dtype).tobytes()\n"
        "for dt in (np.float32, np.float64):\n"
        "    fi = np.finfo(dt); rng = np.random.default_rng(6)\n"
        "    sp = [np.nan, -np.nan, np.inf, -np.inf, 0.0, -0.0, fi.max, -fi.max, fi.tiny,\n"
        "          -fi.tiny, fi.smallest_subnormal, -fi.smallest_subnormal, 1e-3, -1e-3,\n"
        "          3.0, -3.0, 6.0, 20.0, -20.0, 90.0, -90.0, 104.0, -104.0, 750.0, -750.0]\n"
        "    x = np.concatenate([sp, (rng.standard_normal(1000) * 10)]).astype(dt)\n"
        "    x[40::37] = np.nan\n"
        "    g = rng.standard_normal(x.size).astype(dt); g[7::11] = np.nan\n"
        "    for name, p in arms:\n"
        "        xx = np.abs(np.tanh(x)) if name == 'logit' else x\n"
        "        nx = np.isnan(xx)\n"
        "        if name == 'identity':\n"
        "            y = lk.bias_act(xx[None], np.zeros(xx.size, dt), 'identity')[0]\n"
        "            d = lk.bias_act_backward(g[None], xx[None], 'identity')[0][0]\n"
        "        else:\n"
        "            y = getattr(lk, name)(xx, **p)\n"
        "            d = getattr(lk, name + '_backward')(g, xx, **p)\n"
        "            ya = lk.bias_act(xx.reshape(-1, 5), np.zeros(5, dt), name, **p)\n"
        "            da = lk.bias_act_backward(g.reshape(-1, 5), xx.reshape(-1, 5), name, **p)[0]\n"
        "            put(own_f(name, p, dt), ya); put(own_b(name, p, dt), da)\n"
        "            if not (np.isnan(ya.ravel()[nx]).all() and np.isnan(da.ravel()[nx]).all()):\n"
        "                bad.append(('bias', name, p, str(dt)))\n"
        "        if not (np.isnan(y[nx]).all() and np.isnan(d[nx]).all()):\n"
        "            bad.append((name, p, str(dt)))\n"
        "        put(own_f(name, p, dt), y); put(own_b(name, p, dt), d)\n"
        "print(json.dumps([lk.simd_level(), h.hexdigest(), bad, own]))\n"
    )
    native = json.loads(run_python(code))
    assert native[2] == [], native[2]
    for level in lower_levels(native[0]):
        other = json.loads(run_python(code, LOGITKIT_SIMD=level))
        assert other[0] == level
        assert other[2] == [], (level, other[2])
        assert other[1] == native[1], (native[0], level)
        for got, want in zip(native[3], other[3], strict=True):
            got, want = np.array(got, np.float64), np.array(want, np.float64)
            if native[0] == "avx512":
                # Both within 8.2e-7 of gelu(x) and 6e-7 of grad * f'(x)
                # (NaN where the other has NaN), the latter 3.3e-7 |grad|
                # absolute near its root.
                np.testing.assert_allclose(got, want, rtol=1.2e-6, atol=1e-6)
            else:
                np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("name", ["relu", "sigmoid", "gelu", "mish", "logit"])
def test_results_bit_identical_for_any_thread_count(name):
    rng = np.random.default_rng(3)
    x = rng.standard_normal((300, 1000)).astype(np.float32)
    if name == "logit":
        x = np.abs(x) / 5
    g = rng.standard_normal(x.shape).astype(np.float32)
    h = rng.standard_normal((3000, 100)).astype(np.float32)
    old = lk.get_num_threads()
    res = []
    try:
        for n in (1, 2, 3):
            lk.set_num_threads(n)
            bg = lk.bias_act_backward(g[: 3000 // 10 * 10].reshape(3000, 100), h, "gelu")
            res.append((getattr(lk, name)(x), getattr(lk, name + "_backward")(g, x), *bg))
    finally:
        lk.set_num_threads(old)
    for r in res[1:]:
        for a, c in zip(res[0], r, strict=True):
            assert np.array_equal(a.view(np.uint32), c.view(np.uint32))


def test_out_in_place_strided_fortran_and_dtypes():
    rng = np.random.default_rng(4)
    x = rng.standard_normal((50, 40))
    want = lk.silu(x)
    y = x.copy()
    assert lk.silu(y, out=y) is y
    np.testing.assert_array_equal(y, want)
    np.testing.assert_array_equal(lk.silu(np.asfortranarray(x)), want)
    np.testing.assert_array_equal(lk.silu(x[:, ::2]), want[:, ::2])
    o = np.empty((50, 40))
    np.testing.assert_array_equal(lk.silu(x, out=o), want)
    # Partial overlap goes through a temporary.
    buf = np.concatenate([x.ravel(), [0.0]])
    lk.silu(buf[1:], out=buf[:-1])
    np.testing.assert_array_equal(buf[:-1], lk.silu(np.concatenate([x.ravel()[1:], [0.0]])))
    g = rng.standard_normal((50, 40))
    gg = g.copy()
    lk.gelu_backward(gg, x, out=gg)
    np.testing.assert_array_equal(gg, lk.gelu_backward(g, x))
    assert lk.relu([1, -2]).dtype == np.float64
    assert lk.relu(np.array([1, -2], np.float16)).dtype == np.float16
    assert lk.relu(np.float32([1])).dtype == np.float32
    assert isinstance(lk.sigmoid(0.0), np.floating)


def test_python_number_grad_is_weak_as_in_numpy():
    # NEP 50: a Python float / int / bool grad takes x's dtype; a NumPy
    # scalar or 0-d array is strong and promotes (np.float64 too, although
    # it subclasses float).
    for x in (np.float32(0.5), np.array(0.5, np.float32)):
        for g in (2.0, 2, True):
            r = lk.sigmoid_backward(g, x)
            assert r.dtype == np.float32, (g, x)
            want = np.float32(float(g)) * lk.sigmoid_backward(np.float32(1.0), np.float32(0.5))
            assert r == want
        assert lk.gelu_backward(np.float64(2.0), x).dtype == np.float64
        assert lk.gelu_backward(np.array(2.0), x).dtype == np.float64
    assert lk.silu_backward(1.0, np.float16(0.5)).dtype == np.float16
    assert lk.silu_backward(1.0, 0.5).dtype == np.float64
    # The same rule for the row functions' gradients.
    y = lk.softmax(np.float32([0.5]))
    assert lk.softmax_backward(np.float32([1.0]), y).dtype == np.float32


def test_bias_act_matches_unfused_and_writes_preact():
    rng = np.random.default_rng(5)
    h = rng.standard_normal((64, 33)).astype(np.float32)
    b = rng.standard_normal(33).astype(np.float32)
    for act, params in [
        ("relu", {}),
        ("gelu", {}),
        ("gelu", {"approximate": "tanh"}),
        ("leaky_relu", {"negative_slope": 0.3}),
        ("identity", {}),
    ]:
        z = np.empty_like(h)
        y = lk.bias_act(h, b, act, preact_out=z, **params)
        np.testing.assert_array_equal(z, h + b)
        fn = (
            (lambda v: v)
            if act == "identity"
            else (lambda v, a=act, p=params: getattr(lk, a)(v, **p))
        )
        np.testing.assert_array_equal(y, fn(h + b))
        g = rng.standard_normal(h.shape).astype(np.float32)
        gz, gb = lk.bias_act_backward(g, z, act, **params)
        want = g if act == "identity" else getattr(lk, act + "_backward")(g, z, **params)
        np.testing.assert_array_equal(gz, want)
        np.testing.assert_allclose(gb, want.astype(np.float64).sum(0), rtol=1e-6, atol=1e-6)
    # In place: preact_out is h, out is grad.
    hh = h.copy()
    y = lk.bias_act(hh, b, "silu", preact_out=hh)
    np.testing.assert_array_equal(hh, h + b)
    g = np.ones_like(h)
    bo = np.empty(33, np.float32)
    gz, gb = lk.bias_act_backward(g, hh, "silu", out=g, bias_grad_out=bo)
    assert gz is g and gb is bo
    np.testing.assert_array_equal(g, lk.silu_backward(np.ones_like(h), h + b))
    del y


BAD = [
    (lambda: lk.relu("abc"), TypeError, "x"),
    (lambda: lk.relu(np.array([1 + 2j])), TypeError, "x is complex"),
    (lambda: lk.relu_backward(np.ones(3), np.ones(4)), ValueError, "x has shape"),
    (lambda: lk.relu(np.ones(3), out=np.ones(4)), ValueError, "out has shape"),
    (lambda: lk.relu(np.ones(3), out=np.ones(3, np.float32)), TypeError, "out has dtype"),
    (lambda: lk.relu(np.ones(3), out=[0, 0, 0]), TypeError, "out must be"),
    (lambda: lk.softplus(np.ones(3), beta=-1.0), ValueError, "beta"),
    (lambda: lk.hard_tanh(np.ones(3), min_val=2.0, max_val=1.0), ValueError, "min_val"),
    (lambda: lk.gelu(np.ones(3), approximate="erf"), ValueError, "approximate"),
    (lambda: lk.logit(np.ones(3), eps=0.5), ValueError, "eps"),
    (lambda: lk.logit(np.ones(3), eps=-0.1), ValueError, "eps"),
    (lambda: lk.celu(np.ones(3), alpha=0.0), ValueError, "alpha"),
    (lambda: lk.bias_act(np.ones((2, 3)), np.ones(4)), ValueError, "bias has shape"),
    (lambda: lk.bias_act(np.ones(3), np.ones(3)), ValueError, "h must be 2-D"),
    (lambda: lk.bias_act(np.ones((2, 3)), np.ones(3), "nope"), ValueError, "activation must be"),
    (lambda: lk.bias_act(np.ones((2, 3)), np.ones(3), "relu", alpha=1.0), TypeError, "alpha"),
    (
        lambda: lk.bias_act(np.ones((2, 3)), np.ones(3), "gelu", approximate=None),
        TypeError,
        "approximate must be a str",
    ),
    (
        lambda: lk.bias_act_backward(np.ones((2, 3)), np.ones((2, 3)), "gelu", approximate=1),
        TypeError,
        "approximate must be a str",
    ),
    (lambda: lk.bias_act_backward(np.ones((2, 3)), np.ones((3, 2))), ValueError, "z has shape"),
    (
        lambda: lk.bias_act_backward(np.ones((2, 3)), np.ones((2, 3)), bias_grad_out=np.ones(2)),
        ValueError,
        "bias_grad_out",
    ),
]


@pytest.mark.parametrize(("call", "exc", "msg"), BAD)
def test_bad_input_raises_naming_the_argument(call, exc, msg):
    with pytest.raises(exc, match=msg):
        call()


def test_read_only_out_rejected():
    o = np.ones(3)
    o.flags.writeable = False
    with pytest.raises(ValueError, match="out is read-only"):
        lk.tanh(np.ones(3), out=o)


def test_bias_act_backward_rejects_bias_grad_out_inside_out():
    g = np.arange(12.0).reshape(3, 4)
    with pytest.raises(ValueError, match="out and bias_grad_out must not overlap"):
        lk.bias_act_backward(g, np.ones((3, 4)), "identity", out=g, bias_grad_out=g[0])


def test_fused_bias_outputs_may_interleave_in_one_buffer():
    # Two outputs in alternate columns of one buffer share no element: both
    # are accepted and written in full, each with its own values.
    rng = np.random.default_rng(5)
    h = rng.standard_normal((3, 4)).astype(np.float32)
    bias = rng.standard_normal(4).astype(np.float32)
    buf = np.zeros((3, 8), np.float32)
    lk.bias_act(h, bias, "gelu", out=buf[:, ::2], preact_out=buf[:, 1::2])
    np.testing.assert_array_equal(buf[:, 1::2], h + bias)
    np.testing.assert_array_equal(buf[:, ::2], lk.gelu(h + bias))
    g = rng.standard_normal((3, 4)).astype(np.float32)
    z = h + bias
    buf = np.zeros((3, 8), np.float32)
    lk.bias_act_backward(g, z, "gelu", out=buf[:, ::2], bias_grad_out=buf[0, 1::2])
    want_gx, want_gb = lk.bias_act_backward(g, z, "gelu")
    np.testing.assert_array_equal(buf[:, ::2], want_gx)
    np.testing.assert_array_equal(buf[0, 1::2], want_gb)
    assert not buf[1:, 1::2].any()


def test_logit_eps_bounds_and_subnormal_gradient_follow_torch():
    # PyTorch clips to [eps, 1 - eps] with 1 - eps formed in the input's
    # dtype from eps in that dtype; in float32 that is 1 ulp from 1 - eps
    # rounded from float64 for some eps, which moves the flat region's edge.
    r = np.random.default_rng(4)
    moved = 0
    for eps in r.uniform(1e-4, 0.499, 300):
        lo = np.float32(eps)
        hi = np.float32(1) - lo
        moved += hi != np.float32(1.0 - eps)
        p = np.array([hi, np.nextafter(hi, np.float32(2)), lo], np.float32)
        want_y = np.log(np.float64(hi) / (1 - np.float64(hi)))
        assert lk.logit(p, eps)[1] == lk.logit(p, eps)[0]
        np.testing.assert_allclose(lk.logit(p, eps)[0], want_y, rtol=4e-6)
        g = lk.logit_backward(np.ones(3, np.float32), p, eps)
        ph = np.float64(hi)
        np.testing.assert_allclose(g[0], 1 / (ph * (1 - ph)), rtol=4e-6)
        assert g[1] == 0
        assert g[2] != 0
    assert moved > 0
    # g / (p (1 - p)) for a subnormal p: finite, not g times an infinite
    # reciprocal.
    for dt, p in ((np.float32, 1e-40), (np.float64, 1e-310)):
        got = lk.logit_backward(np.array([1e-5], dt), np.array([p], dt))[0]
        want = 1e-5 / (float(dt(p)) * (1 - float(dt(p))))
        assert np.isfinite(got)
        assert got == pytest.approx(want, rel=4e-6)

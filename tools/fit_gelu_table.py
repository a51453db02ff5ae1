"""Fit the float32 tables behind gelu and its backward at AVX-512 (see
`src/simd/math/gelu_table.rs`, which this prints), and measure their error in
float32 arithmetic as the kernels perform it.

With `a = |x|` in [0, T]:
- gelu's backward: `g(a) = Phi(-a) - a phi(a)`; gelu'(x) is `g(|x|)` for
  x < 0 and `1 - g(|x|)` for x >= 0 (relative accuracy of g is needed for
  x < 0, except near its root at 0.7518);
- gelu: `tail(a) = Phi(-a)`; gelu(x) = `max(x, -0) - |x| tail(|x|)`.

The interval of `a` is `n = round(a (K1 + K2 a))`, 32 of them, narrower where
the functions decay faster. On each, a polynomial in `t = a - c_n`, with
`c_n` a float32 near the interval's middle. Fit: weighted least squares on
Chebyshev nodes with Lawson's reweighting towards minimax, relative to the
function (absolute with a floor of 0.02 on the interval that holds g's
root); coefficients rounded to float32.

    python tools/fit_gelu_table.py > src/simd/math/gelu_table.rs

Needs numpy and scipy (scipy's `ndtr` is the float64 reference).
"""

import numpy as np
from scipy.special import ndtr

N = 32
T_MAX = 8.0
R = 1.0  # K2 T = R K1: the last interval is 1 / (1 + 2R) as wide as the first
ROOT = 0.7518


def g(a):
    return ndtr(-a) - a * np.exp(-0.5 * a * a) / np.sqrt(2 * np.pi)


def tail(a):
    return ndtr(-a)


def fma32(a, b, c):
    # a * b is exact in float64 for float32 a, b; the sum rounds twice, which
    # only matters for an error estimate in a rare halfway case.
    return (np.float64(a) * np.float64(b) + np.float64(c)).astype(np.float32)


def fit_interval(f, lo, hi, c, d, m=400, iters=40):
    s = np.cos(np.pi * (np.arange(m) + 0.5) / m)
    a = (lo + hi) / 2 + (hi - lo) / 2 * s
    y = f(a)
    wgt = 1 / np.maximum(np.abs(y), 0.02 if lo <= ROOT <= hi else 0.0)
    v = np.vander(a - c, d + 1, increasing=True)
    lw = np.ones(m)
    for _ in range(iters):
        w = wgt * np.sqrt(lw)
        coef = np.linalg.lstsq(v * w[:, None], y * w, rcond=None)[0]
        e = np.abs(v @ coef - y) * wgt
        lw = lw * e
        lw /= lw.sum()
    return coef


def intervals():
    # u(a) = a (k1 + k2 a), with u(T) just below N - 1/2 so that round(u)
    # stays below N after the float32 roundings.
    k1 = np.float32((N - 0.5 - 0.01) / (T_MAX * (1 + R)))
    k2 = np.float32(R * float(k1) / T_MAX)
    k1d, k2d = float(k1), float(k2)
    u = np.arange(N - 1) + 0.5
    edges = np.concatenate([[0.0], (-k1d + np.sqrt(k1d * k1d + 4 * k2d * u)) / (2 * k2d), [T_MAX]])
    centres = ((edges[:-1] + edges[1:]) / 2).astype(np.float32)
    return k1, k2, edges, centres


def table(f, d, edges, centres):
    pad = 1e-4  # each interval a little wider than its share, for the rounding of u
    rows = [
        fit_interval(f, max(edges[i] - pad, 0.0), edges[i + 1] + pad, float(centres[i]), d)
        for i in range(N)
    ]
    return np.array(rows, dtype=np.float32)


def evaluate(a, k1, k2, centres, coef):
    """The kernels' arithmetic in float32 for `a` in [0, T]."""
    w = fma32(a, k2, k1)
    v = fma32(a, w, np.float32(2.0**23))
    n = v.view(np.int32) & (N - 1)
    t = (a - centres[n]).astype(np.float32)
    p = coef[n, -1]
    for j in range(coef.shape[1] - 2, -1, -1):
        p = fma32(p, t, coef[n, j])
    return p


def report(f, k1, k2, centres, coef):
    """The errors of the results the kernel builds from the table."""
    lo, hi = np.float32(1e-9).view(np.int32), np.float32(T_MAX).view(np.int32)
    a = np.arange(lo, hi + 1, 3, dtype=np.int32).view(np.float32)
    p = evaluate(a, k1, k2, centres, coef).astype(np.float64)
    ad = a.astype(np.float64)
    ref = f(ad)
    lines = [f"every 3rd float32 a in [1e-9, {T_MAX:g}] ({a.size} values):"]
    if f is g:
        err = np.abs(p - ref)
        near = np.abs(a - ROOT) < 0.25
        far = (a <= 2) & ~near
        pos = (np.float32(1) - p.astype(np.float32)).astype(np.float64)
        lines += [
            f"x < 0: relative {np.max(err[a > 2] / np.abs(ref[a > 2])):.2e} beyond |x| = 2,"
            f" {np.max(err[far] / np.abs(ref[far])):.2e} within (|x + {ROOT}| >= 0.25),",
            f"{np.max(err[near]):.2e} absolute near the root;"
            f" x >= 0: relative {np.max(np.abs(pos - (1 - ref)) / (1 - ref)):.2e}",
        ]
    else:
        neg = (-ad * p.astype(np.float32)).astype(np.float32).astype(np.float64)
        pos = fma32(-a, p.astype(np.float32), a).astype(np.float64)
        want = ad * ndtr(ad)
        lines += [
            f"relative error of tail {np.max(np.abs(p - ref) / ref):.2e};"
            f" of gelu: x < 0 {np.max(np.abs(neg + ad * ref) / (ad * ref)):.2e},"
            f" x > 0 {np.max(np.abs(pos - want) / want):.2e}",
        ]
    return lines


def lit(v):
    # The shortest literal that reads back as this float32.
    return np.format_float_scientific(np.float32(v), unique=True, trim="0").replace("e+", "e")


def rust_table(name, doc, d, centres, coef, err_lines):
    out = [f"/// {doc}", "///"]
    out += [f"/// {line}" for line in err_lines]
    out.append(f"pub static {name}: Table<{d + 2}> = Table([")
    for row in [centres] + [coef[:, j] for j in range(d + 1)]:
        out.append("    [")
        for i in range(0, N, 4):
            out.append("        " + " ".join(lit(v) + "," for v in row[i : i + 4]))
        out.append("    ],")
    out.append("]);")
    return out


def main():
    k1, k2, edges, centres = intervals()
    out = [
        "//! float32 tables for gelu and its backward at AVX-512 (`super::avx512`,",
        "//! scalar forms in `super`). Generated by `python tools/fit_gelu_table.py`",
        "//! (see there for the fit); do not edit. Each row holds one value per",
        "//! interval of `a = |x|`: row 0 the interval's centre `c`, row `1 + j` the",
        "//! coefficient of `(a - c)^j`.",
        "",
        "/// Rows of 32 float32, aligned for 512-bit loads.",
        "#[repr(align(64))]",
        "pub struct Table<const R: usize>(pub [[f32; 32]; R]);",
        "",
        "/// The tables cover `|x| <= GELU_T`; beyond it x < 0 takes the exp-based",
        "/// forms, and x > 0 evaluates at `GELU_T`.",
        f"pub const GELU_T: f32 = {lit(T_MAX)};",
        "/// The interval of `a` is `round(a (GELU_K1 + GELU_K2 a))`.",
        f"pub const GELU_K1: f32 = {lit(k1)};",
        f"pub const GELU_K2: f32 = {lit(k2)};",
        "",
    ]
    for name, f, d, doc in [
        ("GELU_DERIV", g, 6, "`Phi(-a) - a phi(a)`, degree 6: gelu's backward."),
        ("GELU_TAIL", tail, 6, "`Phi(-a)`, degree 6: gelu."),
    ]:
        coef = table(f, d, edges, centres)
        out += rust_table(name, doc, d, centres, coef, report(f, k1, k2, centres, coef))
        out.append("")
    print("\n".join(out[:-1]))


if __name__ == "__main__":
    main()

"""Fit the float32 tables behind gelu, gelu's backward and silu's backward at
AVX-512 (`src/simd/math/act_tables.rs`, which this prints), and measure their
error in float32 arithmetic as the kernels perform it.

With `a = |x|` in [0, T]:
- gelu's backward: `g(a) = Phi(-a) - a phi(a)`; gelu'(x) is `g(|x|)` for
  x < 0 and `1 - g(|x|)` for x >= 0 (relative accuracy of g is needed for
  x < 0, except near its root at 0.7518);
- gelu: `tail(a) = Phi(-a)`; gelu(x) = `max(x, -0) - |x| tail(|x|)`;
- silu's backward: `h(a) = sigmoid(-a) (1 - a sigmoid(a))`, silu'(x) is
  `h(|x|)` for x < 0 and `1 - h(|x|)` above (root at 1.2785), T = 20.

The interval of `a` is `n = round(a (K1 + K2 a))`, 32 of them (gelu's narrower
where the functions decay faster; silu's uniform). On each, a polynomial of
degree 6 in `t = a - c_n`, with `c_n` a float32 near the interval's middle.
Fit: weighted least squares on Chebyshev nodes with Lawson's reweighting
towards minimax, relative to the function (absolute with a floor of 0.02 on
the interval that holds its root); coefficients rounded to float32.

    python tools/fit_act_tables.py > src/simd/math/act_tables.rs

Needs numpy and scipy (scipy's `ndtr` and `expit` are the float64 references).
"""

import numpy as np
from scipy.special import expit, ndtr

N = 32


def g(a):
    return ndtr(-a) - a * np.exp(-0.5 * a * a) / np.sqrt(2 * np.pi)


def tail(a):
    return ndtr(-a)


def h(a):
    return expit(-a) * (1 - a * expit(a))


# name: (T, R, the function's root or None); K2 T = R K1, so that the last
# interval is 1 / (1 + 2R) as wide as the first.
GRIDS = {"GELU": (8.0, 1.0, 0.7518), "SILU": (20.0, 0.0, 1.2785)}


def fma32(a, b, c):
    # a * b is exact in float64 for float32 a, b; the sum rounds twice, which
    # only matters for an error estimate in a rare halfway case.
    return (np.float64(a) * np.float64(b) + np.float64(c)).astype(np.float32)


def fit_interval(f, lo, hi, c, d, root, m=400, iters=40):
    s = np.cos(np.pi * (np.arange(m) + 0.5) / m)
    a = (lo + hi) / 2 + (hi - lo) / 2 * s
    y = f(a)
    wgt = 1 / np.maximum(np.abs(y), 0.02 if root is not None and lo <= root <= hi else 0.0)
    v = np.vander(a - c, d + 1, increasing=True)
    lw = np.ones(m)
    for _ in range(iters):
        w = wgt * np.sqrt(lw)
        coef = np.linalg.lstsq(v * w[:, None], y * w, rcond=None)[0]
        e = np.abs(v @ coef - y) * wgt
        lw = lw * e
        lw /= lw.sum()
    return coef


def intervals(t_max, r):
    # u(a) = a (k1 + k2 a), with u(T) just below N - 1/2 so that round(u)
    # stays below N after the float32 roundings.
    k1 = np.float32((N - 0.5 - 0.01) / (t_max * (1 + r)))
    k2 = np.float32(r * float(k1) / t_max)
    k1d, k2d = float(k1), float(k2)
    u = np.arange(N - 1) + 0.5
    inner = (-k1d + np.sqrt(k1d * k1d + 4 * k2d * u)) / (2 * k2d) if k2d else u / k1d
    edges = np.concatenate([[0.0], inner, [t_max]])
    centres = ((edges[:-1] + edges[1:]) / 2).astype(np.float32)
    return k1, k2, edges, centres


def table(f, d, edges, centres, root):
    pad = 1e-4  # each interval a little wider than its share, for the rounding of u
    rows = [
        fit_interval(f, max(edges[i] - pad, 0.0), edges[i + 1] + pad, float(centres[i]), d, root)
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


def report(f, t_max, root, k1, k2, centres, coef):
    """The errors of the results the kernel builds from the table."""
    lo, hi = np.float32(1e-9).view(np.int32), np.float32(t_max).view(np.int32)
    a = np.arange(lo, hi + 1, 3, dtype=np.int32).view(np.float32)
    p = evaluate(a, k1, k2, centres, coef).astype(np.float64)
    ad = a.astype(np.float64)
    ref = f(ad)
    lines = [f"every 3rd float32 a in [1e-9, {t_max:g}] ({a.size} values):"]
    if f is tail:
        neg = (-ad * p.astype(np.float32)).astype(np.float32).astype(np.float64)
        pos = fma32(-a, p.astype(np.float32), a).astype(np.float64)
        want = ad * ndtr(ad)
        lines += [
            f"relative error of tail {np.max(np.abs(p - ref) / ref):.2e};"
            f" of gelu: x < 0 {np.max(np.abs(neg + ad * ref) / (ad * ref)):.2e},"
            f" x > 0 {np.max(np.abs(pos - want) / want):.2e}",
        ]
    else:
        err = np.abs(p - ref)
        near = np.abs(a - root) < 0.25
        far = (a <= 2) & ~near
        pos = (np.float32(1) - p.astype(np.float32)).astype(np.float64)
        lines += [
            f"x < 0: relative {np.max(err[a > 2] / np.abs(ref[a > 2])):.2e} beyond |x| = 2,"
            f" {np.max(err[far] / np.abs(ref[far])):.2e} within (|x + {root}| >= 0.25),",
            f"{np.max(err[near]):.2e} absolute near the root;"
            f" x >= 0: relative {np.max(np.abs(pos - (1 - ref)) / (1 - ref)):.2e}",
        ]
    return lines


def lit(v):
    # The shortest literal that reads back as this float32.
    return np.format_float_scientific(np.float32(v), unique=True, trim="0").replace("e+", "e")


def rust_row(row, indent):
    return [indent + " ".join(lit(v) + "," for v in row[i : i + 4]) for i in range(0, N, 4)]


def rust_table(name, doc, d, coef, err_lines):
    out = [f"/// {doc}", "///"]
    out += [f"/// {line}" for line in err_lines]
    out.append(f"pub static {name}: Table<{d + 1}> = Table([")
    for j in range(d + 1):
        out += ["    ["] + rust_row(coef[:, j], "        ") + ["    ],"]
    out.append("]);")
    return out


def main():
    out = [
        "//! float32 tables for gelu, gelu's backward and silu's backward at",
        "//! AVX-512 (`super::avx512`, scalar forms in `super`). Generated by",
        "//! `python tools/fit_act_tables.py` (see there for the fit); do not edit.",
        "//! Each row holds one value per interval of `a = |x|`: a grid's `centre`",
        "//! the interval's centre `c`, row `j` of a table the coefficient of",
        "//! `(a - c)^j`.",
        "",
        "/// Rows of 32 float32, aligned for 512-bit loads.",
        "#[repr(align(64))]",
        "pub struct Table<const R: usize>(pub [[f32; 32]; R]);",
        "",
        "/// Where a grid's tables hold: `|x| <= t`, beyond which x < 0 takes the",
        "/// exp-based forms and x > 0 evaluates at `t`; the interval of `a` is",
        "/// `round(a (k1 + k2 a))`, and `centre` its centre.",
        "pub struct Grid {",
        "    pub t: f32,",
        "    pub k1: f32,",
        "    pub k2: f32,",
        "    pub centre: Table<1>,",
        "}",
        "",
    ]
    fits = {
        "GELU": [
            ("GELU_DERIV", g, "`Phi(-a) - a phi(a)`: gelu's backward."),
            ("GELU_TAIL", tail, "`Phi(-a)`: gelu."),
        ],
        "SILU": [("SILU_DERIV", h, "`sigmoid(-a) (1 - a sigmoid(a))`: silu's backward.")],
    }
    for grid, (t_max, r, root) in GRIDS.items():
        k1, k2, edges, centres = intervals(t_max, r)
        out += [
            f"pub static {grid}_GRID: Grid = Grid {{",
            f"    t: {lit(t_max)},",
            f"    k1: {lit(k1)},",
            f"    k2: {lit(k2)},",
            "    centre: Table([",
            "        [",
            *rust_row(centres, "            "),
            "        ],",
            "    ]),",
            "};",
            "",
        ]
        for name, f, doc in fits[grid]:
            coef = table(f, 6, edges, centres, root)
            err = report(f, t_max, root, k1, k2, centres, coef)
            out += rust_table(name, doc + " Degree 6.", 6, coef, err)
            out.append("")
    print("\n".join(out[:-1]))


if __name__ == "__main__":
    main()

//! The vector math against references: f32 over a dense sweep of bit
//! patterns against the f64 standard library, f64 against libm / an
//! independent series-and-continued-fraction erfc at sampled points.

use super::*;

/// |got - want| in units of the f32 ulp of `want` (subnormal-aware).
fn ulps32(got: f32, want: f64) -> f64 {
    if got.is_nan() && want.is_nan() {
        return 0.0;
    }
    if want.is_infinite() || got.is_infinite() {
        return if got as f64 == want {
            0.0
        } else {
            f64::INFINITY
        };
    }
    let ulp = if want.abs() < f32::MIN_POSITIVE as f64 {
        f32::from_bits(1) as f64
    } else {
        2f64.powf(want.abs().log2().floor() - 23.0)
    };
    (got as f64 - want).abs() / ulp
}

fn ulps64(got: f64, want: f64) -> f64 {
    if got.is_nan() && want.is_nan() {
        return 0.0;
    }
    if want.is_infinite() || got.is_infinite() {
        return if got == want { 0.0 } else { f64::INFINITY };
    }
    let ulp = if want.abs() < f64::MIN_POSITIVE {
        f64::from_bits(1)
    } else {
        2f64.powf(want.abs().log2().floor() - 52.0)
    };
    (got - want).abs() / ulp
}

/// Every `step`-th f32 bit pattern in [lo, hi] (both signs when `both`).
fn sweep(lo: f32, hi: f32, step: u32, both: bool, mut f: impl FnMut(f32)) {
    let mut b = lo.to_bits();
    while b <= hi.to_bits() {
        let x = f32::from_bits(b);
        f(x);
        if both {
            f(-x);
        }
        b += step;
    }
}

fn worst32(
    name: &str,
    lo: f32,
    hi: f32,
    both: bool,
    f: impl Fn(f32) -> f32,
    r: impl Fn(f64) -> f64,
) -> f64 {
    worst_of(name, "ulp", (lo, hi, 7, both), |x| {
        ulps32(f(x), r(x as f64))
    })
}

/// The largest `err(x)` over every `step`-th f32 in [lo, hi] (and its
/// negation when `both`), reported with where it is.
fn worst_of(
    name: &str,
    unit: &str,
    (lo, hi, step, both): (f32, f32, u32, bool),
    err: impl Fn(f32) -> f64,
) -> f64 {
    let mut worst = (0.0, 0.0f32);
    sweep(lo, hi, step, both, |x| {
        let e = err(x);
        if e > worst.0 || e.is_nan() {
            worst = (e, x);
        }
    });
    eprintln!("{name}: worst {:.4e} {unit} at {}", worst.0, worst.1);
    worst.0
}

fn samples64(lo: f64, hi: f64, n: usize) -> impl Iterator<Item = f64> {
    // A fixed LCG: reproducible, no dependency.
    let mut s: u64 = 0x9E37_79B9_7F4A_7C15;
    (0..n).map(move |_| {
        s = s
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        lo + (hi - lo) * ((s >> 11) as f64 / (1u64 << 53) as f64)
    })
}

fn worst64(lo: f64, hi: f64, f: impl Fn(f64) -> f64, r: impl Fn(f64) -> f64) -> f64 {
    samples64(lo, hi, 200_000)
        .map(|x| ulps64(f(x), r(x)))
        .fold(0.0, f64::max)
}

#[test]
fn expm1_f32_within_8ulp_dense_sweep() {
    let w = worst32("expm1", 0.0, 88.0, true, expm1::<f32>, f64::exp_m1);
    assert!(w <= 8.0, "{w}");
}

#[test]
fn expm1_nonpos_f32_within_2ulp_dense_sweep() {
    let w = worst32(
        "expm1_nonpos",
        0.0,
        88.0,
        false,
        |x| expm1_nonpos(-x),
        |x| (-x).exp_m1(),
    );
    assert!(w <= 2.0, "{w}");
    assert_eq!(expm1_nonpos(f32::NEG_INFINITY), -1.0);
    assert!(expm1_nonpos(f32::NAN).is_nan());
    assert_eq!(expm1_nonpos(1.0f32), 0.0);
    assert_eq!(expm1_nonpos(-1e-40f32), -1e-40);
}

#[test]
fn expm1_nonpos_f64_within_3ulp_sampled() {
    for (lo, hi) in [(-1.0, 0.0), (-800.0, 0.0), (-1e-6, 0.0), (-1e-300, 0.0)] {
        let w = worst64(lo, hi, expm1_nonpos::<f64>, f64::exp_m1);
        assert!(w <= 3.0, "[{lo}, {hi}]: {w}");
    }
    assert_eq!(expm1_nonpos(f64::NEG_INFINITY), -1.0);
    assert!(expm1_nonpos(f64::NAN).is_nan());
}

#[test]
fn expm1_f64_within_8ulp_sampled() {
    for (lo, hi) in [(-1.0, 1.0), (-40.0, 700.0), (-1e-6, 1e-6)] {
        let w = worst64(lo, hi, expm1::<f64>, f64::exp_m1);
        assert!(w <= 8.0, "[{lo}, {hi}]: {w}");
    }
}

#[test]
fn log1p_f32_within_3ulp_dense_sweep() {
    let w = worst32("log1p+", 0.0, f32::MAX, false, log1p::<f32>, f64::ln_1p);
    assert!(w <= 3.0, "{w}");
    let w = worst32("log1p-", 0.0, 1.0, false, |x| log1p(-x), |x| (-x).ln_1p());
    assert!(w <= 3.0, "{w}");
}

#[test]
fn log1p_unit_f32_within_2ulp_dense_sweep() {
    let w = worst32("log1p_unit", 0.0, 1.0, false, log1p_unit::<f32>, f64::ln_1p);
    assert!(w <= 2.0, "{w}");
    assert!(log1p_unit(f32::NAN).is_nan());
    assert_eq!(log1p_unit(0.0f32), 0.0);
}

#[test]
fn log1p_unit_f64_within_2ulp_sampled() {
    for (lo, hi) in [(0.0, 1.0), (0.0, 1e-3), (1e-300, 1e-290)] {
        let w = worst64(lo, hi, log1p_unit::<f64>, f64::ln_1p);
        assert!(w <= 2.0, "[{lo}, {hi}]: {w}");
    }
    assert!(log1p_unit(f64::NAN).is_nan());
    assert_eq!(log1p_unit(1.0f64), std::f64::consts::LN_2);
}

#[test]
fn ln_f32_within_3ulp_dense_sweep_including_subnormals() {
    let w = worst32("ln", 0.0, f32::MAX, false, ln::<f32>, f64::ln);
    assert!(w <= 3.0, "{w}");
}

#[test]
fn ln_log1p_f64_within_3ulp_sampled() {
    for (lo, hi) in [(1e-300, 1e-290), (0.5, 2.0), (1.0, 1e300)] {
        assert!(worst64(lo, hi, ln::<f64>, f64::ln) <= 3.0);
    }
    for (lo, hi) in [(-0.999, 1.0), (-1e-9, 1e-9), (1.0, 1e300)] {
        assert!(worst64(lo, hi, log1p::<f64>, f64::ln_1p) <= 3.0);
    }
    assert_eq!(ln(4.9e-324f64), (4.9e-324f64).ln());
}

#[test]
fn log_special_values() {
    assert_eq!(ln(0.0f32), f32::NEG_INFINITY);
    assert_eq!(ln(f32::INFINITY), f32::INFINITY);
    assert!(ln(-1.0f32).is_nan() && ln(f32::NAN).is_nan());
    assert_eq!(log1p(-1.0f64), f64::NEG_INFINITY);
    assert_eq!(log1p(f64::INFINITY), f64::INFINITY);
    assert!(log1p(-2.0f64).is_nan());
    assert_eq!(log1p(1e-30f32), 1e-30f32);
}

#[test]
fn tanh_f32_within_8ulp_dense_sweep() {
    let w = worst32("tanh", 0.0, 20.0, true, tanh::<f32>, f64::tanh);
    assert!(w <= 8.0, "{w}");
    assert_eq!(tanh(f32::INFINITY), 1.0);
    assert_eq!(tanh(f32::NEG_INFINITY), -1.0);
}

#[test]
fn tanh_f64_within_8ulp_sampled() {
    for (lo, hi) in [(-1.0, 1.0), (-30.0, 30.0), (-1e-8, 1e-8)] {
        let w = worst64(lo, hi, tanh::<f64>, f64::tanh);
        assert!(w <= 8.0, "{w}");
    }
}

#[test]
fn tanh_deriv_matches_1_minus_tanh_squared_where_that_is_accurate() {
    for x in samples64(-0.5, 0.5, 10_000) {
        let want = 1.0 - x.tanh() * x.tanh();
        assert!(ulps64(tanh_deriv(x), want) <= 8.0);
    }
}

/// Independent f64 erfc: the all-positive series of erf for z < 0.5, the
/// continued fraction (backward recurrence) beyond.
fn erfc_ref(z: f64) -> f64 {
    let sqrt_pi = std::f64::consts::PI.sqrt();
    if z < 0.5 {
        let mut term = z;
        let mut sum = z;
        let mut n = 0.0;
        while term > 1e-20 * sum {
            n += 1.0;
            term *= 2.0 * z * z / (2.0 * n + 1.0);
            sum += term;
        }
        1.0 - 2.0 / sqrt_pi * (-z * z).exp() * sum
    } else {
        let mut f = z;
        for k in (1..4000).rev() {
            f = z + (k as f64 / 2.0) / f;
        }
        (-z * z).exp() / sqrt_pi / f
    }
}

/// The standard normal pdf, as gelu's backward gets it.
fn norm_pdf<T: Float>(x: T) -> T {
    gauss_tail_pdf(x).1
}

fn ndtr_ref(x: f64) -> f64 {
    // erfc_ref's exp(-z*z) loses z^2 ulp to the rounding of z; redo that
    // factor with x^2 split exactly (z = x / sqrt 2).
    let z = x.abs() / std::f64::consts::SQRT_2;
    let (p, e) = two_prod(x, x);
    let fix = if z < 0.5 {
        1.0
    } else {
        (-p / 2.0).exp() * (1.0 - e / 2.0) / (-z * z).exp()
    };
    let t = erfc_ref(z) * fix / 2.0;
    if x < 0.0 {
        t
    } else {
        1.0 - t
    }
}

#[test]
fn ndtr_f64_within_2e_15_relative() {
    let mut worst = 0.0f64;
    for x in samples64(-37.0, 8.0, 20_000) {
        let (g, w) = (ndtr(x), ndtr_ref(x));
        worst = worst.max(((g - w) / w).abs());
    }
    assert!(worst < 2e-15, "{worst}");
}

/// Worst relative error of `f` against the f64 reference `r` over every
/// `step`-th f32 in [lo, hi] and its negation, measured against `max(|r|,
/// floor)`: relative where the reference is above `floor`, absolute (in
/// units of `floor`) below. With `floor = f32::MIN_POSITIVE` that is
/// relative accuracy wherever the result is a normal number.
fn worst_rel32(
    name: &str,
    (lo, hi): (f32, f32),
    step: u32,
    floor: f64,
    f: impl Fn(f32) -> f32,
    r: impl Fn(f64) -> f64,
) -> f64 {
    worst_of(name, "relative", (lo, hi, step, true), |x| {
        let (g, w) = (f(x) as f64, r(x as f64));
        if g == w {
            0.0
        } else {
            (g - w).abs() / w.abs().max(floor)
        }
    })
}

const NORMAL: f64 = f32::MIN_POSITIVE as f64;
const SPECIALS: [f32; 6] = [
    f32::INFINITY,
    f32::NEG_INFINITY,
    f32::MAX,
    -f32::MAX,
    0.0,
    -0.0,
];

#[test]
fn ndtr_f32_within_1e_6_relative_dense_sweep() {
    let w = worst_rel32("ndtr", (0.0, 16.0), 29, NORMAL, ndtr::<f32>, ndtr::<f64>);
    assert!(w <= 1e-6, "{w}");
    assert_eq!(ndtr(f32::NEG_INFINITY), 0.0);
    assert_eq!(ndtr(f32::INFINITY), 1.0);
}

#[test]
fn x_ndtr_f32_within_1e_6_relative_dense_sweep() {
    // gelu over [-20, 20], subnormal inputs included, against the f64 version
    // (checked below), relative wherever the result is a normal number.
    let w = worst_rel32(
        "x_ndtr",
        (0.0, 20.0),
        29,
        NORMAL,
        x_ndtr::<f32>,
        x_ndtr::<f64>,
    );
    assert!(w <= 1e-6, "{w}");
    for v in SPECIALS {
        assert_eq!(x_ndtr(v), x_ndtr(v as f64) as f32, "{v}");
    }
    // Negative results that underflow keep their sign.
    for v in [-0.0f32, -15.0, -1e30, f32::NEG_INFINITY] {
        assert_eq!(x_ndtr(v).to_bits(), (-0.0f32).to_bits(), "{v}");
    }
}

#[test]
fn x_ndtr_deriv_f32_within_1e_6_dense_sweep() {
    // gelu's derivative has a root at -0.7518, where Phi(x) and x phi(x)
    // cancel: within |x| < 2 the error counts against max(|d|, 0.5) (so at
    // most 5e-7 absolute, 1e-6 relative above 0.5); beyond, relative
    // wherever the result is a normal number.
    let (f, r) = (x_ndtr_deriv::<f32>, x_ndtr_deriv::<f64>);
    let w = worst_rel32("x_ndtr_deriv |x| < 2", (0.0, 2.0), 29, 0.5, f, r);
    assert!(w <= 1e-6, "{w}");
    let w = worst_rel32("x_ndtr_deriv |x| >= 2", (2.0, 20.0), 29, NORMAL, f, r);
    assert!(w <= 1e-6, "{w}");
    for v in SPECIALS {
        assert_eq!(x_ndtr_deriv(v), x_ndtr_deriv(v as f64) as f32, "{v}");
    }
    assert_eq!(ndtr(0.0f32), 0.5);
}

#[test]
fn x_ndtr_table_f32_within_4e_7_relative_dense_sweep() {
    // The table form of gelu, as `x_ndtr` above: 3.3e-7 relative up to |x| =
    // 8; the exp-based form takes x < -8.
    let r = x_ndtr::<f64>;
    let w = worst_rel32("x_ndtr_table", (0.0, 8.0), 29, NORMAL, x_ndtr_table, r);
    assert!(w <= 4e-7, "{w}");
    let w = worst_rel32("x_ndtr_table", (8.0, 20.0), 29, NORMAL, x_ndtr_table, r);
    assert!(w <= 1e-6, "{w}");
    for v in SPECIALS {
        assert_eq!(x_ndtr_table(v), x_ndtr(v as f64) as f32, "{v}");
    }
    for v in [-0.0f32, -15.0, -1e30, f32::NEG_INFINITY] {
        assert_eq!(x_ndtr_table(v).to_bits(), (-0.0f32).to_bits(), "{v}");
    }
    assert!(x_ndtr_table(f32::NAN).is_nan());
    // Above the table, x itself.
    assert_eq!(x_ndtr_table(8.5), 8.5);
}

#[test]
fn grad_x_ndtr_deriv_table_f32_dense_sweep() {
    // The table form of gelu's backward (grad 1), as `x_ndtr_deriv` above:
    // against max(|d|, 0.5) within |x| < 2 (the root at -0.7518), relative
    // beyond, where the table gives 2.5e-7 up to |x| = 8 and the exp-based
    // form takes x < -8 (5.4e-7).
    let f = |x: f32| grad_x_ndtr_deriv_table(1.0, x);
    let r = x_ndtr_deriv::<f64>;
    let w = worst_rel32("table |x| < 2", (0.0, 2.0), 29, 0.5, f, r);
    assert!(w <= 1.5e-7, "{w}");
    let w = worst_rel32("table 2 <= |x| <= 8", (2.0, 8.0), 29, NORMAL, f, r);
    assert!(w <= 3e-7, "{w}");
    let w = worst_rel32("table |x| > 8", (8.0, 20.0), 29, NORMAL, f, r);
    assert!(w <= 6e-7, "{w}");
    // Where x Phi(x) is 1 or 0 (and +-0, 1/2), bit for bit; NaN for NaN.
    for (x, want) in [
        (f32::INFINITY, 1.0),
        (f32::MAX, 1.0),
        (20.0, 1.0),
        (f32::NEG_INFINITY, 0.0),
        (-f32::MAX, 0.0),
        (0.0, 0.5),
        (-0.0, 0.5),
    ] {
        assert_eq!(f(x), want, "{x}");
        assert_eq!(grad_x_ndtr_deriv_table(-3.0, x), -3.0 * want, "{x}");
    }
    assert!(f(f32::NAN).is_nan());
    assert!(grad_x_ndtr_deriv_table(f32::NAN, 1.0).is_nan());
    // An infinite grad where x is large: inf (the derivative is not exactly
    // 1 at the clamp, which its product with a finite grad rounds away).
    assert_eq!(grad_x_ndtr_deriv_table(f32::INFINITY, 100.0), f32::INFINITY);
}

#[test]
fn x_ndtr_f64_matches_x_times_ndtr() {
    for x in samples64(-37.0, 8.0, 10_000) {
        assert_eq!(x_ndtr(x), x * ndtr(x));
        let want = ndtr_ref(x) + x * norm_pdf(x);
        let got = x_ndtr_deriv(x);
        assert!(
            (got - want).abs() <= 1e-15 * (1.0 + want.abs()),
            "{x} {got} {want}"
        );
    }
}

#[test]
fn norm_pdf_f64_matches_exp() {
    for x in samples64(-37.0, 37.0, 10_000) {
        // exp(-x*x/2) loses |x|^2 ulp to the rounding of x*x; compare loosely.
        let want = (-x * x / 2.0).exp() / (2.0 * std::f64::consts::PI).sqrt();
        assert!(
            ((norm_pdf(x) - want) / want).abs() < 1e-15 * (1.0 + x * x),
            "{x}"
        );
    }
}

#[test]
fn exp_nonpos_is_bit_identical_to_exp_for_nonpositive_inputs() {
    // Against this crate's two-step exp; every 17th f32 in [-110, 0]
    // (subnormal and zero results included).
    let mut b = (-110.0f32).to_bits();
    while b > 0x8000_0000 {
        let x = f32::from_bits(b);
        assert_eq!(
            exp_nonpos(x).to_bits(),
            <f32 as Float>::exp(x).to_bits(),
            "{x}"
        );
        b -= 17;
    }
    let mut x = -750.0f64;
    while x <= 0.0 {
        assert_eq!(
            exp_nonpos(x).to_bits(),
            <f64 as Float>::exp(x).to_bits(),
            "{x}"
        );
        x += 0.001_237;
    }
    assert_eq!(exp_nonpos(f32::NEG_INFINITY), 0.0);
    assert!(exp_nonpos(f32::NAN).is_nan());
}

#[test]
fn exp_biased_nonpos_unbiased_is_bit_identical_to_exp_corr_for_nonpositive_inputs() {
    // Every 61st f32 in [-110, 0], each with a few correction terms.
    let un32 = <f32 as Float>::EXP_UNBIAS as f32;
    let mut b = (-110.0f32).to_bits();
    while b > 0x8000_0000 {
        let x = f32::from_bits(b);
        for lo in [0.0, 1e-9, -3e-8] {
            let (a, e) = (f32::exp_biased_nonpos(x, lo) * un32, f32::exp_corr(x, lo));
            assert_eq!(a.to_bits(), e.to_bits(), "{x} {lo}");
        }
        b -= 61;
    }
    let un64 = <f64 as Float>::EXP_UNBIAS;
    let mut x = -800.0f64;
    while x <= 0.0 {
        let (a, e) = (
            f64::exp_biased_nonpos(x, 1e-18) * un64,
            f64::exp_corr(x, 1e-18),
        );
        assert_eq!(a.to_bits(), e.to_bits(), "{x}");
        x += 0.001_237;
    }
    for v in [0.0f32, -0.0, -104.0, f32::NEG_INFINITY] {
        assert_eq!(f32::exp_biased_nonpos(v, 0.0) * un32, f32::exp_corr(v, 0.0));
    }
    assert!(f32::exp_biased_nonpos(f32::NAN, 0.0).is_nan());
    assert!(f64::exp_biased_nonpos(f64::NAN, 0.0).is_nan());
}

#[test]
fn exp_flush_is_exp_above_the_normal_range_and_zero_below() {
    let mut b = (-120.0f32).to_bits();
    while b > 0x8000_0000 {
        let x = f32::from_bits(b);
        let want = if x < -87.0 {
            0.0
        } else {
            <f32 as Float>::exp(x)
        };
        assert_eq!(f32::exp_flush(x).to_bits(), want.to_bits(), "{x}");
        b -= 17;
    }
    let mut x = -800.0f64;
    while x <= 0.0 {
        let want = if x < -708.0 {
            0.0
        } else {
            <f64 as Float>::exp(x)
        };
        assert_eq!(f64::exp_flush(x).to_bits(), want.to_bits(), "{x}");
        x += 0.001_237;
    }
    assert_eq!(f32::exp_flush(f32::NEG_INFINITY), 0.0);
    assert!(f32::exp_flush(f32::NAN).is_nan());
}

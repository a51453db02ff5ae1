//! Vectorisable elementary functions beyond `exp`: `expm1`, `ln` / `log1p`,
//! `tanh`, the standard normal CDF `ndtr` (via `erfc`) and pdf. Generic over
//! [`Float`], branch-free (every branch is a select), `#[inline(always)]`:
//! called on one value each *is* the scalar reference; in a lane loop it
//! vectorises. Polynomial degrees are chosen per type at compile time.
//!
//! Accuracy (checked in `cargo test`, f32 over a dense sweep, f64 sampled):
//! `expm1` <= 8 ulp (`expm1_nonpos` <= 2), `ln` / `log1p` <= 3 ulp, `tanh`
//! <= 8 ulp; `ndtr`, `x_ndtr` (gelu) and its derivative within 1e-6 relative
//! in f32 (8.2e-7 measured, ~14 ulp; the derivative 3.3e-7 absolute near its
//! root) and 2e-15 relative in f64, on the whole range where the result is a
//! normal number.
//! The f64 erfc fit was made with `mpmath.chebyfit`, the f32 ones by
//! reweighted least squares (see the comment above each table).

use super::Float;

#[inline(always)]
pub(crate) fn is_f32<T: Float>() -> bool {
    T::MANTISSA_DIGITS == 24
}

#[inline(always)]
fn c<T: Float>(v: f64) -> T {
    T::from_f64(v)
}

/// `|x|` (keeps NaN; `-0` stays `-0`, which no caller minds).
#[inline(always)]
pub fn abs<T: Float>(x: T) -> T {
    if x < T::ZERO {
        -x
    } else {
        x
    }
}

#[inline(always)]
pub fn min<T: Float>(a: T, b: T) -> T {
    if b < a {
        b
    } else {
        a
    }
}

#[inline(always)]
pub fn max<T: Float>(a: T, b: T) -> T {
    if b > a {
        b
    } else {
        a
    }
}

/// Horner evaluation, coefficients highest degree first, one fused
/// multiply-add per step (half the latency of a multiply then an add, and
/// one rounding; the same bits on every build, see [`Float::fma`]).
#[inline(always)]
pub fn poly<T: Float>(x: T, coef: &[f64]) -> T {
    let mut p = c::<T>(coef[0]);
    for &k in &coef[1..] {
        p = T::fma(p, x, c(k));
    }
    p
}

/// Exact product `a * b = p + e` from one fused multiply-add (correctly
/// rounded on every build, so every build gives the same bits).
/// Valid while `a * b` neither overflows nor underflows.
#[inline(always)]
pub fn two_prod<T: Float>(a: T, b: T) -> (T, T) {
    let p = a * b;
    (p, T::fma(a, b, -p))
}

// 1/n! for the Taylor polynomial of (expm1(x) - x) / x^2, highest first.
const EXPM1_F32: [f64; 7] = [
    1.0 / 40320.0,
    1.0 / 5040.0,
    1.0 / 720.0,
    1.0 / 120.0,
    1.0 / 24.0,
    1.0 / 6.0,
    0.5,
];
const EXPM1_F64: [f64; 13] = [
    1.0 / 87_178_291_200.0,
    1.0 / 6_227_020_800.0,
    1.0 / 479_001_600.0,
    1.0 / 39_916_800.0,
    1.0 / 3_628_800.0,
    1.0 / 362_880.0,
    1.0 / 40_320.0,
    1.0 / 5_040.0,
    1.0 / 720.0,
    1.0 / 120.0,
    1.0 / 24.0,
    1.0 / 6.0,
    0.5,
];

/// `exp(x) - 1` without cancellation: Taylor (truncation < 2e-17 relative in
/// f64, 2e-8 in f32) for |x| < 0.35, `exp(x) - 1` beyond (where the result is
/// at least 0.29 in magnitude, so `exp`'s 2 ulp grow to at most 7 ulp).
/// `exp(x)` for `x <= 0` (larger `x` is clamped to 0): the same bits as
/// [`Float::exp`] there, with one scaling step instead of two (the biased
/// result is normal, so the final multiply rounds a subnormal once).
#[inline(always)]
pub fn exp_nonpos<T: Float>(x: T) -> T {
    exp_of_nonpos(if x > T::ZERO { T::ZERO } else { x })
}

/// [`exp_nonpos`] for an `x` that is `<= 0` (or NaN) by construction, such
/// as `-|x|`: the same bits without the clamp (which LLVM cannot drop). The
/// correction term is -0.0, which the exp's `r + lo` folds away (+0.0 would
/// be added: it turns -0.0 into +0.0).
#[inline(always)]
pub fn exp_of_nonpos<T: Float>(x: T) -> T {
    T::exp_biased_nonpos(x, T::from_f64(-0.0)) * T::from_f64(T::EXP_UNBIAS)
}

#[inline(always)]
pub fn expm1<T: Float>(x: T) -> T {
    let small = abs(x) < c(0.35);
    let xs = if small { x } else { T::ZERO };
    let p = if is_f32::<T>() {
        poly(xs, &EXPM1_F32)
    } else {
        poly(xs, &EXPM1_F64)
    };
    let s = xs + xs * xs * p;
    let big = T::exp(x) - T::ONE;
    if small {
        s
    } else {
        big
    }
}

/// `expm1(x)` for `x <= 0` (larger `x` is clamped to 0): one path, see
/// [`Float::expm1_nonpos`]; at most 2 ulp (f32, dense sweep), 3 ulp (f64,
/// sampled). For elu / selu / celu, whose other branch covers `x > 0`.
#[inline(always)]
pub fn expm1_nonpos<T: Float>(x: T) -> T {
    T::expm1_nonpos(x)
}

// 2/(2k+1), k = 16..1, for 2 atanh(s) = 2s + s z P(z), z = s^2: the series'
// terms, highest first; each use takes the tail it needs.
const ATANH_TERMS: [f64; 16] = [
    2.0 / 33.0,
    2.0 / 31.0,
    2.0 / 29.0,
    2.0 / 27.0,
    2.0 / 25.0,
    2.0 / 23.0,
    2.0 / 21.0,
    2.0 / 19.0,
    2.0 / 17.0,
    2.0 / 15.0,
    2.0 / 13.0,
    2.0 / 11.0,
    2.0 / 9.0,
    2.0 / 7.0,
    2.0 / 5.0,
    2.0 / 3.0,
];
// log(m), |s| <= 0.1716 (z <= 0.0295): up to 2/9 (f32), 2/21 (f64).
const LOG_F32: &[f64] = ATANH_TERMS.split_at(12).1;
const LOG_F64: &[f64] = ATANH_TERMS.split_at(6).1;

/// `2 atanh(s) = 2s + s z P(z)`, `z = s^2`, `P` the series' terms `2/(2k+1)`
/// from `coef` (highest first, ending in 2/3).
#[inline(always)]
fn two_atanh<T: Float>(s: T, coef: &[f64]) -> T {
    let z = s * s;
    (s + s) + s * z * poly(z, coef)
}

/// `log(u) + corr` for a small correction `corr`: `u = m 2^k`,
/// `log(m) = 2 atanh((m-1)/(m+1))` by its series (truncation below 1e-17 in
/// f64, 3e-9 in f32), `k ln 2` in two parts. log(0) = -inf, log(+inf) = +inf,
/// log of a negative number or NaN is NaN. At most 3 ulp.
#[inline(always)]
pub fn ln_corr<T: Float>(u: T, corr: T) -> T {
    let (ln2_hi, ln2_lo): (T, T) = if is_f32::<T>() {
        (c(0.693_359_375), c(-2.121_944_4e-4))
    } else {
        (c(6.931_471_803_691_238e-1), c(1.908_214_929_270_587_7e-10))
    };
    let (m, k) = T::frexp_sqrt2(u);
    let f = m - T::ONE;
    let s = f / (m + T::ONE);
    let lm = if is_f32::<T>() {
        two_atanh(s, LOG_F32)
    } else {
        two_atanh(s, LOG_F64)
    };
    let r = k * ln2_hi + (lm + (k * ln2_lo + corr));
    let r = if u == T::ZERO { T::NEG_INF } else { r };
    let r = if u == T::INF { T::INF } else { r };
    if u < T::ZERO || u.is_nan_() {
        T::NAN
    } else {
        r
    }
}

/// Natural logarithm, at most 3 ulp.
#[inline(always)]
pub fn ln<T: Float>(x: T) -> T {
    ln_corr(x, T::ZERO)
}

/// `log(1 + y)`, at most 3 ulp: `log(u)` of `u = fl(1 + y)` plus the
/// first-order correction `(y - (u - 1)) / u` for the rounding of `u`.
#[inline(always)]
pub fn log1p<T: Float>(y: T) -> T {
    let u = T::ONE + y;
    let corr = (y - (u - T::ONE)) / u;
    let corr = if u > T::ZERO && u < T::INF {
        corr
    } else {
        T::ZERO
    };
    ln_corr(u, corr)
}

/// `log(1 + e)` for `e` in [0, 1] (NaN kept): the softplus term
/// `log1p(exp(-|x|))`, as `2 atanh(e / (2 + e))` by its series: one division
/// and no exponent split (`2 + e` and the quotient each round once, so `s` is
/// within 1 ulp). `s <= 1/3`, `z <= 1/9`: terms up to 2/15 in f32, 2/33 in f64
/// (truncation below 1.4e-9 and 1.5e-17 relative). At most 2 ulp (f32: 1.97
/// over every float in [0, 1]).
#[inline(always)]
pub fn log1p_unit<T: Float>(e: T) -> T {
    let s = e / (c::<T>(2.0) + e);
    if is_f32::<T>() {
        two_atanh(s, ATANH_TERMS.split_at(9).1)
    } else {
        two_atanh(s, &ATANH_TERMS)
    }
}

/// Eigen's rational minimax approximation of tanh for f32 (`ptanh_float`):
/// tanh(x) = x P(x^2) / Q(x^2) on [-7.9053, 7.9053], where the result rounds
/// to +-1 beyond; the odd and even coefficients, lowest degree last.
const TANH_P_F32: [f64; 7] = [
    -2.760_768_477_423_55e-16,
    2.000_187_904_824_77e-13,
    -8.604_671_522_137_35e-11,
    5.122_297_090_371_14e-8,
    1.485_722_357_179_79e-5,
    6.372_619_288_754_36e-4,
    4.893_524_558_917_86e-3,
];
const TANH_Q_F32: [f64; 4] = [
    1.198_258_394_667_02e-6,
    1.185_347_056_866_54e-4,
    2.268_434_632_439e-3,
    4.893_525_185_543_85e-3,
];

/// `tanh(x)`, at most 8 ulp. f32: the rational approximation above (one
/// division, no exp), +-1 beyond 9, `x` itself below 4e-4 (where tanh(x) =
/// x to 5e-8, and subnormals keep their precision). f64: `-expm1(-2|x|) / (2 +
/// expm1(-2|x|))` with the sign of x: no cancellation, saturates to +-1.
#[inline(always)]
pub fn tanh<T: Float>(x: T) -> T {
    if is_f32::<T>() {
        let lim = c::<T>(7.905_311_107_635_498);
        // A clamp by min and max, which keep NaN (two operations, where the
        // chained comparisons took two compares and two selects).
        let xc = max(min(x, lim), -lim);
        let x2 = xc * xc;
        let t = xc * poly(x2, &TANH_P_F32) / poly(x2, &TANH_Q_F32);
        // Beyond 9, tanh rounds to +-1 (the clamped rational stays 4 ulp
        // below); below 4e-4 it is x (tested on x2 = x^2, at hand, rather
        // than on |x|; false for NaN).
        let one = if x > T::ZERO { T::ONE } else { -T::ONE };
        let t = if abs(x) > c(9.0) { one } else { t };
        return if x2 < c(1.6e-7) { x } else { t };
    }
    let a = abs(x);
    let em = expm1_nonpos(-(a + a));
    let t = -em / (c::<T>(2.0) + em);
    // tanh(+-0) = +-0 (t is +0 at both).
    if x == T::ZERO {
        x
    } else if x < T::ZERO {
        -t
    } else {
        t
    }
}

/// `1 - tanh(x)^2 = 4e / (1 + e)^2 = e / h^2` with `e = exp(-2|x|)` and `h
/// = (1 + e) / 2` (one multiply-add, and no multiply by 4): exact to a few
/// ulp even where tanh(x) rounds to 1.
#[inline(always)]
pub fn tanh_deriv<T: Float>(x: T) -> T {
    let e = exp_of_nonpos((x + x).neg_abs());
    let h = T::fma(e, c(0.5), c(0.5));
    e / (h * h)
}

// f64 Gaussian tail factor: P(t) = erfcx(|x| / sqrt 2) / (2 t), t = 1 / (1 + |x| / 4), on
// t in [1 / (1 + 39 / 4), 1] in s = (t - c) / h, c = 0.5465116279069767,
// h = 0.45348837209302323: mpmath.chebyfit at 50 digits, degree 23; max
// relative error 3.8e-18 (the Horner steps in f64 add ~1 ulp).
pub(crate) const GAUSS_TAIL_F64: [f64; 24] = [
    1.921909095157675e-11,
    -2.825244481756455e-11,
    -1.7661105557781176e-10,
    4.208933507268504e-10,
    6.683562916592422e-10,
    -3.444757982787629e-09,
    4.2943659033375706e-10,
    2.097568622368539e-08,
    -2.8467235285326984e-08,
    -1.0885076116928931e-07,
    3.032869979240628e-07,
    5.460055016951827e-07,
    -2.615903719498998e-06,
    -3.4055735605665425e-06,
    2.211752515079877e-05,
    3.6802015814358027e-05,
    -0.00018435522002990175,
    -0.0006253647641938236,
    0.000814711547263758,
    0.010726581694236112,
    0.039092488866995456,
    0.09097668420675963,
    0.15531102555618123,
    0.2038345992106292,
];

/// `(x^2 / 2)` split exactly as `hi + lo` for |x| <= 40, from which
/// `exp(-x^2 / 2)` is computed without the error of rounding `x^2`.
#[inline(always)]
fn half_square<T: Float>(a: T) -> (T, T) {
    // a / 2 is exact (a subnormal a's square underflows whatever is done).
    two_prod(a, a * c(0.5))
}

/// The largest |x| the Gaussian tails are evaluated at: beyond it the tail
/// and the pdf round to zero in the type (f32: Phi(-14.4) ~ 3e-47, phi(14.4)
/// ~ 4e-46; f64: Phi(-38.6) ~ 3e-327, phi(38.6) ~ 1e-324), and `-x^2/2`
/// stays above `EXP_BIASED_MIN` (-103.7 > -104, -745.0 > -746), so the exp
/// needs no range checks.
#[inline(always)]
fn gauss_clamp<T: Float>(x: T) -> T {
    min(abs(x), if is_f32::<T>() { c(14.4) } else { c(38.6) })
}

/// `(Phi(-|x|), phi(x))` in f64: the standard normal tail and pdf, `x^2/2`
/// split exactly so that both keep full relative accuracy down to the
/// underflow threshold. (f32 takes [`gauss_parts_f32`] instead; given f32,
/// this evaluates the f64 fit in f32.)
///
/// One exp for both: `tail = exp(-x^2/2) t P(t)` with `t = 1 / (1 + |x| /
/// 4)` and `P` a degree-23 polynomial fit of `erfcx(|x| / sqrt 2) / (2 t)`
/// (the scaled complementary error function, smooth in `t`). Relative error
/// at most 2e-15.
#[inline(always)]
pub fn gauss_tail_pdf<T: Float>(x: T) -> (T, T) {
    let a = gauss_clamp(x);
    let (hi, lo) = half_square(a);
    // exp(-x^2/2) * 2^EXP_BIAS, normal wherever the results are nonzero.
    let e = T::exp_biased_in_range(-hi, -lo);
    let unbias = c::<T>(T::EXP_UNBIAS);
    let pdf = e * unbias * c(FRAC_1_SQRT_2PI);
    let t = T::ONE / T::fma(a, c(0.25), T::ONE);
    let p = poly(
        T::fma(t, c(2.205_128_205_128_205_3), c(-1.205_128_205_128_205)),
        &GAUSS_TAIL_F64,
    );
    // Products of normal numbers, then one rounding into the subnormal range
    // (if the tail lands there).
    (e * t * p * unbias, pdf)
}

const FRAC_1_SQRT_2PI: f64 = 0.398_942_280_401_432_7;

/// Horner's scheme in `x^2` over the pairs `c_hi x + c_lo` (coefficients
/// highest first; with an odd count the leading one stands alone): half of
/// [`poly`]'s dependent steps, for the square `x2 = x * x` (which the caller
/// may have at hand).
#[inline(always)]
pub fn poly_pairs<T: Float>(x: T, x2: T, coef: &[f64]) -> T {
    let pair = |k: &[f64]| T::fma(c(k[0]), x, c(k[1]));
    let (mut p, rest) = if coef.len() % 2 == 1 {
        (c::<T>(coef[0]), &coef[1..])
    } else {
        (pair(coef), &coef[2..])
    };
    for k in rest.chunks_exact(2) {
        p = T::fma(p, x2, pair(k));
    }
    p
}

// f32: exp(w / 2) on |w| <= ln 2 (w = 2r of the reduction below), degree 5
// with the constant 1 fixed: relative minimax by Lawson-reweighted least
// squares on 4000 Chebyshev nodes (numpy), coefficients rounded to f32;
// error 9.2e-8. Scaled by the 2^-65 that undoes the 2^n factor's bias.
const EXP_HALF_F32: [f64; 6] = [
    0.000_259_071_792_243_048_55 * F32_UNBIAS,
    0.002_618_626_458_570_361 * F32_UNBIAS,
    0.020_834_546_536_207_2 * F32_UNBIAS,
    0.124_997_869_133_949_28 * F32_UNBIAS,
    0.499_999_850_988_388_06 * F32_UNBIAS,
    F32_UNBIAS,
];

// f32 Gaussian tail factor R(a) = erfcx(a / sqrt 2) / 2 = N(a) / D(a), N of
// degree 3, D of degree 4 with leading coefficient 1 and N(0) = D(0) / 2 (so
// R(0) = 1/2 exactly): relative minimax on [0, 14] (where the results stop
// being normal numbers; the error stays below 2.1e-6 up to the clamp at 16)
// by linearised least squares (the previous step's D as the weight) with
// Lawson reweighting, 6000 Chebyshev nodes, scipy's erfcx as the reference;
// 4.0e-7, 6.2e-7 evaluated in f32 with the coefficients rounded to f32.
const GAUSS_NUM_F32: [f64; 4] = [
    0.398_893_743_753_433_2,
    2.809_493_303_298_95,
    8.528_652_191_162_11,
    11.814_150_810_241_7,
];
const GAUSS_DEN_F32: [f64; 5] = [
    1.0,
    7.037_446_975_708_008,
    22.459_514_617_919_922,
    35.909_656_524_658_2,
    23.628_301_620_483_4,
];
const F32_UNBIAS: f64 = <f32 as Float>::EXP_UNBIAS;
/// `|x|` is clamped here, where every result has underflowed.
const GAUSS_CLAMP: f64 = 16.0;
/// `-a^2 / (2 ln 2)` is `a^2` times this, before rounding to `n`.
const GAUSS_K: f64 = -0.5 * std::f64::consts::LOG2_E;
/// `-2 ln 2 = GAUSS_C_HI + GAUSS_C_LO`; `n GAUSS_C_HI` is exact (355/256).
const GAUSS_C_HI: f64 = -1.386_718_75;
const GAUSS_C_LO: f64 = 4.243_888_834_025_711e-4;

/// f32: `(a, e, num, den)` with `a = min(|x|, 16)`, `e = exp(-a^2/2)`,
/// `Phi(-a) = e * num / den` and `phi(a) = e * FRAC_1_SQRT_2PI`. `e` is the
/// product of the polynomial (with the 2^-65 unbias) and a biased, normal
/// `2^(n + 65)`: one rounding where it is subnormal (`a > 13.2`, where every
/// result is below the normal range too).
///
/// Beyond 16 every result has underflowed. The exp's reduction: `n =
/// round(-a^2 / (2 ln 2))`, then `w = -a^2 - 2n ln 2` with `2 ln 2 = C_hi -
/// C_lo`: `-a^2 - n C_hi` from the exact `a^2` inside one multiply-add (`n
/// C_hi` is exact, C_hi = 355/256), rounded once, then `+ n C_lo`.
/// `exp(w/2)` by a degree-5 polynomial, `R` by a 3/4 rational, both in
/// pairs: ~20 multiply-adds and one division per lane array in short
/// dependency chains (the old form's 80-cycle chain, not its multiplies,
/// bound it on Zen 5: 26 cycles per 16 elements, now 12).
#[inline(always)]
pub fn gauss_parts_f32<T: Float>(x: T) -> (T, T, T, T) {
    let a = min(x.fabs(), c(GAUSS_CLAMP));
    let a2 = a * a;
    let (n, s) = T::round_pow2_biased(a2, c(GAUSS_K));
    // w = -a^2 - n (C_hi - C_lo): -a^2 - n C_hi from the exact a^2 inside
    // one multiply-add (n C_hi is exact), then + n C_lo. Two roundings of a
    // result below ln 2 in magnitude, and no split of a^2 (one operation
    // fewer than `two_prod` and adding its low part).
    let w = T::fma(n, c(GAUSS_C_LO), T::fma(-a, a, n * c(GAUSS_C_HI)));
    let e = poly_pairs(w, w * w, &EXP_HALF_F32) * s;
    let num = poly_pairs(a, a2, &GAUSS_NUM_F32);
    let den = poly_pairs(a, a2, &GAUSS_DEN_F32);
    (a, e, num, den)
}

/// `Phi(x)` from the tail `Phi(-|x|)`.
#[inline(always)]
pub fn ndtr_from_tail<T: Float>(x: T, tail: T) -> T {
    if x < T::ZERO {
        tail
    } else {
        T::ONE - tail
    }
}

/// The standard normal CDF `Phi(x) = erfc(-x / sqrt 2) / 2` (see
/// [`gauss_tail_pdf`], [`gauss_parts_f32`]).
#[inline(always)]
pub fn ndtr<T: Float>(x: T) -> T {
    let tail = if is_f32::<T>() {
        let (_, e, num, den) = gauss_parts_f32(x);
        e * (num / den)
    } else {
        gauss_tail_pdf(x).0
    };
    ndtr_from_tail(x, tail)
}

/// `x Phi(x)` (gelu), the limit 0 at -inf. f32: `max(x, -0) - a Phi(-a)`
/// with `a = |x|` in one rounding (no cancellation: `a Phi(-a) < x / 2` for
/// `x > 0`; the `-0` gives the underflowed negative results their sign);
/// 8.2e-7 relative at most (every 3rd f32 in [-20, 20] against f64).
#[inline(always)]
pub fn x_ndtr<T: Float>(x: T) -> T {
    if is_f32::<T>() {
        let (a, e, num, den) = gauss_parts_f32(x);
        return T::fma(-e, (a * num) / den, max(x, c(-0.0)));
    }
    if x == T::NEG_INF {
        T::ZERO
    } else {
        x * ndtr(x)
    }
}

/// `Phi(x) + x phi(x)`, the derivative of [`x_ndtr`]; the limits at +-inf.
/// f32: `g = Phi(-a) - a phi(a) = e (num / den - a / sqrt(2 pi))` with `a =
/// |x|` is the result for `x < 0` and `1 - g` for `x >= 0`; 5.4e-7 relative
/// beyond |x| = 2, 3.3e-7 absolute within (the root at -0.7518 cancels).
#[inline(always)]
pub fn x_ndtr_deriv<T: Float>(x: T) -> T {
    if is_f32::<T>() {
        let (a, e, num, den) = gauss_parts_f32(x);
        let g = e * T::fma(a, c(-FRAC_1_SQRT_2PI), num / den);
        return if x < T::ZERO { g } else { T::ONE - g };
    }
    let (tail, pdf) = gauss_tail_pdf(x);
    let d = ndtr_from_tail(x, tail) + x * pdf;
    if abs(x) == T::INF {
        if x > T::ZERO {
            T::ONE
        } else {
            T::ZERO
        }
    } else {
        d
    }
}

/// `grad * (Phi(x) + x phi(x))`: gelu's backward. f32: with `g` of
/// [`x_ndtr_deriv`], `u = grad g` for `x < 0` and `grad - u` for `x >= 0`
/// (one rounding fewer than `grad (1 - g)`). Written with `x >= 0` as the
/// select's condition, whose true arm computes from the false arm: LLVM
/// makes it one masked subtract at AVX-512, where `x < 0` took a subtract
/// and a blend, and `grad (1 - g)` a multiply more (1 thread in L2, A/B:
/// 0.94 of the time).
#[inline(always)]
pub fn grad_x_ndtr_deriv<T: Float>(grad: T, x: T) -> T {
    if is_f32::<T>() {
        let (a, e, num, den) = gauss_parts_f32(x);
        let u = grad * (e * T::fma(a, c(-FRAC_1_SQRT_2PI), num / den));
        return if x >= T::ZERO { grad - u } else { u };
    }
    grad * x_ndtr_deriv(x)
}

/// float32 gelu and its backward (and silu's backward) at AVX-512 take the
/// tables of [`act_tables`]; these are their scalar forms, bit for bit, and
/// their references in the tests. With `a = min(|x|, grid.t)`, a polynomial
/// of degree 6 in `a - c_n` on the interval `n = round(a (k1 + k2 a))` of 32
/// gives `Phi(-a)` (gelu), `Phi(-a) - a phi(a)` (its backward) or
/// `sigmoid(-a) (1 - a sigmoid(a))` (silu's backward); `x < -grid.t` and NaN
/// take the exp-based forms instead. The index is the low five bits of `v =
/// a w + 2^23` (one rounding to an integer). No exp and no division: 22-23
/// vector operations per 16 lanes, where the exp-based forms have 25-32
/// (silu's backward about 22 and a division).
///
/// Returns `(a, p)`.
#[inline(always)]
pub fn table_poly<const R: usize>(
    x: f32,
    grid: &act_tables::Grid,
    tab: &act_tables::Table<R>,
) -> (f32, f32) {
    let a = x.abs().min(grid.t);
    let w = a.mul_add(grid.k2, grid.k1);
    let n = (a.mul_add(w, 8_388_608.0).to_bits() & 31) as usize;
    let t = a - grid.centre.0[0][n];
    let mut p = tab.0[R - 1][n];
    for row in tab.0[..R - 1].iter().rev() {
        p = p.mul_add(t, row[n]);
    }
    (a, p)
}

/// `grad h` for x < 0 and `grad - grad h` for x >= 0, with `h(|x|)` from
/// `tab` (gelu's and silu's backward: `f'(x) = 1 - f'(-x)`); `None` below
/// the grid or for NaN.
#[inline(always)]
pub fn table_backward<const R: usize>(
    grad: f32,
    x: f32,
    grid: &act_tables::Grid,
    tab: &act_tables::Table<R>,
) -> Option<f32> {
    if x < -grid.t || x.is_nan() {
        return None;
    }
    let u = grad * table_poly(x, grid, tab).1;
    Some(if x >= 0.0 { grad - u } else { u })
}

/// gelu (`x Phi(x)`) in float32 from [`act_tables::GELU_TAIL`]: as in
/// [`x_ndtr`], `max(x, -0)` less `a Phi(-a)` in one rounding. 3.2e-7
/// relative at most for |x| <= 8 (`tools/fit_act_tables.py`, `cargo
/// test`), against 8.2e-7 for the exp-based form, which takes x < -8.
#[inline(always)]
pub fn x_ndtr_table(x: f32) -> f32 {
    use act_tables::{GELU_GRID, GELU_TAIL};
    if x < -GELU_GRID.t || x.is_nan() {
        return x_ndtr(x);
    }
    let (a, p) = table_poly(x, &GELU_GRID, &GELU_TAIL);
    (-a).mul_add(p, max(x, -0.0))
}

/// gelu's backward in float32 from [`act_tables::GELU_DERIV`]: with `g =
/// Phi(-a) - a phi(a)`, `u = grad g` for `x < 0` and `grad - u` for `x >=
/// 0`, as in [`grad_x_ndtr_deriv`]. 2.5e-7 relative beyond |x| = 2 and
/// 1.2e-8 absolute near the root at -0.7518, against 5.4e-7 and 3.3e-7 for
/// the exp-based form, which takes x < -8.
#[inline(always)]
pub fn grad_x_ndtr_deriv_table(grad: f32, x: f32) -> f32 {
    use act_tables::{GELU_DERIV, GELU_GRID};
    table_backward(grad, x, &GELU_GRID, &GELU_DERIV).unwrap_or_else(|| grad_x_ndtr_deriv(grad, x))
}

#[cfg(target_arch = "x86_64")]
pub mod avx512;
#[rustfmt::skip]
pub mod act_tables;

#[cfg(test)]
mod tests;

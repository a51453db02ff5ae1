//! The `Float` trait: one generic kernel serves f32 and f64. Every method is
//! branch-free scalar code marked `#[inline(always)]`, so a loop over a lane
//! array of them vectorises; called on one value it *is* the scalar reference.

use std::fmt::Debug;
use std::ops::{Add, AddAssign, Div, Mul, Neg, Sub};

pub trait Float:
    Copy
    + Send
    + Sync
    + Debug
    + Default
    + PartialOrd
    + Add<Output = Self>
    + Sub<Output = Self>
    + Mul<Output = Self>
    + Div<Output = Self>
    + Neg<Output = Self>
    + AddAssign
    + 'static
{
    const ZERO: Self;
    const ONE: Self;
    const INF: Self;
    const NEG_INF: Self;
    const NAN: Self;
    /// Bits of precision (24 or 53).
    const MANTISSA_DIGITS: u32;
    /// The smallest positive normal value.
    const MIN_POSITIVE: Self;

    fn to_f64(self) -> f64;
    fn from_f64(v: f64) -> Self;

    /// NaN test that compiles to one compare in a lane loop.
    #[inline(always)]
    #[allow(clippy::eq_op)]
    fn is_nan_(self) -> bool {
        self != self
    }

    /// `x - m` as an unevaluated sum `hi + lo` with `hi = fl(x - m)`: the bits
    /// that rounding drops are kept in `lo` (exact for finite inputs).
    fn diff(x: Self, m: Self) -> (Self, Self);

    /// `exp(hi + lo)` for a small correction `lo`; at most 2 ulp from the true
    /// value (1 ulp typical), exact 0 below the subnormal range, +inf above the
    /// largest finite result, NaN for NaN.
    fn exp_corr(hi: Self, lo: Self) -> Self;

    /// `exp(x)` with the same accuracy as [`Float::exp_corr`].
    #[inline(always)]
    fn exp(x: Self) -> Self {
        Self::exp_corr(x, Self::ZERO)
    }

    /// `exp(hi + lo) * 2^EXP_BIAS` for `hi <= 0` (or NaN), such as `x - max`:
    /// the product is normal (or exactly 0 where `exp(hi)` is below half the
    /// smallest subnormal, -inf included), so a later multiply by a factor
    /// holding `2^-EXP_BIAS` rounds a subnormal result once; times
    /// `2^-EXP_BIAS` it is `exp_corr(hi, lo)` bit for bit. Positive `hi` is
    /// the caller's to clamp (no overflow checks here).
    #[inline(always)]
    fn exp_biased_nonpos(hi: Self, lo: Self) -> Self {
        // exp_corr's range checks for hi <= 0 (NaN kept: comparisons with it
        // are false), then the unchecked exp. `lo` is not cleared below the
        // range (a NaN `lo` from `-inf - m`, say): such a result is replaced
        // by 0 anyway.
        let min = Self::from_f64(Self::EXP_BIASED_MIN);
        let small = hi < min;
        let x = if small { min } else { hi };
        let e = Self::exp_biased_in_range(x, lo);
        if small {
            Self::ZERO
        } else {
            e
        }
    }

    /// [`Float::exp_biased_nonpos`] for `hi` known to lie in
    /// `(EXP_BIASED_MIN, 0]` (or NaN), where its range checks never fire: the
    /// same bits, without them.
    fn exp_biased_in_range(hi: Self, lo: Self) -> Self;

    /// The bound (excluded) above which [`Float::exp_biased_in_range`] takes `hi`.
    const EXP_BIASED_MIN: f64;

    /// `2^-EXP_BIAS`, the factor that undoes [`Float::exp_biased_nonpos`]'s bias.
    const EXP_UNBIAS: f64;

    /// `exp(x)` for `x <= 0` or NaN, flushing results below the normal range
    /// to 0: for sums where the max contributes 1. Every caller passes
    /// `x - max`, which is never above 0, so there is no clamp (a larger `x`
    /// gives `exp(x)` below the overflow range, garbage above it).
    fn exp_flush(x: Self) -> Self;

    /// `exp(x) - 1` for `x <= 0` (larger `x` is clamped to 0), NaN kept: one
    /// reduction `x = n ln 2 + r`, `q = expm1(r)` from exp's polynomial before
    /// its `+ 1`, then `2^n q + (2^n - 1)` in one fused multiply-add (`2^n - 1`
    /// is exact while it matters). No cancellation near 0 (n = 0 there), and
    /// no second path for small `x`.
    #[inline(always)]
    fn expm1_nonpos(x: Self) -> Self {
        // Below EXPM1_NONPOS_MIN the result rounds to -1, and 2^n stays normal.
        let x = if x > Self::ZERO { Self::ZERO } else { x };
        let min = Self::from_f64(Self::EXPM1_NONPOS_MIN);
        let x = if x < min { min } else { x };
        let (q, s) = Self::expm1_scaled(x);
        let r = Self::fma(q, s, s - Self::ONE);
        // expm1(-0) = -0 (the sum above gives +0): elu, celu and selu of -0
        // are -0, as in PyTorch and NumPy.
        if x == Self::ZERO {
            x
        } else {
            r
        }
    }

    /// `(expm1(r), 2^n)` with `x = n ln 2 + r`, for `x` in
    /// `[EXPM1_NONPOS_MIN, 0]` (or NaN): the parts of [`Float::expm1_nonpos`].
    fn expm1_scaled(x: Self) -> (Self, Self);

    /// Where [`Float::expm1_nonpos`] clamps: its result is -1 below, and
    /// `2^n` is normal above (f32: -87, n >= -126; f64: -708, n >= -1021).
    const EXPM1_NONPOS_MIN: f64;

    /// Fused multiply-add `a * b + c` with one rounding (hardware FMA on the
    /// AVX2/AVX-512/NEON builds; correctly rounded everywhere, so every build
    /// gives the same bits).
    fn fma(a: Self, b: Self, c: Self) -> Self;

    /// `|x|` by clearing the sign bit (one `and` in a lane loop; `-0` gives
    /// `+0`, NaN stays NaN).
    fn fabs(self) -> Self;

    /// `-|x|` by setting the sign bit (one `or` in a lane loop, where
    /// negating [`Float::fabs`] takes two operations; NaN stays NaN).
    fn neg_abs(self) -> Self;

    /// A zero with `self`'s sign bit (one `and` in a lane loop): `self * 0`
    /// for finite `self`, and still a zero for +-inf and NaN.
    fn zero_signed(self) -> Self;

    /// `(n, 2^n / EXP_UNBIAS)` (`2^n` with the bias that
    /// [`Float::EXP_UNBIAS`] undoes) for `n = x * k` rounded to an integer
    /// (ties to even): one multiply-add `x k + 1.5 * 2^(p-1) + offset` whose
    /// low mantissa bits hold the biased exponent of `2^n`, shifted into
    /// place by one shift (see `exp_f32_consts::MAGIC_BIASED`). `|x k| <
    /// 2^21`, and the biased power must be a normal number: f32 n in [-191,
    /// 63], f64 n in [-1535, 511].
    fn round_pow2_biased(x: Self, k: Self) -> (Self, Self);

    /// For finite `x > 0` (subnormals included): `(m, k)` with `x = m * 2^k`
    /// and `m` in `[sqrt(1/2), sqrt(2))`, `k` integral. Bit tricks only, so a
    /// lane loop over it vectorises (no float <-> 64-bit int conversions).
    fn frexp_sqrt2(x: Self) -> (Self, Self);
}

impl Float for f32 {
    const ZERO: Self = 0.0;
    const ONE: Self = 1.0;
    const INF: Self = f32::INFINITY;
    const NEG_INF: Self = f32::NEG_INFINITY;
    const NAN: Self = f32::NAN;
    const MANTISSA_DIGITS: u32 = 24;
    const MIN_POSITIVE: Self = f32::MIN_POSITIVE;

    #[inline(always)]
    fn to_f64(self) -> f64 {
        self as f64
    }
    #[inline(always)]
    fn from_f64(v: f64) -> Self {
        v as f32
    }
    #[inline(always)]
    fn diff(x: Self, m: Self) -> (Self, Self) {
        // Knuth's TwoSum of x and -m (6 flops, no widening).
        let s = x - m;
        let bp = s - x;
        let lo = (x - (s - bp)) + (-m - bp);
        (s, lo)
    }
    #[inline(always)]
    fn exp_corr(hi: Self, lo: Self) -> Self {
        exp_f32(hi, lo)
    }
    const EXP_UNBIAS: f64 = f64::from_bits(((1023 - exp_f32_consts::BIAS) as u64) << 52); // 2^-65
    const EXP_BIASED_MIN: f64 = -104.0;
    #[inline(always)]
    fn exp_biased_in_range(hi: Self, lo: Self) -> Self {
        // The reduction's rounding constant carries the biased exponent
        // offset, so 2^n, biased, is its bits shifted into place: one shift.
        let (q, t) = expm1_f32_reduce(hi, lo, exp_f32_consts::MAGIC_BIASED);
        scale_exp(q, f32::from_bits(t.to_bits() << 23))
    }
    #[inline(always)]
    fn exp_flush(x: Self) -> Self {
        debug_assert!(x <= 0.0 || x.is_nan(), "exp_flush({x:?}): x must be <= 0");
        let small = x < exp_f32_consts::FLUSH_MIN;
        // No range clamps: a result below -87 is discarded, and adding -0.0
        // (not +0.0) as the correction folds away.
        let (q, n) = expm1_f32_poly(x, -0.0);
        let e = scale_exp(
            q,
            f32::from_bits((n.wrapping_add(127) as u32).wrapping_shl(23)),
        );
        if small {
            0.0
        } else {
            e
        }
    }
    const EXPM1_NONPOS_MIN: f64 = -87.0;
    #[inline(always)]
    fn expm1_scaled(x: Self) -> (Self, Self) {
        let (q, n) = expm1_f32_poly(x, -0.0);
        (
            q,
            f32::from_bits((n.wrapping_add(127) as u32).wrapping_shl(23)),
        )
    }
    #[inline(always)]
    fn fma(a: Self, b: Self, c: Self) -> Self {
        a.mul_add(b, c)
    }
    #[inline(always)]
    fn fabs(self) -> Self {
        self.abs()
    }
    #[inline(always)]
    fn zero_signed(self) -> Self {
        f32::from_bits(self.to_bits() & 0x8000_0000)
    }
    #[inline(always)]
    fn neg_abs(self) -> Self {
        f32::from_bits(self.to_bits() | 0x8000_0000)
    }
    #[inline(always)]
    fn round_pow2_biased(x: Self, k: Self) -> (Self, Self) {
        use exp_f32_consts::MAGIC_BIASED;
        let t = x.mul_add(k, MAGIC_BIASED);
        (t - MAGIC_BIASED, f32::from_bits(t.to_bits() << 23))
    }
    #[inline(always)]
    fn frexp_sqrt2(x: Self) -> (Self, Self) {
        let tiny = x < f32::MIN_POSITIVE;
        let xs = if tiny { x * 16_777_216.0 } else { x };
        let bits = xs.to_bits();
        let e = ((bits >> 23) & 0xff) as i32;
        let m = f32::from_bits((bits & 0x007f_ffff) | 0x3f80_0000);
        let big = m > std::f32::consts::SQRT_2;
        let m = if big { m * 0.5 } else { m };
        let k = e - 127 + big as i32 - if tiny { 24 } else { 0 };
        (m, k as f32)
    }
}

impl Float for f64 {
    const ZERO: Self = 0.0;
    const ONE: Self = 1.0;
    const INF: Self = f64::INFINITY;
    const NEG_INF: Self = f64::NEG_INFINITY;
    const NAN: Self = f64::NAN;
    const MANTISSA_DIGITS: u32 = 53;
    const MIN_POSITIVE: Self = f64::MIN_POSITIVE;

    #[inline(always)]
    fn to_f64(self) -> f64 {
        self
    }
    #[inline(always)]
    fn from_f64(v: f64) -> Self {
        v
    }
    #[inline(always)]
    fn diff(x: Self, m: Self) -> (Self, Self) {
        // Knuth's TwoSum of x and -m.
        let s = x - m;
        let bp = s - x;
        let lo = (x - (s - bp)) + (-m - bp);
        (s, lo)
    }
    #[inline(always)]
    fn exp_corr(hi: Self, lo: Self) -> Self {
        exp_f64(hi, lo)
    }
    const EXP_UNBIAS: f64 = f64::from_bits((1023 - EXP_F64_BIAS) << 52); // 2^-513
    const EXP_BIASED_MIN: f64 = -746.0;
    #[inline(always)]
    fn exp_biased_in_range(hi: Self, lo: Self) -> Self {
        // As for f32: 2^n, biased, from one shift.
        let (q, t) = expm1_f64_reduce(hi, lo, MAGIC_F64_BIASED);
        scale_exp(q, f64::from_bits(t.to_bits() << 52))
    }
    #[inline(always)]
    fn exp_flush(x: Self) -> Self {
        debug_assert!(x <= 0.0 || x.is_nan(), "exp_flush({x:?}): x must be <= 0");
        let small = x < -708.0;
        // As for f32: no range clamps, a -0.0 correction.
        let (q, n) = expm1_f64_poly(x, -0.0);
        let e = scale_exp(
            q,
            f64::from_bits((n.wrapping_add(1023) as u64).wrapping_shl(52)),
        );
        if small {
            0.0
        } else {
            e
        }
    }
    const EXPM1_NONPOS_MIN: f64 = -708.0;
    #[inline(always)]
    fn expm1_scaled(x: Self) -> (Self, Self) {
        let (q, n) = expm1_f64_poly(x, -0.0);
        (
            q,
            f64::from_bits((n.wrapping_add(1023) as u64).wrapping_shl(52)),
        )
    }
    #[inline(always)]
    fn fma(a: Self, b: Self, c: Self) -> Self {
        a.mul_add(b, c)
    }
    #[inline(always)]
    fn fabs(self) -> Self {
        self.abs()
    }
    #[inline(always)]
    fn zero_signed(self) -> Self {
        f64::from_bits(self.to_bits() & 0x8000_0000_0000_0000)
    }
    #[inline(always)]
    fn neg_abs(self) -> Self {
        f64::from_bits(self.to_bits() | 0x8000_0000_0000_0000)
    }
    #[inline(always)]
    fn round_pow2_biased(x: Self, k: Self) -> (Self, Self) {
        let t = x.mul_add(k, MAGIC_F64_BIASED);
        (t - MAGIC_F64_BIASED, f64::from_bits(t.to_bits() << 52))
    }
    #[inline(always)]
    fn frexp_sqrt2(x: Self) -> (Self, Self) {
        const TWO52: f64 = 4_503_599_627_370_496.0;
        let tiny = x < f64::MIN_POSITIVE;
        let xs = if tiny {
            x * 18_014_398_509_481_984.0
        } else {
            x
        }; // 2^54
        let bits = xs.to_bits();
        // The biased exponent as an f64 without an i64 -> f64 conversion
        // (AVX2 has none): put it in the mantissa of 2^52 and subtract 2^52.
        let e = f64::from_bits(0x4330_0000_0000_0000 | ((bits >> 52) & 0x7ff)) - TWO52;
        let m = f64::from_bits((bits & 0x000f_ffff_ffff_ffff) | 0x3ff0_0000_0000_0000);
        let big = m > std::f64::consts::SQRT_2;
        let m = if big { m * 0.5 } else { m };
        let k = e - 1023.0 + if big { 1.0 } else { 0.0 } - if tiny { 54.0 } else { 0.0 };
        (m, k)
    }
}

/// `(1 + q) * s` for a power of two `s`, as one fused multiply-add `q * s +
/// s`. Wherever the result is normal this is bit for bit `(q + 1.0) * s`
/// (scaling by a power of two commutes with rounding), one operation fewer
/// for every exp; the callers' scale factors keep it normal (the biased and
/// two-step forms round into the subnormal range with a later multiply).
#[inline(always)]
pub fn scale_exp<T: Float>(q: T, s: T) -> T {
    T::fma(q, s, s)
}

/// exp(hi + lo) in f32 as `(q, n)` with the value `(1 + q) * 2^n`:
/// Cody-Waite reduction by ln 2, a degree-6 minimax polynomial
/// (`expm1_f32_poly`), FMA; [`scale_exp`] forms the value. `hi` is clamped to
/// [-104, 89] (NaN kept); `n` is in [-150, 128].
#[inline(always)]
pub fn exp_f32_core(hi: f32, lo: f32) -> (f32, i32) {
    // Comparisons are false for NaN, so NaN flows through to the result.
    let in_range = hi > -104.0 && hi < 89.0;
    let lo = if in_range { lo } else { 0.0 };
    let x = if hi < -104.0 { -104.0 } else { hi };
    let x = if x > 89.0 { 89.0 } else { x };
    expm1_f32_poly(x, lo)
}

/// The constants of the f32 exp (`expm1_f32_poly`), shared with the
/// intrinsics kernels that repeat its steps (`simd::tile`).
pub(crate) mod exp_f32_consts {
    pub const LOG2E: f32 = std::f32::consts::LOG2_E;
    pub const LN2_HI: f32 = 0.693_359_4; // 355/512: n * LN2_HI is exact
    pub const LN2_LO: f32 = -2.121_944_4e-4;
    pub const MAGIC: f32 = 12_582_912.0; // 1.5 * 2^23: adding it rounds to an integer
    /// log2 of the bias of `exp_biased_nonpos` (see `EXP_UNBIAS`). Odd, so
    /// that `127 + BIAS` is even: see `MAGIC_BIASED`.
    pub const BIAS: i32 = 65;
    /// `MAGIC + 127 + BIAS`: adding it rounds to an integer `n` as `MAGIC`
    /// does, ties to even included (the offset is even), and leaves
    /// `n + 127 + BIAS` in the low 9 bits of the sum (MAGIC's are 0), so the
    /// sum's bits shifted left by 23 are the biased `2^(n + BIAS)` for `n`
    /// in [-191, 63] (no add).
    pub const MAGIC_BIASED: f32 = MAGIC + (127 + BIAS) as f32;
    /// Where `exp_flush` gives 0 (below it the result leaves the normal range).
    pub const FLUSH_MIN: f32 = -87.0;
    /// q = r + r^2 P(r), P of degree 4 (highest first): a minimax fit of
    /// (expm1(r) - r) / r^2 on |r| <= 0.35 (reweighted least squares, mpmath
    /// reference; |error of q| <= 8.5e-9, 2.6e-8 relative, with the
    /// coefficients rounded to f32).
    pub const P: [f32; 5] = [
        1.394_211e-3,
        8.363_769e-3,
        4.166_636_2e-2,
        1.666_657_3e-1,
        0.5,
    ];
}

/// `(expm1(r), n)` with `x + lo = n ln 2 + r`, `|r| <= ln 2 / 2`.
#[inline(always)]
fn expm1_f32_poly(x: f32, lo: f32) -> (f32, i32) {
    use exp_f32_consts::MAGIC;
    let (q, t) = expm1_f32_reduce(x, lo, MAGIC);
    (q, (t.to_bits() as i32).wrapping_sub(MAGIC.to_bits() as i32))
}

/// `(expm1(r), t)` with `x + lo = n ln 2 + r`, `|r| <= ln 2 / 2`, and `t =
/// magic + n` for a rounding constant `magic` (`MAGIC` plus an even offset).
#[inline(always)]
fn expm1_f32_reduce(x: f32, lo: f32, magic: f32) -> (f32, f32) {
    use exp_f32_consts::{LN2_HI, LN2_LO, LOG2E, P};
    let t = x.mul_add(LOG2E, magic);
    let n = t - magic;
    let r = n.mul_add(-LN2_HI, x);
    let r = n.mul_add(-LN2_LO, r) + lo;
    let mut p = P[0];
    for &k in &P[1..] {
        p = p.mul_add(r, k);
    }
    (p.mul_add(r * r, r), t)
}

/// exp(hi + lo) in f32, scaling by 2^n in two steps so subnormal results
/// round once. Max error 2 ulp (checked over a dense sweep of [-104, 89]).
#[inline(always)]
pub fn exp_f32(hi: f32, lo: f32) -> f32 {
    let (q, ni) = exp_f32_core(hi, lo);
    let n1 = ni >> 1;
    let n2 = ni.wrapping_sub(n1);
    let s1 = f32::from_bits((n1.wrapping_add(127) as u32).wrapping_shl(23));
    let s2 = f32::from_bits((n2.wrapping_add(127) as u32).wrapping_shl(23));
    scale_exp(q, s1) * s2
}

/// exp(hi + lo) in f64 as `(q, n)` with the value `(1 + q) * 2^n`: Cody-Waite
/// reduction by ln 2, a degree-11 near-minimax polynomial on |r| <= 0.35
/// (`expm1_f64_poly`), FMA. `hi` is clamped to [-746, 710] (NaN kept).
#[inline(always)]
pub fn exp_f64_core(hi: f64, lo: f64) -> (f64, i64) {
    let in_range = hi > -746.0 && hi < 710.0;
    let lo = if in_range { lo } else { 0.0 };
    let x = if hi < -746.0 { -746.0 } else { hi };
    let x = if x > 710.0 { 710.0 } else { x };
    expm1_f64_poly(x, lo)
}

/// 1.5 * 2^52: adding it rounds an f64 to an integer.
const MAGIC_F64: f64 = 6_755_399_441_055_744.0;

/// log2 of the f64 bias of `exp_biased_nonpos` (see `EXP_UNBIAS`); odd, as
/// `exp_f32_consts::BIAS` is.
const EXP_F64_BIAS: u64 = 513;

/// `MAGIC_F64 + 1023 + EXP_F64_BIAS`, as `exp_f32_consts::MAGIC_BIASED`: the
/// sum's bits shifted left by 52 are the biased `2^(n + 513)` for `n` in
/// [-1535, 511].
const MAGIC_F64_BIASED: f64 = MAGIC_F64 + (1023 + EXP_F64_BIAS) as f64;

/// `(expm1(r), n)` with `x + lo = n ln 2 + r`, `|r| <= ln 2 / 2`.
#[inline(always)]
fn expm1_f64_poly(x: f64, lo: f64) -> (f64, i64) {
    let (q, t) = expm1_f64_reduce(x, lo, MAGIC_F64);
    (
        q,
        (t.to_bits() as i64).wrapping_sub(MAGIC_F64.to_bits() as i64),
    )
}

/// `(expm1(r), t)` with `t = magic + n`, as [`expm1_f32_reduce`].
#[inline(always)]
fn expm1_f64_reduce(x: f64, lo: f64, magic: f64) -> (f64, f64) {
    const LOG2E: f64 = std::f64::consts::LOG2_E;
    const LN2_HI: f64 = 6.931_457_519_531_25e-1;
    const LN2_LO: f64 = 1.428_606_820_309_417_2e-6;
    let t = x.mul_add(LOG2E, magic);
    let n = t - magic;
    let r = n.mul_add(-LN2_HI, x);
    let r = n.mul_add(-LN2_LO, r) + lo;
    // q = r + r^2 P(r), P of degree 9: mpmath.chebyfit of (expm1(r) - r) / r^2
    // on |r| <= 0.35 at 50 digits; |error of q| <= 4.8e-17 relative with the
    // coefficients rounded to f64. Two multiply-adds fewer than the degree-13
    // Taylor polynomial it replaces (5e-18); exp stays within 2 ulp.
    let mut p: f64 = 2.5101335854788522e-08;
    p = p.mul_add(r, 2.7621324269313687e-07);
    p = p.mul_add(r, 2.7557266442353424e-06);
    p = p.mul_add(r, 2.4801518672268355e-05);
    p = p.mul_add(r, 0.00019841269864364933);
    p = p.mul_add(r, 0.0013888888918918907);
    p = p.mul_add(r, 0.008333333333329796);
    p = p.mul_add(r, 0.04166666666662068);
    p = p.mul_add(r, 0.16666666666666669);
    p = p.mul_add(r, 0.5000000000000001);
    (p.mul_add(r * r, r), t)
}

/// exp(hi + lo) in f64 with two-step scaling. Max error 2 ulp.
#[inline(always)]
pub fn exp_f64(hi: f64, lo: f64) -> f64 {
    let (q, ni) = exp_f64_core(hi, lo);
    let n1 = ni >> 1;
    let n2 = ni.wrapping_sub(n1);
    let s1 = f64::from_bits((n1.wrapping_add(1023) as u64).wrapping_shl(52));
    let s2 = f64::from_bits((n2.wrapping_add(1023) as u64).wrapping_shl(52));
    scale_exp(q, s1) * s2
}

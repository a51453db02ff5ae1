//! Activations `f`, their derivatives `f'`, and the fused bias + activation
//! passes, all on the one elementwise driver ([`super::elementwise`]).
//!
//! Every activation is one row of the table in [`with_act!`]: a branch-free
//! scalar `f` and backward `grad * f'(x)` (selects only) that vectorise in the
//! lane loops of the multiversioned kernels below; conventions at kinks
//! follow PyTorch, and so do the flat regions, where f' is exactly 0 and the
//! backward is a zero whatever grad is ([`or_flat`]). NaN in the input gives
//! NaN. At +-inf the mathematical limit is returned (PyTorch gives NaN for
//! e.g. silu(-inf) = -inf * 0).
//!
//! Accuracy: built on `simd::math` (a few ulp each), so f32 results are within
//! ~1e-6 relative of the exact value of the function at the f32 input, and f64
//! within ~1e-15 (where a parameter such as `beta * x` is first rounded to the
//! dtype, as in PyTorch, the error is relative to that rounded argument).

use super::elementwise::{
    dst, flush, lane1, lane2, ld, map1, map2, run_tasks, src, st, tasks, Ptr,
};
#[cfg(target_arch = "x86_64")]
use super::elementwise::{map1_lanes, map2_lanes};
use crate::multiversion;
use crate::simd::math::{
    abs, exp_nonpos, exp_of_nonpos, expm1, expm1_nonpos, grad_x_ndtr_deriv, ln_corr, log1p_unit,
    max, min, tanh, tanh_deriv, x_ndtr,
};
use crate::simd::{stream, Float, LANES as L};

/// An activation and its parameters (validated by the caller).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Act {
    Identity,
    Sigmoid,
    LogSigmoid,
    /// `eps`: clip p to [eps, 1 - eps] first (None: no clipping).
    Logit {
        eps: Option<f64>,
    },
    Tanh,
    Relu,
    Relu6,
    LeakyRelu {
        slope: f64,
    },
    Elu {
        alpha: f64,
    },
    Celu {
        alpha: f64,
    },
    Selu,
    Gelu,
    GeluTanh,
    Silu,
    Mish,
    Softplus {
        beta: f64,
        threshold: f64,
    },
    Softsign,
    HardSigmoid,
    HardTanh {
        min: f64,
        max: f64,
    },
    HardSwish,
}

impl Act {
    /// Whether the function (or its derivative) takes an exp, a log or a
    /// division, so that its pass is bound by arithmetic rather than memory
    /// and prefetching its input helps (`elementwise::map1`); the
    /// piecewise-linear ones are memory-bound and do not prefetch.
    pub fn computes(self) -> bool {
        !matches!(
            self,
            Act::Identity
                | Act::Relu
                | Act::Relu6
                | Act::LeakyRelu { .. }
                | Act::HardTanh { .. }
                | Act::HardSigmoid
                | Act::HardSwish
        )
    }
}

#[inline(always)]
fn c<T: Float>(v: f64) -> T {
    T::from_f64(v)
}

#[inline(always)]
fn sel<T: Float>(b: bool, x: T, y: T) -> T {
    if b {
        x
    } else {
        y
    }
}

/// `(sigmoid(x), sigmoid(x) * (1 - sigmoid(x)))` from one `e = exp(-|x|)`:
/// never overflows, no cancellation.
#[inline(always)]
fn sigmoid2<T: Float>(x: T) -> (T, T) {
    let e = exp_of_nonpos(-abs(x));
    let r = T::ONE / (T::ONE + e);
    let er = e * r;
    (sel(x >= T::ZERO, r, er), er * r)
}

// The sigmoid family from `e = exp(-|x|)` and `d = 1 + e`, each with one
// division and no reciprocal: sigmoid(x) is 1/d for x >= 0 and e/d below,
// so sigmoid(x) (1 - sigmoid(x)) = e / d^2 and sigmoid(-x) = e/d or 1/d.
// An exp-based activation is bound by its count of vector operations in
// cache (AVX-512 issues them on two ports); against `1/d` and products of
// it, the forms below take one to two fewer (1 MB float32, 2 threads, A/B
// against stop 27: sigmoid and silu 0.86, the backwards 0.89-0.92).

#[inline(always)]
fn sigmoid<T: Float>(x: T) -> T {
    let e = exp_of_nonpos(x.neg_abs());
    sel(x >= T::ZERO, T::ONE, e) / (T::ONE + e)
}

/// `sigmoid(x) (1 - sigmoid(x)) = e / d^2`.
#[inline(always)]
fn sigmoid_deriv<T: Float>(x: T) -> T {
    let e = exp_of_nonpos(x.neg_abs());
    let d = T::ONE + e;
    e / (d * d)
}

/// `sigmoid(-x)`, the derivative of `log_sigmoid`.
#[inline(always)]
fn sigmoid_neg<T: Float>(x: T) -> T {
    let e = exp_of_nonpos(x.neg_abs());
    sel(x >= T::ZERO, e, T::ONE) / (T::ONE + e)
}

/// log(sigmoid(x)) = min(x, 0) - log1p(exp(-|x|)).
#[inline(always)]
fn log_sigmoid<T: Float>(x: T) -> T {
    min(x, T::ZERO) - log1p_unit(exp_of_nonpos(-abs(x)))
}

#[inline(always)]
fn clip_p<T: Float>(p: T, eps: Option<f64>) -> T {
    match eps {
        Some(e) => {
            let (lo, hi) = eps_bounds::<T>(e);
            sel(p < lo, lo, sel(p > hi, hi, p))
        }
        None => p,
    }
}

/// `logit`'s clip bounds `[eps, 1 - eps]` as PyTorch forms them: `eps` in
/// T, and `1 - eps` from that in T (not `1 - eps` in f64 rounded to T,
/// which in float32 is 1 ulp off for some `eps`, moving the flat region's
/// edge).
#[inline(always)]
fn eps_bounds<T: Float>(e: f64) -> (T, T) {
    let lo = c::<T>(e);
    (lo, T::ONE - lo)
}

/// log(p / (1 - p)): log1p((2p - 1) / (1 - p)) near p = 1/2 (where 2p - 1 is
/// exact), log(p / (1 - p)) elsewhere; one logarithm either way.
#[inline(always)]
fn logit<T: Float>(p: T, eps: Option<f64>) -> T {
    let p = clip_p(p, eps);
    let q = T::ONE - p;
    let mid = abs(p - c(0.5)) < c(0.25);
    let r = (p + p - T::ONE) / q;
    let u_mid = T::ONE + r;
    let corr = (r - (u_mid - T::ONE)) / u_mid;
    let u = sel(mid, u_mid, p / q);
    ln_corr(u, sel(mid, corr, T::ZERO))
}

#[inline(always)]
fn logit_backward<T: Float>(g: T, p: T, eps: Option<f64>) -> T {
    // g / (p (1 - p)), as PyTorch divides: g times the reciprocal
    // overflowed for a subnormal p whose gradient is finite.
    // |p (1 - p)|: p = -0 is a zero of p (1 - p) too, where the gradient
    // is +inf (logit increases; PyTorch); elsewhere it is >= 0 on [0, 1],
    // and outside that range the result is replaced below.
    let d = g / (p * (T::ONE - p)).fabs();
    match eps {
        // Flat outside [eps, 1 - eps], where p is clipped.
        Some(e) => {
            let (lo, hi) = eps_bounds::<T>(e);
            or_flat(p >= lo && p <= hi, d, g)
        }
        // Outside [0, 1] logit is NaN, and so is its gradient (PyTorch).
        None => sel(p < T::ZERO || p > T::ONE, T::NAN, d),
    }
}

/// x > 0 ? x : alpha * expm1(x * k) (elu; celu with k = 1/alpha > 0): the
/// expm1 argument is <= 0 wherever it is used.
#[inline(always)]
fn elu<T: Float>(x: T, alpha: T, k: T) -> T {
    sel(x > T::ZERO, x, alpha * expm1_nonpos(x * k))
}

/// 2 sqrt(2/pi) (x + 0.044715 x^3): 1 + tanh(u) = 2 sigmoid(2u), so
/// gelu_tanh(x) = x sigmoid(2u) has no cancellation for x < 0.
#[inline(always)]
fn gelu_tanh_arg<T: Float>(x: T) -> T {
    c::<T>(2.0 * 0.797_884_560_802_865_4) * (x + c::<T>(0.044_715) * (x * x * x))
}

#[inline(always)]
fn gelu_tanh<T: Float>(x: T) -> T {
    let y = x * sigmoid(gelu_tanh_arg(x));
    sel(x == T::NEG_INF, T::ZERO, y)
}

#[inline(always)]
fn gelu_tanh_deriv<T: Float>(x: T) -> T {
    let (s, ss) = sigmoid2(gelu_tanh_arg(x));
    let k = c::<T>(2.0 * 0.797_884_560_802_865_4);
    let d = s + (x * ss) * (k * (T::ONE + c::<T>(3.0 * 0.044_715) * (x * x)));
    // Beyond |x| = 1e3, s is exactly 0 or 1 and x^3 may overflow.
    sel(abs(x) > c(1e3), sel(x > T::ZERO, T::ONE, T::ZERO), d)
}

#[inline(always)]
fn silu<T: Float>(x: T) -> T {
    sel(x == T::NEG_INF, T::ZERO, x * sigmoid(x))
}

/// `s + x s (1 - s)` with `s = sigmoid(x)`: `(d + x e) / d^2` for x >= 0 and
/// `(e d + x e) / d^2` below (see [`sigmoid`]).
#[inline(always)]
fn silu_deriv<T: Float>(x: T) -> T {
    let y = x.neg_abs();
    let e = exp_of_nonpos(y);
    let d = T::ONE + e;
    // The product in the select's true arm: one masked multiply at AVX-512
    // (with it in the false arm, LLVM multiplies and blends; 0.96 of the time).
    let s = sel(x < T::ZERO, e * d, d);
    // Below EXP_BIASED_MIN (|x| > 104 in f32, 746 in f64) e is exactly 0,
    // so x e adds nothing for finite x, and at +-inf (inf * 0 = NaN) the
    // limits 1 and +0 are s / d^2 alone: a compare and a masked multiply-add
    // at AVX-512 instead of a clamp of x (two operations) and the
    // multiply-add. (NaN takes s, which is NaN.)
    let live = y >= c(T::EXP_BIASED_MIN);
    sel(live, T::fma(x, e, s), s) / (d * d)
}

/// `(tanh(softplus(x)), 1 - tanh(softplus(x))^2, sigmoid(x))` as rational
/// functions of `e = exp(-|x|)`: with w = 1 + e^x, tanh(log w) = (w^2 - 1) /
/// (w^2 + 1); numerator and denominator are rearranged per sign so that
/// neither overflows nor cancels.
#[inline(always)]
fn mish_parts<T: Float>(x: T) -> (T, T, T) {
    let e = exp_of_nonpos(-abs(x));
    let two = c::<T>(2.0);
    let pos = x > T::ZERO;
    // x > 0: N = 1 + 2e, D = N + 2e^2; x <= 0: N = e(e + 2), D = N + 2.
    let n = sel(pos, T::ONE + two * e, e * (e + two));
    let dmn = sel(pos, two * e * e, two);
    let d = n + dmn;
    let t = n / d;
    let one_m_t2 = (dmn * (d + n)) / (d * d);
    let r = T::ONE / (T::ONE + e);
    (t, one_m_t2, sel(pos, r, e * r))
}

#[inline(always)]
fn mish<T: Float>(x: T) -> T {
    sel(x == T::NEG_INF, T::ZERO, x * mish_parts(x).0)
}

#[inline(always)]
fn mish_deriv<T: Float>(x: T) -> T {
    let (t, omt2, s) = mish_parts(x);
    let d = t + x * omt2 * s;
    sel(abs(x) == T::INF, sel(x > T::ZERO, T::ONE, T::ZERO), d)
}

/// PyTorch's softplus: x where beta x > threshold, else
/// log1p(exp(beta x)) / beta = (max(bx, 0) + log1p(exp(-|bx|))) / beta.
#[inline(always)]
fn softplus<T: Float>(x: T, beta: T, threshold: T) -> T {
    let bx = x * beta;
    let y = (max(bx, T::ZERO) + log1p_unit(exp_of_nonpos(-abs(bx)))) / beta;
    sel(bx > threshold, x, y)
}

#[inline(always)]
fn softplus_deriv<T: Float>(x: T, beta: T, threshold: T) -> T {
    let bx = x * beta;
    sel(bx > threshold, T::ONE, sigmoid(bx))
}

#[inline(always)]
fn softsign<T: Float>(x: T) -> T {
    let y = x / (T::ONE + abs(x));
    sel(abs(x) == T::INF, sel(x > T::ZERO, T::ONE, -T::ONE), y)
}

#[inline(always)]
fn softsign_deriv<T: Float>(x: T) -> T {
    let d = T::ONE + abs(x);
    T::ONE / (d * d)
}

/// clamp(x, lo, hi), NaN kept.
#[inline(always)]
fn clamp<T: Float>(x: T, lo: T, hi: T) -> T {
    sel(x < lo, lo, sel(x > hi, hi, x))
}

/// `lo < x < hi`: where a clamp's derivative is 1 (0 at the kinks, PyTorch).
#[inline(always)]
fn inside<T: Float>(x: T, lo: T, hi: T) -> bool {
    x > lo && x < hi
}

/// The backward `gd = grad * f'(x)` where `keep`; elsewhere f' is exactly 0
/// (a flat region) and the result is a zero whatever grad is: PyTorch selects
/// 0 there (`inf * 0` would be NaN). The zero has grad's sign, the bits that
/// `grad * 0` gives for a finite grad (PyTorch's is +0).
#[inline(always)]
fn or_flat<T: Float>(keep: bool, gd: T, g: T) -> T {
    sel(keep, gd, g.zero_signed())
}

/// `v`, or `x` itself where `x` is NaN: for the functions (the backwards
/// of the piecewise-linear ones, logit's, identity's) where a comparison on
/// a NaN `x` would pick a number, or `x` is not used.
#[inline(always)]
fn keep_nan<T: Float>(x: T, v: T) -> T {
    sel(x.is_nan_(), x, v)
}

/// x * relu6(x + 3) / 6, with the limit 0 at -inf; x itself from 3 on
/// (where `x * 6 / 6` would overflow for x above max / 6).
#[inline(always)]
fn hard_swish<T: Float>(x: T) -> T {
    let y = x * clamp(x + c(3.0), T::ZERO, c(6.0)) / c(6.0);
    // Up to -3, PyTorch's `x * 0 / 6`: a zero with x's sign (-0; at -inf the
    // limit, where PyTorch has NaN).
    sel(x <= c(-3.0), x.zero_signed(), sel(x >= c(3.0), x, y))
}

/// PyTorch's hardswish_backward (2.x): f' is 0 up to -3 (flat), x/3 + 1/2
/// strictly between -3 and 3, 1 from 3 on.
#[inline(always)]
fn hard_swish_backward<T: Float>(g: T, x: T) -> T {
    let mid = x / c(3.0) + c(0.5);
    or_flat(x > c(-3.0), g * sel(x < c(3.0), mid, T::ONE), g)
}

const SELU_ALPHA: f64 = 1.673_263_242_354_377_3;
const SELU_SCALE: f64 = 1.050_700_987_355_480_5;

/// Binds `$f` (the activation, `|x|`) and `$b` (its backward, `|grad, x|`:
/// `grad * f'(x)`, a zero where f' is flat) as closures for the activation
/// `$act`, then evaluates `$body` (once per arm, so each arm is its own
/// monomorphised, vectorised loop). Both give NaN for a NaN x, and the
/// kernels add no select of their own for it: the smooth functions carry
/// the NaN through their arithmetic (every comparison on it falls to a
/// branch that computes with x; the tests check each function at every
/// SIMD level), and [`keep_nan`] returns it where a branch would not.
macro_rules! with_act {
    ($act:expr, $T:ty, |$f:ident, $b:ident| $body:expr) => {{
        match $act {
            Act::Identity => {
                let $f = |x: T| x;
                let $b = |g: T, x: T| keep_nan(x, g * T::ONE);
                $body
            }
            Act::Sigmoid => {
                let $f = |x: T| sigmoid(x);
                let $b = |g: T, x: T| g * sigmoid_deriv(x);
                $body
            }
            Act::LogSigmoid => {
                let $f = |x: T| log_sigmoid(x);
                let $b = |g: T, x: T| g * sigmoid_neg(x);
                $body
            }
            Act::Logit { eps } => {
                let $f = |x: T| logit(x, eps);
                let $b = |g: T, x: T| keep_nan(x, logit_backward(g, x, eps));
                $body
            }
            Act::Tanh => {
                let $f = |x: T| tanh(x);
                let $b = |g: T, x: T| g * tanh_deriv(x);
                $body
            }
            Act::Relu => {
                let $f = |x: T| max(x, T::ZERO);
                let $b = |g: T, x: T| keep_nan(x, or_flat(x > T::ZERO, g, g));
                $body
            }
            Act::Relu6 => {
                let $f = |x: T| clamp(x, T::ZERO, c(6.0));
                let $b = |g: T, x: T| keep_nan(x, or_flat(inside(x, T::ZERO, c(6.0)), g, g));
                $body
            }
            Act::LeakyRelu { slope } => {
                let s: T = c(slope);
                let $f = move |x: T| sel(x > T::ZERO, x, x * s);
                let $b = move |g: T, x: T| keep_nan(x, g * sel(x > T::ZERO, T::ONE, s));
                $body
            }
            Act::Elu { alpha } => {
                let a: T = c(alpha);
                let $f = move |x: T| elu(x, a, T::ONE);
                let $b = move |g: T, x: T| g * sel(x > T::ZERO, T::ONE, a * exp_nonpos(x));
                $body
            }
            Act::Celu { alpha } if alpha > 0.0 => {
                let (a, k): (T, T) = (c(alpha), c(1.0 / alpha));
                let $f = move |x: T| elu(x, a, k);
                let $b = move |g: T, x: T| g * sel(x > T::ZERO, T::ONE, exp_nonpos(x * k));
                $body
            }
            // A negative alpha: x / alpha >= 0 where x <= 0, so the general
            // expm1 and exp.
            Act::Celu { alpha } => {
                let (a, k): (T, T) = (c(alpha), c(1.0 / alpha));
                let $f = move |x: T| sel(x > T::ZERO, x, a * expm1(x * k));
                let $b = move |g: T, x: T| g * sel(x > T::ZERO, T::ONE, T::exp(x * k));
                $body
            }
            Act::Selu => {
                let (s, sa): (T, T) = (c(SELU_SCALE), c(SELU_SCALE * SELU_ALPHA));
                let $f = move |x: T| sel(x > T::ZERO, s * x, sa * expm1_nonpos(x));
                let $b = move |g: T, x: T| g * sel(x > T::ZERO, s, sa * exp_nonpos(x));
                $body
            }
            Act::Gelu => {
                let $f = |x: T| x_ndtr(x);
                let $b = |g: T, x: T| grad_x_ndtr_deriv(g, x);
                $body
            }
            Act::GeluTanh => {
                let $f = |x: T| gelu_tanh(x);
                let $b = |g: T, x: T| g * gelu_tanh_deriv(x);
                $body
            }
            Act::Silu => {
                let $f = |x: T| silu(x);
                let $b = |g: T, x: T| g * silu_deriv(x);
                $body
            }
            Act::Mish => {
                let $f = |x: T| mish(x);
                let $b = |g: T, x: T| g * mish_deriv(x);
                $body
            }
            // beta = 1 (the default) on its own: the same bits without a
            // multiply and a division per element.
            Act::Softplus { beta, threshold } if beta == 1.0 => {
                let th: T = c(threshold);
                let $f = move |x: T| softplus(x, T::ONE, th);
                let $b = move |g: T, x: T| g * softplus_deriv(x, T::ONE, th);
                $body
            }
            Act::Softplus { beta, threshold } => {
                let (bt, th): (T, T) = (c(beta), c(threshold));
                let $f = move |x: T| softplus(x, bt, th);
                let $b = move |g: T, x: T| g * softplus_deriv(x, bt, th);
                $body
            }
            Act::Softsign => {
                let $f = |x: T| softsign(x);
                let $b = |g: T, x: T| g * softsign_deriv(x);
                $body
            }
            Act::HardSigmoid => {
                let $f = |x: T| clamp(x + c(3.0), T::ZERO, c(6.0)) / c(6.0);
                let $b = |g: T, x: T| {
                    keep_nan(
                        x,
                        or_flat(inside(x, c(-3.0), c(3.0)), g * (T::ONE / c(6.0)), g),
                    )
                };
                $body
            }
            Act::HardTanh { min, max } => {
                let (lo, hi): (T, T) = (c(min), c(max));
                let $f = move |x: T| clamp(x, lo, hi);
                let $b = move |g: T, x: T| keep_nan(x, or_flat(inside(x, lo, hi), g, g));
                $body
            }
            Act::HardSwish => {
                let $f = |x: T| hard_swish(x);
                let $b = |g: T, x: T| keep_nan(x, hard_swish_backward(g, x));
                $body
            }
        }
    }};
}

// Passes: read x, write f(x).
multiversion! {
    fn fwd_k<T: Float>(act: Act, x: Ptr<T>, y: Ptr<T>, n: usize, stream: bool) {
        // SAFETY: guaranteed by `forward`'s contract. Each expansion defines
        // its own `f`, called once (see `map1`).
        #[cfg(target_arch = "x86_64")]
        if gelu_avx512::<T>(act) {
            // SAFETY: T is f32, and the CPU has the level's features.
            unsafe { gelu_fwd_avx512(x.get() as *const f32, y.get() as *mut f32, n, stream) };
            return;
        }
        let ahead = act.computes();
        unsafe {
            if stream {
                with_act!(act, T, |f, _b| map1::<T, true>(x.get(), y.get(), n, ahead, f))
            } else {
                with_act!(act, T, |f, _b| map1::<T, false>(x.get(), y.get(), n, ahead, f))
            }
        }
    }
}

// Passes: read grad and x, write grad * f'(x) (a zero where f' is flat).
multiversion! {
    fn bwd_k<T: Float>(act: Act, g: Ptr<T>, x: Ptr<T>, y: Ptr<T>, n: usize, stream: bool) {
        // SAFETY: guaranteed by `backward`'s contract.
        // Each expansion defines its own `b`, called once (see `map1`).
        #[cfg(target_arch = "x86_64")]
        if table_bwd_avx512::<T>(act) {
            // SAFETY: as in `fwd_k`.
            unsafe {
                bwd_avx512(
                    act == Act::Silu,
                    g.get() as *const f32,
                    x.get() as *const f32,
                    y.get() as *mut f32,
                    n,
                    stream,
                )
            };
            return;
        }
        let ahead = act.computes();
        unsafe {
            if stream {
                with_act!(act, T, |_f, b| map2::<T, true>(g.get(), x.get(), y.get(), n, ahead, b))
            } else {
                with_act!(act, T, |_f, b| map2::<T, false>(g.get(), x.get(), y.get(), n, ahead, b))
            }
        }
    }
}

// Passes: read h and bias, write z = h + bias (when z is not null) and f(z).
multiversion! {
    fn bias_fwd_k<T: Float>(act: Act, h: Ptr<T>, b: Ptr<T>, z: Ptr<T>, y: Ptr<T>, rows: usize, nf: usize) {
        // SAFETY: guaranteed by `bias_forward`'s contract.
        #[cfg(target_arch = "x86_64")]
        if gelu_avx512::<T>(act) {
            // SAFETY: as in `fwd_k`.
            unsafe { gelu_bias_fwd_avx512(f32_ptr(h), f32_ptr(b), f32_ptr(z), f32_ptr(y), rows, nf) };
            return;
        }
        unsafe { with_act!(act, T, |f, _b| bias_fwd_rows(h, b, z, y, rows, nf, |s| lane1(s, &f))) }
    }
}

/// [`bias_fwd_k`]'s rows with `f` over whole lane arrays.
///
/// # Safety
/// As [`bias_forward`].
#[inline(always)]
unsafe fn bias_fwd_rows<T: Float>(
    h: Ptr<T>,
    b: Ptr<T>,
    z: Ptr<T>,
    y: Ptr<T>,
    rows: usize,
    nf: usize,
    f: impl Fn([T; L]) -> [T; L],
) {
    for r in 0..rows {
        let (hr, yr) = (h.get().add(r * nf), y.get().add(r * nf));
        let (mut ba, mut bbias, mut bz, mut by) =
            ([T::ZERO; L], [T::ZERO; L], [T::ZERO; L], [T::ZERO; L]);
        let mut j = 0;
        while j < nf {
            let a = ld(src(hr, j, nf, &mut ba));
            let bb = ld(src(b.get(), j, nf, &mut bbias));
            let mut s = [T::ZERO; L];
            for i in 0..L {
                s[i] = a[i] + bb[i];
            }
            let o = f(s);
            if !z.is_null() {
                let zr = z.get().add(r * nf);
                st(dst(zr, j, nf, &mut bz), s);
                flush(zr, j, nf, &bz);
            }
            st(dst(yr, j, nf, &mut by), o);
            flush(yr, j, nf, &by);
            crate::simd::lane_barrier();
            j += L;
        }
    }
}

// Passes: read grad and z, write grad * f'(z) (as `bwd_k`) and add it (in
// f64) to the per-task column sums `acc`.
multiversion! {
    fn bias_bwd_k<T: Float>(act: Act, g: Ptr<T>, z: Ptr<T>, y: Ptr<T>, acc: Ptr<f64>, rows: usize, nf: usize) {
        // SAFETY: guaranteed by `bias_backward`'s contract.
        #[cfg(target_arch = "x86_64")]
        if table_bwd_avx512::<T>(act) {
            // SAFETY: as in `fwd_k`.
            let silu = act == Act::Silu;
            unsafe { bias_bwd_avx512(silu, f32_ptr(g), f32_ptr(z), f32_ptr(y), acc, rows, nf) };
            return;
        }
        unsafe {
            with_act!(act, T, |_f, b| bias_bwd_rows(g, z, y, acc, rows, nf, |a, zz| lane2(a, zz, &b)))
        }
    }
}

/// [`bias_bwd_k`]'s rows with `b` over whole lane arrays.
///
/// # Safety
/// As [`bias_backward`].
#[inline(always)]
unsafe fn bias_bwd_rows<T: Float>(
    g: Ptr<T>,
    z: Ptr<T>,
    y: Ptr<T>,
    acc: Ptr<f64>,
    rows: usize,
    nf: usize,
    b: impl Fn([T; L], [T; L]) -> [T; L],
) {
    let (mut bg, mut bz, mut by, mut bs) = ([T::ZERO; L], [T::ZERO; L], [T::ZERO; L], [0f64; L]);
    for r in 0..rows {
        let off = r * nf;
        let mut j = 0;
        while j < nf {
            let a = ld(src(g.get().add(off), j, nf, &mut bg));
            let zz = ld(src(z.get().add(off), j, nf, &mut bz));
            let s0 = ld(src(acc.get(), j, nf, &mut bs));
            let o = b(a, zz);
            // A fresh array, not `s0` updated in place (which LLVM kept on
            // the stack: a store-forwarding stall per lane array, half the
            // kernel's time).
            let mut s = [0f64; L];
            for i in 0..L {
                s[i] = s0[i] + o[i].to_f64();
            }
            st(dst(y.get().add(off), j, nf, &mut by), o);
            flush(y.get().add(off), j, nf, &by);
            st(dst(acc.get(), j, nf, &mut bs), s);
            flush(acc.get(), j, nf, &bs);
            crate::simd::lane_barrier();
            j += L;
        }
    }
}

/// Whether float32 gelu (`approximate="none"`) and its backward run the
/// AVX-512 intrinsics of `simd::math::avx512` (from [`fwd_k`] / [`bwd_k`]
/// and the fused bias kernels, on the same drivers): tables of polynomials
/// (`simd::math::act_tables`), with other bits than the exp-based forms of
/// the other levels, in fewer vector operations. The sigmoid family gained
/// nothing from intrinsics alone (see that module).
#[cfg(target_arch = "x86_64")]
fn gelu_avx512<T: Float>(act: Act) -> bool {
    act == Act::Gelu && f32_at_avx512::<T>()
}

/// Whether a float32 backward runs from a table at AVX-512: gelu's (see
/// [`gelu_avx512`]) and silu's (`simd::math::avx512::grad_silu_deriv`).
#[cfg(target_arch = "x86_64")]
fn table_bwd_avx512<T: Float>(act: Act) -> bool {
    (act == Act::Gelu || act == Act::Silu) && f32_at_avx512::<T>()
}

/// `T` is f32 and the level AVX-512.
#[cfg(target_arch = "x86_64")]
fn f32_at_avx512<T: Float>() -> bool {
    crate::simd::math::is_f32::<T>() && crate::simd::level() == crate::simd::Level::Avx512
}

/// silu's backward in float32 from [`crate::simd::math::act_tables::SILU_DERIV`]
/// (the scalar form of `simd::math::avx512::grad_silu_deriv`, bit for bit):
/// `silu'(x) = 1 - silu'(-x)`, so with `h(a) = sigmoid(-a) (1 - a
/// sigmoid(a))`, `grad h(|x|)` for x < 0 and `grad - grad h(|x|)` above;
/// x < -20 and NaN take the exp-based form. 2.1e-7 relative, 1e-8 absolute
/// near the root of h at 1.2785 (`tools/fit_act_tables.py`).
#[cfg(test)]
pub(crate) fn grad_silu_deriv_table(grad: f32, x: f32) -> f32 {
    use crate::simd::math::act_tables::{SILU_DERIV, SILU_GRID};
    crate::simd::math::table_backward(grad, x, &SILU_GRID, &SILU_DERIV)
        .unwrap_or_else(|| silu_fallback(grad, x))
}

/// The exp-based silu backward of the other levels, for the table's lanes
/// beyond it.
#[cfg(any(test, target_arch = "x86_64"))]
fn silu_fallback(grad: f32, x: f32) -> f32 {
    grad * silu_deriv(x)
}

/// [`fwd_k`]'s pass for float32 gelu at AVX-512.
///
/// # Safety
/// As [`fwd_k`], and the CPU has the AVX-512 level's features.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw,avx512dq,avx512vl,avx2,fma,bmi1,bmi2,lzcnt,popcnt")]
unsafe fn gelu_fwd_avx512(x: *const f32, y: *mut f32, n: usize, stream: bool) {
    let f = |a: [f32; L]| gelu_fwd_lanes(a);
    if stream {
        map1_lanes::<f32, true>(x, y, n, true, f)
    } else {
        map1_lanes::<f32, false>(x, y, n, true, f)
    }
}

/// [`bwd_k`]'s pass for float32 gelu (or silu) at AVX-512.
///
/// # Safety
/// As [`bwd_k`], and the CPU has the AVX-512 level's features.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw,avx512dq,avx512vl,avx2,fma,bmi1,bmi2,lzcnt,popcnt")]
unsafe fn bwd_avx512(
    silu: bool,
    g: *const f32,
    x: *const f32,
    y: *mut f32,
    n: usize,
    stream: bool,
) {
    let f = |a: [f32; L], b: [f32; L]| gelu_bwd_lanes(a, b);
    let fs = |a: [f32; L], b: [f32; L]| silu_bwd_lanes(a, b);
    match (silu, stream) {
        (false, true) => map2_lanes::<f32, true>(g, x, y, n, true, f),
        (false, false) => map2_lanes::<f32, false>(g, x, y, n, true, f),
        (true, true) => map2_lanes::<f32, true>(g, x, y, n, true, fs),
        (true, false) => map2_lanes::<f32, false>(g, x, y, n, true, fs),
    }
}

/// `p` as a float32 pointer (for `T` known to be f32).
#[cfg(target_arch = "x86_64")]
fn f32_ptr<T>(p: Ptr<T>) -> Ptr<f32> {
    Ptr(p.get() as *mut f32)
}

/// [`bias_fwd_k`]'s pass for float32 gelu at AVX-512 (the kernel of
/// [`gelu_fwd_avx512`]).
///
/// # Safety
/// As [`bias_fwd_k`], and the CPU has the AVX-512 level's features.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw,avx512dq,avx512vl,avx2,fma,bmi1,bmi2,lzcnt,popcnt")]
unsafe fn gelu_bias_fwd_avx512(
    h: Ptr<f32>,
    b: Ptr<f32>,
    z: Ptr<f32>,
    y: Ptr<f32>,
    rows: usize,
    nf: usize,
) {
    bias_fwd_rows(h, b, z, y, rows, nf, |s| gelu_fwd_lanes(s))
}

/// `simd::math::avx512::x_ndtr` over a lane array. Not a `target_feature`
/// function itself, so that it is always inlined, and the kernel with it,
/// into the loop of a caller that has them (called, it kept the tables in
/// memory: 1.4 times the time).
///
/// # Safety
/// The CPU has AVX-512F and DQ.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
unsafe fn gelu_fwd_lanes(a: [f32; L]) -> [f32; L] {
    from_zmm(crate::simd::math::avx512::x_ndtr(zmm(a)))
}

/// A lane array as one 512-bit register, and back ([`from_zmm`]): 16 f32
/// either way.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn zmm(a: [f32; L]) -> std::arch::x86_64::__m512 {
    // SAFETY: the same 64 bytes, any bit pattern valid in both.
    unsafe { std::mem::transmute::<[f32; L], std::arch::x86_64::__m512>(a) }
}

/// See [`zmm`].
#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn from_zmm(v: std::arch::x86_64::__m512) -> [f32; L] {
    // SAFETY: as in `zmm`.
    unsafe { std::mem::transmute::<std::arch::x86_64::__m512, [f32; L]>(v) }
}

/// [`bias_bwd_k`]'s pass for float32 gelu (or silu) at AVX-512 (the kernels
/// of [`bwd_avx512`]).
///
/// # Safety
/// As [`bias_bwd_k`], and the CPU has the AVX-512 level's features.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw,avx512dq,avx512vl,avx2,fma,bmi1,bmi2,lzcnt,popcnt")]
unsafe fn bias_bwd_avx512(
    silu: bool,
    g: Ptr<f32>,
    z: Ptr<f32>,
    y: Ptr<f32>,
    acc: Ptr<f64>,
    rows: usize,
    nf: usize,
) {
    if silu {
        bias_bwd_rows(g, z, y, acc, rows, nf, |a, b| silu_bwd_lanes(a, b))
    } else {
        bias_bwd_rows(g, z, y, acc, rows, nf, |a, b| gelu_bwd_lanes(a, b))
    }
}

/// `simd::math::avx512::grad_silu_deriv` over lane arrays, as
/// [`gelu_fwd_lanes`].
///
/// # Safety
/// The CPU has AVX-512F and DQ.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
unsafe fn silu_bwd_lanes(a: [f32; L], b: [f32; L]) -> [f32; L] {
    from_zmm(crate::simd::math::avx512::grad_silu_deriv(
        zmm(a),
        zmm(b),
        silu_fallback,
    ))
}

/// `simd::math::avx512::grad_x_ndtr_deriv` over lane arrays, as
/// [`gelu_fwd_lanes`].
///
/// # Safety
/// The CPU has AVX-512F and DQ.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
unsafe fn gelu_bwd_lanes(a: [f32; L], b: [f32; L]) -> [f32; L] {
    from_zmm(crate::simd::math::avx512::grad_x_ndtr_deriv(zmm(a), zmm(b)))
}

/// `y = f(x)` elementwise over `n` elements, in parallel for large `n`.
///
/// # Safety
/// `x` readable and `y` writable for `n` elements; `y` equals `x` or does
/// not overlap it.
pub unsafe fn forward<T: Float>(act: Act, x: *const T, y: *mut T, n: usize) {
    // Non-temporal stores when input and output outgrow the cache (not in place).
    let stream = !std::ptr::eq(x, y) && stream::wanted(2 * n * std::mem::size_of::<T>());
    let (x, y) = (Ptr(x as *mut T), Ptr(y));
    run_tasks(n, 1, |_, i0, i1| {
        fwd_k(
            act,
            Ptr(x.get().wrapping_add(i0)),
            Ptr(y.get().wrapping_add(i0)),
            i1 - i0,
            stream,
        )
    });
}

/// `y = grad * f'(x)` elementwise over `n` elements; a zero (with grad's
/// sign) wherever f' is flat, also for an infinite or NaN grad (PyTorch).
///
/// # Safety
/// As [`forward`]; `y` may equal `grad` or `x`.
pub unsafe fn backward<T: Float>(act: Act, grad: *const T, x: *const T, y: *mut T, n: usize) {
    // As in `forward`: three arrays.
    let stream = !std::ptr::eq(grad, y)
        && !std::ptr::eq(x, y)
        && stream::wanted(3 * n * std::mem::size_of::<T>());
    let (g, x, y) = (Ptr(grad as *mut T), Ptr(x as *mut T), Ptr(y));
    run_tasks(n, 1, |_, i0, i1| {
        bwd_k(
            act,
            Ptr(g.get().wrapping_add(i0)),
            Ptr(x.get().wrapping_add(i0)),
            Ptr(y.get().wrapping_add(i0)),
            i1 - i0,
            stream,
        )
    });
}

/// For `h` of shape (rows, nf) and `bias` of shape (nf,), C order:
/// `z = h + bias` (written when `z` is not null) and `y = f(z)`, one pass.
///
/// # Safety
/// `h` readable and `y` (and `z` unless null) writable for `rows * nf`
/// elements, `bias` readable for `nf`; each output equals `h` or overlaps no
/// other array, and `z` does not overlap `y`.
pub unsafe fn bias_forward<T: Float>(
    act: Act,
    h: *const T,
    bias: *const T,
    z: *mut T,
    y: *mut T,
    rows: usize,
    nf: usize,
) {
    let (h, b, z, y) = (Ptr(h as *mut T), Ptr(bias as *mut T), Ptr(z), Ptr(y));
    run_tasks(rows, nf, |_, r0, r1| {
        let o = r0 * nf;
        let zt = if z.is_null() {
            z
        } else {
            Ptr(z.get().wrapping_add(o))
        };
        bias_fwd_k(
            act,
            Ptr(h.get().wrapping_add(o)),
            b,
            zt,
            Ptr(y.get().wrapping_add(o)),
            r1 - r0,
            nf,
        )
    });
}

/// `y = grad * f'(z)` (as [`backward`]) for `grad`, `z` of shape (rows, nf),
/// C order, and `bias_grad[j] = sum_r y[r, j]`: each fixed block of rows (see
/// [`super::elementwise::tasks`]) sums in f64 in row order, and the blocks
/// are added in block order, so the result is the same for any thread count.
///
/// # Safety
/// `grad`, `z` readable and `y` writable for `rows * nf` elements; `y`
/// equals `grad` or `z` or overlaps neither; `bias_grad` has `nf` elements.
pub unsafe fn bias_backward<T: Float>(
    act: Act,
    grad: *const T,
    z: *const T,
    y: *mut T,
    rows: usize,
    nf: usize,
    bias_grad: &mut [T],
) {
    assert_eq!(bias_grad.len(), nf);
    let (_, ntasks) = tasks(rows, nf);
    let mut partial = vec![0f64; ntasks * nf];
    let (g, zp, yp, pp) = (
        Ptr(grad as *mut T),
        Ptr(z as *mut T),
        Ptr(y),
        Ptr(partial.as_mut_ptr()),
    );
    run_tasks(rows, nf, |t, r0, r1| {
        let o = r0 * nf;
        bias_bwd_k(
            act,
            Ptr(g.get().wrapping_add(o)),
            Ptr(zp.get().wrapping_add(o)),
            Ptr(yp.get().wrapping_add(o)),
            Ptr(pp.get().wrapping_add(t * nf)),
            r1 - r0,
            nf,
        )
    });
    for (j, out) in bias_grad.iter_mut().enumerate() {
        let mut s = 0f64;
        for t in 0..ntasks {
            s += partial[t * nf + j];
        }
        *out = T::from_f64(s);
    }
}

#[cfg(test)]
mod tests;

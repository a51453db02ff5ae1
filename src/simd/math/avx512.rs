//! float32 gelu, its backward and silu's backward at AVX-512, 16 lanes in
//! intrinsics. silu's backward is [`grad_silu_deriv`] on its own grid of
//! [`super::act_tables`], the same kernel as gelu's backward.
//!
//! [`x_ndtr`] and [`grad_x_ndtr_deriv`] evaluate the tables of
//! [`super::act_tables`] (no exp, no division; the bits of their scalar
//! forms [`super::x_ndtr_table`] and [`super::grad_x_ndtr_deriv_table`]).
//! The lanes below the tables (x < -8) and NaN take [`x_ndtr_exp`] and
//! [`grad_x_ndtr_deriv_exp`], in a cold call for the lane arrays that have
//! such lanes: the operations of [`super::x_ndtr`] and
//! [`super::grad_x_ndtr_deriv`] (the exp-based kernels of the other levels)
//! in the same order, so the same bits (NaN payloads aside), with
//! operations the scalar code has no way to ask LLVM for:
//! - `2^n` times the exp's polynomial is one `vscalefps` instead of a shift
//!   and a multiply. The scalar code's polynomial carries a factor `2^-65`
//!   in its coefficients and multiplies by the normal `2^(n + 65)`: each
//!   step of it is the unscaled one times `2^-65` exactly (nothing in it
//!   comes near the subnormals), so its product rounds `p 2^n` once, as
//!   `vscalefps` does (subnormal results included, under the same MXCSR).
//! - gelu's `min(|x|, 16)` is one `vrangeps` (the operand of smaller
//!   magnitude, sign cleared) instead of an `and` and a `min`. `vrangeps`
//!   returns the number where the other operand is NaN, so a NaN x gets `a
//!   = 16`; gelu's result is NaN all the same (through `max(x, -0)`), but
//!   the backward would give a zero, and keeps the `and` and the `min`.
//!
//! Both are bound by their count of vector operations in cache (two 512-bit
//! ports): 1 thread in L2, A/B against the generic kernels (stop 31), gelu
//! 0.93 and gelu_backward 0.92 of the time, with the backward's masked
//! subtract, which the generic kernel has too; the tables then took 0.78 of
//! the time of these. The same done for the sigmoid and silu pairs and
//! tanh's backward (their exp scaled by `vscalefps`, its clamp one `max`,
//! no select of 0 below -104) gained nothing: 1.00-1.03.

use super::super::float::exp_f32_consts::MAGIC_BIASED;
use super::act_tables::{Grid, Table, GELU_DERIV, GELU_GRID, GELU_TAIL};
use super::{
    EXP_HALF_F32, F32_UNBIAS, FRAC_1_SQRT_2PI, GAUSS_CLAMP, GAUSS_C_HI, GAUSS_C_LO, GAUSS_DEN_F32,
    GAUSS_K, GAUSS_NUM_F32,
};
use std::arch::x86_64::*;

#[inline]
#[target_feature(enable = "avx512f")]
fn k(v: f64) -> __m512 {
    _mm512_set1_ps(v as f32)
}

/// [`super::poly_pairs`] over 16 lanes: the same pairs, the same order.
#[inline]
#[target_feature(enable = "avx512f")]
fn poly_pairs(x: __m512, x2: __m512, coef: &[f64], scale: f64) -> __m512 {
    let c = |i: usize| k(coef[i] * scale);
    let pair = |i: usize| _mm512_fmadd_ps(c(i), x, c(i + 1));
    let (mut p, mut i) = if coef.len() % 2 == 1 {
        (c(0), 1)
    } else {
        (pair(0), 2)
    };
    while i < coef.len() {
        p = _mm512_fmadd_ps(p, x2, pair(i));
        i += 2;
    }
    p
}

/// [`super::gauss_parts_f32`] from `a = min(|x|, 16)`: `(e, num, den)`.
#[inline]
#[target_feature(enable = "avx512f")]
fn gauss_parts(a: __m512) -> (__m512, __m512, __m512) {
    let a2 = _mm512_mul_ps(a, a);
    let magic = _mm512_set1_ps(MAGIC_BIASED);
    let n = _mm512_sub_ps(_mm512_fmadd_ps(a2, k(GAUSS_K), magic), magic);
    let w = _mm512_fmadd_ps(
        n,
        k(GAUSS_C_LO),
        _mm512_fnmadd_ps(a, a, _mm512_mul_ps(n, k(GAUSS_C_HI))),
    );
    // The coefficients without the scalar code's 2^-65 (a power of two:
    // dividing the f64 constant by it is exact, and so is the scaling of
    // its rounding to f32).
    let p = poly_pairs(w, _mm512_mul_ps(w, w), &EXP_HALF_F32, 1.0 / F32_UNBIAS);
    let e = _mm512_scalef_ps(p, n);
    let num = poly_pairs(a, a2, &GAUSS_NUM_F32, 1.0);
    let den = poly_pairs(a, a2, &GAUSS_DEN_F32, 1.0);
    (e, num, den)
}

/// [`super::x_ndtr`] (gelu) of 16 float32.
///
/// # Safety
/// The CPU has AVX-512F and DQ.
#[inline]
#[target_feature(enable = "avx512f,avx512dq")]
pub fn x_ndtr_exp(x: __m512) -> __m512 {
    // imm 0b10_10: the operand of smaller magnitude, its sign bit cleared.
    let a = _mm512_range_ps::<0b1010>(x, k(GAUSS_CLAMP));
    let (e, num, den) = gauss_parts(a);
    let q = _mm512_div_ps(_mm512_mul_ps(a, num), den);
    // max(x, -0) as the scalar `max(a, b)`: `b > a ? b : a`.
    let m = _mm512_max_ps(_mm512_set1_ps(-0.0), x);
    _mm512_fnmadd_ps(e, q, m)
}

/// [`super::grad_x_ndtr_deriv`] (gelu's backward) of 16 float32.
///
/// # Safety
/// The CPU has AVX-512F.
#[inline]
#[target_feature(enable = "avx512f")]
pub fn grad_x_ndtr_deriv_exp(grad: __m512, x: __m512) -> __m512 {
    // `min(a, b)`, `b < a ? b : a`, keeps a NaN `a = |x|`.
    let a = _mm512_min_ps(k(GAUSS_CLAMP), _mm512_abs_ps(x));
    let (e, num, den) = gauss_parts(a);
    let g = _mm512_fmadd_ps(a, k(-FRAC_1_SQRT_2PI), _mm512_div_ps(num, den));
    let u = _mm512_mul_ps(grad, _mm512_mul_ps(e, g));
    let pos = _mm512_cmp_ps_mask::<_CMP_GE_OQ>(x, _mm512_setzero_ps());
    _mm512_mask_sub_ps(u, pos, grad, u)
}

/// `(a, p)`: `a = min(|x|, grid.t)` (`grid.t` for a NaN x) and the
/// polynomial of `tab` on `a`'s interval, as [`super::table_poly`].
/// `vpermt2ps` looks each row's value up in its two registers; LLVM keeps
/// the rows in registers across the loop.
///
/// # Safety
/// The CPU has AVX-512F and DQ. (This and the table kernels below are not
/// `target_feature` functions, so that they can be always inlined into the
/// loops that call them: LLVM kept the backward a call once it had two
/// callers, with the rows reloaded on every call, 1.2-1.4 times the time.)
#[inline(always)]
unsafe fn table_poly<const R: usize>(x: __m512, grid: &Grid, tab: &Table<R>) -> (__m512, __m512) {
    let row = |r: &[f32; 32]| -> (__m512, __m512) {
        // SAFETY: each row holds 32 f32.
        unsafe {
            (
                _mm512_loadu_ps(r.as_ptr()),
                _mm512_loadu_ps(r.as_ptr().add(16)),
            )
        }
    };
    // The operand of smaller magnitude, its sign bit cleared.
    let a = _mm512_range_ps::<0b1010>(x, _mm512_set1_ps(grid.t));
    let w = _mm512_fmadd_ps(a, _mm512_set1_ps(grid.k2), _mm512_set1_ps(grid.k1));
    // 2^23 + n: n in the low five bits, which are all `vpermt2ps` reads.
    let n = _mm512_castps_si512(_mm512_fmadd_ps(a, w, _mm512_set1_ps(8_388_608.0)));
    let at = |r: &[f32; 32]| {
        let (lo, hi) = row(r);
        _mm512_permutex2var_ps(lo, n, hi)
    };
    let t = _mm512_sub_ps(a, at(&grid.centre.0[0]));
    let mut p = at(&tab.0[R - 1]);
    for r in tab.0[..R - 1].iter().rev() {
        p = _mm512_fmadd_ps(p, t, at(r));
    }
    (a, p)
}

/// Lanes with `x < -grid.t` or NaN.
///
/// # Safety
/// The CPU has AVX-512F.
#[inline(always)]
unsafe fn beyond(x: __m512, grid: &Grid) -> __mmask16 {
    _mm512_cmp_ps_mask::<_CMP_NGE_UQ>(x, _mm512_set1_ps(-grid.t))
}

/// [`super::table_backward`] of 16 float32, the same bits, with `r` from
/// `tab` and the lanes of `slow` left to the caller.
///
/// # Safety
/// The CPU has AVX-512F and DQ.
#[inline(always)]
unsafe fn table_backward<const R: usize>(
    grad: __m512,
    x: __m512,
    grid: &Grid,
    tab: &Table<R>,
) -> (__m512, __mmask16) {
    let (_, p) = table_poly(x, grid, tab);
    let u = _mm512_mul_ps(grad, p);
    let pos = _mm512_cmp_ps_mask::<_CMP_GE_OQ>(x, _mm512_setzero_ps());
    (_mm512_mask_sub_ps(u, pos, grad, u), beyond(x, grid))
}

/// The lanes of `r` in `slow` from [`x_ndtr_exp`]: out of the loop's way,
/// for the few lane arrays that have such lanes. (Its arguments by value:
/// a closure capturing them made LLVM store x and grad to the stack on
/// every iteration, which with the non-temporal stores of large outputs
/// cost 1.17 times the time.)
#[cold]
#[inline(never)]
#[target_feature(enable = "avx512f,avx512dq")]
fn patch_fwd(r: __m512, slow: __mmask16, x: __m512) -> __m512 {
    _mm512_mask_mov_ps(r, slow, x_ndtr_exp(x))
}

/// [`patch_fwd`] from [`grad_x_ndtr_deriv_exp`].
#[cold]
#[inline(never)]
#[target_feature(enable = "avx512f,avx512dq")]
fn patch_bwd(r: __m512, slow: __mmask16, grad: __m512, x: __m512) -> __m512 {
    _mm512_mask_mov_ps(r, slow, grad_x_ndtr_deriv_exp(grad, x))
}

/// [`super::x_ndtr_table`] (gelu) of 16 float32, the same bits.
///
/// # Safety
/// The CPU has AVX-512F and DQ.
#[inline(always)]
pub unsafe fn x_ndtr(x: __m512) -> __m512 {
    let (a, p) = table_poly(x, &GELU_GRID, &GELU_TAIL);
    // max(x, -0) as the scalar `max(a, b)`: `b > a ? b : a`.
    let r = _mm512_fnmadd_ps(a, p, _mm512_max_ps(_mm512_set1_ps(-0.0), x));
    let slow = beyond(x, &GELU_GRID);
    if slow != 0 {
        patch_fwd(r, slow, x)
    } else {
        r
    }
}

/// [`super::grad_x_ndtr_deriv_table`] (gelu's backward) of 16 float32, the
/// same bits.
///
/// # Safety
/// The CPU has AVX-512F and DQ.
#[inline(always)]
pub unsafe fn grad_x_ndtr_deriv(grad: __m512, x: __m512) -> __m512 {
    let (r, slow) = table_backward(grad, x, &GELU_GRID, &GELU_DERIV);
    if slow != 0 {
        patch_bwd(r, slow, grad, x)
    } else {
        r
    }
}

/// silu's backward of 16 float32 from [`super::act_tables::SILU_DERIV`], the
/// bits of [`super::table_backward`] with `fallback(grad, x)` (the scalar
/// exp-based form) in the lanes below -20 and NaN.
///
/// # Safety
/// The CPU has AVX-512F and DQ.
#[inline(always)]
pub unsafe fn grad_silu_deriv(grad: __m512, x: __m512, fallback: fn(f32, f32) -> f32) -> __m512 {
    use super::act_tables::{SILU_DERIV, SILU_GRID};
    let (r, slow) = table_backward(grad, x, &SILU_GRID, &SILU_DERIV);
    if slow != 0 {
        patch_scalar(r, slow, grad, x, fallback)
    } else {
        r
    }
}

/// The lanes of `r` in `slow` from `f`, one by one (cold: NaN, or silu's x
/// below -20).
#[cold]
#[inline(never)]
#[target_feature(enable = "avx512f")]
fn patch_scalar(
    r: __m512,
    slow: __mmask16,
    grad: __m512,
    x: __m512,
    f: fn(f32, f32) -> f32,
) -> __m512 {
    // SAFETY (the transmutes): 16 f32 either way.
    let (mut o, g, v) = unsafe {
        (
            std::mem::transmute::<__m512, [f32; 16]>(r),
            std::mem::transmute::<__m512, [f32; 16]>(grad),
            std::mem::transmute::<__m512, [f32; 16]>(x),
        )
    };
    for i in 0..16 {
        if slow & (1 << i) != 0 {
            o[i] = f(g[i], v[i]);
        }
    }
    // SAFETY: as above.
    unsafe { std::mem::transmute::<[f32; 16], __m512>(o) }
}

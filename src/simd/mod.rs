//! Vectorisable math and runtime CPU dispatch.
//!
//! Every kernel is written once as plain Rust over fixed-width lane arrays
//! (`[T; LANES]`), branch-free, and compiled several times by [`multiversion!`]:
//! for AVX-512, for AVX2+FMA, and for the baseline target (SSE2 on x86-64,
//! NEON on aarch64). The lane width and the order of every floating-point
//! operation are the same in all versions, and no multiply-add is contracted,
//! so all versions give bit-identical results; only the speed differs.

pub mod dispatch;
mod float;
pub mod math;
pub mod stream;
pub mod tile;
pub mod transpose;

pub use dispatch::{
    env_warning, level, level_name, parse_level, set_level, set_level_from_env, Level,
};
pub use float::Float;

/// Lanes per vector in every kernel: 16 f32 fill one AVX-512 register or two
/// AVX2 registers; the same number is used for f64 so results never depend on
/// the instruction set.
pub const LANES: usize = 16;
// `hsum` and the transposes are written for 16 lanes.
const _: () = assert!(LANES == 16);

/// Ends one iteration of a loop over lane arrays. LLVM's loop vectoriser
/// would otherwise vectorise the loop *across* chunks with strided gathers and
/// scatters (after fully unrolling the 16-lane body); a compiler fence (no
/// instruction is emitted) makes it leave the loop to the SLP vectoriser,
/// which vectorises across the lanes as intended.
#[inline(always)]
pub fn lane_barrier() {
    std::sync::atomic::compiler_fence(std::sync::atomic::Ordering::SeqCst);
}

/// f32 values about to be widened to f64 go through `black_box` (a store
/// and reloads): otherwise LLVM computes them at the width of the widening
/// conversion's input, half a register (logsumexp 4096x1000, 1 thread: 0.88
/// with AVX-512, 0.85 with AVX2). f64 values need no widening and pass as
/// they are.
#[inline(always)]
pub fn before_widening<T: Float, const N: usize>(v: [T; N]) -> [T; N] {
    if T::MANTISSA_DIGITS < 53 {
        std::hint::black_box(v)
    } else {
        v
    }
}

/// `(t0 + t1) + (t2 + t3)` per lane in f64, over the four vectors of `t`
/// widened to f64: a group's sum in [`crate::kernels`]' f64 accumulations.
/// For f32 it widens each register's halves in place ([`x86::widen`]), where the generic code, to be computed at
/// full width, went through [`before_widening`]'s store and eight reloads
/// (store-forwarding stalls).
///
/// # Safety
/// The CPU has AVX-512 (`level()` is [`Level::Avx512`]): the caller checks
/// once, outside its loop.
#[inline(always)]
pub unsafe fn group_sum_avx512<T: Float>(t: [T; 4 * LANES]) -> [f64; LANES] {
    #[cfg(target_arch = "x86_64")]
    if T::MANTISSA_DIGITS < 53 && std::mem::size_of::<T>() == 4 {
        // SAFETY: T is f32 (the only 4-byte Float), so the arrays have the
        // same layout; the caller guarantees AVX-512.
        return unsafe { x86::group_sum_f32(std::mem::transmute_copy(&t)) };
    }
    let t = before_widening(t);
    std::array::from_fn(|i| {
        (t[i].to_f64() + t[LANES + i].to_f64())
            + (t[2 * LANES + i].to_f64() + t[3 * LANES + i].to_f64())
    })
}

/// `v` widened to f64, computed at full width: under AVX-512 (`lvl`), f32
/// in registers ([`x86::widen`] of each half), else through
/// [`before_widening`]. The level is read once by the caller, outside its
/// loop: a `level()` inside keeps its rare call that reads the environment,
/// and the spills around that call, in the loop.
///
/// # Safety
/// `lvl` is a level the CPU supports, such as [`level()`]'s.
#[inline(always)]
pub unsafe fn widen_at<T: Float>(v: [T; LANES], lvl: Level) -> [f64; LANES] {
    #[cfg(target_arch = "x86_64")]
    if T::MANTISSA_DIGITS < 53 && std::mem::size_of::<T>() == 4 && lvl == Level::Avx512 {
        // SAFETY: T is f32 (the only 4-byte Float), so the arrays have the
        // same layout; the caller guarantees the level.
        return unsafe { x86::widen_f32(std::mem::transmute_copy(&v)) };
    }
    let _ = lvl;
    let v = before_widening(v);
    std::array::from_fn(|i| v[i].to_f64())
}

#[cfg(target_arch = "x86_64")]
pub(crate) mod x86 {
    use std::arch::x86_64::*;

    /// Lanes `8h..8h + 8` of `v` widened to f64 (`vcvtps2pd` of the low
    /// half, or of `vextractf64x4`'s high one).
    #[inline]
    #[target_feature(enable = "avx512f")]
    pub(crate) fn widen(v: __m512, h: usize) -> __m512d {
        let half = if h == 0 {
            _mm512_castps512_ps256(v)
        } else {
            _mm256_castpd_ps(_mm512_extractf64x4_pd::<1>(_mm512_castps_pd(v)))
        };
        _mm512_cvtps_pd(half)
    }

    /// [`super::group_sum_avx512`] for f32.
    #[inline]
    #[target_feature(enable = "avx512f")]
    pub(super) fn group_sum_f32(t: [f32; 64]) -> [f64; 16] {
        // SAFETY: in bounds (v < 4); unaligned loads.
        let x = |v: usize| unsafe { _mm512_loadu_ps(t.as_ptr().add(16 * v)) };
        let mut out = [0f64; 16];
        for h in 0..2 {
            let s = _mm512_add_pd(
                _mm512_add_pd(widen(x(0), h), widen(x(1), h)),
                _mm512_add_pd(widen(x(2), h), widen(x(3), h)),
            );
            // SAFETY: in bounds (h < 2); unaligned store.
            unsafe { _mm512_storeu_pd(out.as_mut_ptr().add(8 * h), s) };
        }
        out
    }

    /// [`super::widen_at`] for f32.
    #[inline]
    #[target_feature(enable = "avx512f")]
    pub(super) fn widen_f32(v: [f32; 16]) -> [f64; 16] {
        // SAFETY: unaligned loads and stores within the arrays.
        unsafe {
            let x = _mm512_loadu_ps(v.as_ptr());
            let mut out = [0f64; 16];
            for h in 0..2 {
                _mm512_storeu_pd(out.as_mut_ptr().add(8 * h), widen(x, h));
            }
            out
        }
    }
}

/// Asks for the `bytes` bytes from `p` to be brought into the cache ahead of
/// their use (`prefetcht0` for each 64-byte line; a no-op off x86-64). A
/// prefetch reads nothing and never faults, so `p` may be any address.
#[inline(always)]
pub fn prefetch(p: *const u8, bytes: usize) {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
        let mut off = 0;
        while off < bytes {
            // SAFETY: a prefetch hint neither faults nor writes.
            unsafe { _mm_prefetch::<_MM_HINT_T0>(p.wrapping_add(off) as *const i8) };
            off += 64;
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = (p, bytes);
}

/// Horizontal max of a lane array with a fixed pairwise order (NaN ignored).
#[inline(always)]
pub fn hmax<T: Float>(v: [T; LANES]) -> T {
    // One fresh array per level, as in `hsum`.
    #[inline(always)]
    fn max2<T: Float>(a: T, b: T) -> T {
        if b > a {
            b
        } else {
            a
        }
    }
    let a: [T; 8] = std::array::from_fn(|i| max2(v[i], v[i + 8]));
    let b: [T; 4] = std::array::from_fn(|i| max2(a[i], a[i + 4]));
    let c: [T; 2] = std::array::from_fn(|i| max2(b[i], b[i + 2]));
    max2(c[0], c[1])
}

/// Horizontal sum of f64 lanes with a fixed pairwise order.
#[inline(always)]
pub fn hsum(v: [f64; LANES]) -> f64 {
    // One fresh array per level (not one array updated in place, which LLVM
    // compiled to scalar stores and wide reloads that stall store
    // forwarding): the same pairwise order, as register halves.
    let a: [f64; 8] = std::array::from_fn(|i| v[i] + v[i + 8]);
    let b: [f64; 4] = std::array::from_fn(|i| a[i] + a[i + 4]);
    let c: [f64; 2] = std::array::from_fn(|i| b[i] + b[i + 2]);
    c[0] + c[1]
}

/// Compiles `fn name<T: Float>(args)` for each instruction set and dispatches
/// on the level chosen at start-up. The body must only call `#[inline(always)]`
/// helpers so that it is vectorised for the enabled features.
#[macro_export]
macro_rules! multiversion {
    ($(#[$meta:meta])* $vis:vis fn $name:ident<T: Float>($($arg:ident : $ty:ty),* $(,)?) $(-> $ret:ty)? $body:block) => {
        $(#[$meta])*
        $vis fn $name<T: $crate::simd::Float>($($arg: $ty),*) $(-> $ret)? {
            // The body is expanded into each version (not called from them) so
            // that closures inside it inherit the version's target features;
            // a closure LLVM declines to inline would otherwise be compiled for
            // the baseline target, with software FMA.
            #[cfg(target_arch = "x86_64")]
            #[target_feature(enable = "avx512f,avx512bw,avx512dq,avx512vl,avx2,fma,bmi1,bmi2,lzcnt,popcnt")]
            unsafe fn v4<T: $crate::simd::Float>($($arg: $ty),*) $(-> $ret)? $body

            #[cfg(target_arch = "x86_64")]
            #[target_feature(enable = "avx2,fma,bmi1,bmi2,lzcnt,popcnt")]
            unsafe fn v3<T: $crate::simd::Float>($($arg: $ty),*) $(-> $ret)? $body

            fn body<T: $crate::simd::Float>($($arg: $ty),*) $(-> $ret)? $body

            match $crate::simd::level() {
                // SAFETY: `level()` only reports a level whose features the CPU has.
                #[cfg(target_arch = "x86_64")]
                $crate::simd::Level::Avx512 => unsafe { v4::<T>($($arg),*) },
                #[cfg(target_arch = "x86_64")]
                $crate::simd::Level::Avx2 => unsafe { v3::<T>($($arg),*) },
                _ => body::<T>($($arg),*),
            }
        }
    };
}

#[cfg(test)]
mod tests;

//! Short rows to lanes and back: the data movement of the column kernels.
//!
//! A block of `w <= LANES` contiguous rows of `n` elements (`src[j * n + k]`)
//! becomes `LANES` interleaved rows (`dst[k * LANES + j]`, lanes past `w`
//! repeating row `w - 1`), and back. This is pure data movement (same bits on
//! every path). With AVX-512 or AVX2 it runs as in-register transposes of
//! 16×16 / 8×8 (f32) or 8×8 / 4×4 (f64) tiles; elsewhere element by
//! element. A row's partial chunk is read with a full-width load that takes
//! the next row's first columns (dropped) and written with a full-width store
//! that spills into the next row (which is written later); only an access
//! that would pass the block's end is masked, so nothing outside the block
//! is read or written. Masked accesses are slow on AMD: microcoded for AVX2,
//! and on this Zen 5 VM the AVX-512 ones made 262144x10 softmax 3x slower.

use super::{Float, LANES as L};

/// `dst[k * L + j] = src[min(j, w - 1) * n + k]` for `k < n`, `j < L`.
///
/// # Panics
/// If `w` is 0 or above `L`, `src` holds fewer than `w * n` elements or
/// `dst` fewer than `n * L`.
pub fn rows_to_lanes<T: Float>(src: &[T], w: usize, n: usize, dst: &mut [T]) {
    assert!((1..=L).contains(&w) && src.len() >= w * n && dst.len() >= n * L);
    #[cfg(target_arch = "x86_64")]
    {
        use super::{level, Level};
        let size = std::mem::size_of::<T>();
        // SAFETY: the level is only ever set to one the CPU supports, T is f32
        // or f64 (the only Float types; the bits are moved, not interpreted),
        // and the lengths were checked above.
        unsafe {
            match (level(), size) {
                (Level::Avx512, 4) => {
                    return x86::in_f32_512(src.as_ptr().cast(), w, n, dst.as_mut_ptr().cast())
                }
                (Level::Avx512, 8) => {
                    return x86::in_f64_512(src.as_ptr().cast(), w, n, dst.as_mut_ptr().cast())
                }
                (Level::Avx2, 4) => {
                    return x86::in_f32_256(src.as_ptr().cast(), w, n, dst.as_mut_ptr().cast())
                }
                (Level::Avx2, 8) => {
                    return x86::in_f64_256(src.as_ptr().cast(), w, n, dst.as_mut_ptr().cast())
                }
                _ => {}
            }
        }
    }
    rows_to_lanes_scalar(src, w, n, dst);
}

/// `dst[j * n + k] = src[k * L + j]` for `j < w`, `k < n`: the inverse of
/// [`rows_to_lanes`] for the first `w` lanes.
///
/// # Panics
/// If `w` is 0 or above `L`, `src` holds fewer than `n * L` elements or
/// `dst` fewer than `w * n`.
pub fn lanes_to_rows<T: Float>(src: &[T], n: usize, w: usize, dst: &mut [T]) {
    assert!((1..=L).contains(&w) && src.len() >= n * L && dst.len() >= w * n);
    #[cfg(target_arch = "x86_64")]
    {
        use super::{level, Level};
        let size = std::mem::size_of::<T>();
        // SAFETY: as in `rows_to_lanes`.
        unsafe {
            match (level(), size) {
                (Level::Avx512, 4) => {
                    return x86::out_f32_512(src.as_ptr().cast(), n, w, dst.as_mut_ptr().cast())
                }
                (Level::Avx512, 8) => {
                    return x86::out_f64_512(src.as_ptr().cast(), n, w, dst.as_mut_ptr().cast())
                }
                (Level::Avx2, 4) => {
                    return x86::out_f32_256(src.as_ptr().cast(), n, w, dst.as_mut_ptr().cast())
                }
                (Level::Avx2, 8) => {
                    return x86::out_f64_256(src.as_ptr().cast(), n, w, dst.as_mut_ptr().cast())
                }
                _ => {}
            }
        }
    }
    lanes_to_rows_scalar(src, n, w, dst);
}

/// Row by row (reads sequential): the portable path and the tests' reference.
pub fn rows_to_lanes_scalar<T: Float>(src: &[T], w: usize, n: usize, dst: &mut [T]) {
    for j in 0..L {
        let row = &src[j.min(w - 1) * n..][..n];
        for (k, &v) in row.iter().enumerate() {
            dst[k * L + j] = v;
        }
    }
}

/// Row by row (writes sequential): the portable path and the tests' reference.
pub fn lanes_to_rows_scalar<T: Float>(src: &[T], n: usize, w: usize, dst: &mut [T]) {
    for (j, row) in dst[..w * n].chunks_exact_mut(n).enumerate() {
        for (k, o) in row.iter_mut().enumerate() {
            *o = src[k * L + j];
        }
    }
}

#[cfg(target_arch = "x86_64")]
pub(crate) mod x86 {
    use super::L;
    use std::arch::x86_64::*;

    // ------------------------------------------------------------- AVX-512

    /// The 16 f32 at `p + at`, with one full-width load while they lie
    /// before `end` (columns past a row's `m` come from the next row and are
    /// the caller's to drop), else with the load masked by `m`.
    ///
    /// # Safety
    /// `p` readable up to `end`, and at the lanes of `m` from `at`.
    #[inline]
    #[target_feature(enable = "avx512f")]
    pub(crate) unsafe fn load_row(p: *const f32, at: usize, end: usize, m: __mmask16) -> __m512 {
        if at + 16 <= end {
            _mm512_loadu_ps(p.add(at))
        } else {
            _mm512_maskz_loadu_ps(m, p.add(at))
        }
    }

    /// Stores `v` at `p + at`: one full-width store while it lies before
    /// `end` (spilling into what follows, which the caller writes later),
    /// else a store masked by `m` (0: none).
    ///
    /// # Safety
    /// `p` writable up to `end`, and at the lanes of `m` from `at`.
    #[inline]
    #[target_feature(enable = "avx512f")]
    pub(crate) unsafe fn store_row(p: *mut f32, at: usize, end: usize, m: __mmask16, v: __m512) {
        if at + 16 <= end {
            _mm512_storeu_ps(p.add(at), v);
        } else {
            _mm512_mask_storeu_ps(p.wrapping_add(at), m, v);
        }
    }

    /// Transposes 16 rows of 16 f32 in place (64 shuffles).
    #[inline]
    #[target_feature(enable = "avx512f")]
    pub(crate) fn t16x16(r: &mut [__m512; 16]) {
        let mut t = [_mm512_setzero_ps(); 16];
        for p in 0..8 {
            t[2 * p] = _mm512_unpacklo_ps(r[2 * p], r[2 * p + 1]);
            t[2 * p + 1] = _mm512_unpackhi_ps(r[2 * p], r[2 * p + 1]);
        }
        // u[4g + c], 128-bit lane q: rows 4g..4g+4 of column 4q + c.
        let mut u = [_mm512_setzero_ps(); 16];
        for g in 0..4 {
            let (a, b, c, d) = (t[4 * g], t[4 * g + 1], t[4 * g + 2], t[4 * g + 3]);
            u[4 * g] = _mm512_shuffle_ps::<0x44>(a, c);
            u[4 * g + 1] = _mm512_shuffle_ps::<0xEE>(a, c);
            u[4 * g + 2] = _mm512_shuffle_ps::<0x44>(b, d);
            u[4 * g + 3] = _mm512_shuffle_ps::<0xEE>(b, d);
        }
        let mut v = [_mm512_setzero_ps(); 16];
        for h in 0..2 {
            for c in 0..4 {
                let (a, b) = (u[8 * h + c], u[8 * h + 4 + c]);
                v[8 * h + c] = _mm512_shuffle_f32x4::<0x88>(a, b);
                v[8 * h + 4 + c] = _mm512_shuffle_f32x4::<0xDD>(a, b);
            }
        }
        for c in 0..4 {
            r[c] = _mm512_shuffle_f32x4::<0x88>(v[c], v[8 + c]);
            r[8 + c] = _mm512_shuffle_f32x4::<0xDD>(v[c], v[8 + c]);
            r[4 + c] = _mm512_shuffle_f32x4::<0x88>(v[4 + c], v[12 + c]);
            r[12 + c] = _mm512_shuffle_f32x4::<0xDD>(v[4 + c], v[12 + c]);
        }
    }

    /// Transposes 8 rows of 8 f64 in place (24 shuffles).
    #[inline]
    #[target_feature(enable = "avx512f")]
    fn t8x8(r: &mut [__m512d; 8]) {
        let mut t = [_mm512_setzero_pd(); 8];
        for p in 0..4 {
            t[2 * p] = _mm512_unpacklo_pd(r[2 * p], r[2 * p + 1]);
            t[2 * p + 1] = _mm512_unpackhi_pd(r[2 * p], r[2 * p + 1]);
        }
        // t[2p + c], 128-bit lane q: rows 2p, 2p+1 of column 2q + c.
        for c in 0..2 {
            let v0 = _mm512_shuffle_f64x2::<0x88>(t[c], t[2 + c]);
            let w0 = _mm512_shuffle_f64x2::<0xDD>(t[c], t[2 + c]);
            let v1 = _mm512_shuffle_f64x2::<0x88>(t[4 + c], t[6 + c]);
            let w1 = _mm512_shuffle_f64x2::<0xDD>(t[4 + c], t[6 + c]);
            r[c] = _mm512_shuffle_f64x2::<0x88>(v0, v1);
            r[4 + c] = _mm512_shuffle_f64x2::<0xDD>(v0, v1);
            r[2 + c] = _mm512_shuffle_f64x2::<0x88>(w0, w1);
            r[6 + c] = _mm512_shuffle_f64x2::<0xDD>(w0, w1);
        }
    }

    /// # Safety
    /// AVX-512F; `src` holds `w * n` elements, `dst` `n * L`, `1 <= w <= L`.
    #[target_feature(enable = "avx512f")]
    pub unsafe fn in_f32_512(src: *const f32, w: usize, n: usize, dst: *mut f32) {
        let mut r = [_mm512_setzero_ps(); 16];
        for c0 in (0..n).step_by(16) {
            let cw = (n - c0).min(16);
            let m = ((1u32 << cw) - 1) as __mmask16;
            for (j, rj) in r.iter_mut().enumerate() {
                *rj = load_row(src, j.min(w - 1) * n + c0, w * n, m);
            }
            t16x16(&mut r);
            // Plain stores of the first `cw`, as straight-line code: LLVM
            // turned a loop of `cw` stores, contiguous here, into a memcpy
            // call from a stack copy of `r`. Masked stores (with a full or
            // an empty mask) are slow on AMD (see `tile`); on Zen 4, perf
            // put most of this function's samples right after them, though
            // with plain stores the samples moved to the loads and the time
            // of a 262144x10 transpose changed within the noise.
            macro_rules! stores {
                ($($k:literal)*) => {$(
                    if $k < cw {
                        _mm512_storeu_ps(dst.add((c0 + $k) * L), r[$k]);
                    }
                )*};
            }
            stores!(0 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15);
        }
    }

    /// # Safety
    /// AVX-512F; `src` holds `n * L` elements, `dst` `w * n`, `1 <= w <= L`.
    #[target_feature(enable = "avx512f")]
    pub unsafe fn out_f32_512(src: *const f32, n: usize, w: usize, dst: *mut f32) {
        let mut r = [_mm512_setzero_ps(); 16];
        // Chunks from the last (partial) one down, rows in order, full-width
        // stores that spill into the next row as in `out_f32_256`.
        for c0 in (0..n).step_by(16).rev() {
            let cw = (n - c0).min(16);
            let m = ((1u32 << cw) - 1) as __mmask16;
            // Plain loads of the first `cw` (masked ones are slow on AMD,
            // as in `in_f32_512`).
            for (k, rk) in r.iter_mut().enumerate() {
                *rk = if k < cw {
                    _mm512_loadu_ps(src.add((c0 + k) * L))
                } else {
                    _mm512_setzero_ps()
                };
            }
            t16x16(&mut r);
            for (j, rj) in r.iter().enumerate() {
                store_row(dst, j * n + c0, w * n, if j < w { m } else { 0 }, *rj);
            }
        }
    }

    /// # Safety
    /// As [`in_f32_512`].
    #[target_feature(enable = "avx512f")]
    pub unsafe fn in_f64_512(src: *const f64, w: usize, n: usize, dst: *mut f64) {
        let mut r = [_mm512_setzero_pd(); 8];
        for c0 in (0..n).step_by(8) {
            let cw = (n - c0).min(8);
            let m = ((1u32 << cw) - 1) as __mmask8;
            for h in 0..2 {
                for (i, ri) in r.iter_mut().enumerate() {
                    let at = (8 * h + i).min(w - 1) * n + c0;
                    *ri = if at + 8 <= w * n {
                        _mm512_loadu_pd(src.add(at))
                    } else {
                        _mm512_maskz_loadu_pd(m, src.add(at))
                    };
                }
                t8x8(&mut r);
                for (k, rk) in r.iter().enumerate() {
                    // A constant trip count, so that `r` stays in registers.
                    if k >= cw {
                        break;
                    }
                    _mm512_storeu_pd(dst.add((c0 + k) * L + 8 * h), *rk);
                }
            }
        }
    }

    /// # Safety
    /// As [`out_f32_512`].
    #[target_feature(enable = "avx512f")]
    pub unsafe fn out_f64_512(src: *const f64, n: usize, w: usize, dst: *mut f64) {
        let mut r = [_mm512_setzero_pd(); 8];
        // Spilling full-width stores, as in `out_f32_512`.
        for c0 in (0..n).step_by(8).rev() {
            let cw = (n - c0).min(8);
            let m = ((1u32 << cw) - 1) as __mmask8;
            for h in 0..2 {
                if 8 * h >= w {
                    break;
                }
                for (k, rk) in r.iter_mut().enumerate() {
                    *rk = if k < cw {
                        _mm512_loadu_pd(src.add((c0 + k) * L + 8 * h))
                    } else {
                        _mm512_setzero_pd()
                    };
                }
                t8x8(&mut r);
                for (i, ri) in r.iter().enumerate() {
                    // A constant trip count, so that `r` stays in registers.
                    if i >= w - 8 * h {
                        break;
                    }
                    let at = (8 * h + i) * n + c0;
                    if at + 8 <= w * n {
                        _mm512_storeu_pd(dst.add(at), *ri);
                    } else {
                        _mm512_mask_storeu_pd(dst.add(at), m, *ri);
                    }
                }
            }
        }
    }

    // ---------------------------------------------------------------- AVX2

    /// Transposes 8 rows of 8 f32 in place (24 shuffles).
    #[inline]
    #[target_feature(enable = "avx2")]
    pub(crate) fn t8x8_ps(r: &mut [__m256; 8]) {
        let mut t = [_mm256_setzero_ps(); 8];
        for p in 0..4 {
            t[2 * p] = _mm256_unpacklo_ps(r[2 * p], r[2 * p + 1]);
            t[2 * p + 1] = _mm256_unpackhi_ps(r[2 * p], r[2 * p + 1]);
        }
        let mut u = [_mm256_setzero_ps(); 8];
        for g in 0..2 {
            let (a, b, c, d) = (t[4 * g], t[4 * g + 1], t[4 * g + 2], t[4 * g + 3]);
            u[4 * g] = _mm256_shuffle_ps::<0x44>(a, c);
            u[4 * g + 1] = _mm256_shuffle_ps::<0xEE>(a, c);
            u[4 * g + 2] = _mm256_shuffle_ps::<0x44>(b, d);
            u[4 * g + 3] = _mm256_shuffle_ps::<0xEE>(b, d);
        }
        for c in 0..4 {
            r[c] = _mm256_permute2f128_ps::<0x20>(u[c], u[4 + c]);
            r[4 + c] = _mm256_permute2f128_ps::<0x31>(u[c], u[4 + c]);
        }
    }

    /// Transposes 4 rows of 4 f64 in place (8 shuffles).
    #[inline]
    #[target_feature(enable = "avx2")]
    fn t4x4_pd(r: &mut [__m256d; 4]) {
        let t0 = _mm256_unpacklo_pd(r[0], r[1]);
        let t1 = _mm256_unpackhi_pd(r[0], r[1]);
        let t2 = _mm256_unpacklo_pd(r[2], r[3]);
        let t3 = _mm256_unpackhi_pd(r[2], r[3]);
        r[0] = _mm256_permute2f128_pd::<0x20>(t0, t2);
        r[1] = _mm256_permute2f128_pd::<0x20>(t1, t3);
        r[2] = _mm256_permute2f128_pd::<0x31>(t0, t2);
        r[3] = _mm256_permute2f128_pd::<0x31>(t1, t3);
    }

    /// Lane mask of the first `cw` of `lanes` 32- or 64-bit lanes (AVX2
    /// masked loads and stores take the sign bit of each lane).
    #[inline]
    #[target_feature(enable = "avx2")]
    pub(crate) fn mask32(cw: usize) -> __m256i {
        let idx = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
        _mm256_cmpgt_epi32(_mm256_set1_epi32(cw as i32), idx)
    }

    #[inline]
    #[target_feature(enable = "avx2")]
    fn mask64(cw: usize) -> __m256i {
        let idx = _mm256_setr_epi64x(0, 1, 2, 3);
        _mm256_cmpgt_epi64(_mm256_set1_epi64x(cw as i64), idx)
    }

    /// # Safety
    /// AVX2; as [`in_f32_512`].
    #[target_feature(enable = "avx2")]
    pub unsafe fn in_f32_256(src: *const f32, w: usize, n: usize, dst: *mut f32) {
        let mut r = [_mm256_setzero_ps(); 8];
        for c0 in (0..n).step_by(8) {
            let cw = (n - c0).min(8);
            let m = mask32(cw);
            for h in 0..2 {
                for (i, ri) in r.iter_mut().enumerate() {
                    let at = (8 * h + i).min(w - 1) * n + c0;
                    // Columns past `cw` come from the next row and are dropped.
                    *ri = if at + 8 <= w * n {
                        _mm256_loadu_ps(src.add(at))
                    } else {
                        _mm256_maskload_ps(src.add(at), m)
                    };
                }
                t8x8_ps(&mut r);
                for (k, rk) in r.iter().enumerate() {
                    // A constant trip count, so that `r` stays in registers.
                    if k >= cw {
                        break;
                    }
                    _mm256_storeu_ps(dst.add((c0 + k) * L + 8 * h), *rk);
                }
            }
        }
    }

    /// # Safety
    /// AVX2; as [`out_f32_512`].
    #[target_feature(enable = "avx2")]
    pub unsafe fn out_f32_256(src: *const f32, n: usize, w: usize, dst: *mut f32) {
        let mut r = [_mm256_setzero_ps(); 8];
        // Chunks from the last (partial) one down, rows in order: a full-width
        // store of a partial chunk spills into the next row's first columns,
        // which that row's chunk 0 (stored later) overwrites. Only a store
        // that would pass the block's end is masked (AMD runs masked AVX2
        // stores in microcode).
        for c0 in (0..n).step_by(8).rev() {
            let cw = (n - c0).min(8);
            let m = mask32(cw);
            for h in 0..2 {
                if 8 * h >= w {
                    break;
                }
                for (k, rk) in r.iter_mut().enumerate() {
                    *rk = if k < cw {
                        _mm256_loadu_ps(src.add((c0 + k) * L + 8 * h))
                    } else {
                        _mm256_setzero_ps()
                    };
                }
                t8x8_ps(&mut r);
                for (i, ri) in r.iter().enumerate() {
                    // A constant trip count, so that `r` stays in registers.
                    if i >= w - 8 * h {
                        break;
                    }
                    let at = (8 * h + i) * n + c0;
                    if at + 8 <= w * n {
                        _mm256_storeu_ps(dst.add(at), *ri);
                    } else {
                        _mm256_maskstore_ps(dst.add(at), m, *ri);
                    }
                }
            }
        }
    }

    /// # Safety
    /// AVX2; as [`in_f32_512`].
    #[target_feature(enable = "avx2")]
    pub unsafe fn in_f64_256(src: *const f64, w: usize, n: usize, dst: *mut f64) {
        let mut r = [_mm256_setzero_pd(); 4];
        for c0 in (0..n).step_by(4) {
            let cw = (n - c0).min(4);
            let m = mask64(cw);
            for q in 0..4 {
                for (i, ri) in r.iter_mut().enumerate() {
                    let at = (4 * q + i).min(w - 1) * n + c0;
                    *ri = if at + 4 <= w * n {
                        _mm256_loadu_pd(src.add(at))
                    } else {
                        _mm256_maskload_pd(src.add(at), m)
                    };
                }
                t4x4_pd(&mut r);
                for (k, rk) in r.iter().enumerate() {
                    // A constant trip count, so that `r` stays in registers.
                    if k >= cw {
                        break;
                    }
                    _mm256_storeu_pd(dst.add((c0 + k) * L + 4 * q), *rk);
                }
            }
        }
    }

    /// # Safety
    /// AVX2; as [`out_f32_512`].
    #[target_feature(enable = "avx2")]
    pub unsafe fn out_f64_256(src: *const f64, n: usize, w: usize, dst: *mut f64) {
        let mut r = [_mm256_setzero_pd(); 4];
        // Chunks in reverse and spilling stores, as in `out_f32_256`.
        for c0 in (0..n).step_by(4).rev() {
            let cw = (n - c0).min(4);
            let m = mask64(cw);
            for q in 0..4 {
                if 4 * q >= w {
                    break;
                }
                for (k, rk) in r.iter_mut().enumerate() {
                    *rk = if k < cw {
                        _mm256_loadu_pd(src.add((c0 + k) * L + 4 * q))
                    } else {
                        _mm256_setzero_pd()
                    };
                }
                t4x4_pd(&mut r);
                for (i, ri) in r.iter().enumerate() {
                    // A constant trip count, so that `r` stays in registers.
                    if i >= w - 4 * q {
                        break;
                    }
                    let at = (4 * q + i) * n + c0;
                    if at + 4 <= w * n {
                        _mm256_storeu_pd(dst.add(at), *ri);
                    } else {
                        _mm256_maskstore_pd(dst.add(at), m, *ri);
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    type In<T> = unsafe fn(*const T, usize, usize, *mut T);

    /// Every x86 path this CPU can run, called directly (not through the
    /// global level, which other tests switch concurrently).
    #[cfg(target_arch = "x86_64")]
    fn paths<T: Float>(
        p512: (In<T>, In<T>),
        p256: (In<T>, In<T>),
    ) -> Vec<(&'static str, In<T>, In<T>)> {
        let mut out = vec![];
        if std::arch::is_x86_feature_detected!("avx512f") {
            out.push(("avx512", p512.0, p512.1));
        }
        if std::arch::is_x86_feature_detected!("avx2") {
            out.push(("avx2", p256.0, p256.1));
        }
        out
    }

    fn check<T: Float>(paths: &[(&str, In<T>, In<T>)], make: impl Fn(usize) -> T) {
        let same = |a: &[T], b: &[T]| a.iter().zip(b).all(|(p, q)| p.to_f64() == q.to_f64());
        for n in 1..40 {
            for w in 1..=L {
                let src: Vec<T> = (0..w * n).map(&make).collect();
                let mut want = vec![T::ZERO; n * L];
                rows_to_lanes_scalar(&src, w, n, &mut want);
                for (k, chunk) in want.chunks_exact(L).enumerate() {
                    for (j, &v) in chunk.iter().enumerate() {
                        assert!(v.to_f64() == make(j.min(w - 1) * n + k).to_f64());
                    }
                }
                let mut back = vec![T::NAN; w * n];
                lanes_to_rows_scalar(&want, n, w, &mut back);
                assert!(same(&back, &src));
                // The public entry points (whatever level is active).
                let mut got = vec![T::ZERO; n * L];
                rows_to_lanes(&src, w, n, &mut got);
                assert!(same(&got, &want));
                let mut back = vec![T::NAN; w * n];
                lanes_to_rows(&got, n, w, &mut back);
                assert!(same(&back, &src));
                for &(name, fin, fout) in paths {
                    // NaN sentinels past the end catch a write outside the block.
                    let mut got = vec![T::NAN; n * L + 17];
                    unsafe { fin(src.as_ptr(), w, n, got.as_mut_ptr()) };
                    assert!(same(&got[..n * L], &want), "{name} in: n={n} w={w}");
                    assert!(
                        got[n * L..].iter().all(|v| v.is_nan_()),
                        "{name} in wrote past the lanes"
                    );
                    let mut back = vec![T::NAN; w * n + 17];
                    unsafe { fout(got.as_ptr(), n, w, back.as_mut_ptr()) };
                    assert!(same(&back[..w * n], &src), "{name} out: n={n} w={w}");
                    assert!(
                        back[w * n..].iter().all(|v| v.is_nan_()),
                        "{name} out wrote past the rows"
                    );
                }
            }
        }
    }

    #[test]
    fn transposes_match_the_scalar_path_on_every_instruction_set() {
        #[cfg(target_arch = "x86_64")]
        {
            let p32 = paths::<f32>(
                (x86::in_f32_512, x86::out_f32_512),
                (x86::in_f32_256, x86::out_f32_256),
            );
            let p64 = paths::<f64>(
                (x86::in_f64_512, x86::out_f64_512),
                (x86::in_f64_256, x86::out_f64_256),
            );
            check::<f32>(&p32, |i| i as f32 + 0.5);
            check::<f64>(&p64, |i| i as f64 * 1.25 - 3.0);
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            check::<f32>(&[], |i| i as f32 + 0.5);
            check::<f64>(&[], |i| i as f64 * 1.25 - 3.0);
        }
    }
}

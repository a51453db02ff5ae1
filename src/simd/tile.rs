//! Float32 softmax, log-softmax, logsumexp and cross-entropy (class
//! indices) of rows of 1 to 16 classes, 16 rows at a time held in AVX-512
//! registers from load to store (also over a class axis that is not the
//! last, where 16 adjacent positions need no transpose). AVX2 has the same
//! tiles (`avx2`) with 8 rows each.
//!
//! The column kernels (`kernels::softmax`) take short rows through a scratch
//! block: transpose 16 rows into lanes, a max pass, an exp-and-sum pass and a
//! scaling pass over the block, transpose back, each step a function over
//! memory. For rows of a few classes those round trips, the calls and their
//! set-up cost more than the arithmetic (262144x10 softmax, 1 thread: 52
//! cycles per 16 elements against 10 for a copy). Here a tile of 16 rows is
//! loaded with full-width row loads (masked only where one would pass the
//! task's rows: masked accesses are slow on AMD, on this Zen 5 VM 2-3x the
//! tile's whole time), transposed in registers, reduced and
//! exponentiated (phase one), then scaled, transposed back and stored (phase
//! two), with the number of classes a constant. Phase one runs for eight
//! tiles before their phase two, which splits each tile's long dependency
//! chain (max, exps, sum, reciprocal or log) so that tiles overlap
//! (softmax: 32 against 35 cycles with one phase per tile, and 5.3 against
//! 4.95 ns per 16 elements with four tiles per round rather than eight; 1
//! thread, 10 classes).
//!
//! The arithmetic is the column kernels', operation for operation (the same
//! exps, TwoSum, f64 sums in the same order, the f32 reciprocal of the sum
//! or `ln_sums`' log1p, cross-entropy's per-lane terms), so the results are
//! bit for bit those of the generic path on every instruction set; only the
//! data movement differs.

/// For `n` in 1..=16, evaluates `$e` with the class count as the constant
/// `$k` and returns true from the enclosing function; else falls through.
#[cfg(target_arch = "x86_64")]
macro_rules! by_class_count {
    ($n:expr, $k:ident => $e:expr) => {
        by_class_count!(@ $n, $k => $e; 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16);
    };
    (@ $n:expr, $k:ident => $e:expr; $($lit:literal)*) => {
        match $n {
            $($lit => {
                const $k: usize = $lit;
                $e;
                return true;
            })*
            _ => {}
        }
    };
}

/// The ops with tiles.
#[derive(Clone, Copy)]
pub enum Op {
    /// As `softmax_cols`.
    Softmax,
    /// As `log_softmax_cols`.
    LogSoftmax,
    /// As `logsumexp_cols`: one value per row.
    LogSumExp,
}

/// `op` on `rows` float32 rows of `n` classes from `src` into `dst` (which
/// may be `src`: each tile is read before it is written), for `level`.
/// Returns false, touching nothing, unless `level` is AVX-512 or AVX2 and
/// `n` is in `1..=16`. The class count is a constant in the kernels. The rows are
/// contiguous for `inner = (0, _)`, else laid out as [`ce_index`] describes
/// (in `src` and, for a map, in `dst`; a reduction's outputs are `rows`
/// contiguous values at `dst` either way).
///
/// # Safety
/// `src` readable and `dst` writable at the rows' elements (`rows * n`
/// from the pointers when contiguous; `rows` at `dst` for
/// [`Op::LogSumExp`]), the same pointer or not overlapping; `level` one
/// the CPU supports.
pub unsafe fn run(
    level: super::Level,
    op: Op,
    src: *const f32,
    rows: usize,
    n: usize,
    inner: (usize, usize),
    dst: *mut f32,
) -> bool {
    // The same instances at either level, from that level's module.
    #[cfg(target_arch = "x86_64")]
    macro_rules! tiles {
        ($m:ident) => {
            // SAFETY: the caller guarantees the level and the extents.
            by_class_count!(n, N => unsafe {
                let layout = x86::Rows { inner: inner.0, base: inner.1 };
                // The contiguous rows' instances have no trace of the other layout.
                match (op, inner.0 == 0) {
                    (Op::Softmax, true) => $m::softmax_rows::<N, false>(src, rows, layout, dst),
                    (Op::Softmax, false) => $m::softmax_rows::<N, true>(src, rows, layout, dst),
                    (Op::LogSoftmax, true) => $m::log_softmax_rows::<N, false, false>(src, rows, layout, dst),
                    (Op::LogSoftmax, false) => $m::log_softmax_rows::<N, false, true>(src, rows, layout, dst),
                    (Op::LogSumExp, true) => $m::log_softmax_rows::<N, true, false>(src, rows, layout, dst),
                    (Op::LogSumExp, false) => $m::log_softmax_rows::<N, true, true>(src, rows, layout, dst),
                }
            })
        };
    }
    #[cfg(target_arch = "x86_64")]
    match level {
        super::Level::Avx512 => {
            tiles!(x86);
        }
        super::Level::Avx2 => {
            tiles!(avx2);
        }
        _ => {}
    }
    let _ = (level, op, src, rows, n, inner, dst);
    false
}

/// What the cross-entropy tiles take besides the logits.
pub struct CeArgs<'a> {
    /// Each row's target class (checked to be in range), or `ignore_index`.
    pub t: &'a [i64],
    pub ignore_index: i64,
    /// Per-class weights.
    pub weight: Option<&'a [f32]>,
    /// The gradient's scale (1 / the normaliser for "mean").
    pub scale: f64,
    /// Each row's loss, when wanted (as many as `t`).
    pub per_row: Option<&'a mut [f32]>,
}

/// `kernels::losses::ce_index_lanes` for f32 on a tile's lanes `(xt, ms,
/// others, tf, wt)`, returning `(loss, c, gt, tg)`: the tiles' path for a
/// tile that has a lane their vector terms leave to it (a NaN, an infinite
/// or tiny ratio).
pub type CeSlow<'a> = dyn FnMut(
        &[f32; 16],
        &[f32; 16],
        &[f64; 16],
        &[f32; 16],
        &[f64; 16],
    ) -> ([f64; 16], [f32; 16], [f32; 16], [f32; 16])
    + 'a;

/// Cross-entropy with class indices over `rows` contiguous float32 rows of
/// `n` classes from `src`, as `kernels::losses::ce_index_cols` computes it
/// (the same operations, so the same bits), with the tiles of [`run`]: the
/// targets, weights and per-lane terms in vectors (`slow` for a tile they do
/// not cover), each tile's losses summed as `simd::hsum` sums them and the
/// tiles in row order into `total`; the gradient goes to `dst` unless it is
/// null. Returns false, touching nothing, unless `level` is AVX-512 or AVX2
/// and `n` is in `1..=16`.
///
/// `inner = (0, _)`: the rows are contiguous. `inner = (i, base)`, `i >
/// 0`: the rows are those of a class axis with `i` elements after it (row
/// `r = o i + c` of the whole array has class `k` at `o n i + k i + c` of
/// `src` and `dst`), and this call's row 0 is row `base`; a tile of 16
/// adjacent rows is loaded and stored one class vector at a time, other
/// tiles through contiguous copies of their rows.
///
/// # Safety
/// `src` readable at the rows' elements (`rows * n` from `src` when
/// contiguous), `a.t` and `a.per_row` of `rows`, every target in `0..n` or
/// `a.ignore_index`, `a.weight` (if any) of `n`, `dst` (unless null)
/// writable at the rows' elements and not overlapping `src` (or, for a
/// non-last class axis, `src` itself: a round of tiles is read before it
/// is written); `level` one the CPU supports.
#[allow(clippy::too_many_arguments)]
pub unsafe fn ce_index(
    level: super::Level,
    src: *const f32,
    rows: usize,
    n: usize,
    inner: (usize, usize),
    a: &mut CeArgs<'_>,
    dst: *mut f32,
    slow: &mut CeSlow<'_>,
    total: &mut f64,
) -> bool {
    // The same instances at either level, from that level's module.
    #[cfg(target_arch = "x86_64")]
    macro_rules! tiles {
        ($m:ident) => {
            // SAFETY: the caller guarantees the level and the extents.
            by_class_count!(n, N => unsafe {
                let layout = x86::Rows { inner: inner.0, base: inner.1 };
                // The contiguous rows' instance has no trace of the other layout.
                *total = if inner.0 == 0 {
                    $m::ce_index_rows::<N, false>(src, rows, layout, a, dst, slow)
                } else {
                    $m::ce_index_rows::<N, true>(src, rows, layout, a, dst, slow)
                }
            })
        };
    }
    #[cfg(target_arch = "x86_64")]
    match level {
        super::Level::Avx512 => {
            tiles!(x86);
        }
        super::Level::Avx2 => {
            tiles!(avx2);
        }
        _ => {}
    }
    let _ = (level, src, rows, n, inner, a, dst, slow, total);
    false
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::super::float::exp_f32_consts::{BIAS, FLUSH_MIN, LN2_HI, LN2_LO, LOG2E, MAGIC, P};
    use super::super::transpose::x86::{load_row, store_row, t16x16};
    use super::super::x86::widen;
    use super::super::Float;
    use std::arch::x86_64::*;

    const L: usize = 16;

    /// `Float::diff` (Knuth's TwoSum of `x` and `-m`) with `neg_m = -m`.
    #[inline]
    #[target_feature(enable = "avx512f")]
    fn diff(x: __m512, m: __m512, neg_m: __m512) -> (__m512, __m512) {
        let s = _mm512_sub_ps(x, m);
        let bp = _mm512_sub_ps(s, x);
        let lo = _mm512_add_ps(
            _mm512_sub_ps(x, _mm512_sub_ps(s, bp)),
            _mm512_sub_ps(neg_m, bp),
        );
        (s, lo)
    }

    /// `-v` (the sign bit flipped, as the scalar code's negation).
    #[inline]
    #[target_feature(enable = "avx512f")]
    fn neg(v: __m512) -> __m512 {
        _mm512_castsi512_ps(_mm512_xor_si512(
            _mm512_castps_si512(v),
            _mm512_set1_epi32(i32::MIN),
        ))
    }

    /// `expm1_f32_poly`: `(q, n)` with `x + lo = n ln 2 + r` and `q = expm1(r)`.
    #[inline]
    #[target_feature(enable = "avx512f")]
    fn expm1_poly(x: __m512, lo: __m512) -> (__m512, __m512) {
        let magic = _mm512_set1_ps(MAGIC);
        let t = _mm512_fmadd_ps(x, _mm512_set1_ps(LOG2E), magic);
        let n = _mm512_sub_ps(t, magic);
        let r = _mm512_fmadd_ps(n, _mm512_set1_ps(-LN2_HI), x);
        let r = _mm512_add_ps(_mm512_fmadd_ps(n, _mm512_set1_ps(-LN2_LO), r), lo);
        let mut p = _mm512_set1_ps(P[0]);
        for &k in &P[1..] {
            p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(k));
        }
        (_mm512_fmadd_ps(p, _mm512_mul_ps(r, r), r), n)
    }

    /// `2^(n + bias)` for integral `n` (the scalar code's exponent bits for
    /// every lane whose result is kept), one `vscalefps` instead of the
    /// integer subtract, add and shift.
    #[inline]
    #[target_feature(enable = "avx512f")]
    fn pow2(n: __m512, bias: i32) -> __m512 {
        _mm512_scalef_ps(_mm512_set1_ps(2f32.powi(bias)), n)
    }

    /// `Float::exp_biased_nonpos` for f32: 0 below `EXP_BIASED_MIN` (where
    /// the unclamped steps are discarded), NaN kept.
    #[inline]
    #[target_feature(enable = "avx512f")]
    fn exp_biased_nonpos(hi: __m512, lo: __m512) -> __m512 {
        let min = _mm512_set1_ps(<f32 as Float>::EXP_BIASED_MIN as f32);
        // Not below the minimum, NaN included (unordered: true).
        let keep = _mm512_cmp_ps_mask::<_CMP_NLT_UQ>(hi, min);
        let (q, n) = expm1_poly(hi, lo);
        let s = pow2(n, BIAS);
        _mm512_maskz_fmadd_ps(keep, q, s, s)
    }

    /// 16 lanes from two halves of 8.
    #[inline]
    #[target_feature(enable = "avx512f")]
    fn combine(lo: __m256, hi: __m256) -> __m512 {
        _mm512_castpd_ps(_mm512_insertf64x4::<1>(
            _mm512_castps_pd(_mm512_castps256_ps512(lo)),
            _mm256_castps_pd(hi),
        ))
    }

    /// `acc + widen(v)` for the two f64 halves of a 16-lane accumulator.
    #[inline]
    #[target_feature(enable = "avx512f")]
    fn add_widened(acc: &mut [__m512d; 2], v: __m512) {
        acc[0] = _mm512_add_pd(acc[0], widen(v, 0));
        acc[1] = _mm512_add_pd(acc[1], widen(v, 1));
    }

    /// `1 / f32(acc)` in f32, NaN where `acc` is 0 (as `softmax_cols`).
    #[inline]
    #[target_feature(enable = "avx512f")]
    fn inv_or_nan(acc: [__m512d; 2]) -> __m512 {
        let s = combine(_mm512_cvtpd_ps(acc[0]), _mm512_cvtpd_ps(acc[1]));
        let zero = _mm512_cmp_ps_mask::<_CMP_EQ_OQ>(s, _mm512_setzero_ps());
        let inv = _mm512_div_ps(_mm512_set1_ps(1.0), s);
        _mm512_mask_blend_ps(zero, inv, _mm512_set1_ps(f32::NAN))
    }

    /// Rows `0..w` (`w = min(left, 16)`; `left >= 1` rows from `src` to the
    /// end of the task) of `N` classes as class-major lane vectors (`r[k]`,
    /// `k < N`: class k of the 16 rows; lanes past `w` repeat row `w - 1`;
    /// `r[k]`, `k >= N`, unspecified), and the lanes' shift as `max_cols` and `shift`
    /// give it: the max (`if c > m { c } else { m }` from -inf, so NaN never
    /// enters) in two chains, whose maxima are then never NaN either (the
    /// value is one chain's; only the sign of a zero maximum can differ, and
    /// x - 0 and x + 0 give the same results), and 0 for an all -inf row.
    #[inline]
    #[target_feature(enable = "avx512f")]
    unsafe fn load_tile<const N: usize>(src: *const f32, left: usize) -> ([__m512; L], __m512) {
        let m = ((1u32 << N) - 1) as __mmask16;
        let w = left.min(L);
        let mut r = [_mm512_setzero_ps(); L];
        for (j, rj) in r.iter_mut().enumerate() {
            // Full-width unless it would pass the task's rows.
            *rj = load_row(src, j.min(w - 1) * N, left * N, m);
        }
        t16x16(&mut r);
        let ms = lane_shift::<N>(&r);
        (r, ms)
    }

    /// The lanes' shift of class-major vectors `r[..N]` (see [`load_tile`]).
    #[inline]
    #[target_feature(enable = "avx512f")]
    fn lane_shift<const N: usize>(r: &[__m512; L]) -> __m512 {
        let mut mc = [_mm512_set1_ps(f32::NEG_INFINITY); 2];
        for (k, rk) in r.iter().enumerate().take(N) {
            mc[k % 2] = _mm512_max_ps(*rk, mc[k % 2]);
        }
        let mx = _mm512_max_ps(mc[1], mc[0]);
        let ninf = _mm512_cmp_ps_mask::<_CMP_EQ_OQ>(mx, _mm512_set1_ps(f32::NEG_INFINITY));
        _mm512_mask_blend_ps(ninf, mx, _mm512_setzero_ps())
    }

    /// Where a tile's rows are: `N` contiguous elements each (`inner` 0),
    /// or row `r` at `(r / inner) * N * inner + r % inner` with its classes
    /// `inner` apart (a class axis that is not the last), `base` the row of
    /// the pointers' row 0.
    #[derive(Clone, Copy)]
    pub struct Rows {
        pub inner: usize,
        pub base: usize,
    }

    impl Rows {
        /// Offset of class `k` of row `r` (relative to the pointers' row 0
        /// for contiguous rows).
        #[inline(always)]
        pub(super) fn at<const N: usize, const INNER: bool>(self, r: usize, k: usize) -> usize {
            if !INNER {
                r * N + k
            } else {
                let r = self.base + r;
                (r / self.inner) * N * self.inner + k * self.inner + r % self.inner
            }
        }

        /// Rows `s..s + w` (of an inner axis) copied to contiguous rows at `buf`.
        ///
        /// # Safety
        /// `src` readable at those rows' elements.
        #[inline(always)]
        pub(super) unsafe fn gather<const N: usize>(
            self,
            src: *const f32,
            s: usize,
            w: usize,
            buf: &mut [f32],
        ) {
            for j in 0..w {
                for k in 0..N {
                    buf[j * N + k] = *src.add(self.at::<N, true>(s + j, k));
                }
            }
        }

        /// Contiguous rows at `buf` back to rows `s..s + w` (of an inner axis).
        ///
        /// # Safety
        /// `dst` writable at those rows' elements.
        #[inline(always)]
        pub(super) unsafe fn scatter<const N: usize>(
            self,
            dst: *mut f32,
            s: usize,
            w: usize,
            buf: &[f32],
        ) {
            for j in 0..w {
                for k in 0..N {
                    *dst.add(self.at::<N, true>(s + j, k)) = buf[j * N + k];
                }
            }
        }

        /// Rows `s..s + W` lie in one block, each class's `W` adjacent
        /// (`w`, the tile's rows, is `W`).
        #[inline(always)]
        pub(super) fn adjacent<const W: usize>(self, s: usize, w: usize) -> bool {
            self.inner != 0 && w == W && (self.base + s) % self.inner + W <= self.inner
        }
    }

    /// [`load_tile`] for the tile of rows `s..` (`left` of them to the
    /// task's end) laid out as `rows` says: 16 adjacent rows of a class
    /// axis that is not the last are loaded as they are, one vector per
    /// class, and other tiles of such an axis gathered to contiguous rows
    /// first. The same vectors and shift either way.
    #[inline]
    #[target_feature(enable = "avx512f")]
    unsafe fn load_tile_at<const N: usize, const INNER: bool>(
        src: *const f32,
        rows: Rows,
        s: usize,
        left: usize,
    ) -> ([__m512; L], __m512) {
        let w = left.min(L);
        if !INNER {
            return load_tile::<N>(src.add(s * N), left);
        }
        if rows.adjacent::<L>(s, w) {
            let p = src.add(rows.at::<N, true>(s, 0));
            let mut r = [_mm512_setzero_ps(); L];
            for (k, rk) in r.iter_mut().enumerate().take(N) {
                *rk = _mm512_loadu_ps(p.add(k * rows.inner));
            }
            let ms = lane_shift::<N>(&r);
            return (r, ms);
        }
        let mut buf = [0f32; L * L];
        rows.gather::<N>(src, s, w, &mut buf);
        load_tile::<N>(buf.as_ptr(), w)
    }

    /// [`store_tile`] for the tile of rows `s..s + w` laid out as `rows`
    /// says (see [`load_tile_at`]).
    #[inline]
    #[target_feature(enable = "avx512f")]
    unsafe fn store_tile_at<const N: usize, const INNER: bool>(
        dst: *mut f32,
        rows: Rows,
        s: usize,
        w: usize,
        f: impl Fn(usize) -> __m512,
    ) {
        if !INNER {
            return store_tile::<N>(w, dst.add(s * N), f);
        }
        if rows.adjacent::<L>(s, w) {
            let p = dst.add(rows.at::<N, true>(s, 0));
            for k in 0..N {
                _mm512_storeu_ps(p.add(k * rows.inner), f(k));
            }
            return;
        }
        let mut buf = [0f32; L * L];
        store_tile::<N>(w, buf.as_mut_ptr(), f);
        rows.scatter::<N>(dst, s, w, &buf);
    }

    /// Class-major lane vectors `f(k)`, `k < N`, back to rows `0..w` at `dst`.
    #[inline]
    #[target_feature(enable = "avx512f")]
    unsafe fn store_tile<const N: usize>(w: usize, dst: *mut f32, f: impl Fn(usize) -> __m512) {
        let m = ((1u32 << N) - 1) as __mmask16;
        // Classes past N are zeros: those lanes are never stored, and known
        // zeros let LLVM drop the shuffles that would move them (and the
        // first transpose's shuffles that only feed them).
        let mut r = [_mm512_setzero_ps(); L];
        for (k, rk) in r.iter_mut().enumerate().take(N) {
            *rk = f(k);
        }
        t16x16(&mut r);
        // All 16 stores (a constant trip count keeps `r` in registers), in
        // row order: a full-width store spills zeros into the next rows,
        // which are stored later; only a store that would pass row `w` is
        // masked (off entirely past `w`: it touches no memory).
        for (j, rj) in r.iter().enumerate() {
            store_row(dst, j * N, w * N, if j < w { m } else { 0 }, *rj);
        }
    }

    /// Softmax's phase one (`store_exp_cols`): the tile's biased exps into
    /// `e[0..N]`, summed in pairs in f32, then widened; returns the lanes'
    /// scale factors.
    #[inline]
    #[target_feature(enable = "avx512f")]
    unsafe fn softmax_exps<const N: usize, const INNER: bool>(
        src: *const f32,
        rows: Rows,
        s: usize,
        left: usize,
        e: &mut [__m512; L],
    ) -> __m512 {
        let (r, ms) = load_tile_at::<N, INNER>(src, rows, s, left);
        let neg_ms = neg(ms);
        for k in 0..N {
            let (h, l) = diff(r[k], ms, neg_ms);
            e[k] = exp_biased_nonpos(h, l);
        }
        let mut acc = [_mm512_setzero_pd(); 2];
        for p in 0..N / 2 {
            add_widened(&mut acc, _mm512_add_ps(e[2 * p], e[2 * p + 1]));
        }
        if N % 2 == 1 {
            add_widened(&mut acc, e[N - 1]);
        }
        inv_or_nan(acc)
    }

    /// Tiles per round: phase one of each, then phase two of each, which
    /// splits a tile's long dependency chain so that tiles overlap (10
    /// classes, 1 thread, in L2, ns per 16 elements for G = 2 / 4 / 8 / 16:
    /// softmax 5.3 / 5.3 / 4.95 / 5.2, cross-entropy + grad 8.9 / 8.9 / 8.5
    /// / 9.05).
    const G: usize = 8;

    /// # Safety
    /// AVX-512F; as [`super::run`] with `n == N`.
    #[target_feature(enable = "avx512f")]
    pub unsafe fn softmax_rows<const N: usize, const INNER: bool>(
        src: *const f32,
        rows: usize,
        layout: Rows,
        dst: *mut f32,
    ) {
        let mut buf = [[_mm512_setzero_ps(); L]; G];
        let mut inv = [_mm512_setzero_ps(); G];
        let mut r0 = 0;
        while r0 < rows {
            let tiles = (rows - r0).div_ceil(L).min(G);
            for t in 0..tiles {
                let s = r0 + t * L;
                inv[t] = softmax_exps::<N, INNER>(src, layout, s, rows - s, &mut buf[t]);
            }
            for t in 0..tiles {
                let s = r0 + t * L;
                let (e, k) = (&buf[t], inv[t]);
                store_tile_at::<N, INNER>(dst, layout, s, (rows - s).min(L), |c| {
                    _mm512_mul_ps(e[c], k)
                });
            }
            r0 += tiles * L;
        }
    }

    /// `Float::exp_flush` for f32: `exp(x)` for `x <= 0` or NaN, 0 below
    /// -87, NaN kept.
    #[inline]
    #[target_feature(enable = "avx512f")]
    fn exp_flush(x: __m512) -> __m512 {
        let keep = _mm512_cmp_ps_mask::<_CMP_NLT_UQ>(x, _mm512_set1_ps(FLUSH_MIN));
        let (q, n) = expm1_poly(x, _mm512_set1_ps(-0.0));
        let s = pow2(n, 0);
        _mm512_maskz_fmadd_ps(keep, q, s, s)
    }

    /// # Safety
    /// AVX-512 (the level's features); as [`super::run`] with `n == N`
    /// (log-softmax), or with one value per row at `dst` (logsumexp, when
    /// `REDUCE`).
    #[target_feature(enable = "avx512f,avx512bw,avx512dq,avx512vl,avx2,fma")]
    pub unsafe fn log_softmax_rows<const N: usize, const REDUCE: bool, const INNER: bool>(
        src: *const f32,
        rows: usize,
        layout: Rows,
        dst: *mut f32,
    ) {
        let mut buf = [[_mm512_setzero_ps(); L]; G];
        let mut shift = [_mm512_setzero_ps(); G];
        let mut sums = [[_mm512_setzero_pd(); 2]; G];
        let mut nan = [0 as __mmask16; G];
        let inf = _mm512_set1_ps(f32::INFINITY);
        let mut r0 = 0;
        while r0 < rows {
            let tiles = (rows - r0).div_ceil(L).min(G);
            // Phase one (`max_sum_cols` / `sum_exp`): exp_flush(x - shift),
            // widened, summed (a + b) + (c + d) per group of four vectors,
            // the rest into a second sum added last.
            for t in 0..tiles {
                let s = r0 + t * L;
                let (r, ms) = load_tile_at::<N, INNER>(src, layout, s, rows - s);
                // A loop with a constant trip count, unrolled (`from_fn` with
                // a `k < N` test in it stayed a loop of one exp each).
                let mut e = [_mm512_setzero_ps(); L];
                // `x - shift`, kept for phase two (the same difference).
                let mut d = r;
                for k in 0..N {
                    d[k] = _mm512_sub_ps(r[k], ms);
                    e[k] = exp_flush(d[k]);
                }
                let mut acc = [_mm512_setzero_pd(); 2];
                for g in e[..N / 4 * 4].chunks_exact(4) {
                    for (h, ah) in acc.iter_mut().enumerate() {
                        let w = |v: usize| widen(g[v], h);
                        let sum4 =
                            _mm512_add_pd(_mm512_add_pd(w(0), w(1)), _mm512_add_pd(w(2), w(3)));
                        *ah = _mm512_add_pd(*ah, sum4);
                    }
                }
                let mut part = [_mm512_setzero_pd(); 2];
                for &ek in &e[N / 4 * 4..N] {
                    for (h, ph) in part.iter_mut().enumerate() {
                        *ph = _mm512_add_pd(*ph, widen(ek, h));
                    }
                }
                sums[t] = [
                    _mm512_add_pd(acc[0], part[0]),
                    _mm512_add_pd(acc[1], part[1]),
                ];
                shift[t] = ms;
                if REDUCE {
                    // Which lanes hold a NaN, asked only of a tile with a
                    // +inf max (`lse_from`).
                    nan[t] = 0;
                    if _mm512_cmp_ps_mask::<_CMP_EQ_OQ>(ms, inf) != 0 {
                        for rk in &r[..N] {
                            nan[t] |= _mm512_cmp_ps_mask::<_CMP_UNORD_Q>(*rk, *rk);
                        }
                    }
                } else {
                    buf[t] = d;
                }
            }
            // log(sum) as the column kernels take it (`ln_sums`), for all
            // the round's tiles before any is stored.
            let mut logs = [_mm512_setzero_ps(); G];
            for t in 0..tiles {
                logs[t] = ln_sums(sums[t]);
            }
            for t in 0..tiles {
                let s = r0 + t * L;
                let (c, ms) = (logs[t], shift[t]);
                if REDUCE {
                    // `lse_from`: f32(shift + ln(sum)); a +inf shift gives
                    // +inf, or NaN when the row holds a NaN.
                    let v = combine(
                        _mm512_cvtpd_ps(_mm512_add_pd(widen(ms, 0), widen(c, 0))),
                        _mm512_cvtpd_ps(_mm512_add_pd(widen(ms, 1), widen(c, 1))),
                    );
                    let big = _mm512_cmp_ps_mask::<_CMP_EQ_OQ>(ms, inf);
                    let v = _mm512_mask_blend_ps(big, v, inf);
                    let v = _mm512_mask_blend_ps(big & nan[t], v, _mm512_set1_ps(f32::NAN));
                    let w = (rows - s).min(L);
                    store_row(dst, s, rows, ((1u32 << w) - 1) as __mmask16, v);
                } else {
                    // Phase two (`sub_shift`): (x - shift) - log(sum).
                    let d = &buf[t];
                    store_tile_at::<N, INNER>(dst, layout, s, (rows - s).min(L), |k| {
                        _mm512_sub_ps(d[k], c)
                    });
                }
            }
            r0 += tiles * L;
        }
    }

    /// Cross-entropy's phase one for a tile (`ce_index_cols`: `max_cols`,
    /// `pick_cols`, `store_others`): the biased exps into `e[0..N]`; returns
    /// the lanes' target exps (the same operations on the same value as
    /// `ce_index_lanes`' `e_t`), shifts and sums of the non-target exps.
    #[inline]
    #[target_feature(enable = "avx512f,avx512bw,avx512dq,avx512vl,avx2,fma,bmi1,bmi2,lzcnt,popcnt")]
    unsafe fn ce_exps<const N: usize, const INNER: bool>(
        src: *const f32,
        rows: Rows,
        s: usize,
        left: usize,
        tfv: __m512,
        e: &mut [__m512; L],
    ) -> (__m512, __m512, [__m512d; 2]) {
        let (r, ms) = load_tile_at::<N, INNER>(src, rows, s, left);
        let neg_ms = neg(ms);
        let mut et = _mm512_setzero_ps();
        let mut o = [_mm512_setzero_ps(); L];
        for k in 0..N {
            let hit = _mm512_cmp_ps_mask::<_CMP_EQ_OQ>(_mm512_set1_ps(k as f32), tfv);
            let (h, l) = diff(r[k], ms, neg_ms);
            e[k] = exp_biased_nonpos(h, l);
            et = _mm512_mask_mov_ps(et, hit, e[k]);
            o[k] = _mm512_maskz_mov_ps(!hit, e[k]);
        }
        let mut acc = [_mm512_setzero_pd(); 2];
        for p in 0..N / 2 {
            add_widened(&mut acc, _mm512_add_ps(o[2 * p], o[2 * p + 1]));
        }
        if N % 2 == 1 {
            add_widened(&mut acc, o[N - 1]);
        }
        (et, ms, acc)
    }

    /// The tile's targets from row `s` (`w` rows): each lane's class as f32
    /// and its weight (f64), both 0 for an ignored or padding lane
    /// (`kernels::losses::class_weight`).
    #[inline]
    #[target_feature(enable = "avx512f,avx512dq")]
    unsafe fn ce_targets(a: &super::CeArgs<'_>, s: usize, w: usize) -> (__m512, [__m512d; 2]) {
        let t = a.t.as_ptr().add(s);
        let live = ((1u32 << w) - 1) as __mmask16;
        // Full-width loads but at the task's end.
        let ti = if w == L {
            [_mm512_loadu_epi64(t), _mm512_loadu_epi64(t.add(8))]
        } else {
            [
                _mm512_maskz_loadu_epi64(live as __mmask8, t),
                _mm512_maskz_loadu_epi64((live >> 8) as __mmask8, t.add(8)),
            ]
        };
        let ign = _mm512_set1_epi64(a.ignore_index);
        let keep = live
            & !(_mm512_cmpeq_epi64_mask(ti[0], ign) as __mmask16
                | (_mm512_cmpeq_epi64_mask(ti[1], ign) as __mmask16) << 8);
        let tf = _mm512_maskz_mov_ps(
            keep,
            combine(_mm512_cvtepi64_ps(ti[0]), _mm512_cvtepi64_ps(ti[1])),
        );
        let half = |h: usize| {
            let k = (keep >> (8 * h)) as __mmask8;
            match a.weight {
                None => _mm512_maskz_mov_pd(k, _mm512_set1_pd(1.0)),
                Some(wv) => _mm512_cvtps_pd(_mm512_mask_i64gather_ps::<4>(
                    _mm256_setzero_ps(),
                    k,
                    ti[h],
                    wv.as_ptr(),
                )),
            }
        };
        (tf, [half(0), half(1)])
    }

    /// `log1p(y)` (`math::log1p` for f32, operation for operation) for `y`
    /// with `1 + y` finite and at least 1, where its special cases do not
    /// arise.
    #[inline]
    #[target_feature(enable = "avx512f")]
    fn log1p_finite(y: __m512) -> __m512 {
        let one = _mm512_set1_ps(1.0);
        let u = _mm512_add_ps(one, y);
        let corr = _mm512_div_ps(_mm512_sub_ps(y, _mm512_sub_ps(u, one)), u);
        // `frexp_sqrt2` (u is normal): u = m 2^k, m in [sqrt(2)/2, sqrt(2)].
        let bits = _mm512_castps_si512(u);
        let e = _mm512_and_si512(_mm512_srli_epi32::<23>(bits), _mm512_set1_epi32(0xff));
        let m = _mm512_castsi512_ps(_mm512_or_si512(
            _mm512_and_si512(bits, _mm512_set1_epi32(0x007f_ffff)),
            _mm512_set1_epi32(0x3f80_0000),
        ));
        let big = _mm512_cmp_ps_mask::<_CMP_GT_OQ>(m, _mm512_set1_ps(std::f32::consts::SQRT_2));
        let m = _mm512_mask_mul_ps(m, big, m, _mm512_set1_ps(0.5));
        let e = _mm512_mask_add_epi32(e, big, e, _mm512_set1_epi32(1));
        let k = _mm512_cvtepi32_ps(_mm512_sub_epi32(e, _mm512_set1_epi32(127)));
        // `ln_corr`: log(m) = 2 atanh(s), s = (m - 1) / (m + 1), by its series.
        let s = _mm512_div_ps(_mm512_sub_ps(m, one), _mm512_add_ps(m, one));
        let z = _mm512_mul_ps(s, s);
        let mut p = _mm512_set1_ps((2.0f64 / 9.0) as f32);
        for c in [2.0f64 / 7.0, 2.0 / 5.0, 2.0 / 3.0] {
            p = _mm512_fmadd_ps(p, z, _mm512_set1_ps(c as f32));
        }
        let lm = _mm512_add_ps(_mm512_add_ps(s, s), _mm512_mul_ps(_mm512_mul_ps(s, z), p));
        // ln 2 in two parts, rounded to f32 from f64 as `math::c` does.
        let (ln2_hi, ln2_lo) = (0.693_359_375f64 as f32, -2.121_944_4e-4f64 as f32);
        let lo = _mm512_add_ps(_mm512_mul_ps(k, _mm512_set1_ps(ln2_lo)), corr);
        _mm512_add_ps(
            _mm512_mul_ps(k, _mm512_set1_ps(ln2_hi)),
            _mm512_add_ps(lm, lo),
        )
    }

    /// `math::log1p` for f32 with its special cases: log1p(-1) = -inf,
    /// log1p(inf) = inf, NaN below -1 or for NaN.
    #[inline]
    #[target_feature(enable = "avx512f")]
    fn log1p_vec(y: __m512) -> __m512 {
        let u = _mm512_add_ps(_mm512_set1_ps(1.0), y);
        let r = log1p_finite(y);
        let r = _mm512_mask_blend_ps(
            _mm512_cmp_ps_mask::<_CMP_EQ_OQ>(u, _mm512_setzero_ps()),
            r,
            _mm512_set1_ps(f32::NEG_INFINITY),
        );
        let inf = _mm512_set1_ps(f32::INFINITY);
        let r = _mm512_mask_blend_ps(_mm512_cmp_ps_mask::<_CMP_EQ_OQ>(u, inf), r, inf);
        // u < 0 or NaN: not (u >= 0), unordered true.
        _mm512_mask_blend_ps(
            _mm512_cmp_ps_mask::<_CMP_NGE_UQ>(u, _mm512_setzero_ps()),
            r,
            _mm512_set1_ps(f32::NAN),
        )
    }

    /// `kernels::softmax::ln_sums` for f32: `log1p(f32(sum - 1))` of a tile's
    /// two halves of f64 sums.
    #[inline]
    #[target_feature(enable = "avx512f")]
    fn ln_sums(acc: [__m512d; 2]) -> __m512 {
        let one = _mm512_set1_pd(1.0);
        log1p_vec(combine(
            _mm512_cvtpd_ps(_mm512_sub_pd(acc[0], one)),
            _mm512_cvtpd_ps(_mm512_sub_pd(acc[1], one)),
        ))
    }

    /// `kernels::losses::ce_index_lanes` for f32, operation for operation:
    /// the lanes' losses (two f64 halves) and the gradient's factors `(c, gt,
    /// tg)`; None when a lane needs its f64 path (`e_t` below the normal
    /// range, an infinite or NaN ratio `o / e_t`).
    #[inline]
    #[target_feature(enable = "avx512f,avx512dq")]
    fn ce_terms(
        et: __m512,
        others: [__m512d; 2],
        tf: __m512,
        wt: [__m512d; 2],
        scale: f64,
    ) -> Option<([__m512d; 2], [__m512; 3])> {
        let tot = [
            _mm512_add_pd(others[0], widen(et, 0)),
            _mm512_add_pd(others[1], widen(et, 1)),
        ];
        let ot = combine(_mm512_cvtpd_ps(others[0]), _mm512_cvtpd_ps(others[1]));
        let y = _mm512_div_ps(ot, et);
        let u = _mm512_add_ps(_mm512_set1_ps(1.0), y);
        let ok = _mm512_cmp_ps_mask::<_CMP_GE_OQ>(et, _mm512_set1_ps(f32::MIN_POSITIVE))
            & _mm512_cmp_ps_mask::<_CMP_LT_OQ>(u, _mm512_set1_ps(f32::INFINITY));
        if ok != 0xffff {
            return None;
        }
        let lt = log1p_finite(y);
        let inv = _mm512_div_ps(
            _mm512_set1_ps(1.0),
            combine(_mm512_cvtpd_ps(tot[0]), _mm512_cvtpd_ps(tot[1])),
        );
        let oi = _mm512_mul_ps(ot, inv);
        let (sc, rb) = (
            _mm512_set1_pd(scale),
            _mm512_set1_pd(1.0 / <f32 as Float>::EXP_UNBIAS),
        );
        // The lanes of non-zero weight: `losses::times` gives 0 elsewhere.
        let nz = wt.map(|w| _mm512_cmp_pd_mask::<_CMP_NEQ_UQ>(w, _mm512_setzero_pd()));
        let mut loss = [_mm512_setzero_pd(); 2];
        let mut c = [_mm256_setzero_ps(); 2];
        let mut gt = [_mm256_setzero_ps(); 2];
        for h in 0..2 {
            loss[h] = _mm512_maskz_mul_pd(nz[h], wt[h], widen(lt, h));
            // w_t * scale * inv / unbias (the division by a power of two
            // as the multiply by its inverse: the same exact scaling).
            let q = _mm512_mul_pd(_mm512_mul_pd(_mm512_mul_pd(wt[h], sc), widen(inv, h)), rb);
            c[h] = _mm512_cvtpd_ps(_mm512_maskz_mov_pd(nz[h], q));
            let g = _mm512_sub_pd(_mm512_setzero_pd(), _mm512_mul_pd(widen(oi, h), wt[h]));
            gt[h] = _mm512_cvtpd_ps(_mm512_mul_pd(g, sc));
        }
        let wnz = nz[0] as __mmask16 | (nz[1] as __mmask16) << 8;
        let tg = _mm512_mask_blend_ps(wnz, _mm512_set1_ps(-1.0), tf);
        Some((loss, [combine(c[0], c[1]), combine(gt[0], gt[1]), tg]))
    }

    /// `simd::hsum` of 16 f64 lanes held as two halves: the same pairwise order.
    #[inline]
    #[target_feature(enable = "avx512f")]
    fn hsum2(v: [__m512d; 2]) -> f64 {
        let a = _mm512_add_pd(v[0], v[1]);
        let b = _mm256_add_pd(_mm512_castpd512_pd256(a), _mm512_extractf64x4_pd::<1>(a));
        let c = _mm_add_pd(_mm256_castpd256_pd128(b), _mm256_extractf128_pd::<1>(b));
        _mm_cvtsd_f64(c) + _mm_cvtsd_f64(_mm_unpackhi_pd(c, c))
    }

    /// # Safety
    /// AVX-512 (the level's features); as [`super::ce_index`] with `n == N`.
    #[target_feature(enable = "avx512f,avx512bw,avx512dq,avx512vl,avx2,fma,bmi1,bmi2,lzcnt,popcnt")]
    pub unsafe fn ce_index_rows<const N: usize, const INNER: bool>(
        src: *const f32,
        rows: usize,
        layout: Rows,
        a: &mut super::CeArgs<'_>,
        dst: *mut f32,
        slow: &mut super::CeSlow<'_>,
    ) -> f64 {
        let mut buf = [[_mm512_setzero_ps(); L]; G];
        let mut fac = [[_mm512_setzero_ps(); 3]; G];
        let ub = _mm512_set1_ps(<f32 as Float>::EXP_UNBIAS as f32);
        let mut total = 0f64;
        let mut r0 = 0;
        while r0 < rows {
            let tiles = (rows - r0).div_ceil(L).min(G);
            for t in 0..tiles {
                let s = r0 + t * L;
                let w = (rows - s).min(L);
                let (tf, wt) = ce_targets(a, s, w);
                let (et, ms, acc) = ce_exps::<N, INNER>(src, layout, s, rows - s, tf, &mut buf[t]);
                let (loss, [c, gt, tg]) = match ce_terms(et, acc, tf, wt, a.scale) {
                    Some(v) => v,
                    None => {
                        let (mut ma, mut ta) = ([0f32; L], [0f32; L]);
                        let (mut oa, mut wa) = ([0f64; L], [0f64; L]);
                        _mm512_storeu_ps(ma.as_mut_ptr(), ms);
                        _mm512_storeu_ps(ta.as_mut_ptr(), tf);
                        // The lanes' target logits, read only here (`pick_cols`'
                        // -0.0 + v; padding lanes repeat row w - 1, class 0).
                        let xa: [f32; L] = std::array::from_fn(|j| {
                            -0.0 + *src.add(layout.at::<N, INNER>(s + j.min(w - 1), ta[j] as usize))
                        });
                        for h in 0..2 {
                            _mm512_storeu_pd(oa.as_mut_ptr().add(8 * h), acc[h]);
                            _mm512_storeu_pd(wa.as_mut_ptr().add(8 * h), wt[h]);
                        }
                        let (l, c, gt, tg) = slow(&xa, &ma, &oa, &ta, &wa);
                        (
                            [
                                _mm512_loadu_pd(l.as_ptr()),
                                _mm512_loadu_pd(l.as_ptr().add(8)),
                            ],
                            [
                                _mm512_loadu_ps(c.as_ptr()),
                                _mm512_loadu_ps(gt.as_ptr()),
                                _mm512_loadu_ps(tg.as_ptr()),
                            ],
                        )
                    }
                };
                if let Some(pr) = a.per_row.as_deref_mut() {
                    let v = combine(_mm512_cvtpd_ps(loss[0]), _mm512_cvtpd_ps(loss[1]));
                    store_row(pr.as_mut_ptr(), s, rows, ((1u32 << w) - 1) as __mmask16, v);
                }
                // Padding lanes have weight 0 and loss 0.
                total += hsum2(loss);
                fac[t] = [c, gt, tg];
            }
            if !dst.is_null() {
                // `ce_index_cols`' gradient pass: e * c * 2^-bias, 0 where c is
                // 0 (an ignored or padding row), gt at the target.
                for t in 0..tiles {
                    let s = r0 + t * L;
                    let (e, [c, gt, tg]) = (&buf[t], fac[t]);
                    let c0 = _mm512_cmp_ps_mask::<_CMP_EQ_OQ>(c, _mm512_setzero_ps());
                    store_tile_at::<N, INNER>(dst, layout, s, (rows - s).min(L), |k| {
                        let v = _mm512_mul_ps(_mm512_mul_ps(e[k], c), ub);
                        let v = _mm512_mask_blend_ps(c0, v, _mm512_setzero_ps());
                        let hit = _mm512_cmp_ps_mask::<_CMP_EQ_OQ>(_mm512_set1_ps(k as f32), tg);
                        _mm512_mask_blend_ps(hit, v, gt)
                    });
                }
            }
            r0 += tiles * L;
        }
        total
    }
}

/// The tiles of [`run`] and [`ce_index`] for AVX2+FMA: 8 rows per tile (one per lane of a
/// 256-bit vector), transposed by 8x8 blocks (two for rows of 9-16
/// classes), 16 tiles per round; each lane's operations are those of the
/// AVX-512 tiles (`x86`), so the bits are the column kernels' too. Without
/// `vscalefps`, `2^n` comes from the exponent bits as the generic code
/// forms it; without mask registers, comparisons give lane masks.
#[cfg(target_arch = "x86_64")]
mod avx2 {
    use super::super::float::exp_f32_consts::{BIAS, FLUSH_MIN, LN2_HI, LN2_LO, LOG2E, MAGIC, P};
    use super::super::transpose::x86::{mask32, t8x8_ps};
    use super::super::Float;
    use super::x86::Rows;
    use std::arch::x86_64::*;

    /// Rows per tile.
    const W: usize = 8;
    /// Tiles per round (the 128 rows of the AVX-512 tiles' round).
    const G: usize = 16;
    /// Class vectors per tile (rows of up to 16 classes).
    const K: usize = 16;

    /// `Float::diff` (Knuth's TwoSum of `x` and `-m`) with `neg_m = -m`.
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    fn diff(x: __m256, m: __m256, neg_m: __m256) -> (__m256, __m256) {
        let s = _mm256_sub_ps(x, m);
        let bp = _mm256_sub_ps(s, x);
        let lo = _mm256_add_ps(
            _mm256_sub_ps(x, _mm256_sub_ps(s, bp)),
            _mm256_sub_ps(neg_m, bp),
        );
        (s, lo)
    }

    /// `expm1_f32_poly`: `(q, n)` with `x + lo = n ln 2 + r`, `q = expm1(r)`
    /// and `n` as an integer.
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    fn expm1_poly(x: __m256, lo: __m256) -> (__m256, __m256i) {
        let magic = _mm256_set1_ps(MAGIC);
        let t = _mm256_fmadd_ps(x, _mm256_set1_ps(LOG2E), magic);
        let n = _mm256_sub_ps(t, magic);
        let r = _mm256_fmadd_ps(n, _mm256_set1_ps(-LN2_HI), x);
        let r = _mm256_add_ps(_mm256_fmadd_ps(n, _mm256_set1_ps(-LN2_LO), r), lo);
        let mut p = _mm256_set1_ps(P[0]);
        for &k in &P[1..] {
            p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(k));
        }
        let ni = _mm256_sub_epi32(
            _mm256_castps_si256(t),
            _mm256_set1_epi32(MAGIC.to_bits() as i32),
        );
        (_mm256_fmadd_ps(p, _mm256_mul_ps(r, r), r), ni)
    }

    /// `2^(n + bias)` from the exponent bits, as the scalar code forms it.
    #[inline]
    #[target_feature(enable = "avx2")]
    fn pow2(n: __m256i, bias: i32) -> __m256 {
        _mm256_castsi256_ps(_mm256_slli_epi32::<23>(_mm256_add_epi32(
            n,
            _mm256_set1_epi32(127 + bias),
        )))
    }

    /// `Float::exp_biased_nonpos` for f32 (see the AVX-512 tiles').
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    fn exp_biased_nonpos(hi: __m256, lo: __m256) -> __m256 {
        let min = _mm256_set1_ps(<f32 as Float>::EXP_BIASED_MIN as f32);
        let keep = _mm256_cmp_ps::<_CMP_NLT_UQ>(hi, min);
        let (q, n) = expm1_poly(hi, lo);
        let s = pow2(n, BIAS);
        _mm256_and_ps(keep, _mm256_fmadd_ps(q, s, s))
    }

    /// `Float::exp_flush` for f32: `exp(x)` for `x <= 0` or NaN, 0 below
    /// -87, NaN kept.
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    fn exp_flush(x: __m256) -> __m256 {
        let keep = _mm256_cmp_ps::<_CMP_NLT_UQ>(x, _mm256_set1_ps(FLUSH_MIN));
        let (q, n) = expm1_poly(x, _mm256_set1_ps(-0.0));
        let s = pow2(n, 0);
        _mm256_and_ps(keep, _mm256_fmadd_ps(q, s, s))
    }

    /// Lanes `4h..4h + 4` of `v` widened to f64.
    #[inline]
    #[target_feature(enable = "avx2")]
    fn widen(v: __m256, h: usize) -> __m256d {
        if h == 0 {
            _mm256_cvtps_pd(_mm256_castps256_ps128(v))
        } else {
            _mm256_cvtps_pd(_mm256_extractf128_ps::<1>(v))
        }
    }

    /// The 8 lanes of two f64 halves, rounded to f32.
    #[inline]
    #[target_feature(enable = "avx2")]
    fn narrow(acc: [__m256d; 2]) -> __m256 {
        _mm256_set_m128(_mm256_cvtpd_ps(acc[1]), _mm256_cvtpd_ps(acc[0]))
    }

    /// `acc + widen(v)` for the two f64 halves of an 8-lane accumulator.
    #[inline]
    #[target_feature(enable = "avx2")]
    fn add_widened(acc: &mut [__m256d; 2], v: __m256) {
        acc[0] = _mm256_add_pd(acc[0], widen(v, 0));
        acc[1] = _mm256_add_pd(acc[1], widen(v, 1));
    }

    /// The lanes' shift of class-major vectors `r[..N]`, as the AVX-512
    /// tiles' `lane_shift`.
    #[inline]
    #[target_feature(enable = "avx2")]
    fn lane_shift<const N: usize>(r: &[__m256; K]) -> __m256 {
        let ninf = _mm256_set1_ps(f32::NEG_INFINITY);
        let mut mc = [ninf; 2];
        for (k, rk) in r.iter().enumerate().take(N) {
            mc[k % 2] = _mm256_max_ps(*rk, mc[k % 2]);
        }
        let mx = _mm256_max_ps(mc[1], mc[0]);
        let all_ninf = _mm256_cmp_ps::<_CMP_EQ_OQ>(mx, ninf);
        _mm256_blendv_ps(mx, _mm256_setzero_ps(), all_ninf)
    }

    /// Rows `0..w` (`w = min(left, 8)`; `left >= 1` rows from `src` to the
    /// end of the task) of `N` classes as class-major lane vectors (lanes
    /// past `w` repeat row `w - 1`), and the lanes' shift. Full-width loads
    /// (a row's chunk runs into the next row, whose columns are dropped)
    /// unless one would pass the task's rows.
    #[inline]
    #[target_feature(enable = "avx2")]
    unsafe fn load_tile<const N: usize>(src: *const f32, left: usize) -> ([__m256; K], __m256) {
        let w = left.min(W);
        let end = left * N;
        let mut r = [_mm256_setzero_ps(); K];
        for c0 in (0..N).step_by(W) {
            let m = mask32((N - c0).min(W));
            let mut q = [_mm256_setzero_ps(); W];
            for (j, qj) in q.iter_mut().enumerate() {
                let at = j.min(w - 1) * N + c0;
                *qj = if at + W <= end {
                    _mm256_loadu_ps(src.add(at))
                } else {
                    _mm256_maskload_ps(src.add(at), m)
                };
            }
            t8x8_ps(&mut q);
            r[c0..c0 + W].copy_from_slice(&q);
        }
        let ms = lane_shift::<N>(&r);
        (r, ms)
    }

    /// Class-major lane vectors `f(k)`, `k < N`, back to rows `0..w` at
    /// `dst`: full-width stores, spilling into what follows up to `end`
    /// (elements from `dst` that are written later or are the tile's own),
    /// masked only past it. Chunks from the last down, rows in order, so
    /// that a spill is overwritten by the store that owns its elements.
    #[inline]
    #[target_feature(enable = "avx2")]
    unsafe fn store_tile<const N: usize>(
        w: usize,
        dst: *mut f32,
        end: usize,
        f: impl Fn(usize) -> __m256,
    ) {
        for c0 in (0..N).step_by(W).rev() {
            let m = mask32((N - c0).min(W));
            // Classes past N are zeros (never stored).
            let mut q = [_mm256_setzero_ps(); W];
            for (k, qk) in q.iter_mut().enumerate() {
                if c0 + k < N {
                    *qk = f(c0 + k);
                }
            }
            t8x8_ps(&mut q);
            for (j, qj) in q.iter().enumerate() {
                let at = j * N + c0;
                if j >= w {
                } else if at + W <= end {
                    _mm256_storeu_ps(dst.add(at), *qj);
                } else {
                    _mm256_maskstore_ps(dst.add(at), m, *qj);
                }
            }
        }
    }

    /// [`load_tile`] for the tile of rows `s..` (`left` of them to the
    /// task's end) laid out as `rows` says (see the AVX-512 tiles'
    /// `load_tile_at`).
    #[inline]
    #[target_feature(enable = "avx2")]
    unsafe fn load_tile_at<const N: usize, const INNER: bool>(
        src: *const f32,
        rows: Rows,
        s: usize,
        left: usize,
    ) -> ([__m256; K], __m256) {
        let w = left.min(W);
        if !INNER {
            return load_tile::<N>(src.add(s * N), left);
        }
        if rows.adjacent::<W>(s, w) {
            let p = src.add(rows.at::<N, true>(s, 0));
            let mut r = [_mm256_setzero_ps(); K];
            for (k, rk) in r.iter_mut().enumerate().take(N) {
                *rk = _mm256_loadu_ps(p.add(k * rows.inner));
            }
            let ms = lane_shift::<N>(&r);
            return (r, ms);
        }
        let mut buf = [0f32; W * K];
        rows.gather::<N>(src, s, w, &mut buf);
        load_tile::<N>(buf.as_ptr(), w)
    }

    /// [`store_tile`] for the tile of rows `s..s + w` laid out as `rows`
    /// says, `end` the task's row up to which contiguous rows may be
    /// spilled into.
    #[inline]
    #[target_feature(enable = "avx2")]
    unsafe fn store_tile_at<const N: usize, const INNER: bool>(
        dst: *mut f32,
        rows: Rows,
        s: usize,
        w: usize,
        end: usize,
        f: impl Fn(usize) -> __m256,
    ) {
        if !INNER {
            return store_tile::<N>(w, dst.add(s * N), (end - s) * N, f);
        }
        if rows.adjacent::<W>(s, w) {
            let p = dst.add(rows.at::<N, true>(s, 0));
            for k in 0..N {
                _mm256_storeu_ps(p.add(k * rows.inner), f(k));
            }
            return;
        }
        // Room for the last row's full-width store.
        let mut buf = [0f32; W * K + W];
        store_tile::<N>(w, buf.as_mut_ptr(), buf.len(), f);
        rows.scatter::<N>(dst, s, w, &buf);
    }

    /// Softmax's phase one, as the AVX-512 tiles': the biased exps into
    /// `e[0..N]`; returns the lanes' reciprocal sums (NaN for a 0 sum).
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn softmax_exps<const N: usize, const INNER: bool>(
        src: *const f32,
        rows: Rows,
        s: usize,
        left: usize,
        e: &mut [__m256; K],
    ) -> __m256 {
        let (r, ms) = load_tile_at::<N, INNER>(src, rows, s, left);
        let neg_ms = _mm256_xor_ps(ms, _mm256_set1_ps(-0.0));
        for k in 0..N {
            let (h, l) = diff(r[k], ms, neg_ms);
            e[k] = exp_biased_nonpos(h, l);
        }
        let mut acc = [_mm256_setzero_pd(); 2];
        for p in 0..N / 2 {
            add_widened(&mut acc, _mm256_add_ps(e[2 * p], e[2 * p + 1]));
        }
        if N % 2 == 1 {
            add_widened(&mut acc, e[N - 1]);
        }
        let sum = narrow(acc);
        let zero = _mm256_cmp_ps::<_CMP_EQ_OQ>(sum, _mm256_setzero_ps());
        let inv = _mm256_div_ps(_mm256_set1_ps(1.0), sum);
        _mm256_blendv_ps(inv, _mm256_set1_ps(f32::NAN), zero)
    }

    /// # Safety
    /// AVX2 and FMA; as [`super::run`] with `n == N`.
    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn softmax_rows<const N: usize, const INNER: bool>(
        src: *const f32,
        rows: usize,
        layout: Rows,
        dst: *mut f32,
    ) {
        let mut buf = [[_mm256_setzero_ps(); K]; G];
        let mut inv = [_mm256_setzero_ps(); G];
        let mut r0 = 0;
        while r0 < rows {
            let tiles = (rows - r0).div_ceil(W).min(G);
            let end = (r0 + tiles * W).min(rows);
            for t in 0..tiles {
                let s = r0 + t * W;
                inv[t] = softmax_exps::<N, INNER>(src, layout, s, rows - s, &mut buf[t]);
            }
            for t in 0..tiles {
                let s = r0 + t * W;
                let (e, k) = (&buf[t], inv[t]);
                store_tile_at::<N, INNER>(dst, layout, s, (rows - s).min(W), end, |c| {
                    _mm256_mul_ps(e[c], k)
                });
            }
            r0 = end;
        }
    }

    /// `log1p(y)` (`math::log1p` for f32, operation for operation) for `y`
    /// with `1 + y` finite and at least 1 (the AVX-512 tiles'
    /// `log1p_finite`).
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    fn log1p_finite(y: __m256) -> __m256 {
        let one = _mm256_set1_ps(1.0);
        let u = _mm256_add_ps(one, y);
        let corr = _mm256_div_ps(_mm256_sub_ps(y, _mm256_sub_ps(u, one)), u);
        let bits = _mm256_castps_si256(u);
        let e = _mm256_and_si256(_mm256_srli_epi32::<23>(bits), _mm256_set1_epi32(0xff));
        let m = _mm256_castsi256_ps(_mm256_or_si256(
            _mm256_and_si256(bits, _mm256_set1_epi32(0x007f_ffff)),
            _mm256_set1_epi32(0x3f80_0000),
        ));
        let big = _mm256_cmp_ps::<_CMP_GT_OQ>(m, _mm256_set1_ps(std::f32::consts::SQRT_2));
        let m = _mm256_blendv_ps(m, _mm256_mul_ps(m, _mm256_set1_ps(0.5)), big);
        let e = _mm256_add_epi32(
            e,
            _mm256_and_si256(_mm256_castps_si256(big), _mm256_set1_epi32(1)),
        );
        let k = _mm256_cvtepi32_ps(_mm256_sub_epi32(e, _mm256_set1_epi32(127)));
        let s = _mm256_div_ps(_mm256_sub_ps(m, one), _mm256_add_ps(m, one));
        let z = _mm256_mul_ps(s, s);
        let mut p = _mm256_set1_ps((2.0f64 / 9.0) as f32);
        for c in [2.0f64 / 7.0, 2.0 / 5.0, 2.0 / 3.0] {
            p = _mm256_fmadd_ps(p, z, _mm256_set1_ps(c as f32));
        }
        let lm = _mm256_add_ps(_mm256_add_ps(s, s), _mm256_mul_ps(_mm256_mul_ps(s, z), p));
        let (ln2_hi, ln2_lo) = (0.693_359_375f64 as f32, -2.121_944_4e-4f64 as f32);
        let lo = _mm256_add_ps(_mm256_mul_ps(k, _mm256_set1_ps(ln2_lo)), corr);
        _mm256_add_ps(
            _mm256_mul_ps(k, _mm256_set1_ps(ln2_hi)),
            _mm256_add_ps(lm, lo),
        )
    }

    /// `kernels::softmax::ln_sums` for f32: `log1p(f32(sum - 1))` with
    /// `math::log1p`'s special cases.
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    fn ln_sums(acc: [__m256d; 2]) -> __m256 {
        let one = _mm256_set1_pd(1.0);
        let y = narrow([_mm256_sub_pd(acc[0], one), _mm256_sub_pd(acc[1], one)]);
        let zero = _mm256_setzero_ps();
        let u = _mm256_add_ps(_mm256_set1_ps(1.0), y);
        let r = log1p_finite(y);
        let r = _mm256_blendv_ps(
            r,
            _mm256_set1_ps(f32::NEG_INFINITY),
            _mm256_cmp_ps::<_CMP_EQ_OQ>(u, zero),
        );
        let inf = _mm256_set1_ps(f32::INFINITY);
        let r = _mm256_blendv_ps(r, inf, _mm256_cmp_ps::<_CMP_EQ_OQ>(u, inf));
        _mm256_blendv_ps(
            r,
            _mm256_set1_ps(f32::NAN),
            _mm256_cmp_ps::<_CMP_NGE_UQ>(u, zero),
        )
    }

    /// # Safety
    /// AVX2 and FMA; as [`super::run`] with `n == N` (log-softmax), or with
    /// one value per row at `dst` (logsumexp, when `REDUCE`).
    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn log_softmax_rows<const N: usize, const REDUCE: bool, const INNER: bool>(
        src: *const f32,
        rows: usize,
        layout: Rows,
        dst: *mut f32,
    ) {
        let mut buf = [[_mm256_setzero_ps(); K]; G];
        let mut shift = [_mm256_setzero_ps(); G];
        let mut sums = [[_mm256_setzero_pd(); 2]; G];
        let mut nan = [_mm256_setzero_ps(); G];
        let inf = _mm256_set1_ps(f32::INFINITY);
        let mut r0 = 0;
        while r0 < rows {
            let tiles = (rows - r0).div_ceil(W).min(G);
            let end = (r0 + tiles * W).min(rows);
            // Phase one, as the AVX-512 tiles'.
            for t in 0..tiles {
                let s = r0 + t * W;
                let (r, ms) = load_tile_at::<N, INNER>(src, layout, s, rows - s);
                let mut e = [_mm256_setzero_ps(); K];
                // `x - shift`, kept for phase two (the same difference).
                let mut d = r;
                for k in 0..N {
                    d[k] = _mm256_sub_ps(r[k], ms);
                    e[k] = exp_flush(d[k]);
                }
                let mut acc = [_mm256_setzero_pd(); 2];
                for g in e[..N / 4 * 4].chunks_exact(4) {
                    for (h, ah) in acc.iter_mut().enumerate() {
                        let w = |v: usize| widen(g[v], h);
                        let sum4 =
                            _mm256_add_pd(_mm256_add_pd(w(0), w(1)), _mm256_add_pd(w(2), w(3)));
                        *ah = _mm256_add_pd(*ah, sum4);
                    }
                }
                let mut part = [_mm256_setzero_pd(); 2];
                for &ek in &e[N / 4 * 4..N] {
                    for (h, ph) in part.iter_mut().enumerate() {
                        *ph = _mm256_add_pd(*ph, widen(ek, h));
                    }
                }
                sums[t] = [
                    _mm256_add_pd(acc[0], part[0]),
                    _mm256_add_pd(acc[1], part[1]),
                ];
                shift[t] = ms;
                if REDUCE {
                    nan[t] = _mm256_setzero_ps();
                    if _mm256_movemask_ps(_mm256_cmp_ps::<_CMP_EQ_OQ>(ms, inf)) != 0 {
                        for rk in &r[..N] {
                            nan[t] = _mm256_or_ps(nan[t], _mm256_cmp_ps::<_CMP_UNORD_Q>(*rk, *rk));
                        }
                    }
                } else {
                    buf[t] = d;
                }
            }
            let mut logs = [_mm256_setzero_ps(); G];
            for t in 0..tiles {
                logs[t] = ln_sums(sums[t]);
            }
            for t in 0..tiles {
                let s = r0 + t * W;
                let (c, ms) = (logs[t], shift[t]);
                let w = (rows - s).min(W);
                if REDUCE {
                    // `lse_from`: f32(shift + ln(sum)); a +inf shift gives
                    // +inf, or NaN when the row holds a NaN.
                    let v = narrow([
                        _mm256_add_pd(widen(ms, 0), widen(c, 0)),
                        _mm256_add_pd(widen(ms, 1), widen(c, 1)),
                    ]);
                    let big = _mm256_cmp_ps::<_CMP_EQ_OQ>(ms, inf);
                    let v = _mm256_blendv_ps(v, inf, big);
                    let v =
                        _mm256_blendv_ps(v, _mm256_set1_ps(f32::NAN), _mm256_and_ps(big, nan[t]));
                    if w == W {
                        _mm256_storeu_ps(dst.add(s), v);
                    } else {
                        _mm256_maskstore_ps(dst.add(s), mask32(w), v);
                    }
                } else {
                    // Phase two (`sub_shift`): (x - shift) - log(sum).
                    let d = &buf[t];
                    store_tile_at::<N, INNER>(dst, layout, s, w, end, |k| _mm256_sub_ps(d[k], c));
                }
            }
            r0 = end;
        }
    }

    /// `v`'s four 64-bit lane masks or integers as the low halves of
    /// 32-bit lanes `4h..4h + 4` (`v[h]`), i.e. eight 32-bit lanes.
    #[inline]
    #[target_feature(enable = "avx2")]
    fn low_dwords(v: [__m256i; 2]) -> __m256i {
        let idx = _mm256_setr_epi32(0, 2, 4, 6, 0, 2, 4, 6);
        let lo = |x: __m256i| _mm256_castsi256_si128(_mm256_permutevar8x32_epi32(x, idx));
        _mm256_set_m128i(lo(v[1]), lo(v[0]))
    }

    /// The tile's targets from row `s` (`w` rows), as the AVX-512 tiles'
    /// `ce_targets`: each lane's class as f32 and its weight (f64, two
    /// halves), both 0 for an ignored or padding lane.
    #[inline]
    #[target_feature(enable = "avx2")]
    unsafe fn ce_targets(a: &super::CeArgs<'_>, s: usize, w: usize) -> (__m256, [__m256d; 2]) {
        let mut pad = [0i64; W];
        let t = if w == W {
            a.t.as_ptr().add(s)
        } else {
            pad[..w].copy_from_slice(&a.t[s..s + w]);
            pad.as_ptr()
        };
        let ti = [
            _mm256_loadu_si256(t.cast()),
            _mm256_loadu_si256(t.add(4).cast()),
        ];
        let ign = _mm256_set1_epi64x(a.ignore_index);
        let lane = |h: i64| _mm256_setr_epi64x(4 * h, 4 * h + 1, 4 * h + 2, 4 * h + 3);
        let live = |h: i64| _mm256_cmpgt_epi64(_mm256_set1_epi64x(w as i64), lane(h));
        let keep =
            [0, 1].map(|h| _mm256_andnot_si256(_mm256_cmpeq_epi64(ti[h as usize], ign), live(h)));
        let keep32 = _mm256_castsi256_ps(low_dwords(keep));
        let t32 = low_dwords(ti);
        let tf = _mm256_and_ps(keep32, _mm256_cvtepi32_ps(t32));
        let wt = match a.weight {
            None => keep.map(|k| _mm256_and_pd(_mm256_castsi256_pd(k), _mm256_set1_pd(1.0))),
            Some(wv) => {
                let g =
                    _mm256_mask_i32gather_ps::<4>(_mm256_setzero_ps(), wv.as_ptr(), t32, keep32);
                [widen(g, 0), widen(g, 1)]
            }
        };
        (tf, wt)
    }

    /// Cross-entropy's phase one for a tile, as the AVX-512 tiles'
    /// `ce_exps`: the biased exps into `e[0..N]`; returns the lanes' target
    /// exps, shifts and sums of the non-target exps.
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn ce_exps<const N: usize, const INNER: bool>(
        src: *const f32,
        rows: Rows,
        s: usize,
        left: usize,
        tfv: __m256,
        e: &mut [__m256; K],
    ) -> (__m256, __m256, [__m256d; 2]) {
        let (r, ms) = load_tile_at::<N, INNER>(src, rows, s, left);
        let neg_ms = _mm256_xor_ps(ms, _mm256_set1_ps(-0.0));
        let mut et = _mm256_setzero_ps();
        let mut o = [_mm256_setzero_ps(); K];
        for k in 0..N {
            let hit = _mm256_cmp_ps::<_CMP_EQ_OQ>(_mm256_set1_ps(k as f32), tfv);
            let (h, l) = diff(r[k], ms, neg_ms);
            e[k] = exp_biased_nonpos(h, l);
            et = _mm256_blendv_ps(et, e[k], hit);
            o[k] = _mm256_andnot_ps(hit, e[k]);
        }
        let mut acc = [_mm256_setzero_pd(); 2];
        for p in 0..N / 2 {
            add_widened(&mut acc, _mm256_add_ps(o[2 * p], o[2 * p + 1]));
        }
        if N % 2 == 1 {
            add_widened(&mut acc, o[N - 1]);
        }
        (et, ms, acc)
    }

    /// The AVX-512 tiles' `ce_terms` on 8 lanes: the losses (two f64
    /// halves) and the gradient's factors `(c, gt, tg)`; None when a lane
    /// needs its f64 path.
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    fn ce_terms(
        et: __m256,
        others: [__m256d; 2],
        tf: __m256,
        wt: [__m256d; 2],
        scale: f64,
    ) -> Option<([__m256d; 2], [__m256; 3])> {
        let tot = [0, 1].map(|h| _mm256_add_pd(others[h], widen(et, h)));
        let ot = narrow(others);
        let y = _mm256_div_ps(ot, et);
        let u = _mm256_add_ps(_mm256_set1_ps(1.0), y);
        let ok = _mm256_and_ps(
            _mm256_cmp_ps::<_CMP_GE_OQ>(et, _mm256_set1_ps(f32::MIN_POSITIVE)),
            _mm256_cmp_ps::<_CMP_LT_OQ>(u, _mm256_set1_ps(f32::INFINITY)),
        );
        if _mm256_movemask_ps(ok) != 0xff {
            return None;
        }
        let lt = log1p_finite(y);
        let inv = _mm256_div_ps(_mm256_set1_ps(1.0), narrow(tot));
        let oi = _mm256_mul_ps(ot, inv);
        let (sc, rb) = (
            _mm256_set1_pd(scale),
            _mm256_set1_pd(1.0 / <f32 as Float>::EXP_UNBIAS),
        );
        let nz = wt.map(|w| _mm256_cmp_pd::<_CMP_NEQ_UQ>(w, _mm256_setzero_pd()));
        let mut loss = [_mm256_setzero_pd(); 2];
        let mut c = [_mm256_setzero_pd(); 2];
        let mut gt = [_mm256_setzero_pd(); 2];
        for h in 0..2 {
            loss[h] = _mm256_and_pd(nz[h], _mm256_mul_pd(wt[h], widen(lt, h)));
            let q = _mm256_mul_pd(_mm256_mul_pd(_mm256_mul_pd(wt[h], sc), widen(inv, h)), rb);
            c[h] = _mm256_and_pd(nz[h], q);
            let g = _mm256_sub_pd(_mm256_setzero_pd(), _mm256_mul_pd(widen(oi, h), wt[h]));
            gt[h] = _mm256_mul_pd(g, sc);
        }
        let wnz = _mm256_castsi256_ps(low_dwords(nz.map(|m| _mm256_castpd_si256(m))));
        let tg = _mm256_blendv_ps(_mm256_set1_ps(-1.0), tf, wnz);
        Some((loss, [narrow(c), narrow(gt), tg]))
    }

    /// `simd::hsum` of the 16 f64 lanes of two tiles (`a` lanes 0-7, `b`
    /// 8-15, each as two halves): the same pairwise order.
    #[inline]
    #[target_feature(enable = "avx2")]
    fn hsum_pair(a: [__m256d; 2], b: [__m256d; 2]) -> f64 {
        let v = _mm256_add_pd(_mm256_add_pd(a[0], b[0]), _mm256_add_pd(a[1], b[1]));
        let c = _mm_add_pd(_mm256_castpd256_pd128(v), _mm256_extractf128_pd::<1>(v));
        _mm_cvtsd_f64(c) + _mm_cvtsd_f64(_mm_unpackhi_pd(c, c))
    }

    /// # Safety
    /// AVX2 and FMA; as [`super::ce_index`] with `n == N`.
    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn ce_index_rows<const N: usize, const INNER: bool>(
        src: *const f32,
        rows: usize,
        layout: Rows,
        a: &mut super::CeArgs<'_>,
        dst: *mut f32,
        slow: &mut super::CeSlow<'_>,
    ) -> f64 {
        let mut buf = [[_mm256_setzero_ps(); K]; G];
        let mut fac = [[_mm256_setzero_ps(); 3]; G];
        let ub = _mm256_set1_ps(<f32 as Float>::EXP_UNBIAS as f32);
        let mut total = 0f64;
        // The losses of the first tile of a pair (16 rows, `hsum`'s lanes).
        let mut first = [_mm256_setzero_pd(); 2];
        let mut r0 = 0;
        while r0 < rows {
            let tiles = (rows - r0).div_ceil(W).min(G);
            let end = (r0 + tiles * W).min(rows);
            for t in 0..tiles {
                let s = r0 + t * W;
                let w = (rows - s).min(W);
                let (tf, wt) = ce_targets(a, s, w);
                let (et, ms, acc) = ce_exps::<N, INNER>(src, layout, s, rows - s, tf, &mut buf[t]);
                let (loss, [c, gt, tg]) = match ce_terms(et, acc, tf, wt, a.scale) {
                    Some(v) => v,
                    None => {
                        // The generic lanes' function on 16 lanes, the last
                        // 8 padding (weight 0), only the first 8 kept.
                        let (mut ma, mut ta) = ([0f32; 16], [0f32; 16]);
                        let (mut oa, mut wa) = ([0f64; 16], [0f64; 16]);
                        _mm256_storeu_ps(ma.as_mut_ptr(), ms);
                        _mm256_storeu_ps(ta.as_mut_ptr(), tf);
                        for h in 0..2 {
                            _mm256_storeu_pd(oa.as_mut_ptr().add(4 * h), acc[h]);
                            _mm256_storeu_pd(wa.as_mut_ptr().add(4 * h), wt[h]);
                        }
                        let xa: [f32; 16] = std::array::from_fn(|j| {
                            let r = s + j.min(W - 1).min(w - 1);
                            -0.0 + *src.add(layout.at::<N, INNER>(r, ta[j] as usize))
                        });
                        let (l, c, gt, tg) = slow(&xa, &ma, &oa, &ta, &wa);
                        (
                            [
                                _mm256_loadu_pd(l.as_ptr()),
                                _mm256_loadu_pd(l.as_ptr().add(4)),
                            ],
                            [
                                _mm256_loadu_ps(c.as_ptr()),
                                _mm256_loadu_ps(gt.as_ptr()),
                                _mm256_loadu_ps(tg.as_ptr()),
                            ],
                        )
                    }
                };
                if let Some(pr) = a.per_row.as_deref_mut() {
                    let v = narrow(loss);
                    if w == W {
                        _mm256_storeu_ps(pr.as_mut_ptr().add(s), v);
                    } else {
                        _mm256_maskstore_ps(pr.as_mut_ptr().add(s), mask32(w), v);
                    }
                }
                // Padding lanes (and a missing second tile) have loss 0.
                if (s / W).is_multiple_of(2) {
                    first = loss;
                    if s + W >= rows {
                        total += hsum_pair(first, [_mm256_setzero_pd(); 2]);
                    }
                } else {
                    total += hsum_pair(first, loss);
                }
                fac[t] = [c, gt, tg];
            }
            if !dst.is_null() {
                for t in 0..tiles {
                    let s = r0 + t * W;
                    let (e, [c, gt, tg]) = (&buf[t], fac[t]);
                    let c0 = _mm256_cmp_ps::<_CMP_EQ_OQ>(c, _mm256_setzero_ps());
                    store_tile_at::<N, INNER>(dst, layout, s, (rows - s).min(W), end, |k| {
                        let v = _mm256_mul_ps(_mm256_mul_ps(e[k], c), ub);
                        let v = _mm256_blendv_ps(v, _mm256_setzero_ps(), c0);
                        let hit = _mm256_cmp_ps::<_CMP_EQ_OQ>(_mm256_set1_ps(k as f32), tg);
                        _mm256_blendv_ps(v, gt, hit)
                    });
                }
            }
            r0 = end;
        }
        total
    }
}

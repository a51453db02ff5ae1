//! The softmax family on rows: softmax, log_softmax, logsumexp and the two
//! backward passes. Every kernel exists in two data layouts:
//! `*_rows`: contiguous rows of `n` (lanes run along the row), and
//! `*_cols`: `LANES` interleaved rows, element `k` of row `j` at `k * LANES + j`
//! (lanes run across rows; used for short rows and for a non-last axis).
//!
//! Accuracy: `x - max` is kept exactly as `hi + lo` ([`Float::diff`]) and fed
//! to the 2-ulp exp, sums are accumulated in f64 in two levels (blocks of 16
//! per lane, then blocks), so f32 results are within a few ulp of the exact
//! value and f64 results within ~1e-15 relative; log_softmax, `(x - max) -
//! log(sum)`, within 1.5 ulp (3.5 for float32 short rows; see `sub_shift`).

use super::{short_row_exp, RowOp};
use crate::multiversion;
use crate::simd::math::{ln, log1p};
use crate::simd::tile;
use crate::simd::{
    before_widening, group_sum_avx512, hmax, hsum, lane_barrier, prefetch, widen_at, Float,
    LANES as L,
};

/// Elements per block of the online pass over a long row: 16 vectors.
pub(crate) const BLOCK: usize = 16 * L;

/// The block length of softmax's storing pass over a row of `n`: a row of up
/// to 128 vectors (8 KB of f32, 16 KB of f64: still in L1 when its exps
/// follow the max scan) is one block, so it pays for one horizontal max, no
/// rescaling of the sum and one scale factor in the second pass (softmax
/// and cross-entropy + gradient on 4096x1000, 1 thread: 0.87-0.93 of the
/// time with blocks of 16 vectors); longer rows go in blocks of [`BLOCK`]
/// (blocks of 128 vectors made 50 257-class rows 14 % slower).
#[inline(always)]
pub(crate) fn row_block(n: usize) -> usize {
    if n <= 128 * L {
        n.max(1)
    } else {
        BLOCK
    }
}

/// Rows of up to this size have the next row's lines prefetched when a row
/// starts: hardware prefetchers stop at each 4 KiB page and need a few
/// misses to start again, which a short row does not outlast. (Longer rows,
/// float64 rows of 1000 among them, were as fast or slower with it, and so
/// was prefetching the output's lines for writing.)
const PREFETCH_ROW_BYTES: usize = 4096;

/// Prefetches row `r + 1` (of `rows` rows of `n`) of each array in `reads`
/// when rows are short ([`PREFETCH_ROW_BYTES`]). 4096x1000 float32 at 2
/// threads, alternating A/B against no prefetch: softmax 0.95, cross-entropy
/// + gradient 0.96 of the time.
#[inline(always)]
pub(crate) fn prefetch_next<T>(n: usize, r: usize, rows: usize, reads: &[*const T]) {
    let bytes = n * std::mem::size_of::<T>();
    if r + 1 >= rows || bytes > PREFETCH_ROW_BYTES {
        return;
    }
    for &p in reads {
        prefetch(p.wrapping_add((r + 1) * n) as *const u8, bytes);
    }
}

/// The shift actually subtracted: the row max, or 0 when the max is -inf (an
/// all -inf row), so that `-inf - shift` is `-inf` and never NaN.
#[inline(always)]
pub(crate) fn shift<T: Float>(m: T) -> T {
    if m == T::NEG_INF {
        T::ZERO
    } else {
        m
    }
}

/// Lane maxima of the full lane arrays of `b`, starting from `vm`, then the
/// online update: raises the running max `m` to the block's max, rescaling
/// the running sum `acc` (Milakov & Gimelshein 2018). Returns the shift.
#[inline(always)]
fn raise_max<T: Float>(b: &[T], vm: [T; L], m: &mut T, acc: &mut [f64; L]) -> T {
    #[inline(always)]
    fn max2<T: Float>(a: T, b: T) -> T {
        if b > a {
            b
        } else {
            a
        }
    }
    // Four running maxima, so that a long block is not one chain of
    // dependent maxes (NaN is never taken, and ties keep either equal value).
    let (mut v0, mut v1, mut v2, mut v3) = (vm, [T::NEG_INF; L], [T::NEG_INF; L], [T::NEG_INF; L]);
    let mut quads = b.chunks_exact(4 * L);
    for q in &mut quads {
        for i in 0..L {
            v0[i] = max2(v0[i], q[i]);
            v1[i] = max2(v1[i], q[L + i]);
            v2[i] = max2(v2[i], q[2 * L + i]);
            v3[i] = max2(v3[i], q[3 * L + i]);
        }
        lane_barrier();
    }
    for c in quads.remainder().chunks_exact(L) {
        for i in 0..L {
            v0[i] = max2(v0[i], c[i]);
        }
        lane_barrier();
    }
    let mut vm = [T::ZERO; L];
    for i in 0..L {
        vm[i] = max2(max2(v0[i], v1[i]), max2(v2[i], v3[i]));
    }
    // Through black_box: with hmax's pairwise tree in view, LLVM's SLP
    // vectoriser shaped the loop above after it, two lanes at a time (16
    // xmm loads and maxes per lane array instead of one zmm max).
    let bm = hmax(std::hint::black_box(vm));
    if bm > *m {
        if *m != T::NEG_INF {
            let f = (m.to_f64() - bm.to_f64()).exp();
            for a in acc.iter_mut() {
                *a *= f;
            }
        }
        *m = bm;
    }
    shift(*m)
}

/// One block of the online max-and-sum pass; `b.len()` is a multiple of L.
/// Rescales the running sum when the block raises the max (Milakov &
/// Gimelshein 2018), so each element's exp is computed once.
#[inline(always)]
fn online_block<T: Float>(b: &[T], m: &mut T, acc: &mut [f64; L]) {
    let ms = raise_max(b, [T::NEG_INF; L], m, acc);
    // Summed in f64, so log_softmax keeps exp(-20) next to the max's 1.
    sum_exp(b, [ms; L], acc);
}

/// Adds `exp(x - ms)` (flushed below the normal range) lane-wise to `acc` in
/// f64 over the lane arrays of `x`, in two levels (groups of 4 vectors) to
/// bound rounding growth; a group's four vectors in straight-line code so
/// the sums stay in registers.
#[inline(always)]
fn sum_exp<T: Float>(x: &[T], ms: [T; L], acc: &mut [f64; L]) {
    let mut groups = x.chunks_exact(4 * L);
    // The same sums either way. AVX-512 (32 registers) keeps the group's
    // exps in f64; with 16 registers (AVX2, baseline) that spills to the
    // stack (AVX2 log_softmax 4.5 -> 3.3 ms on 4096x1000 when the exps are
    // kept in T and widened in the sum, which in turn costs AVX-512 10 %).
    if crate::simd::level() == crate::simd::Level::Avx512 {
        for g in &mut groups {
            let mut t = [T::ZERO; 4 * L];
            for v in 0..4 {
                for i in 0..L {
                    t[v * L + i] = T::exp_flush(g[v * L + i] - ms[i]);
                }
            }
            // SAFETY: this branch runs at the AVX-512 level only.
            let g = unsafe { group_sum_avx512(t) };
            for i in 0..L {
                acc[i] += g[i];
            }
            lane_barrier();
        }
    }
    for g in &mut groups {
        let mut e = [T::ZERO; 4 * L];
        for v in 0..4 {
            for i in 0..L {
                e[v * L + i] = T::exp_flush(g[v * L + i] - ms[i]);
            }
        }
        let e = before_widening(e);
        for i in 0..L {
            acc[i] += (e[i].to_f64() + e[L + i].to_f64())
                + (e[2 * L + i].to_f64() + e[3 * L + i].to_f64());
        }
        lane_barrier();
    }
    let mut part = [0f64; L];
    for c in groups.remainder().chunks_exact(L) {
        let mut e = [T::ZERO; L];
        for i in 0..L {
            e[i] = T::exp_flush(c[i] - ms[i]);
        }
        // As in the groups: without it these exps ran at xmm width under
        // AVX2 (AVX2, 1 thread, alternating A/B: logsumexp 262144x10 0.95,
        // log_softmax 0.97-0.98; AVX-512 unchanged).
        let e = before_widening(e);
        for i in 0..L {
            part[i] += e[i].to_f64();
        }
        lane_barrier();
    }
    for i in 0..L {
        acc[i] += part[i];
    }
}

/// Pass 1 of a row: returns `(shift, sum(exp(x - shift)))`, the sum in f64.
#[inline(always)]
pub(crate) fn max_sum_row<T: Float>(x: &[T]) -> (T, f64) {
    let mut m = T::NEG_INF;
    let mut acc = [0f64; L];
    let mut blocks = x.chunks_exact(BLOCK);
    for b in &mut blocks {
        online_block(b, &mut m, &mut acc);
    }
    let rem = blocks.remainder();
    let full = rem.len() / L * L;
    if full > 0 {
        online_block(&rem[..full], &mut m, &mut acc);
    }
    if full < rem.len() {
        // The overlap with the last full vector is summed once: -inf.
        let (v, first) = last_vector(x, rem.len() - full, T::NEG_INF);
        let mut pad = [T::NEG_INF; L];
        for i in 0..L {
            pad[i] = if i >= first { v[i] } else { T::NEG_INF };
        }
        online_block(&pad, &mut m, &mut acc);
    }
    (shift(m), hsum(acc))
}

/// The partial last vector of `x`, its last `rem` elements (`rem < L`):
/// when `x` holds at least `L` elements, its last `L` as one full-width load,
/// the lanes before the returned `first` (= `L - rem`) repeating elements of
/// the last full vector; else (and when `rem` is 0) the `rem` elements in
/// the first lanes, padded with `fill` (`first` = 0). Copied into a padded
/// array, the partial vector's narrow stores stalled the wide load that read
/// them back (10 % of softmax on rows of 100).
#[inline(always)]
fn last_vector<T: Float>(x: &[T], rem: usize, fill: T) -> ([T; L], usize) {
    if rem > 0 && x.len() >= L {
        (window(x), L - rem)
    } else {
        let mut pad = [fill; L];
        pad[..rem].copy_from_slice(&x[x.len() - rem..]);
        (pad, 0)
    }
}

/// The last `L` elements of `x` (at least `L` long).
#[inline(always)]
fn window<T: Float>(x: &[T]) -> [T; L] {
    let mut w = [T::ZERO; L];
    w.copy_from_slice(&x[x.len() - L..]);
    w
}

/// Applies `f` lane-wise from `x` to `y` (same length); a partial last vector
/// as [`last_vector`] gives it.
#[inline(always)]
fn map_row<T: Float>(x: &[T], y: &mut [T], f: impl Fn(T) -> T) {
    let mut xc = x.chunks_exact(L);
    let mut yc = y.chunks_exact_mut(L);
    for (a, b) in (&mut xc).zip(&mut yc) {
        for i in 0..L {
            b[i] = f(a[i]);
        }
        lane_barrier();
    }
    let rem = xc.remainder().len();
    if rem > 0 {
        let (v, first) = last_vector(x, rem, T::ZERO);
        let mut out = [T::ZERO; L];
        for i in 0..L {
            out[i] = f(v[i]);
        }
        // A window's overlap is stored again, the same values.
        let n = y.len();
        if first > 0 {
            y[n - L..].copy_from_slice(&out);
        } else {
            y[n - rem..].copy_from_slice(&out[..rem]);
        }
    }
}

/// `y = f(y)` element-wise. A partial last vector is the last L elements:
/// they and the last full vector (which they overlap) are both read before
/// either is written, so each element is mapped once, and no load waits on
/// a store it partly overlaps.
#[inline(always)]
fn map_in_place<T: Float>(y: &mut [T], f: impl Fn(T) -> T) {
    let n = y.len();
    if n.is_multiple_of(L) || n < L {
        for v in y.iter_mut() {
            *v = f(*v);
        }
        return;
    }
    let full = n / L * L;
    for v in y[..full - L].iter_mut() {
        *v = f(*v);
    }
    let (a, b) = (window(&y[..full]), window(y));
    let (mut fa, mut fb) = ([T::ZERO; L], [T::ZERO; L]);
    for i in 0..L {
        fa[i] = f(a[i]);
        fb[i] = f(b[i]);
    }
    y[full - L..full].copy_from_slice(&fa);
    y[n - L..].copy_from_slice(&fb);
}

/// Sum over a row in f64 of `f(a_i, b_i)`, two-level, fixed order.
#[inline(always)]
pub(crate) fn dot_row<T: Float>(a: &[T], b: &[T], f: impl Fn(T, T) -> f64) -> f64 {
    let mut acc = [0f64; L];
    let mut ac = a.chunks_exact(BLOCK);
    let mut bc = b.chunks_exact(BLOCK);
    for (x, y) in (&mut ac).zip(&mut bc) {
        let mut blk = [0f64; L];
        for (xs, ys) in x.chunks_exact(L).zip(y.chunks_exact(L)) {
            for i in 0..L {
                blk[i] += f(xs[i], ys[i]);
            }
            lane_barrier();
        }
        for i in 0..L {
            acc[i] += blk[i];
        }
        lane_barrier();
    }
    let (ar, br) = (ac.remainder(), bc.remainder());
    let mut blk = [0f64; L];
    let mut xc = ar.chunks_exact(L);
    let mut yc = br.chunks_exact(L);
    for (xs, ys) in (&mut xc).zip(&mut yc) {
        for i in 0..L {
            blk[i] += f(xs[i], ys[i]);
        }
        lane_barrier();
    }
    for (i, (&x, &y)) in xc.remainder().iter().zip(yc.remainder()).enumerate() {
        blk[i] += f(x, y);
    }
    for i in 0..L {
        acc[i] += blk[i];
    }
    hsum(acc)
}

/// `(x - m) - c`, log_softmax's output: `x - m <= 0` and `c = log(sum) >= 0`
/// (the max's term is 1), so the two terms never cancel and each of the
/// three roundings (`x - m`, `c`, the difference) is at most half an ulp of
/// the result: 1.5 ulp in all (1.27 measured in float32 over logits scaled
/// 1-1e4). The column kernels' float32 `c` is `log1p` in f32 (3 ulp, see
/// `ln_sums`): 3.5 ulp there (1.6 measured). It was `hi + (lo - c)` from the exact TwoSum `x - m = hi + lo`
/// (0.5-1.24 ulp), which needs the exactness only in the exp, where an
/// error of the argument is magnified; plain, the store pass is 2 flops per
/// element instead of ~10 (alternating A/B, 4096x1000 log_softmax: 0.92 at
/// 1 thread, 0.90 float64, 0.88 under AVX2, 0.75 at 2 threads; 256x50257
/// 0.97). `log_softmax([20, 0])[0]` keeps its -2.06e-9: `x - m` is exactly 0.
#[inline(always)]
fn sub_shift<T: Float>(x: T, m: T, c: T) -> T {
    (x - m) - c
}

/// `y * (g - d)`, through f64 for f32.
#[inline(always)]
fn y_g_minus<T: Float>(y: T, g: T, d: f64) -> T {
    if T::MANTISSA_DIGITS < 53 {
        T::from_f64(y.to_f64() * (g.to_f64() - d))
    } else {
        y * (g - T::from_f64(d))
    }
}

/// `g - e * s`, through f64 for f32.
#[inline(always)]
fn g_minus_es<T: Float>(g: T, e: T, s: f64) -> T {
    if T::MANTISSA_DIGITS < 53 {
        T::from_f64(g.to_f64() - e.to_f64() * s)
    } else {
        g - e * T::from_f64(s)
    }
}

/// logsumexp from the pass-1 result (shift `ms`, `ls` = log of the sum); a
/// +inf max gives +inf unless a NaN is present (inf - inf would otherwise
/// make it NaN).
#[inline(always)]
fn lse_from<T: Float>(ms: T, ls: f64, row: impl Fn() -> bool) -> T {
    if ms == T::INF {
        return if row() { T::NAN } else { T::INF };
    }
    T::from_f64(ms.to_f64() + ls)
}

// ---------------------------------------------------------------- row kernels

/// One block of softmax's storing online pass: raises the running max `m`
/// (rescaling `acc`) if the block holds a larger value, then stores
/// `exp_biased_nonpos(x - shift)` into `yb` and adds it to `acc`. Returns the shift
/// the block's stored values are relative to.
///
/// Four vectors are summed in T before widening: a few ulp, all softmax's
/// division needs (cross-entropy, which needs more when the target
/// dominates, sums the other terms on their own).
#[inline(always)]
fn store_block<T: Float>(xb: &[T], yb: &mut [T], m: &mut T, acc: &mut [f64; L]) -> T {
    let len = xb.len();
    let full = len / L * L;
    let rem = len - full;
    // The partial last vector ([`last_vector`]): the max may see a window's
    // overlap twice, and its exps are stored again, the same values, but
    // summed once.
    let (pad, first) = last_vector(xb, rem, T::NEG_INF);
    let ms = raise_max(&xb[..full], pad, m, acc);
    let mut part = [0f64; L];
    // Groups of four vectors with a constant trip count, so that the sums stay
    // in registers (a lane loop with a barrier per vector kept them on the
    // stack, one store-to-load round trip per vector).
    let mut groups = xb[..full]
        .chunks_exact(4 * L)
        .zip(yb[..full].chunks_exact_mut(4 * L));
    for (cg, og) in &mut groups {
        let mut e = [T::ZERO; 4 * L];
        for v in 0..4 {
            for i in 0..L {
                let (h, l) = T::diff(cg[v * L + i], ms);
                e[v * L + i] = T::exp_biased_nonpos(h, l);
            }
        }
        og.copy_from_slice(&e);
        for i in 0..L {
            part[i] += ((e[i] + e[L + i]) + (e[2 * L + i] + e[3 * L + i])).to_f64();
        }
        lane_barrier();
    }
    let tail = full / (4 * L) * (4 * L);
    for (c, o) in xb[tail..full]
        .chunks_exact(L)
        .zip(yb[tail..full].chunks_exact_mut(L))
    {
        for i in 0..L {
            let (h, l) = T::diff(c[i], ms);
            let e = T::exp_biased_nonpos(h, l);
            o[i] = e;
            part[i] += e.to_f64();
        }
        lane_barrier();
    }
    if rem > 0 {
        let mut e = [T::ZERO; L];
        for i in 0..L {
            let (h, l) = T::diff(pad[i], ms);
            e[i] = T::exp_biased_nonpos(h, l);
            part[i] += if i >= first { e[i].to_f64() } else { 0.0 };
        }
        if first > 0 {
            yb[len - L..].copy_from_slice(&e);
        } else {
            yb[full..].copy_from_slice(&e[..rem]);
        }
    }
    for i in 0..L {
        acc[i] += part[i];
    }
    ms
}

/// Pass 1 of a stored softmax row: `y = exp_biased_nonpos(x - block shift)`, one
/// shift per block of [`row_block`] recorded in `shifts`. Returns `(shift, sum)`
/// with the sum of the stored values (it carries exp_biased_nonpos's `2^EXP_BIAS`;
/// 0 only for a row of -inf).
#[inline(always)]
pub(crate) fn store_row<T: Float>(xr: &[T], yr: &mut [T], shifts: &mut [T]) -> (T, f64) {
    let mut m = T::NEG_INF;
    let mut acc = [0f64; L];
    let bl = row_block(xr.len());
    for (b, (xb, yb)) in xr.chunks(bl).zip(yr.chunks_mut(bl)).enumerate() {
        shifts[b] = store_block(xb, yb, &mut m, &mut acc);
    }
    (shift(m), hsum(acc))
}

/// Pass 2 of a stored softmax row: scales each block so that `y = c *
/// softmax(x)`, given [`store_row`]'s shifts, final shift `ms` and sum `s`.
/// A block whose exp(shift_b - ms) underflows is recomputed from `x`.
#[inline(always)]
pub(crate) fn scale_row<T: Float>(xr: &[T], yr: &mut [T], shifts: &[T], ms: T, s: f64, c: f64) {
    let tiny = T::MIN_POSITIVE.to_f64();
    let bl = row_block(xr.len());
    for (b, (xb, yb)) in xr.chunks(bl).zip(yr.chunks_mut(bl)).enumerate() {
        let ratio = if shifts[b] == ms {
            1.0
        } else {
            (shifts[b].to_f64() - ms.to_f64()).exp()
        };
        let f = if s == 0.0 { f64::NAN } else { ratio / s * c };
        // The stored values carry 2^EXP_BIAS, so `f` is 2^-EXP_BIAS times the
        // factor the result needs: when only a tiny `c` (such as a small
        // class weight) takes `f` below the normal range, the bias is
        // removed by a second exact power-of-two multiply, so the result is
        // still rounded once (unless it is itself subnormal).
        let unbias = T::from_f64(T::EXP_UNBIAS);
        if f >= tiny || f.is_nan() || c == 0.0 {
            let k = T::from_f64(f);
            map_in_place(yb, |v| v * k);
        } else if ratio / s >= tiny && f / T::EXP_UNBIAS >= tiny {
            let k = T::from_f64(f / T::EXP_UNBIAS);
            map_in_place(yb, |v| v * k * unbias);
        } else {
            // exp(block shift - max) itself underflows: recompute the block
            // from x against the row's max.
            let k = T::from_f64(c / s / T::EXP_UNBIAS);
            map_row(xb, yb, |v| {
                let (h, l) = T::diff(v, ms);
                T::exp_biased_nonpos(h, l) * k * unbias
            });
        }
    }
}

multiversion! {
    /// softmax-rows: one online pass that reduces the running max, stores
    /// exp(x - running max) and reduce-adds it; then one pass that rescales
    /// each block by exp(block max - max) / sum (a block whose factor would
    /// leave the normal range is recomputed from x instead). One exp per
    /// element for all but such blocks; a few ulp.
    pub fn softmax_rows<T: Float>(x: &[T], y: &mut [T], n: usize) {
        let mut shifts = vec![T::ZERO; n.div_ceil(BLOCK)];
        let (rows, xp) = (x.len() / n, x.as_ptr());
        for (r, (xr, yr)) in x.chunks_exact(n).zip(y.chunks_exact_mut(n)).enumerate() {
            prefetch_next(n, r, rows, &[xp]);
            let (ms, s) = store_row(xr, yr, &mut shifts);
            scale_row(xr, yr, &shifts, ms, s, 1.0);
        }
    }
}

multiversion! {
    /// log-softmax-rows: reduce (online max + rescaled sum), then store
    /// (x - max) - log(sum). Two passes over each row.
    pub fn log_softmax_rows<T: Float>(x: &[T], y: &mut [T], n: usize) {
        let (rows, xp) = (x.len() / n, x.as_ptr());
        for (r, (xr, yr)) in x.chunks_exact(n).zip(y.chunks_exact_mut(n)).enumerate() {
            prefetch_next(n, r, rows, &[xp]);
            let (ms, s) = max_sum_row(xr);
            let c = T::from_f64(s.ln());
            map_row(xr, yr, |v| sub_shift(v, ms, c));
            lane_barrier();
        }
    }
}

/// The loop of the logsumexp row kernels: per row the online max and sum
/// pass, then `fin(shift, sum, row)`.
#[inline(always)]
fn lse_rows_with<T: Float>(x: &[T], y: &mut [T], n: usize, fin: impl Fn(T, f64, &[T]) -> T) {
    let (rows, xp) = (x.len() / n, x.as_ptr());
    for (r, (xr, yv)) in x.chunks_exact(n).zip(y.iter_mut()).enumerate() {
        prefetch_next(n, r, rows, &[xp]);
        let (ms, s) = max_sum_row(xr);
        *yv = fin(ms, s, xr);
        lane_barrier();
    }
}

multiversion! {
    /// logsumexp-rows: one online max + rescaled-sum pass, max + log(sum).
    pub fn logsumexp_rows<T: Float>(x: &[T], y: &mut [T], n: usize) {
        lse_rows_with(x, y, n, |ms, s, xr| {
            lse_from(ms, s.ln(), || xr.iter().any(|v| v.is_nan_()))
        });
    }
}

multiversion! {
    /// softmax-backward-rows: reduce-dot sum(g*y), then store y * (g - dot).
    pub fn softmax_backward_rows<T: Float>(g: &[T], y: &[T], out: &mut [T], n: usize) {
        for ((gr, yr), or) in g.chunks_exact(n).zip(y.chunks_exact(n)).zip(out.chunks_exact_mut(n)) {
            let d = dot_row(gr, yr, |a, b| a.to_f64() * b.to_f64());
            let mut gc = gr.chunks_exact(L);
            let mut yc = yr.chunks_exact(L);
            let mut oc = or.chunks_exact_mut(L);
            for ((a, b), o) in (&mut gc).zip(&mut yc).zip(&mut oc) {
                for i in 0..L {
                    o[i] = y_g_minus(b[i], a[i], d);
                }
                lane_barrier();
            }
            for ((a, b), o) in gc.remainder().iter().zip(yc.remainder()).zip(oc.into_remainder()) {
                *o = y_g_minus(*b, *a, d);
            }
            lane_barrier();
        }
    }
}

multiversion! {
    /// log-softmax-backward-rows: reduce-sum sum(g), then store
    /// g - exp(y) * sum.
    pub fn log_softmax_backward_rows<T: Float>(g: &[T], y: &[T], out: &mut [T], n: usize) {
        for ((gr, yr), or) in g.chunks_exact(n).zip(y.chunks_exact(n)).zip(out.chunks_exact_mut(n)) {
            let s = dot_row(gr, gr, |a, _| a.to_f64());
            let mut gc = gr.chunks_exact(L);
            let mut yc = yr.chunks_exact(L);
            let mut oc = or.chunks_exact_mut(L);
            for ((a, b), o) in (&mut gc).zip(&mut yc).zip(&mut oc) {
                let mut e = [T::ZERO; L];
                for i in 0..L {
                    e[i] = T::exp(b[i]);
                }
                for i in 0..L {
                    o[i] = g_minus_es(a[i], e[i], s);
                }
                lane_barrier();
            }
            for ((a, b), o) in gc.remainder().iter().zip(yc.remainder()).zip(oc.into_remainder()) {
                *o = g_minus_es(*a, T::exp(*b), s);
            }
            lane_barrier();
        }
    }
}

// ------------------------------------------------------------- column kernels

/// Pass 1 over L interleaved rows: per-lane shift and f64 sum (max, then sum;
/// the data is a cache-resident scratch block).
#[inline(always)]
pub(crate) fn max_sum_cols<T: Float>(x: &[T]) -> ([T; L], [f64; L]) {
    let ms = max_cols(x);
    let mut acc = [0f64; L];
    sum_exp(x, ms, &mut acc);
    (ms, acc)
}

/// Stores `exp_biased_nonpos(x - ms)` of L interleaved rows into `y` and
/// returns the lane sums (f64) of what it stored: pass 1 of the column
/// softmax.
#[inline(always)]
fn store_exp_cols<T: Float>(x: &[T], y: &mut [T], ms: &[T; L]) -> [f64; L] {
    let mut acc = [0f64; L];
    // Pairs of vectors summed in T before widening (as `store_block`): half
    // the conversions, and the exps run at full vector width (widening each
    // one made LLVM split them into halves).
    let mut pairs = x.chunks_exact(2 * L).zip(y.chunks_exact_mut(2 * L));
    for (a, b) in &mut pairs {
        let mut e = [T::ZERO; 2 * L];
        for v in 0..2 {
            for i in 0..L {
                let (h, l) = T::diff(a[v * L + i], ms[i]);
                e[v * L + i] = T::exp_biased_nonpos(h, l);
            }
        }
        b.copy_from_slice(&e);
        for i in 0..L {
            acc[i] += (e[i] + e[L + i]).to_f64();
        }
        lane_barrier();
    }
    let done = x.len() / (2 * L) * (2 * L);
    for (a, b) in x[done..].chunks_exact(L).zip(y[done..].chunks_exact_mut(L)) {
        for i in 0..L {
            let (h, l) = T::diff(a[i], ms[i]);
            let e = T::exp_biased_nonpos(h, l);
            b[i] = e;
            acc[i] += e.to_f64();
        }
        lane_barrier();
    }
    acc
}

/// `log(sum)` per lane, in T, for the column kernels' sums of
/// `exp_flush(x - max)` (at least 1, the max's own term; 0 for an all -inf
/// row, or NaN). f64: `ln` of the f64 sum. f32: `log1p` of `sum - 1` in f32 (the
/// difference exact in f64, then rounded once; log1p to 3 ulp), a third of
/// the work of two f64 vectors of `ln`, each with a division, and a
/// `log(1 + 2e-9)` still kept (`log_softmax([20, 0])`); `simd::tile` takes
/// the same operations.
#[inline(always)]
fn ln_sums<T: Float>(acc: &[f64; L]) -> [T; L] {
    let mut c = [T::ZERO; L];
    if T::MANTISSA_DIGITS == 24 {
        for i in 0..L {
            c[i] = log1p(T::from_f64(acc[i] - 1.0));
        }
    } else {
        for i in 0..L {
            c[i] = T::from_f64(ln(acc[i]));
        }
    }
    c
}

/// Lane maxima (as shifts) of L interleaved rows.
#[inline(always)]
pub(crate) fn max_cols<T: Float>(x: &[T]) -> [T; L] {
    let mut m = [T::NEG_INF; L];
    raise_lane_max(x, &mut m);
    lane_shifts(m)
}

/// Raises the lane maxima `m` to those of the lane arrays of `x` (NaN never
/// taken).
#[inline(always)]
fn raise_lane_max<T: Float>(x: &[T], m: &mut [T; L]) {
    for c in x.chunks_exact(L) {
        for i in 0..L {
            m[i] = if c[i] > m[i] { c[i] } else { m[i] };
        }
        lane_barrier();
    }
}

/// [`shift`] of each lane maximum.
#[inline(always)]
fn lane_shifts<T: Float>(m: [T; L]) -> [T; L] {
    let mut ms = [T::ZERO; L];
    for i in 0..L {
        ms[i] = shift(m[i]);
    }
    ms
}

/// Per-lane sums over L interleaved rows of `f(a, b)` in f64, two-level.
#[inline(always)]
fn dot_cols<T: Float>(a: &[T], b: &[T], f: impl Fn(T, T) -> f64) -> [f64; L] {
    let mut acc = [0f64; L];
    for (ab, bb) in a.chunks(BLOCK).zip(b.chunks(BLOCK)) {
        let mut blk = [0f64; L];
        for (x, y) in ab.chunks_exact(L).zip(bb.chunks_exact(L)) {
            for i in 0..L {
                blk[i] += f(x[i], y[i]);
            }
            lane_barrier();
        }
        for i in 0..L {
            acc[i] += blk[i];
        }
    }
    acc
}

multiversion! {
    /// softmax-cols: reduce-max, reduce-add-exp, store exp * (1 / sum), lanes across rows.
    pub fn softmax_cols<T: Float>(x: &[T], y: &mut [T]) {
        let ms = max_cols(x);
        // Then scale by 1 / sum: the bias cancels, and one exp per element.
        let acc = store_exp_cols(x, y, &ms);
        let mut k = [T::ZERO; L];
        for i in 0..L {
            // The reciprocal in T (f32: within 1 ulp, two roundings): one
            // f32 division per 16 lanes where f64 took two.
            let a = T::from_f64(acc[i]);
            k[i] = if a == T::ZERO { T::NAN } else { T::ONE / a };
        }
        for b in y.chunks_exact_mut(L) {
            for i in 0..L {
                b[i] = b[i] * k[i];
            }
            lane_barrier();
        }
    }
}

multiversion! {
    /// log-softmax-cols: reduce-max, reduce-add-exp, store x - max - log(sum).
    pub fn log_softmax_cols<T: Float>(x: &[T], y: &mut [T]) {
        let (ms, acc) = max_sum_cols(x);
        let c = ln_sums(&acc);
        for (a, b) in x.chunks_exact(L).zip(y.chunks_exact_mut(L)) {
            for i in 0..L {
                b[i] = sub_shift(a[i], ms[i], c[i]);
            }
            lane_barrier();
        }
    }
}

multiversion! {
    /// logsumexp-cols: reduce-max, reduce-add-exp, max + log(sum) per lane.
    pub fn logsumexp_cols<T: Float>(x: &[T], y: &mut [T]) {
        let (ms, acc) = max_sum_cols(x);
        // The lane logs vectorised (libm's log is a call per lane).
        let c: [T; L] = ln_sums(&acc);
        let mut ls = [0f64; L];
        for i in 0..L {
            ls[i] = c[i].to_f64();
        }
        for i in 0..L {
            y[i] = lse_from(ms[i], ls[i], || x.chunks_exact(L).any(|c| c[i].is_nan_()));
        }
    }
}

/// What [`WeightedLogSumExp`] gives for a row, from `s = sum(b * exp(x - shift))`
/// (SciPy's `logsumexp(a, b=)`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LseOut {
    /// `shift + log(s)`: NaN where `s < 0`, -inf where `s` is 0.
    Value,
    /// `shift + log(|s|)` (with `return_sign`).
    Abs,
    /// The sign of `s`: 1, -1, 0 (`s` is 0, or the row has no entry), NaN.
    Sign,
}

/// `c = x` where the weight `b` is not 0 (a NaN weight counts), -inf where
/// it is 0: the entries SciPy leaves out. A loop over the row, vectorised
/// across its elements (the same select in 16-lane arrays stayed scalar).
#[inline(always)]
fn weighted_entries<T: Float>(x: &[T], b: &[T], c: &mut [T]) {
    for ((d, &v), &w) in c.iter_mut().zip(x).zip(b) {
        *d = if w != T::ZERO { v } else { T::NEG_INF };
    }
}

/// The max of `c` (whose length is a multiple of L; NaN never taken).
#[inline(always)]
fn max_of<T: Float>(c: &[T]) -> T {
    let mut v = [T::NEG_INF; L];
    for ch in c.chunks_exact(L) {
        for i in 0..L {
            v[i] = if ch[i] > v[i] { ch[i] } else { v[i] };
        }
        lane_barrier();
    }
    // A fresh array through black_box, as in `raise_max`.
    let mut vm = [T::ZERO; L];
    vm.copy_from_slice(&v);
    hmax(std::hint::black_box(vm))
}

/// Adds the weighted terms `b * exp(c - ms)` lane-wise to `acc` in f64, two
/// levels (blocks of [`BLOCK`]), over the full lane arrays of `c` (from
/// [`weighted_entries`]) and `b`: 0 where the weight is 0 (`0 * exp(-inf)`),
/// NaN from a NaN `x` or `b`, and `inf * 0` (an infinite weight on a -inf
/// entry) NaN as in IEEE.
#[inline(always)]
fn wsum<T: Float>(c: &[T], b: &[T], ms: [T; L], acc: &mut [f64; L]) {
    let lvl = crate::simd::level();
    for (cb, bb) in c.chunks(BLOCK).zip(b.chunks(BLOCK)) {
        let mut blk = [0f64; L];
        for (cs, bs) in cb.chunks_exact(L).zip(bb.chunks_exact(L)) {
            let mut e = [T::ZERO; L];
            for i in 0..L {
                e[i] = T::exp_flush(cs[i] - ms[i]);
            }
            let mut w = [T::ZERO; L];
            w.copy_from_slice(bs);
            // SAFETY: `lvl` is `level()`'s.
            let (ef, wf) = unsafe { (widen_at(e, lvl), widen_at(w, lvl)) };
            for i in 0..L {
                blk[i] += wf[i] * ef[i];
            }
            lane_barrier();
        }
        for i in 0..L {
            acc[i] += blk[i];
        }
    }
}

/// A row's weighted sum term by term (f64, in order), for a row whose max
/// `ms` is +inf (no `inf - inf`) or whose fast sum came out NaN: +inf
/// entries give `b * inf`, and an infinite weight on any entry above -inf
/// is an infinite term, where the fast sum had `inf * 0` from an exp that
/// underflowed or from the +inf max (`logsumexp([inf, 1], b=[1, inf])` is
/// inf, as in SciPy). A zero weight drops its term; the result is NaN for a
/// NaN entry or weight, an infinite weight on a -inf entry (`inf * 0`, as
/// IEEE and SciPy), and infinite terms of both signs.
#[cold]
#[inline(never)]
fn exact_wsum<T: Float>(x: impl Iterator<Item = T>, b: impl Iterator<Item = T>, ms: T) -> f64 {
    let msf = ms.to_f64();
    x.zip(b)
        .filter(|&(_, w)| w != T::ZERO)
        .map(|(v, w)| {
            let (v, w) = (v.to_f64(), w.to_f64());
            if v.is_nan() || w.is_nan() {
                f64::NAN
            } else if w.is_infinite() {
                if v == f64::NEG_INFINITY {
                    f64::NAN
                } else {
                    w
                }
            } else if v == f64::INFINITY {
                w * f64::INFINITY
            } else {
                w * (v - msf).exp()
            }
        })
        .sum()
}

/// A row's result from its shift `ms` and weighted sum `s` (f64), rounded once.
#[inline(always)]
fn wlse_from<T: Float>(ms: T, s: f64, how: LseOut) -> T {
    match how {
        LseOut::Sign if s.is_nan() => T::NAN,
        LseOut::Sign if s > 0.0 => T::ONE,
        LseOut::Sign if s < 0.0 => T::from_f64(-1.0),
        LseOut::Sign => T::ZERO,
        LseOut::Value if s < 0.0 => T::NAN,
        _ if s == 0.0 => T::NEG_INF,
        _ => T::from_f64(ms.to_f64() + s.abs().ln()),
    }
}

multiversion! {
    /// Weighted logsumexp over contiguous rows of `n` (`b` the weights, of
    /// `x`'s shape): the max over the entries with a weight, then
    /// `sum(b * exp(x - max))` in f64, two-level, fixed order.
    pub fn wlogsumexp_rows<T: Float>(x: &[T], b: &[T], y: &mut [T], n: usize, how: LseOut) {
        // A row's entries, padded with -inf to whole vectors, and the
        // weights of its partial last vector padded with 0.
        let (full, len) = (n / L * L, n.next_multiple_of(L));
        let mut c = vec![T::NEG_INF; len];
        let mut bt = [T::ZERO; L];
        for ((xr, br), yv) in x.chunks_exact(n).zip(b.chunks_exact(n)).zip(y.iter_mut()) {
            weighted_entries(xr, br, &mut c[..n]);
            let m = max_of(&c);
            let ms = shift(m);
            let fast = (m != T::INF).then(|| {
                let mut acc = [0f64; L];
                wsum(&c[..full], &br[..full], [ms; L], &mut acc);
                if full < n {
                    bt[..n - full].copy_from_slice(&br[full..]);
                    wsum(&c[full..], &bt, [ms; L], &mut acc);
                }
                hsum(acc)
            });
            let s = match fast {
                Some(s) if !s.is_nan() => s,
                _ => exact_wsum(xr.iter().copied(), br.iter().copied(), ms),
            };
            *yv = wlse_from(ms, s, how);
            lane_barrier();
        }
    }
}

multiversion! {
    /// [`wlogsumexp_rows`] over L interleaved rows.
    pub fn wlogsumexp_cols<T: Float>(x: &[T], b: &[T], y: &mut [T], how: LseOut) {
        // The weighted entries a block at a time in a stack buffer (this
        // runs once per unit of 16 rows: no allocation), once for the max
        // and again for the sum; the blocks are `wsum`'s own, so the sums
        // are the same.
        let mut buf = [T::ZERO; BLOCK];
        let mut m = [T::NEG_INF; L];
        for (xb, bb) in x.chunks(BLOCK).zip(b.chunks(BLOCK)) {
            let c = &mut buf[..xb.len()];
            weighted_entries(xb, bb, c);
            raise_lane_max(c, &mut m);
        }
        let ms = lane_shifts(m);
        let mut acc = [0f64; L];
        for (xb, bb) in x.chunks(BLOCK).zip(b.chunks(BLOCK)) {
            let c = &mut buf[..xb.len()];
            weighted_entries(xb, bb, c);
            wsum(c, bb, ms, &mut acc);
        }
        for i in 0..L {
            let lane = |a: &[T]| a.iter().skip(i).step_by(L).copied().collect::<Vec<T>>();
            if m[i] == T::INF || acc[i].is_nan() {
                acc[i] = exact_wsum(lane(x).into_iter(), lane(b).into_iter(), ms[i]);
            }
            y[i] = wlse_from(ms[i], acc[i], how);
        }
    }
}

multiversion! {
    /// softmax-backward-cols: reduce-dot sum(g*y), store y * (g - dot).
    pub fn softmax_backward_cols<T: Float>(g: &[T], y: &[T], out: &mut [T]) {
        let d = dot_cols(g, y, |a, b| a.to_f64() * b.to_f64());
        for ((a, b), o) in g.chunks_exact(L).zip(y.chunks_exact(L)).zip(out.chunks_exact_mut(L)) {
            for i in 0..L {
                o[i] = y_g_minus(b[i], a[i], d[i]);
            }
            lane_barrier();
        }
    }
}

multiversion! {
    /// log-softmax-backward-cols: reduce-sum sum(g), store g - exp(y) * sum.
    pub fn log_softmax_backward_cols<T: Float>(g: &[T], y: &[T], out: &mut [T]) {
        let s = dot_cols(g, g, |a, _| a.to_f64());
        for ((a, b), o) in g.chunks_exact(L).zip(y.chunks_exact(L)).zip(out.chunks_exact_mut(L)) {
            let mut e = [T::ZERO; L];
            for i in 0..L {
                e[i] = T::exp(b[i]);
            }
            for i in 0..L {
                o[i] = g_minus_es(a[i], e[i], s[i]);
            }
            lane_barrier();
        }
    }
}

/// A row's result for a weight `b` shared by every entry (`ln_b` its log's
/// magnitude), from the row's shift `ms` and `ln_s` the log of
/// `s = sum(exp(x - ms))` (`s` itself for its zero / NaN cases) and
/// whether the row holds a NaN (asked only when the max is +inf): `b * s`,
/// as [`wlse_from`] takes it, without forming the product (which could
/// overflow where its log does not).
#[inline(always)]
fn scaled_from<T: Float>(
    ms: T,
    s: f64,
    ln_s: f64,
    b: f64,
    ln_b: f64,
    how: LseOut,
    has_nan: impl Fn() -> bool,
) -> T {
    if b == 0.0 {
        // Every entry left out.
        return wlse_from(ms, 0.0, how);
    }
    let t = if ms == T::INF {
        // +inf entries: b * inf each, unless a NaN is present.
        if has_nan() {
            f64::NAN
        } else {
            b * f64::INFINITY
        }
    } else {
        b * s
    };
    if t.is_nan() || t == 0.0 || t.is_infinite() || how == LseOut::Sign {
        return wlse_from(ms, t, how);
    }
    if how == LseOut::Value && t < 0.0 {
        return T::NAN;
    }
    T::from_f64(ms.to_f64() + ln_s + ln_b)
}

multiversion! {
    /// logsumexp of contiguous rows of `n` with every weight `b`.
    pub fn scaled_logsumexp_rows<T: Float>(x: &[T], y: &mut [T], n: usize, b: f64, how: LseOut) {
        let ln_b = b.abs().ln();
        lse_rows_with(x, y, n, |ms, s, xr| {
            scaled_from(ms, s, s.ln(), b, ln_b, how, || xr.iter().any(|v| v.is_nan_()))
        });
    }
}

multiversion! {
    /// [`scaled_logsumexp_rows`] over L interleaved rows; the logs of the
    /// sums vectorised ([`ln_sums`]), as in `logsumexp_cols`.
    pub fn scaled_logsumexp_cols<T: Float>(x: &[T], y: &mut [T], b: f64, how: LseOut) {
        let ln_b = b.abs().ln();
        let (ms, acc) = max_sum_cols(x);
        let c: [T; L] = ln_sums(&acc);
        for i in 0..L {
            let has_nan = || x.chunks_exact(L).any(|ch| ch[i].is_nan_());
            y[i] = scaled_from(ms[i], acc[i], c[i].to_f64(), b, ln_b, how, has_nan);
        }
    }
}

// ------------------------------------------------------------------- the ops

/// Row-wise softmax.
pub struct Softmax;
/// Row-wise log-softmax.
pub struct LogSoftmax;
/// Row-wise logsumexp (one value per row).
pub struct LogSumExp;
/// SciPy's `logsumexp(x, b=)`, one value per row; inputs `[x, b]`.
pub struct WeightedLogSumExp(pub LseOut);
/// [`WeightedLogSumExp`] with one weight `b` for every entry; input `[x]`.
pub struct ScaledLogSumExp {
    pub how: LseOut,
    pub b: f64,
}
/// `y * (g - sum(g * y))`; inputs `[g, y]`.
pub struct SoftmaxBackward;
/// `g - exp(y) * sum(g)`; inputs `[g, y]`.
pub struct LogSoftmaxBackward;

impl<T: Float> RowOp<T> for Softmax {
    fn short_row(&self) -> usize {
        short_row_exp::<T>()
    }
    fn rows(&self, ins: &[&[T]], out: &mut [T], n: usize) {
        softmax_rows(ins[0], out, n)
    }
    fn cols(&self, ins: &[&[T]], out: &mut [T]) {
        softmax_cols(ins[0], out)
    }
    fn tile(&self) -> Option<tile::Op> {
        Some(tile::Op::Softmax)
    }
    fn masked_fill(&self) -> T {
        T::ZERO
    }
}

impl<T: Float> RowOp<T> for LogSoftmax {
    fn short_row(&self) -> usize {
        short_row_exp::<T>()
    }
    fn rows(&self, ins: &[&[T]], out: &mut [T], n: usize) {
        log_softmax_rows(ins[0], out, n)
    }
    fn cols(&self, ins: &[&[T]], out: &mut [T]) {
        log_softmax_cols(ins[0], out)
    }
    fn tile(&self) -> Option<tile::Op> {
        Some(tile::Op::LogSoftmax)
    }
    fn masked_fill(&self) -> T {
        T::NEG_INF
    }
}

impl<T: Float> RowOp<T> for LogSumExp {
    fn short_row(&self) -> usize {
        short_row_exp::<T>()
    }
    fn reduces(&self) -> bool {
        true
    }
    fn rows(&self, ins: &[&[T]], out: &mut [T], n: usize) {
        logsumexp_rows(ins[0], out, n)
    }
    fn cols(&self, ins: &[&[T]], out: &mut [T]) {
        logsumexp_cols(ins[0], out)
    }
    fn tile(&self) -> Option<tile::Op> {
        Some(tile::Op::LogSumExp)
    }
    fn masked_fill(&self) -> T {
        T::NEG_INF
    }
}

impl<T: Float> RowOp<T> for SoftmaxBackward {
    fn rows(&self, ins: &[&[T]], out: &mut [T], n: usize) {
        softmax_backward_rows(ins[0], ins[1], out, n)
    }
    fn cols(&self, ins: &[&[T]], out: &mut [T]) {
        softmax_backward_cols(ins[0], ins[1], out)
    }
    /// A masked entry's gradient counts as 0 in the row's sum, and its
    /// output is 0: the forward pass gave it a constant.
    fn masked_input(&self) -> T {
        T::ZERO
    }
    fn masked_fill(&self) -> T {
        T::ZERO
    }
}

impl<T: Float> RowOp<T> for LogSoftmaxBackward {
    fn rows(&self, ins: &[&[T]], out: &mut [T], n: usize) {
        log_softmax_backward_rows(ins[0], ins[1], out, n)
    }
    fn cols(&self, ins: &[&[T]], out: &mut [T]) {
        log_softmax_backward_cols(ins[0], ins[1], out)
    }
    /// A masked entry's gradient counts as 0 in the row's sum, and its
    /// output is 0: the forward pass gave it a constant.
    fn masked_input(&self) -> T {
        T::ZERO
    }
    fn masked_fill(&self) -> T {
        T::ZERO
    }
}

impl<T: Float> RowOp<T> for WeightedLogSumExp {
    fn reduces(&self) -> bool {
        true
    }
    fn rows(&self, ins: &[&[T]], out: &mut [T], n: usize) {
        wlogsumexp_rows(ins[0], ins[1], out, n, self.0)
    }
    fn cols(&self, ins: &[&[T]], out: &mut [T]) {
        wlogsumexp_cols(ins[0], ins[1], out, self.0)
    }
    fn masked_fill(&self) -> T {
        empty_row(self.0)
    }
}

impl<T: Float> RowOp<T> for ScaledLogSumExp {
    fn short_row(&self) -> usize {
        short_row_exp::<T>()
    }
    fn reduces(&self) -> bool {
        true
    }
    fn rows(&self, ins: &[&[T]], out: &mut [T], n: usize) {
        scaled_logsumexp_rows(ins[0], out, n, self.b, self.how)
    }
    fn cols(&self, ins: &[&[T]], out: &mut [T]) {
        scaled_logsumexp_cols(ins[0], out, self.b, self.how)
    }
    fn masked_fill(&self) -> T {
        empty_row(self.how)
    }
}

/// A weighted logsumexp's output for a row with no entry (empty, or every
/// entry masked): log(0) = -inf, and its sign 0.
fn empty_row<T: Float>(how: LseOut) -> T {
    if how == LseOut::Sign {
        T::ZERO
    } else {
        T::NEG_INF
    }
}

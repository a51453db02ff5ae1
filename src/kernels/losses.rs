//! Losses with fused gradients: each kernel returns the f64 sum of its rows'
//! (or elements') losses and, when asked, writes d(loss)/d(input) in the same
//! sweep over the data.
//!
//! Determinism: rows (elements) are cut into fixed blocks whose size depends
//! only on the row length, each block's losses are summed in order in f64, and
//! the block partials are combined in block order, so the result is
//! bit-identical for any thread count.
//!
//! Accuracy: cross-entropy reuses the softmax module's online max+sum pass
//! (`x - max` kept exactly, 2-ulp exp, f64 sums); the row loss
//! `(max - x_t) + log(sum)` is formed in f64 from non-negative parts, so f32
//! losses are within a few ulp of exact and f64 within ~1e-15 relative.

use super::elementwise::{ahead, ld, reduce_tasks, run_tasks, st, tasks, Ptr};
use super::short_row_exp;
use super::softmax::{dot_row, max_cols, max_sum_row, prefetch_next, scale_row, store_row, BLOCK};
use crate::multiversion;
use crate::simd::math::{abs, exp_of_nonpos, expm1_nonpos, ln, log1p, log1p_unit, max};
use crate::simd::transpose::{lanes_to_rows, rows_to_lanes};
use crate::simd::{hsum, lane_barrier, tile, widen_at, Float, Level, LANES as L};

/// Where a loss reads its input from: its own slice, or the gradient buffer
/// (in-place: `grad_out` is the input), copied block by block to scratch
/// before the block's gradient overwrites it.
#[derive(Clone, Copy)]
pub enum Input<'a, T> {
    Slice(&'a [T]),
    InGrad,
}

/// Runs `f(r0, r1, x_rows, grad_rows, loss_rows)` over fixed blocks of rows
/// and returns the sum of the blocks' results, combined in block order.
/// `grad` (if any) has `rows * n` elements; `per_row` (if any) has `rows`.
#[allow(clippy::too_many_arguments)]
pub fn blocked_sum<T: Float>(
    rows: usize,
    n: usize,
    x: Input<'_, T>,
    grad: Option<&mut [T]>,
    per_row: Option<&mut [T]>,
    f: impl Fn(usize, usize, &[T], Option<&mut [T]>, Option<&mut [T]>) -> f64 + Sync,
) -> f64 {
    if rows == 0 {
        return 0.0;
    }
    if let Input::Slice(s) = x {
        assert_eq!(s.len(), rows * n);
    }
    assert!(grad.as_ref().is_none_or(|g| g.len() == rows * n));
    assert!(per_row.as_ref().is_none_or(|l| l.len() == rows));
    let in_grad = matches!(x, Input::InGrad);
    assert!(!in_grad || grad.is_some());
    let gp = grad.map(|g| Ptr(g.as_mut_ptr()));
    let lp = per_row.map(|l| Ptr(l.as_mut_ptr()));
    sum_blocks(rows, n, |r0, r1| {
        // SAFETY: this block alone owns rows r0..r1 of grad and per_row.
        let g = gp
            .map(|p| unsafe { std::slice::from_raw_parts_mut(p.get().add(r0 * n), (r1 - r0) * n) });
        let l = lp.map(|p| unsafe { std::slice::from_raw_parts_mut(p.get().add(r0), r1 - r0) });
        match x {
            Input::Slice(xs) => f(r0, r1, &xs[r0 * n..r1 * n], g, l),
            Input::InGrad => {
                let g = g.expect("in-place needs a gradient");
                let scratch = g.to_vec();
                f(r0, r1, &scratch, Some(g), l)
            }
        }
    })
}

/// `f(r0, r1)` over the fixed blocks of `rows` rows of `n` (the driver's
/// tasks: their bounds depend only on the sizes), in parallel, and the sum
/// of its results combined in block order, so thread-independent.
fn sum_blocks(rows: usize, n: usize, f: impl Fn(usize, usize) -> f64 + Sync) -> f64 {
    let (_, nblocks) = tasks(rows, n);
    let mut partial = vec![0f64; nblocks];
    let pp = Ptr(partial.as_mut_ptr());
    run_tasks(rows, n, |b, r0, r1| {
        let s = f(r0, r1);
        // SAFETY: block b alone writes entry b.
        unsafe { *pp.get().add(b) = s };
    });
    partial.iter().fold(0.0, |a, &b| a + b)
}

/// A class index that is neither in `0..n` nor the ignore index.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BadIndex {
    pub pos: usize,
    pub value: i64,
}

/// Validates class indices and returns the mean normaliser, as
/// [`index_weight_sum`] does, over the driver's fixed tasks of targets in
/// parallel (serially for a small input): the first bad index is the one in
/// the lowest task, and the tasks' sums are added in task order, so the
/// result is the same for any thread count. A serial pass here had been 7 %
/// of the wall time of 262144x10 float32 cross-entropy + gradient at 2
/// threads (`perf`: 3.5 % of both threads' samples, on the calling thread
/// while the other waited).
pub fn index_weight_sum_tasks<T: Float>(
    t: &[i64],
    n: usize,
    weight: Option<&[T]>,
    ignore_index: i64,
) -> Result<f64, BadIndex> {
    reduce_tasks(
        t.len(),
        |a, b| {
            index_weight_sum(&t[a..b], n, weight, ignore_index).map_err(|e| BadIndex {
                pos: a + e.pos,
                value: e.value,
            })
        },
        |s, r| Ok(s? + r?),
    )
}

multiversion! {
    /// Validates class indices and returns the mean normaliser: the sum (in
    /// order, f64) of the weights of the non-ignored targets (their count when
    /// unweighted).
    ///
    /// One version per instruction set: the baseline build has no 64-bit
    /// unsigned comparison and checked ~2.4 cycles per index (5 % of
    /// 262144x10 cross-entropy at 1 thread).
    pub fn index_weight_sum<T: Float>(t: &[i64], n: usize, weight: Option<&[T]>, ignore_index: i64) -> Result<f64, BadIndex> {
        // A negative index is a huge u64: one comparison covers both ends.
        // (The loop with an early return and an f64 sum chained through every
        // element took ~4 cycles per row.) One pass: each chunk is checked
        // and counted together (branch-free, vectorised), and weighed while
        // it is in L1 (a check pass and then a count pass read the targets
        // from memory twice).
        const CHUNK: usize = 4096;
        let ii = ignore_index;
        let bad = |v: i64| v != ii && v as u64 >= n as u64;
        let (mut count, mut w) = (0usize, 0f64);
        for (k, c) in t.chunks(CHUNK).enumerate() {
            let (mut any, mut kept) = (false, 0usize);
            for &v in c {
                any |= bad(v);
                kept += usize::from(v != ii);
            }
            if any {
                let i = c.iter().position(|&v| bad(v)).unwrap_or(0);
                let pos = k * CHUNK + i;
                return Err(BadIndex { pos, value: t[pos] });
            }
            count += kept;
            if let Some(ws) = weight {
                // In order, as the serial sum before.
                for &v in c {
                    if v != ii {
                        w += ws[v as usize].to_f64();
                    }
                }
            }
        }
        // The count is exact in f64: the same value as summing ones.
        Ok(if weight.is_some() { w } else { count as f64 })
    }
}

/// `check` (one of [`first_nan`], [`first_not_prob`], [`first_negative`])
/// over the driver's fixed tasks of `x` in parallel (serially for a small
/// input), the position in the lowest task that has one: the first overall,
/// at any thread count. Serial, the checks of BCE's probabilities and
/// targets had taken 13 % of the samples of a 4096x1000 float32 BCE +
/// gradient at 2 threads, on the calling thread while the other waited.
pub fn first_in_tasks<T: Sync>(
    x: &[T],
    check: impl Fn(&[T]) -> Option<usize> + Sync + Send,
) -> Option<usize> {
    reduce_tasks(x.len(), |a, b| check(&x[a..b]).map(|i| a + i), Option::or)
}

/// Position of the first element of `x` for which `bad` holds: checked a
/// chunk at a time without branches (vectorised), the position searched for
/// only in a chunk that has one (a plain `position` loop, with its exit per
/// element, ran at about a cycle per element, a serial pass before the
/// kernel).
#[inline(always)]
fn first_where<T: Copy>(x: &[T], bad: impl Fn(T) -> bool) -> Option<usize> {
    const CHUNK: usize = 4096;
    for (k, c) in x.chunks(CHUNK).enumerate() {
        if c.iter().fold(false, |a, &v| a | bad(v)) {
            return c.iter().position(|&v| bad(v)).map(|i| k * CHUNK + i);
        }
    }
    None
}

multiversion! {
    /// Position of the first NaN, if any.
    pub fn first_nan<T: Float>(x: &[T]) -> Option<usize> {
        first_where(x, |v| v.is_nan_())
    }
}

multiversion! {
    /// Position of the first element outside [0, 1] (NaN included).
    pub fn first_not_prob<T: Float>(x: &[T]) -> Option<usize> {
        first_where(x, |v| !(v >= T::ZERO && v <= T::ONE))
    }
}

multiversion! {
    /// Position of the first negative (or NaN) element.
    pub fn first_negative<T: Float>(x: &[T]) -> Option<usize> {
        first_where(x, |v| v < T::ZERO || v.is_nan_())
    }
}

// ------------------------------------------------------------ cross-entropy

/// Options shared by the cross-entropy kernels.
#[derive(Clone, Copy, Debug)]
pub struct CeParams<'a, T> {
    /// Classes per row.
    pub n: usize,
    /// Per-class weights (length `n`).
    pub weight: Option<&'a [T]>,
    /// Sum of `weight` (or `n`), in f64.
    pub weight_sum: f64,
    pub ignore_index: i64,
    pub smoothing: f64,
    /// Gradient scale: 1 / normaliser for "mean", else 1.
    pub scale: f64,
}

impl<T: Float> CeParams<'_, T> {
    pub fn new(
        n: usize,
        weight: Option<&[T]>,
        ignore_index: i64,
        smoothing: f64,
    ) -> CeParams<'_, T> {
        let weight_sum = weight.map_or(n as f64, |w| dot_row(w, w, |a, _| a.to_f64()));
        CeParams {
            n,
            weight,
            weight_sum,
            ignore_index,
            smoothing,
            scale: 1.0,
        }
    }
}

/// `c * v` that is 0 when `c` is 0 (no NaN from `0 * inf`).
#[inline(always)]
fn times(c: f64, v: f64) -> f64 {
    if c == 0.0 {
        0.0
    } else {
        c * v
    }
}

/// Last pass of a cross-entropy row: with `G`, `g` holds `c * p_j` on entry
/// (`p` the row's softmax, from [`store_row`] and [`scale_row`]: one exp per
/// element for the whole row) and gets `g_j - scale * q_j` (`q_j = w_j *
/// (alpha * y_j + beta)`); with `S`, returns `sum_j q_j * (ms - x_j)`
/// (0-weight terms skipped).
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn ce_write<T: Float, const W: bool, const Y: bool, const G: bool, const S: bool>(
    x: &[T],
    w: &[T],
    y: &[T],
    g: &mut [T],
    ms: T,
    scale: f64,
    alpha: f64,
    beta: f64,
) -> f64 {
    let n = x.len();
    let msf = ms.to_f64();
    let mut acc = [0f64; L];
    let full = n / L * L;
    let zero = [T::ZERO; L];
    let mut gdummy = [T::ZERO; L];
    let mut j = 0;
    while j < full {
        let xs: &[T; L] = x[j..j + L].try_into().unwrap();
        let ws: &[T; L] = if W {
            w[j..j + L].try_into().unwrap()
        } else {
            &zero
        };
        let ys: &[T; L] = if Y {
            y[j..j + L].try_into().unwrap()
        } else {
            &zero
        };
        if G {
            let gs: &mut [T; L] = (&mut g[j..j + L]).try_into().unwrap();
            ce_lanes::<T, W, Y, G, S>(xs, ws, ys, gs, &mut acc, msf, scale, alpha, beta);
        } else {
            ce_lanes::<T, W, Y, G, S>(xs, ws, ys, &mut gdummy, &mut acc, msf, scale, alpha, beta);
        }
        crate::simd::lane_barrier();
        j += L;
    }
    if full < n {
        let r = n - full;
        // Padding: x = max and weight 0 contribute nothing to the sum.
        let mut xs = [ms; L];
        let mut ws = [T::ZERO; L];
        let mut ys = [T::ZERO; L];
        xs[..r].copy_from_slice(&x[full..]);
        if W {
            ws[..r].copy_from_slice(&w[full..]);
        }
        if Y {
            ys[..r].copy_from_slice(&y[full..]);
        }
        let mut gs = [T::ZERO; L];
        if G {
            gs[..r].copy_from_slice(&g[full..]);
        }
        let mut a2 = [0f64; L];
        ce_lanes::<T, W, Y, G, S>(&xs, &ws, &ys, &mut gs, &mut a2, msf, scale, alpha, beta);
        for i in 0..r {
            acc[i] += a2[i];
        }
        if G {
            g[full..].copy_from_slice(&gs[..r]);
        }
    }
    hsum(acc)
}

/// One vector of [`ce_write`].
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn ce_lanes<T: Float, const W: bool, const Y: bool, const G: bool, const S: bool>(
    xs: &[T; L],
    ws: &[T; L],
    ys: &[T; L],
    gs: &mut [T; L],
    acc: &mut [f64; L],
    msf: f64,
    scale: f64,
    alpha: f64,
    beta: f64,
) {
    let mut q = [0f64; L];
    for i in 0..L {
        let wi = if W { ws[i].to_f64() } else { 1.0 };
        let yi = if Y {
            alpha * ys[i].to_f64() + beta
        } else {
            beta
        };
        q[i] = wi * yi;
    }
    if G {
        if !W && !Y {
            // q is the constant beta: stay in T (one more rounding, < 1 ulp).
            let kt = T::from_f64(scale * beta);
            for v in gs.iter_mut() {
                *v = *v - kt;
            }
        } else {
            for i in 0..L {
                gs[i] = T::from_f64(gs[i].to_f64() - scale * q[i]);
            }
        }
    }
    if S {
        for i in 0..L {
            let d = msf - xs[i].to_f64();
            acc[i] += if q[i] == 0.0 { 0.0 } else { q[i] * d };
        }
    }
}

/// Dispatches [`ce_write`] on which of weight / probabilities / gradient /
/// loss sum are needed.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn ce_write_any<T: Float>(
    x: &[T],
    w: Option<&[T]>,
    y: Option<&[T]>,
    g: Option<&mut [T]>,
    sum: bool,
    ms: T,
    scale: f64,
    alpha: f64,
    beta: f64,
) -> f64 {
    let (wv, yv): (&[T], &[T]) = (w.unwrap_or(&[]), y.unwrap_or(&[]));
    macro_rules! go {
        ($g:expr, $G:literal) => {
            match (w.is_some(), y.is_some(), sum) {
                (false, false, false) => {
                    ce_write::<T, false, false, $G, false>(x, wv, yv, $g, ms, scale, alpha, beta)
                }
                (false, false, true) => {
                    ce_write::<T, false, false, $G, true>(x, wv, yv, $g, ms, scale, alpha, beta)
                }
                (false, true, false) => {
                    ce_write::<T, false, true, $G, false>(x, wv, yv, $g, ms, scale, alpha, beta)
                }
                (false, true, true) => {
                    ce_write::<T, false, true, $G, true>(x, wv, yv, $g, ms, scale, alpha, beta)
                }
                (true, false, false) => {
                    ce_write::<T, true, false, $G, false>(x, wv, yv, $g, ms, scale, alpha, beta)
                }
                (true, false, true) => {
                    ce_write::<T, true, false, $G, true>(x, wv, yv, $g, ms, scale, alpha, beta)
                }
                (true, true, false) => {
                    ce_write::<T, true, true, $G, false>(x, wv, yv, $g, ms, scale, alpha, beta)
                }
                (true, true, true) => {
                    ce_write::<T, true, true, $G, true>(x, wv, yv, $g, ms, scale, alpha, beta)
                }
            }
        };
    }
    match g {
        Some(g) => go!(g, true),
        None => go!(&mut [], false),
    }
}

/// The row's shift and sum `(ms, sum exp(x - ms))` (f64), and with a
/// gradient row `g`, `g = c * softmax(x)` ([`store_row`], [`scale_row`]: the
/// exps computed once, for both, where [`ce_write`] used to take them again).
#[inline(always)]
fn softmax_times<T: Float>(x: &[T], g: Option<&mut [T]>, shifts: &mut [T], c: f64) -> (T, f64) {
    match g {
        Some(g) => {
            let (ms, sb) = store_row(x, g, shifts);
            scale_row(x, g, shifts, ms, sb, c);
            (ms, sb * T::EXP_UNBIAS)
        }
        None => max_sum_row(x),
    }
}

/// Sum (f64) of a row: groups of four vectors summed in T, then widened (a
/// few ulp for terms of one sign).
#[inline(always)]
fn sum_row<T: Float>(y: &[T]) -> f64 {
    let mut acc = [0f64; L];
    let mut quads = y.chunks_exact(4 * L);
    for c in &mut quads {
        for i in 0..L {
            acc[i] += ((c[i] + c[L + i]) + (c[2 * L + i] + c[3 * L + i])).to_f64();
        }
        lane_barrier();
    }
    let mut rest = 0f64;
    for &v in quads.remainder() {
        rest += v.to_f64();
    }
    hsum(acc) + rest
}

/// One row of cross-entropy with class index `ti` and no label smoothing:
/// returns the row loss (times `wt`), and with `g` stores the gradient
/// `(softmax - onehot) * wt * scale` (softmax's one-exp path: `store_row`,
/// then `scale_row`).
///
/// The loss is `log(sum / e_t)` for `e_t = exp(x_t - max)`. While the target
/// holds under half of the sum, `max - x_t + log(sum)` is at least `ln 2` and
/// a few-ulp sum is enough (the row pass sums in T before widening). Above
/// half, the non-target terms `o` are summed on their own (from the stored
/// exps, or from x without a gradient) and the loss is `log1p(o / e_t)`,
/// the target's gradient `-o / sum`: no cancellation when p_t -> 1.
#[inline(always)]
fn ce_index_row_plain<T: Float>(
    xr: &[T],
    ti: usize,
    wt: f64,
    scale: f64,
    g: Option<&mut [T]>,
    shifts: &mut [T],
) -> f64 {
    // x_t is read after the row pass, from L1: read first, at a random place
    // in a row not yet fetched, it was a cache miss that stalled the pass
    // (6.5 % of the samples at 4096x1000).
    let Some(g) = g else {
        // Every term is added in f64 here (max_sum_row). A dominant target
        // is the row max, so its term is exactly 1 and `s - 1` keeps all but
        // the sum's rounding (~1e-15 s): enough for a f32 loss while o >=
        // 2^-20 s, for f64 while o >= 2^-6 s. Below, the other terms are
        // summed again from x, skipping x_t.
        let (ms, s) = max_sum_row(xr);
        let xt = xr[ti];
        let keep = if T::MANTISSA_DIGITS < 53 {
            1.0 / 1_048_576.0
        } else {
            1.0 / 64.0
        };
        let loss = if xt == ms && 1.0 >= 0.5 * s {
            let o = s - 1.0;
            let o = if o >= s * keep {
                o
            } else {
                let term = |a: T, _: T| {
                    let (h, l) = T::diff(a, ms);
                    T::exp_corr(h, l).to_f64()
                };
                dot_row(&xr[..ti], &xr[..ti], term) + dot_row(&xr[ti + 1..], &xr[ti + 1..], term)
            };
            log1p(o)
        } else {
            (ms.to_f64() - xt.to_f64()) + s.ln()
        };
        return times(wt, loss);
    };
    let (ms, sb) = store_row(xr, g, shifts);
    let xt = xr[ti];
    let (h, l) = T::diff(xt, ms);
    let et = T::exp_biased_nonpos(h, l).to_f64();
    let c = wt * scale;
    if et >= 0.5 * sb && c != 0.0 {
        // Dominant target: scale the row with the target zeroed, summing
        // the result: that sum q c is the other classes' probability times
        // c, so the loss is -log1p(-q) and the target's gradient -q c (the
        // gradient row sums to 0).
        g[ti] = T::ZERO;
        scale_row(xr, g, shifts, ms, sb, c);
        let qc = sum_row(g);
        g[ti] = T::from_f64(0.0 - qc);
        return times(wt, -log1p(-(qc / c)));
    }
    scale_row(xr, g, shifts, ms, sb, c);
    // p_t < 1/2: p_t - 1 does not cancel, nor does log(sum) - (x_t - max).
    let pt = et / sb;
    g[ti] = T::from_f64((pt - 1.0) * c);
    times(wt, (ms.to_f64() - xt.to_f64()) + (sb * T::EXP_UNBIAS).ln())
}

multiversion! {
    /// cross-entropy-index-rows: per row, with label smoothing: the softmax
    /// times c stored as softmax stores it (one exp per element; without a
    /// gradient, the online max + rescaled sum), then one sweep that
    /// subtracts smoothing * w (the target's one-hot subtracted in f64
    /// afterwards) and reduce-adds the smoothing term; without, see
    /// `ce_index_row_plain`. Loss within a few ulp; gradient within 1.5e-7 of
    /// the row's largest entry (float32).
    pub fn ce_index_rows<T: Float>(
        x: &[T],
        t: &[i64],
        p: &CeParams<'_, T>,
        grad: Option<&mut [T]>,
        per_row: Option<&mut [T]>,
    ) -> f64 {
        let n = p.n;
        let eps = p.smoothing;
        let k = eps / n as f64;
        let mut grad = grad;
        let mut per_row = per_row;
        let mut total = 0f64;
        let mut shifts = vec![T::ZERO; if grad.is_some() { n.div_ceil(BLOCK) } else { 0 }];
        let (rows, xp) = (x.len() / n, x.as_ptr());
        for (r, (xr, &tg)) in x.chunks_exact(n).zip(t).enumerate() {
            prefetch_next(n, r, rows, &[xp]);
            let gr = grad.as_deref_mut().map(|g| &mut g[r * n..(r + 1) * n]);
            let loss = if tg == p.ignore_index {
                if let Some(g) = gr {
                    g.fill(T::ZERO);
                }
                0.0
            } else {
                let ti = tg as usize;
                let wt = p.weight.map_or(1.0, |w| w[ti].to_f64());
                if eps == 0.0 {
                    ce_index_row_plain(xr, ti, wt, p.scale, gr, &mut shifts)
                } else {
                    let a = (1.0 - eps) * wt + k * p.weight_sum;
                    let mut gr = gr;
                    let (ms, sum) = softmax_times(xr, gr.as_deref_mut(), &mut shifts, a * p.scale);
                    let ls = row_ln_sum(xr, gr.as_deref(), ms, sum, a * p.scale).0;
                    let xt = xr[ti];
                    let nll = (ms.to_f64() - xt.to_f64()) + ls;
                    let smooth = ce_write_any(xr, p.weight, None, gr.as_deref_mut(), true, ms, p.scale, 0.0, k);
                    if let Some(g) = gr {
                        // The target entry p_t * a - (1 - eps) w_t - k w_t cancels
                        // when p_t -> 1: recompute it in f64 from x_t - max - log(sum).
                        let (h, l) = T::diff(xt, ms);
                        // x_t - max = -inf (x_t = -inf, or the difference
                        // overflows): p_t = 0, not exp(NaN) from TwoSum's
                        // error term.
                        let l = if h == T::NEG_INF { T::ZERO } else { l };
                        let d = (h.to_f64() - ls) + l.to_f64();
                        g[ti] = T::from_f64(smooth_target_grad(d, a, k, p.weight_sum, wt, p.scale));
                    }
                    times((1.0 - eps) * wt, nll) + smooth + times(k * p.weight_sum, ls)
                }
            };
            if let Some(lr) = per_row.as_deref_mut() {
                lr[r] = T::from_f64(loss);
            }
            total += loss;
        }
        total
    }
}

/// The per-lane results of [`ce_index_cols`] for `L` rows: the losses, and
/// the gradient's factors (`c`: the stored biased exps' multiplier, 0 for an
/// ignored or padding row; `gt`: the value at the target; `tg`: the target
/// class as T, -1 for a row without one).
pub struct CeLanes<T> {
    pub loss: [f64; L],
    pub c: [T; L],
    pub gt: [T; L],
    pub tg: [T; L],
}

/// [`ce_index_cols`]'s per-lane terms from each lane's target logit `xt`,
/// shift `ms`, sum `others` of the non-target biased exps, class `tf` and
/// weight `wt` (shared with the register tiles, `simd::tile`, so both give the
/// same bits).
#[inline(always)]
pub fn ce_index_lanes<T: Float>(
    xt: &[T; L],
    ms: &[T; L],
    others: &[f64; L],
    tf: &[T; L],
    wt: &[f64; L],
    scale: f64,
) -> CeLanes<T> {
    // The per-lane terms in T (a quarter of the f64 vectors on AVX2): o / e_t
    // and 1 / (o + e_t) to 1/2 ulp, log1p to 3.
    let unbias = T::EXP_UNBIAS;
    let mut et = [T::ZERO; L];
    let mut tot = [0f64; L];
    let mut ot = [T::ZERO; L];
    let mut lt = [T::ZERO; L];
    let mut inv = [T::ZERO; L];
    for j in 0..L {
        let (h, l) = T::diff(xt[j], ms[j]);
        et[j] = T::exp_biased_nonpos(h, l);
        tot[j] = others[j] + et[j].to_f64();
        ot[j] = T::from_f64(others[j]);
        lt[j] = log1p(ot[j] / et[j]);
        // tot >= the max's term 2^EXP_BIAS (or NaN): no overflow in T.
        inv[j] = T::ONE / T::from_f64(tot[j]);
    }
    // e_t below T's normal range (p_t < ~1e-57 in f32), or o / e_t
    // overflowing: the loss is large and max - x_t + log(sum) exact
    // enough. NaN lands here too and stays NaN.
    let mut ok = [true; L];
    let mut lb = [0f64; L];
    for j in 0..L {
        ok[j] = et[j] >= T::MIN_POSITIVE && lt[j] < T::INF;
        lb[j] = lt[j].to_f64();
    }
    if ok.iter().any(|&b| !b) {
        for j in 0..L {
            // Both computed and one selected, vectorised (a branch per
            // lane had LLVM call libm's log on every lane).
            let big = (ms[j].to_f64() - xt[j].to_f64()) + ln(tot[j] * unbias);
            lb[j] = if ok[j] { lb[j] } else { big };
        }
    }
    let mut loss = [0f64; L];
    for j in 0..L {
        loss[j] = times(wt[j], lb[j]);
    }
    // softmax * w_t * scale = stored * (w_t * scale / sum) * 2^-EXP_BIAS,
    // the bias removed by its own exact multiply so that a tiny
    // w_t * scale (a small class weight) is not rounded as a subnormal.
    let mut c = [T::ZERO; L];
    for j in 0..L {
        c[j] = if wt[j] == 0.0 {
            T::ZERO
        } else {
            T::from_f64(wt[j] * scale * inv[j].to_f64() / unbias)
        };
    }
    // (p_t - 1) w_t = -o / (o + e_t) w_t, stored at the lane's target
    // (rows of weight 0 have none: class -1).
    let mut gt = [T::ZERO; L];
    let mut tg = [T::ZERO; L];
    for j in 0..L {
        gt[j] = T::from_f64((0.0 - (ot[j] * inv[j]).to_f64() * wt[j]) * scale);
        tg[j] = if wt[j] != 0.0 { tf[j] } else { -T::ONE };
    }
    CeLanes { loss, c, gt, tg }
}

multiversion! {
    /// cross-entropy-index-cols (no label smoothing): `L` interleaved rows
    /// (class `k` of row `j` at `k * L + j`, lanes across rows): reduce-max,
    /// then one pass that stores `e = exp(x - max)` (biased; into the
    /// gradient when one is wanted) and reduce-adds the non-target terms
    /// `o`. With the target's `e_t`, the loss is `log1p(o / e_t)` (or
    /// `max - x_t + log(o + e_t)` when `e_t` underflows), the gradient
    /// `e * w_t * scale / (o + e_t)` and, at the target, `-o / (o + e_t) *
    /// w_t * scale`: nothing cancels when p_t -> 1, so neither needs f64
    /// terms. `tf[j]` is row j's target class (as T) and `wt[j]` its weight
    /// (0 for an ignored or padding row, which gets a zero gradient and
    /// loss); returns the lane losses. The targets are picked out and
    /// written by selects in the passes over the classes, not by loads and
    /// stores per lane.
    pub fn ce_index_cols<T: Float>(
        xg: &[T],
        tf: &[T; L],
        wt: &[f64; L],
        scale: f64,
        g: Option<&mut [T]>,
    ) -> [f64; L] {
        let ms = max_cols(xg);
        let mut g = g;
        let xt = pick_cols(xg, tf);
        let others = match g.as_deref_mut() {
            Some(g) => store_others::<T, true>(xg, g, &ms, tf),
            None => store_others::<T, false>(xg, &mut [], &ms, tf),
        };
        let lanes = ce_index_lanes(&xt, &ms, &others, tf, wt, scale);
        if let Some(g) = g {
            let CeLanes { c, gt, tg, .. } = lanes;
            let ub = T::from_f64(T::EXP_UNBIAS);
            // c == 0 marks an ignored or padding row (a NaN there must not
            // survive as 0 * NaN); a select on c itself, same type as the
            // data, stays vectorised where a test of `wt` was branched per lane.
            let mut kf = T::ZERO;
            for o in g.chunks_exact_mut(L) {
                for i in 0..L {
                    let v = o[i] * c[i] * ub;
                    let v = if c[i] == T::ZERO { T::ZERO } else { v };
                    let t = gt[i];
                    o[i] = if kf == tg[i] { t } else { v };
                }
                kf += T::ONE;
                lane_barrier();
            }
        }
        lanes.loss
    }
}

/// Pass of [`ce_index_cols`] over `L` interleaved rows: `e = exp(x - ms)`
/// (biased) stored into `y` when `STORE`, and the lane sums (f64) of the
/// terms whose class is not the lane's target `tf` (as T): pairs of vectors
/// summed in T, then widened (each sum is of like terms: no cancellation, a
/// few ulp).
#[inline(always)]
fn store_others<T: Float, const STORE: bool>(
    x: &[T],
    y: &mut [T],
    ms: &[T; L],
    tf: &[T; L],
) -> [f64; L] {
    let mut acc = [0f64; L];
    let n = x.len() / L;
    for (p, a) in x.chunks_exact(2 * L).enumerate() {
        let mut e = [T::ZERO; 2 * L];
        let mut o = [T::ZERO; 2 * L];
        for v in 0..2 {
            let kf = T::from_f64((2 * p + v) as f64);
            for i in 0..L {
                let (h, l) = T::diff(a[v * L + i], ms[i]);
                e[v * L + i] = T::exp_biased_nonpos(h, l);
                o[v * L + i] = if kf == tf[i] { T::ZERO } else { e[v * L + i] };
            }
        }
        if STORE {
            y[2 * p * L..2 * (p + 1) * L].copy_from_slice(&e);
        }
        for i in 0..L {
            acc[i] += (o[i] + o[L + i]).to_f64();
        }
        lane_barrier();
    }
    if n % 2 == 1 {
        let k = n - 1;
        let a = &x[k * L..(k + 1) * L];
        let kf = T::from_f64(k as f64);
        let mut e = [T::ZERO; L];
        for i in 0..L {
            let (h, l) = T::diff(a[i], ms[i]);
            e[i] = T::exp_biased_nonpos(h, l);
            acc[i] += if kf == tf[i] { 0.0 } else { e[i].to_f64() };
        }
        if STORE {
            y[k * L..(k + 1) * L].copy_from_slice(&e);
        }
    }
    acc
}

/// Each lane's entry at its class `tf` (as T) from `L` interleaved rows (-0.0
/// for a lane whose class is not among them).
///
/// Summed, not selected: `xt + (v or -0.0)` is exact (`v + -0.0 = v` for
/// every v, signed zeros and NaN payloads included, and one class matches),
/// and it keeps `xt` in registers. The select `xt = if .. { v } else { xt }`
/// became, under AVX2, a masked store to the stack per vector (microcoded on
/// AMD: 22 % of the AVX2 short-row cross-entropy). The values are read
/// before the select (a select of two addresses, then a load, was what
/// `if .. { a[i] }` compiled to).
#[inline(always)]
fn pick_cols<T: Float>(x: &[T], tf: &[T; L]) -> [T; L] {
    let mut xt = [-T::ZERO; L];
    let mut kf = T::ZERO;
    for a in x.chunks_exact(L) {
        for i in 0..L {
            let v = a[i];
            xt[i] += if kf == tf[i] { v } else { -T::ZERO };
        }
        kf += T::ONE;
        lane_barrier();
    }
    xt
}

/// A row's target class and weight as the short-row kernels take them:
/// `(0, 0)` for an ignored row.
#[inline(always)]
fn class_weight<T: Float>(tg: i64, p: &CeParams<'_, T>) -> (f64, f64) {
    if tg == p.ignore_index {
        (0.0, 0.0)
    } else {
        (
            tg as f64,
            p.weight.map_or(1.0, |wv| wv[tg as usize].to_f64()),
        )
    }
}

/// [`ce_index_lanes`] with its arguments but the scale: `(xt, ms, others, tf, wt)`.
type CeMath<'a, T> = dyn FnMut(&[T; L], &[T; L], &[f64; L], &[T; L], &[f64; L]) -> CeLanes<T> + 'a;

/// [`ce_index_short`] through the AVX-512 or AVX2 register tiles (`simd::tile`) for
/// float32 rows of 1 to 16 classes at `level`: the same operations as the
/// column kernel (the tiles' vector terms are [`ce_index_lanes`]'s, and
/// `math`, which is it, takes the tiles they leave), so the same bits,
/// without the scratch blocks; the rows as `groups` lays them out. None,
/// touching nothing, when the tiles do not apply.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn ce_index_tiles<T: Float>(
    x: &[T],
    t: &[i64],
    p: &CeParams<'_, T>,
    grad: Option<&mut [T]>,
    per_row: Option<&mut [T]>,
    level: Level,
    math: &mut CeMath<'_, T>,
    groups: Groups<T>,
) -> Option<f64> {
    let (n, rows) = (p.n, t.len());
    if T::MANTISSA_DIGITS != 24
        || !(1..=L).contains(&n)
        || !matches!(level, Level::Avx512 | Level::Avx2)
    {
        return None;
    }
    // SAFETY (all three casts): T is f32 (checked above).
    let cast = |v: &[T]| unsafe { std::slice::from_raw_parts(v.as_ptr().cast::<f32>(), v.len()) };
    let mut args = tile::CeArgs {
        t,
        ignore_index: p.ignore_index,
        weight: p.weight.map(cast),
        scale: p.scale,
        per_row: per_row.map(|v| unsafe {
            std::slice::from_raw_parts_mut(v.as_mut_ptr().cast::<f32>(), v.len())
        }),
    };
    let mut slow = |xt: &[f32; L], ms: &[f32; L], o: &[f64; L], tf: &[f32; L], wt: &[f64; L]| {
        // SAFETY: T is f32.
        let (xt, ms, tf) = unsafe {
            (
                &*(xt as *const [f32; L]).cast(),
                &*(ms as *const [f32; L]).cast(),
                &*(tf as *const [f32; L]).cast(),
            )
        };
        let r = math(xt, ms, o, tf, wt);
        // SAFETY: T is f32.
        unsafe {
            (
                r.loss,
                std::mem::transmute_copy(&r.c),
                std::mem::transmute_copy(&r.gt),
                std::mem::transmute_copy(&r.tg),
            )
        }
    };
    let (src, dst, inner) = match groups {
        Groups::Rows => (
            x.as_ptr().cast::<f32>(),
            grad.map_or(std::ptr::null_mut(), |g| g.as_mut_ptr().cast::<f32>()),
            (0, 0),
        ),
        Groups::Inner {
            inner, base, x, g, ..
        } => (x.cast::<f32>(), g.cast::<f32>(), (inner, base)),
    };
    let mut total = 0f64;
    // SAFETY: T is f32; for `Rows`, x holds rows * n elements and the
    // gradient rows * n (a separate buffer: in place runs on a copy of x);
    // for `Inner`, `row_loss_inner` gives the whole arrays (x may be the
    // gradient, which the tiles allow) and this block's rows are written by
    // no other thread; the targets were checked (in 0..n or ignore_index)
    // and the weights hold n, and the tiles run only at a level the CPU has
    // (the caller's `level()`).
    let done = unsafe {
        tile::ce_index(
            level, src, rows, n, inner, &mut args, dst, &mut slow, &mut total,
        )
    };
    done.then_some(total)
}

multiversion! {
    /// Cross-entropy with class indices and no label smoothing over rows shorter
    /// than [`short_row_exp`]: `L` rows at a time through [`ce_index_cols`] (gather,
    /// compute, scatter); each group's row losses are summed pairwise, the
    /// groups in row order.
    fn ce_index_short<T: Float>(
        x: &[T],
        t: &[i64],
        p: &CeParams<'_, T>,
        grad: Option<&mut [T]>,
        per_row: Option<&mut [T]>,
        level: Level,
        groups: Groups<T>,
    ) -> f64 {
        let n = p.n;
        let rows = t.len();
        let mut grad = grad;
        let mut per_row = per_row;
        // Defined here, not in `ce_index_tiles`, to be compiled with this
        // version's target features.
        let mut math = |xt: &[T; L], ms: &[T; L], o: &[f64; L], tl: &[T; L], wl: &[f64; L]| {
            ce_index_lanes(xt, ms, o, tl, wl, p.scale)
        };
        if let Some(total) = ce_index_tiles(x, t, p, grad.as_deref_mut(), per_row.as_deref_mut(), level, &mut math, groups) {
            return total;
        }
        let want_grad = grad.is_some() || groups.has_grad();
        let mut xg = vec![T::ZERO; n * L];
        let mut gg = vec![T::ZERO; n * L];
        let mut total = 0f64;
        for r0 in (0..rows).step_by(L) {
            let w = (rows - r0).min(L);
            let mut tf = [T::ZERO; L];
            let mut wt = [0f64; L];
            match (w, p.weight) {
                // A full group without weights: lane-wise selects.
                (L, None) => {
                    let tt = &t[r0..r0 + L];
                    for j in 0..L {
                        let keep = tt[j] != p.ignore_index;
                        tf[j] = if keep { T::from_f64(tt[j] as f64) } else { T::ZERO };
                        wt[j] = if keep { 1.0 } else { 0.0 };
                    }
                }
                _ => {
                    for j in 0..w {
                        let (k, wk) = class_weight(t[r0 + j], p);
                        (tf[j], wt[j]) = (T::from_f64(k), wk);
                    }
                }
            }
            // Padding lanes repeat the last row; their weight is 0.
            groups.to_lanes(x, n, r0, w, &mut xg);
            let loss = ce_index_cols(
                &xg,
                &tf,
                &wt,
                p.scale,
                want_grad.then_some(&mut gg[..]),
            );
            total += group_out(&gg, &loss, n, r0, w, grad.as_deref_mut(), per_row.as_deref_mut(), groups);
        }
        total
    }
}

/// Cross-entropy with label smoothing (class indices, `PROB` false: `y`
/// empty) or with class probabilities `y` (`PROB`) over rows shorter
/// than [`short_row_exp`], `L` rows at a time in lanes (class k of row j
/// at `k * L + j`, as [`ce_index_cols`]): the lane maxima, the biased
/// exps and their f64 lane sums (`softmax_cols`' first pass), then per
/// element the smoothing term `q (max - x)` and the gradient `(a p - q)
/// scale` in f64 (`q = w (1 - eps) y + w eps / n`, `a` the row's sum of
/// `q`); with class indices the target's entry is recomputed from `x_t -
/// max - log(sum)` in f64, as [`ce_index_rows`] does. The row kernels
/// took every row on its own, through paths for rows of thousands
/// (262144x10 with label smoothing: 8x plain cross-entropy's time). Each
/// group's losses summed pairwise, the groups in row order.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn ce_smooth_short<T: Float, const PROB: bool>(
    x: &[T],
    t: &[i64],
    y: &[T],
    p: &CeParams<'_, T>,
    grad: Option<&mut [T]>,
    per_row: Option<&mut [T]>,
    groups: Groups<T>,
) -> f64 {
    let n = p.n;
    let rows = groups.rows(x.len() / n);
    let (eps, scale) = (p.smoothing, p.scale);
    let k = eps / n as f64;
    let wc: Vec<f64> = (0..n)
        .map(|c| p.weight.map_or(1.0, |w| w[c].to_f64()))
        .collect();
    let mut xg = vec![T::ZERO; n * L];
    let mut eg = vec![T::ZERO; n * L];
    let mut yg = vec![T::ZERO; if PROB { n * L } else { 0 }];
    let mut grad = grad;
    let mut per_row = per_row;
    let mut total = 0f64;
    for r0 in (0..rows).step_by(L) {
        let w = (rows - r0).min(L);
        // Padding lanes repeat the last row and do not count (`live` 0).
        groups.to_lanes(x, n, r0, w, &mut xg);
        let mut live = [0f64; L];
        let mut tc = [0usize; L];
        let mut wt = [0f64; L];
        if PROB {
            groups.targets().to_lanes(y, n, r0, w, &mut yg);
            live[..w].fill(1.0);
        } else {
            for j in 0..w {
                let tg = t[r0 + j];
                if tg != p.ignore_index {
                    (live[j], tc[j], wt[j]) = (1.0, tg as usize, wc[tg as usize]);
                }
            }
        }
        let ms = max_cols(&xg);
        // The biased exps and their lane sums, each term widened before it
        // is added: `a p - q` cancels where a target is close to its p, and
        // softmax's pairs summed in T (`store_exp_cols`) lost a small term
        // next to the max's 1 (two classes, p = 1 - 2.5e-9: the gradient
        // 8x its size, of the wrong sign).
        let mut sb = [0f64; L];
        for (xc, ec) in xg.chunks_exact(L).zip(eg.chunks_exact_mut(L)) {
            for j in 0..L {
                let (h, l) = T::diff(xc[j], ms[j]);
                ec[j] = T::exp_biased_nonpos(h, l);
                sb[j] += ec[j].to_f64();
            }
            lane_barrier();
        }
        // The rows' sums of q in their own pass: summed in the exps' pass
        // they made it 1.6 x slower (262144x10 probability targets, A/B).
        let mut a = [0f64; L];
        if PROB {
            for (c, &w) in wc.iter().enumerate() {
                for j in 0..L {
                    a[j] += smooth_q::<T, PROB>(live[j], w, eps, k, yg[c * L + j]);
                }
            }
        } else {
            for j in 0..L {
                a[j] = live[j] * ((1.0 - eps) * wt[j] + k * p.weight_sum);
            }
        }
        // Where a lane's sum is below `near_max` (`ln_sum`): the exps of its
        // entries below the max, the count at it and, for probabilities,
        // `a` without the entries at the max (`a_o`), in a pass of their
        // own over the exps.
        let (mut below, mut at, mut a_o) = ([0f64; L], [0f64; L], [0f64; L]);
        let cut = near_max::<T>(n);
        if sb.iter().any(|&v| v * T::EXP_UNBIAS < cut) {
            for (xc, ec) in xg.chunks_exact(L).zip(eg.chunks_exact(L)) {
                let (xc, ec): (&[T; L], &[T; L]) = (xc.try_into().unwrap(), ec.try_into().unwrap());
                for j in 0..L {
                    let top = xc[j] == ms[j];
                    below[j] += if top { 0.0 } else { ec[j].to_f64() };
                    at[j] += if top { 1.0 } else { 0.0 };
                }
                lane_barrier();
            }
            if PROB {
                for ((xc, yc), &w) in xg.chunks_exact(L).zip(yg.chunks_exact(L)).zip(&wc) {
                    let (xc, yc): (&[T; L], &[T; L]) =
                        (xc.try_into().unwrap(), yc.try_into().unwrap());
                    for j in 0..L {
                        let q = smooth_q::<T, PROB>(live[j], w, eps, k, yc[j]);
                        a_o[j] += if xc[j] == ms[j] { 0.0 } else { q };
                    }
                    lane_barrier();
                }
            }
        }
        // `ln_sum` for every lane at once: `log1p(o)` there, and with one
        // entry at the max, that entry's gradient by `max_entry_grad` (its
        // `o / (1 + o)` in `top`, NaN elsewhere).
        let mut ls = [0f64; L];
        let mut inv = [0f64; L];
        let mut top = [0f64; L];
        for j in 0..L {
            let sum = sb[j] * T::EXP_UNBIAS;
            let o = below[j] * T::EXP_UNBIAS + (at[j] - 1.0);
            let near = (1.0..cut).contains(&sum) && ms[j].to_f64().is_finite();
            ls[j] = if near { log1p(o) } else { ln(sum) };
            top[j] = if near && at[j] == 1.0 {
                o / (1.0 + o)
            } else {
                f64::NAN
            };
            inv[j] = 1.0 / sb[j];
        }
        // Lane arrays from chunks (no bounds check per element, which kept
        // these loops scalar).
        let mut smooth = [0f64; L];
        for (c, (xc, ec)) in xg.chunks_exact(L).zip(eg.chunks_exact_mut(L)).enumerate() {
            let xc: &[T; L] = xc.try_into().unwrap();
            let ec: &mut [T; L] = ec.try_into().unwrap();
            let yc: [T; L] = if PROB {
                yg[c * L..(c + 1) * L].try_into().unwrap()
            } else {
                [T::ZERO; L]
            };
            for j in 0..L {
                let q = smooth_q::<T, PROB>(live[j], wc[c], eps, k, yc[j]);
                let d = ms[j].to_f64() - xc[j].to_f64();
                smooth[j] += if q == 0.0 { 0.0 } else { q * d };
                // In place of the exp: eg becomes the gradient block.
                // (a p - q) scale: exactly 0 for a row of one class (p = 1).
                let v = a[j] * (ec[j].to_f64() * inv[j]) - q;
                let v = if PROB && xc[j] == ms[j] && !top[j].is_nan() {
                    a_o[j] - a[j] * top[j]
                } else {
                    v
                };
                let v = T::from_f64(v * scale);
                ec[j] = if live[j] == 0.0 { T::ZERO } else { v };
            }
            lane_barrier();
        }
        let mut loss = [0f64; L];
        if PROB {
            for j in 0..L {
                loss[j] = if live[j] == 0.0 {
                    0.0
                } else {
                    smooth[j] + times(a[j], ls[j])
                };
            }
        } else {
            // Every lane at once (an ignored or padding lane's class is 0 and
            // its results dropped), then the targets' entries stored.
            let xt: [T; L] = std::array::from_fn(|j| xg[tc[j] * L + j]);
            let mut gt = [0f64; L];
            for j in 0..L {
                let m = ms[j];
                let nll = (m.to_f64() - xt[j].to_f64()) + ls[j];
                let lj =
                    times((1.0 - eps) * wt[j], nll) + smooth[j] + times(k * p.weight_sum, ls[j]);
                loss[j] = if live[j] == 0.0 { 0.0 } else { lj };
                // The target's entry p_t a - (1 - eps) w_t - k w_t cancels
                // when p_t -> 1: from x_t - max - log(sum) in f64, and p_t
                // = 0 where x_t - max = -inf (not exp(NaN)).
                let (h, l) = T::diff(xt[j], m);
                let l = if h == T::NEG_INF { T::ZERO } else { l };
                let d = (h.to_f64() - ls[j]) + l.to_f64();
                gt[j] = smooth_target_grad(d, a[j], k, p.weight_sum, wt[j], scale);
            }
            for j in 0..w {
                if live[j] != 0.0 {
                    eg[tc[j] * L + j] = T::from_f64(gt[j]);
                }
            }
        }
        total += group_out(
            &eg,
            &loss,
            n,
            r0,
            w,
            grad.as_deref_mut(),
            per_row.as_deref_mut(),
            groups,
        );
    }
    total
}

/// A group of `w` short rows from row `r0` out of the lanes: its gradient
/// block `gg` (when there is a gradient) back to rows, its lane losses to
/// `per_row`; returns their sum (padding lanes hold 0; a fixed pairwise
/// order).
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn group_out<T: Float>(
    gg: &[T],
    loss: &[f64; L],
    n: usize,
    r0: usize,
    w: usize,
    grad: Option<&mut [T]>,
    per_row: Option<&mut [T]>,
    groups: Groups<T>,
) -> f64 {
    if let Some(g) = grad {
        lanes_to_rows(gg, n, w, &mut g[r0 * n..(r0 + w) * n]);
    }
    if let Groups::Inner { inner, base, g, .. } = groups {
        if !g.is_null() {
            // SAFETY: as `Groups::Inner` promises.
            unsafe { lanes_to_inner(gg, n, inner, base + r0, w, g) };
        }
    }
    if let Some(lr) = per_row {
        for j in 0..w {
            lr[r0 + j] = T::from_f64(loss[j]);
        }
    }
    hsum(*loss)
}

/// Where the short-row kernels take each group of `L` rows from and put
/// its gradient.
#[derive(Clone, Copy)]
enum Groups<T> {
    /// The block's own slices: rows of `n` contiguous elements.
    Rows,
    /// `rows` rows, from row `base` on, of arrays whose class axis is not
    /// the last (cross-entropy over axis 1 of N x C x H x W logits): row `r
    /// = o * inner + c` has class `k` at `o * n * inner + k * inner + c` of
    /// `x` (the logits), `y` (probability targets, or null) and `g` (the
    /// gradient, or null), which the kernels take instead of the slices.
    /// Built by [`row_loss_inner`] only. In place, `x` is `g`: a group's
    /// rows are read in full before their gradient is written, and no
    /// other group touches them.
    Inner {
        inner: usize,
        base: usize,
        rows: usize,
        x: *const T,
        y: *const T,
        g: *mut T,
    },
}

impl<T: Float> Groups<T> {
    #[inline(always)]
    fn has_grad(self) -> bool {
        matches!(self, Groups::Inner { g, .. } if !g.is_null())
    }

    /// The number of rows: `slice_rows` (the slices') for `Rows`.
    #[inline(always)]
    fn rows(self, slice_rows: usize) -> usize {
        match self {
            Groups::Rows => slice_rows,
            Groups::Inner { rows, .. } => rows,
        }
    }

    /// The same groups of the probability targets (`y` as `x`).
    #[inline(always)]
    fn targets(self) -> Self {
        match self {
            Groups::Inner {
                inner,
                base,
                rows,
                y,
                ..
            } => Groups::Inner {
                inner,
                base,
                rows,
                x: y,
                y,
                g: std::ptr::null_mut(),
            },
            r => r,
        }
    }

    /// Rows `r0..r0 + w` (`1 <= w <= L`) of `s` (`Rows`) or of `x`
    /// (`Inner`) into lanes, as [`rows_to_lanes`] lays them out.
    #[inline(always)]
    fn to_lanes(self, s: &[T], n: usize, r0: usize, w: usize, dst: &mut [T]) {
        match self {
            Groups::Rows => rows_to_lanes(&s[r0 * n..(r0 + w) * n], w, n, dst),
            Groups::Inner {
                inner,
                base,
                rows,
                x,
                ..
            } => {
                assert!(r0 + w <= rows && (1..=L).contains(&w) && dst.len() >= n * L);
                // SAFETY: `row_loss_inner` made `x` readable for the rows
                // `base..base + rows`, and the group's are among them.
                unsafe { inner_to_lanes(x, n, inner, base + r0, w, dst) }
            }
        }
    }
}

/// `dst[k * L + j]` = class `k` of row `r0 + min(j, w - 1)` of `x`, whose
/// row `r = o * inner + c` has class `k` at `o * n * inner + k * inner +
/// c` (the layout of [`rows_to_lanes`]' output): each class's lanes are
/// copied from runs of adjacent elements, 16 at a time where a run of the
/// group's rows is that long.
///
/// # Safety
/// `x` readable at the classes of rows `r0..r0 + w`; `1 <= w <= L`, `dst`
/// at least `n * L` long.
#[inline(always)]
unsafe fn inner_to_lanes<T: Float>(
    x: *const T,
    n: usize,
    inner: usize,
    r0: usize,
    w: usize,
    dst: &mut [T],
) {
    let d = dst.as_mut_ptr();
    for_runs(n, inner, r0, w, |j, run, at| {
        let src = x.add(at);
        if run == L {
            for k in 0..n {
                let ahead = src.wrapping_add(k * inner + super::INNER_PREFETCH);
                crate::simd::prefetch(ahead as *const u8, 64);
                std::ptr::copy_nonoverlapping(src.add(k * inner), d.add(k * L), L);
            }
        } else {
            for k in 0..n {
                for i in 0..run {
                    *d.add(k * L + j + i) = *src.add(k * inner + i);
                }
            }
        }
    });
    // Padding lanes repeat the last row, as in `rows_to_lanes`.
    if w < L {
        for k in 0..n {
            let v = *d.add(k * L + w - 1);
            for i in w..L {
                *d.add(k * L + i) = v;
            }
        }
    }
}

/// The inverse of [`inner_to_lanes`] for the first `w` lanes: `src[k * L +
/// j]` to class `k` of row `r0 + j` of `g`.
///
/// # Safety
/// `g` writable at the classes of rows `r0..r0 + w`; `1 <= w <= L`, `src`
/// at least `n * L` long.
#[inline(always)]
unsafe fn lanes_to_inner<T: Float>(
    src: &[T],
    n: usize,
    inner: usize,
    r0: usize,
    w: usize,
    g: *mut T,
) {
    assert!((1..=L).contains(&w) && src.len() >= n * L);
    let s = src.as_ptr();
    for_runs(n, inner, r0, w, |j, run, at| {
        let dst = g.add(at);
        if run == L {
            for k in 0..n {
                std::ptr::copy_nonoverlapping(s.add(k * L), dst.add(k * inner), L);
            }
        } else {
            for k in 0..n {
                for i in 0..run {
                    *dst.add(k * inner + i) = *s.add(k * L + j + i);
                }
            }
        }
    });
}

/// The runs of adjacent positions among rows `r0..r0 + w` of an array whose
/// class axis (`n` classes) has `inner` elements after it: `f(j, run, at)`
/// for rows `r0 + j..r0 + j + run`, in one block, whose class `k` is at
/// offset `at + k * inner`.
#[inline(always)]
fn for_runs(n: usize, inner: usize, r0: usize, w: usize, mut f: impl FnMut(usize, usize, usize)) {
    let mut j = 0;
    while j < w {
        let (o, c) = ((r0 + j) / inner, (r0 + j) % inner);
        let run = (inner - c).min(w - j);
        f(j, run, o * n * inner + c);
        j += run;
    }
}

/// `ln(sum)` of a row with shift `ms` (its max) and `sum = sum(exp(x -
/// ms))`, and, where exactly one entry is at the max, the sum of the other
/// entries' exps `o`. Below a sum of 2 (the max's exp, 1, above half of
/// it) the log is `log1p(o)` with `o` summed on its own by `others(ms)`,
/// which returns the exps of the entries below the max (computed as the
/// row's pass computes them) and the count of entries at it: in `ln(1 +
/// o)` the 1 had taken `o`'s low bits (a row whose max is 30 above the
/// rest lost 4e-3 of its loss in f64, all of it 40 above). The loss of a
/// probability target (or of label smoothing) is a sum of terms >= 0 with
/// `a ln(sum)` among them, so it keeps the relative accuracy of each.
/// Only below a sum of `cut` (at most 2): the row kernels' float32 sums
/// add their exps in pairs in f32 (`store_row`), whose rounding next to the
/// max's 1 is 2^-24, so they take 2; the lanes' sums widen each exp
/// ([`near_max`]).
#[inline(always)]
fn ln_sum<T: Float>(
    cut: f64,
    ms: T,
    sum: f64,
    others: impl FnOnce(T) -> (f64, f64),
) -> (f64, Option<f64>) {
    if !(1.0..cut).contains(&sum) || !ms.to_f64().is_finite() {
        return (sum.ln(), None);
    }
    let (below, at) = others(ms);
    let o = below + (at - 1.0);
    (log1p(o), (at == 1.0).then_some(o))
}

/// [`ln_sum`] for a row of the row kernels (below a sum of 2), `others`
/// from its gradient row `g = c softmax(x)` when there is one (no exps
/// taken again), else by an exp pass.
#[inline(always)]
fn row_ln_sum<T: Float>(x: &[T], g: Option<&[T]>, ms: T, sum: f64, c: f64) -> (f64, Option<f64>) {
    ln_sum(2.0, ms, sum, |m| match g {
        Some(g) if c != 0.0 && c.is_finite() => others_from_probs(x, g, m, sum / c),
        _ => others_row(x, m),
    })
}

/// The sums below which [`ln_sum`] takes `o` on its own for the lanes of
/// rows of `n` (each exp widened, then summed in f64): `1 + o` with `n
/// 2^-53 / o` (the sum's rounding, relative to `o`) above 2.5e-8 for
/// float32 results (2e-6 allowed) and 1e-15 for float64 ones (1e-13), and
/// below 2. For float32 only the rows whose max holds all but about `n`
/// 1e-9 of the sum pay for it.
#[inline(always)]
fn near_max<T: Float>(n: usize) -> f64 {
    let tol = if T::MANTISSA_DIGITS < 53 {
        2.5e-8
    } else {
        1e-15
    };
    (1.0 + n as f64 * (f64::EPSILON / 2.0) / tol).min(2.0)
}

/// [`ln_sum`]'s `others` from a row's `g = c softmax(x)` (`f = sum / c`):
/// `f` times the sum of `g` over the entries below `ms`, and the count at
/// it.
#[inline(always)]
fn others_from_probs<T: Float>(x: &[T], g: &[T], ms: T, f: f64) -> (f64, f64) {
    let (mut acc, mut at) = ([0f64; L], [0f64; L]);
    let mut add = |j: usize, v: T, gv: T| {
        acc[j] += if v == ms { 0.0 } else { gv.to_f64() };
        at[j] += if v == ms { 1.0 } else { 0.0 };
    };
    let (mut xc, mut gc) = (x.chunks_exact(L), g.chunks_exact(L));
    for (c, d) in (&mut xc).zip(&mut gc) {
        for j in 0..L {
            add(j, c[j], d[j]);
        }
        lane_barrier();
    }
    for (j, (&v, &gv)) in xc.remainder().iter().zip(gc.remainder()).enumerate() {
        add(j, v, gv);
    }
    (hsum(acc) * f, hsum(at))
}

/// [`ln_sum`]'s `others` over a contiguous row: the sum of `exp(x - ms)`
/// over the entries below `ms` (f64, unbiased) and the count of those at
/// it, in lanes.
#[inline(always)]
fn others_row<T: Float>(x: &[T], ms: T) -> (f64, f64) {
    let (mut acc, mut at) = ([0f64; L], [0f64; L]);
    let mut add = |j: usize, v: T| {
        let (h, l) = T::diff(v, ms);
        let l = if h == T::NEG_INF { T::ZERO } else { l };
        let e = T::exp_biased_nonpos(h, l).to_f64();
        acc[j] += if v == ms { 0.0 } else { e };
        at[j] += if v == ms { 1.0 } else { 0.0 };
    };
    let mut chunks = x.chunks_exact(L);
    for c in &mut chunks {
        let c: &[T; L] = c.try_into().unwrap();
        for (j, &v) in c.iter().enumerate() {
            add(j, v);
        }
        lane_barrier();
    }
    for (j, &v) in chunks.remainder().iter().enumerate() {
        add(j, v);
    }
    (hsum(acc) * T::EXP_UNBIAS, hsum(at))
}

/// The gradient at a probability row's only entry at its max (from
/// [`ln_sum`]), `(a p - q) scale` with `p = 1 / (1 + o)`, as `(a_o - a o /
/// (1 + o)) scale` where `a_o = a - q`, the row's `q` of the other entries,
/// is summed without `q`: `a p` and `q` nearly cancel when the target's
/// mass is at the max (a one-hot target: `-o`, where `a p - q` gave 0 or
/// a few ulp of 1).
#[inline(always)]
fn max_entry_grad(a_o: f64, a: f64, o: f64, scale: f64) -> f64 {
    (a_o - a * (o / (1.0 + o))) * scale
}

/// The gradient at the target of a label-smoothed row, `(p_t a - (1 - eps)
/// w_t - k w_t) scale` with `a = (1 - eps) w_t + k sum(w)`, from `d = x_t -
/// max - log(sum) <= 0` (`p_t = exp(d)`) as `(expm1(d) a + k (sum(w) - w_t))
/// scale`: the same value, but what is left of `a` once `(1 - eps) w_t + k
/// w_t` is taken away is `k (sum(w) - w_t)` exactly, and `p_t - 1` is
/// `expm1(d)` without cancellation (a row of one class gets 0, not -7e-18).
#[inline(always)]
fn smooth_target_grad(d: f64, a: f64, k: f64, weight_sum: f64, wt: f64, scale: f64) -> f64 {
    (expm1_nonpos(d) * a + k * (weight_sum - wt)) * scale
}

/// [`ce_smooth_short`]'s `q` of one element: `live w ((1 - eps) y + k)`
/// (probabilities) or `live w k` (class indices, `y` unused; the target's
/// own term is the caller's). A function marked `#[inline(always)]`, not a
/// closure, which LLVM may leave out of line: a call per element.
#[inline(always)]
fn smooth_q<T: Float, const PROB: bool>(live: f64, w: f64, eps: f64, k: f64, y: T) -> f64 {
    if PROB {
        live * w * ((1.0 - eps) * y.to_f64() + k)
    } else {
        live * w * k
    }
}

multiversion! {
    /// [`ce_smooth_short`] with class probabilities (`Targets::Prob`, the
    /// block's rows), or with class indices (`Targets::Index`, the block's)
    /// and label smoothing.
    fn ce_smooth_short_v<T: Float>(
        x: &[T],
        targets: Targets<'_, T>,
        p: &CeParams<'_, T>,
        grad: Option<&mut [T]>,
        per_row: Option<&mut [T]>,
        groups: Groups<T>,
    ) -> f64 {
        match targets {
            Targets::Prob(y) => ce_smooth_short::<T, true>(x, &[], y, p, grad, per_row, groups),
            Targets::Index(t) => ce_smooth_short::<T, false>(x, t, &[], p, grad, per_row, groups),
            Targets::Nll(_) => unreachable!("nll_loss has no smoothing"),
        }
    }
}

multiversion! {
    /// cross-entropy-prob-rows: per row, reduce-dot sum(w * y'), the softmax
    /// times sum(w y') stored as softmax stores it (without a gradient, the
    /// online max + rescaled sum), then one sweep subtracting w y' and
    /// reduce-adding w y' (max - x). y' = (1 - eps) y + eps / n.
    pub fn ce_prob_rows<T: Float>(
        x: &[T],
        y: &[T],
        p: &CeParams<'_, T>,
        grad: Option<&mut [T]>,
        per_row: Option<&mut [T]>,
    ) -> f64 {
        let n = p.n;
        let eps = p.smoothing;
        let k = eps / n as f64;
        let mut grad = grad;
        let mut per_row = per_row;
        let mut total = 0f64;
        let mut shifts = vec![T::ZERO; if grad.is_some() { n.div_ceil(BLOCK) } else { 0 }];
        let (rows, xp, yp) = (x.len() / n, x.as_ptr(), y.as_ptr());
        for (r, (xr, yr)) in x.chunks_exact(n).zip(y.chunks_exact(n)).enumerate() {
            prefetch_next(n, r, rows, &[xp, yp]);
            let mut gr = grad.as_deref_mut().map(|g| &mut g[r * n..(r + 1) * n]);
            // sum(w y) over entries `lo..hi` of the row.
            let wy = |lo: usize, hi: usize| match p.weight {
                Some(w) => dot_row(&yr[lo..hi], &w[lo..hi], |a, b| a.to_f64() * b.to_f64()),
                None => dot_row(&yr[lo..hi], &yr[lo..hi], |a, _| a.to_f64()),
            };
            let a = (1.0 - eps) * wy(0, n) + k * p.weight_sum;
            let (ms, sum) = softmax_times(xr, gr.as_deref_mut(), &mut shifts, a * p.scale);
            let (ls, top) = row_ln_sum(xr, gr.as_deref(), ms, sum, a * p.scale);
            let top = top.map(|o| (xr.iter().position(|&v| v == ms).unwrap_or(0), o));
            let smooth = ce_write_any(xr, p.weight, Some(yr), gr.as_deref_mut(), true, ms, p.scale, 1.0 - eps, k);
            if let (Some(g), Some((j, o))) = (gr, top) {
                // The other entries' q: (1 - eps) sum(w y) + k sum(w) without j's.
                let wj = p.weight.map_or(1.0, |w| w[j].to_f64());
                let a_o = (1.0 - eps) * (wy(0, j) + wy(j + 1, n)) + k * (p.weight_sum - wj);
                g[j] = T::from_f64(max_entry_grad(a_o, a, o, p.scale));
            }
            let loss = smooth + times(a, ls);
            if let Some(lr) = per_row.as_deref_mut() {
                lr[r] = T::from_f64(loss);
            }
            total += loss;
        }
        total
    }
}

multiversion! {
    /// target-ranks: per row of `n` scores, the rank of the target's score as
    /// `accuracy`'s argmax ranks them (`top_k_accuracy`): the classes scoring
    /// higher, NaN above every number, and those tied with it (NaN ties
    /// NaN) at a lower index. Before the target, a class counts when `v >=
    /// s_t` or `v` is NaN; from it on, when `v > s_t`, or `v` is NaN and
    /// `s_t` is not. Every target must be in `0..n`.
    pub fn target_ranks<T: Float>(s: &[T], t: &[i64], n: usize, ranks: &mut [i64]) {
        for ((row, &tg), rk) in s.chunks_exact(n).zip(t).zip(ranks.iter_mut()) {
            let ti = tg as usize;
            let ts = row[ti];
            let t_nan = ts.is_nan_();
            let mut c = 0u64;
            for &v in &row[..ti] {
                c += u64::from(v >= ts || v.is_nan_());
            }
            for &v in &row[ti..] {
                c += u64::from(v > ts || (v.is_nan_() && !t_nan));
            }
            *rk = c as i64;
        }
    }
}

/// nll-index-rows: loss -w_t * x_t per row; the gradient row is zero except
/// -w_t * scale at the target.
pub fn nll_index_rows<T: Float>(
    x: &[T],
    t: &[i64],
    p: &CeParams<'_, T>,
    grad: Option<&mut [T]>,
    per_row: Option<&mut [T]>,
) -> f64 {
    let n = p.n;
    let mut grad = grad;
    let mut per_row = per_row;
    let mut total = 0f64;
    for (r, (xr, &tg)) in x.chunks_exact(n).zip(t).enumerate() {
        let gr = grad.as_deref_mut().map(|g| &mut g[r * n..(r + 1) * n]);
        let mut loss = 0.0;
        if let Some(g) = gr {
            g.fill(T::ZERO);
            if tg != p.ignore_index {
                let wt = p.weight.map_or(1.0, |w| w[tg as usize].to_f64());
                g[tg as usize] = T::from_f64(-wt * p.scale);
            }
        }
        if tg != p.ignore_index {
            let wt = p.weight.map_or(1.0, |w| w[tg as usize].to_f64());
            loss = times(wt, -xr[tg as usize].to_f64());
        }
        if let Some(lr) = per_row.as_deref_mut() {
            lr[r] = T::from_f64(loss);
        }
        total += loss;
    }
    total
}

/// [`nll_index_rows`] over rows `r0..r0 + t.len()` of an array whose class
/// axis has `inner` elements after it (row `r = o * inner + c`, class `k` at
/// `o * n * inner + k * inner + c`, as in [`row_loss_inner`]): the same
/// losses and sum, in the same order. The gradient's rows are zeroed run by
/// run of adjacent elements, after every loss is read (`x` may be `g`).
///
/// # Safety
/// `x` readable and `g` (unless null) writable at the classes of the rows;
/// no other thread touches those of `g`; the targets checked (in `0..n` or
/// the ignore index).
unsafe fn nll_index_inner<T: Float>(
    x: *const T,
    inner: usize,
    r0: usize,
    t: &[i64],
    p: &CeParams<'_, T>,
    g: *mut T,
    per_row: Option<&mut [T]>,
) -> f64 {
    let n = p.n;
    let at = |r: usize, k: usize| (r / inner) * n * inner + k * inner + r % inner;
    let weight = |tg: i64| p.weight.map_or(1.0, |w| w[tg as usize].to_f64());
    let mut per_row = per_row;
    let mut total = 0f64;
    for (j, &tg) in t.iter().enumerate() {
        let mut loss = 0.0;
        if tg != p.ignore_index {
            loss = times(weight(tg), -(*x.add(at(r0 + j, tg as usize))).to_f64());
        }
        if let Some(lr) = per_row.as_deref_mut() {
            lr[j] = T::from_f64(loss);
        }
        total += loss;
    }
    if g.is_null() {
        return total;
    }
    for_runs(n, inner, r0, t.len(), |_, run, first| {
        for k in 0..n {
            std::slice::from_raw_parts_mut(g.add(first + k * inner), run).fill(T::ZERO);
        }
    });
    for (j, &tg) in t.iter().enumerate() {
        if tg != p.ignore_index {
            *g.add(at(r0 + j, tg as usize)) = T::from_f64(-weight(tg) * p.scale);
        }
    }
    total
}

// ------------------------------------------------------------ pointwise

/// An elementwise loss `l(x, y)` and its derivative in `x`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Pointwise {
    Mse,
    L1,
    Huber {
        delta: f64,
    },
    SmoothL1 {
        beta: f64,
    },
    /// `x` is a probability; logs clamped at -100 as in PyTorch.
    Bce,
    /// `x` is a logit; `pos_weight` (if given) weighs the positive term.
    BceLogits,
    KlDiv {
        log_target: bool,
    },
    Focal {
        alpha: f64,
        gamma: f64,
    },
}

#[inline(always)]
fn sign(d: f64) -> f64 {
    if d > 0.0 {
        1.0
    } else if d < 0.0 {
        -1.0
    } else {
        d * 0.0 // 0, or NaN for NaN
    }
}

/// log(1 + exp(-|x|)), sigmoid(x) and sigmoid(-x) from one exp, stable for
/// any x: neither probability is formed as 1 minus the other, which keeps
/// the small one's relative precision (at x = 30, 1 - sigmoid(x) in f64 is
/// 1e-3 off).
#[inline(always)]
fn softplus_neg_abs_sigmoids(x: f64) -> (f64, f64, f64) {
    let e = <f64 as Float>::exp(-x.abs());
    let r = 1.0 / (1.0 + e);
    let er = e * r;
    let (p, q) = if x >= 0.0 { (r, er) } else { (er, r) };
    (log1p_unit(e), p, q)
}

/// BCE with logits and its derivative in f64 (`SP32`: with the softplus
/// term `log1p(exp(-|x|))` taken in f32, for float32 input). For targets in
/// [0, 1] the loss is a sum of terms >= 0, so nothing cancels and a float32
/// loss needs no more than float32's precision in each term. Float32 soft
/// targets, 4096x1000, 2 threads, alternating A/B: 0.875 of the time;
/// per-element loss error 2.1e-7 relative at most (was 0.5 ulp).
///
/// The gradient `sigmoid(x) - y` (with pos_weight `lw p - pw y`, `lw = 1 +
/// (pw - 1) y`) takes the small one of `p = sigmoid(x)` and `q =
/// sigmoid(-x)` as it is, never as 1 minus the other: `(1 - y) - lw q` for
/// `x >= 0`, `lw p - pw y` below. A soft `y` near `p` cancels as the true
/// value does (`p - y` is exact where they are within a factor 2, and so
/// is `1 - y` for `y` near 1). Until stop 24 it was `p - y` throughout, whose
/// `1 - sigmoid(30)` for y = 1 was 1e-3 off.
#[inline(always)]
fn bce_logits<const SP32: bool>(x: f64, y: f64, pw: f64) -> (f64, f64) {
    // The SIMD layer's exp / log1p_unit (<= 2 ulp) vectorise; libm's would not.
    let e = <f64 as Float>::exp(-x.abs());
    let sp = if SP32 {
        log1p_unit(e as f32) as f64
    } else {
        log1p_unit(e)
    };
    let r = 1.0 / (1.0 + e);
    let small = e * r;
    // max(x, 0) - y x, and with pos_weight (1 - y) x + (1 + (pw - 1) y)
    // softplus(-x), as (1 - y) max(x, 0) - pw y min(x, 0) + ..: at x = +-inf
    // the limit (0 or +inf), not inf - inf.
    if pw == 1.0 {
        let g = if x >= 0.0 {
            (1.0 - y) - small
        } else {
            small - y
        };
        (times(1.0 - y, x.max(0.0)) - times(y, x.min(0.0)) + sp, g)
    } else {
        let lw = 1.0 + (pw - 1.0) * y;
        let g = if x >= 0.0 {
            (1.0 - y) - lw * small
        } else {
            lw * small - pw * y
        };
        (
            times(1.0 - y, x.max(0.0)) - times(pw * y, x.min(0.0)) + times(lw, sp),
            g,
        )
    }
}

impl Pointwise {
    /// `(loss, dloss/dx)` at one element; `pw` is the pos_weight (BceLogits).
    #[inline(always)]
    pub fn eval(self, x: f64, y: f64, pw: f64) -> (f64, f64) {
        match self {
            Pointwise::Mse => {
                let d = x - y;
                (d * d, 2.0 * d)
            }
            Pointwise::L1 => {
                let d = x - y;
                (d.abs(), sign(d))
            }
            Pointwise::Huber { delta } => {
                let d = x - y;
                if d.abs() < delta {
                    (0.5 * d * d, d)
                } else {
                    (delta * (d.abs() - 0.5 * delta), delta * sign(d))
                }
            }
            Pointwise::SmoothL1 { beta } => {
                let d = x - y;
                if d.abs() < beta {
                    (0.5 * d * d / beta, d / beta)
                } else {
                    (d.abs() - 0.5 * beta, sign(d))
                }
            }
            Pointwise::Bce => {
                // The SIMD layer's ln / log1p vectorise (libm's are calls).
                let lp = ln(x).max(-100.0);
                let lq = log1p(-x).max(-100.0);
                let l = -(times(y, lp) + times(1.0 - y, lq));
                (l, (x - y) / ((1.0 - x) * x).max(1e-12))
            }
            Pointwise::BceLogits => bce_logits::<false>(x, y, pw),
            Pointwise::KlDiv { log_target } => {
                // A zero target contributes 0 whatever the input (0 log 0 is
                // 0, and so is 0 * -inf) except a NaN input, which propagates;
                // a negative target is NaN (its log), as in PyTorch.
                if log_target {
                    let ey = <f64 as Float>::exp(y);
                    let l = times(ey, y - x);
                    (if x.is_nan() { x } else { l }, -ey)
                } else {
                    // ln(y) computed for every lane (a select, so the loop
                    // vectorises).
                    let l = y * (ln(y) - x);
                    let zero = if x.is_nan() { x } else { 0.0 };
                    (if y == 0.0 { zero } else { l }, -y)
                }
            }
            Pointwise::Focal { alpha, gamma } => {
                let (sp, p, q) = softplus_neg_abs_sigmoids(x);
                // BCE with logits as in its own arm: the limit at x = +-inf.
                let ce = times(1.0 - y, x.max(0.0)) - times(y, x.min(0.0)) + sp;
                // u = 1 - p_t = y q + (1 - y) p with q = 1 - p, both terms >= 0
                // for y in [0, 1]: as 1 - (p y + (1 - p)(1 - y)) it was a
                // difference of numbers near 1 where u is small (x = -30,
                // y = 0: loss and gradient 3e-4 off, 12 % at -35).
                let u = (y * q + (1.0 - y) * p).max(0.0);
                // m = u^gamma and m' = gamma u^(gamma - 1): exact products for
                // gamma 0, 1, 2 (2 is the default), else exp(gamma ln u). No
                // libm pow, which is a call per element and kept the loop
                // scalar.
                let mg = <f64 as Float>::exp(gamma * ln(u));
                let (m, mp) = if gamma == 2.0 {
                    (u * u, 2.0 * u)
                } else if gamma == 1.0 {
                    (u, 1.0)
                } else if gamma == 0.0 {
                    (1.0, 0.0)
                } else {
                    (mg, if u > 0.0 { gamma * mg / u } else { 0.0 })
                };
                // du/dx = p q (1 - 2y); d ce/dx = p - y = (1 - y) p - y q,
                // exact in sign and size for 0/1 targets (p - 1 at x = 30
                // was 1e-3 off).
                let du = p * q * (1.0 - 2.0 * y);
                let dce = (1.0 - y) * p - y * q;
                let dm = if u > 0.0 { mp * du } else { 0.0 };
                let at = if alpha >= 0.0 {
                    alpha * y + (1.0 - alpha) * (1.0 - y)
                } else {
                    1.0
                };
                // times(dm, ce): dm is 0 where ce is +inf (|x| = inf).
                (at * ce * m, at * (dce * m + times(dm, ce)))
            }
        }
    }
}

/// A pointwise loss at one element, `(l, dl/dx)` from `(x, y, pos_weight)`
/// in f64: a closure or function, or [`Pw`].
trait ElemLoss {
    fn at(&self, x: f64, y: f64, p: f64) -> (f64, f64);
}

impl<F: Fn(f64, f64, f64) -> (f64, f64)> ElemLoss for F {
    #[inline(always)]
    fn at(&self, x: f64, y: f64, p: f64) -> (f64, f64) {
        self(x, y, p)
    }
}

/// A pointwise loss at one element in the input's type T, `(l, dl/dx)` from
/// `(x, y)`: the sweep's path in T (`fast`), a closure or function, or a
/// type whose method is always inlined ([`BceProbsT`]).
trait FastLoss<T> {
    fn at(&self, x: T, y: T) -> (T, T);
}

impl<T, F: Fn(T, T) -> (T, T)> FastLoss<T> for F {
    #[inline(always)]
    fn at(&self, x: T, y: T) -> (T, T) {
        self(x, y)
    }
}

/// [`bce_probs_t`] as a [`FastLoss`], always inlined: passed as a closure,
/// or as the function itself (whose `Fn` shim was compiled for the baseline
/// target, with a software `fmaf`), it was called per element, 4-8 x slower
/// than the f64 path it replaces.
#[derive(Clone, Copy)]
struct BceProbsT;

impl<T: Float> FastLoss<T> for BceProbsT {
    #[inline(always)]
    fn at(&self, p: T, y: T) -> (T, T) {
        bce_probs_t(p, y)
    }
}

/// [`Pointwise::eval`] as an [`ElemLoss`] that is always inlined. A closure
/// calling it was not, for the losses with a logarithm (binary cross-entropy
/// on probabilities, focal): LLVM left the closure, large with the inlined
/// `ln` / `log1p` / `exp`, out of line, and the sweep called it once per
/// element, in scalar code (`perf annotate`: `vfmadd213sd`, then `ret`),
/// 6-7 x slower.
#[derive(Clone, Copy)]
struct Pw(Pointwise);

impl ElemLoss for Pw {
    #[inline(always)]
    fn at(&self, x: f64, y: f64, p: f64) -> (f64, f64) {
        self.0.eval(x, y, p)
    }
}

/// One block of a pointwise loss: per element `w * l(x, y)`, gradient
/// `w * l'(x, y) * scale`; losses summed in f64 lanes in a fixed order.
/// `f` is inlined into the loop and vectorised there: a function marked
/// `#[inline(always)]`, [`Pw`], or a closure small enough to be inlined.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn pointwise_block<T: Float, F: ElemLoss>(
    f: F,
    x: &[T],
    y: &[T],
    w: Option<&[T]>,
    pw: Option<&[T]>,
    scale: f64,
    grad: Option<&mut [T]>,
    per_elem: Option<&mut [T]>,
) -> f64 {
    let no_fast = None::<(fn(&[T; L]) -> bool, fn(T, T) -> (T, T))>;
    pointwise_sweep(f, no_fast, x, y, w, pw, scale, grad, per_elem)
}

/// [`pointwise_block`] with an optional path in T: a lane array whose
/// targets pass `fast.0` gets each element's `(l, l')` from `fast.1(x, y)`
/// in T instead of `f` in f64 (both per-element closures, so either
/// vectorises; a closure over whole lane arrays did not).
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn pointwise_sweep<T, F, P, FT>(
    f: F,
    fast: Option<(P, FT)>,
    x: &[T],
    y: &[T],
    w: Option<&[T]>,
    pw: Option<&[T]>,
    scale: f64,
    grad: Option<&mut [T]>,
    per_elem: Option<&mut [T]>,
) -> f64
where
    T: Float,
    F: ElemLoss,
    P: Fn(&[T; L]) -> bool,
    FT: FastLoss<T>,
{
    // Weighted or not as a constant: with a choice between the weights and
    // a stack array of ones made per element, LLVM selected between the two
    // pointers and reloaded the ones each time, a store-forwarding stall
    // (0/1-target BCE with logits, 1 thread: a third of its time).
    match w {
        Some(w) => sweep::<true, _, _, _, _>(f, fast, x, y, w, pw, scale, grad, per_elem),
        None => sweep::<false, _, _, _, _>(f, fast, x, y, &[], pw, scale, grad, per_elem),
    }
}

/// [`pointwise_sweep`] with or without weights (`W`; `w` is empty without).
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn sweep<const W: bool, T, F, P, FT>(
    f: F,
    fast: Option<(P, FT)>,
    x: &[T],
    y: &[T],
    w: &[T],
    pw: Option<&[T]>,
    scale: f64,
    grad: Option<&mut [T]>,
    per_elem: Option<&mut [T]>,
) -> f64
where
    T: Float,
    F: ElemLoss,
    P: Fn(&[T; L]) -> bool,
    FT: FastLoss<T>,
{
    let n = x.len();
    let mut acc = [0f64; L];
    let gp = grad.map(|g| g.as_mut_ptr());
    let lp = per_elem.map(|o| o.as_mut_ptr());
    // A missing weight or pos_weight reads as 1.
    let ones = [T::ONE; L];
    let lvl = crate::simd::level();
    // Full lane arrays straight from and to the arrays; the partial last one
    // after the loop, through buffers, so that the loop holds no tail code
    // (its zeroing of the padding lanes' losses was a memset call in the
    // loop). Two call sites of `eval_lanes`: `f` must be one that is always
    // inlined ([`Pw`], or a small closure), or it is called per element.
    let full = n / L * L;
    let mut j = 0;
    while j < full {
        // SAFETY: x, y (and w, pw when present) hold n elements, as do grad
        // and per_elem; j + L <= n.
        unsafe {
            // Inputs prefetched ahead (`elementwise::ahead`). 4096x1024
            // float32, 2 threads, A/B against none (three runs of 8-10
            // alternating rounds, one with the builds' order swapped): mse
            // 0.77-0.82, l1 0.68-0.71, 0/1-target BCE with logits
            // 0.80-0.86, kl_div 0.48-0.90; the f64-bound soft-target BCE
            // 0.94-0.97 and focal 0.92-1.05.
            ahead(x.as_ptr(), j);
            ahead(y.as_ptr(), j);
            if W {
                ahead(w.as_ptr(), j);
            }
            let ws = if W { ld(w.as_ptr().add(j)) } else { ones };
            let ps = pw.map_or(ones, |p| ld(p.as_ptr().add(j)));
            let (xs, ys) = (ld(x.as_ptr().add(j)), ld(y.as_ptr().add(j)));
            let (lv, gv, lt) = eval_lanes(&f, &fast, lvl, scale, xs, ys, ws, ps);
            for i in 0..L {
                acc[i] += lv[i];
            }
            if let Some(g) = gp {
                st(g.add(j), gv);
            }
            if let Some(o) = lp {
                st(o.add(j), lt);
            }
        }
        lane_barrier();
        j += L;
    }
    if j < n {
        let m = n - j;
        let part = |a: &[T]| {
            let mut b = [T::ZERO; L];
            b[..m].copy_from_slice(&a[j..]);
            b
        };
        let ws = if W { part(w) } else { ones };
        let ps = pw.map_or(ones, part);
        let (mut lv, gv, lt) = eval_lanes(&f, &fast, lvl, scale, part(x), part(y), ws, ps);
        // Lanes past the end add nothing.
        lv[m..].fill(0.0);
        for i in 0..L {
            acc[i] += lv[i];
        }
        // SAFETY: grad and per_elem hold n = j + m elements.
        unsafe {
            if let Some(g) = gp {
                std::ptr::copy_nonoverlapping(gv.as_ptr(), g.add(j), m);
            }
            if let Some(o) = lp {
                std::ptr::copy_nonoverlapping(lt.as_ptr(), o.add(j), m);
            }
        }
    }
    // Through black_box: with hsum's pairwise tree in view, LLVM kept the
    // lane sums in the loop as eight xmm pairs (six extracts and eight adds
    // per lane array instead of two zmm adds).
    hsum(std::hint::black_box(acc))
}

/// [`sweep`]'s arithmetic on one lane array: the losses (f64), gradients and
/// per-element losses. A function marked `#[inline(always)]`, not a closure
/// in `sweep`: a closure this large was left out of line and called per
/// element (8x slower when tried).
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn eval_lanes<T, F, P, FT>(
    f: &F,
    fast: &Option<(P, FT)>,
    lvl: Level,
    scale: f64,
    xs: [T; L],
    ys: [T; L],
    ws: [T; L],
    ps: [T; L],
) -> ([f64; L], [T; L], [T; L])
where
    T: Float,
    F: ElemLoss,
    P: Fn(&[T; L]) -> bool,
    FT: FastLoss<T>,
{
    let mut lv = [0f64; L];
    let mut gv = [T::ZERO; L];
    let mut lt = [T::ZERO; L];
    match fast {
        Some((pass, ft)) if pass(&ys) => {
            let (mut lf, mut gf) = ([T::ZERO; L], [T::ZERO; L]);
            for i in 0..L {
                (lf[i], gf[i]) = ft.at(xs[i], ys[i]);
            }
            // Computed at full width before the f64 steps, not at
            // half width as LLVM had it (float32 256x1000 with 0/1
            // targets, 1 thread, ns per 16 elements: 21.9 -> 18.7
            // through `before_widening`, 16.9 with `widen_at`).
            // SAFETY: `lvl` is `level()`'s.
            let (lf, gf) = unsafe { (widen_at(lf, lvl), widen_at(gf, lvl)) };
            for i in 0..L {
                let wi = ws[i].to_f64();
                lv[i] = times(wi, lf[i]);
                gv[i] = T::from_f64(wi * gf[i] * scale);
                lt[i] = T::from_f64(lv[i]);
            }
        }
        _ => {
            for i in 0..L {
                let wi = ws[i].to_f64();
                let (l, g) = f.at(xs[i].to_f64(), ys[i].to_f64(), ps[i].to_f64());
                lv[i] = times(wi, l);
                gv[i] = T::from_f64(wi * g * scale);
                lt[i] = T::from_f64(lv[i]);
            }
        }
    }
    (lv, gv, lt)
}

/// `binary_cross_entropy` on a probability at one element, in T (float32
/// input): `-(y max(ln p, -100) + (1 - y) max(log1p(-p), -100))` and the
/// gradient `(p - y) / max((1 - p) p, 1e-12)`. The loss is a sum of terms >=
/// 0 and the gradient's `p - y` is of two exact inputs, so nothing cancels:
/// within 2e-7 relative per element (measured), where the f64 path
/// (`Pointwise::eval`) took 2.7 times as long.
#[inline(always)]
fn bce_probs_t<T: Float>(p: T, y: T) -> (T, T) {
    let floor = T::from_f64(-100.0);
    let lp = max(ln(p), floor);
    let lq = max(log1p(T::ZERO - p), floor);
    let l = T::ZERO - (y * lp + (T::ONE - y) * lq);
    let d = max((T::ONE - p) * p, T::from_f64(1e-12));
    (l, (p - y) / d)
}

/// `binary_cross_entropy_with_logits` at one element with a target of 0 or
/// 1, in T: with `z = x` (y = 0) or `-x` (y = 1) the loss is
/// `max(z, 0) + log1p(exp(-|x|))`, two terms >= 0, and the gradient
/// `sigmoid(z)` or `-sigmoid(z)`: nothing cancels, a few ulp. (Soft targets
/// stay in f64: `sigmoid(x) - y` cancels.)
#[inline(always)]
fn bce_logits_hard<T: Float>(x: T, y: T) -> (T, T) {
    let one = y == T::ONE;
    let z = if one { T::ZERO - x } else { x };
    let e = exp_of_nonpos(T::ZERO - abs(x));
    let r = T::ONE / (T::ONE + e);
    let sp = log1p_unit(e);
    let sig = if z >= T::ZERO { r } else { e * r };
    (max(z, T::ZERO) + sp, if one { T::ZERO - sig } else { sig })
}

/// Whether every target of a lane array is 0 or 1.
#[inline(always)]
fn all_hard<T: Float>(ys: &[T; L]) -> bool {
    let mut hard = true;
    for &v in ys {
        hard &= v == T::ZERO || v == T::ONE;
    }
    hard
}

multiversion! {
    /// pointwise-loss: one sweep storing the gradient (and per-element loss)
    /// and reduce-adding the loss in f64. Arithmetic in f64; each loss is its
    /// own instance of the sweep (the loss is a constant inside it).
    #[allow(clippy::too_many_arguments)]
    pub fn pointwise_rows<T: Float>(
        op: Pointwise,
        x: &[T],
        y: &[T],
        w: Option<&[T]>,
        pw: Option<&[T]>,
        scale: f64,
        grad: Option<&mut [T]>,
        per_elem: Option<&mut [T]>,
    ) -> f64 {
        match op {
            Pointwise::Mse => pointwise_block(|x: f64, y: f64, _: f64| { let d = x - y; (d * d, 2.0 * d) }, x, y, w, pw, scale, grad, per_elem),
            Pointwise::L1 => pointwise_block(|x: f64, y: f64, _: f64| { let d = x - y; (d.abs(), sign(d)) }, x, y, w, pw, scale, grad, per_elem),
            Pointwise::BceLogits if pw.is_none() && T::MANTISSA_DIGITS < 53 => pointwise_sweep(|x: f64, y: f64, _: f64| bce_logits::<true>(x, y, 1.0), Some((|ys: &[T; L]| all_hard(ys), |x: T, y: T| bce_logits_hard(x, y))), x, y, w, None, scale, grad, per_elem),
            Pointwise::BceLogits if pw.is_none() => pointwise_sweep(|x: f64, y: f64, _: f64| bce_logits::<false>(x, y, 1.0), Some((|ys: &[T; L]| all_hard(ys), |x: T, y: T| bce_logits_hard(x, y))), x, y, w, None, scale, grad, per_elem),
            Pointwise::BceLogits if T::MANTISSA_DIGITS < 53 => pointwise_block(bce_logits::<true>, x, y, w, pw, scale, grad, per_elem),
            Pointwise::BceLogits => pointwise_block(bce_logits::<false>, x, y, w, pw, scale, grad, per_elem),
            // Float32 in float32 (bce_probs_t), float64 in f64.
            Pointwise::Bce if T::MANTISSA_DIGITS < 53 => pointwise_sweep(Pw(Pointwise::Bce), Some((|_: &[T; L]| true, BceProbsT)), x, y, w, pw, scale, grad, per_elem),
            Pointwise::Bce => pointwise_block(Pw(Pointwise::Bce), x, y, w, pw, scale, grad, per_elem),
            Pointwise::Huber { delta } => pointwise_block(Pw(Pointwise::Huber { delta }), x, y, w, pw, scale, grad, per_elem),
            Pointwise::SmoothL1 { beta } => pointwise_block(Pw(Pointwise::SmoothL1 { beta }), x, y, w, pw, scale, grad, per_elem),
            // log_target as a constant: as a run-time value both its exp and
            // the other branch's ln were computed for every element (1.4 x
            // slower than the previous commit's sweep, which unswitched it).
            Pointwise::KlDiv { log_target: true } => pointwise_block(Pw(Pointwise::KlDiv { log_target: true }), x, y, w, pw, scale, grad, per_elem),
            Pointwise::KlDiv { log_target: false } => pointwise_block(Pw(Pointwise::KlDiv { log_target: false }), x, y, w, pw, scale, grad, per_elem),
            // The default gamma on its own: the general power's exp and ln fold away.
            Pointwise::Focal { alpha, gamma: 2.0 } => pointwise_block(Pw(Pointwise::Focal { alpha, gamma: 2.0 }), x, y, w, pw, scale, grad, per_elem),
            Pointwise::Focal { alpha, gamma } => pointwise_block(Pw(Pointwise::Focal { alpha, gamma }), x, y, w, pw, scale, grad, per_elem),
        }
    }
}

/// A pointwise loss over whole arrays (blocked, deterministic): returns the
/// f64 sum of `w * l`. `x` may live in `grad` (in-place).
#[allow(clippy::too_many_arguments)]
pub fn pointwise<T: Float>(
    op: Pointwise,
    x: Input<'_, T>,
    y: &[T],
    w: Option<&[T]>,
    pw: Option<&[T]>,
    scale: f64,
    grad: Option<&mut [T]>,
    per_elem: Option<&mut [T]>,
) -> f64 {
    let len = y.len();
    blocked_sum(len, 1, x, grad, per_elem, |r0, r1, xs, g, l| {
        pointwise_rows(
            op,
            xs,
            &y[r0..r1],
            w.map(|w| &w[r0..r1]),
            pw.map(|p| &p[r0..r1]),
            scale,
            g,
            l,
        )
    })
}

/// Which cross-entropy-like row loss to run.
#[derive(Clone, Copy)]
pub enum Targets<'a, T> {
    /// Cross-entropy with class indices.
    Index(&'a [i64]),
    /// Cross-entropy with class probabilities (same shape as the logits).
    Prob(&'a [T]),
    /// nll_loss on log-probabilities with class indices.
    Nll(&'a [i64]),
}

/// A row loss over `rows` rows of `p.n` classes (blocked, deterministic):
/// returns the f64 sum of the row losses. `x` may live in `grad` (in-place).
pub fn row_loss<T: Float>(
    rows: usize,
    x: Input<'_, T>,
    targets: Targets<'_, T>,
    p: &CeParams<'_, T>,
    grad: Option<&mut [T]>,
    per_row: Option<&mut [T]>,
) -> f64 {
    let n = p.n;
    if n == 0 {
        // Every target was ignored (none is a class index of 0 classes), or
        // the probabilities are empty: each row's loss is 0.
        if let Some(l) = per_row {
            l.fill(T::ZERO);
        }
        return 0.0;
    }
    blocked_sum(
        rows,
        n,
        x,
        grad,
        per_row,
        |r0, r1, xs, g, l| match targets {
            Targets::Index(t) if n < short_row_exp::<T>() && p.smoothing == 0.0 => {
                ce_index_short(xs, &t[r0..r1], p, g, l, crate::simd::level(), Groups::Rows)
            }
            Targets::Index(t) if n < short_row_exp::<T>() => {
                ce_smooth_short_v(xs, Targets::Index(&t[r0..r1]), p, g, l, Groups::Rows)
            }
            Targets::Index(t) => ce_index_rows(xs, &t[r0..r1], p, g, l),
            Targets::Prob(y) if n < short_row_exp::<T>() => {
                ce_smooth_short_v(xs, Targets::Prob(&y[r0 * n..r1 * n]), p, g, l, Groups::Rows)
            }
            Targets::Prob(y) => ce_prob_rows(xs, &y[r0 * n..r1 * n], p, g, l),
            Targets::Nll(t) => nll_index_rows(xs, &t[r0..r1], p, g, l),
        },
    )
}

/// The most classes [`row_loss_inner`] takes through the column kernels
/// (more go through [`ce_inner_unit`]): 2 threads, alternating A/B
/// against transposing the whole arrays over an axis of 1000 (2048)
/// elements, float32 0.63 (0.66) of the time, but 1.29 at 4096 classes (the
/// groups' scratch blocks of 16 rows, 256 KiB each, no longer stay in
/// cache); float64 0.37 at 2048 classes.
pub const CE_INNER_MAX_CLASSES: usize = 2048;

/// Cross-entropy (class indices or probabilities) or nll_loss over a class
/// axis that is not the last: the logits
/// `x` (and probability targets, and the gradient) are `(outer, n, inner)`
/// arrays, row `r = o * inner + c` the classes of position `c` of block `o`
/// (the targets and `per_row` in that order: the logits' shape without the
/// axis, C-ordered). The short-row kernels of [`row_loss`] (column kernels,
/// `L` rows in lanes) take each group of rows from runs of adjacent
/// elements (`inner_to_lanes`) and put its gradient back the same way,
/// where moving the axis last took transposed copies of the logits and the
/// gradient (and each group was transposed again on the way into the
/// lanes). Rows, blocks, groups and the order of the sums are those of
/// [`row_loss`] on the moved axis, so below [`short_row_exp`] classes every
/// result has the same bits as there; from it on the row kernels would
/// have taken the moved rows, and the results can differ from theirs in the
/// last bits. Above [`CE_INNER_MAX_CLASSES`] classes, the row kernels take
/// the rows through a scratch ([`ce_inner_unit`]). nll_loss
/// (`Targets::Nll`, any number of classes) reads each row's target entry
/// where it is (`nll_index_inner`). `x` may be the gradient
/// (`Input::InGrad`).
///
/// # Panics
/// If a slice's length is not the layout's.
pub fn row_loss_inner<T: Float>(
    layout: super::Layout,
    x: Input<'_, T>,
    targets: Targets<'_, T>,
    p: &CeParams<'_, T>,
    grad: Option<&mut [T]>,
    per_row: Option<&mut [T]>,
) -> f64 {
    let super::Layout { n, inner, .. } = layout;
    let (rows, len) = (layout.rows(), layout.len());
    assert!(n == p.n && inner >= 1);
    if rows == 0 || n == 0 {
        // As in `row_loss`.
        if let Some(l) = per_row {
            l.fill(T::ZERO);
        }
        return 0.0;
    }
    let yp = match targets {
        Targets::Index(t) => {
            assert_eq!(t.len(), rows);
            std::ptr::null()
        }
        Targets::Prob(y) => {
            assert_eq!(y.len(), len);
            y.as_ptr()
        }
        Targets::Nll(t) => {
            assert_eq!(t.len(), rows);
            std::ptr::null()
        }
    };
    assert!(grad.as_ref().is_none_or(|g| g.len() == len));
    assert!(per_row.as_ref().is_none_or(|l| l.len() == rows));
    let gp = Ptr(grad.map_or(std::ptr::null_mut(), |g| g.as_mut_ptr()));
    let xp = match x {
        Input::Slice(s) => {
            assert_eq!(s.len(), len);
            Ptr(s.as_ptr() as *mut T)
        }
        Input::InGrad => {
            assert!(!gp.get().is_null(), "in-place needs a gradient");
            gp
        }
    };
    let yp = Ptr(yp as *mut T);
    let lp = per_row.map(|l| Ptr(l.as_mut_ptr()));
    if n > CE_INNER_MAX_CLASSES && !matches!(targets, Targets::Nll(_)) {
        // Units of up to L adjacent positions of a block, one task each (a
        // unit is at least 16 * 2049 elements); their totals summed in unit
        // order, so thread-independent.
        let blocks = inner.div_ceil(L);
        let units = layout.outer * blocks;
        let mut part = vec![0f64; units];
        let pp = Ptr(part.as_mut_ptr());
        run_tasks(units, n * L, |_, u0, u1| {
            for u in u0..u1 {
                let c = (u % blocks) * L;
                let r = (u / blocks) * inner + c;
                let w = (inner - c).min(L);
                // SAFETY: the pointers hold the layout's elements (targets
                // and per_row its rows); unit u alone owns rows r..r + w and
                // entry u of `part`.
                unsafe {
                    *pp.get().add(u) = ce_inner_unit(
                        layout,
                        xp.get(),
                        targets,
                        p,
                        gp.get(),
                        lp.map(|l| l.get()),
                        r,
                        w,
                    );
                }
            }
        });
        return part.iter().fold(0.0, |a, &b| a + b);
    }
    let level = crate::simd::level();
    sum_blocks(rows, n, |r0, r1| {
        let groups = Groups::Inner {
            inner,
            base: r0,
            rows: r1 - r0,
            x: xp.get(),
            y: yp.get(),
            g: gp.get(),
        };
        // SAFETY: this block alone owns rows r0..r1 of per_row (and of the
        // gradient, written through `groups`).
        let l = lp.map(|p| unsafe { std::slice::from_raw_parts_mut(p.get().add(r0), r1 - r0) });
        match targets {
            Targets::Index(t) if p.smoothing == 0.0 => {
                ce_index_short(&[], &t[r0..r1], p, None, l, level, groups)
            }
            Targets::Index(t) => {
                ce_smooth_short_v(&[], Targets::Index(&t[r0..r1]), p, None, l, groups)
            }
            Targets::Prob(_) => ce_smooth_short_v(&[], Targets::Prob(&[]), p, None, l, groups),
            // SAFETY: x and the gradient hold the layout's elements, and
            // this block alone owns rows r0..r1 of the gradient.
            Targets::Nll(t) => unsafe {
                nll_index_inner(xp.get(), inner, r0, &t[r0..r1], p, gp.get(), l)
            },
        }
    })
}

thread_local! {
    /// Each thread's scratch for [`ce_inner_unit`], kept between calls.
    static SCRATCH: std::cell::RefCell<Vec<f64>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// A thread keeps its scratch up to this size (beyond, it is freed after
/// use): 2 * 16 * n floats of class indices' logits keep theirs up to
/// 65 536 float32 classes.
const KEEP_SCRATCH_BYTES: usize = 8 << 20;

/// `f` on `len` elements of this thread's scratch (their values are left
/// over from earlier uses). Reusing it keeps fresh pages out of every call:
/// a unit's scratch of 16 * n floats per buffer, allocated per unit, was
/// zeroed or faulted in each time, and the units were then 6-8 times
/// slower than the transposes at 32 000 and 50 257 classes.
fn with_scratch<T: Float, R>(len: usize, f: impl FnOnce(&mut [T]) -> R) -> R {
    assert!(std::mem::align_of::<T>() <= std::mem::align_of::<f64>());
    SCRATCH.with(|cell| {
        // Taken out of the cell, so a nested use (there is none) would get a
        // scratch of its own rather than a borrow error.
        let mut v = cell.take();
        let words = (len * std::mem::size_of::<T>()).div_ceil(8);
        if v.len() < words {
            v.resize(words, 0.0);
        }
        // SAFETY: T is f32 or f64 (every bit pattern a value), the buffer
        // holds at least `len` of them and is aligned for f64.
        let s = unsafe { std::slice::from_raw_parts_mut(v.as_mut_ptr() as *mut T, len) };
        let r = f(s);
        if v.len() * 8 <= KEEP_SCRATCH_BYTES {
            cell.replace(v);
        }
        r
    })
}

/// Rows `r..r + w` (`w <= L` adjacent positions of one block) of
/// [`row_loss_inner`] for more than [`CE_INNER_MAX_CLASSES`] classes (class
/// indices or probabilities), returning their loss total: each class's run
/// of the `w` positions gathered ([`inner_to_lanes`], as the column
/// kernels' groups are) and transposed (`lanes_to_rows`) into a scratch of `w` contiguous rows,
/// the row kernels of [`row_loss`] on them, and their gradient put back the
/// same way. Each row is then computed as the same row on the last axis is
/// (the same bits for its loss and gradient). Moving the axis last had
/// taken transposed copies of the whole logits and gradient, whose strided
/// writes and fresh pages made cross-entropy + gradient over axis 1 of (4,
/// 5000, 200) float32 take 5-6 times the last axis' time at 1 thread.
///
/// # Safety
/// `x` (and, with probabilities, the targets) readable and `g` (unless
/// null) writable at the layout's elements, `l` (unless null) at its rows;
/// `x` may be `g` (the unit is read before it is written); no other caller
/// writes rows `r..r + w`.
#[allow(clippy::too_many_arguments)]
unsafe fn ce_inner_unit<T: Float>(
    layout: super::Layout,
    x: *const T,
    targets: Targets<'_, T>,
    p: &CeParams<'_, T>,
    g: *mut T,
    l: Option<*mut T>,
    r: usize,
    w: usize,
) -> f64 {
    let super::Layout { n, inner, .. } = layout;
    let prob = match targets {
        Targets::Prob(y) => Some(y.as_ptr()),
        _ => None,
    };
    let len = w * n;
    // Two buffers (three with probabilities), each `n * L`: the logits'
    // lanes in `a`, their rows in `b`, the gradient's rows in `a`, its lanes
    // in `b`.
    let parts = 2 + usize::from(prob.is_some());
    with_scratch::<T, f64>(parts * n * L, |buf| {
        let (a, rest) = buf.split_at_mut(n * L);
        let (b, yr) = rest.split_at_mut(n * L);
        inner_to_lanes(x, n, inner, r, w, a);
        lanes_to_rows(a, n, w, b);
        if let Some(y) = prob {
            inner_to_lanes(y, n, inner, r, w, a);
            lanes_to_rows(a, n, w, yr);
        }
        let gw = if g.is_null() {
            None
        } else {
            Some(&mut a[..len])
        };
        let lw = l.map(|l| std::slice::from_raw_parts_mut(l.add(r), w));
        let total = match targets {
            Targets::Index(t) => ce_index_rows(&b[..len], &t[r..r + w], p, gw, lw),
            Targets::Prob(_) => ce_prob_rows(&b[..len], &yr[..len], p, gw, lw),
            Targets::Nll(_) => unreachable!("nll_loss reads its entries in place"),
        };
        if !g.is_null() {
            rows_to_lanes(&a[..len], w, n, b);
            lanes_to_inner(b, n, inner, r, w, g);
        }
        total
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ref_ce(x: &[f64], t: usize, eps: f64) -> (f64, Vec<f64>) {
        let n = x.len();
        let m = x.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
        let s: f64 = x.iter().map(|v| (v - m).exp()).sum();
        let lse = m + s.ln();
        let mut loss = (1.0 - eps) * (lse - x[t]);
        loss += eps / n as f64 * x.iter().map(|v| lse - v).sum::<f64>();
        let g = (0..n)
            .map(|j| {
                let p = (x[j] - lse).exp();
                p - (1.0 - eps) * f64::from(j == t) - eps / n as f64
            })
            .collect();
        (loss, g)
    }

    #[test]
    fn ce_index_matches_reference_and_threads() {
        for &(rows, n, eps) in &[(5usize, 7usize, 0.0), (300, 1000, 0.1), (3, 33, 0.2)] {
            let x: Vec<f64> = (0..rows * n)
                .map(|i| ((i * 7919) % 101) as f64 / 7.0 - 6.0)
                .collect();
            let t: Vec<i64> = (0..rows).map(|r| ((r * 31) % n) as i64).collect();
            let mut p = CeParams::<f64>::new(n, None, -100, eps);
            p.scale = 1.0;
            let mut g = vec![0.0; rows * n];
            let total = row_loss(
                rows,
                Input::Slice(&x),
                Targets::Index(&t),
                &p,
                Some(&mut g),
                None,
            );
            let mut want = 0.0;
            for r in 0..rows {
                let (l, gr) = ref_ce(&x[r * n..(r + 1) * n], t[r] as usize, eps);
                want += l;
                for j in 0..n {
                    assert!(
                        (g[r * n + j] - gr[j]).abs() < 1e-14,
                        "{} {}",
                        g[r * n + j],
                        gr[j]
                    );
                }
            }
            assert!((total - want).abs() <= 1e-13 * want.abs());
            // in-place gives the same
            let mut g2 = x.clone();
            let t2 = row_loss(
                rows,
                Input::InGrad,
                Targets::Index(&t),
                &p,
                Some(&mut g2),
                None,
            );
            assert_eq!(t2.to_bits(), total.to_bits());
            assert_eq!(g2, g);
            crate::par::set_num_threads(1);
            let t1 = row_loss(rows, Input::Slice(&x), Targets::Index(&t), &p, None, None);
            crate::par::set_num_threads(3);
            let t3 = row_loss(rows, Input::Slice(&x), Targets::Index(&t), &p, None, None);
            assert_eq!(t1.to_bits(), t3.to_bits());
            assert_eq!(t1.to_bits(), total.to_bits());
        }
    }

    #[test]
    fn row_loss_inner_has_the_bits_of_the_moved_rows() {
        // A class axis with `inner` elements after it, against row_loss on
        // the axis moved last: the loss, per-row losses and gradient bit
        // for bit, for class indices (ignored rows, weights, smoothing) and
        // probabilities, with the logits in the gradient's buffer too.
        fn check<T: Float>() {
            // Logits x 200 (with -inf and NaN) put most float32 tiles on
            // their per-lane path, which reads the target logits in place.
            for (outer, n, inner, scale) in [
                (3usize, 5usize, 17usize, 8.0),
                (7, 10, 2, 8.0),
                (2, 31, 40, 8.0),
                (1, 3, 1, 8.0),
                (4, 12, 50, 200.0),
                (3, 5, 17, 200.0),
                // Tiles starting at every offset in a block of 17.
                (20, 5, 17, 8.0),
            ] {
                let len = outer * n * inner;
                let mut x: Vec<T> = crate::kernels::tests::rand_vec(len, scale, (n * inner) as u64)
                    .iter()
                    .map(|&v| T::from_f64(v))
                    .collect();
                if scale > 100.0 {
                    x[7] = T::NEG_INF;
                    x[len / 2] = T::NAN;
                }
                let u = crate::kernels::tests::rand_vec(outer * inner, 1e6, 5);
                let t: Vec<i64> = u
                    .iter()
                    .enumerate()
                    .map(|(i, v)| {
                        if i % 5 == 2 {
                            -100
                        } else {
                            (v.abs() as i64) % n as i64
                        }
                    })
                    .collect();
                let y: Vec<T> = crate::kernels::tests::rand_vec(len, 1.0, 9)
                    .iter()
                    .map(|&v| T::from_f64(v.abs()))
                    .collect();
                // (o, k, c) -> (o, c, k)
                let moved = |a: &[T]| {
                    let mut m = vec![T::ZERO; len];
                    for o in 0..outer {
                        for k in 0..n {
                            for c in 0..inner {
                                m[(o * inner + c) * n + k] = a[(o * n + k) * inner + c];
                            }
                        }
                    }
                    m
                };
                let (xm, ym) = (moved(&x), moved(&y));
                let w: Vec<T> = (0..n)
                    .map(|k| T::from_f64(0.5 + k as f64 / n as f64))
                    .collect();
                for (smoothing, weight, prob, nll) in [
                    (0.0, false, false, false),
                    (0.1, true, false, false),
                    (0.0, true, true, false),
                    (0.0, true, false, true),
                ] {
                    let mut p = CeParams::new(n, weight.then_some(&w[..]), -100, smoothing);
                    p.scale = 0.25;
                    let (tg, tgm) = if prob {
                        (Targets::Prob(&y[..]), Targets::Prob(&ym[..]))
                    } else if nll {
                        (Targets::Nll(&t[..]), Targets::Nll(&t[..]))
                    } else {
                        (Targets::Index(&t[..]), Targets::Index(&t[..]))
                    };
                    let rows = outer * inner;
                    let (mut g, mut gm) = (vec![T::ZERO; len], vec![T::ZERO; len]);
                    let (mut l, mut lm) = (vec![T::ZERO; rows], vec![T::ZERO; rows]);
                    let layout = crate::kernels::Layout { outer, n, inner };
                    let a = row_loss_inner(
                        layout,
                        Input::Slice(&x),
                        tg,
                        &p,
                        Some(&mut g),
                        Some(&mut l),
                    );
                    let b = row_loss(
                        rows,
                        Input::Slice(&xm),
                        tgm,
                        &p,
                        Some(&mut gm),
                        Some(&mut lm),
                    );
                    assert_eq!(a.to_bits(), b.to_bits(), "{outer} {n} {inner}");
                    assert!(l
                        .iter()
                        .zip(&lm)
                        .all(|(p, q)| p.to_f64().to_bits() == q.to_f64().to_bits()));
                    assert_eq!(
                        moved(&g)
                            .iter()
                            .map(|v| v.to_f64().to_bits())
                            .collect::<Vec<_>>(),
                        gm.iter().map(|v| v.to_f64().to_bits()).collect::<Vec<_>>()
                    );
                    let mut gi = x.clone();
                    let c = row_loss_inner(layout, Input::InGrad, tg, &p, Some(&mut gi), None);
                    assert_eq!(c.to_bits(), a.to_bits());
                    assert!(gi
                        .iter()
                        .zip(&g)
                        .all(|(p, q)| p.to_f64().to_bits() == q.to_f64().to_bits()));
                }
            }
        }
        check::<f32>();
        check::<f64>();
    }

    #[test]
    fn ce_tiles_match_the_column_kernel_bit_for_bit() {
        // The AVX-512 and AVX2 register tiles (float32, 1 to 16 classes) against the
        // column kernels through their scratch blocks: losses (per row and
        // total) and gradients bit for bit (NaN payloads aside), with +-inf,
        // NaN, +-3e38, subnormals, +-0, an all -inf row, ignored rows,
        // class weights, with and without the gradient.
        // Each tiled level this CPU has: AVX-512 (16 rows per tile) and AVX2 (8).
        let levels = match crate::simd::dispatch::best() {
            Level::Avx512 => vec![Level::Avx512, Level::Avx2],
            Level::Avx2 => vec![Level::Avx2],
            _ => vec![],
        };
        let same = |p: f32, q: f32| p.to_bits() == q.to_bits() || (p.is_nan() && q.is_nan());
        for (level, n) in levels
            .into_iter()
            .flat_map(|l| (1..=16usize).map(move |n| (l, n)))
        {
            for rows in [1usize, 7, 8, 9, 16, 17, 24, 40, 100, 129, 300] {
                // With the specials (most tiles take the f64 path), and
                // without: logits in +-30 and in +-100, where p_t reaches the
                // vector terms' limit.
                let seed = (n * 1000 + rows) as u64 + 7;
                let clean = |scale: f64| -> Vec<f32> {
                    crate::kernels::tests::rand_vec(rows * n, scale, seed)
                        .iter()
                        .map(|&v| v as f32)
                        .collect()
                };
                for x in [
                    crate::kernels::tests::tile_test_rows(rows, n),
                    clean(30.0),
                    clean(100.0),
                ] {
                    // The same draws that placed the specials: targets and ignored rows.
                    let u =
                        crate::kernels::tests::rand_vec(rows, 1e6, (n * 1000 + rows) as u64 + 1);
                    let t: Vec<i64> = u
                        .iter()
                        .enumerate()
                        .map(|(r, v)| {
                            if r % 5 == 3 {
                                -100
                            } else {
                                (v.abs() as usize % n) as i64
                            }
                        })
                        .collect();
                    let w: Vec<f32> = (0..n).map(|k| 0.25 + k as f32 * 0.5).collect();
                    for weight in [None, Some(&w[..])] {
                        let mut p = CeParams::<f32>::new(n, weight, -100, 0.0);
                        p.scale = 1.0 / 7.0;
                        for with_grad in [false, true] {
                            let run = |lvl: Level| {
                                let mut g = vec![0f32; rows * n];
                                let mut l = vec![0f32; rows];
                                let gr = with_grad.then_some(&mut g[..]);
                                let total = ce_index_short(
                                    &x,
                                    &t,
                                    &p,
                                    gr,
                                    Some(&mut l[..]),
                                    lvl,
                                    Groups::Rows,
                                );
                                (total, g, l)
                            };
                            let (tt, gt, lt) = run(level);
                            let (tc, gc, lc) = run(Level::Scalar);
                            let what = format!(
                                "{level:?}, n {n}, rows {rows}, weight {}, grad {with_grad}",
                                weight.is_some()
                            );
                            assert!(
                                tt.to_bits() == tc.to_bits() || (tt.is_nan() && tc.is_nan()),
                                "{what}: total {tt} vs {tc}"
                            );
                            for (i, (&a, &b)) in lt.iter().zip(&lc).enumerate() {
                                assert!(same(a, b), "{what}: loss of row {i}: {a} vs {b}");
                            }
                            for (i, (&a, &b)) in gt.iter().zip(&gc).enumerate() {
                                assert!(same(a, b), "{what}: grad at {i}: {a} vs {b}");
                            }
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn index_validation() {
        assert_eq!(
            index_weight_sum::<f32>(&[0, 1, -100, 12], 10, None, -100),
            Err(BadIndex { pos: 3, value: 12 })
        );
        assert_eq!(
            index_weight_sum::<f32>(&[0, -100, 2], 3, Some(&[1.0, 2.0, 0.5]), -100),
            Ok(1.5)
        );
    }

    #[test]
    fn focal_keeps_relative_precision_in_the_tails() {
        // (x, y, alpha, gamma, loss, d loss / dx): mpmath at 80 digits from
        // the definition (1 - p_t with p_t = p y + (1 - p)(1 - y)).
        let cases = [
            (
                -30.0,
                0.0,
                0.25,
                2.0,
                6.145509467991449e-40,
                1.843652840397291e-39,
            ),
            (
                30.0,
                1.0,
                0.25,
                2.0,
                2.0485031559971495e-40,
                -6.14550946799097e-40,
            ),
            (
                -35.0,
                0.0,
                0.25,
                2.0,
                1.879925606924962e-46,
                5.639776820774883e-46,
            ),
            (
                -10.0,
                0.0,
                0.25,
                2.0,
                7.01742072288742e-14,
                2.1051465727595492e-13,
            ),
            (
                60.0,
                1.0,
                -1.0,
                1.5,
                7.175095973164411e-66,
                -1.7937739932911027e-65,
            ),
            (
                -2.0,
                0.3,
                0.25,
                2.0,
                0.05272359221204656,
                -0.00037581208434350223,
            ),
        ];
        for (x, y, alpha, gamma, l, g) in cases {
            let op = Pointwise::Focal { alpha, gamma };
            let (lo, go) = op.eval(x, y, 1.0);
            assert!(
                (lo - l).abs() <= 1e-13 * l.abs(),
                "loss at {x}, {y}: {lo} vs {l}"
            );
            assert!(
                (go - g).abs() <= 1e-13 * g.abs(),
                "grad at {x}, {y}: {go} vs {g}"
            );
            // Through the sweep too, in both types (f32: one rounding).
            let (mut g32, mut g64) = ([0f32; 1], [0f64; 1]);
            let t64 = pointwise(
                op,
                Input::Slice(&[x]),
                &[y],
                None,
                None,
                1.0,
                Some(&mut g64),
                None,
            );
            assert!((t64 - l).abs() <= 1e-13 * l.abs() && (g64[0] - g).abs() <= 1e-13 * g.abs());
            let t32 = pointwise(
                op,
                Input::Slice(&[x as f32]),
                &[y as f32],
                None,
                None,
                1.0,
                Some(&mut g32),
                None,
            );
            if y != 0.3 {
                assert!((t32 - l).abs() <= 1e-13 * l.abs(), "f32 loss at {x}");
                let want = g as f32;
                assert!(g32[0] == want, "f32 grad at {x}: {} vs {want}", g32[0]);
            }
        }
    }
}

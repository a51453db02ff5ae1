//! Pure-Rust kernels on slices (no Python types) and the drivers that run them
//! over an array's rows, in parallel, for any axis.

pub mod activations;
pub mod elementwise;
pub mod losses;
pub mod matmul;
pub mod optim;
pub mod softmax;

use crate::multiversion;
use crate::simd::tile;
use crate::simd::transpose::{lanes_to_rows, rows_to_lanes};
use crate::simd::{Float, LANES as L};
use elementwise::{run_tasks, Ptr};

/// A contiguous array seen as `(outer, n, inner)`: the reduction axis has
/// length `n` and stride `inner`; row `(o, c)` starts at `o * n * inner + c`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Layout {
    pub outer: usize,
    pub n: usize,
    pub inner: usize,
}

impl Layout {
    pub fn len(&self) -> usize {
        self.outer * self.n * self.inner
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Number of rows (= number of outputs of a reduction).
    pub fn rows(&self) -> usize {
        self.outer * self.inner
    }
}

/// A row-wise operation with kernels for both data layouts.
pub trait RowOp<T: Float>: Sync {
    /// True when the op gives one value per row instead of `n`.
    fn reduces(&self) -> bool {
        false
    }
    /// Contiguous rows of `n`: each `ins[i]` and `out` cover the same rows.
    fn rows(&self, ins: &[&[T]], out: &mut [T], n: usize);
    /// `L` interleaved rows (element `k` of row `j` at `k * L + j`).
    fn cols(&self, ins: &[&[T]], out: &mut [T]);
    /// Output for a row whose every entry is masked out (or an empty row, for
    /// a reduction).
    fn masked_fill(&self) -> T {
        T::NAN
    }
    /// What a masked entry of the first input counts as: -inf for the
    /// forward passes (it adds nothing to a row's sum of exps), 0 for the
    /// backward ones (nothing to the sums of the gradient).
    fn masked_input(&self) -> T {
        T::NEG_INF
    }
    /// Rows (on the last axis) shorter than this run through [`Self::cols`].
    fn short_row(&self) -> usize {
        SHORT_ROW
    }
    /// The register-resident tile kernel (`simd::tile`) that gives the same
    /// bits as [`Self::cols`] for float32 rows of 1 to 16 contiguous
    /// elements without a mask, if the op has one.
    fn tile(&self) -> Option<tile::Op> {
        None
    }
}

/// Rows shorter than this (on the last axis) run through the column kernels,
/// `L` rows at a time with lanes across rows (the default of
/// [`RowOp::short_row`]).
pub const SHORT_ROW: usize = 32;

/// [`SHORT_ROW`] for the float32 passes with an exp per element (softmax,
/// log_softmax, logsumexp, cross-entropy): up to 63 classes their column
/// kernels beat the row kernels, whose partial last vector and per-row
/// reductions weigh on a row of a few vectors (1 thread, alternating A/B,
/// `benches/ab.py`: 40 classes softmax 0.46, log_softmax 0.44, logsumexp
/// 0.41, cross-entropy + gradient 0.53 of the row kernels' time; 63
/// classes 0.65-0.91). float64 keeps [`SHORT_ROW`]: its lane arrays take two
/// registers and its transposes 8x8 tiles, and at 40-63 classes its column
/// softmax and cross-entropy were 1.07-1.29 times slower. So do the
/// backward passes (a dot product and a multiply per element), whose row
/// kernels win from 32 classes.
pub fn short_row_exp<T: Float>() -> usize {
    if T::MANTISSA_DIGITS < 53 {
        64
    } else {
        SHORT_ROW
    }
}

/// Runs `op` over every row of `ins` (each of `layout.len()` elements) into
/// `out` (`layout.len()` elements, or `layout.rows()` for a reduction).
/// `mask`, if given, covers `ins[0]`: zero entries count as
/// `op.masked_input()`, and a row with no true entry gets `op.masked_fill()`
/// (a map's masked entries too).
///
/// Every row is computed by the same code whatever the thread count, so the
/// result is bit-identical for any number of threads.
pub fn run_rows<T: Float, Op: RowOp<T>>(
    op: &Op,
    layout: Layout,
    ins: &[&[T]],
    mask: Option<&[u8]>,
    out: &mut [T],
) {
    assert!(ins.iter().all(|s| s.len() == layout.len()));
    let per_row = if op.reduces() { 1 } else { layout.n };
    assert_eq!(out.len(), layout.rows() * per_row);
    let ptrs: Vec<*const T> = ins.iter().map(|s| s.as_ptr()).collect();
    // SAFETY: the slices are valid for their lengths and `out` (a unique
    // borrow) overlaps none of them.
    unsafe { run_rows_raw(op, layout, &ptrs, mask, out.as_mut_ptr()) }
}

/// [`run_rows`] on raw pointers, where an input may be *exactly* the output
/// (in place): rows are copied to a task-local scratch (last axis) or
/// gathered (column path) before anything of theirs is written.
///
/// # Safety
/// Each input is readable for `layout.len()` elements, `out` writable for
/// the output's length; an input either equals `out` (map ops only) or does
/// not overlap it; `mask` as in [`run_rows`].
pub unsafe fn run_rows_raw<T: Float, Op: RowOp<T>>(
    op: &Op,
    layout: Layout,
    ins: &[*const T],
    mask: Option<&[u8]>,
    out: *mut T,
) {
    let Layout { outer, n, inner } = layout;
    let per_row = if op.reduces() { 1 } else { n };
    assert!(!ins.is_empty() && ins.len() <= 2);
    assert!(mask.is_none_or(|m| m.len() == layout.len()));
    assert!(!op.reduces() || ins.iter().all(|&p| !std::ptr::eq(p, out)));
    if layout.rows() == 0 {
        return;
    }
    if n == 0 {
        // A map's output is empty; a reduction's holds the value for an
        // empty row, one per row. (Until stop 23 a map's empty output was
        // filled as a reduction's: `rows` elements written past it.)
        if op.reduces() {
            std::slice::from_raw_parts_mut(out, layout.rows()).fill(op.masked_fill());
        }
        return;
    }
    if inner > 1 && inner < INNER_BY_TRANSPOSE {
        inner_by_transpose(op, layout, ins, mask, out);
        return;
    }
    let nin = ins.len();
    let src: [Ptr<T>; 2] = [Ptr(ins[0] as *mut T), Ptr(ins[nin - 1] as *mut T)];
    let dst = Ptr(out);
    let level = crate::simd::level();
    #[cfg(target_arch = "x86_64")]
    let tiled = matches!(level, crate::simd::Level::Avx512 | crate::simd::Level::Avx2);
    #[cfg(not(target_arch = "x86_64"))]
    let tiled = false;
    if let (None, 1, 24, Some(t), true, true) = (
        mask,
        nin,
        T::MANTISSA_DIGITS,
        op.tile(),
        (1..=L).contains(&n),
        tiled,
    ) {
        // Float32 rows of 1-16 elements, contiguous or over an inner axis
        // (rows `o * inner + c`, 16 adjacent ones loaded and stored one class
        // vector at a time): the register tiles, with the bits of the column
        // kernels. Tasks of whole tiles of 16 rows.
        let rows = layout.rows();
        run_tasks(rows.div_ceil(L), n * L, |_, u0, u1| {
            let (r0, r1) = (u0 * L, (u1 * L).min(rows));
            let (x, y, at) = if inner == 1 {
                let (x, y) = (src[0].get().add(r0 * n), dst.get().add(r0 * per_row));
                (x, y, (0, 0))
            } else if op.reduces() {
                (src[0].get(), dst.get().add(r0), (inner, r0))
            } else {
                (src[0].get(), dst.get(), (inner, r0))
            };
            // SAFETY: T is f32 (the only Float type with a 24-bit
            // significand); rows r0..r1 are this task's, the input either is
            // the output or does not overlap it, and the level is the CPU's.
            let done = tile::run(level, t, x.cast(), r1 - r0, n, at, y.cast());
            assert!(
                done,
                "the tiles take float32 rows of 1-16 at AVX-512 and AVX2"
            );
        });
        return;
    }
    if inner == 1 && n >= op.short_row() {
        run_tasks(outer, n, |_, r0, r1| {
            let (len, off) = ((r1 - r0) * n, r0 * n);
            // An input that is the output is copied before the output is borrowed.
            let mut copies: [Vec<T>; 2] = [Vec::new(), Vec::new()];
            for i in 0..nin {
                if src[i].get() == dst.get() {
                    copies[i] = std::slice::from_raw_parts(src[i].get().add(off), len).to_vec();
                }
            }
            let mut sub: [&[T]; 2] = [&[], &[]];
            for i in 0..nin {
                sub[i] = if src[i].get() == dst.get() {
                    &copies[i]
                } else {
                    std::slice::from_raw_parts(src[i].get().add(off), len)
                };
            }
            let o =
                std::slice::from_raw_parts_mut(dst.get().add(r0 * per_row), (r1 - r0) * per_row);
            rows_task(op, &sub[..nin], mask.map(|m| &m[off..off + len]), o, n);
        });
    } else {
        // Units of L rows: rows u*L..u*L+L (last axis) or, for an inner axis,
        // columns c0..c0+L of block o.
        let col_blocks = inner.div_ceil(L);
        let units = if inner == 1 {
            outer.div_ceil(L)
        } else {
            outer * col_blocks
        };
        run_tasks(units, n * L, |_, u0, u1| {
            let mut scratch = vec![T::ZERO; n * L * (nin + 1)];
            let mut masked = vec![
                T::ZERO;
                if inner == 1 && mask.is_some() {
                    n * L
                } else {
                    0
                }
            ];
            for u in u0..u1 {
                if inner == 1 {
                    let r0 = u * L;
                    let w = (outer - r0).min(L);
                    let mut blocks = [std::ptr::null(); 2];
                    for i in 0..nin {
                        blocks[i] = src[i].get().add(r0 * n) as *const T;
                    }
                    let Some(m) = mask else {
                        cols_unit_contiguous(op, n, &blocks[..nin], &mut scratch, r0, w, dst);
                        continue;
                    };
                    // Masked rows: the first input with -inf at the masked
                    // entries (`masked_row`, vectorised, where the gather of
                    // `cols_unit` went element by element: 262144x10 float32
                    // softmax where= took 7.7 x a copy), the same column
                    // kernel, then the masked outputs filled.
                    let mb = &m[r0 * n..(r0 + w) * n];
                    masked_row(
                        std::slice::from_raw_parts(blocks[0], w * n),
                        mb,
                        &mut masked[..w * n],
                        op.masked_input(),
                    );
                    blocks[0] = masked.as_ptr();
                    cols_unit_contiguous(op, n, &blocks[..nin], &mut scratch, r0, w, dst);
                    let fill = op.masked_fill();
                    if op.reduces() {
                        let o = std::slice::from_raw_parts_mut(dst.get().add(r0), w);
                        for (v, mr) in o.iter_mut().zip(mb.chunks_exact(n)) {
                            if mr.iter().all(|&b| b == 0) {
                                *v = fill;
                            }
                        }
                    } else {
                        // Every entry of a fully masked row is masked.
                        let o = std::slice::from_raw_parts_mut(dst.get().add(r0 * n), w * n);
                        fill_masked(o, mb, fill);
                    }
                    continue;
                }
                // (o, c) of each lane's row, and how many lanes are real.
                let (lanes, w) = if inner == 1 {
                    let r0 = u * L;
                    let w = (outer - r0).min(L);
                    (
                        std::array::from_fn::<_, L, _>(|j| (r0 + j.min(w - 1), 0)),
                        w,
                    )
                } else {
                    let (o, cb) = (u / col_blocks, u % col_blocks);
                    let c0 = cb * L;
                    let w = (inner - c0).min(L);
                    (
                        std::array::from_fn::<_, L, _>(|j| (o, c0 + j.min(w - 1))),
                        w,
                    )
                };
                cols_unit(op, layout, &src[..nin], mask, &mut scratch, &lanes, w, dst);
            }
        });
    }
}

/// Inner axes narrower than this (`1 < inner < INNER_BY_TRANSPOSE`), masked
/// or not, go through [`inner_by_transpose`]. The column units of
/// [`cols_unit`] take 16 adjacent elements of a row of the array at a time;
/// the columns past the last multiple of 16 form a partial unit gathered
/// element by element, all of them when `inner < 16` (softmax over axis 0
/// of a 262144x10 float32 array took 58 x a copy; with `where=`, 131072x8:
/// 6.3 ms against 1.9 ms through the transposes). Axis 0 of float32 arrays
/// of 2^20 elements, 2 threads, transposes over units, three alternating
/// rounds: 17-40 columns 0.37-0.74 (softmax, logsumexp, softmax_backward,
/// softmax where=), 63 columns 0.62-0.86, 100 columns 1.00-1.39, 250
/// columns 1.34-1.85 (the transposes' temporaries and their page faults
/// against a unit's strided copies); wider masked axes were slower through
/// the transposes too (logsumexp 1.5-1.9 x at 1024 columns).
const INNER_BY_TRANSPOSE: usize = 4 * L;

/// [`run_rows_raw`] for an inner axis through the last-axis path: each
/// input's `outer` blocks of `(n, inner)` transposed to `(inner, n)` by
/// [`transpose_into`] (a mask by [`transpose_mask`]), the op over
/// those `outer * inner` contiguous rows of `n` (whose order is that of the
/// output of a reduction), and the output of a map transposed back. Each row
/// is then computed as the same row on the last axis is, so the bits do not
/// depend on the thread count either. Takes a temporary copy of each input
/// and of the mask.
///
/// # Safety
/// As [`run_rows_raw`].
unsafe fn inner_by_transpose<T: Float, Op: RowOp<T>>(
    op: &Op,
    layout: Layout,
    ins: &[*const T],
    mask: Option<&[u8]>,
    out: *mut T,
) {
    let Layout { outer, n, inner } = layout;
    let len = layout.len();
    // Uninitialised until written in full (a zero fill took 10 % of the
    // time): every element is written before `set_len`.
    let mut t: [Vec<T>; 2] = [Vec::new(), Vec::new()];
    for (ti, &p) in t.iter_mut().zip(ins) {
        *ti = Vec::with_capacity(len);
        transpose_to(
            std::slice::from_raw_parts(p, len),
            outer,
            n,
            inner,
            ti.as_mut_ptr(),
        );
        ti.set_len(len);
    }
    let tm = mask.map(|m| {
        let mut v = vec![0u8; len];
        transpose_mask(m, outer, n, inner, &mut v);
        v
    });
    let tm = tm.as_deref();
    let ptrs = [t[0].as_ptr(), t[1].as_ptr()];
    let rows = Layout {
        outer: outer * inner,
        n,
        inner: 1,
    };
    if op.reduces() {
        run_rows_raw(op, rows, &ptrs[..ins.len()], tm, out);
    } else {
        // In place in the first input's copy (a map may write over its
        // input), which saves a third temporary.
        let y = t[0].as_mut_ptr();
        run_rows_raw(op, rows, &ptrs[..ins.len()], tm, y);
        transpose_to(&t[0], outer, inner, n, out);
    }
}

/// [`transpose_into`] for a mask: 64x64 tiles, in parallel, each by 8x8
/// blocks of bytes transposed in eight u64 ([`t8x8_bytes`]); the edges
/// byte by byte. (Byte by byte throughout, the transposed mask of a
/// 1024x1024 array took 29 % of softmax where='s time.)
///
/// # Panics
/// If `src` or `dst` is shorter than `batches * rows * cols`.
pub fn transpose_mask(src: &[u8], batches: usize, rows: usize, cols: usize, dst: &mut [u8]) {
    const B: usize = 64;
    let size = rows * cols;
    assert!(src.len() >= batches * size && dst.len() >= batches * size);
    if size == 0 || batches == 0 {
        return;
    }
    let out = Ptr(dst.as_mut_ptr());
    let (rt, ct) = (rows.div_ceil(B), cols.div_ceil(B));
    // A mask byte is a quarter of a float32's traffic.
    run_tasks(batches * rt * ct, B * B / 4, |_, u0, u1| {
        for u in u0..u1 {
            let (b, r0, c0) = (u / (rt * ct), (u / ct % rt) * B, u % ct * B);
            let (r1, c1) = ((r0 + B).min(rows), (c0 + B).min(cols));
            let s = &src[b * size..][..size];
            // SAFETY: this unit alone writes elements r0..r1 of destination
            // rows c0..c1 of batch b, all within dst.
            let put =
                |c: usize, r: usize, v: u8| unsafe { *out.get().add(b * size + c * rows + r) = v };
            // Whole 8x8 blocks, then the partial rows and columns.
            let (r8, c8) = (r0 + (r1 - r0) / 8 * 8, c0 + (c1 - c0) / 8 * 8);
            for cb in (c0..c8).step_by(8) {
                for rb in (r0..r8).step_by(8) {
                    let mut a: [u64; 8] = std::array::from_fn(|i| {
                        u64::from_le_bytes(s[(rb + i) * cols + cb..][..8].try_into().unwrap())
                    });
                    t8x8_bytes(&mut a);
                    for (i, ai) in a.iter().enumerate() {
                        // SAFETY: as `put`, for elements rb..rb + 8 of row cb + i.
                        unsafe {
                            std::ptr::write_unaligned(
                                out.get().add(b * size + (cb + i) * rows + rb) as *mut [u8; 8],
                                ai.to_le_bytes(),
                            )
                        };
                    }
                }
            }
            for r in r0..r1 {
                let cs = if r < r8 { c8 } else { c0 };
                for c in cs..c1 {
                    put(c, r, s[r * cols + c]);
                }
            }
        }
    });
}

/// Transposes the 8x8 bytes of `a` (byte j of `a[i]`, little-endian, is
/// element (i, j)) in place: three rounds of swapping 1-, 2- and 4-byte
/// blocks between rows (Warren, Hacker's Delight, 7-3).
#[inline(always)]
fn t8x8_bytes(a: &mut [u64; 8]) {
    for (shift, mask, step) in [
        (8, 0x00FF_00FF_00FF_00FFu64, 1),
        (16, 0x0000_FFFF_0000_FFFF, 2),
        (32, 0x0000_0000_FFFF_FFFF, 4),
    ] {
        for i in 0..8 {
            if i & step == 0 {
                let t = ((a[i] >> shift) ^ a[i + step]) & mask;
                a[i + step] ^= t;
                a[i] ^= t << shift;
            }
        }
    }
}

/// `dst = src^T` for each of `batches` matrices: batch `b` of `src` is
/// `rows` rows of `cols` (C order) from `b * rows * cols`, and the same batch
/// of `dst` its `cols` rows of `rows`. Sixteen rows or columns at a time,
/// whichever dimension is the longer, go through the in-register transposes
/// ([`rows_to_lanes`] / [`lanes_to_rows`]) by a block of 16 lanes per row of
/// the shorter dimension; the blocks in parallel. (NumPy's
/// `ascontiguousarray` of a Fortran-ordered 4096x1000 float32 array took
/// 17-19 ms, against ~1 ms for a copy.)
///
/// # Panics
/// If `src` or `dst` is shorter than `batches * rows * cols`.
pub fn transpose_into<T: Float>(
    src: &[T],
    batches: usize,
    rows: usize,
    cols: usize,
    dst: &mut [T],
) {
    assert!(dst.len() >= batches * rows * cols);
    // SAFETY: dst is writable for that many elements.
    unsafe { transpose_to(src, batches, rows, cols, dst.as_mut_ptr()) }
}

/// [`transpose_into`] to a pointer, which may be to uninitialised memory.
///
/// # Safety
/// `dst` writable for `batches * rows * cols` elements, not overlapping `src`.
///
/// # Panics
/// If `src` is shorter than `batches * rows * cols`.
unsafe fn transpose_to<T: Float>(src: &[T], batches: usize, rows: usize, cols: usize, dst: *mut T) {
    let size = rows * cols;
    assert!(src.len() >= batches * size);
    if size == 0 || batches == 0 {
        return;
    }
    let out = Ptr(dst);
    // Blocks of 16 along the longer dimension, each `short` lane arrays.
    let by_rows = rows >= cols;
    let (long, short) = if by_rows { (rows, cols) } else { (cols, rows) };
    let per = long.div_ceil(L);
    run_tasks(batches * per, short * L, |_, u0, u1| {
        let mut g = vec![T::ZERO; short * L];
        for u in u0..u1 {
            let (b, i0) = (u / per, (u % per) * L);
            let w = (long - i0).min(L);
            let (s, d) = (&src[b * size..][..size], out.get().wrapping_add(b * size));
            if by_rows {
                // Source rows i0..i0 + w into lanes, whose class k is then
                // 16 adjacent elements of destination row k.
                rows_to_lanes(&s[i0 * cols..(i0 + w) * cols], w, cols, &mut g);
                for (k, gk) in g.chunks_exact(L).enumerate() {
                    // SAFETY: dst holds the batch's rows * cols elements;
                    // this unit alone writes rows i0..i0 + w of each
                    // destination row k.
                    unsafe {
                        let o = d.add(k * rows + i0);
                        if w == L {
                            // A constant length: one vector move, not a call.
                            let v: [T; L] = gk.try_into().unwrap();
                            std::ptr::write_unaligned(o as *mut [T; L], v);
                        } else {
                            std::ptr::copy_nonoverlapping(gk.as_ptr(), o, w);
                        }
                    }
                }
            } else {
                // Columns i0..i0 + w of each source row k as lane array k,
                // whose lanes are then destination rows i0..i0 + w.
                for (k, gk) in g.chunks_exact_mut(L).enumerate() {
                    let row = &s[k * cols + i0..];
                    if w == L {
                        // A constant length: one vector move, not a call.
                        gk.copy_from_slice(&row[..L]);
                    } else {
                        gk[..w].copy_from_slice(&row[..w]);
                    }
                }
                // SAFETY: this unit alone writes destination rows i0..i0 + w
                // (of `rows` each) of the batch.
                let o = unsafe { std::slice::from_raw_parts_mut(d.add(i0 * rows), w * rows) };
                lanes_to_rows(&g, rows, w, o);
            }
        }
    });
}

/// Contiguous rows on the last axis through the row kernel; `mask` covers
/// the same rows as `ins`.
fn rows_task<T: Float, Op: RowOp<T>>(
    op: &Op,
    ins: &[&[T]],
    mask: Option<&[u8]>,
    out: &mut [T],
    n: usize,
) {
    let Some(mask) = mask else {
        op.rows(ins, out, n);
        return;
    };
    let per_row = if op.reduces() { 1 } else { n };
    let mut row = vec![T::ZERO; n];
    for r in 0..ins[0].len() / n {
        let mr = &mask[r * n..(r + 1) * n];
        let o = &mut out[r * per_row..(r + 1) * per_row];
        if !masked_row(&ins[0][r * n..(r + 1) * n], mr, &mut row, op.masked_input()) {
            o.fill(op.masked_fill());
            continue;
        }
        let mut ins_row: [&[T]; 2] = [&row, &[]];
        if let Some(g) = ins.get(1) {
            ins_row[1] = &g[r * n..(r + 1) * n];
        }
        op.rows(&ins_row[..ins.len()], o, n);
        if per_row == n {
            // Masked entries are the masked value even where the rest of
            // the row is NaN (all its unmasked entries -inf, say).
            fill_masked(o, mr, op.masked_fill());
        }
    }
}

// The mask's passes over a row in versions for the instruction sets (this
// module's drivers are compiled for the baseline: 62 % of a masked float32
// softmax's time, 1024x1000 at 1 thread, went to these loops in SSE2).
multiversion! {
    /// `row[k] = if m[k] != 0 { x[k] } else { fill }`; whether any `m[k]` is set.
    fn masked_row<T: Float>(x: &[T], m: &[u8], row: &mut [T], fill: T) -> bool {
        let mut any = 0u8;
        for ((d, &v), &keep) in row.iter_mut().zip(x).zip(m) {
            *d = if keep != 0 { v } else { fill };
            any |= keep;
        }
        any != 0
    }
}

multiversion! {
    /// `o[k] = fill` wherever `m[k]` is 0.
    fn fill_masked<T: Float>(o: &mut [T], m: &[u8], fill: T) {
        for (v, &keep) in o.iter_mut().zip(m) {
            if keep == 0 {
                *v = fill;
            }
        }
    }
}

multiversion! {
    /// For a unit of 16 adjacent lanes: `g[k * L + j] = fill` wherever the
    /// mask byte `m[k * inner + j]` is 0 (`k < g.len() / L`, `j < L`); `live[j]`
    /// whether any of lane j's bytes is set.
    fn mask_lanes<T: Float>(g: &mut [T], m: &[u8], inner: usize, live: &mut [bool; L], fill: T) {
        let mut any = [0u8; L];
        for (k, gk) in g.chunks_exact_mut(L).enumerate() {
            let mk: [u8; L] = m[k * inner..][..L].try_into().unwrap();
            let v: [T; L] = (&*gk).try_into().unwrap();
            // Whole arrays in and out, so that the selects are vectors (an
            // element-wise conditional store stayed scalar).
            let r: [T; L] = std::array::from_fn(|j| if mk[j] != 0 { v[j] } else { fill });
            gk.copy_from_slice(&r);
            any = std::array::from_fn(|j| any[j] | mk[j]);
        }
        for (l, a) in live.iter_mut().zip(any) {
            *l = a != 0;
        }
    }
}

multiversion! {
    /// The map outputs of a unit of 16 adjacent lanes: class k's lane array
    /// `res[k * L..][..L]` to `o + k * inner`, with `fill` wherever the mask
    /// byte `m[k * inner + j]` is 0 or lane j is not `live`.
    ///
    /// `o` must be writable for `(res.len() / L - 1) * inner + L` elements
    /// (a raw pointer: other units write the columns in between).
    fn store_masked_lanes<T: Float>(res: &[T], m: &[u8], inner: usize, live: &[bool; L], fill: T, o: *mut T) {
        for (k, rk) in res.chunks_exact(L).enumerate() {
            let mk: [u8; L] = m[k * inner..][..L].try_into().unwrap();
            let r: [T; L] = rk.try_into().unwrap();
            let v: [T; L] = std::array::from_fn(|j| if mk[j] != 0 && live[j] { r[j] } else { fill });
            // SAFETY: within `o`'s extent (see above).
            unsafe { std::ptr::write_unaligned(o.add(k * inner) as *mut [T; L], v) };
        }
    }
}

/// How far ahead (elements: two units of `L` adjacent columns) the column
/// units of an inner axis prefetch each class's lines while they gather
/// one unit (`cols_unit`, and cross-entropy's `inner_to_lanes`): a unit
/// reads one line of each of `n` classes, each from a page of its own, and
/// the hardware prefetchers do not keep up with that many streams. 2
/// threads, alternating A/B against none (10 rounds, float32): softmax
/// over axis 1 of 8x21x128x128 0.85, 4x150x64x64 0.96, 1x1000x4096 0.93;
/// softmax_backward 0.58; cross-entropy + gradient 0.84-0.90. One unit
/// ahead measured 0.98-1.03, three 0.80-1.25.
pub(crate) const INNER_PREFETCH: usize = 2 * L;

/// One unit of L rows through the column kernel: gather, compute, scatter.
/// All of the unit's reads happen before any of its writes, so an input may
/// be the output.
///
/// # Safety
/// As [`run_rows_raw`]; the unit's rows are written by no other unit.
#[allow(clippy::too_many_arguments)]
unsafe fn cols_unit<T: Float, Op: RowOp<T>>(
    op: &Op,
    layout: Layout,
    ins: &[Ptr<T>],
    mask: Option<&[u8]>,
    scratch: &mut [T],
    lanes: &[(usize, usize); L],
    w: usize,
    dst: Ptr<T>,
) {
    let Layout { n, inner, .. } = layout;
    let base: [usize; L] = std::array::from_fn(|j| lanes[j].0 * n * inner + lanes[j].1);
    // A full unit of an inner axis: each class's 16 lanes are 16 adjacent
    // elements, moved as one lane array (element by element, this driver's
    // baseline code took 8.8 ms for softmax over axis 0 of a C-ordered
    // 4096x1000 float32 array, 8.7 x a copy).
    let adjacent = inner > 1 && w == L && (0..L).all(|j| base[j] == base[0] + j);
    let (gathered, rest) = scratch.split_at_mut(n * L * ins.len());
    // Adjacent masked lanes: whether each has an unmasked entry.
    let mut live = [false; L];
    for (i, src) in ins.iter().enumerate() {
        let g = &mut gathered[i * n * L..(i + 1) * n * L];
        if adjacent {
            for (k, gk) in g.chunks_exact_mut(L).enumerate() {
                let ahead = src.get().wrapping_add(base[0] + k * inner + INNER_PREFETCH);
                crate::simd::prefetch(ahead as *const u8, 64);
                let v =
                    std::ptr::read_unaligned(src.get().add(base[0] + k * inner) as *const [T; L]);
                gk.copy_from_slice(&v);
            }
        } else {
            for k in 0..n {
                for j in 0..L {
                    g[k * L + j] = *src.get().add(base[j] + k * inner);
                }
            }
        }
        if i == 0 {
            if let Some(m) = mask {
                if adjacent {
                    // The 16 mask bytes of each class as one array, in a
                    // multiversioned helper (element by element here,
                    // softmax where= over axis 0 of a 1024x1024 float32
                    // array took 50 x a copy).
                    mask_lanes(g, &m[base[0]..], inner, &mut live, op.masked_input());
                } else {
                    for k in 0..n {
                        for j in 0..L {
                            if m[base[j] + k * inner] == 0 {
                                g[k * L + j] = op.masked_input();
                            }
                        }
                    }
                }
            }
        }
    }
    // Ops take at most two inputs: a fixed array avoids a heap allocation per unit.
    let mut views: [&[T]; 2] = [&[], &[]];
    for (v, g) in views.iter_mut().zip(gathered.chunks_exact(n * L)) {
        *v = g;
    }
    let reduces = op.reduces();
    let res = &mut rest[..if reduces { L } else { n * L }];
    op.cols(&views[..ins.len()], res);
    if adjacent {
        let fill = op.masked_fill();
        if reduces {
            // Adjacent lanes: outputs o * inner + c0 + j.
            let (o, c0) = lanes[0];
            let mut v: [T; L] = res[..L].try_into().unwrap();
            if mask.is_some() {
                for (x, &a) in v.iter_mut().zip(&live) {
                    if !a {
                        *x = fill;
                    }
                }
            }
            std::ptr::write_unaligned(dst.get().add(o * inner + c0) as *mut [T; L], v);
            return;
        }
        let o = dst.get().add(base[0]);
        if let Some(m) = mask {
            // A masked entry, and every entry of a fully masked row, is the
            // masked value (see `rows_task`).
            store_masked_lanes(res, &m[base[0]..], inner, &live, fill, o);
            return;
        }
        for (k, rk) in res.chunks_exact(L).enumerate() {
            let v: [T; L] = rk.try_into().unwrap();
            std::ptr::write_unaligned(o.add(k * inner) as *mut [T; L], v);
        }
        return;
    }
    for j in 0..w {
        let full_masked = match mask {
            None => false,
            Some(m) => (0..n).all(|k| m[base[j] + k * inner] == 0),
        };
        // Lane j's row (o, c) belongs to this unit only; its outputs are at
        // o*inner + c (reduction) or base[j] + k*inner (map).
        if reduces {
            let (o, c) = lanes[j];
            let v = if full_masked {
                op.masked_fill()
            } else {
                res[j]
            };
            *dst.get().add(o * inner + c) = v;
        } else {
            for k in 0..n {
                // A masked entry is the masked value (see `rows_task`).
                let masked = mask.is_some_and(|m| m[base[j] + k * inner] == 0);
                let v = if full_masked || masked {
                    op.masked_fill()
                } else {
                    res[k * L + j]
                };
                *dst.get().add(base[j] + k * inner) = v;
            }
        }
    }
}

/// [`cols_unit`] for `w` consecutive contiguous rows from `r0`, each input's
/// `w * n` elements one block from `ins[i]` (the rows in the array, or a
/// masked copy of them), transposed in registers ([`rows_to_lanes`]) and
/// back; lanes past `w` repeat the last row.
///
/// # Safety
/// As [`cols_unit`]; each `ins[i]` readable for `w * n` elements, all read
/// before anything is written.
unsafe fn cols_unit_contiguous<T: Float, Op: RowOp<T>>(
    op: &Op,
    n: usize,
    ins: &[*const T],
    scratch: &mut [T],
    r0: usize,
    w: usize,
    dst: Ptr<T>,
) {
    let (gathered, rest) = scratch.split_at_mut(n * L * ins.len());
    for (i, &src) in ins.iter().enumerate() {
        let g = &mut gathered[i * n * L..(i + 1) * n * L];
        let blk = std::slice::from_raw_parts(src, w * n);
        rows_to_lanes(blk, w, n, g);
    }
    let mut views: [&[T]; 2] = [&[], &[]];
    for (v, g) in views.iter_mut().zip(gathered.chunks_exact(n * L)) {
        *v = g;
    }
    if op.reduces() {
        let res = &mut rest[..L];
        op.cols(&views[..ins.len()], res);
        std::slice::from_raw_parts_mut(dst.get().add(r0), w).copy_from_slice(&res[..w]);
    } else {
        let res = &mut rest[..n * L];
        op.cols(&views[..ins.len()], res);
        let out = std::slice::from_raw_parts_mut(dst.get().add(r0 * n), w * n);
        lanes_to_rows(res, n, w, out);
    }
}

#[cfg(test)]
mod tests;

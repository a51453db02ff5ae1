//! Pure-Rust kernels on slices (no Python types) and the drivers that run them
//! over an array's rows, in parallel, for any axis.

pub mod activations;
pub mod elementwise;
pub mod losses;
pub mod optim;
pub mod softmax;

use crate::par::{for_each_task, SERIAL_ELEMS, TASK_ELEMS};
use crate::simd::{Float, LANES as L};

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
}

/// Rows shorter than this (on the last axis) run through the column kernels,
/// `L` rows at a time with lanes across rows.
pub const SHORT_ROW: usize = 32;

/// A raw output pointer shared by tasks that write disjoint elements.
#[derive(Clone, Copy)]
pub(crate) struct OutPtr<T>(pub(crate) *mut T);
// SAFETY: every task writes a disjoint set of indices (see `run_rows`).
unsafe impl<T> Send for OutPtr<T> {}
unsafe impl<T> Sync for OutPtr<T> {}
impl<T> OutPtr<T> {
    /// A method (not field access) so closures capture the whole `Send` wrapper.
    pub(crate) fn get(self) -> *mut T {
        self.0
    }
}

/// Runs `op` over every row of `ins` (each of `layout.len()` elements) into
/// `out` (`layout.len()` elements, or `layout.rows()` for a reduction).
/// `mask`, if given, covers `ins[0]`: zero entries count as -inf, and a row
/// with no true entry gets `op.masked_fill()`.
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
    let Layout { outer, n, inner } = layout;
    let per_row = if op.reduces() { 1 } else { n };
    assert!(!ins.is_empty() && ins.len() <= 2);
    assert!(ins.iter().all(|s| s.len() == layout.len()));
    assert!(mask.is_none_or(|m| m.len() == layout.len()));
    assert_eq!(out.len(), layout.rows() * per_row);
    if layout.rows() == 0 {
        return;
    }
    if n == 0 {
        // Only a reduction has output here: the value for an empty row.
        out.fill(op.masked_fill());
        return;
    }
    let total = layout.len();
    let ptr = OutPtr(out.as_mut_ptr());
    if inner == 1 && n >= SHORT_ROW {
        let rows_per_task = TASK_ELEMS.div_ceil(n).max(1);
        let ntasks = if total < SERIAL_ELEMS {
            1
        } else {
            outer.div_ceil(rows_per_task)
        };
        let rows_per_task = outer.div_ceil(ntasks);
        for_each_task(ntasks, |t| {
            let r0 = t * rows_per_task;
            let r1 = (r0 + rows_per_task).min(outer);
            if r0 >= r1 {
                return;
            }
            // SAFETY: task t alone writes rows r0..r1 of the output.
            let o = unsafe {
                std::slice::from_raw_parts_mut(ptr.get().add(r0 * per_row), (r1 - r0) * per_row)
            };
            rows_task(op, ins, mask, o, n, r0, r1);
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
        let units_per_task = (TASK_ELEMS / (n * L)).max(1);
        let ntasks = if total < SERIAL_ELEMS {
            1
        } else {
            units.div_ceil(units_per_task)
        };
        let units_per_task = units.div_ceil(ntasks);
        for_each_task(ntasks, |t| {
            let u0 = t * units_per_task;
            let u1 = (u0 + units_per_task).min(units);
            let mut scratch = vec![T::ZERO; n * L * (ins.len() + 1)];
            for u in u0..u1 {
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
                cols_unit(op, layout, ins, mask, &mut scratch, &lanes, w, ptr);
            }
        });
    }
}

/// Rows r0..r1 on the last axis, through the row kernel.
fn rows_task<T: Float, Op: RowOp<T>>(
    op: &Op,
    ins: &[&[T]],
    mask: Option<&[u8]>,
    out: &mut [T],
    n: usize,
    r0: usize,
    r1: usize,
) {
    let per_row = if op.reduces() { 1 } else { n };
    let sub: Vec<&[T]> = ins.iter().map(|s| &s[r0 * n..r1 * n]).collect();
    let Some(mask) = mask else {
        op.rows(&sub, out, n);
        return;
    };
    let mut row = vec![T::ZERO; n];
    for r in 0..r1 - r0 {
        let mr = &mask[(r0 + r) * n..(r0 + r + 1) * n];
        let o = &mut out[r * per_row..(r + 1) * per_row];
        if !mr.iter().any(|&b| b != 0) {
            o.fill(op.masked_fill());
            continue;
        }
        for ((d, &x), &keep) in row.iter_mut().zip(&sub[0][r * n..(r + 1) * n]).zip(mr) {
            *d = if keep != 0 { x } else { T::NEG_INF };
        }
        let mut ins_row: Vec<&[T]> = sub.iter().map(|s| &s[r * n..(r + 1) * n]).collect();
        ins_row[0] = &row;
        op.rows(&ins_row, o, n);
    }
}

/// One unit of L rows through the column kernel: gather, compute, scatter.
#[allow(clippy::too_many_arguments)]
fn cols_unit<T: Float, Op: RowOp<T>>(
    op: &Op,
    layout: Layout,
    ins: &[&[T]],
    mask: Option<&[u8]>,
    scratch: &mut [T],
    lanes: &[(usize, usize); L],
    w: usize,
    ptr: OutPtr<T>,
) {
    let Layout { n, inner, .. } = layout;
    let base: [usize; L] = std::array::from_fn(|j| lanes[j].0 * n * inner + lanes[j].1);
    let (gathered, rest) = scratch.split_at_mut(n * L * ins.len());
    for (i, src) in ins.iter().enumerate() {
        let g = &mut gathered[i * n * L..(i + 1) * n * L];
        for k in 0..n {
            for j in 0..L {
                g[k * L + j] = src[base[j] + k * inner];
            }
        }
        if i == 0 {
            if let Some(m) = mask {
                for k in 0..n {
                    for j in 0..L {
                        if m[base[j] + k * inner] == 0 {
                            g[k * L + j] = T::NEG_INF;
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
    for j in 0..w {
        let full_masked = match mask {
            None => false,
            Some(m) => (0..n).all(|k| m[base[j] + k * inner] == 0),
        };
        // SAFETY: lane j's row (o, c) belongs to this unit only; its outputs
        // are at o*inner + c (reduction) or base[j] + k*inner (map).
        unsafe {
            if reduces {
                let (o, c) = lanes[j];
                let v = if full_masked {
                    op.masked_fill()
                } else {
                    res[j]
                };
                *ptr.get().add(o * inner + c) = v;
            } else {
                for k in 0..n {
                    let v = if full_masked {
                        op.masked_fill()
                    } else {
                        res[k * L + j]
                    };
                    *ptr.get().add(base[j] + k * inner) = v;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests;

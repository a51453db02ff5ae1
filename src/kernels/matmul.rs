//! Matrix products for the MLP's layers: `C = A B` for float32/float64
//! matrices of any strides, through `matrixmultiply`'s packed GEMM (its
//! AVX-512, AVX2+FMA and NEON micro-kernels are chosen at run time, so a
//! default build uses AVX-512 where the CPU has it — unlike NumPy's bundled
//! OpenBLAS, which on this AMD Zen 5 VM picks its AVX2 "Haswell" kernels and
//! runs the MLP's products at about half the speed).
//!
//! Large products are split over the pool in blocks of C's rows (or columns,
//! when C is wider than tall). Each element of C is the same sequence of
//! fused multiply-adds over `k` (in blocks of 256, added to C in order)
//! wherever the block boundaries fall, so the result does not depend on the
//! thread count.

use super::elementwise::Ptr;
use crate::par::{for_each_task, num_threads};

/// The element types with a GEMM.
pub trait Gemm: Copy + Send + Sync + 'static {
    /// `c = a b` (C's previous contents ignored): `a` is `m x k`, `b` is
    /// `k x n`, `c` is `m x n`; element (i, j) of a matrix `x` is at
    /// `x + i * rs + j * cs` (strides in elements).
    ///
    /// # Safety
    /// Every element addressed must be in bounds; `c`'s elements must be
    /// distinct and not overlap `a` or `b`.
    #[allow(clippy::too_many_arguments)]
    unsafe fn gemm(
        m: usize,
        k: usize,
        n: usize,
        a: *const Self,
        rsa: isize,
        csa: isize,
        b: *const Self,
        rsb: isize,
        csb: isize,
        c: *mut Self,
        rsc: isize,
        csc: isize,
    );
}

impl Gemm for f32 {
    unsafe fn gemm(
        m: usize,
        k: usize,
        n: usize,
        a: *const f32,
        rsa: isize,
        csa: isize,
        b: *const f32,
        rsb: isize,
        csb: isize,
        c: *mut f32,
        rsc: isize,
        csc: isize,
    ) {
        matrixmultiply::sgemm(m, k, n, 1.0, a, rsa, csa, b, rsb, csb, 0.0, c, rsc, csc)
    }
}

impl Gemm for f64 {
    unsafe fn gemm(
        m: usize,
        k: usize,
        n: usize,
        a: *const f64,
        rsa: isize,
        csa: isize,
        b: *const f64,
        rsb: isize,
        csb: isize,
        c: *mut f64,
        rsc: isize,
        csc: isize,
    ) {
        matrixmultiply::dgemm(m, k, n, 1.0, a, rsa, csa, b, rsb, csb, 0.0, c, rsc, csc)
    }
}

/// A strided matrix view: element (i, j) at `ptr + i * rs + j * cs`.
#[derive(Clone, Copy)]
pub struct Mat<T> {
    pub ptr: Ptr<T>,
    pub rows: usize,
    pub cols: usize,
    pub rs: isize,
    pub cs: isize,
}

impl<T> Mat<T> {
    /// The view of rows `r0..r0 + rows` and columns `c0..c0 + cols`.
    fn block(self, r0: usize, rows: usize, c0: usize, cols: usize) -> Self {
        // wrapping_offset: the offset of an in-bounds element (for an empty
        // block possibly one past the end, never dereferenced).
        let off = r0 as isize * self.rs + c0 as isize * self.cs;
        Mat {
            ptr: Ptr(self.ptr.get().wrapping_offset(off)),
            rows,
            cols,
            ..self
        }
    }
}

/// Multiply-adds below which a product runs on the calling thread (~12 us
/// of work: a pool wake-up and a second packing of the shared operand would
/// cost more than they save).
pub const SERIAL_MULADDS: usize = 1 << 21;

/// Rows (or columns) of C per task at least.
pub const BLOCK: usize = 64;

/// A multiple of every micro-kernel's tile side (16 on AVX-512): blocks
/// start on whole tiles.
const TILE: usize = 32;

/// `c = a b`, in parallel for large products (see the module comment).
///
/// # Safety
/// `a` is `m x k`, `b` is `k x n`, `c` is `m x n` (checked), each element
/// addressed by a view in bounds; `c`'s elements distinct and disjoint from
/// `a`'s and `b`'s.
pub unsafe fn matmul<T: Gemm>(a: Mat<T>, b: Mat<T>, c: Mat<T>) {
    let (m, k, n) = (a.rows, a.cols, b.cols);
    assert!(b.rows == k && c.rows == m && c.cols == n, "matmul shapes");
    let run = |a: Mat<T>, b: Mat<T>, c: Mat<T>| {
        // SAFETY: the caller's contract, for a block of it.
        unsafe {
            T::gemm(
                c.rows,
                k,
                c.cols,
                a.ptr.get(),
                a.rs,
                a.cs,
                b.ptr.get(),
                b.rs,
                b.cs,
                c.ptr.get(),
                c.rs,
                c.cs,
            )
        }
    };
    let by_rows = m >= n;
    let long = if by_rows { m } else { n };
    let threads = num_threads();
    let ntasks = threads.min(long / BLOCK).max(1);
    if ntasks == 1 || m.saturating_mul(n).saturating_mul(k) < SERIAL_MULADDS {
        return run(a, b, c);
    }
    // Equal blocks rounded up to whole tiles, the last one taking the rest.
    let per = long.div_ceil(ntasks).next_multiple_of(TILE);
    let ntasks = long.div_ceil(per);
    for_each_task(ntasks, |t| {
        let (s, e) = (t * per, ((t + 1) * per).min(long));
        if by_rows {
            run(a.block(s, e - s, 0, k), b, c.block(s, e - s, 0, n));
        } else {
            run(a, b.block(0, k, s, e - s), c.block(0, m, s, e - s));
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A `rows x cols` view of `v`, stored row-major, or (`transposed`) as
    /// its transpose is.
    fn view<T>(v: *const T, rows: usize, cols: usize, transposed: bool) -> Mat<T> {
        let (rs, cs) = if transposed {
            (1, rows as isize)
        } else {
            (cols as isize, 1)
        };
        Mat {
            ptr: Ptr(v as *mut T),
            rows,
            cols,
            rs,
            cs,
        }
    }

    fn naive(a: &[f64], b: &[f64], m: usize, k: usize, n: usize, at: bool) -> Vec<f64> {
        let mut c = vec![0.0; m * n];
        for i in 0..m {
            for j in 0..n {
                c[i * n + j] = (0..k)
                    .map(|p| a[if at { p * m + i } else { i * k + p }] * b[p * n + j])
                    .sum();
            }
        }
        c
    }

    #[test]
    fn matmul_matches_a_naive_product_and_any_thread_count_bit_for_bit() {
        let mut seed = 12345u64;
        let mut rnd = || {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((seed >> 40) as f64 / (1u64 << 24) as f64) - 0.5
        };
        for &(m, k, n) in &[
            (1, 1, 1),
            (3, 0, 4),
            (0, 5, 3),
            (130, 300, 70),
            (70, 513, 200),
            (200, 64, 129),
            (257, 31, 65),
            (300, 200, 150),
            (150, 300, 260),
        ] {
            for at in [false, true] {
                let a: Vec<f64> = (0..m * k).map(|_| rnd()).collect();
                let b: Vec<f64> = (0..k * n).map(|_| rnd()).collect();
                let want = naive(&a, &b, m, k, n, at);
                let a32: Vec<f32> = a.iter().map(|&v| v as f32).collect();
                let b32: Vec<f32> = b.iter().map(|&v| v as f32).collect();
                let mut outs = vec![];
                for threads in [1, 2, 3, 8] {
                    crate::par::set_num_threads(threads);
                    let mut c = vec![f32::NAN; m * n];
                    let mut c64 = vec![f64::NAN; m * n];
                    unsafe {
                        let bv = view(b32.as_ptr(), k, n, false);
                        matmul(
                            view(a32.as_ptr(), m, k, at),
                            bv,
                            view(c.as_mut_ptr(), m, n, false),
                        );
                        let bv = view(b.as_ptr(), k, n, false);
                        matmul(
                            view(a.as_ptr(), m, k, at),
                            bv,
                            view(c64.as_mut_ptr(), m, n, false),
                        );
                    }
                    for i in 0..m * n {
                        let tol32 = 1e-6 * (k as f64).max(1.0);
                        assert!(
                            (c[i] as f64 - want[i]).abs() <= tol32,
                            "f32 {m}x{k}x{n} at {i}"
                        );
                        assert!((c64[i] - want[i]).abs() <= 1e-13 * (k as f64).max(1.0));
                    }
                    outs.push((c, c64));
                }
                for o in &outs[1..] {
                    let same32 =
                        o.0.iter()
                            .zip(&outs[0].0)
                            .all(|(x, y)| x.to_bits() == y.to_bits());
                    let same64 =
                        o.1.iter()
                            .zip(&outs[0].1)
                            .all(|(x, y)| x.to_bits() == y.to_bits());
                    assert!(same32 && same64, "thread counts differ at {m}x{k}x{n}");
                }
            }
        }
        crate::par::set_num_threads(1);
    }
}

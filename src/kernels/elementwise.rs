//! The one elementwise driver: a contiguous range of `n` units (elements, or
//! rows of a fixed width) split into fixed-size tasks of about `TASK_ELEMS`
//! elements, run in parallel on the pool (serially below
//! [`crate::par::SERIAL_ELEMS`]).
//! Task boundaries depend only on the sizes, never on the thread count, so a
//! per-task partial result (a column sum) combined in task order is
//! bit-identical for any number of threads.
//!
//! Kernels take raw pointers because an output may be *exactly* one of the
//! inputs (in-place); the lane helpers below read a whole lane array before
//! writing it, which makes exact aliasing safe. Partial overlap is the
//! caller's job to rule out.

use crate::par::{for_each_task, SERIAL_ELEMS, TASK_ELEMS};
use crate::simd::{Float, LANES as L};

/// A raw pointer that tasks writing disjoint ranges may share.
#[derive(Clone, Copy)]
pub struct Ptr<T>(pub *mut T);
// SAFETY: tasks only touch disjoint ranges (see `run_tasks`).
unsafe impl<T> Send for Ptr<T> {}
unsafe impl<T> Sync for Ptr<T> {}
impl<T> Ptr<T> {
    /// A method (not field access) so closures capture the whole wrapper.
    #[inline(always)]
    pub fn get(self) -> *mut T {
        self.0
    }
    pub fn null() -> Self {
        Ptr(std::ptr::null_mut())
    }
    pub fn is_null(self) -> bool {
        self.0.is_null()
    }
    /// Elements `[a, b)` as a slice.
    ///
    /// # Safety
    /// `[a, b)` must be in bounds and touched by one task only.
    #[allow(clippy::mut_from_ref)]
    pub unsafe fn chunk<'a>(self, a: usize, b: usize) -> &'a mut [T] {
        std::slice::from_raw_parts_mut(self.get().add(a), b - a)
    }
}

/// How `units` units of `width` elements are cut into tasks:
/// `(units_per_task, ntasks)`.
pub fn tasks(units: usize, width: usize) -> (usize, usize) {
    if units == 0 {
        return (1, 0);
    }
    let per = (TASK_ELEMS / width.max(1)).max(1);
    (per, units.div_ceil(per))
}

/// Runs `f(task, u0, u1)` over `units` units of `width` elements each, in the
/// fixed tasks of [`tasks`], in parallel unless the total is small.
pub fn run_tasks(units: usize, width: usize, f: impl Fn(usize, usize, usize) + Sync + Send) {
    let (per, ntasks) = tasks(units, width);
    let body = |t: usize| {
        let u0 = t * per;
        let u1 = (u0 + per).min(units);
        f(t, u0, u1)
    };
    if units * width < SERIAL_ELEMS {
        (0..ntasks).for_each(body);
    } else {
        for_each_task(ntasks, body);
    }
}

/// `f(u0, u1)` over the fixed tasks of [`run_tasks`] for `units` single
/// elements, in parallel unless small, the results folded in task order by
/// `fold` (so the result is the same for any thread count). With one task
/// (or none) it is `f(0, units)` alone, with nothing allocated.
pub fn reduce_tasks<R: Copy + Send>(
    units: usize,
    f: impl Fn(usize, usize) -> R + Sync + Send,
    fold: impl FnMut(R, R) -> R,
) -> R {
    let (_, ntasks) = tasks(units, 1);
    if ntasks <= 1 {
        return f(0, units);
    }
    let mut parts: Vec<Option<R>> = vec![None; ntasks];
    let out = Ptr(parts.as_mut_ptr());
    run_tasks(units, 1, |k, a, b| {
        let r = f(a, b);
        // SAFETY: task k writes entry k only, and `parts` has `ntasks`.
        unsafe { out.get().add(k).write(Some(r)) };
    });
    let mut parts = parts.into_iter().map(|r| r.expect("every task ran"));
    let first = parts.next().expect("more than one task");
    parts.fold(first, fold)
}

/// Where lane array `i..i+L` of an input `p` of `n` elements is read from:
/// `p + i` itself, or for the partial tail `buf`, filled with the remaining
/// elements and zeros.
///
/// Every lane array is then read by one fixed-width load from the returned
/// pointer. (With a width-dependent copy in the loop instead, LLVM merges
/// the full and partial copies into one variable-length `memcpy` call, or
/// routes every lane array through the stack.)
///
/// # Safety
/// `p` readable for `n` elements and `i < n`.
#[inline(always)]
pub(crate) unsafe fn src<T: Copy>(p: *const T, i: usize, n: usize, buf: &mut [T; L]) -> *const T {
    if i + L <= n {
        p.add(i)
    } else {
        fill_tail(p.add(i), n - i, buf);
        buf.as_ptr()
    }
}

#[inline(never)]
#[cold]
unsafe fn fill_tail<T: Copy>(p: *const T, w: usize, buf: &mut [T; L]) {
    std::ptr::copy_nonoverlapping(p, buf.as_mut_ptr(), w);
}

/// Where lane array `i..i+L` of an output `p` of `n` elements is written:
/// `p + i`, or `buf` for the partial tail (which [`flush`] then copies out).
///
/// # Safety
/// `p` writable for `n` elements and `i < n`.
#[inline(always)]
pub(crate) unsafe fn dst<T: Copy>(p: *mut T, i: usize, n: usize, buf: &mut [T; L]) -> *mut T {
    if i + L <= n {
        p.add(i)
    } else {
        buf.as_mut_ptr()
    }
}

/// Copies a partial tail written through [`dst`] to `p + i`.
///
/// # Safety
/// As [`dst`].
#[inline(always)]
pub(crate) unsafe fn flush<T: Copy>(p: *mut T, i: usize, n: usize, buf: &[T; L]) {
    if i + L > n {
        flush_tail(p.add(i), n - i, buf);
    }
}

#[inline(never)]
#[cold]
unsafe fn flush_tail<T: Copy>(p: *mut T, w: usize, buf: &[T; L]) {
    std::ptr::copy_nonoverlapping(buf.as_ptr(), p, w);
}

/// A lane array read from a pointer from [`src`].
///
/// # Safety
/// `p` readable for `L` elements.
#[inline(always)]
pub(crate) unsafe fn ld<T: Copy>(p: *const T) -> [T; L] {
    std::ptr::read_unaligned(p as *const [T; L])
}

/// A lane array written to a pointer from [`dst`].
///
/// # Safety
/// `p` writable for `L` elements.
#[inline(always)]
pub(crate) unsafe fn st<T: Copy>(p: *mut T, v: [T; L]) {
    std::ptr::write_unaligned(p as *mut [T; L], v)
}

/// Writes a full lane array at `p` (from [`dst`]), with a non-temporal
/// store when `stream` (`simd::stream`).
///
/// # Safety
/// `p` writable for `L` elements, and 16-byte aligned when `stream`
/// (then [`crate::simd::stream::fence`] before the task ends).
#[inline(always)]
unsafe fn put<T: Copy>(p: *mut T, v: [T; L], stream: bool) {
    if stream {
        crate::simd::stream::store(p, v);
    } else {
        st(p, v);
    }
}

/// How far ahead of the lane array being read [`map1`] and [`map2`]
/// prefetch their inputs when asked to (their `prefetch`), and the pointwise
/// losses always. An activation bound by its arithmetic (exp, log,
/// division) fills the out-of-order window with work on lines already
/// loaded, and with the hardware prefetchers alone an array beyond L2
/// stalls the loop. 4096x1024 float32 on the Intel VM of stop 27, 2
/// threads, alternating A/B against none: sigmoid 0.84-0.86, tanh_backward
/// 0.72-0.80 of the time; distances of 1, 2 and 4 KiB gave the same within
/// the spread. The piecewise-linear activations are bound by memory instead
/// and do not ask (float64 relu over 32 MB was 1.10 x slower with it).
const AHEAD_BYTES: usize = 2048;

/// Prefetches the lane array [`AHEAD_BYTES`] past element `i` of `p` (any
/// address: a prefetch never faults).
#[inline(always)]
pub(crate) fn ahead<T>(p: *const T, i: usize) {
    let d = AHEAD_BYTES / std::mem::size_of::<T>();
    crate::simd::prefetch(
        p.wrapping_add(i + d) as *const u8,
        L * std::mem::size_of::<T>(),
    );
}

/// `y[i] = f(x[i])` for `i < n`, a lane array at a time. What a NaN in x
/// gives is `f`'s to decide (no select here: in a kernel bound by its count
/// of vector operations, that compare and blend cost 5-8 %). `y` may equal
/// `x`. With `STREAM`, the full lane arrays of the output go out with
/// non-temporal stores (`simd::stream`; the caller decides, and `y` must not
/// be `x`; an output not 16-byte aligned gets normal stores). With
/// `prefetch`, the input is prefetched [`AHEAD_BYTES`] ahead.
///
/// `f` is called from one place only (the tail goes through the same call as
/// full lane arrays): LLVM then inlines it however large it is, so it is
/// vectorised across the lanes instead of being called once per element.
/// (So a caller wanting both ways of storing defines its `f` twice, one per
/// instance, rather than calling both with one closure.)
///
/// # Safety
/// `x` readable and `y` writable for `n` elements; `y` equals `x` or does not
/// overlap it.
#[inline(always)]
pub unsafe fn map1<T: Float, const STREAM: bool>(
    x: *const T,
    y: *mut T,
    n: usize,
    prefetch: bool,
    f: impl Fn(T) -> T,
) {
    map1_lanes::<T, STREAM>(x, y, n, prefetch, |a| lane1(a, &f))
}

/// [`map1`] with `f` over a whole lane array (for a kernel written in
/// intrinsics).
///
/// # Safety
/// As [`map1`].
#[inline(always)]
pub unsafe fn map1_lanes<T: Float, const STREAM: bool>(
    x: *const T,
    y: *mut T,
    n: usize,
    prefetch: bool,
    f: impl Fn([T; L]) -> [T; L],
) {
    let stream = STREAM && crate::simd::stream::aligned(y);
    let (mut bx, mut by) = ([T::ZERO; L], [T::ZERO; L]);
    let mut i = 0;
    while i < n {
        if prefetch {
            ahead(x, i);
        }
        let b = f(ld(src(x, i, n, &mut bx)));
        put(dst(y, i, n, &mut by), b, stream && i + L <= n);
        flush(y, i, n, &by);
        crate::simd::lane_barrier();
        i += L;
    }
    if stream {
        crate::simd::stream::fence();
    }
}

/// `y[i] = f(g[i], x[i])` for `i < n` (NaN in x as in [`map1`]). `y` may
/// equal `g` or `x` (unless `STREAM`, as in [`map1`]); `prefetch` as in
/// [`map1`], for both inputs. One call site of `f`, as in [`map1`].
///
/// # Safety
/// As [`map1`] for both inputs.
#[inline(always)]
pub unsafe fn map2<T: Float, const STREAM: bool>(
    g: *const T,
    x: *const T,
    y: *mut T,
    n: usize,
    prefetch: bool,
    f: impl Fn(T, T) -> T,
) {
    map2_lanes::<T, STREAM>(g, x, y, n, prefetch, |a, b| lane2(a, b, &f))
}

/// [`map2`] with `f` over whole lane arrays (for a kernel written in
/// intrinsics).
///
/// # Safety
/// As [`map2`].
#[inline(always)]
pub unsafe fn map2_lanes<T: Float, const STREAM: bool>(
    g: *const T,
    x: *const T,
    y: *mut T,
    n: usize,
    prefetch: bool,
    f: impl Fn([T; L], [T; L]) -> [T; L],
) {
    let stream = STREAM && crate::simd::stream::aligned(y);
    let (mut bg, mut bx, mut by) = ([T::ZERO; L], [T::ZERO; L], [T::ZERO; L]);
    let mut i = 0;
    while i < n {
        if prefetch {
            ahead(g, i);
            ahead(x, i);
        }
        let r = f(ld(src(g, i, n, &mut bg)), ld(src(x, i, n, &mut bx)));
        put(dst(y, i, n, &mut by), r, stream && i + L <= n);
        flush(y, i, n, &by);
        crate::simd::lane_barrier();
        i += L;
    }
    if stream {
        crate::simd::stream::fence();
    }
}

/// One lane array of `f`.
#[inline(always)]
pub fn lane1<T: Float>(a: [T; L], f: &impl Fn(T) -> T) -> [T; L] {
    let mut b = [T::ZERO; L];
    for i in 0..L {
        b[i] = f(a[i]);
    }
    b
}

/// One lane array of `f(g, x)`.
#[inline(always)]
pub fn lane2<T: Float>(a: [T; L], b: [T; L], f: &impl Fn(T, T) -> T) -> [T; L] {
    let mut r = [T::ZERO; L];
    for i in 0..L {
        r[i] = f(a[i], b[i]);
    }
    r
}

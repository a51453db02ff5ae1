//! Non-temporal ("streaming") stores for outputs too large to stay in cache.
//!
//! A normal store to a line that is not in cache first reads the line from
//! memory (a read for ownership), so writing an output costs two transfers
//! per line, a read and the later write-back. When a pass touches more than
//! the last-level cache holds, its output is evicted before anything reads
//! it again, and the read buys nothing: a non-temporal store writes whole
//! lines without reading them. An activation's backward pass (two inputs,
//! one output) then moves three arrays' worth of lines instead of four, and
//! its forward pass two instead of three. Below that size the output stays
//! in cache for whatever reads it next, and normal stores are kept.
//!
//! x86-64 only (`movnt*`, then `sfence` before the task ends); elsewhere
//! [`wanted`] is always false.

use super::LANES as L;
use std::sync::LazyLock;

/// Bytes of the largest cache (the last level) of CPU 0, from Linux's sysfs;
/// 32 MiB where that cannot be read.
fn last_level_cache() -> usize {
    let read = |p: String| std::fs::read_to_string(p).ok();
    let mut best = 0;
    for i in 0..16 {
        let dir = format!("/sys/devices/system/cpu/cpu0/cache/index{i}");
        let Some(size) = read(format!("{dir}/size")) else {
            continue;
        };
        let size = size.trim();
        let (num, mult) = match size.strip_suffix('K') {
            Some(k) => (k, 1 << 10),
            None => match size.strip_suffix('M') {
                Some(m) => (m, 1 << 20),
                None => (size, 1),
            },
        };
        if let Ok(v) = num.parse::<usize>() {
            best = best.max(v * mult);
        }
    }
    if best == 0 {
        32 << 20
    } else {
        best
    }
}

static THRESHOLD: LazyLock<usize> = LazyLock::new(last_level_cache);

/// Whether a pass that reads and writes `bytes` in all (inputs and output)
/// should write its output with non-temporal stores: at least the size of
/// the last-level cache, on x86-64.
pub fn wanted(bytes: usize) -> bool {
    cfg!(target_arch = "x86_64") && bytes >= *THRESHOLD
}

/// Whether an output at `p` can take [`store`]: 16-byte aligned.
pub fn aligned<T>(p: *const T) -> bool {
    (p as usize).is_multiple_of(16)
}

/// Stores a lane array at `p` without reading its lines first, with the
/// widest non-temporal store of the current level that `p`'s alignment
/// allows (a lane array is 64 or 128 bytes, so that alignment is the same
/// for every lane array of an aligned output, and write-combining still
/// assembles whole lines from narrower stores).
///
/// # Safety
/// `p` writable for `L` elements and 16-byte aligned; [`fence`] before
/// another thread may read them.
#[inline(always)]
pub unsafe fn store<T: Copy>(p: *mut T, v: [T; L]) {
    #[cfg(target_arch = "x86_64")]
    {
        use super::Level;
        use std::arch::x86_64::*;
        const { assert!(std::mem::size_of::<[T; L]>().is_multiple_of(64)) };
        let bytes = std::mem::size_of::<[T; L]>();
        let src = v.as_ptr().cast::<u8>();
        let dst = p.cast::<u8>();
        let at = p as usize;
        // SAFETY (each arm): within the lane array and the caller's aligned
        // output, at a level the CPU has (`level()` reports no other).
        match super::level() {
            Level::Avx512 if at.is_multiple_of(64) => {
                for k in (0..bytes).step_by(64) {
                    unsafe {
                        _mm512_stream_si512(
                            dst.add(k).cast(),
                            _mm512_loadu_si512(src.add(k).cast()),
                        )
                    };
                }
            }
            Level::Avx512 | Level::Avx2 if at.is_multiple_of(32) => {
                for k in (0..bytes).step_by(32) {
                    unsafe {
                        _mm256_stream_si256(
                            dst.add(k).cast(),
                            _mm256_loadu_si256(src.add(k).cast()),
                        )
                    };
                }
            }
            _ => {
                for k in (0..bytes).step_by(16) {
                    unsafe {
                        _mm_stream_si128(dst.add(k).cast(), _mm_loadu_si128(src.add(k).cast()))
                    };
                }
            }
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        // SAFETY: as the caller guarantees.
        unsafe { std::ptr::write_unaligned(p as *mut [T; L], v) };
    }
}

/// Orders the non-temporal stores before whatever follows (they are weakly
/// ordered: without it, another thread told the task is done could read
/// stale lines).
#[inline(always)]
pub fn fence() {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: sfence has no preconditions (SSE is part of x86-64).
    unsafe {
        std::arch::x86_64::_mm_sfence()
    };
}

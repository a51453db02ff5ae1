//! Which instruction set the kernels run with: detected once, overridable with
//! the `LOGITKIT_SIMD` environment variable (`scalar`, `avx2`, `avx512`, `auto`).

use std::sync::atomic::{AtomicU8, Ordering};

/// An instruction-set level; `Scalar` is the portable build for the baseline
/// target (what the compiler may assume without run-time detection).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Level {
    Scalar = 1,
    Avx2 = 2,
    Avx512 = 3,
    Neon = 4,
}

static LEVEL: AtomicU8 = AtomicU8::new(0);

fn best() -> Level {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx512f")
            && std::arch::is_x86_feature_detected!("avx512bw")
            && std::arch::is_x86_feature_detected!("avx512dq")
            && std::arch::is_x86_feature_detected!("avx512vl")
            && std::arch::is_x86_feature_detected!("avx2")
            && std::arch::is_x86_feature_detected!("fma")
            && std::arch::is_x86_feature_detected!("bmi1")
            && std::arch::is_x86_feature_detected!("bmi2")
            && std::arch::is_x86_feature_detected!("lzcnt")
            && std::arch::is_x86_feature_detected!("popcnt")
        {
            return Level::Avx512;
        }
        if std::arch::is_x86_feature_detected!("avx2")
            && std::arch::is_x86_feature_detected!("fma")
            && std::arch::is_x86_feature_detected!("bmi1")
            && std::arch::is_x86_feature_detected!("bmi2")
            && std::arch::is_x86_feature_detected!("lzcnt")
            && std::arch::is_x86_feature_detected!("popcnt")
        {
            return Level::Avx2;
        }
        Level::Scalar
    }
    #[cfg(target_arch = "aarch64")]
    {
        // NEON is part of the aarch64 baseline, so the portable build uses it.
        Level::Neon
    }
    #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
    {
        Level::Scalar
    }
}

/// Parses a `LOGITKIT_SIMD` value and clamps it to what the CPU supports.
pub fn parse_level(name: &str) -> Option<Level> {
    let best = best();
    let wanted = match name.trim().to_ascii_lowercase().as_str() {
        "" | "auto" | "native" => return Some(best),
        "scalar" | "none" | "baseline" => Level::Scalar,
        "avx2" => Level::Avx2,
        "avx512" => Level::Avx512,
        "neon" => Level::Neon,
        _ => return None,
    };
    // Never run code the CPU cannot execute: fall back to the best available.
    let ok = matches!(
        (wanted, best),
        (Level::Scalar, _)
            | (Level::Avx2, Level::Avx2 | Level::Avx512)
            | (Level::Avx512, Level::Avx512)
            | (Level::Neon, Level::Neon)
    );
    Some(if ok { wanted } else { best })
}

/// Reads `LOGITKIT_SIMD` (unknown values mean `auto`) and stores the level.
pub fn set_level_from_env() -> Level {
    let lvl = std::env::var("LOGITKIT_SIMD")
        .ok()
        .and_then(|v| parse_level(&v))
        .unwrap_or_else(best);
    LEVEL.store(lvl as u8, Ordering::Relaxed);
    lvl
}

/// The level kernels dispatch on.
#[inline]
pub fn level() -> Level {
    match LEVEL.load(Ordering::Relaxed) {
        1 => Level::Scalar,
        2 => Level::Avx2,
        3 => Level::Avx512,
        4 => Level::Neon,
        _ => set_level_from_env(),
    }
}

/// Human-readable name of the active level.
pub fn level_name() -> &'static str {
    match level() {
        Level::Scalar => "scalar",
        Level::Avx2 => "avx2",
        Level::Avx512 => "avx512",
        Level::Neon => "neon",
    }
}

/// Forces a level (tests and benchmarks); clamps to what the CPU supports.
pub fn set_level(l: Level) {
    let name = match l {
        Level::Scalar => "scalar",
        Level::Avx2 => "avx2",
        Level::Avx512 => "avx512",
        Level::Neon => "neon",
    };
    let lvl = parse_level(name).unwrap_or(Level::Scalar);
    LEVEL.store(lvl as u8, Ordering::Relaxed);
}

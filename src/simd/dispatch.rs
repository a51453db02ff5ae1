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

/// The best level this CPU supports.
pub(crate) fn best() -> Level {
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

/// The level a `LOGITKIT_SIMD` value asks for (`auto` is the best this CPU
/// runs), or `None` for an unknown value.
fn requested_level(name: &str) -> Option<Level> {
    Some(match name.trim().to_ascii_lowercase().as_str() {
        "" | "auto" | "native" => best(),
        "scalar" | "none" | "baseline" => Level::Scalar,
        "avx2" => Level::Avx2,
        "avx512" => Level::Avx512,
        "neon" => Level::Neon,
        _ => return None,
    })
}

/// `wanted` if this CPU can run it, else the best level it can.
fn clamp(wanted: Level) -> Level {
    let best = best();
    // Never run code the CPU cannot execute: fall back to the best available.
    let ok = matches!(
        (wanted, best),
        (Level::Scalar, _)
            | (Level::Avx2, Level::Avx2 | Level::Avx512)
            | (Level::Avx512, Level::Avx512)
            | (Level::Neon, Level::Neon)
    );
    if ok {
        wanted
    } else {
        best
    }
}

/// Parses a `LOGITKIT_SIMD` value and clamps it to what the CPU supports.
pub fn parse_level(name: &str) -> Option<Level> {
    requested_level(name).map(clamp)
}

/// Why the `LOGITKIT_SIMD` environment variable is not followed as given
/// (an unknown value, or a level this CPU cannot run), if it is set and is
/// not.
pub fn env_warning() -> Option<String> {
    let v = std::env::var("LOGITKIT_SIMD").ok()?;
    let best = name(best());
    match requested_level(&v) {
        None => Some(format!(
            "LOGITKIT_SIMD={v:?} is not one of auto, scalar, avx2, avx512, neon; using {best}"
        )),
        Some(w) if clamp(w) != w => Some(format!(
            "LOGITKIT_SIMD={v:?}: this CPU cannot run {}; using {best}",
            name(w)
        )),
        Some(_) => None,
    }
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

fn name(l: Level) -> &'static str {
    match l {
        Level::Scalar => "scalar",
        Level::Avx2 => "avx2",
        Level::Avx512 => "avx512",
        Level::Neon => "neon",
    }
}

/// Human-readable name of the active level.
pub fn level_name() -> &'static str {
    name(level())
}

/// Forces a level (tests and benchmarks); clamps to what the CPU supports.
pub fn set_level(l: Level) {
    LEVEL.store(clamp(l) as u8, Ordering::Relaxed);
}

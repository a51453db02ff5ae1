//! logitkit: numerically stable softmax-family kernels for NumPy.
//!
//! `simd` and `kernels` are plain Rust on slices; `py` (feature `python`) is
//! the PyO3 binding layer and the only place Python types appear.

pub mod kernels;
pub mod par;
pub mod simd;

#[cfg(feature = "python")]
mod py;

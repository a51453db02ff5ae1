//! The PyO3 binding layer: dtype dispatch, shape and axis checks, `out=`,
//! GIL release. Registration only here; each family has its own file.

mod activations;
mod array;
mod losses;
mod matmul;
mod metrics;
mod optim;
mod rows;

use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use rows::{row_call, AxisArg, RowKind};

/// Softmax along `axis`: exp(x - max) / sum(exp(x - max)), computed in one
/// online max-and-sum pass and one write pass per row.
///
/// x: array-like (float32 and float64 computed natively; integers and bools
/// promoted like a NumPy ufunc). axis: int; a tuple of ints, whose
/// elements together form each row, as in SciPy's softmax; or None for all
/// elements.
/// where: boolean mask broadcastable to x; masked entries give 0, and a row
/// with every entry masked gives all zeros. Without a mask a row of all -inf
/// gives NaN (as in PyTorch and SciPy); NaN propagates.
/// out: array of the result's shape and dtype to write into (may be x).
///
/// >>> softmax([4.0, 2.0, -2.0])
/// array([0.87887824, 0.11894324, 0.00217852])
#[pyfunction]
#[pyo3(signature = (x, axis=Some(AxisArg::One(-1)), *, r#where=None, out=None), text_signature = "(x, axis=-1, *, where=None, out=None)")]
fn softmax<'py>(
    py: Python<'py>,
    x: &Bound<'py, PyAny>,
    axis: Option<AxisArg>,
    r#where: Option<&Bound<'py, PyAny>>,
    out: Option<&Bound<'py, PyAny>>,
) -> PyResult<Bound<'py, PyAny>> {
    row_call(py, RowKind::Softmax, &[(x, "x")], axis, r#where, out, false)
}

/// Log-softmax along `axis`: x - max - log(sum(exp(x - max))), rounded once,
/// so tiny values are kept (log_softmax([20, 0])[0] = -2.06e-09, not 0).
///
/// Masked entries (where=False) give -inf; a fully masked row gives all -inf.
/// Arguments as for softmax.
///
/// >>> log_softmax([4.0, 2.0, -2.0])
/// array([-0.12910897, -2.12910897, -6.12910897])
#[pyfunction]
#[pyo3(signature = (x, axis=Some(AxisArg::One(-1)), *, r#where=None, out=None), text_signature = "(x, axis=-1, *, where=None, out=None)")]
fn log_softmax<'py>(
    py: Python<'py>,
    x: &Bound<'py, PyAny>,
    axis: Option<AxisArg>,
    r#where: Option<&Bound<'py, PyAny>>,
    out: Option<&Bound<'py, PyAny>>,
) -> PyResult<Bound<'py, PyAny>> {
    row_call(
        py,
        RowKind::LogSoftmax,
        &[(x, "x")],
        axis,
        r#where,
        out,
        false,
    )
}

/// log(sum(exp(x))) along `axis` without overflow: max + log(sum(exp(x - max))).
///
/// The result has x's shape without `axis` (kept as length 1 with keepdims).
/// An empty or fully masked row gives -inf; a row holding +inf gives +inf.
///
/// >>> logsumexp([4.0, 2.0, -2.0])
/// 4.129108968...
#[pyfunction]
#[pyo3(signature = (x, axis=Some(AxisArg::One(-1)), *, r#where=None, keepdims=false, out=None), text_signature = "(x, axis=-1, *, where=None, keepdims=False, out=None)")]
fn logsumexp<'py>(
    py: Python<'py>,
    x: &Bound<'py, PyAny>,
    axis: Option<AxisArg>,
    r#where: Option<&Bound<'py, PyAny>>,
    keepdims: bool,
    out: Option<&Bound<'py, PyAny>>,
) -> PyResult<Bound<'py, PyAny>> {
    row_call(
        py,
        RowKind::LogSumExp,
        &[(x, "x")],
        axis,
        r#where,
        out,
        keepdims,
    )
}

/// Gradient of softmax: y * (grad - sum(grad * y, axis)), where y is
/// softmax's *output* and grad the upstream gradient (same shape).
///
/// >>> y = softmax([1.0, 2.0]); softmax_backward([1.0, 0.0], y)
/// array([ 0.19661193, -0.19661193])
#[pyfunction]
#[pyo3(signature = (grad, y, axis=Some(AxisArg::One(-1)), *, out=None), text_signature = "(grad, y, axis=-1, *, out=None)")]
fn softmax_backward<'py>(
    py: Python<'py>,
    grad: &Bound<'py, PyAny>,
    y: &Bound<'py, PyAny>,
    axis: Option<AxisArg>,
    out: Option<&Bound<'py, PyAny>>,
) -> PyResult<Bound<'py, PyAny>> {
    row_call(
        py,
        RowKind::SoftmaxBackward,
        &[(grad, "grad"), (y, "y")],
        axis,
        None,
        out,
        false,
    )
}

/// Gradient of log_softmax: grad - exp(y) * sum(grad, axis), where y is
/// log_softmax's *output* and grad the upstream gradient (same shape).
///
/// >>> y = log_softmax([1.0, 2.0]); log_softmax_backward([1.0, 0.0], y)
/// array([ 0.73105858, -0.73105858])
#[pyfunction]
#[pyo3(signature = (grad, y, axis=Some(AxisArg::One(-1)), *, out=None), text_signature = "(grad, y, axis=-1, *, out=None)")]
fn log_softmax_backward<'py>(
    py: Python<'py>,
    grad: &Bound<'py, PyAny>,
    y: &Bound<'py, PyAny>,
    axis: Option<AxisArg>,
    out: Option<&Bound<'py, PyAny>>,
) -> PyResult<Bound<'py, PyAny>> {
    row_call(
        py,
        RowKind::LogSoftmaxBackward,
        &[(grad, "grad"), (y, "y")],
        axis,
        None,
        out,
        false,
    )
}

/// Sets how many threads logitkit's kernels use (n >= 1). Results are
/// bit-identical for any thread count. The default is the environment
/// variable LOGITKIT_NUM_THREADS, else the number of available CPUs.
#[pyfunction]
fn set_num_threads(n: &Bound<'_, PyAny>) -> PyResult<()> {
    let max = crate::par::MAX_THREADS;
    let bad = || {
        Ok::<_, PyErr>(PyValueError::new_err(format!(
            "n must be a number of threads from 1 to {max}, got {}",
            n.repr()?
        )))
    };
    if n.is_instance_of::<pyo3::types::PyBool>() {
        return Err(PyTypeError::new_err("n must be an integer, got bool"));
    }
    match array::i64_arg(n, "n")? {
        Some(v) if (1..=max as i64).contains(&v) => crate::par::set_num_threads(v as usize),
        _ => return Err(bad()?),
    }
    Ok(())
}

/// The number of threads logitkit's kernels use.
#[pyfunction]
fn get_num_threads() -> usize {
    crate::par::num_threads()
}

/// The instruction set the kernels dispatch to: "avx512", "avx2", "neon" or
/// "scalar" (set LOGITKIT_SIMD=scalar before import to force the portable build).
#[pyfunction]
fn simd_level() -> &'static str {
    crate::simd::level_name()
}

#[pymodule]
fn _core(m: &Bound<'_, PyModule>) -> PyResult<()> {
    crate::simd::set_level_from_env();
    // A mistyped or unsupported setting is not silently replaced: the
    // import warns (once per process, like any import-time warning).
    let py = m.py();
    let warnings = [crate::simd::env_warning(), crate::par::env_warning()];
    for msg in warnings.into_iter().flatten() {
        let msg = std::ffi::CString::new(msg).unwrap_or_default();
        PyErr::warn(
            py,
            &py.get_type::<pyo3::exceptions::PyRuntimeWarning>(),
            &msg,
            1,
        )?;
    }
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add_function(wrap_pyfunction!(softmax, m)?)?;
    m.add_function(wrap_pyfunction!(log_softmax, m)?)?;
    m.add_function(wrap_pyfunction!(logsumexp, m)?)?;
    m.add_function(wrap_pyfunction!(softmax_backward, m)?)?;
    m.add_function(wrap_pyfunction!(log_softmax_backward, m)?)?;
    m.add_function(wrap_pyfunction!(set_num_threads, m)?)?;
    m.add_function(wrap_pyfunction!(get_num_threads, m)?)?;
    m.add_function(wrap_pyfunction!(simd_level, m)?)?;
    optim::register(m)?;
    losses::register(m)?;
    activations::register(m)?;
    matmul::register(m)?;
    metrics::register(m)?;
    Ok(())
}

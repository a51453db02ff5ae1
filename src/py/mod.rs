//! The PyO3 binding layer: dtype dispatch, shape and axis checks, `out=`,
//! GIL release. Registration only here; each family has its own file.

mod activations;
mod array;
mod losses;
mod matmul;
mod metrics;
mod optim;
mod rows;

use numpy::{PyUntypedArray, PyUntypedArrayMethods};
use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyFloat, PyInt, PyTuple};
use rows::{row_call, AxisArg, RowKind};

use crate::kernels::softmax::LseOut;

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

/// A Python `float`, `int` or `bool` itself: NumPy's weak scalars, which take
/// the array's dtype. A NumPy scalar is strong (NEP 50), `np.float64`
/// included although it subclasses `float`: it promotes as an array does.
pub(crate) fn python_number(v: &Bound<'_, PyAny>) -> bool {
    v.is_exact_instance_of::<PyFloat>()
        || v.is_exact_instance_of::<PyInt>()
        || v.is_exact_instance_of::<pyo3::types::PyBool>()
}

/// log(sum(exp(x))) along `axis` without overflow: max + log(sum(exp(x - max))).
///
/// The result has x's shape without `axis` (kept as length 1 with keepdims).
/// An empty or fully masked row gives -inf; a row holding +inf gives +inf.
///
/// b: weights, broadcastable to x, as in SciPy's logsumexp: log(sum(b *
/// exp(x))). Entries whose weight is 0 are left out (so a NaN or +inf there
/// does not count). A row whose sum is negative gives NaN, unless
/// return_sign is set. A Python number as b keeps x's dtype; an array
/// or a NumPy scalar promotes with x as a NumPy ufunc would.
/// return_sign: return (log(|sum|), sign(sum)); the sign is 1, -1, 0 (for
/// a sum of 0 and for a row with no entry) or NaN. out= is then a tuple of
/// two arrays, or None. The weighted path reads the data once for the
/// value and once more for the sign.
///
/// >>> logsumexp([4.0, 2.0, -2.0])
/// 4.129108968...
/// >>> logsumexp([1.0, 2.0], b=[1.0, -1.0], return_sign=True)
/// (1.541324854612918, -1.0)
#[pyfunction]
#[pyo3(signature = (x, axis=Some(AxisArg::One(-1)), *, b=None, r#where=None, keepdims=false, return_sign=false, out=None), text_signature = "(x, axis=-1, *, b=None, where=None, keepdims=False, return_sign=False, out=None)")]
#[allow(clippy::too_many_arguments)]
fn logsumexp<'py>(
    py: Python<'py>,
    x: &Bound<'py, PyAny>,
    axis: Option<AxisArg>,
    b: Option<&Bound<'py, PyAny>>,
    r#where: Option<&Bound<'py, PyAny>>,
    keepdims: bool,
    return_sign: bool,
    out: Option<&Bound<'py, PyAny>>,
) -> PyResult<Bound<'py, PyAny>> {
    if b.is_none() && !return_sign {
        return row_call(
            py,
            RowKind::LogSumExp,
            &[(x, "x")],
            axis,
            r#where,
            out,
            keepdims,
        );
    }
    // One weight for every entry (none, or a Python number) needs no array
    // of them: logsumexp's own pass, and the weight applied to each row's sum.
    let weak = b.is_none_or(python_number);
    let scalar = match b {
        None => Some(1.0),
        Some(v) if weak => {
            let bv = v
                .extract::<f64>()
                .map_err(|_| PyValueError::new_err("b is a Python number too large for a float"))?;
            // It takes x's dtype, as NumPy's weak scalars (and the weighted
            // pass's array of it) do: rounded to float32 or float16 first.
            let xa = array::float_arg(py, x, "x")?;
            Some(if xa.half {
                array::numpy(py)?
                    .getattr("float16")?
                    .call1((bv,))?
                    .extract::<f64>()?
            } else if xa.dt == array::Dt::F32 {
                bv as f32 as f64
            } else {
                bv
            })
        }
        _ => None,
    }
    // An infinite or NaN weight (in x's dtype) takes the weighted pass, whose
    // terms give IEEE's inf * 0 = NaN entry by entry.
    .filter(|v| v.is_finite());
    let w;
    let (ins, mask) = match scalar {
        Some(_) => (vec![(x, "x")], r#where),
        None => {
            w = weights(py, x, b.expect("an array"), r#where)?;
            (vec![(x, "x"), (&w, "b")], None)
        }
    };
    let kind_of = |how| match scalar {
        Some(bv) => RowKind::ScaledLogSumExp(how, bv),
        None => RowKind::WeightedLogSumExp(how),
    };
    let call = |how, out| row_call(py, kind_of(how), &ins, axis.clone(), mask, out, keepdims);
    if !return_sign {
        return call(LseOut::Value, out);
    }
    let (o_val, o_sign) = match out {
        None => (None, None),
        Some(o) => match o.cast::<PyTuple>() {
            Ok(t) if t.len() == 2 => (Some(t.get_item(0)?), Some(t.get_item(1)?)),
            _ => {
                return Err(PyTypeError::new_err(format!(
                    "out must be a tuple of two arrays (for the value and the sign) with return_sign=True, got {}",
                    o.get_type().name()?
                )))
            }
        },
    };
    if let (Some(a), Some(c)) = (&o_val, &o_sign) {
        if let (Ok(a), Ok(c)) = (a.cast::<PyUntypedArray>(), c.cast::<PyUntypedArray>()) {
            // The sign would overwrite the value.
            array::check_disjoint(a, c, ("out[0]", "out[1]"))?;
        }
    }
    // The sign first, into a new array, then the value: the value's pass
    // may write into x or b (out[0] a view of either), so the sign's pass,
    // which reads them too, must not follow it. out[1] is checked before
    // the value is written, and receives the sign last.
    // (A NumPy scalar for a 0-d result.)
    let sg = call(LseOut::Sign, None)?;
    let o_sign = match o_sign {
        Some(o) => {
            let a = array::numpy(py)?
                .call_method1("asarray", (&sg,))?
                .cast_into::<PyUntypedArray>()?;
            let dtype: String = a.dtype().getattr("name")?.extract()?;
            Some(array::check_out(&o, a.shape(), &dtype, "out[1]")?)
        }
        None => None,
    };
    let v = call(LseOut::Abs, o_val.as_ref())?;
    let sg = match o_sign {
        Some(o) => {
            o.call_method1("__setitem__", ((), &sg))?;
            o.into_any()
        }
        None => sg,
    };
    Ok(PyTuple::new(py, [v, sg])?.into_any())
}

/// logsumexp's weights `b` (an array-like, promoted with x as a NumPy
/// ufunc would; a Python number in x's dtype) broadcast to x's shape, 0
/// where `where` is False.
fn weights<'py>(
    py: Python<'py>,
    x: &Bound<'py, PyAny>,
    b: &Bound<'py, PyAny>,
    mask: Option<&Bound<'py, PyAny>>,
) -> PyResult<Bound<'py, PyAny>> {
    let xa = array::float_arg(py, x, "x")?;
    let shape = xa.arr.shape().to_vec();
    let np = array::numpy(py)?;
    let b_arr = if python_number(b) {
        // A Python number takes x's dtype, as NumPy's weak scalars do.
        let dtype = array::dt_name(xa.dt, xa.half);
        np.call_method1("asarray", (b, dtype))?
            .cast_into::<PyUntypedArray>()?
    } else {
        let ba = array::float_arg(py, b, "b")?;
        if ba.half {
            // float16 (or an int8 / bool array, which promotes to it): kept
            // in float16, so that a float16 x gives a float16 result (its
            // values are float16's; the weights are computed in f32 still).
            ba.arr
                .call_method1("astype", ("float16",))?
                .cast_into::<PyUntypedArray>()?
        } else {
            ba.arr
        }
    };
    let shape_t = PyTuple::new(py, &shape)?;
    let full = np
        .call_method1("broadcast_to", (&b_arr, &shape_t))
        .map_err(|_| {
            PyValueError::new_err(format!(
                "b has shape {}, which does not broadcast to the shape {} of x",
                array::shape_str(b_arr.shape()),
                array::shape_str(&shape)
            ))
        })?;
    match mask {
        None => Ok(full),
        Some(m) => {
            let m = array::broadcast_mask(m, &shape, "x")?;
            let zero = np.call_method1("zeros", ((), b_arr.dtype()))?;
            np.call_method1("where", (m, full, zero))
        }
    }
}

/// Gradient of softmax: y * (grad - sum(grad * y, axis)), where y is
/// softmax's *output* and grad the upstream gradient (same shape).
///
/// where: the mask the forward pass took. Masked entries give 0 and their
/// grad does not enter the row's sum (the forward output there is a
/// constant), so an upstream gradient on them (even inf or NaN) is ignored.
///
/// >>> y = softmax([1.0, 2.0]); softmax_backward([1.0, 0.0], y)
/// array([ 0.19661193, -0.19661193])
#[pyfunction]
#[pyo3(signature = (grad, y, axis=Some(AxisArg::One(-1)), *, r#where=None, out=None), text_signature = "(grad, y, axis=-1, *, where=None, out=None)")]
fn softmax_backward<'py>(
    py: Python<'py>,
    grad: &Bound<'py, PyAny>,
    y: &Bound<'py, PyAny>,
    axis: Option<AxisArg>,
    r#where: Option<&Bound<'py, PyAny>>,
    out: Option<&Bound<'py, PyAny>>,
) -> PyResult<Bound<'py, PyAny>> {
    row_call(
        py,
        RowKind::SoftmaxBackward,
        &[(grad, "grad"), (y, "y")],
        axis,
        r#where,
        out,
        false,
    )
}

/// Gradient of log_softmax: grad - exp(y) * sum(grad, axis), where y is
/// log_softmax's *output* and grad the upstream gradient (same shape).
///
/// where: the mask the forward pass took. Masked entries give 0 and their
/// grad does not enter sum(grad) (without it, a masked entry's y of -inf
/// passes its grad through unchanged).
///
/// >>> y = log_softmax([1.0, 2.0]); log_softmax_backward([1.0, 0.0], y)
/// array([ 0.73105858, -0.73105858])
#[pyfunction]
#[pyo3(signature = (grad, y, axis=Some(AxisArg::One(-1)), *, r#where=None, out=None), text_signature = "(grad, y, axis=-1, *, where=None, out=None)")]
fn log_softmax_backward<'py>(
    py: Python<'py>,
    grad: &Bound<'py, PyAny>,
    y: &Bound<'py, PyAny>,
    axis: Option<AxisArg>,
    r#where: Option<&Bound<'py, PyAny>>,
    out: Option<&Bound<'py, PyAny>>,
) -> PyResult<Bound<'py, PyAny>> {
    row_call(
        py,
        RowKind::LogSoftmaxBackward,
        &[(grad, "grad"), (y, "y")],
        axis,
        r#where,
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

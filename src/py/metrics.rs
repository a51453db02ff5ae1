//! Binding of the metrics' kernel (`kernels::losses::target_ranks`), used by
//! `logitkit.metrics.top_k_accuracy` after its own argument checks.

use numpy::{PyArrayDescrMethods, PyUntypedArray, PyUntypedArrayMethods};
use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;

use super::array::*;
use crate::kernels::elementwise::{run_tasks, Ptr};
use crate::kernels::losses::target_ranks as ranks_kernel;

/// An int64 ndarray of shape `(rows,)`, aligned and C-contiguous.
fn int64_vector<'py>(
    x: &Bound<'py, PyAny>,
    name: &str,
    rows: usize,
) -> PyResult<Bound<'py, PyUntypedArray>> {
    let Ok(a) = x.cast::<PyUntypedArray>() else {
        return Err(PyTypeError::new_err(format!(
            "{name} must be a numpy.ndarray"
        )));
    };
    let d = a.dtype();
    if !(d.kind() == b'i' && d.itemsize() == 8 && d.is_native_byteorder() != Some(false)) {
        return Err(PyTypeError::new_err(format!(
            "{name} must have dtype int64"
        )));
    }
    if a.shape() != [rows] || !fits(a, Order::C) {
        return Err(PyValueError::new_err(format!(
            "{name} must be a contiguous int64 array of shape ({rows},), got shape {}",
            shape_str(a.shape())
        )));
    }
    Ok(a.clone())
}

/// The rank of each row's target score among the row's scores, as
/// `top_k_accuracy` counts it: the classes scoring higher (NaN above every
/// number) and those tied with it (NaN ties NaN) at a lower class index, so
/// that the target is in the top k when its rank is below k. scores: 2-D
/// C-contiguous float32/float64 ndarray; target: int64 class indices, one
/// per row; out: int64 array of one rank per row, written and returned.
///
/// >>> top_k_ranks(np.array([[0.1, 2.0, 1.0]]), np.array([2]), np.empty(1, np.int64))
/// array([1])
#[pyfunction]
fn top_k_ranks<'py>(
    py: Python<'py>,
    scores: &Bound<'py, PyAny>,
    target: &Bound<'py, PyAny>,
    out: &Bound<'py, PyAny>,
) -> PyResult<Bound<'py, PyAny>> {
    let (s, dt) = float_ndarray(scores, "scores", "", None)?;
    if s.ndim() != 2 || !fits(&s, Order::C) {
        return Err(PyValueError::new_err(format!(
            "scores must be a C-contiguous 2-D array, got shape {}",
            shape_str(s.shape())
        )));
    }
    let (rows, n) = (s.shape()[0], s.shape()[1]);
    let t = int64_vector(target, "target", rows)?;
    let o = int64_vector(out, "out", rows)?;
    if !is_writeable(&o) {
        return Err(PyValueError::new_err("out is read-only"));
    }
    if shares_memory(&o, &t)? || shares_memory(&o, &s)? {
        return Err(PyValueError::new_err("out shares memory with an input"));
    }
    // SAFETY: t is an aligned contiguous int64 array of `rows` elements.
    let ts = unsafe { slice_of::<i64>(&t) };
    if let Some((i, &v)) = ts
        .iter()
        .enumerate()
        .find(|(_, &v)| v < 0 || v as u64 >= n as u64)
    {
        return Err(PyValueError::new_err(format!(
            "target[{i}] = {v} is not a class index for {n} classes"
        )));
    }
    fn go<T: Elem>(
        py: Python<'_>,
        s: &Bound<'_, PyUntypedArray>,
        ts: &[i64],
        n: usize,
        o: Ptr<i64>,
    ) {
        // SAFETY: s is aligned and C-contiguous (rows * n elements).
        let ss = unsafe { slice_of::<T>(s) };
        let rows = ts.len();
        maybe_detach(py, rows * n, move || {
            run_tasks(rows, n, |_, r0, r1| {
                // SAFETY: out holds `rows` elements, disjoint from the inputs;
                // each task writes its own rows r0..r1.
                let out = unsafe { std::slice::from_raw_parts_mut(o.get().add(r0), r1 - r0) };
                ranks_kernel(&ss[r0 * n..r1 * n], &ts[r0..r1], n, out);
            })
        });
    }
    if rows > 0 && n > 0 {
        // SAFETY: reading the data pointer of a live, writeable int64 array.
        let op = Ptr(unsafe { (*o.as_array_ptr()).fields.data } as *mut i64);
        match dt {
            Dt::F32 => go::<f32>(py, &s, ts, n, op),
            Dt::F64 => go::<f64>(py, &s, ts, n, op),
        }
    }
    Ok(out.clone())
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(top_k_ranks, m)?)?;
    Ok(())
}

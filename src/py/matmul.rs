//! Binding of the MLP's matrix product (`kernels::matmul`). Nothing is
//! converted: the operands are checked (dtype, shape, alignment, `out`
//! writeable with distinct elements and sharing no memory with an operand)
//! and any strides are passed to the GEMM, so `x.T` costs nothing.

use numpy::{PyUntypedArray, PyUntypedArrayMethods};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;

use super::array::*;
use crate::kernels::elementwise::Ptr;
use crate::kernels::matmul::{matmul as matmul_kernel, Gemm, Mat};

/// Checks a 2-D float32/float64 ndarray operand, of `like`'s dtype when given.
fn matrix<'py>(
    x: &Bound<'py, PyAny>,
    name: &str,
    like: Option<(&Bound<'py, PyUntypedArray>, &str)>,
) -> PyResult<(Bound<'py, PyUntypedArray>, Dt)> {
    let (a, dt) = float_ndarray(x, name, "", like)?;
    if a.ndim() != 2 {
        return Err(PyValueError::new_err(format!(
            "{name} must be 2-D, got shape {}",
            shape_str(a.shape())
        )));
    }
    if !is_aligned(&a) {
        return Err(PyValueError::new_err(format!("{name} must be aligned")));
    }
    Ok((a, dt))
}

fn mat_of<T>(a: &Bound<'_, PyUntypedArray>) -> Mat<T> {
    let item = std::mem::size_of::<T>() as isize;
    // Aligned arrays have strides that are multiples of the item size.
    let (s0, s1) = (a.strides()[0] / item, a.strides()[1] / item);
    // SAFETY: reading the data pointer of a live array.
    let p = unsafe { (*a.as_array_ptr()).fields.data } as *mut T;
    Mat {
        ptr: Ptr(p),
        rows: a.shape()[0],
        cols: a.shape()[1],
        rs: s0,
        cs: s1,
    }
}

/// The matrix product out = a @ b of 2-D float32 or float64 ndarrays (one
/// dtype), written into out, which is returned. Any strides (transposed
/// views like x.T included) are read in place; out must be writeable, C- or
/// Fortran-contiguous, and share no memory with a or b.
///
/// Runs on logitkit's thread pool; results are bit-identical for any thread
/// count. This is the product logitkit.nn's layers use (a packed GEMM with
/// run-time AVX-512 / AVX2 / NEON kernels).
///
/// >>> a = np.ones((2, 3), np.float32); out = np.empty((2, 2), np.float32)
/// >>> matmul(a, a.T, out)
/// array([[3., 3.],
///        [3., 3.]], dtype=float32)
#[pyfunction]
fn matmul<'py>(
    py: Python<'py>,
    a: &Bound<'py, PyAny>,
    b: &Bound<'py, PyAny>,
    out: &Bound<'py, PyAny>,
) -> PyResult<Bound<'py, PyAny>> {
    let (a_arr, dt) = matrix(a, "a", None)?;
    let (b_arr, _) = matrix(b, "b", Some((&a_arr, "a")))?;
    let (o, _) = matrix(out, "out", Some((&a_arr, "a")))?;
    let (m, k) = (a_arr.shape()[0], a_arr.shape()[1]);
    let (kb, n) = (b_arr.shape()[0], b_arr.shape()[1]);
    if kb != k {
        return Err(PyValueError::new_err(format!(
            "a has shape {} and b has shape {}: a's columns must equal b's rows",
            shape_str(a_arr.shape()),
            shape_str(b_arr.shape())
        )));
    }
    if o.shape() != [m, n] {
        return Err(PyValueError::new_err(format!(
            "out has shape {}, but the result has shape {}",
            shape_str(o.shape()),
            shape_str(&[m, n])
        )));
    }
    if !is_writeable(&o) {
        return Err(PyValueError::new_err("out is read-only"));
    }
    if !(o.is_c_contiguous() || o.is_fortran_contiguous()) {
        return Err(PyValueError::new_err(
            "out must be C- or Fortran-contiguous",
        ));
    }
    for (x, name) in [(&a_arr, "a"), (&b_arr, "b")] {
        if shares_memory(&o, x)? {
            return Err(PyValueError::new_err(format!(
                "out shares memory with {name}; it must be a separate array"
            )));
        }
    }
    fn go<T: Gemm>(py: Python<'_>, arrs: [&Bound<'_, PyUntypedArray>; 3]) {
        let (a, b, c) = (
            mat_of::<T>(arrs[0]),
            mat_of::<T>(arrs[1]),
            mat_of::<T>(arrs[2]),
        );
        let work = a.rows.saturating_mul(a.cols).saturating_mul(b.cols);
        // SAFETY: the views come from live arrays' shapes and strides (in
        // bounds), shapes checked above, out contiguous (distinct elements)
        // and disjoint from a and b.
        maybe_detach(py, work, move || unsafe { matmul_kernel(a, b, c) });
    }
    match dt {
        Dt::F32 => go::<f32>(py, [&a_arr, &b_arr, &o]),
        Dt::F64 => go::<f64>(py, [&a_arr, &b_arr, &o]),
    }
    Ok(out.clone())
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(matmul, m)?)?;
    Ok(())
}

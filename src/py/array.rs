//! Turning Python arguments into typed, contiguous arrays and validated
//! outputs. No arithmetic happens here.

use numpy::npyffi::flags::{NPY_ARRAY_ALIGNED, NPY_ARRAY_WRITEABLE};
use numpy::{
    Element, IxDyn, PyArray, PyArrayDescr, PyArrayDescrMethods, PyArrayDyn, PyArrayMethods,
    PyUntypedArray, PyUntypedArrayMethods,
};
use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::PyTuple;

use crate::kernels::Layout;
use crate::simd::Float;

/// Element types the kernels compute in.
pub trait Elem: Float + Element {}
impl Elem for f32 {}
impl Elem for f64 {}

/// The dtype a result is computed in and the one it is returned in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dt {
    F32,
    F64,
}

/// An input converted to float32 / float64.
pub struct FloatArg<'py> {
    pub arr: Bound<'py, PyUntypedArray>,
    pub dt: Dt,
    /// The input was float16 (or promotes to it, like int8): the result is
    /// computed in float32 and returned as float16, as NumPy's ufuncs do.
    pub half: bool,
}

pub fn numpy(py: Python<'_>) -> PyResult<Bound<'_, PyModule>> {
    py.import("numpy")
}

/// Name of the dtype a result is returned in.
pub fn dt_name(dt: Dt, half: bool) -> &'static str {
    match (half, dt) {
        (true, _) => "float16",
        (false, Dt::F32) => "float32",
        (false, Dt::F64) => "float64",
    }
}

/// Inputs converted to one float dtype: float64 if any is, else float32;
/// returned as float16 only when every input was float16-like.
pub struct Floats<'py> {
    pub arrs: Vec<Bound<'py, PyUntypedArray>>,
    pub dt: Dt,
    pub half: bool,
}

impl Floats<'_> {
    pub fn dt_name(&self) -> &'static str {
        dt_name(self.dt, self.half)
    }
}

/// Converts every `(value, parameter name)` and casts them to a common dtype.
pub fn float_args<'py>(
    py: Python<'py>,
    inputs: &[(&Bound<'py, PyAny>, &str)],
) -> PyResult<Floats<'py>> {
    let args = inputs
        .iter()
        .map(|(x, name)| float_arg(py, x, name))
        .collect::<PyResult<Vec<_>>>()?;
    // A Python float or int is weak (NEP 50): it takes the arrays' dtype, so
    // `sigmoid_backward(1.0, np.float32(x))` is float32 (and float16 with a
    // float16 x). Only Python numbers alone give float64, as in NumPy.
    let strong: Vec<&FloatArg> = inputs
        .iter()
        .zip(&args)
        .filter(|((x, _), _)| !super::python_number(x))
        .map(|(_, a)| a)
        .collect();
    let dt = if strong.is_empty() || strong.iter().any(|a| a.dt == Dt::F64) {
        Dt::F64
    } else {
        Dt::F32
    };
    let half = !strong.is_empty() && strong.iter().all(|a| a.half);
    let arrs = args
        .iter()
        .map(|a| cast_to(a, dt))
        .collect::<PyResult<Vec<_>>>()?;
    Ok(Floats { arrs, dt, half })
}

/// All `arrs` have the shape of the first; the error names both arguments.
pub fn same_shape(
    arrs: &[Bound<'_, PyUntypedArray>],
    inputs: &[(&Bound<'_, PyAny>, &str)],
) -> PyResult<()> {
    let shape = arrs[0].shape();
    for (a, (_, name)) in arrs.iter().zip(inputs).skip(1) {
        if a.shape() != shape {
            return Err(PyValueError::new_err(format!(
                "{name} has shape {}, but {} has shape {}",
                shape_str(a.shape()),
                inputs[0].1,
                shape_str(shape)
            )));
        }
    }
    Ok(())
}

/// Runs `f` without the GIL when the call is large enough to pay for it; a
/// tiny call stays one plain function call.
pub fn maybe_detach<R: Send>(py: Python<'_>, elems: usize, f: impl FnOnce() -> R + Send) -> R {
    if elems >= crate::par::GIL_RELEASE_ELEMS {
        py.detach(f)
    } else {
        f()
    }
}

/// Converts an array-like to a float32/float64 ndarray. The fast path (an
/// aligned native f32/f64 ndarray) touches no Python code.
pub fn float_arg<'py>(
    py: Python<'py>,
    x: &Bound<'py, PyAny>,
    name: &str,
) -> PyResult<FloatArg<'py>> {
    // Subclasses (masked arrays, whose mask must not be dropped silently;
    // memmaps, matrices) take the Python path.
    if x.is_exact_instance_of::<PyUntypedArray>() {
        if let Ok(a) = x.cast::<PyArrayDyn<f32>>() {
            return Ok(FloatArg {
                arr: a.as_untyped().clone(),
                dt: Dt::F32,
                half: false,
            });
        }
        if let Ok(a) = x.cast::<PyArrayDyn<f64>>() {
            return Ok(FloatArg {
                arr: a.as_untyped().clone(),
                dt: Dt::F64,
                half: false,
            });
        }
    }
    let conv = py.import("logitkit._convert")?.getattr("as_float_array")?;
    let res = conv.call1((x, name))?;
    let tup = res.cast::<PyTuple>()?;
    let arr = tup.get_item(0)?.cast_into::<PyUntypedArray>()?;
    let half: bool = tup.get_item(1)?.extract()?;
    let dt = if arr.dtype().itemsize() == 4 {
        Dt::F32
    } else {
        Dt::F64
    };
    Ok(FloatArg { arr, dt, half })
}

/// Casts an input to the compute dtype (a copy only when it differs).
pub fn cast_to<'py>(a: &FloatArg<'py>, dt: Dt) -> PyResult<Bound<'py, PyUntypedArray>> {
    if a.dt == dt {
        return Ok(a.arr.clone());
    }
    let name = if dt == Dt::F32 { "float32" } else { "float64" };
    Ok(a.arr
        .call_method1("astype", (name,))?
        .cast_into::<PyUntypedArray>()?)
}

/// Memory order the kernels see an array in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Order {
    C,
    F,
}

fn flags(a: &Bound<'_, PyUntypedArray>) -> i32 {
    // SAFETY: a live ndarray's object struct.
    unsafe { (*a.as_array_ptr()).fields.flags }
}

pub fn is_aligned(a: &Bound<'_, PyUntypedArray>) -> bool {
    flags(a) & NPY_ARRAY_ALIGNED != 0
}

pub fn is_writeable(a: &Bound<'_, PyUntypedArray>) -> bool {
    flags(a) & NPY_ARRAY_WRITEABLE != 0
}

/// The order an array can be used in as it is, if any.
pub fn usable_order(a: &Bound<'_, PyUntypedArray>) -> Option<Order> {
    if !is_aligned(a) {
        return None;
    }
    if a.is_c_contiguous() {
        Some(Order::C)
    } else if a.is_fortran_contiguous() {
        Some(Order::F)
    } else {
        None
    }
}

/// Whether `a` is contiguous in `order` (and aligned).
pub fn fits(a: &Bound<'_, PyUntypedArray>, order: Order) -> bool {
    is_aligned(a)
        && match order {
            Order::C => a.is_c_contiguous(),
            Order::F => a.is_fortran_contiguous(),
        }
}

/// A copy (or the array itself) contiguous in `order`.
pub fn in_order<'py>(
    a: &Bound<'py, PyUntypedArray>,
    order: Order,
) -> PyResult<Bound<'py, PyUntypedArray>> {
    if fits(a, order) {
        return Ok(a.clone());
    }
    if let Some(c) = c_of_fortran_2d(a, order) {
        return Ok(c);
    }
    let np = numpy(a.py())?;
    let f = if order == Order::C {
        "ascontiguousarray"
    } else {
        "asfortranarray"
    };
    Ok(np.call_method1(f, (a,))?.cast_into::<PyUntypedArray>()?)
}

/// The native float32/float64 dtype of `a`, if it has one.
fn native_float(a: &Bound<'_, PyUntypedArray>) -> Option<Dt> {
    let d = a.dtype();
    if d.is_native_byteorder() == Some(false) {
        return None;
    }
    match (d.kind(), d.itemsize()) {
        (b'f', 4) => Some(Dt::F32),
        (b'f', 8) => Some(Dt::F64),
        _ => None,
    }
}

/// `dst = ` the memory of `src` as `outer` C-ordered matrices of `rows` x
/// `cols`, each transposed ([`crate::kernels::transpose_into`]) into the
/// memory of `dst`, GIL released for a large array.
///
/// # Safety
/// `src` and `dst` aligned, contiguous arrays of dtype `dt` and
/// `outer * rows * cols` elements, not overlapping.
unsafe fn transpose_arrays(
    src: &Bound<'_, PyUntypedArray>,
    dt: Dt,
    outer: usize,
    rows: usize,
    cols: usize,
    dst: &Bound<'_, PyUntypedArray>,
) {
    let py = src.py();
    let len = outer * rows * cols;
    match dt {
        Dt::F32 => {
            let (s, o) = (slice_of::<f32>(src), slice_mut_of::<f32>(dst));
            maybe_detach(py, len, || {
                crate::kernels::transpose_into(s, outer, rows, cols, o)
            });
        }
        Dt::F64 => {
            let (s, o) = (slice_of::<f64>(src), slice_mut_of::<f64>(dst));
            maybe_detach(py, len, || {
                crate::kernels::transpose_into(s, outer, rows, cols, o)
            });
        }
    }
}

/// `a` with axis `ax` moved to the end, C-ordered: for a C-ordered native
/// float32/float64 `a`, a new array made by the package's transposes (the
/// blocks `(n, inner)` after the axis become `(inner, n)`); else NumPy's
/// `moveaxis` and a C-ordered copy. (NumPy's copy of a moved class axis, as
/// cross-entropy over axis 1 of N x C x H x W logits makes it, took 20-40
/// x a copy of the array.)
pub fn moved_to_last_c<'py>(
    a: &Bound<'py, PyUntypedArray>,
    ax: usize,
) -> PyResult<Bound<'py, PyUntypedArray>> {
    let shape = a.shape().to_vec();
    if ax + 1 == shape.len() {
        return in_order(a, Order::C);
    }
    let py = a.py();
    if let (Some(dt), true) = (native_float(a), fits(a, Order::C)) {
        let (outer, n) = (shape[..ax].iter().product::<usize>(), shape[ax]);
        let inner = shape[ax + 1..].iter().product::<usize>();
        let mut moved: Vec<usize> = shape.clone();
        moved.remove(ax);
        moved.push(n);
        let out = new_of(py, dt, &moved, Order::C);
        // SAFETY: `a` is aligned and C-contiguous, `out` new and C-ordered,
        // both of `dt` and outer * n * inner elements.
        unsafe { transpose_arrays(a, dt, outer, n, inner, &out) };
        return Ok(out);
    }
    in_order(&moveaxis(a, ax as isize, -1)?, Order::C)
}

/// NumPy's `moveaxis` (a view): `from` and `to` an axis each, or tuples.
pub fn moveaxis<'py>(
    a: &Bound<'py, PyUntypedArray>,
    from: impl IntoPyObject<'py>,
    to: impl IntoPyObject<'py>,
) -> PyResult<Bound<'py, PyUntypedArray>> {
    Ok(numpy(a.py())?
        .call_method1("moveaxis", (a, from, to))?
        .cast_into::<PyUntypedArray>()?)
}

/// The inverse of [`moved_to_last_c`] for a C-ordered native float `a`
/// (its last axis moved to `ax`), written into `dst` when it is given (a
/// C-ordered, writable, aligned array of the result's shape and dtype) or
/// else into a new C-ordered array; None for any other `a`.
pub fn moved_from_last_c<'py>(
    a: &Bound<'py, PyUntypedArray>,
    ax: usize,
    dst: Option<&Bound<'py, PyUntypedArray>>,
) -> Option<Bound<'py, PyUntypedArray>> {
    let shape = a.shape().to_vec();
    let dt = native_float(a)?;
    if !fits(a, Order::C) || shape.is_empty() || ax >= shape.len() {
        return None;
    }
    let n = shape[shape.len() - 1];
    let (outer, inner) = (
        shape[..ax].iter().product::<usize>(),
        shape[ax..shape.len() - 1].iter().product::<usize>(),
    );
    let mut back: Vec<usize> = shape[..shape.len() - 1].to_vec();
    back.insert(ax, n);
    let out = match dst {
        Some(d)
            if d.shape() == back.as_slice() && native_float(d) == Some(dt) && fits(d, Order::C) =>
        {
            d.clone()
        }
        Some(_) => return None,
        None => new_of(a.py(), dt, &back, Order::C),
    };
    if byte_range(&out) == byte_range(a) {
        return None;
    }
    // SAFETY: both aligned, C-contiguous, of `dt` and outer * inner * n
    // elements, and (checked above, `out` being new or the caller's
    // distinct array) not the same memory.
    unsafe { transpose_arrays(a, dt, outer, inner, n, &out) };
    Some(out)
}

/// A C-ordered copy of a Fortran-ordered 2-D float32/float64 array of at
/// least 4096 elements, made by [`crate::kernels::transpose_into`] (in place
/// of NumPy's transposing copy, 17-19 ms for 16 MB); None for any other
/// request.
fn c_of_fortran_2d<'py>(
    a: &Bound<'py, PyUntypedArray>,
    order: Order,
) -> Option<Bound<'py, PyUntypedArray>> {
    if order != Order::C || a.ndim() != 2 || a.len() < 4096 || !fits(a, Order::F) {
        return None;
    }
    let dt = native_float(a)?;
    let (r, c) = (a.shape()[0], a.shape()[1]);
    let out = new_of(a.py(), dt, &[r, c], Order::C);
    // SAFETY: `a` is aligned and Fortran-contiguous (its memory is the C
    // order of its transpose, c rows of r) and `out` a new C-ordered array of
    // the same dtype and size, so neither overlaps the other.
    unsafe { transpose_arrays(a, dt, 1, c, r, &out) };
    Some(out)
}

/// Normalises `axis` for `ndim` dimensions (a 0-d array counts as 1-d).
pub fn norm_axis(axis: isize, ndim: usize) -> PyResult<usize> {
    let nd = ndim.max(1) as isize;
    if axis < -nd || axis >= nd {
        return Err(PyValueError::new_err(format!(
            "axis {axis} is out of bounds for an array of dimension {ndim}"
        )));
    }
    Ok(if axis < 0 { axis + nd } else { axis } as usize)
}

/// The `(outer, n, inner)` view of `shape` reduced along `axis`, as memory in
/// `order` lays it out.
pub fn layout_of(shape: &[usize], axis: usize, order: Order) -> Layout {
    let shape: Vec<usize> = if shape.is_empty() {
        vec![1]
    } else {
        shape.to_vec()
    };
    let (dims, ax): (Vec<usize>, usize) = match order {
        Order::C => (shape.clone(), axis),
        Order::F => (
            shape.iter().rev().cloned().collect(),
            shape.len() - 1 - axis,
        ),
    };
    Layout {
        outer: dims[..ax].iter().product(),
        n: dims[ax],
        inner: dims[ax + 1..].iter().product(),
    }
}

pub fn shape_str(shape: &[usize]) -> String {
    match shape.len() {
        1 => format!("({},)", shape[0]),
        _ => format!(
            "({})",
            shape
                .iter()
                .map(|s| s.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

/// A typed, contiguous slice of an array (the caller keeps the array alive).
///
/// # Safety
/// `a` must be aligned, contiguous and hold `T`; no `&mut` to it may exist.
pub unsafe fn slice_of<'a, T: Element>(a: &'a Bound<'_, PyUntypedArray>) -> &'a [T] {
    let len = a.len();
    if len == 0 {
        return &[];
    }
    let p = (*a.as_array_ptr()).fields.data as *const T;
    std::slice::from_raw_parts(p, len)
}

/// A mutable typed slice of an output array.
///
/// # Safety
/// As [`slice_of`], and the array must not overlap any other slice in use.
#[allow(clippy::mut_from_ref)]
pub unsafe fn slice_mut_of<'a, T: Elem>(a: &'a Bound<'_, PyUntypedArray>) -> &'a mut [T] {
    let len = a.len();
    if len == 0 {
        return &mut [];
    }
    let p = (*a.as_array_ptr()).fields.data as *mut T;
    std::slice::from_raw_parts_mut(p, len)
}

/// An operand used as it is (nothing converted): a native float32/float64
/// ndarray, of `like`'s dtype when given; `what` says why (in the message).
pub fn float_ndarray<'py>(
    x: &Bound<'py, PyAny>,
    name: &str,
    what: &str,
    like: Option<(&Bound<'py, PyUntypedArray>, &str)>,
) -> PyResult<(Bound<'py, PyUntypedArray>, Dt)> {
    let Ok(a) = x.cast::<PyUntypedArray>() else {
        return Err(PyTypeError::new_err(format!(
            "{name} must be a numpy.ndarray, got {}",
            x.get_type().name()?
        )));
    };
    let dt = match (a.dtype().kind(), a.dtype().itemsize()) {
        (b'f', 4) if a.dtype().is_native_byteorder() != Some(false) => Dt::F32,
        (b'f', 8) if a.dtype().is_native_byteorder() != Some(false) => Dt::F64,
        _ => {
            return Err(PyTypeError::new_err(format!(
                "{name} must have dtype float32 or float64{what}, got {}",
                a.dtype().str()?
            )))
        }
    };
    if let Some((p, pname)) = like {
        if !a.dtype().is_equiv_to(&p.dtype()) {
            return Err(PyTypeError::new_err(format!(
                "{name} has dtype {}, but {pname} has dtype {}",
                a.dtype().str()?,
                p.dtype().str()?
            )));
        }
    }
    Ok((a.clone(), dt))
}

/// Byte range `[lo, hi)` spanned by an array's elements, for any strides
/// (negative ones included); empty for an empty array.
pub fn byte_range(a: &Bound<'_, PyUntypedArray>) -> (usize, usize) {
    // SAFETY: reading the data pointer of a live array.
    let p = unsafe { (*a.as_array_ptr()).fields.data } as isize;
    if a.len() == 0 {
        return (p as usize, p as usize);
    }
    let (mut lo, mut hi) = (p, p + a.dtype().itemsize() as isize);
    for (&d, &s) in a.shape().iter().zip(a.strides()) {
        let span = (d as isize - 1) * s;
        if span < 0 {
            lo += span;
        } else {
            hi += span;
        }
    }
    (lo as usize, hi as usize)
}

pub fn overlaps(a: (usize, usize), b: (usize, usize)) -> bool {
    a.0 < b.1 && b.0 < a.1 && a.0 != a.1 && b.0 != b.1
}

/// Whether two arrays share an element's memory: their byte ranges overlap
/// and, for those that do (strided views can interleave without sharing a
/// byte, such as `buf[::2]` and `buf[1::2]`), NumPy's exact
/// `shares_memory` says so. Where it cannot tell (its `TooHardError`, for a
/// problem too large to solve exactly), they count as sharing.
pub fn shares_memory(
    a: &Bound<'_, PyUntypedArray>,
    b: &Bound<'_, PyUntypedArray>,
) -> PyResult<bool> {
    if !overlaps(byte_range(a), byte_range(b)) {
        return Ok(false);
    }
    let exact = numpy(a.py())?
        .getattr("shares_memory")?
        .call1((a, b))
        .and_then(|r| r.extract::<bool>());
    Ok(exact.unwrap_or(true))
}

/// A new uninitialised-free (zero-cost) output array in `order`.
pub fn new_array<'py, T: Elem>(
    py: Python<'py>,
    shape: &[usize],
    order: Order,
) -> Bound<'py, PyUntypedArray> {
    // SAFETY: every element is written by the kernel before Python sees it.
    let a = unsafe { PyArray::<T, IxDyn>::new(py, IxDyn(shape), order == Order::F) };
    a.as_untyped().clone()
}

/// A new output array of the compute dtype.
pub fn new_of<'py>(
    py: Python<'py>,
    dt: Dt,
    shape: &[usize],
    order: Order,
) -> Bound<'py, PyUntypedArray> {
    match dt {
        Dt::F32 => new_array::<f32>(py, shape, order),
        Dt::F64 => new_array::<f64>(py, shape, order),
    }
}

/// Whether a kernel may write straight into `o`: right layout and dtype (in
/// the machine's byte order), and
/// each array in `same_ok` is either exactly `o` (in place) or disjoint from
/// it, and each in `disjoint` is disjoint from it.
pub fn writable_direct(
    o: &Bound<'_, PyUntypedArray>,
    order: Order,
    half: bool,
    same_ok: &[&Bound<'_, PyUntypedArray>],
    disjoint: &[&Bound<'_, PyUntypedArray>],
) -> bool {
    let r = byte_range(o);
    !half
        && o.dtype().is_native_byteorder() != Some(false)
        && fits(o, order)
        && same_ok
            .iter()
            .all(|a| byte_range(a) == r || !overlaps(byte_range(a), r))
        && disjoint.iter().all(|a| !overlaps(byte_range(a), r))
}

/// Validates a user's `out=` array against the result's shape and dtype.
pub fn check_out<'py>(
    out: &Bound<'py, PyAny>,
    shape: &[usize],
    dtype_name: &str,
    param: &str,
) -> PyResult<Bound<'py, PyUntypedArray>> {
    let Ok(o) = out.cast::<PyUntypedArray>() else {
        return Err(PyTypeError::new_err(format!(
            "{param} must be a numpy.ndarray, got {}",
            out.get_type().name()?
        )));
    };
    let want = PyArrayDescr::new(out.py(), dtype_name)?;
    // The result's dtype in the other byte order is taken too (as by
    // NumPy's ufuncs): `writable_direct` never lets a kernel write such an
    // array, so the result goes in through `numpy.copyto`, which swaps.
    let d = o.dtype();
    let swapped = d.is_native_byteorder() == Some(false)
        && d.call_method1("newbyteorder", ("=",))?
            .cast_into::<PyArrayDescr>()?
            .is_equiv_to(&want);
    if !d.is_equiv_to(&want) && !swapped {
        return Err(PyTypeError::new_err(format!(
            "{param} has dtype {}, but the result has dtype {dtype_name}",
            o.dtype().str()?
        )));
    }
    if o.shape() != shape {
        return Err(PyValueError::new_err(format!(
            "{param} has shape {}, but the result has shape {}",
            shape_str(o.shape()),
            shape_str(shape)
        )));
    }
    if !is_writeable(o) {
        return Err(PyValueError::new_err(format!("{param} is read-only")));
    }
    Ok(o.clone())
}

/// A boolean `where=` mask broadcast to `shape`, the shape of argument `of`
/// (a view; errors name `where` and `of`).
pub fn broadcast_mask<'py>(
    mask: &Bound<'py, PyAny>,
    shape: &[usize],
    of: &str,
) -> PyResult<Bound<'py, PyUntypedArray>> {
    let np = numpy(mask.py())?;
    // A masked array's mask would be dropped by `asarray`: refused when it
    // masks anything (`_convert.unmask`), as for the other arguments.
    let mask = &mask
        .py()
        .import("logitkit._convert")?
        .getattr("unmask")?
        .call1((mask, "where"))?;
    let m = np
        .call_method1("asarray", (mask,))
        .map_err(|e| {
            // Ragged lists and the like: NumPy's message, named.
            PyTypeError::new_err(format!("where could not be converted to an array: {e}"))
        })?
        .cast_into::<PyUntypedArray>()?;
    if m.dtype().kind() != b'b' {
        return Err(PyTypeError::new_err(format!(
            "where must be a boolean array, got dtype {}",
            m.dtype().str()?
        )));
    }
    let b = np
        .call_method1("broadcast_to", (&m, PyTuple::new(mask.py(), shape)?))
        .map_err(|_| {
            PyValueError::new_err(format!(
                "where has shape {}, which does not broadcast to the shape {} of {of}",
                shape_str(m.shape()),
                shape_str(shape)
            ))
        })?;
    Ok(b.cast_into::<PyUntypedArray>()?)
}

/// Broadcasts a boolean `where=` mask to `shape` (argument `of`'s) and lays
/// it out in `order`.
pub fn prepare_mask<'py>(
    mask: &Bound<'py, PyAny>,
    shape: &[usize],
    of: &str,
    order: Order,
) -> PyResult<Bound<'py, PyUntypedArray>> {
    let py = mask.py();
    let np = numpy(py)?;
    let shape_t = PyTuple::new(py, shape)?;
    let b = broadcast_mask(mask, shape, of)?;
    if order == Order::F && b.ndim() == 2 && b.len() >= 4096 && fits(&b, Order::C) {
        // A C-ordered mask for a Fortran-ordered x: the transposing copy by
        // `transpose_mask` (NumPy's `asfortranarray` of a 1024x1024 bool
        // array took 40 % of softmax where='s time).
        let (r, c) = (shape[0], shape[1]);
        let kw = pyo3::types::PyDict::new(py);
        kw.set_item("dtype", "bool")?;
        kw.set_item("order", "F")?;
        let out = np
            .call_method("empty", (&shape_t,), Some(&kw))?
            .cast_into::<PyUntypedArray>()?;
        // SAFETY: `b` is a C-contiguous bool array of r x c (one byte each)
        // and `out` a new Fortran-ordered one of the same shape, whose
        // memory is the C order of the transpose (c rows of r); the two do
        // not overlap, and both outlive this block.
        unsafe {
            let src = mask_bytes(&b);
            let dst = std::slice::from_raw_parts_mut(
                (*out.as_array_ptr()).fields.data.cast::<u8>(),
                r * c,
            );
            maybe_detach(py, r * c, || {
                crate::kernels::transpose_mask(src, 1, r, c, dst)
            });
        }
        return Ok(out);
    }
    let f = if order == Order::C {
        "ascontiguousarray"
    } else {
        "asfortranarray"
    };
    Ok(np.call_method1(f, (b,))?.cast_into::<PyUntypedArray>()?)
}

/// The mask as bytes (numpy bools are one byte each).
///
/// # Safety
/// `a` must be a contiguous bool array kept alive by the caller.
pub unsafe fn mask_bytes<'a>(a: &'a Bound<'_, PyUntypedArray>) -> &'a [u8] {
    let len = a.len();
    if len == 0 {
        return &[];
    }
    std::slice::from_raw_parts((*a.as_array_ptr()).fields.data as *const u8, len)
}

/// `v` as an i64: `Ok(None)` when it is an integer outside i64's range (for
/// the caller's ValueError), a TypeError naming `name` when it is not an
/// integer.
pub fn i64_arg(v: &Bound<'_, PyAny>, name: &str) -> PyResult<Option<i64>> {
    if v.is_instance_of::<pyo3::types::PyBool>() {
        return Err(pyo3::exceptions::PyTypeError::new_err(format!(
            "{name} must be an integer, got bool"
        )));
    }
    match v.extract::<i64>() {
        Ok(i) => Ok(Some(i)),
        Err(e) if e.is_instance_of::<pyo3::exceptions::PyOverflowError>(v.py()) => Ok(None),
        Err(_) => Err(pyo3::exceptions::PyTypeError::new_err(format!(
            "{name} must be an integer, got {}",
            v.get_type().name()?
        ))),
    }
}

/// A ValueError when two output arrays share memory.
pub fn check_disjoint(
    a: &Bound<'_, PyUntypedArray>,
    b: &Bound<'_, PyUntypedArray>,
    names: (&str, &str),
) -> PyResult<()> {
    if shares_memory(a, b)? {
        return Err(pyo3::exceptions::PyValueError::new_err(format!(
            "{} and {} must not overlap",
            names.0, names.1
        )));
    }
    Ok(())
}

/// An axis argument: an int that is not a bool (NumPy's reductions refuse
/// `axis=True`; a Python bool is otherwise an int).
pub struct AxisInt(pub isize);

impl<'a, 'py> FromPyObject<'a, 'py> for AxisInt {
    type Error = PyErr;

    fn extract(obj: pyo3::Borrowed<'a, 'py, PyAny>) -> PyResult<Self> {
        if obj.is_instance_of::<pyo3::types::PyBool>() {
            return Err(PyTypeError::new_err("axis must be an int, got bool"));
        }
        extract_axis(&obj).map(AxisInt)
    }
}

/// An int axis as `isize`: one that does not fit is out of bounds for any
/// array (a `ValueError`, as for any other axis out of bounds, not
/// `OverflowError`).
pub fn extract_axis(o: &Bound<'_, PyAny>) -> PyResult<isize> {
    o.extract::<isize>().map_err(|e| {
        if o.is_instance_of::<pyo3::types::PyInt>() {
            PyValueError::new_err(format!(
                "axis {o} is out of bounds for an array of any dimension"
            ))
        } else {
            e
        }
    })
}

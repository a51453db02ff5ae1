//! One binding path for every row-wise function (softmax family and their
//! backward passes): argument conversion, axis and layout, `where=`, `out=`,
//! GIL release, then one call into `kernels::run_rows_raw`.

use numpy::{PyUntypedArray, PyUntypedArrayMethods};
use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::PyTuple;
use pyo3::Borrowed;

use super::array::*;
use crate::kernels::elementwise::Ptr;
use crate::kernels::softmax::{
    LogSoftmax, LogSoftmaxBackward, LogSumExp, LseOut, ScaledLogSumExp, Softmax, SoftmaxBackward,
    WeightedLogSumExp,
};
use crate::kernels::{run_rows_raw, Layout};

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum RowKind {
    Softmax,
    LogSoftmax,
    LogSumExp,
    /// SciPy's `logsumexp(b=)`: inputs `[x, b]`.
    WeightedLogSumExp(LseOut),
    /// The same with one weight for every entry (a Python number, or none):
    /// input `[x]`.
    ScaledLogSumExp(LseOut, f64),
    SoftmaxBackward,
    LogSoftmaxBackward,
}

impl RowKind {
    fn reduces(self) -> bool {
        matches!(
            self,
            RowKind::LogSumExp | RowKind::WeightedLogSumExp(_) | RowKind::ScaledLogSumExp(..)
        )
    }
}

/// # Safety
/// As [`run_rows_raw`].
unsafe fn run_kind<T: Elem>(
    kind: RowKind,
    layout: Layout,
    ins: &[*const T],
    mask: Option<&[u8]>,
    out: *mut T,
) {
    match kind {
        RowKind::Softmax => run_rows_raw(&Softmax, layout, ins, mask, out),
        RowKind::LogSoftmax => run_rows_raw(&LogSoftmax, layout, ins, mask, out),
        RowKind::LogSumExp => run_rows_raw(&LogSumExp, layout, ins, mask, out),
        RowKind::WeightedLogSumExp(how) => {
            run_rows_raw(&WeightedLogSumExp(how), layout, ins, mask, out)
        }
        RowKind::ScaledLogSumExp(how, b) => {
            // The weight in x's dtype, as NumPy takes a Python number.
            let b = T::from_f64(b).to_f64();
            run_rows_raw(&ScaledLogSumExp { how, b }, layout, ins, mask, out)
        }
        RowKind::SoftmaxBackward => run_rows_raw(&SoftmaxBackward, layout, ins, mask, out),
        RowKind::LogSoftmaxBackward => run_rows_raw(&LogSoftmaxBackward, layout, ins, mask, out),
    }
}

fn data<T>(a: &Bound<'_, PyUntypedArray>) -> Ptr<T> {
    // SAFETY: reading the data pointer of a live array.
    Ptr(unsafe { (*a.as_array_ptr()).fields.data } as *mut T)
}

fn compute<T: Elem>(
    py: Python<'_>,
    kind: RowKind,
    layout: Layout,
    arrs: &[Bound<'_, PyUntypedArray>],
    mask: Option<&Bound<'_, PyUntypedArray>>,
    target: &Bound<'_, PyUntypedArray>,
) {
    let ins: Vec<Ptr<T>> = arrs.iter().map(data::<T>).collect();
    // SAFETY: a contiguous bool array kept alive by the caller.
    let m = mask.map(|a| unsafe { mask_bytes(a) });
    let out = data::<T>(target);
    maybe_detach(py, layout.len(), || {
        let ins: Vec<*const T> = ins.iter().map(|p| p.get() as *const T).collect();
        // SAFETY: inputs are aligned, contiguous, of dtype T, and each is
        // exactly the target (in place, map ops only) or disjoint from it
        // (checked by the caller with `writable_direct`).
        unsafe { run_kind(kind, layout, &ins, m, out.get()) }
    });
}

/// `axis=` of the row functions: an int, or a tuple of ints as NumPy's and
/// SciPy's reductions take (the rows are then the elements over all those
/// axes; a list is refused, as NumPy refuses it); None, every axis, is the
/// `Option` around it.
#[derive(Clone)]
pub enum AxisArg {
    One(isize),
    Many(Vec<isize>),
}

fn int_axis(o: &Bound<'_, PyAny>) -> PyResult<isize> {
    // A bool is an int to Python, not to NumPy's reductions.
    let is_bool = o.is_instance_of::<pyo3::types::PyBool>();
    if !is_bool && o.is_instance_of::<pyo3::types::PyInt>() {
        return super::array::extract_axis(o);
    }
    let not_bool = if is_bool {
        None
    } else {
        o.extract::<isize>().ok()
    };
    not_bool.ok_or(()).map_err(|_| {
        let t = o
            .get_type()
            .name()
            .map_or_else(|_| "?".to_string(), |n| n.to_string());
        PyTypeError::new_err(format!(
            "axis must be an int, a tuple of ints or None, got {t}"
        ))
    })
}

impl<'a, 'py> FromPyObject<'a, 'py> for AxisArg {
    type Error = PyErr;

    fn extract(obj: Borrowed<'a, 'py, PyAny>) -> PyResult<Self> {
        let obj = obj.to_owned();
        if obj.is_instance_of::<PyTuple>() {
            let mut v = Vec::new();
            for item in obj.try_iter()? {
                v.push(int_axis(&item?)?);
            }
            return Ok(AxisArg::Many(v));
        }
        Ok(AxisArg::One(int_axis(&obj)?))
    }
}

/// The rows' axes: all of them, a run of adjacent ones (`start`, `len`;
/// one axis is a run of 1, and `len` 0 means no axis), or others, sorted.
enum Axes {
    All,
    Run(usize, usize),
    Scattered(Vec<usize>),
}

impl Axes {
    fn of(axis: Option<AxisArg>, ndim: usize) -> PyResult<Self> {
        let v = match axis {
            None => return Ok(Axes::All),
            Some(AxisArg::One(a)) => return Ok(Axes::Run(norm_axis(a, ndim)?, 1)),
            Some(AxisArg::Many(v)) => v,
        };
        let mut u = v
            .iter()
            .map(|&a| norm_axis(a, ndim))
            .collect::<PyResult<Vec<_>>>()?;
        u.sort_unstable();
        if u.windows(2).any(|w| w[0] == w[1]) {
            let v: Vec<String> = v.iter().map(|a| a.to_string()).collect();
            return Err(PyValueError::new_err(format!(
                "axis ({}) names an axis more than once",
                v.join(", ")
            )));
        }
        Ok(match u.first() {
            // No axis: a new axis of 1 after the last.
            None => Axes::Run(ndim, 0),
            Some(&s) if u.windows(2).all(|w| w[1] == w[0] + 1) => Axes::Run(s, u.len()),
            Some(_) => Axes::Scattered(u),
        })
    }

    fn has(&self, i: usize) -> bool {
        match self {
            Axes::All => true,
            Axes::Run(s, n) => (*s..s + n).contains(&i),
            Axes::Scattered(v) => v.contains(&i),
        }
    }
}

/// `shape` with the `len` axes from `start` merged into one (of their
/// product's size; a new axis of 1 when `len` is 0).
fn merged(shape: &[usize], start: usize, len: usize) -> Vec<usize> {
    let mut m = shape[..start].to_vec();
    m.push(shape[start..start + len].iter().product());
    m.extend_from_slice(&shape[start + len..]);
    m
}

/// Runs a row-wise function. `inputs` are `(value, parameter name)`; all must
/// have one shape. `axis = None` means over all elements; several axes are
/// one row per position on the others: adjacent ones are merged (no copy),
/// others moved to the end first (a copy of each input, and of a map's
/// result back).
pub fn row_call<'py>(
    py: Python<'py>,
    kind: RowKind,
    inputs: &[(&Bound<'py, PyAny>, &str)],
    axis: Option<AxisArg>,
    mask: Option<&Bound<'py, PyAny>>,
    out: Option<&Bound<'py, PyAny>>,
    keepdims: bool,
) -> PyResult<Bound<'py, PyAny>> {
    let Floats { mut arrs, dt, half } = float_args(py, inputs)?;
    same_shape(&arrs, inputs)?;
    let mut shape = arrs[0].shape().to_vec();
    let nd = shape.len();
    let axes = Axes::of(axis, nd)?;

    let out_shape: Vec<usize> = if !kind.reduces() || shape.is_empty() {
        shape.clone()
    } else if keepdims {
        let dims = shape.iter().enumerate();
        dims.map(|(i, &s)| if axes.has(i) { 1 } else { s })
            .collect()
    } else {
        let dims = shape.iter().enumerate();
        dims.filter(|&(i, _)| !axes.has(i))
            .map(|(_, &s)| s)
            .collect()
    };

    // Axes that are not adjacent are moved to the end; `back` moves a map's
    // result to the given shape.
    let mut mask_in = mask.cloned();
    let mut back = None;
    let run = match &axes {
        Axes::All => None,
        Axes::Run(s, n) => Some((*s, *n)),
        Axes::Scattered(v) => {
            let m = v.len();
            let src = PyTuple::new(py, v)?;
            let dst = PyTuple::new(py, nd - m..nd)?;
            for a in arrs.iter_mut() {
                *a = moveaxis(a, &src, &dst)?;
            }
            if let Some(mk) = mask {
                // A view; `prepare_mask` below lays it out once.
                let full = broadcast_mask(mk, &shape, inputs[0].1)?;
                mask_in = Some(moveaxis(&full, &src, &dst)?.into_any());
            }
            shape = arrs[0].shape().to_vec();
            back = Some((dst, src));
            Some((nd - m, m))
        }
    };
    let order = match usable_order(&arrs[0]) {
        Some(o) => o,
        None => {
            arrs[0] = in_order(&arrs[0], Order::C)?;
            Order::C
        }
    };
    for a in arrs.iter_mut().skip(1) {
        if !fits(a, order) {
            *a = in_order(a, order)?;
        }
    }
    let layout = match run {
        // A 0-d input is one row of one element, whatever the axes.
        Some(_) if shape.is_empty() => layout_of(&shape, 0, order),
        Some((start, 1)) => layout_of(&shape, start, order),
        Some((start, len)) => layout_of(&merged(&shape, start, len), start, order),
        None => Layout {
            outer: 1,
            n: shape.iter().product(),
            inner: 1,
        },
    };
    let mask_arr = mask_in
        .map(|m| prepare_mask(&m, &shape, inputs[0].1, order))
        .transpose()?;

    // A map over moved axes computes into a new array of the moved shape.
    let moved_map = !kind.reduces() && back.is_some();
    let user_out = out
        .map(|o| check_out(o, &out_shape, dt_name(dt, half), "out"))
        .transpose()?;
    // Map ops may run exactly in place; a reduction's output must be disjoint.
    let ins: Vec<&Bound<'_, PyUntypedArray>> = arrs.iter().collect();
    let mut disjoint: Vec<&Bound<'_, PyUntypedArray>> = mask_arr.iter().collect();
    let same_ok: &[&Bound<'_, PyUntypedArray>] = if kind.reduces() {
        disjoint.extend(&ins);
        &[]
    } else {
        &ins
    };
    let direct = !moved_map
        && user_out
            .as_ref()
            .is_some_and(|o| writable_direct(o, order, half, same_ok, &disjoint));
    let target = match (&user_out, direct) {
        (Some(o), true) => o.clone(),
        _ if moved_map => new_of(py, dt, &shape, order),
        _ => new_of(py, dt, &out_shape, order),
    };
    match dt {
        Dt::F32 => compute::<f32>(py, kind, layout, &arrs, mask_arr.as_ref(), &target),
        Dt::F64 => compute::<f64>(py, kind, layout, &arrs, mask_arr.as_ref(), &target),
    }
    let target = match (&back, moved_map) {
        (Some((from, to)), true) => {
            let r = moveaxis(&target, from, to)?;
            if user_out.is_some() {
                r
            } else {
                in_order(&r, Order::C)?
            }
        }
        _ => target,
    };
    if let Some(o) = user_out {
        if !direct {
            numpy(py)?.call_method1("copyto", (&o, &target))?;
        }
        return Ok(o.into_any());
    }
    let res = if half {
        target.call_method1("astype", ("float16",))?
    } else {
        target.into_any()
    };
    if out_shape.is_empty() {
        // Like NumPy, a 0-d result is returned as a scalar.
        return res.get_item(());
    }
    Ok(res)
}

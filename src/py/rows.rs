//! One binding path for every row-wise function (softmax family and their
//! backward passes): argument conversion, axis and layout, `where=`, `out=`,
//! GIL release, then one call into `kernels::run_rows_raw`.

use numpy::{PyUntypedArray, PyUntypedArrayMethods};
use pyo3::prelude::*;

use super::array::*;
use crate::kernels::elementwise::Ptr;
use crate::kernels::softmax::{
    LogSoftmax, LogSoftmaxBackward, LogSumExp, Softmax, SoftmaxBackward,
};
use crate::kernels::{run_rows_raw, Layout};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RowKind {
    Softmax,
    LogSoftmax,
    LogSumExp,
    SoftmaxBackward,
    LogSoftmaxBackward,
}

impl RowKind {
    fn reduces(self) -> bool {
        self == RowKind::LogSumExp
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

/// Runs a row-wise function. `inputs` are `(value, parameter name)`; all must
/// have one shape. `axis = None` means over all elements.
pub fn row_call<'py>(
    py: Python<'py>,
    kind: RowKind,
    inputs: &[(&Bound<'py, PyAny>, &str)],
    axis: Option<isize>,
    mask: Option<&Bound<'py, PyAny>>,
    out: Option<&Bound<'py, PyAny>>,
    keepdims: bool,
) -> PyResult<Bound<'py, PyAny>> {
    let Floats { mut arrs, dt, half } = float_args(py, inputs)?;
    same_shape(&arrs, inputs)?;
    let shape = arrs[0].shape().to_vec();
    let ax = axis.map(|a| norm_axis(a, shape.len())).transpose()?;
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
    let layout = match ax {
        Some(ax) => layout_of(&shape, ax, order),
        None => Layout {
            outer: 1,
            n: shape.iter().product(),
            inner: 1,
        },
    };
    let mask_arr = mask.map(|m| prepare_mask(m, &shape, order)).transpose()?;

    let out_shape: Vec<usize> = if !kind.reduces() || shape.is_empty() {
        shape.clone()
    } else {
        match (ax, keepdims) {
            (Some(a), false) => shape
                .iter()
                .enumerate()
                .filter(|&(i, _)| i != a)
                .map(|(_, &s)| s)
                .collect(),
            (Some(a), true) => shape
                .iter()
                .enumerate()
                .map(|(i, &s)| if i == a { 1 } else { s })
                .collect(),
            (None, false) => vec![],
            (None, true) => vec![1; shape.len()],
        }
    };
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
    let direct = user_out
        .as_ref()
        .is_some_and(|o| writable_direct(o, order, half, same_ok, &disjoint));
    let target = match (&user_out, direct) {
        (Some(o), true) => o.clone(),
        _ => new_of(py, dt, &out_shape, order),
    };
    match dt {
        Dt::F32 => compute::<f32>(py, kind, layout, &arrs, mask_arr.as_ref(), &target),
        Dt::F64 => compute::<f64>(py, kind, layout, &arrs, mask_arr.as_ref(), &target),
    }
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

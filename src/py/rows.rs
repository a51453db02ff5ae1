//! One binding path for every row-wise function (softmax family and their
//! backward passes): argument conversion, axis and layout, `where=`, `out=`,
//! GIL release, then one call into `kernels::run_rows`.

use numpy::{PyUntypedArray, PyUntypedArrayMethods};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;

use super::array::*;
use crate::kernels::softmax::{
    LogSoftmax, LogSoftmaxBackward, LogSumExp, Softmax, SoftmaxBackward,
};
use crate::kernels::{run_rows, Layout};
use crate::par::SERIAL_ELEMS;

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

fn run_kind<T: Elem>(
    kind: RowKind,
    layout: Layout,
    ins: &[&[T]],
    mask: Option<&[u8]>,
    out: &mut [T],
) {
    match kind {
        RowKind::Softmax => run_rows(&Softmax, layout, ins, mask, out),
        RowKind::LogSoftmax => run_rows(&LogSoftmax, layout, ins, mask, out),
        RowKind::LogSumExp => run_rows(&LogSumExp, layout, ins, mask, out),
        RowKind::SoftmaxBackward => run_rows(&SoftmaxBackward, layout, ins, mask, out),
        RowKind::LogSoftmaxBackward => run_rows(&LogSoftmaxBackward, layout, ins, mask, out),
    }
}

fn compute<T: Elem>(
    py: Python<'_>,
    kind: RowKind,
    layout: Layout,
    arrs: &[Bound<'_, PyUntypedArray>],
    mask: Option<&Bound<'_, PyUntypedArray>>,
    target: &Bound<'_, PyUntypedArray>,
) {
    // SAFETY: inputs are aligned, contiguous, of dtype T (checked by the
    // caller), and the target overlaps none of them.
    let ins: Vec<&[T]> = arrs.iter().map(|a| unsafe { slice_of::<T>(a) }).collect();
    let m = mask.map(|a| unsafe { mask_bytes(a) });
    let out = unsafe { slice_mut_of::<T>(target) };
    if layout.len() >= SERIAL_ELEMS {
        py.detach(|| run_kind(kind, layout, &ins, m, out));
    } else {
        run_kind(kind, layout, &ins, m, out);
    }
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
    let args = inputs
        .iter()
        .map(|(x, name)| float_arg(py, x, name))
        .collect::<PyResult<Vec<_>>>()?;
    let dt = if args.iter().any(|a| a.dt == Dt::F64) {
        Dt::F64
    } else {
        Dt::F32
    };
    let half = args.iter().all(|a| a.half);
    let mut arrs = args
        .iter()
        .map(|a| cast_to(a, dt))
        .collect::<PyResult<Vec<_>>>()?;
    let shape = arrs[0].shape().to_vec();
    for (a, (_, name)) in arrs.iter().zip(inputs).skip(1) {
        if a.shape() != shape.as_slice() {
            return Err(PyValueError::new_err(format!(
                "{name} has shape {}, but {} has shape {}",
                shape_str(a.shape()),
                inputs[0].1,
                shape_str(&shape)
            )));
        }
    }
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
    let dt_name = match (half, dt) {
        (true, _) => "float16",
        (false, Dt::F32) => "float32",
        (false, Dt::F64) => "float64",
    };
    let user_out = out
        .map(|o| check_out(o, &out_shape, dt_name, "out"))
        .transpose()?;
    let direct = user_out.as_ref().is_some_and(|o| {
        let r = byte_range(o);
        !half
            && fits(o, order)
            && arrs.iter().all(|a| !overlaps(byte_range(a), r))
            && mask_arr
                .as_ref()
                .is_none_or(|m| !overlaps(byte_range(m), r))
    });
    let target = match (&user_out, direct) {
        (Some(o), true) => o.clone(),
        _ => match dt {
            Dt::F32 => new_array::<f32>(py, &out_shape, order),
            Dt::F64 => new_array::<f64>(py, &out_shape, order),
        },
    };
    match dt {
        Dt::F32 => compute::<f32>(py, kind, layout, &arrs, mask_arr.as_ref(), &target),
        Dt::F64 => compute::<f64>(py, kind, layout, &arrs, mask_arr.as_ref(), &target),
    }
    if let Some(o) = user_out {
        if !direct {
            py.import("numpy")?.call_method1("copyto", (&o, &target))?;
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

//! One binding path for the losses: argument conversion and validation
//! (messages name the argument and the position), class axis, `reduction`,
//! `grad_out` (which may be the input itself), GIL release, then one call into
//! `kernels::losses`.

use numpy::{PyArrayDescrMethods, PyUntypedArray, PyUntypedArrayMethods};
use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::PyTuple;

use super::array::*;
use crate::kernels::losses::{
    first_in_tasks, first_nan, first_negative, first_not_prob, index_weight_sum_tasks, pointwise,
    row_loss, row_loss_inner, CeParams, Input, Pointwise, Targets,
};
use crate::kernels::Layout;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Red {
    None,
    Sum,
    Mean,
    BatchMean,
}

fn parse_reduction(s: &str, batchmean: bool) -> PyResult<Red> {
    match s {
        "mean" => Ok(Red::Mean),
        "sum" => Ok(Red::Sum),
        "none" => Ok(Red::None),
        "batchmean" if batchmean => Ok(Red::BatchMean),
        _ => Err(PyValueError::new_err(format!(
            "reduction must be {}, got '{s}'",
            if batchmean {
                "'mean', 'batchmean', 'sum' or 'none'"
            } else {
                "'mean', 'sum' or 'none'"
            }
        ))),
    }
}

/// `name[i, j]` for flat position `pos` of a C-ordered array of `shape`.
fn pos_str(name: &str, shape: &[usize], pos: usize) -> String {
    pos_str_in(name, shape, pos, Order::C)
}

/// [`pos_str`] for the flat position `pos` of an array laid out in `order`.
fn pos_str_in(name: &str, shape: &[usize], pos: usize, order: Order) -> String {
    if shape.is_empty() {
        return name.to_string();
    }
    let mut idx = vec![0; shape.len()];
    let mut p = pos;
    let dims: Vec<usize> = match order {
        Order::C => (0..shape.len()).rev().collect(),
        Order::F => (0..shape.len()).collect(),
    };
    for i in dims {
        let s = shape[i];
        idx[i] = p % s.max(1);
        p /= s.max(1);
    }
    let parts: Vec<String> = idx.iter().map(|i| i.to_string()).collect();
    format!("{name}[{}]", parts.join(", "))
}

/// The loss as a NumPy scalar of the result dtype.
fn scalar<'py>(py: Python<'py>, v: f64, name: &str) -> PyResult<Bound<'py, PyAny>> {
    numpy(py)?.getattr(name)?.call1((v,))
}

/// Where the gradient is computed and how it reaches the caller.
struct GradPlan<'py> {
    user: Option<Bound<'py, PyUntypedArray>>,
    buf: Bound<'py, PyUntypedArray>,
    /// `buf` is the user's array (no copy back).
    direct: bool,
    /// `buf` is the (unconverted) input itself: compute in place.
    inplace: bool,
}

#[allow(clippy::too_many_arguments)]
fn plan_grad<'py>(
    py: Python<'py>,
    return_grad: bool,
    grad_out: Option<&Bound<'py, PyAny>>,
    user_shape: &[usize],
    calc_shape: &[usize],
    dt: Dt,
    half: bool,
    moved: bool,
    order: Order,
    x: &Bound<'py, PyUntypedArray>,
    others: &[&Bound<'py, PyUntypedArray>],
) -> PyResult<Option<GradPlan<'py>>> {
    if !return_grad {
        if grad_out.is_some() {
            return Err(PyValueError::new_err(
                "grad_out is given but return_grad is False",
            ));
        }
        return Ok(None);
    }
    let user = grad_out
        .map(|o| check_out(o, user_shape, dt_name(dt, half), "grad_out"))
        .transpose()?;
    // The gradient may overwrite the input itself (in place), never other inputs.
    let direct = !moved
        && user
            .as_ref()
            .is_some_and(|o| writable_direct(o, order, half, &[x], others));
    let inplace = direct
        && user
            .as_ref()
            .is_some_and(|o| byte_range(o) == byte_range(x));
    let buf = match (&user, direct) {
        (Some(o), true) => o.clone(),
        _ => new_of(py, dt, calc_shape, order),
    };
    Ok(Some(GradPlan {
        user,
        buf,
        direct,
        inplace,
    }))
}

/// Moves the class axis back, copies into the user's array or casts to
/// float16 as needed.
fn finish_grad<'py>(
    py: Python<'py>,
    plan: GradPlan<'py>,
    moved_from: Option<usize>,
    half: bool,
) -> PyResult<Bound<'py, PyAny>> {
    let mut g = plan.buf;
    if let Some(ax) = moved_from {
        // The package's transposes, into the user's array when they can
        // write it (NumPy's transposing copy took 20-40 x a copy).
        let into = plan.user.as_ref().filter(|_| !half);
        if let Some(back) = moved_from_last_c(&g, ax, into) {
            if into.is_some() {
                return Ok(back.into_any());
            }
            g = back;
        } else {
            g = moveaxis(&g, -1, ax as isize)?;
        }
    }
    if let Some(o) = plan.user {
        if !plan.direct {
            numpy(py)?.call_method1("copyto", (&o, &g))?;
        }
        return Ok(o.into_any());
    }
    if half {
        return g.call_method1("astype", ("float16",));
    }
    Ok(g.into_any())
}

fn result<'py>(
    py: Python<'py>,
    loss: Bound<'py, PyAny>,
    grad: Option<Bound<'py, PyAny>>,
) -> PyResult<Bound<'py, PyAny>> {
    match grad {
        Some(g) => Ok(PyTuple::new(py, [loss, g])?.into_any()),
        None => Ok(loss),
    }
}

fn per_row_value<'py>(
    py: Python<'py>,
    red: Red,
    total: f64,
    rows: Option<Bound<'py, PyUntypedArray>>,
    dt: Dt,
    half: bool,
) -> PyResult<Bound<'py, PyAny>> {
    match rows {
        Some(r) if red == Red::None => {
            if half {
                r.call_method1("astype", ("float16",))
            } else {
                Ok(r.into_any())
            }
        }
        _ => scalar(py, total, dt_name(dt, half)),
    }
}

// ------------------------------------------------------------ class losses

enum Tgt<'py> {
    Index(Bound<'py, PyUntypedArray>),
    Prob(Bound<'py, PyUntypedArray>),
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum ClassLoss {
    CrossEntropy,
    Nll,
}

/// `ignore_index` as an int64 (-100 when not given): a ValueError naming it
/// when the integer does not fit, a TypeError when it is not an integer.
fn ignore_index_arg(v: Option<&Bound<'_, PyAny>>) -> PyResult<i64> {
    let Some(v) = v.filter(|v| !v.is_none()) else {
        return Ok(-100);
    };
    i64_arg(v, "ignore_index")?.ok_or_else(|| {
        PyValueError::new_err(format!(
            "ignore_index = {} does not fit in a 64-bit integer",
            v.repr().map_or_else(|_| "?".into(), |r| r.to_string())
        ))
    })
}

#[allow(clippy::too_many_arguments)]
fn class_typed<T: Elem>(
    py: Python<'_>,
    kind: ClassLoss,
    x: &Bound<'_, PyUntypedArray>,
    tgt: &Tgt<'_>,
    tshape: &[usize],
    user_shape: &[usize],
    ax: usize,
    weight: Option<&Bound<'_, PyUntypedArray>>,
    n: usize,
    inner: usize,
    ignore_index: i64,
    eps: f64,
    red: Red,
    grad: Option<&GradPlan<'_>>,
    per_row: Option<&Bound<'_, PyUntypedArray>>,
) -> PyResult<f64> {
    // SAFETY: all arrays are aligned, C-contiguous, of the types named here,
    // alive for this call; the gradient buffer overlaps none of the read-only
    // slices (in place, the input is read through the buffer only).
    let w = weight.map(|a| unsafe { slice_of::<T>(a) });
    if let Some(w) = w {
        if let Some(i) = first_in_tasks(w, first_negative) {
            return Err(PyValueError::new_err(format!(
                "weight[{i}] = {:?} is not a non-negative weight",
                w[i].to_f64()
            )));
        }
    }
    let mut p = CeParams::new(n, w, ignore_index, eps);
    let rows = x.len() / n.max(1);
    let (targets, norm) = match tgt {
        Tgt::Index(t) => {
            let ts = unsafe { slice_of::<i64>(t) };
            let wsum = index_weight_sum_tasks(ts, n, w, ignore_index).map_err(|b| {
                PyValueError::new_err(format!(
                    "{} = {} is not a class index for {n} classes",
                    pos_str("target", tshape, b.pos),
                    b.value
                ))
            })?;
            let t = if kind == ClassLoss::Nll {
                Targets::Nll(ts)
            } else {
                Targets::Index(ts)
            };
            (t, wsum)
        }
        Tgt::Prob(y) => {
            let ys = unsafe { slice_of::<T>(y) };
            if let Some(i) = first_in_tasks(ys, first_nan) {
                if inner > 1 {
                    // In the caller's layout (`row_loss_inner`).
                    return Err(PyValueError::new_err(format!(
                        "{} is NaN; class probabilities must be numbers",
                        pos_str("target", user_shape, i)
                    )));
                }
                // Position in the caller's coordinates: the class axis was
                // moved last for the computation.
                let mut shape_m: Vec<usize> = user_shape.to_vec();
                let c = shape_m.remove(ax);
                shape_m.push(c);
                let s = pos_str("", &shape_m, i);
                let mut idx: Vec<&str> = s[1..s.len() - 1].split(", ").collect();
                let last = idx.pop().unwrap_or("0");
                idx.insert(ax, last);
                return Err(PyValueError::new_err(format!(
                    "target[{}] is NaN; class probabilities must be numbers",
                    idx.join(", ")
                )));
            }
            (Targets::Prob(ys), rows as f64)
        }
    };
    p.scale = if red == Red::Mean {
        if norm > 0.0 {
            1.0 / norm
        } else {
            0.0
        }
    } else {
        1.0
    };
    let xin = match grad {
        Some(g) if g.inplace => Input::InGrad,
        _ => Input::Slice(unsafe { slice_of::<T>(x) }),
    };
    let gs = grad.map(|g| unsafe { slice_mut_of::<T>(&g.buf) });
    let ls = per_row.map(|a| unsafe { slice_mut_of::<T>(a) });
    let total = maybe_detach(py, x.len(), || {
        if inner > 1 {
            let layout = Layout {
                outer: rows / inner,
                n,
                inner,
            };
            row_loss_inner(layout, xin, targets, &p, gs, ls)
        } else {
            row_loss(rows, xin, targets, &p, gs, ls)
        }
    });
    Ok(match red {
        Red::Mean => {
            if norm > 0.0 {
                total / norm
            } else {
                0.0
            }
        }
        _ => total,
    })
}

#[allow(clippy::too_many_arguments)]
fn class_loss<'py>(
    py: Python<'py>,
    kind: ClassLoss,
    input: &Bound<'py, PyAny>,
    input_name: &str,
    target: &Bound<'py, PyAny>,
    axis: isize,
    weight: Option<&Bound<'py, PyAny>>,
    ignore_index: i64,
    label_smoothing: f64,
    reduction: &str,
    return_grad: bool,
    grad_out: Option<&Bound<'py, PyAny>>,
) -> PyResult<Bound<'py, PyAny>> {
    let red = parse_reduction(reduction, false)?;
    if !(0.0..=1.0).contains(&label_smoothing) {
        return Err(PyValueError::new_err(format!(
            "label_smoothing must be in [0, 1], got {label_smoothing}"
        )));
    }
    let xa = float_arg(py, input, input_name)?;
    let (dt, half) = (xa.dt, xa.half);
    let shape = xa.arr.shape().to_vec();
    if shape.is_empty() {
        return Err(PyValueError::new_err(format!(
            "{input_name} must have a class axis, got a 0-d array"
        )));
    }
    let ax = norm_axis(axis, shape.len())?;
    let n = shape[ax];
    let tshape: Vec<usize> = shape
        .iter()
        .enumerate()
        .filter(|&(i, _)| i != ax)
        .map(|(_, &s)| s)
        .collect();
    let inner: usize = shape[ax + 1..].iter().product();
    // A class axis that is not the last, of a C-ordered array: with nothing
    // after it (trailing axes of length 1) the rows are already contiguous;
    // else cross-entropy and nll_loss take the rows from the array as it
    // is (`row_loss_inner`). Otherwise the axis is moved last by transposes
    // (and the gradient moved back).
    let in_place_axis = ax + 1 < shape.len() && fits(&xa.arr, Order::C) && (inner == 1 || n >= 1);
    let moved = ax != shape.len() - 1 && !in_place_axis;
    let x = if in_place_axis {
        xa.arr.clone()
    } else {
        moved_to_last_c(&xa.arr, ax)?
    };
    let calc_shape = x.shape().to_vec();

    let t = if target.is_exact_instance_of::<PyUntypedArray>() {
        target.cast::<PyUntypedArray>()?.clone()
    } else {
        // Lists, tensors, subclasses (a masked array's mask must not be
        // dropped silently).
        py.import("logitkit._convert")?
            .getattr("as_array")?
            .call1((
                target,
                "target",
                "; for class indices, target.filled(ignore_index) skips those rows",
            ))?
            .cast_into::<PyUntypedArray>()?
    };
    let tkind = t.dtype().kind();
    let t_shape = t.shape().to_vec();
    let tgt = match tkind {
        b'i' | b'u' => {
            if t_shape != tshape {
                if t_shape == shape {
                    return Err(PyTypeError::new_err(format!(
                        "target has the shape of {input_name} but integer dtype {}; \
                         class probabilities must be floating point",
                        t.dtype().str()?
                    )));
                }
                return Err(PyValueError::new_err(format!(
                    "target has shape {}, but class indices for {input_name} of shape {} \
                     must have shape {}",
                    shape_str(&t_shape),
                    shape_str(&shape),
                    shape_str(&tshape)
                )));
            }
            // uint64 beyond int64's range would wrap to a negative index:
            // one reduction (no temporary) finds whether there is any.
            if tkind == b'u'
                && t.dtype().itemsize() == 8
                && t.len() > 0
                && t.call_method0("max")?.extract::<u64>()? > i64::MAX as u64
            {
                let flat = t.call_method0("ravel")?;
                let above = flat.call_method1("__gt__", (i64::MAX as u64,))?;
                let pos: usize = above.call_method0("argmax")?.extract()?;
                let value: u64 = flat.get_item(pos)?.extract()?;
                return Err(PyValueError::new_err(format!(
                    "{} = {value} is not a class index for {n} classes",
                    pos_str("target", &tshape, pos)
                )));
            }
            let i64t = numpy(py)?
                .call_method1("ascontiguousarray", (&t, "int64"))?
                .cast_into::<PyUntypedArray>()?;
            Tgt::Index(i64t)
        }
        b'f' if kind == ClassLoss::CrossEntropy && t_shape == shape => {
            if ignore_index >= 0 {
                // As PyTorch: no class to ignore among probabilities (a
                // negative value, the default -100 among them, is allowed).
                return Err(PyValueError::new_err(format!(
                    "ignore_index = {ignore_index} applies to class-index targets, not to class probabilities"
                )));
            }
            let ya = float_arg(py, t.as_any(), "target")?;
            let y = cast_to(&ya, dt)?;
            Tgt::Prob(if in_place_axis {
                in_order(&y, Order::C)?
            } else {
                moved_to_last_c(&y, ax)?
            })
        }
        b'f' if t_shape == tshape || kind == ClassLoss::Nll => {
            let hint = if kind == ClassLoss::CrossEntropy {
                format!(" (float probabilities must have the shape of {input_name})")
            } else {
                String::new()
            };
            return Err(PyTypeError::new_err(format!(
                "target has floating dtype {} but must hold integer class indices{hint}",
                t.dtype().str()?
            )));
        }
        b'f' => {
            let what = if kind == ClassLoss::CrossEntropy {
                format!(
                    "class probabilities of shape {} or class indices of shape {}",
                    shape_str(&shape),
                    shape_str(&tshape)
                )
            } else {
                format!("class indices of shape {}", shape_str(&tshape))
            };
            return Err(PyValueError::new_err(format!(
                "target has shape {}, but {input_name} of shape {} needs {what}",
                shape_str(&t_shape),
                shape_str(&shape),
            )));
        }
        _ => {
            return Err(PyTypeError::new_err(format!(
                "target must hold integer class indices or float probabilities, got dtype {}",
                t.dtype().str()?
            )));
        }
    };

    let w = match weight {
        Some(w) => {
            let wa = float_arg(py, w, "weight")?;
            let wc = in_order(&cast_to(&wa, dt)?, Order::C)?;
            if wc.shape() != [n] {
                return Err(PyValueError::new_err(format!(
                    "weight has shape {}, but {input_name} has {n} classes (axis {ax})",
                    shape_str(wc.shape())
                )));
            }
            Some(wc)
        }
        None => None,
    };

    let tarr = match &tgt {
        Tgt::Index(a) | Tgt::Prob(a) => a.clone(),
    };
    let mut others = vec![&tarr];
    if let Some(wc) = &w {
        others.push(wc);
    }
    let plan = plan_grad(
        py,
        return_grad,
        grad_out,
        &shape,
        &calc_shape,
        dt,
        half,
        moved,
        Order::C,
        &x,
        &others,
    )?;
    let per_row = (red == Red::None).then(|| new_of(py, dt, &tshape, Order::C));
    let args = (
        py,
        kind,
        &x,
        &tgt,
        tshape.as_slice(),
        shape.as_slice(),
        ax,
        w.as_ref(),
        n,
        if in_place_axis { inner } else { 1 },
        ignore_index,
        label_smoothing,
        red,
        plan.as_ref(),
        per_row.as_ref(),
    );
    let total = match dt {
        Dt::F32 => {
            let (a, b, c, d, e, f, g, h, i, j, k, l, m, o, q) = args;
            class_typed::<f32>(a, b, c, d, e, f, g, h, i, j, k, l, m, o, q)?
        }
        Dt::F64 => {
            let (a, b, c, d, e, f, g, h, i, j, k, l, m, o, q) = args;
            class_typed::<f64>(a, b, c, d, e, f, g, h, i, j, k, l, m, o, q)?
        }
    };
    let loss = per_row_value(py, red, total, per_row, dt, half)?;
    let grad = plan
        .map(|p| finish_grad(py, p, moved.then_some(ax), half))
        .transpose()?;
    result(py, loss, grad)
}

/// Cross-entropy of softmax(logits) along `axis` against `target`, as
/// torch.nn.functional.cross_entropy, with the gradient from the same pass.
///
/// target: integer class indices (logits' shape without `axis`), or class
/// probabilities (logits' shape). Per row, with y' = (1 - s) * onehot(t) + s / C
/// (s = label_smoothing):  loss = sum_c w_c * y'_c * (logsumexp(x) - x_c).
/// With indices, rows whose target is ignore_index count 0; reduction="mean"
/// divides by the sum of weight[target] over the other rows (the row count
/// for probabilities). If that sum is 0 (every target ignored) the mean is 0
/// with a zero gradient, where PyTorch returns NaN.
/// return_grad=True returns (loss, d loss / d logits) = (softmax * sum(w y') -
/// w y') / normaliser; for reduction="none" it is the gradient of the sum.
/// grad_out: array of logits' shape and dtype to write the gradient into (may
/// be logits itself). -inf logits off the target are fine; -inf on the target
/// gives +inf.
///
/// >>> cross_entropy([[2.0, 0.0, -1.0]], [0])
/// 0.16984602...
#[pyfunction]
#[pyo3(signature = (logits, target, *, axis=AxisInt(-1), weight=None, ignore_index=None, label_smoothing=0.0, reduction="mean", return_grad=false, grad_out=None), text_signature = "(logits, target, *, axis=-1, weight=None, ignore_index=-100, label_smoothing=0.0, reduction='mean', return_grad=False, grad_out=None)")]
#[allow(clippy::too_many_arguments)]
fn cross_entropy<'py>(
    py: Python<'py>,
    logits: &Bound<'py, PyAny>,
    target: &Bound<'py, PyAny>,
    axis: AxisInt,
    weight: Option<&Bound<'py, PyAny>>,
    ignore_index: Option<&Bound<'py, PyAny>>,
    label_smoothing: f64,
    reduction: &str,
    return_grad: bool,
    grad_out: Option<&Bound<'py, PyAny>>,
) -> PyResult<Bound<'py, PyAny>> {
    class_loss(
        py,
        ClassLoss::CrossEntropy,
        logits,
        "logits",
        target,
        axis.0,
        weight,
        ignore_index_arg(ignore_index)?,
        label_smoothing,
        reduction,
        return_grad,
        grad_out,
    )
}

/// Negative log-likelihood, as torch.nn.functional.nll_loss: per row
/// -weight[t] * log_probs[t]; rows with target == ignore_index count 0;
/// "mean" divides by the sum of weight[target] over the other rows (0 if
/// there are none). The gradient is -weight[t] / normaliser at the target,
/// 0 elsewhere. target: integer class indices, log_probs' shape without axis.
///
/// >>> nll_loss([[-0.1, -2.3]], [1])
/// 2.3
#[pyfunction]
#[pyo3(signature = (log_probs, target, *, axis=AxisInt(-1), weight=None, ignore_index=None, reduction="mean", return_grad=false, grad_out=None), text_signature = "(log_probs, target, *, axis=-1, weight=None, ignore_index=-100, reduction='mean', return_grad=False, grad_out=None)")]
#[allow(clippy::too_many_arguments)]
fn nll_loss<'py>(
    py: Python<'py>,
    log_probs: &Bound<'py, PyAny>,
    target: &Bound<'py, PyAny>,
    axis: AxisInt,
    weight: Option<&Bound<'py, PyAny>>,
    ignore_index: Option<&Bound<'py, PyAny>>,
    reduction: &str,
    return_grad: bool,
    grad_out: Option<&Bound<'py, PyAny>>,
) -> PyResult<Bound<'py, PyAny>> {
    class_loss(
        py,
        ClassLoss::Nll,
        log_probs,
        "log_probs",
        target,
        axis.0,
        weight,
        ignore_index_arg(ignore_index)?,
        0.0,
        reduction,
        return_grad,
        grad_out,
    )
}

// ------------------------------------------------------------ pointwise

/// How a pointwise loss's total becomes the result.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Post {
    Plain,
    /// sqrt of the reduced squared error.
    Root,
}

#[allow(clippy::too_many_arguments)]
fn pointwise_typed<T: Elem>(
    py: Python<'_>,
    op: Pointwise,
    post: Post,
    input_name: &str,
    x: &Bound<'_, PyUntypedArray>,
    y: &Bound<'_, PyUntypedArray>,
    w: Option<&Bound<'_, PyUntypedArray>>,
    pw: Option<&Bound<'_, PyUntypedArray>>,
    shape: &[usize],
    order: Order,
    red: Red,
    grad: Option<&GradPlan<'_>>,
    per_elem: Option<&Bound<'_, PyUntypedArray>>,
) -> PyResult<f64> {
    // SAFETY: as in class_typed.
    let xs = unsafe { slice_of::<T>(x) };
    let ys = unsafe { slice_of::<T>(y) };
    if op == Pointwise::Bce {
        // The targets too, as PyTorch requires.
        for (a, name) in [(xs, input_name), (ys, "target")] {
            if let Some(i) = first_in_tasks(a, first_not_prob) {
                return Err(PyValueError::new_err(format!(
                    "{} = {:?} is not a probability in [0, 1]",
                    pos_str_in(name, shape, i, order),
                    a[i].to_f64()
                )));
            }
        }
    }
    let ws = w.map(|a| unsafe { slice_of::<T>(a) });
    let pws = pw.map(|a| unsafe { slice_of::<T>(a) });
    let len = ys.len();
    let norm = match red {
        Red::Mean => len as f64,
        Red::BatchMean => shape.first().copied().unwrap_or(1) as f64,
        _ => 1.0,
    };
    let xin = |g: Option<&GradPlan<'_>>| match g {
        Some(g) if g.inplace => Input::InGrad,
        _ => Input::Slice(xs),
    };
    let gs = grad.map(|g| unsafe { slice_mut_of::<T>(&g.buf) });
    let ls = per_elem.map(|a| unsafe { slice_mut_of::<T>(a) });
    if post == Post::Root && red != Red::None {
        // sqrt(S / norm); gradient (x - y) / (norm * r) = 2 (x - y) * scale.
        let s = maybe_detach(py, len, || {
            pointwise(
                Pointwise::Mse,
                Input::Slice(xs),
                ys,
                None,
                None,
                1.0,
                None,
                None,
            )
        });
        let r = (s / norm).sqrt();
        if let Some(gs) = gs {
            let scale = if r > 0.0 { 0.5 / (norm * r) } else { 0.0 };
            let xi = xin(grad);
            maybe_detach(py, len, || {
                pointwise(Pointwise::Mse, xi, ys, None, None, scale, Some(gs), None)
            });
        }
        return Ok(r);
    }
    let scale = 1.0 / norm;
    let gscale = if red == Red::None { 1.0 } else { scale };
    let xi = xin(grad);
    let total = maybe_detach(py, len, || pointwise(op, xi, ys, ws, pws, gscale, gs, ls));
    Ok(if red == Red::None {
        total
    } else {
        total * scale
    })
}

fn broadcast_to<'py>(
    py: Python<'py>,
    a: &Bound<'py, PyUntypedArray>,
    shape: &[usize],
    order: Order,
    name: &str,
    input_name: &str,
) -> PyResult<Bound<'py, PyUntypedArray>> {
    if a.shape() == shape {
        return in_order(a, order);
    }
    let b = numpy(py)?
        .call_method1("broadcast_to", (a, PyTuple::new(py, shape)?))
        .map_err(|_| {
            PyValueError::new_err(format!(
                "{name} has shape {}, which does not broadcast to the shape {} of {input_name}",
                shape_str(a.shape()),
                shape_str(shape)
            ))
        })?
        .cast_into::<PyUntypedArray>()?;
    in_order(&b, order)
}

#[allow(clippy::too_many_arguments)]
fn pointwise_loss<'py>(
    py: Python<'py>,
    op: Pointwise,
    post: Post,
    input: &Bound<'py, PyAny>,
    input_name: &str,
    target: &Bound<'py, PyAny>,
    weight: Option<&Bound<'py, PyAny>>,
    pos_weight: Option<&Bound<'py, PyAny>>,
    reduction: &str,
    batchmean: bool,
    return_grad: bool,
    grad_out: Option<&Bound<'py, PyAny>>,
) -> PyResult<Bound<'py, PyAny>> {
    let red = parse_reduction(reduction, batchmean)?;
    let xa = float_arg(py, input, input_name)?;
    let ya = float_arg(py, target, "target")?;
    // Computed in the input's dtype, as cross_entropy is (float16 input in
    // float32, returned as float16; integer input as np.exp promotes it):
    // target, weight and pos_weight are cast to it, so that float32 logits
    // with a float64, integer or list target keep float32 and grad_out may
    // be the input.
    let (dt, half) = (xa.dt, xa.half);
    // Elementwise, so an input laid out in Fortran order is taken in that
    // order (the gradient and per-element losses come out in it, as NumPy's
    // elementwise functions keep it) rather than through NumPy's transposing
    // copy (16 MB of float32: 17-19 ms; mse_loss + grad of two Fortran-ordered
    // 4096x1000 arrays took 24 x a copy). The sum's order follows the memory.
    let x0 = xa.arr.clone();
    let order = if fits(&x0, Order::F) && !fits(&x0, Order::C) {
        Order::F
    } else {
        Order::C
    };
    let x = in_order(&x0, order)?;
    let y = in_order(&cast_to(&ya, dt)?, order)?;
    let shape = x.shape().to_vec();
    if y.shape() != shape.as_slice() {
        return Err(PyValueError::new_err(format!(
            "target has shape {}, but {input_name} has shape {}",
            shape_str(y.shape()),
            shape_str(&shape)
        )));
    }
    let extra = |v: Option<&Bound<'py, PyAny>>, name: &str| -> PyResult<_> {
        v.map(|v| {
            let a = float_arg(py, v, name)?;
            broadcast_to(py, &cast_to(&a, dt)?, &shape, order, name, input_name)
        })
        .transpose()
    };
    let w = extra(weight, "weight")?;
    let pw = extra(pos_weight, "pos_weight")?;
    let mut others = vec![&y];
    others.extend(w.iter());
    others.extend(pw.iter());
    let plan = plan_grad(
        py,
        return_grad,
        grad_out,
        &shape,
        &shape,
        dt,
        half,
        false,
        order,
        &x,
        &others,
    )?;
    // rmse with reduction="none" is |x - y| per element.
    let op = if post == Post::Root && red == Red::None {
        Pointwise::L1
    } else {
        op
    };
    let per_elem = (red == Red::None).then(|| new_of(py, dt, &shape, order));
    let total = match dt {
        Dt::F32 => pointwise_typed::<f32>(
            py,
            op,
            post,
            input_name,
            &x,
            &y,
            w.as_ref(),
            pw.as_ref(),
            &shape,
            order,
            red,
            plan.as_ref(),
            per_elem.as_ref(),
        )?,
        Dt::F64 => pointwise_typed::<f64>(
            py,
            op,
            post,
            input_name,
            &x,
            &y,
            w.as_ref(),
            pw.as_ref(),
            &shape,
            order,
            red,
            plan.as_ref(),
            per_elem.as_ref(),
        )?,
    };
    let loss = per_row_value(py, red, total, per_elem, dt, half)?;
    let grad = plan.map(|p| finish_grad(py, p, None, half)).transpose()?;
    result(py, loss, grad)
}

/// Mean squared error (x - y)^2, reduced; gradient 2 (x - y) / N for "mean".
/// The L2 loss is mse_loss(..., reduction="sum"). Shapes must match. Loss and
/// gradient have input's dtype (float16: computed in float32); target is cast
/// to it (a float64 target with float32 input is rounded to float32), as in
/// every pointwise loss here.
///
/// >>> mse_loss([1.0, 2.0], [0.0, 0.0])
/// 2.5
#[pyfunction]
#[pyo3(signature = (input, target, *, reduction="mean", return_grad=false, grad_out=None))]
fn mse_loss<'py>(
    py: Python<'py>,
    input: &Bound<'py, PyAny>,
    target: &Bound<'py, PyAny>,
    reduction: &str,
    return_grad: bool,
    grad_out: Option<&Bound<'py, PyAny>>,
) -> PyResult<Bound<'py, PyAny>> {
    pointwise_loss(
        py,
        Pointwise::Mse,
        Post::Plain,
        input,
        "input",
        target,
        None,
        None,
        reduction,
        false,
        return_grad,
        grad_out,
    )
}

/// Root mean squared error sqrt(mean((x - y)^2)); "sum" gives sqrt(sum((x - y)^2))
/// (the L2 norm of the error) and "none" gives |x - y|. Gradient
/// (x - y) / (N * rmse) for "mean" (0 where rmse is 0). In input's dtype;
/// target is cast to it.
///
/// >>> rmse_loss([3.0, 4.0], [0.0, 0.0])
/// 3.5355339...
#[pyfunction]
#[pyo3(signature = (input, target, *, reduction="mean", return_grad=false, grad_out=None))]
fn rmse_loss<'py>(
    py: Python<'py>,
    input: &Bound<'py, PyAny>,
    target: &Bound<'py, PyAny>,
    reduction: &str,
    return_grad: bool,
    grad_out: Option<&Bound<'py, PyAny>>,
) -> PyResult<Bound<'py, PyAny>> {
    pointwise_loss(
        py,
        Pointwise::Mse,
        Post::Root,
        input,
        "input",
        target,
        None,
        None,
        reduction,
        false,
        return_grad,
        grad_out,
    )
}

/// Mean absolute error |x - y| (MAE), reduced; gradient sign(x - y) / N for
/// "mean". The L1 loss is l1_loss(..., reduction="sum"). In input's dtype;
/// target is cast to it.
///
/// >>> l1_loss([1.0, -3.0], [0.0, 0.0])
/// 2.0
#[pyfunction]
#[pyo3(signature = (input, target, *, reduction="mean", return_grad=false, grad_out=None))]
fn l1_loss<'py>(
    py: Python<'py>,
    input: &Bound<'py, PyAny>,
    target: &Bound<'py, PyAny>,
    reduction: &str,
    return_grad: bool,
    grad_out: Option<&Bound<'py, PyAny>>,
) -> PyResult<Bound<'py, PyAny>> {
    pointwise_loss(
        py,
        Pointwise::L1,
        Post::Plain,
        input,
        "input",
        target,
        None,
        None,
        reduction,
        false,
        return_grad,
        grad_out,
    )
}

/// Huber loss: 0.5 d^2 if |d| < delta else delta (|d| - 0.5 delta), d = x - y;
/// gradient clip(d, -delta, delta). delta > 0. In input's dtype; target is
/// cast to it.
///
/// >>> huber_loss([0.5, 3.0], [0.0, 0.0])
/// 1.3125
#[pyfunction]
#[pyo3(signature = (input, target, *, delta=1.0, reduction="mean", return_grad=false, grad_out=None))]
#[allow(clippy::too_many_arguments)]
fn huber_loss<'py>(
    py: Python<'py>,
    input: &Bound<'py, PyAny>,
    target: &Bound<'py, PyAny>,
    delta: f64,
    reduction: &str,
    return_grad: bool,
    grad_out: Option<&Bound<'py, PyAny>>,
) -> PyResult<Bound<'py, PyAny>> {
    if delta.is_nan() || delta <= 0.0 {
        return Err(PyValueError::new_err(format!(
            "delta must be positive, got {delta}"
        )));
    }
    pointwise_loss(
        py,
        Pointwise::Huber { delta },
        Post::Plain,
        input,
        "input",
        target,
        None,
        None,
        reduction,
        false,
        return_grad,
        grad_out,
    )
}

/// Smooth L1: 0.5 d^2 / beta if |d| < beta else |d| - 0.5 beta, d = x - y
/// (beta = 0 is the L1 loss); gradient d / beta inside, sign(d) outside. In
/// input's dtype; target is cast to it.
///
/// >>> smooth_l1_loss([0.5, 3.0], [0.0, 0.0])
/// 1.3125
#[pyfunction]
#[pyo3(signature = (input, target, *, beta=1.0, reduction="mean", return_grad=false, grad_out=None))]
#[allow(clippy::too_many_arguments)]
fn smooth_l1_loss<'py>(
    py: Python<'py>,
    input: &Bound<'py, PyAny>,
    target: &Bound<'py, PyAny>,
    beta: f64,
    reduction: &str,
    return_grad: bool,
    grad_out: Option<&Bound<'py, PyAny>>,
) -> PyResult<Bound<'py, PyAny>> {
    if beta.is_nan() || beta < 0.0 {
        return Err(PyValueError::new_err(format!(
            "beta must be non-negative, got {beta}"
        )));
    }
    pointwise_loss(
        py,
        Pointwise::SmoothL1 { beta },
        Post::Plain,
        input,
        "input",
        target,
        None,
        None,
        reduction,
        false,
        return_grad,
        grad_out,
    )
}

/// -w (y log p + (1 - y) log(1 - p)), logs clamped at -100 as in PyTorch;
/// gradient w (p - y) / max(p (1 - p), 1e-12). probs must lie in [0, 1];
/// weight broadcasts to probs' shape. In probs' dtype; target and weight are
/// cast to it (and the target checked after the cast).
///
/// >>> binary_cross_entropy([0.9, 0.2], [1.0, 0.0])
/// 0.16425203...
#[pyfunction]
#[pyo3(signature = (probs, target, *, weight=None, reduction="mean", return_grad=false, grad_out=None))]
#[allow(clippy::too_many_arguments)]
fn binary_cross_entropy<'py>(
    py: Python<'py>,
    probs: &Bound<'py, PyAny>,
    target: &Bound<'py, PyAny>,
    weight: Option<&Bound<'py, PyAny>>,
    reduction: &str,
    return_grad: bool,
    grad_out: Option<&Bound<'py, PyAny>>,
) -> PyResult<Bound<'py, PyAny>> {
    pointwise_loss(
        py,
        Pointwise::Bce,
        Post::Plain,
        probs,
        "probs",
        target,
        weight,
        None,
        reduction,
        false,
        return_grad,
        grad_out,
    )
}

/// Binary cross-entropy of sigmoid(x), stable for any x:
/// max(x, 0) - x y + log1p(exp(-|x|)); with pos_weight pw:
/// (1 - y) x + (1 + (pw - 1) y) softplus(-x). Gradient w (sigmoid(x) - y)
/// (without pos_weight). weight and pos_weight broadcast to logits' shape.
/// In logits' dtype; target, weight and pos_weight are cast to it.
///
/// >>> binary_cross_entropy_with_logits([2.0, -1.0], [1.0, 0.0])
/// 0.22009485...
#[pyfunction]
#[pyo3(signature = (logits, target, *, weight=None, pos_weight=None, reduction="mean", return_grad=false, grad_out=None))]
#[allow(clippy::too_many_arguments)]
fn binary_cross_entropy_with_logits<'py>(
    py: Python<'py>,
    logits: &Bound<'py, PyAny>,
    target: &Bound<'py, PyAny>,
    weight: Option<&Bound<'py, PyAny>>,
    pos_weight: Option<&Bound<'py, PyAny>>,
    reduction: &str,
    return_grad: bool,
    grad_out: Option<&Bound<'py, PyAny>>,
) -> PyResult<Bound<'py, PyAny>> {
    pointwise_loss(
        py,
        Pointwise::BceLogits,
        Post::Plain,
        logits,
        "logits",
        target,
        weight,
        pos_weight,
        reduction,
        false,
        return_grad,
        grad_out,
    )
}

/// Kullback-Leibler divergence as torch.nn.functional.kl_div, with `input`
/// the log-probabilities: y (log y - x) (0 where y = 0), or exp(y) (y - x)
/// with log_target=True. reduction="batchmean" divides the sum by
/// input.shape[0] (the mathematically correct KL); "mean" by the element
/// count. Gradient -y (or -exp(y)) / normaliser. In input's dtype; target is
/// cast to it.
///
/// >>> kl_div([-0.5, -1.0], [0.5, 0.5], reduction="sum")
/// 0.05685281...
#[pyfunction]
#[pyo3(signature = (input, target, *, log_target=false, reduction="mean", return_grad=false, grad_out=None))]
#[allow(clippy::too_many_arguments)]
fn kl_div<'py>(
    py: Python<'py>,
    input: &Bound<'py, PyAny>,
    target: &Bound<'py, PyAny>,
    log_target: bool,
    reduction: &str,
    return_grad: bool,
    grad_out: Option<&Bound<'py, PyAny>>,
) -> PyResult<Bound<'py, PyAny>> {
    pointwise_loss(
        py,
        Pointwise::KlDiv { log_target },
        Post::Plain,
        input,
        "input",
        target,
        None,
        None,
        reduction,
        true,
        return_grad,
        grad_out,
    )
}

/// Focal loss (Lin et al. 2017, as torchvision.ops.sigmoid_focal_loss):
/// alpha_t (1 - p_t)^gamma * bce_with_logits(x, y), p = sigmoid(x),
/// p_t = p y + (1 - p)(1 - y), alpha_t = alpha y + (1 - alpha)(1 - y)
/// (no alpha weighting when alpha < 0). 1 - p_t is computed as
/// y sigmoid(-x) + (1 - y) sigmoid(x), never as a difference, so loss and
/// gradient keep their relative precision where they are tiny (x = -30,
/// y = 0: 6.1455e-40). In logits' dtype; target is cast to it. Note:
/// torchvision's default reduction is "none"; here it is "mean" like the
/// other losses.
///
/// >>> sigmoid_focal_loss([2.0, -1.0], [1.0, 0.0], reduction="sum")
/// 0.01744443...
#[pyfunction]
#[pyo3(signature = (logits, target, *, alpha=0.25, gamma=2.0, reduction="mean", return_grad=false, grad_out=None))]
#[allow(clippy::too_many_arguments)]
fn sigmoid_focal_loss<'py>(
    py: Python<'py>,
    logits: &Bound<'py, PyAny>,
    target: &Bound<'py, PyAny>,
    alpha: f64,
    gamma: f64,
    reduction: &str,
    return_grad: bool,
    grad_out: Option<&Bound<'py, PyAny>>,
) -> PyResult<Bound<'py, PyAny>> {
    if gamma.is_nan() || gamma < 0.0 {
        return Err(PyValueError::new_err(format!(
            "gamma must be non-negative, got {gamma}"
        )));
    }
    pointwise_loss(
        py,
        Pointwise::Focal { alpha, gamma },
        Post::Plain,
        logits,
        "logits",
        target,
        None,
        None,
        reduction,
        false,
        return_grad,
        grad_out,
    )
}

pub fn register(m: &Bound<PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(cross_entropy, m)?)?;
    m.add_function(wrap_pyfunction!(nll_loss, m)?)?;
    m.add_function(wrap_pyfunction!(mse_loss, m)?)?;
    m.add_function(wrap_pyfunction!(rmse_loss, m)?)?;
    m.add_function(wrap_pyfunction!(l1_loss, m)?)?;
    m.add_function(wrap_pyfunction!(huber_loss, m)?)?;
    m.add_function(wrap_pyfunction!(smooth_l1_loss, m)?)?;
    m.add_function(wrap_pyfunction!(binary_cross_entropy, m)?)?;
    m.add_function(wrap_pyfunction!(binary_cross_entropy_with_logits, m)?)?;
    m.add_function(wrap_pyfunction!(kl_div, m)?)?;
    m.add_function(wrap_pyfunction!(sigmoid_focal_loss, m)?)?;
    Ok(())
}

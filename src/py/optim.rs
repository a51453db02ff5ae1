//! Bindings of the fused optimizer updates (`kernels::optim`). Every array is
//! updated in place, so nothing is converted: dtype, shape, contiguity and
//! writeability are checked and a wrong argument is an error naming it.

use numpy::{PyUntypedArray, PyUntypedArrayMethods};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;

use super::array::*;
use crate::kernels::optim::{adam_step as adam_kernel, sgd_step as sgd_kernel};
use crate::kernels::optim::{AdamParams, SgdParams};

/// Checks an in-place operand: an aligned, C-contiguous float32/float64
/// ndarray (writeable when `write`), of `like`'s dtype and shape when given.
fn operand<'py>(
    x: &Bound<'py, PyAny>,
    name: &str,
    write: bool,
    like: Option<(&Bound<'py, PyUntypedArray>, &str)>,
) -> PyResult<(Bound<'py, PyUntypedArray>, Dt)> {
    let (a, dt) = float_ndarray(x, name, " (it is updated in place)", like)?;
    if let Some((p, pname)) = like {
        if a.shape() != p.shape() {
            return Err(PyValueError::new_err(format!(
                "{name} has shape {}, but {pname} has shape {}",
                shape_str(a.shape()),
                shape_str(p.shape())
            )));
        }
    }
    if !(is_aligned(&a) && a.is_c_contiguous()) {
        return Err(PyValueError::new_err(format!(
            "{name} must be C-contiguous and aligned (it is updated in place)"
        )));
    }
    if write && !is_writeable(&a) {
        return Err(PyValueError::new_err(format!("{name} is read-only")));
    }
    Ok((a, dt))
}

/// Errors when two of the arrays share memory (an in-place update would read
/// values it already overwrote).
fn disjoint(arrs: &[(&Bound<'_, PyUntypedArray>, &str)]) -> PyResult<()> {
    for (i, (a, an)) in arrs.iter().enumerate() {
        for (b, bn) in &arrs[i + 1..] {
            if shares_memory(a, b)? {
                return Err(PyValueError::new_err(format!(
                    "{an} and {bn} share memory; they must be separate arrays"
                )));
            }
        }
    }
    Ok(())
}

fn finite(v: f64, name: &str, min: f64) -> PyResult<f64> {
    if !v.is_finite() || v < min {
        return Err(PyValueError::new_err(format!(
            "{name} must be a finite number >= {min}, got {v}"
        )));
    }
    Ok(v)
}

/// One in-place SGD update, fused in a single pass (torch.optim.SGD semantics,
/// dampening 0): g = grad_scale * grad + weight_decay * param;
/// buf = momentum * buf + g; param -= lr * (g + momentum * buf if nesterov
/// else buf). Without momentum: param -= lr * g.
///
/// param, grad, momentum_buffer: C-contiguous float32/float64 arrays of one
/// shape and dtype; param and momentum_buffer (zeros at the start) are
/// updated in place. grad_scale applies gradient clipping for free.
///
/// >>> p = np.ones(3, np.float32); sgd_step(p, np.ones(3, np.float32), lr=0.1); p
/// array([0.9, 0.9, 0.9], dtype=float32)
#[pyfunction]
#[pyo3(signature = (param, grad, momentum_buffer=None, *, lr, momentum=0.0, nesterov=false, weight_decay=0.0, grad_scale=1.0))]
#[allow(clippy::too_many_arguments)]
fn sgd_step<'py>(
    py: Python<'py>,
    param: &Bound<'py, PyAny>,
    grad: &Bound<'py, PyAny>,
    momentum_buffer: Option<&Bound<'py, PyAny>>,
    lr: f64,
    momentum: f64,
    nesterov: bool,
    weight_decay: f64,
    grad_scale: f64,
) -> PyResult<()> {
    let lr = finite(lr, "lr", 0.0)?;
    let momentum = finite(momentum, "momentum", 0.0)?;
    let weight_decay = finite(weight_decay, "weight_decay", 0.0)?;
    let grad_scale = finite(grad_scale, "grad_scale", 0.0)?;
    if nesterov && momentum == 0.0 {
        return Err(PyValueError::new_err("nesterov=True needs momentum > 0"));
    }
    let (p, dt) = operand(param, "param", true, None)?;
    let (g, _) = operand(grad, "grad", false, Some((&p, "param")))?;
    let buf = match momentum_buffer {
        Some(b) => Some(operand(b, "momentum_buffer", true, Some((&p, "param")))?.0),
        None if momentum != 0.0 => {
            return Err(PyValueError::new_err(
                "momentum_buffer is required when momentum != 0",
            ))
        }
        None => None,
    };
    let mut all = vec![(&p, "param"), (&g, "grad")];
    if let Some(b) = &buf {
        all.push((b, "momentum_buffer"));
    }
    disjoint(&all)?;
    fn go<T: crate::simd::Float + Elem>(
        py: Python<'_>,
        p: &Bound<'_, PyUntypedArray>,
        g: &Bound<'_, PyUntypedArray>,
        b: Option<&Bound<'_, PyUntypedArray>>,
        h: SgdParams<T>,
    ) {
        // SAFETY: checked above: aligned, contiguous, dtype T, pairwise disjoint.
        let (ps, gs) = unsafe { (slice_mut_of::<T>(p), slice_of::<T>(g)) };
        let bs = b.map(|b| unsafe { slice_mut_of::<T>(b) });
        let use_buf = h.momentum != T::ZERO;
        maybe_detach(py, ps.len(), move || {
            sgd_kernel(ps, gs, if use_buf { bs } else { None }, &h)
        });
    }
    macro_rules! params {
        ($t:ty) => {
            SgdParams::<$t> {
                lr: lr as $t,
                momentum: momentum as $t,
                nesterov,
                weight_decay: weight_decay as $t,
                grad_scale: grad_scale as $t,
            }
        };
    }
    match dt {
        Dt::F32 => go::<f32>(py, &p, &g, buf.as_ref(), params!(f32)),
        Dt::F64 => go::<f64>(py, &p, &g, buf.as_ref(), params!(f64)),
    }
    Ok(())
}

#[allow(clippy::too_many_arguments)]
fn adam_common<'py>(
    py: Python<'py>,
    param: &Bound<'py, PyAny>,
    grad: &Bound<'py, PyAny>,
    exp_avg: &Bound<'py, PyAny>,
    exp_avg_sq: &Bound<'py, PyAny>,
    step: i64,
    lr: f64,
    betas: (f64, f64),
    eps: f64,
    weight_decay: f64,
    grad_scale: f64,
    decoupled: bool,
) -> PyResult<()> {
    if step < 1 {
        return Err(PyValueError::new_err(format!(
            "step must be the 1-based number of this update, got {step}"
        )));
    }
    let lr = finite(lr, "lr", 0.0)?;
    let eps = finite(eps, "eps", 0.0)?;
    let weight_decay = finite(weight_decay, "weight_decay", 0.0)?;
    let grad_scale = finite(grad_scale, "grad_scale", 0.0)?;
    for (b, name) in [(betas.0, "betas[0]"), (betas.1, "betas[1]")] {
        if !(0.0..1.0).contains(&b) {
            return Err(PyValueError::new_err(format!(
                "{name} must be in [0, 1), got {b}"
            )));
        }
    }
    let (p, dt) = operand(param, "param", true, None)?;
    let (g, _) = operand(grad, "grad", false, Some((&p, "param")))?;
    let (m, _) = operand(exp_avg, "exp_avg", true, Some((&p, "param")))?;
    let (v, _) = operand(exp_avg_sq, "exp_avg_sq", true, Some((&p, "param")))?;
    disjoint(&[
        (&p, "param"),
        (&g, "grad"),
        (&m, "exp_avg"),
        (&v, "exp_avg_sq"),
    ])?;
    fn go<T: Elem>(
        py: Python<'_>,
        arrs: [&Bound<'_, PyUntypedArray>; 4],
        mut h: AdamParams<T>,
        grad_scale: f64,
    ) {
        h.grad_scale = T::from_f64(grad_scale);
        // SAFETY: checked by the caller: aligned, contiguous, dtype T, disjoint.
        let (p, g, m, v) = unsafe {
            (
                slice_mut_of::<T>(arrs[0]),
                slice_of::<T>(arrs[1]),
                slice_mut_of::<T>(arrs[2]),
                slice_mut_of::<T>(arrs[3]),
            )
        };
        maybe_detach(py, p.len(), move || adam_kernel(p, g, m, v, &h));
    }
    let (b1, b2) = betas;
    let t = step as u64;
    match dt {
        Dt::F32 => go::<f32>(
            py,
            [&p, &g, &m, &v],
            AdamParams::new(lr, b1, b2, eps, weight_decay, decoupled, t),
            grad_scale,
        ),
        Dt::F64 => go::<f64>(
            py,
            [&p, &g, &m, &v],
            AdamParams::new(lr, b1, b2, eps, weight_decay, decoupled, t),
            grad_scale,
        ),
    }
    Ok(())
}

/// One in-place Adam update in a single fused pass (torch.optim.Adam
/// semantics, L2 weight decay added to the gradient):
/// g = grad_scale * grad + weight_decay * param; m = b1*m + (1-b1)*g;
/// v = b2*v + (1-b2)*g^2; param -= lr/(1-b1^step) * m / (sqrt(v)/sqrt(1-b2^step) + eps).
///
/// exp_avg and exp_avg_sq (zeros at the start) are updated in place; step is
/// the 1-based update count. Arrays: C-contiguous float32/float64, one shape.
#[pyfunction]
#[pyo3(signature = (param, grad, exp_avg, exp_avg_sq, *, step, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, grad_scale=1.0), text_signature = "(param, grad, exp_avg, exp_avg_sq, *, step, lr=0.001, betas=(0.9, 0.999), eps=1e-08, weight_decay=0.0, grad_scale=1.0)")]
#[allow(clippy::too_many_arguments)]
fn adam_step<'py>(
    py: Python<'py>,
    param: &Bound<'py, PyAny>,
    grad: &Bound<'py, PyAny>,
    exp_avg: &Bound<'py, PyAny>,
    exp_avg_sq: &Bound<'py, PyAny>,
    step: i64,
    lr: f64,
    betas: (f64, f64),
    eps: f64,
    weight_decay: f64,
    grad_scale: f64,
) -> PyResult<()> {
    adam_common(
        py,
        param,
        grad,
        exp_avg,
        exp_avg_sq,
        step,
        lr,
        betas,
        eps,
        weight_decay,
        grad_scale,
        false,
    )
}

/// One in-place AdamW update (torch.optim.AdamW semantics, decoupled weight
/// decay): param *= 1 - lr * weight_decay, then the Adam update of
/// adam_step without the L2 term. One fused pass.
#[pyfunction]
#[pyo3(signature = (param, grad, exp_avg, exp_avg_sq, *, step, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2, grad_scale=1.0), text_signature = "(param, grad, exp_avg, exp_avg_sq, *, step, lr=0.001, betas=(0.9, 0.999), eps=1e-08, weight_decay=0.01, grad_scale=1.0)")]
#[allow(clippy::too_many_arguments)]
fn adamw_step<'py>(
    py: Python<'py>,
    param: &Bound<'py, PyAny>,
    grad: &Bound<'py, PyAny>,
    exp_avg: &Bound<'py, PyAny>,
    exp_avg_sq: &Bound<'py, PyAny>,
    step: i64,
    lr: f64,
    betas: (f64, f64),
    eps: f64,
    weight_decay: f64,
    grad_scale: f64,
) -> PyResult<()> {
    adam_common(
        py,
        param,
        grad,
        exp_avg,
        exp_avg_sq,
        step,
        lr,
        betas,
        eps,
        weight_decay,
        grad_scale,
        true,
    )
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(sgd_step, m)?)?;
    m.add_function(wrap_pyfunction!(adam_step, m)?)?;
    m.add_function(wrap_pyfunction!(adamw_step, m)?)?;
    Ok(())
}

//! One binding path for every elementwise activation, its backward pass and
//! the fused bias + activation helpers: parameter validation, dtype
//! promotion, a common memory order, `out=` (in place when it *is* an input,
//! through a temporary when it partly overlaps one), GIL release, then one
//! call into `kernels::activations`.

use numpy::{PyUntypedArray, PyUntypedArrayMethods};
use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyTuple};

use super::array::*;
use crate::kernels::activations::{self as k, Act};
use crate::kernels::elementwise::Ptr;

/// Parameters as given by the caller, before validation.
#[derive(Default)]
struct Params {
    negative_slope: Option<f64>,
    alpha: Option<f64>,
    beta: Option<f64>,
    threshold: Option<f64>,
    min_val: Option<f64>,
    max_val: Option<f64>,
    eps: Option<f64>,
    approximate: Option<String>,
}

const NAMES: &[&str] = &[
    "identity",
    "linear",
    "sigmoid",
    "log_sigmoid",
    "logit",
    "tanh",
    "relu",
    "relu6",
    "leaky_relu",
    "elu",
    "celu",
    "selu",
    "gelu",
    "silu",
    "mish",
    "softplus",
    "softsign",
    "hard_sigmoid",
    "hard_tanh",
    "hard_swish",
];

/// The parameters each activation accepts.
fn allowed(name: &str) -> &'static [&'static str] {
    match name {
        "logit" => &["eps"],
        "leaky_relu" => &["negative_slope"],
        "elu" | "celu" => &["alpha"],
        "gelu" => &["approximate"],
        "softplus" => &["beta", "threshold"],
        "hard_tanh" => &["min_val", "max_val"],
        _ => &[],
    }
}

fn number(v: Option<f64>, default: f64, name: &str) -> PyResult<f64> {
    let v = v.unwrap_or(default);
    if v.is_nan() {
        return Err(PyValueError::new_err(format!(
            "{name} must be a number, got nan"
        )));
    }
    Ok(v)
}

/// Validates the parameters of activation `name` and builds its [`Act`].
fn make_act(name: &str, p: &Params) -> PyResult<Act> {
    Ok(match name {
        "identity" | "linear" => Act::Identity,
        "sigmoid" => Act::Sigmoid,
        "log_sigmoid" => Act::LogSigmoid,
        "logit" => {
            if let Some(e) = p.eps {
                if !(0.0..0.5).contains(&e) {
                    return Err(PyValueError::new_err(format!(
                        "eps must be in [0, 0.5), got {e}"
                    )));
                }
            }
            Act::Logit { eps: p.eps }
        }
        "tanh" => Act::Tanh,
        "relu" => Act::Relu,
        "relu6" => Act::Relu6,
        "leaky_relu" => Act::LeakyRelu {
            slope: number(p.negative_slope, 0.01, "negative_slope")?,
        },
        "elu" => Act::Elu {
            alpha: number(p.alpha, 1.0, "alpha")?,
        },
        "celu" => {
            let alpha = number(p.alpha, 1.0, "alpha")?;
            if alpha == 0.0 {
                return Err(PyValueError::new_err("alpha must be nonzero for celu"));
            }
            Act::Celu { alpha }
        }
        "selu" => Act::Selu,
        "gelu" => match p.approximate.as_deref().unwrap_or("none") {
            "none" => Act::Gelu,
            "tanh" => Act::GeluTanh,
            other => {
                return Err(PyValueError::new_err(format!(
                    "approximate must be 'none' or 'tanh', got '{other}'"
                )))
            }
        },
        "silu" => Act::Silu,
        "mish" => Act::Mish,
        "softplus" => {
            let beta = number(p.beta, 1.0, "beta")?;
            if beta <= 0.0 || beta.is_infinite() {
                return Err(PyValueError::new_err(format!(
                    "beta must be positive and finite, got {beta}"
                )));
            }
            Act::Softplus {
                beta,
                threshold: number(p.threshold, 20.0, "threshold")?,
            }
        }
        "softsign" => Act::Softsign,
        "hard_sigmoid" => Act::HardSigmoid,
        "hard_tanh" => {
            let min = number(p.min_val, -1.0, "min_val")?;
            let max = number(p.max_val, 1.0, "max_val")?;
            if min > max {
                return Err(PyValueError::new_err(format!(
                    "min_val ({min}) must not be greater than max_val ({max})"
                )));
            }
            Act::HardTanh { min, max }
        }
        "hard_swish" => Act::HardSwish,
        _ => {
            return Err(PyValueError::new_err(format!(
                "activation must be one of {}, got '{name}'",
                NAMES.join(", ")
            )))
        }
    })
}

/// `**params` of the fused helpers, checked against what `name` accepts.
fn params_from_kwargs(name: &str, kw: Option<&Bound<'_, PyDict>>) -> PyResult<Params> {
    let mut p = Params::default();
    let Some(kw) = kw else { return Ok(p) };
    for (key, v) in kw.iter() {
        let key: String = key.extract()?;
        if !allowed(name).contains(&key.as_str()) {
            return Err(PyTypeError::new_err(format!(
                "activation '{name}' takes no parameter '{key}'"
            )));
        }
        let f = || -> PyResult<f64> {
            v.extract::<f64>()
                .map_err(|_| PyTypeError::new_err(format!("{key} must be a real number")))
        };
        match key.as_str() {
            "negative_slope" => p.negative_slope = Some(f()?),
            "alpha" => p.alpha = Some(f()?),
            "beta" => p.beta = Some(f()?),
            "threshold" => p.threshold = Some(f()?),
            "min_val" => p.min_val = Some(f()?),
            "max_val" => p.max_val = Some(f()?),
            "eps" => p.eps = if v.is_none() { None } else { Some(f()?) },
            "approximate" => {
                p.approximate = Some(v.extract().map_err(|_| {
                    PyTypeError::new_err("approximate must be a str ('none' or 'tanh')")
                })?)
            }
            _ => unreachable!(),
        }
    }
    Ok(p)
}

fn data_ptr<T>(a: &Bound<'_, PyUntypedArray>) -> Ptr<T> {
    // SAFETY: reading the data pointer of a live array.
    Ptr(unsafe { (*a.as_array_ptr()).fields.data } as *mut T)
}

/// Hands `target` back to the caller: copied into `out` when the kernel
/// could not write there directly, cast back to float16, or as a scalar for
/// a 0-d result (like NumPy).
fn finish<'py>(
    py: Python<'py>,
    target: Bound<'py, PyUntypedArray>,
    user_out: Option<Bound<'py, PyUntypedArray>>,
    direct: bool,
    half: bool,
) -> PyResult<Bound<'py, PyAny>> {
    if let Some(o) = user_out {
        if !direct {
            py.import("numpy")?.call_method1("copyto", (&o, &target))?;
        }
        return Ok(o.into_any());
    }
    let scalar = target.ndim() == 0;
    let res = if half {
        target.call_method1("astype", ("float16",))?
    } else {
        target.into_any()
    };
    if scalar {
        return res.get_item(());
    }
    Ok(res)
}

/// The elementwise call: `f(x)` (`inputs = [x]`) or `grad * f'(x)`
/// (`inputs = [grad, x]`).
fn elementwise<'py>(
    py: Python<'py>,
    act: Act,
    inputs: &[(&Bound<'py, PyAny>, &str)],
    out: Option<&Bound<'py, PyAny>>,
) -> PyResult<Bound<'py, PyAny>> {
    let mut p = float_args(py, inputs)?;
    same_shape(&p.arrs, inputs)?;
    let shape = p.arrs[0].shape().to_vec();
    let order = usable_order(&p.arrs[0]).unwrap_or(Order::C);
    for a in p.arrs.iter_mut() {
        if !fits(a, order) {
            *a = in_order(a, order)?;
        }
    }
    let user_out = out
        .map(|o| check_out(o, &shape, p.dt_name(), "out"))
        .transpose()?;
    let ins: Vec<&Bound<'_, PyUntypedArray>> = p.arrs.iter().collect();
    let direct = user_out
        .as_ref()
        .is_some_and(|o| writable_direct(o, order, p.half, &ins, &[]));
    let target = match (&user_out, direct) {
        (Some(o), true) => o.clone(),
        _ => new_of(py, p.dt, &shape, order),
    };
    let n: usize = shape.iter().product();
    macro_rules! go {
        ($T:ty) => {{
            let y = data_ptr::<$T>(&target);
            let x = data_ptr::<$T>(&p.arrs[p.arrs.len() - 1]);
            let g = data_ptr::<$T>(&p.arrs[0]);
            let backward = p.arrs.len() == 2;
            // SAFETY: inputs and target are aligned, contiguous in one order,
            // of dtype $T and n elements; the target is exactly an input or
            // disjoint from all of them (`writable_direct` / a new array).
            maybe_detach(py, n, move || unsafe {
                if backward {
                    k::backward::<$T>(act, g.get(), x.get(), y.get(), n)
                } else {
                    k::forward::<$T>(act, x.get(), y.get(), n)
                }
            })
        }};
    }
    match p.dt {
        Dt::F32 => go!(f32),
        Dt::F64 => go!(f64),
    }
    finish(py, target, user_out, direct, p.half)
}

/// Converts to `IntoParam` field types in the generated functions.
trait IntoParam<T> {
    fn into_param(self) -> Option<T>;
}
impl IntoParam<f64> for f64 {
    fn into_param(self) -> Option<f64> {
        Some(self)
    }
}
impl IntoParam<f64> for Option<f64> {
    fn into_param(self) -> Option<f64> {
        self
    }
}
impl IntoParam<String> for &str {
    fn into_param(self) -> Option<String> {
        Some(self.to_string())
    }
}

/// Generates `f(x, params..., *, out=None)` and
/// `f_backward(grad, x, params..., *, out=None)` for activation `$name`.
macro_rules! act_pair {
    ($fwd:ident, $bwd:ident, $name:literal, $xn:ident, [$($p:ident : $t:ty = $def:expr),*], $fsig:literal, $bsig:literal, $fdoc:literal, $bdoc:literal) => {
        #[doc = $fdoc]
        #[pyfunction]
        #[pyo3(signature = ($xn, $($p = $def,)* *, out=None), text_signature = $fsig)]
        fn $fwd<'py>(
            py: Python<'py>,
            $xn: &Bound<'py, PyAny>,
            $($p: $t,)*
            out: Option<&Bound<'py, PyAny>>,
        ) -> PyResult<Bound<'py, PyAny>> {
            let act = make_act($name, &Params { $($p: IntoParam::into_param($p),)* ..Default::default() })?;
            elementwise(py, act, &[($xn, stringify!($xn))], out)
        }

        #[doc = $bdoc]
        #[pyfunction]
        #[pyo3(signature = (grad, $xn, $($p = $def,)* *, out=None), text_signature = $bsig)]
        fn $bwd<'py>(
            py: Python<'py>,
            grad: &Bound<'py, PyAny>,
            $xn: &Bound<'py, PyAny>,
            $($p: $t,)*
            out: Option<&Bound<'py, PyAny>>,
        ) -> PyResult<Bound<'py, PyAny>> {
            let act = make_act($name, &Params { $($p: IntoParam::into_param($p),)* ..Default::default() })?;
            elementwise(py, act, &[(grad, "grad"), ($xn, stringify!($xn))], out)
        }
    };
}

act_pair!(sigmoid, sigmoid_backward, "sigmoid", x, [],
    "(x, *, out=None)",
    "(grad, x, *, out=None)",
    "Logistic sigmoid 1 / (1 + exp(-x)), the same as scipy.special.expit. Computed piecewise on the sign of x, so it never overflows.

x: array-like (float32/float64 computed natively, integers promoted like a NumPy ufunc); out: array of the result's shape and dtype to write into (may be x itself). NaN in, NaN out; at +-inf the limit is returned.

>>> sigmoid([-2.0, 0.0, 2.0])
array([0.11920292, 0.5       , 0.88079708])",
    "Gradient of sigmoid: grad * f'(x) with f'(x) = sigmoid(x) * (1 - sigmoid(x)). x is the forward *input*; grad and x must have one shape; out may be grad or x (in place).");
act_pair!(log_sigmoid, log_sigmoid_backward, "log_sigmoid", x, [],
    "(x, *, out=None)",
    "(grad, x, *, out=None)",
    "log(sigmoid(x)) = -softplus(-x) = min(x, 0) - log1p(exp(-|x|)), the same as scipy.special.log_expit; finite for every finite x.

x: array-like (float32/float64 computed natively, integers promoted like a NumPy ufunc); out: array of the result's shape and dtype to write into (may be x itself). NaN in, NaN out; at +-inf the limit is returned.

>>> log_sigmoid([-50.0, 0.0, 2.0])
array([-50.        ,  -0.69314718,  -0.12692801])",
    "Gradient of log_sigmoid: grad * f'(x) with f'(x) = sigmoid(-x). x is the forward *input*; grad and x must have one shape; out may be grad or x (in place).");
act_pair!(logit, logit_backward, "logit", p, [eps: Option<f64> = None],
    "(p, eps=None, *, out=None)",
    "(grad, p, eps=None, *, out=None)",
    "Inverse of sigmoid: log(p / (1 - p)) (scipy.special.logit). logit(0) = -inf, logit(1) = +inf, NaN outside [0, 1]. With eps (0 <= eps < 0.5), p is first clipped to [eps, 1 - eps], as in torch.logit.

p: array-like (float32/float64 computed natively, integers promoted like a NumPy ufunc); out: array of the result's shape and dtype to write into (may be p itself). NaN in, NaN out; at +-inf the limit is returned.

>>> logit([0.1, 0.5, 0.9])
array([-2.19722458,  0.        ,  2.19722458])",
    "Gradient of logit: grad * f'(p) with f'(p) = 1 / (p * (1 - p)); with eps, 0 where p is outside [eps, 1 - eps] whatever grad is (inf and NaN included, as PyTorch; the zero has grad's sign). p is the forward *input*; grad and p must have one shape; out may be grad or p (in place).");
act_pair!(tanh, tanh_backward, "tanh", x, [],
    "(x, *, out=None)",
    "(grad, x, *, out=None)",
    "Hyperbolic tangent, without cancellation near 0 and saturating to +-1.

x: array-like (float32/float64 computed natively, integers promoted like a NumPy ufunc); out: array of the result's shape and dtype to write into (may be x itself). NaN in, NaN out; at +-inf the limit is returned.

>>> tanh([-1.0, 0.0, 0.5])
array([-0.76159416,  0.        ,  0.46211716])",
    "Gradient of tanh: grad * f'(x) with f'(x) = 1 - tanh(x)**2, computed as 4e / (1 + e)**2 with e = exp(-2|x|) (accurate where tanh rounds to 1). x is the forward *input*; grad and x must have one shape; out may be grad or x (in place).");
act_pair!(relu, relu_backward, "relu", x, [],
    "(x, *, out=None)",
    "(grad, x, *, out=None)",
    "max(x, 0); NaN propagates.

x: array-like (float32/float64 computed natively, integers promoted like a NumPy ufunc); out: array of the result's shape and dtype to write into (may be x itself). NaN in, NaN out; at +-inf the limit is returned.

>>> relu([-1.0, 0.0, 2.0])
array([0., 0., 2.])",
    "Gradient of relu: grad for x > 0, else 0 whatever grad is (inf and NaN included, as PyTorch's where(x <= 0, 0, grad); the zero has grad's sign). x is the forward *input*; grad and x must have one shape; out may be grad or x (in place).");
act_pair!(relu6, relu6_backward, "relu6", x, [],
    "(x, *, out=None)",
    "(grad, x, *, out=None)",
    "min(max(x, 0), 6) (= hard_tanh(x, 0, 6)).

x: array-like (float32/float64 computed natively, integers promoted like a NumPy ufunc); out: array of the result's shape and dtype to write into (may be x itself). NaN in, NaN out; at +-inf the limit is returned.

>>> relu6([-1.0, 3.0, 8.0])
array([0., 3., 6.])",
    "Gradient of relu6: grad for 0 < x < 6, else 0 whatever grad is (0 at both kinks and for an inf or NaN grad, as PyTorch; the zero has grad's sign). x is the forward *input*; grad and x must have one shape; out may be grad or x (in place).");
act_pair!(leaky_relu, leaky_relu_backward, "leaky_relu", x, [negative_slope: f64 = 0.01],
    "(x, negative_slope=0.01, *, out=None)",
    "(grad, x, negative_slope=0.01, *, out=None)",
    "x for x > 0, negative_slope * x otherwise.

x: array-like (float32/float64 computed natively, integers promoted like a NumPy ufunc); out: array of the result's shape and dtype to write into (may be x itself). NaN in, NaN out; at +-inf the limit is returned.

>>> leaky_relu([-2.0, 0.0, 3.0])
array([-0.02,  0.  ,  3.  ])",
    "Gradient of leaky_relu: grad * f'(x) with f'(x) = 1 for x > 0, else negative_slope (negative_slope at 0, as PyTorch). x is the forward *input*; grad and x must have one shape; out may be grad or x (in place).");
act_pair!(elu, elu_backward, "elu", x, [alpha: f64 = 1.0],
    "(x, alpha=1.0, *, out=None)",
    "(grad, x, alpha=1.0, *, out=None)",
    "x for x > 0, alpha * expm1(x) otherwise.

x: array-like (float32/float64 computed natively, integers promoted like a NumPy ufunc); out: array of the result's shape and dtype to write into (may be x itself). NaN in, NaN out; at +-inf the limit is returned.

>>> elu([-1.0, 0.0, 2.0])
array([-0.63212056,  0.        ,  2.        ])",
    "Gradient of elu: grad * f'(x) with f'(x) = 1 for x > 0, else alpha * exp(x) (alpha at 0, as PyTorch). x is the forward *input*; grad and x must have one shape; out may be grad or x (in place).");
act_pair!(celu, celu_backward, "celu", x, [alpha: f64 = 1.0],
    "(x, alpha=1.0, *, out=None)",
    "(grad, x, alpha=1.0, *, out=None)",
    "x for x > 0, alpha * expm1(x / alpha) otherwise (alpha != 0).

x: array-like (float32/float64 computed natively, integers promoted like a NumPy ufunc); out: array of the result's shape and dtype to write into (may be x itself). NaN in, NaN out; at +-inf the limit is returned.

>>> celu([-1.0, 0.0, 2.0])
array([-0.63212056,  0.        ,  2.        ])",
    "Gradient of celu: grad * f'(x) with f'(x) = 1 for x > 0, else exp(x / alpha) (1 at 0, as PyTorch). x is the forward *input*; grad and x must have one shape; out may be grad or x (in place).");
act_pair!(selu, selu_backward, "selu", x, [],
    "(x, *, out=None)",
    "(grad, x, *, out=None)",
    "scale * (x for x > 0, alpha * expm1(x) otherwise) with alpha = 1.6732632423543772, scale = 1.0507009873554805.

x: array-like (float32/float64 computed natively, integers promoted like a NumPy ufunc); out: array of the result's shape and dtype to write into (may be x itself). NaN in, NaN out; at +-inf the limit is returned.

>>> selu([-1.0, 0.0, 2.0])
array([-1.11133074,  0.        ,  2.10140197])",
    "Gradient of selu: grad * f'(x) with f'(x) = scale for x > 0, else scale * alpha * exp(x) (scale * alpha at 0, as PyTorch). x is the forward *input*; grad and x must have one shape; out may be grad or x (in place).");
act_pair!(gelu, gelu_backward, "gelu", x, [approximate: &str = "none"],
    "(x, approximate='none', *, out=None)",
    "(grad, x, approximate='none', *, out=None)",
    "x * Phi(x), Phi the standard normal CDF, with an accurate vectorised erfc (relative accuracy kept in the left tail). approximate=\"tanh\": x * (1 + tanh(sqrt(2/pi) * (x + 0.044715 x**3))) / 2, computed as x * sigmoid(2u) so it does not cancel for x < 0.

x: array-like (float32/float64 computed natively, integers promoted like a NumPy ufunc); out: array of the result's shape and dtype to write into (may be x itself). NaN in, NaN out; at +-inf the limit is returned.

>>> gelu([-1.0, 0.0, 2.0])
array([-0.15865525,  0.        ,  1.95449974])",
    "Gradient of gelu: grad * f'(x) with f'(x) = Phi(x) + x * phi(x) (or the derivative of the tanh form). x is the forward *input*; grad and x must have one shape; out may be grad or x (in place).");
act_pair!(silu, silu_backward, "silu", x, [],
    "(x, *, out=None)",
    "(grad, x, *, out=None)",
    "x * sigmoid(x) (swish).

x: array-like (float32/float64 computed natively, integers promoted like a NumPy ufunc); out: array of the result's shape and dtype to write into (may be x itself). NaN in, NaN out; at +-inf the limit is returned.

>>> silu([-1.0, 0.0, 2.0])
array([-0.26894142,  0.        ,  1.76159416])",
    "Gradient of silu: grad * f'(x) with f'(x) = sigmoid(x) * (1 + x * (1 - sigmoid(x))). x is the forward *input*; grad and x must have one shape; out may be grad or x (in place).");
act_pair!(mish, mish_backward, "mish", x, [],
    "(x, *, out=None)",
    "(grad, x, *, out=None)",
    "x * tanh(softplus(x)), evaluated as a rational function of exp(-|x|) (no overflow, no cancellation).

x: array-like (float32/float64 computed natively, integers promoted like a NumPy ufunc); out: array of the result's shape and dtype to write into (may be x itself). NaN in, NaN out; at +-inf the limit is returned.

>>> mish([-1.0, 0.0, 2.0])
array([-0.30340146,  0.        ,  1.94395896])",
    "Gradient of mish: grad * f'(x) with f'(x) = tanh(softplus(x)) + x * sigmoid(x) * (1 - tanh(softplus(x))**2). x is the forward *input*; grad and x must have one shape; out may be grad or x (in place).");
act_pair!(softplus, softplus_backward, "softplus", x, [beta: f64 = 1.0, threshold: f64 = 20.0],
    "(x, beta=1.0, threshold=20.0, *, out=None)",
    "(grad, x, beta=1.0, threshold=20.0, *, out=None)",
    "log1p(exp(beta * x)) / beta, computed as (max(bx, 0) + log1p(exp(-|bx|))) / beta; x itself where beta * x > threshold (as PyTorch). beta must be positive.

x: array-like (float32/float64 computed natively, integers promoted like a NumPy ufunc); out: array of the result's shape and dtype to write into (may be x itself). NaN in, NaN out; at +-inf the limit is returned.

>>> softplus([-1.0, 0.0, 2.0])
array([0.31326169, 0.69314718, 2.12692801])",
    "Gradient of softplus: grad * f'(x) with f'(x) = sigmoid(beta * x), or 1 where beta * x > threshold. x is the forward *input*; grad and x must have one shape; out may be grad or x (in place).");
act_pair!(softsign, softsign_backward, "softsign", x, [],
    "(x, *, out=None)",
    "(grad, x, *, out=None)",
    "x / (1 + |x|).

x: array-like (float32/float64 computed natively, integers promoted like a NumPy ufunc); out: array of the result's shape and dtype to write into (may be x itself). NaN in, NaN out; at +-inf the limit is returned.

>>> softsign([-1.0, 0.0, 3.0])
array([-0.5 ,  0.  ,  0.75])",
    "Gradient of softsign: grad * f'(x) with f'(x) = 1 / (1 + |x|)**2. x is the forward *input*; grad and x must have one shape; out may be grad or x (in place).");
act_pair!(hard_sigmoid, hard_sigmoid_backward, "hard_sigmoid", x, [],
    "(x, *, out=None)",
    "(grad, x, *, out=None)",
    "relu6(x + 3) / 6: 0 for x <= -3, 1 for x >= 3, x / 6 + 1/2 between.

x: array-like (float32/float64 computed natively, integers promoted like a NumPy ufunc); out: array of the result's shape and dtype to write into (may be x itself). NaN in, NaN out; at +-inf the limit is returned.

>>> hard_sigmoid([-4.0, 0.0, 1.5])
array([0.  , 0.5 , 0.75])",
    "Gradient of hard_sigmoid: grad * f'(x) with f'(x) = 1/6 for -3 < x < 3; 0 elsewhere whatever grad is (0 at the kinks and for an inf or NaN grad, as PyTorch; the zero has grad's sign). x is the forward *input*; grad and x must have one shape; out may be grad or x (in place).");
act_pair!(hard_tanh, hard_tanh_backward, "hard_tanh", x, [min_val: f64 = -1.0, max_val: f64 = 1.0],
    "(x, min_val=-1.0, max_val=1.0, *, out=None)",
    "(grad, x, min_val=-1.0, max_val=1.0, *, out=None)",
    "clip(x, min_val, max_val) (min_val <= max_val); NaN propagates.

x: array-like (float32/float64 computed natively, integers promoted like a NumPy ufunc); out: array of the result's shape and dtype to write into (may be x itself). NaN in, NaN out; at +-inf the limit is returned.

>>> hard_tanh([-2.0, 0.5, 2.0])
array([-1. ,  0.5,  1. ])",
    "Gradient of hard_tanh: grad for min_val < x < max_val, else 0 whatever grad is (0 at the kinks and for an inf or NaN grad, as PyTorch; the zero has grad's sign). x is the forward *input*; grad and x must have one shape; out may be grad or x (in place).");
act_pair!(hard_swish, hard_swish_backward, "hard_swish", x, [],
    "(x, *, out=None)",
    "(grad, x, *, out=None)",
    "x * relu6(x + 3) / 6.

x: array-like (float32/float64 computed natively, integers promoted like a NumPy ufunc); out: array of the result's shape and dtype to write into (may be x itself). NaN in, NaN out; at +-inf the limit is returned.

>>> hard_swish([-4.0, 0.0, 1.0])
array([-0.        ,  0.        ,  0.66666667])",
    "Gradient of hard_swish: grad * f'(x) with f'(x) = x / 3 + 1/2 for -3 < x < 3 and 1 from 3 on; 0 for x <= -3 whatever grad is (inf and NaN included; PyTorch's convention at the kinks and in the flat region; the zero has grad's sign). x is the forward *input*; grad and x must have one shape; out may be grad or x (in place).");
fn register_pairs(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(sigmoid, m)?)?;
    m.add_function(wrap_pyfunction!(sigmoid_backward, m)?)?;
    m.add_function(wrap_pyfunction!(log_sigmoid, m)?)?;
    m.add_function(wrap_pyfunction!(log_sigmoid_backward, m)?)?;
    m.add_function(wrap_pyfunction!(logit, m)?)?;
    m.add_function(wrap_pyfunction!(logit_backward, m)?)?;
    m.add_function(wrap_pyfunction!(tanh, m)?)?;
    m.add_function(wrap_pyfunction!(tanh_backward, m)?)?;
    m.add_function(wrap_pyfunction!(relu, m)?)?;
    m.add_function(wrap_pyfunction!(relu_backward, m)?)?;
    m.add_function(wrap_pyfunction!(relu6, m)?)?;
    m.add_function(wrap_pyfunction!(relu6_backward, m)?)?;
    m.add_function(wrap_pyfunction!(leaky_relu, m)?)?;
    m.add_function(wrap_pyfunction!(leaky_relu_backward, m)?)?;
    m.add_function(wrap_pyfunction!(elu, m)?)?;
    m.add_function(wrap_pyfunction!(elu_backward, m)?)?;
    m.add_function(wrap_pyfunction!(celu, m)?)?;
    m.add_function(wrap_pyfunction!(celu_backward, m)?)?;
    m.add_function(wrap_pyfunction!(selu, m)?)?;
    m.add_function(wrap_pyfunction!(selu_backward, m)?)?;
    m.add_function(wrap_pyfunction!(gelu, m)?)?;
    m.add_function(wrap_pyfunction!(gelu_backward, m)?)?;
    m.add_function(wrap_pyfunction!(silu, m)?)?;
    m.add_function(wrap_pyfunction!(silu_backward, m)?)?;
    m.add_function(wrap_pyfunction!(mish, m)?)?;
    m.add_function(wrap_pyfunction!(mish_backward, m)?)?;
    m.add_function(wrap_pyfunction!(softplus, m)?)?;
    m.add_function(wrap_pyfunction!(softplus_backward, m)?)?;
    m.add_function(wrap_pyfunction!(softsign, m)?)?;
    m.add_function(wrap_pyfunction!(softsign_backward, m)?)?;
    m.add_function(wrap_pyfunction!(hard_sigmoid, m)?)?;
    m.add_function(wrap_pyfunction!(hard_sigmoid_backward, m)?)?;
    m.add_function(wrap_pyfunction!(hard_tanh, m)?)?;
    m.add_function(wrap_pyfunction!(hard_tanh_backward, m)?)?;
    m.add_function(wrap_pyfunction!(hard_swish, m)?)?;
    m.add_function(wrap_pyfunction!(hard_swish_backward, m)?)?;
    Ok(())
}

/// Fused bias add and activation for a dense layer, in one pass:
/// z = h + bias (broadcast over rows), returns act(z).
///
/// h: 2-D array (batch, features); bias: 1-D array (features,).
/// activation: any activation name in logitkit ("relu", "gelu", "silu",
/// "tanh", "leaky_relu", ...) or "identity" / "linear"; params (alpha,
/// negative_slope, approximate, beta, threshold, min_val, max_val, eps) are
/// passed to it. preact_out: array to store z in (may be h itself, for the
/// backward pass); out: array for act(z) (may be h).
///
/// >>> bias_act([[1.0, -2.0]], [0.5, 0.5])
/// array([[1.5, 0. ]])
#[pyfunction]
#[pyo3(signature = (h, bias, activation="relu", *, out=None, preact_out=None, **params))]
fn bias_act<'py>(
    py: Python<'py>,
    h: &Bound<'py, PyAny>,
    bias: &Bound<'py, PyAny>,
    activation: &str,
    out: Option<&Bound<'py, PyAny>>,
    preact_out: Option<&Bound<'py, PyAny>>,
    params: Option<&Bound<'py, PyDict>>,
) -> PyResult<Bound<'py, PyAny>> {
    let act = make_act(activation, &params_from_kwargs(activation, params)?)?;
    let inputs = [(h, "h"), (bias, "bias")];
    let mut p = float_args(py, &inputs)?;
    let shape = p.arrs[0].shape().to_vec();
    if shape.len() != 2 {
        return Err(PyValueError::new_err(format!(
            "h must be 2-D (batch, features), got shape {}",
            shape_str(&shape)
        )));
    }
    if p.arrs[1].shape() != [shape[1]] {
        return Err(PyValueError::new_err(format!(
            "bias has shape {}, but h has shape {} ({} features)",
            shape_str(p.arrs[1].shape()),
            shape_str(&shape),
            shape[1]
        )));
    }
    for a in p.arrs.iter_mut() {
        *a = in_order(a, Order::C)?;
    }
    let dt_name = p.dt_name();
    let user_out = out
        .map(|o| check_out(o, &shape, dt_name, "out"))
        .transpose()?;
    let user_z = preact_out
        .map(|o| check_out(o, &shape, dt_name, "preact_out"))
        .transpose()?;
    if let (Some(a), Some(b)) = (&user_out, &user_z) {
        check_disjoint(a, b, ("out", "preact_out"))?;
    }
    let (hh, bb) = (&p.arrs[0], &p.arrs[1]);
    let direct_y = user_out
        .as_ref()
        .is_some_and(|o| writable_direct(o, Order::C, p.half, &[hh], &[bb]));
    let direct_z = user_z
        .as_ref()
        .is_some_and(|o| writable_direct(o, Order::C, p.half, &[hh], &[bb]));
    let y_t = match (&user_out, direct_y) {
        (Some(o), true) => o.clone(),
        _ => new_of(py, p.dt, &shape, Order::C),
    };
    let z_t = match (&user_z, direct_z) {
        (Some(o), true) => Some(o.clone()),
        (Some(_), false) => Some(new_of(py, p.dt, &shape, Order::C)),
        (None, _) => None,
    };
    let (rows, nf) = (shape[0], shape[1]);
    macro_rules! go {
        ($T:ty) => {{
            let (hp, bp, yp) = (data_ptr::<$T>(hh), data_ptr::<$T>(bb), data_ptr::<$T>(&y_t));
            let zp = z_t.as_ref().map_or(Ptr::null(), |z| data_ptr::<$T>(z));
            // SAFETY: C-contiguous arrays of dtype $T and the checked shapes;
            // each output is exactly h or disjoint from h and bias, and the
            // outputs do not overlap each other.
            maybe_detach(py, rows * nf, move || unsafe {
                k::bias_forward::<$T>(act, hp.get(), bp.get(), zp.get(), yp.get(), rows, nf)
            })
        }};
    }
    match p.dt {
        Dt::F32 => go!(f32),
        Dt::F64 => go!(f64),
    }
    if let (Some(o), Some(z)) = (&user_z, &z_t) {
        if !direct_z {
            py.import("numpy")?.call_method1("copyto", (o, z))?;
        }
    }
    finish(py, y_t, user_out, direct_y, p.half)
}

/// Backward pass of bias_act: returns (grad_z, grad_bias) with
/// grad_z = grad * act'(z) (0 where act' is flat, as the `*_backward`
/// functions) and grad_bias = grad_z.sum(axis=0).
///
/// z is the pre-activation (bias_act's preact_out). The column sum uses a
/// fixed blocking (in float64, blocks added in order), so it is bit-identical
/// for any thread count. out may be grad itself (in place); bias_grad_out is
/// an optional (features,) array for grad_bias.
///
/// >>> bias_act_backward([[1.0, 1.0], [2.0, 2.0]], [[0.5, -1.0], [1.0, 1.0]])
/// (array([[1., 0.], [2., 2.]]), array([3., 2.]))
#[pyfunction]
#[pyo3(signature = (grad, z, activation="relu", *, out=None, bias_grad_out=None, **params))]
fn bias_act_backward<'py>(
    py: Python<'py>,
    grad: &Bound<'py, PyAny>,
    z: &Bound<'py, PyAny>,
    activation: &str,
    out: Option<&Bound<'py, PyAny>>,
    bias_grad_out: Option<&Bound<'py, PyAny>>,
    params: Option<&Bound<'py, PyDict>>,
) -> PyResult<Bound<'py, PyTuple>> {
    let act = make_act(activation, &params_from_kwargs(activation, params)?)?;
    let inputs = [(grad, "grad"), (z, "z")];
    let mut p = float_args(py, &inputs)?;
    same_shape(&p.arrs, &inputs)?;
    let shape = p.arrs[0].shape().to_vec();
    if shape.len() != 2 {
        return Err(PyValueError::new_err(format!(
            "grad must be 2-D (batch, features), got shape {}",
            shape_str(&shape)
        )));
    }
    for a in p.arrs.iter_mut() {
        *a = in_order(a, Order::C)?;
    }
    let dt_name = p.dt_name();
    let user_out = out
        .map(|o| check_out(o, &shape, dt_name, "out"))
        .transpose()?;
    let user_bg = bias_grad_out
        .map(|o| check_out(o, &shape[1..], dt_name, "bias_grad_out"))
        .transpose()?;
    // The bias gradient is copied out after the kernel: into memory of `out`
    // it would overwrite the result returned.
    if let (Some(a), Some(b)) = (&user_out, &user_bg) {
        check_disjoint(a, b, ("out", "bias_grad_out"))?;
    }
    let ins: Vec<&Bound<'_, PyUntypedArray>> = p.arrs.iter().collect();
    let direct = user_out
        .as_ref()
        .is_some_and(|o| writable_direct(o, Order::C, p.half, &ins, &[]));
    let y_t = match (&user_out, direct) {
        (Some(o), true) => o.clone(),
        _ => new_of(py, p.dt, &shape, Order::C),
    };
    let bg_t = new_of(py, p.dt, &shape[1..], Order::C);
    let (rows, nf) = (shape[0], shape[1]);
    macro_rules! go {
        ($T:ty) => {{
            let (gp, zp, yp) = (
                data_ptr::<$T>(&p.arrs[0]),
                data_ptr::<$T>(&p.arrs[1]),
                data_ptr::<$T>(&y_t),
            );
            // SAFETY: a new (features,) array of dtype $T.
            let bg = unsafe { slice_mut_of::<$T>(&bg_t) };
            // SAFETY: as in bias_act; y is exactly grad or z, or disjoint.
            maybe_detach(py, rows * nf, move || unsafe {
                k::bias_backward::<$T>(act, gp.get(), zp.get(), yp.get(), rows, nf, bg)
            })
        }};
    }
    match p.dt {
        Dt::F32 => go!(f32),
        Dt::F64 => go!(f64),
    }
    let gz = finish(py, y_t, user_out, direct, p.half)?;
    let gb = finish(py, bg_t, user_bg, false, p.half)?;
    PyTuple::new(py, [gz, gb])
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    register_pairs(m)?;
    m.add_function(wrap_pyfunction!(bias_act, m)?)?;
    m.add_function(wrap_pyfunction!(bias_act_backward, m)?)?;
    Ok(())
}

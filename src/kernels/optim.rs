//! Fused in-place optimizer updates: SGD (momentum, Nesterov, L2 weight
//! decay), Adam (L2 weight decay) and AdamW (decoupled weight decay). Each
//! step is one pass that reads param, grad and state and writes param and
//! state, where NumPy needs 6-8 passes and temporaries.
//!
//! The update of element `i` depends only on element `i`, so the work is split
//! into fixed chunks of `TASK_ELEMS` and the result is bit-identical for any
//! thread count and every instruction set (no contraction into FMA).

use super::elementwise::{run_tasks, Ptr};
use crate::multiversion;
use crate::simd::{Float, LANES as L};

/// Square root through f64: correctly rounded for f32 too (f64 has more than
/// 2 * 24 + 2 bits, so the double rounding is harmless), and it vectorises.
#[inline(always)]
fn sqrt<T: Float>(x: T) -> T {
    T::from_f64(x.to_f64().sqrt())
}

/// SGD hyper-parameters, as in `torch.optim.SGD` (dampening 0).
#[derive(Clone, Copy, Debug)]
pub struct SgdParams<T> {
    pub lr: T,
    pub momentum: T,
    pub nesterov: bool,
    pub weight_decay: T,
    /// Multiplies the gradient first (gradient clipping without an extra pass).
    pub grad_scale: T,
}

/// Adam / AdamW hyper-parameters for one step, bias corrections precomputed.
#[derive(Clone, Copy, Debug)]
pub struct AdamParams<T> {
    pub beta1: T,
    pub beta2: T,
    pub eps: T,
    /// `lr / (1 - beta1^t)`.
    pub step_size: T,
    /// `1 / sqrt(1 - beta2^t)`.
    pub inv_sqrt_bc2: T,
    /// L2 (`g += wd * p`) for Adam; `p *= 1 - lr * wd` for AdamW.
    pub weight_decay: T,
    pub decoupled: bool,
    /// `1 - lr * wd` for AdamW (ignored for Adam).
    pub decay_factor: T,
    pub grad_scale: T,
}

impl<T: Float> AdamParams<T> {
    /// Parameters of step `t` (1-based), with the corrections computed in f64.
    pub fn new(
        lr: f64,
        beta1: f64,
        beta2: f64,
        eps: f64,
        wd: f64,
        decoupled: bool,
        t: u64,
    ) -> Self {
        let t = t.max(1) as i32;
        let bc1 = 1.0 - beta1.powi(t);
        let bc2 = 1.0 - beta2.powi(t);
        AdamParams {
            beta1: T::from_f64(beta1),
            beta2: T::from_f64(beta2),
            eps: T::from_f64(eps),
            step_size: T::from_f64(lr / bc1),
            inv_sqrt_bc2: T::from_f64(1.0 / bc2.sqrt()),
            weight_decay: T::from_f64(wd),
            decoupled,
            decay_factor: T::from_f64(1.0 - lr * wd),
            grad_scale: T::from_f64(1.0),
        }
    }
}

/// One SGD element: `g = s*grad + wd*p; buf = mu*buf + g;
/// p -= lr * (nesterov ? g + mu*buf : buf)` (plain `p -= lr*g` when `mu = 0`).
#[inline(always)]
pub fn sgd_elem<T: Float>(p: &mut T, g: T, buf: &mut T, h: &SgdParams<T>) {
    let g = g * h.grad_scale + h.weight_decay * *p;
    let b = h.momentum * *buf + g;
    *buf = b;
    let d = if h.nesterov { g + h.momentum * b } else { b };
    *p = *p - h.lr * d;
}

/// One SGD element without a momentum buffer.
#[inline(always)]
pub fn sgd_plain_elem<T: Float>(p: &mut T, g: T, h: &SgdParams<T>) {
    let g = g * h.grad_scale + h.weight_decay * *p;
    *p = *p - h.lr * g;
}

/// One Adam/AdamW element (PyTorch's formula):
/// `g = s*grad (+ wd*p for Adam); p *= 1 - lr*wd (AdamW);
/// m = b1*m + (1-b1)*g; v = b2*v + (1-b2)*g*g;
/// p -= step_size * m / (sqrt(v) * inv_sqrt_bc2 + eps)`.
#[inline(always)]
pub fn adam_elem<T: Float>(p: &mut T, g: T, m: &mut T, v: &mut T, h: &AdamParams<T>) {
    let mut g = g * h.grad_scale;
    let mut pv = *p;
    if h.decoupled {
        pv = pv * h.decay_factor;
    } else {
        g += h.weight_decay * pv;
    }
    let mn = h.beta1 * *m + (T::ONE - h.beta1) * g;
    let vn = h.beta2 * *v + (T::ONE - h.beta2) * (g * g);
    *m = mn;
    *v = vn;
    let denom = sqrt(vn) * h.inv_sqrt_bc2 + h.eps;
    *p = pv - h.step_size * (mn / denom);
}

multiversion! {
    /// SGD with a momentum buffer over one chunk: one pass over p, g, buf.
    pub fn sgd_momentum_chunk<T: Float>(p: &mut [T], g: &[T], buf: &mut [T], h: &SgdParams<T>) {
        let n = p.len() / L * L;
        for ((pc, gc), bc) in p[..n]
            .chunks_exact_mut(L)
            .zip(g[..n].chunks_exact(L))
            .zip(buf[..n].chunks_exact_mut(L))
        {
            for i in 0..L {
                sgd_elem(&mut pc[i], gc[i], &mut bc[i], h);
            }
            crate::simd::lane_barrier();
        }
        for i in n..p.len() {
            sgd_elem(&mut p[i], g[i], &mut buf[i], h);
        }
    }
}

multiversion! {
    /// SGD without momentum over one chunk: one pass over p and g.
    pub fn sgd_plain_chunk<T: Float>(p: &mut [T], g: &[T], h: &SgdParams<T>) {
        let n = p.len() / L * L;
        for (pc, gc) in p[..n].chunks_exact_mut(L).zip(g[..n].chunks_exact(L)) {
            for i in 0..L {
                sgd_plain_elem(&mut pc[i], gc[i], h);
            }
            crate::simd::lane_barrier();
        }
        for i in n..p.len() {
            sgd_plain_elem(&mut p[i], g[i], h);
        }
    }
}

multiversion! {
    /// Adam / AdamW over one chunk: one pass over p, g, m, v.
    pub fn adam_chunk<T: Float>(p: &mut [T], g: &[T], m: &mut [T], v: &mut [T], h: &AdamParams<T>) {
        let n = p.len() / L * L;
        for (((pc, gc), mc), vc) in p[..n]
            .chunks_exact_mut(L)
            .zip(g[..n].chunks_exact(L))
            .zip(m[..n].chunks_exact_mut(L))
            .zip(v[..n].chunks_exact_mut(L))
        {
            for i in 0..L {
                adam_elem(&mut pc[i], gc[i], &mut mc[i], &mut vc[i], h);
            }
            crate::simd::lane_barrier();
        }
        for i in n..p.len() {
            adam_elem(&mut p[i], g[i], &mut m[i], &mut v[i], h);
        }
    }
}

/// Runs `f(start, end)` over the driver's fixed chunks of `len` elements.
fn chunked(len: usize, f: impl Fn(usize, usize) + Sync + Send) {
    run_tasks(len, 1, |_, s, e| f(s, e));
}

/// In-place SGD step over `param` with gradient `grad`; `buf` is the momentum
/// buffer (required when `momentum != 0`).
pub fn sgd_step<T: Float>(param: &mut [T], grad: &[T], buf: Option<&mut [T]>, h: &SgdParams<T>) {
    let len = param.len();
    assert_eq!(grad.len(), len);
    let p = Ptr(param.as_mut_ptr());
    match buf {
        Some(buf) => {
            assert_eq!(buf.len(), len);
            let b = Ptr(buf.as_mut_ptr());
            // SAFETY: chunks [s, e) are disjoint across tasks and in bounds.
            chunked(len, |s, e| unsafe {
                sgd_momentum_chunk(p.chunk(s, e), &grad[s..e], b.chunk(s, e), h)
            });
        }
        None => {
            // SAFETY: as above.
            chunked(len, |s, e| unsafe {
                sgd_plain_chunk(p.chunk(s, e), &grad[s..e], h)
            });
        }
    }
}

/// In-place Adam / AdamW step over `param`, updating the moment estimates
/// `m` (first) and `v` (second).
pub fn adam_step<T: Float>(
    param: &mut [T],
    grad: &[T],
    m: &mut [T],
    v: &mut [T],
    h: &AdamParams<T>,
) {
    let len = param.len();
    assert!(grad.len() == len && m.len() == len && v.len() == len);
    let (p, mp, vp) = (
        Ptr(param.as_mut_ptr()),
        Ptr(m.as_mut_ptr()),
        Ptr(v.as_mut_ptr()),
    );
    // SAFETY: chunks [s, e) are disjoint across tasks and in bounds.
    chunked(len, |s, e| unsafe {
        adam_chunk(
            p.chunk(s, e),
            &grad[s..e],
            mp.chunk(s, e),
            vp.chunk(s, e),
            h,
        )
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::par::set_num_threads;
    use crate::simd::{set_level, Level};

    /// The kernels' shared test generator, values in [-1, 1).
    fn rand_vec(len: usize, seed: u64) -> Vec<f64> {
        crate::kernels::tests::rand_vec(len, 1.0, seed)
    }

    fn cast<T: Float>(v: &[f64]) -> Vec<T> {
        v.iter().map(|&x| T::from_f64(x)).collect()
    }

    fn bits<T: Float>(v: &[T]) -> Vec<u64> {
        v.iter().map(|x| x.to_f64().to_bits()).collect()
    }

    /// Independent f64 reference for Adam, written from PyTorch's docs.
    fn adam_ref(
        p: &mut [f64],
        g: &[f64],
        m: &mut [f64],
        v: &mut [f64],
        t: i32,
        wd: f64,
        dec: bool,
    ) {
        let (lr, b1, b2, eps) = (1e-2, 0.9, 0.999, 1e-8);
        for i in 0..p.len() {
            let mut gi = g[i];
            if dec {
                p[i] *= 1.0 - lr * wd;
            } else {
                gi += wd * p[i];
            }
            m[i] = b1 * m[i] + (1.0 - b1) * gi;
            v[i] = b2 * v[i] + (1.0 - b2) * gi * gi;
            let mh = m[i] / (1.0 - b1.powi(t));
            let vh = v[i] / (1.0 - b2.powi(t));
            p[i] -= lr * mh / (vh.sqrt() + eps);
        }
    }

    fn run_adam<T: Float>(len: usize, steps: u64, wd: f64, dec: bool) -> (Vec<T>, Vec<T>, Vec<T>) {
        let mut p = cast::<T>(&rand_vec(len, 1));
        let mut m = vec![T::ZERO; len];
        let mut v = vec![T::ZERO; len];
        for t in 1..=steps {
            let g = cast::<T>(&rand_vec(len, 100 + t));
            let h = AdamParams::<T>::new(1e-2, 0.9, 0.999, 1e-8, wd, dec, t);
            adam_step(&mut p, &g, &mut m, &mut v, &h);
        }
        (p, m, v)
    }

    #[test]
    fn adam_and_adamw_match_f64_reference() {
        for &(wd, dec) in &[(0.0, false), (0.1, false), (0.1, true)] {
            let len = 1000;
            let (p, m, v) = run_adam::<f64>(len, 5, wd, dec);
            let mut rp = rand_vec(len, 1);
            let (mut rm, mut rv) = (vec![0.0; len], vec![0.0; len]);
            for t in 1..=5 {
                adam_ref(
                    &mut rp,
                    &rand_vec(len, 100 + t as u64),
                    &mut rm,
                    &mut rv,
                    t,
                    wd,
                    dec,
                );
            }
            for i in 0..len {
                assert!(
                    (p[i] - rp[i]).abs() <= 1e-13,
                    "p[{i}] {} vs {}",
                    p[i],
                    rp[i]
                );
                assert!((m[i] - rm[i]).abs() <= 1e-15);
                assert!((v[i] - rv[i]).abs() <= 1e-15);
            }
            let (p32, _, _) = run_adam::<f32>(len, 5, wd, dec);
            for i in 0..len {
                assert!((p32[i] as f64 - rp[i]).abs() <= 1e-5, "f32 p[{i}]");
            }
        }
    }

    #[test]
    fn sgd_matches_scalar_reference() {
        for &(mu, nest, wd) in &[(0.0, false, 0.0), (0.9, false, 0.01), (0.9, true, 0.0)] {
            let len = 777;
            let mut p = rand_vec(len, 3);
            let mut b = vec![0.0; len];
            let (mut rp, mut rb) = (p.clone(), b.clone());
            let h = SgdParams {
                lr: 0.1,
                momentum: mu,
                nesterov: nest,
                weight_decay: wd,
                grad_scale: 0.5,
            };
            for t in 0..4 {
                let g = rand_vec(len, 50 + t);
                sgd_step(&mut p, &g, if mu != 0.0 { Some(&mut b) } else { None }, &h);
                for i in 0..len {
                    let gi = 0.5 * g[i] + wd * rp[i];
                    let d = if mu != 0.0 {
                        rb[i] = mu * rb[i] + gi;
                        if nest {
                            gi + mu * rb[i]
                        } else {
                            rb[i]
                        }
                    } else {
                        gi
                    };
                    rp[i] -= 0.1 * d;
                }
            }
            assert_eq!(p, rp);
            assert_eq!(b, rb);
        }
    }

    #[test]
    fn bit_identical_across_threads_and_simd_levels() {
        let len = 2 * crate::par::SERIAL_ELEMS + 123; // parallel path with a ragged tail
        let mut reference: Option<(Vec<u64>, Vec<u64>)> = None;
        for &(threads, level) in &[
            (1, Level::Scalar),
            (2, Level::Avx2),
            (4, Level::Avx512),
            (3, Level::Scalar),
        ] {
            set_num_threads(threads);
            set_level(level);
            let (p, m, v) = run_adam::<f32>(len, 3, 0.01, true);
            let mut ps = cast::<f32>(&rand_vec(len, 9));
            let mut bs = vec![0f32; len];
            let h = SgdParams {
                lr: 0.1f32,
                momentum: 0.9,
                nesterov: true,
                weight_decay: 1e-3,
                grad_scale: 1.0,
            };
            sgd_step(&mut ps, &cast::<f32>(&rand_vec(len, 10)), Some(&mut bs), &h);
            let got = (
                [bits(&p), bits(&m), bits(&v)].concat(),
                [bits(&ps), bits(&bs)].concat(),
            );
            match &reference {
                None => reference = Some(got),
                Some(r) => assert!(r == &got, "differs at threads={threads} level={level:?}"),
            }
        }
        set_level(Level::Avx512);
        set_num_threads(1);
    }
}

use super::*;

fn fwd_vec<T: Float>(act: Act, x: &[T]) -> Vec<T> {
    let mut y = vec![T::ZERO; x.len()];
    unsafe { forward(act, x.as_ptr(), y.as_mut_ptr(), x.len()) };
    y
}

#[test]
fn in_place_forward_equals_out_of_place() {
    let x: Vec<f32> = (0..100_003)
        .map(|i| (i as f32 * 0.37).sin() * 8.0)
        .collect();
    let want = fwd_vec(Act::Silu, &x);
    let mut y = x.clone();
    unsafe { forward(Act::Silu, y.as_ptr(), y.as_mut_ptr(), y.len()) };
    assert_eq!(want, y);
}

#[test]
fn threads_do_not_change_results_or_bias_grad() {
    let (rows, nf) = (6001, 37); // above SERIAL_ELEMS: the parallel path
    let g: Vec<f64> = (0..rows * nf)
        .map(|i| ((i * 7919) % 1000) as f64 / 997.0 - 0.5)
        .collect();
    let z: Vec<f64> = (0..rows * nf)
        .map(|i| ((i * 104_729) % 2000) as f64 / 300.0 - 3.0)
        .collect();
    let run = |threads| {
        crate::par::set_num_threads(threads);
        let mut y = vec![0.0; rows * nf];
        let mut bg = vec![0.0; nf];
        unsafe {
            bias_backward(
                Act::Gelu,
                g.as_ptr(),
                z.as_ptr(),
                y.as_mut_ptr(),
                rows,
                nf,
                &mut bg,
            )
        };
        (y, bg)
    };
    let a = run(1);
    let b = run(2);
    let c = run(3);
    assert_eq!(a, b);
    assert_eq!(a, c);
    // Column sums against a plain sum.
    for j in 0..nf {
        let s: f64 = (0..rows).map(|r| a.0[r * nf + j]).sum();
        assert!((s - a.1[j]).abs() <= 1e-12 * (1.0 + s.abs()));
    }
}

#[test]
fn bias_forward_matches_forward_of_sum() {
    let (rows, nf) = (50, 21);
    let h: Vec<f32> = (0..rows * nf)
        .map(|i| (i as f32 * 0.1).cos() * 5.0)
        .collect();
    let b: Vec<f32> = (0..nf).map(|j| j as f32 * 0.25 - 2.0).collect();
    let zs: Vec<f32> = (0..rows * nf).map(|i| h[i] + b[i % nf]).collect();
    let want = fwd_vec(Act::Relu, &zs);
    let mut z = vec![0.0; rows * nf];
    let mut y = vec![0.0; rows * nf];
    unsafe {
        bias_forward(
            Act::Relu,
            h.as_ptr(),
            b.as_ptr(),
            z.as_mut_ptr(),
            y.as_mut_ptr(),
            rows,
            nf,
        )
    };
    assert_eq!(z, zs);
    assert_eq!(y, want);
}

#[test]
fn every_isa_level_gives_identical_bits() {
    use crate::simd::{set_level, set_level_from_env, Level};
    let mut x: Vec<f32> = (0..4099).map(|i| (i as f32 - 2049.0) * 0.013).collect();
    x.extend([
        f32::INFINITY,
        f32::NEG_INFINITY,
        f32::NAN,
        -0.0,
        1e-40,
        -1e-40,
    ]);
    x.extend((0..200).map(|i| -20.0 + i as f32 * 0.1));
    let g: Vec<f32> = (0..x.len()).map(|i| (i as f32 * 0.7).sin()).collect();
    // NaN payloads aside: the kernels do not select a NaN input back in,
    // and the levels' NaN arithmetic may keep another payload or sign.
    let bits = |v: Vec<f32>| {
        v.iter()
            .map(|v| if v.is_nan() { f32::NAN } else { *v }.to_bits())
            .collect::<Vec<_>>()
    };
    let both = |act| {
        let mut d = vec![0.0; x.len()];
        unsafe { backward(act, g.as_ptr(), x.as_ptr(), d.as_mut_ptr(), x.len()) };
        (bits(fwd_vec(act, &x)), bits(d))
    };
    // float32 gelu is a table at AVX-512 (see the next test), not the
    // exp-based form of the other levels.
    for act in [
        Act::Mish,
        Act::Tanh,
        Act::LogSigmoid,
        Act::Logit { eps: Some(1e-3) },
    ] {
        set_level(Level::Scalar);
        let a = both(act);
        set_level_from_env();
        let b = both(act);
        assert_eq!(a, b, "{act:?}");
    }
}

/// float32 gelu, its backward and silu's backward at AVX-512 are
/// intrinsics of their own (`simd::math::avx512`): the bits of their scalar
/// table forms `x_ndtr_table`, `grad_x_ndtr_deriv_table` and
/// `grad_silu_deriv_table`, over every 509th f32 bit pattern (8.4 million:
/// both signs, subnormals, the tables' clamps at 8 and 20, the exp-based
/// forms below them and gelu's clamp at 16, the underflowing tail, +-inf
/// and NaNs), and tails of several lengths; the fused bias kernels too.
#[test]
fn gelu_avx512_matches_its_scalar_forms_bit_for_bit() {
    use crate::simd::{level, set_level, set_level_from_env, Level};
    set_level_from_env();
    if level() != Level::Avx512 {
        eprintln!("no AVX-512 here: gelu's intrinsics are not tested");
        return;
    }
    let x: Vec<f32> = (0..=u32::MAX / 509)
        .map(|i| f32::from_bits(i * 509))
        .collect();
    let g: Vec<f32> = (0..x.len())
        .map(|i| ((i * 7919) % 2001) as f32 / 1000.0 - 1.0)
        .collect();
    let bits = |v: &[f32]| {
        v.iter()
            .map(|v| if v.is_nan() { f32::NAN } else { *v }.to_bits())
            .collect::<Vec<_>>()
    };
    use crate::simd::math::{grad_x_ndtr_deriv_table, x_ndtr_table};
    set_level(Level::Avx512);
    // silu's backward from its table: the bits of its scalar form.
    let mut d = vec![0.0; x.len()];
    unsafe { backward(Act::Silu, g.as_ptr(), x.as_ptr(), d.as_mut_ptr(), x.len()) };
    let want: Vec<f32> = (0..x.len())
        .map(|i| grad_silu_deriv_table(g[i], x[i]))
        .collect();
    assert_eq!(bits(&d), bits(&want));
    let (rows, nf) = (x.len() / 7, 7);
    let (mut db, mut bg) = (vec![0.0; rows * nf], [0.0; 7]);
    unsafe {
        bias_backward(
            Act::Silu,
            g.as_ptr(),
            x.as_ptr(),
            db.as_mut_ptr(),
            rows,
            nf,
            &mut bg,
        )
    };
    assert_eq!(bits(&db), bits(&want[..rows * nf]));
    for n in [1, 15, 16, 17, 31, 33] {
        let mut d = vec![0.0; n];
        unsafe { backward(Act::Silu, g.as_ptr(), x.as_ptr(), d.as_mut_ptr(), n) };
        assert_eq!(bits(&d), bits(&want[..n]));
    }
    let run = |n: usize| {
        let y = fwd_vec(Act::Gelu, &x[..n]);
        let mut d = vec![0.0; n];
        unsafe { backward(Act::Gelu, g.as_ptr(), x.as_ptr(), d.as_mut_ptr(), n) };
        // The fused kernels on rows of 7 (a zero bias): the same bits.
        let (rows, nf) = (n / 7, 7);
        let (mut yb, mut db, mut bg) = (vec![0.0; rows * nf], vec![0.0; rows * nf], [0.0; 7]);
        let zero = [0.0f32; 7];
        unsafe {
            let null = std::ptr::null_mut();
            bias_forward(
                Act::Gelu,
                x.as_ptr(),
                zero.as_ptr(),
                null,
                yb.as_mut_ptr(),
                rows,
                nf,
            );
            let (gp, xp, dp) = (g.as_ptr(), x.as_ptr(), db.as_mut_ptr());
            bias_backward(Act::Gelu, gp, xp, dp, rows, nf, &mut bg);
        }
        assert_eq!(bits(&yb), bits(&y[..rows * nf]));
        assert_eq!(bits(&db), bits(&d[..rows * nf]));
        (bits(&y), bits(&d))
    };
    for n in [x.len(), 1, 15, 16, 17, 31, 33] {
        let want = (
            bits(&x[..n].iter().map(|&v| x_ndtr_table(v)).collect::<Vec<_>>()),
            bits(
                &(0..n)
                    .map(|i| grad_x_ndtr_deriv_table(g[i], x[i]))
                    .collect::<Vec<_>>(),
            ),
        );
        let got = run(n);
        for (i, (w, h)) in want.0.iter().zip(&got.0).enumerate() {
            assert_eq!(w, h, "gelu({:e})", x[i]);
        }
        for (i, (w, h)) in want.1.iter().zip(&got.1).enumerate() {
            assert_eq!(w, h, "gelu_backward({}, {:e})", g[i], x[i]);
        }
    }
    set_level_from_env();
}

#[test]
fn flat_regions_give_a_zero_with_grad_sign_for_any_grad() {
    // PyTorch selects 0 where f' is flat; `grad * 0` would be NaN for an
    // infinite or NaN grad. Full lane arrays and a tail, scalar and best level.
    use crate::simd::{set_level, set_level_from_env, Level};
    fn check<T: Float>() {
        let flat: [(Act, &[f64]); 6] = [
            (Act::Relu, &[-1.0, 0.0, -0.0, f64::NEG_INFINITY]),
            (Act::Relu6, &[-1.0, 0.0, 6.0, f64::INFINITY]),
            (Act::HardSigmoid, &[-3.0, 3.0, 1e300, f64::NEG_INFINITY]),
            (
                Act::HardTanh {
                    min: -2.0,
                    max: 0.5,
                },
                &[-2.0, -3.0, 0.5, 1.0],
            ),
            (Act::HardSwish, &[-3.0, -4.0, f64::NEG_INFINITY]),
            (Act::Logit { eps: Some(0.01) }, &[0.0, 0.005, 1.0, -1.0]),
        ];
        let grads = [f64::INFINITY, f64::NEG_INFINITY, f64::NAN, 1.5, -1.5, -0.0];
        for (act, xs) in flat {
            let n = 37;
            let x: Vec<T> = (0..n).map(|i| T::from_f64(xs[i % xs.len()])).collect();
            let g: Vec<T> = (0..n)
                .map(|i| T::from_f64(grads[i % grads.len()]))
                .collect();
            let mut y = vec![T::ONE; n];
            let mut yb = vec![T::ONE; n];
            let mut bg = vec![T::ONE; n];
            unsafe {
                backward(act, g.as_ptr(), x.as_ptr(), y.as_mut_ptr(), n);
                bias_backward(act, g.as_ptr(), x.as_ptr(), yb.as_mut_ptr(), 1, n, &mut bg);
            }
            for i in 0..n {
                let (gi, yi) = (g[i].to_f64(), y[i].to_f64());
                let want = 0f64.copysign(gi);
                assert!(
                    yi.to_bits() == want.to_bits() && yb[i].to_f64().to_bits() == want.to_bits(),
                    "{act:?} x {} grad {gi}: {yi}",
                    x[i].to_f64()
                );
                assert!(
                    bg[i].to_f64() == 0.0,
                    "{act:?} bias grad {}",
                    bg[i].to_f64()
                );
            }
        }
    }
    for scalar in [true, false] {
        if scalar {
            set_level(Level::Scalar);
        } else {
            set_level_from_env();
        }
        check::<f32>();
        check::<f64>();
    }
}

#[test]
fn streaming_stores_write_the_same_values_and_nothing_else() {
    // Non-temporal stores (large outputs, `simd::stream`) against normal
    // ones, at every start offset within a cache line (16-, 32- and 64-byte
    // aligned ones take the three widths of store, others none) and
    // lengths around the lane width: the same bits inside the output, the guard values
    // around it untouched.
    fn check<T: Float>(acts: &[Act]) {
        let guard = T::from_f64(-7.25);
        for &act in acts {
            for off in 0..17usize {
                for n in [0usize, 1, 5, 15, 16, 17, 31, 33, 100, 1000, 4099] {
                    let x: Vec<T> = (0..n + 40)
                        .map(|i| T::from_f64(((i * 7919) % 1000) as f64 / 61.0 - 8.0))
                        .collect();
                    let g: Vec<T> = (0..n + 40)
                        .map(|i| T::from_f64(((i * 104_729) % 997) as f64 / 500.0 - 1.0))
                        .collect();
                    for backward in [false, true] {
                        let run = |stream: bool| {
                            let mut y = vec![guard; n + 40];
                            let (xp, gp) = (
                                Ptr(x[off..].as_ptr() as *mut T),
                                Ptr(g[off..].as_ptr() as *mut T),
                            );
                            let yp = Ptr(y[off..].as_mut_ptr());
                            if backward {
                                bwd_k(act, gp, xp, yp, n, stream);
                            } else {
                                fwd_k(act, xp, yp, n, stream);
                            }
                            y
                        };
                        let (a, b) = (run(false), run(true));
                        for (i, (p, q)) in a.iter().zip(&b).enumerate() {
                            assert!(
                                p.to_f64().to_bits() == q.to_f64().to_bits(),
                                "{act:?} backward {backward} off {off} n {n} at {i}: {} vs {}",
                                p.to_f64(),
                                q.to_f64()
                            );
                            if i < off || i >= off + n {
                                assert!(q.to_f64() == -7.25, "wrote outside the output at {i}");
                            }
                        }
                    }
                }
            }
        }
    }
    let acts = [Act::Relu, Act::Sigmoid, Act::Gelu, Act::Silu];
    check::<f32>(&acts);
    check::<f64>(&acts);
}

#[test]
fn streaming_threshold_and_alignment() {
    use crate::simd::stream::{aligned, wanted};
    assert!(aligned(0x1010 as *const f32) && !aligned(0x1004 as *const f32));
    assert!(!wanted(1 << 16));
    assert_eq!(wanted(1 << 40), cfg!(target_arch = "x86_64"));
}

#[test]
fn silu_backward_table_form_within_3e_7_dense_sweep() {
    // The table form of silu's backward (grad 1) against the f64 exp-based
    // form: relative beyond |x| = 3, against max(|d|, 0.5) within (the root
    // at -1.2785); below -20 it is the f32 exp-based form, bit for bit.
    let mut worst = [(0.0f64, 0.0f32); 2];
    let mut b = 0u32;
    while b <= 20.0f32.to_bits() {
        for x in [f32::from_bits(b), -f32::from_bits(b)] {
            let (got, want) = (grad_silu_deriv_table(1.0, x) as f64, silu_deriv(x as f64));
            let far = x.abs() > 3.0;
            let e = (got - want).abs() / if far { want.abs() } else { want.abs().max(0.5) };
            let k = usize::from(far);
            if e > worst[k].0 {
                worst[k] = (e, x);
            }
        }
        b += 29;
    }
    eprintln!("silu table: worst {worst:?}");
    assert!(worst[0].0 <= 3e-7 && worst[1].0 <= 3e-7, "{worst:?}");
    for x in [-20.5f32, -50.0, -103.0, -200.0, f32::NEG_INFINITY] {
        assert_eq!(
            grad_silu_deriv_table(1.0, x).to_bits(),
            silu_deriv(x).to_bits(),
            "{x}"
        );
    }
    for (x, want) in [
        (20.0f32, 1.0f32),
        (1e30, 1.0),
        (f32::INFINITY, 1.0),
        (0.0, 0.5),
        (-0.0, 0.5),
    ] {
        assert_eq!(grad_silu_deriv_table(1.0, x), want, "{x}");
    }
    assert!(grad_silu_deriv_table(1.0, f32::NAN).is_nan());
}

use super::softmax::*;
use super::*;
use crate::simd::{set_level, Level};

/// Deterministic pseudo-random numbers (xorshift), no dependency needed.
pub(crate) fn rand_vec(len: usize, scale: f64, seed: u64) -> Vec<f64> {
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            ((s >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0) * scale
        })
        .collect()
}

/// Independent reference: plain two-pass softmax of one row in f64.
fn ref_row(x: &[f64]) -> (Vec<f64>, Vec<f64>, f64) {
    let m = x.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    let s: f64 = x.iter().map(|v| (v - m).exp()).sum();
    let sm = x.iter().map(|v| (v - m).exp() / s).collect();
    let lsm = x.iter().map(|v| v - m - s.ln()).collect();
    (sm, lsm, m + s.ln())
}

fn check_layout<T: Float>(layout: Layout, scale: f64, tol: f64) {
    let xs64 = rand_vec(layout.len(), scale, layout.len() as u64 + 7);
    let xs: Vec<T> = xs64.iter().map(|&v| T::from_f64(v)).collect();
    let xr: Vec<f64> = xs.iter().map(|v| v.to_f64()).collect();
    let mut sm = vec![T::ZERO; layout.len()];
    let mut lsm = vec![T::ZERO; layout.len()];
    let mut lse = vec![T::ZERO; layout.rows()];
    run_rows(&Softmax, layout, &[&xs], None, &mut sm);
    run_rows(&LogSoftmax, layout, &[&xs], None, &mut lsm);
    run_rows(&LogSumExp, layout, &[&xs], None, &mut lse);
    let Layout { outer, n, inner } = layout;
    for o in 0..outer {
        for c in 0..inner {
            let idx: Vec<usize> = (0..n).map(|k| o * n * inner + k * inner + c).collect();
            let row: Vec<f64> = idx.iter().map(|&i| xr[i]).collect();
            let (rs, rl, rlse) = ref_row(&row);
            for (k, &i) in idx.iter().enumerate() {
                let e = (sm[i].to_f64() - rs[k]).abs() / rs[k].max(1e-300);
                assert!(
                    e <= tol || rs[k] < 1e-30,
                    "softmax {layout:?} o={o} c={c} k={k}: rel err {e}"
                );
                let e = (lsm[i].to_f64() - rl[k]).abs() / rl[k].abs().max(1.0);
                assert!(e <= tol, "log_softmax {layout:?}: err {e}");
            }
            let e = (lse[o * inner + c].to_f64() - rlse).abs() / rlse.abs().max(1.0);
            assert!(e <= tol, "logsumexp {layout:?}: err {e}");
        }
    }
}

#[test]
fn forward_matches_f64_reference_on_all_paths() {
    let layouts = [
        Layout {
            outer: 3,
            n: 1000,
            inner: 1,
        }, // row kernel
        Layout {
            outer: 37,
            n: 10,
            inner: 1,
        }, // short rows, lanes across rows
        Layout {
            outer: 2,
            n: 5,
            inner: 19,
        }, // inner axis
        Layout {
            outer: 1,
            n: 300,
            inner: 40,
        }, // inner axis, long column
        Layout {
            outer: 2,
            n: 50257,
            inner: 1,
        }, // long row, several blocks
        Layout {
            outer: 1,
            n: 1,
            inner: 1,
        },
        Layout {
            outer: 5,
            n: 33,
            inner: 1,
        }, // float32: lanes across rows; float64: row kernel
        Layout {
            outer: 37,
            n: 63,
            inner: 1,
        },
        Layout {
            outer: 21,
            n: 64,
            inner: 1,
        }, // row kernel
    ];
    for l in layouts {
        check_layout::<f32>(l, 10.0, 2e-6);
        check_layout::<f32>(l, 1000.0, 2e-6);
        check_layout::<f64>(l, 10.0, 1e-14);
        check_layout::<f64>(l, 1000.0, 1e-14);
    }
}

#[test]
fn log_softmax_keeps_tiny_values() {
    let x = [20.0f32, 0.0];
    let mut y = [0f32; 2];
    run_rows(
        &LogSoftmax,
        Layout {
            outer: 1,
            n: 2,
            inner: 1,
        },
        &[&x],
        None,
        &mut y,
    );
    let want = -(1.0f64 + (-20f64).exp()).ln();
    assert!(((y[0] as f64 - want) / want).abs() < 1e-6, "{}", y[0]);
}

#[test]
fn special_rows() {
    let l = Layout {
        outer: 1,
        n: 3,
        inner: 1,
    };
    let mut y = [0f32; 3];
    let ninf = f32::NEG_INFINITY;
    run_rows(&Softmax, l, &[&[ninf, ninf, ninf]], None, &mut y);
    assert!(y.iter().all(|v| v.is_nan()), "all -inf row gives NaN");
    run_rows(&Softmax, l, &[&[1.0, f32::NAN, 2.0]], None, &mut y);
    assert!(y.iter().all(|v| v.is_nan()), "NaN propagates");
    run_rows(&Softmax, l, &[&[f32::MAX, -f32::MAX, 0.0]], None, &mut y);
    assert_eq!(y, [1.0, 0.0, 0.0]);
    run_rows(&Softmax, l, &[&[ninf, 0.0, ninf]], None, &mut y);
    assert_eq!(y, [0.0, 1.0, 0.0]);
    let mut s = [0f32; 1];
    run_rows(&LogSumExp, l, &[&[ninf, ninf, ninf]], None, &mut s);
    assert_eq!(s[0], ninf);
    run_rows(&LogSumExp, l, &[&[f32::INFINITY, 0.0, 1.0]], None, &mut s);
    assert_eq!(s[0], f32::INFINITY);
    run_rows(
        &LogSumExp,
        l,
        &[&[f32::INFINITY, f32::NAN, 1.0]],
        None,
        &mut s,
    );
    assert!(s[0].is_nan());
}

#[test]
fn masks_and_fully_masked_rows() {
    for l in [
        Layout {
            outer: 2,
            n: 40,
            inner: 1,
        },
        Layout {
            outer: 2,
            n: 4,
            inner: 1,
        },
        Layout {
            outer: 2,
            n: 4,
            inner: 3,
        },
    ] {
        let x: Vec<f64> = rand_vec(l.len(), 3.0, 1);
        // Row (0, *) keeps every other entry; row (1, *) is fully masked.
        let mask: Vec<u8> = (0..l.len())
            .map(|i| (i / (l.n * l.inner) == 0 && (i / l.inner) % 2 == 0) as u8)
            .collect();
        let mut y = vec![0f64; l.len()];
        run_rows(&Softmax, l, &[&x], Some(&mask), &mut y);
        let mut z = vec![0f64; l.len()];
        run_rows(&LogSoftmax, l, &[&x], Some(&mask), &mut z);
        for c in 0..l.inner {
            let idx: Vec<usize> = (0..l.n).map(|k| k * l.inner + c).collect();
            let kept: Vec<f64> = idx
                .iter()
                .filter(|&&i| mask[i] != 0)
                .map(|&i| x[i])
                .collect();
            let (rs, _, lse) = ref_row(&kept);
            let mut j = 0;
            for &i in &idx {
                if mask[i] != 0 {
                    assert!((y[i] - rs[j]).abs() < 1e-14);
                    assert!((z[i] - (x[i] - lse)).abs() < 1e-13);
                    j += 1;
                } else {
                    assert_eq!(y[i], 0.0);
                    assert_eq!(z[i], f64::NEG_INFINITY);
                }
            }
            for k in 0..l.n {
                let i = l.n * l.inner + k * l.inner + c;
                assert_eq!(y[i], 0.0, "fully masked row gives zeros");
                assert_eq!(z[i], f64::NEG_INFINITY);
            }
        }
    }
}

#[test]
fn backward_matches_reference() {
    for l in [
        Layout {
            outer: 3,
            n: 100,
            inner: 1,
        },
        Layout {
            outer: 20,
            n: 7,
            inner: 1,
        },
        Layout {
            outer: 2,
            n: 9,
            inner: 5,
        },
    ] {
        let x = rand_vec(l.len(), 4.0, 3);
        let g = rand_vec(l.len(), 1.0, 4);
        let mut y = vec![0f64; l.len()];
        run_rows(&Softmax, l, &[&x], None, &mut y);
        let mut d = vec![0f64; l.len()];
        run_rows(&SoftmaxBackward, l, &[&g, &y], None, &mut d);
        let mut ly = vec![0f64; l.len()];
        run_rows(&LogSoftmax, l, &[&x], None, &mut ly);
        let mut ld = vec![0f64; l.len()];
        run_rows(&LogSoftmaxBackward, l, &[&g, &ly], None, &mut ld);
        for o in 0..l.outer {
            for c in 0..l.inner {
                let idx: Vec<usize> = (0..l.n)
                    .map(|k| o * l.n * l.inner + k * l.inner + c)
                    .collect();
                let dot: f64 = idx.iter().map(|&i| g[i] * y[i]).sum();
                let sg: f64 = idx.iter().map(|&i| g[i]).sum();
                for &i in &idx {
                    assert!((d[i] - y[i] * (g[i] - dot)).abs() < 1e-14);
                    assert!((ld[i] - (g[i] - ly[i].exp() * sg)).abs() < 1e-13);
                }
            }
        }
    }
}

#[test]
fn bit_identical_across_threads_and_levels() {
    let l = Layout {
        outer: 600,
        n: 1000,
        inner: 1,
    };
    let x: Vec<f32> = rand_vec(l.len(), 20.0, 9)
        .iter()
        .map(|&v| v as f32)
        .collect();
    let run = || {
        let mut y = vec![0f32; l.len()];
        run_rows(&Softmax, l, &[&x], None, &mut y);
        y
    };
    crate::par::set_num_threads(1);
    let a = run();
    crate::par::set_num_threads(8);
    let b = run();
    set_level(Level::Scalar);
    let c = run();
    crate::simd::set_level_from_env();
    crate::par::set_num_threads(2);
    assert!(a.iter().zip(&b).all(|(p, q)| p.to_bits() == q.to_bits()));
    assert!(a.iter().zip(&c).all(|(p, q)| p.to_bits() == q.to_bits()));
}

#[test]
fn empty_shapes() {
    let mut y: Vec<f32> = vec![];
    run_rows(
        &Softmax,
        Layout {
            outer: 0,
            n: 5,
            inner: 1,
        },
        &[&[]],
        None,
        &mut y,
    );
    let mut s = vec![0f32; 3];
    run_rows(
        &LogSumExp,
        Layout {
            outer: 3,
            n: 0,
            inner: 1,
        },
        &[&[]],
        None,
        &mut s,
    );
    assert!(s.iter().all(|v| *v == f32::NEG_INFINITY));
}

/// Rows of no element: a map (softmax, log_softmax, their backwards) writes
/// nothing, however many rows; the elements after its empty output keep
/// their value.
#[test]
fn maps_of_empty_rows_write_nothing() {
    fn check<T: Float>() {
        let layouts =
            [(4, 0, 1), (3, 0, 5), (1, 0, 7)].map(|(outer, n, inner)| Layout { outer, n, inner });
        for layout in layouts {
            let x: Vec<T> = vec![];
            let guard = T::from_f64(7.0);
            for op in 0..4 {
                let mut y = vec![guard; 64];
                let (ins, out) = ([x.as_ptr(), x.as_ptr()], y.as_mut_ptr());
                // SAFETY: no input element is read (n = 0), and `out` is
                // writable for 64 elements, where the output has none.
                unsafe {
                    match op {
                        0 => run_rows_raw(&Softmax, layout, &ins[..1], None, out),
                        1 => run_rows_raw(&LogSoftmax, layout, &ins[..1], None, out),
                        2 => run_rows_raw(&SoftmaxBackward, layout, &ins, None, out),
                        _ => run_rows_raw(&LogSoftmaxBackward, layout, &ins, None, out),
                    }
                }
                assert!(y.iter().all(|&v| v == guard), "op {op}, {layout:?}");
            }
        }
    }
    check::<f32>();
    check::<f64>();
}

/// `rows` float32 rows of `n` logits for the tile tests: random in +-30,
/// every third row with one of +-inf, NaN, +-3e38, a subnormal, +-0, and row
/// 2 all -inf.
pub(crate) fn tile_test_rows(rows: usize, n: usize) -> Vec<f32> {
    let specials = [
        f32::INFINITY,
        f32::NEG_INFINITY,
        f32::NAN,
        3e38,
        -3e38,
        1e-42,
        -0.0,
        0.0,
    ];
    let seed = (n * 1000 + rows) as u64;
    let mut x: Vec<f32> = rand_vec(rows * n, 30.0, seed)
        .iter()
        .map(|&v| v as f32)
        .collect();
    for (r, u) in rand_vec(rows, 1e6, seed + 1).iter().enumerate() {
        if r % 3 == 1 {
            let k = u.abs() as usize;
            x[r * n + k % n] = specials[k % specials.len()];
        }
    }
    if rows > 2 {
        x[2 * n..3 * n].fill(f32::NEG_INFINITY);
    }
    x
}

#[test]
fn softmax_tiles_match_the_column_kernel_bit_for_bit() {
    // The register-resident tiles (AVX-512 and AVX2, float32 rows of 1 to 16
    // classes) against the column kernels through their scratch blocks, bit for bit
    // (NaN payloads aside), with +-inf, NaN, +-3e38, subnormals, +-0 and an
    // all -inf row; out of place and in place.
    // The CPU's own level, not the global one (another test may have set
    // that to scalar meanwhile).
    use crate::simd::tile::{run, Op};
    use crate::simd::transpose::{lanes_to_rows, rows_to_lanes};
    let best = crate::simd::dispatch::best();
    type Cols = fn(&[f32], &mut [f32]);
    let ops: [(&str, Op, Cols); 3] = [
        ("softmax", Op::Softmax, softmax_cols::<f32>),
        ("log_softmax", Op::LogSoftmax, log_softmax_cols::<f32>),
        ("logsumexp", Op::LogSumExp, logsumexp_cols::<f32>),
    ];
    let same = |p: f32, q: f32| p.to_bits() == q.to_bits() || (p.is_nan() && q.is_nan());
    for (name, op, cols) in ops {
        // Values per row out: logsumexp reduces.
        let reduces = matches!(op, Op::LogSumExp);
        // Each tiled level this CPU has: AVX-512 (16 rows per tile) and AVX2 (8).
        let levels = match best {
            Level::Avx512 => vec![Level::Avx512, Level::Avx2],
            Level::Avx2 => vec![Level::Avx2],
            _ => vec![],
        };
        for (level, n) in levels
            .into_iter()
            .flat_map(|l| (1..=16usize).map(move |n| (l, n)))
        {
            // SAFETY: `level` is one the CPU has; the callers pass buffers of
            // rows * n (rows for logsumexp).
            let fused = |src: *const f32, rows, n, dst| unsafe {
                run(level, op, src, rows, n, (0, 0), dst)
            };
            let per = if reduces { 1 } else { n };
            // Partial tiles, and rounds of tiles (128 rows) and a part of one.
            for rows in [1usize, 7, 8, 9, 16, 17, 40, 100, 129, 300] {
                let x = tile_test_rows(rows, n);
                let mut got = vec![0f32; rows * per];
                assert!(fused(x.as_ptr(), rows, n, got.as_mut_ptr()));
                // The same pointer in and out is allowed (not for a reduction).
                let inplace = if reduces {
                    got.clone()
                } else {
                    let mut v = x.clone();
                    let p = v.as_mut_ptr();
                    assert!(fused(p, rows, n, p));
                    v
                };
                let mut want = vec![0f32; rows * per];
                let (mut g, mut o) = (vec![0f32; n * L], vec![0f32; n * L]);
                for r0 in (0..rows).step_by(L) {
                    let w = (rows - r0).min(L);
                    rows_to_lanes(&x[r0 * n..(r0 + w) * n], w, n, &mut g);
                    cols(&g, &mut o);
                    if reduces {
                        want[r0..r0 + w].copy_from_slice(&o[..w]);
                    } else {
                        lanes_to_rows(&o, n, w, &mut want[r0 * n..(r0 + w) * n]);
                    }
                }
                for (i, ((&a, &b), &c)) in got.iter().zip(&want).zip(&inplace).enumerate() {
                    let r = i / per;
                    let row = &x[r * n..r * n + n];
                    assert!(
                        same(a, b) && same(c, b),
                        "{name} at {level:?}, n {n}, rows {rows}, at {i}: {a} {c} vs {b}; row {row:?}"
                    );
                }
            }
        }
    }
}

#[test]
fn transpose_into_matches_index_formula_at_every_level() {
    // Shapes around the 16-row and 16-column blocks, both orientations (by
    // rows when rows >= cols, else by columns) and the parallel split
    // (60 000+ elements), one batch and several.
    for &(batches, rows, cols) in &[
        (1, 1, 1),
        (1, 1, 7),
        (1, 15, 3),
        (1, 3, 15),
        (1, 16, 16),
        (1, 17, 33),
        (1, 33, 17),
        (1, 100, 1000),
        (1, 4099, 17),
        (1, 10, 7001),
        (3, 5, 9),
        (4, 9, 5),
        (7, 21, 40),
        (5, 3000, 11),
        (5, 11, 3000),
    ] {
        let len = batches * rows * cols;
        let src32: Vec<f32> = (0..len).map(|i| i as f32).collect();
        let src64: Vec<f64> = (0..len).map(|i| i as f64 + 0.5).collect();
        for lvl in [Level::Scalar, Level::Avx2, Level::Avx512] {
            set_level(lvl);
            // One element past the end, to see that nothing is written there.
            let mut d32 = vec![f32::NAN; len + 1];
            let mut d64 = vec![f64::NAN; len + 1];
            transpose_into(&src32, batches, rows, cols, &mut d32);
            transpose_into(&src64, batches, rows, cols, &mut d64);
            let at = format!("{batches}x{rows}x{cols} {lvl:?}");
            for b in 0..batches {
                let o = b * rows * cols;
                for r in 0..rows {
                    for c in 0..cols {
                        assert_eq!(d32[o + c * rows + r], src32[o + r * cols + c], "{at}");
                        assert_eq!(d64[o + c * rows + r], src64[o + r * cols + c], "{at}");
                    }
                }
            }
            assert!(d32[len].is_nan() && d64[len].is_nan(), "{at}");
        }
        crate::simd::set_level_from_env();
    }
}

#[test]
fn transpose_mask_matches_index_formula() {
    // Shapes around the 64x64 tiles, one batch and several.
    for &(batches, rows, cols) in &[
        (1, 1, 1),
        (1, 3, 200),
        (1, 200, 3),
        (1, 64, 64),
        (1, 65, 129),
        (3, 70, 10),
        (2, 5, 4097),
    ] {
        let len = batches * rows * cols;
        let src: Vec<u8> = (0..len).map(|i| (i % 251) as u8 + 1).collect();
        let mut dst = vec![0u8; len + 1];
        transpose_mask(&src, batches, rows, cols, &mut dst);
        for b in 0..batches {
            let o = b * rows * cols;
            for r in 0..rows {
                for c in 0..cols {
                    assert_eq!(
                        dst[o + c * rows + r],
                        src[o + r * cols + c],
                        "{batches}x{rows}x{cols}"
                    );
                }
            }
        }
        assert_eq!(dst[len], 0, "{batches}x{rows}x{cols}: written past the end");
    }
}

/// SciPy's weighted logsumexp of one row in f64: entries of weight 0 left
/// out, `log|sum(b * exp(x - max))| + max` and the sum's sign.
fn ref_weighted(x: &[f64], b: &[f64]) -> (f64, f64) {
    let m = x
        .iter()
        .zip(b)
        .filter(|&(_, &w)| w != 0.0)
        .map(|(&v, _)| v)
        .fold(f64::NEG_INFINITY, f64::max);
    let s: f64 = x
        .iter()
        .zip(b)
        .filter(|&(_, &w)| w != 0.0)
        .map(|(&v, &w)| w * (v - m).exp())
        .sum();
    // (`signum` of 0 is 1.)
    let sign = if s == 0.0 { 0.0 } else { s.signum() };
    (m + s.abs().ln(), sign)
}

#[test]
fn weighted_logsumexp_matches_reference_on_all_paths_and_levels() {
    // Short rows (column kernels), long rows with partial last vectors,
    // and inner axes through the transposes and the column units.
    let layouts = [
        (50, 7, 1),
        (20, 100, 1),
        (3, 5000, 1),
        (6, 9, 5),
        (4, 20, 70),
    ];
    for (outer, n, inner) in layouts {
        let l = Layout { outer, n, inner };
        let x: Vec<f32> = rand_vec(l.len(), 30.0, n as u64)
            .iter()
            .map(|&v| v as f32)
            .collect();
        // Weights in (-1, 3), a fifth of them 0 (and x there +inf, which
        // must not count); the column of each row decides nothing else.
        let mut b: Vec<f32> = rand_vec(l.len(), 2.0, n as u64 + 1)
            .iter()
            .map(|&v| (v + 1.0) as f32)
            .collect();
        for (i, w) in b.iter_mut().enumerate() {
            if i % 5 == 2 {
                *w = 0.0;
            }
        }
        let x: Vec<f32> = x
            .iter()
            .zip(&b)
            .map(|(&v, &w)| if w == 0.0 { f32::INFINITY } else { v })
            .collect();
        let run = |how| {
            let mut y = vec![0f32; l.rows()];
            run_rows(&WeightedLogSumExp(how), l, &[&x, &b], None, &mut y);
            y
        };
        let (abs, sign, value) = (run(LseOut::Abs), run(LseOut::Sign), run(LseOut::Value));
        set_level(Level::Scalar);
        let scalar = run(LseOut::Abs);
        crate::simd::set_level_from_env();
        assert!(abs
            .iter()
            .zip(&scalar)
            .all(|(p, q)| p.to_bits() == q.to_bits()));
        for o in 0..outer {
            for c in 0..inner {
                let idx: Vec<usize> = (0..n).map(|k| o * n * inner + k * inner + c).collect();
                let xr: Vec<f64> = idx.iter().map(|&i| x[i] as f64).collect();
                let br: Vec<f64> = idx.iter().map(|&i| b[i] as f64).collect();
                let (rv, rs) = ref_weighted(&xr, &br);
                let r = o * inner + c;
                // Sums that nearly cancel lose relative precision in any
                // order of summation: compare those by the sum of |terms|.
                let m = rv - rs.abs().ln();
                let scale: f64 = xr
                    .iter()
                    .zip(&br)
                    .filter(|&(_, &w)| w != 0.0)
                    .map(|(&v, &w)| w.abs() * (v - m).exp())
                    .sum::<f64>()
                    .ln()
                    + m;
                if rs == 0.0 {
                    // Every weight 0 (column 2 of the inner layout).
                    assert!(abs[r] == f32::NEG_INFINITY && rv == f64::NEG_INFINITY);
                    assert_eq!(sign[r], 0.0);
                    continue;
                }
                let err = (abs[r] as f64 - rv).abs();
                let tol = 4e-7 * rv.abs().max(1.0) + 1e-6 * (scale - rv).exp();
                assert!(err <= tol, "{l:?} row {r}: {} vs {rv}", abs[r]);
                assert_eq!(sign[r] as f64, rs, "{l:?} row {r}");
                if rs < 0.0 {
                    assert!(value[r].is_nan());
                } else {
                    assert_eq!(value[r].to_bits(), abs[r].to_bits());
                }
            }
        }
    }
}

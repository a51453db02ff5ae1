use super::float::{exp_f32, exp_f64};
use super::*;

/// Distance in ulps between two f32 (both finite or equal).
fn ulp32(a: f32, b: f64) -> f64 {
    let b32 = b as f32;
    if a == b32 || (a.is_nan() && b.is_nan()) {
        return 0.0;
    }
    // ulp of the exact value, subnormal-aware.
    let ulp = if b.abs() < f32::MIN_POSITIVE as f64 {
        f32::from_bits(1) as f64
    } else {
        let e = (b.abs()).log2().floor();
        2f64.powf(e - 23.0)
    };
    ((a as f64) - b).abs() / ulp
}

#[test]
fn exp_f32_within_2ulp_dense_sweep() {
    // Every f32 in the softmax range [-104, 0] and up to overflow; stepping by
    // one bit pattern is 2^31 values, so step by 7 bit patterns (all residues
    // of the low bits are still visited).
    let mut worst = 0.0f64;
    let mut worst_x = 0.0f32;
    for (lo, hi) in [(0.0f32, 104.0f32), (0.0f32, 89.0f32)] {
        let neg = lo == 0.0 && hi == 104.0;
        let mut bits = lo.to_bits();
        while bits <= hi.to_bits() {
            let x = if neg {
                -f32::from_bits(bits)
            } else {
                f32::from_bits(bits)
            };
            let got = exp_f32(x, 0.0);
            let want = (x as f64).exp();
            let u = if want > f32::MAX as f64 {
                if got == f32::INFINITY {
                    0.0
                } else {
                    1e9
                }
            } else {
                ulp32(got, want)
            };
            if u > worst {
                worst = u;
                worst_x = x;
            }
            bits += 7;
        }
    }
    assert!(worst <= 2.0, "exp_f32 worst {worst} ulp at x = {worst_x}");
}

#[test]
fn exp_f64_within_2ulp_sampled() {
    // f64 cannot be swept; check 2 million points across the range against
    // exp of an f64 with an exact correction from the f32 reference path.
    let mut worst = 0.0f64;
    let mut wx = 0.0;
    let mut x = -745.0f64;
    while x < 709.0 {
        let got = exp_f64(x, 0.0);
        let want = x.exp();
        // ulp of the exact value; subnormal results have a fixed ulp.
        let ulp = if want < f64::MIN_POSITIVE {
            2f64.powi(-1074)
        } else {
            2f64.powf(want.log2().floor() - 52.0)
        };
        let u = (got - want).abs() / ulp;
        if u > worst {
            worst = u;
            wx = x;
        }
        x += 0.000731;
    }
    assert!(worst <= 2.0, "exp_f64 worst {worst} ulp at {wx}");
}

#[test]
fn exp_special_values() {
    assert_eq!(exp_f32(f32::NEG_INFINITY, 0.0), 0.0);
    assert_eq!(exp_f32(f32::INFINITY, 0.0), f32::INFINITY);
    assert!(exp_f32(f32::NAN, 0.0).is_nan());
    assert_eq!(exp_f32(-104.0, 0.0), 0.0);
    assert_eq!(exp_f32(0.0, 0.0), 1.0);
    assert_eq!(exp_f64(f64::NEG_INFINITY, 0.0), 0.0);
    assert_eq!(exp_f64(f64::INFINITY, 0.0), f64::INFINITY);
    assert!(exp_f64(f64::NAN, 0.0).is_nan());
    assert_eq!(exp_f64(0.0, 0.0), 1.0);
    // Subnormal results are produced, not flushed.
    let s = exp_f32(-100.0, 0.0);
    assert!(s > 0.0 && s < f32::MIN_POSITIVE);
    assert!(ulp32(s, (-100f64).exp()) <= 1.0);
}

#[test]
fn exp_corr_uses_the_low_part() {
    // exp(hi + lo) must honour lo: exp(-80 + 3e-6) differs from exp(-80).
    let (h, l) = <f32 as Float>::diff(-80.0, 3e-6_f32.mul_add(0.0, 0.0));
    assert_eq!((h, l), (-80.0, 0.0));
    let x = 1.000_000_1_f32;
    let m = 81.0_f32;
    let (h, l) = <f32 as Float>::diff(x, m);
    assert!(l != 0.0);
    let got = exp_f32(h, l) as f64;
    let want = ((x as f64) - (m as f64)).exp();
    assert!(((got - want) / want).abs() < 3e-7);
}

#[test]
fn vector_and_scalar_calls_agree_bitwise() {
    // The lane loop as the kernels run it vs the function on single values.
    let xs: Vec<f32> = (0..4096).map(|i| -90.0 + i as f32 * 0.0219).collect();
    let mut lanes = vec![0f32; xs.len()];
    for (c, o) in xs.chunks_exact(LANES).zip(lanes.chunks_exact_mut(LANES)) {
        for i in 0..LANES {
            o[i] = <f32 as Float>::exp(c[i]);
        }
    }
    for (x, v) in xs.iter().zip(&lanes) {
        let s = exp_f32(std::hint::black_box(*x), 0.0);
        assert_eq!(s.to_bits(), v.to_bits(), "x = {x}");
    }
}

#[test]
fn env_level_parsing_never_exceeds_cpu() {
    assert_eq!(dispatch::parse_level("scalar"), Some(Level::Scalar));
    assert_eq!(dispatch::parse_level("bogus"), None);
    let auto = dispatch::parse_level("auto").unwrap();
    assert!(matches!(
        dispatch::parse_level("avx512").unwrap(),
        l if l == Level::Avx512 || l == auto
    ));
}

#[test]
fn group_sum_avx512_is_the_generic_sum() {
    // The f32 intrinsics path against the expression it replaces, bit for
    // bit, on values of all magnitudes (subnormals, 0, 1 and large ones).
    if level() != Level::Avx512 {
        return;
    }
    let mut s = 0x2545_f491_4f6c_dd1du64;
    for _ in 0..2000 {
        let t: [f32; 4 * LANES] = std::array::from_fn(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            f32::from_bits((s >> 33) as u32 & 0x7f7f_ffff)
        });
        let want: [f64; LANES] = std::array::from_fn(|i| {
            (t[i] as f64 + t[LANES + i] as f64)
                + (t[2 * LANES + i] as f64 + t[3 * LANES + i] as f64)
        });
        // SAFETY: the level is AVX-512 (checked above).
        let got = unsafe { group_sum_avx512(t) };
        for i in 0..LANES {
            assert_eq!(got[i].to_bits(), want[i].to_bits(), "lane {i}: {:?}", t);
        }
    }
}

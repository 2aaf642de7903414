//! The AMX products against an f64 product of the same bf16-rounded operands, over every shape
//! class the model meets: tiny, odd sizes, `k` not a multiple of 32, transposed operands, an output
//! with a row stride wider than it, each start (zero, the output, a row in every row), one thread and
//! the pool.
//!
//! Skipped with a notice on a CPU without AMX, unless `SEQLS_REQUIRE_AMX=1` (CI's machines have it).

mod common;

use common::amx;
use seqls_amx::{Amx, Initial, PackedB, View, from_bf16, to_bf16};

/// Deterministic values in about [-2, 2] (a small LCG; no test depends on their distribution).
fn values(len: usize, seed: u64) -> Vec<f32> {
    let mut state = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    (0..len)
        .map(|_| {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((state >> 40) as f32 / (1u64 << 24) as f32) * 4.0 - 2.0
        })
        .collect()
}

fn rounded(x: f32) -> f64 {
    from_bf16(to_bf16(x)) as f64
}

struct Case {
    m: usize,
    n: usize,
    k: usize,
    a_transposed: bool,
    b_transposed: bool,
    out_pad: usize,
    start: Start,
    parallel: bool,
}

/// What the output starts from ([`Initial`]; the row's values are the test's).
#[derive(Clone, Copy, PartialEq)]
enum Start {
    Zero,
    Output,
    Row,
}

/// Runs one case and checks every output element within `k · 2⁻²³` of `Σ|a||b|` (the f32
/// accumulation bound) of the f64 product of the rounded operands.
fn check(amx: Amx, case: &Case, seed: u64) -> Vec<f32> {
    let Case { m, n, k, .. } = *case;
    let a = values(m * k, seed);
    let b = values(k * n, seed + 1);
    // The same matrices stored the other way round when transposed.
    let a_view = if case.a_transposed {
        View::transposed(&a, m)
    } else {
        View::rows(&a, k)
    };
    let b_view = if case.b_transposed {
        View::transposed(&b, k)
    } else {
        View::rows(&b, n)
    };
    let a_at = |i: usize, j: usize| {
        if case.a_transposed {
            a[j * m + i]
        } else {
            a[i * k + j]
        }
    };
    let b_at = |i: usize, j: usize| {
        if case.b_transposed {
            b[j * k + i]
        } else {
            b[i * n + j]
        }
    };
    let stride = n + case.out_pad;
    let start = values(m * stride, seed + 2);
    let row = values(n, seed + 3);
    let mut out = start.clone();
    let initial = match case.start {
        Start::Zero => Initial::Zero,
        Start::Output => Initial::Output,
        Start::Row => Initial::Row(&row),
    };
    // SAFETY: the views and the output hold the shapes given.
    unsafe {
        amx.product_into(
            m,
            n,
            k,
            (out.as_mut_ptr(), stride),
            initial,
            a_view,
            b_view,
            case.parallel,
        )
    };
    for i in 0..m {
        for j in 0..n {
            let (mut exact, mut magnitude) = (0f64, 0f64);
            for l in 0..k {
                let p = rounded(a_at(i, l)) * rounded(b_at(l, j));
                exact += p;
                magnitude += p.abs();
            }
            let before = match case.start {
                Start::Zero => 0.0,
                Start::Output => start[i * stride + j] as f64,
                Start::Row => row[j] as f64,
            };
            exact += before;
            magnitude += before.abs();
            let got = out[i * stride + j] as f64;
            let bound = (k + 2) as f64 * 2f64.powi(-23) * magnitude + 1e-30;
            assert!(
                (got - exact).abs() <= bound,
                "m {m} n {n} k {k}: ({i}, {j}) = {got}, exact {exact}, bound {bound}"
            );
        }
        // The padding of the output row is never touched.
        for j in n..stride {
            assert_eq!(
                out[i * stride + j].to_bits(),
                start[i * stride + j].to_bits()
            );
        }
    }
    out
}

#[test]
fn products_match_f64_over_every_shape_class() {
    let Some(amx) = amx() else { return };
    let shapes = [
        (1, 1, 1),
        (16, 16, 32),
        (32, 32, 32),
        (33, 47, 65),
        (5, 1000, 31),
        (100, 17, 300),
        (64, 96, 256),
        (3, 7, 1),
        (70, 70, 33),
    ];
    let mut seed = 1;
    for &(m, n, k) in &shapes {
        for a_transposed in [false, true] {
            for b_transposed in [false, true] {
                for (start, out_pad, parallel) in [
                    (Start::Zero, 0, false),
                    (Start::Output, 5, true),
                    (Start::Row, 3, false),
                ] {
                    let case = Case {
                        m,
                        n,
                        k,
                        a_transposed,
                        b_transposed,
                        out_pad,
                        start,
                        parallel,
                    };
                    check(amx, &case, seed);
                    seed += 3;
                }
            }
        }
    }
}

#[test]
fn results_do_not_depend_on_threads_or_runs() {
    let Some(amx) = amx() else { return };
    let case = |parallel| Case {
        m: 200,
        n: 150,
        k: 130,
        a_transposed: true,
        b_transposed: false,
        out_pad: 0,
        start: Start::Zero,
        parallel,
    };
    let one_thread = check(amx, &case(false), 7);
    let pool = check(amx, &case(true), 7);
    let again = check(amx, &case(true), 7);
    let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
    assert_eq!(bits(&one_thread), bits(&pool));
    assert_eq!(bits(&pool), bits(&again));
}

#[test]
fn a_packed_weight_gives_the_same_product() {
    let Some(amx) = amx() else { return };
    let (m, n, k) = (45, 70, 90);
    let (a, b) = (values(m * k, 11), values(k * n, 12));
    let mut direct = vec![0f32; m * n];
    let mut packed = vec![0f32; m * n];
    // SAFETY: the views and outputs hold the shapes given.
    unsafe {
        amx.product_into(
            m,
            n,
            k,
            (direct.as_mut_ptr(), n),
            Initial::Zero,
            View::rows(&a, k),
            View::rows(&b, n),
            false,
        );
        let weight = PackedB::pack(View::rows(&b, n), k, n, false);
        assert_eq!((weight.rows(), weight.cols()), (k, n));
        for _ in 0..2 {
            amx.packed_product_into(
                m,
                (packed.as_mut_ptr(), n),
                Initial::Zero,
                View::rows(&a, k),
                &weight,
                true,
            );
        }
    }
    assert_eq!(direct, packed);
}

/// Starting from a row gives, bit for bit, what writing the row into every output row and
/// accumulating gives (the linear layer's bias, both ways).
#[test]
fn starting_from_a_row_is_accumulating_onto_it() {
    let Some(amx) = amx() else { return };
    for (m, n, k) in [(64, 96, 256), (45, 70, 90), (3, 33, 5)] {
        let (a, b, bias) = (values(m * k, 21), values(k * n, 22), values(n, 23));
        let mut from_row = vec![0f32; m * n];
        let mut accumulated: Vec<f32> = (0..m).flat_map(|_| bias.iter().copied()).collect();
        // SAFETY: the views and outputs hold the shapes given; `bias` holds `n` values.
        unsafe {
            for (out, initial) in [
                (&mut from_row, Initial::Row(&bias)),
                (&mut accumulated, Initial::Output),
            ] {
                amx.product_into(
                    m,
                    n,
                    k,
                    (out.as_mut_ptr(), n),
                    initial,
                    View::rows(&a, k),
                    View::rows(&b, n),
                    true,
                );
            }
        }
        let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(&from_row), bits(&accumulated), "m {m} n {n} k {k}");
    }
}

#[test]
fn an_empty_inner_dimension_gives_zeros_or_leaves_the_sum() {
    let Some(amx) = amx() else { return };
    let (a, b) = (Vec::<f32>::new(), Vec::<f32>::new());
    let mut out = vec![3f32; 6];
    // SAFETY: empty operands hold `[2, 0]` and `[0, 3]`; the output holds `[2, 3]`.
    unsafe {
        amx.product_into(
            2,
            3,
            0,
            (out.as_mut_ptr(), 3),
            Initial::Output,
            View::rows(&a, 0),
            View::rows(&b, 3),
            false,
        );
        assert_eq!(out, vec![3f32; 6]);
        amx.product_into(
            2,
            3,
            0,
            (out.as_mut_ptr(), 3),
            Initial::Zero,
            View::rows(&a, 0),
            View::rows(&b, 3),
            false,
        );
    }
    assert_eq!(out, vec![0f32; 6]);
    let row = [1f32, 2.0, 3.0];
    // SAFETY: as above; the row holds 3 values.
    unsafe {
        amx.product_into(
            2,
            3,
            0,
            (out.as_mut_ptr(), 3),
            Initial::Row(&row),
            View::rows(&a, 0),
            View::rows(&b, 3),
            false,
        );
    }
    assert_eq!(out, vec![1f32, 2.0, 3.0, 1.0, 2.0, 3.0]);
}

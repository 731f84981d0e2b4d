//! Exact W2 by assignment, 1-D W2 by quantiles, moments.

use nalgebra::DMatrix;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use sinkflow::particles::metrics::{
    empirical_cov, empirical_mean, linear_assignment, sq_distances, w2_squared_1d, w2_squared_exact,
};

fn brute_force(c: &DMatrix<f64>) -> f64 {
    // Heap's algorithm over all permutations of 0..n.
    fn rec(k: usize, p: &mut Vec<usize>, c: &DMatrix<f64>, best: &mut f64) {
        if k == 1 {
            let s: f64 = p.iter().enumerate().map(|(i, &j)| c[(i, j)]).sum();
            *best = best.min(s);
            return;
        }
        for i in 0..k {
            rec(k - 1, p, c, best);
            if k.is_multiple_of(2) {
                p.swap(i, k - 1);
            } else {
                p.swap(0, k - 1);
            }
        }
    }
    let mut p: Vec<usize> = (0..c.nrows()).collect();
    let mut best = f64::INFINITY;
    rec(c.nrows(), &mut p, c, &mut best);
    best
}

#[test]
fn assignment_matches_brute_force() {
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    for n in 1..=7 {
        for _ in 0..5 {
            let c = DMatrix::from_fn(n, n, |_, _| rng.random::<f64>());
            let a = linear_assignment(&c).unwrap();
            let mut seen = a.col_of_row.clone();
            seen.sort_unstable();
            assert_eq!(seen, (0..n).collect::<Vec<_>>(), "a permutation");
            // Both sums add n numbers in [0,1]: agreement to n ulps of n.
            assert!((a.cost - brute_force(&c)).abs() <= 1e-14 * n as f64);
        }
    }
}

#[test]
fn exact_w2_agrees_with_sorting_in_1d_and_with_translation() {
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    let n = 200;
    let x = DMatrix::from_fn(n, 1, |_, _| rng.random::<f64>() * 3.0);
    let y = DMatrix::from_fn(n, 1, |_, _| rng.random::<f64>() - 1.0);
    let exact = w2_squared_exact(&x, &y).unwrap();
    let sorted = w2_squared_1d(x.as_slice(), None, y.as_slice(), None).unwrap();
    // Same optimum (monotone matching is optimal in 1-D); sums of 200 O(10) terms: 1e-12.
    assert!(
        (exact - sorted).abs() <= 1e-12 * exact.max(1.0),
        "{exact} vs {sorted}"
    );
    // Translation: W2^2(x, x + v) = |v|^2 (identity matching is optimal).
    let x2 = DMatrix::from_fn(50, 3, |_, _| rng.random::<f64>());
    let v = [0.3, -0.2, 0.1];
    let y2 = DMatrix::from_fn(50, 3, |i, k| x2[(i, k)] + v[k]);
    let w = w2_squared_exact(&x2, &y2).unwrap();
    // 50 sums of 3 rounded squares: ~1e-16 relative each.
    assert!((w - 0.14).abs() < 1e-14, "{w}");
    assert!(w2_squared_exact(&x2, &y).is_err(), "dimension mismatch");
    assert!(
        w2_squared_exact(&x, &DMatrix::zeros(3, 1)).is_err(),
        "size mismatch"
    );
    let d = sq_distances(&x2, &y2);
    assert_eq!(d.shape(), (50, 50));
}

#[test]
fn one_d_weighted_against_closed_form() {
    // μ = δ_0 w.p. 1/3, δ_1 w.p. 2/3 ; ν = δ_0.5: W2^2 = 1/3·0.25 + 2/3·0.25 = 0.25.
    let w = w2_squared_1d(&[0.0, 1.0], Some(&[1.0 / 3.0, 2.0 / 3.0]), &[0.5], None).unwrap();
    // Two products of exactly representable squares with rounded weights: 1 ulp.
    assert!((w - 0.25).abs() < 1e-15);
    // Midpoint grids of [0,1] with 7 and 5 points: W2 is symmetric (same merged pieces).
    let a: Vec<f64> = (0..7).map(|i| (i as f64 + 0.5) / 7.0).collect();
    let b: Vec<f64> = (0..5).map(|i| (i as f64 + 0.5) / 5.0).collect();
    let ab = w2_squared_1d(&a, None, &b, None).unwrap();
    let ba = w2_squared_1d(&b, None, &a, None).unwrap();
    assert!((ab - ba).abs() < 1e-16 && ab > 0.0 && ab < 0.01);
    assert!(w2_squared_1d(&[f64::NAN], None, &b, None).is_err());
    assert!(w2_squared_1d(&[], None, &b, None).is_err());
}

#[test]
fn moments_of_a_known_cloud() {
    let x = DMatrix::from_row_slice(4, 2, &[1.0, 0.0, -1.0, 0.0, 0.0, 2.0, 0.0, -2.0]);
    let m = empirical_mean(&x).unwrap();
    let c = empirical_cov(&x).unwrap();
    assert_eq!(m.as_slice(), &[0.0, 0.0]);
    assert_eq!(c, DMatrix::from_row_slice(2, 2, &[0.5, 0.0, 0.0, 2.0]));
    let mut bad = x.clone();
    bad[(2, 1)] = f64::INFINITY;
    assert!(empirical_cov(&bad).is_err());
}

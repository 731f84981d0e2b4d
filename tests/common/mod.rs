//! Shared helpers for the Sinkhorn integration tests.
#![allow(dead_code)]

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal};
use sinkflow::sinkhorn::PointCloud;

/// Seeded RNG.
pub fn rng(seed: u64) -> ChaCha8Rng {
    ChaCha8Rng::seed_from_u64(seed)
}

/// `n` standard normal points in dimension `d`, shifted by `shift` in every coordinate,
/// with uniform (`weighted = false`) or random positive weights.
pub fn cloud(seed: u64, n: usize, d: usize, shift: f64, weighted: bool) -> PointCloud {
    let mut r = rng(seed);
    let pts: Vec<f64> = (0..n * d)
        .map(|_| {
            let z: f64 = StandardNormal.sample(&mut r);
            z + shift
        })
        .collect();
    let w = weighted.then(|| (0..n).map(|_| r.random_range(0.2..1.0)).collect());
    PointCloud::from_flat(pts, d, w, true).unwrap()
}

/// Relative difference |a - b| / max(|a|, |b|, tiny).
pub fn rel(a: f64, b: f64) -> f64 {
    (a - b).abs() / a.abs().max(b.abs()).max(1e-300)
}

/// max_i |a_i - b_i|.
pub fn max_abs_diff(a: &[f64], b: &[f64]) -> f64 {
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f64::max)
}

#[allow(dead_code)]
const PRIMES: [f64; 30] = [
    2.0, 3.0, 5.0, 7.0, 11.0, 13.0, 17.0, 19.0, 23.0, 29.0, 31.0, 37.0, 41.0, 43.0, 47.0, 53.0,
    59.0, 61.0, 67.0, 71.0, 73.0, 79.0, 83.0, 89.0, 97.0, 101.0, 103.0, 107.0, 109.0, 113.0,
];

#[allow(dead_code)]
fn frac(t: f64) -> f64 {
    t - t.floor()
}

/// The deterministic Weyl-sequence clouds of `tests/data/sinkhorn_reference.py` (see its
/// docstring), shared by the stored-reference tests.
#[allow(dead_code)]
pub fn weyl_cloud(n: usize, d: usize, s: usize, shift: f64) -> PointCloud {
    let mut pts = Vec::with_capacity(n * d);
    for i in 0..n {
        for k in 0..d {
            pts.push(2.0 * frac((i + 1) as f64 * PRIMES[s + k].sqrt()) - 1.0 + shift);
        }
    }
    let w: Vec<f64> = (0..n)
        .map(|i| 0.5 + frac((i + 1) as f64 * PRIMES[s + 10].sqrt() + 0.25))
        .collect();
    PointCloud::from_flat(pts, d, Some(w), true).unwrap()
}

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

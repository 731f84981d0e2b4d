//! Shared helpers of the Gaussian integration tests (not a test crate itself).
#![allow(dead_code)]

use nalgebra::{DMatrix, DVector};
use sinkflow::gaussian::catalog;
use sinkflow::gaussian::Gaussian;

/// Unit round-off.
pub const U: f64 = f64::EPSILON / 2.0;

/// Relative gap |x - y| / max(|x|, |y|, floor).
pub fn rel(x: f64, y: f64, floor: f64) -> f64 {
    (x - y).abs() / x.abs().max(y.abs()).max(floor)
}

/// Max-entry relative gap of two matrices, relative to the larger max-norm (floored).
pub fn mat_rel(a: &DMatrix<f64>, b: &DMatrix<f64>, floor: f64) -> f64 {
    (a - b).amax() / a.amax().max(b.amax()).max(floor)
}

/// Build a validated Gaussian (panics in tests only).
pub fn gauss(mean: &[f64], cov: DMatrix<f64>) -> Gaussian {
    Gaussian::new(DVector::from_column_slice(mean), cov).expect("valid test Gaussian")
}

/// A random non-degenerate pair in dimension d with condition numbers up to `cond`.
pub fn random_pair(d: usize, cond: f64, seed: u64) -> (Gaussian, Gaussian) {
    let mut rng = catalog::seeded(seed);
    let a = catalog::random_gaussian(d, cond, &mut rng);
    let b = catalog::random_gaussian(d, cond, &mut rng);
    (a, b)
}

/// E_{N(m,S)}[x^T Q x + l.x + k] = tr(QS) + m^T Q m + l.m + k.
pub fn integrate_quadratic(p: &sinkflow::gaussian::QuadraticPotential, g: &Gaussian) -> f64 {
    (&p.quad * g.cov()).trace()
        + (g.mean().transpose() * &p.quad * g.mean())[(0, 0)]
        + p.lin.dot(g.mean())
        + p.constant
}

/// A JSON array of numbers as a vector (reference data files).
pub fn json_vector(v: &serde_json::Value) -> DVector<f64> {
    DVector::from_vec(
        v.as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_f64().unwrap())
            .collect(),
    )
}

/// A JSON array of rows as a matrix (reference data files).
pub fn json_matrix(v: &serde_json::Value) -> DMatrix<f64> {
    let rows = v.as_array().unwrap();
    let cols = rows[0].as_array().unwrap().len();
    DMatrix::from_fn(rows.len(), cols, |i, j| rows[i][j].as_f64().unwrap())
}

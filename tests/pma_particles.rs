//! The seed's IPFP on samples through the engine (`theory/pma.md` §4.7): the barycentric
//! projection at the samples approaches the exact Gaussian iterate P_k x as N grows.

use nalgebra::{DMatrix, DVector};
use sinkflow::gaussian::{catalog, Gaussian};
use sinkflow::pma::gaussian::GaussianPma;
use sinkflow::pma::particles::particle_ipfp;
use sinkflow::sinkhorn::PointCloud;

/// Mean over `seeds` of the RMS gap |∇φ_k(x_i) − P_k x_i| on N samples.
fn mean_rms(n: usize, seeds: u64, eps: f64) -> f64 {
    let s = DMatrix::from_row_slice(2, 2, &[1.0, 0.3, 0.3, 0.7]);
    let t = DMatrix::from_row_slice(2, 2, &[0.5, -0.1, -0.1, 1.5]);
    let pma = GaussianPma::new(&s, &t).unwrap();
    let mu = Gaussian::new(DVector::zeros(2), s).unwrap();
    let nu = Gaussian::new(DVector::zeros(2), t).unwrap();
    let mut tot = 0.0;
    for seed in 0..seeds {
        let mut rng = catalog::seeded(100 + seed);
        let xs = mu.sample(n, &mut rng);
        let ys = nu.sample(n, &mut rng);
        let x = PointCloud::uniform(&xs).unwrap();
        let y = PointCloud::uniform(&ys).unwrap();
        let (k, grad) = particle_ipfp(&x, &y, eps, 0.5).unwrap();
        assert_eq!(k, (0.5 / eps).round() as usize);
        let (_, pk) = pma.ipfp_pair(eps, k).unwrap();
        let mut e = 0.0;
        for i in 0..n {
            let p = &pk * DVector::from_row_slice(&[xs[(i, 0)], xs[(i, 1)]]);
            e += (grad[2 * i] - p[0]).powi(2) + (grad[2 * i + 1] - p[1]).powi(2);
        }
        tot += (e / n as f64).sqrt();
    }
    tot / seeds as f64
}

#[test]
fn barycentric_projection_on_samples_approaches_the_gaussian_iterate() {
    let coarse = mean_rms(250, 4, 0.1);
    let fine = mean_rms(1000, 4, 0.1);
    // Monte Carlo O(N^{-1/2}): ratio 2 for 4x the samples; measured 0.221 -> 0.112 (1.98)
    let ratio = coarse / fine;
    assert!(
        ratio > 1.5 && ratio < 2.6,
        "{coarse} -> {fine} (ratio {ratio})"
    );
    assert!(fine < 0.15, "{fine}");
}

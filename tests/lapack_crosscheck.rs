//! Cross-check of the symmetric eigensolver (nalgebra, used by every closed form) against
//! LAPACK's `dsyev` (feature `lapack`; `.ci/run` runs it when the system OpenBLAS is present).
#![cfg(feature = "lapack")]

use sinkflow::gaussian::catalog;
use sinkflow::linalg::{sym_eigen_lapack, SymEigen};

/// Eigenvalues of matrices with spectra spanning 1e-8..1e4 (d = 2..8) agree to a backward-error
/// bound of both solvers, 64·d·u·λ_max (absolute), and the PSD square roots agree likewise.
#[test]
fn nalgebra_eigenvalues_match_lapack() {
    let mut rng = catalog::seeded(2024);
    for d in 2..=8 {
        for _ in 0..5 {
            let a = catalog::wide_spectrum(d, &mut rng);
            let ours = SymEigen::new(&a);
            let theirs = sym_eigen_lapack(&a).expect("LAPACK dsyev converges");
            let lmax = ours.values.amax();
            let tol = 64.0 * d as f64 * f64::EPSILON * lmax;
            let diff = (&ours.values - &theirs.values).amax();
            assert!(diff <= tol, "d = {d}: eigenvalue gap {diff:e} > {tol:e}");
            let r1 = ours.apply(|l| l.max(0.0).sqrt());
            let r2 = theirs.apply(|l| l.max(0.0).sqrt());
            // sqrt is 1/2-Hölder at 0: an eigenvalue error e moves the root by at most sqrt(e).
            let root_tol = (tol).sqrt() * d as f64;
            assert!((&r1 - &r2).amax() <= root_tol);
        }
    }
}

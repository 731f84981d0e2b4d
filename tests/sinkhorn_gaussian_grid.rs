//! Weighted-grid discretisations of two 1-D Gaussians against the closed form of OT_eps
//! (MATH.md §1, cost |x-y|^2):
//! OT_eps = (a-b)^2 + A + B - 2m + (eps/2)(1 + log((2/eps) m + 1/2)), m = sqrt(AB + eps^2/16).

mod common;

use sinkflow::sinkhorn::{solve, PointCloud, SinkhornParams};
use sinkflow::Cost;

fn grid(mean: f64, var: f64, n: usize) -> PointCloud {
    let sd = var.sqrt();
    let (lo, hi) = (mean - 10.0 * sd, mean + 10.0 * sd);
    let h = (hi - lo) / (n - 1) as f64;
    let pts: Vec<f64> = (0..n).map(|i| lo + h * i as f64).collect();
    let w: Vec<f64> = pts
        .iter()
        .map(|&x| (-(x - mean) * (x - mean) / (2.0 * var)).exp())
        .collect();
    PointCloud::from_flat(pts, 1, Some(w), true).unwrap()
}

fn closed_form(a: f64, va: f64, b: f64, vb: f64, eps: f64) -> f64 {
    let m = (va * vb + eps * eps / 16.0).sqrt();
    (a - b).powi(2) + va + vb - 2.0 * m + 0.5 * eps * (1.0 + ((2.0 / eps) * m + 0.5).ln())
}

#[test]
fn grid_gaussians_match_closed_form() {
    // Trapezoidal quadrature of Gaussian-type integrands on a grid of step 0.01 sd is
    // spectrally accurate (error ~ exp(-2 pi^2 / h^2) in sd units), so the only errors left are
    // the Sinkhorn stopping error (tol 1e-12 in L1 marginal -> O(eps * 1e-12) in the value) and
    // round-off of sums over 2000 terms (~1e-13 relative). Asserted: 1e-9 relative.
    for (case, &(a, va, b, vb, eps)) in [(0.0, 1.0, 1.0, 2.0, 1.0), (0.5, 0.5, -0.5, 1.5, 0.3)]
        .iter()
        .enumerate()
    {
        let x = grid(a, va, 2000);
        let y = grid(b, vb, 2000);
        let p = SinkhornParams::new(eps).with_tol(1e-12);
        let out = solve(&x, &y, &p).unwrap();
        assert!(out.converged, "{out:?}");
        let exact = closed_form(a, va, b, vb, eps);
        let err = common::rel(out.ot, exact);
        eprintln!(
            "grid N=2000 a={a} A={va} b={b} B={vb} eps={eps}: ot={} exact={exact} rel err={err:.2e} iters={}",
            out.ot, out.iterations
        );
        assert!(err < 1e-9, "rel err {err}");
        if case == 0 {
            // half-cost convention: OT^half_{eps/2} = OT^sq_eps / 2 (MATH.md §1), same tolerance.
            let p = SinkhornParams::new(eps / 2.0)
                .with_tol(1e-12)
                .with_cost(Cost::HalfSqEuclidean);
            let half = solve(&x, &y, &p).unwrap();
            assert!(common::rel(half.ot, exact / 2.0) < 1e-9);
        }
    }
}

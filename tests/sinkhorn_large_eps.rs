//! The large-eps regime of the engine (theory/sinkhorn.md §3b): right up to the largest finite
//! eps, never an unchecked start accepted.
//!
//! Reference: the expansion of OT_eps in 1/eps. Writing $\pi=(1+h)\mu\otimes\nu$ with $h$ of zero
//! marginals, $\mathrm{KL}=\frac12\int h^2+O(h^3)$, and the minimiser is $h=-\tilde c/\varepsilon$
//! with $\tilde c$ the doubly centred cost, so
//! $$\mathrm{OT}_\varepsilon(\mu,\nu)=\int c\,d\mu\otimes\nu-\frac{\lVert\tilde c\rVert^2_{L^2(\mu\otimes\nu)}}{2\varepsilon}+O(\varepsilon^{-2}).$$
//! For $c=\lvert x-y\rvert^2$: $\int c=\lvert m_x-m_y\rvert^2+\operatorname{tr}\Sigma_x+\operatorname{tr}\Sigma_y$ and
//! $\tilde c=-2(x-m_x)\cdot(y-m_y)$, $\lVert\tilde c\rVert^2=4\operatorname{tr}(\Sigma_x\Sigma_y)$ (weighted
//! empirical moments); hence $S_\varepsilon=\lvert m_x-m_y\rvert^2+\lVert\Sigma_x-\Sigma_y\rVert_F^2/\varepsilon+O(\varepsilon^{-2})$.

mod common;

use common::{cloud, rel};
use nalgebra::{DMatrix, DVector};
use sinkflow::sinkhorn::{divergence, solve, solve_symmetric, PointCloud, SinkhornParams};

fn moments(x: &PointCloud) -> (DVector<f64>, DMatrix<f64>) {
    let d = x.dim();
    let mut m = DVector::zeros(d);
    for (i, &w) in x.weights().iter().enumerate() {
        m += DVector::from_column_slice(x.point(i)) * w;
    }
    let mut s = DMatrix::zeros(d, d);
    for (i, &w) in x.weights().iter().enumerate() {
        let z = DVector::from_column_slice(x.point(i)) - &m;
        s += &z * z.transpose() * w;
    }
    (m, s)
}

/// ∫c dμ⊗ν − 2 tr(Σx Σy)/eps: the expansion to first order in 1/eps.
fn ot_expansion(x: &PointCloud, y: &PointCloud, eps: f64) -> f64 {
    let (mx, sx) = moments(x);
    let (my, sy) = moments(y);
    (&mx - &my).norm_squared() + sx.trace() + sy.trace() - 2.0 * (&sx * &sy).trace() / eps
}

const EPS_LIST: [f64; 7] = [1e8, 1e10, 1e13, 1e17, 1e100, 1e300, f64::MAX];

#[test]
fn cross_and_self_values_follow_the_large_eps_expansion_up_to_f64_max() {
    let x = cloud(1, 50, 2, 0.0, true);
    let y = cloud(2, 40, 2, 1.0, false);
    for eps in EPS_LIST {
        let p = SinkhornParams::new(eps);
        let xy = solve(&x, &y, &p).unwrap();
        let xx = solve_symmetric(&x, &p).unwrap();
        assert!(xy.converged && xx.converged, "eps = {eps:e}");
        // The remainder is O(‖c̃‖³/eps²) ≤ 1e-12 at eps = 1e8 for these clouds (‖c̃‖ ~ 10); the
        // computed values carry ~1e-15 relative round-off: 1e-12 bounds both.
        let e_xy = rel(xy.ot, ot_expansion(&x, &y, eps));
        let e_xx = rel(xx.ot, ot_expansion(&x, &x, eps));
        assert!(e_xy < 1e-12, "eps = {eps:e}: OT(x,y) rel err {e_xy:e}");
        assert!(e_xx < 1e-12, "eps = {eps:e}: OT(x,x) rel err {e_xx:e}");
        // Primal and dual agree (eps KL is summed without cancellation against the mass).
        assert!(
            rel(xy.primal, xy.ot) < 1e-12,
            "eps = {eps:e}: primal {} vs dual {}",
            xy.primal,
            xy.ot
        );
    }
}

#[test]
fn divergence_tends_to_the_mean_gap_plus_covariance_term() {
    let x = cloud(3, 50, 2, 0.0, false);
    let y = cloud(4, 40, 2, 0.7, true);
    let (mx, sx) = moments(&x);
    let (my, sy) = moments(&y);
    for eps in EPS_LIST {
        let s = divergence(&x, &y, &SinkhornParams::new(eps)).unwrap();
        assert!(s.converged());
        let expect = (&mx - &my).norm_squared() + (&sx - &sy).norm_squared() / eps;
        // S_eps is a difference of three values of size ~4: 1e-12 of those, over |Δm|² ~ 1.
        let err = (s.divergence - expect).abs();
        assert!(
            err < 1e-11,
            "eps = {eps:e}: S = {} vs {expect} (err {err:e})",
            s.divergence
        );
    }
}

#[test]
fn no_start_is_accepted_unchecked() {
    // The zero start passes max|T(f)−f|/eps ≤ tol at eps = 1e17; the solve must still move to
    // f_{μ,μ} ≈ ∫c(·,y)dμ(y) − tr Σ (not stay at 0).
    let x = cloud(5, 30, 3, 0.0, false);
    let xx = solve_symmetric(&x, &SinkhornParams::new(1e17)).unwrap();
    let (_, sx) = moments(&x);
    assert!(rel(xx.ot, 2.0 * sx.trace()) < 1e-12, "OT(x,x) = {}", xx.ot);
}

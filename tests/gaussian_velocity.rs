//! The Wasserstein gradient of S_eps(., mu*) and the energy identity
//! (MATH.md §1 flow; theory/gaussian.md §6–7).

mod gaussian_util;

use gaussian_util::*;
use nalgebra::{DMatrix, DVector};
use sinkflow::gaussian::flow::{covariance_rhs, sinkhorn_flow, FlowParams, Method};
use sinkflow::gaussian::{catalog, dissipation, sinkhorn_divergence, velocity, Gaussian};
use sinkflow::Cost;

/// mu_s = (x -> x + s (u + U (x - m)))_# mu = N(m + s u, (I + sU) S (I + sU)^T).
fn pushed(mu: &Gaussian, u: &DVector<f64>, big_u: &DMatrix<f64>, s: f64) -> Gaussian {
    let d = mu.dim();
    let g = DMatrix::identity(d, d) + big_u * s;
    Gaussian::new_unchecked(mu.mean() + u * s, &g * mu.cov() * g.transpose())
}

#[test]
fn velocity_is_minus_the_wasserstein_gradient() {
    // d/ds S_eps(mu_s, mu*) at s = 0 equals -int <v, w> dmu with w(x) = u + U(x - m):
    // -(v(m).u + tr(L^T U S)). Derivative by the 5-point stencil
    // (-F(2h) + 8F(h) - 8F(-h) + F(-2h)) / (12h): truncation h^4 |F^(5)| / 30 ~ 1e-13 at
    // h = 1e-3 (|F^(5)| = O(10) for these O(1) problems), round-off ~ 1.5 u |F| / h ~ 1e-12.
    // Tolerance 1e-9 (relative to 1 + |dF/ds|) leaves a margin of ~100.
    let mut rng = catalog::seeded(23);
    let mut worst: f64 = 0.0;
    for d in 1..=4 {
        for &eps in &[0.05, 0.5, 2.0] {
            for cost in [Cost::SqEuclidean, Cost::HalfSqEuclidean] {
                for singular in [false, true] {
                    let s0 = if singular && d > 1 {
                        catalog::random_psd_rank(d, d - 1, &mut rng)
                    } else {
                        catalog::random_spd(d, 10.0, &mut rng)
                    };
                    let mu = Gaussian::new(catalog::random_mean(d, 1.0, &mut rng), s0).unwrap();
                    let target = catalog::random_gaussian(d, 10.0, &mut rng);
                    let u = catalog::random_mean(d, 1.0, &mut rng);
                    let big_u =
                        DMatrix::from_fn(d, d, |_, _| catalog::random_mean(1, 0.5, &mut rng)[0]);
                    let v = velocity(&mu, &target, eps, cost).unwrap();
                    let predicted =
                        -(v.at.dot(&u) + (v.linear.transpose() * &big_u * mu.cov()).trace());
                    let f = |s: f64| {
                        sinkhorn_divergence(&pushed(&mu, &u, &big_u, s), &target, eps, cost)
                            .unwrap()
                    };
                    let h = 1e-3;
                    let fd = (-f(2.0 * h) + 8.0 * f(h) - 8.0 * f(-h) + f(-2.0 * h)) / (12.0 * h);
                    let err = (fd - predicted).abs() / (1.0 + predicted.abs());
                    worst = worst.max(err);
                    assert!(
                        err < 1e-9,
                        "d={d} eps={eps} {cost} singular={singular}: fd {fd} vs {predicted}"
                    );
                    // the field is affine and centred at the mean
                    assert_eq!(v.eval(mu.mean()), v.at);
                    assert!((&v.linear - v.linear.transpose()).amax() < 1e-14 * v.linear.amax());
                }
            }
        }
    }
    eprintln!("velocity vs 5-point FD: worst relative gap {worst:.2e}");
}

#[test]
fn covariance_rhs_is_ls_plus_sl_and_dissipation_is_the_field_energy() {
    // Inverse-free S' = 2(C + C^T) - 4[(S^2 + d^2)^{1/2} - d] equals L S + S L (MATH.md §1).
    let mut rng = catalog::seeded(29);
    for d in 1usize..=5 {
        for &eps in &[1e-2, 0.3, 3.0] {
            for cost in [Cost::SqEuclidean, Cost::HalfSqEuclidean] {
                for rank in [d, d.saturating_sub(1).max(1)] {
                    let s = catalog::random_psd_rank(d, rank, &mut rng);
                    let mu = Gaussian::new(catalog::random_mean(d, 1.0, &mut rng), s).unwrap();
                    let target = if rank < d {
                        Gaussian::new(
                            DVector::zeros(d),
                            catalog::random_psd_rank(d, rank, &mut rng),
                        )
                        .unwrap()
                    } else {
                        catalog::random_gaussian(d, 10.0, &mut rng)
                    };
                    let v = velocity(&mu, &target, eps, cost).unwrap();
                    let ls = &v.linear * mu.cov();
                    let lssl = &ls + ls.transpose();
                    let rhs = covariance_rhs(mu.cov(), &target, eps, cost).unwrap();
                    // both are O(||S|| ||S*|| / eps) combinations of a few spectral functions;
                    // absolute error ~ 1e3 d^2 u * scale
                    let scale = 1.0 + lssl.amax() + rhs.amax();
                    assert!(
                        (&lssl - &rhs).amax() < 1e3 * (d * d) as f64 * U * scale * 10.0,
                        "d={d} eps={eps} {cost} rank={rank}: {}",
                        (&lssl - &rhs).amax()
                    );
                    let diss = dissipation(&mu, &target, eps, cost).unwrap();
                    let direct = v.at.norm_squared() + (&v.linear * mu.cov() * &v.linear).trace();
                    assert!(rel(diss, direct, 1e-300) < 1e-12);
                }
            }
        }
    }
}

#[test]
fn energy_identity_along_the_flow() {
    // d/dt S_eps(mu_t, mu*) = -int |v_t|^2 dmu_t. The derivative is taken by the 5-point stencil
    // on the trajectory's output grid (dt = 1/200): truncation dt^4 |S^(5)| / 30 with
    // |S^(5)| <= (max rate 4)^5 |S| gives <= 2e-10 |S|; the integration error (rtol 1e-12)
    // divided by dt adds ~ 1e-9 |S|. Tolerance 2e-8 relative to max dissipation.
    let mut rng = catalog::seeded(31);
    let mut worst: f64 = 0.0;
    for (d, eps, cost, method) in [
        (1, 0.1, Cost::SqEuclidean, Method::Dopri5),
        (2, 1.0, Cost::SqEuclidean, Method::Dop853),
        (3, 0.3, Cost::HalfSqEuclidean, Method::Dopri5),
        (4, 2.0, Cost::SqEuclidean, Method::Dop853),
    ] {
        let mu0 = catalog::random_gaussian(d, 10.0, &mut rng);
        let target = catalog::random_gaussian(d, 10.0, &mut rng);
        let k = 200;
        let params = FlowParams {
            eps,
            cost,
            t_end: 1.0,
            samples: k,
            rtol: 1e-12,
            atol: 1e-14,
            method,
        };
        let traj = sinkhorn_flow(&mu0, &target, &params).unwrap();
        let dt = traj.times[1] - traj.times[0];
        let scale = traj.dissipation.iter().fold(0.0_f64, |a, &b| a.max(b));
        for i in 2..k - 1 {
            let s = &traj.divergence;
            let ds = (-s[i + 2] + 8.0 * s[i + 1] - 8.0 * s[i - 1] + s[i - 2]) / (12.0 * dt);
            let err = (ds + traj.dissipation[i]).abs() / scale;
            worst = worst.max(err);
            assert!(
                err < 2e-8,
                "d={d} eps={eps} t={}: dS/dt {ds} vs -diss {}",
                traj.times[i],
                -traj.dissipation[i]
            );
        }
        // S_eps decreases along the flow
        assert!(traj.divergence.windows(2).all(|w| w[1] <= w[0] + 1e-14));
    }
    eprintln!("energy identity: worst residual / max dissipation = {worst:.2e}");
}

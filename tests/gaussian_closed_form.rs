//! Closed-form Gaussian entropic OT: identities of MATH.md §1 / theory/gaussian.md §1–5, 11.
//!
//! Tolerance policy: the identities below are evaluated with O(d^2)–O(d^3) floating-point
//! operations on data of norm O(cond); each tolerance is written as (a few) * d^2 * u * scale
//! or justified next to it. u = 2^-53.

mod gaussian_util;

use gaussian_util::*;
use nalgebra::{DMatrix, DVector};
use proptest::prelude::*;
use sinkflow::gaussian::{
    brenier_map, bures_wasserstein_sq, catalog, divergence_parts, ot_eps, sinkhorn_divergence,
    EntropicOt, Gaussian, GaussianError,
};
use sinkflow::{Classify, Cost, ErrorClass};

const EPSS: [f64; 5] = [1e-2, 0.1, 0.5, 1.0, 10.0];

/// Tolerance for identities built from a handful of spectral functions and products of d x d
/// matrices of norm <= `scale`: 1e3 * d^2 * u * scale (the 1e3 covers eigensolver backward error
/// (~d u) times conditioning of the spectral functions involved, measured ~1e-14 at d = 5).
fn tol_identity(d: usize, scale: f64) -> f64 {
    1e3 * (d * d) as f64 * U * scale
}

#[test]
fn value_splits_into_transport_plus_eps_kl() {
    for d in 1..=5 {
        let (mu, nu) = random_pair(d, 10.0, 100 + d as u64);
        for &eps in &EPSS {
            for cost in [Cost::SqEuclidean, Cost::HalfSqEuclidean] {
                let ot = EntropicOt::new(&mu, &nu, eps, cost).unwrap();
                let recomposed = ot.transport_cost() + eps * ot.mutual_information();
                assert!(
                    rel(ot.value(), recomposed, 1.0) < tol_identity(d, 10.0),
                    "d={d} eps={eps} {cost}: {} vs {}",
                    ot.value(),
                    recomposed
                );
                // free function agrees with the struct
                let v = ot_eps(&mu, &nu, eps, cost).unwrap();
                assert_eq!(v, ot.value());
                // transport part = |a-b|^2 + trA + trB - 2 tr C (through the cross-covariance)
                let tc = cost.factor()
                    * ((mu.mean() - nu.mean()).norm_squared()
                        + mu.cov().trace()
                        + nu.cov().trace()
                        - 2.0 * ot.cross_covariance().trace());
                assert!(rel(tc, ot.transport_cost(), 1.0) < tol_identity(d, 10.0));
                assert!(ot.mutual_information() >= 0.0);
            }
        }
    }
}

#[test]
fn potentials_integrate_to_the_value() {
    // OT_eps = int f dmu + int g dnu (MATH.md §1 potentials; theory/gaussian.md §4).
    for d in 1..=5 {
        let (mu, nu) = random_pair(d, 20.0, 200 + d as u64);
        for &eps in &EPSS {
            for cost in [Cost::SqEuclidean, Cost::HalfSqEuclidean] {
                let ot = EntropicOt::new(&mu, &nu, eps, cost).unwrap();
                let (f, g) = ot.potentials();
                let dual = integrate_quadratic(&f, &mu) + integrate_quadratic(&g, &nu);
                // the expanded quadratic form adds terms of size |a|^2 ||K|| ~ 20 scale
                assert!(
                    rel(dual, ot.value(), 1.0) < tol_identity(d, 100.0),
                    "d={d} eps={eps} {cost}: dual {dual} vs primal {}",
                    ot.value()
                );
                // symmetric split of the constant: f and g carry the same constant part
                assert!(
                    f.quad.iter().all(|v| v.is_finite()) && g.lin.iter().all(|v| v.is_finite())
                );
            }
        }
    }
}

#[test]
fn plan_density_equals_exp_of_potentials() {
    // dpi/d(mu x nu)(x,y) = exp((f(x) + g(y) - c(x,y))/eps), checked pointwise at random points.
    let mut rng = catalog::seeded(7);
    for d in 1..=4 {
        let (mu, nu) = random_pair(d, 5.0, 300 + d as u64);
        for &eps in &[0.2, 1.0, 5.0] {
            for cost in [Cost::SqEuclidean, Cost::HalfSqEuclidean] {
                let ot = EntropicOt::new(&mu, &nu, eps, cost).unwrap();
                let plan = ot.plan();
                let (f, g) = ot.potentials();
                let xs = mu.sample(5, &mut rng);
                let ys = nu.sample(5, &mut rng);
                for i in 0..5 {
                    let x = xs.row(i).transpose();
                    let y = ys.row(i).transpose();
                    let mut xy = DVector::zeros(2 * d);
                    xy.rows_mut(0, d).copy_from(&x);
                    xy.rows_mut(d, d).copy_from(&y);
                    let lhs = plan.log_density(&xy).unwrap()
                        - mu.log_density(&x).unwrap()
                        - nu.log_density(&y).unwrap();
                    let c = cost.eval(x.as_slice(), y.as_slice());
                    let rhs = (f.eval(&x) + g.eval(&y) - c) / eps;
                    // log-density of the 2d-dim plan needs its inverse; its condition number is
                    // ~ (5 / eps')^2 <= 1e3 here, and the terms are O(10/eps): 1e-9 absolute
                    // leaves a margin of ~100 over the observed ~1e-11.
                    assert!(
                        (lhs - rhs).abs() < 1e-9 * (1.0 + rhs.abs()),
                        "d={d} eps={eps} {cost}: log density {lhs} vs potentials {rhs}"
                    );
                }
            }
        }
    }
}

#[test]
fn cross_covariance_solves_the_quadratic_matrix_equation() {
    // C^2 + (eps'/2) C = A B, eps' = eps / kappa (MATH.md §1 plan), also for singular A, B.
    let mut rng = catalog::seeded(11);
    for d in 1..=5 {
        let cases = [
            (
                catalog::random_spd(d, 30.0, &mut rng),
                catalog::random_spd(d, 30.0, &mut rng),
            ),
            (
                catalog::random_psd_rank(d, d / 2, &mut rng),
                catalog::random_spd(d, 30.0, &mut rng),
            ),
            (
                catalog::random_psd_rank(d, d - 1, &mut rng),
                catalog::random_psd_rank(d, d.div_ceil(2), &mut rng),
            ),
        ];
        for (a, b) in cases {
            let mu = Gaussian::new(DVector::zeros(d), a.clone()).unwrap();
            let nu = Gaussian::new(DVector::from_element(d, 1.0), b.clone()).unwrap();
            for &eps in &EPSS {
                for cost in [Cost::SqEuclidean, Cost::HalfSqEuclidean] {
                    let ot = EntropicOt::new(&mu, &nu, eps, cost).unwrap();
                    let e = cost.sq_equivalent_eps(eps);
                    let c = ot.cross_covariance();
                    let lhs = c * c + c * (e / 2.0);
                    let ab = mu.cov() * nu.cov();
                    let scale = ab.amax().max(1.0) + e * c.amax();
                    assert!(
                        (&lhs - &ab).amax() < tol_identity(d, scale),
                        "d={d} eps={eps}: residual {}",
                        (&lhs - &ab).amax()
                    );
                    // C = A K, K symmetric (push-through identity; holds for singular A)
                    let k = ot.map_matrix();
                    assert!((k - k.transpose()).amax() == 0.0);
                    assert!((mu.cov() * k - c).amax() < tol_identity(d, scale));
                }
            }
        }
    }
}

#[test]
fn plan_marginals_and_conditional_mean() {
    // The plan's marginals are mu and nu, it is PSD, and E[Y | X = x] is the map T(x).
    for d in 1..=4 {
        let (mu, nu) = random_pair(d, 10.0, 400 + d as u64);
        let ot = EntropicOt::new(&mu, &nu, 0.3, Cost::SqEuclidean).unwrap();
        let plan = ot.plan();
        assert_eq!(plan.dim(), 2 * d);
        let pc = plan.cov();
        assert_eq!(pc.view((0, 0), (d, d)).clone_owned(), mu.cov().clone());
        assert_eq!(pc.view((d, d), (d, d)).clone_owned(), nu.cov().clone());
        assert_eq!(plan.mean().rows(0, d).clone_owned(), mu.mean().clone());
        assert_eq!(plan.mean().rows(d, d).clone_owned(), nu.mean().clone());
        // validated constructor accepts the joint covariance (PSD within tolerance)
        assert!(Gaussian::new(plan.mean().clone(), pc.clone()).is_ok());
        // full rank for eps > 0 and invertible marginals
        assert_eq!(plan.rank(1e-12), 2 * d);
        // conditional mean: b + C^T A^{-1} (x - a) == map(x)
        let x = mu.mean() + DVector::from_fn(d, |i, _| 0.3 * (i as f64) - 0.5);
        let ainv = mu.cov().clone().try_inverse().unwrap();
        let cond = nu.mean() + ot.cross_covariance().transpose() * &ainv * (&x - mu.mean());
        let t = ot.map(&x);
        // A is conditioned <= 10: the explicit inverse costs ~ 10 u per entry
        assert!(
            (&cond - &t).amax() < 1e-12 * (1.0 + t.amax()),
            "{cond} vs {t}"
        );
    }
}

#[test]
fn map_is_identity_minus_half_gradient_of_f() {
    // T(x) = x - grad f(x)/2 for |x-y|^2 and T(x) = x - grad f(x) for |x-y|^2/2.
    let mut rng = catalog::seeded(5);
    for d in 1..=5 {
        let (mu, nu) = random_pair(d, 10.0, 500 + d as u64);
        for &eps in &EPSS {
            for cost in [Cost::SqEuclidean, Cost::HalfSqEuclidean] {
                let ot = EntropicOt::new(&mu, &nu, eps, cost).unwrap();
                let (f, _) = ot.potentials();
                let xs = mu.sample(3, &mut rng);
                for i in 0..3 {
                    let x = xs.row(i).transpose();
                    let t = ot.map(&x);
                    let from_f = &x - f.gradient(&x) * (0.5 / cost.factor());
                    assert!(
                        (&t - &from_f).amax() < tol_identity(d, 10.0 * (1.0 + x.amax())),
                        "d={d} eps={eps} {cost}"
                    );
                }
            }
        }
    }
}

#[test]
fn sinkhorn_divergence_is_zero_on_the_diagonal_symmetric_and_positive() {
    for d in 1..=6 {
        let (mu, nu) = random_pair(d, 100.0, 600 + d as u64);
        for &eps in &EPSS {
            for cost in [Cost::SqEuclidean, Cost::HalfSqEuclidean] {
                let parts = divergence_parts(&mu, &mu, eps, cost).unwrap();
                // S(mu, mu): the three sums of h cancel to round-off: |S| <= d * 1e3 u * sum|h|,
                // sum|h| <= 2 tr A ~ 2 d * 10.
                assert!(
                    parts.divergence <= 1e3 * (d * d) as f64 * U * 20.0,
                    "{parts:?}"
                );
                assert!(rel(parts.ot_ab, parts.ot_aa, 1.0) < tol_identity(d, 1.0));
                let s_ab = sinkhorn_divergence(&mu, &nu, eps, cost).unwrap();
                let s_ba = sinkhorn_divergence(&nu, &mu, eps, cost).unwrap();
                assert!(s_ab > 0.0);
                assert!(
                    rel(s_ab, s_ba, 1e-300) < tol_identity(d, 10.0),
                    "{s_ab} vs {s_ba}"
                );
                let o_ab = ot_eps(&mu, &nu, eps, cost).unwrap();
                let o_ba = ot_eps(&nu, &mu, eps, cost).unwrap();
                assert!(rel(o_ab, o_ba, 1.0) < tol_identity(d, 10.0));
                // the parts are consistent with the subtraction (no catastrophic cancellation
                // here: S is O(1) and the values O(10))
                let p = divergence_parts(&mu, &nu, eps, cost).unwrap();
                let sub = p.ot_ab - 0.5 * p.ot_aa - 0.5 * p.ot_bb;
                assert!((sub - p.divergence).abs() < tol_identity(d, 100.0));
                assert_eq!(p.divergence, s_ab);
            }
        }
    }
}

#[test]
fn half_cost_is_the_squared_cost_at_twice_eps_halved() {
    for d in 1..=4 {
        let (mu, nu) = random_pair(d, 10.0, 700 + d as u64);
        for &eps in &EPSS {
            let half = EntropicOt::new(&mu, &nu, eps, Cost::HalfSqEuclidean).unwrap();
            let sq = EntropicOt::new(&mu, &nu, 2.0 * eps, Cost::SqEuclidean).unwrap();
            // identical arithmetic up to the final factor 1/2: equality to 1 ulp-ish
            assert!(rel(half.value(), 0.5 * sq.value(), 1.0) < 4.0 * U);
            assert!(rel(half.transport_cost(), 0.5 * sq.transport_cost(), 1.0) < 4.0 * U);
            assert_eq!(half.mutual_information(), sq.mutual_information());
            assert_eq!(half.cross_covariance(), sq.cross_covariance());
            let s_half = sinkhorn_divergence(&mu, &nu, eps, Cost::HalfSqEuclidean).unwrap();
            let s_sq = sinkhorn_divergence(&mu, &nu, 2.0 * eps, Cost::SqEuclidean).unwrap();
            assert!(rel(s_half, 0.5 * s_sq, 1e-300) < 4.0 * U);
        }
    }
}

#[test]
fn small_eps_limit_is_bures_wasserstein() {
    // S_eps - W2^2 = O(eps^2) (first-order terms cancel, theory/gaussian.md §5) and
    // OT_eps - W2^2 = (eps/2) sum_i (1 + log(2 sqrt(lambda_i)/eps)) + O(eps^2).
    for d in 1..=4 {
        let (mu, nu) = random_pair(d, 4.0, 800 + d as u64);
        let w2 = bures_wasserstein_sq(&mu, &nu).unwrap();
        let lam: Vec<f64> = {
            let a = mu.cov_sqrt() * nu.cov() * mu.cov_sqrt();
            nalgebra::SymmetricEigen::new(a)
                .eigenvalues
                .iter()
                .copied()
                .collect()
        };
        let epss = [4e-3, 2e-3, 1e-3];
        let mut gaps = Vec::new();
        for &eps in &epss {
            let s = sinkhorn_divergence(&mu, &nu, eps, Cost::SqEuclidean).unwrap();
            gaps.push((s - w2).abs());
            let o = ot_eps(&mu, &nu, eps, Cost::SqEuclidean).unwrap();
            let first: f64 = lam
                .iter()
                .map(|l| 0.5 * eps * (1.0 + (2.0 * l.sqrt() / eps).ln()))
                .sum();
            // remainder O(eps^2 / lambda_min^{1/2}); lambda_min >= 1/16 here, so <= 10 eps^2 d
            assert!(
                (o - w2 - first).abs() < 10.0 * d as f64 * eps * eps,
                "d={d} eps={eps}: remainder {}",
                (o - w2 - first).abs()
            );
        }
        // log-log slope of |S_eps - W2^2| between eps = 4e-3 and 1e-3: 2 (+-0.15 for the O(eps^3))
        let slope = (gaps[0] / gaps[2]).ln() / 4.0_f64.ln();
        assert!(
            (slope - 2.0).abs() < 0.15,
            "d={d}: slope {slope}, gaps {gaps:?}"
        );
    }
}

#[test]
fn large_eps_limit_of_the_divergence() {
    // eps -> inf: S_eps = |a-b|^2 + ||A-B||_F^2 / eps + O(eps^-2) (theory/gaussian.md §5).
    for d in 1..=4 {
        let (mu, nu) = random_pair(d, 4.0, 900 + d as u64);
        let gap = (mu.mean() - nu.mean()).norm_squared();
        let fro = (mu.cov() - nu.cov()).norm_squared();
        for &eps in &[1e3, 1e4, 1e5] {
            let s = sinkhorn_divergence(&mu, &nu, eps, Cost::SqEuclidean).unwrap();
            let coeff = (s - gap) * eps;
            // relative correction O(||A||,||B|| / eps) <= 10 / eps
            assert!(
                rel(coeff, fro, 1e-12) < 10.0 / eps + 1e-6,
                "d={d} eps={eps}: {coeff} vs {fro}"
            );
        }
    }
}

#[test]
fn singular_covariances() {
    let mut rng = catalog::seeded(13);
    for d in 2..=5 {
        let a = catalog::random_psd_rank(d, 1, &mut rng);
        let b = catalog::random_psd_rank(d, d - 1, &mut rng);
        let mu = Gaussian::new(DVector::zeros(d), a).unwrap();
        let nu = Gaussian::new(DVector::from_element(d, 0.5), b).unwrap();
        assert_eq!(mu.rank(1e-12), 1);
        assert_eq!(nu.rank(1e-12), d - 1);
        for &eps in &EPSS {
            let ot = EntropicOt::new(&mu, &nu, eps, Cost::SqEuclidean).unwrap();
            assert!(ot.value().is_finite() && ot.mutual_information() >= 0.0);
            let (f, g) = ot.potentials();
            let dual = integrate_quadratic(&f, &mu) + integrate_quadratic(&g, &nu);
            assert!(rel(dual, ot.value(), 1.0) < tol_identity(d, 10.0));
            // the plan of a singular pair is singular: rank <= rank A + rank B
            assert!(ot.plan().rank(1e-10) <= 1 + (d - 1));
            let s = sinkhorn_divergence(&mu, &nu, eps, Cost::SqEuclidean).unwrap();
            assert!(s > 0.0 && s.is_finite());
            assert!(sinkhorn_divergence(&mu, &mu, eps, Cost::SqEuclidean).unwrap() < 1e-13);
        }
        // Dirac masses: OT_eps(delta_a, delta_b) = |a-b|^2 for every eps.
        let da = Gaussian::new(DVector::zeros(d), DMatrix::zeros(d, d)).unwrap();
        let db = Gaussian::new(DVector::from_element(d, 1.0), DMatrix::zeros(d, d)).unwrap();
        assert_eq!(ot_eps(&da, &db, 0.7, Cost::SqEuclidean).unwrap(), d as f64);
        assert_eq!(
            sinkhorn_divergence(&da, &db, 0.7, Cost::SqEuclidean).unwrap(),
            d as f64
        );
    }
}

#[test]
fn bures_wasserstein_and_brenier_map() {
    let mut rng = catalog::seeded(17);
    for d in 1..=5 {
        // commuting case: W2^2 = |a-b|^2 + sum (sqrt a_i - sqrt b_i)^2
        let la: Vec<f64> = (0..d).map(|i| 0.5 + i as f64).collect();
        let lb: Vec<f64> = (0..d).map(|i| 2.0 / (1.0 + i as f64)).collect();
        let (a, b, _) = catalog::commuting_pair(&la, &lb, &mut rng);
        let mu = Gaussian::new(DVector::zeros(d), a).unwrap();
        let nu = Gaussian::new(DVector::from_element(d, 1.0), b).unwrap();
        let exact: f64 = d as f64
            + la.iter()
                .zip(&lb)
                .map(|(x, y)| (x.sqrt() - y.sqrt()).powi(2))
                .sum::<f64>();
        let w2 = bures_wasserstein_sq(&mu, &nu).unwrap();
        assert!(
            rel(w2, exact, 1.0) < tol_identity(d, 10.0),
            "{w2} vs {exact}"
        );
        // Brenier map pushes A to B: T A T = B; T symmetric PSD
        let (mu, nu) = random_pair(d, 50.0, 1000 + d as u64);
        let t = brenier_map(&mu, &nu).unwrap();
        let pushed = &t * mu.cov() * &t;
        // A^{-1/2} amplifies by sqrt(cond) ~ 7: tolerance scaled by cond
        assert!(mat_rel(&pushed, nu.cov(), 1.0) < tol_identity(d, 50.0));
        // transport cost of the map equals W2^2
        let id = DMatrix::identity(d, d);
        let tmi = &t - &id;
        let cost = (mu.mean() - nu.mean()).norm_squared() + (&tmi * mu.cov() * &tmi).trace();
        assert!(rel(cost, bures_wasserstein_sq(&mu, &nu).unwrap(), 1.0) < tol_identity(d, 50.0));
    }
    // singular source: the pseudo-inverse map pushes A to P B P
    for d in 2..=5 {
        let a = catalog::random_psd_rank(d, d - 1, &mut rng);
        let b = catalog::random_spd(d, 10.0, &mut rng);
        let mu = Gaussian::new(DVector::zeros(d), a).unwrap();
        let nu = Gaussian::new(DVector::zeros(d), b).unwrap();
        let t = brenier_map(&mu, &nu).unwrap();
        let eig = nalgebra::SymmetricEigen::new(mu.cov().clone());
        let mut p = DMatrix::zeros(d, d);
        for i in 0..d {
            if eig.eigenvalues[i] > 1e-10 {
                let v = eig.eigenvectors.column(i);
                p += v * v.transpose();
            }
        }
        let pushed = &t * mu.cov() * &t;
        let pbp = &p * nu.cov() * &p;
        assert!(mat_rel(&pushed, &pbp, 1.0) < tol_identity(d, 1e3), "d={d}");
    }
}

#[test]
fn samples_have_the_right_moments_including_singular() {
    let mut rng = catalog::seeded(19);
    let d = 3;
    let cov = catalog::random_psd_rank(d, 2, &mut rng);
    let g = Gaussian::new(DVector::from_vec(vec![1.0, -2.0, 0.5]), cov).unwrap();
    let n = 200_000;
    let x = g.sample(n, &mut rng);
    assert_eq!((x.nrows(), x.ncols()), (n, d));
    let mean = x.row_mean().transpose();
    let centred = DMatrix::from_fn(n, d, |i, j| x[(i, j)] - mean[j]);
    let emp = centred.transpose() * &centred / (n as f64);
    // Monte Carlo: entries have standard error <= sqrt(2/n) * max var ~ 0.0063; 6 sigma.
    assert!((&mean - g.mean()).amax() < 6.0 * (2.0 / n as f64).sqrt() * 2.0);
    assert!((&emp - g.cov()).amax() < 6.0 * (2.0 / n as f64).sqrt() * 2.0);
    // singular: samples lie on mean + range(cov) (orthogonal component at round-off level)
    let eig = nalgebra::SymmetricEigen::new(g.cov().clone());
    let (i0, _) = eig
        .eigenvalues
        .iter()
        .enumerate()
        .min_by(|a, b| a.1.total_cmp(b.1))
        .unwrap();
    let null = eig.eigenvectors.column(i0);
    let off = (0..n)
        .map(|i| ((x.row(i).transpose() - g.mean()).dot(&null)).abs())
        .fold(0.0, f64::max);
    assert!(off < 1e-12, "off-support component {off}");
}

#[test]
fn bad_input_is_a_typed_error() {
    let ok_mean = DVector::from_vec(vec![0.0, 0.0]);
    let ok_cov = DMatrix::identity(2, 2);
    let bad = |m: DVector<f64>, c: DMatrix<f64>| Gaussian::new(m, c).unwrap_err();
    assert!(matches!(
        bad(DVector::from_vec(vec![f64::NAN, 0.0]), ok_cov.clone()),
        GaussianError::Linalg(_)
    ));
    assert!(matches!(
        bad(
            ok_mean.clone(),
            DMatrix::from_row_slice(2, 2, &[1.0, 0.0, 0.0, f64::INFINITY])
        ),
        GaussianError::Linalg(_)
    ));
    assert!(matches!(
        bad(
            ok_mean.clone(),
            DMatrix::from_row_slice(2, 2, &[1.0, 0.5, 0.0, 1.0])
        ),
        GaussianError::Linalg(_)
    ));
    assert!(matches!(
        bad(
            ok_mean.clone(),
            DMatrix::from_row_slice(2, 2, &[-1.0, 0.0, 0.0, 1.0])
        ),
        GaussianError::Linalg(_)
    ));
    assert!(matches!(
        bad(ok_mean.clone(), DMatrix::identity(3, 3)),
        GaussianError::DimensionMismatch { .. }
    ));
    assert!(matches!(
        bad(DVector::zeros(0), DMatrix::zeros(0, 0)),
        GaussianError::EmptyDimension
    ));
    assert!(matches!(
        bad(ok_mean.clone(), DMatrix::zeros(2, 3)),
        GaussianError::Linalg(_)
    ));
    let mu = Gaussian::new(ok_mean.clone(), ok_cov.clone()).unwrap();
    let nu3 = Gaussian::new(DVector::zeros(3), DMatrix::identity(3, 3)).unwrap();
    for eps in [0.0, -1.0, f64::NAN, f64::INFINITY] {
        for cost in [Cost::SqEuclidean, Cost::HalfSqEuclidean] {
            let e = EntropicOt::new(&mu, &mu, eps, cost).unwrap_err();
            assert!(matches!(e, GaussianError::InvalidEps(_)));
            assert_eq!(e.class(), ErrorClass::BadInput);
            assert!(ot_eps(&mu, &mu, eps, cost).is_err());
            assert!(sinkhorn_divergence(&mu, &mu, eps, cost).is_err());
            assert!(divergence_parts(&mu, &mu, eps, cost).is_err());
            assert!(sinkflow::gaussian::velocity(&mu, &mu, eps, cost).is_err());
            assert!(sinkflow::gaussian::dissipation(&mu, &mu, eps, cost).is_err());
        }
    }
    // eps that overflows under the half-cost conversion eps' = 2 eps
    assert!(EntropicOt::new(&mu, &mu, 1.5e308, Cost::HalfSqEuclidean).is_err());
    let mism = |e: GaussianError| matches!(e, GaussianError::DimensionMismatch { .. });
    assert!(mism(
        EntropicOt::new(&mu, &nu3, 1.0, Cost::SqEuclidean).unwrap_err()
    ));
    assert!(mism(ot_eps(&mu, &nu3, 1.0, Cost::SqEuclidean).unwrap_err()));
    assert!(mism(
        sinkhorn_divergence(&mu, &nu3, 1.0, Cost::SqEuclidean).unwrap_err()
    ));
    assert!(mism(
        divergence_parts(&mu, &nu3, 1.0, Cost::SqEuclidean).unwrap_err()
    ));
    assert!(mism(bures_wasserstein_sq(&mu, &nu3).unwrap_err()));
    assert!(mism(brenier_map(&mu, &nu3).unwrap_err()));
    assert!(mism(
        sinkflow::gaussian::velocity(&mu, &nu3, 1.0, Cost::SqEuclidean).unwrap_err()
    ));
    assert!(mism(
        sinkflow::gaussian::dissipation(&mu, &nu3, 1.0, Cost::SqEuclidean).unwrap_err()
    ));
    // extreme but valid eps never produce NaN
    for eps in [1e-300, 1e300] {
        let v = ot_eps(&mu, &mu, eps, Cost::SqEuclidean).unwrap();
        let s = sinkhorn_divergence(&mu, &mu, eps, Cost::SqEuclidean).unwrap();
        assert!(v.is_finite() && s.is_finite(), "eps={eps}: {v} {s}");
    }
    // overflow is a numerical error, not a NaN
    let huge = Gaussian::new(DVector::from_vec(vec![1e200, 0.0]), ok_cov).unwrap();
    let e = ot_eps(&huge, &mu, 1.0, Cost::SqEuclidean).unwrap_err();
    assert_eq!(e.class(), ErrorClass::Numerical);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, .. ProptestConfig::default() })]

    /// Invariants on random pairs: S >= 0, S symmetric, S(mu, mu) ~ 0, OT_eps >= W2^2 - ...
    /// (OT_eps >= transport part >= W2^2 since the plan is a coupling), transport >= W2^2.
    #[test]
    fn invariants_hold_on_random_pairs(seed in 0u64..1_000_000, d in 1usize..5, le in -2.0f64..2.0) {
        let eps = 10f64.powf(le);
        let (mu, nu) = random_pair(d, 100.0, seed);
        let s = sinkhorn_divergence(&mu, &nu, eps, Cost::SqEuclidean).unwrap();
        let s2 = sinkhorn_divergence(&nu, &mu, eps, Cost::SqEuclidean).unwrap();
        prop_assert!(s >= 0.0);
        prop_assert!(rel(s, s2, 1e-300) < tol_identity(d, 100.0));
        let ot = EntropicOt::new(&mu, &nu, eps, Cost::SqEuclidean).unwrap();
        let w2 = bures_wasserstein_sq(&mu, &nu).unwrap();
        // any coupling costs at least W2^2; tolerance: cancellation in traces of size ~ 100 d
        prop_assert!(ot.transport_cost() >= w2 - tol_identity(d, 100.0 * d as f64));
        prop_assert!(ot.value() >= ot.transport_cost());
        prop_assert!(sinkhorn_divergence(&mu, &mu, eps, Cost::SqEuclidean).unwrap() <= tol_identity(d, 100.0 * d as f64));
    }
}

//! The exact Gaussian PMA / IPFP case (MATH.md §3, `theory/pma.md` §3): fixed point, Riccati
//! closed forms against the ODE path and Radon's lemma, the O(eps) scaling limit and its
//! first-order correction, rates, and bad input.

use nalgebra::{DMatrix, DVector};
use sinkflow::gaussian::{brenier_map, catalog, EntropicOt, Gaussian};
use sinkflow::pma::gaussian::{iterations_for, scalar_riccati, GaussianPma};
use sinkflow::pma::PmaError;
use sinkflow::rates::{loglog_fit, semilog_fit};
use sinkflow::{Classify, Cost, ErrorClass};

/// max |A_ij - B_ij| / max(1, max |B_ij|).
fn rel(a: &DMatrix<f64>, b: &DMatrix<f64>) -> f64 {
    (a - b).amax() / b.amax().max(1.0)
}

/// A 3-D pair with condition numbers 10 and 5, non-commuting (seeded).
fn pair3() -> (DMatrix<f64>, DMatrix<f64>) {
    let mut rng = catalog::seeded(11);
    (
        catalog::random_spd(3, 10.0, &mut rng),
        catalog::random_spd(3, 5.0, &mut rng),
    )
}

#[test]
fn ipfp_fixed_point_is_the_entropic_map_at_twice_eps() {
    let (s, t) = pair3();
    let pma = GaussianPma::new(&s, &t).unwrap();
    let mu = Gaussian::new(DVector::zeros(3), s.clone()).unwrap();
    let nu = Gaussian::new(DVector::zeros(3), t.clone()).unwrap();
    for eps in [0.05, 0.5, 3.0] {
        let oracle = EntropicOt::new(&mu, &nu, 2.0 * eps, Cost::SqEuclidean).unwrap();
        let k_map = oracle.map_matrix();
        // the closed-form fixed point: same spectral formula with delta = eps/2, so the two agree
        // to the eigensolver's backward error, O(d u cond)
        let p_inf = pma.ipfp_fixed_point(eps).unwrap();
        assert!(
            rel(&p_inf, k_map) < 1e-13,
            "eps {eps}: {}",
            rel(&p_inf, k_map)
        );
        // the recursion converges linearly with factor q; iterate until q^k < 1e-17
        let q = pma.ipfp_linear_factor(eps).unwrap();
        assert!(q > 0.0 && q < 1.0);
        let k = ((-17.0 * 10f64.ln()) / q.ln()).ceil() as usize + 10;
        let (_, p_k) = pma.ipfp_pair(eps, k).unwrap();
        // each step is backward stable: the fixed point is reproduced to O(cond u / (1 - q))
        let tol = 1e-14 / (1.0 - q) * 50.0;
        assert!(
            rel(&p_k, k_map) < tol.max(1e-12),
            "eps {eps}: |P_k - K| = {} (k = {k}, q = {q})",
            rel(&p_k, k_map)
        );
    }
}

#[test]
fn linear_factor_of_the_recursion_is_the_measured_error_ratio() {
    let (s, t) = pair3();
    let pma = GaussianPma::new(&s, &t).unwrap();
    let eps = 0.5;
    let q = pma.ipfp_linear_factor(eps).unwrap();
    let p_inf = pma.ipfp_fixed_point(eps).unwrap();
    let seq = pma.ipfp_sequence(eps, 60).unwrap();
    let errs: Vec<f64> = seq.iter().map(|p| (p - &p_inf).norm()).collect();
    // in the asymptotic regime the error ratio tends to the dominant eigenvalue of dP -> M dP M
    let k = errs.iter().position(|&e| e < 1e-9).unwrap_or(40);
    let ratio = errs[k] / errs[k - 1];
    assert!(
        (ratio - q).abs() < 1e-3 * q + 1e-6,
        "ratio {ratio} vs predicted {q}"
    );
}

#[test]
fn riccati_closed_form_matches_the_ode_path_and_radon() {
    let (s, t) = pair3();
    let pma = GaussianPma::new(&s, &t).unwrap();
    let times: Vec<f64> = (0..=20).map(|i| 0.25 * i as f64).collect();
    let ode = pma.riccati_ode(&times, 1e-13, 1e-15).unwrap();
    for (ti, a_ode) in times.iter().zip(&ode) {
        let a = pma.riccati(*ti).unwrap();
        let radon = pma.riccati_radon(*ti).unwrap();
        // DOP853 at rtol 1e-13 over t <= 5 accumulates a few 1e-13
        assert!(rel(&a, a_ode) < 2e-12, "t {ti}: vs ODE {}", rel(&a, a_ode));
        // two closed forms, both O(cond(U) u) accurate for t <= 5
        assert!(
            rel(&a, &radon) < 1e-11,
            "t {ti}: vs Radon {}",
            rel(&a, &radon)
        );
    }
    // t = 0 is the identity exactly up to round-off
    assert!(rel(&pma.riccati(0.0).unwrap(), &DMatrix::identity(3, 3)) < 1e-14);
}

#[test]
fn riccati_is_stable_for_large_t_and_tends_to_the_brenier_map() {
    let (s, t) = pair3();
    let pma = GaussianPma::new(&s, &t).unwrap();
    let a_inf = pma.brenier();
    let mu = Gaussian::new(DVector::zeros(3), s.clone()).unwrap();
    let nu = Gaussian::new(DVector::zeros(3), t.clone()).unwrap();
    assert!(rel(&a_inf, &brenier_map(&mu, &nu).unwrap()) < 1e-13);
    // far past the overflow of cosh/sinh in Radon's form
    let a = pma.riccati(1e4).unwrap();
    assert!(rel(&a, &a_inf) < 1e-14);
    assert!(matches!(
        pma.riccati_radon(1e4),
        Err(PmaError::NonFiniteResult { .. })
    ));
    // exponential rate 2 sqrt(lambda_min(Q)), fitted on t in [4, 8]
    let ts: Vec<f64> = (0..=16).map(|i| 4.0 + 0.25 * i as f64).collect();
    let errs: Vec<f64> = ts
        .iter()
        .map(|&t| (pma.riccati(t).unwrap() - &a_inf).norm())
        .collect();
    let fit = semilog_fit(&ts, &errs).unwrap();
    let rate = pma.brenier_rate();
    // the next mode decays at least (r_2 - r_1) faster; its weight at t = 4 bends the fit by < 2%
    assert!(
        (-fit.slope - rate).abs() < 0.02 * rate,
        "fitted {} vs {rate}",
        -fit.slope
    );
}

#[test]
fn scalar_tanh_and_coth_branches() {
    // (s, theta): a0 sqrt(s/theta) = 0.707 < 1 (tanh) and 2 > 1 (coth), and = 1 (constant)
    for (s, th) in [(1.0, 2.0), (2.0, 0.5), (3.0, 3.0)] {
        let pma = GaussianPma::new(
            &DMatrix::from_element(1, 1, s),
            &DMatrix::from_element(1, 1, th),
        )
        .unwrap();
        for t in [0.0, 0.3, 1.5, 7.0, 40.0] {
            let a = pma.riccati(t).unwrap()[(0, 0)];
            let exact = scalar_riccati(s, th, 1.0, t);
            assert!(
                (a - exact).abs() < 4.0 * f64::EPSILON * exact.abs().max(1.0),
                "s {s} theta {th} t {t}: {a} vs {exact}"
            );
        }
    }
}

#[test]
fn ipfp_tends_to_pma_at_order_eps_with_the_predicted_correction() {
    let (s, t) = pair3();
    let pma = GaussianPma::new(&s, &t).unwrap();
    let t_end = 1.5;
    let epss: Vec<f64> = (3..9).map(|j| t_end / 2f64.powi(j)).collect();
    let mut gaps = Vec::new();
    let mut w2s = Vec::new();
    let mut corr_err = Vec::new();
    for &eps in &epss {
        let c = pma.compare(eps, t_end).unwrap();
        assert_eq!(c.k as f64, (t_end / eps).round());
        gaps.push((&c.p - &c.a).amax());
        w2s.push(c.w2);
        corr_err.push((&c.correction - &c.correction_limit).amax());
    }
    let fit = loglog_fit(&epss, &gaps).unwrap();
    // first-order scheme: slope 1, the O(eps^2) term bends it by < 0.05 on this range
    assert!((fit.slope - 1.0).abs() < 0.05, "P slope {}", fit.slope);
    let fit = loglog_fit(&epss, &w2s).unwrap();
    assert!((fit.slope - 1.0).abs() < 0.05, "W2 slope {}", fit.slope);
    // the correction converges to its exact limit at O(eps) (next term of the expansion)
    let fit = loglog_fit(&epss, &corr_err).unwrap();
    assert!(
        (fit.slope - 1.0).abs() < 0.05,
        "correction slope {}",
        fit.slope
    );
}

#[test]
fn seed_correction_holds_iff_the_initialisation_is_compatible() {
    let (s, t) = pair3();
    let t_end = 1.5;
    // Theta = 2 Sigma makes Sigma^{-1}/2 = Theta^{-1}: the transient vanishes and the seed's
    // formula is the exact limit (two evaluations of the same matrix: round-off)
    let compatible = GaussianPma::new(&s, &(&s * 2.0)).unwrap();
    for t in [0.0, 0.7, 3.0] {
        let a = compatible.riccati(t).unwrap();
        let exact = compatible.correction_limit(t).unwrap();
        assert!(rel(&exact, &compatible.seed_correction(&a)) < 1e-12);
    }
    // in general the seed's formula misses the transient: (P - A)/eps stays O(1) away from it
    let pma = GaussianPma::new(&s, &t).unwrap();
    let seed_gap = |eps: f64| {
        let c = pma.compare(eps, t_end).unwrap();
        (&c.correction - &c.seed_correction).amax()
    };
    let transient = {
        let a = pma.riccati(t_end).unwrap();
        (pma.correction_limit(t_end).unwrap() - pma.seed_correction(&a)).amax()
    };
    assert!(transient > 0.01, "transient {transient}");
    let (g1, g2) = (seed_gap(t_end / 256.0), seed_gap(t_end / 512.0));
    // the seed gap tends to the transient, not to 0: it changes by O(eps) only
    assert!((g1 - transient).abs() < 0.05 * transient && (g2 - transient).abs() < 0.03 * transient);
    // and at t = 0 the exact limit is 0 (P_0 = A_0)
    assert!(pma.correction_limit(0.0).unwrap().amax() < 1e-14);
}

#[test]
fn iteration_count_rounds_half_up_and_at_least_one() {
    assert_eq!(iterations_for(0.25, 0.1).unwrap(), 3);
    assert_eq!(iterations_for(0.3, 0.1).unwrap(), 3);
    assert_eq!(iterations_for(0.34, 0.1).unwrap(), 3);
    assert_eq!(iterations_for(0.0, 0.1).unwrap(), 1);
    assert_eq!(iterations_for(0.04, 0.1).unwrap(), 1);
    assert_eq!(iterations_for(1.5, 1.5 / 64.0).unwrap(), 64);
    assert!(matches!(
        iterations_for(1.0, 1e-9),
        Err(PmaError::TooManyIterations { .. })
    ));
    assert!(matches!(
        iterations_for(1.0, 0.0),
        Err(PmaError::InvalidEps(_))
    ));
    assert!(matches!(
        iterations_for(f64::NAN, 0.1),
        Err(PmaError::InvalidTime(_))
    ));
}

#[test]
fn bad_input_is_a_typed_error() {
    let id = DMatrix::<f64>::identity(2, 2);
    let cases = [
        DMatrix::from_row_slice(2, 2, &[1.0, 0.0, 0.0, -1.0]),
        DMatrix::from_row_slice(2, 2, &[1.0, 0.0, 0.0, 0.0]),
        DMatrix::from_row_slice(2, 2, &[1.0, 0.5, 0.0, 1.0]),
        DMatrix::from_row_slice(2, 2, &[1.0, f64::NAN, f64::NAN, 1.0]),
        DMatrix::<f64>::identity(3, 3),
        DMatrix::<f64>::zeros(0, 0),
    ];
    for m in &cases {
        let e = GaussianPma::new(&id, m).unwrap_err();
        assert_eq!(e.class(), ErrorClass::BadInput, "{e}");
    }
    let pma = GaussianPma::new(&id, &id).unwrap();
    for eps in [0.0, -1.0, f64::NAN, f64::INFINITY] {
        assert!(pma.compare(eps, 1.0).is_err());
    }
    assert!(matches!(pma.riccati(-1.0), Err(PmaError::InvalidTime(_))));
}

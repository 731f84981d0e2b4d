//! Wasserstein mirror flows of Gaussians (seed 002 examples 1-3, `theory/pma.md` §5) against
//! their closed forms and linearised rates, and the Euclidean mirror examples.

use nalgebra::DMatrix;
use sinkflow::pma::mirror::{mirror_flow, EuclideanMirror, MirrorEnergy, MirrorParams};

fn m1(x: f64) -> DMatrix<f64> {
    DMatrix::from_element(1, 1, x)
}

#[test]
fn example_1_entropy_mirror_flow_is_one_plus_t_squared() {
    let p = MirrorParams {
        t_end: 5.0,
        samples: 10,
        ..MirrorParams::default()
    };
    let tr = mirror_flow(&m1(1.0), &m1(1.0), &MirrorEnergy::Entropy, &p).unwrap();
    for (i, t) in tr.times.iter().enumerate() {
        // DOP853 at rtol 1e-12: relative error a few 1e-12 over t <= 5
        let exact_m = (1.0 + t).powi(2);
        assert!(
            (tr.mirror[i][(0, 0)] - exact_m).abs() < 1e-10 * exact_m,
            "t {t}"
        );
        // the Wasserstein gradient flow of the entropy is the heat flow d/dt rho = Laplacian rho
        assert!((tr.wasserstein[i][(0, 0)] - (1.0 + 2.0 * t)).abs() < 1e-10 * (1.0 + 2.0 * t));
    }
}

#[test]
fn example_2_kl_mirror_rate_is_two_over_eta() {
    // s' = -(2/eta)(s^{3/2} - s^{1/2}) against Fokker-Planck s' = 2(1 - s) = closed form
    for eta in [0.5f64, 2.0] {
        let p = MirrorParams {
            t_end: 6.0 * eta.min(1.0),
            samples: 12,
            ..MirrorParams::default()
        };
        let tr = mirror_flow(
            &m1(eta * eta),
            &m1(eta * eta),
            &MirrorEnergy::Kl(m1(1.0)),
            &p,
        )
        .unwrap();
        for (i, t) in tr.times.iter().enumerate() {
            let fp = 1.0 + (eta * eta - 1.0) * (-2.0 * t).exp();
            assert!((tr.wasserstein[i][(0, 0)] - fp).abs() < 1e-10, "t {t}");
        }
        // late-time ratio of successive gaps: exp(-(2/eta) dt) up to the O(gap) nonlinearity
        let n = tr.times.len();
        let dt = tr.times[1] - tr.times[0];
        let gap = |i: usize| (1.0 - tr.mirror[i][(0, 0)]).abs();
        let rate = (gap(n - 2) / gap(n - 1)).ln() / dt;
        assert!(
            (rate - 2.0 / eta).abs() < 0.02 * 2.0 / eta,
            "eta {eta}: rate {rate}"
        );
    }
}

#[test]
fn example_3_commuting_case_decouples_per_direction() {
    // diagonal Sigma, Theta: each eigen-direction follows the scalar KL mirror ODE
    let sigma = DMatrix::from_diagonal(&nalgebra::DVector::from_vec(vec![1.0, 2.0]));
    let theta = DMatrix::from_diagonal(&nalgebra::DVector::from_vec(vec![0.25, 1.0]));
    let s0 = DMatrix::identity(2, 2);
    let p = MirrorParams {
        t_end: 2.0,
        samples: 4,
        ..MirrorParams::default()
    };
    let tr = mirror_flow(&s0, &theta, &MirrorEnergy::Kl(sigma.clone()), &p).unwrap();
    for i in 0..2 {
        let sc = mirror_flow(
            &m1(1.0),
            &m1(theta[(i, i)]),
            &MirrorEnergy::Kl(m1(sigma[(i, i)])),
            &p,
        )
        .unwrap();
        for k in 0..tr.times.len() {
            assert!((tr.mirror[k][(i, i)] - sc.mirror[k][(0, 0)]).abs() < 1e-10);
            assert!((tr.wasserstein[k][(i, i)] - sc.wasserstein[k][(0, 0)]).abs() < 1e-10);
        }
    }
    assert!(tr.mirror.iter().all(|m| m[(0, 1)].abs() < 1e-12));
}

#[test]
fn euclidean_examples_solve_their_odes() {
    // RK4 with h = 1e-3 on t <= 3 against the closed forms: error O(h^4)
    for (kind, t_end) in [
        (EuclideanMirror::Quadratic, 3.0),
        (EuclideanMirror::Quartic, 3.0),
        (EuclideanMirror::Reciprocal, 3.0),
    ] {
        let h = 1e-3;
        let mut z: f64 = 1.0;
        let n = (t_end / h) as usize;
        for _ in 0..n {
            let k1 = kind.velocity(z);
            let k2 = kind.velocity(z + 0.5 * h * k1);
            let k3 = kind.velocity(z + 0.5 * h * k2);
            let k4 = kind.velocity(z + h * k3);
            z += h / 6.0 * (k1 + 2.0 * k2 + 2.0 * k3 + k4);
        }
        assert!((z - kind.closed_form(t_end)).abs() < 1e-10, "{kind:?}: {z}");
    }
    assert_eq!(EuclideanMirror::Quartic.closed_form(7.0), 0.0);
}

#[test]
fn bad_input() {
    let p = MirrorParams::default();
    assert!(mirror_flow(&m1(-1.0), &m1(1.0), &MirrorEnergy::Entropy, &p).is_err());
    assert!(mirror_flow(&m1(1.0), &m1(0.0), &MirrorEnergy::Entropy, &p).is_err());
    assert!(mirror_flow(
        &m1(1.0),
        &DMatrix::identity(2, 2),
        &MirrorEnergy::Entropy,
        &p
    )
    .is_err());
    let bad = MirrorParams {
        t_end: f64::NAN,
        ..p
    };
    assert!(mirror_flow(&m1(1.0), &m1(1.0), &MirrorEnergy::Entropy, &bad).is_err());
}

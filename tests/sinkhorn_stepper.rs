//! The half-step API: exact reproduction of the solver's iterates, half-step indexing, the
//! one-sided coupling at L = 1, marginal exactness after each half-step.

mod common;

use common::{cloud, max_abs_diff};
use sinkflow::sinkhorn::{solve, solve_warm, HalfStep, Mode, SinkhornParams, Stepper};
use sinkflow::Cost;

#[test]
fn stepper_reproduces_solver() {
    // 2K half-steps from (0, 0) equal the solver's output after K iterations bit for bit
    // (same engine, same arithmetic), in both modes and with a warm start.
    let x = cloud(1, 40, 2, 0.0, true);
    let y = cloud(2, 30, 2, 0.5, true);
    let eps = 0.1;
    for mode in [Mode::Dense, Mode::Streaming] {
        for k in [1usize, 2, 7, 25] {
            // The step API is plain Sinkhorn: it reproduces the plain solver.
            let p = SinkhornParams::new(eps)
                .plain()
                .with_mode(mode)
                .with_max_iters(k)
                .with_tol(1e-300);
            let out = solve(&x, &y, &p).unwrap();
            assert_eq!(out.iterations, k);
            let mut st = Stepper::from_geometry(
                sinkflow::sinkhorn::Geometry::Clouds { x: &x, y: &y },
                &p,
                &vec![0.0; 40],
                &vec![0.0; 30],
            )
            .unwrap();
            let its = st.run(2 * k, true);
            assert_eq!(its.len(), 2 * k);
            assert_eq!(st.f(), &out.f[..]);
            assert_eq!(st.g(), &out.g[..]);
            // the solver's residual is the first-marginal violation of the returned pair,
            // i.e. the by-product of half-step 2k+1
            let v = st.step_f();
            assert_eq!(v, out.marginal_error);
            // and the history entry of iteration j is that of half-step 2j+1
            for (j, h) in out.history.iter().enumerate() {
                if 2 * j + 2 < its.len() {
                    assert_eq!(its[2 * j + 2].violation_before, *h);
                }
            }
        }
    }
    // warm start: the first half-step only uses g0
    let base = solve(&x, &y, &SinkhornParams::new(eps)).unwrap();
    let p = SinkhornParams::new(eps)
        .plain()
        .with_max_iters(3)
        .with_tol(1e-300);
    let warm = solve_warm(&x, &y, &p, &base.f, &base.g).unwrap();
    let mut st = Stepper::new(&x, &y, eps, Cost::SqEuclidean, &base.f, &base.g).unwrap();
    st.run(6, false);
    assert_eq!(st.f(), &warm.f[..]);
    assert_eq!(st.g(), &warm.g[..]);
}

#[test]
fn half_step_indexing_and_marginals() {
    let x = cloud(3, 20, 3, 0.0, true);
    let y = cloud(4, 25, 3, 1.0, false);
    let mut st = Stepper::cold(&x, &y, 0.5, Cost::SqEuclidean).unwrap();
    assert_eq!(st.half_steps(), 0);
    assert_eq!(st.last(), None);
    let its = st.run(5, true);
    let kinds: Vec<HalfStep> = its.iter().map(|i| i.kind).collect();
    assert_eq!(
        kinds,
        vec![
            HalfStep::F,
            HalfStep::G,
            HalfStep::F,
            HalfStep::G,
            HalfStep::F
        ]
    );
    assert_eq!(
        its.iter().map(|i| i.index).collect::<Vec<_>>(),
        vec![1, 2, 3, 4, 5]
    );
    // after an f-update the first marginal is exact (round-off: 1e-15 per entry, 1e-13 in L1)
    let (e1, e2) = st.marginal_errors();
    assert!(e1 < 1e-13 && e2 > 1e-8);
    assert_eq!(st.half_step(), HalfStep::G);
    let (e1, e2) = st.marginal_errors();
    assert!(e2 < 1e-13 && e1 > 1e-12);
    // manual steps and the alternation agree
    st.step_g();
    assert_eq!(st.half_step(), HalfStep::F);
    assert_eq!(st.half_steps(), 8);
}

#[test]
fn one_half_step_is_row_softmax() {
    // From f = g = 0 one f-update gives the row-normalised Gibbs kernel (the one-sided
    // coupling of Deng et al.; seed 003 with L = 1): P_ij / a_i = b_j e^{-C_ij/eps} / sum_k ...
    let x = cloud(5, 6, 2, 0.0, false);
    let y = cloud(6, 4, 2, 0.3, true);
    let eps = 0.7;
    let mut st = Stepper::cold(&x, &y, eps, Cost::HalfSqEuclidean).unwrap();
    st.half_step();
    let q = st.row_normalised_plan();
    for i in 0..6 {
        let w: Vec<f64> = (0..4)
            .map(|j| {
                y.weights()[j] * (-Cost::HalfSqEuclidean.eval(x.point(i), y.point(j)) / eps).exp()
            })
            .collect();
        let s: f64 = w.iter().sum();
        for j in 0..4 {
            // direct softmax vs log-domain plan: both within a few ulp of the exact value
            assert!((q[(i, j)] - w[j] / s).abs() < 1e-14);
        }
    }
    // the plan's rows sum to a (first marginal exact after an f-update)
    let p = st.plan();
    for i in 0..6 {
        assert!((p.row(i).sum() - x.weights()[i]).abs() < 1e-15);
    }
    // the row-normalised plan does not depend on f: a G step changes it, an F step does not
    let before = st.row_normalised_plan();
    let g = st.g().to_vec();
    st.set_potentials(&[3.0; 6], &g).unwrap();
    let after = st.row_normalised_plan();
    assert!(max_abs_diff(before.as_slice(), after.as_slice()) < 1e-15);
}

#[test]
fn stepper_converges_like_solver() {
    let x = cloud(7, 30, 2, 0.0, true);
    let y = cloud(8, 30, 2, 0.2, true);
    let mut st = Stepper::cold(&x, &y, 1.0, Cost::SqEuclidean).unwrap();
    let out = solve(&x, &y, &SinkhornParams::new(1.0).plain()).unwrap();
    st.run(2 * out.iterations, false);
    assert_eq!(st.f(), &out.f[..]);
    assert!((st.dual_value() - out.ot).abs() <= 1e-15 * out.ot.abs());
}

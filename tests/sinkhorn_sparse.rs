//! The sparse (truncated-kernel) mode against the dense/streaming solve, the certificate
//! `truncation_bound`, bad input, the Auto rule, and its interplay with the other parameters
//! (theory/sinkhorn.md §12).

use rand::SeedableRng;
use rand_distr::{Distribution, Normal};
use sinkflow::sinkhorn::{
    marginals, solve, solve_matrix, solve_sparse, solve_symmetric, solve_warm, sparse_auto_rule,
    CostMatrix, EpsScaling, Mode, PointCloud, SinkhornError, SinkhornOutput, SinkhornParams,
    SparseParams, Termination, DEFAULT_TRUNCATION, SPARSE_AUTO_EPS_RATIO, SPARSE_AUTO_MIN_PAIRS,
};
use sinkflow::Cost;

/// The pair: X ~ N(0, I_2), Y ~ N((1,1), 0.5 I_2), uniform weights.
fn gaussian_pair(seed: u64, n: usize) -> (PointCloud, PointCloud) {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let nd = Normal::new(0.0, 1.0).unwrap();
    let x: Vec<f64> = (0..2 * n).map(|_| nd.sample(&mut rng)).collect();
    let y: Vec<f64> = (0..2 * n)
        .map(|_| 1.0 + 0.5f64.sqrt() * nd.sample(&mut rng))
        .collect();
    (
        PointCloud::from_flat(x, 2, None, false).unwrap(),
        PointCloud::from_flat(y, 2, None, false).unwrap(),
    )
}

/// L1 violations of both marginals of the *full* plan of the returned potentials (every
/// pair, dropped or not), and its total mass.
fn full_plan_errors(out: &SinkhornOutput, x: &PointCloud, y: &PointCloud) -> (f64, f64, f64) {
    let (r, c) = marginals(out, x, y);
    let e1 = r.iter().zip(x.weights()).map(|(p, q)| (p - q).abs()).sum();
    let e2 = c.iter().zip(y.weights()).map(|(p, q)| (p - q).abs()).sum();
    (e1, e2, c.iter().sum())
}

/// Squared diameter of the joint bounding box (the cost spread S of theory/sinkhorn.md §3b).
fn spread(x: &PointCloud, y: &PointCloud) -> f64 {
    (0..x.dim())
        .map(|k| {
            let v = (0..x.len())
                .map(|i| x.point(i)[k])
                .chain((0..y.len()).map(|j| y.point(j)[k]));
            let (lo, hi) = v.fold((f64::INFINITY, f64::NEG_INFINITY), |(l, h), t| {
                (l.min(t), h.max(t))
            });
            (hi - lo) * (hi - lo)
        })
        .sum()
}

/// Round-off of an L1 marginal recomputed from n*m plan entries: each of the n + m sums of
/// at most max(n, m) terms of total mass <= 1 is exact to (max(n, m) + 2) u relative; the
/// bound below is 4 (n + m) u, a safe multiple of it.
fn roundoff(n: usize, m: usize) -> f64 {
    4.0 * (n + m) as f64 * f64::EPSILON
}

#[test]
fn sparse_agrees_with_streaming_within_the_bound() {
    let n = 500;
    let (x, y) = gaussian_pair(11, n);
    let s = spread(&x, &y);
    // (eps, relative truncation bound)
    for &(eps, trunc) in &[(0.2, DEFAULT_TRUNCATION), (0.1, 1e-10)] {
        let tol = 1e-9;
        let dense = solve(
            &x,
            &y,
            &SinkhornParams::new(eps)
                .with_tol(tol)
                .with_mode(Mode::Streaming)
                .with_eps_scaling()
                .with_max_iters(100_000),
        )
        .unwrap();
        let sp = solve_sparse(
            &x,
            &y,
            &SinkhornParams::new(eps)
                .with_tol(tol)
                .with_mode(Mode::Sparse)
                .with_max_iters(20_000),
            &SparseParams { truncation: trunc },
        )
        .unwrap();
        assert!(dense.converged && sp.converged, "eps {eps}");
        assert_eq!(sp.mode, Mode::Sparse);
        assert_eq!(dense.truncation_bound, None);
        let b = sp.truncation_bound.unwrap();
        assert!((0.0..=trunc).contains(&b), "bound {b}");
        assert!(sp.marginal_error <= tol);
        // The full plan of the sparse potentials: second marginal off by at most the dropped
        // mass B, first by the reported error plus B (theory/sinkhorn.md §12, (12.2)).
        let (e1, e2, _) = full_plan_errors(&sp, &x, &y);
        let ro = roundoff(n, n);
        assert!(e2 <= b + ro, "eps {eps}: column error {e2} vs bound {b}");
        assert!(
            e1 <= sp.marginal_error + b + ro,
            "eps {eps}: row error {e1}"
        );
        // OT_eps: |ot_sparse - ot_dense| <= (err_s + err_d + 2B) S + eps B (§12, (12.4)),
        // plus round-off of the two dot products (1e-15 relative, 100x margin).
        let dot_ro = 1e-13 * dense.ot.abs();
        let bound_ot = (sp.marginal_error + dense.marginal_error + 2.0 * b) * s + eps * b + dot_ro;
        let diff = (sp.ot - dense.ot).abs();
        assert!(diff <= bound_ot, "eps {eps}: |dOT| {diff} > {bound_ot}");
        // Potentials, after fixing the additive gauge (f + c, g - c) by the weighted mean of f:
        // the same bound divided by the smallest weight (a marginal violation d at one atom
        // moves its potential by about eps d / a_i), i.e. eps n (err_s + err_d + 2B).
        let lam: f64 =
            sp.f.iter()
                .zip(&dense.f)
                .zip(x.weights())
                .map(|((p, q), w)| w * (p - q))
                .sum();
        let df =
            sp.f.iter()
                .zip(&dense.f)
                .map(|(p, q)| (p - q - lam).abs())
                .fold(0.0, f64::max);
        let dg =
            sp.g.iter()
                .zip(&dense.g)
                .map(|(p, q)| (p - q + lam).abs())
                .fold(0.0, f64::max);
        let pot_tol =
            eps * n as f64 * (sp.marginal_error + dense.marginal_error + 2.0 * b) + 1e-12 * s;
        println!(
            "eps {eps}: iters sparse {} dense {}, |dOT| {diff:.3e} (bound {bound_ot:.3e}), |df| {df:.3e} |dg| {dg:.3e} (tol {pot_tol:.3e}), B {b:.3e}",
            sp.iterations, dense.iterations
        );
        assert!(
            df <= pot_tol && dg <= pot_tol,
            "eps {eps}: potentials {df} {dg}"
        );
    }
}

#[test]
fn truncation_bound_certifies_the_dropped_mass() {
    // A loose truncation (1e-5) drops a measurable mass: the full plan of the returned pair
    // has total mass 1 + (dropped mass), since its kept part has exact column sums.
    let n = 500;
    let (x, y) = gaussian_pair(5, n);
    for &eps in &[0.1, 0.05] {
        let sparse = SparseParams { truncation: 1e-5 };
        let out = solve_sparse(
            &x,
            &y,
            &SinkhornParams::new(eps)
                .with_tol(1e-10)
                .with_mode(Mode::Sparse),
            &sparse,
        )
        .unwrap();
        assert!(out.converged);
        let b = out.truncation_bound.unwrap();
        assert!(b <= 1e-5, "bound {b}");
        let (_, e2, mass) = full_plan_errors(&out, &x, &y);
        let dropped = mass - 1.0;
        let ro = roundoff(n, n);
        println!("eps {eps}: dropped {dropped:.3e}, bound {b:.3e}, column error {e2:.3e}");
        assert!(dropped >= -ro, "dropped mass {dropped}");
        assert!(dropped <= b + ro, "dropped {dropped} > bound {b}");
        assert!(e2 <= b + ro);
    }
}

#[test]
fn half_cost_and_weights() {
    // OT^half_eps = OT^sq_{2 eps} / 2 (theory/sinkhorn.md §1), in the sparse mode; weighted
    // clouds with zero weights get finite potentials.
    let (x, y) = gaussian_pair(3, 300);
    let p = SinkhornParams::new(0.05)
        .with_tol(1e-11)
        .with_mode(Mode::Sparse);
    let half = solve(&x, &y, &p.with_cost(Cost::HalfSqEuclidean)).unwrap();
    let sq = solve(&x, &y, &SinkhornParams { eps: 0.1, ..p }).unwrap();
    // Same scaled problem: the dual values agree to (err_1 + err_2 + 2B) S (§12).
    let s = spread(&x, &y);
    let tol_ot = (half.marginal_error + sq.marginal_error) * s + 1e-13;
    assert!(
        (half.ot - 0.5 * sq.ot).abs() <= tol_ot,
        "{} vs {}",
        half.ot,
        0.5 * sq.ot
    );
    let mut w: Vec<f64> = (0..300).map(|i| (i % 5) as f64).collect();
    let tot: f64 = w.iter().sum();
    w.iter_mut().for_each(|t| *t /= tot);
    let xw = x.with_weights(w.clone(), false).unwrap();
    let yw = y.with_weights(w, false).unwrap();
    let out = solve(&xw, &yw, &p).unwrap();
    assert!(out.converged);
    assert!(out.f.iter().chain(&out.g).all(|t| t.is_finite()));
    let dense = solve(
        &xw,
        &yw,
        &SinkhornParams::new(0.05)
            .with_tol(1e-11)
            .with_mode(Mode::Streaming)
            .with_eps_scaling(),
    )
    .unwrap();
    let tol_ot = (out.marginal_error + dense.marginal_error + 2.0 * out.truncation_bound.unwrap())
        * s
        + 1e-13;
    assert!((out.ot - dense.ot).abs() <= tol_ot);
}

#[test]
fn interaction_with_other_parameters() {
    let (x, y) = gaussian_pair(8, 300);
    let p = SinkhornParams::new(0.05)
        .with_tol(1e-10)
        .with_mode(Mode::Sparse);
    // Non-convergence is reported with its residual, never hidden.
    let short = solve(&x, &y, &p.with_max_iters(1)).unwrap();
    assert!(!short.converged);
    assert_eq!(short.termination, Termination::MaxIterations);
    assert!(short.marginal_error > 1e-10);
    assert_eq!(short.history.len(), short.iterations);
    assert_eq!(short.history.last().copied(), Some(short.marginal_error));
    match solve(&x, &y, &p.with_max_iters(1).strict(true)) {
        Err(SinkhornError::NotConverged { marginal_error, .. }) => {
            assert_eq!(marginal_error, short.marginal_error)
        }
        other => panic!("expected NotConverged, got {other:?}"),
    }
    // The eps-scaling schedule of the parameters is the one the sparse mode follows: more
    // iterations per stage, more annealing iterations.
    let full = solve(&x, &y, &p).unwrap();
    let slow = solve(
        &x,
        &y,
        &SinkhornParams {
            eps_scaling: Some(EpsScaling {
                iters_per_stage: 6,
                ..Default::default()
            }),
            ..p
        },
    )
    .unwrap();
    assert!(full.converged && slow.converged);
    let s = spread(&x, &y);
    assert!((slow.ot - full.ot).abs() <= (slow.marginal_error + full.marginal_error) * s + 1e-13);
    // A warm start from the converged pair stops at once and returns the same value.
    let warm = solve_warm(&x, &y, &p, &full.f, &full.g).unwrap();
    assert!(warm.converged);
    assert!(warm.iterations <= 2, "{} iterations", warm.iterations);
    assert!((warm.ot - full.ot).abs() <= (warm.marginal_error + full.marginal_error) * s + 1e-13);
    // The interrupt hook stops the sparse loop.
    let r = sinkflow::interrupt::with_check(|| true, || solve(&x, &y, &p));
    assert!(matches!(r, Err(SinkhornError::Interrupted { .. })), "{r:?}");
}

#[test]
fn bad_input_is_refused() {
    let (x, y) = gaussian_pair(2, 50);
    let p = SinkhornParams::new(0.01).with_mode(Mode::Sparse);
    for t in [0.0, -1e-16, f64::NAN, 0.5, f64::INFINITY] {
        let r = solve_sparse(&x, &y, &p, &SparseParams { truncation: t });
        assert!(
            matches!(
                r,
                Err(SinkhornError::InvalidParameter {
                    name: "truncation",
                    ..
                })
            ),
            "{t}: {r:?}"
        );
    }
    assert!(matches!(
        solve_sparse(&x, &y, &SinkhornParams::new(-1.0), &SparseParams::default()),
        Err(SinkhornError::InvalidEps { .. })
    ));
    let z = PointCloud::from_flat(vec![0.0; 9], 3, None, false).unwrap();
    assert!(matches!(
        solve_sparse(&x, &z, &p, &SparseParams::default()),
        Err(SinkhornError::DimensionMismatch { .. })
    ));
    // Solvers without a sparse path say so instead of silently running another mode.
    assert!(matches!(
        solve_symmetric(&x, &p),
        Err(SinkhornError::InvalidParameter { name: "mode", .. })
    ));
    let c = CostMatrix::new(
        &nalgebra::DMatrix::from_element(2, 2, 1.0),
        None,
        None,
        false,
    )
    .unwrap();
    assert!(matches!(
        solve_matrix(&c, &p),
        Err(SinkhornError::InvalidParameter { name: "mode", .. })
    ));
    assert_eq!("sparse".parse::<Mode>(), Ok(Mode::Sparse));
    assert_eq!(Mode::Sparse.name(), "sparse");
}

#[test]
fn auto_picks_sparse_only_where_it_pays() {
    // The rule (theory/sinkhorn.md §12): d <= 3, N M >= 2^24, eps <= 2e-3 kappa sigma^2.
    let big = 100_000usize * 100_000;
    let scale = 2.0; // kappa sigma^2 of X ~ N(0, I_2)
    assert!(sparse_auto_rule(2, big, 1e-3, scale));
    assert!(sparse_auto_rule(3, SPARSE_AUTO_MIN_PAIRS, 1e-3, scale));
    // Never near the data scale, whatever N.
    for eps in [0.1, 0.01, SPARSE_AUTO_EPS_RATIO * scale * 1.01] {
        assert!(!sparse_auto_rule(2, usize::MAX, eps, scale), "eps {eps}");
    }
    // Not for small problems, nor in high dimension.
    assert!(!sparse_auto_rule(2, SPARSE_AUTO_MIN_PAIRS - 1, 1e-4, scale));
    assert!(!sparse_auto_rule(4, big, 1e-4, scale));
    // A small problem under Auto runs dense or streaming.
    let (x, y) = gaussian_pair(4, 300);
    let out = solve(&x, &y, &SinkhornParams::new(1e-3).with_eps_scaling()).unwrap();
    assert_ne!(out.mode, Mode::Sparse);
    assert_eq!(out.truncation_bound, None);
}

//! The finite-space flow (seed 000, MATH.md §2, theory/finite_flow.md): conditioning check,
//! b-map, RKHS identities, the LCP solvers, and the invariants of the resolvent to round-off.

use sinkflow::finite::catalog::{dirac_near, uniform, Potential};
use sinkflow::finite::{
    b_map, cone_test, h_inner, initial_coefficients, kernel_condition, largest_safe_eps, mu_from_a,
    resolvent_flow, resolvent_matrix, FiniteError, FiniteSpace, FlowParams, Kernel, KernelParams,
    LcpMethod, LcpParams, LcpSolver, Resolvent,
};
use sinkflow::Cost;

/// Unit round-off.
const U: f64 = f64::EPSILON / 2.0;

/// Deterministic pseudo-random numbers in [0, 1).
fn rand_vec(n: usize, seed: u64) -> Vec<f64> {
    let mut s = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    (0..n)
        .map(|_| {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (s >> 11) as f64 / (1u64 << 53) as f64
        })
        .collect()
}

fn double_well_setup(n: usize, eps: f64) -> (FiniteSpace, Kernel, Vec<f64>) {
    let space = FiniteSpace::grid_1d(-2.0, 2.0, n, Cost::SqEuclidean).unwrap();
    let kernel = Kernel::new(&space, eps, &KernelParams::default()).unwrap();
    let v = Potential::DoubleWell.on(&space);
    (space, kernel, v)
}

#[test]
fn conditioning_refusal_names_the_largest_safe_eps() {
    // 100 points on [0,1]: delta^2 = 1/99^2; the law cond ~ exp(pi^2 s/4)/2 gives s* = 9.6 at
    // the default limit 1e10, i.e. eps* ~ 9.8e-4 (MATH.md: eps <= 1.2e-3 for cond <= 1e12).
    let space = FiniteSpace::grid_1d(0.0, 1.0, 100, Cost::SqEuclidean).unwrap();
    let err = Kernel::new(&space, 0.04, &KernelParams::default()).unwrap_err();
    let FiniteError::IllConditioned { safe_eps, .. } = &err else {
        panic!("expected a refusal, got {err}");
    };
    let law = 4.0 / std::f64::consts::PI.powi(2) * (2e10f64).ln() * space.min_dist2();
    assert!(
        (0.5 * law..2.0 * law).contains(safe_eps),
        "safe eps {safe_eps} vs law {law}"
    );
    assert!(err.to_string().contains(&format!("{safe_eps:.6e}")));
    assert!(Kernel::new(&space, *safe_eps, &KernelParams::default()).is_ok());
    assert!(Kernel::new(&space, 1.05 * safe_eps, &KernelParams::default()).is_err());
    // the estimate against the measured values of MATH.md (N = 100: 5.9, 69, 1.1e5 at s = 1, 2, 5)
    for (s, measured) in [(1.0, 5.9), (2.0, 69.0), (5.0, 1.1e5)] {
        let c = kernel_condition(&space, s * space.min_dist2());
        assert!(
            (0.5 * measured..2.0 * measured).contains(&c),
            "s = {s}: estimate {c} vs measured {measured}"
        );
    }
    let _ = largest_safe_eps;
}

#[test]
fn bad_spaces_are_refused() {
    assert!(matches!(
        FiniteSpace::new(vec![0.0, 1.0, 0.0], 1, Cost::SqEuclidean),
        Err(FiniteError::DuplicatePoints { i: 0, j: 2 })
    ));
    assert!(matches!(
        FiniteSpace::new(vec![0.5], 1, Cost::SqEuclidean),
        Err(FiniteError::TooFewPoints { n: 1 })
    ));
    assert!(FiniteSpace::new(vec![0.0, f64::NAN], 1, Cost::SqEuclidean).is_err());
    let space = FiniteSpace::grid_1d(0.0, 1.0, 5, Cost::SqEuclidean).unwrap();
    assert!(Kernel::new(&space, 0.0, &KernelParams::default()).is_err());
    assert!(Kernel::new(&space, f64::NAN, &KernelParams::default()).is_err());
    assert!(b_map(
        &space,
        0.1,
        &[0.5, 0.5, -0.1, 0.0, 0.1],
        &Default::default()
    )
    .is_err());
    assert!(b_map(&space, 0.1, &[0.5, 0.5], &Default::default()).is_err());
    let kernel = Kernel::new(&space, 0.1, &KernelParams::default()).unwrap();
    for ratio in [f64::NAN, -0.1, 1.5] {
        let p = LcpParams {
            change_ratio: ratio,
            ..LcpParams::default()
        };
        assert!(matches!(
            Resolvent::new(&kernel, &[0.0; 5], 0.1, p),
            Err(FiniteError::InvalidParameter {
                name: "lcp.change_ratio",
                ..
            })
        ));
    }
}

#[test]
fn b_map_round_trip_and_rkhs_identities() {
    let (space, kernel, _) = double_well_setup(20, 0.15); // s = 0.15/(4/19)^2 = 3.4
    let mut mu = rand_vec(20, 3);
    mu.iter_mut().for_each(|x| *x += 0.05);
    let s: f64 = mu.iter().sum();
    mu.iter_mut().for_each(|x| *x /= s);
    let bm = b_map(&space, kernel.eps(), &mu, &Default::default()).unwrap();
    // b = K (mu / b): relative error of b is the solve's residual (<= 1e-13), times cond for a
    let kb = kernel.apply(&bm.a);
    let rel_b = kb
        .iter()
        .zip(&bm.b)
        .map(|(x, y)| ((x - y) / y).abs())
        .fold(0.0, f64::max);
    assert!(rel_b < 1e-12, "b = K a fails: {rel_b:e}");
    let back = mu_from_a(&kernel, &bm.a);
    let err = back
        .iter()
        .zip(&mu)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f64::max);
    assert!(err < 1e-13, "mu = a . K a fails: {err:e}");
    // ||B(mu)||_H^2 = sum mu = 1, via a^T K a and via the Cholesky solve
    let nk = kernel.quad(&bm.a, &bm.a);
    let nh = h_inner(&kernel, &bm.b, &bm.b);
    assert!((nk - 1.0).abs() < 1e-13, "a^T K a = {nk}");
    // the Cholesky route carries cond(K) u relative error (cond ~ 1e5 here)
    assert!(
        (nh - 1.0).abs() < 10.0 * kernel.cond() * U,
        "b^T K^-1 b = {nh}"
    );
    // cone test: B(mu) is inside, K(a - 2 e_0) with a large negative coefficient is not
    assert!(cone_test(&kernel, &bm.b, 1e-8).0);
    let mut a_out = bm.a.clone();
    a_out[3] = -0.5;
    assert!(!cone_test(&kernel, &kernel.apply(&a_out), 1e-8).0);
    // homogeneity: B(2 mu) = sqrt(2) B(mu)
    let mu2: Vec<f64> = mu.iter().map(|x| 2.0 * x).collect();
    let b2 = b_map(&space, kernel.eps(), &mu2, &Default::default()).unwrap();
    for (x, y) in b2.b.iter().zip(&bm.b) {
        assert!((x / y - 2f64.sqrt()).abs() < 1e-13);
    }
    // a Dirac: b = K e_i exactly (f = c(., x_i)), a = e_i
    let d = dirac_near(&space, &[0.9]).unwrap();
    let bd = b_map(&space, kernel.eps(), &d, &Default::default()).unwrap();
    let i = d.iter().position(|&x| x == 1.0).unwrap();
    assert!((bd.a[i] - 1.0).abs() < 1e-13);
    for j in 0..20 {
        assert!((bd.b[j] - kernel.get(j, i)).abs() <= 1e-13 * kernel.get(j, i) + 1e-300);
    }
    // a Dirac far from most points at small eps (41 points on [-2, 2], x0 = 1.5, eps = 0.01:
    // C/eps up to 1225): f = c(., x0) to the rounding of one transform, f(x0) = 0, a = e_i.
    // Iterated on all points, the stop rule could not pass: |T(f) - f|/eps stays at one ulp of
    // C over eps = 1.8e-13 > 1e-13 (theory/finite_flow.md §2).
    let far = FiniteSpace::grid_1d(-2.0, 2.0, 41, Cost::SqEuclidean).unwrap();
    let d = dirac_near(&far, &[1.5]).unwrap();
    let i = d.iter().position(|&x| x == 1.0).unwrap();
    let bd = b_map(&far, 0.01, &d, &Default::default()).unwrap();
    assert_eq!(bd.f[i], 0.0);
    assert_eq!(bd.a[i], 1.0);
    for j in 0..41 {
        let c = far.c(j, i);
        assert!((bd.f[j] - c).abs() <= 4.0 * U * c, "f at {j}");
        if j != i {
            assert_eq!(bd.a[j], 0.0);
        }
    }
}

#[test]
fn lcp_methods_agree_on_resolvent_matrices() {
    // A resolvent matrix with a large skew part (h = 8, 2h/eps = 40) and right-hand sides with mixed
    // signs, so the solution has a partial support.
    let (_, kernel, v) = double_well_setup(14, 0.4);
    let m = resolvent_matrix(&kernel, &v, 8.0);
    let params = LcpParams::default();
    for seed in 0..6 {
        let b: Vec<f64> = rand_vec(14, 100 + seed).iter().map(|x| x - 0.3).collect();
        let mut sols = Vec::new();
        for method in [
            LcpMethod::FischerBurmeister,
            LcpMethod::Lemke,
            LcpMethod::InteriorPoint,
            LcpMethod::ActiveSet,
        ] {
            let mut s = LcpSolver::new(m.clone());
            let sol = match s.solve_by(&b, method, &params) {
                Ok(sol) => sol,
                // the plain active set may cycle on a strongly non-symmetric P-matrix (it is
                // only guaranteed for M-matrices): that is why the chain has fallbacks
                Err(_) if method == LcpMethod::ActiveSet => continue,
                Err(f) => panic!(
                    "{method:?} failed on seed {seed}: residual {:e}",
                    f.residual
                ),
            };
            assert!(
                sol.residual <= 1e-12,
                "{method:?}: residual {:e}",
                sol.residual
            );
            assert!(sol.a.iter().all(|&x| x >= 0.0));
            sols.push(sol);
        }
        // one solution (P-matrix): the polished supports coincide and the values agree to the
        // solve's round-off (cond(M_SS) u)
        for s in &sols[1..] {
            assert_eq!(s.support, sols[0].support, "seed {seed}");
            for (x, y) in s.a.iter().zip(&sols[0].a) {
                assert!(
                    (x - y).abs() <= 1e-9 * (1.0 + y.abs()),
                    "seed {seed}: {x} vs {y}"
                );
            }
        }
        // the full solver chain gives the same
        let mut s = LcpSolver::new(m.clone());
        let sol = s.solve(&b, Some(&[0, 1]), &params).unwrap();
        assert_eq!(sol.support, sols[0].support);
    }
}

/// At a strongly skew step (2h/eps = 1250 on a 60-point grid at s = 5, the regime of the full
/// profile's 1000-point grid) the active set cycles on some steps; the interior-point fallback
/// solves them, and the accepted steps keep the resolvent's exact properties: KKT residual within
/// the tolerance, mu >= 0, the mass identity to round-off, the excess energy non-increasing.
#[test]
fn interior_point_fallback_solves_strongly_skew_steps() {
    let space = FiniteSpace::grid_1d(-2.0, 2.0, 60, Cost::SqEuclidean).unwrap();
    let eps = 5.0 * space.min_dist2();
    let kernel = Kernel::new(&space, eps, &KernelParams::default()).unwrap();
    let v = Potential::DoubleWell.on(&space);
    let mu0 = sinkflow::finite::catalog::gaussian_bump(&space, &[0.5], 0.4).unwrap();
    let params = FlowParams {
        dt: 625.0 * eps,
        steps: 20,
        lcp: LcpParams::default(),
        bmap: Default::default(),
    };
    let out = resolvent_flow(&space, &kernel, &v, &mu0, &params).unwrap();
    assert!(
        out.method.contains(&Some(LcpMethod::InteriorPoint)),
        "no step needed the interior point: {:?}",
        out.method
    );
    let vmin = v.iter().cloned().fold(f64::INFINITY, f64::min);
    let excess = |m: &[f64]| m.iter().zip(&v).map(|(x, y)| x * (y - vmin)).sum::<f64>();
    for k in 0..params.steps {
        assert!(out.kkt_residual[k + 1] <= 1e-9);
        assert!(out.mu[k + 1].iter().all(|&x| x >= 0.0));
        let (a0, a1) = (&out.a[k], &out.a[k + 1]);
        let d: Vec<f64> = a1.iter().zip(a0).map(|(x, y)| x - y).collect();
        let defect = kernel.quad(a1, a1) - (kernel.quad(a0, a0) - kernel.quad(&d, &d));
        // the tolerance of finite-invariants (N-term quadratic forms of mostly one sign)
        assert!(
            defect.abs() <= 1e-14 * kernel.quad(a0, a0),
            "step {k}: {defect:e}"
        );
        assert!(excess(&out.mu[k + 1]) <= excess(&out.mu[k]) * (1.0 + 1e-14));
    }
}

/// Runs a flow and returns it with its kernel.
fn run_flow(
    n: usize,
    eps: f64,
    dt: f64,
    steps: usize,
    mu0: &[f64],
) -> (Kernel, Vec<f64>, sinkflow::finite::FlowOutput) {
    let (space, kernel, v) = double_well_setup(n, eps);
    let p = FlowParams {
        dt,
        steps,
        lcp: LcpParams::default(),
        bmap: Default::default(),
    };
    let out = resolvent_flow(&space, &kernel, &v, mu0, &p).unwrap();
    (kernel, v, out)
}

#[test]
fn flow_invariants_to_round_off() {
    let n = 16;
    let space = FiniteSpace::grid_1d(-2.0, 2.0, n, Cost::SqEuclidean).unwrap();
    for mu0 in [uniform(&space), dirac_near(&space, &[1.0]).unwrap()] {
        let (kernel, v, out) = run_flow(n, 0.5, 0.05, 200, &mu0);
        let vmin = v.iter().cloned().fold(f64::INFINITY, f64::min);
        let mut worst_id: f64 = 0.0;
        let mut worst_e: f64 = 0.0;
        for k in 0..200 {
            let (a0, a1) = (&out.a[k], &out.a[k + 1]);
            assert!(
                out.mu[k + 1].iter().all(|&x| x >= 0.0),
                "mu >= 0 at step {k}"
            );
            assert!(out.kkt_residual[k + 1] <= 1e-9);
            // mass identity ||b1||^2 = ||b0||^2 - ||b1 - b0||^2 (H norms as a^T K a)
            let d: Vec<f64> = a1.iter().zip(a0).map(|(x, y)| x - y).collect();
            let lhs = kernel.quad(a1, a1);
            let rhs = kernel.quad(a0, a0) - kernel.quad(&d, &d);
            worst_id = worst_id.max((lhs - rhs).abs() / kernel.quad(a0, a0));
            // sum (V - min V) mu_k non-increasing
            let e = |m: &[f64]| m.iter().zip(&v).map(|(x, y)| x * (y - vmin)).sum::<f64>();
            worst_e = worst_e.max(e(&out.mu[k + 1]) - e(&out.mu[k]));
        }
        // identity exact up to the complementarity round-off a^T w and the N-term quadratic
        // forms: a few N u (MATH.md measured 7e-16)
        assert!(
            worst_id <= 4.0 * n as f64 * U,
            "mass identity off by {worst_id:e}"
        );
        assert!(
            worst_e <= 4.0 * n as f64 * U * 4.0,
            "energy increased by {worst_e:e}"
        );
        // the mass does decrease (the resolvent is not mass-conserving)
        assert!(out.mass[200] < out.mass[0]);
        assert!(out.initial_error < 1e-13);
    }
}

#[test]
fn resolvent_is_firmly_non_expansive() {
    let (_, kernel, v) = double_well_setup(14, 0.4);
    for (h, seed) in [(0.01, 1u64), (0.2, 2), (5.0, 3)] {
        let mut j = Resolvent::new(&kernel, &v, h, LcpParams::default()).unwrap();
        for pair in 0..5u64 {
            // two points of the cone, with zeros in their coefficients
            let a1: Vec<f64> = rand_vec(14, seed * 100 + pair)
                .iter()
                .map(|x| (x - 0.3).max(0.0))
                .collect();
            let a2: Vec<f64> = rand_vec(14, seed * 100 + pair + 50)
                .iter()
                .map(|x| (x - 0.3).max(0.0))
                .collect();
            let (b1, b2) = (kernel.apply(&a1), kernel.apply(&a2));
            let j1 = j.apply(&b1).unwrap().a;
            let j2 = j.apply(&b2).unwrap().a;
            let dj: Vec<f64> = j1.iter().zip(&j2).map(|(x, y)| x - y).collect();
            let db: Vec<f64> = b1.iter().zip(&b2).map(|(x, y)| x - y).collect();
            // ||J b1 - J b2||_H^2 = dj^T K dj ; <J b1 - J b2, b1 - b2>_H = dj^T (b1 - b2)
            let lhs = kernel.quad(&dj, &dj);
            let rhs: f64 = dj.iter().zip(&db).map(|(x, y)| x * y).sum();
            let scale = kernel.quad(&a1, &a1) + kernel.quad(&a2, &a2);
            assert!(
                lhs <= rhs + 8.0 * 14.0 * U * scale,
                "h = {h}: {lhs:e} > {rhs:e}"
            );
        }
    }
}

#[test]
fn factorisations_are_reused_across_steps() {
    let n = 30;
    let space = FiniteSpace::grid_1d(-2.0, 2.0, n, Cost::SqEuclidean).unwrap();
    let (_, _, out) = run_flow(n, 0.1, 0.02, 100, &uniform(&space)); // s = 5.3
    let changes = (1..out.a.len())
        .filter(|&k| {
            let s = |a: &[f64]| a.iter().map(|&x| x > 0.0).collect::<Vec<_>>();
            s(&out.a[k]) != s(&out.a[k - 1])
        })
        .count();
    // a new LU only when the support changes (one for the first support, plus one per change,
    // allowing one intermediate active-set guess per change)
    assert!(
        out.factorisations <= 1 + 2 * changes,
        "{} factorisations for {changes} support changes in 100 steps",
        out.factorisations
    );
    // and the test is not vacuous: most steps keep their support
    assert!(changes < 50, "{changes} support changes in 100 steps");
}

#[test]
fn initial_coefficients_checks_mu0() {
    let (space, kernel, _) = double_well_setup(10, 0.4);
    let mut mu = uniform(&space);
    mu[0] += 1e-9;
    assert!(matches!(
        initial_coefficients(&space, &kernel, &mu, &Default::default()),
        Err(FiniteError::NotNormalised { .. })
    ));
    mu[0] = -0.1;
    assert!(initial_coefficients(&space, &kernel, &mu, &Default::default()).is_err());
}

#[test]
fn upwind_wasserstein_flow_conserves_mass_and_stays_in_its_well() {
    use sinkflow::finite::wasserstein_upwind_1d;
    let space = FiniteSpace::grid_1d(-2.0, 2.0, 40, Cost::SqEuclidean).unwrap();
    let x: Vec<f64> = (0..40).map(|i| space.point(i)[0]).collect();
    let v = Potential::DoubleWell.on(&space);
    let mu0 = sinkflow::finite::catalog::gaussian_bump(&space, &[0.8], 0.3).unwrap();
    let out = wasserstein_upwind_1d(&x, &v, &mu0, &[1.0, 50.0]).unwrap();
    for m in &out.mu {
        // explicit upwind under CFL 1/2: non-negative, mass conserved to round-off (N u per step)
        assert!(m.iter().all(|&y| y >= 0.0));
        assert!((m.iter().sum::<f64>() - 1.0).abs() < 1e-12);
    }
    // mass starting right of the barrier's top stays in the right (upper) well, and the
    // energy decreases towards the value of the right well's minimum
    let left: f64 = out.mu[1]
        .iter()
        .zip(&x)
        .filter(|(_, x)| **x < 0.0)
        .map(|(m, _)| m)
        .sum();
    let e = |m: &[f64]| m.iter().zip(&v).map(|(a, b)| a * b).sum::<f64>();
    assert!(e(&out.mu[1]) < e(&out.mu[0]));
    assert!(left < 0.05, "left-well mass {left}");
    assert!(wasserstein_upwind_1d(&[0.0, 0.0], &[0.0, 0.0], &[0.5, 0.5], &[1.0]).is_err());
}

#[test]
fn reflected_resolvent_is_second_order_and_keeps_the_mass_off_the_boundary() {
    use sinkflow::finite::catalog::gaussian_bump;
    use sinkflow::finite::reflected_flow;
    let space = FiniteSpace::grid_1d(0.0, 1.0, 10, Cost::SqEuclidean).unwrap();
    let kernel = Kernel::new(&space, 0.05, &KernelParams::default()).unwrap();
    let v: Vec<f64> = (0..10).map(|i| (space.point(i)[0] - 0.3).powi(2)).collect();
    let mu0 = gaussian_bump(&space, &[0.6], 0.25).unwrap();
    let run = |t_end: f64, m: usize| {
        let p = FlowParams {
            dt: t_end / m as f64,
            steps: m,
            lcp: LcpParams::default(),
            bmap: Default::default(),
        };
        reflected_flow(&space, &kernel, &v, &mu0, &p).unwrap()
    };
    // short run, full support throughout: 2 J_{h/2} - I is the Cayley transform of the skew
    // A, unitary in H, so the mass is conserved to round-off (N-term sums: a few N u)
    let short = run(0.02, 8);
    assert!(
        short.a.iter().all(|a| a.iter().all(|&x| x > 0.0)),
        "support not full"
    );
    for m in &short.mass {
        assert!((m - short.mass[0]).abs() < 40.0 * U * 10.0, "mass {m}");
    }
    // order 2: errors against h = T/512 at h = T/16 and T/32 (ratio 4 = 2^2; 3.5 allows the
    // O(h^3) term and the reference's own error)
    let norm = |m: &[f64]| {
        let s: f64 = m.iter().sum();
        m.iter().map(|x| x / s).collect::<Vec<f64>>()
    };
    let reference = run(0.1, 512);
    let err = |m: usize| {
        let o = run(0.1, m);
        let l1 = |a: &[f64], b: &[f64]| a.iter().zip(b).map(|(x, y)| (x - y).abs()).sum::<f64>();
        (0..=m)
            .map(|k| l1(&norm(&o.mu[k]), &norm(&reference.mu[k * 512 / m])))
            .fold(0.0, f64::max)
    };
    let ratio = err(16) / err(32);
    assert!(ratio > 3.5, "error ratio {ratio}");
}

#[test]
fn double_double_path_agrees_with_double_where_both_are_safe() {
    use sinkflow::finite::catalog::gaussian_bump;
    use sinkflow::finite::{resolvent_flow_dd, ExtendedKernel, DD_MAX_CONDITION};
    let (space, kernel, v) = double_well_setup(24, 0.3); // s = 9.0, cond ~ 1e9
    let mu0 = gaussian_bump(&space, &[0.5], 0.4).unwrap();
    let p = FlowParams {
        dt: 0.05,
        steps: 20,
        lcp: LcpParams::default(),
        bmap: Default::default(),
    };
    let o = resolvent_flow(&space, &kernel, &v, &mu0, &p).unwrap();
    let kd = ExtendedKernel::new(&space, 0.3, DD_MAX_CONDITION).unwrap();
    // the two condition estimates agree (same algorithm, more digits)
    assert!((kd.cond() / kernel.cond() - 1.0).abs() < 1e-3);
    let od = resolvent_flow_dd(&space, &kd, &v, &mu0, &p).unwrap();
    for k in 0..=20 {
        // forward error of the double path: cond(K) u relative, mu <= 1
        let d = o.mu[k]
            .iter()
            .zip(&od.mu[k])
            .map(|(a, b)| (a - b).abs())
            .fold(0.0, f64::max);
        assert!(d <= kernel.cond() * U, "step {k}: {d:e}");
        assert!(od.kkt_residual[k] < 1e-28);
    }
    // the reflected scheme: the same forward-error bound against its double version
    let r = sinkflow::finite::reflected_flow(&space, &kernel, &v, &mu0, &p).unwrap();
    let rd = sinkflow::finite::reflected_flow_dd(&space, &kd, &v, &mu0, &p).unwrap();
    for k in 0..=20 {
        let d = r.mu[k]
            .iter()
            .zip(&rd.mu[k])
            .map(|(a, b)| (a - b).abs())
            .fold(0.0, f64::max);
        assert!(d <= kernel.cond() * U, "reflected step {k}: {d:e}");
        assert!(rd.kkt_residual[k] < 1e-28);
    }
}

#[test]
fn upwind_2d_is_the_trinomial_walk_for_a_linear_potential_and_traps_in_local_minima() {
    use sinkflow::finite::{wasserstein_upwind_2d, FiniteError};
    // V = -a x - b y on a uniform grid (step d): every face velocity is u = (a, b) > 0, every
    // interior cell has outgoing rate r = (a + b)/d, the scheme's step is dt = d/(2(a + b)),
    // and one explicit step moves a cell's mass right with probability p = a dt/d, up with
    // q = b dt/d, keeps 1 - p - q. From a Dirac at the corner, after n steps (n < grid size, so
    // the far boundary is never reached) the masses are the trinomial law
    // n!/(i! j! (n-i-j)!) p^i q^j (1-p-q)^(n-i-j), exactly (up to round-off).
    let (nx, ny, d) = (14usize, 12usize, 0.1);
    let xs: Vec<f64> = (0..nx).map(|i| i as f64 * d).collect();
    let ys: Vec<f64> = (0..ny).map(|j| j as f64 * d).collect();
    let (a, b) = (1.0, 0.5);
    let v: Vec<f64> = (0..nx * ny)
        .map(|k| -a * xs[k % nx] - b * ys[k / nx])
        .collect();
    let mut mu0 = vec![0.0; nx * ny];
    mu0[0] = 1.0;
    let dt = d / (2.0 * (a + b));
    let n_steps = 9usize;
    let out = wasserstein_upwind_2d(&xs, &ys, &v, &mu0, &[n_steps as f64 * dt]).unwrap();
    assert!(
        out.steps == n_steps || out.steps == n_steps + 1,
        "{}",
        out.steps
    );
    let (p, q) = (a * dt / d, b * dt / d);
    let fact = |k: usize| (1..=k).map(|x| x as f64).product::<f64>();
    let mut err = 0.0f64;
    for j in 0..ny {
        for i in 0..nx {
            let exact = if i + j <= n_steps {
                fact(n_steps) / (fact(i) * fact(j) * fact(n_steps - i - j))
                    * p.powi(i as i32)
                    * q.powi(j as i32)
                    * (1.0 - p - q).powi((n_steps - i - j) as i32)
            } else {
                0.0
            };
            err = err.max((out.mu[0][j * nx + i] - exact).abs());
        }
    }
    // n steps of sums of at most 5 terms of size <= 1: a few n u
    assert!(err < 1e-14, "trinomial law violated by {err:.2e}");

    // tilted multi-well on [-1, 1]²: mass conserved, masses >= 0, energy non-increasing, and a
    // Dirac at a discrete local minimum that is not the global one never moves
    let m = 15usize;
    let g: Vec<f64> = (0..m)
        .map(|i| -1.0 + 2.0 * i as f64 / (m - 1) as f64)
        .collect();
    let space = FiniteSpace::grid_2d((-1.0, 1.0, m), (-1.0, 1.0, m), Cost::SqEuclidean).unwrap();
    let v = Potential::TiltedMultiwell.on(&space);
    let bump = sinkflow::finite::catalog::gaussian_bump(&space, &[0.3, 0.4], 0.4).unwrap();
    let times = [0.1, 0.5, 2.0, 10.0];
    let out = wasserstein_upwind_2d(&g, &g, &v, &bump, &times).unwrap();
    let e = |m: &[f64]| m.iter().zip(&v).map(|(a, b)| a * b).sum::<f64>();
    let mut e_prev = e(&bump);
    for mu in &out.mu {
        assert!(mu.iter().all(|&y| y >= 0.0));
        assert!((mu.iter().sum::<f64>() - 1.0).abs() < 1e-13);
        assert!(e(mu) <= e_prev + 1e-15, "energy increased");
        e_prev = e(mu);
    }
    // the discrete local minimum at (1, 0) (V = -0.7 > min V = -1.3 at (-1, 0))
    let k = (m / 2) * m + (m - 1);
    assert_eq!(space.point(k), &[1.0, 0.0]);
    let mut dirac = vec![0.0; m * m];
    dirac[k] = 1.0;
    let out = wasserstein_upwind_2d(&g, &g, &v, &dirac, &[50.0]).unwrap();
    assert_eq!(out.mu[0][k], 1.0);

    // bad input: typed errors
    assert!(matches!(
        wasserstein_upwind_2d(&g, &g, &v[1..], &bump, &[1.0]),
        Err(FiniteError::LengthMismatch { .. })
    ));
    let mut bad = g.clone();
    bad[3] = bad[2];
    assert!(wasserstein_upwind_2d(&bad, &g, &v, &bump, &[1.0]).is_err());
    assert!(wasserstein_upwind_2d(&g, &g, &v, &bump, &[-1.0]).is_err());
    assert!(wasserstein_upwind_2d(&g, &g, &v, &bump, &[1e12]).is_err());
    let mut nan = v.clone();
    nan[5] = f64::NAN;
    assert!(wasserstein_upwind_2d(&g, &g, &nan, &bump, &[1.0]).is_err());
}

/// A cancellation request ([`sinkflow::interrupt`], how the Python bindings deliver Ctrl-C)
/// stops the resolvent flow with a typed error naming the step; without one nothing changes.
#[test]
fn an_interrupt_request_stops_the_flow_with_a_typed_error() {
    let (space, kernel, v) = double_well_setup(20, 0.5);
    let mu0 = uniform(&space);
    let p = FlowParams {
        dt: 0.05,
        steps: 5,
        lcp: LcpParams::default(),
        bmap: Default::default(),
    };
    let err =
        sinkflow::interrupt::with_check(|| true, || resolvent_flow(&space, &kernel, &v, &mu0, &p))
            .unwrap_err();
    // the request is seen first by the engine's solve of the b-map, or by the first step
    assert!(
        matches!(
            err,
            FiniteError::Interrupted { step: 1 }
                | FiniteError::Engine(sinkflow::sinkhorn::SinkhornError::Interrupted { .. })
        ),
        "{err}"
    );
    let a =
        sinkflow::interrupt::with_check(|| false, || resolvent_flow(&space, &kernel, &v, &mu0, &p))
            .unwrap();
    let b = resolvent_flow(&space, &kernel, &v, &mu0, &p).unwrap();
    assert_eq!(a.mu, b.mu);
}

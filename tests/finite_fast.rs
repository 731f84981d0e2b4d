//! The complement path of the resolvent LCP (theory/finite_flow.md §8b): supports that miss at
//! most half of the indices are solved through $W=M^{-1}$ and an LU of the small block $W_{RR}$.
//! It must give the solution of the direct path (LU of $M_{SS}$) to the accuracy both paths
//! guarantee, with the same supports, on small 1-D and 2-D grids.

use faer::Mat;
use sinkflow::finite::catalog::{gaussian_bump, uniform, Potential};
use sinkflow::finite::{
    resolvent_flow, resolvent_matrix, FiniteSpace, FlowOutput, FlowParams, Kernel, KernelParams,
    LcpParams, LcpSolver,
};
use sinkflow::Cost;

/// Residual threshold on the rows of the support after refinement (lcp.rs: a direct solve is
/// refined once when its rows of S exceed 1e-13 relative; bordered and complement solves are
/// refined until they are at 1e-15). The looser of the two bounds both paths.
const ROW_RESIDUAL: f64 = 1e-13;

/// $\kappa=\sigma_{\max}(M)/\lambda_{\min}(K)$ bounds $\mathrm{cond}_2(M_{SS})$ for every support $S$:
/// $x^\top M_{SS}x=x^\top K_{SS}x\ge\lambda_{\min}(K)\lVert x\rVert^2$ gives
/// $\lVert M_{SS}^{-1}\rVert_2\le1/\lambda_{\min}(K_{SS})\le1/\lambda_{\min}(K)$ (interlacing), and
/// $\lVert M_{SS}\rVert_2\le\lVert M\rVert_2$.
fn kappa(kernel: &Kernel, m: &Mat<f64>) -> f64 {
    let lmin = kernel
        .matrix()
        .self_adjoint_eigenvalues(faer::Side::Lower)
        .unwrap()
        .into_iter()
        .fold(f64::INFINITY, f64::min);
    let smax = m
        .singular_values()
        .unwrap()
        .into_iter()
        .fold(0.0f64, f64::max);
    smax / lmin
}

fn params(complement_min: usize) -> LcpParams {
    LcpParams {
        complement_min,
        ..LcpParams::default()
    }
}

fn flow(
    space: &FiniteSpace,
    kernel: &Kernel,
    v: &[f64],
    mu0: &[f64],
    dt: f64,
    steps: usize,
    complement_min: usize,
) -> FlowOutput {
    let p = FlowParams {
        dt,
        steps,
        lcp: params(complement_min),
        bmap: Default::default(),
    };
    resolvent_flow(space, kernel, v, mu0, &p).unwrap()
}

fn support(a: &[f64]) -> Vec<usize> {
    (0..a.len()).filter(|&i| a[i] > 0.0).collect()
}

fn max_abs(x: &[f64]) -> f64 {
    x.iter().fold(0.0f64, |m, t| m.max(t.abs()))
}

/// Runs the flow with the complement path forced (`complement_min = 0`) and disabled, checks the
/// same supports at every step, and checks every step of the fast run against a direct solve
/// of the same right-hand side $b_k=Ka_k$ of the fast run (so errors of earlier steps do not
/// enter): $\lVert a^{\rm fast}-a^{\rm direct}\rVert_\infty\le2\sqrt N\kappa\cdot$`ROW_RESIDUAL`$\cdot\lVert a\rVert_\infty$
/// (two solves with relative residual at most `ROW_RESIDUAL` on the same support, forward error
/// at most $\kappa$ times the residual in 2-norm, $\sqrt N$ between the norms).
fn check_agreement(
    space: &FiniteSpace,
    s: f64,
    v: &[f64],
    mu0: &[f64],
    dt: f64,
    steps: usize,
) -> (f64, f64, usize) {
    let eps = s * space.min_dist2();
    let kernel = Kernel::new(space, eps, &KernelParams::default()).unwrap();
    let fast = flow(space, &kernel, v, mu0, dt, steps, 0);
    let direct = flow(space, &kernel, v, mu0, dt, steps, usize::MAX);
    for k in 0..=steps {
        assert_eq!(
            support(&fast.a[k]),
            support(&direct.a[k]),
            "support of step {k}"
        );
    }
    let m = resolvent_matrix(&kernel, v, dt);
    let kap = kappa(&kernel, &m);
    let n = space.len();
    let mut worst = 0.0f64;
    let mut fast_solver = LcpSolver::new(m.clone());
    let mut used = 0;
    for k in 0..steps {
        let b = kernel.apply(&fast.a[k]);
        let warm = support(&fast.a[k]);
        let x = fast_solver.solve(&b, Some(&warm), &params(0)).unwrap();
        let y = LcpSolver::new(m.clone())
            .solve(&b, Some(&warm), &params(usize::MAX))
            .unwrap();
        assert_eq!(x.support, y.support, "step {k}");
        let err =
            x.a.iter()
                .zip(&y.a)
                .map(|(p, q)| (p - q).abs())
                .fold(0.0, f64::max)
                / max_abs(&y.a);
        worst = worst.max(err);
        if 2 * x.support.len() >= n {
            used += 1;
        }
    }
    let tol = 2.0 * (n as f64).sqrt() * kap * ROW_RESIDUAL;
    assert!(
        worst <= tol,
        "fast vs direct {worst:e} > {tol:e} (kappa {kap:e})"
    );
    assert!(
        fast_solver.complement_factorisations() > 0,
        "the complement path was not used"
    );
    (worst, tol, used)
}

#[test]
fn complement_path_matches_the_direct_path_on_a_2d_grid() {
    // 10 x 10 grid of [-1, 1]^2, s = 3 (cond(K) ~ 1e5), tilted multi-well, uniform start: the
    // support shrinks from all 100 points, so both sides of the |S| >= N/2 switch are crossed
    let space = FiniteSpace::grid_2d((-1.0, 1.0, 10), (-1.0, 1.0, 10), Cost::SqEuclidean).unwrap();
    let v = Potential::TiltedMultiwell.on(&space);
    let (worst, tol, used) = check_agreement(&space, 3.0, &v, &uniform(&space), 0.02, 60);
    // from uniform the 2-D support falls below N/2 after a few steps (7 at h = 0.02); the later
    // steps exercise the direct side of the switch
    assert!(
        used >= 5,
        "only {used} steps went through the complement path"
    );
    eprintln!("2-D: max relative difference {worst:e} (bound {tol:e}), {used} complement steps");
}

#[test]
fn complement_path_matches_the_direct_path_on_a_1d_grid() {
    // 60 points of [-2, 2], double well, a bump start, s = 5 (cond(K) ~ 1e5)
    let space = FiniteSpace::grid_1d(-2.0, 2.0, 60, Cost::SqEuclidean).unwrap();
    let v = Potential::DoubleWell.on(&space);
    let mu0 = gaussian_bump(&space, &[0.5], 0.6).unwrap();
    let (worst, tol, used) = check_agreement(&space, 5.0, &v, &mu0, 0.01, 60);
    assert!(
        used > 10,
        "only {used} steps went through the complement path"
    );
    eprintln!("1-D: max relative difference {worst:e} (bound {tol:e}), {used} complement steps");
}

/// The active set's round-off rule (theory/finite_flow.md §8c): an index joins the support only
/// for a violation $w_i<-Nu\cdot$scale, so an accepted solution has scale-free KKT residual at
/// most $Nu$ (not the exact fixed point of the unthresholded iteration, whose last support
/// changes are decided by rounding errors). The LCP has one solution ($M$ is a P-matrix), so
/// Lemke's pivoting (then polished) must give the same coefficients within the forward-error
/// bound $2\sqrt N\kappa\,r\,\lVert a\rVert_\infty$, $r$ the larger residual. On a 14 × 14 grid at
/// s = 3 from a uniform start the supports are scattered sets of grid points, the case where the
/// rule matters.
#[test]
fn roundoff_rule_gives_the_lcp_solution_of_lemke() {
    let space = FiniteSpace::grid_2d((-1.0, 1.0, 14), (-1.0, 1.0, 14), Cost::SqEuclidean).unwrap();
    let n = space.len();
    let v = Potential::TiltedMultiwell.on(&space);
    let kernel = Kernel::new(&space, 3.0 * space.min_dist2(), &KernelParams::default()).unwrap();
    let out = flow(&space, &kernel, &v, &uniform(&space), 0.02, 40, usize::MAX);
    let nu = n as f64 * 0.5 * f64::EPSILON;
    assert!(
        out.kkt_residual.iter().all(|&r| r <= nu),
        "largest residual {:e} > N u = {nu:e}",
        out.kkt_residual.iter().cloned().fold(0.0, f64::max)
    );
    let m = resolvent_matrix(&kernel, &v, 0.02);
    let kap = kappa(&kernel, &m);
    let mut worst = 0.0f64;
    for k in (0..40).step_by(4) {
        let b = kernel.apply(&out.a[k]);
        let y = LcpSolver::new(m.clone())
            .solve_by(&b, sinkflow::finite::LcpMethod::Lemke, &params(usize::MAX))
            .unwrap();
        let r = y.residual.max(out.kkt_residual[k + 1]);
        let err = out.a[k + 1]
            .iter()
            .zip(&y.a)
            .map(|(p, q)| (p - q).abs())
            .fold(0.0, f64::max);
        let bound = 2.0 * (n as f64).sqrt() * kap * r.max(f64::EPSILON) * max_abs(&y.a);
        assert!(err <= bound, "step {k}: {err:e} > {bound:e}");
        worst = worst.max(err / max_abs(&y.a));
    }
    eprintln!("round-off rule vs Lemke: max relative difference {worst:e}");
}

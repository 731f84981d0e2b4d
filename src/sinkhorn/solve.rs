//! The alternating log-domain Sinkhorn solver for $\mathrm{OT}_\varepsilon(\mu,\nu)$.
//!
//! Iteration $k=1,2,\dots$ (two half-steps, starting with the $f$-update):
//! $$f_k=T(g_{k-1},\nu),\qquad g_k=T(f_k,\mu),\qquad
//! T(h,\rho)(x)=-\varepsilon\log\sum_j\rho_j\,e^{(h_j-c(x,y_j))/\varepsilon}.$$
//! After the $g$-update the second marginal of $P_{ij}=a_ib_je^{(f_i+g_j-C_{ij})/\varepsilon}$ is
//! exact and the first is $(P\mathbb 1)_i=a_i\,e^{(f_{k,i}-f_{k+1,i})/\varepsilon}$, so its
//! L1 violation $\sum_ia_i\lvert\operatorname{expm1}((f_{k,i}-f_{k+1,i})/\varepsilon)\rvert$
//! comes out of the next $f$-update for free. It is checked at every iteration; the pair
//! returned is $(f_k,g_k)$, the one whose violation is reported (the extra half-step
//! $f_{k+1}$ is discarded).

use super::engine::{Engine, Side};
use super::error::{check_finite, check_len, SinkhornError};
use super::kernel::ExpKernel;
use super::measure::{CostMatrix, Geometry, PointCloud};
use super::params::{Mode, SinkhornParams, Termination};
use super::plan;
use crate::Cost;

/// The result of [`solve`].
///
/// `ot` is the dual value $\int f\,d\mu+\int g\,d\nu$ at the returned pair. Because
/// $g=T(f,\mu)$ exactly, the dual's mass term vanishes and `ot` is a certified lower bound of
/// $\mathrm{OT}_\varepsilon$ (weak duality), with error $O(\varepsilon\cdot$`marginal_error`$)$.
/// `primal` is $\langle P,C\rangle+\varepsilon\,\mathrm{KL}(P\mid a\otimes b)$ of the plan
/// built from the returned potentials (generalised KL $\sum P\log\frac{P}{ab}-\sum P+1$);
/// `primal - ot` is the duality-gap diagnostic, $\to0$ at convergence.
#[derive(Clone, Debug, PartialEq)]
pub struct SinkhornOutput {
    /// $f$ on the support of $\mu$.
    pub f: Vec<f64>,
    /// $g$ on the support of $\nu$.
    pub g: Vec<f64>,
    /// Dual value $\sum_ia_if_i+\sum_jb_jg_j$ (this is $\mathrm{OT}_\varepsilon$).
    pub ot: f64,
    /// $\langle P,C\rangle+\varepsilon\,\mathrm{KL}(P\mid a\otimes b)$ of the final plan.
    pub primal: f64,
    /// $\langle P,C\rangle$ (what POT's `sinkhorn2` returns).
    pub transport_cost: f64,
    /// Iterations done (annealing ones included), one iteration = two half-steps.
    pub iterations: usize,
    /// $\lVert P\mathbb 1-a\rVert_1$ of the returned pair (its second marginal is exact).
    pub marginal_error: f64,
    /// `marginal_error <= tol` at the target eps.
    pub converged: bool,
    /// Why the iteration stopped.
    pub termination: Termination,
    /// `marginal_error` after every iteration (each at its stage's eps), if recorded.
    pub history: Vec<f64>,
    /// The mode actually used (never `Auto`).
    pub mode: Mode,
    /// The (target) regularisation.
    pub eps: f64,
    /// The cost.
    pub cost: Cost,
}

impl SinkhornOutput {
    /// Entropic map $T_{\mu,\nu}(x_i)=\int y\,d\pi(y\mid x_i)$ at every point of $\mu$
    /// (row-major `n × d`). `x`, `y` must be the clouds that were solved.
    pub fn map_x(&self, x: &PointCloud, y: &PointCloud) -> Vec<f64> {
        plan::barycentric_maps(&self.g, y, x, self.eps, self.cost)
    }
    /// Entropic map $T_{\mu,\nu}(z)$ at a new point `z` (uses $g$ and $\nu$).
    pub fn map_at(&self, y: &PointCloud, z: &[f64]) -> Vec<f64> {
        plan::barycentric_map(&self.g, y, z, self.eps, self.cost)
    }
    /// $f(z)=T(g,\nu)(z)$, the potential extended to a new point.
    pub fn f_at(&self, y: &PointCloud, z: &[f64]) -> f64 {
        plan::c_transform(&self.g, y, z, self.eps, self.cost)
    }
    /// $g(z)=T(f,\mu)(z)$, the potential extended to a new point.
    pub fn g_at(&self, x: &PointCloud, z: &[f64]) -> f64 {
        plan::c_transform(&self.f, x, z, self.eps, self.cost)
    }
    /// `primal - ot`, the duality gap (a convergence diagnostic).
    pub fn duality_gap(&self) -> f64 {
        self.primal - self.ot
    }
}

/// Solve $\mathrm{OT}_\varepsilon(\mu,\nu)$ for two point clouds from $f=g=0$.
///
/// # Errors
/// Bad parameters or mismatched dimensions ([`SinkhornError`], class bad input); in strict
/// mode, [`SinkhornError::NotConverged`].
pub fn solve(
    x: &PointCloud,
    y: &PointCloud,
    params: &SinkhornParams,
) -> Result<SinkhornOutput, SinkhornError> {
    solve_geometry(Geometry::Clouds { x, y }, params, None)
}

/// [`solve`] warm-started from potentials $(f_0,g_0)$ (e.g. those of a nearby problem).
///
/// The first half-step is $f_1=T(g_0,\nu)$, so only $g_0$ enters the iteration; $f_0$ is
/// validated (length, finiteness) so that a mismatched pair is caught.
pub fn solve_warm(
    x: &PointCloud,
    y: &PointCloud,
    params: &SinkhornParams,
    f0: &[f64],
    g0: &[f64],
) -> Result<SinkhornOutput, SinkhornError> {
    solve_geometry(Geometry::Clouds { x, y }, params, Some((f0, g0)))
}

/// Solve the problem of a given cost matrix (`params.cost` is ignored).
pub fn solve_matrix(
    c: &CostMatrix,
    params: &SinkhornParams,
) -> Result<SinkhornOutput, SinkhornError> {
    solve_geometry(Geometry::Matrix(c), params, None)
}

/// The general entry point: clouds or a cost matrix, optional warm start $(f_0,g_0)$.
pub fn solve_geometry(
    geom: Geometry<'_>,
    params: &SinkhornParams,
    warm: Option<(&[f64], &[f64])>,
) -> Result<SinkhornOutput, SinkhornError> {
    solve_with_exp_kernel(geom, params, warm, ExpKernel::default())
}

/// [`solve_geometry`] with an explicit choice of exponential in the kernel (the default is
/// [`ExpKernel::Fast`]; [`ExpKernel::Std`] is the libm reference path used to validate it).
pub fn solve_with_exp_kernel(
    geom: Geometry<'_>,
    params: &SinkhornParams,
    warm: Option<(&[f64], &[f64])>,
    exp: ExpKernel,
) -> Result<SinkhornOutput, SinkhornError> {
    params.validate()?;
    let (n, m) = geom.shape();
    let g0 = match warm {
        Some((f0, g0)) => {
            check_len("length of f0 vs number of points of x", n, f0.len())?;
            check_len("length of g0 vs number of points of y", m, g0.len())?;
            check_finite(f0, "f0")?;
            check_finite(g0, "g0")?;
            g0.to_vec()
        }
        None => vec![0.0; m],
    };
    let engine = Engine::new(geom, params.cost, params.mode, exp)?;
    let scale = cost_scale(geom, params.cost);
    run(&engine, params, g0, scale)
}

/// The cost scale $\varepsilon_0$ that starts eps-scaling.
pub(crate) fn cost_scale(geom: Geometry<'_>, cost: Cost) -> f64 {
    match geom {
        Geometry::Clouds { x, y } => cost.factor() * x.bbox_sq_diameter(y),
        Geometry::Matrix(c) => c.range(),
    }
}

/// Target eps of iteration `k` (0-based) under a schedule of `stages` × `per_stage`.
#[inline]
pub(crate) fn eps_at(k: usize, stages: &[f64], per_stage: usize, eps: f64) -> f64 {
    stages.get(k / per_stage.max(1)).copied().unwrap_or(eps)
}

/// The stopping logic shared by the alternating and the symmetric solvers: record the residual
/// of iteration `k` (1-based), fail on a non-finite residual, and say whether to stop
/// (`Some(converged)`) or continue (`None`). Convergence is only declared after the annealing
/// iterations of eps-scaling.
pub(crate) fn stop_rule(
    k: usize,
    residual: f64,
    annealing: usize,
    total_max: usize,
    params: &SinkhornParams,
    history: &mut Vec<f64>,
) -> Result<Option<bool>, SinkhornError> {
    if params.record_history {
        history.push(residual);
    }
    if !residual.is_finite() {
        return Err(SinkhornError::Breakdown { iteration: k });
    }
    if k > annealing && residual <= params.tol {
        return Ok(Some(true));
    }
    if k >= total_max {
        return Ok(Some(false));
    }
    Ok(None)
}

fn run(
    engine: &Engine<'_>,
    params: &SinkhornParams,
    mut g: Vec<f64>,
    scale: f64,
) -> Result<SinkhornOutput, SinkhornError> {
    let eps = params.eps;
    let (stages, per_stage) = match &params.eps_scaling {
        Some(s) => (s.stages(eps, scale), s.iters_per_stage),
        None => (Vec::new(), 1),
    };
    let annealing = stages.len() * per_stage;
    let total_max = annealing + params.max_iters;
    let a = engine.a;
    let mut f = vec![0.0; engine.n];
    let mut lse = vec![0.0; engine.n];
    engine.transform(Side::Rows, &g, eps_at(0, &stages, per_stage, eps), &mut f);
    let mut history = Vec::new();
    let mut k = 0;
    let mut omega = params.over_relaxation;
    let (mut last_err, mut increases) = (f64::INFINITY, 0usize);
    let (err, converged) = loop {
        let e = eps_at(k, &stages, per_stage, eps);
        engine.transform(Side::Cols, &f, e, &mut g);
        engine.lse(Side::Rows, &g, e, &mut lse);
        let inv_e = 1.0 / e;
        let mut err = 0.0;
        for ((&ai, &fi), &li) in a.iter().zip(&f).zip(&lse) {
            err += ai * (fi * inv_e + li).exp_m1().abs();
        }
        k += 1;
        if let Some(converged) = stop_rule(k, err, annealing, total_max, params, &mut history)? {
            break (err, converged);
        }
        // Over-relaxation (params.over_relaxation), only at the target eps, with its safeguard.
        increases = if err > last_err { increases + 1 } else { 0 };
        last_err = err;
        if increases >= 5 {
            omega = None;
        }
        match omega {
            Some(w) if k > annealing => {
                for (fi, &li) in f.iter_mut().zip(&lse) {
                    *fi = (1.0 - w) * *fi + w * (li * -e);
                }
            }
            _ => {
                for (fi, &li) in f.iter_mut().zip(&lse) {
                    *fi = li * -e;
                }
            }
        }
    };
    if !converged && params.strict {
        return Err(SinkhornError::NotConverged {
            iterations: k,
            marginal_error: err,
        });
    }
    let ot = dot(engine.a, &f) + dot(engine.b, &g);
    let obj = plan::objectives_engine(engine, &f, &g, eps);
    Ok(SinkhornOutput {
        f,
        g,
        ot,
        primal: obj.primal,
        transport_cost: obj.transport_cost,
        iterations: k,
        marginal_error: err,
        converged,
        termination: if converged {
            Termination::Converged
        } else {
            Termination::MaxIterations
        },
        history,
        mode: engine.mode,
        eps,
        cost: params.cost,
    })
}

/// $\sum_i w_iv_i$, in index order.
#[inline]
pub(crate) fn dot(w: &[f64], v: &[f64]) -> f64 {
    w.iter().zip(v).map(|(a, b)| a * b).sum()
}

//! The symmetric problem $\mathrm{OT}_\varepsilon(\mu,\mu)$ by the averaged fixed-point
//! iteration (Feydy et al. 2019, §3; MATH.md §2).
//!
//! The symmetric potential solves $f=T(f,\mu)$ and is unique (no additive freedom). The
//! alternating iteration converges slowly for small $\varepsilon$ and leaves $(f,g)$
//! determined only up to $(f+c,g-c)$; the averaged update
//! $$f\leftarrow\tfrac12\bigl(f+T(f,\mu)\bigr)$$
//! contracts with factor $\le\tfrac12$ near the fixed point for every $\varepsilon$. Stop on
//! $\max_i\lvert T(f,\mu)_i-f_i\rvert/\varepsilon\le$ `tol` ($e^{-f/\varepsilon}$ carries the
//! error of $f$ divided by $\varepsilon$). Then $\mathrm{OT}_\varepsilon(\mu,\mu)=2\int f\,d\mu$.
//!
//! Points of zero weight do not enter $T$: the maximum runs over the support of $\mu$, and $f$
//! at the other points is returned as $T(f,\mu)$ there, the exact extension of the potential.
//! (Over all points the stop rule could not pass at small $\varepsilon$: at a zero-weight point
//! far from the mass, $T(f,\mu)$ and $f$ are of the size of $C$ and differ by at least an ulp of
//! it, e.g. $2^{-49}/0.01=1.8\cdot10^{-13}$ for $C$ in $[8,16)$, $\varepsilon=0.01$.)

use super::engine::dot;
use super::engine::{Engine, Side};
use super::error::{check_finite, check_len, SinkhornError};
use super::kernel::ExpKernel;
use super::measure::PointCloud;
use super::params::{Mode, SinkhornParams, Termination};
use super::solve::{effective_tol, eps_at, stop_rule};
use crate::Cost;

/// The result of [`solve_symmetric`].
#[derive(Clone, Debug, PartialEq)]
pub struct SymmetricOutput {
    /// The symmetric potential $f=f_{\mu,\mu}$ at every point: on the support of $\mu$ the
    /// iterate whose residual is reported, at points of zero weight its transform $T(f,\mu)$
    /// (module docs).
    pub f: Vec<f64>,
    /// $\mathrm{OT}_\varepsilon(\mu,\mu)=2\int f\,d\mu$.
    pub ot: f64,
    /// Averaged iterations done (annealing ones included).
    pub iterations: usize,
    /// $\max_i\lvert T(f,\mu)_i-f_i\rvert/\varepsilon$ over the support of $\mu$ at the returned
    /// $f$.
    pub residual: f64,
    /// $\lVert P\mathbb1-a\rVert_1$ of the plan $a_ia_je^{(f_i+f_j-C_{ij})/\varepsilon}$.
    pub marginal_error: f64,
    /// `residual <= tol` at the target eps.
    pub converged: bool,
    /// Why the iteration stopped.
    pub termination: Termination,
    /// `residual` after every iteration, if recorded.
    pub history: Vec<f64>,
    /// The mode actually used.
    pub mode: Mode,
    /// The regularisation.
    pub eps: f64,
    /// The cost.
    pub cost: Cost,
}

/// Solve $\mathrm{OT}_\varepsilon(\mu,\mu)$ from $f=0$ with the averaged symmetric update.
pub fn solve_symmetric(
    x: &PointCloud,
    params: &SinkhornParams,
) -> Result<SymmetricOutput, SinkhornError> {
    symmetric_impl(x, params, None, ExpKernel::default())
}

/// [`solve_symmetric`] warm-started from `f0`.
pub fn solve_symmetric_warm(
    x: &PointCloud,
    params: &SinkhornParams,
    f0: &[f64],
) -> Result<SymmetricOutput, SinkhornError> {
    symmetric_impl(x, params, Some(f0), ExpKernel::default())
}

pub(crate) fn symmetric_impl(
    x: &PointCloud,
    params: &SinkhornParams,
    f0: Option<&[f64]>,
    exp: ExpKernel,
) -> Result<SymmetricOutput, SinkhornError> {
    params.validate()?;
    let n = x.len();
    let mut f = match f0 {
        Some(f0) => {
            check_len("length of f0 vs number of points", n, f0.len())?;
            check_finite(f0, "f0")?;
            f0.to_vec()
        }
        None => vec![0.0; n],
    };
    let engine = Engine::symmetric(x, params.cost, params.mode, exp)?;
    let eps = params.eps;
    let (stages, per_stage) = match &params.eps_scaling {
        Some(s) => (
            s.stages(eps, params.cost.factor() * x.bbox_sq_diameter(x)),
            s.iters_per_stage,
        ),
        None => (Vec::new(), 1),
    };
    let annealing = stages.len() * per_stage;
    let total_max = annealing + params.max_iters;
    let tol = effective_tol(params.tol, eps, engine.cost_spread);
    let mut tf = vec![0.0; n];
    // the stop rule looks at the support only (module docs)
    let support: Vec<bool> = x.weights().iter().map(|&w| w > 0.0).collect();
    let mut history = Vec::new();
    let mut k = 0;
    let (residual, converged) = loop {
        let e = eps_at(k, &stages, per_stage, eps);
        engine.transform(Side::Rows, &f, e, &mut tf);
        let inv_e = 1.0 / e;
        let mut r: f64 = 0.0;
        for ((&a, &b), &on) in tf.iter().zip(&f).zip(&support) {
            if on {
                r = r.max((a - b).abs() * inv_e);
            }
        }
        k += 1;
        if let Some(converged) = stop_rule(k, r, tol, annealing, total_max, params, &mut history)? {
            break (r, converged);
        }
        for (fi, &ti) in f.iter_mut().zip(&tf) {
            *fi = 0.5 * (*fi + ti);
        }
    };
    if !converged && params.strict {
        return Err(SinkhornError::NotConverged {
            iterations: k,
            marginal_error: residual,
        });
    }
    // zero-weight points: the transform of the returned f (exact, they do not enter T)
    for ((fi, &ti), &on) in f.iter_mut().zip(&tf).zip(&support) {
        if !on {
            *fi = ti;
        }
    }
    let inv_eps = 1.0 / eps;
    let marginal_error = x
        .weights()
        .iter()
        .zip(&f)
        .zip(&tf)
        .map(|((&a, &fi), &ti)| a * ((fi - ti) * inv_eps).exp_m1().abs())
        .sum();
    Ok(SymmetricOutput {
        ot: 2.0 * dot(x.weights(), &f),
        f,
        iterations: k,
        residual,
        marginal_error,
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

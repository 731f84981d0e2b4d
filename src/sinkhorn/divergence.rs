//! The debiased Sinkhorn divergence (Feydy et al. 2019, Def. 1 and Thm. 1):
//! $$S_\varepsilon(\mu,\nu)=\mathrm{OT}_\varepsilon(\mu,\nu)-\tfrac12\mathrm{OT}_\varepsilon(\mu,\mu)-\tfrac12\mathrm{OT}_\varepsilon(\nu,\nu)\ \ge0,$$
//! $=0$ iff $\mu=\nu$. The cross term uses [`solve`], the self terms [`solve_symmetric`].

use super::error::SinkhornError;
use super::measure::PointCloud;
use super::params::SinkhornParams;
use super::solve::{solve, SinkhornOutput};
use super::symmetric::{solve_symmetric, SymmetricOutput};

/// The result of [`divergence`].
#[derive(Clone, Debug, PartialEq)]
pub struct DivergenceOutput {
    /// $\mathrm{OT}_\varepsilon(\mu,\nu)$.
    pub ot_xy: f64,
    /// $\mathrm{OT}_\varepsilon(\mu,\mu)$.
    pub ot_xx: f64,
    /// $\mathrm{OT}_\varepsilon(\nu,\nu)$.
    pub ot_yy: f64,
    /// $S_\varepsilon(\mu,\nu)$.
    pub divergence: f64,
    /// The cross solve.
    pub xy: SinkhornOutput,
    /// The self solve of $\mu$.
    pub xx: SymmetricOutput,
    /// The self solve of $\nu$.
    pub yy: SymmetricOutput,
}

impl DivergenceOutput {
    /// All three solves converged.
    pub fn converged(&self) -> bool {
        self.xy.converged && self.xx.converged && self.yy.converged
    }
}

/// $S_\varepsilon(\mu,\nu)$ with the same parameters for the three solves (strict mode: any
/// non-convergence is an error).
pub fn divergence(
    x: &PointCloud,
    y: &PointCloud,
    params: &SinkhornParams,
) -> Result<DivergenceOutput, SinkhornError> {
    let xy = solve(x, y, params)?;
    let xx = solve_symmetric(x, params)?;
    let yy = solve_symmetric(y, params)?;
    Ok(DivergenceOutput {
        ot_xy: xy.ot,
        ot_xx: xx.ot,
        ot_yy: yy.ot,
        divergence: xy.ot - 0.5 * xx.ot - 0.5 * yy.ot,
        xy,
        xx,
        yy,
    })
}
